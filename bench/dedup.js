#!/usr/bin/env node
// Dedup: BENCH_DEDUP_N (1,000) unique copies of the bench image are processed
// once; then the same bytes are dropped again, twice:
//   same names  renamed over the originals (a new version of each key: new mtime)
//               -> hashed, found rendered, outputs already in place: nothing written
//   new names   dropped as again-NAME.jpg -> hashed, found rendered, outputs copied
// For each: files/s from the first drop to the last job done (ledger), and the
// proof that sharp did no work: mediaflow_step_duration_seconds_count (one per
// step rendered) does not move, and the ledger counts the jobs as deduplicated.
//
//   BENCH_DEDUP_N=1000 node bench/dedup.js
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { buildOnce, cpuSecondsOf, envInt, load, printTable, removeDir, round, saveResult, sleep, tempDir } from './lib/common.js';
import { moveAll, writeCopies } from './lib/inputs.js';
import { folderPipeline, metrics, openLedgerReader, startMediaflow, writePipeline } from './lib/mediaflow.js';

const N = envInt('BENCH_DEDUP_N', 1000);

buildOnce();
const dir = await tempDir('dedup');
const inbox = path.join(dir, 'inbox');
const out = path.join(dir, 'out');
const data = path.join(dir, 'data');
const names = await writeCopies(path.join(dir, 'stage'), N);
const pipelines = await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox, out }));
const mf = await startMediaflow({ pipelines, data });
const ledger = await openLedgerReader(data);

/** Waits until `total` jobs are finished; returns the ledger progress. */
async function until(total) {
  for (;;) {
    const p = ledger.progress();
    if (p.done + p.dead >= total) return p;
    if (!mf.alive) throw new Error(`mediaflow exited:\n${mf.tail}`);
    await sleep(100);
  }
}

const phases = {};
async function phase(label, total, drop) {
  const before = await metrics(mf.url);
  const cpu0 = cpuSecondsOf(mf.pid);
  const loadBefore = load();
  const dedup0 = ledger.progress().deduplicated;
  const t0 = Date.now();
  await drop();
  const p = await until(total);
  const after = await metrics(mf.url);
  const seconds = (p.lastDoneAt - t0) / 1000;
  phases[label] = {
    files: N, seconds: round(seconds, 2), filesPerSecond: round(N / seconds),
    stepsRendered: after.stepsRendered - before.stepsRendered,
    deduplicatedInLedger: p.deduplicated - dedup0, cpuMsPerFile: round(((cpuSecondsOf(mf.pid) - cpu0) / N) * 1000, 2),
    loadBefore, loadAfter: load(),
  };
  console.log(`${label}: ${JSON.stringify(phases[label])}`);
}

try {
  await phase('first time (rendered)', N, () => moveAll(path.join(dir, 'stage'), inbox, names));
  // Same bytes, written now (new mtime = a new version of each key), staged, then renamed over the originals.
  await writeCopies(path.join(dir, 'stage'), N);
  await sleep(300);
  await phase('again, same names', 2 * N, async () => {
    for (const n of names) await rename(path.join(dir, 'stage', n), path.join(inbox, n));
  });
  await writeCopies(path.join(dir, 'stage'), N);
  await sleep(300);
  await phase('again, new names', 3 * N, async () => {
    for (const n of names) await rename(path.join(dir, 'stage', n), path.join(inbox, `again-${n}`));
  });
} finally {
  ledger.close();
  await mf.stop();
  await removeDir(dir);
}

printTable(`Dedup: ${N} unique bench images, then the same bytes dropped again (load ${load().join(' ')})`,
  ['drop', 'files/s', 'seconds', 'steps rendered', 'dedup in ledger', 'CPU ms/file'],
  Object.entries(phases).map(([k, r]) => [k, r.filesPerSecond, r.seconds, r.stepsRendered, r.deduplicatedInLedger, r.cpuMsPerFile]));
console.log('steps rendered: the change in mediaflow_step_duration_seconds_count (/metrics) during the phase; 0 = sharp did no work');
await saveResult('dedup', { n: N, phases });
