/**
 * Dependency faults while `mediaflow run` works: MinIO killed and restarted,
 * the output folder turned read-only (a tmpfs remounted ro), the output disk
 * full (a tiny tmpfs). Jobs retry or become dead letters with a clear error,
 * none is lost, the service stays up and recovers.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { mediaflow } from '../helpers/cli.js';
import { describeMinio, makeBuckets, minioEnv, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import {
  decodeStrict, describeMount, ledgerCounts, ledgerRows, listFiles, mountTmpfs, RunningService, sha256, smallJpeg, suiteReports, writePipeline,
  type Tmpfs,
} from './harness.js';

const steps = [
  { id: 'thumb', use: 'thumbnail', width: 24, format: 'webp' },
  { id: 'meta', use: 'metadata' },
];

const reports = suiteReports('fault');

async function healthy(svc: RunningService): Promise<boolean> {
  if (!svc.alive || !svc.url) return false;
  const res = await fetch(`${svc.url}/healthz`, { signal: AbortSignal.timeout(5000) });
  return res.status === 200;
}

const settled = (data: string, total: number) => () => {
  const c = ledgerCounts(data);
  return c.done + c.dead === total && c.queued + c.running + c.failed === 0 ? c : null;
};

/** Dead letters are replayed with the CLI (another process), as a user would once the fault is gone. */
function retryDeadLetters(cwd: string): void {
  const r = mediaflow(['dlq', 'retry', '--all', '--data', 'data'], cwd);
  expect(r.code, r.stderr).toBe(0);
}

/** Every input's outputs are whole and right, and nothing else has a real (non-dot) name; returns the dot-named temp files left. */
async function checkFolderOutputs(out: string, inputs: Map<string, Buffer>): Promise<string[]> {
  for (const [name, data] of inputs) {
    const base = path.join(out, name.replace(/\.jpg$/, ''));
    expect(await decodeStrict(readFileSync(path.join(base, 'thumb.webp')))).toEqual({ width: 24, height: 16 });
    expect(JSON.parse(readFileSync(path.join(base, 'meta.json'), 'utf8')).sha256).toBe(sha256(data));
  }
  const files = listFiles(out);
  const temps = files.filter((f) => path.basename(f).startsWith('.'));
  for (const t of temps) expect(path.basename(t)).toMatch(/^\..+\.[0-9a-f]{12}\.mediaflow-tmp$/);
  expect(files.filter((f) => !temps.includes(f)).sort())
    .toEqual([...inputs.keys()].flatMap((n) => [`${n.replace(/\.jpg$/, '')}/meta.json`, `${n.replace(/\.jpg$/, '')}/thumb.webp`]).sort());
  return temps;
}

async function fillInbox(inbox: string, n: number, offset: number): Promise<Map<string, Buffer>> {
  const inputs = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const data = await smallJpeg(offset + i);
    writeFileSync(path.join(inbox, `p${i}.jpg`), data);
    inputs.set(`p${i}.jpg`, data);
  }
  return inputs;
}

describeMount('output folder faults (real tmpfs mounts)', () => {
  let ws: ReturnType<typeof workspace>;
  let fs: Tmpfs | null = null;
  let svc: RunningService | null = null;

  afterEach(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    svc = null;
    fs?.unmount();
    fs = null;
    ws?.cleanup();
  });

  it('read-only output (tmpfs remounted ro, then rw): jobs retry with EROFS, none lost', async () => {
    ws = workspace('mf-fault-ro-');
    fs = mountTmpfs(ws.out, '64m');
    const N = 200;
    const inputs = await fillInbox(ws.inbox, N, 20_000);
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 }, steps,
      output: { type: 'folder', path: './out' }, retry: { attempts: 20, backoffMs: 100, maxBackoffMs: 1000 },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root);
    await svc.ready();
    await waitFor('20 done', () => ledgerCounts(ws.data).done >= 20, 60_000);
    fs.remount('ro');
    const failing = await waitFor('a job failing on the read-only output', () =>
      ledgerRows(ws.data).find((r) => r.state === 'failed' && /EROFS|read-only/i.test(r.error ?? '')), 30_000, 20);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await healthy(svc)).toBe(true);
    const doneWhileReadOnly = ledgerCounts(ws.data).done;
    // Every failure names the real cause (Node's recursive mkdir alone would say ENOENT).
    const errors = ledgerRows(ws.data).filter((r) => r.state === 'failed').map((r) => r.error);
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/^EROFS: read-only file system, (open|mkdir) /);
    fs.remount('rw');

    let c = await waitFor('all settled', settled(ws.data, N), 90_000, 50);
    const deadBeforeReplay = c.dead;
    if (c.dead > 0) {
      for (const r of ledgerRows(ws.data).filter((row) => row.state === 'dead')) expect(r.error).toMatch(/EROFS|read-only/i);
      retryDeadLetters(ws.root);
      c = await waitFor('all done after dlq retry', settled(ws.data, N), 90_000, 50);
    }
    expect(c.done).toBe(N);
    // A rename refused by the read-only remount leaves its temp file (its unlink is refused too): a dot-file, never a real name.
    const leftoverTemps = await checkFolderOutputs(ws.out, inputs);
    const rows = ledgerRows(ws.data);
    expect(await svc.stop()).toBe(0);
    reports.readOnly = {
      leftoverTemps: leftoverTemps.length,
      inputs: N, error: failing.error, doneWhileReadOnly, retried: rows.filter((r) => r.attempts > 1).length,
      extraAttempts: rows.reduce((a, r) => a + r.attempts - 1, 0), deadBeforeReplay, done: c.done,
    };
  }, 150_000);

  it('disk full (1 MiB tmpfs): ENOSPC dead letters with a clear error, no partial files; dlq retry after growing it', async () => {
    ws = workspace('mf-fault-full-');
    fs = mountTmpfs(ws.out, '1m'); // tmpfs counts whole 4 KiB pages: about 120 inputs' outputs fit
    const N = 200;
    const inputs = await fillInbox(ws.inbox, N, 30_000);
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 }, steps,
      output: { type: 'folder', path: './out' }, retry: { attempts: 2, backoffMs: 100 },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root);
    await svc.ready();
    const full = await waitFor('all settled on the full disk', settled(ws.data, N), 90_000, 50);
    expect(full.dead).toBeGreaterThan(0);
    const dead = ledgerRows(ws.data).filter((r) => r.state === 'dead');
    for (const r of dead) expect(r.error).toMatch(/ENOSPC: no space left on device/);
    // What did get written is whole: every output present decodes; failed writes left no temp file.
    const present = listFiles(ws.out);
    expect(present.filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
    for (const f of present.filter((f) => f.endsWith('.webp'))) await decodeStrict(readFileSync(path.join(ws.out, f)));
    for (const f of present.filter((f) => f.endsWith('.json'))) JSON.parse(readFileSync(path.join(ws.out, f), 'utf8'));
    expect(await healthy(svc)).toBe(true);

    fs.remount('size=16m');
    retryDeadLetters(ws.root);
    const c = await waitFor('all done after growing the disk', settled(ws.data, N), 90_000, 50);
    expect(c).toMatchObject({ done: N, dead: 0 });
    expect(await checkFolderOutputs(ws.out, inputs)).toEqual([]);
    expect(await svc.stop()).toBe(0);
    reports.diskFull = {
      inputs: N, doneOnFullDisk: full.done, deadLetters: full.dead, error: dead[0]!.error, outputsPresentWhenFull: present.length, doneAfterReplay: c.done,
    };
  }, 150_000);
});

