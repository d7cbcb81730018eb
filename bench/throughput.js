#!/usr/bin/env node
// Throughput, as ratios to the bare limit, in one run:
//   (a) a bare sharp loop at the best concurrency for this machine (swept first)
//   (b) mediaflow end to end, folder in -> folder out (`mediaflow run` as a child)
//   (c) a naive chokidar + sharp script
//   (d) inotifywait + vipsthumbnail (Debian's inotify-tools, libvips-tools; installed when missing)
// over the same BENCH_N unique copies of fixtures/2569067123_aca715a2ee_o.jpg,
// resized to 720x588, JPEG q80. BENCH_REPEAT rounds; in each, every other
// contender runs between two runs of (a) (order rotated each round), and its
// ratio is to the mean of those two: the machine's speed drifts by minutes,
// so the limit is measured right beside each run. The table shows medians.
//
//   BENCH_N=1500 BENCH_REPEAT=5 BENCH_SWEEP_N=300 node bench/throughput.js
//   BENCH_CONTENDERS=sharp,mediaflow   (subset)
import { buildOnce, ensureDebian, envInt, load, median, printTable, removeDir, round, saveResult, tempDir } from './lib/common.js';
import { runChokidar, runInotify, runMediaflow, runSharpLoop } from './lib/contenders.js';
import { writeCopies } from './lib/inputs.js';
import path from 'node:path';

const N = envInt('BENCH_N', 1500);
const REPEAT = envInt('BENCH_REPEAT', 5);
const SWEEP_N = Math.min(N, envInt('BENCH_SWEEP_N', 300));
const wanted = new Set((process.env.BENCH_CONTENDERS ?? 'sharp,mediaflow,chokidar,inotify').split(','));

buildOnce();
const skipped = {};
if (wanted.has('inotify')) {
  const why = ensureDebian({ inotifywait: 'inotify-tools', vipsthumbnail: 'libvips-tools' });
  if (why) { skipped.inotify = why; wanted.delete('inotify'); console.log(`(d) skipped: ${why}`); }
}

const root = await tempDir('throughput');
const stage = path.join(root, 'stage');
console.log(`writing ${N} unique copies of the bench image ...`);
const names = await writeCopies(stage, N);

// (a): find the best concurrency on a slice of the inputs.
const sweepStage = path.join(root, 'sweep');
const sweepNames = await writeCopies(sweepStage, SWEEP_N, { tag: 'sweep' });
const configs = [
  { parallel: 1 }, { parallel: 2 }, { parallel: 3 }, { parallel: 4 },
  { parallel: 2, input: 'path' },
  // Without MALLOC_ARENA_MAX sharp uses one libvips thread per image on glibc; with it, one per core.
  { parallel: 1, env: { MALLOC_ARENA_MAX: '2' } }, { parallel: 2, env: { MALLOC_ARENA_MAX: '2' } },
];
const sweep = [];
if (wanted.has('sharp')) {
  console.log(`\n(a) sweep: ${configs.length} configurations x ${SWEEP_N} images`);
  for (const c of configs) {
    const r = await runSharpLoop(sweepStage, sweepNames, c);
    sweep.push(r);
    console.log(`  ${JSON.stringify(r.config)}: ${round(r.imagesPerSecond)} img/s (load ${r.loadBefore[0]})`);
  }
}
const best = sweep.length ? sweep.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a)).config : null;
if (best) console.log(`  best: ${JSON.stringify(best)}`);
const bestOptions = best && { parallel: best.parallel, input: best.input, env: best.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: best.MALLOC_ARENA_MAX } : {} };
await removeDir(sweepStage);

const contenders = [
  ['sharp', '(a) bare sharp loop', () => runSharpLoop(stage, names, bestOptions)],
  ['mediaflow', '(b) mediaflow run', () => runMediaflow(stage, names)],
  ['chokidar', '(c) chokidar + sharp', () => runChokidar(stage, names)],
  ['inotify', '(d) inotifywait + vipsthumbnail', () => runInotify(stage, names)],
].filter(([id]) => wanted.has(id));

