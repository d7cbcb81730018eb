import { JobQueue, type JobQueueOptions } from './job-queue.js';
import type { RunResult, WorkItem, WorkQueue } from './queue.js';

export type MemoryQueueOptions = Omit<JobQueueOptions, 'run'>;

/**
 * The embedded queue: JobQueue (p-queue with per-key serialisation and
 * supersede) in this process, with delayed items held by timers. Nothing
 * here is durable: the ledger has every job, and a start resumes them.
 */
export class MemoryQueue implements WorkQueue {
  readonly kind = 'memory';
  readonly location = 'in process';
  private readonly queue: JobQueue;
  private run: ((item: WorkItem) => Promise<RunResult>) | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(o: MemoryQueueOptions) {
    this.queue = new JobQueue({ ...o, run: async (item) => { await this.run?.(item); } });
  }

  work(run: (item: WorkItem) => Promise<RunResult>): void {
    this.run = run;
  }

  async add(item: WorkItem, delayMs = 0): Promise<void> {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.queue.add(item);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) this.queue.add(item);
    }, delayMs);
    this.timers.add(t);
  }

  has(jobId: number): boolean {
    return this.queue.has(jobId);
  }

  waitForRoom(): Promise<void> {
    return this.queue.waitForRoom();
  }

  async depth(): Promise<{ waiting: number; running: number; delayed: number }> {
    return { waiting: this.queue.size - this.queue.running, running: this.queue.running, delayed: this.timers.size };
  }

  get inFlight(): number {
    return this.queue.running;
  }

  get size(): number {
    return this.queue.size;
  }

  async onIdle(): Promise<void> {
    for (;;) {
      await this.queue.onIdle();
      if (this.timers.size === 0 && this.queue.size === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async ping(): Promise<boolean> {
    return !this.stopped;
  }

  /** Drops delayed items too: their jobs are failed in the ledger with a due time, and the next start takes them. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.queue.stop();
  }
}
