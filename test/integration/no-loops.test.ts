/**
 * Outputs never feed back: `validate` compares real paths across every
 * pipeline, and at run time an input whose bytes mediaflow wrote itself is
 * skipped, whatever path led it back.
 */
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PipelineError } from '../../src/errors.js';
import { loadPipelines, parsePipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { walk } from '../../src/stores/folder-store.js';
import { mediaflow } from '../helpers/cli.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let ws: ReturnType<typeof workspace>;
let services: Service[] = [];
beforeEach(() => { ws = workspace('mf-loops-'); });
afterEach(async () => {
  await Promise.all(services.map((s) => s.stop()));
  services = [];
  ws.cleanup();
});

const steps = [{ id: 'thumb', use: 'thumbnail', width: 64, format: 'webp' }];

function writePipelineFile(dir: string, doc: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${String(doc.name)}.json`);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const f of walk(dir)) out.push(path.relative(dir, f));
  return out.sort();
}

/** The deepest nesting of outputs made from outputs: `thumb/thumb.webp` is a second generation. */
const generations = (files: string[]) => Math.max(0, ...files.map((f) => 1 + f.split('/').filter((s) => s === 'thumb').length));

describe('validate', () => {
  it('refuses an output folder that is a symbolic link into the watched folder', () => {
    mkdirSync(path.join(ws.inbox, 'derived'));
    symlinkSync(path.join(ws.inbox, 'derived'), path.join(ws.root, 'out'));
    const dir = path.join(ws.root, 'pipelines');
    writePipelineFile(dir, { name: 'photos', source: { type: 'folder', path: '../inbox' }, steps, output: { type: 'folder', path: '../out' } });
    const r = mediaflow(['validate', dir], dir);
    expect(r.code).toBe(1);
    expect(r.stderr + r.stdout).toMatch(/photos\.json: \$\.output: output lands inside this pipeline's own source/);
    // Through a link made for a folder that does not exist yet too (nearest existing ancestor).
    expect(() => parsePipeline('p.json', JSON.stringify({ name: 'p', source: { type: 'folder', path: './inbox' }, steps, output: { type: 'folder', path: './out/new/deeper' } }), ws.root))
      .toThrow(/own source/);
  });

  it('refuses two pipelines whose outputs land in each other\'s source, naming both', () => {
    mkdirSync(path.join(ws.root, 'b-in'));
    const dir = path.join(ws.root, 'pipelines');
    writePipelineFile(dir, { name: 'a', source: { type: 'folder', path: '../inbox' }, steps, output: { type: 'folder', path: '../b-in' } });
    writePipelineFile(dir, { name: 'b', source: { type: 'folder', path: '../b-in' }, steps, output: { type: 'folder', path: '../inbox' } });
    const r = mediaflow(['validate', dir], dir);
    expect(r.code).toBe(1);
    expect(r.stderr + r.stdout).toMatch(/a\.json: \$\.output: output lands inside the source of pipeline "b"/);
    expect(r.stderr + r.stdout).toMatch(/b\.json: \$\.output: output lands inside the source of pipeline "a"/);
  });

  it('allows an output into another source that excludes it, or whose globs never take it', () => {
    const dir = path.join(ws.root, 'pipelines');
    writePipelineFile(dir, { name: 'a', source: { type: 'folder', path: '../inbox' }, steps, output: { type: 'folder', path: '../b-in/derived' } });
    writePipelineFile(dir, { name: 'b', source: { type: 'folder', path: '../b-in', exclude: ['derived/**'] }, steps, output: { type: 'folder', path: '../b-out' } });
    writePipelineFile(dir, { name: 'c', source: { type: 'folder', path: '../c-in', include: ['**/*.jpg'] }, steps, output: { type: 'folder', path: '../c-out' } });
    writePipelineFile(dir, { name: 'd', source: { type: 'folder', path: '../d-in' }, steps, output: { type: 'folder', path: '../c-in' } });
    expect(() => loadPipelines([dir], dir)).not.toThrow();
  });
});

describe('at run time, when the paths were not caught', () => {
  it('an output folder linked into the watched folder after validation: one generation, the rest skipped', async () => {
    // Validated while ./out was an ordinary (missing) folder; the link comes after.
    const p = ws.pipeline({ steps });
    mkdirSync(path.join(ws.inbox, 'gen'));
    symlinkSync(path.join(ws.inbox, 'gen'), ws.out);
    const s = new Service({ pipelines: [p], dataDir: ws.data, concurrency: 2, pollMs: 50 });
    services.push(s);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'photo.jpg'));
    await waitFor('the output came back and was skipped', async () => (await s.ledger.counts()).skipped >= 1);
    await new Promise((r) => setTimeout(r, 500)); // a second generation would need this long to appear
    await s.idle();
    const files = await filesBelow(path.join(ws.inbox, 'gen'));
    expect(files).toEqual(['photo/thumb.webp']);
    expect(generations(files)).toBe(1);
    expect((await s.ledger.counts())).toMatchObject({ done: 1, skipped: 1 });
    expect((await s.ledger.list('skipped'))[0]!.error).toMatch(/bytes of an output of mediaflow \(job \d+, pipeline test, made from photo\.jpg\)/);
  });

  it('two pipelines feeding each other, forced past validation: one generation', async () => {
    const bIn = path.join(ws.root, 'b-in');
    mkdirSync(bIn);
    // parsePipeline checks each alone (each is fine); only loadPipelines would see the pair.
    const a = parsePipeline(path.join(ws.root, 'a.json'), JSON.stringify({ name: 'a', source: { type: 'folder', path: './inbox', stableMs: 50 }, steps, output: { type: 'folder', path: './b-in' } }), ws.root);
    const b = parsePipeline(path.join(ws.root, 'b.json'), JSON.stringify({ name: 'b', source: { type: 'folder', path: './b-in', stableMs: 50 }, steps, output: { type: 'folder', path: './inbox' } }), ws.root);
    expect(() => loadPipelines([a.file, b.file].map((f, i) => { writeFileSync(f, JSON.stringify(i === 0
      ? { name: 'a', source: { type: 'folder', path: './inbox' }, steps, output: { type: 'folder', path: './b-in' } }
      : { name: 'b', source: { type: 'folder', path: './b-in' }, steps, output: { type: 'folder', path: './inbox' } })); return f; }), ws.root)).toThrow(PipelineError);
    const s = new Service({ pipelines: [a, b], dataDir: ws.data, concurrency: 2, pollMs: 50 });
    services.push(s);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'photo.jpg'));
    await waitFor('b skipped a\'s output', async () => (await s.ledger.counts()).skipped >= 1);
    await new Promise((r) => setTimeout(r, 500));
    await s.idle();
    expect(await filesBelow(bIn)).toEqual(['photo/thumb.webp']);
    expect(await filesBelow(ws.inbox)).toEqual(['photo.jpg']);
    expect((await s.ledger.counts())).toMatchObject({ done: 1, skipped: 1 });
  });
});
