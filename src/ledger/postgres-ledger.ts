import { EventEmitter } from 'node:events';
import pg from 'pg';
import { MediaflowError } from '../errors.js';
import {
  APPENDED, completionOf, endColumns, needsOutbox, orderOf,
  type AttemptRecord, type ClaimRequest, type CompletionRule, type Ended, type EventDraft, type Job, type JobEnd,
  type JobList, type JobState, type Ledger, type NewJob, type OutboxEntry, type OutputOrigin, type OutputRecord, type RenderClaim, type StateCounts,
} from './ledger.js';
import { isConflict, isOutage, PreparingClient, quoteIdent, types } from './postgres-connection.js';
import { PostgresJobList } from './postgres-job-list.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { maskUrl } from '../urls.js';

export interface PostgresLedgerOptions {
  /** postgres://user:password@host:port/database; `?schema=NAME` keeps the tables in that schema (made if missing). */
  url: string;
  /** Connections in the pool (each worker process has its own pool). @default 10 */
  poolSize?: number;
  /** How long a new connection may take before the attempt fails. @default 5000 */
  connectTimeoutMs?: number;
}

interface Row {
  id: number; pipeline: string; fingerprint: string; store: string; key: string; rel_key: string;
  version: string; state: JobState; attempts: number; error: string | null; sha256: string | null;
  outputs: OutputRecord[]; deduplicated: boolean; created_at: number; updated_at: number;
  next_attempt_at: number | null; changed_at: number | null; size: number | null; content_type: string | null; attempt_log: AttemptRecord[];
}

function toJob(r: Row): Job {
  return {
    id: r.id, pipeline: r.pipeline, fingerprint: r.fingerprint, store: r.store, key: r.key, relKey: r.rel_key,
    version: r.version, state: r.state, attempts: r.attempts, error: r.error, sha256: r.sha256,
    outputs: r.outputs, deduplicated: r.deduplicated,
    createdAt: r.created_at, updatedAt: r.updated_at, nextAttemptAt: r.next_attempt_at, changedAt: r.changed_at,
    size: r.size, contentType: r.content_type, attemptLog: r.attempt_log,
  };
}

type Released = { sha256: string; fingerprint: string };

/**
 * The shared ledger: PostgreSQL, for sources and workers on many machines.
 * The same contract as the SQLite ledger (test/helpers/ledger-contract.ts);
 * uniqueness decides what SQLite's single writer decides there: one job per
 * key version (UNIQUE), one render per content (the render_claims primary
 * key). Every state change is one statement (CTEs), so one round trip.
 */
export class PostgresLedger implements Ledger {
  readonly location: string;
  private readonly released = new EventEmitter().setMaxListeners(0);

  private constructor(private readonly pool: pg.Pool, url: string, readonly schema: string) {
    this.location = maskUrl(url);
    this.jobList = new PostgresJobList((text, values) => this.query(text, values), toJob);
  }

  /** The dashboard's reads (lists, changes, activity), in a file of their own. */
  readonly jobList: JobList;

