#!/usr/bin/env node
// `npm run bench`: builds dist/ once, then runs each benchmark script in turn
// as its own process (each prints its table and writes bench/results/NAME.json).
//
//   npm run bench                       throughput, latency, backlog, dedup, bucket
//   npm run bench -- latency dedup      only those
//   npm run bench -- levers             the lever sweep (not in the default set: ~15 min)
//   npm run bench -- overhead           what each of mediaflow's per-image pieces costs (not in the default set: ~5 min)
//   npm run bench -- paired             paired A/B runs of the bare loop and mediaflow variants (BENCH_PAIRED; not in the default set)
//   npm run bench -- profile            the main thread's time by part, mediaflow against the bare loop, one image at a time (BENCH_PROFILE_PATH; not in the default set)
//   npm run bench -- scale              one worker vs two pinned workers vs the embedded process (PostgreSQL + Redis; not in the default set)
//   npm run bench -- bucket-loop        the bucket path against a bare GET -> sharp -> PUT loop (not in the default set)
//   npm run bench -- outputs            several outputs per input: one decode per output, clone, decode once, mediaflow (not in the default set)
// Sizes come from the environment (see each script's header and docs/BENCHMARKS.md),
// e.g. BENCH_N=500 BENCH_REPEAT=1 BENCH_BACKLOG_N=10000 npm run bench for a quick pass.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { buildOnce, load, ROOT } from './lib/common.js';

const all = ['throughput', 'latency', 'backlog', 'dedup', 'bucket'];
const extra = ['bucket-loop', 'ledger-counts', 'ledger-writes', 'levers', 'outputs', 'overhead', 'paired', 'profile', 'scale'];
const asked = process.argv.slice(2);
for (const a of asked) {
  if (![...all, ...extra].includes(a)) {
    console.error(`Expected a benchmark name (${[...all, ...extra].join(', ')}), got \`${a}\``);
    process.exit(2);
  }
}
const scripts = asked.length ? asked : all;

buildOnce();
const failed = [];
for (const name of scripts) {
  console.log(`\n=== ${name} (load ${load().join(' ')}) ===`);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bench', `${name}.js`)], { stdio: 'inherit', env: process.env });
  if (r.status !== 0) failed.push(`${name} (exit ${r.status ?? r.signal})`);
}
if (failed.length) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exit(1);
}
