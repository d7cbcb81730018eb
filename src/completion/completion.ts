import { createHash, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { MediaflowError } from '../errors.js';
import { makeEvent, type MediaEvent } from '../events/media-event.js';
import type { Job, JobState, OutboxEntry } from '../ledger/ledger.js';
import { silentLogger, type Logger } from '../log.js';
import { renderKey } from '../pipeline/key-template.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import type { JobOutcome, Service } from '../service.js';
import { ownerIsGone, thisProcess } from '../owner.js';
import { deliver } from './notify.js';

/** One pipeline's part of a completion event. */
export interface PipelineResult {
  pipeline: string;
  job: number;
  state: 'done' | 'dead';
  attempts: number;
  deduplicated: boolean;
  outputs: { step: string; store: string; key: string; size: number; contentType: string; width?: number; height?: number }[];
  error: string | null;
  /** Where this pipeline's manifest was written, when it asks for one. */
  manifest: { store: string; key: string } | null;
}

/** The completion event (CloudEvents 1.0 shape): written as the manifest and POSTed to notify.url, byte for byte. */
export interface CompletionEvent {
  specversion: '1.0';
  id: string;
  source: 'mediaflow';
  type: 'mediaflow.input.completed';
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: {
    input: { store: string; key: string; version: string; sha256: string | null; size: number | null; contentType: string | null };
    /** done: every pipeline done; dead: none; partial: some of each. */
    state: 'done' | 'partial' | 'dead';
    pipelines: PipelineResult[];
  };
}

interface Member { job: Job; pipeline: LoadedPipeline }
/** A manifest to write, as the outbox keeps it. */
interface ManifestTarget { store: string; key: string; pipeline: string; sourceKey: string }
/** A notify URL to POST to, with its retry settings, as the outbox keeps it. */
interface NotifyTarget { url: string; attempts: number; backoffMs: number }
interface Group { key: string; storeKey: string; event: MediaEvent; members: Map<number, Member> }

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

/** One input version's outcome: its jobs and the state and attempt each ended with (a dlq retry makes a new one). */
function outcomeKey(members: Member[]): string {
  const { store, key, version } = members[0]!.job;
  const jobs = members.map((m) => `${m.job.id}:${m.job.state}:${m.job.attempts}`).sort().join(',');
  return createHash('sha256').update(`${store}\0${key}\0${version}\0${jobs}`).digest('hex');
}

const isFinal = (s: JobState) => s === 'done' || s === 'dead';
/** States in which a job will still run (superseded ones come back as queued when their version is seen again). */
const isPending = (s: JobState) => s === 'queued' || s === 'running' || s === 'failed' || s === 'superseded';

/**
 * Aggregates jobs per input (store, key, version) from the service's 'routed'
 * and 'job' events. When every matching pipeline's job is done or dead, one
 * completion event goes out: manifests into the outputs of the pipelines that
 * ask for one, then a signed POST to each distinct notify.url.
 * Emits 'completed' (CompletionEvent), 'notify-failed' (url, attempt, error,
 * final) and 'delivered' (url, attempt).
 * Groups live in memory. A job that ends outside any group (resumed from the
 * ledger after a restart, or put back by `dlq retry`) has its input's group
 * rebuilt from the ledger, so that input still completes once its last job
 * ends. A duplicate event for a finished input sends none. An event with a
 * manifest or a notify URL goes into the ledger's outbox in the same tick as
 * the last job's outcome (a transaction of its own, with no I/O waited for
 * in between), before anything of it is written or sent, and
 * leaves it once written and delivered (or its attempts are used up): what a
 * stop or a crash cut short is written and sent at the next start, under the
 * same event id (at least once; receivers tell repeats by the id).
 */
export class Completion extends EventEmitter {
  private readonly groups = new Map<string, Group>();
  /** Open groups by input (store, key) over all its versions: a new version refreshes them without a scan of every group. */
  private readonly groupsOfInput = new Map<string, Set<string>>();
  private readonly groupOfJob = new Map<number, string>();
  private readonly pending = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private readonly logger: Logger;
  private readonly onRouted = (event: MediaEvent, jobs: Job[]) => this.routed(event, jobs);
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
    service.on('routed', this.onRouted);
    service.on('job', this.onJob);
    this.track(this.resend().catch((err) => this.logger.error({ err }, 'completion events of the last run not read')));
  }

  /** Inputs still waiting for some pipeline. */
  get open(): number {
    return this.groups.size;
  }

  private routed(event: MediaEvent, jobs: Job[]): void {
    const first = jobs[0];
    if (!first) return;
    const storeKey = `${first.store}\0${first.key}`;
    // A newer version queued over an older one supersedes the older's jobs: they leave its group.
    for (const k of [...(this.groupsOfInput.get(storeKey) ?? [])]) {
      const g = this.groups.get(k);
      if (g) this.track(this.refresh(g).catch((err) => this.logger.error({ err, key: first.key }, 'completion: group not refreshed')));
    }
    const key = `${storeKey}\0${first.version}`;
    let group = this.groups.get(key);
    // An input whose jobs are all finished already (a duplicate event) is no new completion.
    if (!group && !jobs.some((j) => isPending(j.state))) return;
    if (!group) {
      group = { key, storeKey, event, members: new Map() };
      this.remember(group);
    }
    for (const job of jobs) {
      if (!isPending(job.state) && !isFinal(job.state)) continue;
      if (group.members.has(job.id)) continue;
      group.members.set(job.id, { job, pipeline: this.service.pipeline(job.pipeline) });
      this.groupOfJob.set(job.id, key);
    }
    this.check(group);
  }

  private async refresh(g: Group): Promise<void> {
    for (const [id, m] of [...g.members]) {
      if (isFinal(m.job.state)) continue;
      const now = await this.service.ledger.get(id);
      if (!now || now.state === 'superseded' || now.state === 'removed' || now.state === 'skipped') {
        g.members.delete(id);
        this.groupOfJob.delete(id);
      }
    }
    this.check(g);
  }

  private jobEnded(o: JobOutcome): void {
    // A listener's error would reach the job's own error handling and mark a finished job failed.
    this.track(this.jobEndedIn(o).catch((err) => this.logger.error({ err, job: o.job.id }, 'completion: job outcome not taken')));
  }

  private async jobEndedIn(o: JobOutcome): Promise<void> {
    const key = this.groupOfJob.get(o.job.id);
    const group = key ? this.groups.get(key) : await this.rebuild(o.job);
    const member = group?.members.get(o.job.id);
    if (!group || !member) return;
    if (o.outcome === 'skipped') {
      // An output of mediaflow came back: it completes nothing (and an input all of whose jobs skip sends no event).
      group.members.delete(o.job.id);
      this.groupOfJob.delete(o.job.id);
    } else member.job = o.job; // 'failed' keeps it open: a retry follows
    this.check(group);
  }

  /**
   * The group of a job no event routed here (resumed after a restart, or a
   * dead letter retried): its input's jobs in the pipelines loaded now, read
   * from the ledger. Size and content type were in the event, so they are unknown.
   */
  private async rebuild(job: Job): Promise<Group | undefined> {
    const storeKey = `${job.store}\0${job.key}`;
    const key = `${storeKey}\0${job.version}`;
    // Another job of the same input may have an open group (routed here before): this one joins it.
    const group: Group = this.groups.get(key) ?? { key, storeKey, event: makeEvent('mediaflow', 'created', { store: job.store, key: job.key }), members: new Map() };
    for (const pipeline of this.service.pipelineList) {
      for (const j of await this.service.ledger.jobsOfVersion(pipeline.name, job.store, job.key, job.version)) {
        // A superseded job runs only if its version is seen again: it does not hold the group open.
        if (j.fingerprint !== pipeline.fingerprint || j.state === 'superseded' || (!isPending(j.state) && !isFinal(j.state))) continue;
        if (!group.members.has(j.id)) group.members.set(j.id, { job: j, pipeline });
      }
    }
    if (!group.members.has(job.id)) return undefined;
    this.remember(group);
    for (const id of group.members.keys()) this.groupOfJob.set(id, key);
    return group;
  }

  /** An open group, found by its key and by its input (forget() undoes it). */
  private remember(g: Group): void {
    this.groups.set(g.key, g);
    this.groupsOfInput.set(g.storeKey, (this.groupsOfInput.get(g.storeKey) ?? new Set<string>()).add(g.key));
  }

  private forget(g: Group): void {
    this.groups.delete(g.key);
    const versions = this.groupsOfInput.get(g.storeKey);
    versions?.delete(g.key);
    if (versions?.size === 0) this.groupsOfInput.delete(g.storeKey);
  }

  private check(g: Group): void {
    if (g.members.size === 0) { this.forget(g); return; }
    for (const m of g.members.values()) if (!isFinal(m.job.state)) return;
    this.forget(g);
    for (const id of g.members.keys()) this.groupOfJob.delete(id);
    this.track(this.finish([...g.members.values()], g.event)
      .catch((err) => this.logger.error({ err, key: g.event.data.key }, 'completion event failed')));
  }

  private manifestKey(m: Member): string | null {
    if (!m.pipeline.manifest) return null;
    return renderKey(m.pipeline.manifest.key, {
      sourceKey: m.job.relKey, id: 'manifest', ext: 'json', sha256: m.job.sha256 ?? 'unknown', pipeline: m.pipeline.name,
    });
  }

  private build(members: Member[], event: MediaEvent): CompletionEvent {
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
      specversion: '1.0', id: randomUUID(), source: 'mediaflow', type: 'mediaflow.input.completed',
      subject: first.key, time: new Date().toISOString(), datacontenttype: 'application/json',
      data: {
        input: {
          store: first.store, key: first.key, version: first.version,
          sha256: members.map((m) => m.job.sha256).find((s) => s) ?? null,
          size: event.data.size ?? null, contentType: event.data.contentType ?? null,
        },
        state: done === pipelines.length ? 'done' : done === 0 ? 'dead' : 'partial',
        pipelines,
      },
    };
  }

  private async finish(members: Member[], event: MediaEvent): Promise<void> {
    // Workers sharing a queue each see the input's jobs in the ledger: the first to claim this outcome sends it.
    if (this.service.queue.kind !== 'memory' && !(await this.service.ledger.claimCompletion(outcomeKey(members)))) return;
    const completion = this.build(members, event);
    const targets: NotifyTarget[] = [];
    for (const { pipeline: { notify } } of members) {
      if (notify && !targets.some((t) => t.url === notify.url)) targets.push({ url: notify.url, attempts: notify.attempts, backoffMs: notify.backoffMs });
    }
    const manifests: ManifestTarget[] = [];
    for (const p of completion.data.pipelines) {
      if (p.manifest && !manifests.some((m) => m.store === p.manifest!.store && m.key === p.manifest!.key)) {
        manifests.push({ ...p.manifest, pipeline: p.pipeline, sourceKey: completion.subject });
      }
    }
    const log = this.logger.child({ key: completion.subject, event: completion.id });
    if (manifests.length === 0 && targets.length === 0) {
      // For one pipeline without manifest or notify, its "job done" line already says it all.
      log[members.length > 1 ? 'info' : 'debug']({ state: completion.data.state, pipelines: members.length }, 'input complete');
      this.emit('completed', completion);
      return;
    }
    const body = `${JSON.stringify(completion, null, 2)}\n`;
    // Recorded before any of it is written or sent (right after the last job's outcome):
    // a stop or a crash from here on leaves it to the next start, not lost.
    const entry = { id: await this.service.ledger.addToOutbox(completion.id, body, manifests, targets, this.sender), eventId: completion.id, body, manifests, targets };
    await this.writeManifests(entry, log);
    log.info({ state: completion.data.state, pipelines: members.length }, 'input complete');
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

  private async writeManifests(e: Pick<OutboxEntry<ManifestTarget, NotifyTarget>, 'id' | 'body' | 'manifests' | 'targets'>, log: Logger): Promise<void> {
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

  private async deliverAll(e: Pick<OutboxEntry<ManifestTarget, NotifyTarget>, 'id' | 'eventId' | 'body' | 'manifests' | 'targets'>, log: Logger): Promise<void> {
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
    this.service.off('routed', this.onRouted);
    this.service.off('job', this.onJob);
    this.closing.abort();
    await Promise.allSettled([...this.pending]);
    liveSenders.delete(this.sender);
  }
}
