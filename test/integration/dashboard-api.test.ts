/** The dashboard's API and page through the HTTP server (fastify inject): token, lists and polls, outputs, retries, overview, pipelines. */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildHttpServer } from '../../src/http/server.js';
import type { Job } from '../../src/ledger/ledger.js';
import { Metrics } from '../../src/metrics.js';
import { loadPipelines } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'dashboard-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

let ws: ReturnType<typeof workspace>;
let service: Service;
let app: FastifyInstance;
let pipelineDir: string;

/** A pipeline file on disk (absolute paths, so the check of the files does not depend on the working folder). */
function writePipeline(name: string, extra: Record<string, unknown> = {}) {
  writeFileSync(path.join(pipelineDir, `${name}.json`), JSON.stringify({
    name, source: { type: 'folder', path: ws.inbox, stableMs: 50 }, output: { type: 'folder', path: ws.out },
    steps: [{ id: 'thumb', use: 'thumbnail', width: 64, format: 'png' }, { id: 'meta', use: 'metadata' }], ...extra,
  }, null, 2));
}

async function start(): Promise<void> {
  service = new Service({ pipelines: loadPipelines([pipelineDir]), dataDir: ws.data, concurrency: 2, pollMs: 50, highWaterMark: 40 });
  app = buildHttpServer(service, { token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }), pipelinePaths: [pipelineDir], rateLimit: false });
  await service.start();
}

const get = async (url: string) => app.inject({ method: 'GET', url, headers: auth });
const json = async (url: string) => {
  const res = await get(url);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};
const drop = (name: string, as: string) => copyFileSync(fixture(name), path.join(ws.inbox, as));
/** The job of `key` in pipeline photos once it is in `state` (a test with a second pipeline on the same folder has two jobs per key). */
const jobNamed = (key: string, state: string) => waitFor(`${key} ${state}`, async () =>
  (await service.ledger.jobList.findJobs({ keyContains: key, pipeline: 'photos' })).find((j) => j.key === key && j.state === state));

beforeEach(() => {
  ws = workspace('mf-dash-api-');
  pipelineDir = path.join(ws.root, 'pipelines');
  mkdirSync(pipelineDir);
  writePipeline('photos');
});
afterEach(async () => {
  await app?.close();
  await service?.stop();
  ws.cleanup();
});

describe('token', () => {
  it('every API and output route answers 401 without the token or with a wrong one; the page and its files need none', async () => {
    await start();
    const routes: [string, string][] = [
      ['GET', '/v1/overview'], ['GET', '/v1/jobs'], ['GET', '/v1/jobs?state=dead'], ['GET', '/v1/jobs/1'], ['GET', '/v1/jobs/1/outputs/0'],
      ['POST', '/v1/jobs/1/retry'], ['POST', '/v1/pipelines/photos/retry'], ['GET', '/v1/pipelines'],
    ];
    for (const [method, url] of routes) {
      for (const headers of [{}, { authorization: `Bearer ${TOKEN}-not` }]) {
        const res = await app.inject({ method: method as 'GET', url, headers });
        expect([method, url, res.statusCode]).toEqual([method, url, 401]);
        expect(res.json().error).toBe('E_UNAUTHORIZED');
      }
    }
    for (const url of ['/', '/assets/app.js', '/assets/style.css', '/assets/vendor/preact.mjs', '/assets/vendor/preact-hooks.mjs', '/assets/vendor/htm.mjs']) {
      expect([url, (await app.inject(url)).statusCode]).toEqual([url, 200]);
    }
  });
});

