/**
 * What the dashboard asks of the ledger: lists of jobs, what changed in a
 * list since its last poll, and what ended lately. Reads only: none of it is
 * on a job's way through.
 */
import type { Job, JobState, StateCounts } from './job.js';

/** The dashboard's reads, one object of the ledger (Ledger.jobList), the same answers from either ledger. */
export interface JobList {
  /** Jobs for a list, newest first. */
  findJobs(q: JobQuery): Promise<Job[]>;
  /** What changed for a list since its last poll (see JobChanges), newest first; at most `q.limit` jobs of each part. */
  jobChanges(q: JobQuery, c: JobChanges): Promise<Job[]>;
  /** The highest job id so far (0: none): where a list's next poll starts. */
  lastJobId(): Promise<number>;
  /** Jobs by pipeline and state (a pipeline absent has none). */
  countsByPipeline(): Promise<Record<string, StateCounts>>;
  /** Jobs that ended since `since`, per pipeline and interval of `intervalMs`, oldest first. */
  activity(since: number, intervalMs: number): Promise<Activity[]>;
}

/**
 * Which jobs a list shows, newest (highest id) first: every condition given
 * must hold. `keyContains` matches part of the source key, ASCII letters in
 * either case, `%` and `_` as themselves.
 */
export interface JobQuery {
  states?: JobState[];
  pipeline?: string;
  keyContains?: string;
  /** The next page: jobs with a lower id than this. */
  beforeId?: number;
  /** @default 50 */
  limit?: number;
}

/**
 * What a list showing `ids` (the lowest `fromId`; 0 when it showed fewer
 * than it could) needs after a poll: jobs added since `afterId` (the
 * ledger's last id then), the shown jobs changed since `since`, and, with
 * `states`, the older jobs that entered those states since. Each part is an
 * index range, so a poll costs little however big the ledger. `since` is a
 * time of the ledger's writers: poll with a margin for their clocks.
 */
export interface JobChanges {
  since: number;
  afterId: number;
  fromId: number;
  ids: number[];
}

/** Jobs of one pipeline that ended (done or dead) in one interval, with the event lag of those that have it. */
export interface Activity {
  pipeline: string;
  /** Start of the interval (ms). */
  at: number;
  done: number;
  dead: number;
  /** From the input's change to the start of its first attempt: mean and largest, ms (null: none known). */
  lagMeanMs: number | null;
  lagMaxMs: number | null;
}

/** Jobs a list shows at most, whatever it asks for. */
export const MAX_LIST = 500;

/** `keyContains` as a LIKE pattern whose escape is a backslash: `%`, `_` and backslashes in it match themselves. */
export function likePattern(part: string): string {
  return `%${part.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** A list's limit, from 1 to MAX_LIST. */
export const listLimit = (q: JobQuery): number => Math.max(1, Math.min(MAX_LIST, Math.floor(q.limit ?? 50)));
