#!/usr/bin/env node
// Where the main thread's time goes, mediaflow against the bare loop: a CPU
// profile of each contender's main thread (bench/lib/profile-hook.js) with
// one image at a time, so that no thread waits for a core and a sample is
// work, not waiting. mediaflow is profiled from "mediaflow running" to its
// last output, so its start-up is not spread over the images; the loop from
// its start, with module loading set apart (the bucket loop's own figure
// from /proc includes its start-up). Prints time an image by part
// (hash, ledger, sharp, file system, ...) for both, and mediaflow's own
// functions that took the most. Not in the default `npm run bench` set.
//
//   BENCH_PROFILE_N=600 BENCH_PROFILE_PATH=folder|bucket node bench/profile.js
//   BENCH_PROFILE_ARGS="--concurrency 6"   mediaflow's arguments (default one job, one image)
//   BENCH_PROFILE_KEEP=DIR                 keep the two .cpuprofile files there (Chrome DevTools opens them)
import { readFile } from 'node:fs/promises';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildOnce, envInt, mainThreadCpuSecondsOf, printTable, removeDir, ROOT, round, saveResult, sleep, spawnChild, tempDir, waitForLine, waitForOutputs } from './lib/common.js';
import { BENCH_IMAGE, moveAll, uniqueCopy, writeCopies } from './lib/inputs.js';
import { folderPipeline, startMediaflow, THUMB_STEP, writePipeline } from './lib/mediaflow.js';
import { bucketName, minioEnv, pool, removeBucket, startMinio } from './lib/minio.js';

const N = envInt('BENCH_PROFILE_N', 600);
const PATH = process.env.BENCH_PROFILE_PATH ?? 'folder';
const ARGS = (process.env.BENCH_PROFILE_ARGS ?? '--concurrency 1 --image-concurrency 1').split(' ').filter(Boolean);
if (PATH !== 'folder' && PATH !== 'bucket') throw new Error(`Expected BENCH_PROFILE_PATH to be folder or bucket, got \`${PATH}\``);
const HOOK = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib/profile-hook.js');
/** Frames of mediaflow's own code (its built dist/), not a dependency's dist/ folder. */
const OWN = pathToFileURL(path.join(ROOT, 'dist')).href + '/';
const ownPath = (url) => (url.startsWith(OWN) ? url.slice(OWN.length) : null);
const hookEnv = (out, from) => ({ NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import="${HOOK}"`.trim(), BENCH_PROFILE_OUT: out, BENCH_PROFILE_FROM: from });

/** The part of the main thread's work a sample belongs to, from its stack (innermost frame first). */
function partOf(stack) {
  const urls = stack.map((f) => f.url);
  const own = urls.map(ownPath).filter((u) => u !== null);
  if (stack[0].functionName === '(garbage collector)') return 'garbage collection';
  if (urls.some((u) => u.startsWith('node:internal/modules'))) return 'start-up (module loading)';
  if (urls.some((u) => u.includes('node_modules/sharp/'))) return 'sharp (building and starting a pipeline)';
  if (urls.some((u) => u === 'node:internal/crypto/hash')) return 'SHA-256 (checksums; minio-js signing each PUT body)';
  if (own.some((u) => u.startsWith('ledger/')) || urls.some((u) => u.includes('node_modules/better-sqlite3/'))) return 'ledger (SQLite)';
  if (urls.some((u) => u.includes('node_modules/minio/') || u.startsWith('node:_http') || u === 'node:net')) return 'HTTP (minio-js)';
  if (urls.some((u) => u.startsWith('node:internal/fs') || u === 'node:fs') || own.some((u) => u.startsWith('stores/'))) return 'file system, and stores around their I/O';
  // The rest of mediaflow's own work, by the folder of its innermost frame (runner, sources, completion, ...).
  if (own.length) return `mediaflow's ${own[0].split('/').length > 1 ? own[0].split('/')[0] : own[0].replace(/\.js$/, '')}`;
  if (stack[0].functionName === '(program)') return 'V8 and native, unattributed';
  return 'other JavaScript (node, dependencies)';
}

/** Time an image by part, mediaflow's functions by self+callee time (the innermost frame of its own), and the total. */
function analyse(file, n) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const parts = new Map();
  const own = new Map();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const us = p.timeDeltas[i + 1] ?? 0;
    const stack = [];
    for (let id = p.samples[i]; id !== undefined; id = parent.get(id)) stack.push(byId.get(id).callFrame);
    if (stack[0].functionName === '(idle)' || stack[0].functionName === '(root)') continue;
    busy += us;
    const part = partOf(stack);
    parts.set(part, (parts.get(part) ?? 0) + us);
    const mine = stack.find((f) => ownPath(f.url) !== null);
    if (mine && part !== 'start-up (module loading)') {
      const k = `${mine.functionName || '(anonymous)'} (${ownPath(mine.url)})`;
      own.set(k, (own.get(k) ?? 0) + us);
    }
  }
  const perImage = (m) => new Map([...m].map(([k, us]) => [k, us / 1000 / n]));
  return { busy: busy / 1000 / n, parts: perImage(parts), own: perImage(own) };
}

