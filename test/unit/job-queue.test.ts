import { describe, expect, it } from 'vitest';
import { JobQueue, type WorkItem } from '../../src/queue/job-queue.js';
import { backoffDelay } from '../../src/queue/backoff.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('JobQueue', () => {
  it('never runs two items of one key at once, and a newer waiting item supersedes an older one', async () => {
    const gate = deferred();
    const ran: number[] = [];
    const superseded: number[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const q = new JobQueue({
      concurrency: 4, highWaterMark: 100,
      run: async (item) => {
        concurrent++; maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (item.jobId === 1) await gate.promise;
        ran.push(item.jobId);
        concurrent--;
      },
      onSuperseded: (older) => superseded.push(older.jobId),
    });
    const item = (jobId: number): WorkItem => ({ jobId, pipeline: 'p', key: 'same' });
    q.add(item(1));
    await new Promise((r) => setTimeout(r, 5));
    q.add(item(2)); // waits behind 1
    q.add(item(3)); // replaces 2
    expect(q.add(item(3))).toBe(false); // already queued
    gate.resolve();
    await q.onIdle();
    expect(ran).toEqual([1, 3]);
    expect(superseded).toEqual([2]);
    expect(maxConcurrent).toBe(1);
  });

  it('honours per-pipeline concurrency under the global limit', async () => {
    let running = 0;
    let max = 0;
    const q = new JobQueue({
      concurrency: 8, highWaterMark: 100, pipelineConcurrency: { slow: 2 },
      run: async () => { running++; max = Math.max(max, running); await new Promise((r) => setTimeout(r, 5)); running--; },
    });
    for (let i = 1; i <= 10; i++) q.add({ jobId: i, pipeline: 'slow', key: `k${i}` });
    await q.onIdle();
    expect(max).toBe(2);
  });

  it('holds sources back above the high-water mark', async () => {
    const gate = deferred();
    const q = new JobQueue({ concurrency: 1, highWaterMark: 2, run: () => gate.promise });
    q.add({ jobId: 1, pipeline: 'p', key: 'a' });
    q.add({ jobId: 2, pipeline: 'p', key: 'b' });
    let roomy = false;
    const wait = q.waitForRoom().then(() => { roomy = true; });
    await new Promise((r) => setTimeout(r, 5));
    expect(roomy).toBe(false);
    gate.resolve();
    await wait;
    expect(roomy).toBe(true);
  });

  it('stop() drops waiting items and waits for running ones', async () => {
    const gate = deferred();
    const ran: number[] = [];
    const q = new JobQueue({ concurrency: 1, highWaterMark: 100, run: async (i) => { await gate.promise; ran.push(i.jobId); } });
    q.add({ jobId: 1, pipeline: 'p', key: 'a' });
    q.add({ jobId: 2, pipeline: 'p', key: 'b' });
    await new Promise((r) => setTimeout(r, 5));
    const stopped = q.stop();
    gate.resolve();
    await stopped;
    expect(ran).toEqual([1]);
    expect(q.add({ jobId: 3, pipeline: 'p', key: 'c' })).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('doubles per attempt, keeps at least half, and is capped', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 10_000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 10_000, () => 1)).toBe(400);
    expect(backoffDelay(20, 100, 1000, () => 1)).toBe(1000);
  });
});
