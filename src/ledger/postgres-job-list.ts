import type pg from 'pg';
import { likePattern, listLimit, type Activity, type JobChanges, type JobList, type JobQuery } from './job-list.js';
import type { Job, JobState, StateCounts } from './job.js';
import { KEPT_COUNTS } from './postgres-counts.js';

type Query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => Promise<pg.QueryResult<R>>;

/** Adds a value to a statement's and answers its placeholder. */
type Param = (value: unknown) => string;

function placeholders(): { values: unknown[]; p: Param } {
  const values: unknown[] = [];
  return { values, p: (v) => { values.push(v); return `$${values.length}`; } };
}

/** A query's conditions other than its states, as SQL terms. */
function conditions(q: JobQuery, p: Param): string {
  const terms: string[] = [];
  if (q.pipeline !== undefined) terms.push(`pipeline = ${p(q.pipeline)}`);
  if (q.keyContains) terms.push(`key ILIKE ${p(likePattern(q.keyContains))} ESCAPE '\\'`);
  return terms.map((t) => ` AND ${t}`).join('');
}

/**
 * The PostgreSQL ledger's reads for the dashboard: the same answers as the
 * SQLite ledger's (the contract suite runs on both), each part an index
 * range (the id, the (state, id) index, the partial index of ended jobs).
 */
export class PostgresJobList implements JobList {
  constructor(private readonly query: Query, private readonly toJob: (row: never) => Job) {}

  private async jobs(text: string, values: unknown[]): Promise<Job[]> {
    return (await this.query<never>(text, values)).rows.map(this.toJob);
  }

  /** As SqliteJobList.findJobs: with states, one part per state from the (state, id) index, each cut at the limit. */
  findJobs(q: JobQuery): Promise<Job[]> {
    const { values, p } = placeholders();
    const limit = p(listLimit(q));
    let where = conditions(q, p);
    if (q.beforeId !== undefined) where += ` AND id < ${p(q.beforeId)}`;
    if (!q.states?.length) return this.jobs(`SELECT * FROM jobs WHERE true${where} ORDER BY id DESC LIMIT ${limit}`, values);
    const parts = q.states.map((s) => `(SELECT * FROM jobs WHERE state = ${p(s)}${where} ORDER BY id DESC LIMIT ${limit})`);
    return this.jobs(`SELECT * FROM (${parts.join(' UNION ALL ')}) listed ORDER BY id DESC LIMIT ${limit}`, values);
  }

  /** As SqliteJobList.jobChanges: three parts, each with its own limit; ended jobs that entered the list's states through the partial index. */
  jobChanges(q: JobQuery, c: JobChanges): Promise<Job[]> {
    const { values, p } = placeholders();
    const since = p(c.since);
    const limit = p(listLimit(q));
    const others = conditions(q, p);
    const inStates = (states: JobState[] | undefined) => (states?.length ? ` AND state = ANY(${p(states)}::text[])` : '');
    const parts = [`(SELECT * FROM jobs WHERE id > ${p(c.afterId - 1000)} AND (id > ${p(c.afterId)} OR created_at >= ${since})${inStates(q.states)}${others} ORDER BY id DESC LIMIT ${limit})`];
    if (c.ids.length) parts.push(`(SELECT * FROM jobs WHERE id = ANY(${p(c.ids)}::bigint[]) AND updated_at >= ${since} LIMIT ${limit})`);
    const ended = q.states?.filter((s) => s === 'done' || s === 'dead') ?? [];
    const active = q.states?.filter((s) => s !== 'done' && s !== 'dead') ?? [];
    // Pushed only when a part uses it: a value without its placeholder is refused by the server.
    const from = ended.length || active.length ? p(c.fromId) : '';
    // The literal state IN (…) lets the planner use the partial index of ended jobs.
    if (ended.length) parts.push(`(SELECT * FROM jobs WHERE state IN ('done', 'dead') AND updated_at >= ${since}${inStates(ended)} AND id >= ${from}${others} ORDER BY id DESC LIMIT ${limit})`);
    if (active.length) parts.push(`(SELECT * FROM jobs WHERE id >= ${from} AND updated_at >= ${since}${inStates(active)}${others} ORDER BY id DESC LIMIT ${limit})`);
    return this.jobs(`SELECT * FROM (${parts.join(' UNION ')}) changed ORDER BY id DESC`, values);
  }

  async lastJobId(): Promise<number> {
    return (await this.query<{ id: number }>('SELECT COALESCE(MAX(id), 0)::bigint AS id FROM jobs', [])).rows[0]!.id;
  }

  async countsByPipeline(): Promise<Record<string, StateCounts>> {
    const counts: Record<string, StateCounts> = {};
    // From the counts the ledger keeps (migration 8), not a count of every job; a pipeline with none left is not one.
    const { rows } = await this.query<{ pipeline: string; state: JobState; n: number }>(
      `SELECT pipeline, state, SUM(n)::int AS n FROM (${KEPT_COUNTS}) kept GROUP BY pipeline, state HAVING SUM(n) > 0`, []);
    for (const r of rows) {
      counts[r.pipeline] ??= { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
      counts[r.pipeline]![r.state] = r.n;
    }
    return counts;
  }

  /** As SqliteJobList.activity. */
  async activity(since: number, intervalMs: number): Promise<Activity[]> {
    const { rows } = await this.query<{ pipeline: string; at: number; done: number; dead: number; lag_mean: number | null; lag_max: number | null }>(
      `SELECT pipeline, (updated_at / $2) * $2 AS at,
          COUNT(*) FILTER (WHERE state = 'done')::int AS done, COUNT(*) FILTER (WHERE state = 'dead')::int AS dead,
          AVG(lag)::float8 AS lag_mean, MAX(lag)::float8 AS lag_max
        FROM (SELECT pipeline, state, updated_at, CASE WHEN lag < 0 THEN 0 ELSE lag END AS lag
          FROM (SELECT pipeline, state, updated_at, (attempt_log->0->>'startedAt')::float8 - changed_at AS lag
            FROM jobs WHERE state IN ('done', 'dead') AND updated_at >= $1) ended) lagged
        GROUP BY 1, 2 ORDER BY 2, 1`,
      [Math.floor(since), Math.max(1, Math.round(intervalMs))]);
    return rows.map((r) => ({
      pipeline: r.pipeline, at: r.at, done: r.done, dead: r.dead,
      lagMeanMs: r.lag_mean === null ? null : Math.round(r.lag_mean), lagMaxMs: r.lag_max === null ? null : Math.round(r.lag_max),
    }));
  }
}
