import path from 'node:path';
import { openLedger } from '../ledger/open.js';
import { createLogger } from '../log.js';
import { loadPipelines } from '../pipeline/load.js';
import { Service } from '../service.js';

/** `mediaflow process FILE --pipeline NAME`: one file, once, with retries, in the foreground. */
export async function processCommand(file: string, o: { pipeline: string; pipelines: string[]; data: string; ledger?: string }): Promise<number> {
  const logger = createLogger({ level: process.env.MEDIAFLOW_LOG_LEVEL ?? 'warn' });
  const pipelines = loadPipelines(o.pipelines);
  const service = new Service({ pipelines, dataDir: o.data, ledger: await openLedger({ url: o.ledger, dataDir: o.data }), logger });
  try {
    const job = await service.processFile(o.pipeline, path.resolve(file));
    if (job.state === 'done') {
      console.log(`done${job.deduplicated ? ' (same content seen before: no image work)' : ''}`);
      for (const out of job.outputs) console.log(`  ${out.stepId}\t${out.key}\t${out.size} bytes${out.width ? `\t${out.width}x${out.height}` : ''}`);
      return 0;
    }
    console.error(`${job.state}: ${job.error}`);
    return 1;
  } finally {
    await service.stop();
  }
}
