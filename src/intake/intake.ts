import path from 'node:path';
import { MediaflowError } from '../errors.js';
import type { JobRequest } from '../events/job-request.js';
import { makeEvent, versionOf, type MediaEvent } from '../events/media-event.js';
import type { Job, Ledger, NewJob } from '../ledger/ledger.js';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { confineKey, resolveInside } from '../pipeline/key-template.js';
import type { Router } from '../pipeline/router.js';
import { itemOf, type WorkQueue } from '../queue/queue.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { Store } from '../stores/store.js';

export interface IntakeDeps {
  ledger: Ledger;
  queue: WorkQueue;
  router: Router;
  stores: StoreRegistry;
  pipeline(name: string): LoadedPipeline;
  logger: Logger;
  /** Events for listeners: 'event' (MediaEvent) as it arrives, 'routed' (MediaEvent, Job[]) once it is matched. */
  emit(event: 'event' | 'routed', ...args: unknown[]): void;
  /** True once the process is stopping: a removal still running then may meet a closed ledger, and says nothing. */
  stopping(): boolean;
}

/**
 * From an event (or a request for one key) to queued jobs: route it, record
 * one job per pipeline in the ledger, queue those still to do. A removal
 * deletes what was made from the key instead.
 */
export class Intake {
  constructor(private readonly d: IntakeDeps) {}

  /** Routes one event; returns the jobs it made or found (none for a removal). */
  async handle(event: MediaEvent): Promise<Job[]> {
    this.d.emit('event', event);
    // An event older than one already seen for its key (a late notification, another trigger's copy) must not
    // supersede the newer version, nor remove its outputs.
    const routes = this.d.router.route(event);
    if (routes.length && event.data.sequencer !== undefined && !(await this.d.ledger.seeSequencer(event.data.store, event.data.key, event.data.sequencer))) {
      this.d.logger.info({ key: event.data.key, store: event.data.store, sequencer: event.data.sequencer, from: event.source },
        'event older than one already seen for this key: not processed');
      return [];
    }
    const jobs: Job[] = [];
    const toQueue: Job[] = [];
    const { store, key, size, contentType } = event.data;
    for (const { pipeline, relKey } of routes) {
      if (event.type === 'removed') {
        // Runs on after handle() returns, possibly past stop() closing the ledger: never an unhandled rejection.
        this.removed(pipeline, key, event.data.folder === true).catch((err) => {
          if (!this.d.stopping()) this.d.logger.error({ err, pipeline: pipeline.name, key }, 'removing outputs failed');
        });
        continue;
      }
      const { job, queue } = await this.record(pipeline, { store, key, relKey, version: versionOf(event.data), changedAt: event.data.changedAtMs, size, contentType });
      jobs.push(job);
      if (queue) toQueue.push(job);
    }
    // Every pipeline's job is in the ledger before any is queued: the input's completion, decided when
    // its last job ends, never sees it complete before all of its jobs exist.
    for (const job of toQueue) await this.enqueue(job);
    if (jobs.length) this.d.emit('routed', event, jobs);
    return jobs;
  }

  /** Queues one key of a store for one pipeline, outside any source. Throws E_INPUT when the key does not exist. */
  async submit(pipelineName: string, store: Store, key: string, relKey = key): Promise<Job> {
    const p = this.d.pipeline(pipelineName);
    const entry = await store.stat(key);
    if (!entry) throw new MediaflowError('E_INPUT', `${store.name}: ${key}: no such file or object`);
    return this.add(p, store.name, key, relKey, versionOf({ ...entry, store: store.name }), entry.mtimeMs, { size: entry.size, contentType: entry.contentType });
  }

