import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { MediaflowError } from '../errors.js';
import { INPUT_COMPLETED, type InputCompletedEvent } from '../events/event-schema.js';
import type { CompletionRule, EventDraft, Job, OutboxEntry } from '../ledger/ledger.js';
import { silentLogger, type Logger } from '../log.js';
import { renderKey } from '../pipeline/key-template.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import type { JobOutcome, Service } from '../service.js';
import { ownerIsGone, thisProcess } from '../owner.js';
import { deliver } from './notify.js';

/** The completion event (docs/EVENTS.md): written as the manifest and POSTed to notify.url, byte for byte. */
export type CompletionEvent = InputCompletedEvent;
type PipelineResult = CompletionEvent['data']['pipelines'][number];

interface Member { job: Job; pipeline: LoadedPipeline }
/** A manifest to write, as the outbox keeps it. */
interface ManifestTarget { store: string; key: string; pipeline: string; sourceKey: string }
/** A notify URL to POST to, with its retry settings, as the outbox keeps it. */
interface NotifyTarget { url: string; attempts: number; backoffMs: number }
/** What the ledger records when an input completes: the event, and what of it to write and send. */
interface Draft extends EventDraft { event: CompletionEvent; manifests: ManifestTarget[]; targets: NotifyTarget[] }
type Entry = Pick<OutboxEntry<ManifestTarget, NotifyTarget>, 'id' | 'eventId' | 'body' | 'manifests' | 'targets'>;

export interface CompletionOptions {
  /** HMAC key for notify signatures (MEDIAFLOW_NOTIFY_SECRET); required when a pipeline has `notify`. */
  secret?: string;
  logger?: Logger;
  /** Per delivery attempt. */
  notifyTimeoutMs?: number;
}

/** An outbox entry whose owner cannot be asked (another machine) is taken over after this long. */
const ORPHAN_AFTER_MS = 3_600_000;

/** The senders of this process that are open: `<process>#<n>` (a process may open one after another closed). */
const liveSenders = new Set<string>();
let senders = 0;

/** An entry's sender is gone: its process ended (this machine), it closed (this process), or it is too old to wait for. */
function senderIsGone(owner: string | null, createdAt: number): boolean {
  if (owner === null || Date.now() - createdAt > ORPHAN_AFTER_MS) return true;
  const [proc] = owner.split('#');
  return proc === thisProcess ? !liveSenders.has(owner) : ownerIsGone(proc!);
}

/** Completion events of an earlier run written and sent at once at start (the rest wait their turn). */
export const RESEND_AT_ONCE = 8;

/**
 * Completion events: when every job of an input version (one per matching
 * pipeline) has ended, done or dead, one event goes out: manifests into the
 * outputs of the pipelines that ask for one, then a signed POST to each
 * distinct notify.url.
 * Emits 'completed' (CompletionEvent), 'notify-failed' (url, attempt, error,
 * final) and 'delivered' (url, attempt).
 *
 * Whether an input is complete is not decided here but by the ledger, in
 * the transaction that ends a job (Ledger.finish with this rule): that
 * transaction locks the input's jobs, and when none is left unfinished it
 * drafts the event here and, if the event has manifests or notify targets,
 * writes its outbox row before the commit. A crash cannot split the job's
 * end from its event, and of any number of workers ending an input's jobs
 * at once exactly one completes it, whatever the order. The process whose
 * transaction completed the input then writes and sends the event from its
 * outbox row, which leaves once written and delivered (or its attempts are
 * used up); what a stop or a crash cut short is written and sent at the
 * next start, under the same event id (at least once; receivers tell
 * repeats by the id). A dead letter retried later completes its input
 * again, as a new event.
 */
export class Completion extends EventEmitter {
  private readonly pending = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private readonly logger: Logger;
  private readonly onJob = (o: JobOutcome) => this.jobEnded(o);
  /** Whose outbox entries this instance writes and sends. */
  private readonly sender = `${thisProcess}#${++senders}`;

  constructor(private readonly service: Service, private readonly o: CompletionOptions = {}) {
    super();
    liveSenders.add(this.sender);
    this.logger = (o.logger ?? silentLogger).child({ part: 'completion' });
    const needSecret = service.pipelineList.filter((p) => p.notify);
    if (needSecret.length && !o.secret) {
      throw new MediaflowError('E_CONFIG', `MEDIAFLOW_NOTIFY_SECRET is not set, but ${needSecret.map((p) => `"${p.name}" (${p.file})`).join(', ')} ha${needSecret.length > 1 ? 've' : 's'} notify.url: completion events must be signed`);
    }
    // Stays set after close(): a job that ends later still records its input's event, sent at the next start.
    service.completionRule = {
      pipelines: new Map(service.pipelineList.map((p) => [p.name, p.fingerprint])),
      draft: (jobs) => this.draft(jobs),
    } satisfies CompletionRule<Draft>;
    service.on('job', this.onJob);
    this.track(this.resend().catch((err) => this.logger.error({ err }, 'completion events of the last run not read')));
  }

