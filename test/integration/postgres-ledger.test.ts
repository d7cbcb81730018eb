/** The shared ledger on the machine's real PostgreSQL: the same contract as SQLite, plus what only a server has. */
import { expect, it } from 'vitest';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { maskUrl } from '../../src/urls.js';
import { openLedger } from '../../src/ledger/open.js';
import { describeLedgerContract } from '../helpers/ledger-contract.js';
import { describePostgres, POSTGRES_URL, testSchema } from '../helpers/postgres.js';
import { startOwnPostgres } from '../helpers/own-servers.js';
import { waitFor } from '../helpers/wait.js';
import type { CompletionRule } from '../../src/ledger/ledger.js';

describePostgres('PostgreSQL ledger', () => {
  describeLedgerContract('PostgreSQL', async () => {
    const s = testSchema();
    const own = await PostgresLedger.connect({ url: s.url });
    const others: PostgresLedger[] = [];
    return {
      ledger: own,
      another: async () => { const o = await PostgresLedger.connect({ url: s.url }); others.push(o); return o; },
      cleanup: async () => {
        for (const l of [own, ...others]) await l.close();
        await s.drop();
      },
    };
  });

  it('workers starting at once apply each migration once, in the schema of the URL', async () => {
    const s = testSchema();
    try {
      const ledgers = await Promise.all(Array.from({ length: 4 }, () => PostgresLedger.connect({ url: s.url })));
      for (const l of ledgers) expect(await l.schemaVersion()).toBe(8);
      expect(ledgers[0]!.schema).toBe(s.schema);
      await Promise.all(ledgers.map((l) => l.close()));
      const again = await PostgresLedger.connect({ url: s.url });
      expect(await again.schemaVersion()).toBe(8);
      await again.close();
    } finally {
      await s.drop();
    }
  });

  it('a database stopped in the middle of transactions: they wait for it and finish; nothing throws out of the pool', async () => {
    const pg = await startOwnPostgres();
    const ledger = await PostgresLedger.connect({ url: pg.url, poolSize: 4 });
    try {
      const rule: CompletionRule = { pipelines: new Map([['p', 'f']]), draft: ([j]) => ({ eventId: `e${j!.id}`, body: '{}', manifests: [], targets: [{ url: 'http://127.0.0.1:9/' }], owner: 'host-1-1' }) };
      const jobs = [];
      for (let i = 0; i < 60; i++) {
        const { job } = await ledger.upsert({ pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key: `${i}.jpg`, relKey: `${i}.jpg`, version: 'v1' });
        jobs.push((await ledger.startAttempt(job.id)) as { id: number });
      }
      // Ends one after another, four at a time, while the server goes away under them (connections cut mid-transaction).
      let next = 0;
      const ends = Array.from({ length: 4 }, async () => {
        while (next < jobs.length) await ledger.finish(jobs[next++]!.id, { state: 'done', outputs: [], deduplicated: false }, rule);
      });
      await waitFor('some ended', async () => next >= 8, 10_000, 1);
      await pg.down();
      await new Promise((r) => setTimeout(r, 1000));
      await pg.up();
      await Promise.all(ends);
      expect((await ledger.counts()).done).toBe(60);
      expect(await ledger.outbox()).toHaveLength(60);
    } finally {
      await ledger.close();
      await pg.stop();
    }
  }, 60_000);

  it('an unreachable server or a wrong URL: one clear error naming the URL, password masked', async () => {
    await expect(openLedger({ url: 'postgres://mediaflow:s3cret@127.0.0.1:1/test', dataDir: '/nonexistent' }))
      .rejects.toThrow(/^cannot open the ledger at postgres:\/\/mediaflow:\*\*\*@127\.0\.0\.1:1\/test: .*ECONNREFUSED/);
    await expect(openLedger({ url: 'mysql://root:pw@127.0.0.1/test', dataDir: '/nonexistent' }))
      .rejects.toThrow(/Expected --ledger \/ MEDIAFLOW_LEDGER to be a postgres:\/\/ URL, got `mysql:\/\/root:\*\*\*@127\.0\.0\.1\/test`/);
    const wrongDb = new URL(POSTGRES_URL);
    wrongDb.pathname = '/no_such_database_here';
    await expect(openLedger({ url: wrongDb.toString(), dataDir: '/nonexistent' })).rejects.toThrow(/no_such_database_here.*does not exist/);
    expect(maskUrl('postgres://u:p@h/db?schema=x')).toBe('postgres://u:***@h/db?schema=x');
  });
});
