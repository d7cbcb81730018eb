import { existsSync } from 'node:fs';
import path from 'node:path';
import { MediaflowError } from '../errors.js';
import type { Ledger } from './ledger.js';
import { maskUrl } from '../urls.js';
import { PostgresLedger } from './postgres-ledger.js';
import { SqliteLedger } from './sqlite-ledger.js';

export interface LedgerChoice {
  /** `postgres://…` (--ledger / MEDIAFLOW_LEDGER); unset: SQLite in dataDir. */
  url?: string;
  dataDir: string;
  /** Commands that only read (status, dlq) refuse to create a new SQLite ledger where there is none. */
  mustExist?: boolean;
}

/** Opens the ledger the command line chose: PostgreSQL when a URL is given, else the SQLite file in the data folder. */
export async function openLedger(c: LedgerChoice): Promise<Ledger> {
  if (c.url) {
    if (!/^postgres(ql)?:\/\//i.test(c.url)) {
      throw new MediaflowError('E_CONFIG', `Expected --ledger / MEDIAFLOW_LEDGER to be a postgres:// URL, got \`${maskUrl(c.url)}\` (leave it unset for the SQLite ledger in --data)`);
    }
    return PostgresLedger.connect({ url: c.url });
  }
  if (c.mustExist && !existsSync(path.join(c.dataDir, 'ledger.sqlite'))) {
    throw new MediaflowError('E_CONFIG', `no ledger in ${c.dataDir} (start \`mediaflow run\` there first, or pass --data or --ledger)`);
  }
  return embeddedLedger(c.dataDir);
}

/** The default ledger: the SQLite file in the data folder (one machine, nothing to run beside it). */
export function embeddedLedger(dataDir: string): Ledger {
  return new SqliteLedger(dataDir);
}
