/**
 * How the PostgreSQL ledger talks to the server: the pool (opened from the
 * URL, the schema brought up to date), which errors are an outage (waited
 * out) or a conflict (run again), the client that prepares its statements,
 * and how values and rows are parsed.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { MediaflowError } from '../errors.js';
import { maskUrl } from '../urls.js';
import type { AttemptRecord, Job, JobState, OutputRecord } from './job.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';

/** Errors of a database that is (re)starting or unreachable, as opposed to errors of a statement. */
export function isOutage(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  const code = e?.code ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN'].includes(code)
    || /^(08|57P0)/.test(code)
    || /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(e?.message ?? '');
}

/** A deadlock or serialization failure: the transaction was rolled back and may simply run again. */
export const isConflict = (err: unknown): boolean => ['40P01', '40001'].includes((err as { code?: string } | null)?.code ?? '');

/**
 * A client that prepares every parameterised statement once per connection
 * (named by a hash of its text) instead of having the server parse and plan
 * it on every call: the ledger runs a handful of fixed statements thousands
 * of times (PostgreSQL's CPU per job fell from 3.7–4.8 ms to 2.2–3.0 ms in
 * bench/scale.js). Statements without parameters (BEGIN, COMMIT, migrations, which
 * may hold several commands) go as they are.
 */
export class PreparingClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // A connection cut while it is checked out (a database restart mid-transaction) emits 'error' on the
    // client as well as failing its query; the pool listens only while a client is idle, and an 'error'
    // nobody listens for ends the process. The failed query is what the ledger acts on (it retries).
    this.on('error', () => {});
  }

  override query(...args: unknown[]): never {
    const [text, values, callback] = args;
    if (typeof text === 'string' && Array.isArray(values) && values.length > 0) {
      const name = `mf_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
      return (super.query as (...a: unknown[]) => never)({ name, text, values }, callback);
    }
    return (super.query as (...a: unknown[]) => never)(...args);
  }
}

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** BIGINT columns (ids, times in ms) come back as numbers: every value here stays far below 2^53. */
export const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export interface PostgresLedgerOptions {
  /** postgres://user:password@host:port/database; `?schema=NAME` keeps the tables in that schema (made if missing). */
  url: string;
  /** Connections in the pool (each worker process has its own pool). @default 10 */
  poolSize?: number;
  /** How long a new connection may take before the attempt fails. @default 5000 */
  connectTimeoutMs?: number;
}

/** A row of the jobs table as the server returns it (JSONB as values, BIGINT as numbers, see types). */
export interface Row {
  id: number; pipeline: string; fingerprint: string; store: string; key: string; rel_key: string;
  version: string; state: JobState; attempts: number; error: string | null; sha256: string | null;
  outputs: OutputRecord[]; deduplicated: boolean; created_at: number; updated_at: number;
  next_attempt_at: number | null; changed_at: number | null; size: number | null; content_type: string | null; attempt_log: AttemptRecord[];
}

export function toJob(r: Row): Job {
  return {
    id: r.id, pipeline: r.pipeline, fingerprint: r.fingerprint, store: r.store, key: r.key, relKey: r.rel_key,
    version: r.version, state: r.state, attempts: r.attempts, error: r.error, sha256: r.sha256,
    outputs: r.outputs, deduplicated: r.deduplicated,
    createdAt: r.created_at, updatedAt: r.updated_at, nextAttemptAt: r.next_attempt_at, changedAt: r.changed_at,
    size: r.size, contentType: r.content_type, attemptLog: r.attempt_log,
  };
}

/** The pool the URL asks for, and the schema its connections work in (`?schema=`, default public). */
export function openPool(o: PostgresLedgerOptions): { pool: pg.Pool; schema: string } {
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
  return { pool, schema };
}

/**
 * The pool and how statements go through it: each waits out an outage,
 * a transaction in conflict runs again. The ledger itself is built on it:
 * PostgresRenderClaims, then PostgresLedger.
 */
export abstract class PostgresConnection {
  readonly location: string;

  protected constructor(protected readonly pool: pg.Pool, url: string, readonly schema: string) {
    this.location = maskUrl(url);
  }

  /** Applies the migrations the database lacks; the ledger is ready when this resolves. */
  protected async opened(): Promise<this> {
    try {
      // At start a database that cannot be reached is a configuration error, said at once, not waited for.
      this.outageMs = 0;
      await this.migrate();
      this.outageMs = 120_000;
    } catch (err) {
      await this.pool.end().catch(() => {});
      if (err instanceof MediaflowError) throw err;
      throw new MediaflowError('E_LEDGER', `cannot open the ledger at ${this.location}: ${(err as Error).message}`);
    }
    return this;
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
  protected async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.retrying(() => this.pool.query<R>(text, values));
  }

  protected async retrying<T>(work: () => Promise<T>): Promise<T> {
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

  protected async tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
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

  protected async one(text: string, values: unknown[]): Promise<Row | undefined> {
    return (await this.query<Row>(text, values)).rows[0];
  }

  protected async many(text: string, values: unknown[]): Promise<Job[]> {
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
}
