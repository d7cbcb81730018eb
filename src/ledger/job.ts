/**
 * A job: one (pipeline, fingerprint, source key, source version) as the
 * ledger records it, with its outputs and the log of its attempts.
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

/** What a source knows of a job before it is recorded: its identity, and what it saw of the input. */
export interface NewJob extends Pick<Job, 'pipeline' | 'fingerprint' | 'store' | 'key' | 'relKey' | 'version'> {
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