const rounds = [];
const bare = contenders.find(([id]) => id === 'sharp');
const others = contenders.filter(([id]) => id !== 'sharp');
async function runOne(r, [id, label, run]) {
  process.stdout.write(`round ${r + 1}/${REPEAT} ${label} ... `);
  const res = await run();
  const lost = res.missing ? `, ${res.missing} of ${N} inputs never got an output` : '';
  const m = res.machine;
  const cpu = Number.isFinite(res.cpuSeconds) ? `, CPU ${round(res.cpuSeconds / N * 1000, 1)} ms/img` : '';
  console.log(`${round(res.imagesPerSecond)} img/s in ${round(res.seconds)} s${lost}${cpu}; machine: idle ${round(m.idle * 100)} %, steal ${round(m.steal * 100, 1)} %, ${round(m.switchesPerItem)} switches/img (load ${res.loadBefore.join(' ')} -> ${res.loadAfter[0]})`);
  return res;
}
for (let r = 0; r < REPEAT; r++) {
  const order = others.map((_, i) => others[(i + r) % others.length]);
  // { sharp: every (a) run of the round, id: result, limit: { id: mean img/s of the (a) runs either side } }
  const round_ = { sharp: [], limit: {} };
  if (bare) round_.sharp.push(await runOne(r, bare));
  for (const c of order) {
    round_[c[0]] = await runOne(r, c);
    if (!bare) continue;
    round_.sharp.push(await runOne(r, bare));
    round_.limit[c[0]] = (round_.sharp.at(-2).imagesPerSecond + round_.sharp.at(-1).imagesPerSecond) / 2;
  }
  rounds.push(round_);
}
await removeDir(root);

const rows = [];
const summary = {};
for (const [id, label] of contenders) {
  const runs = id === 'sharp' ? rounds.flatMap((r) => r.sharp) : rounds.map((r) => r[id]);
  const rates = runs.map((x) => x.imagesPerSecond);
  const ratios = !bare ? [] : id === 'sharp' ? rates.map(() => 1) : rounds.map((r) => r[id].imagesPerSecond / r.limit[id]);
  summary[id] = {
    label, imagesPerSecond: median(rates), best: Math.max(...rates), ratioToBare: ratios.length ? median(ratios) : null,
    peakRssMb: median(runs.map((x) => x.peakRssMb ?? NaN)), cpuSecondsPerImage: median(runs.map((x) => (x.cpuSeconds ?? NaN) / N)),
    missing: runs.map((x) => x.missing ?? 0),
    ratios: ratios.map((x) => round(x, 3)),
    benchCpuMsPerImage: median(runs.map((x) => (x.benchCpuSeconds ?? NaN) / N * 1000)),
  };
  const s = summary[id];
  rows.push([label, round(s.imagesPerSecond), round(s.best), s.ratioToBare === null ? '-' : round(s.ratioToBare, 2),
    Number.isFinite(s.peakRssMb) ? round(s.peakRssMb) : '-', Number.isFinite(s.cpuSecondsPerImage) ? round(s.cpuSecondsPerImage * 1000, 1) : '-',
    s.missing.some((m) => m > 0) ? s.missing.join('/') : 0]);
}
printTable(`Throughput: ${N} unique copies, 2725x2225 -> 720x588 JPEG q80, median of ${REPEAT} rounds, x (a): to the (a) runs either side (load now ${load().join(' ')})`,
  ['contender', 'img/s', 'best', 'x (a)', 'peak RSS MB', 'CPU ms/img', 'lost'], rows);
console.log('lost: inputs that never got an output, per round (the watcher missed their events); img/s counts outputs made');
for (const [id, label] of contenders) {
  const s = summary[id];
  if (id !== 'sharp' && s.ratios.length) console.log(`${label}: ratio per round ${s.ratios.join(', ')}`);
  if (Number.isFinite(s.benchCpuMsPerImage)) console.log(`${label}: the bench itself used ${round(s.benchCpuMsPerImage, 2)} ms CPU per image meanwhile (moving inputs in, polling outputs)`);
}
if (best) console.log(`(a) runs ${JSON.stringify(best)}, the best of the sweep`);
for (const [id, why] of Object.entries(skipped)) console.log(`${id} skipped: ${why}`);

await saveResult('throughput', { n: N, repeat: REPEAT, sweepN: SWEEP_N, sweep, best, rounds, summary, skipped, loadAtEnd: load() });
