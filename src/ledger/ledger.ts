/**
 * The durable record of work. One row per (pipeline, fingerprint, source key,
 * source version): a duplicate notification or a catch-up listing of a key
 * already done finds its row and does nothing, without reading the bytes.
 * Rendering is keyed by (content sha256, fingerprint): a row that is done for
 * the same content lets another name copy its outputs instead of re-rendering.
 */
import type { JobList } from './job-list.js';

export type { Activity, JobChanges, JobList, JobQuery } from './job-list.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'dead' | 'superseded' | 'removed' | 'skipped';

/** `skipped`: the input was an output of mediaflow itself (by checksum), so it started nothing. */
export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'done', 'failed', 'dead', 'superseded', 'removed', 'skipped'];

export interface OutputRecord {
  stepId: string;
  key: string;
  /** Store the output was written to (Store.name). */
  store: string;
  size: number;
  /** sha256 of the bytes written, so a later job reuses them only while the output still holds them. */
  sha256?: string;
  contentType: string;
  width?: number;
  height?: number;
}

export interface Job {
  id: number;
  pipeline: string;
  fingerprint: string;
  store: string;
  key: string;
  /** Source key relative to the pipeline's source root. */
  relKey: string;
  version: string;
  state: JobState;
  attempts: number;
  error: string | null;
  sha256: string | null;
  outputs: OutputRecord[];
  /** True when the outputs came from an earlier render of the same content (no image work). */
  deduplicated: boolean;
  createdAt: number;
  updatedAt: number;
  /** When a failed job is due for its next attempt (ms since epoch). */
  nextAttemptAt: number | null;
  /** When the source changed (mtime / event time), for lag metrics. */
  changedAt: number | null;
  /** The input's size and content type as its source reported them (null when it did not). */
  size: number | null;
  contentType: string | null;
  /** Every attempt that recorded its end, oldest first (attempts whose worker died before the end are missing). */
  attemptLog: AttemptRecord[];
}

/**
 * One attempt of a job as it ended. It is written by the statement that
 * records the end (finish, markFailed), never by a statement of its own, so
 * keeping it costs no transaction and no round trip.
 */
export interface AttemptRecord {
  /** The job's attempt count when it ran: 1 is the first; a dead letter put back starts again at 1. */
  attempt: number;
  startedAt: number;
  endedAt: number;
  outcome: 'done' | 'failed' | 'dead' | 'skipped';
  /** Why it failed, or why it was skipped. */
  error?: string;
  /** The step that failed, when one did. */
  step?: string;
  /** Time of each step rendered and written, in order (none when the outputs were copied). */
  steps: { step: string; ms: number }[];
  /** The job whose outputs were copied: same content, same steps, so no image work. */
  copiedFrom?: number;
  /** The process that ran it (MEDIAFLOW_WORKER_ID, or host:pid). */
  worker: string;
}

export interface NewJob {
  pipeline: string;
  fingerprint: string;
  store: string;
  key: string;
  relKey: string;
  version: string;
  changedAt?: number;
  size?: number;
  contentType?: string;
}

export interface StateCounts {
  queued: number;
  running: number;
  done: number;
  failed: number;
  dead: number;
  superseded: number;
  removed: number;
  skipped: number;
}

/** The job that wrote an output with given bytes. */
export interface OutputOrigin { jobId: number; pipeline: string; key: string }

/**
 * What a job may do with one (content sha256, fingerprint): nothing when the
 * bytes are an output of mediaflow itself, else render it (the
 * claim is its own until the job leaves 'running' or the lease runs out),
 * copy the outputs of the job that rendered it, or wait for the job that is
 * rendering it now.
 */
export type RenderClaim =
  /** The bytes are one of mediaflow's own outputs (written by that job): nothing is made from them, so outputs never feed back in. */
  | { kind: 'output'; of: OutputOrigin }
  | { kind: 'claimed' }
  | { kind: 'rendered'; job: Job }
  | { kind: 'busy'; jobId: number; owner: string; expiresAt: number };

/** Asking for the render of one (content, fingerprint) on behalf of one job (see Ledger.claimRender). */
export interface ClaimRequest {
  sha256: string;
  fingerprint: string;
  jobId: number;
  /** The asking process (owner.ts thisProcess): a waiter judges whether the holder is gone by it. */
  owner: string;
  /** The claim holds this long unless renewed. */
  leaseMs: number;
  /** false: do not offer the done render (its outputs were found gone); claim it to render again. */
  rendered?: boolean;
  /** Take the claim from this owner, known to be gone, without waiting for its lease. */
  takeOverFrom?: string;
}

