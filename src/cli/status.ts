import { existsSync } from 'node:fs';
import path from 'node:path';
import { MediaflowError } from '../errors.js';
import { SqliteLedger } from '../ledger/sqlite-ledger.js';

export function openLedger(dataDir: string): SqliteLedger {
  if (!existsSync(path.join(dataDir, 'ledger.sqlite'))) {
    throw new MediaflowError('E_CONFIG', `no ledger in ${dataDir} (start \`mediaflow run\` there first, or pass --data)`);
  }
  return new SqliteLedger(dataDir);
}

export function statusCommand(o: { json?: boolean; data: string }): number {
  const ledger = openLedger(o.data);
  try {
    const c = ledger.counts();
    const failures = [...ledger.list('dead', 5), ...ledger.list('failed', 5)];
    const status = {
      jobs: { queued: c.queued, running: c.running, done: c.done, failed: c.failed, dead: c.dead },
      deduplicated: c.deduplicated,
      superseded: c.superseded,
      removed: c.removed,
      // Inputs that were mediaflow's own outputs (a loop cut short): worth a look at the folder layout.
      skipped: c.skipped,
      backlog: c.queued + c.running + c.failed,
      recentFailures: failures.map((j) => ({ id: j.id, pipeline: j.pipeline, key: j.key, state: j.state, attempts: j.attempts, error: j.error })),
    };
    if (o.json) {
      console.log(JSON.stringify(status));
      return 0;
    }
    console.log(`queued ${c.queued}  running ${c.running}  done ${c.done}  failed ${c.failed}  dead ${c.dead}`);
    console.log(`deduplicated ${c.deduplicated}  superseded ${c.superseded}  skipped ${c.skipped}  backlog ${status.backlog}`);
    for (const f of status.recentFailures) console.log(`  #${f.id} ${f.state} ${f.pipeline} ${f.key}: ${f.error}`);
    return 0;
  } finally {
    ledger.close();
  }
}
