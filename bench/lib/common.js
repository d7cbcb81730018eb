// Shared helpers for the benchmark scripts: machine facts, load average,
// statistics, tables, result files, processes and output folders.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS = path.join(ROOT, 'bench/results');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function envInt(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Expected \`${name}\` to be an integer >= 1, got \`${v}\``);
  return n;
}

/** 1-, 5- and 15-minute load averages, rounded. */
export function load() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

/** Waits (up to maxWaitMs) for the 1-minute load average to drop below `below`; returns the load seen. */
export async function waitForQuiet(below = Number(process.env.BENCH_QUIET_LOAD ?? 1.5), maxWaitMs = Number(process.env.BENCH_QUIET_WAIT_MS ?? 120_000)) {
  const deadline = Date.now() + maxWaitMs;
  while (os.loadavg()[0] >= below && Date.now() < deadline) await sleep(5000);
  return load();
}

export function machine() {
  const cpus = os.cpus();
  let libvipsTools = null;
  try { libvipsTools = execFileSync('vipsthumbnail', ['--vips-version'], { encoding: 'utf8' }).trim(); } catch { /* not installed */ }
  let sharpVersions = null;
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/sharp/package.json'), 'utf8'));
    sharpVersions = pkg.version;
  } catch { /* no sharp */ }
  return {
    cpu: cpus[0]?.model ?? 'unknown', cores: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(), node: process.version, sharp: sharpVersions, vipsthumbnail: libvipsTools,
  };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

export const round = (x, digits = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x);

/** Prints an aligned text table (first row: headers). */
export function printTable(title, headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => (c === undefined || c === null ? '-' : String(c))));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

/** Writes bench/results/NAME.json (and a timestamped copy) with machine facts. */
export async function saveResult(name, data) {
  await mkdir(RESULTS, { recursive: true });
  const doc = { benchmark: name, at: new Date().toISOString(), machine: machine(), ...data };
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  await writeFile(path.join(RESULTS, `${name}.json`), text);
  await writeFile(path.join(RESULTS, `${name}-${doc.at.replace(/[:.]/g, '-')}.json`), text);
  console.log(`\nwrote bench/results/${name}.json`);
  return doc;
}

export async function tempDir(label) {
  const base = process.env.BENCH_TMP ?? os.tmpdir();
  return mkdtemp(path.join(base, `mediaflow-bench-${label}-`));
}

export async function removeDir(dir) {
  if (dir && !process.env.BENCH_KEEP) await rm(dir, { recursive: true, force: true });
}

/** Visible (non-dot) file names in dir, recursively, relative. */
export async function listFiles(dir) {
  const out = [];
  async function walk(d, rel) {
    let entries;
    try { entries = await readdir(d, { withFileTypes: true }); } catch (err) { if (err.code === 'ENOENT') return; throw err; }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) await walk(path.join(d, e.name), rel ? `${rel}/${e.name}` : e.name);
      else out.push(rel ? `${rel}/${e.name}` : e.name);
    }
  }
  await walk(dir, '');
  return out;
}

/**
 * Polls `dir` until it holds `count` visible files (or none came for stallMs);
 * returns { firstMs, lastMs, count }
 * as wall-clock times from the outputs' mtimes (when each was last written),
 * so the poll interval does not add to the figure.
 */
export async function waitForOutputs(dir, count, { timeoutMs = 600_000, pollMs = 100, onProgress, alive, stallMs = 20_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let n = 0;
  let changedAt = Date.now();
  for (;;) {
    const now = (await listFiles(dir)).length;
    if (now !== n) { n = now; changedAt = Date.now(); }
    onProgress?.(n);
    if (n >= count) break;
    // A contender that lost events never finishes: stop waiting, the caller reports what is missing.
    if (n > 0 && Date.now() - changedAt > stallMs) break;
    if (alive && !alive()) throw new Error(`contender exited with ${n}/${count} outputs in ${dir}`);
    if (Date.now() > deadline) throw new Error(`timed out with ${n}/${count} outputs in ${dir}`);
    await sleep(pollMs);
  }
  // A writer that is not atomic (vipsthumbnail) has created the last file but may still be
  // writing it: wait until no output changes for settleMs; the mtimes say when each was written.
  const settleMs = 250;
  let firstMs;
  let lastMs = -1;
  for (;;) {
    let first = Infinity;
    let last = 0;
    for (const f of await listFiles(dir)) {
      const st = await stat(path.join(dir, f));
      first = Math.min(first, st.mtimeMs);
      last = Math.max(last, st.mtimeMs);
    }
    if (last === lastMs && Date.now() - last >= settleMs) { firstMs = first; break; }
    lastMs = last;
    await sleep(settleMs);
  }
  return { firstMs, lastMs, count: n };
}

/** Peak resident set (VmHWM) and current RSS of a live process, in MB, from /proc. */
export function memoryOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) ?? [])[1] ?? NaN);
    return { peakRssMb: round(kb('VmHWM') / 1024), rssMb: round(kb('VmRSS') / 1024) };
  } catch {
    return { peakRssMb: NaN, rssMb: NaN };
  }
}

