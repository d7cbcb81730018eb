#!/usr/bin/env node
// Paired runs for A/B questions: the bare sharp loop and mediaflow variants
// (another build, environment or flags) over the same inputs, interleaved,
// the order reversed every other round. Besides img/s it reports what the
// throughput table cannot: the share of the machine left idle, and CPU per
// image of mediaflow and of this bench itself (from /proc). Not in the
// default `npm run bench` set.
//
//   BENCH_PAIRED='[{"name":"bare","bare":4},{"name":"now"},{"name":"c4","args":["--concurrency","4"]}]' node bench/paired.js
//   BENCH_PAIRED='[{"name":"before","root":"/path/to/other/checkout"},{"name":"after"}]' BENCH_TINY=1 node bench/paired.js
//
// A variant is {name, bare: images in flight} for the bare loop, or {name, root?, env?, args?}
// for `mediaflow run` (root: a checkout with its own built dist/). BENCH_PAIRED_N (900),
// BENCH_REPEAT (3). BENCH_TINY=1 uses 64x48 images: the image work nearly vanishes and
// what is left per image is mediaflow's own overhead.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, cpuSecondsOf, machineCounters, machineSince, memoryOf, envInt, median, printTable, removeDir, ROOT, round, saveResult, spawnChild, tempDir, waitForLine, waitForOutputs } from './lib/common.js';
import { moveAll, smallJpeg, writeCopies } from './lib/inputs.js';
import { folderPipeline, startMediaflow, writePipeline } from './lib/mediaflow.js';

const N = envInt('BENCH_PAIRED_N', 900);
const REPEAT = envInt('BENCH_REPEAT', 3);
const tiny = process.env.BENCH_TINY === '1';
const variants = JSON.parse(process.env.BENCH_PAIRED ?? '[{"name":"bare loop, 4 in flight","bare":4},{"name":"mediaflow run"}]');

const benchCpuMs = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1000; };

buildOnce();
const root = await tempDir('paired');
const stage = path.join(root, 'stage');
const names = await writeCopies(stage, N, tiny ? { source: await smallJpeg(), tag: 'tiny' } : {});
let k = 0;

async function mediaflow(v) {
  const dir = path.join(root, `run-${k++}`);
  const inbox = path.join(dir, 'inbox');
  const out = path.join(dir, 'out');
  await mkdir(inbox, { recursive: true });
  await mkdir(out, { recursive: true });
  const pipelines = await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox, out }));
  const proc = await startMediaflow({ pipelines, data: path.join(dir, 'data'), env: v.env, args: v.args, root: v.root });
  try {
    const m0 = machineCounters(); const c0 = cpuSecondsOf(proc.pid) * 1000; const b0 = benchCpuMs(); const t0 = Date.now();
    await moveAll(stage, inbox, names);
    const { lastMs } = await waitForOutputs(out, N, { pollMs: 500, alive: () => proc.alive });
    const m = machineSince(m0, N); const c1 = cpuSecondsOf(proc.pid) * 1000; const b1 = benchCpuMs();
    return {
      imagesPerSecond: N / ((lastMs - t0) / 1000), ...m, peakRssMb: memoryOf(proc.pid).peakRssMb,
      cpuMsPerImage: (c1 - c0) / N, benchCpuMsPerImage: (b1 - b0) / N,
    };
  } finally {
    await proc.stop();
    await moveAll(inbox, stage, names);
    await removeDir(dir);
  }
}

async function bare(v) {
  const out = path.join(root, `bare-${k++}`);
  await mkdir(out);
  const m0 = machineCounters();
  const proc = spawnChild(process.execPath, [path.join(ROOT, 'bench/contenders/sharp-loop.js'), stage, out, '--parallel', String(v.bare)],
    { env: { UV_THREADPOOL_SIZE: String(Math.max(4, v.bare)), ...v.env } });
  const r = await waitForLine(proc, (l) => (l.startsWith('{') ? JSON.parse(l) : null), 3_600_000, 'result line');
  const m = machineSince(m0, N);
  await removeDir(out);
  return { imagesPerSecond: r.imagesPerSecond, ...m, cpuMsPerImage: r.cpuSeconds * 1000 / N, benchCpuMsPerImage: 0, peakRssMb: NaN };
}

const runs = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let r = 0; r < REPEAT; r++) {
  for (const v of r % 2 ? [...variants].reverse() : variants) {
    const res = v.bare ? await bare(v) : await mediaflow(v);
    runs[v.name].push(res);
    console.log(`round ${r + 1}/${REPEAT} ${v.name}: ${round(res.imagesPerSecond)} img/s, idle ${round(res.idle * 100)} %, steal ${round(res.steal * 100)} %, ${round(res.switchesPerItem)} switches/img, CPU ${round(res.cpuMsPerImage, 2)} ms/img, peak RSS ${res.peakRssMb} MB`);
  }
}
await removeDir(root);
const m = (name, f) => median(runs[name].map(f));
printTable(`Paired runs: ${N} ${tiny ? '64x48' : 'bench'} images, median of ${REPEAT} rounds (idle: the machine's, from the first input to the last output plus the bench's final 0.25-0.5 s check)`,
  ['variant', 'img/s', 'idle %', 'steal %', 'switches/img', 'CPU ms/img', 'bench CPU ms/img', 'peak RSS MB'],
  variants.map((v) => [v.name, round(m(v.name, (x) => x.imagesPerSecond)), round(m(v.name, (x) => x.idle * 100)), round(m(v.name, (x) => x.steal * 100)), round(m(v.name, (x) => x.switchesPerItem)),
    round(m(v.name, (x) => x.cpuMsPerImage), 2), round(m(v.name, (x) => x.benchCpuMsPerImage), 2), round(m(v.name, (x) => x.peakRssMb))]));
await saveResult('paired', { n: N, repeat: REPEAT, tiny, variants, runs });
