#!/usr/bin/env node
// Contender (a), the limit: a bare sharp loop over files already on disk, no
// watcher, no ledger, no hashing. The image work is exactly mediaflow's
// `thumbnail` step with the bench options (autoOrient, resize inside 720x588
// without enlargement, flatten, JPEG q80, failOn 'warning', cache off).
//
//   node bench/contenders/sharp-loop.js IN_DIR OUT_DIR [--parallel N] [--threads N] [--input buffer|path]
//
// --parallel: images in flight at once (the libuv threadpool, UV_THREADPOOL_SIZE,
//   must be at least that big; set it in the environment before Node starts).
// --threads: sharp.concurrency(), libvips threads per image (default: sharp's own).
// Prints one JSON line: { images, seconds, imagesPerSecond, ... }.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { benchWork } from '../lib/bench-work.js';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const [inDir, outDir] = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const parallel = Number(opt('parallel', '2'));
const threads = opt('threads');
const inputMode = opt('input', 'buffer');

sharp.cache(false);
if (threads !== undefined) sharp.concurrency(Number(threads));

const files = (await readdir(inDir)).filter((f) => f.endsWith('.jpg')).sort();
const started = performance.now();
let next = 0;
async function worker() {
  while (next < files.length) {
    const name = files[next++];
    const file = path.join(inDir, name);
    const input = inputMode === 'path' ? file : await readFile(file);
    const data = await benchWork(input);
    await writeFile(path.join(outDir, name), data);
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage();
console.log(JSON.stringify({
  images: files.length, seconds, imagesPerSecond: files.length / seconds,
  parallel, threads: sharp.concurrency(), input: inputMode,
  uvThreadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  peakRssMb: process.resourceUsage().maxRSS / 1024,
}));
