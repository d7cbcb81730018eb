/**
 * Load: 10,000 small files dropped in bursts into a running `mediaflow run`
 * with a high-water mark of 200. The queue never holds more than the mark
 * (plus the jobs running), memory stays bounded, and every file is processed.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { ledgerCounts, ledgerRows, listFiles, RunningService, statusJson, tinyPng, writePipeline, suiteReports } from './harness.js';

const FILES = 10_000;
const BURSTS = 10;
const HIGH_WATER_MARK = 200;
const CONCURRENCY = 2;
const RSS_BOUND_MB = 400;

const reports = suiteReports('load');

describe('load', () => {
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | null = null;
  afterEach(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    svc = null;
    ws?.cleanup();
  });

  it(`${FILES} files in ${BURSTS} bursts: queue depth <= high-water mark + concurrency, RSS bounded, all processed`, async () => {
    ws = workspace('mf-load-');
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'meta', source: { type: 'folder', path: './inbox', stableMs: 50 },
      steps: [{ id: 'meta', use: 'metadata' }], output: { type: 'folder', path: './out' },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', String(CONCURRENCY), '--high-water-mark', String(HIGH_WATER_MARK), '--port', '0'], ws.root);
    await svc.ready();
    const started = Date.now();

    // Sample the ledger (as `status` reads it) and the process's memory while the bursts land.
    let maxDepth = 0;
    let peakMb = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const c = ledgerCounts(ws.data);
        maxDepth = Math.max(maxDepth, c.queued + c.running);
        if (svc!.alive) peakMb = Math.max(peakMb, svc!.memory().peakMb);
        samples++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const statusDepths: number[] = [];
    for (let b = 0; b < BURSTS; b++) {
      for (let i = 0; i < FILES / BURSTS; i++) {
        const n = b * (FILES / BURSTS) + i;
        writeFileSync(path.join(ws.inbox, `b${b}-${i}.png`), tinyPng(n));
      }
      if (b % 3 === 1) {
        // The user's view, from another process, at the same time.
        const s = statusJson(ws.root);
        statusDepths.push(s.jobs.queued! + s.jobs.running!);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    const done = await waitFor(`${FILES} done`, () => {
      const c = ledgerCounts(ws.data);
      // More than FILES when a file was seen twice mid-write on a loaded machine: two versions, both done (checked below).
      return c.done >= FILES && c.queued + c.running + c.failed === 0 ? c : null;
    }, 400_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}; ledger ${JSON.stringify(ledgerCounts(ws.data))}, alive ${svc!.alive}, files in inbox ${listFiles(ws.inbox).length}\n${svc!.logTail(30)}`);
    }).finally(() => { sampling = false; });
    await sampler;
    const seconds = (Date.now() - started) / 1000;

    // A file caught empty between its creation and its write (the writer descheduled for longer than
    // stableMs on a loaded machine) is a version of its own, and refused as empty; its written version is done.
    const rows = ledgerRows(ws.data);
    const doneKeys = new Set(rows.filter((r) => r.state === 'done').map((r) => r.key));
    const dead = rows.filter((r) => r.state === 'dead' && !(/input is empty \(0 bytes\)/.test(r.error ?? '') && doneKeys.has(r.key)));
    expect(dead.map((r) => `${r.key}: ${r.error}`)).toEqual([]);
    expect(doneKeys.size).toBe(FILES);
    expect(done.done).toBeGreaterThanOrEqual(FILES);
    expect(maxDepth).toBeLessThanOrEqual(HIGH_WATER_MARK + CONCURRENCY);
    expect(maxDepth).toBeGreaterThanOrEqual(HIGH_WATER_MARK / 2); // the mark was reached: the bound was tested
    for (const d of statusDepths) expect(d).toBeLessThanOrEqual(HIGH_WATER_MARK + CONCURRENCY);
    expect(peakMb).toBeLessThan(RSS_BOUND_MB);
    expect(listFiles(ws.out).filter((f) => f.endsWith('/meta.json'))).toHaveLength(FILES);
    expect(svc.alive).toBe(true);
    expect(await svc.stop()).toBe(0);
    reports.bursts = {
      files: FILES, bursts: BURSTS, highWaterMark: HIGH_WATER_MARK, concurrency: CONCURRENCY, maxQueuedPlusRunning: maxDepth,
      statusDepths, samples, peakRssMb: Math.round(peakMb), seconds: Math.round(seconds), filesPerSecond: Math.round(FILES / seconds),
    };
  }, 450_000);
});
