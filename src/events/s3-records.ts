import { z } from 'zod';
import { makeEvent, type MediaEvent } from './media-event.js';

/**
 * S3 event records (the shape MinIO's notification targets and AWS S3 both
 * send) turned into MediaEvents: the edge for records delivered to
 * POST /v1/events and through the AMQP and NATS sources. Keys arrive
 * query-escaped here (`+` for a space, `%2F` for a slash) and are decoded
 * once, so nothing downstream ever decodes again.
 */

const recordSchema = z.object({
  eventName: z.string().min(1),
  eventTime: z.string().optional(),
  s3: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().nonnegative().optional(),
      eTag: z.string().optional(),
      contentType: z.string().optional(),
      userMetadata: z.record(z.string(), z.string()).optional(),
      sequencer: z.string().regex(/^[0-9A-Fa-f]{1,40}$/, 'hex digits').optional(),
    }),
  }),
});

export type S3Record = z.infer<typeof recordSchema>;

export interface Ignored {
  /** Index of the record in `Records`. */
  record: number;
  reason: string;
}

export interface ParsedRecords {
  events: MediaEvent[];
  ignored: Ignored[];
}

/** Thrown for a body that is not an S3 event notification at all (the caller answers 400). */
export class NotS3EventsError extends Error {}

/** Decodes a key as notification targets escape it (query escaping: `+` is a space). */
export function decodeEventKey(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, '%20'));
}

/** Objects mediaflow wrote carry this user metadata, so they never become inputs again. */
export function isMediaflowOutput(userMetadata: Record<string, string> | undefined): boolean {
  for (const [name, value] of Object.entries(userMetadata ?? {})) {
    if (name.toLowerCase().replace(/^x-amz-meta-/, '') === 'mediaflow-output' && value !== '') return true;
  }
  return false;
}

function typeOf(eventName: string): MediaEvent['type'] | null {
  // MinIO names them `s3:ObjectCreated:Put`, AWS `ObjectCreated:Put`.
  const name = eventName.replace(/^s3:/, '');
  if (name.startsWith('ObjectCreated:')) return 'created';
  if (name.startsWith('ObjectRemoved:')) return 'removed';
  return null;
}

/**
 * Parses one notification body. One bad record does not refuse the others
 * (a target would otherwise resend the whole batch forever): it is listed in
 * `ignored` with its reason.
 */
export function s3RecordsToEvents(body: unknown, source = 'http'): ParsedRecords {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new NotS3EventsError('expected a JSON object with a "Records" array (an S3 event notification)');
  }
  const b = body as { Records?: unknown; Event?: unknown };
  // AWS sends { Event: "s3:TestEvent" } with no Records when a notification is configured.
  if (b.Records === undefined && b.Event === 's3:TestEvent') return { events: [], ignored: [] };
  if (!Array.isArray(b.Records)) {
    throw new NotS3EventsError(`expected "Records" to be an array of S3 event records, found ${b.Records === undefined ? 'nothing' : typeof b.Records}`);
  }
  const events: MediaEvent[] = [];
  const ignored: Ignored[] = [];
  b.Records.forEach((raw, i) => {
    const parsed = recordSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      ignored.push({ record: i, reason: `${['Records', i, ...issue.path].join('.')}: ${issue.message}` });
      return;
    }
    const r = parsed.data;
    if (/TestEvent$/.test(r.eventName)) { ignored.push({ record: i, reason: 'test event' }); return; }
    const type = typeOf(r.eventName);
    if (!type) { ignored.push({ record: i, reason: `event ${r.eventName} is neither ObjectCreated nor ObjectRemoved` }); return; }
    const o = r.s3.object;
    if (isMediaflowOutput(o.userMetadata)) { ignored.push({ record: i, reason: 'object is a mediaflow output' }); return; }
    let key: string;
    try {
      key = decodeEventKey(o.key);
    } catch {
      ignored.push({ record: i, reason: `key ${JSON.stringify(o.key)} is not valid URL encoding` });
      return;
    }
    const changedAtMs = r.eventTime ? Date.parse(r.eventTime) : NaN;
    const bucket = r.s3.bucket.name;
    events.push(makeEvent(`${source}:bucket:${bucket}`, type, {
      store: `bucket:${bucket}`,
      key,
      size: o.size,
      // Same form as a stat or listing gives (no quotes), so the version matches across paths.
      etag: o.eTag ? o.eTag.replace(/^"|"$/g, '') : undefined,
      contentType: o.contentType,
      changedAtMs: Number.isFinite(changedAtMs) ? changedAtMs : undefined,
      sequencer: o.sequencer,
    }));
  });
  return { events, ignored };
}
