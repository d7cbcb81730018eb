import { readJobRequest } from '../events/event-schema.js';
import { requestFault, type JobRequest } from '../events/job-request.js';
import type { MediaEvent } from '../events/media-event.js';
import { NotS3EventsError, s3RecordsToEvents } from '../events/s3-records.js';
import type { Logger } from '../log.js';

/** Where a message-queue source hands what a message asks for; each resolves once it is recorded in the ledger. */
export interface MessageSink {
  emit(event: MediaEvent): Promise<void>;
  submit(request: JobRequest): Promise<void>;
}

/**
 * What to tell the broker about one message. ack: recorded (or nothing in
 * it to do). dead-letter: it can never be done as sent (not JSON, neither
 * kind, an unknown pipeline, a missing object): to the broker's dead-letter
 * route with `reason`. retry: it could not be recorded now (the ledger is
 * down, the service is stopping): delivered again later.
 */
export type MessageOutcome =
  | { kind: 'ack' }
  | { kind: 'dead-letter'; reason: string }
  | { kind: 'retry'; reason: string };

/**
 * One message of either broker, either kind: S3 event records (the body
 * MinIO's AMQP and NATS targets publish, the same records POST /v1/events
 * takes, through the same parser) or a job request (the body of POST
 * /v1/jobs, bare or as a CloudEvent of type dev.mediaflow.job.requested.v1). Resolves once
 * everything it asks for is recorded, so a source acknowledges only then.
 */
export async function handleMessage(body: Uint8Array, source: string, sink: MessageSink, logger: Logger): Promise<MessageOutcome> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch (err) {
    return { kind: 'dead-letter', reason: `message is not JSON: ${(err as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return { kind: 'dead-letter', reason: 'message is not a JSON object (expected S3 event records or a job request)' };
  }
  const o = doc as Record<string, unknown>;
  try {
    if ('Records' in o || 'EventName' in o) {
      const { events, ignored } = s3RecordsToEvents(o, source);
      for (const i of ignored) logger.debug({ record: i.record, reason: i.reason }, 'record ignored');
      // In order, each recorded before the next: a key's versions reach the ledger in the order they were published.
      for (const e of events) await sink.emit(e);
      return { kind: 'ack' };
    }
    await sink.submit(readJobRequest(o));
    return { kind: 'ack' };
  } catch (err) {
    if (err instanceof NotS3EventsError || requestFault(err)) return { kind: 'dead-letter', reason: (err as Error).message };
    return { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
  }
}
