import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { MediaflowError } from './errors.js';
import { versionOf, type MediaEvent } from './events/media-event.js';
import type { Job, Ledger } from './ledger/ledger.js';
import { SqliteLedger } from './ledger/sqlite-ledger.js';
import { silentLogger, type Logger } from './log.js';
import type { LoadedPipeline } from './pipeline/load.js';
import { Router } from './pipeline/router.js';
import { backoffDelay } from './queue/backoff.js';
import { JobQueue, type WorkItem } from './queue/job-queue.js';
import { renderJob } from './runner/render.js';
import type { Source } from './sources/source.js';
import { isPermanent } from './steps/step.js';
import { FolderStore, removeStaleFiles } from './stores/folder-store.js';
import { SPOOL_NAME } from './runner/fetch-input.js';
import type { Store } from './stores/store.js';
import { StoreRegistry } from './stores/registry.js';
import { climbsOut } from './paths.js';

/** A poll of the ledger also looks this far back before the previous poll began: writes it overlapped are not missed. */
const RESUME_OVERLAP_MS = 2_000;

export interface ServiceOptions {
  pipelines: LoadedPipeline[];
  /** Folder of spooled inputs, and of the ledger unless `ledger` is given. */
  dataDir: string;
  /** The ledger (opened by the caller, e.g. openLedger for PostgreSQL); default: SQLite in dataDir. The service closes it on stop. */
  ledger?: Ledger;
  /** Jobs at once over all pipelines (default: CPU count + 2). */
  concurrency?: number;
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

/** What the service tells listeners (metrics, completion events). */
export interface JobOutcome {
  job: Job;
  pipeline: LoadedPipeline;
  /** skipped: the input was an output of mediaflow (nothing made, see RenderResult.skipped). */
  outcome: 'done' | 'failed' | 'dead' | 'skipped';
  seconds: number;
}

/**
 * The data flow in one place: sources -> router -> ledger -> queue -> runner.
 * Emits 'event' (MediaEvent) for every event a source delivers, 'routed'
 * (MediaEvent, Job[]) once it is matched, 'started' (Job, pipeline), 'job'
 * (JobOutcome) when an attempt ends, 'step' (pipeline, stepId, seconds).
 */
export class Service extends EventEmitter {
  readonly ledger: Ledger;
  readonly queue: JobQueue;
  readonly router: Router;
  readonly stores: StoreRegistry;
  readonly sources: Source[] = [];
  private readonly pipelines = new Map<string, LoadedPipeline>();
  private readonly logger: Logger;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private poller: NodeJS.Timeout | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private stopping = false;
  private polling = false;
  /** When the last pass over the ledger's unfinished jobs began (0: none yet). */
  private resumedAt = 0;
  /** The running (or last) pass over the ledger's unfinished jobs. */
  private resuming: Promise<void> = Promise.resolve();

