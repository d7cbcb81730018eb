import { describe, expect, it } from 'vitest';
import { MediaflowError } from '../../src/errors.js';
import type { JobRequest } from '../../src/events/job-request.js';
import type { MediaEvent } from '../../src/events/media-event.js';
import { silentLogger } from '../../src/log.js';
import { handleMessage, type MessageSink } from '../../src/sources/message.js';

function sink(fail?: () => Error): MessageSink & { events: MediaEvent[]; requests: JobRequest[] } {
  const events: MediaEvent[] = [];
  const requests: JobRequest[] = [];
  return {
    events, requests,
    emit: async (e) => { events.push(e); },
    submit: async (r) => { const err = fail?.(); if (err) throw err; requests.push(r); },
  };
}
const body = (doc: unknown) => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
const record = (key: string, sequencer: string) => ({
  eventName: 's3:ObjectCreated:Put', eventTime: '2026-12-03T10:00:00.000Z',
  s3: { bucket: { name: 'uploads' }, object: { key, size: 10, eTag: 'abc', contentType: 'image/jpeg', sequencer } },
});

describe('a message from a queue', () => {
  it('S3 records as MinIO publishes them: one event each, in order, key decoded once, sequencer kept', async () => {
    const s = sink();
    const doc = { EventName: 's3:ObjectCreated:Put', Key: 'uploads/a b.jpg', Records: [record('a+b.jpg', '17A2'), record('c%2Fd.jpg', '17A3')] };
    expect(await handleMessage(body(doc), 'amqp:q', s, silentLogger)).toEqual({ kind: 'ack' });
    expect(s.events.map((e) => [e.data.store, e.data.key, e.data.sequencer, e.source])).toEqual([
      ['bucket:uploads', 'a b.jpg', '17A2', 'amqp:q:bucket:uploads'], ['bucket:uploads', 'c/d.jpg', '17A3', 'amqp:q:bucket:uploads'],
    ]);
  });

  it('a job request, bare or as a CloudEvent', async () => {
    const s = sink();
    expect(await handleMessage(body({ pipeline: 'p', path: 'a.jpg' }), 'q', s, silentLogger)).toEqual({ kind: 'ack' });
    const ce = { specversion: '1.0', id: '1', source: 'shop', type: 'dev.mediaflow.job.requested.v1', data: { pipeline: 'p', bucket: 'uploads', key: 'b.jpg' } };
    expect(await handleMessage(body(ce), 'q', s, silentLogger)).toEqual({ kind: 'ack' });
    expect(s.requests).toEqual([{ pipeline: 'p', path: 'a.jpg' }, { pipeline: 'p', bucket: 'uploads', key: 'b.jpg' }]);
  });

  it('what can never be done is a dead letter with its reason, the JSON path of the problem included', async () => {
    const cases: [string | unknown, RegExp][] = [
      ['{"pipeline": ', /^message is not JSON: /],
      [[1, 2], /not a JSON object/],
      [{ pipeline: 'p' }, /give either "path" or both "bucket" and "key"/],
      [{ pipeline: 'p', path: 'a.jpg', colour: 'red' }, /colour/],
      [{ specversion: '1.0', id: '1', source: 's', type: 'dev.mediaflow.job.requested.v1', data: { pipeline: 7, path: 'a' } }, /\$\.data\.pipeline: /],
      [{ specversion: '1.0', id: '1', source: 's', type: 'something.else', data: {} }, /\$\.type: /],
      [{ Records: 'nope' }, /"Records" to be an array/],
    ];
    for (const [doc, reason] of cases) {
      const out = await handleMessage(body(doc), 'q', sink(), silentLogger);
      expect(out.kind, JSON.stringify(doc)).toBe('dead-letter');
      expect((out as { reason: string }).reason).toMatch(reason);
    }
    const unknown = await handleMessage(body({ pipeline: 'nope', path: 'a.jpg' }), 'q', sink(() => new MediaflowError('E_PIPELINE_UNKNOWN', 'no pipeline named "nope"')), silentLogger);
    expect(unknown).toEqual({ kind: 'dead-letter', reason: 'no pipeline named "nope"' });
  });

  it('what could not be recorded now (the ledger away, a stop) is tried again', async () => {
    const out = await handleMessage(body({ pipeline: 'p', path: 'a.jpg' }), 'q', sink(() => new Error('Connection terminated')), silentLogger);
    expect(out).toEqual({ kind: 'retry', reason: 'Connection terminated' });
    const stopping = await handleMessage(body({ pipeline: 'p', path: 'a.jpg' }), 'q', sink(() => new MediaflowError('E_STOPPING', 'stopping')), silentLogger);
    expect(stopping.kind).toBe('retry');
  });
});
