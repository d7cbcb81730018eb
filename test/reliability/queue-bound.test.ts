/**
 * The high-water mark holds when many sources wait at once. A watcher that
 * sees a burst of 1,000 files has 1,000 emits waiting for room; freeing one
 * slot must let one of them in, not all of them (the load test found the queue
 * at 9,545 with a mark of 200 before this held).
 */
import { describe, expect, it } from 'vitest';
import { JobQueue } from '../../src/queue/job-queue.js';

describe('JobQueue high-water mark under many concurrent waiters', () => {
  it('never holds more than the mark, however many callers wait for room', async () => {
    const MARK = 20;
    const CALLERS = 1000;
    let peak = 0;
    let ran = 0;
    const q: JobQueue = new JobQueue({
      concurrency: 2,
      highWaterMark: MARK,
      run: async () => {
        await new Promise((r) => setTimeout(r, 1));
        ran++;
      },
    });
    // Each caller does what Service.accept does: wait for room, then add synchronously.
    const callers = Array.from({ length: CALLERS }, async (_, i) => {
      await q.waitForRoom();
      q.add({ jobId: i + 1, pipeline: 'p', key: `k${i}` });
      peak = Math.max(peak, q.size);
    });
    await Promise.all(callers);
    await q.onIdle();
    expect(ran).toBe(CALLERS);
    expect(peak).toBeLessThanOrEqual(MARK);
    expect(peak).toBe(MARK); // and the room is used
  });

  it('room granted to a caller that adds nothing (a duplicate, an event no pipeline wants) is not lost', async () => {
    const q = new JobQueue({ concurrency: 1, highWaterMark: 2, run: () => new Promise((r) => setTimeout(r, 1)) });
    // Three callers take room and add nothing; a fourth must still get in.
    await Promise.all([q.waitForRoom(), q.waitForRoom(), q.waitForRoom()]);
    let admitted = false;
    await Promise.race([q.waitForRoom().then(() => { admitted = true; }), new Promise((r) => setTimeout(r, 1000))]);
    expect(admitted).toBe(true);
  });
});