async function profileFolderLoop(root, stage) {
  const out = path.join(root, 'loop-out');
  mkdirSync(out, { recursive: true });
  const file = path.join(root, 'loop.cpuprofile');
  const proc = spawnChild(process.execPath, [path.join(ROOT, 'bench/contenders/sharp-loop.js'), stage, out, '--parallel', '1', '--threads', '1'],
    { env: { UV_THREADPOOL_SIZE: '4', ...hookEnv(file, 'start') } });
  await waitForLine(proc, (l) => l.startsWith('{'), 3_600_000, 'result line');
  await proc.exited;
  return file;
}

async function profileFolderMediaflow(root, stage, names) {
  const inbox = path.join(root, 'inbox');
  const out = path.join(root, 'mf-out');
  mkdirSync(inbox, { recursive: true });
  const file = path.join(root, 'mediaflow.cpuprofile');
  const mf = await startMediaflow({ pipelines: await writePipeline(path.join(root, 'pipelines'), folderPipeline({ inbox, out })), data: path.join(root, 'data'), args: ARGS, env: hookEnv(file, 'signal') });
  try {
    process.kill(mf.pid, 'SIGUSR2');
    const main0 = mainThreadCpuSecondsOf(mf.pid);
    await moveAll(stage, inbox, names);
    await waitForOutputs(out, names.length, { alive: () => mf.alive, pollMs: 500 });
    const mainMs = ((mainThreadCpuSecondsOf(mf.pid) - main0) * 1000) / names.length;
    process.kill(mf.pid, 'SIGUSR2');
    await sleep(500);
    return { file, mainMs };
  } finally {
    await mf.stop();
  }
}

