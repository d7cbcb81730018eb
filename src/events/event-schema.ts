import { z } from 'zod';
import { jsonPath } from '../errors.js';
import { BadRequest, jobRequestSchema, parseJobRequest, type JobRequest } from './job-request.js';

/**
 * The events mediaflow takes and sends, version 1, in CloudEvents 1.0 form:
 * the one source for validation (job requests from a queue or POST /v1/jobs),
 * the shipped JSON Schema (schema/events.schema.json) and docs/EVENTS.md.
 * Versioning: a new field is additive and keeps the type; a change that
 * could break a reader is a new `type` (….v2), sent beside the old one for a
 * release.
 */

export const JOB_REQUESTED = 'dev.mediaflow.job.requested.v1';
export const INPUT_COMPLETED = 'dev.mediaflow.input.completed.v1';

/** CloudEvents context attributes; extension attributes (lower-case names) are allowed, as the spec says. */
const envelope = {
  specversion: z.literal('1.0').describe('CloudEvents version'),
  id: z.string().min(1).max(1000).describe('Unique per event from one source: a receiver drops repeats by (source, id)'),
  source: z.string().min(1).describe('Who sent it (a URI reference)'),
  time: z.iso.datetime({ offset: true }).optional().describe('When it happened (RFC 3339)'),
  datacontenttype: z.literal('application/json').optional(),
  subject: z.string().optional().describe('The input key it is about'),
};

export const jobRequestedSchema = z.looseObject({
  ...envelope,
  type: z.literal(JOB_REQUESTED),
  data: jobRequestSchema.describe('The job request, as POST /v1/jobs takes it'),
}).describe('Run one pipeline on one file or object');

const pipelineResult = z.strictObject({
  pipeline: z.string(),
  job: z.int(),
  state: z.enum(['done', 'dead']),
  attempts: z.int(),
  deduplicated: z.boolean().describe('The outputs were copied from an earlier render of the same content'),
  outputs: z.array(z.strictObject({
    step: z.string(), store: z.string(), key: z.string(), size: z.int(), contentType: z.string(),
    width: z.int().optional(), height: z.int().optional(),
  })),
  error: z.string().nullable().describe('Why it is a dead letter'),
  manifest: z.strictObject({ store: z.string(), key: z.string() }).nullable().describe('Where this pipeline\'s manifest was written'),
});

export const inputCompletedSchema = z.looseObject({
  ...envelope,
  type: z.literal(INPUT_COMPLETED),
  source: z.literal('mediaflow'),
  subject: z.string(),
  time: z.iso.datetime({ offset: true }),
  datacontenttype: z.literal('application/json'),
  data: z.strictObject({
    input: z.strictObject({
      store: z.string(), key: z.string(), version: z.string(),
      sha256: z.string().nullable(), size: z.int().nullable(), contentType: z.string().nullable(),
    }),
    state: z.enum(['done', 'partial', 'dead']).describe('done: every pipeline done; dead: none; partial: some of each'),
    pipelines: z.array(pipelineResult),
  }),
}).describe('Every pipeline that matched one input version has finished (done, or dead after its last attempt)');

export type InputCompletedEvent = z.infer<typeof inputCompletedSchema>;

/** The JSON Schema shipped in schema/events.schema.json: any one of the events. */
export function eventsJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(z.union([jobRequestedSchema, inputCompletedSchema]), { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { $schema: schema.$schema, title: 'mediaflow events (version 1, CloudEvents 1.0)', ...schema };
}

/**
 * A job request in either form: a CloudEvent of type JOB_REQUESTED (its
 * `data` is the request) or the bare request. Throws BadRequest naming the
 * JSON path of each problem.
 */
export function readJobRequest(doc: unknown): JobRequest {
  if (typeof doc !== 'object' || doc === null || !('specversion' in doc)) return parseJobRequest(doc);
  const r = jobRequestedSchema.safeParse(doc);
  if (!r.success) throw new BadRequest(r.error.issues.map((i) => `${jsonPath(i.path)}: ${i.message}`).join('; '));
  return r.data.data;
}
