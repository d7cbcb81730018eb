import { MediaflowError } from '../errors.js';
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
  if (err instanceof MediaflowError) {
    switch (err.code) {
      case 'E_PIPELINE_UNKNOWN': case 'E_INPUT': return 404;
      case 'E_KEY': return 400;
      case 'E_CONFIG': return 503;
      default: return 500;
    }
  }
  const code = (err as { code?: unknown }).code;
  if (code === 'NoSuchBucket' || code === 'NoSuchKey' || code === 'NotFound') return 404;
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}
