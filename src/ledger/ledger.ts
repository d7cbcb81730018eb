/**
 * The durable record of work. One row per (pipeline, fingerprint, source key,
 * source version): a duplicate notification or a catch-up listing of a key
 * already done finds its row and does nothing, without reading the bytes.
 * Rendering is keyed by (content sha256, fingerprint): a row that is done for
 * the same content lets another name copy its outputs instead of re-rendering.
 */
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
}

export interface NewJob {
  pipeline: string;
  fingerprint: string;
  store: string;
  key: string;
  relKey: string;
  version: string;
  changedAt?: number;
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

/**
 * What a job may do with one (content sha256, fingerprint): render it (the
 * claim is its own until the job leaves 'running' or the lease runs out),
 * copy the outputs of the job that rendered it, or wait for the job that is
 * rendering it now.
 */
export type RenderClaim =
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
  /** Each state change leaves 'running' and so lets go of the job's render claim in the same transaction. */
  markDone(id: number, outputs: OutputRecord[], deduplicated: boolean, sha256?: string): Promise<Job | null>;
  markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string): Promise<Job | null>;
  markDead(id: number, error: string, sha256?: string): Promise<Job | null>;
  /** The input is one of mediaflow's own outputs (`reason` says whose): nothing is made from it. */
  markSkipped(id: number, reason: string, sha256: string): Promise<Job | null>;
  markState(id: number, state: JobState): Promise<Job | null>;

  /** A job already done for the same content and fingerprint, whose outputs can be copied. */
  findRender(sha256: string, fingerprint: string): Promise<Job | null>;
  /**
   * One render per (content, fingerprint), decided atomically whatever the
   * number of processes: the done render to copy from, else the claim for
   * this job unless another job holds one that has not expired (and was not
   * handed over by `takeOverFrom`).
   */
  claimRender(c: ClaimRequest): Promise<RenderClaim>;
  /** Extends a claim this job holds; false when it no longer holds it (expired and taken over). */
  renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): Promise<boolean>;
  /** Lets go of a claim without finishing the job. */
  releaseRender(sha256: string, fingerprint: string, jobId: number): Promise<void>;
  /** Calls `listener` when a claim of this process ends; claims of other processes are seen by polling. Returns the unsubscribe. */
  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void;
  /** Records an output's checksum before it is written: known as mediaflow's own even if read back before its job is done. */
  recordOutput(sha256: string, jobId: number): Promise<void>;
  /** A job that wrote an output with these bytes, if any. */
  outputWith(sha256: string): Promise<{ jobId: number; pipeline: string; key: string } | null>;

  /**
   * True for the first caller only, for one outcome of one input (`key`
   * names the input version and its jobs' final states): when several
   * workers see the same input complete, one sends its event.
   */
  claimCompletion(key: string): Promise<boolean>;
  /** Records a completion event before anything of it is written or sent, as `owner`'s to send; returns its id. */
  addToOutbox(eventId: string, body: string, manifests: unknown[], targets: unknown[], owner?: string): Promise<number>;
  /** Takes an entry over from `from` (its owner is gone): false when another process took it first. */
  takeOutbox(id: number, from: string | null, to: string): Promise<boolean>;
  /** What is left of an outbox entry; nothing left removes it. */
  updateOutbox(id: number, manifests: unknown[], targets: unknown[]): Promise<void>;
  /** Completion events not yet written or sent (by any process), oldest first. */
  outbox<M, T>(): Promise<OutboxEntry<M, T>[]>;

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
  /** Puts dead letters back in the queue with a fresh attempt count; returns how many. */
  retryDead(id?: number): Promise<number>;
  /** How many times each (content, fingerprint) was actually rendered: for tests and audits. */
  renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]>;
}
