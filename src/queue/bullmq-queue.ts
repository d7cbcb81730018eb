import { DelayedError, Queue, Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import PQueue from 'p-queue';
import { MediaflowError } from '../errors.js';
import { maskUrl } from '../urls.js';
import { silentLogger, type Logger } from '../log.js';
import type { RunResult, WorkItem, WorkQueue } from './queue.js';

export interface BullmqQueueOptions {
  /** redis://[user:password@]host:port[/db][?prefix=NAME]; the prefix (default "mediaflow") keeps several setups apart on one Redis. */
  url: string;
  /** Jobs this process runs at once. */
  concurrency: number;
  /** Per-pipeline limits within this process. */
  pipelineConcurrency?: Record<string, number>;
  /** Sources wait while this many jobs are waiting or running in the shared queue. */
  highWaterMark: number;
  /**
   * How long a worker's hold on a running job lasts without renewal (renewed
   * every half of it while the job runs): when a worker dies, its job goes to
   * another after this long, plus up to one stalled check (every lockMs). @default 30000
   */
  lockMs?: number;
  logger?: Logger;
}

const QUEUE_NAME = 'jobs';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reconnects after an outage: every 200 ms at first, then at most every 5 s, for ever (the work waits, it is not dropped). */
const retryStrategy = (times: number) => Math.min(200 * times, 5000);

/**
 * The shared queue: BullMQ on Redis, so workers on many machines take jobs
 * from one queue. BullMQ hands each entry to one worker and gives a dead
 * worker's entry to another once its lock expires; everything else — the
 * job's state, attempts, backoff, timeout and dead letter — is the ledger's
 * (every entry has attempts: 1 here, and a retry is a new, delayed entry).
 * An entry is named by (ledger job, attempt), so the same upload seen by
 * two sources, or by a notification and a listing, is queued once.
 */
export class BullmqQueue implements WorkQueue {
  readonly kind = 'redis';
  readonly location: string;
  private readonly connection: Redis;
  private readonly queue: Queue<WorkItem>;
  private worker: Worker<WorkItem> | null = null;
  private readonly perPipeline = new Map<string, PQueue>();
  private readonly logger: Logger;
  private running = 0;
  private readonly reconnected: (() => void)[] = [];
  private stopped = false;
  private counted = 0;
  private countedAt = 0;
  private addedSince = 0;

  private constructor(private readonly o: BullmqQueueOptions, private readonly prefix: string) {
    this.location = maskUrl(o.url);
    this.logger = (o.logger ?? silentLogger).child({ part: 'queue' });
    // maxRetriesPerRequest null: a command waits for the connection to come back instead of failing (BullMQ requires it of workers).
    this.connection = new Redis(o.url, { maxRetriesPerRequest: null, retryStrategy, enableReadyCheck: true });
    this.connection.on('error', (err) => this.logger.warn({ err: err.message, queue: this.location }, 'queue connection error (reconnecting)'));
    // A Redis that restarted may have come back empty (nothing kept on disk): whoever queues looks at the ledger again.
    let connected = false;
    this.connection.on('ready', () => {
      if (connected) {
        this.logger.info({ queue: this.location }, 'queue connection back');
        for (const listener of this.reconnected) listener();
      }
      connected = true;
    });
    this.queue = new Queue<WorkItem>(QUEUE_NAME, { connection: this.connection, prefix });
    this.queue.on('error', () => {}); // reported once by the connection above
    for (const [name, c] of Object.entries(o.pipelineConcurrency ?? {})) this.perPipeline.set(name, new PQueue({ concurrency: c }));
  }

  /** Connects (one try, so a wrong URL fails at start with the reason) and opens the queue. */
  static async connect(o: BullmqQueueOptions): Promise<BullmqQueue> {
    const masked = maskUrl(o.url);
    let url: URL;
    try {
      url = new URL(o.url);
    } catch {
      throw new MediaflowError('E_CONFIG', `queue URL ${masked} is not a URL (expected redis://host:6379)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new MediaflowError('E_CONFIG', `Expected --queue / MEDIAFLOW_QUEUE to be a redis:// URL, got \`${masked}\``);
    }
    const prefix = url.searchParams.get('prefix') ?? 'mediaflow';
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(prefix)) {
      throw new MediaflowError('E_CONFIG', `queue URL ${masked}: prefix ${JSON.stringify(prefix)} must be letters, digits, "_", "." or "-"`);
    }
    url.searchParams.delete('prefix');
    const plain = url.toString();
    const probe = new Redis(plain, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000 });
    // The socket's own error (ECONNREFUSED, ENOTFOUND, a wrong password) says more than "Connection is closed".
    let cause: Error | undefined;
    probe.on('error', (err: Error) => { cause ??= err; });
    try {
      await probe.connect();
      await probe.ping();
    } catch (err) {
      throw new MediaflowError('E_CONFIG', `cannot reach the queue at ${masked}: ${(cause ?? err as Error).message}`);
    } finally {
      probe.disconnect();
    }
    return new BullmqQueue({ ...o, url: plain }, prefix);
  }

  work(run: (item: WorkItem) => Promise<RunResult>): void {
    if (this.worker || this.stopped) return;
    const lockMs = this.o.lockMs ?? 30_000;
    this.worker = new Worker<WorkItem>(QUEUE_NAME, async (job: BullJob<WorkItem>, token?: string) => {
      this.running++;
      try {
        const pq = this.perPipeline.get(job.data.pipeline);
        const result = await (pq ? pq.add(() => run(job.data)) : run(job.data)).catch((err: unknown) => {
          // The ledger could not record the outcome (down for longer than it waits): the entry comes back, the job is not lost.
          this.logger.warn({ err, job: job.data.jobId }, 'job not recorded, queued again');
          return 'later' as const;
        });
        if (result === 'later') {
          // Another version of the key is running elsewhere: back in the queue for a moment, not an attempt.
          await job.moveToDelayed(Date.now() + 200 + Math.floor(Math.random() * 300), token);
          throw new DelayedError();
        }
      } finally {
        this.running--;
      }
    }, {
      connection: this.connection, prefix: this.prefix, concurrency: this.o.concurrency,
      lockDuration: lockMs, stalledInterval: lockMs,
      // A worker that dies mid-job is no reason to give the job up: the ledger counts its attempts.
      maxStalledCount: 1_000_000,
    });
    this.worker.on('error', (err) => this.logger.warn({ err: err.message }, 'queue worker error'));
  }

  async add(item: WorkItem, delayMs = 0): Promise<void> {
    if (this.stopped) return;
    this.addedSince++;
    await this.queue.add('job', item, {
      jobId: `j${item.jobId}-a${item.attempt}`,
      delay: delayMs > 0 ? delayMs : undefined,
      attempts: 1,
      // Removed once handled, so the same name can be queued again (a dlq retry starts over at attempt 0).
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  has(): boolean {
    return false;
  }

  onReconnect(listener: () => void): void {
    this.reconnected.push(listener);
  }

  async waitForRoom(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      if (Date.now() - this.countedAt > 200) {
        const c = await this.queue.getJobCounts('wait', 'active', 'prioritized');
        this.counted = (c.wait ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
        this.countedAt = Date.now();
        this.addedSince = 0;
      }
      if (this.counted + this.addedSince < this.o.highWaterMark) return;
      await sleep(100);
    }
  }

  async depth(): Promise<{ waiting: number; running: number; delayed: number }> {
    const c = await this.queue.getJobCounts('wait', 'active', 'prioritized', 'delayed');
    return { waiting: (c.wait ?? 0) + (c.prioritized ?? 0), running: c.active ?? 0, delayed: c.delayed ?? 0 };
  }

  get inFlight(): number {
    return this.running;
  }

  async onIdle(): Promise<void> {
    for (;;) {
      const d = await this.depth();
      if (d.waiting + d.running + d.delayed === 0 && this.running === 0) return;
      await sleep(50);
    }
  }

  async ping(): Promise<boolean> {
    if (this.connection.status !== 'ready') return false;
    try {
      return (await Promise.race([this.connection.ping(), sleep(2000).then(() => 'timeout')])) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Stops taking entries and waits for the running ones; the rest stay in Redis for the other workers. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.worker?.close();
    await this.queue.close();
    await this.connection.quit().catch(() => this.connection.disconnect());
  }

  /** Removes every key of this queue (tests, and tearing down a setup). */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }
}
