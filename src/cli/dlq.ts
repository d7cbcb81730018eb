import { MediaflowError } from '../errors.js';
import { openLedger } from '../ledger/open.js';

export async function dlqCommand(action: string, id: string | undefined, o: { all?: boolean; json?: boolean; data: string; ledger?: string }): Promise<number> {
  const ledger = await openLedger({ url: o.ledger, dataDir: o.data, mustExist: true });
  try {
    if (action === 'list') {
      const dead = await ledger.list('dead', 1000);
      if (o.json) console.log(JSON.stringify(dead.map((j) => ({ id: j.id, pipeline: j.pipeline, key: j.key, attempts: j.attempts, error: j.error }))));
      else if (dead.length === 0) console.log('no dead letters');
      else for (const j of dead) console.log(`#${j.id}  ${j.pipeline}  ${j.key}  (${j.attempts} attempt${j.attempts === 1 ? '' : 's'})\n    ${j.error}`);
      return 0;
    }
    if (action === 'retry') {
      if (!o.all && id === undefined) throw new MediaflowError('E_CONFIG', 'dlq retry needs a job id or --all');
      const n = o.all ? await ledger.retryDead() : await ledger.retryDead(parseId(id!));
      if (!o.all && n === 0) throw new MediaflowError('E_CONFIG', `job ${id} is not a dead letter`);
      console.log(`${n} dead letter${n === 1 ? '' : 's'} queued again; a running \`mediaflow run\` picks ${n === 1 ? 'it' : 'them'} up`);
      return 0;
    }
    throw new MediaflowError('E_CONFIG', `unknown dlq action "${action}" (expected list or retry)`);
  } finally {
    await ledger.close();
  }
}

function parseId(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new MediaflowError('E_CONFIG', `Expected a job id (integer >= 1), got \`${v}\``);
  return n;
}
