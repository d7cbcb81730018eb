import type { Job, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import type { WorkQueue } from '../queue/queue.js';

/** A poll of the ledger also looks this far back before the previous poll began: writes it overlapped are not missed. */
const RESUME_OVERLAP_MS = 2_000;

export interface ResumeDeps {
  ledger: Ledger;
  queue: WorkQueue;
  pipelines: Map<string, LoadedPipeline>;
  enqueue(job: Job): Promise<void>;
  logger: Logger;
  stopping(): boolean;
}

/**
 * Picks up jobs the ledger has but the queue may not: after a restart, a dlq
 * retry from another process, or a retry that fell due. A pass at start
 * reads every unfinished job; then one pass every pollMs reads what changed.
 */
export class Resume {
  private poller: NodeJS.Timeout | null = null;
  private polling = false;
  /** When the last pass over the ledger's unfinished jobs began (0: none yet). */
  private resumedAt = 0;
  /** The running (or last) pass. */
  private pass: Promise<void> = Promise.resolve();

  constructor(private readonly d: ResumeDeps) {
    // A shared queue that was away may have lost its entries (a Redis keeping nothing on disk): the next pass reads the whole ledger.
    d.queue.onReconnect?.(() => { this.resumedAt = 0; });
  }

  /** The first pass now, then one every pollMs until stop(). */
  start(pollMs: number): void {
    this.run();
    this.poller = setInterval(() => void this.run(), pollMs);
    this.poller.unref();
  }

  stop(): void {
    if (this.poller) clearInterval(this.poller);
  }

  /** Resolves when the running (or last) pass has ended. */
  running(): Promise<void> {
    return this.pass;
  }

  private run(): Promise<void> {
    if (this.polling || this.d.stopping()) return this.pass;
    this.pass = this.passOnce();
    return this.pass;
  }

  private async passOnce(): Promise<void> {
    this.polling = true;
    try {
      await this.batches();
    } catch (err) {
      if (!this.d.stopping()) this.d.logger.error({ err }, 'resuming unfinished jobs failed');
    } finally {
      this.polling = false;
    }
  }

  private async batches(): Promise<void> {
    const { ledger, queue, pipelines } = this.d;
    // The first pass (start) takes every unfinished job; later ones what changed since the last pass
    // began (a dlq retry from another process, a retry fell due), with a margin for writes it overlapped.
    const since = this.resumedAt === 0 ? 0 : this.resumedAt - RESUME_OVERLAP_MS;
    this.resumedAt = Date.now();
    let after = 0;
    for (;;) {
      const batch = await ledger.unfinished(500, after, since);
      if (batch.length === 0) break;
      for (const job of batch) {
        after = job.id;
        if (this.d.stopping()) return;
        const p = pipelines.get(job.pipeline);
        if (queue.has(job.id) || !p || p.fingerprint !== job.fingerprint) continue;
        if (job.state === 'failed' && job.nextAttemptAt && job.nextAttemptAt > Date.now()) continue;
        // A job running in another process of a shared queue is that process's (if it died, the queue hands its entry
        // on); only one running for longer than its timeout allows has lost its entry too (a queue that restarted empty).
        if (job.state === 'running' && queue.kind !== 'memory' && Date.now() - job.updatedAt < p.timeoutMs + 60_000) continue;
        await queue.waitForRoom();
        await this.d.enqueue(job);
      }
    }
  }
}
