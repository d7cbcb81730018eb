import { mkdirSync } from 'node:fs';
import { Completion } from '../completion/completion.js';
import type { RateLimit } from '../http/rate-limit.js';
import { checkHttpConfig, listenHttp, type HttpServer } from '../http/server.js';
import { openLedger } from '../ledger/open.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { loadPipelines } from '../pipeline/load.js';
import { Service } from '../service.js';

export interface RunOptions {
  pipelines: string[];
  data: string;
  /** postgres:// URL of a shared ledger; unset: SQLite in `data`. */
  ledger?: string;
  concurrency?: number;
  highWaterMark?: number;
  /** HTTP port (0: any free port, logged). */
  port: number;
  host: string;
  /** Requests to /v1/* per client address; false: none (see docs/HTTP.md). */
  rateLimit: RateLimit | false;
}

/** `mediaflow run`: runs until SIGINT/SIGTERM, then stops intake, lets in-flight jobs finish and exits 0. */
export async function runCommand(o: RunOptions): Promise<number> {
  const logger = createLogger();
  const pipelines = loadPipelines(o.pipelines);
  for (const p of pipelines) {
    // A fresh checkout has no inbox yet: make it rather than fail.
    if (p.source.type === 'folder') mkdirSync(p.source.path, { recursive: true });
  }
  const token = process.env.MEDIAFLOW_TOKEN || undefined;
  checkHttpConfig(o.host, token);
  const ledger = await openLedger({ url: o.ledger, dataDir: o.data });
  const service = new Service({ pipelines, dataDir: o.data, ledger, concurrency: o.concurrency, highWaterMark: o.highWaterMark, logger });
  // Before start, so catch-up work is counted and completes like any other.
  const completion = new Completion(service, { secret: process.env.MEDIAFLOW_NOTIFY_SECRET || undefined, logger });
  const metrics = new Metrics(service);
  metrics.watchCompletion(completion);
  let http: HttpServer | null = null;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping: no new work, finishing jobs in flight');
      // HTTP first: no new requests while in-flight jobs finish; completion last, for the jobs that finish meanwhile.
      // The completion events close while the ledger is still open, so the last deliveries leave its outbox.
      Promise.resolve(http?.close()).then(() => service.stop(() => completion.close()))
        .then(resolve, (err) => { logger.error({ err }, 'stop failed'); resolve(); });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await service.start();
  try {
    http = await listenHttp(service, { host: o.host, port: o.port, token, logger, metrics, rateLimit: o.rateLimit });
  } catch (err) {
    await service.stop(() => completion.close());
    throw err;
  }
  logger.info({ pipelines: pipelines.map((p) => p.name), data: o.data, ledger: ledger.location }, 'mediaflow running');
  await stopped;
  logger.flush?.();
  return 0;
}
