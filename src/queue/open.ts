import type { Logger } from '../log.js';
import { BullmqQueue } from './bullmq-queue.js';
import { MemoryQueue, type MemoryQueueOptions } from './memory-queue.js';
import type { WorkQueue } from './queue.js';

export interface QueueChoice {
  /** redis://… (--queue / MEDIAFLOW_QUEUE); unset: the queue is in this process. */
  url?: string;
  concurrency: number;
  highWaterMark: number;
  pipelineConcurrency?: Record<string, number>;
  /** --lock-ms: how long a dead worker's job waits before another takes it. */
  lockMs?: number;
  logger?: Logger;
}

/** The shared queue the command line chose, or null for the in-process default (the service makes it). */
export async function openQueue(c: QueueChoice): Promise<WorkQueue | null> {
  if (!c.url) return null;
  return BullmqQueue.connect({ ...c, url: c.url });
}

/** The default queue: in this process (p-queue), serialised per key, with per-pipeline limits. */
export function inProcessQueue(o: MemoryQueueOptions): WorkQueue {
  return new MemoryQueue(o);
}
