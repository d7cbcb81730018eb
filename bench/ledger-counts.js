#!/usr/bin/env node
// What the ledger's counts cost the main thread on a big ledger: /metrics
// (counts by state) and the dashboard's overview (counts by pipeline, read
// every 2 s while a dashboard is open) against a SQLite ledger of
// BENCH_LEDGER_JOBS jobs (1,000,000; 98 % done, 2 % queued, a tenth of the
// done ones copies), and the benches' own progress poll. Each read is timed
// three times; the first may find the pages on disk.
//
// BENCH_LEDGER_ROOT: another checkout (its own built dist/), to compare builds.
//
//   BENCH_LEDGER_JOBS=1000000 node bench/ledger-counts.js
import path from 'node:path';
import Database from 'better-sqlite3';
import { buildOnce, envInt, printTable, removeDir, round, ROOT, saveResult, tempDir } from './lib/common.js';
import { openLedgerReader } from './lib/mediaflow.js';

const N = envInt('BENCH_LEDGER_JOBS', 1_000_000);
buildOnce();
const root = process.env.BENCH_LEDGER_ROOT ?? ROOT;
const { SqliteLedger } = await import(path.join(root, 'dist/ledger/sqlite-ledger.js'));

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

  const time = async (fn) => {
    const ms = [];
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      await fn();
      ms.push(performance.now() - t);
    }
    return ms;
  };
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
