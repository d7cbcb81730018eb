import { EventEmitter } from 'node:events';
import path from 'node:path';
import { MediaflowError } from './errors.js';
import type { JobRequest } from './events/job-request.js';
import type { MediaEvent } from './events/media-event.js';
import { Intake } from './intake/intake.js';
import { Resume } from './intake/resume.js';
import type { CompletionRule, Job, Ledger } from './ledger/ledger.js';
import { embeddedLedger } from './ledger/open.js';
import { silentLogger, type Logger } from './log.js';
import { climbsOut } from './paths.js';
import type { LoadedPipeline } from './pipeline/load.js';
import { Router } from './pipeline/router.js';
import { inProcessQueue } from './queue/open.js';
import type { WorkQueue } from './queue/queue.js';
import { JobRunner, spoolDirOf, type JobOutcome } from './runner/job-runner.js';
import { openSources } from './sources/open.js';
import type { Source } from './sources/source.js';
import { FolderStore } from './stores/folder-store.js';
import { StoreRegistry } from './stores/registry.js';
import type { Store } from './stores/store.js';
import { sweepLeftovers } from './runner/sweep.js';
import { defaultImageConcurrency, setImageConcurrency } from './steps/sharp-input.js';

export type { JobOutcome } from './runner/job-runner.js';

/**
 * What one process does. all: everything (the default); sources: watch,
 * listen, serve HTTP and queue jobs, render nothing; worker: take jobs from
 * the shared queue and render them, watch nothing.
 */
export type Role = 'all' | 'sources' | 'worker';

export interface ServiceOptions {
  pipelines: LoadedPipeline[];
  /** Folder of spooled inputs, and of the ledger unless `ledger` is given. */
  dataDir: string;
  /** The ledger (opened by the caller, e.g. openLedger for PostgreSQL); default: SQLite in dataDir. The service closes it on stop. */
  ledger?: Ledger;
  /** The queue (e.g. openQueue for Redis); default: in this process. The service stops it on stop. */
  queue?: WorkQueue;
  /** @default 'all' */
  role?: Role;
  /** Jobs at once over all pipelines, in this process (default: as many as images at once). */
  concurrency?: number;
  /** Images in the works at once in this process, whatever the jobs (default: two a core plus two; two on one core). */
  imageConcurrency?: number;
  /** Sources wait while this many jobs are queued or running (default 1000). */
  highWaterMark?: number;
  /** How often the ledger is checked for jobs queued by another process (dlq retry) or due for retry. */
  pollMs?: number;
  /**
   * How long a render claim holds without renewal (renewed every third of it
   * while the steps run): when a renderer on another machine dies, a job of
   * the same content waits this long before rendering it itself. A dead
   * renderer of this machine is noticed at once. @default 30000
   */
  renderLeaseMs?: number;
  /** How often output folders, the spool and bucket outputs are swept for leftovers of interrupted writes. @default 600000 */
  sweepIntervalMs?: number;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

/**
 * As many jobs as images at once (docs/BENCHMARKS.md, Image work and jobs):
 * with one output an input no job then waits for an image slot; with
 * several, a job's outputs share the images' bound with other jobs' decodes.
 */
export const defaultConcurrency = (imageConcurrency = defaultImageConcurrency()): number => imageConcurrency;

/**
 * The data flow in one place: sources -> router -> ledger -> queue -> runner.
 * Emits 'event' (MediaEvent) for every event a source delivers, 'routed'
 * (MediaEvent, Job[]) once it is matched, 'started' (Job, pipeline), 'job'
 * (JobOutcome) when an attempt ends, 'step' (pipeline, stepId, seconds).
 */
export class Service extends EventEmitter {
  readonly ledger: Ledger;
  readonly queue: WorkQueue;
  readonly router: Router;
  readonly stores: StoreRegistry;
  readonly sources: Source[] = [];
  readonly role: Role;
  /** Sources wait while this many jobs wait or run in the queue (the dashboard shows the depth against it). */
  readonly highWaterMark: number;
  private readonly pipelines = new Map<string, LoadedPipeline>();
  private readonly logger: Logger;
  private readonly runner: JobRunner;
  /**
   * When an input is complete and what that sends (completion/completion.ts
   * sets it): decided by the ledger in the transaction that ends a job.
   * Unset, jobs end without completions.
   */
  completionRule: CompletionRule | undefined;
  /** From events and requests to queued jobs (handle, submit). */
  readonly intake: Intake;
  private readonly resume: Resume;
  private sweeper: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Resolves when the last sweep has finished (tests). */
  sweeping: Promise<void> = Promise.resolve();