  /** Connects (checking the URL at once) and applies the migrations this database lacks. */
  static async connect(o: PostgresLedgerOptions): Promise<PostgresLedger> {
    const masked = maskUrl(o.url);
    let url: URL;
    try {
      url = new URL(o.url);
    } catch {
      throw new MediaflowError('E_CONFIG', `ledger URL ${masked} is not a URL (expected postgres://user:password@host:5432/database)`);
    }
    const schema = url.searchParams.get('schema') ?? 'public';
    url.searchParams.delete('schema');
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
      throw new MediaflowError('E_CONFIG', `ledger URL ${masked}: schema ${JSON.stringify(schema)} is not a plain identifier (letters, digits, _)`);
    }
    const pool = new pg.Pool({
      connectionString: url.toString(),
      max: o.poolSize ?? 10,
      connectionTimeoutMillis: o.connectTimeoutMs ?? 5000,
      options: `-c search_path=${schema}`,
      types,
      application_name: 'mediaflow',
      Client: PreparingClient,
    });
    // An idle connection that drops (a database restart) must not end the process: the next query reconnects.
    pool.on('error', () => {});
    const ledger = new PostgresLedger(pool, o.url, schema);
    try {
      // At start a database that cannot be reached is a configuration error, said at once, not waited for.
      ledger.outageMs = 0;
      await ledger.migrate();
      ledger.outageMs = 120_000;
    } catch (err) {
      await pool.end().catch(() => {});
      if (err instanceof MediaflowError) throw err;
      throw new MediaflowError('E_LEDGER', `cannot open the ledger at ${masked}: ${(err as Error).message}`);
    }
    return ledger;
  }

  /** Versioned migrations, applied under an advisory lock: workers starting together apply each once. */
  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      // The lock first: CREATE SCHEMA IF NOT EXISTS itself fails when two run at once.
      await c.query("SELECT pg_advisory_xact_lock(hashtext('mediaflow migrations ' || $1))", [this.schema]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
      await c.query('CREATE TABLE IF NOT EXISTS mediaflow_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const { rows } = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM mediaflow_migrations');
      const current = rows[0]?.v ?? 0;
      if (current > POSTGRES_MIGRATIONS.length) {
        throw new MediaflowError('E_LEDGER', `${this.location}: ledger is version ${current}, newer than this mediaflow knows (${POSTGRES_MIGRATIONS.length}); upgrade mediaflow`);
      }
      for (let v = current; v < POSTGRES_MIGRATIONS.length; v++) {
        await c.query(POSTGRES_MIGRATIONS[v]!);
        await c.query('INSERT INTO mediaflow_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
      }
    });
  }

  async schemaVersion(): Promise<number> {
    const { rows } = await this.query<{ v: number }>('SELECT max(version) AS v FROM mediaflow_migrations');
    return rows[0]!.v;
  }

  /**
   * A query that waits out an outage: a database restarting (connections
   * cut, refused while it starts) is retried with backoff, 100 ms doubling
   * to 5 s, for up to `outageMs`; any other error is thrown at once. Every
   * statement here is safe to run again (an insert that may have committed
   * before its answer was lost finds its row, or adds a duplicate outbox
   * entry under the same event id).
   */
  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.retrying(() => this.pool.query<R>(text, values));
  }

  private async retrying<T>(work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.outageMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 5000)) {
      try {
        const result = await work();
        this.down = false;
        return result;
      } catch (err) {
        if (!this.closed && isConflict(err)) continue; // at once: the other transaction has gone ahead
        if (this.closed || !isOutage(err) || Date.now() + delay > deadline) throw err;
        if (!this.down) {
          this.down = true;
          this.onOutage?.(err as Error);
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Called once per outage (the service logs it); cleared by the next statement that succeeds. */
  onOutage?: (err: Error) => void;
  private down = false;
  private closed = false;
  /** How long a statement waits for the database to come back before it fails. @default 120000 */
  outageMs = 120_000;

  private async tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.retrying(() => this.txOnce(work));
  }

  private async txOnce<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      const result = await work(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  private async one(text: string, values: unknown[]): Promise<Row | undefined> {
    return (await this.query<Row>(text, values)).rows[0];
  }

  private async many(text: string, values: unknown[]): Promise<Job[]> {
    return (await this.query<Row>(text, values)).rows.map(toJob);
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1'); // no retry: readiness says "down" while it is
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.end().catch(() => {});
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

  private announce(released: Released[]): void {
    for (const c of released) this.released.emit('released', c.sha256, c.fingerprint);
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

  private static readonly FIND_RENDER =
    "SELECT * FROM jobs WHERE sha256 = $1 AND fingerprint = $2 AND state = 'done' ORDER BY deduplicated ASC, updated_at DESC, id DESC LIMIT 1";

  async findRender(sha256: string, fingerprint: string): Promise<Job | null> {
    const row = await this.one(PostgresLedger.FIND_RENDER, [sha256, fingerprint]);
    return row ? toJob(row) : null;
  }

  /**
   * The claim is the render_claims row: an INSERT that takes it when it is
   * free, expired, this job's own or handed over; the primary key makes two
   * winners impossible across any number of workers. Claim first, then look
   * for a done render (a statement of its own, so it sees what committed
   * before the claim was won: the holder's done and its release commit
   * together, so a render that just ended is never made again).
   */
  async claimRender(c: ClaimRequest): Promise<RenderClaim> {
    for (let tries = 0; ; tries++) {
      const result = await this.tx(async (db): Promise<RenderClaim | null> => {
        const now = Date.now();
        // The output check rides on the claim's first statement: no claim is taken for bytes that are an output.
        const won = await db.query<{ job_id: number | null; of: OutputOrigin | null }>(
          `WITH own AS (
             SELECT c.job_id AS "jobId", COALESCE(j.pipeline, '?') AS pipeline, COALESCE(j.key, '?') AS key
             FROM output_checksums c LEFT JOIN jobs j ON j.id = c.job_id WHERE c.sha256 = $1 LIMIT 1),
           claim AS (
             INSERT INTO render_claims (sha256, fingerprint, job_id, owner, expires_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM own)
             ON CONFLICT (sha256, fingerprint) DO UPDATE SET job_id = EXCLUDED.job_id, owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
             WHERE render_claims.expires_at <= $6 OR render_claims.job_id = EXCLUDED.job_id OR render_claims.owner = $7
             RETURNING job_id)
           SELECT (SELECT job_id FROM claim) AS job_id, (SELECT row_to_json(own) FROM own) AS of`,
          [c.sha256, c.fingerprint, c.jobId, c.owner, now + c.leaseMs, now, c.takeOverFrom ?? null]);
        const { job_id: claimed, of } = won.rows[0]!;
        if (of) return { kind: 'output', of: { jobId: Number(of.jobId), pipeline: of.pipeline, key: of.key } };
        if (claimed !== null) {
          const done = c.rendered === false ? undefined : (await db.query<Row>(PostgresLedger.FIND_RENDER, [c.sha256, c.fingerprint])).rows[0];
          if (!done || done.id === c.jobId) return { kind: 'claimed' };
          await db.query('DELETE FROM render_claims WHERE sha256 = $1 AND fingerprint = $2 AND job_id = $3', [c.sha256, c.fingerprint, c.jobId]);
          return { kind: 'rendered', job: toJob(done) };
        }
        const held = (await db.query<{ job_id: number; owner: string; expires_at: number }>(
          'SELECT job_id, owner, expires_at FROM render_claims WHERE sha256 = $1 AND fingerprint = $2', [c.sha256, c.fingerprint])).rows[0];
        return held ? { kind: 'busy', jobId: held.job_id, owner: held.owner, expiresAt: held.expires_at } : null;
      });
      // null: the holder let go between the two statements; ask again.
      if (result) return result;
      if (tries >= 5) return { kind: 'busy', jobId: 0, owner: '', expiresAt: Date.now() };
    }
  }

  async renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): Promise<boolean> {
    const r = await this.query('UPDATE render_claims SET expires_at = $1 WHERE sha256 = $2 AND fingerprint = $3 AND job_id = $4',
      [Date.now() + leaseMs, sha256, fingerprint, jobId]);
    return r.rowCount === 1;
  }

  async releaseRender(sha256: string, fingerprint: string, jobId: number): Promise<void> {
    const r = await this.query('DELETE FROM render_claims WHERE sha256 = $1 AND fingerprint = $2 AND job_id = $3', [sha256, fingerprint, jobId]);
    if (r.rowCount) this.released.emit('released', sha256, fingerprint);
  }

  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void {
    this.released.on('released', listener);
    return () => this.released.off('released', listener);
  }

  async recordOutputs(sha256s: readonly string[], jobId: number): Promise<void> {
    if (sha256s.length === 0) return;
    await this.query('INSERT INTO output_checksums (sha256, job_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING', [[...sha256s], jobId]);
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
    const { rows } = await this.query<{ state: JobState; n: number; dedup: number }>(
      "SELECT state, COUNT(*)::int AS n, COUNT(*) FILTER (WHERE deduplicated AND state = 'done')::int AS dedup FROM jobs GROUP BY state");
    let deduplicated = 0;
    for (const r of rows) {
      counts[r.state] = r.n;
      deduplicated += r.dedup;
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

  async renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]> {
    return (await this.query<{ sha256: string; fingerprint: string; renders: number }>(
      "SELECT sha256, fingerprint, COUNT(*)::int AS renders FROM jobs WHERE state = 'done' AND NOT deduplicated GROUP BY sha256, fingerprint")).rows;
  }
}
