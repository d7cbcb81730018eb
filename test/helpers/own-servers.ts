/**
 * Servers of a test's own, for the tests that restart them: a Redis and a
 * PostgreSQL cluster on free ports of 127.0.0.1, in temporary folders,
 * removed afterwards. The machine's shared servers are never restarted.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface OwnRedis { url: string; down(): Promise<void>; up(): Promise<void>; stop(): Promise<void> }

/** redis-server on a free port, keeping nothing on disk (as the machine's does). */
export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-redis-'));
  let child: ChildProcess | null = null;
  const launch = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    await waitForPort(port);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    down: kill,
    up: launch,
    async stop() { await kill(); rmSync(dir, { recursive: true, force: true }); },
  };
}

export interface OwnPostgres { url: string; down(): Promise<void>; up(): Promise<void>; stop(): Promise<void> }

function pgBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort();
  return path.join('/usr/lib/postgresql', versions[versions.length - 1]!, 'bin', name);
}

/** A PostgreSQL cluster of its own (initdb as the postgres user: the server refuses to run as root), trust auth. */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mf-pg-'));
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  if (asPostgres.length) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()));
  const run = (bin: string, args: string[]) => {
    const [cmd, ...rest] = [...asPostgres, pgBin(bin), ...args];
    execFileSync(cmd!, rest, { stdio: 'ignore' });
  };
  run('initdb', ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = () => run('pg_ctl', ['-D', path.join(dir, 'data'), '-o', opts, '-l', path.join(dir, 'log'), '-w', 'start']);
  const stop = (mode: string) => { try { run('pg_ctl', ['-D', path.join(dir, 'data'), '-m', mode, '-w', 'stop']); } catch { /* already down */ } };
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    /** An immediate stop: connections cut, as a crash would. */
    async down() { stop('immediate'); },
    async up() { start(); },
    async stop() { stop('immediate'); rmSync(dir, { recursive: true, force: true }); },
  };
}
