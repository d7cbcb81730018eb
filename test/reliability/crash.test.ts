/**
 * Crash: `mediaflow run` is SIGKILLed at random points while it works
 * through a backlog, and restarted each time. At the end every input has its
 * complete outputs, none is truncated or corrupt, and the ledger shows every
 * input rendered once, except the jobs that were running at a kill.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { describeMinio, makeBuckets, minioEnv, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';
import {
  decodeStrict, ledgerCounts, ledgerRows, listFiles, prng, RunningService, seedFor, sha256, smallJpeg, writePipeline,
  type LedgerRow,
} from './harness.js';

const KILLS = 4;

const steps = [
  { id: 'thumb', use: 'thumbnail', width: 24, format: 'webp' },
  { id: 'meta', use: 'metadata' },
];

interface CrashReport { inputs: number; kills: number; inFlight: number; renders: number; attemptsAbove1: number; leftoverTemps: number; seconds: number }

/**
 * Starts `mediaflow run`, kills it with SIGKILL once `done` has grown by a
 * random amount (plus a random few ms, so kills land inside writes too), and
 * records which jobs the ledger shows running at each kill. Then runs it to
 * the end and stops it with SIGTERM.
 */
async function crashLoop(o: {
  cwd: string; data: string; total: number; rnd: () => number; env?: NodeJS.ProcessEnv;
  /** Called after the given kill, e.g. to add more inputs while the service is down. */
  afterKill?: (kill: number) => Promise<void>;
}): Promise<Map<number, number>> {
  const inFlight = new Map<number, number>(); // job id -> kills it was running at
  const args = ['--data', o.data, '--concurrency', '2'];
  for (let kill = 1; kill <= KILLS; kill++) {
    const svc = new RunningService(args, o.cwd, o.env);
    try {
      const before = ledgerCounts(path.join(o.cwd, o.data)).done;
      const target = Math.min(o.total - 10, before + 10 + Math.floor(o.rnd() * 40));
      await waitFor(`done >= ${target} before kill ${kill}`, () => ledgerCounts(path.join(o.cwd, o.data)).done >= target, 60_000, 5);
      await new Promise((r) => setTimeout(r, Math.floor(o.rnd() * 30)));
      svc.kill('SIGKILL');
      expect((await svc.exited()).signal).toBe('SIGKILL');
    } finally {
      svc.kill('SIGKILL');
      await svc.exited();
    }
    for (const row of ledgerRows(path.join(o.cwd, o.data))) {
      if (row.state === 'running') inFlight.set(row.id, (inFlight.get(row.id) ?? 0) + 1);
    }
    await o.afterKill?.(kill);
  }
  const last = new RunningService(args, o.cwd, o.env);
  try {
    await waitFor('every input finished', () => {
      const c = ledgerCounts(path.join(o.cwd, o.data));
      return c.done + c.dead >= o.total && c.queued + c.running + c.failed === 0;
    }, 90_000, 50);
    expect(await last.stop()).toBe(0);
  } finally {
    last.kill('SIGKILL');
  }
  return inFlight;
}

/** The ledger side of the promise: one row per input, done, rendered once unless it was running at a kill. */
function checkLedger(rows: LedgerRow[], inFlight: Map<number, number>, total: number): Pick<CrashReport, 'renders' | 'attemptsAbove1'> {
  expect(rows.filter((r) => r.state !== 'done').map((r) => `${r.key}: ${r.state} ${r.error}`)).toEqual([]);
  expect(rows).toHaveLength(total);
  let renders = 0;
  for (const r of rows) {
    // Each attempt is one render; a job runs again only when a kill caught it running.
    expect({ key: r.key, attempts: r.attempts }).toEqual({ key: r.key, attempts: 1 + (inFlight.get(r.id) ?? 0) });
    expect(r.deduplicated).toBe(0);
    renders += r.attempts;
  }
  expect(new Set(rows.map((r) => r.sha256)).size).toBe(total);
  return { renders, attemptsAbove1: rows.filter((r) => r.attempts > 1).length };
}

