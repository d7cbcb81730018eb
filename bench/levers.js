#!/usr/bin/env node
// Performance levers, measured the same way as the throughput benchmark:
// mediaflow end to end over BENCH_LEVER_N unique copies of the bench image,
// with one setting changed per variant, each as a ratio to the bare sharp
// loop run in the same round (parallel BENCH_LEVER_BARE_PARALLEL, default 3).
// Rounds are interleaved (BENCH_REPEAT, default 2) and medians reported.
//
//   BENCH_LEVER_N=600 BENCH_REPEAT=2 node bench/levers.js
//   BENCH_LEVERS='[{"label":"x","env":{"MALLOC_ARENA_MAX":"2"},"args":["--concurrency","3"]}]'
import path from 'node:path';
import { buildOnce, envInt, JEMALLOC, load, median, printTable, removeDir, round, saveResult, tempDir } from './lib/common.js';
import { runMediaflow, runSharpLoop } from './lib/contenders.js';
import { writeCopies } from './lib/inputs.js';

const N = envInt('BENCH_LEVER_N', 600);
const REPEAT = envInt('BENCH_REPEAT', 2);
const BARE = envInt('BENCH_LEVER_BARE_PARALLEL', 3);

const defaults = [
  { label: 'as shipped' },
  { label: '--concurrency 1', args: ['--concurrency', '1'] },
  { label: '--concurrency 3', args: ['--concurrency', '3'] },
  { label: '--concurrency 4', args: ['--concurrency', '4'] },
  { label: '--concurrency 8, UV_THREADPOOL_SIZE=8', args: ['--concurrency', '8'], env: { UV_THREADPOOL_SIZE: '8' } },
  { label: 'MALLOC_ARENA_MAX=2 (sharp: 2 threads/image)', env: { MALLOC_ARENA_MAX: '2' } },
  { label: 'MALLOC_ARENA_MAX=2, --concurrency 3', env: { MALLOC_ARENA_MAX: '2' }, args: ['--concurrency', '3'] },
  ...(JEMALLOC ? [{ label: 'jemalloc (LD_PRELOAD)', env: { LD_PRELOAD: JEMALLOC } }] : []),
];
const variants = process.env.BENCH_LEVERS ? JSON.parse(process.env.BENCH_LEVERS) : defaults;

buildOnce();
const root = await tempDir('levers');
const stage = path.join(root, 'stage');
const names = await writeCopies(stage, N);

const rounds = [];
for (let r = 0; r < REPEAT; r++) {
  const bare = await runSharpLoop(stage, names, { parallel: BARE });
  console.log(`round ${r + 1}/${REPEAT} bare sharp loop (parallel ${BARE}): ${round(bare.imagesPerSecond)} img/s (load ${bare.loadBefore[0]})`);
  const res = {};
  const order = variants.map((_, i) => variants[(i + r) % variants.length]);
  for (const v of order) {
    const m = await runMediaflow(stage, names, { env: v.env, args: v.args });
    res[v.label] = { ...m, ratio: m.imagesPerSecond / bare.imagesPerSecond };
    console.log(`  ${v.label}: ${round(m.imagesPerSecond)} img/s, x${round(res[v.label].ratio, 2)}, peak RSS ${m.peakRssMb} MB (load ${m.loadBefore[0]})`);
  }
  rounds.push({ bare, variants: res });
}
await removeDir(root);

const summary = variants.map((v) => ({
  label: v.label, env: v.env, args: v.args,
  imagesPerSecond: median(rounds.map((r) => r.variants[v.label].imagesPerSecond)),
  ratio: median(rounds.map((r) => r.variants[v.label].ratio)),
  peakRssMb: median(rounds.map((r) => r.variants[v.label].peakRssMb)),
  cpuMsPerImage: median(rounds.map((r) => (r.variants[v.label].cpuSeconds / N) * 1000)),
}));
printTable(`Levers: mediaflow over ${N} unique bench images, median of ${REPEAT} rounds; ratio to the bare loop of the same round (load now ${load().join(' ')})`,
  ['variant', 'img/s', 'x bare', 'peak RSS MB', 'CPU ms/img'],
  summary.map((s) => [s.label, round(s.imagesPerSecond), round(s.ratio, 2), round(s.peakRssMb), round(s.cpuMsPerImage, 1)]));
console.log(`bare loop: ${rounds.map((r) => round(r.bare.imagesPerSecond)).join(', ')} img/s`);
await saveResult('levers', { n: N, repeat: REPEAT, bareParallel: BARE, rounds, summary });
