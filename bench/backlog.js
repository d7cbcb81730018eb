#!/usr/bin/env node
// Backlog and memory: BENCH_BACKLOG_N (100,000) small unique JPEGs already in
// the inbox when `mediaflow run` starts (1,000 a folder, in nested folders),
// once per size of BENCH_BACKLOG_SIZES (default: BENCH_BACKLOG_N; e.g.
// 1000,10000,100000 for the cost as the work grows, 1000000 for the large
// backlog), and BENCH_BACKLOG_BUCKET_N (10,000)
// already in a MinIO bucket (bucket in -> bucket out). Measured from the
// spawn of the process: time to the first output, time to the last, and the
// child's peak RSS (VmHWM), with RSS sampled along the way. Progress comes
// from the ledger itself (read-only SQLite reader): a job is marked done right
// after its outputs are written. The queue's depth is read from /metrics every
// 2 s (its high-water mark is 1,000 by default), and the ledger's size on disk
// at the end is divided by the jobs in it.
//
//   BENCH_BACKLOG_N=100000 BENCH_BACKLOG_BUCKET_N=10000 node bench/backlog.js
//   BENCH_PARTS=folder|bucket   (one part only)
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, envInt, listFiles, load, memoryOf, printTable, removeDir, round, saveResult, sleep, tempDir } from './lib/common.js';
import { smallJpeg, uniqueCopy } from './lib/inputs.js';
import { folderPipeline, openLedgerReader, startMediaflow, THUMB_STEP, writePipeline } from './lib/mediaflow.js';
import { bucketName, minioEnv, pool, removeBucket, startMinio } from './lib/minio.js';

const N = envInt('BENCH_BACKLOG_N', 100_000);
const SIZES = (process.env.BENCH_BACKLOG_SIZES ?? String(N)).split(',').map(Number);
const BUCKET_N = envInt('BENCH_BACKLOG_BUCKET_N', 10_000);
const parts = (process.env.BENCH_PARTS ?? 'folder,bucket').split(',');
const env = JSON.parse(process.env.BENCH_MEDIAFLOW_ENV ?? '{}'); // levers, e.g. {"MALLOC_ARENA_MAX":"2"}

buildOnce();
const small = await smallJpeg();

/** Runs mediaflow until `count` jobs are finished; returns timings from spawn and memory. */
async function drain(label, dir, pipeline, count, childEnv = {}) {
  const pipelines = await writePipeline(path.join(dir, 'pipelines'), pipeline);
  const data = path.join(dir, 'data');
  const loadBefore = load();
  const mf = await startMediaflow({ pipelines, data, env: { ...env, ...childEnv }, waitReady: false });
  const rss = [];
  let maxDepth = 0;
  // The queue's depth, from the service's own metrics, while the backlog drains.
  const depths = (async () => {
    await mf.ready.catch(() => {});
    while (mf.alive && !stopDepths) {
      const text = await fetch(`${mf.url}/metrics`).then((r) => r.text(), () => '');
      const line = text.split('\n').find((l) => l.startsWith('mediaflow_queue_depth '));
      if (line) maxDepth = Math.max(maxDepth, Number(line.split(' ')[1]));
      await sleep(2000);
    }
  })();
  let stopDepths = false;
  try {
    const ledger = await openLedgerReader(data);
    let p;
    let lastPrint = 0;
    for (;;) {
      p = ledger.progress();
      const now = Date.now();
      if (rss.length === 0 || now - rss[rss.length - 1][0] - mf.spawnedAt >= 2000) rss.push([now - mf.spawnedAt, memoryOf(mf.pid).rssMb, p.done]);
      if (now - lastPrint > 15_000) {
        lastPrint = now;
        console.log(`  ${label}: ${round((now - mf.spawnedAt) / 1000)} s, ${p.done}/${count} done, RSS ${memoryOf(mf.pid).rssMb} MB`);
      }
      if (p.done + p.dead >= count) break;
      if (!mf.alive) throw new Error(`mediaflow exited:\n${mf.tail}`);
      await sleep(p.done === 0 ? 20 : 500);
    }
    ledger.close();
    const mem = memoryOf(mf.pid);
    await mf.ready;
    stopDepths = true;
    await depths;
    let ledgerBytes = 0;
    for (const f of ['ledger.sqlite', 'ledger.sqlite-wal']) ledgerBytes += await stat(path.join(data, f)).then((st) => st.size, () => 0);
    return {
      count, done: p.done, dead: p.dead,
      firstOutputS: round((p.firstDoneAt - mf.spawnedAt) / 1000, 2),
      totalS: round((p.lastDoneAt - mf.spawnedAt) / 1000, 1),
      filesPerSecond: round(p.done / ((p.lastDoneAt - p.firstDoneAt) / 1000)),
      startupS: round(mf.startupMs / 1000, 2),
      peakRssMb: mem.peakRssMb, rssAtEndMb: mem.rssMb, rssSamples: rss, loadBefore, loadAfter: load(),
      maxQueueDepth: maxDepth, ledgerBytesPerJob: round(ledgerBytes / count),
    };
  } finally {
    await mf.stop();
  }
}