describe('the page', () => {
  it('is served with a strict Content-Security-Policy: no inline script but the import map, by its hash', async () => {
    await start();
    const res = await app.inject('/');
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(res.headers['content-security-policy']);
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]));
    expect(directives.get('default-src')).toEqual(["'none'"]);
    const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(res.body)![1]!;
    expect(directives.get('script-src')).toEqual(["'self'", `'sha256-${createHash('sha256').update(map).digest('base64')}'`]);
    expect(directives.get('style-src')).toEqual(["'self'"]);
    expect(directives.get('img-src')).toEqual(["'self'", 'blob:']);
    expect(directives.get('connect-src')).toEqual(["'self'"]);
    expect(directives.get('frame-ancestors')).toEqual(["'none'"]);
    expect(directives.get('require-trusted-types-for')).toEqual(["'script'"]);
    expect(csp).not.toMatch(/unsafe-/);
    // No inline script other than the import map, no inline handlers or styles.
    expect(res.body.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toEqual(['<script type="importmap">']);
    expect(res.body).not.toMatch(/\son[a-z]+=|\sstyle=/i);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const js = await app.inject('/assets/app.js');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await app.inject({ url: '/assets/app.js', headers: { 'if-none-match': String(js.headers.etag) } })).statusCode).toBe(304);
  });

  it('serves only its own files, by name: no path reaches the disk', async () => {
    await start();
    for (const url of ['/assets/../package.json', '/assets/%2e%2e/package.json', '/assets/vendor/../../package.json', '/assets/index.html', '/assets/nothing.js', '/assets/vendor/']) {
      const res = await app.inject(url);
      expect([url, res.statusCode]).toEqual([url, 404]);
    }
  });
});

describe('jobs', () => {
  it('lists jobs newest first with filters, and a poll with the cursor answers only what changed', async () => {
    await start();
    drop('Landscape_1.jpg', 'trip-a.jpg');
    drop('truncated.jpg', 'broken.jpg');
    await jobNamed('trip-a.jpg', 'done');
    const broken = await jobNamed('broken.jpg', 'dead');
    const all = await json('/v1/jobs');
    expect(all.jobs.map((j: { input: { key: string } }) => j.input.key).sort()).toEqual(['broken.jpg', 'trip-a.jpg']);
    expect(all.jobs[0].id).toBeGreaterThan(all.jobs[1].id);
    expect(all.cursor).toEqual({ since: expect.any(Number), after: Math.max(...all.jobs.map((j: { id: number }) => j.id)) });
    expect((await json('/v1/jobs?state=dead')).jobs.map((j: { id: number }) => j.id)).toEqual([broken.id]);
    expect((await json('/v1/jobs?q=TRIP')).jobs.map((j: { input: { key: string } }) => j.input.key)).toEqual(['trip-a.jpg']);
    const dead = await json('/v1/jobs?state=dead');
    const poll = (c: { since: number; after: number }, ids: number[]) => json(`/v1/jobs?state=dead&since=${c.since}&after=${c.after}&from=0&ids=${ids.join(',')}`);
    // Retried, the dead letter leaves the list's state: the poll says so, with its new state.
    expect((await app.inject({ method: 'POST', url: `/v1/jobs/${broken.id}/retry`, headers: auth })).statusCode).toBe(202);
    const moved = await poll(dead.cursor, [broken.id]);
    expect(moved.jobs.map((j: Job) => j.id)).toEqual([broken.id]);
    expect(moved.jobs[0].state).not.toBe('dead');
    // A new job of another state is not the dead-letter list's business; a new dead letter is.
    drop('corrupt-header.jpg', 'also-broken.jpg');
    const also = await jobNamed('also-broken.jpg', 'dead');
    expect((await poll(moved.cursor, [broken.id])).jobs.map((j: Job) => j.id)).toContain(also.id);
  });

  it('a bad query is a 400 naming what is wrong', async () => {
    await start();
    const cases: [string, RegExp][] = [
      ['/v1/jobs?state=dead,zombie', /Expected `state` to be a comma-separated list of queued, running, .*got `zombie`/],
      ['/v1/jobs?limit=0', /Expected `limit` to be an integer from 1 to 500, got `0`/],
      ['/v1/jobs?since=1', /a poll \(`since`\) needs `after`/],
      ['/v1/jobs?after=1', /`after` goes with `since`/],
      ['/v1/jobs?since=1&after=2&ids=1,x', /Expected `ids` to be a comma-separated list of job ids, got `x`/],
      ['/v1/jobs?colour=red', /unknown query parameter `colour`/],
      ['/v1/jobs?state=dead&state=done', /Expected `state` once in the query string/],
    ];
    for (const [url, message] of cases) {
      const res = await get(url);
      expect([url, res.statusCode]).toEqual([url, 400]);
      expect(res.json()).toMatchObject({ error: 'E_REQUEST', message: expect.stringMatching(message) });
    }
  });

  it('GET /v1/jobs/:id shows the input, the attempt log and the job the outputs were copied from', async () => {
    await start();
    drop('Landscape_1.jpg', 'a.jpg');
    const a = await jobNamed('a.jpg', 'done');
    drop('Landscape_1.jpg', 'b.jpg');
    const b = await jobNamed('b.jpg', 'done');
    const view = await json(`/v1/jobs/${b.id}`);
    expect(view).toMatchObject({
      id: b.id, pipeline: 'photos', state: 'done', deduplicated: true, copiedFrom: a.id,
      input: { key: 'b.jpg', relKey: 'b.jpg', store: `folder:${ws.inbox}`, size: readFileSync(fixture('Landscape_1.jpg')).length, changedAt: expect.any(String) },
      attemptLog: [{ attempt: 1, outcome: 'done', copiedFrom: a.id, steps: [], startedAt: expect.any(String), endedAt: expect.any(String) }],
    });
    expect((await json(`/v1/jobs/${a.id}`)).attemptLog[0].steps.map((s: { step: string }) => s.step)).toEqual(['thumb', 'meta']);
  });
});

