import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exited, mediaflow, spawnMediaflow } from '../helpers/cli.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let ws: ReturnType<typeof workspace>;
beforeEach(() => {
  ws = workspace('mf-cli-');
  mkdirSync(path.join(ws.root, 'pipelines'));
  writeFileSync(path.join(ws.root, 'pipelines/thumbs.json'), JSON.stringify({
    name: 'thumbs',
    source: { type: 'folder', path: './inbox', stableMs: 50 },
    steps: [{ id: 'thumb', use: 'thumbnail', width: 800, format: 'jpeg' }, { id: 'meta', use: 'metadata' }],
    output: { type: 'folder', path: './out' },
  }));
});
afterEach(() => ws.cleanup());

const status = () => JSON.parse(mediaflow(['status', '--json', '--data', 'data'], ws.root).stdout);

describe('mediaflow CLI', () => {
  it('validate: exit 0 on the examples, exit 1 naming file and path otherwise', () => {
    expect(mediaflow(['validate', 'pipelines'], ws.root).code).toBe(0);
    writeFileSync(path.join(ws.root, 'pipelines/bad.json'), JSON.stringify({ name: 'bad', source: { type: 'folder', path: 'x' }, steps: [{ id: 't', use: 'thumbnail', width: -1 }], output: { type: 'folder', path: 'y' }, extra: 1 }));
    const r = mediaflow(['validate', 'pipelines'], ws.root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${path.join('pipelines', 'bad.json')}: $.steps[0].width:`);
    expect(r.stderr).toContain('$.extra: unknown key "extra"');
  });

  it('process: one file in the foreground, then the same bytes again do no image work', () => {
    copyFileSync(fixture('Landscape_6.jpg'), path.join(ws.root, 'photo.jpg'));
    const first = mediaflow(['process', 'photo.jpg', '--pipeline', 'thumbs', '--data', 'data'], ws.root);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/thumb\tphoto\/thumb\.jpg/);
    copyFileSync(fixture('Landscape_6.jpg'), path.join(ws.root, 'again.jpg'));
    const second = mediaflow(['process', 'again.jpg', '--pipeline', 'thumbs', '--data', 'data'], ws.root);
    expect(second.stdout).toContain('no image work');
    expect(mediaflow(['process', 'photo.jpg', '--pipeline', 'nope', '--data', 'data'], ws.root)).toMatchObject({ code: 1, stderr: expect.stringContaining('no pipeline named "nope"') });
  });

  it('run: status --json works from another process; SIGTERM finishes in-flight work and exits 0', async () => {
    const child = spawnMediaflow(['run', '--data', 'data', '--concurrency', '1'], ws.root);
    try {
      await waitFor('service up', () => child.output().includes('mediaflow running'));
      for (let i = 0; i < 6; i++) copyFileSync(fixture('flowers.jpeg'), path.join(ws.inbox, `f${i}.jpg`));
      copyFileSync(fixture('corrupt-header.jpg'), path.join(ws.inbox, 'bad.jpg'));
      await waitFor('a job started', () => status().jobs.running + status().jobs.done > 0);
      child.kill('SIGTERM');
      const { code } = await exited(child);
      expect(code).toBe(0);
      const after = status();
      expect(after.jobs.running).toBe(0);
      expect(after.jobs.done).toBeGreaterThan(0);

      // Whatever was left queued is done after a restart, and status shows it.
      const again = spawnMediaflow(['run', '--data', 'data'], ws.root);
      let seen: unknown;
      await waitFor('all done', () => { const s = status(); seen = s.jobs; return s.jobs.done === 6 && s.jobs.dead === 1; }, 90_000, 100)
        .catch((err: Error) => { throw new Error(`${err.message}; jobs ${JSON.stringify(seen)}; log:\n${again.output().slice(-3000)}`); });
      const s = status();
      expect(Object.keys(s.jobs).sort()).toEqual(['dead', 'done', 'failed', 'queued', 'running']);
      expect(s.deduplicated).toBe(5); // six copies of one photo: rendered once
      const dlq = mediaflow(['dlq', 'list', '--data', 'data'], ws.root);
      expect(dlq.stdout).toContain('bad.jpg');
      again.kill('SIGINT');
      expect((await exited(again)).code).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('dlq retry puts a dead letter back; a running service picks it up', async () => {
    writeFileSync(path.join(ws.inbox, 'late.jpg'), 'not yet an image');
    const child = spawnMediaflow(['run', '--data', 'data'], ws.root);
    try {
      await waitFor('dead letter', () => status().jobs.dead === 1);
      // Fix the file in place without changing its version (same size and mtime are not needed: retry reads it again).
      const id = JSON.parse(mediaflow(['dlq', 'list', '--json', '--data', 'data'], ws.root).stdout)[0].id;
      copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.root, 'good.jpg'));
      expect(mediaflow(['dlq', 'retry', '--data', 'data'], ws.root).code).toBe(1);
      expect(mediaflow(['dlq', 'retry', String(id), '--data', 'data'], ws.root).code).toBe(0);
      await waitFor('dead again (still not an image)', () => { const s = status(); return s.jobs.dead === 1 && s.jobs.queued === 0 && s.jobs.running === 0; });
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });
});

describe('mediaflow CLI: shared ledger and queue settings', () => {
  it('an unreachable or wrong --ledger / --queue, or a role without a shared queue: one line naming the URL, password masked, exit 1', () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['run', '--ledger', 'postgres://mediaflow:s3cret@127.0.0.1:1/ledger'], {}, /^mediaflow: cannot open the ledger at postgres:\/\/mediaflow:\*\*\*@127\.0\.0\.1:1\/ledger: .*ECONNREFUSED/],
      [['run'], { MEDIAFLOW_LEDGER: 'mysql://root:pw@127.0.0.1/x' }, /^mediaflow: Expected --ledger \/ MEDIAFLOW_LEDGER to be a postgres:\/\/ URL, got `mysql:\/\/root:\*\*\*@127\.0\.0\.1\/x`/],
      [['run', '--queue', 'redis://:hunter2@127.0.0.1:1'], {}, /^mediaflow: cannot reach the queue at redis:\/\/:\*\*\*@127\.0\.0\.1:1: .*ECONNREFUSED/],
      [['run', '--role', 'worker'], {}, /^mediaflow: --role worker needs a queue shared with the other processes: --queue redis:\/\/host:6379/],
      [['status', '--ledger', 'postgres://u:pw@127.0.0.1:1/x'], {}, /^mediaflow: cannot open the ledger at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x/],
    ];
    for (const [args, env, message] of cases) {
      const r = mediaflow(args, ws.root, env);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(message);
      expect(r.stderr + r.stdout).not.toMatch(/s3cret|hunter2|:pw@/);
    }
  });
});
