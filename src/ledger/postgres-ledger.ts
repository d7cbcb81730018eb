import type pg from 'pg';
import type { AttemptRecord, Job, JobState, NewJob, StateCounts } from './job.js';
import { APPENDED, completionOf, endColumns, needsOutbox, type CompletionRule, type Ended, type EventDraft, type JobEnd, type OutboxEntry } from './job-end.js';
import type { JobList } from './job-list.js';
import { orderOf, type Ledger } from './ledger.js';
import { openPool, toJob, type PostgresLedgerOptions, type Row } from './postgres-connection.js';
import { FOLD_COUNTS, FOLD_EVERY_MS, KEPT_COUNTS } from './postgres-counts.js';
import { PostgresJobList } from './postgres-job-list.js';
import { PostgresRenderClaims, type Released } from './postgres-render-claims.js';

export type { PostgresLedgerOptions } from './postgres-connection.js';

/**
 * The shared ledger: PostgreSQL, for sources and workers on many machines.
 * The same contract as the SQLite ledger (test/helpers/ledger-contract.ts);
 * uniqueness decides what SQLite's single writer decides there: one job per
 * key version (UNIQUE), one render per content (the render_claims primary
 * key). Every state change is one statement (CTEs), so one round trip.
 * Built on the pool (PostgresConnection) and the render claims
 * (PostgresRenderClaims); here its jobs: their lifecycle, the end that
 * completes an input with its outbox row, and the reads.
 */
export class PostgresLedger extends PostgresRenderClaims implements Ledger {
  /** The dashboard's reads (lists, changes, activity), in a file of their own. */
  readonly jobList: JobList = new PostgresJobList((text, values) => this.query(text, values), toJob);

  /** Folds the kept counts' changes now and then (postgres-counts.ts), so they stay few when nothing reads them. */
  private folding: NodeJS.Timeout | null = null;

  private constructor(pool: pg.Pool, url: string, schema: string) {
    super(pool, url, schema);
  }

  override async close(): Promise<void> {
    if (this.folding) clearInterval(this.folding);
    await super.close();
  }

  /** Connects (checking the URL at once) and applies the migrations this database lacks. */
  static async connect(o: PostgresLedgerOptions): Promise<PostgresLedger> {
    const { pool, schema } = openPool(o);
    const ledger = await new PostgresLedger(pool, o.url, schema).opened();
    // One at a time (a fold waits out an outage); one that fails is simply the next one's work.
    let fold: Promise<unknown> | null = null;
    ledger.folding = setInterval(() => {
      fold ??= ledger.query(FOLD_COUNTS, []).catch(() => {}).finally(() => { fold = null; });
    }, FOLD_EVERY_MS);
    ledger.folding.unref();
    return ledger;
  }

  async upsert(j: NewJob): Promise<{ job: Job; created: boolean }> {
    const now = Date.now();
    // A known key version is read back in the same statement: one round trip either way.
    const row = await this.one(
      `WITH ins AS (
         INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, created_at, updated_at, changed_at, size, content_type)
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7, $8, $9, $10)
         ON CONFLICT (pipeline, fingerprint, store, key, version) DO NOTHING RETURNING *, true AS created)
       SELECT * FROM ins
       UNION ALL
       SELECT *, false AS created FROM jobs WHERE pipeline = $1 AND fingerprint = $2 AND store = $3 AND key = $4 AND version = $6
         AND NOT EXISTS (SELECT 1 FROM ins)`,
      [j.pipeline, j.fingerprint, j.store, j.key, j.relKey, j.version, now, j.changedAt === undefined ? null : Math.round(j.changedAt),
        j.size ?? null, j.contentType ?? null],
    ) as (Row & { created: boolean }) | undefined;
    if (!row) {
      // Inserted by another process between this statement's conflict check and its read: read it now.
      const again = await this.one('SELECT * FROM jobs WHERE pipeline = $1 AND fingerprint = $2 AND store = $3 AND key = $4 AND version = $5',
        [j.pipeline, j.fingerprint, j.store, j.key, j.version]);
      return { job: toJob(again!), created: false };
    }
    return { job: toJob(row), created: row.created };
  }

  async get(id: number): Promise<Job | null> {
    const row = await this.one('SELECT * FROM jobs WHERE id = $1', [id]);
    return row ? toJob(row) : null;
  }

  /**
   * One statement: the update, and for a job leaving 'running' the release
   * of its render claim and (when done from a copy) its outputs' checksums: a
   * render's were recorded before they were written (recordOutputs).
   */
  private async set(id: number, fields: Record<string, unknown> & { state?: JobState }): Promise<Job | null> {
    const released: Released[] = [];
    const row = await this.retrying(() => this.setWith(this.pool, id, fields, released));
    this.announce(released);
    return row ? toJob(row) : null;
  }

