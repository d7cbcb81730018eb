#!/usr/bin/env node
// Bucket: uploads to a local MinIO (127.0.0.1) -> outputs in another bucket,
// against the same work through the folder path, with `mediaflow run` as a
// child process each time.
//   throughput  BENCH_BUCKET_N (400) unique bench images put by 4 parallel
//               uploaders (bucket: putObject; folder: write NAME.part + rename),
//               first upload started -> last job done (ledger)
//   latency     BENCH_BUCKET_DROPS (100) single uploads into the idle service,
//               upload finished -> its job done (ledger updated_at, right after
//               the output PUT / rename)
// Without MinIO (.cache/bin/minio from `npm run setup:minio`, or MINIO_ENDPOINT)
// the bucket rows say why and the folder rows still run.
//
//   BENCH_BUCKET_N=400 BENCH_BUCKET_DROPS=100 node bench/bucket.js
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, envInt, load, percentile, printTable, removeDir, round, saveResult, sleep, tempDir } from './lib/common.js';
import { BENCH_IMAGE, uniqueCopy } from './lib/inputs.js';
import { folderPipeline, openLedgerReader, startMediaflow, THUMB_STEP, writePipeline } from './lib/mediaflow.js';
import { bucketName, minioEnv, pool, removeBucket, startMinio } from './lib/minio.js';

const N = envInt('BENCH_BUCKET_N', 400);
const DROPS = envInt('BENCH_BUCKET_DROPS', 100);
const DROP_TIMEOUT_MS = envInt('BENCH_BUCKET_DROP_TIMEOUT_MS', 90_000);
const UPLOADERS = 4;

buildOnce();
const src = await readFile(BENCH_IMAGE);

/** One path (bucket or folder): `put(name, bytes)` uploads; returns throughput and latency. */
async function measure(label, pipeline, put, env = {}) {
  const dir = await tempDir(`bucket-${label}`);
  const data = path.join(dir, 'data');
  const mf = await startMediaflow({ pipelines: await writePipeline(path.join(dir, 'pipelines'), pipeline), data, env });
  const ledger = await openLedgerReader(data);
  try {
    // Throughput.
    const names = Array.from({ length: N }, (_, i) => `t${String(i).padStart(6, '0')}.jpg`);
    const loadBefore = load();
    const t0 = Date.now();
    await pool(names, UPLOADERS, (name, i) => put(name, uniqueCopy(src, i, `${label}-t`)));
    const uploadS = (Date.now() - t0) / 1000;
    let p;
    for (;;) {
      p = ledger.progress();
      if (p.done + p.dead >= N) break;
      if (!mf.alive) throw new Error(`mediaflow exited:\n${mf.tail}`);
      await sleep(100);
    }
    const seconds = (p.lastDoneAt - t0) / 1000;
    const throughput = { images: N, seconds: round(seconds, 2), imagesPerSecond: round(N / seconds, 1), uploadSeconds: round(uploadS, 2), dead: p.dead, loadBefore, loadAfter: load() };
    console.log(`${label} throughput: ${JSON.stringify(throughput)}`);

    // Latency: one upload at a time into the idle service.
    const samples = [];
    const lLoad = load();
    process.stdout.write(`${label} latency: `);
    for (let i = 0; i < DROPS; i++) {
      const name = `l${String(i).padStart(6, '0')}.jpg`;
      await put(name, uniqueCopy(src, i, `${label}-l`));
      const t1 = Date.now();
      let job;
      for (;;) {
        job = ledger.job(name);
        if (job && (job.state === 'done' || job.state === 'dead')) break;
        if (Date.now() - t1 > DROP_TIMEOUT_MS) throw new Error(`${label}: ${name} not done ${DROP_TIMEOUT_MS} ms after upload`);
        await sleep(2);
      }
      samples.push(job.updatedAt - t1);
      if (i % 20 === 19) process.stdout.write(`${i + 1} `);
      await sleep(100);
    }
    console.log();
    const latency = { drops: DROPS, p50: round(percentile(samples, 50)), p95: round(percentile(samples, 95)), max: Math.max(...samples), samples, loadBefore: lLoad, loadAfter: load() };
    return { throughput, latency };
  } finally {
    ledger.close();
    await mf.stop();
    await removeDir(dir);
  }
}

const results = {};

// Folder path: write NAME.part, then rename into place (an upload finishing).
{
  const dir = await tempDir('bucket-folder-io');
  const inbox = path.join(dir, 'inbox');
  await mkdir(inbox, { recursive: true });
  results.folder = await measure('folder', folderPipeline({ inbox, out: path.join(dir, 'out') }), async (name, bytes) => {
    await writeFile(path.join(inbox, `${name}.part`), bytes);
    await rename(path.join(inbox, `${name}.part`), path.join(inbox, name));
  });
  await removeDir(dir);
}

let minio;
try {
  minio = await startMinio();
} catch (err) {
  results.bucket = { skipped: err.message };
  console.log(`bucket skipped: ${err.message}`);
}
if (minio) {
  const uploads = bucketName('up');
  const derived = bucketName('out');
  try {
    await minio.client.makeBucket(uploads);
    await minio.client.makeBucket(derived);
    const pipeline = {
      name: 'bench', source: { type: 'bucket', bucket: uploads }, steps: [THUMB_STEP],
      output: { type: 'bucket', bucket: derived, key: '{name}.{ext}' },
    };
    results.bucket = await measure('bucket', pipeline,
      (name, bytes) => minio.client.putObject(uploads, name, bytes, bytes.length, { 'Content-Type': 'image/jpeg' }), minioEnv(minio));
  } catch (err) {
    results.bucket = { failed: err.message };
    console.log(`bucket failed: ${err.message}`);
  } finally {
    await removeBucket(minio.client, uploads).catch(() => {});
    await removeBucket(minio.client, derived).catch(() => {});
    await minio.stop();
  }
}

const f = results.folder;
const rows = Object.entries(results).map(([k, r]) => (r.throughput
  ? [k === 'bucket' ? 'bucket -> bucket (MinIO)' : 'folder -> folder', r.throughput.imagesPerSecond, round(r.throughput.imagesPerSecond / f.throughput.imagesPerSecond, 2),
    r.latency.p50, r.latency.p95, r.latency.max]
  : [k, r.skipped ?? r.failed, '', '', '', '']));
printTable(`Bucket vs folder: ${N} uploads (${UPLOADERS} parallel) for throughput, ${DROPS} single uploads for latency (load ${load().join(' ')})`,
  ['path', 'img/s', 'x folder', 'p50 ms', 'p95 ms', 'max ms'], rows);
await saveResult('bucket', { n: N, drops: DROPS, uploaders: UPLOADERS,
  results: Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.latency ? { ...r, latency: { ...r.latency, samples: r.latency.samples } } : r])) });
