import { MediaflowError } from '../errors.js';
import { requestFault } from '../events/job-request.js';
import type { Job } from '../ledger/ledger.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The job as GET /v1/jobs/:id and the dashboard show it. `copiedFrom`: the
 * job whose outputs the last done attempt copied (null: rendered, or done by
 * a release before the attempt log).
 */
export function jobView(job: Job) {
  const done = [...job.attemptLog].reverse().find((a) => a.outcome === 'done');
  return {
    id: job.id, pipeline: job.pipeline, state: job.state, attempts: job.attempts, error: job.error,
    input: {
      store: job.store, key: job.key, relKey: job.relKey, version: job.version, sha256: job.sha256,
      size: job.size, contentType: job.contentType, changedAt: iso(job.changedAt === null ? null : Math.round(job.changedAt)),
    },
    outputs: job.outputs, deduplicated: job.deduplicated, copiedFrom: done?.copiedFrom ?? null,
    attemptLog: job.attemptLog.map((a) => ({ ...a, startedAt: iso(a.startedAt), endedAt: iso(a.endedAt) })),
    createdAt: iso(job.createdAt), updatedAt: iso(job.updatedAt), nextAttemptAt: job.nextAttemptAt ? iso(job.nextAttemptAt) : null,
  };
}

/** HTTP status for an error thrown while handling a request. */
export function statusOf(err: unknown): number {
  const fault = requestFault(err);
  if (fault) return fault === 'invalid' ? 400 : 404;
  if (err instanceof MediaflowError) return err.code === 'E_CONFIG' ? 503 : 500;
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}
