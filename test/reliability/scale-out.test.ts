/**
 * Scale-out: real `mediaflow run` processes in their roles — one sources
 * process and workers — sharing a PostgreSQL ledger and a BullMQ queue on
 * Redis. Every input gets its outputs, each (content, pipeline) is rendered
 * once, completion events go out once per input; a worker killed mid-job, a
 * sources process restarted mid-upload, and PostgreSQL and Redis restarted
 * mid-run lose nothing and render nothing twice.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { startOwnPostgres, startOwnRedis } from '../helpers/own-servers.js';
import { describePostgres, testSchema } from '../helpers/postgres.js';
import { describeRedis, testPrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { decodeStrict, listFiles, RunningService, sha256, smallJpeg, suiteReports, writePipeline } from './harness.js';

const reports = suiteReports('scale-out');

const steps = [
  { id: 'thumb', use: 'thumbnail', width: 24, format: 'webp' },
  { id: 'meta', use: 'metadata' },
];

interface Received { id: string; subject: string }

/** A completion-event receiver on loopback. */
async function receiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { subject: string };
      received.push({ id: String(req.headers['x-mediaflow-event-id']), subject: body.subject });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describePostgres('scale-out (real PostgreSQL)', () => {
  describeRedis('scale-out: sources and workers on a shared ledger and queue', () => {
    let ws: ReturnType<typeof workspace>;
    let cleanups: (() => Promise<void> | void)[] = [];
    const procs: RunningService[] = [];
    beforeEach(() => { ws = workspace('mf-scale-'); });
    afterEach(async () => {
      for (const p of procs.splice(0)) { p.kill('SIGKILL'); await p.exited(); }
      for (const c of cleanups.reverse()) await c();
      cleanups = [];
      ws.cleanup();
    });

    /** A shared ledger (own schema) and queue (own prefix) on the given servers, the pipeline, and a ledger handle for checks. */
    async function setup(o: { ledgerUrl?: string; queueUrl?: string; lockMs?: number } = {}) {
      const schema = o.ledgerUrl ? null : testSchema();
      const prefix = o.queueUrl ? null : testPrefix();
      const ledgerUrl = o.ledgerUrl ?? schema!.url;
      const queueUrl = o.queueUrl ?? prefix!.url;
      const hook = await receiver();
      cleanups.push(() => hook.close());
      if (schema) cleanups.push(() => schema.drop());
      if (prefix) cleanups.push(() => prefix.drop());
      writePipeline(path.join(ws.root, 'pipelines'), {
        name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 100 }, steps,
        output: { type: 'folder', path: './out' }, retry: { attempts: 5, backoffMs: 200 },
        notify: { url: hook.url, attempts: 10, backoffMs: 200 },
      });
      const env = {
        MEDIAFLOW_LEDGER: ledgerUrl, MEDIAFLOW_QUEUE: queueUrl, MEDIAFLOW_LOCK_MS: String(o.lockMs ?? 2000),
        MEDIAFLOW_NOTIFY_SECRET: 'scale-out-secret',
      };
      const start = (role: 'sources' | 'worker', name: string) => {
        const p = new RunningService(['--role', role, '--data', `data-${name}`, '--concurrency', '2'], ws.root, { ...env, MEDIAFLOW_WORKER_ID: name });
        procs.push(p);
        return p;
      };
      // The test's own look at the ledger; it waits for a restarted database like the workers do.
      const ledger = await PostgresLedger.connect({ url: ledgerUrl });
      cleanups.push(() => ledger.close());
      return { start, ledger, hook, env };
    }

    /** Every input done, with decodable outputs of its own bytes; nothing else in out/, no temp or spool file anywhere. */
    async function checkOutputs(inputs: Map<string, Buffer>): Promise<void> {
      for (const [name, data] of inputs) {
        const base = path.join(ws.out, name.replace(/\.jpg$/, ''));
        expect(await decodeStrict(readFileSync(path.join(base, 'thumb.webp')))).toEqual({ width: 24, height: 16 });
        expect(JSON.parse(readFileSync(path.join(base, 'meta.json'), 'utf8')).sha256).toBe(sha256(data));
      }
      const files = listFiles(ws.out);
      expect(files.filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
      expect(files).toHaveLength(inputs.size * 2);
      for (const dir of listFiles(ws.root).filter((f) => /^data-[^/]+\/tmp\//.test(f))) throw new Error(`spooled input left: ${dir}`);
    }

    /** Each (content, pipeline) rendered exactly once, from the ledger. */
    async function checkRenderedOnce(ledger: PostgresLedger, contents: number): Promise<void> {
      const renders = await ledger.renderCounts();
      expect(renders).toHaveLength(contents);
      expect(renders.filter((r) => r.renders !== 1)).toEqual([]);
    }

    /** The sum of a metric's series over those whose labels include every one of `labels`. */
    async function metric(svc: RunningService, name: string, labels: Record<string, string> = {}): Promise<number> {
      const text = await (await fetch(`${svc.url}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
        .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    }

    async function writeInputs(n: number, copies: number, from = 0): Promise<Map<string, Buffer>> {
      const inputs = new Map<string, Buffer>();
      const staging = path.join(ws.root, 'staging');
      mkdirSync(staging, { recursive: true });
      for (let i = from; i < from + n; i++) {
        const data = await smallJpeg(i < from + n - copies ? i : i - (n - copies)); // the last `copies` repeat earlier contents
        const name = `b${i % 4}/p${String(i).padStart(4, '0')}.jpg`;
        mkdirSync(path.join(ws.inbox, path.dirname(name)), { recursive: true });
        writeFileSync(path.join(staging, `${i}`), data);
        renameSync(path.join(staging, `${i}`), path.join(ws.inbox, name));
        inputs.set(name, data);
      }
      return inputs;
    }

    it('one sources and two worker processes share a 200-file backlog: all outputs, each content rendered once, one completion event per input', async () => {
      const started = Date.now();
      const { start, ledger, hook } = await setup();
      const inputs = await writeInputs(200, 40); // 160 contents, 40 of them under a second name
      const workers = [start('worker', 'w1'), start('worker', 'w2')];
      const sources = start('sources', 's1');
      await Promise.all([...workers, sources].map((p) => p.ready()));
      await waitFor('200 done', async () => (await ledger.counts()).done === 200, 120_000, 100);
      await checkRenderedOnce(ledger, 160);
      await checkOutputs(inputs);
      await waitFor('200 completion events', () => hook.received.length >= 200, 30_000);
      const subjects = hook.received.map((r) => r.subject);
      expect(new Set(subjects).size).toBe(200);
      const twice = hook.received.filter((r) => subjects.indexOf(r.subject) !== subjects.lastIndexOf(r.subject));
      expect(twice, 'inputs with more than one completion event').toEqual([]);
      const perWorker = await Promise.all(workers.map((w) => metric(w, 'mediaflow_worker_jobs_total', { state: 'done' })));
      expect(perWorker.every((n) => n > 0), `jobs per worker: ${perWorker.join(", ")}`).toBe(true);
      expect(perWorker.reduce((a, b) => a + b, 0)).toBe(200);
      expect(await metric(sources, 'mediaflow_worker_jobs_total')).toBe(0);
      // The shared picture from any process.
      expect(await metric(sources, 'mediaflow_ledger_jobs', { state: 'done' })).toBe(200);
      for (const p of [sources, ...workers]) expect(await p.stop()).toBe(0);
      reports.backlog = { inputs: 200, contents: 160, perWorker, events: hook.received.length, seconds: (Date.now() - started) / 1000 };
    }, 180_000);

    it('a worker SIGKILLed mid-job: the other finishes its jobs; nothing partial, no temp file left', async () => {
      const { start, ledger } = await setup({ lockMs: 1500 });
      const inputs = await writeInputs(120, 0);
      const victim = start('worker', 'victim');
      const survivor = start('worker', 'survivor');
      start('sources', 's1');
      await victim.ready();
      await waitFor('the victim has done some work and is busy', async () => (await metric(victim, 'mediaflow_worker_jobs_total', { state: 'done' })) >= 5
        && (await metric(victim, 'mediaflow_jobs_in_flight')) > 0, 60_000, 5);
      victim.kill('SIGKILL');
      expect((await victim.exited()).signal).toBe('SIGKILL');
      const runningAtKill = (await ledger.list('running', 100)).map((j) => j.id);
      await survivor.ready();
      await waitFor('120 done', async () => (await ledger.counts()).done === 120, 120_000, 100);
      for (const id of runningAtKill) expect((await ledger.get(id))!.state).toBe('done');
      await checkRenderedOnce(ledger, 120);
      // The victim's temp files go when the survivor takes over its jobs (a sweep, in the background).
      await waitFor('no temp file left', () => listFiles(ws.out).every((f) => !path.basename(f).startsWith('.')), 10_000);
      await checkOutputs(inputs);
      reports.killedWorker = { inputs: 120, runningAtKill: runningAtKill.length };
    }, 180_000);

    it('the sources process restarted mid-upload: nothing lost', async () => {
      const { start, ledger } = await setup();
      start('worker', 'w1');
      let sources = start('sources', 's1');
      await sources.ready();
      const inputs = await writeInputs(40, 0);
      await waitFor('some done', async () => (await ledger.counts()).done >= 10, 60_000, 20);
      sources.kill('SIGKILL');
      await sources.exited();
      for (const [k, v] of await writeInputs(40, 0, 40)) inputs.set(k, v); // uploaded while no sources process runs
      sources = start('sources', 's1');
      await sources.ready();
      for (const [k, v] of await writeInputs(40, 0, 80)) inputs.set(k, v);
      await waitFor('120 done', async () => (await ledger.counts()).done === 120, 120_000, 100);
      await checkRenderedOnce(ledger, 120);
      await checkOutputs(inputs);
    }, 180_000);

    it('PostgreSQL and Redis restarted mid-run: workers wait, reconnect and finish; nothing lost, nothing twice', async () => {
      const pg = await startOwnPostgres();
      cleanups.push(() => pg.stop());
      const redis = await startOwnRedis();
      cleanups.push(() => redis.stop());
      const { start, ledger } = await setup({ ledgerUrl: pg.url, queueUrl: redis.url });
      const inputs = await writeInputs(150, 0);
      const workers = [start('worker', 'w1'), start('worker', 'w2')];
      const sources = start('sources', 's1');
      await Promise.all([...workers, sources].map((p) => p.ready()));
      await waitFor('30 done', async () => (await ledger.counts()).done >= 30, 60_000, 20);
      const ready = async (p: RunningService) => {
        // A process that died is a failure of its own, not a probe to retry: say so with its log.
        if (!p.alive) {
          await new Promise((r) => setTimeout(r, 500)); // its last stderr lines arrive after the exit
          throw new Error(`process exited:\n${p.logTail(40)}`);
        }
        const res = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(15_000) });
        return { status: res.status, ...(await res.json() as { ledger: boolean; queue: boolean }) };
      };
      await pg.down();
      // Not ready while the ledger cannot be reached; the worker itself stays up and waits.
      await waitFor('a worker says it is not ready', async () => (await ready(workers[0]!)).status === 503, 60_000, 200);
      expect(await ready(workers[0]!)).toMatchObject({ status: 503, ledger: false, queue: true });
      await new Promise((r) => setTimeout(r, 1000));
      await pg.up();
      await waitFor('ready again', async () => (await ready(workers[0]!)).status === 200, 60_000, 200);
      await waitFor('80 done', async () => (await ledger.counts()).done >= 80, 90_000, 50);
      await redis.down();
      await waitFor('the sources process says it is not ready', async () => (await ready(sources)).status === 503, 60_000, 200);
      expect(await ready(sources)).toMatchObject({ status: 503, queue: false });
      await new Promise((r) => setTimeout(r, 1000));
      await redis.up();
      await waitFor('150 done', async () => (await ledger.counts()).done === 150, 150_000, 100).catch(async (err: Error) => {
        const tails = [sources, ...workers].map((p) => `--- ${p.alive ? 'alive' : 'exited'}\n${p.logTail(15)}`).join('\n');
        throw new Error(`${err.message}; ledger ${JSON.stringify(await ledger.counts())}\n${tails}`);
      });
      await checkRenderedOnce(ledger, 150);
      await checkOutputs(inputs);
      for (const p of [sources, ...workers]) expect(p.alive, p.logTail(30)).toBe(true);
      const problems = [...sources.problems, ...workers.flatMap((w) => w.problems)].map((l) => l.msg);
      reports.restarts = { inputs: 150, warnings: [...new Set(problems)].slice(0, 8) };
    }, 240_000);
  });
});
