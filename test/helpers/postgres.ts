/**
 * The machine's PostgreSQL for the shared-ledger tests (MEDIAFLOW_TEST_POSTGRES,
 * default postgres://postgres@127.0.0.1:5432/test). Each test gets a schema
 * of its own (mf_test_<random>) and drops it afterwards.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describeNeeding } from './needs-server.js';

export const POSTGRES_URL = process.env.MEDIAFLOW_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: string | null | undefined;
/** null when a connection works, else why not (asked once, synchronously, so describe() can decide). */
function unreachable(): string | null {
  if (reachable !== undefined) return reachable;
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import pg from 'pg';
    const c = new pg.Client({ connectionString: ${JSON.stringify(POSTGRES_URL)}, connectionTimeoutMillis: 3000 });
    await c.connect(); await c.query('SELECT 1'); await c.end();`], { encoding: 'utf8', cwd: process.cwd(), timeout: 10_000 });
  reachable = probe.status === 0 ? null : (probe.stderr.trim().split('\n').filter((l) => /Error|error/.test(l))[0] ?? `exit ${probe.status}`);
  return reachable;
}

/** describe() for suites that need PostgreSQL (see describeNeeding). */
export function describePostgres(name: string, fn: () => void): void {
  const why = unreachable();
  describeNeeding('a PostgreSQL server', why === null ? null : `No PostgreSQL at ${POSTGRES_URL}: ${why} (set MEDIAFLOW_TEST_POSTGRES)`, name, fn);
}

/** A schema of its own: the URL to give mediaflow, and drop() to remove it. */
export function testSchema(): { schema: string; url: string; drop(): Promise<void> } {
  const schema = `mf_test_${randomBytes(6).toString('hex')}`;
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return {
    schema,
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}