  constructor(private readonly o: ServiceOptions) {
    super();
    this.logger = o.logger ?? silentLogger;
    this.role = o.role ?? 'all';
    this.highWaterMark = o.highWaterMark ?? 1000;
    for (const p of o.pipelines) this.pipelines.set(p.name, p);
    this.router = new Router(o.pipelines);
    this.stores = new StoreRegistry(o.env ?? process.env);
    this.ledger = o.ledger ?? embeddedLedger(o.dataDir);
    if (this.role !== 'all' && (!o.queue || o.queue.kind === 'memory')) {
      throw new MediaflowError('E_CONFIG', `--role ${this.role} needs a queue shared with the other processes (--queue redis://… or MEDIAFLOW_QUEUE)`);
    }
    this.queue = o.queue ?? this.memoryQueue();
    this.runner = new JobRunner({
      ledger: this.ledger, queue: this.queue, stores: this.stores, pipelines: this.pipelines, tmpDir: spoolDirOf(o.dataDir),
      renderLeaseMs: o.renderLeaseMs ?? 30_000, logger: this.logger,
      emit: (event, ...args) => this.emit(event, ...args),
      stopping: () => this.stopping,
      onInterrupted: () => this.sweepSoon(),
      completionRule: () => this.completionRule,
    });
    const { ledger, queue, router, stores, logger } = this;
    const stopping = (): boolean => this.stopping;
    this.intake = new Intake({ ledger, queue, router, stores, logger, stopping,
      pipeline: (name) => this.pipeline(name), emit: (event, ...args) => this.emit(event, ...args) });
    this.resume = new Resume({ ledger, queue, pipelines: this.pipelines, logger, stopping, enqueue: (job) => this.intake.enqueue(job) });
    // Taking work from the start: a job submitted before start() (mediaflow process, tests) runs too.
    if (this.works && o.imageConcurrency) setImageConcurrency(o.imageConcurrency);
    if (this.works) this.queue.work((item) => this.runner.run(item));
  }

  private memoryQueue(): WorkQueue {
    const pipelineConcurrency: Record<string, number> = {};
    for (const p of this.o.pipelines) if (p.concurrency) pipelineConcurrency[p.name] = p.concurrency;
    return inProcessQueue({
      concurrency: this.o.concurrency ?? defaultConcurrency(this.o.imageConcurrency),
      pipelineConcurrency,
      highWaterMark: this.highWaterMark,
      onSuperseded: (older, newer) => {
        this.ledger.markState(older.jobId, 'superseded').then(
          () => this.logger.info({ job: older.jobId, by: newer.jobId, pipeline: older.pipeline }, 'job superseded by a newer version'),
          (err: unknown) => this.logger.error({ err, job: older.jobId }, 'could not mark a superseded job'));
      },
    });
  }

  pipeline(name: string): LoadedPipeline {
    const p = this.pipelines.get(name);
    if (!p) throw new MediaflowError('E_PIPELINE_UNKNOWN', `no pipeline named "${name}" (known: ${[...this.pipelines.keys()].join(', ') || 'none'})`);
    return p;
  }

  get pipelineList(): LoadedPipeline[] {
    return [...this.pipelines.values()];
  }

  private get listens(): boolean {
    return this.role !== 'worker';
  }

  private get works(): boolean {
    return this.role !== 'sources';
  }

