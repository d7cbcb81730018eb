import type { FastifyInstance } from 'fastify';
import { jobView } from '../http/jobs.js';
import type { Service } from '../service.js';
import { readListRequest } from './list-query.js';
import { registerOutputs } from './outputs.js';
import { overviewSource } from './overview.js';
import { pipelinesView } from './pipelines.js';

/**
 * A poll's `since` starts this far before the answer it follows: a write
 * whose time was taken before the answer but committed after it, or made on
 * a machine whose clock is a little behind, is still seen (the same margin as
 * the service's own poll of the ledger). Jobs seen twice are merged by id.
 */
export const POLL_MARGIN_MS = 2000;

export interface DashboardApiOptions {
  /** The files and folders `run --pipelines` was given: the Pipelines page checks them again (see pipelines.ts). */
  pipelinePaths?: string[];
}

const ID = /^\d{1,15}$/;

/**
 * The dashboard's API, registered inside /v1: the token and the rate limit
 * apply to it as to every /v1 route. Everything is read from the shared
 * ledger and queue, so a dashboard of any role (all, sources, worker) shows
 * the whole setup.
 */
export function registerDashboardApi(v1: FastifyInstance, service: Service, o: DashboardApiOptions = {}): void {
  const overview = overviewSource(service);
  const notFound = (message: string) => ({ error: 'E_NOT_FOUND', message });

  v1.get('/v1/overview', async () => overview());

  // A list (newest first), or with `since` what changed in it: the answer's cursor is the next poll's.
  v1.get('/v1/jobs', async (req) => {
    const { query, changes } = readListRequest(req.query as Record<string, unknown>);
    const now = Date.now();
    const [lastId, jobs] = await Promise.all([
      service.ledger.jobList.lastJobId(),
      changes ? service.ledger.jobList.jobChanges(query, changes) : service.ledger.jobList.findJobs(query),
    ]);
    return { jobs: jobs.map(jobView), cursor: { since: now - POLL_MARGIN_MS, after: lastId } };
  });

  registerOutputs(v1, service);

  // A dead letter back in the queue: the poll of a process that takes work from the ledger (role all or sources) queues it.
  v1.post('/v1/jobs/:id/retry', async (req, reply) => {
    const raw = (req.params as { id: string }).id;
    if (!ID.test(raw)) return reply.code(404).send(notFound(`no job ${JSON.stringify(raw.slice(0, 40))}`));
    const id = Number(raw);
    if (await service.ledger.retryDead(id)) return reply.code(202).send({ retried: 1 });
    const job = await service.ledger.get(id);
    if (!job) return reply.code(404).send(notFound(`no job ${id}`));
    return reply.code(409).send({ error: 'E_CONFLICT', message: `job ${id} is not a dead letter (it is ${job.state}): only dead letters are retried` });
  });

  v1.post('/v1/pipelines/:name/retry', async (req, reply) => {
    const { name } = req.params as { name: string };
    // Dead letters of a pipeline not loaded now would wait for ever: no process runs them.
    service.pipeline(name);
    return reply.code(202).send({ retried: await service.ledger.retryDead({ pipeline: name }) });
  });

  v1.get('/v1/pipelines', async () => pipelinesView(service.pipelineList, o.pipelinePaths));
}
