/**
 * How the PostgreSQL ledger talks to the server: which errors are an outage
 * (waited out) or a conflict (run again), the client that prepares its
 * statements, and how values are parsed.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';

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