  /**
   * Starts what this role does: every source (one per watched folder or
   * bucket), the ledger poll that resumes unfinished work, and the workers.
   * Returns once the sources are listening: their catch-up listings and the
   * resumed jobs go on in the background (with backpressure, they can take
   * as long as the backlog), so health and metrics are served meanwhile.
   */
  async start(): Promise<void> {
    if (this.works) {
      this.sweep();
      this.sweeper = setInterval(() => this.sweep(), this.o.sweepIntervalMs ?? 600_000);
      this.sweeper.unref();
    }
    if (!this.listens) return;
    this.resume.start(this.o.pollMs ?? 1000);
    for (const source of openSources(this.pipelineList, this.stores, this.logger)) {
      this.sources.push(source);
      await source.start((event) => this.accept(event), (request) => this.acceptJob(request));
      this.logger.info({ source: source.name }, 'source started');
    }
  }

  private lastSweep = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** A dead worker's temp files go now rather than at the next interval (one sweep a second at most, however many jobs it left). */
  private sweepSoon(): void {
    if (this.stopping || this.sweepTimer) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      if (!this.stopping) this.sweep();
    }, Math.max(0, this.lastSweep + 1000 - Date.now()));
    this.sweepTimer.unref();
  }

  /** In the background, at start and every sweepIntervalMs: see sweepLeftovers. */
  private sweep(): void {
    this.lastSweep = Date.now();
    const outputs = new Map<string, Store>();
    for (const p of this.pipelineList) {
      const out = this.stores.outputFor(p);
      outputs.set(out.name, out);
    }
    const olderThan = Math.max(...this.pipelineList.map((p) => p.timeoutMs)) + 60_000;
    this.sweeping = sweepLeftovers([...outputs.values()], spoolDirOf(this.o.dataDir), olderThan, this.logger);
  }

  /** Backpressure: a source's emit resolves only when the queue has room. */
  async accept(event: MediaEvent): Promise<void> {
    if (this.stopping) return;
    await this.queue.waitForRoom();
    await this.intake.handle(event);
  }

  /** A job request from a source (a message queue): backpressure as for events. */
  async acceptJob(request: JobRequest): Promise<void> {
    if (this.stopping) throw new MediaflowError('E_STOPPING', 'mediaflow is stopping: the request is left for the next start');
    await this.queue.waitForRoom();
    await this.intake.request(request);
  }

  /**
   * Runs one file through one pipeline now (retries included) and returns the
   * final job. A file inside the pipeline's source folder keeps its folder in
   * {dir}; any other file is keyed by its base name.
   */
  async processFile(pipelineName: string, file: string): Promise<Job> {
    const p = this.pipeline(pipelineName);
    let store = new FolderStore(path.dirname(file));
    let key = path.basename(file);
    if (p.source.type === 'folder') {
      const rel = path.relative(p.source.path, file);
      if (!climbsOut(rel)) { store = new FolderStore(p.source.path); key = rel.split(path.sep).join('/'); }
    }
    const job = await this.intake.submit(p.name, store, key);
    await this.idle();
    return (await this.ledger.get(job.id))!;
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  async idle(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.caughtUp()));
    await this.resume.running();
    await this.queue.onIdle();
  }

  /**
   * Graceful stop: intake first, then in-flight jobs finish; waiting ones stay queued in the ledger.
   * `beforeLedgerCloses`: runs once the jobs in flight have finished and while
   * the ledger is still open (the completion events' last deliveries record
   * themselves there).
   */
  async stop(beforeLedgerCloses?: () => Promise<void>): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.resume.stop();
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    await Promise.all(this.sources.map((s) => s.stop().catch((err) => this.logger.error({ err }, 'source stop failed'))));
    await this.queue.stop();
    await beforeLedgerCloses?.().catch((err: unknown) => this.logger.error({ err }, 'stop: completion events failed'));
    await this.ledger.close();
    this.logger.info('stopped');
  }
}