  constructor(private readonly o: ServiceOptions) {
    super();
    this.logger = o.logger ?? silentLogger;
    for (const p of o.pipelines) this.pipelines.set(p.name, p);
    this.router = new Router(o.pipelines);
    this.stores = new StoreRegistry(o.env ?? process.env, this.logger);
    this.ledger = o.ledger ?? new SqliteLedger(o.dataDir);
    const pipelineConcurrency: Record<string, number> = {};
    for (const p of o.pipelines) if (p.concurrency) pipelineConcurrency[p.name] = p.concurrency;
    this.queue = new JobQueue({
      // Two more jobs than cores: sharp gives an image one libvips thread (glibc without jemalloc)
      // and a job also reads, hashes and writes, so one job per core leaves cores idle.
      // docs/BENCHMARKS.md: on 2 cores 3 jobs ran 1.17x faster than 2, and since inputs are read
      // into reused buffers, 4 ran faster than 3 in 4 of 4 paired rounds (+3 to +8 %).
      concurrency: o.concurrency ?? os.availableParallelism() + 2,
      pipelineConcurrency,
      highWaterMark: o.highWaterMark ?? 1000,
      run: (item) => this.process(item),
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

  /**
   * Starts every source (one per watched folder or bucket) and resumes
   * unfinished work. Returns once the sources are listening: their catch-up
   * listings and the resumed jobs go on in the background (with backpressure,
   * they can take as long as the backlog), so health and metrics are served
   * meanwhile.
   */
  async start(): Promise<void> {
    this.resuming = this.resume();
    for (const source of this.stores.sourcesFor(this.pipelineList)) {
      this.sources.push(source);
      await source.start((event) => this.accept(event));
      this.logger.info({ source: source.name }, 'source started');
    }
    this.sweep();
    this.sweeper = setInterval(() => this.sweep(), this.o.sweepIntervalMs ?? 600_000);
    this.sweeper.unref();
    const pollMs = this.o.pollMs ?? 1000;
    this.poller = setInterval(() => void this.resume(), pollMs);
    this.poller.unref();
  }

  /** Resolves when the last sweep has finished (tests). */
  sweeping: Promise<void> = Promise.resolve();

  /**
   * In the background, at start and then every sweepIntervalMs: leftovers of
   * writes a crash interrupted, in every output (temp files in folders,
   * incomplete multipart uploads in buckets) and in the spool of large
   * inputs. A temp file whose writer was a process of this machine that is
   * gone goes at once; any other only once older than the longest job
   * timeout plus a minute, since it may be a write in progress elsewhere (a
   * folder or bucket shared by several machines).
   */
  private sweep(): void {
    const outputs = new Map<string, Store>();
    for (const p of this.pipelineList) {
      const out = this.stores.outputFor(p);
      outputs.set(out.name, out);
    }
    const olderThan = Math.max(...this.pipelineList.map((p) => p.timeoutMs)) + 60_000;
    const swept = (where: string) => (n: number) => {
      if (n > 0) this.logger.info({ output: where, removed: n }, 'removed leftovers of interrupted writes');
    };
    const failed = (where: string) => (err: unknown) => this.logger.warn({ err, output: where }, 'could not sweep leftovers of interrupted writes');
    const spool = path.join(this.o.dataDir, 'tmp');
    this.sweeping = Promise.all([
      ...[...outputs.values()].map((store) => (store.sweep?.(olderThan) ?? Promise.resolve(0)).then(swept(store.name), failed(store.name))),
      // Large inputs spooled by fetchInput, left by a crash.
      removeStaleFiles(spool, SPOOL_NAME, olderThan).then(swept(spool), failed(spool)),
    ]).then(() => {});
  }

  /** Backpressure: a source's emit resolves only when the queue has room. */
  async accept(event: MediaEvent): Promise<void> {
    if (this.stopping) return;
    await this.queue.waitForRoom();
    await this.handle(event);
  }

  /** Routes one event; returns the jobs it made or found (none for a removal). */
  async handle(event: MediaEvent): Promise<Job[]> {
    this.emit('event', event);
    const jobs: Job[] = [];
    for (const { pipeline, relKey } of this.router.route(event)) {
      if (event.type === 'removed') {
        // Runs on after handle() returns, possibly past stop() closing the ledger: never an unhandled rejection.
        this.removed(pipeline, event.data.key, event.data.folder === true).catch((err) => {
          if (!this.stopping) this.logger.error({ err, pipeline: pipeline.name, key: event.data.key }, 'removing outputs failed');
        });
      }
      else jobs.push(await this.intake(pipeline, event.data.store, event.data.key, relKey, versionOf(event.data), event.data.changedAtMs));
    }
    if (jobs.length) this.emit('routed', event, jobs);
    return jobs;
  }

  /**
   * Queues one key of a store for one pipeline, outside any source (HTTP job
   * requests, `mediaflow process`). Throws E_INPUT when the key does not exist.
   */
  async submit(pipelineName: string, store: Store, key: string, relKey = key): Promise<Job> {
    const p = this.pipeline(pipelineName);
    const entry = await store.stat(key);
    if (!entry) throw new MediaflowError('E_INPUT', `${store.name}: ${key}: no such file or object`);
    return this.intake(p, store.name, key, relKey, versionOf({ ...entry, store: store.name }), entry.mtimeMs);
  }

  /** Records the job (or finds it) and queues it unless it is already finished. */
  async intake(p: LoadedPipeline, store: string, key: string, relKey: string, version: string, changedAt?: number): Promise<Job> {
    const { job } = await this.ledger.upsert({ pipeline: p.name, fingerprint: p.fingerprint, store, key, relKey, version, changedAt });
    if (job.state === 'done' || job.state === 'dead' || job.state === 'removed' || job.state === 'skipped') {
      this.logger.debug({ job: job.id, pipeline: p.name, key, state: job.state }, 'already seen');
      return job;
    }
    if (job.state === 'superseded') await this.ledger.markState(job.id, 'queued');
    this.enqueue(job);
    return job;
  }

  private enqueue(job: Job): void {
    this.queue.add({ jobId: job.id, pipeline: job.pipeline, key: `${job.pipeline}\0${job.store}\0${job.key}` });
  }

  /** Picks up jobs the ledger has but memory does not: after a restart, a dlq retry, or a due retry. */
  private resume(): Promise<void> {
    if (this.polling || this.stopping) return this.resuming;
    this.resuming = this.resumeAll();
    return this.resuming;
  }

  private async resumeAll(): Promise<void> {
    this.polling = true;
    try {
      await this.resumeBatches();
    } catch (err) {
      if (!this.stopping) this.logger.error({ err }, 'resuming unfinished jobs failed');
    } finally {
      this.polling = false;
    }
  }

  private async resumeBatches(): Promise<void> {
    // The first pass (start) takes every unfinished job; later ones what changed since the last pass
    // began (a dlq retry from another process, a retry fell due), with a margin for writes it overlapped.
    const since = this.resumedAt === 0 ? 0 : this.resumedAt - RESUME_OVERLAP_MS;
    this.resumedAt = Date.now();
    let after = 0;
    for (;;) {
      const batch = await this.ledger.unfinished(500, after, since);
      if (batch.length === 0) break;
      for (const job of batch) {
        after = job.id;
        if (this.stopping) return;
        if (this.queue.has(job.id) || !this.pipelines.has(job.pipeline)) continue;
        if (job.pipeline && this.pipelines.get(job.pipeline)!.fingerprint !== job.fingerprint) continue;
        if (job.state === 'failed' && job.nextAttemptAt && job.nextAttemptAt > Date.now()) continue;
        await this.queue.waitForRoom();
        this.enqueue(job);
      }
    }
  }

  /** A source key is gone (`folder`: a folder with every key below it): delete-outputs deletes what was made from it. */
  private async removed(p: LoadedPipeline, key: string, folder = false): Promise<void> {
    if (p.onDelete !== 'delete-outputs') return;
    const output = this.stores.outputFor(p);
    const store = this.stores.sourceFor(p).name;
    const jobs = folder ? await this.ledger.doneUnderFolder(p.name, store, key) : await this.ledger.doneForKey(p.name, store, key);
    for (const job of jobs) {
      for (const o of job.outputs) {
        // Another key with the same content may share these names (key template without {name}).
        await output.delete(o.key).catch((err) => this.logger.error({ err, key: o.key }, 'could not delete output'));
      }
      await this.ledger.markState(job.id, 'removed');
      this.logger.info({ pipeline: p.name, key: job.key, outputs: job.outputs.length }, 'input removed, outputs deleted');
    }
  }

  private async process(item: WorkItem): Promise<void> {
    const job = await this.ledger.startAttempt(item.jobId);
    if (!job) return;
    const p = this.pipelines.get(job.pipeline)!;
    const log = this.logger.child({ pipeline: p.name, key: job.key, job: job.id, attempt: job.attempts });
    log.debug('job started'); // the "job done" line carries the duration: one line a job at info
    this.emit('started', job, p);
    const started = performance.now();
    const stepMs: Record<string, number> = {};
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new MediaflowError('E_TIMEOUT', `job ran longer than ${p.timeoutMs} ms (timeoutMs)`)), p.timeoutMs);
    const work = renderJob(job, p, {
      ledger: this.ledger, renderLeaseMs: this.o.renderLeaseMs ?? 30_000, source: this.stores.byName(job.store), output: this.stores.outputFor(p),
      tmpDir: path.join(this.o.dataDir, 'tmp'), logger: log,
      onStep: (pipeline, stepId, seconds) => {
        stepMs[stepId] = Math.round(seconds * 1000);
        this.emit('step', pipeline, stepId, seconds);
      },
    }, controller.signal);
    // Wait for the work itself even after a timeout: its slot is only free when it really stops.
    const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }));
    try {
      const result = await Promise.race([work, aborted]);
      if (result.skipped) {
        const skipped = (await this.ledger.markSkipped(job.id, result.skipped, result.sha256))!;
        log.warn({ reason: result.skipped }, 'input skipped: it is an output of mediaflow');
        this.emit('job', { job: skipped, pipeline: p, outcome: 'skipped', seconds: (performance.now() - started) / 1000 } satisfies JobOutcome);
        return;
      }
      const done = (await this.ledger.markDone(job.id, result.outputs, result.deduplicated, result.sha256))!;
      const seconds = (performance.now() - started) / 1000;
      log.info({ duration: Math.round(seconds * 1000), steps: stepMs, deduplicated: result.deduplicated, outputs: result.outputs.length }, 'job done');
      this.emit('job', { job: done, pipeline: p, outcome: 'done', seconds } satisfies JobOutcome);
    } catch (err) {
      await this.failed(job, p, err, log, (performance.now() - started) / 1000);
    } finally {
      clearTimeout(timer);
      await work.catch(() => {});
    }
  }

  private async failed(job: Job, p: LoadedPipeline, err: unknown, log: Logger, seconds: number): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const { step, sha256 } = (err ?? {}) as { step?: string; sha256?: string };
    const last = job.attempts >= p.retry.attempts;
    if (isPermanent(err) || last || this.stopping) {
      if (this.stopping && !isPermanent(err) && !last) {
        // Interrupted by shutdown: leave it for the next start.
        await this.ledger.markFailed(job.id, message, Date.now(), sha256);
        return;
      }
      const dead = (await this.ledger.markDead(job.id, message, sha256))!;
      log.error({ err: message, step, attempts: job.attempts, duration: Math.round(seconds * 1000) }, 'job dead');
      this.emit('job', { job: dead, pipeline: p, outcome: 'dead', seconds } satisfies JobOutcome);
      return;
    }
    const delay = backoffDelay(job.attempts, p.retry.backoffMs, p.retry.maxBackoffMs);
    const failed = (await this.ledger.markFailed(job.id, message, Date.now() + delay, sha256))!;
    log.warn({ err: message, step, attempts: job.attempts, retryInMs: delay, duration: Math.round(seconds * 1000) }, 'job failed, will retry');
    this.emit('job', { job: failed, pipeline: p, outcome: 'failed', seconds } satisfies JobOutcome);
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      if (this.stopping) return;
      this.ledger.get(job.id).then((again) => {
        if (again?.state === 'failed' && !this.stopping) this.enqueue(again);
      }, (err: unknown) => log.warn({ err }, 'retry not queued now (the ledger poll will find it)'));
    }, delay);
    this.retryTimers.add(t);
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
    const job = await this.submit(p.name, store, key);
    await this.idle();
    return (await this.ledger.get(job.id))!;
  }

  /** Resolves when nothing is queued, running or waiting for a retry. */
  async idle(): Promise<void> {
    for (;;) {
      await Promise.all(this.sources.map((s) => s.caughtUp()));
      await this.resuming;
      await this.queue.onIdle();
      if (this.retryTimers.size === 0 && this.queue.size === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
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
    if (this.poller) clearInterval(this.poller);
    if (this.sweeper) clearInterval(this.sweeper);
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    await Promise.all(this.sources.map((s) => s.stop().catch((err) => this.logger.error({ err }, 'source stop failed'))));
    await this.queue.stop();
    await beforeLedgerCloses?.().catch((err: unknown) => this.logger.error({ err }, 'stop: completion events failed'));
    await this.ledger.close();
    this.logger.info('stopped');
  }
}