async function checkOutputs(input: Buffer, thumb: Buffer, meta: Buffer): Promise<void> {
  const { width, height } = await decodeStrict(thumb);
  expect(width).toBe(24);
  expect(height).toBe(16);
  const doc = JSON.parse(meta.toString('utf8'));
  expect(doc).toMatchObject({ format: 'jpeg', width: 48, height: 32, size: input.length, sha256: sha256(input) });
}

/**
 * A process that starts an output write and a large input's spool the way
 * mediaflow does (the same names) and dies before finishing either: what a
 * SIGKILL inside a write leaves behind.
 */
function leaveTempsOfDeadWriter(outDir: string, spoolDir: string): void {
  const dist = path.resolve(path.dirname(BIN), '../dist');
  const script = `
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const path = await import('node:path');
    const { tempNameFor } = await import(${JSON.stringify(path.join(dist, 'stores/folder-store.js'))});
    const { thisProcess } = await import(${JSON.stringify(path.join(dist, 'owner.js'))});
    mkdirSync(${JSON.stringify(path.join(outDir, 'batch0/p0000'))}, { recursive: true });
    writeFileSync(tempNameFor(${JSON.stringify(path.join(outDir, 'batch0/p0000/thumb.webp'))}), 'half a webp');
    mkdirSync(${JSON.stringify(spoolDir)}, { recursive: true });
    writeFileSync(path.join(${JSON.stringify(spoolDir)}, 'input-' + thisProcess + '-0123456789abcdef'), 'half an input');
    process.kill(process.pid, 'SIGKILL');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script]);
  expect({ signal: r.signal, stderr: String(r.stderr) }).toEqual({ signal: 'SIGKILL', stderr: '' });
  expect(listFiles(outDir).filter((f) => path.basename(f).endsWith('.mediaflow-tmp')).length).toBeGreaterThan(0);
}

const reports: Record<string, CrashReport> = {};
afterAll(() => {
  for (const [name, r] of Object.entries(reports)) console.log(`[reliability] crash ${name}: ${JSON.stringify(r)}`);
});

describe('crash: SIGKILL at random points, folder source', () => {
  let ws: ReturnType<typeof workspace>;
  beforeAll(() => { ws = workspace('mf-crash-'); });
  afterEach(() => ws.cleanup());

  it(`every input rendered completely, once, across ${KILLS} kills`, async () => {
    const started = Date.now();
    const rnd = prng(seedFor('crash folder'));
    const BACKLOG = 300;
    const LATE = 60; // dropped while the service is down, after the second kill
    const inputs = new Map<string, Buffer>();
    for (let i = 0; i < BACKLOG; i++) {
      const data = await smallJpeg(i);
      const name = `batch${i % 5}/p${String(i).padStart(4, '0')}.jpg`;
      mkdirSync(path.dirname(path.join(ws.inbox, name)), { recursive: true });
      writeFileSync(path.join(ws.inbox, name), data);
      inputs.set(name, data);
    }
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 100 }, steps,
      output: { type: 'folder', path: './out' }, retry: { attempts: 3, backoffMs: 100 },
    });

    const inFlight = await crashLoop({
      cwd: ws.root, data: 'data', total: BACKLOG + LATE, rnd,
      afterKill: async (kill) => {
        // The kills land inside a write only sometimes: what one leaves is also made for sure, by a writer that dies.
        if (kill === KILLS) leaveTempsOfDeadWriter(ws.out, path.join(ws.data, 'tmp'));
        if (kill !== 2) return;
        for (let i = BACKLOG; i < BACKLOG + LATE; i++) {
          const data = await smallJpeg(i);
          const name = `late/p${i}.jpg`;
          mkdirSync(path.join(ws.inbox, 'late'), { recursive: true });
          writeFileSync(path.join(ws.inbox, name), data);
          inputs.set(name, data);
        }
      },
    });

    const rows = ledgerRows(ws.data);
    const ledger = checkLedger(rows, inFlight, inputs.size);
    for (const [name, data] of inputs) {
      const base = path.join(ws.out, name.replace(/\.jpg$/, ''));
      await checkOutputs(data, readFileSync(path.join(base, 'thumb.webp')), readFileSync(path.join(base, 'meta.json')));
    }
    const files = listFiles(ws.out);
    const temps = files.filter((f) => path.basename(f).startsWith('.'));
    // Two outputs per input and nothing else under a real name.
    expect(files.filter((f) => !path.basename(f).startsWith('.'))).toHaveLength(inputs.size * 2);
    // One restart after the kills, the backlog done: no temp file and no spooled input is left, without waiting for any timeout.
    expect(temps).toEqual([]);
    expect(listFiles(path.join(ws.data, 'tmp'))).toEqual([]);
    reports.folder = {
      inputs: inputs.size, kills: KILLS, inFlight: [...inFlight.values()].reduce((a, b) => a + b, 0), ...ledger,
      leftoverTemps: temps.length, seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  }, 180_000);
});

describe('crash: SIGKILL while completion events wait for their receiver', () => {
  let ws: ReturnType<typeof workspace>;
  beforeAll(() => { ws = workspace('mf-crash-notify-'); });
  afterEach(() => ws.cleanup());

  it('every input\'s completion event is delivered after the restart, under one event id', async () => {
    const N = 30;
    let accept = false;
    const received: { id: string; subject: string; status: number }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = accept ? 200 : 503;
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { subject: string };
        received.push({ id: String(req.headers['x-mediaflow-event-id']), subject: body.subject, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      for (let i = 0; i < N; i++) writeFileSync(path.join(ws.inbox, `p${i}.jpg`), await smallJpeg(i));
      writePipeline(path.join(ws.root, 'pipelines'), {
        name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 }, steps, output: { type: 'folder', path: './out' },
        notify: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, attempts: 5, backoffMs: 60_000 },
      });
      const env = { MEDIAFLOW_NOTIFY_SECRET: 'crash-test-secret' };
      const first = new RunningService(['--data', 'data'], ws.root, env);
      try {
        await waitFor('every input done and its event refused once', () =>
          ledgerCounts(ws.data).done === N && new Set(received.map((r) => r.subject)).size === N, 60_000);
        first.kill('SIGKILL');
        expect((await first.exited()).signal).toBe('SIGKILL');
      } finally {
        first.kill('SIGKILL');
      }
      accept = true;
      const second = new RunningService(['--data', 'data'], ws.root, env);
      try {
        await waitFor('every event delivered', () => new Set(received.filter((r) => r.status === 200).map((r) => r.subject)).size === N, 60_000);
        second.kill('SIGTERM');
        expect((await second.exited()).code).toBe(0);
      } finally {
        second.kill('SIGKILL');
      }
      // Sent again, not made again: one event id per input, the same before and after the kill.
      const ids = new Map<string, Set<string>>();
      for (const r of received) ids.set(r.subject, (ids.get(r.subject) ?? new Set()).add(r.id));
      expect([...ids.values()].every((set) => set.size === 1)).toBe(true);
      expect(received.filter((r) => r.status === 200)).toHaveLength(N);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  }, 180_000);
});

describe('crash: SIGKILL while inputs complete, two pipelines an input', () => {
  let ws: ReturnType<typeof workspace>;
  beforeAll(() => { ws = workspace('mf-crash-complete-'); });
  afterEach(() => ws.cleanup());

  // An input completes when its second job ends: that end and the event's outbox row commit together,
  // so a kill anywhere leaves either neither (the job runs again) or both (the event is sent at the restart).
  it('every input gets one completion event, under one id, whatever the kills cut', async () => {
    const N = 80;
    const received: { id: string; subject: string; pipelines: string[] }[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { subject: string; data: { pipelines: { pipeline: string }[] } };
        received.push({ id: String(req.headers['x-mediaflow-event-id']), subject: body.subject, pipelines: body.data.pipelines.map((p) => p.pipeline).sort() });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      for (let i = 0; i < N; i++) writeFileSync(path.join(ws.inbox, `p${String(i).padStart(3, '0')}.jpg`), await smallJpeg(1000 + i));
      const notify = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, attempts: 5, backoffMs: 200 };
      const source = { type: 'folder', path: './inbox', stableMs: 50 };
      writePipeline(path.join(ws.root, 'pipelines'), { name: 'thumbs', source, steps: [steps[0]], output: { type: 'folder', path: './out/thumbs' }, notify });
      writePipeline(path.join(ws.root, 'pipelines'), { name: 'meta', source, steps: [steps[1]], output: { type: 'folder', path: './out/meta' }, notify });
      const inFlight = await crashLoop({ cwd: ws.root, data: 'data', total: 2 * N, rnd: prng(seedFor('crash-complete')), env: { MEDIAFLOW_NOTIFY_SECRET: 'crash-test-secret' } });
      // The last run stopped gracefully once every job was done; what it had not sent, it sent before stopping or left in the outbox.
      const again = new RunningService(['--data', 'data'], ws.root, { MEDIAFLOW_NOTIFY_SECRET: 'crash-test-secret' });
      try {
        await again.ready();
        await waitFor('an event for every input', () => new Set(received.map((r) => r.subject)).size === N, 60_000);
        expect(await again.stop()).toBe(0);
      } finally {
        again.kill('SIGKILL');
      }
      const ids = new Map<string, Set<string>>();
      for (const r of received) ids.set(r.subject, (ids.get(r.subject) ?? new Set()).add(r.id));
      // None lost, none made twice: a delivery cut by a kill may come again, with the same id.
      expect([...ids.entries()].filter(([, set]) => set.size !== 1)).toEqual([]);
      expect(received.every((r) => r.pipelines.join() === 'meta,thumbs')).toBe(true);
      console.log(`[reliability] crash complete: ${JSON.stringify({ inputs: N, kills: KILLS, jobsRunningAtKills: inFlight.size, deliveries: received.length, events: ids.size })}`);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  }, 240_000);
});

describeMinio('crash: SIGKILL at random points, bucket source to bucket output', () => {
  let server: MinioServer;
  let ws: ReturnType<typeof workspace>;
  let src: string;
  let out: string;

  beforeAll(async () => {
    server = await startMinio();
    ws = workspace('mf-crash-bucket-');
    [src, out] = await makeBuckets(server.client, 'crash-src', 'crash-out');
  });
  afterAll(async () => {
    ws?.cleanup();
    await stopMinio(server, [src, out], { ignoreRemoveErrors: true });
  });

  const get = async (bucket: string, key: string): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of await server.client.getObject(bucket, key)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };

  it(`every object rendered completely, once, across ${KILLS} kills`, async () => {
    const started = Date.now();
    const rnd = prng(seedFor('crash bucket'));
    const BACKLOG = 200;
    const LATE = 40; // uploaded while the service is down, after the second kill
    const inputs = new Map<string, Buffer>();
    const upload = async (i: number) => {
      const data = await smallJpeg(10_000 + i);
      const key = `photos/p${String(i).padStart(4, '0')}.jpg`;
      await server.client.putObject(src, key, data, data.length, { 'Content-Type': 'image/jpeg' });
      inputs.set(key, data);
    };
    for (let i = 0; i < BACKLOG; i++) await upload(i);
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'uploads', source: { type: 'bucket', bucket: src, prefix: 'photos/' }, steps,
      output: { type: 'bucket', bucket: out, prefix: 'derived/' }, retry: { attempts: 3, backoffMs: 100 },
    });

    const inFlight = await crashLoop({
      cwd: ws.root, data: 'data', total: BACKLOG + LATE, rnd, env: minioEnv(server),
      afterKill: async (kill) => {
        if (kill === 2) for (let i = BACKLOG; i < BACKLOG + LATE; i++) await upload(i);
      },
    });

    const ledger = checkLedger(ledgerRows(ws.data), inFlight, inputs.size);
    for (const [key, data] of inputs) {
      const base = `derived/${key.slice('photos/'.length).replace(/\.jpg$/, '')}`;
      await checkOutputs(data, await get(out, `${base}/thumb.webp`), await get(out, `${base}/meta.json`));
    }
    const keys: string[] = [];
    for await (const o of server.client.listObjectsV2(out, '', true)) keys.push((o as { name: string }).name);
    expect(keys).toHaveLength(inputs.size * 2);
    reports.bucket = {
      inputs: inputs.size, kills: KILLS, inFlight: [...inFlight.values()].reduce((a, b) => a + b, 0), ...ledger,
      leftoverTemps: 0, seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  }, 180_000);
});
