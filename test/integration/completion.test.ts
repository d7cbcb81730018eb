import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Completion, RESEND_AT_ONCE, type CompletionEvent } from '../../src/completion/completion.js';
import type { CompletionRule } from '../../src/ledger/ledger.js';
import { thisProcess } from '../../src/owner.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { verifySignature } from '../../src/completion/notify.js';
import { makeEvent, type MediaEvent } from '../../src/events/media-event.js';
import { Metrics } from '../../src/metrics.js';
import type { LoadedPipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { fixture, sha256 } from '../helpers/fixtures.js';
import { eventSchemaErrors } from '../helpers/event-schema.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const SECRET = 'notify-secret-for-tests';

interface Received { body: string; signature?: string; eventId?: string; status: number }

/** A webhook receiver as a user would write one: it answers with the next status in `answers` (200 once they run out). */
async function receiver(answers: number[]) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answers.shift() ?? 200;
      received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['x-mediaflow-signature'] as string, eventId: req.headers['x-mediaflow-event-id'] as string, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let ws: ReturnType<typeof workspace>;
const cleanups: (() => Promise<void> | void)[] = [];

function build(pipelines: LoadedPipeline[], concurrency = 2) {
  const service = new Service({ pipelines, dataDir: ws.data, concurrency, pollMs: 50 });
  const completion = new Completion(service, { secret: SECRET });
  const metrics = new Metrics(service, { defaultMetrics: false });
  metrics.watchCompletion(completion);
  const completed: CompletionEvent[] = [];
  completion.on('completed', (e: CompletionEvent) => completed.push(e));
  cleanups.push(async () => { await service.stop(() => completion.close()); metrics.close(); });
  return { service, completion, metrics, completed };
}

async function counter(metrics: Metrics, name: string): Promise<number> {
  return (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
}

beforeEach(() => { ws = workspace('mf-completion-'); });
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  ws.cleanup();
});

