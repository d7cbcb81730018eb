/** The shared queue on the machine's real Redis: what the service relies on of it. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { BullmqQueue } from '../../src/queue/bullmq-queue.js';
import { openQueue } from '../../src/queue/open.js';
import type { WorkItem } from '../../src/queue/queue.js';
import { waitFor } from '../helpers/wait.js';
import { describeRedis, testPrefix } from '../helpers/redis.js';

const item = (jobId: number, attempt = 0): WorkItem => ({ jobId, pipeline: 'p', key: `p\0s\0k${jobId}`, attempt });

describeRedis('BullMQ queue (real Redis)', () => {
  let cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups = [];
  });

  async function open(o: Partial<Parameters<typeof BullmqQueue.connect>[0]> = {}) {
    const place = testPrefix();
    const q = await BullmqQueue.connect({ url: place.url, concurrency: 2, highWaterMark: 1000, lockMs: 1000, ...o });
    cleanups.push(async () => { await q.stop(); await place.drop(); });
    return { q, place };
  }

  it('runs each (job, attempt) once however often it is added, from any producer', async () => {
    const { q, place } = await open();
    const producer = await BullmqQueue.connect({ url: place.url, concurrency: 1, highWaterMark: 1000 });
    cleanups.push(() => producer.stop());
    const ran: string[] = [];
    q.work(async (i) => { ran.push(`${i.jobId}.${i.attempt}`); });
    await Promise.all([q.add(item(1)), producer.add(item(1)), q.add(item(2)), producer.add(item(1, 1))]);
    await waitFor('three run', () => ran.length >= 3);
    await q.onIdle();
    expect(ran.sort()).toEqual(['1.0', '1.1', '2.0']);
    // Handled entries are removed: the same name can be queued again (a dlq retry starts over at attempt 0).
    await producer.add(item(1));
    await waitFor('again', () => ran.length === 4);
  });

  it('holds a delayed entry back, and offers one that asked for "later" again', async () => {
    const { q } = await open();
    const ran: number[] = [];
    let first = true;
    q.work(async (i) => {
      if (i.jobId === 7 && first) { first = false; return 'later'; }
      ran.push(i.jobId);
    });
    await q.add(item(5), 300);
    await q.add(item(7));
    expect((await q.depth()).delayed).toBeGreaterThanOrEqual(1);
    await waitFor('both ran', () => ran.length === 2);
    expect(ran.sort()).toEqual([5, 7]);
    await q.onIdle();
    expect(await q.depth()).toEqual({ waiting: 0, running: 0, delayed: 0 });
  });

  it('backpressure: waitForRoom holds while the shared queue is at its high-water mark', async () => {
    const { q } = await open({ highWaterMark: 3 });
    for (let i = 1; i <= 3; i++) await q.add(item(i));
    let let_through = false;
    const waiting = q.waitForRoom().then(() => { let_through = true; });
    await new Promise((r) => setTimeout(r, 400));
    expect(let_through).toBe(false);
    q.work(async () => {});
    await waiting;
    expect(let_through).toBe(true);
  });

  it('a worker killed mid-entry: another takes the entry once the lock expires', async () => {
    const { q, place } = await open({ lockMs: 1000 });
    await q.add(item(9));
    // A worker in a process of its own takes the entry, says so, and is SIGKILLed while it holds it.
    const dist = path.resolve(path.dirname(BIN), '../dist/queue/bullmq-queue.js');
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { BullmqQueue } = await import(${JSON.stringify(dist)});
      const q = await BullmqQueue.connect({ url: ${JSON.stringify(place.url)}, concurrency: 1, highWaterMark: 10, lockMs: 1000 });
      q.work(async () => { console.log('taken'); await new Promise(() => {}); });`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d) => { if (String(d).includes('taken')) resolve(); }));
    child.kill('SIGKILL');
    const ran: number[] = [];
    q.work(async (i) => { ran.push(i.jobId); });
    await waitFor('taken over', () => ran.length === 1, 20_000);
    expect(ran).toEqual([9]);
  });

  it('a wrong URL or an unreachable server: one clear error, password masked', async () => {
    await expect(openQueue({ url: 'redis://:hunter2@127.0.0.1:1', concurrency: 1, highWaterMark: 1 }))
      .rejects.toThrow(/^cannot reach the queue at redis:\/\/:\*\*\*@127\.0\.0\.1:1: .*ECONNREFUSED/);
    await expect(openQueue({ url: 'amqp://guest:guest@127.0.0.1', concurrency: 1, highWaterMark: 1 }))
      .rejects.toThrow(/Expected --queue \/ MEDIAFLOW_QUEUE to be a redis:\/\/ URL, got `amqp:\/\/guest:\*\*\*@127\.0\.0\.1`/);
    expect(await openQueue({ concurrency: 1, highWaterMark: 1 })).toBeNull();
  });
});
