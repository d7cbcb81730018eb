import { z } from 'zod';
import { jsonPath, MediaflowError } from '../errors.js';

/**
 * A job request, as POST /v1/jobs and the message-queue sources take it: `{ pipeline, path }` (relative to the pipeline's source root:
 * its folder, or its bucket below the prefix) or `{ pipeline, bucket, key }`
 * (any object, key as stored: not URL-encoded).
 */
export const jobRequestSchema = z.strictObject({
  pipeline: z.string().min(1),
  path: z.string().min(1).optional(),
  bucket: z.string().min(3).max(63).optional(),
  key: z.string().min(1).optional(),
}).superRefine((r, ctx) => {
  const byPath = r.path !== undefined;
  const byObject = r.bucket !== undefined || r.key !== undefined;
  if (byPath === byObject) {
    ctx.addIssue({ code: 'custom', path: [], message: 'give either "path" or both "bucket" and "key"' });
  } else if (byObject && (r.bucket === undefined || r.key === undefined)) {
    ctx.addIssue({ code: 'custom', path: [r.bucket === undefined ? 'bucket' : 'key'], message: 'required with "bucket" and "key"' });
  }
});

export type JobRequest = z.infer<typeof jobRequestSchema>;

/** A 400 whose message names the JSON path at fault. */
export class BadRequest extends Error {
  readonly statusCode = 400;
  readonly code = 'E_REQUEST';
}

/**
 * What a failed request got wrong itself, which asking again cannot change:
 * 'invalid' (malformed, a key that would leave its root) or 'not-found' (no
 * such pipeline, file, object or bucket); null for anything else (the
 * service, the ledger or the storage failing now). HTTP answers 400/404 for
 * these; a queue source dead-letters them and has the rest delivered again.
 */
export function requestFault(err: unknown): 'invalid' | 'not-found' | null {
  if (err instanceof BadRequest) return 'invalid';
  if (err instanceof MediaflowError) {
    if (err.code === 'E_KEY') return 'invalid';
    return err.code === 'E_PIPELINE_UNKNOWN' || err.code === 'E_INPUT' ? 'not-found' : null;
  }
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'NoSuchBucket' || code === 'NoSuchKey' || code === 'NotFound' ? 'not-found' : null;
}

/** `at`: where the request sits in the document (a CloudEvent's `data`), so the paths in the error are the document's. */
export function parseJobRequest(body: unknown, at: readonly PropertyKey[] = []): JobRequest {
  const r = jobRequestSchema.safeParse(body);
  if (!r.success) throw new BadRequest(r.error.issues.map((i) => `${jsonPath([...at, ...i.path])}: ${i.message}`).join('; '));
  return r.data;
}
