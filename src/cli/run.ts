import { mkdirSync } from 'node:fs';
import { MediaflowError } from '../errors.js';
import { Completion } from '../completion/completion.js';
import type { RateLimit } from '../http/rate-limit.js';
import { checkHttpConfig, listenHttp, type HttpServer } from '../http/server.js';
import { openLedger } from '../ledger/open.js';
import { openQueue } from '../queue/open.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { loadPipelines } from '../pipeline/load.js';
import { defaultConcurrency, Service, type Role } from '../service.js';

export interface RunOptions {
  pipelines: string[];
  data: string;
  /** postgres:// URL of a shared ledger; unset: SQLite in `data`. */
  ledger?: string;
  /** redis:// URL of a shared queue; unset: in this process. */
  queue?: string;
  role: Role;
  lockMs: number;
  concurrency?: number;
  imageConcurrency?: number;
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
  if (o.role !== 'all' && !o.queue) {
    throw new MediaflowError('E_CONFIG', `--role ${o.role} needs a queue shared with the other processes: --queue redis://host:6379 (or MEDIAFLOW_QUEUE)`);
  }
  const pipelineConcurrency: Record<string, number> = {};
  for (const p of pipelines) if (p.concurrency) pipelineConcurrency[p.name] = p.concurrency;
  const queue = await openQueue({
    url: o.queue, concurrency: o.concurrency ?? defaultConcurrency(o.imageConcurrency), highWaterMark: o.highWaterMark ?? 1000, pipelineConcurrency, lockMs: o.lockMs, logger,
  });
  const ledger = await openLedger({ url: o.ledger, dataDir: o.data }).catch(async (err: unknown) => { await queue?.stop(); throw err; });
  const service = new Service({
    pipelines, dataDir: o.data, ledger, queue: queue ?? undefined, role: o.role, concurrency: o.concurrency, imageConcurrency: o.imageConcurrency, highWaterMark: o.highWaterMark, logger,
  });
  // Before start, so catch-up work is counted and completes like any other. Completion events follow
  // the jobs' outcomes, so the processes that run jobs send them (a sources process runs none).
  const completion = o.role === 'sources' ? null : new Completion(service, { secret: process.env.MEDIAFLOW_NOTIFY_SECRET || undefined, logger });
  const closeCompletion = async () => { await completion?.close(); };
  const metrics = new Metrics(service);
  if (completion) metrics.watchCompletion(completion);
  let http: HttpServer | null = null;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping: no new work, finishing jobs in flight');
      // HTTP first: no new requests while in-flight jobs finish; completion last, for the jobs that finish meanwhile.
      // The completion events close while the ledger is still open, so the last deliveries leave its outbox.
      Promise.resolve(http?.close()).then(() => service.stop(closeCompletion))
        .then(resolve, (err) => { logger.error({ err }, 'stop failed'); resolve(); });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await service.start();
  try {
    http = await listenHttp(service, { host: o.host, port: o.port, token, logger, metrics, rateLimit: o.rateLimit, pipelinePaths: o.pipelines });
  } catch (err) {
    await service.stop(closeCompletion);
    throw err;
  }
  logger.info({ pipelines: pipelines.map((p) => p.name), data: o.data, ledger: ledger.location, queue: service.queue.location, role: o.role }, 'mediaflow running');
  await stopped;
  logger.flush?.();
  return 0;
}
