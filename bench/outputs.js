#!/usr/bin/env node
// Several outputs from one input: the ways a bare loop can feed them, side by
// side, for several output mixes, and mediaflow with the same steps.
// Each loop reads its input file and writes its outputs as files, as a script would
// (OUT/NAME/oI.EXT, the key mediaflow writes them under here).
//   naive      one decode per output: sharp(input) -> resize -> encode, for each output
//              (sharp's shrink-on-load makes each decode cheap for a small output of a JPEG)
//   clone      sharp(input) once, .clone() per output (sharp decodes again per clone)
//   raw-once   one decode to raw pixels at the largest output's size, each output resized
//              and encoded from those pixels (a true single decode, as mediaflow does
//              for JPEG and WebP inputs; the smaller outputs are resized twice)
// Quality: each output's mean absolute difference from a reference made without
// shrink-on-load, for one decode per output and for decode once.
//   mediaflow  `mediaflow run`, folder in -> folder out, the mix as its steps
// Inputs: BENCH_OUTPUTS_N (150; BENCH_OUTPUTS_AVIF_N, 16, for the AVIF mix) unique copies of the bench photo (2725x2225 JPEG),
// 4 inputs in flight for the loops (the bare loop's best on 2 cores, docs/BENCHMARKS.md),
// mediaflow at its defaults. BENCH_REPEAT (3) rounds, the order reversed every other round.
//
// BENCH_OUTPUTS_MIXES (small,mixed,avif) picks mixes, BENCH_OUTPUTS_LOOPS
// (naive,clone,raw-once) the loops. BENCH_OUTPUTS_MEDIAFLOW (JSON) runs mediaflow
// variants, interleaved with the loops: [{"name", "env", "args"}], env on top of the bench's, args after `run`'s;
// default one, "mediaflow", as shipped. Any allocator variable set keeps bin/mediaflow
// from setting its own, so {"VIPS_CONCURRENCY":"1"} runs it on glibc's defaults
// (docs/BENCHMARKS.md, Allocator).
//
//   BENCH_OUTPUTS_N=150 BENCH_OUTPUTS_AVIF_N=16 BENCH_REPEAT=3 node bench/outputs.js
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { buildOnce, envInt, median, memoryOf, printTable, removeDir, round, saveResult, tempDir, waitForOutputs, cpuSecondsOf } from './lib/common.js';
import { moveAll, writeCopies } from './lib/inputs.js';
import { folderPipeline, startMediaflow, writePipeline } from './lib/mediaflow.js';

const N = envInt('BENCH_OUTPUTS_N', 150);
// AVIF encoding takes ~3.5 s of CPU an input: fewer inputs for that mix.
const AVIF_N = envInt('BENCH_OUTPUTS_AVIF_N', 16);
const REPEAT = envInt('BENCH_REPEAT', 3);
const IN_FLIGHT = 4;
const VARIANTS = JSON.parse(process.env.BENCH_OUTPUTS_MEDIAFLOW ?? '[{"name":"mediaflow"}]');

/** Output mixes: [width, format] each, as pipeline steps would ask (fit inside, no enlargement). */
const MIXES = {
  small: [[160, 'jpeg'], [320, 'webp'], [640, 'webp']],
  mixed: [[160, 'jpeg'], [640, 'webp'], [1280, 'jpeg']],
  avif: [[160, 'jpeg'], [640, 'webp'], [1280, 'avif']],
};

const resize = (w) => ({ width: w, height: w, fit: 'inside', withoutEnlargement: true });
const encode = (img, format) => img.toFormat(format, format === 'avif' ? { quality: 50, effort: 4 } : { quality: 80 });

const strategies = {
  async naive(input, mix) {
    const out = [];
    for (const [w, f] of mix) out.push(await encode(sharp(input).rotate().resize(resize(w)), f).toBuffer());
    return out;
  },
  async clone(input, mix) {
    const base = sharp(input).rotate();
    return Promise.all(mix.map(([w, f]) => encode(base.clone().resize(resize(w)), f).toBuffer()));
  },
  async 'raw-once'(input, mix) {
    const largest = Math.max(...mix.map(([w]) => w));
    const { data, info } = await sharp(input).rotate().resize(resize(largest)).raw().toBuffer({ resolveWithObject: true });
    const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
    return Promise.all(mix.map(([w, f]) => encode(sharp(data, raw).resize(resize(w)), f).toBuffer()));
  },
};

const extOf = (f) => (f === 'jpeg' ? 'jpg' : f);

