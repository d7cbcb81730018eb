#!/usr/bin/env node
// Scale-out, as ratios measured side by side, on this machine's PostgreSQL and Redis:
//   (E)  the embedded single process (SQLite, queue in process), pinned to core 0
//   (W1) one `--role worker` pinned to core 0, a `--role sources` process beside it (not pinned)
//   (W2) two workers pinned to cores 0 and 1, the sources process beside them
// over the same BENCH_SCALE_N unique copies of the bench image (720x588 JPEG q80),
// folder in -> folder out. Each round runs E, W1, W2, W1, E: W2 is compared to the
// mean of the W1 runs around it, W1 to the mean of the E runs. Medians over
// BENCH_SCALE_ROUNDS rounds. Also per job: Redis commands (the server's
// total_commands_processed), PostgreSQL transactions (pg_stat_database), and peak RSS per worker.
//
//   BENCH_SCALE_N=300 BENCH_SCALE_ROUNDS=3 node bench/scale.js
//   MEDIAFLOW_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/test MEDIAFLOW_BENCH_REDIS=redis://127.0.0.1:6379
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import {
  buildOnce, cpuSecondsOf, envInt, load, median, memoryOf, printTable, removeDir, round, saveResult, sleep, spawnChild, tempDir, waitForLine, waitForOutputs,
} from './lib/common.js';
import { folderPipeline, mediaflowCommand, writePipeline } from './lib/mediaflow.js';
import { moveAll, writeCopies } from './lib/inputs.js';

const N = envInt('BENCH_SCALE_N', 300);
const ROUNDS = envInt('BENCH_SCALE_ROUNDS', 3);
/**
 * Jobs and images at once in each process (embedded and each worker alike):
 * 4 jobs, 2 images, for a process pinned to one core (on one core 2 images
 * beat 3 and 4; docs/BENCHMARKS.md, Image work and jobs). Runs before
 * 2026-12-07 used 2 jobs, with no bound of their own on the images.
 */
const CONCURRENCY = process.env.BENCH_SCALE_CONCURRENCY ?? '4';
const IMAGE_CONCURRENCY = process.env.BENCH_SCALE_IMAGE_CONCURRENCY ?? '2';
const PG_URL = process.env.MEDIAFLOW_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.MEDIAFLOW_BENCH_REDIS ?? 'redis://127.0.0.1:6379';

buildOnce();
const root = await tempDir('scale');
const stage = path.join(root, 'stage');
console.log(`writing ${N} unique copies of the bench image ...`);
const names = await writeCopies(stage, N);

const redisCommands = () => Number(/total_commands_processed:(\d+)/.exec(execFileSync('redis-cli', ['-u', REDIS_URL, 'INFO', 'stats'], { encoding: 'utf8' }))?.[1] ?? NaN);
async function pgTransactions() {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    // Statistics are flushed by each backend about once a second.
    await sleep(1200);
    const { rows } = await c.query('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(rows[0].n);
  } finally {
    await c.end();
  }
}

/** CPU seconds so far of each part: the workers, the sources process, Redis and PostgreSQL (every process of theirs on this machine). */
function cpuByPart(workers, procs) {
  const sum = (pids) => pids.reduce((a, pid) => a + (cpuSecondsOf(pid) || 0), 0);
  const pidsOf = (name) => { try { return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number); } catch { return []; } };
  const sources = procs.filter((p) => !workers.includes(p));
  return { workers: sum(workers.map((w) => w.pid)), sources: sum(sources.map((p) => p.pid)), redis: sum(pidsOf('redis-server')), postgres: sum(pidsOf('postgres')) };
}

/** `mediaflow run` pinned to `cpus` (null: not pinned); resolves once it is running. */
async function start(cpus, args, env) {
  // As users start it (bin/mediaflow); taskset and the launcher exec, so the pid is node's.
  const m = mediaflowCommand();
  const cmd = cpus === null ? m.cmd : 'taskset';
  const argv = cpus === null ? [...m.args, 'run', ...args] : ['-c', cpus, m.cmd, ...m.args, 'run', ...args];
  const proc = spawnChild(cmd, argv, { env: { MEDIAFLOW_LOG_LEVEL: 'info', MEDIAFLOW_PORT: '0', ...m.env, ...env } });
  await waitForLine(proc, (l) => l.includes('"mediaflow running"'), 60_000, '"mediaflow running"');
  return proc;
}

