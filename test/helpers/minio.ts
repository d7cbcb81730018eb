import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as Minio from 'minio';
import { minioClientFromEnv } from '../../src/stores/minio-client.js';
import { describeNeeding } from './needs-server.js';
import { freePort } from './own-servers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MINIO_BIN = path.join(ROOT, '.cache/bin/minio');
/** Same file scripts/setup-minio.sh builds from, so the two never disagree. */
export const MINIO_VERSION = readFileSync(path.join(ROOT, 'scripts/minio-version'), 'utf8').trim();

export interface MinioServer {
  endpoint: string; // http://127.0.0.1:PORT
  accessKey: string;
  secretKey: string;
  client: Minio.Client;
  stop(): Promise<void>;
  /** Kill the server and start it again on the same port and data dir. */
  restart(): Promise<void>;
  /** True when MINIO_ENDPOINT pointed at a server this harness does not own. */
  external: boolean;
}

export function minioAvailable(): boolean {
  return Boolean(process.env.MINIO_ENDPOINT) || existsSync(MINIO_BIN);
}

function unavailableReason(): string {
  return `No MinIO server for the bucket tests: ${MINIO_BIN} is missing and MINIO_ENDPOINT is not set.\n` +
    `  Build it (Go needed, a few minutes once per machine):  npm run setup:minio\n` +
    `  or point the tests at a server:  MINIO_ENDPOINT=http://127.0.0.1:9000 MINIO_ACCESS_KEY=... MINIO_SECRET_KEY=...`;
}

/** describe() for suites that need MinIO (see describeNeeding). */
export function describeMinio(name: string, fn: () => void): void {
  describeNeeding('a MinIO server', minioAvailable() ? null : unavailableReason(), name, fn);
}

export async function startMinio(opts: { env?: Record<string, string> } = {}): Promise<MinioServer> {
  if (process.env.MINIO_ENDPOINT) return externalServer();
  if (!existsSync(MINIO_BIN)) throw new Error(unavailableReason());

  const accessKey = 'mediaflow-test';
  const secretKey = `secret-${randomUUID()}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-minio-'));
  const env = {
    ...process.env,
    MINIO_ROOT_USER: accessKey,
    MINIO_ROOT_PASSWORD: secretKey,
    // Without it MinIO may lose events on restart (see DESIGN.md "MinIO targets").
    MINIO_API_SYNC_EVENTS: 'on',
    MINIO_BROWSER: 'off',
    ...opts.env,
  };
  let port = 0;
  let proc: ChildProcess | null = null;
  const launch = async (apiPort: number) => {
    const consolePort = await freePort();
    proc = await spawnMinio(['server', dataDir, '--address', `127.0.0.1:${apiPort}`, '--console-address', `127.0.0.1:${consolePort}`], env, apiPort, dataDir);
  };
  // A free port can be taken by someone else before MinIO binds it: try again with new ones.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch(port);
      break;
    } catch (err) {
      if (attempt >= 3 || !/already in use/i.test(String(err))) {
        await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint, accessKey, secretKey, external: false,
    client: new Minio.Client({ endPoint: '127.0.0.1', port, useSSL: false, accessKey, secretKey }),
    async restart() {
      await kill(proc, 'SIGKILL'); // a crash, not a clean shutdown: that is what sources must survive
      await launch(port);
    },
    async stop() {
      await kill(proc, 'SIGTERM');
      proc = null;
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function externalServer(): MinioServer {
  const client = minioClientFromEnv(process.env);
  return {
    endpoint: process.env.MINIO_ENDPOINT!,
    accessKey: process.env.MINIO_ACCESS_KEY!,
    secretKey: process.env.MINIO_SECRET_KEY!,
    client,
    external: true,
    async stop() {
      // Not ours to stop; tests remove their own buckets.
    },
    async restart() {
      throw new Error(`cannot restart an external server (MINIO_ENDPOINT=${process.env.MINIO_ENDPOINT}); unset MINIO_ENDPOINT to use a local one`);
    },
  };
}

async function spawnMinio(args: string[], env: NodeJS.ProcessEnv, port: number, dataDir: string): Promise<ChildProcess> {
  const child = spawn(MINIO_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => { output = (output + b.toString()).slice(-8000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  // Never leave a server behind: a vitest worker ended by SIGTERM runs no 'exit'
  // handler, so a detached watchdog kills the server (and removes its data dir)
  // once this process is gone. It ends by itself when the server exits first.
  spawn('sh', ['-c', 'while kill -0 "$1" && kill -0 "$2"; do sleep 1; done 2>/dev/null; ' +
    'kill -0 "$1" 2>/dev/null || { kill -9 "$2"; rm -rf "$3"; } 2>/dev/null', 'minio-watchdog',
  String(process.pid), String(child.pid), dataDir], { stdio: 'ignore', detached: true }).unref();

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`minio exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/minio/health/live`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return child;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`minio did not become live on port ${port} within 60s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kill(proc: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}


/** A valid, unique bucket name: lower-case, 3-63 chars, `<prefix>-<uuid>`. */
export function uniqueBucket(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 26) || 'test';
  return `${clean}-${randomUUID()}`;
}

