/**
 * `mediaflow run` and its pipeline files, as the dashboard sees them: a file
 * with a problem stops run before anything starts (as it always has), and a
 * file edited while run runs shows its problem on the dashboard.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { exited, mediaflow, spawnMediaflow } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'cli-dashboard-token-0123';
let ws: ReturnType<typeof workspace>;
const file = () => path.join(ws.root, 'pipelines', 'thumbs.json');
const write = (width: unknown) => writeFileSync(file(), JSON.stringify({
  name: 'thumbs', source: { type: 'folder', path: './inbox', stableMs: 50 },
  steps: [{ id: 'thumb', use: 'thumbnail', width, format: 'webp' }], output: { type: 'folder', path: './out' },
}));

beforeEach(() => {
  ws = workspace('mf-dash-cli-');
  mkdirSync(path.join(ws.root, 'pipelines'));
});
afterEach(() => ws.cleanup());

it('run refuses to start on a pipeline file with a problem, naming file and JSON path; started, its dashboard checks the files again', async () => {
  write('wide');
  const refused = mediaflow(['run', '--data', 'data'], ws.root, { MEDIAFLOW_TOKEN: TOKEN });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(`${path.join('pipelines', 'thumbs.json')}: $.steps[0].width: wrong type; expected number, found "wide" (string)`);

  write(64);
  const child = spawnMediaflow(['run', '--data', 'data'], ws.root, { MEDIAFLOW_TOKEN: TOKEN });
  try {
    const url = await waitFor('http listening', () => /"msg":"http listening"/.test(child.output())
      && (JSON.parse(child.output().split('\n').find((l) => l.includes('"http listening"'))!) as { url: string }).url);
    const page = await fetch(`${url}/`);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8']);
    const pipelines = async () => (await (await fetch(`${url}/v1/pipelines`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as
      { files: { file: string; status: string; problems: { text: string }[] }[] };
    expect((await pipelines()).files).toEqual([{ file: path.join('pipelines', 'thumbs.json'), pipeline: 'thumbs', status: 'loaded', problems: [] }]);
    write(-1);
    const [edited] = (await pipelines()).files;
    expect(edited).toMatchObject({ status: 'invalid', problems: [{ text: expect.stringMatching(/thumbs\.json: \$\.steps\[0\]\.width: /) }] });
    expect((await fetch(`${url}/v1/pipelines`)).status).toBe(401);
  } finally {
    child.kill('SIGTERM');
    expect(await exited(child)).toMatchObject({ code: 0 });
  }
});