  private jobEnded(o: JobOutcome): void {
    if (!o.completed) return;
    const { draft, outboxId } = o.completed as unknown as { draft: Draft; outboxId: number | null }; // drafted by this rule
    // A listener's error would reach the job's own error handling and mark a finished job failed.
    this.track(this.send(draft, outboxId).catch((err) => this.logger.error({ err, key: draft.event.subject }, 'completion event failed')));
  }

  /** The event of an input whose jobs have all ended: called by the ledger inside its transaction, so synchronous and without I/O. */
  private draft(jobs: Job[]): Draft {
    const members = jobs.map((job) => ({ job, pipeline: this.service.pipeline(job.pipeline) }));
    const event = this.build(members);
    const targets: NotifyTarget[] = [];
    for (const { pipeline: { notify } } of members) {
      if (notify && !targets.some((t) => t.url === notify.url)) targets.push({ url: notify.url, attempts: notify.attempts, backoffMs: notify.backoffMs });
    }
    const manifests: ManifestTarget[] = [];
    for (const p of event.data.pipelines) {
      if (p.manifest && !manifests.some((m) => m.store === p.manifest!.store && m.key === p.manifest!.key)) {
        manifests.push({ ...p.manifest, pipeline: p.pipeline, sourceKey: event.subject });
      }
    }
    return { eventId: event.id, body: `${JSON.stringify(event, null, 2)}\n`, manifests, targets, owner: this.sender, event };
  }

  private manifestKey(m: Member): string | null {
    if (!m.pipeline.manifest) return null;
    return renderKey(m.pipeline.manifest.key, {
      sourceKey: m.job.relKey, id: 'manifest', ext: 'json', sha256: m.job.sha256 ?? 'unknown', pipeline: m.pipeline.name,
    });
  }

  private build(members: Member[]): CompletionEvent {
    const first = members[0]!.job;
    const pipelines = members.map(({ job, pipeline }): PipelineResult => {
      let manifest: PipelineResult['manifest'] = null;
      try {
        const key = this.manifestKey({ job, pipeline });
        if (key) manifest = { store: this.service.stores.outputFor(pipeline).name, key };
      } catch (err) {
        this.logger.error({ err, pipeline: pipeline.name }, 'manifest key refused');
      }
      return {
        pipeline: pipeline.name, job: job.id, state: job.state as 'done' | 'dead', attempts: job.attempts, deduplicated: job.deduplicated,
        outputs: job.outputs.map((o) => ({ step: o.stepId, store: o.store, key: o.key, size: o.size, contentType: o.contentType, width: o.width, height: o.height })),
        error: job.state === 'dead' ? job.error : null,
        manifest,
      };
    });
    const done = pipelines.filter((p) => p.state === 'done').length;
    return {
      specversion: '1.0', id: randomUUID(), source: 'mediaflow', type: INPUT_COMPLETED,
      subject: first.key, time: new Date().toISOString(), datacontenttype: 'application/json',
      data: {
        input: {
          store: first.store, key: first.key, version: first.version,
          sha256: members.map((m) => m.job.sha256).find((s) => s) ?? null,
          size: first.size, contentType: first.contentType,
        },
        state: done === pipelines.length ? 'done' : done === 0 ? 'dead' : 'partial',
        pipelines,
      },
    };
  }

  /** Writes and sends the event of an input this process's transaction completed (outboxId: its row, when it has anything to write or send). */
  private async send(d: Draft, outboxId: number | null): Promise<void> {
    const completion = d.event;
    const members = completion.data.pipelines.length;
    const log = this.logger.child({ key: completion.subject, event: completion.id });
    if (outboxId === null) {
      // For one pipeline without manifest or notify, its "job done" line already says it all.
      log[members > 1 ? 'info' : 'debug']({ state: completion.data.state, pipelines: members }, 'input complete');
      this.emit('completed', completion);
      return;
    }
    const entry: Entry = { id: outboxId, eventId: d.eventId, body: d.body, manifests: [...d.manifests], targets: [...d.targets] };
    await this.writeManifests(entry, log);
    log.info({ state: completion.data.state, pipelines: members }, 'input complete');
    this.emit('completed', completion);
    await this.deliverAll(entry, log);
  }

