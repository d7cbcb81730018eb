/**
 * NATS JetStream for the NATS source tests: the machine's server
 * (MEDIAFLOW_TEST_NATS, default nats://127.0.0.1:4222), each test with a
 * stream and consumer of its own (removed afterwards), and a nats-server of
 * a test's own on a free port for the tests that restart it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino, type Logger } from 'pino';
import { describeNeeding } from './needs-server.js';
import { freePort, waitForPort } from './own-servers.js';

export const NATS_URL = process.env.MEDIAFLOW_TEST_NATS ?? 'nats://127.0.0.1:4222';
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

let reachable: string | null | undefined;
function unreachable(): string | null {
  if (reachable !== undefined) return reachable;
  // In a child: describe() must decide synchronously.
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { connect } from '@nats-io/transport-node';
    import { jetstreamManager } from '@nats-io/jetstream';
    const nc = await connect({ servers: ${JSON.stringify(NATS_URL)}, reconnect: false, timeout: 3000 });
    await jetstreamManager(nc);
    await nc.close();`], { encoding: 'utf8', cwd: process.cwd(), timeout: 10_000 });
  reachable = probe.status === 0 ? null : (probe.stderr.trim().split('\n').filter((l) => /Error/.test(l))[0] ?? `exit ${probe.status}`);
  return reachable;
}

/** describe() for suites that need NATS with JetStream (see describeNeeding). */
export function describeNats(name: string, fn: () => void): void {
  const why = unreachable();
  describeNeeding('a NATS server with JetStream', why === null ? null : `No NATS JetStream at ${NATS_URL}: ${why} (set MEDIAFLOW_TEST_NATS)`, name, fn);
}

/** describe() for suites that start a nats-server of their own. */
export function describeOwnNats(name: string, fn: () => void): void {
  describeNeeding('the nats-server binary', existsSync(NATS_SERVER_BIN) ? null : `${NATS_SERVER_BIN} is missing (set NATS_SERVER_BIN)`, name, fn);
}

/** A stream or consumer name of its own: no dots, stars or spaces. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export interface Nats { nc: NatsConnection; jsm: JetStreamManager; close(): Promise<void> }

/** A connection of the test's own (to publish, create streams, look at consumers). */
export async function natsClient(servers = NATS_URL): Promise<Nats> {
  const nc = await connect({ servers, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  const jsm = await jetstreamManager(nc);
  return { nc, jsm, close: () => nc.close() };
}

/** A stream of the test's own on `subject`; remove() deletes it (and its consumers). */
export async function makeStream(jsm: JetStreamManager, subject: string, name = uniqueName('mf_test')): Promise<{ name: string; remove(): Promise<void> }> {
  await jsm.streams.add({ name, subjects: [subject] });
  return { name, remove: async () => { await jsm.streams.delete(name).catch(() => {}); } };
}

/** One line a memoryLogger wrote (pino levels: 20 debug, 30 info, 40 warn, 50 error). */
export interface Logged { level: number; msg: string; [field: string]: unknown }

/** A logger that keeps what it writes, to look at what was logged. */
export function memoryLogger(level = 'debug'): { logger: Logger; logged: Logged[] } {
  const logged: Logged[] = [];
  const logger = pino({ level }, { write: (line: string) => { logged.push(JSON.parse(line) as Logged); } });
  return { logger, logged };
}

export interface OwnNats {
  url: string;
  port: number;
  /** SIGKILL: a crash, not a clean shutdown. */
  down(): Promise<void>;
  /** Starts it again on the same port and store dir. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** nats-server -js on a free port of 127.0.0.1, its store in a temporary folder removed by stop(). */
export async function startOwnNats(): Promise<OwnNats> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-nats-'));
  let child: ChildProcess | null = null;
  const launch = async () => {
    const c = spawn(NATS_SERVER_BIN, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
    child = c;
    // Never left behind: a vitest worker ended by a signal runs no afterAll.
    spawn('sh', ['-c', 'while kill -0 "$1" && kill -0 "$2"; do sleep 1; done 2>/dev/null; kill -0 "$1" 2>/dev/null || kill -9 "$2" 2>/dev/null',
      'nats-watchdog', String(process.pid), String(c.pid)], { stdio: 'ignore', detached: true }).unref();
    await waitForPort(port);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    down: kill,
    up: launch,
    async stop() { await kill(); rmSync(dir, { recursive: true, force: true }); },
  };
}
