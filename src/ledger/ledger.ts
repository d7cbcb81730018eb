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
