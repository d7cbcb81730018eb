/**
 * How a job ends for good, and what that may complete: the input's
 * completion event and its outbox entry, decided the same way by every
 * ledger inside the transaction of the end (see Ledger.finish).
 */
import type { AttemptRecord, Job, JobState, OutputRecord } from './job.js';

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