  /** The statement of set(), on the pool or inside a transaction; a claim let go is added to `released`, to announce after the commit. */
  private async setWith(db: pg.Pool | pg.PoolClient, id: number, fields: Record<string, unknown> & { state?: JobState }, released: Released[]): Promise<Row | undefined> {
    const cols = Object.keys(fields);
    const values = Object.values(fields);
    const leaving = fields.state !== undefined && fields.state !== 'running';
    // The attempt log is appended to in the same statement: its record costs no statement of its own.
    const sets = cols.map((c, i) => (c === APPENDED ? `${c} = ${c} || jsonb_build_array($${i + 3}::jsonb)` : `${c} = $${i + 3}`));
    const text = `WITH u AS (
        UPDATE jobs SET ${sets.join(', ')}, updated_at = $2 WHERE id = $1 RETURNING *),
      d AS (DELETE FROM render_claims WHERE ${leaving ? 'job_id = $1' : 'false'} AND EXISTS (SELECT 1 FROM u) RETURNING sha256, fingerprint),
      o AS (INSERT INTO output_checksums (sha256, job_id)
        SELECT x->>'sha256', u.id FROM u, jsonb_array_elements(u.outputs) x WHERE u.state = 'done' AND u.deduplicated AND x->>'sha256' IS NOT NULL
        ON CONFLICT DO NOTHING)
      SELECT u.*, (SELECT json_build_object('sha256', d.sha256, 'fingerprint', d.fingerprint) FROM d LIMIT 1) AS released FROM u`;
    const row = (await db.query<Row & { released: Released | null }>(text, [id, Date.now(), ...values])).rows[0];
    if (row?.released) released.push(row.released);
    return row;
  }


