// Runs mediaflow as a user does: `bin/mediaflow run` (the launcher, which
// sets the allocator and execs node on bin/mediaflow.js, so the pid is
// node's) as a child process, with a bench pipeline file, its own data
// folder and a free port.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, spawnChild, waitForLine } from './common.js';

const BIN = path.join(ROOT, 'bin/mediaflow.js');

/**
 * The command that starts mediaflow from a checkout: its launcher, run with
 * this node first on PATH; `node bin/mediaflow.js` for a checkout from
 * before the launcher (A/B runs against older builds).
 */
export function mediaflowCommand(root = ROOT) {
  const launcher = path.join(root, 'bin/mediaflow');
  const env = { PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
  return existsSync(launcher) ? { cmd: launcher, args: [], env } : { cmd: process.execPath, args: [path.join(root, 'bin/mediaflow.js')], env };
}

/** sharp's own benchmark work: resize to 720x588, JPEG quality 80 (fit inside: the input is 2725x2225, same aspect). */
export const THUMB_STEP = { id: 'thumb', use: 'thumbnail', width: 720, height: 588, fit: 'inside', format: 'jpeg', quality: 80 };

/** Writes DIR/NAME.json and returns its path. */
export async function writePipeline(dir, pipeline) {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${pipeline.name}.json`);
  await writeFile(file, `${JSON.stringify({ version: 1, ...pipeline }, null, 2)}\n`);
  return file;
}

export function folderPipeline({ name = 'bench', inbox, out, stableMs, steps = [THUMB_STEP], key = '{name}.{ext}', extra = {} }) {
  return {
    name,
    source: { type: 'folder', path: inbox, include: ['**/*.jpg'], ...(stableMs !== undefined && { stableMs }) },
    steps,
    output: { type: 'folder', path: out, key },
    ...extra,
  };
}

const parse = (line) => {
  if (!line.startsWith('{')) return null;
  try { return JSON.parse(line); } catch { return null; }
};

/**
 * Starts `mediaflow run` and resolves once it logs "mediaflow running"
 * (with waitReady false: at once, with `ready` to await later). onLog(record)
 * sees every JSON log line. The handle carries the HTTP url (for /metrics).
 */
export async function startMediaflow({ pipelines, data, env = {}, args = [], onLog, readyTimeoutMs = 600_000, waitReady = true, root = ROOT }) {
  const spawnedAt = Date.now();
  // root: another checkout (its own built dist/), for A/B runs between builds.
  const command = mediaflowCommand(root);
  const proc = spawnChild(command.cmd, [...command.args, 'run', '--pipelines', pipelines, '--data', data, '--port', '0', ...args], {
    env: { MEDIAFLOW_LOG_LEVEL: 'info', ...command.env, ...env },
    onLine: onLog ? (line) => { const r = parse(line); if (r) onLog(r); } : undefined,
  });
  const urlP = waitForLine(proc, (line) => parse(line)?.msg === 'http listening' && parse(line).url, readyTimeoutMs, '"http listening" log line');
  const runningP = waitForLine(proc, (line) => parse(line)?.msg === 'mediaflow running', readyTimeoutMs, '"mediaflow running" log line');
  const ready = Promise.all([urlP, runningP]).then(([url]) => {
    proc.url = url;
    proc.startupMs = Date.now() - spawnedAt;
    return proc;
  });
  ready.catch(() => {});
  Object.assign(proc, { spawnedAt, ready });
  return waitReady ? ready : proc;
}

/** Counter values from /metrics, e.g. steps rendered and dedup hits. */
export async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sum = (name, labels = '') => text.split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels))
    .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    /** sharp work actually done: one per step rendered (dedup copies are not counted). */
    stepsRendered: sum('mediaflow_step_duration_seconds_count'),
    dedupHits: sum('mediaflow_dedup_hits_total'),
    jobsDone: sum('mediaflow_jobs_total', 'state="done"'),
  };
}

/** `mediaflow status --json --data DIR`, parsed. */
export async function status(data) {
  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'status', '--json', '--data', data], { cwd: ROOT });
  return JSON.parse(stdout);
}

/**
 * Reads progress straight from the ledger (SQLite, WAL: a second reader is
 * fine while `run` writes): jobs by state and when the first and last job
 * was marked done (right after its outputs were written), in ms since epoch.
 */
export async function openLedgerReader(data, timeoutMs = 60_000) {
  const { default: Database } = await import('better-sqlite3');
  const file = path.join(data, 'ledger.sqlite');
  const deadline = Date.now() + timeoutMs;
  let db;
  for (;;) {
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      db.prepare('SELECT 1 FROM jobs LIMIT 1').get();
      break;
    } catch (err) {
      db?.close();
      if (Date.now() > deadline) throw new Error(`cannot read ledger ${file}: ${err.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const jobQ = db.prepare('SELECT state, updated_at AS updatedAt, deduplicated FROM jobs WHERE key = ? ORDER BY id DESC LIMIT 1');
  return {
    /** The newest job for a source key: { state, updatedAt, deduplicated } or undefined. */
    job(key) { return jobQ.get(key); },
    progress: progressReader(db),
    close() { db.close(); },
  };
}

/**
 * A ledger with kept counts (migration 8) is read through them and the index
 * of ended jobs: a few rows a poll, where counting every job cost the
 * machine ~0.4 s a poll at 1,000,000 jobs, CPU the service being measured
 * did not get. An older ledger (a build compared with `root`) is counted.
 */
function progressReader(db) {
  const kept = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_counts'").get();
  if (!kept) {
    const q = db.prepare(`SELECT
        SUM(state = 'done') AS done, SUM(state = 'dead') AS dead, COUNT(*) AS total,
        SUM(state = 'done' AND deduplicated = 1) AS deduplicated,
        MIN(CASE WHEN state = 'done' THEN updated_at END) AS firstDoneAt,
        MAX(CASE WHEN state = 'done' THEN updated_at END) AS lastDoneAt,
        MIN(created_at) AS firstCreatedAt
      FROM jobs`);
    return () => {
      const r = q.get();
      return { done: r.done ?? 0, dead: r.dead ?? 0, total: r.total ?? 0, deduplicated: r.deduplicated ?? 0, firstDoneAt: r.firstDoneAt, lastDoneAt: r.lastDoneAt, firstCreatedAt: r.firstCreatedAt };
    };
  }
  const countsQ = db.prepare('SELECT state, deduplicated, SUM(n) AS n FROM job_counts GROUP BY state, deduplicated');
  // The state term repeats the partial index's own condition, so SQLite takes that index (jobs_ended) and walks it from one end.
  const doneAtQ = (order) => db.prepare(`SELECT updated_at AS t FROM jobs INDEXED BY jobs_ended
    WHERE state IN ('done', 'dead') AND state = 'done' ORDER BY updated_at ${order} LIMIT 1`);
  const firstDoneQ = doneAtQ('ASC');
  const lastDoneQ = doneAtQ('DESC');
  const firstCreatedQ = db.prepare('SELECT created_at AS t FROM jobs ORDER BY id LIMIT 1');
  return () => {
    const p = { done: 0, dead: 0, total: 0, deduplicated: 0 };
    for (const r of countsQ.all()) {
      p.total += r.n;
      if (r.state === 'done') p.done += r.n;
      if (r.state === 'dead') p.dead += r.n;
      if (r.state === 'done' && r.deduplicated === 1) p.deduplicated += r.n;
    }
    return { ...p, firstDoneAt: firstDoneQ.get()?.t ?? null, lastDoneAt: lastDoneQ.get()?.t ?? null, firstCreatedAt: firstCreatedQ.get()?.t ?? null };
  };
}