/**
 * The whole machine's counters, from /proc/stat: CPU ticks (total, idle incl.
 * iowait, and steal: time the hypervisor gave this VM's vCPUs to someone
 * else) and context switches. machineSince(earlier) turns two readings into
 * shares of the interval and switches per item.
 */
export function machineCounters() {
  const text = readFileSync('/proc/stat', 'utf8');
  const f = text.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), idle: f[3] + f[4], steal: f[7] ?? 0, ctxt: Number(/^ctxt (\d+)/m.exec(text)?.[1] ?? NaN) };
}

export function machineSince(m0, items) {
  const m1 = machineCounters();
  const ticks = m1.total - m0.total;
  return { idle: (m1.idle - m0.idle) / ticks, steal: (m1.steal - m0.steal) / ticks, switchesPerItem: (m1.ctxt - m0.ctxt) / items };
}

/** CPU seconds (user+system) a live process has used, from /proc. */
export function cpuSecondsOf(pid) {
  return ticksOf(`/proc/${pid}/stat`);
}

/** CPU seconds of a process's main thread (the one running JavaScript): the rest is libuv's pool, libvips' and V8's helpers. */
export function mainThreadCpuSecondsOf(pid) {
  return ticksOf(`/proc/${pid}/task/${pid}/stat`);
}

function ticksOf(file) {
  try {
    const f = readFileSync(file, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (100/s on Linux)
  } catch {
    return NaN;
  }
}

// Children this process started (each in its own process group): ended when a
// benchmark is interrupted, so no watcher or MinIO is left behind.
const children = new Set();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    for (const pid of children) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
    process.exit(130);
  });
}

/**
 * Spawns a child in its own process group with stdout/stderr captured line by
 * line; `onLine(line, stream)` sees each. stop() sends SIGTERM to the group and
 * waits (SIGKILL after 20 s).
 */
export function spawnChild(cmd, args, { env, cwd = ROOT, onLine } = {}) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let tail = '';
  const hooks = new Set();
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  for (const [name, stream] of [['stdout', child.stdout], ['stderr', child.stderr]]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        tail = `${tail}${line}\n`.slice(-4000);
        onLine?.(line, name);
        for (const h of hooks) if (h(line, name)) hooks.delete(h);
      }
    });
  }
  const reap = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', reap);
  children.add(child.pid);
  child.once('exit', () => { children.delete(child.pid); process.removeListener('exit', reap); });
  return {
    child,
    pid: child.pid,
    exited,
    hooks,
    get alive() { return child.exitCode === null && child.signalCode === null; },
    get tail() { return tail; },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(-child.pid, signal); } catch { /* gone */ }
        const t = setTimeout(reap, 20_000);
        await exited;
        clearTimeout(t);
      }
      process.removeListener('exit', reap);
      return exited;
    },
  };
}

/** Resolves with test(line) for the first line where it is truthy; rejects on exit or timeout. */
export function waitForLine(proc, test, timeoutMs = 60_000, what = 'ready line') {
  return new Promise((resolve, reject) => {
    const hook = (line, stream) => {
      const v = test(line, stream);
      if (!v) return false;
      clearTimeout(timer);
      resolve(v);
      return true;
    };
    const timer = setTimeout(() => { proc.hooks.delete(hook); reject(new Error(`no ${what} within ${timeoutMs} ms:\n${proc.tail}`)); }, timeoutMs);
    proc.hooks.add(hook);
    proc.exited.then(({ code, signal }) => {
      if (!proc.hooks.has(hook)) return;
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? signal}) before ${what}:\n${proc.tail}`));
    });
  });
}

/** Installs Debian packages when a command is missing (apt-get; root). Returns null when ok, else the reason. */
export function ensureDebian(commands) {
  const missing = Object.entries(commands).filter(([cmd]) => !commandExists(cmd));
  if (missing.length === 0) return null;
  const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
  console.log(`installing ${pkgs.join(' ')} (apt-get) for ${missing.map(([c]) => c).join(', ')} ...`);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch (err) {
    return `apt-get install ${pkgs.join(' ')} failed: ${err.message}`;
  }
  const still = missing.filter(([cmd]) => !commandExists(cmd));
  return still.length ? `still missing after install: ${still.map(([c]) => c).join(', ')}` : null;
}

export function commandExists(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds dist/ unless BENCH_NO_BUILD is set (the CLI runs from dist/). */
export function buildOnce() {
  if (process.env.BENCH_NO_BUILD || buildOnce.done) return;
  console.log('building dist/ (npm run build) ...');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
  buildOnce.done = true;
  process.env.BENCH_NO_BUILD = '1'; // child bench scripts need not build again
}

export const JEMALLOC = ['/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2']
  .find((p) => existsSync(p)) ?? null;