/** How an attempt ended for good (markFailed is the other end: a retry follows); `attempt` goes into the job's attempt log. */
export type JobEnd = (
  | { state: 'done'; outputs: OutputRecord[]; deduplicated: boolean; sha256?: string }
  | { state: 'dead'; error: string; sha256?: string }
  /** The input is one of mediaflow's own outputs (`reason` says whose): nothing is made from it. */
  | { state: 'skipped'; reason: string; sha256: string }
) & { attempt?: AttemptRecord };

/** A completion event as it is recorded: what the outbox keeps, and whose it is to send. */
export interface EventDraft {
  eventId: string;
  body: string;
  manifests: unknown[];
  targets: unknown[];
  owner: string;
}

/**
 * When an input is complete and what that sends, decided inside the
 * transaction that ends one of its jobs (see Ledger.finish).
 */
export interface CompletionRule<D extends EventDraft = EventDraft> {
  /** The pipelines an input's jobs count for: name -> fingerprint (rows of another fingerprint are history). */
  readonly pipelines: ReadonlyMap<string, string>;
  /** The event of an input version all of whose jobs have ended (done or dead). Synchronous and without I/O: it runs inside the transaction. */
  draft(jobs: Job[]): D;
}

/** A job ended: as it is now, and its input's completion if this end completed it. */
export interface Ended<D extends EventDraft = EventDraft> {
  job: Job;
  /** outboxId: the event's outbox row, written in the same transaction (null when it has nothing to write or send). */
  completed: { draft: D; jobs: Job[]; outboxId: number | null } | null;
}

/**
 * A completion event still to write or send: its body byte for byte (the
 * manifests' contents and what is signed), the manifests to write and the
 * notify targets not yet delivered to.
 */
export interface OutboxEntry<M = unknown, T = unknown> {
  id: number;
  eventId: string;
  body: string;
  manifests: M[];
  targets: T[];
  createdAt: number;
  /** The process writing and sending it (owner.ts); null for entries of releases before owners. */
  owner: string | null;
}

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

const ENDED: readonly JobState[] = ['done', 'dead', 'skipped', 'removed'];
/** States that leave an input version's group: the job will not run (or was not one of the input's to run). */
const OUT_OF_GROUP: readonly JobState[] = ['superseded', 'removed', 'skipped'];

/**
 * The decision of Ledger.finish, the same for every ledger: given the input
 * version's jobs as they are after this end (locked), and the state the
 * ending job had before, whether this end completes the input.
 */
export function completionOf<D extends EventDraft>(rule: CompletionRule<D>, jobs: Job[], stateBefore: JobState): { draft: D; jobs: Job[] } | null {
  if (ENDED.includes(stateBefore)) return null;
  const members = jobs.filter((j) => rule.pipelines.get(j.pipeline) === j.fingerprint && !OUT_OF_GROUP.includes(j.state));
  if (members.length === 0 || members.some((j) => j.state !== 'done' && j.state !== 'dead')) return null;
  return { draft: rule.draft(members), jobs: members };
}

/**
 * The columns an end sets, as both ledgers store them (outputs as JSON
 * text). `attempt_log` is the one record to append to the job's log (each
 * ledger writes it as an append, see APPENDED).
 */
export function endColumns(end: JobEnd): Record<string, unknown> & { state: JobState } {
  const log = end.attempt ? { attempt_log: JSON.stringify(end.attempt) } : {};
  switch (end.state) {
    case 'done': return { state: 'done', outputs: JSON.stringify(end.outputs), deduplicated: end.deduplicated, error: null, ...(end.sha256 && { sha256: end.sha256 }), ...log };
    case 'dead': return { state: 'dead', error: end.error, next_attempt_at: null, ...(end.sha256 && { sha256: end.sha256 }), ...log };
    case 'skipped': return { state: 'skipped', error: end.reason, next_attempt_at: null, sha256: end.sha256, ...log };
  }
}

/** The column whose value an update appends to (a JSON array) instead of replacing. */
export const APPENDED = 'attempt_log';

/** True when a draft has anything to write or send, and so needs an outbox row. */
export const needsOutbox = (d: EventDraft): boolean => d.manifests.length > 0 || d.targets.length > 0;

/**
 * S3 sequencers are hex strings that grow for one key, of varying length
 * (MinIO's are 16 digits, AWS's longer): compared after upper-casing and
 * left-padding to one length, as strings.
 */
export function orderOf(sequencer: string): string {
  return sequencer.trim().toUpperCase().padStart(40, '0');
}
