/**
 * Shared parts of the reliability suite: the real `mediaflow run` as a child
 * process (logs parsed, memory read from /proc), the real ledger file, real
 * tmpfs mounts, and small synthetic images with distinct bytes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, describe, it } from 'vitest';
import { BIN, mediaflow } from '../helpers/cli.js';

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** A small deterministic PRNG (mulberry32), so a failing run can be replayed with RELIABILITY_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFor(name: string): number {
  const fromEnv = Number(process.env.RELIABILITY_SEED);
  const seed = Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.floor(Math.random() * 1e9) + 1;
  console.log(`[reliability] ${name}: seed ${seed} (replay with RELIABILITY_SEED=${seed})`);
  return seed;
}

/** A small JPEG whose pixels come from `i`: every i gives different bytes. */
export async function smallJpeg(i: number, width = 48, height = 32): Promise<Buffer> {
  const rnd = prng(i + 1);
  const raw = Buffer.alloc(width * height * 3);
  for (let p = 0; p < raw.length; p++) raw[p] = Math.floor(rnd() * 256);
  return sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

/** A 4x4 RGB PNG whose pixels encode `i` (built by hand: 10,000 of them take well under a second). */
export function tinyPng(i: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const w = 4;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(w, 4); ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  const stride = 1 + w * 3;
  const rows = Buffer.alloc(stride * w);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < w * 3; x++) rows[y * stride + 1 + x] = ((i >>> ((x % 4) * 8)) & 255) ^ ((x * 37 + y * 11) & 255);
  }
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

/** Decodes an image strictly: a truncated or corrupt file throws. */
export async function decodeStrict(data: Buffer | string): Promise<{ width: number; height: number }> {
  const { info } = await sharp(data, { failOn: 'warning' }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height };
}

export function writePipeline(dir: string, doc: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${String(doc.name)}.json`), JSON.stringify(doc, null, 2));
}

export interface LogLine { level: number; msg: string; [k: string]: unknown }

/**
 * `mediaflow run` as a user starts it: `node bin/mediaflow.js run ...` in its
 * own working directory, JSON logs on stdout. Keeps warnings and errors, the
 * last lines, and whether it said "mediaflow running".
 */
export class RunningService {
  readonly child: ChildProcess;
  readonly problems: LogLine[] = [];
  private tail: string[] = [];
  private partial = '';
  private readonly seen = new Map<string, number>();
  running = false;
  url: string | null = null;
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], readonly cwd: string, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [BIN, 'run', ...args], {
      cwd, env: { ...process.env, MEDIAFLOW_LOG_LEVEL: 'info', MEDIAFLOW_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exit = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdout!.on('data', (d: Buffer) => this.onData(String(d)));
    this.child.stderr!.on('data', (d: Buffer) => this.keep(`[stderr] ${String(d)}`));
  }

  private onData(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      this.keep(line);
      // Parse only what is looked at: warnings, errors and the start-up lines (a load test logs 30,000 others).
      if (!/"level":[4-6]\d|"msg":"(mediaflow running|http listening)"/.test(line)) continue;
      let entry: LogLine;
      try { entry = JSON.parse(line) as LogLine; } catch { continue; }
      this.seen.set(entry.msg, (this.seen.get(entry.msg) ?? 0) + 1);
      if (entry.msg === 'mediaflow running') this.running = true;
      if (entry.msg === 'http listening' && typeof entry.url === 'string') this.url = entry.url;
      if (entry.level >= 40 && this.problems.length < 5000) this.problems.push(entry);
    }
  }

  private keep(line: string): void {
    this.tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
    if (this.tail.length > 300) this.tail.splice(0, this.tail.length - 200);
  }

  /** How many warning/error log lines carried this message. */
  count(msg: string): number {
    return this.seen.get(msg) ?? 0;
  }

  logTail(n = 40): string {
    return this.tail.slice(-n).join('\n');
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.running) {
      if (!this.alive) throw new Error(`mediaflow run exited before it was running:\n${this.logTail()}`);
      if (Date.now() > deadline) throw new Error(`mediaflow run not running after ${timeoutMs} ms:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resident memory now and its peak (VmHWM), in MB, as the kernel counts it for this process. */
  memory(): { rssMb: number; peakMb: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exit;
  }

  /** SIGTERM, as a user's Ctrl-C / service manager would; resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), 30_000);
    const { code } = await this.exit;
    clearTimeout(timer);
    return code;
  }
}

export interface LedgerRow {
  id: number; pipeline: string; key: string; rel_key: string; version: string; state: string;
  attempts: number; error: string | null; sha256: string | null; outputs: string; deduplicated: number;
}

/** Reads the ledger file directly (as `mediaflow status` does, from another process). */
export function ledgerRows(dataDir: string): LedgerRow[] {
  const db = new Database(path.join(dataDir, 'ledger.sqlite'), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return db.prepare('SELECT id, pipeline, key, rel_key, version, state, attempts, error, sha256, outputs, deduplicated FROM jobs ORDER BY id').all() as LedgerRow[];
  } finally {
    db.close();
  }
}

export function ledgerCounts(dataDir: string): Record<string, number> {
  const counts: Record<string, number> = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0 };
  let db: Database.Database;
  try {
    db = new Database(path.join(dataDir, 'ledger.sqlite'), { fileMustExist: true });
  } catch {
    return counts; // not created yet
  }
  try {
    db.pragma('busy_timeout = 10000');
    for (const r of db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: string; n: number }[]) counts[r.state] = r.n;
    return counts;
  } catch {
    return counts; // table not created yet
  } finally {
    db.close();
  }
}

