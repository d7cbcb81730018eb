/**
 * Images at once and jobs at once are two bounds: a job also reads, hashes,
 * writes and waits on the ledger, and meanwhile another job's image takes its
 * image slot (docs/BENCHMARKS.md, Image work and jobs). sharp's own counter
 * of operations in libuv's pool shows how many images were in the works.
 */
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { Service } from '../../src/service.js';
import { imageWork } from '../../src/steps/sharp-input.js';
import { smallJpeg } from '../reliability/harness.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

const FILES = 16;

describe('image concurrency', () => {
  it('makes at most --image-concurrency images at once while more jobs run', async () => {
    const ws = workspace('mf-images-');
    cleanups.push(() => ws.cleanup());
    // Two outputs an input, from 800x600 photos of noise: each image takes the pool for a while.
    const p = ws.pipeline({
      steps: [{ id: 'small', use: 'thumbnail', width: 200, format: 'jpeg' }, { id: 'large', use: 'thumbnail', width: 600, format: 'webp' }],
    });
    const service = new Service({ pipelines: [p], dataDir: ws.data, concurrency: 4, imageConcurrency: 1, pollMs: 50 });
    cleanups.push(() => service.stop());
    let images = 0;
    let jobs = 0;
    let working = 0;
    let waiting = 0;
    const sample = setInterval(() => {
      images = Math.max(images, sharp.counters().process);
      jobs = Math.max(jobs, service.queue.inFlight);
      // What the mediaflow_images gauge reads.
      working = Math.max(working, imageWork().working);
      waiting = Math.max(waiting, imageWork().waiting);
    }, 1);
    cleanups.push(() => clearInterval(sample));
    await service.start();
    const staging = path.join(ws.root, 'staging');
    mkdirSync(staging);
    for (let i = 0; i < FILES; i++) writeFileSync(path.join(staging, `p${i}.jpg`), await smallJpeg(i, 800, 600));
    for (let i = 0; i < FILES; i++) renameSync(path.join(staging, `p${i}.jpg`), path.join(ws.inbox, `p${i}.jpg`));
    await waitFor('every file done', async () => (await service.ledger.counts()).done === FILES);
    clearInterval(sample);

    expect(readdirSync(ws.out)).toHaveLength(FILES);
    // The bound held for the images, and was not the jobs' bound.
    expect(images).toBe(1);
    expect(jobs).toBeGreaterThan(1);
    expect(working).toBe(1);
    expect(waiting).toBeGreaterThan(0);
  }, 60_000);
});
