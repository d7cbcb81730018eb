#!/usr/bin/env node
// What the ledger's counts cost the main thread on a big ledger: /metrics
// (counts by state) and the dashboard's overview (counts by pipeline, read
// every 2 s while a dashboard is open) against a SQLite ledger of
// BENCH_LEDGER_JOBS jobs (1,000,000; 98 % done, 2 % queued, a tenth of the
// done ones copies), and the benches' own progress poll. Each read is timed
// three times; the first may find the pages on disk.
//
// BENCH_LEDGER_ROOT: another checkout (its own built dist/), to compare builds.
// BENCH_LEDGER_POSTGRES: a PostgreSQL server URL instead (e.g.
// postgres://postgres@127.0.0.1:5432/test): the same jobs in a database of
// the bench's own, made and dropped, and the time of each read (the server's
// work: it counts the jobs without holding up mediaflow's event loop).
//
//   BENCH_LEDGER_JOBS=1000000 node bench/ledger-counts.js
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { buildOnce, envInt, printTable, removeDir, round, ROOT, saveResult, tempDir } from './lib/common.js';
import { openLedgerReader } from './lib/mediaflow.js';

const N = envInt('BENCH_LEDGER_JOBS', 1_000_000);
buildOnce();
const root = process.env.BENCH_LEDGER_ROOT ?? ROOT;
const { SqliteLedger } = await import(path.join(root, 'dist/ledger/sqlite-ledger.js'));

const time = async (fn) => {
  const ms = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms;
};

if (process.env.BENCH_LEDGER_POSTGRES) {
  const { PostgresLedger } = await import(path.join(root, 'dist/ledger/postgres-ledger.js'));
  const server = new URL(process.env.BENCH_LEDGER_POSTGRES);
  const name = `mediaflow_bench_counts_${randomUUID().slice(0, 8)}`;
  const admin = new pg.Client({ connectionString: server.href });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(server.href);
    url.pathname = `/${name}`;
    const ledger = await PostgresLedger.connect({ url: url.href }); // the schema, as mediaflow makes it
    const db = new pg.Client({ connectionString: url.href });
    await db.connect();
    const filling = performance.now();
    // As the SQLite ledger below: 98 % done, 2 % queued, a tenth of the done ones copies, two pipelines.
    await db.query(`INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, attempts, sha256, outputs, deduplicated, created_at, updated_at, changed_at)
      SELECT CASE WHEN i % 3 = 0 THEN 'previews' ELSE 'thumbs' END, 'f1', 'folder:/in', k, k, 'v1', CASE WHEN i % 50 = 0 THEN 'queued' ELSE 'done' END, 1,
        lpad(to_hex(i), 64, '0'), CASE WHEN i % 50 = 0 THEN '[]'::jsonb ELSE $1::jsonb END, i % 50 <> 0 AND i % 10 = 1, i, i, i
      FROM (SELECT i, 'd' || (i % 1000) || '/f' || i || '.jpg' AS k FROM generate_series(0, $2::int - 1) i) g`,
    [JSON.stringify([{ key: 'a/b/c.jpg', size: 12345, sha256: 'a'.repeat(64), step: 'thumb' }]), N]);
    // The kept counts' changes folded, as the ledger's timer does within 10 s (a build without them has none).
    const counts = await import(path.join(root, 'dist/ledger/postgres-counts.js')).catch(() => null);
    if (counts) await db.query(counts.FOLD_COUNTS);
    await db.query('VACUUM ANALYZE');
    await db.end();
    console.log(`${N} jobs written in ${round((performance.now() - filling) / 1000, 1)} s`);
    const results = {
      'counts by state (/metrics, status)': await time(() => ledger.counts()),
      'counts by pipeline (dashboard overview)': await time(() => ledger.jobList.countsByPipeline()),
    };
    await ledger.close();
    printTable(`Ledger reads on ${N} jobs (PostgreSQL), ms a read, 3 reads each`,
      ['read', 'ms'], Object.entries(results).map(([k, ms]) => [k, ms.map((x) => round(x, 1)).join(', ')]));
    await saveResult('ledger-counts-postgres', { n: N, root: root === ROOT ? null : root, results });
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
  process.exit(0);
}

const dir = await tempDir('ledger-counts');
try {
  await new SqliteLedger(dir).close(); // the schema, as mediaflow makes it
  const db = new Database(path.join(dir, 'ledger.sqlite'));
  const insert = db.prepare(`INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, attempts, sha256, outputs, deduplicated, created_at, updated_at, changed_at)
    VALUES (?, 'f1', 'folder:/in', ?, ?, 'v1', ?, 1, ?, ?, ?, ?, ?, ?)`);
  const outputs = JSON.stringify([{ key: 'a/b/c.jpg', size: 12345, sha256: 'a'.repeat(64), step: 'thumb' }]);
  const t0 = Date.now() - N;
  const filling = performance.now();
  db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const key = `d${i % 1000}/f${i}.jpg`;
      const queued = i % 50 === 0;
      insert.run(i % 3 ? 'thumbs' : 'previews', key, key, queued ? 'queued' : 'done', i.toString(16).padStart(64, '0'), queued ? '[]' : outputs,
        !queued && i % 10 === 1 ? 1 : 0, t0 + i, t0 + i, t0 + i);
    }
  })();
  db.close();
  console.log(`${N} jobs written in ${round((performance.now() - filling) / 1000, 1)} s`);

  const opening = performance.now();
  const ledger = new SqliteLedger(dir);
  const openMs = performance.now() - opening;
  const results = {
    'counts by state (/metrics, status)': await time(() => ledger.counts()),
    'counts by pipeline (dashboard overview)': await time(() => ledger.jobList.countsByPipeline()),
  };
  await ledger.close();
  const reader = await openLedgerReader(dir);
  results['bench progress poll'] = await time(() => reader.progress());
  reader.close();
  printTable(`Ledger reads on ${N} jobs (SQLite), ms of the calling thread, 3 reads each; opening the ledger took ${round(openMs)} ms`,
    ['read', 'ms'], Object.entries(results).map(([k, ms]) => [k, ms.map((x) => round(x, 2)).join(', ')]));
  await saveResult('ledger-counts', { n: N, root: root === ROOT ? null : root, openMs, results });
} finally {
  await removeDir(dir);
}