async function profileBucket(root, minio) {
  const inputs = bucketName('profile-in');
  await minio.client.makeBucket(inputs);
  const src = await readFile(BENCH_IMAGE);
  await pool(Array.from({ length: N }, (_, i) => i), 4, (i) => {
    const bytes = uniqueCopy(src, i, 'profile');
    return minio.client.putObject(inputs, `img${String(i).padStart(6, '0')}.jpg`, bytes, bytes.length, { 'Content-Type': 'image/jpeg' });
  });
  const loopOut = bucketName('profile-loop');
  const mfOut = bucketName('profile-mf');
  await minio.client.makeBucket(loopOut);
  await minio.client.makeBucket(mfOut);
  try {
    const loopFile = path.join(root, 'loop.cpuprofile');
    const loop = spawnChild(process.execPath, [path.join(ROOT, 'bench/contenders/bucket-loop.js'), inputs, loopOut, '--parallel', '1'], { env: { ...minioEnv(minio), ...hookEnv(loopFile, 'start') } });
    const r = await waitForLine(loop, (l) => (l.startsWith('{') ? JSON.parse(l) : null), 3_600_000, 'result line');
    await loop.exited;
    const file = path.join(root, 'mediaflow.cpuprofile');
    const pipeline = { name: 'bench', source: { type: 'bucket', bucket: inputs }, steps: [THUMB_STEP], output: { type: 'bucket', bucket: mfOut, key: '{name}.{ext}' } };
    // Profiled from "mediaflow running": its catch-up listing has begun by then, and the few ms of it missed are nothing against N images.
    const mf = await startMediaflow({ pipelines: await writePipeline(path.join(root, 'pipelines'), pipeline), data: path.join(root, 'data'), env: { ...minioEnv(minio), ...hookEnv(file, 'signal') }, args: ARGS });
    let mainMs;
    try {
      process.kill(mf.pid, 'SIGUSR2');
      const main0 = mainThreadCpuSecondsOf(mf.pid);
      for (let made = 0; made < N;) {
        if (!mf.alive) throw new Error(`mediaflow exited:\n${mf.tail}`);
        await sleep(500);
        made = 0;
        for await (const o of minio.client.listObjectsV2(mfOut, '', true)) if (o.name) made++;
      }
      mainMs = ((mainThreadCpuSecondsOf(mf.pid) - main0) * 1000) / N;
      process.kill(mf.pid, 'SIGUSR2');
      await sleep(500);
    } finally {
      await mf.stop();
    }
    return { loopFile, loopMainMs: ((r.mainThreadCpuSeconds ?? NaN) * 1000) / N, file, mainMs };
  } finally {
    for (const b of [inputs, loopOut, mfOut]) await removeBucket(minio.client, b).catch(() => {});
  }
}

buildOnce();
const root = await tempDir('profile');
let loopFile;
let mf;
let loopMainMs = NaN;
if (PATH === 'folder') {
  const stage = path.join(root, 'stage');
  const names = await writeCopies(stage, N);
  loopFile = await profileFolderLoop(root, stage);
  mf = await profileFolderMediaflow(root, stage, names);
} else {
  const minio = await startMinio();
  try {
    ({ loopFile, loopMainMs, ...mf } = await profileBucket(root, minio));
  } finally {
    await minio.stop();
  }
}
const loop = analyse(loopFile, N);
const mine = analyse(mf.file, N);
const parts = [...new Set([...mine.parts.keys(), ...loop.parts.keys()])].sort((a, b) => (mine.parts.get(b) ?? 0) - (mine.parts.get(a) ?? 0));
printTable(`Main thread, ${PATH} path, ${N} images one at a time: ms an image in the profile (samples of work, 250 µs apart)`,
  ['part', 'bare loop', 'mediaflow', 'extra'],
  [...parts.map((k) => [k, round(loop.parts.get(k) ?? 0, 3), round(mine.parts.get(k) ?? 0, 3), round((mine.parts.get(k) ?? 0) - (loop.parts.get(k) ?? 0), 3)]),
    ['all', round(loop.busy, 3), round(mine.busy, 3), round(mine.busy - loop.busy, 3)]]);
console.log(`main-thread CPU from /proc while profiled: mediaflow ${round(mf.mainMs, 2)} ms an image${Number.isNaN(loopMainMs) ? '' : `, the loop ${round(loopMainMs, 2)} (with its start-up)`}`);
printTable('mediaflow functions (the innermost of its own on the stack, with what they call), top 20', ['function', 'ms an image'],
  [...mine.own].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([k, v]) => [k, round(v, 3)]));
await saveResult(`profile-${PATH}`, { n: N, args: ARGS, loop: { busy: loop.busy, parts: Object.fromEntries(loop.parts) }, mediaflow: { busy: mine.busy, mainMs: mf.mainMs, parts: Object.fromEntries(mine.parts), own: Object.fromEntries(mine.own) } });
if (process.env.BENCH_PROFILE_KEEP) {
  mkdirSync(process.env.BENCH_PROFILE_KEEP, { recursive: true });
  for (const [name, from] of [['loop', loopFile], ['mediaflow', mf.file]]) copyFileSync(from, path.join(process.env.BENCH_PROFILE_KEEP, `${PATH}-${name}.cpuprofile`));
}
await removeDir(root);