describe('outputs', () => {
  it('serves a job\'s output as the ledger recorded it, and only that: gone is 404, overwritten is 410', async () => {
    await start();
    drop('Landscape_1.jpg', 'a.jpg');
    const a = await jobNamed('a.jpg', 'done');
    const file = path.join(ws.out, a.outputs[0]!.key);
    const res = await get(`/v1/jobs/${a.id}/outputs/0`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['content-security-policy']).toBe("default-src 'none'; sandbox");
    expect(res.rawPayload.equals(readFileSync(file))).toBe(true);
    expect((await get(`/v1/jobs/${a.id}/outputs/1`)).headers['content-type']).toBe('application/json');
    // The request names a job and an index, never a file.
    for (const url of [`/v1/jobs/${a.id}/outputs/2`, `/v1/jobs/${a.id}/outputs/..%2F..%2Fpackage.json`, `/v1/jobs/${a.id}/outputs/-1`, '/v1/jobs/999/outputs/0', '/v1/jobs/x/outputs/0']) {
      const r = await get(url);
      expect([url, r.statusCode]).toEqual([url, 404]);
    }
    // Overwritten with other bytes of the same size, then with another size: no longer this job's.
    const bytes = readFileSync(file);
    writeFileSync(file, Buffer.from(bytes.map((b) => b ^ 1)));
    expect((await get(`/v1/jobs/${a.id}/outputs/0`)).json()).toMatchObject({ error: 'E_GONE', message: expect.stringMatching(/overwritten since/) });
    writeFileSync(file, 'x');
    expect((await get(`/v1/jobs/${a.id}/outputs/0`)).statusCode).toBe(410);
    rmSync(file);
    const gone = await get(`/v1/jobs/${a.id}/outputs/0`);
    expect(gone.statusCode).toBe(404);
    expect(gone.json().message).toMatch(/is gone: deleted or moved since/);
  });
});

