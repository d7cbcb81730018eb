#!/usr/bin/env node
// Latency: one file dropped into an idle `mediaflow run` by atomic rename ->
// its output written. BENCH_DROPS (200) drops per variant, one at a time:
//   fresh  written as NAME.jpg.part in the inbox, renamed to NAME.jpg at once
//          (an upload finishing: mtime is "now", so the write-finish wait applies)
//   moved  written earlier elsewhere on the same file system, moved in (old mtime)
// Reported: p50/p95/max of drop -> output, and of its two parts:
//   drop -> job started ("job done" log time minus its duration: write-finish detection, routing, ledger, queue)
//   job started -> output written (read + hash, sharp, atomic write)
//
//   BENCH_DROPS=200 BENCH_STABLE_MS=150 node bench/latency.js
import { watch } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, envInt, load, percentile, printTable, removeDir, round, saveResult, sleep, tempDir } from './lib/common.js';
import { BENCH_IMAGE, uniqueCopy } from './lib/inputs.js';
import { folderPipeline, startMediaflow, writePipeline } from './lib/mediaflow.js';

const DROPS = envInt('BENCH_DROPS', 200);
const WARMUP = 5;
const GAP_MS = envInt('BENCH_GAP_MS', 100);
const stableMs = process.env.BENCH_STABLE_MS === undefined ? undefined : Number(process.env.BENCH_STABLE_MS);
const variants = (process.env.BENCH_VARIANTS ?? 'fresh,moved').split(',');

buildOnce();
const dir = await tempDir('latency');
const inbox = path.join(dir, 'inbox');
const out = path.join(dir, 'out');
const stage = path.join(dir, 'stage');
await mkdir(inbox, { recursive: true });
await mkdir(out, { recursive: true });
await mkdir(stage, { recursive: true });
const src = await readFile(BENCH_IMAGE);

// Output arrivals, by name, from inotify (fs.watch) on the output folder.
const arrived = new Map();
const waiters = new Map();
const watcher = watch(out, (_type, name) => {
  if (!name || name.startsWith('.') || arrived.has(name)) return;
  const t = performance.timeOrigin + performance.now();
  arrived.set(name, t);
  waiters.get(name)?.(t);
});
const outputOf = (name, timeoutMs = 30_000) => {
  if (arrived.has(name)) return Promise.resolve(arrived.get(name));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no output ${name} within ${timeoutMs} ms`)), timeoutMs);
    waiters.set(name, (t) => { clearTimeout(timer); waiters.delete(name); resolve(t); });
  });
};

const started = new Map(); // input key -> when its job started: the "job done" line's time minus its duration (ms since epoch)
const pipelines = await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox, out, stableMs }));
const mf = await startMediaflow({
  pipelines, data: path.join(dir, 'data'),
  onLog: (r) => { if (r.msg === 'job done') started.set(r.key, r.time - r.duration); },
});

async function drop(variant, i) {
  const name = `${variant}${String(i).padStart(5, '0')}.jpg`;
  const bytes = uniqueCopy(src, i, variant);
  let t0;
  if (variant === 'fresh') {
    const part = path.join(inbox, `${name}.part`);
    await writeFile(part, bytes);
    t0 = performance.timeOrigin + performance.now();
    await rename(part, path.join(inbox, name));
  } else {
    const staged = path.join(stage, name);
    await writeFile(staged, bytes);
    await sleep(GAP_MS + 200); // well past any write-finish wait
    t0 = performance.timeOrigin + performance.now();
    await rename(staged, path.join(inbox, name));
  }
  const t1 = await outputOf(name);
  await sleep(20); // the "job done" line may trail the output
  const ts = started.get(name);
  return { name, totalMs: t1 - t0, detectMs: ts === undefined ? NaN : ts - t0, processMs: ts === undefined ? NaN : t1 - ts };
}

const results = {};
const loadBefore = load();
for (const variant of variants) {
  for (let i = 0; i < WARMUP; i++) { await drop(variant, 90_000 + i); await sleep(GAP_MS); }
  const samples = [];
  process.stdout.write(`${variant}: `);
  for (let i = 0; i < DROPS; i++) {
    samples.push(await drop(variant, i));
    if (i % 20 === 19) process.stdout.write(`${i + 1} `);
    await sleep(GAP_MS);
  }
  console.log();
  const stats = (k) => {
    const xs = samples.map((s) => s[k]).filter(Number.isFinite);
    return { p50: round(percentile(xs, 50)), p95: round(percentile(xs, 95)), max: round(Math.max(...xs)) };
  };
  results[variant] = { total: stats('totalMs'), detect: stats('detectMs'), process: stats('processMs'), samples };
}
const loadAfter = load();
watcher.close();
await mf.stop();
await removeDir(dir);

const label = { fresh: 'written + renamed at once', moved: 'old file moved in' };
printTable(`Latency: one drop into an idle service, ${DROPS} drops each, stableMs ${stableMs ?? '150 (default)'} (load ${loadBefore.join(' ')} -> ${loadAfter[0]})`,
  ['drop', 'p50 ms', 'p95 ms', 'max ms', 'detect p50', 'detect p95', 'process p50', 'process p95'],
  variants.map((v) => {
    const r = results[v];
    return [label[v] ?? v, r.total.p50, r.total.p95, r.total.max, r.detect.p50, r.detect.p95, r.process.p50, r.process.p95];
  }));
console.log('detect: drop -> job started (write-finish detection, routing, ledger, queue); process: job started -> output renamed into place');
await saveResult('latency', { drops: DROPS, stableMs: stableMs ?? 150, gapMs: GAP_MS, loadBefore, loadAfter,
  results: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { ...v, samples: v.samples.map((s) => [round(s.totalMs), round(s.detectMs), round(s.processMs)]) }])) });