/** `mediaflow status --json`, the user's view of the same ledger. */
export function statusJson(cwd: string, dataDir = 'data'): { jobs: Record<string, number>; recentFailures: { key: string; error: string }[] } {
  const r = mediaflow(['status', '--json', '--data', dataDir], cwd);
  if (r.code !== 0) throw new Error(`mediaflow status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Every file below dir (relative paths, '/'-separated), dot-files included. */
export function listFiles(dir: string, rel = ''): string[] {
  let entries;
  try { entries = readdirSync(path.join(dir, rel), { withFileTypes: true }); } catch { return []; }
  const out: string[] = [];
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, r));
    else out.push(r);
  }
  return out;
}

// ---- real filesystem faults: tmpfs mounts (root only) ----

let mountChecked: boolean | null = null;

/** True when this process may mount a tmpfs (root, or a container with CAP_SYS_ADMIN). */
export function canMount(): boolean {
  if (mountChecked !== null) return mountChecked;
  const probe = path.join('/tmp', `mf-mount-probe-${process.pid}`);
  try {
    mkdirSync(probe, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    mountChecked = true;
  } catch {
    mountChecked = false;
  }
  try { execFileSync('rmdir', [probe], { stdio: 'pipe' }); } catch { /* already gone */ }
  return mountChecked;
}

/**
 * describe() for tests that mount a tmpfs: without the right to mount, CI
 * (CI=true) fails with the reason; locally the suite is skipped loudly.
 */
export function describeMount(name: string, fn: () => void): void {
  if (canMount()) {
    describe(name, fn);
    return;
  }
  const reason = 'these tests mount a tmpfs (read-only remount, disk full) and need root or CAP_SYS_ADMIN';
  if (process.env.CI === 'true') {
    describe(name, () => it('can mount a tmpfs', () => { throw new Error(reason); }));
  } else {
    process.stderr.write(`\n!! SKIPPING "${name}": ${reason}\n\n`);
    describe.skip(name, fn);
  }
}

export interface Tmpfs {
  dir: string;
  remount(options: string): void;
  unmount(): void;
}

export function mountTmpfs(dir: string, size: string): Tmpfs {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  let mounted = true;
  return {
    dir,
    /** The kernel refuses `ro` while a file is open for writing (EBUSY): try again until the writes in flight end. */
    remount(options: string) {
      for (let attempt = 1; ; attempt++) {
        try {
          execFileSync('mount', ['-o', `remount,${options}`, dir], { stdio: 'pipe' });
          return;
        } catch (err) {
          if (attempt >= 500 || !/busy/i.test(String((err as { stderr?: Buffer }).stderr ?? err))) throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
        }
      }
    },
    unmount() {
      if (!mounted) return;
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); // still busy: detach now, freed when the last user goes
      }
      mounted = false;
    },
  };
}

/**
 * What a suite measured, printed once after it (`[reliability] SUITE NAME: {...}`),
 * where docs/RELIABILITY.md's scorecard takes its numbers from.
 */
export function suiteReports(suite: string): Record<string, unknown> {
  const reports: Record<string, unknown> = {};
  afterAll(() => {
    for (const [name, r] of Object.entries(reports)) console.log(`[reliability] ${suite} ${name}: ${JSON.stringify(r)}`);
  });
  return reports;
}
