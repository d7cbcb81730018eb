import { openLedger } from '../ledger/open.js';

export async function statusCommand(o: { json?: boolean; data: string; ledger?: string }): Promise<number> {
  const ledger = await openLedger({ url: o.ledger, dataDir: o.data, mustExist: true });
  try {
    const c = await ledger.counts();
    const failures = [...await ledger.list('dead', 5), ...await ledger.list('failed', 5)];
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
    await ledger.close();
  }
}
