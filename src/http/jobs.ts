import { MediaflowError } from '../errors.js';
import { requestFault } from '../events/job-request.js';
import type { Job } from '../ledger/ledger.js';

/** The job as GET /v1/jobs/:id shows it. */
export function jobView(job: Job) {
  return {
    id: job.id, pipeline: job.pipeline, state: job.state, attempts: job.attempts, error: job.error,
    input: { store: job.store, key: job.key, version: job.version, sha256: job.sha256 },
    outputs: job.outputs, deduplicated: job.deduplicated,
    createdAt: new Date(job.createdAt).toISOString(), updatedAt: new Date(job.updatedAt).toISOString(),
    nextAttemptAt: job.nextAttemptAt ? new Date(job.nextAttemptAt).toISOString() : null,
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