/** One run: the processes started, the inputs moved in at once, seconds until the last output. */
async function run(kind, r) {
  const dir = path.join(root, `${kind}-${r}`);
  const inbox = path.join(dir, 'inbox');
  const out = path.join(dir, 'out');
  const pipelines = path.join(dir, 'pipelines');
  await writePipeline(pipelines, folderPipeline({ inbox, out, stableMs: 50 }));
  const schema = `mf_bench_${randomBytes(4).toString('hex')}`;
  const prefix = `mf-bench-${randomBytes(4).toString('hex')}`;
  const env = kind === 'E' ? {} : { MEDIAFLOW_LEDGER: `${PG_URL}?schema=${schema}`, MEDIAFLOW_QUEUE: `${REDIS_URL}?prefix=${prefix}` };
  const common = ['--pipelines', pipelines,
    ...(CONCURRENCY ? ['--concurrency', CONCURRENCY] : []), ...(IMAGE_CONCURRENCY ? ['--image-concurrency', IMAGE_CONCURRENCY] : [])];
  const procs = [];
  let workers = [];
  if (kind === 'E') workers = [await start('0', [...common, '--data', path.join(dir, 'data')], env)];
  else {
    const n = kind === 'W1' ? 1 : 2;
    for (let i = 0; i < n; i++) workers.push(await start(String(i), [...common, '--role', 'worker', '--data', path.join(dir, `data-w${i}`)], env));
    procs.push(await start(null, [...common, '--role', 'sources', '--data', path.join(dir, 'data-s')], env));
  }
  procs.push(...workers);
  const cpu0 = cpuByPart(workers, procs);
  const redis0 = kind === 'E' ? 0 : redisCommands();
  const pg0 = kind === 'E' ? 0 : await pgTransactions();
  const t0 = Date.now();
  await moveAll(stage, inbox, names);
  const { lastMs } = await waitForOutputs(out, N);
  const seconds = (lastMs - t0) / 1000;
  const rss = workers.map((w) => memoryOf(w.pid).peakRssMb);
  const cpu1 = cpuByPart(workers, procs);
  const cpuMsPerJob = Object.fromEntries(Object.keys(cpu1).map((k) => [k, round(((cpu1[k] - cpu0[k]) * 1000) / N, 2)]));
  for (const p of procs) await p.stop();
  const perJob = kind === 'E' ? {} : { redisCommands: round((redisCommands() - redis0) / N), pgTransactions: round((await pgTransactions() - pg0) / N) };
  await moveAll(inbox, stage, names); // the same files again next run
  if (kind !== 'E') {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
    execFileSync('sh', ['-c', `redis-cli -u '${REDIS_URL}' --scan --pattern '${prefix}:*' | xargs -r redis-cli -u '${REDIS_URL}' DEL > /dev/null`]);
  }
  await removeDir(dir);
  const result = { kind, imgPerSec: round(N / seconds), seconds: round(seconds, 2), peakRssMb: rss, ...perJob, cpuMsPerJob };
  console.log(JSON.stringify(result));
  return result;
}

const rounds = [];
for (let r = 0; r < ROUNDS; r++) {
  console.log(`round ${r + 1}/${ROUNDS} (load ${load().join(' ')})`);
  const e1 = await run('E', r);
  const w1a = await run('W1', r);
  const w2 = await run('W2', r);
  const w1b = await run('W1', r);
  const e2 = await run('E', r);
  const w1 = (w1a.imgPerSec + w1b.imgPerSec) / 2;
  rounds.push({
    twoOverOne: round(w2.imgPerSec / w1, 2), oneOverEmbedded: round(w1 / ((e1.imgPerSec + e2.imgPerSec) / 2), 2),
    runs: [e1, w1a, w2, w1b, e2],
  });
}
await removeDir(root);

const all = rounds.flatMap((r) => r.runs);
const med = (kind, key) => median(all.filter((x) => x.kind === kind).map((x) => x[key]));
printTable(`Scale-out, ${N} images, ${ROUNDS} rounds (medians)`, ['measure', 'value', 'goal'], [
  ['two workers / one worker', median(rounds.map((r) => r.twoOverOne)), '>= 1.8'],
  ['one worker (BullMQ + PostgreSQL) / embedded', median(rounds.map((r) => r.oneOverEmbedded)), '>= 0.9'],
  ['embedded img/s', round(med('E', 'imgPerSec')), ''],
  ['one worker img/s', round(med('W1', 'imgPerSec')), ''],
  ['two workers img/s', round(med('W2', 'imgPerSec')), ''],
  ['Redis commands per job (W1)', med('W1', 'redisCommands'), ''],
  ['PostgreSQL transactions per job (W1)', med('W1', 'pgTransactions'), ''],
  ['peak RSS per worker, MB (W2)', median(all.filter((x) => x.kind === 'W2').flatMap((x) => x.peakRssMb)), ''],
]);
await saveResult('scale', { n: N, rounds });
