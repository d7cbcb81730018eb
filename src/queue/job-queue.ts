import PQueue from 'p-queue';
import type { WorkItem } from './queue.js';

export type { WorkItem } from './queue.js';

export interface JobQueueOptions {
  /** Jobs running at once, over all pipelines. */
  concurrency: number;
  /** Per-pipeline limits (pipelines not listed use only the global one). */
  pipelineConcurrency?: Record<string, number>;
  /** Sources wait (waitForRoom) while more than this many items are waiting or running. */
  highWaterMark: number;
  run: (item: WorkItem) => Promise<void>;
  /** Called when a newer item for the same key replaces one still waiting. */
  onSuperseded?: (older: WorkItem, newer: WorkItem) => void;
}

interface KeySlot {
  running: WorkItem | null;
  waiting: WorkItem | null;
}

/**
 * p-queue underneath, plus what it lacks: per-key serialisation with
 * supersede, per-pipeline limits and a high-water mark for backpressure.
 * At most one item per key waits: a flood of changes to one file costs one
 * slot, and the newest version is the one that runs.
 */
export class JobQueue {
  private readonly global: PQueue;
  private readonly perPipeline = new Map<string, PQueue>();
  private readonly slots = new Map<string, KeySlot>();
  private readonly jobs = new Set<number>();
  private roomWaiters: (() => void)[] = [];
  /**
   * Room handed out by waitForRoom whose add() has not happened yet: a caller
   * adds its item a few microtasks after it is let through, so without this
   * count one free slot would let every waiting source through at once.
   * Reset once those callers have run (next check phase).
   */
  private granted = 0;
  private grantReset: NodeJS.Immediate | null = null;
  private stopped = false;

  constructor(private readonly options: JobQueueOptions) {
    this.global = new PQueue({ concurrency: options.concurrency });
    for (const [name, c] of Object.entries(options.pipelineConcurrency ?? {})) {
      this.perPipeline.set(name, new PQueue({ concurrency: c }));
    }
  }

  /** Items waiting or running. */
  get size(): number {
    return this.jobs.size;
  }

  get running(): number {
    return this.global.pending;
  }

  has(jobId: number): boolean {
    return this.jobs.has(jobId);
  }

  /** Resolves when the queue is below its high-water mark (immediately if it is). */
  waitForRoom(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.roomWaiters.length === 0 && this.hasRoom()) {
      this.grant();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private hasRoom(): boolean {
    return this.jobs.size + this.granted < this.options.highWaterMark;
  }

  private grant(): void {
    this.granted++;
    this.grantReset ??= setImmediate(() => {
      this.grantReset = null;
      this.granted = 0; // taken up by add(), or not needed after all (a duplicate, an event no pipeline wants)
      this.releaseRoom();
    });
  }

  /** Returns false when the item was not taken (stopping, or this job is already queued). */
  add(item: WorkItem): boolean {
    if (this.stopped || this.jobs.has(item.jobId)) return false;
    let slot = this.slots.get(item.key);
    if (!slot) {
      slot = { running: null, waiting: null };
      this.slots.set(item.key, slot);
    }
    this.jobs.add(item.jobId);
    if (slot.waiting) {
      const older = slot.waiting;
      slot.waiting = item;
      this.jobs.delete(older.jobId);
      this.options.onSuperseded?.(older, item);
      return true;
    }
    if (slot.running) {
      slot.waiting = item;
      return true;
    }
    slot.waiting = item;
    this.schedule(item.key);
    return true;
  }

  private schedule(key: string): void {
    const pq = this.perPipeline.get(this.slots.get(key)!.waiting!.pipeline);
    const task = () => this.global.add(() => this.runNext(key));
    void (pq ? pq.add(task) : task());
  }

  private async runNext(key: string): Promise<void> {
    const slot = this.slots.get(key);
    if (!slot?.waiting) return;
    const item = slot.waiting;
    slot.waiting = null;
    slot.running = item;
    try {
      await this.options.run(item);
    } catch {
      // run() records its own failures; a throw here must not stop the queue.
    } finally {
      slot.running = null;
      this.jobs.delete(item.jobId);
      const next = slot.waiting as WorkItem | null;
      if (next && !this.stopped) this.schedule(key);
      else {
        if (next) this.jobs.delete(next.jobId);
        this.slots.delete(key);
      }
      this.releaseRoom();
    }
  }

  private releaseRoom(): void {
    while (this.roomWaiters.length && (this.stopped || this.hasRoom())) {
      if (!this.stopped) this.grant();
      this.roomWaiters.shift()!();
    }
  }

  /** Resolves when nothing is waiting or running. */
  async onIdle(): Promise<void> {
    while (this.jobs.size > 0) {
      await this.global.onIdle();
      await Promise.all([...this.perPipeline.values()].map((q) => q.onIdle()));
      if (this.jobs.size > 0) await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Stops intake and drops what has not started (the ledger still has those
   * jobs queued, so the next start picks them up); resolves when in-flight
   * jobs have finished.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.global.clear();
    for (const q of this.perPipeline.values()) q.clear();
    for (const [key, slot] of this.slots) {
      if (slot.waiting) { this.jobs.delete(slot.waiting.jobId); slot.waiting = null; }
      if (!slot.running) this.slots.delete(key);
    }
    this.releaseRoom();
    await this.global.onIdle();
  }
}
