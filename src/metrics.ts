import type { EventEmitter } from 'node:events';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MediaEvent } from './events/media-event.js';
import { JOB_STATES, type Job } from './ledger/ledger.js';
import type { LoadedPipeline } from './pipeline/load.js';
import { workerId } from './owner.js';
import type { JobOutcome, Service } from './service.js';
import { imageWork } from './steps/sharp-input.js';

const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const LAG_BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86_400];

/** `folder:/abs/inbox` -> `folder`: a label per kind of source, not per path (bounded cardinality). */
export function sourceKind(source: string): string {
  const i = source.indexOf(':');
  return i < 0 ? source : source.slice(0, i);
}

/**
 * Prometheus metrics fed from the service's events. Its own Registry, not
 * prom-client's global one: two services in one process (tests) must not
 * share or clash over series.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly detach: (() => void)[] = [];
  private readonly eventsReceived: Counter<'source'>;
  private readonly jobs: Counter<'pipeline' | 'state'>;
  private readonly stepDuration: Histogram<'pipeline' | 'step'>;
  private readonly jobDuration: Histogram<'pipeline'>;
  private readonly dedupHits: Counter<'pipeline'>;
  private readonly eventLag: Histogram<'pipeline'>;
  private readonly notifyFailures: Counter;
  private readonly completions: Counter;
  private readonly workerJobs: Counter<'worker' | 'state'>;
  private readonly worker: string;

  constructor(service: Service, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.eventsReceived = new Counter({
      name: 'mediaflow_events_received_total', help: 'Events delivered by sources, by kind of source (folder, bucket, http)',
      labelNames: ['source'], registers,
    });
    this.jobs = new Counter({
      name: 'mediaflow_jobs_total', help: 'Job attempts ended: done and dead are final, failed attempts are retried',
      labelNames: ['pipeline', 'state'], registers,
    });
    // The shared picture, from the queue and the ledger (every process of a scaled-out setup reports the same).
    new Gauge({
      name: 'mediaflow_queue_depth', help: 'Jobs waiting for a slot (not yet running), retries waiting for their time included', registers,
      async collect() {
        const d = await service.queue.depth().catch(() => null);
        if (d) this.set(d.waiting + d.delayed);
      },
    });
    new Gauge({
      name: 'mediaflow_ledger_jobs', help: 'Jobs in the ledger by state (all processes)', labelNames: ['state'], registers,
      async collect() {
        const c = await service.ledger.counts().catch(() => null);
        if (!c) return;
        for (const state of JOB_STATES) this.labels(state).set(c[state]);
      },
    });
    // This process's own share, labelled with its worker id.
    const worker = workerId();
    new Gauge({
      name: 'mediaflow_jobs_in_flight', help: 'Jobs running now in this process', labelNames: ['worker'], registers,
      collect() { this.labels(worker).set(service.queue.inFlight); },
    });
    new Gauge({
      name: 'mediaflow_images', help: 'Images of this process: working (being made, or queued in libuv\'s pool) and waiting for a slot (--image-concurrency)',
      labelNames: ['worker', 'state'], registers,
      collect() {
        const { working, waiting } = imageWork();
        this.labels(worker, 'working').set(working);
        this.labels(worker, 'waiting').set(waiting);
      },
    });
    this.workerJobs = new Counter({
      name: 'mediaflow_worker_jobs_total', help: 'Job attempts this process ended, by outcome', labelNames: ['worker', 'state'], registers,
    });
    this.worker = worker;
    this.stepDuration = new Histogram({
      name: 'mediaflow_step_duration_seconds', help: 'Time to run one step and write its output',
      labelNames: ['pipeline', 'step'], buckets: DURATION_BUCKETS, registers,
    });
    this.jobDuration = new Histogram({
      name: 'mediaflow_job_duration_seconds', help: 'Time of one job attempt, fetch to last output',
      labelNames: ['pipeline'], buckets: DURATION_BUCKETS, registers,
    });
    this.dedupHits = new Counter({
      name: 'mediaflow_dedup_hits_total',
      help: 'Work skipped: an event for a key version already done, or content already rendered (outputs copied)',
      labelNames: ['pipeline'], registers,
    });
    this.eventLag = new Histogram({
      name: 'mediaflow_event_lag_seconds', help: 'From the file mtime / object event time to the start of its first attempt',
      labelNames: ['pipeline'], buckets: LAG_BUCKETS, registers,
    });
    this.notifyFailures = new Counter({
      name: 'mediaflow_notify_failures_total', help: 'Completion event deliveries that failed (each failed attempt)', registers,
    });
    this.completions = new Counter({
      name: 'mediaflow_completions_total', help: 'Inputs whose every matching pipeline finished (completion events)', registers,
    });

    // Zero series from the start, so a dashboard shows 0 rather than "no data".
    for (const p of service.pipelineList) {
      for (const state of ['done', 'failed', 'dead', 'skipped']) this.jobs.labels(p.name, state).inc(0);
      this.dedupHits.labels(p.name).inc(0);
    }

    this.listen(service, 'event', (e: MediaEvent) => this.eventsReceived.labels(sourceKind(e.source)).inc());
    this.listen(service, 'routed', (_e: MediaEvent, jobs: Job[]) => {
      // A duplicate notification or a catch-up listing found the key version done: no work at all.
      for (const j of jobs) if (j.state === 'done') this.dedupHits.labels(j.pipeline).inc();
    });
    this.listen(service, 'started', (job: Job, p: LoadedPipeline) => {
      // First attempt only: a retry's delay is backoff, not lag.
      if (job.attempts === 1 && job.changedAt) this.eventLag.labels(p.name).observe(Math.max(0, Date.now() - job.changedAt) / 1000);
    });
    this.listen(service, 'job', (o: JobOutcome) => {
      this.jobs.labels(o.pipeline.name, o.outcome).inc();
      this.workerJobs.labels(this.worker, o.outcome).inc();
      this.jobDuration.labels(o.pipeline.name).observe(o.seconds);
      if (o.outcome === 'done' && o.job.deduplicated) this.dedupHits.labels(o.pipeline.name).inc();
    });
    this.listen(service, 'step', (pipeline: string, step: string, seconds: number) => {
      this.stepDuration.labels(pipeline, step).observe(seconds);
    });
  }

  /** Counts completion events and failed deliveries (see completion/completion.ts). */
  watchCompletion(completion: EventEmitter): void {
    this.listen(completion, 'completed', () => this.completions.inc());
    this.listen(completion, 'notify-failed', () => this.notifyFailures.inc());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    for (const off of this.detach.splice(0)) off();
  }

  private listen(emitter: EventEmitter, name: string, fn: (...args: never[]) => void): void {
    const handler = fn as (...args: unknown[]) => void;
    emitter.on(name, handler);
    this.detach.push(() => emitter.off(name, handler));
  }
}
