#!/usr/bin/env node
// The bucket path against its limit: the same objects in a local MinIO
// (127.0.0.1), turned into thumbnails in another bucket
//   bare loop  bench/contenders/bucket-loop.js: list, GET -> sharp -> PUT, 4 in flight
//   mediaflow  `mediaflow run` with a bucket -> bucket pipeline, the objects
//              there at start (its catch-up listing), defaults (6 jobs and 6 images on 2 cores)
// Both list the bucket themselves; the loop is timed from before its listing
// to its last PUT, mediaflow from its first job to its last job done (ledger).
// Rounds bracket mediaflow between two loop runs: loop, mediaflow, loop,
// mediaflow, …, loop; each mediaflow run is compared with the mean of the
// loop runs on either side. CPU per image of the contender (all of it, and its
// main thread's: the JavaScript) and of MinIO. The loop's CPU includes its start-up
// (loading its modules); mediaflow's is counted from "mediaflow running".
// BENCH_BUCKET_LOOP_VARIANTS (JSON, default [{"name":"mediaflow"}]) runs mediaflow
// variants, each bracketed in every round: [{"name", "args"}], args after `run`'s.
//
//   BENCH_BUCKET_LOOP_N=400 BENCH_REPEAT=3 node bench/bucket-loop.js
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { buildOnce, cpuSecondsOf, envInt, mainThreadCpuSecondsOf, load, median, printTable, removeDir, round, ROOT, saveResult, sleep, spawnChild, tempDir, waitForLine } from './lib/common.js';
import { BENCH_IMAGE, uniqueCopy } from './lib/inputs.js';
import { openLedgerReader, startMediaflow, THUMB_STEP, writePipeline } from './lib/mediaflow.js';
import { bucketName, minioEnv, pool, removeBucket, startMinio } from './lib/minio.js';

const N = envInt('BENCH_BUCKET_LOOP_N', 400);
const REPEAT = envInt('BENCH_REPEAT', 3);
const PARALLEL = 4;
const VARIANTS = JSON.parse(process.env.BENCH_BUCKET_LOOP_VARIANTS ?? '[{"name":"mediaflow"}]');

buildOnce();
const minio = await startMinio();
const inputs = bucketName('in');
const src = await readFile(BENCH_IMAGE);
let outCount = 0;

async function loop() {
  const out = bucketName(`loop${outCount++}`);
  await minio.client.makeBucket(out);
  try {
    const m0 = minio.pid ? cpuSecondsOf(minio.pid) : NaN;
    const proc = spawnChild(process.execPath, [path.join(ROOT, 'bench/contenders/bucket-loop.js'), inputs, out, '--parallel', String(PARALLEL)], { env: minioEnv(minio) });
    const r = await waitForLine(proc, (l) => (l.startsWith('{') ? JSON.parse(l) : null), 3_600_000, 'result line');
    await proc.exited;
    return { imgPerSec: r.imagesPerSecond, cpuMsPerImg: (r.cpuSeconds * 1000) / N, mainMsPerImg: ((r.mainThreadCpuSeconds ?? NaN) * 1000) / N, minioCpuMsPerImg: ((cpuSecondsOf(minio.pid) - m0) * 1000) / N, peakRssMb: r.peakRssMb };
  } finally {
    await removeBucket(minio.client, out);
  }
}

async function mediaflow({ args = [] } = {}) {
  const out = bucketName(`mf${outCount++}`);
  await minio.client.makeBucket(out);
  const dir = await tempDir('bucket-loop');
  const data = path.join(dir, 'data');
  const pipeline = { name: 'bench', source: { type: 'bucket', bucket: inputs }, steps: [THUMB_STEP], output: { type: 'bucket', bucket: out, key: '{name}.{ext}' } };
  const m0 = minio.pid ? cpuSecondsOf(minio.pid) : NaN;
  const mf = await startMediaflow({ pipelines: await writePipeline(path.join(dir, 'pipelines'), pipeline), data, env: minioEnv(minio), args });
  // From "mediaflow running" on: start-up (module loading) is not the path's cost; the listing starts just before.
  const c0 = cpuSecondsOf(mf.pid);
  const t0 = mainThreadCpuSecondsOf(mf.pid);
  const ledger = await openLedgerReader(data);
  try {
    let p;
    for (;;) {
      p = ledger.progress();
      if (p.done + p.dead >= N) break;
      if (!mf.alive) throw new Error(`mediaflow exited:\n${mf.tail}`);
      await sleep(50);
    }
    if (p.dead) throw new Error(`${p.dead} dead letters`);
    const cpu = cpuSecondsOf(mf.pid) - c0;
    const main = mainThreadCpuSecondsOf(mf.pid) - t0;
    const seconds = (p.lastDoneAt - p.firstCreatedAt) / 1000;
    return { imgPerSec: N / seconds, cpuMsPerImg: (cpu * 1000) / N, mainMsPerImg: (main * 1000) / N, minioCpuMsPerImg: ((cpuSecondsOf(minio.pid) - m0) * 1000) / N, peakRssMb: null };
  } finally {
    ledger.close();
    await mf.stop();
    await removeDir(dir);
    await removeBucket(minio.client, out);
  }
}

const runs = { loop: [], ...Object.fromEntries(VARIANTS.map((v) => [v.name, []])) };
const ratios = Object.fromEntries(VARIANTS.map((v) => [v.name, []]));
try {
  await minio.client.makeBucket(inputs);
  await pool(Array.from({ length: N }, (_, i) => i), 4, (i) => {
    const bytes = uniqueCopy(src, i, 'bucket-loop');
    return minio.client.putObject(inputs, `img${String(i).padStart(6, '0')}.jpg`, bytes, bytes.length, { 'Content-Type': 'image/jpeg' });
  });
  let before = await loop();
  runs.loop.push(before);
  console.log(`loop: ${round(before.imgPerSec)} img/s`);
  for (let r = 0; r < REPEAT; r++) {
    // Variants in a rotated order each round: none always follows the same one.
    for (const v of VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length])) {
      const m = await mediaflow(v);
      const after = await loop();
      runs[v.name].push(m);
      runs.loop.push(after);
      const ratio = m.imgPerSec / ((before.imgPerSec + after.imgPerSec) / 2);
      ratios[v.name].push(ratio);
      console.log(`round ${r + 1}/${REPEAT}: ${v.name} ${round(m.imgPerSec)} img/s, loop ${round(after.imgPerSec)} img/s, ratio ${round(ratio, 3)} (load ${load().join(' ')})`);
      before = after;
    }
  }
} finally {
  await removeBucket(minio.client, inputs).catch(() => {});
  await minio.stop();
}

const row = (name, xs, ratio) => [name, round(median(xs.map((x) => x.imgPerSec))), round(median(xs.map((x) => x.cpuMsPerImg))), round(median(xs.map((x) => x.mainMsPerImg))),
  round(median(xs.map((x) => x.minioCpuMsPerImg))), ratio];
printTable(`Bucket path vs a bare GET -> sharp -> PUT loop: ${N} objects, ${PARALLEL} in flight, ${REPEAT} bracketed rounds`,
  ['contender', 'img/s (median)', 'CPU ms/img', 'main thread', 'MinIO CPU ms/img', 'x loop (median of rounds)'],
  [row('bare loop', runs.loop, 1), ...VARIANTS.map((v) => row(v.name, runs[v.name], `${round(median(ratios[v.name]), 3)} (${ratios[v.name].map((x) => round(x, 2)).join(', ')})`))]);
await saveResult('bucket-loop', { n: N, repeat: REPEAT, parallel: PARALLEL, variants: VARIANTS, runs, ratios });