describe('completion events', () => {
  it('two pipelines on one input: one manifest with both results, signed POST retried until delivered', async () => {
    const hook = await receiver([500]);
    cleanups.push(hook.close);
    writeFileSync(path.join(ws.root, 'broken-out'), 'a file where a folder should be'); // every write fails: ENOTDIR
    const thumbs = ws.pipeline({
      name: 'thumbs', output: { type: 'folder', path: './out/thumbs' },
      steps: [{ id: 'thumb', use: 'thumbnail', width: 64, format: 'png' }, { id: 'meta', use: 'metadata' }],
      manifest: {}, notify: { url: hook.url, attempts: 3, backoffMs: 10 },
    });
    const broken = ws.pipeline({ name: 'broken', output: { type: 'folder', path: './broken-out' }, retry: { attempts: 2, backoffMs: 10 } });
    const { service, metrics, completed } = build([thumbs, broken]);
    await service.start();
    mkdirSync(path.join(ws.inbox, 'trip'));
    copyFileSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'trip/a.jpg'));

    await waitFor('delivered after a failure', () => hook.received.some((r) => r.status === 200));
    expect(completed).toHaveLength(1);
    expect(hook.received.map((r) => r.status)).toEqual([500, 200]);
    expect(await counter(metrics, 'mediaflow_notify_failures_total')).toBe(1);
    expect(await counter(metrics, 'mediaflow_completions_total')).toBe(1);

    const manifestText = readFileSync(path.join(ws.out, 'thumbs/trip/a/manifest.json'), 'utf8');
    for (const r of hook.received) {
      // The receiver checks the raw body against the header; the body is the manifest, byte for byte.
      expect(verifySignature(r.body, SECRET, r.signature)).toBe(true);
      expect(verifySignature(r.body, 'another secret', r.signature)).toBe(false);
      expect(r.body).toBe(manifestText);
      expect(r.eventId).toBe(completed[0]!.id);
    }
    const manifest = JSON.parse(manifestText) as CompletionEvent;
    expect(manifest).toMatchObject({ specversion: '1.0', type: 'dev.mediaflow.input.completed.v1', subject: 'trip/a.jpg', id: completed[0]!.id });
    expect(eventSchemaErrors(manifest)).toEqual([]); // what a receiver checks against the shipped schema
    expect(manifest.data.input).toMatchObject({ store: `folder:${ws.inbox}`, key: 'trip/a.jpg', sha256: sha256(readFileSync(fixture('Portrait_1.jpg'))) });
    expect(manifest.data.state).toBe('partial');
    const byName = Object.fromEntries(manifest.data.pipelines.map((p) => [p.pipeline, p]));
    expect(byName.thumbs).toMatchObject({
      state: 'done', error: null, manifest: { store: `folder:${path.join(ws.out, 'thumbs')}`, key: 'trip/a/manifest.json' },
    });
    const [thumb, meta] = byName.thumbs!.outputs;
    expect(thumb).toMatchObject({ step: 'thumb', key: 'trip/a/thumb.png', contentType: 'image/png' });
    expect(thumb!.width).toBe(64);
    expect(thumb!.height! > thumb!.width!).toBe(true); // portrait, as displayed
    expect(thumb!.size).toBe(readFileSync(path.join(ws.out, 'thumbs/trip/a/thumb.png')).length);
    expect(meta).toMatchObject({ step: 'meta', key: 'trip/a/meta.json', contentType: 'application/json' });
    // Retried, then dead: the completion waited for the last attempt and carries its error.
    expect(byName.broken).toMatchObject({ state: 'dead', attempts: 2, outputs: [], manifest: null });
    expect(byName.broken!.error).toMatch(/ENOTDIR|EEXIST/);
  });

  it('gives up after notify.attempts, counting every failure; a duplicate event for a finished input sends nothing', async () => {
    const hook = await receiver([503, 503]);
    cleanups.push(hook.close);
    const p = ws.pipeline({ notify: { url: hook.url, attempts: 2, backoffMs: 10 } });
    const { service, completion, metrics, completed } = build([p]);
    const events: MediaEvent[] = [];
    service.on('event', (e: MediaEvent) => events.push(e));
    await service.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    const failures: boolean[] = [];
    completion.on('notify-failed', (_url: string, _attempt: number, _err: string, final: boolean) => failures.push(final));
    await waitFor('given up', () => failures.includes(true));
    expect(failures).toEqual([false, true]);
    expect(await counter(metrics, 'mediaflow_notify_failures_total')).toBe(2);
    expect(completed[0]!.data.state).toBe('done');

    await service.intake.handle(events[0]!); // the same notification again: the ledger has it done
    await service.idle();
    expect(completed).toHaveLength(1);
    expect(hook.received).toHaveLength(2);
  });

  it('a dead letter retried later completes its input again, from the ledger (no event routes it)', async () => {
    const hook = await receiver([]);
    cleanups.push(hook.close);
    const blocker = path.join(ws.root, 'broken-out');
    writeFileSync(blocker, 'a file where a folder should be'); // every write fails until it is removed
    const thumbs = ws.pipeline({ name: 'thumbs', output: { type: 'folder', path: './out/thumbs' }, notify: { url: hook.url, backoffMs: 10 } });
    const broken = ws.pipeline({ name: 'broken', output: { type: 'folder', path: './broken-out' }, retry: { attempts: 1, backoffMs: 10 } });
    const { service, completion, completed } = build([thumbs, broken]);
    await service.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('first completion delivered', () => hook.received.length === 1);
    expect(completed[0]!.data.state).toBe('partial');

    rmSync(blocker);
    expect((await service.ledger.retryDead())).toBe(1); // what `mediaflow dlq retry` does, from another process
    await waitFor('second completion delivered', () => hook.received.length === 2);
    const again = JSON.parse(hook.received[1]!.body) as CompletionEvent;
    expect(again.data.state).toBe('done');
    expect(again.data.input).toMatchObject({ store: `folder:${ws.inbox}`, key: 'a.jpg', version: completed[0]!.data.input.version });
    expect(again.data.pipelines.map((p) => [p.pipeline, p.state]).sort()).toEqual([['broken', 'done'], ['thumbs', 'done']]);
    expect(again.id).not.toBe(completed[0]!.id);
  });

  it('an input whose jobs a restart split completes once after it (the walk and the resumed job both lead there)', async () => {
    const hook = await receiver([]);
    cleanups.push(hook.close);
    const blocker = path.join(ws.root, 'broken-out');
    writeFileSync(blocker, 'a file where a folder should be');
    const thumbs = ws.pipeline({ name: 'thumbs', output: { type: 'folder', path: './out/thumbs' }, notify: { url: hook.url, backoffMs: 10 } });
    const broken = ws.pipeline({ name: 'broken', output: { type: 'folder', path: './broken-out' }, retry: { attempts: 3, backoffMs: 1000, maxBackoffMs: 1000 } });
    const first = build([thumbs, broken]);
    await first.service.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('one done, one waiting for its retry', async () => {
      const c = (await first.service.ledger.counts());
      return c.done === 1 && c.failed === 1;
    });
    await first.service.stop(() => first.completion.close());
    expect(hook.received).toHaveLength(0);

    rmSync(blocker);
    await new Promise((r) => setTimeout(r, 1100)); // the retry falls due
    const second = build([thumbs, broken]);
    await second.service.start();
    await waitFor('completion delivered', () => hook.received.length === 1);
    await second.service.idle();
    const event = JSON.parse(hook.received[0]!.body) as CompletionEvent;
    expect(event.data.state).toBe('done');
    expect(event.data.pipelines.map((p) => [p.pipeline, p.state]).sort()).toEqual([['broken', 'done'], ['thumbs', 'done']]);
    await new Promise((r) => setTimeout(r, 200));
    expect(hook.received).toHaveLength(1);
  });

  it('a delivery cut short by a stop is sent again at the next start, same event, once', async () => {
    const hook = await receiver([503]);
    cleanups.push(hook.close);
    const p = ws.pipeline({ manifest: {}, notify: { url: hook.url, attempts: 5, backoffMs: 60_000 } });
    const first = build([p]);
    await first.service.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('first attempt refused', () => hook.received.length === 1);
    await first.service.stop(() => first.completion.close()); // gives up the wait for the 2nd attempt
    const manifest = path.join(ws.out, 'a/manifest.json');
    expect(readFileSync(manifest, 'utf8')).toBe(hook.received[0]!.body); // written before the first attempt: not again

    const second = build([p]);
    await second.service.start();
    await waitFor('sent again', () => hook.received.length === 2);
    expect(hook.received.map((r) => r.status)).toEqual([503, 200]);
    expect(hook.received[1]!.eventId).toBe(hook.received[0]!.eventId);
    expect(hook.received[1]!.body).toBe(hook.received[0]!.body);
    expect(verifySignature(hook.received[1]!.body, SECRET, hook.received[1]!.signature)).toBe(true);
    expect(second.completed).toHaveLength(0); // no new completion: the input was finished
    await second.service.stop(() => second.completion.close());

    const third = build([p]);
    await third.service.start();
    await third.service.idle();
    await new Promise((r) => setTimeout(r, 200));
    expect(hook.received).toHaveLength(2);
  });

  it('a manifest whose write failed is written at the next start, with the event it belongs to', async () => {
    const p = ws.pipeline({ manifest: { key: 'manifests/{name}.json' } });
    mkdirSync(ws.out, { recursive: true });
    const blocker = path.join(ws.out, 'manifests');
    writeFileSync(blocker, 'a file where a folder should be');
    const first = build([p]);
    await first.service.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('completed, manifest refused', () => first.completed.length === 1);
    await first.service.stop(() => first.completion.close());

    rmSync(blocker);
    const second = build([p]);
    await second.service.start();
    const manifest = path.join(ws.out, 'manifests/a.json');
    await waitFor('manifest written', () => existsSync(manifest));
    expect((JSON.parse(readFileSync(manifest, 'utf8')) as CompletionEvent).id).toBe(first.completed[0]!.id);
    expect(second.completed).toHaveLength(0);
  });

  it(`sends what an earlier run left ${RESEND_AT_ONCE} at a time, and empties the outbox`, async () => {
    let inFlight = 0;
    let most = 0;
    const ids: string[] = [];
    const server = http.createServer((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      req.resume();
      req.on('end', () => setTimeout(() => { inFlight--; ids.push(String(req.headers['x-mediaflow-event-id'])); res.writeHead(200).end(); }, 50));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    // An earlier run that completed 20 inputs and stopped before sending any of their events.
    const earlier = new SqliteLedger(ws.data);
    const rule: CompletionRule = {
      pipelines: new Map([['p', 'f']]),
      draft: ([j]) => ({ eventId: `event-${j!.key}`, body: `{"n":"${j!.key}"}\n`, manifests: [], targets: [{ url, attempts: 1, backoffMs: 10 }], owner: `${thisProcess.split('-')[0]}-999999999-1#1` }), // a process of this machine that has ended
    };
    for (let i = 0; i < 20; i++) {
      const { job } = await earlier.upsert({ pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key: `${i}.jpg`, relKey: `${i}.jpg`, version: 'file:1:1' });
      await earlier.startAttempt(job.id);
      await earlier.finish(job.id, { state: 'done', outputs: [], deduplicated: false }, rule);
    }
    await earlier.close();

    const { service } = build([ws.pipeline({})]);
    await waitFor('20 sent', () => ids.length === 20);
    expect(new Set(ids).size).toBe(20);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(RESEND_AT_ONCE);
    await waitFor('outbox empty', async () => (await service.ledger.outbox()).length === 0);
  });

  it('a newer version supersedes a queued older one: only the newer completes', async () => {
    const p = ws.pipeline({ steps: [{ id: 'meta', use: 'metadata' }], manifest: { key: '{dir}/{name}.{sha256}.manifest.json' } });
    const { service, completion, completed } = build([p], 1);
    const store = `folder:${ws.inbox}`;
    copyFileSync(fixture('G31D.TIF'), path.join(ws.inbox, 'big.tif'));
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await service.intake.handle(makeEvent('test', 'created', { store, key: 'big.tif', size: 1, mtimeMs: 1 })); // holds the only slot
    await service.intake.handle(makeEvent('test', 'created', { store, key: 'a.jpg', size: 1, mtimeMs: 1 }));
    copyFileSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await service.intake.handle(makeEvent('test', 'created', { store, key: 'a.jpg', size: 2, mtimeMs: 2 }));
    await service.idle();
    await waitFor('two completions', () => completed.length === 2);
    expect(completed.map((e) => [e.subject, e.data.input.version])).toEqual([['big.tif', 'file:1:1'], ['a.jpg', 'file:2:2']]);
    const portrait = sha256(readFileSync(fixture('Portrait_1.jpg')));
    expect(JSON.parse(readFileSync(path.join(ws.out, `a.${portrait}.manifest.json`), 'utf8')).data.input.sha256).toBe(portrait);
  });

  it('refuses to start when a pipeline notifies but MEDIAFLOW_NOTIFY_SECRET is unset', () => {
    const p = ws.pipeline({ notify: { url: 'http://127.0.0.1:9/hook' } });
    const service = new Service({ pipelines: [p], dataDir: ws.data });
    cleanups.push(() => service.stop());
    expect(() => new Completion(service, {})).toThrow(/MEDIAFLOW_NOTIFY_SECRET is not set, but "test"/);
  });
});
