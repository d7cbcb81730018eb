#!/usr/bin/env node
// What a job's ledger calls cost the PostgreSQL server: BENCH_LEDGER_JOBS
// jobs (2,000) through upsert, startAttempt, claimRender, recordOutputs and
// finish, 4 at once, each round in a schema of its own, with the server's
// CPU read from /proc (every postgres process of this machine, so the
// server must be local and otherwise idle). With BENCH_LEDGER_ROOT, that
// checkout's build runs too, the two interleaved in every round.
//
//   BENCH_LEDGER_POSTGRES=postgres://postgres@127.0.0.1:5432/test BENCH_LEDGER_ROOT=<other checkout> BENCH_REPEAT=5 node bench/ledger-writes.js
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { buildOnce, envInt, median, printTable, round, ROOT, saveResult } from './lib/common.js';

const N = envInt('BENCH_LEDGER_JOBS', 2000);
const REPEAT = envInt('BENCH_REPEAT', 5);
const server = process.env.BENCH_LEDGER_POSTGRES;
if (!server) throw new Error('Expected BENCH_LEDGER_POSTGRES to be a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test');
buildOnce();
const builds = [['this build', ROOT], ...(process.env.BENCH_LEDGER_ROOT ? [['BENCH_LEDGER_ROOT', process.env.BENCH_LEDGER_ROOT]] : [])];

/** CPU seconds of every postgres process now (backends that exit meanwhile take theirs along: read before the pool ends). */
function serverCpuSeconds() {
  let pids = [];
  try { pids = execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).trim().split('\n'); } catch { /* none */ }
  return pids.reduce((sum, pid) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const r = f.slice(f.lastIndexOf(')') + 2).split(' ');
      return sum + (Number(r[11]) + Number(r[12])) / 100;
    } catch {
      return sum;
    }
  }, 0);
}

async function run(root) {
  const { PostgresLedger } = await import(path.join(root, 'dist/ledger/postgres-ledger.js'));
  const schema = `mediaflow_bench_writes_${randomBytes(4).toString('hex')}`;
  const url = new URL(server);
  url.searchParams.set('schema', schema);
  const ledger = await PostgresLedger.connect({ url: url.href });
  const sha = (s) => createHash('sha256').update(s).digest('hex');
  const rule = { pipelines: new Map([['bench', 'fp']]), draft: () => ({ eventId: 'e', body: '{}', manifests: [], targets: [], owner: 'bench' }) };
  try {
    const cpu0 = serverCpuSeconds();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; i < N; i += 4) {
        const { job } = await ledger.upsert({ pipeline: 'bench', fingerprint: 'fp', store: 'folder:/in', key: `img-${i}.jpg`, relKey: `img-${i}.jpg`, version: 'v1', size: 1 });
        await ledger.startAttempt(job.id);
        const input = sha(`in ${i}`);
        const output = sha(`out ${i}`);
        await ledger.claimRender({ sha256: input, fingerprint: 'fp', jobId: job.id, owner: 'bench', leaseMs: 30_000, rendered: true });
        await ledger.recordOutputs([output], job.id);
        await ledger.finish(job.id, { state: 'done', outputs: [{ stepId: 'thumb', key: `img-${i}.jpg`, store: 'folder:/out', size: 1, sha256: output }], deduplicated: false, sha256: input }, rule);
      }
    }));
    return { serverMsPerJob: ((serverCpuSeconds() - cpu0) * 1000) / N, wallMsPerJob: (performance.now() - t0) / N };
  } finally {
    await ledger.close();
    const c = new pg.Client({ connectionString: server });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

const runs = Object.fromEntries(builds.map(([name]) => [name, []]));
for (let r = 0; r < REPEAT; r++) {
  for (const [name, root] of r % 2 ? [...builds].reverse() : builds) {
    const res = await run(root);
    runs[name].push(res);
    console.log(`round ${r + 1}/${REPEAT} ${name}: server ${round(res.serverMsPerJob, 3)} ms CPU a job, ${round(res.wallMsPerJob, 3)} ms a job`);
  }
}
printTable(`A job's ledger calls on PostgreSQL, ${N} jobs, 4 at once, median of ${REPEAT} rounds`, ['build', 'server CPU ms a job', 'ms a job'],
  builds.map(([name]) => [name, round(median(runs[name].map((x) => x.serverMsPerJob)), 3), round(median(runs[name].map((x) => x.wallMsPerJob)), 3)]));
await saveResult('ledger-writes', { n: N, repeat: REPEAT, builds, runs });
