import type { Job } from '../ledger/ledger.js';

/** One unit of queued work: a ledger job for one key of one pipeline. */
export interface WorkItem {
  jobId: number;
  pipeline: string;
  /** Serialisation key: two items with the same key never run at once. */
  key: string;
  /** Attempts the ledger had recorded when this was queued: (jobId, attempt) names one queue entry. */
  attempt: number;
}

/** The queue entry for a ledger job: serialised per (pipeline, store, key), named by (job, attempts so far). */
export function itemOf(job: Job): WorkItem {
  return { jobId: job.id, pipeline: job.pipeline, key: `${job.pipeline}\0${job.store}\0${job.key}`, attempt: job.attempts };
}

/**
 * What a run of one item may ask of the queue: 'later' when the item could
 * not start yet (another version of its key is running elsewhere).
 */
export type RunResult = void | 'later';

/**
 * The queue contract: in this process (p-queue, the default) or shared by
 * many workers (BullMQ on Redis). The ledger stays the one record of a job's
 * state, attempts, retries and dead letters; a queue only hands items to
 * whoever runs them, at most one entry per (jobId, attempt).
 */
export interface WorkQueue {
  readonly kind: 'memory' | 'redis';
  /** Where it is, for messages (a URL with its password masked). */
  readonly location: string;
  /** Starts handing items to `run` (processes that work: role all or worker). */
  work(run: (item: WorkItem) => Promise<RunResult>): void;
  /** Queues an item, now or after `delayMs`; a second add of the same (jobId, attempt) is ignored. */
  add(item: WorkItem, delayMs?: number): Promise<void>;
  /** Known to be queued or running here (memory); a shared queue answers false and relies on add() being idempotent. */
  has(jobId: number): boolean;
  /** Backpressure: resolves while fewer than the high-water mark are waiting or running. */
  waitForRoom(): Promise<void>;
  /** Items waiting (delayed included) and running, as the queue holds them (the shared picture for Redis). */
  depth(): Promise<{ waiting: number; running: number; delayed: number }>;
  /** Items running in this process. */
  readonly inFlight: number;
  /** Resolves when nothing is waiting, delayed or running. */
  onIdle(): Promise<void>;
  /** Calls `listener` when the connection to a shared queue comes back after it was lost (its entries may be gone). */
  onReconnect?(listener: () => void): void;
  /** False while the queue cannot be reached (readiness). */
  ping(): Promise<boolean>;
  /** Stops taking work, lets running items finish; what waits stays queued (memory: in the ledger). */
  stop(): Promise<void>;
}
