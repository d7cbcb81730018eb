import path from 'node:path';
import { MediaflowError } from '../errors.js';
import type { AttemptRecord, CompletionRule, Ended, Job, JobEnd, Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { backoffDelay } from '../queue/backoff.js';
import { itemOf, type RunResult, type WorkItem, type WorkQueue } from '../queue/queue.js';
import { isPermanent } from '../steps/step.js';
import type { StoreRegistry } from '../stores/registry.js';
import { workerId } from '../owner.js';
import { renderJob } from './render.js';

/** What a job's attempt ended as, for listeners (metrics, completion events). */
export interface JobOutcome {
  job: Job;
  pipeline: LoadedPipeline;
  /** skipped: the input was an output of mediaflow (nothing made, see RenderResult.skipped). */
  outcome: 'done' | 'failed' | 'dead' | 'skipped';
  seconds: number;
  /** This end completed the job's input (decided with the end, in one ledger transaction; see Ledger.finish). */
  completed?: Ended['completed'];
}

export interface JobRunnerDeps {
  ledger: Ledger;
  queue: WorkQueue;
  stores: StoreRegistry;
  pipelines: Map<string, LoadedPipeline>;
  /** Where large inputs are spooled. */
  tmpDir: string;
  renderLeaseMs: number;
  logger: Logger;
  /** Events for listeners: 'started' (Job, pipeline), 'job' (JobOutcome), 'step' (pipeline, stepId, seconds). */
  emit(event: 'started' | 'job' | 'step', ...args: unknown[]): void;
  /** True once the process is stopping: an interrupted job is left for the next start, not retried or dead-lettered. */
  stopping(): boolean;
  /** A job is run again after an attempt that never ended (its worker died): that worker's temp files may be left. */
  onInterrupted(): void;
  /** How inputs complete, passed to the ledger with every end (none: jobs end without completions). */
  completionRule(): CompletionRule | undefined;
}

/**
 * Runs one queued item: starts the attempt in the ledger, renders, and
 * records the outcome there. The ledger is the one source of truth for
 * attempts, retries (exponential backoff with jitter: the next attempt is
 * queued with that delay), timeouts and dead letters, whichever queue
 * handed the item over.
 */
export class JobRunner {
  constructor(private readonly d: JobRunnerDeps) {}

  async run(item: WorkItem): Promise<RunResult> {
    const started_ = await this.d.ledger.startAttempt(item.jobId, { alone: this.d.queue.kind === 'redis' });
    // 'key-busy': another version of this key runs on another worker; the queue offers it again shortly.
    if (started_ === 'key-busy') return 'later';
    const job = started_;
    if (!job) return;
    const p = this.d.pipelines.get(job.pipeline);
    if (!p) return;
    const log = this.d.logger.child({ pipeline: p.name, key: job.key, job: job.id, attempt: job.attempts });
    // More attempts than when it was queued: an attempt began after that and never recorded an end.
    if (job.attempts - 1 > item.attempt) {
      log.info({ queuedAtAttempt: item.attempt }, 'job taken over from an attempt that never ended (its worker stopped)');
      this.d.onInterrupted();
    }
    log.debug('job started'); // the "job done" line carries the duration: one line a job at info
    this.d.emit('started', job, p);
    const started = performance.now();
    const stepMs: Record<string, number> = {};
    // The attempt's record goes into the statement that ends it (the ledger's attempt log): no statement of its own.
    const steps: AttemptRecord['steps'] = [];
    // An input's steps are made at once and end in any order: recorded in the pipeline's order.
    const order = new Map(p.steps.map((s, i) => [s.id, i]));
    const inOrder = () => [...steps].sort((a, b) => order.get(a.step)! - order.get(b.step)!);
    const record = (outcome: AttemptRecord['outcome'], more: Partial<AttemptRecord> = {}): AttemptRecord =>
      ({ attempt: job.attempts, startedAt: job.updatedAt, endedAt: Date.now(), outcome, steps: inOrder(), worker, ...more });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new MediaflowError('E_TIMEOUT', `job ran longer than ${p.timeoutMs} ms (timeoutMs)`)), p.timeoutMs);
    const work = renderJob(job, p, {
      ledger: this.d.ledger, renderLeaseMs: this.d.renderLeaseMs, source: this.d.stores.byName(job.store), output: this.d.stores.outputFor(p),
      tmpDir: this.d.tmpDir, logger: log,
      onStep: (pipeline, stepId, seconds) => {
        stepMs[stepId] = Math.round(seconds * 1000);
        steps.push({ step: stepId, ms: stepMs[stepId] });
        this.d.emit('step', pipeline, stepId, seconds);
      },
    }, controller.signal);
    // Wait for the work itself even after a timeout: its slot is only free when it really stops.
    const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }));
    try {
      const result = await Promise.race([work, aborted]);
      const seconds = (performance.now() - started) / 1000;
      if (result.skipped) {
        const skipped = await this.end(job, { state: 'skipped', reason: result.skipped, sha256: result.sha256, attempt: record('skipped', { error: result.skipped }) });
        log.warn({ reason: result.skipped }, 'input skipped: it is an output of mediaflow');
        this.d.emit('job', { job: skipped.job, pipeline: p, outcome: 'skipped', seconds, completed: skipped.completed } satisfies JobOutcome);
        return;
      }
      const done = await this.end(job, {
        state: 'done', outputs: result.outputs, deduplicated: result.deduplicated, sha256: result.sha256,
        attempt: record('done', result.copiedFrom === undefined ? {} : { copiedFrom: result.copiedFrom }),
      });
      log.info({ duration: Math.round(seconds * 1000), steps: stepMs, deduplicated: result.deduplicated, outputs: result.outputs.length }, 'job done');
      this.d.emit('job', { job: done.job, pipeline: p, outcome: 'done', seconds, completed: done.completed } satisfies JobOutcome);
    } catch (err) {
      await this.failed(job, p, err, log, (performance.now() - started) / 1000, record);
    } finally {
      clearTimeout(timer);
      await work.catch(() => {});
    }
  }

  /** The end and, when it completes the input, its completion event: one ledger transaction. */
  private async end(job: Job, end: JobEnd): Promise<Ended> {
    // null only if the row went (it cannot while its attempt runs): the end is then the job as it ran.
    return (await this.d.ledger.finish(job.id, end, this.d.completionRule())) ?? { job, completed: null };
  }

  private async failed(job: Job, p: LoadedPipeline, err: unknown, log: Logger, seconds: number,
    record: (outcome: AttemptRecord['outcome'], more: Partial<AttemptRecord>) => AttemptRecord): Promise<void> {
    const message = err instanceof Error ? err.message : String(err);
    const { step, sha256 } = (err ?? {}) as { step?: string; sha256?: string };
    const failure = { error: message, ...(typeof step === 'string' && { step }) };
    const last = job.attempts >= p.retry.attempts;
    const stopping = this.d.stopping();
    if (isPermanent(err) || last || stopping) {
      if (stopping && !isPermanent(err) && !last) {
        // Interrupted by shutdown: left for the next start.
        await this.d.ledger.markFailed(job.id, message, Date.now(), sha256, record('failed', failure));
        return;
      }
      const dead = await this.end(job, { state: 'dead', error: message, sha256, attempt: record('dead', failure) });
      log.error({ err: message, step, attempts: job.attempts, duration: Math.round(seconds * 1000) }, 'job dead');
      this.d.emit('job', { job: dead.job, pipeline: p, outcome: 'dead', seconds, completed: dead.completed } satisfies JobOutcome);
      return;
    }
    const delay = backoffDelay(job.attempts, p.retry.backoffMs, p.retry.maxBackoffMs);
    const failed = (await this.d.ledger.markFailed(job.id, message, Date.now() + delay, sha256, record('failed', failure)))!;
    log.warn({ err: message, step, attempts: job.attempts, retryInMs: delay, duration: Math.round(seconds * 1000) }, 'job failed, will retry');
    this.d.emit('job', { job: failed, pipeline: p, outcome: 'failed', seconds } satisfies JobOutcome);
    // Queued now to run after the delay; should that be lost (a restart), the ledger's poll finds the job when it falls due.
    await this.d.queue.add(itemOf(failed), delay).catch((e: unknown) => log.warn({ err: e }, 'retry not queued now (the ledger poll will find it)'));
  }
}

/** This process, as the attempt log names the worker of each attempt (the same id as the metrics' `worker` label). */
const worker = workerId();

/** Where a process spools inputs too large to hold in memory, below its data folder. */
export const spoolDirOf = (dataDir: string): string => path.join(dataDir, 'tmp');
