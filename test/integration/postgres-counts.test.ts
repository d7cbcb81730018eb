/** The PostgreSQL ledger's kept counts (migration 8) held against a count of every job, on the machine's real PostgreSQL. */
import pg from 'pg';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { StateCounts } from '../../src/ledger/ledger.js';
import { FOLD_COUNTS } from '../../src/ledger/postgres-counts.js';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { POSTGRES_MIGRATIONS } from '../../src/ledger/postgres-migrations.js';
import { changeEveryWay } from '../helpers/every-change.js';
import { describePostgres, POSTGRES_URL, testSchema } from '../helpers/postgres.js';

const job = { pipeline: 'p', fingerprint: 'f1', store: 'folder:/in', key: 'a.jpg', relKey: 'a.jpg', version: 'v1' };

describePostgres('PostgreSQL ledger counts', () => {
  let s: ReturnType<typeof testSchema>;
  let db: pg.Client;
  const ledgers: PostgresLedger[] = [];
  const open = async () => { const l = await PostgresLedger.connect({ url: s.url }); ledgers.push(l); return l; };

  beforeEach(async () => {
    s = testSchema();
    db = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${s.schema}` });
    await db.connect();
  });
  afterEach(async () => {
    for (const l of ledgers.splice(0)) await l.close();
    await db.end();
    await s.drop();
  });

  /** What a count of every job says. */
  async function countedFromJobs(): Promise<{ byState: Record<string, number>; byPipeline: Record<string, Record<string, number>>; deduplicated: number }> {
    const byState: Record<string, number> = {};
    const byPipeline: Record<string, Record<string, number>> = {};
    for (const r of (await db.query<{ pipeline: string; state: string; n: number }>('SELECT pipeline, state, COUNT(*)::int AS n FROM jobs GROUP BY pipeline, state')).rows) {
      byState[r.state] = (byState[r.state] ?? 0) + r.n;
      (byPipeline[r.pipeline] ??= {})[r.state] = r.n;
    }
    const { n } = (await db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM jobs WHERE state = 'done' AND deduplicated")).rows[0]!;
    return { byState, byPipeline, deduplicated: n };
  }
  const nonZero = (c: object) => Object.fromEntries(Object.entries(c).filter(([, n]) => n !== 0));
  async function expectExact(l: PostgresLedger): Promise<void> {
    const full = await countedFromJobs();
    const { deduplicated, ...byState } = await l.counts();
    expect(nonZero(byState)).toEqual(full.byState);
    expect(deduplicated).toBe(full.deduplicated);
    const byPipeline: Record<string, StateCounts> = await l.jobList.countsByPipeline();
    expect(Object.fromEntries(Object.entries(byPipeline).map(([p, c]) => [p, nonZero(c)]))).toEqual(full.byPipeline);
  }
  const changes = async () => (await db.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM job_count_changes')).rows[0]!.n;

  it('keeps its counts in step with the jobs through every kind of change, from two processes, before and after a fold', async () => {
    const [a, b] = [await open(), await open()];
    const jobs = await changeEveryWay((i) => (i % 2 ? a : b), async () => {
      await expectExact(a);
      await db.query(FOLD_COUNTS);
      expect(await changes()).toBe(0);
      await expectExact(b);
    });
    await db.query('DELETE FROM jobs WHERE id = $1', [jobs[3]!.id]); // an operator's hand: counted too
    expect(await changes()).toBeGreaterThan(0);
    await expectExact(a);
    await db.query(FOLD_COUNTS);
    expect(await changes()).toBe(0);
    await expectExact(b);
    expect((await a.counts()).deduplicated).toBe(1);
    // Read from the kept rows, not counted from the jobs: a change row alone moves the answer.
    const before = (await a.counts()).done;
    await db.query("INSERT INTO job_count_changes (pipeline, state, deduplicated, d) VALUES ('p', 'done', false, 5)");
    expect((await a.counts()).done).toBe(before + 5);
    expect((await a.jobList.countsByPipeline()).p!.done).toBe((await countedFromJobs()).byPipeline.p!.done! + 5);
  });

  it('many connections changing jobs at once while folds race them: no deadlock, and the counts are exact', async () => {
    const workers = [await open(), await open(), await open()];
    let folding = true;
    const folder = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path=${s.schema}` });
    await folder.connect();
    const folds = (async () => { let n = 0; while (folding) { await folder.query(FOLD_COUNTS); n++; } return n; })();
    try {
      await Promise.all(Array.from({ length: 150 }, async (_, i) => {
        const l = workers[i % workers.length]!;
        const { job: j } = await l.upsert({ ...job, pipeline: i % 3 ? 'p' : 'q', key: `c${i}.jpg`, relKey: `c${i}.jpg` });
        await l.startAttempt(j.id);
        if (i % 5 === 0) await l.markFailed(j.id, 'timeout', Date.now());
        else await l.finish(j.id, i % 7 === 0 ? { state: 'dead', error: 'corrupt' } : { state: 'done', outputs: [], deduplicated: i % 2 === 0 });
      }));
      await workers[0]!.retryDead();
    } finally {
      folding = false;
    }
    expect(await folds).toBeGreaterThan(0);
    await folder.end();
    await expectExact(workers[1]!);
    expect((await workers[2]!.counts()).queued).toBe(Math.ceil(150 / 7) - Math.ceil(150 / 35)); // the dead retried (those i%7 that were not i%5)
  });

  it('counts the jobs a ledger already has when it migrates to the kept counts', async () => {
    // A ledger at version 7, as the release before wrote it, with jobs in it.
    await db.query(`CREATE SCHEMA "${s.schema}"`);
    await db.query('CREATE TABLE mediaflow_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    for (let v = 0; v < 7; v++) {
      await db.query(POSTGRES_MIGRATIONS[v]!);
      await db.query('INSERT INTO mediaflow_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, Date.now()]);
    }
    await db.query(`INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, deduplicated, created_at, updated_at)
      SELECT CASE WHEN i % 2 = 0 THEN 'p' ELSE 'q' END, 'f1', 'folder:/in', 'k' || i, 'k' || i, 'v1',
        CASE WHEN i % 4 = 0 THEN 'queued' ELSE 'done' END, i % 3 = 0, 1, 1 FROM generate_series(1, 40) i`);
    const l = await open();
    expect(await l.schemaVersion()).toBe(8);
    await expectExact(l);
    expect(await l.counts()).toMatchObject({ queued: 10, done: 30 });
  });
});
