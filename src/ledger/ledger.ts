/**
 * The durable record of work. One row per (pipeline, fingerprint, source key,
 * source version): a duplicate notification or a catch-up listing of a key
 * already done finds its row and does nothing, without reading the bytes.
 * Rendering is keyed by (content sha256, fingerprint): a row that is done for
 * the same content lets another name copy its outputs instead of re-rendering.
 */
import type { JobList } from './job-list.js';
import type { AttemptRecord, Job, JobState, NewJob, StateCounts } from './job.js';
import type { CompletionRule, Ended, EventDraft, JobEnd, OutboxEntry } from './job-end.js';
import type { ClaimRequest, RenderClaim } from './render-claim.js';

export type { Activity, JobChanges, JobList, JobQuery } from './job-list.js';
export { JOB_STATES, type AttemptRecord, type Job, type JobState, type NewJob, type OutputRecord, type StateCounts } from './job.js';
export type { CompletionRule, Ended, EventDraft, JobEnd, OutboxEntry } from './job-end.js';
export type { ClaimRequest, OutputOrigin, RenderClaim } from './render-claim.js';

/**
 * The ledger contract, the only ledger type the rest of mediaflow uses:
 * SQLite in the data folder (one machine) or PostgreSQL (shared by many).
 * Every method may touch the network, so all are async. Both
 * implementations pass test/helpers/ledger-contract.ts unchanged.
 */
export interface Ledger {
  /** Where it is, for messages (a data folder, or a URL with its password masked). */
  readonly location: string;
  /** Answers a trivial query: false while the database cannot be reached (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;

  /** The job for this key version, created queued when new. */
  upsert(j: NewJob): Promise<{ job: Job; created: boolean }>;
  get(id: number): Promise<Job | null>;
  /**
   * Starts an attempt of a job that is still to do; null when it is not
   * (done, dead, superseded or gone meanwhile). `alone`: only while no other
   * job of the same pipeline and key is running (one updated within
   * `staleAfterMs`, default 10 minutes: older is a worker that died) —
   * 'key-busy' otherwise. Workers sharing a queue need it; one process
   * serialises keys in its queue.
   */
  startAttempt(id: number, o?: { alone?: boolean; staleAfterMs?: number }): Promise<Job | null | 'key-busy'>;
  /** A newer version of this job's key was seen: every other waiting job of the key becomes superseded. Returns how many. */
  supersedeOthers(job: Job): Promise<number>;
  /**
   * Ends a job (done, dead or skipped) and, with a rule, decides its input's
   * completion in the same transaction: the jobs of its input version (same
   * store, key and version, in the rule's pipelines, not superseded, removed
   * or skipped) are locked; when this end leaves none of them unfinished,
   * the rule's event is drafted and, if it has manifests or targets, goes
   * into the outbox before the commit. So a crash can neither lose an event
   * (state and outbox row commit together) nor invent one, and of several
   * workers ending an input's last jobs at once exactly one completes it.
   * A job that had ended already (a worker thought gone finishing late)
   * completes nothing. Leaving 'running' lets go of the render claim in the
   * same transaction; a copied job's outputs (deduplicated: no render
   * recorded them) are known by checksum from its end. null: no such job.
   */
  finish<D extends EventDraft>(id: number, end: JobEnd, rule?: CompletionRule<D>): Promise<Ended<D> | null>;
  /** A retry follows: leaves 'running' (and the render claim) until `nextAttemptAt`. */
  markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string, attempt?: AttemptRecord): Promise<Job | null>;
  markState(id: number, state: JobState): Promise<Job | null>;

  /** A job already done for the same content and fingerprint, whose outputs can be copied. */
  findRender(sha256: string, fingerprint: string): Promise<Job | null>;
  /**
   * One render per (content, fingerprint), decided atomically whatever the
   * number of processes: 'output' when the content is one of mediaflow's own
   * outputs (asked in the same round trip: every job asks both), else the
   * done render to copy from, else the claim for this job unless another job
   * holds one that has not expired (and was not handed over by `takeOverFrom`).
   */
  claimRender(c: ClaimRequest): Promise<RenderClaim>;
  /** Extends a claim this job holds; false when it no longer holds it (expired and taken over). */
  renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): Promise<boolean>;
  /** Lets go of a claim without finishing the job. */
  releaseRender(sha256: string, fingerprint: string, jobId: number): Promise<void>;
  /** Calls `listener` when a claim of this process ends; claims of other processes are seen by polling. Returns the unsubscribe. */
  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void;
  /** Records the checksums of a render's outputs before they are written (one round trip): known as mediaflow's own even if read back before the job is done. */
  recordOutputs(sha256s: readonly string[], jobId: number): Promise<void>;

  /** Takes an entry over from `from` (its owner is gone): false when another process took it first. */
  takeOutbox(id: number, from: string | null, to: string): Promise<boolean>;
  /** What is left of an outbox entry; nothing left removes it. */
  updateOutbox(id: number, manifests: unknown[], targets: unknown[]): Promise<void>;
  /** Completion events not yet written or sent (by any process), oldest first. */
  outbox<M, T>(): Promise<OutboxEntry<M, T>[]>;

  /**
   * Per-key order of storage events: records the event sequencer seen for
   * (store, key) (S3's `s3.object.sequencer`, normalised by orderOf) and
   * answers whether it is the newest seen so far (true also for the same one
   * again). false: a newer version's event came first, and this older one
   * must not touch it.
   */
  seeSequencer(store: string, key: string, sequencer: string): Promise<boolean>;

  /** The jobs of one version of one source key in one pipeline. */
  jobsOfVersion(pipeline: string, store: string, key: string, version: string): Promise<Job[]>;
  /** Done jobs of one source key, for delete-outputs on removal. */
  doneForKey(pipeline: string, store: string, key: string): Promise<Job[]>;
  /** Done jobs of every source key below a folder, any depth. */
  doneUnderFolder(pipeline: string, store: string, folder: string): Promise<Job[]>;
  /** Jobs to (re)queue, by id after `afterId`; `since` (ms): only those changed since then or whose retry fell due since. */
  unfinished(limit?: number, afterId?: number, since?: number): Promise<Job[]>;
  counts(): Promise<StateCounts & { deduplicated: number }>;
  list(state: JobState, limit?: number): Promise<Job[]>;
  /** What the dashboard reads: lists of jobs, what changed in a list since its last poll, and what ended lately. */
  readonly jobList: JobList;
  /**
   * Puts dead letters back in the queue with a fresh attempt count (one by
   * id, every one of a pipeline, or all); returns how many.
   */
  retryDead(which?: number | { pipeline: string }): Promise<number>;
  /** How many times each (content, fingerprint) was actually rendered: for tests and audits. */
  renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]>;
}

/**
 * S3 sequencers are hex strings that grow for one key, of varying length
 * (MinIO's are 16 digits, AWS's longer): compared after upper-casing and
 * left-padding to one length, as strings.
 */
export function orderOf(sequencer: string): string {
  return sequencer.trim().toUpperCase().padStart(40, '0');
}
