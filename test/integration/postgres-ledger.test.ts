/** The shared ledger on the machine's real PostgreSQL: the same contract as SQLite, plus what only a server has. */
import { expect, it } from 'vitest';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { maskUrl } from '../../src/urls.js';
import { openLedger } from '../../src/ledger/open.js';
import { describeLedgerContract } from '../helpers/ledger-contract.js';
import { describePostgres, POSTGRES_URL, testSchema } from '../helpers/postgres.js';

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
      for (const l of ledgers) expect(await l.schemaVersion()).toBe(6);
      expect(ledgers[0]!.schema).toBe(s.schema);
      await Promise.all(ledgers.map((l) => l.close()));
      const again = await PostgresLedger.connect({ url: s.url });
      expect(await again.schemaVersion()).toBe(6);
      await again.close();
    } finally {
      await s.drop();
    }
  });

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