describe('dead letters', () => {
  it('retries one, or every one of a pipeline; 409 for a job that is not dead, 404 for an unknown job or pipeline', async () => {
    writePipeline('other', { steps: [{ id: 'small', use: 'thumbnail', width: 16, format: 'webp' }], output: { type: 'folder', path: path.join(ws.root, 'out2') } });
    await start();
    drop('truncated.jpg', 'one.jpg');
    drop('corrupt-header.jpg', 'two.jpg');
    const [one, two] = [await jobNamed('one.jpg', 'dead'), await jobNamed('two.jpg', 'dead')];
    const others = await waitFor('other pipeline dead', async () => {
      const d = await service.ledger.jobList.findJobs({ states: ['dead'], pipeline: 'other' });
      return d.length === 2 && d;
    });
    const post = (url: string) => app.inject({ method: 'POST', url, headers: auth });
    const retried = await post(`/v1/jobs/${one.id}/retry`);
    expect([retried.statusCode, retried.json()]).toEqual([202, { retried: 1 }]);
    await waitFor('one dead again (still corrupt)', async () => (await service.ledger.get(one.id))!.attemptLog.length === 2);
    const all = await post('/v1/pipelines/other/retry');
    expect([all.statusCode, all.json()]).toEqual([202, { retried: 2 }]);
    expect((await service.ledger.get(two.id))!.state).toBe('dead'); // photos' own stay
    await waitFor('other dead again', async () => (await Promise.all(others.map((j) => service.ledger.get(j.id)))).every((j) => j!.attemptLog.length === 2 && j!.state === 'dead'));
    drop('Landscape_1.jpg', 'fine.jpg');
    const fine = await jobNamed('fine.jpg', 'done');
    expect((await post(`/v1/jobs/${fine.id}/retry`)).json()).toEqual({ error: 'E_CONFLICT', message: `job ${fine.id} is not a dead letter (it is done): only dead letters are retried` });
    expect((await post('/v1/jobs/999999/retry')).statusCode).toBe(404);
    const unknown = await post('/v1/pipelines/nope/retry');
    expect([unknown.statusCode, unknown.json().error]).toEqual([404, 'E_PIPELINE_UNKNOWN']);
  });
});

describe('overview and pipelines', () => {
  it('overview: counts by pipeline, what ended lately with the event lag, the queue against its high-water mark', async () => {
    await start();
    drop('Landscape_1.jpg', 'a.jpg');
    drop('truncated.jpg', 'b.jpg');
    await jobNamed('a.jpg', 'done');
    await jobNamed('b.jpg', 'dead');
    const o = await json('/v1/overview');
    expect(o).toMatchObject({ role: 'all', queue: { waiting: 0, running: 0, delayed: 0, highWaterMark: 40 }, activity: { intervalMs: 60_000, spanMs: 15 * 60_000 } });
    expect((o.now - o.activity.since) / 60_000).toBeGreaterThanOrEqual(14);
    expect((o.now - o.activity.since) / 60_000).toBeLessThan(15);
    expect(o.activity.since % 60_000).toBe(0);
    expect(o.pipelines).toEqual([{ name: 'photos', loaded: true, counts: expect.objectContaining({ done: 1, dead: 1, queued: 0 }) }]);
    const ended = o.activity.intervals as { done: number; dead: number; lagMeanMs: number | null }[];
    expect([ended.reduce((n, x) => n + x.done, 0), ended.reduce((n, x) => n + x.dead, 0)]).toEqual([1, 1]);
    expect(ended.every((x) => x.lagMeanMs !== null && x.lagMeanMs >= 0)).toBe(true);
  });

  it('pipelines: each as it runs, and its files checked again: an edited file shows its problem by file and JSON path', async () => {
    await start();
    const view = await json('/v1/pipelines');
    expect(view.pipelines).toMatchObject([{ name: 'photos', file: path.join(pipelineDir, 'photos.json'), definition: { name: 'photos', retry: { attempts: 3 } } }]);
    expect(view.files).toEqual([{ file: path.join(pipelineDir, 'photos.json'), pipeline: 'photos', status: 'loaded', problems: [] }]);
    writePipeline('photos', { steps: [{ id: 'thumb', use: 'thumbnail', width: 'wide' }] });
    writeFileSync(path.join(pipelineDir, 'broken.json'), '{ "name": ');
    writePipeline('later');
    const files = (await json('/v1/pipelines')).files as { file: string; status: string; problems: { path: string; text: string }[] }[];
    const byName = new Map(files.map((f) => [path.basename(f.file), f]));
    expect(byName.get('photos.json')).toMatchObject({ status: 'invalid', problems: [{ path: '$.steps[0].width', text: expect.stringMatching(/photos\.json: \$\.steps\[0\]\.width: wrong type; expected number, found "wide" \(string\)$/) }] });
    expect(byName.get('broken.json')).toMatchObject({ status: 'invalid', problems: [{ path: '$', text: expect.stringMatching(/not valid JSON/) }] });
    expect(byName.get('later.json')!.status).toBe('new');
    rmSync(path.join(pipelineDir, 'photos.json'));
    expect(((await json('/v1/pipelines')).files as { file: string; status: string }[]).find((f) => f.file.endsWith('photos.json'))!.status).toBe('missing');
  });
});