/** A loop as a script would run it: read each file, make its outputs, write them to OUT/NAME/oI.EXT, IN_FLIGHT files at once. */
async function loop(name, files, mix) {
  const out = path.join(root, `loop-${k++}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < files.length) {
      const file = files[next++];
      const outputs = await strategies[name](await readFile(path.join(stage, file)), mix);
      const dir = path.join(out, path.parse(file).name);
      await mkdir(dir, { recursive: true });
      await Promise.all(outputs.map((o, i) => writeFile(path.join(dir, `o${i}.${extOf(mix[i][1])}`), o)));
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await removeDir(out);
  return { imgPerSec: files.length / seconds, cpuMsPerImg: (cpu.user + cpu.system) / 1000 / files.length };
}

/**
 * Quality: the mean absolute difference (0–255) of an output from a reference
 * made without shrink-on-load (one full decode, one resize, no encoding loss),
 * decoded at the reference's size. Lower is closer.
 */
async function fromReference(input, [w], encoded) {
  const ref = await sharp(input).rotate().resize({ ...resize(w), fastShrinkOnLoad: false }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = await sharp(encoded).removeAlpha().resize(ref.info.width, ref.info.height, { fit: 'fill' }).raw().toBuffer();
  let sum = 0;
  for (let i = 0; i < ref.data.length; i++) sum += Math.abs(ref.data[i] - out[i]);
  return sum / ref.data.length;
}

buildOnce();
const root = await tempDir('outputs');
const stage = path.join(root, 'stage');
const names = await writeCopies(stage, N);
const first = await readFile(path.join(stage, names[0])); // for the quality of each output
let k = 0;

async function mediaflow(mix, n, { env = {}, args = [] } = {}) {
  const some = names.slice(0, n);
  const dir = path.join(root, `run-${k++}`);
  const inbox = path.join(dir, 'inbox');
  const out = path.join(dir, 'out');
  await mkdir(inbox, { recursive: true });
  const steps = mix.map(([w, f], i) => ({ id: `o${i}`, use: 'thumbnail', width: w, height: w, fit: 'inside', format: f, quality: f === 'avif' ? 50 : 80 }));
  const pipelines = await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox, out, steps, key: '{name}/{id}.{ext}' }));
  const proc = await startMediaflow({ pipelines, data: path.join(dir, 'data'), env, args });
  try {
    const c0 = cpuSecondsOf(proc.pid);
    const t0 = Date.now();
    await moveAll(stage, inbox, some);
    const { lastMs } = await waitForOutputs(out, n * mix.length, { pollMs: 500, alive: () => proc.alive });
    return { imgPerSec: n / ((lastMs - t0) / 1000), cpuMsPerImg: ((cpuSecondsOf(proc.pid) - c0) * 1000) / n, peakRssMb: memoryOf(proc.pid).peakRssMb };
  } finally {
    await proc.stop();
    await moveAll(inbox, stage, some);
    await removeDir(dir);
  }
}

const loops = (process.env.BENCH_OUTPUTS_LOOPS ?? Object.keys(strategies).join(',')).split(',');
const variants = new Map(VARIANTS.map((v) => [v.name, { env: v.env ?? {}, args: v.args ?? [] }]));
const contenders = [...loops, ...variants.keys()];
const results = {};
const quality = {};
const chosen = (process.env.BENCH_OUTPUTS_MIXES ?? Object.keys(MIXES).join(',')).split(',');
for (const [mixName, mix] of Object.entries(MIXES).filter(([m]) => chosen.includes(m))) {
  const n = mixName === 'avif' ? Math.min(N, AVIF_N) : N;
  results[mixName] = Object.fromEntries(contenders.map((c) => [c, []]));
  // Quality of each output of one decode per output and of decode once, on the first input.
  quality[mixName] = {};
  for (const c of ['naive', 'raw-once']) {
    const outs = await strategies[c](first, mix);
    quality[mixName][c] = await Promise.all(outs.map((o, i) => fromReference(first, mix[i], o).then((d) => round(d, 2))));
  }
  for (let r = 0; r < REPEAT; r++) {
    for (const c of r % 2 ? [...contenders].reverse() : contenders) {
      const res = variants.has(c) ? await mediaflow(mix, n, variants.get(c)) : await loop(c, names.slice(0, n), mix);
      results[mixName][c].push(res);
      console.log(`${mixName} round ${r + 1}/${REPEAT} ${c}: ${round(res.imgPerSec, 2)} inputs/s, ${round(res.cpuMsPerImg)} ms CPU/input${res.peakRssMb ? `, peak RSS ${res.peakRssMb} MB` : ''}`);
    }
  }
}
await removeDir(root);

const rows = [];
for (const mixName of Object.keys(results)) {
  const med = (c) => median(results[mixName][c].map((x) => x.imgPerSec));
  const bestLoop = Math.max(...loops.map(med));
  for (const c of contenders) {
    rows.push([mixName, c, round(med(c), 2), round(median(results[mixName][c].map((x) => x.cpuMsPerImg))), round(med(c) / bestLoop, 2),
      quality[mixName][c]?.join(' / ') ?? '']);
  }
}
printTable(`Several outputs per input: ${N} inputs (2725x2225 JPEG; ${Math.min(N, AVIF_N)} with AVIF), median of ${REPEAT} rounds`,
  ['mix', 'contender', 'inputs/s', 'CPU ms/input', 'x best loop', 'difference from reference per output (0-255)'], rows);
await saveResult('outputs', { n: N, avifN: Math.min(N, AVIF_N), repeat: REPEAT, mixes: MIXES, variants: VARIANTS, results, quality });
