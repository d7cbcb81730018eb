// The four throughput contenders, each run over the same unique copies in a
// staging folder. Watchers (b, c, d) are started on an empty inbox; the clock
// starts when the first file is renamed into the inbox and stops at the mtime
// of the last output written.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { cpuSecondsOf, listFiles, load, machineCounters, machineSince, memoryOf, removeDir, ROOT, round, spawnChild, tempDir, waitForLine, waitForOutputs } from './common.js';
import { moveAll } from './inputs.js';
import { folderPipeline, startMediaflow, writePipeline } from './mediaflow.js';

/** Checks a few outputs are the expected 720x588 JPEGs (all contenders do the same work). */
async function checkOutputs(out, names) {
  const sample = [names[0], names[Math.floor(names.length / 2)], names[names.length - 1]];
  for (const n of sample) {
    const m = await sharp(path.join(out, n)).metadata();
    if (m.format !== 'jpeg' || m.width !== 720 || m.height !== 588) {
      throw new Error(`${out}/${n}: expected a 720x588 jpeg, got ${m.width}x${m.height} ${m.format}`);
    }
  }
}

/** (a) the bare sharp loop, on the staging folder in place. */
export async function runSharpLoop(stage, names, { parallel, threads, input = 'buffer', env = {} }) {
  const dir = await tempDir('sharp');
  const out = path.join(dir, 'out');
  await mkdir(out);
  const loadBefore = load();
  const m0 = machineCounters();
  const args = [path.join(ROOT, 'bench/contenders/sharp-loop.js'), stage, out, '--parallel', String(parallel), '--input', input];
  if (threads !== undefined) args.push('--threads', String(threads));
  const proc = spawnChild(process.execPath, args, { env: { UV_THREADPOOL_SIZE: String(Math.max(4, parallel)), ...env } });
  const line = waitForLine(proc, (l) => (l.startsWith('{') ? JSON.parse(l) : null), 3_600_000, 'result line');
  const r = await line;
  const machine = machineSince(m0, names.length);
  await proc.exited;
  await checkOutputs(out, names);
  await removeDir(dir);
  return {
    imagesPerSecond: r.imagesPerSecond, seconds: r.seconds, peakRssMb: round(r.peakRssMb), cpuSeconds: round(r.cpuSeconds, 2),
    config: { parallel, threads: r.threads, input, uvThreadpool: Math.max(4, parallel), ...env }, loadBefore, loadAfter: load(), machine,
  };
}

/**
 * Runs one watcher contender: start(inbox, out) -> child handle, resolved
 * once it watches. Then renames every staged file into the inbox, waits for
 * every output, reads the child's memory and CPU, stops it, and moves the
 * inputs back to the staging folder.
 */
async function runWatcher(label, stage, names, start) {
  const dir = await tempDir(label);
  const inbox = path.join(dir, 'inbox');
  const out = path.join(dir, 'out');
  await mkdir(inbox);
  await mkdir(out);
  const proc = await start({ dir, inbox, out });
  try {
    const loadBefore = load();
    const cpu0 = cpuSecondsOf(proc.pid);
    const own0 = process.cpuUsage();
    const m0 = machineCounters();
    const t0 = Date.now();
    await moveAll(stage, inbox, names);
    const droppedMs = Date.now() - t0;
    // The outputs' mtimes give the times, so a slow poll costs no precision; a fast one
    // would take CPU from the contender (this bench shares the machine's cores with it).
    const { lastMs, count } = await waitForOutputs(out, names.length, { alive: () => proc.alive, pollMs: 500 });
    const own = process.cpuUsage(own0);
    const machine = machineSince(m0, names.length);
    const seconds = (lastMs - t0) / 1000;
    const mem = memoryOf(proc.pid);
    const cpuSeconds = cpuSecondsOf(proc.pid) - cpu0;
    const made = await listFiles(out);
    await checkOutputs(out, made.sort());
    return {
      // Outputs made per second; `missing` counts inputs that never got one (events lost).
      imagesPerSecond: count / seconds, seconds, dropSeconds: droppedMs / 1000, missing: names.length - count,
      peakRssMb: mem.peakRssMb, cpuSeconds: round(cpuSeconds, 2), loadBefore, loadAfter: load(), machine, ...(proc.extra ?? {}),
      // This process's CPU meanwhile (moving the inputs in, polling for outputs, reading the contender's log).
      benchCpuSeconds: round((own.user + own.system) / 1e6, 2),
    };
  } finally {
    await proc.stop();
    await moveAll(inbox, stage, names).catch(() => {});
    await removeDir(dir);
  }
}

/** (b) mediaflow end to end, folder in -> folder out. `env`/`args` try its levers. */
export function runMediaflow(stage, names, { env = {}, args = [], stableMs } = {}) {
  return runWatcher('mediaflow', stage, names, async ({ dir, inbox, out }) => {
    const pipelines = await writePipeline(path.join(dir, 'pipelines'), folderPipeline({ inbox, out, stableMs }));
    const proc = await startMediaflow({ pipelines, data: path.join(dir, 'data'), env, args });
    proc.extra = { config: { ...env, args: args.join(' ') || undefined } };
    return proc;
  });
}

/** (c) the naive chokidar + sharp script. */
export function runChokidar(stage, names) {
  return runWatcher('chokidar', stage, names, async ({ inbox, out }) => {
    const proc = spawnChild(process.execPath, [path.join(ROOT, 'bench/contenders/chokidar-sharp.js'), inbox, out]);
    await waitForLine(proc, (l) => l === 'ready', 60_000, '"ready"');
    return proc;
  });
}

/** (d) inotifywait + vipsthumbnail. Its RSS is the shell's, not the sum of its short-lived children: not reported. */
export async function runInotify(stage, names) {
  const r = await runWatcher('inotify', stage, names, async ({ inbox, out }) => {
    const proc = spawnChild('sh', [path.join(ROOT, 'bench/contenders/inotify-vips.sh'), inbox, out]);
    await waitForLine(proc, (l) => l.includes('Watches established'), 60_000, '"Watches established."');
    return proc;
  });
  return { ...r, peakRssMb: null, cpuSeconds: null };
}