  /** Writes and sends what an earlier run left in the outbox, with the same event id, so receivers can tell a repeat. */
  private async resend(): Promise<void> {
    // Only what no live process is sending: with a shared ledger, other workers' entries are in flight now.
    // An owner on another machine cannot be asked: its entries are taken once they are an hour old.
    const entries: OutboxEntry<ManifestTarget, NotifyTarget>[] = [];
    for (const e of await this.service.ledger.outbox<ManifestTarget, NotifyTarget>()) {
      if (e.owner !== this.sender && senderIsGone(e.owner, e.createdAt) && await this.service.ledger.takeOutbox(e.id, e.owner, this.sender)) entries.push(e);
    }
    if (entries.length === 0) return;
    this.logger.info({ events: entries.length }, 'completion events the last run left unwritten or unsent: writing and sending them now');
    // A few at a time: an outage can leave thousands, and each holds a connection while it waits for a retry.
    let next = 0;
    const worker = async () => {
      while (next < entries.length && !this.closing.signal.aborted) {
        const e = entries[next++]!;
        const log = this.logger.child({ event: e.eventId });
        if (e.targets.length && !this.o.secret) {
          log.error({ urls: e.targets.map((t) => t.url) }, 'completion event not delivered: MEDIAFLOW_NOTIFY_SECRET is not set to sign it');
          e.targets = [];
        }
        await this.writeManifests(e, log).then(() => this.deliverAll(e, log)).catch((err) => log.error({ err }, 'completion event failed'));
      }
    };
    for (let i = 0; i < Math.min(RESEND_AT_ONCE, entries.length); i++) this.track(worker());
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** What is left of an entry goes back to the outbox (once the ledger is closed, it stays as it was: done again next start). */
  private async save(e: Pick<OutboxEntry, 'id'>, manifests: ManifestTarget[], targets: NotifyTarget[]): Promise<void> {
    await this.service.ledger.updateOutbox(e.id, manifests, targets)
      .catch((err: unknown) => this.logger.warn({ err, outbox: e.id }, 'outbox entry not updated: written or sent again at the next start'));
  }

  private async writeManifests(e: Omit<Entry, 'eventId'>, log: Logger): Promise<void> {
    if (e.manifests.length === 0) return;
    const failed: ManifestTarget[] = [];
    for (const m of e.manifests) {
      try {
        await this.service.stores.byName(m.store).write(m.key, Buffer.from(e.body), {
          contentType: 'application/json',
          // Tagged like every output, so a bucket source never takes the manifest as an input.
          metadata: { 'mediaflow-output': '1', 'mediaflow-pipeline': m.pipeline, 'mediaflow-source-key': m.sourceKey },
        });
      } catch (err) {
        log.error({ err, pipeline: m.pipeline, manifest: m.key }, 'could not write manifest: tried again at the next start');
        failed.push(m);
      }
    }
    e.manifests = failed;
    await this.save(e, e.manifests, e.targets);
  }

  private async deliverAll(e: Entry, log: Logger): Promise<void> {
    if (e.targets.length === 0) { await this.save(e, e.manifests, []); return; } // e.g. no secret to sign them with any more
    let left = [...e.targets];
    await Promise.all(e.targets.map(async (n) => {
      const delivered = await deliver(
        { url: n.url, body: e.body, eventId: e.eventId, secret: this.o.secret!, attempts: n.attempts, backoffMs: n.backoffMs },
        {
          signal: this.closing.signal,
          timeoutMs: this.o.notifyTimeoutMs,
          onDelivered: (attempt) => { log.info({ url: n.url, attempt }, 'completion event delivered'); this.emit('delivered', n.url, attempt); },
          onFailure: (attempt, error, final) => {
            if (!final) log.warn({ url: n.url, attempt, err: error }, 'completion event delivery failed, will retry');
            else if (this.closing.signal.aborted) log.warn({ url: n.url, attempt, err: error }, 'completion event delivery stopped: sent again at the next start');
            else log.error({ url: n.url, attempt, err: error }, 'completion event not delivered: attempts used up');
            this.emit('notify-failed', n.url, attempt, error, final);
          },
          onAbandoned: (attempt) => log.warn({ url: n.url, attempt }, 'completion event delivery stopped before the next attempt: sent again at the next start'),
        },
      );
      // Delivered, or its attempts used up: done with. Cut short by a stop: left for the next start.
      if (delivered || !this.closing.signal.aborted) {
        left = left.filter((t) => t !== n);
        await this.save(e, e.manifests, left);
      }
    }));
  }

  /** Stops listening; waits for manifests and deliveries under way, leaving retries not yet due in the outbox for the next start. */
  async close(): Promise<void> {
    this.service.off('job', this.onJob);
    this.closing.abort();
    await Promise.allSettled([...this.pending]);
    liveSenders.delete(this.sender);
  }
}
