// A local MinIO for the bucket benchmarks, started the way the test harness
// (test/helpers/minio.ts) does: the binary that `npm run setup:minio` builds
// into .cache/bin/minio, a temporary data folder, 127.0.0.1 only. With
// MINIO_ENDPOINT (+ MINIO_ACCESS_KEY, MINIO_SECRET_KEY) set, that server is
// used instead. startMinio() throws with the reason when neither is there.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as Minio from 'minio';
import { ROOT, sleep, spawnChild } from './common.js';

export const MINIO_BIN = path.join(ROOT, '.cache/bin/minio');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function clientFor(endpoint, accessKey, secretKey) {
  const url = new URL(endpoint);
  return new Minio.Client({ endPoint: url.hostname, port: Number(url.port || 80), useSSL: url.protocol === 'https:', accessKey, secretKey });
}

export async function startMinio() {
  if (process.env.MINIO_ENDPOINT) {
    const { MINIO_ENDPOINT: endpoint, MINIO_ACCESS_KEY: accessKey, MINIO_SECRET_KEY: secretKey } = process.env;
    return { endpoint, accessKey, secretKey, external: true, client: clientFor(endpoint, accessKey, secretKey), pid: null, stop: async () => {} };
  }
  if (!existsSync(MINIO_BIN)) {
    throw new Error(`no MinIO: ${path.relative(ROOT, MINIO_BIN)} is missing (build it with \`npm run setup:minio\`, Go needed) and MINIO_ENDPOINT is not set`);
  }
  const accessKey = 'mediaflow-bench';
  const secretKey = `secret-${randomUUID()}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-bench-minio-'));
  const port = await freePort();
  const consolePort = await freePort();
  const proc = spawnChild(MINIO_BIN, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`], {
    env: { MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_API_SYNC_EVENTS: 'on', MINIO_BROWSER: 'off' },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (!proc.alive) throw new Error(`minio exited before it was ready:\n${proc.tail}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/minio/health/live`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await proc.stop('SIGKILL'); throw new Error(`minio not live on port ${port} within 60 s:\n${proc.tail}`); }
    await sleep(100);
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint, accessKey, secretKey, external: false, pid: proc.pid, client: clientFor(endpoint, accessKey, secretKey),
    async stop() {
      await proc.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Environment for a mediaflow child that talks to this server. */
export const minioEnv = (m) => ({ MINIO_ENDPOINT: m.endpoint, MINIO_ACCESS_KEY: m.accessKey, MINIO_SECRET_KEY: m.secretKey });

export const bucketName = (label) => `bench-${label}-${randomUUID().slice(0, 8)}`;

/** Empties and removes a bucket (a missing one is fine). */
export async function removeBucket(client, name) {
  if (!(await client.bucketExists(name).catch(() => false))) return;
  let batch = [];
  for await (const item of client.listObjectsV2(name, '', true)) {
    if (item.name) batch.push(item.name);
    if (batch.length === 1000) { await client.removeObjects(name, batch); batch = []; }
  }
  if (batch.length) await client.removeObjects(name, batch);
  await client.removeBucket(name);
}

/** Runs fn over items with `parallel` in flight. */
export async function pool(items, parallel, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < items.length) { const i = next++; await fn(items[i], i); }
  }));
}