/** Empties and removes a bucket; a missing bucket is fine. */
export async function removeBucket(client: Minio.Client, name: string): Promise<void> {
  if (!(await client.bucketExists(name))) return;
  let batch: string[] = [];
  for await (const item of client.listObjectsV2(name, '', true) as AsyncIterable<Minio.BucketItem>) {
    if (item.name) batch.push(item.name);
    if (batch.length === 1000) {
      await client.removeObjects(name, batch);
      batch = [];
    }
  }
  if (batch.length) await client.removeObjects(name, batch);
  await client.removeBucket(name);
}

/** The environment that points mediaflow (the Service, `mediaflow run`) at this server. */
export function minioEnv(server: MinioServer): { MINIO_ENDPOINT: string; MINIO_ACCESS_KEY: string; MINIO_SECRET_KEY: string } {
  return { MINIO_ENDPOINT: server.endpoint, MINIO_ACCESS_KEY: server.accessKey, MINIO_SECRET_KEY: server.secretKey };
}

/**
 * Makes one new, empty bucket per prefix (named by uniqueBucket) and returns
 * their names in the same order. When one cannot be made, those already made
 * are removed again before the error is thrown, so none is left behind.
 */
export async function makeBuckets(client: Minio.Client, ...prefixes: string[]): Promise<string[]> {
  const made: string[] = [];
  try {
    for (const prefix of prefixes) {
      const name = uniqueBucket(prefix);
      await client.makeBucket(name);
      made.push(name);
    }
  } catch (err) {
    await removeBuckets(client, made).catch(() => {});
    throw err;
  }
  return made;
}

/**
 * removeBucket for each name (names never set, as after a failed beforeAll,
 * are passed over). Every one is tried even when another fails; then the
 * first failure is thrown (an AggregateError when several failed).
 */
export async function removeBuckets(client: Minio.Client, names: (string | undefined)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const name of names) {
    if (name === undefined) continue;
    await removeBucket(client, name).catch((err: unknown) => { errors.push(err); });
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} buckets could not be removed`);
}

/**
 * The teardown of a suite that started its own server: removes its buckets
 * (removeBuckets), then stops the server, which is stopped even when a removal
 * fails. Does nothing when startMinio never returned. A failed removal fails
 * the teardown unless `ignoreRemoveErrors` (for suites whose buckets need no
 * check, e.g. where a fault may leave the server unable to answer).
 */
export async function stopMinio(
  server: MinioServer | undefined, buckets: (string | undefined)[], opts: { ignoreRemoveErrors?: boolean } = {},
): Promise<void> {
  if (!server) return;
  try {
    await removeBuckets(server.client, buckets).catch((err: unknown) => {
      if (!opts.ignoreRemoveErrors) throw err;
    });
  } finally {
    await server.stop();
  }
}
