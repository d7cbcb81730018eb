import type Database from 'better-sqlite3';
import { likePattern, listLimit, type Activity, type JobChanges, type JobList, type JobQuery } from './job-list.js';
import type { Job, JobState, StateCounts } from './job.js';

/** A query's conditions other than its states, as SQL terms and their values. */
function conditions(q: JobQuery): { terms: string[]; values: unknown[] } {
  const terms: string[] = [];
  const values: unknown[] = [];
  if (q.pipeline !== undefined) {
    terms.push('pipeline = ?');
    values.push(q.pipeline);
  }
  if (q.keyContains) {
    // SQLite's LIKE ignores the case of ASCII letters, as PostgreSQL's ILIKE does.
    terms.push("key LIKE ? ESCAPE '\\'");
    values.push(likePattern(q.keyContains));
  }
  return { terms, values };
}

const and = (terms: string[]) => terms.map((t) => ` AND ${t}`).join('');

/**
 * The SQLite ledger's reads for the dashboard. Every part of a list or a
 * poll is an index range (the id; the state index, whose entries are in id
 * order within a state; the partial index of ended jobs), so looking costs
 * little however many jobs the ledger holds.
 */
export class SqliteJobList implements JobList {
  constructor(
    private readonly sql: (text: string) => Database.Statement,
    private readonly toJob: (row: never) => Job,
  ) {}

  private jobs(text: string, values: unknown[]): Job[] {
    return (this.sql(text).all(...values) as never[]).map(this.toJob);
  }

  /**
   * With states, one part per state, each read newest first from the state
   * index and cut at the limit: `state IN (…) ORDER BY id` would sort every
   * job of those states (all the done ones) to show fifty.
   */
  async findJobs(q: JobQuery): Promise<Job[]> {
    const limit = listLimit(q);
    const { terms, values } = conditions(q);
    if (q.beforeId !== undefined) {
      terms.push('id < ?');
      values.push(q.beforeId);
    }
    if (!q.states?.length) return this.jobs(`SELECT * FROM jobs WHERE 1 = 1${and(terms)} ORDER BY id DESC LIMIT ?`, [...values, limit]);
    const parts = q.states.map(() => `SELECT * FROM (SELECT * FROM jobs WHERE state = ?${and(terms)} ORDER BY id DESC LIMIT ?)`);
    return this.jobs(`${parts.join(' UNION ALL ')} ORDER BY id DESC LIMIT ?`, [...q.states.flatMap((s) => [s, ...values, limit]), limit]);
  }

  /**
   * Three parts (see JobChanges), each with its own limit. New jobs also
   * include those up to 1000 ids below `afterId` created since `since`: an
   * id taken before the last poll may commit after it. Older jobs that
   * entered the list's states: done and dead ones are found by the partial
   * index of ended jobs (recent ones only, however many there are); queued,
   * running and failed ones are few (sources wait at the high-water mark).
   */
  async jobChanges(q: JobQuery, c: JobChanges): Promise<Job[]> {
    const limit = listLimit(q);
    const { terms, values: filterValues } = conditions(q);
    const states = q.states?.length ? q.states : null;
    const inStates = (list: JobState[]) => ({ term: 'state IN (SELECT value FROM json_each(?))', value: JSON.stringify(list) });
    const part = (extra: string[], extraValues: unknown[], states: JobState[] | null) => {
      const s = states && inStates(states);
      return {
        text: `${and([...(s ? [s.term] : []), ...terms, ...extra])}`,
        values: [...(s ? [s.value] : []), ...filterValues, ...extraValues],
      };
    };
    const parts: string[] = [];
    const values: unknown[] = [];
    const fresh = part([], [], states);
    parts.push(`SELECT * FROM (SELECT * FROM jobs WHERE id > ? AND (id > ? OR created_at >= ?)${fresh.text} ORDER BY id DESC LIMIT ?)`);
    values.push(c.afterId - 1000, c.afterId, c.since, ...fresh.values, limit);
    if (c.ids.length) {
      parts.push('SELECT * FROM (SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(?)) AND updated_at >= ? LIMIT ?)');
      values.push(JSON.stringify(c.ids), c.since, limit);
    }
    const ended = states?.filter((s) => s === 'done' || s === 'dead') ?? [];
    const others = states?.filter((s) => s !== 'done' && s !== 'dead') ?? [];
    if (ended.length) {
      const entered = part(['id >= ?'], [c.fromId], ended);
      parts.push(`SELECT * FROM (SELECT * FROM jobs INDEXED BY jobs_ended WHERE state IN ('done', 'dead') AND updated_at >= ?${entered.text} ORDER BY id DESC LIMIT ?)`);
      values.push(c.since, ...entered.values, limit);
    }
    if (others.length) {
      const entered = part(['updated_at >= ?'], [c.since], others);
      parts.push(`SELECT * FROM (SELECT * FROM jobs WHERE id >= ?${entered.text} ORDER BY id DESC LIMIT ?)`);
      values.push(c.fromId, ...entered.values, limit);
    }
    return this.jobs(`${parts.join(' UNION ')} ORDER BY id DESC`, values);
  }

  async lastJobId(): Promise<number> {
    return (this.sql('SELECT COALESCE(MAX(id), 0) AS id FROM jobs').get() as { id: number }).id;
  }

  async countsByPipeline(): Promise<Record<string, StateCounts>> {
    const counts: Record<string, StateCounts> = {};
    // The counts the ledger keeps (job_counts, migration 8), not a count of every job.
    for (const r of this.sql('SELECT pipeline, state, SUM(n) AS n FROM job_counts GROUP BY pipeline, state HAVING SUM(n) > 0').all() as { pipeline: string; state: JobState; n: number }[]) {
      counts[r.pipeline] ??= { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
      counts[r.pipeline]![r.state] = r.n;
    }
    return counts;
  }

  /**
   * Lag: the input's change to its first attempt's start, as the attempt
   * log recorded it (jobs from before the log have none). INDEXED BY: without
   * statistics SQLite would read every done job through the state index.
   */
  async activity(since: number, intervalMs: number): Promise<Activity[]> {
    const interval = Math.max(1, Math.round(intervalMs));
    // A number is bound as a REAL: CAST makes the division an integer one.
    const rows = this.sql(`SELECT pipeline, CAST(updated_at / @interval AS INTEGER) * @interval AS at,
        SUM(state = 'done') AS done, SUM(state = 'dead') AS dead, AVG(lag) AS lagMean, MAX(lag) AS lagMax
      FROM (SELECT pipeline, state, updated_at, CASE WHEN lag < 0 THEN 0 ELSE lag END AS lag
        FROM (SELECT pipeline, state, updated_at, json_extract(attempt_log, '$[0].startedAt') - changed_at AS lag
          FROM jobs INDEXED BY jobs_ended WHERE state IN ('done', 'dead') AND updated_at >= @since))
      GROUP BY pipeline, at ORDER BY at, pipeline`).all({ interval, since: Math.floor(since) }) as
      { pipeline: string; at: number; done: number; dead: number; lagMean: number | null; lagMax: number | null }[];
    return rows.map((r) => ({
      pipeline: r.pipeline, at: r.at, done: r.done, dead: r.dead,
      lagMeanMs: r.lagMean === null ? null : Math.round(r.lagMean), lagMaxMs: r.lagMax === null ? null : Math.round(r.lagMax),
    }));
  }
}
