import { z } from 'zod';
import { stepSchema } from '../steps/registry.js';
import { DEFAULT_MAX_FRAMES } from '../steps/step.js';

/**
 * Pipeline JSON v1: the one source for validation, defaults, the shipped JSON
 * Schema (schema/pipeline.schema.json) and the docs. Every object is strict:
 * an unknown key is a typo the user wants to hear about.
 */

const globList = z.array(z.string().min(1)).describe('Glob patterns (picomatch syntax), relative to the source root');

const folderSource = z.strictObject({
  type: z.literal('folder'),
  path: z.string().min(1).describe('Folder to watch; relative paths resolve against the working directory of `mediaflow run`'),
  include: globList.default(['**/*']).describe('Only keys matching one of these globs are processed'),
  exclude: globList.default([]).describe('Keys matching one of these globs are never processed'),
  stableMs: z.int().min(0).max(600_000).default(150)
    .describe('A file is taken once its size and mtime have not changed for this long (ms)'),
  followSymlinks: z.boolean().default(false)
    .describe('Take symbolic links to files inside the folder (never one leading outside it; linked folders are not entered); off by default'),
  reconcileIntervalMs: z.int().min(0).default(0)
    .describe('Re-list the folder at this interval, as a safety net for events the system dropped (0: at start, and after event bursts)'),
});

const bucketSource = z.strictObject({
  type: z.literal('bucket'),
  bucket: z.string().min(3).max(63).describe('Bucket to watch (connection from MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY)'),
  prefix: z.string().default('').describe('Only object keys starting with this prefix'),
  suffix: z.string().default('').describe('Only object keys ending with this suffix'),
  include: globList.default(['**/*']).describe('Only keys (relative to prefix) matching one of these globs'),
  exclude: globList.default([]).describe('Keys (relative to prefix) matching one of these globs are never processed'),
  reconcileIntervalMs: z.int().min(0).default(60_000)
    .describe('List the bucket at this interval to catch uploads whose notification was lost (0: only at start and reconnect)'),
});

/**
 * What a message-queue source carries, whichever broker: S3 event records
 * (MinIO's AMQP and NATS targets publish them) for objects of `bucket`, and
 * job requests. The filters apply to the records as on a bucket source.
 */
const messageFilters = {
  bucket: z.string().min(3).max(63)
    .describe('Bucket the records are about and job request paths resolve in (objects read with MINIO_ENDPOINT, MINIO_ACCESS_KEY, MINIO_SECRET_KEY)'),
  prefix: z.string().default('').describe('Only object keys starting with this prefix'),
  suffix: z.string().default('').describe('Only object keys ending with this suffix'),
  include: globList.default(['**/*']).describe('Only keys (relative to prefix) matching one of these globs'),
  exclude: globList.default([]).describe('Keys (relative to prefix) matching one of these globs are never processed'),
};