const results = {};

for (const n of parts.includes('folder') ? SIZES : []) {
  const dir = await tempDir('backlog');
  const inbox = path.join(dir, 'inbox');
  const out = path.join(dir, 'out');
  await mkdir(inbox, { recursive: true });
  console.log(`folder: writing ${n} small JPEGs (64x48) into the inbox, 1,000 a folder ...`);
  for (let i = 0; i < n; i++) {
    // Nested: 1,000 files a folder, 1,000 folders a parent (a/b/sNNNNNNN.jpg).
    const folder = path.join(inbox, String(Math.floor(i / 1_000_000)), String(Math.floor(i / 1000) % 1000));
    if (i % 1000 === 0) await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, `s${String(i).padStart(7, '0')}.jpg`), uniqueCopy(small, i, 'backlog'));
  }
  await sleep(500); // every file older than stableMs: a backlog, not a burst
  const r = await drain('folder', dir, folderPipeline({ inbox, out, steps: [{ ...THUMB_STEP, width: 32, height: 32 }] }), n);
  r.outputs = (await listFiles(out)).length;
  results[SIZES.length > 1 ? `folder-${n}` : 'folder'] = r;
  // Printed before the clean-up: removing a million inputs and their outputs takes minutes.
  console.log(`folder ${n}: ${JSON.stringify({ ...r, rssSamples: undefined })}`);
  await removeDir(dir);
}

if (parts.includes('bucket')) {
  let minio;
  try {
    minio = await startMinio();
  } catch (err) {
    results.bucket = { skipped: err.message };
    console.log(`bucket part skipped: ${err.message}`);
  }
  if (minio) {
    const dir = await tempDir('backlog-bucket');
    const uploads = bucketName('up');
    const derived = bucketName('out');
    try {
      await minio.client.makeBucket(uploads);
      await minio.client.makeBucket(derived);
      console.log(`bucket: uploading ${BUCKET_N} small JPEGs to ${uploads} ...`);
      await pool(Array.from({ length: BUCKET_N }, (_, i) => i), 16, (i) =>
        minio.client.putObject(uploads, `s${String(i).padStart(6, '0')}.jpg`, uniqueCopy(small, i, 'bucket'), undefined, { 'Content-Type': 'image/jpeg' }));
      const pipeline = {
        name: 'bench',
        source: { type: 'bucket', bucket: uploads },
        steps: [{ ...THUMB_STEP, width: 32, height: 32 }],
        output: { type: 'bucket', bucket: derived, key: '{name}.{ext}' },
      };
      results.bucket = await drain('bucket', dir, pipeline, BUCKET_N, minioEnv(minio));
    } catch (err) {
      results.bucket = { failed: err.message };
      console.log(`bucket part failed: ${err.message}`);
    } finally {
      await removeBucket(minio.client, uploads).catch(() => {});
      await removeBucket(minio.client, derived).catch(() => {});
      await minio.stop();
      await removeDir(dir);
    }
  }
}

const rows = Object.entries(results).map(([k, r]) => (r.count
  ? [k.startsWith('folder') ? `${r.count} files in folders` : `${r.count} objects in a bucket`, r.firstOutputS, r.totalS, r.filesPerSecond, r.peakRssMb,
    r.maxQueueDepth, r.ledgerBytesPerJob, r.outputs ?? '', `${r.loadBefore[0]} -> ${r.loadAfter[0]}`]
  : [k, r.skipped ?? r.failed, '', '', '', '', '', '', '']));
printTable('Backlog: small JPEGs (64x48 -> thumbnail 32x32) waiting when the service starts; times from process spawn',
  ['backlog', 'first output s', 'all done s', 'files/s', 'peak RSS MB', 'max queue depth', 'ledger bytes/job', 'outputs', 'load'], rows);
await saveResult('backlog', { env, results });
