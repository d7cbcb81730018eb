#!/usr/bin/env node
// Where mediaflow's time goes on top of the bare sharp loop: the loop run
// with mediaflow's per-image pieces added one at a time (read, hash, ledger,
// write, log; see bench/contenders/sharp-loop-plus.js), in interleaved rounds,
// reporting CPU ms per image by thread. Not in the default `npm run bench` set.
//
//   BENCH_OVERHEAD_N=600 BENCH_REPEAT=2 node bench/overhead.js
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { buildOnce, envInt, load, median, printTable, removeDir, ROOT, round, saveResult, tempDir } from './lib/common.js';
import { writeCopies } from './lib/inputs.js';

const N = envInt('BENCH_OVERHEAD_N', 600);
const REPEAT = envInt('BENCH_REPEAT', 2);
const PARALLEL = envInt('BENCH_OVERHEAD_PARALLEL', 3);
const steps = [[], ['read'], ['read', 'hash'], ['read', 'hash', 'ledger'], ['read', 'hash', 'ledger', 'write'], ['read', 'hash', 'ledger', 'write', 'log']];
const label = (pieces) => (pieces.length ? `+ ${pieces.at(-1)}` : 'bare sharp loop');

function runOnce(stage, root, pieces, i) {
  const out = path.join(root, `out-${i}`);
  const data = path.join(root, `data-${i}`);
  mkdirSync(out, { recursive: true });
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'bench/contenders/sharp-loop-plus.js'), stage, out, data, String(PARALLEL), pieces.join(',')],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] }); // stdout (the log lines) to /dev/null
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => {
      const line = err.trim().split('\n').at(-1);
      if (code === 0 && line?.startsWith('{')) resolve(JSON.parse(line));
      else reject(new Error(`sharp-loop-plus ${pieces.join(',')} exited ${code}: ${err}`));
    });
  });
}

buildOnce();
const root = await tempDir('overhead');
const stage = path.join(root, 'stage');
await writeCopies(stage, N);
const runs = steps.map(() => []);
let i = 0;
for (let r = 0; r < REPEAT; r++) {
  for (const [k, pieces] of steps.entries()) {
    const loadBefore = load();
    const res = await runOnce(stage, root, pieces, i++);
    runs[k].push({ ...res, loadBefore });
    console.log(`round ${r + 1}/${REPEAT} ${label(pieces)}: ${round(res.imagesPerSecond)} img/s, main ${round(res.mainMs, 2)} ms/img (load ${loadBefore[0]})`);
    await removeDir(path.join(root, `out-${i - 1}`));
  }
}
const rows = steps.map((pieces, k) => {
  const m = (f) => median(runs[k].map(f));
  return [label(pieces), round(m((x) => x.imagesPerSecond)), round(m((x) => x.cpuMsPerImage), 2), round(m((x) => x.mainMs), 2), round(m((x) => x.vipsMs), 2), round(m((x) => x.otherMs), 2)];
});
printTable(`Overhead: ${N} bench images, ${PARALLEL} in flight, pieces added cumulatively, median of ${REPEAT} rounds (load now ${load().join(' ')})`,
  ['variant', 'img/s', 'CPU ms/img', 'main', 'libvips', 'other threads'], rows);
await saveResult('overhead', { n: N, parallel: PARALLEL, repeat: REPEAT, variants: steps.map((pieces, k) => ({ pieces, runs: runs[k] })) });
await removeDir(root);