  /**
   * Queues the job a request names (POST /v1/jobs, a queue message), and
   * tells metrics and completion about it as the event it is: they follow
   * 'event' and 'routed', which a request outside every source would
   * otherwise never produce.
   */
  async request(r: JobRequest): Promise<Job> {
    const p = this.d.pipeline(r.pipeline);
    let storeName: string;
    let key: string;
    let relKey: string;
    if (r.path !== undefined) {
      if (p.source.type === 'folder') {
        // Confined to the source folder: "../x" or an absolute path is refused, not resolved.
        const full = resolveInside(p.source.path, r.path);
        relKey = path.relative(p.source.path, full).split(path.sep).join('/');
        key = relKey;
      } else {
        relKey = confineKey(r.path);
        key = p.source.prefix + relKey;
      }
      storeName = this.d.stores.sourceFor(p).name;
    } else {
      storeName = `bucket:${r.bucket!}`;
      key = r.key!;
      const src = p.source;
      relKey = src.type !== 'folder' && src.bucket === r.bucket && key.startsWith(src.prefix) ? key.slice(src.prefix.length) : key;
      confineKey(relKey); // outputs are named after it: refuse "..", NUL, over-long names now
    }
    const store = this.d.stores.byName(storeName);
    const job = await this.submit(p.name, store, key, relKey);
    const event = makeEvent('http:jobs', 'created', { store: store.name, key });
    this.d.emit('event', event);
    this.d.emit('routed', event, [job]);
    return job;
  }

  /** Records one key version for one pipeline and queues it unless it is already finished. */
  async add(p: LoadedPipeline, store: string, key: string, relKey: string, version: string, changedAt?: number,
    about: { size?: number; contentType?: string } = {}): Promise<Job> {
    const { job, queue } = await this.record(p, { store, key, relKey, version, changedAt, ...about });
    if (queue) await this.enqueue(job);
    return job;
  }

  /** Queues a job the ledger holds (a resumed one). */
  async enqueue(job: Job): Promise<void> {
    await this.d.queue.add(itemOf(job));
  }

  /**
   * Records the job (or finds it); `queue` says whether it is still to do.
   * The same key version seen twice (two sources, a notification and a
   * listing) is one ledger row, and so one queue entry.
   */
  private async record(p: LoadedPipeline, input: Omit<NewJob, 'pipeline' | 'fingerprint'>): Promise<{ job: Job; queue: boolean }> {
    const { ledger, queue, logger } = this.d;
    const { job, created } = await ledger.upsert({ pipeline: p.name, fingerprint: p.fingerprint, ...input });
    if (job.state === 'done' || job.state === 'dead' || job.state === 'removed' || job.state === 'skipped') {
      logger.debug({ job: job.id, pipeline: p.name, key: input.key, state: job.state }, 'already seen');
      return { job, queue: false };
    }
    if (job.state === 'superseded') await ledger.markState(job.id, 'queued');
    // A shared queue cannot replace a waiting entry: the older versions' jobs are superseded in the ledger, and skipped when their turn comes.
    if (queue.kind !== 'memory' && (created || job.state === 'superseded')) {
      const n = await ledger.supersedeOthers(job);
      if (n) logger.info({ job: job.id, superseded: n, pipeline: p.name, key: input.key }, 'older versions superseded by a newer one');
    }
    return { job, queue: true };
  }

  /** A source key is gone (`folder`: a folder with every key below it): delete-outputs deletes what was made from it. */
  private async removed(p: LoadedPipeline, key: string, folder = false): Promise<void> {
    if (p.onDelete !== 'delete-outputs') return;
    const { ledger, stores, logger } = this.d;
    const output = stores.outputFor(p);
    const store = stores.sourceFor(p).name;
    const jobs = folder ? await ledger.doneUnderFolder(p.name, store, key) : await ledger.doneForKey(p.name, store, key);
    for (const job of jobs) {
      for (const o of job.outputs) {
        // Another key with the same content may share these names (key template without {name}).
        await output.delete(o.key).catch((err) => logger.error({ err, key: o.key }, 'could not delete output'));
      }
      await ledger.markState(job.id, 'removed');
      logger.info({ pipeline: p.name, key: job.key, outputs: job.outputs.length }, 'input removed, outputs deleted');
    }
  }
}