  async startAttempt(id: number, o: { alone?: boolean; staleAfterMs?: number } = {}): Promise<Job | null | 'key-busy'> {
    const now = Date.now();
    if (!o.alone) {
      const row = await this.one(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, next_attempt_at = NULL, updated_at = $2
         WHERE id = $1 AND state IN ('queued', 'running', 'failed') RETURNING *`, [id, now]);
      return row ? toJob(row) : null;
    }
    const row = await this.one(
      `UPDATE jobs SET state = 'running', attempts = attempts + 1, next_attempt_at = NULL, updated_at = $2
       WHERE id = $1 AND state IN ('queued', 'running', 'failed') AND NOT EXISTS (
         SELECT 1 FROM jobs o WHERE o.pipeline = jobs.pipeline AND o.store = jobs.store AND o.key = jobs.key
           AND o.state = 'running' AND o.id <> jobs.id AND o.updated_at > $3)
       RETURNING *`, [id, now, now - (o.staleAfterMs ?? 600_000)]);
    if (row) return toJob(row);
    // Not started: still to do (another version of the key runs) or not to do at all.
    const state = (await this.one('SELECT state FROM jobs WHERE id = $1', [id]))?.state;
    return state === 'queued' || state === 'running' || state === 'failed' ? 'key-busy' : null;
  }

  async supersedeOthers(job: Job): Promise<number> {
    const r = await this.query(`UPDATE jobs SET state = 'superseded', updated_at = $1 WHERE pipeline = $2 AND store = $3 AND key = $4 AND id <> $5
      AND state IN ('queued', 'failed')`, [Date.now(), job.pipeline, job.store, job.key, job.id]);
    return r.rowCount ?? 0;
  }

  /**
   * Without a rule, one statement. With one, a transaction: the input
   * version's jobs locked in id order (every finisher of this input locks
   * the same rows in the same order, so two workers ending its last two jobs
   * at once queue up instead of deadlocking, and the second sees the first's
   * end), the end, and the completion with its outbox row.
   */
  async finish<D extends EventDraft>(id: number, end: JobEnd, rule?: CompletionRule<D>): Promise<Ended<D> | null> {
    const fields = endColumns(end);
    if (!rule) {
      const job = await this.set(id, fields);
      return job && { job, completed: null };
    }
    let released: Released[] = [];
    const result = await this.tx(async (c): Promise<Ended<D> | null> => {
      released = [];
      const locked = (await c.query<Row>(
        `SELECT j.* FROM jobs j JOIN jobs me ON me.store = j.store AND me.key = j.key AND me.version = j.version
         WHERE me.id = $1 ORDER BY j.id FOR UPDATE OF j`, [id])).rows;
      const before = locked.find((r) => r.id === id);
      if (!before) return null;
      const row = (await this.setWith(c, id, fields, released))!;
      const job = toJob(row);
      const decided = completionOf(rule, locked.map((r) => (r.id === id ? job : toJob(r))), before.state);
      if (!decided) return { job, completed: null };
      let outboxId: number | null = null;
      if (needsOutbox(decided.draft)) {
        const d = decided.draft;
        outboxId = (await c.query<{ id: number }>(
          'INSERT INTO outbox (event_id, body, manifests, targets, created_at, owner) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id',
          [d.eventId, d.body, JSON.stringify(d.manifests), JSON.stringify(d.targets), Date.now(), d.owner])).rows[0]!.id;
      }
      return { job, completed: { ...decided, outboxId } };
    });
    this.announce(released);
    return result;
  }

  async markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string, attempt?: AttemptRecord): Promise<Job | null> {
    return this.set(id, {
      state: 'failed', error, next_attempt_at: Math.round(nextAttemptAt), ...(sha256 && { sha256 }), ...(attempt && { [APPENDED]: JSON.stringify(attempt) }),
    });
  }

  async markState(id: number, state: JobState): Promise<Job | null> {
    return this.set(id, { state });
  }
  async takeOutbox(id: number, from: string | null, to: string): Promise<boolean> {
    const r = await this.query('UPDATE outbox SET owner = $3 WHERE id = $1 AND owner IS NOT DISTINCT FROM $2', [id, from, to]);
    return r.rowCount === 1;
  }

  async updateOutbox(id: number, manifests: unknown[], targets: unknown[]): Promise<void> {
    if (manifests.length === 0 && targets.length === 0) await this.query('DELETE FROM outbox WHERE id = $1', [id]);
    else await this.query('UPDATE outbox SET manifests = $2, targets = $3 WHERE id = $1', [id, JSON.stringify(manifests), JSON.stringify(targets)]);
  }

  async outbox<M, T>(): Promise<OutboxEntry<M, T>[]> {
    const { rows } = await this.query<{ id: number; event_id: string; body: string; manifests: M[]; targets: T[]; created_at: number; owner: string | null }>(
      'SELECT * FROM outbox ORDER BY id');
    return rows.map((r) => ({ id: r.id, eventId: r.event_id, body: r.body, manifests: r.manifests, targets: r.targets, createdAt: r.created_at, owner: r.owner }));
  }

  /** One statement: the upsert keeps the greater sequencer, and the row read back says which that is. */
  async seeSequencer(store: string, key: string, sequencer: string): Promise<boolean> {
    const seq = orderOf(sequencer);
    const { rows } = await this.query<{ sequencer: string }>(
      `WITH up AS (
         INSERT INTO key_order (store, key, sequencer) VALUES ($1, $2, $3)
         ON CONFLICT (store, key) DO UPDATE SET sequencer = EXCLUDED.sequencer WHERE EXCLUDED.sequencer > key_order.sequencer
         RETURNING sequencer)
       SELECT sequencer FROM up UNION ALL SELECT sequencer FROM key_order WHERE store = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM up)`,
      [store, key, seq]);
    // Nothing at all: another process inserted the key between the conflict check and the read; ask again.
    if (rows.length === 0) return this.seeSequencer(store, key, sequencer);
    return rows[0]!.sequencer === seq;
  }

  async jobsOfVersion(pipeline: string, store: string, key: string, version: string): Promise<Job[]> {
    return this.many('SELECT * FROM jobs WHERE pipeline = $1 AND store = $2 AND key = $3 AND version = $4', [pipeline, store, key, version]);
  }

  async doneForKey(pipeline: string, store: string, key: string): Promise<Job[]> {
    return this.many("SELECT * FROM jobs WHERE pipeline = $1 AND store = $2 AND key = $3 AND state = 'done'", [pipeline, store, key]);
  }

  /** A key range (the key column sorts bytewise, COLLATE "C"), so the (pipeline, store, key) index serves it. */
  async doneUnderFolder(pipeline: string, store: string, folder: string): Promise<Job[]> {
    return this.many("SELECT * FROM jobs WHERE pipeline = $1 AND store = $2 AND key > $3 AND key < $4 AND state = 'done'",
      [pipeline, store, `${folder}/`, `${folder}0`]);
  }

  async unfinished(limit = 1000, afterId = 0, since = 0): Promise<Job[]> {
    if (since === 0) {
      return this.many("SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > $1 ORDER BY id LIMIT $2", [afterId, limit]);
    }
    return this.many(`SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > $1
        AND (updated_at >= $2 OR (state = 'failed' AND next_attempt_at >= $2 AND next_attempt_at <= $3))
        ORDER BY id LIMIT $4`, [afterId, since, Date.now(), limit]);
  }

  async counts(): Promise<StateCounts & { deduplicated: number }> {
    const counts: StateCounts = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
    // From the counts the ledger keeps (migration 8), not a count of every job.
    const { rows } = await this.query<{ state: JobState; deduplicated: boolean; n: number }>(KEPT_COUNTS, []);
    let deduplicated = 0;
    for (const r of rows) {
      counts[r.state] += r.n;
      if (r.state === 'done' && r.deduplicated) deduplicated += r.n;
    }
    return { ...counts, deduplicated };
  }

  async list(state: JobState, limit = 100): Promise<Job[]> {
    return this.many('SELECT * FROM jobs WHERE state = $1 ORDER BY updated_at DESC LIMIT $2', [state, limit]);
  }

  async retryDead(which?: number | { pipeline: string }): Promise<number> {
    const retry = "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = $1 WHERE state = 'dead'";
    const r = which === undefined ? await this.query(retry, [Date.now()])
      : typeof which === 'number' ? await this.query(`${retry} AND id = $2`, [Date.now(), which])
        : await this.query(`${retry} AND pipeline = $2`, [Date.now(), which.pipeline]);
    return r.rowCount ?? 0;
  }
}