const external = Boolean(process.env.MINIO_ENDPOINT);

describeMinio('MinIO killed and restarted mid-run', () => {
  let server: MinioServer;
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | null = null;
  let src: string;
  let out: string;

  beforeAll(async () => {
    server = await startMinio();
    ws = workspace('mf-fault-minio-');
    [src, out] = await makeBuckets(server.client, 'fault-src', 'fault-out');
  });
  afterAll(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    ws?.cleanup();
    await stopMinio(server, [src, out], { ignoreRemoveErrors: true });
  });

  /** The MinIO process this harness started, found by its listen address (ours alone). */
  function minioPid(): number {
    const address = `127.0.0.1:${new URL(server.endpoint).port}`;
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (path.basename(argv[0] ?? '') === 'minio' && argv.includes(address)) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
    throw new Error(`no minio process listening on ${address}`);
  }

  it.skipIf(external)('jobs retry through a 3 s outage; uploads after the restart are processed too', async () => {
    const inputs = new Map<string, Buffer>();
    const upload = async (i: number) => {
      const data = await smallJpeg(40_000 + i);
      const key = `in/p${i}.jpg`;
      await server.client.putObject(src, key, data, data.length, { 'Content-Type': 'image/jpeg' });
      inputs.set(key, data);
    };
    for (let i = 0; i < 150; i++) await upload(i);
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'uploads', source: { type: 'bucket', bucket: src, reconcileIntervalMs: 2000 }, steps,
      output: { type: 'bucket', bucket: out }, retry: { attempts: 10, backoffMs: 200, maxBackoffMs: 2000 },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root, minioEnv(server));
    await svc.ready();
    await waitFor('20 done', () => ledgerCounts(ws.data).done >= 20, 60_000);

    process.kill(minioPid(), 'SIGKILL');
    const downAt = Date.now();
    const failing = await waitFor('a job failing while MinIO is down', () =>
      ledgerRows(ws.data).find((r) => r.state === 'failed' && r.error), 30_000, 20);
    while (Date.now() - downAt < 3000) await new Promise((r) => setTimeout(r, 100));
    expect(await healthy(svc)).toBe(true);
    const ready = await fetch(`${svc.url}/readyz`).then((r) => r.status);
    const doneWhileDown = ledgerCounts(ws.data).done;
    await server.restart(); // same port, same data: the kill above already stopped it

    for (let i = 150; i < 180; i++) await upload(i);
    let c = await waitFor('all settled', settled(ws.data, inputs.size), 120_000, 100);
    const deadBeforeReplay = c.dead;
    if (c.dead > 0) {
      retryDeadLetters(ws.root);
      c = await waitFor('all done after dlq retry', settled(ws.data, inputs.size), 90_000, 100);
    }
    expect(c.done).toBe(inputs.size);
    for (const [key, data] of inputs) {
      const base = key.replace(/\.jpg$/, '');
      const chunks: Buffer[] = [];
      for await (const ch of await server.client.getObject(out, `${base}/meta.json`)) chunks.push(ch as Buffer);
      expect(JSON.parse(Buffer.concat(chunks).toString('utf8')).sha256).toBe(sha256(data));
      await server.client.statObject(out, `${base}/thumb.webp`);
    }
    const rows = ledgerRows(ws.data);
    expect(await svc.stop()).toBe(0);
    reports.minioRestart = {
      inputs: inputs.size, outageMs: 3000, error: failing.error, readyzWhileDown: ready, doneWhileDown,
      retried: rows.filter((r) => r.attempts > 1).length, deadBeforeReplay, done: c.done,
    };
  }, 180_000);
});