const amqpSource = z.strictObject({
  type: z.literal('amqp'),
  url: z.string().regex(/^amqps?:\/\//, 'an amqp:// or amqps:// URL').describe('Broker URL, e.g. amqp://user:password@host:5672/vhost'),
  queue: z.string().min(1).max(255).describe('Durable queue consumed (declared if missing, with its dead-letter queue "<queue>.dead-letter")'),
  exchange: z.string().min(1).max(255).optional()
    .describe('Exchange the queue is bound to; it must exist (MinIO\'s AMQP target declares it)'),
  routingKey: z.string().default('#').describe('Binding key, with `exchange`'),
  prefetch: z.int().min(1).max(10_000).default(16).describe('Messages delivered and not yet acknowledged at once'),
  ...messageFilters,
});

const natsSource = z.strictObject({
  type: z.literal('nats'),
  servers: z.string().regex(/^(nats|tls):\/\//, 'nats:// or tls:// URLs, comma-separated').describe('NATS servers, e.g. nats://host:4222 (comma-separated)'),
  stream: z.string().regex(/^[^.*>\s]+$/, 'a stream name (no ".", "*", ">" or spaces)').describe('JetStream stream read; it must exist'),
  consumer: z.string().regex(/^[^.*>\s]+$/, 'a consumer name (no ".", "*", ">" or spaces)').describe('Durable pull consumer (created if missing; if present, reused with its ack wait and deliveries set to ackWaitMs and maxDeliver)'),
  ackWaitMs: z.int().min(1000).default(60_000).describe('A message not acknowledged within this is delivered again'),
  maxDeliver: z.int().min(1).max(1000).default(10).describe('Deliveries of one message before it is given up'),
  ...messageFilters,
});

const keyTemplate = z.string().min(1).default('{dir}/{name}/{id}.{ext}')
  .describe('Output key template: {dir} {name} {ext} {id} {sha256} {pipeline}');

const folderOutput = z.strictObject({
  type: z.literal('folder'),
  path: z.string().min(1).describe('Folder results are written to'),
  key: keyTemplate,
});

const bucketOutput = z.strictObject({
  type: z.literal('bucket'),
  bucket: z.string().min(3).max(63).describe('Bucket results are written to'),
  prefix: z.string().default('').describe('Prefix put before every output key'),
  key: keyTemplate,
});

export const pipelineSchema = z.strictObject({
  $schema: z.string().optional().describe('Path or URL of this JSON Schema, for editors'),
  version: z.literal(1).default(1).describe('Pipeline format version'),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'letters, digits, "_", "." and "-", starting with a letter or digit')
    .max(100).describe('Unique pipeline name, used in logs, metrics and {pipeline}'),
  source: z.discriminatedUnion('type', [folderSource, bucketSource, amqpSource, natsSource]).describe('Where inputs come from'),
  steps: z.array(stepSchema).min(1).describe('What to make from each input; each step writes one output'),
  output: z.discriminatedUnion('type', [folderOutput, bucketOutput]).describe('Where results are written'),
  onDelete: z.enum(['keep', 'delete-outputs']).default('keep')
    .describe('When the input is removed: keep its outputs, or delete them'),
  concurrency: z.int().min(1).max(1024).optional()
    .describe('Jobs of this pipeline running at once (default: the global concurrency)'),
  retry: z.strictObject({
    attempts: z.int().min(1).max(100).default(3).describe('Total attempts before a job becomes a dead letter'),
    backoffMs: z.int().min(0).default(500).describe('First retry delay; doubles each attempt, with jitter'),
    maxBackoffMs: z.int().min(0).default(60_000).describe('Upper bound of the retry delay'),
  }).prefault({}).describe('Retries of failed jobs'),
  timeoutMs: z.int().min(100).default(120_000).describe('A job running longer than this fails (and is retried)'),
  limitInputPixels: z.int().min(1).default(268_402_689)
    .describe('Refuse images with more pixels than this (decompression-bomb guard; all frames count when animated)'),
  maxFrames: z.int().min(1).default(DEFAULT_MAX_FRAMES)
    .describe('Refuse inputs with more frames than this in steps with "animated": true (frame-bomb guard; other steps read the first frame only)'),
  maxInputBytes: z.int().min(1).default(512 * 1024 * 1024).describe('Refuse inputs larger than this many bytes'),
  allowSvg: z.boolean().default(false).describe('Render SVG inputs (from memory, so nothing external is loaded)'),
  manifest: z.strictObject({
    key: z.string().min(1).default('{dir}/{name}/manifest.json')
      .describe('Key template of the manifest in this pipeline\'s output ({dir} {name} {sha256} {pipeline})'),
  }).optional().describe('Write a manifest (input, sha256, every pipeline\'s outputs or error) next to the outputs when an input is complete'),
  notify: z.strictObject({
    url: z.url({ protocol: /^https?$/ }).describe('POST the completion event here, signed with HMAC-SHA256 (secret: MEDIAFLOW_NOTIFY_SECRET)'),
    attempts: z.int().min(1).max(50).default(5).describe('Delivery attempts before the event is given up (and counted)'),
    backoffMs: z.int().min(0).default(1000).describe('First retry delay; doubles each attempt, with jitter'),
  }).optional().describe('Completion event delivery'),
}).superRefine((p, ctx) => {
  const seen = new Set<string>();
  p.steps.forEach((s, i) => {
    if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'id'], message: `duplicate step id "${s.id}"`, input: s.id });
    seen.add(s.id);
  });
  if (p.steps.length > 1 && !p.output.key.includes('{id}')) {
    ctx.addIssue({ code: 'custom', path: ['output', 'key'], input: p.output.key,
      message: 'with more than one step the key template must contain {id}, or the outputs overwrite each other' });
  }
});

export type Pipeline = z.output<typeof pipelineSchema>;
export type PipelineInput = z.input<typeof pipelineSchema>;
export type SourceConfig = Pipeline['source'];
export type OutputConfig = Pipeline['output'];

/** The JSON Schema shipped in schema/pipeline.schema.json. */
export function pipelineJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(pipelineSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    title: 'mediaflow pipeline (version 1)',
    ...schema,
  };
}
