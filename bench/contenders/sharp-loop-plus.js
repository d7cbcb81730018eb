#!/usr/bin/env node
// The bare sharp loop with mediaflow's per-image pieces added one at a time,
// to see what each costs (bench/overhead.js runs it):
//
//   node bench/contenders/sharp-loop-plus.js IN_DIR OUT_DIR DATA_DIR PARALLEL PIECES
//
// PIECES, comma-separated, cumulative in bench/overhead.js:
//   read    input read as the folder store does it (real path checked, one read into one Buffer)
//   hash    sha256 of the input and the output (dedup, output records)
//   ledger  the job's ledger statements (upsert, start, find render, done, get) in SQLite
//   write   the output written as the folder store does it (temp name, rename)
//   log     the "job done" line at info (pino, JSON on stdout)
// Prints one JSON line on stderr: images/s, CPU ms and voluntary context switches per image by thread.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { benchWork } from '../lib/bench-work.js';
import { SqliteLedger } from '../../dist/ledger/sqlite-ledger.js';
import { createLogger } from '../../dist/log.js';
import { FolderStore } from '../../dist/stores/folder-store.js';

const [inDir, outDir, dataDir, parallelArg, piecesArg = ''] = process.argv.slice(2);
const parallel = Number(parallelArg);
const on = new Set(piecesArg.split(',').filter(Boolean));
sharp.cache(false);
const ledger = on.has('ledger') ? new SqliteLedger(dataDir) : null;
// As mediaflow run has: each end decides its input's completion (one pipeline, no manifest or notify: no outbox row).
const completionRule = { pipelines: new Map([['bench', 'f']]), draft: ([j]) => ({ eventId: String(j.id), body: '', manifests: [], targets: [], owner: 'bench' }) };
const inputs = new FolderStore(inDir);
const outputs = new FolderStore(outDir);
const logger = on.has('log') ? createLogger({ level: 'info', pretty: false }) : null;

/** CPU ms of this process by thread: main, libvips workers, the rest (libuv pool, V8 helpers). */
function cpuByThread() {
  const out = { main: 0, vips: 0, other: 0 };
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in 10 ms ticks
    const k = tid === String(process.pid) ? 'main' : comm === 'libvips worker' ? 'vips' : 'other';
    out[k] += ms;
    const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    out[`${k}Switches`] = (out[`${k}Switches`] ?? 0) + Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)[1]);
  }
  return out;
}

const files = readdirSync(inDir).filter((f) => f.endsWith('.jpg')).sort();
const before = cpuByThread();
const started = performance.now();
let next = 0;
async function worker() {
  while (next < files.length) {
    const name = files[next++];
    let job = null;
    if (ledger) job = await ledger.startAttempt((await ledger.upsert({ pipeline: 'bench', fingerprint: 'f', store: 'in', key: name, relKey: name, version: '1' })).job.id);
    const t0 = performance.now();
    const input = on.has('read') ? await inputs.readWhole(name, 64 << 20) : await readFile(path.join(inDir, name));
    const sha = on.has('hash') ? createHash('sha256').update(input).digest('hex') : name;
    await ledger?.findRender(sha, 'f');
    const data = await benchWork(input);
    if (on.has('write')) await outputs.write(name, data);
    else await writeFile(path.join(outDir, name), data);
    const outSha = on.has('hash') ? createHash('sha256').update(data).digest('hex') : undefined;
    if (ledger && job) {
      await ledger.finish(job.id, { state: 'done', outputs: [{ stepId: 'thumb', key: name, store: 'out', size: data.length, sha256: outSha, contentType: 'image/jpeg', width: 720, height: 588 }], deduplicated: false, sha256: sha }, completionRule);
      await ledger.get(job.id);
    }
    logger?.child({ pipeline: 'bench', key: name, job: job?.id, attempt: 1 })
      .info({ duration: Math.round(performance.now() - t0), steps: { thumb: 0 }, deduplicated: false, outputs: 1 }, 'job done');
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
const seconds = (performance.now() - started) / 1000;
const after = cpuByThread();
const per = (k) => ((after[k] ?? 0) - (before[k] ?? 0)) / files.length;
process.stderr.write(`${JSON.stringify({
  pieces: [...on], images: files.length, seconds, imagesPerSecond: files.length / seconds,
  cpuMsPerImage: per('main') + per('vips') + per('other'), mainMs: per('main'), vipsMs: per('vips'), otherMs: per('other'),
  switches: { main: per('mainSwitches'), vips: per('vipsSwitches'), other: per('otherSwitches') },
})}\n`);
ledger?.close();
