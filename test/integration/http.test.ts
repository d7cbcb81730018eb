import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MediaEvent } from '../../src/events/media-event.js';
import { buildHttpServer, listenHttp } from '../../src/http/server.js';
import { decodeEventKey, s3RecordsToEvents } from '../../src/events/s3-records.js';
import { Metrics } from '../../src/metrics.js';
import { workerId } from '../../src/owner.js';
import type { LoadedPipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { fixture } from '../helpers/fixtures.js';
import { eventSchemaErrors } from '../helpers/event-schema.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

let ws: ReturnType<typeof workspace>;
let service: Service;
let app: FastifyInstance;
let registry: Metrics['registry'];

function setup(pipelines: LoadedPipeline[] = [ws.pipeline({})]): void {
  service = new Service({ pipelines, dataDir: ws.data, concurrency: 2, pollMs: 50 });
  const m = new Metrics(service); // with Node's process metrics: the whole exposition must parse
  registry = m.registry;
  app = buildHttpServer(service, { token: TOKEN, bodyLimit: 4096, metrics: m });
}

function drop(name: string, as: string): void {
  mkdirSync(path.dirname(path.join(ws.inbox, as)), { recursive: true });
  copyFileSync(fixture(name), path.join(ws.inbox, as));
}

const postJob = (body: unknown) => app.inject({ method: 'POST', url: '/v1/jobs', headers: auth, payload: body as object });
const getJob = async (id: number) => (await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: auth })).json();

/** One S3 event record as MinIO's webhook target sends it (key query-escaped). */
function record(bucket: string, escapedKey: string, extra: Record<string, unknown> = {}) {
  return {
    eventVersion: '2.0', eventSource: 'minio:s3', awsRegion: '', eventTime: '2024-05-01T10:00:00.000Z', eventName: 's3:ObjectCreated:Put',
    s3: { s3SchemaVersion: '1.0', configurationId: 'Config', bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
      object: { key: escapedKey, size: 1234, eTag: 'abc123', contentType: 'image/jpeg', userMetadata: { 'content-type': 'image/jpeg' } } },
    ...extra,
  };
}

/**
 * A strict reader of the Prometheus text format (0.0.4): every sample belongs
 * to a family declared by # TYPE, labels are well formed, values are numbers.
 * Returns samples keyed `name{a="x",b="y"}` (labels sorted).
 */
function parsePrometheus(text: string): Map<string, number> {
  const families = new Map<string, string[]>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('# HELP '))) {
    const type = /^# TYPE ([a-zA-Z_:][\w:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) { families.set(type[1]!, type[2] === 'histogram' ? ['_bucket', '_sum', '_count'] : ['', '_sum', '_count']); continue; }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{((?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus text line: ${JSON.stringify(line)}`);
    const [, name, rawLabels = '', value] = m;
    if (![...families].some(([f, suffixes]) => suffixes.some((s) => name === f + s))) throw new Error(`sample ${name} has no # TYPE`);
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan").
    const v = /^[+-]?inf$/i.test(value!) ? Number(value!.replace(/inf/i, 'Infinity')) : Number(value);
    if (Number.isNaN(v) && !/^nan$/i.test(value!)) throw new Error(`bad value in ${JSON.stringify(line)}`);
    const labels = [...rawLabels.matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`);
    samples.set(`${name}{${labels.sort().join(',')}}`, v);
  }
  return samples;
}

async function metrics(): Promise<Map<string, number>> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(res.body);
}

beforeEach(() => { ws = workspace('mf-http-'); });
afterEach(async () => {
  await app?.close();
  await service?.stop();
  ws.cleanup();
});

describe('health', () => {
  it('/healthz answers without a token; /readyz follows the sources and the ledger', async () => {
    setup();
    expect((await app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    await service.start();
    const ready = await app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ ready: true, ledger: true, sources: [{ name: `folder:${ws.inbox}`, ready: true }] });
    await service.stop();
    const down = await app.inject('/readyz');
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ ready: false, ledger: false });
  });
});

describe('token', () => {
  it('refuses /v1 without the right bearer token, before reading the body', async () => {
    setup();
    const none = await app.inject({ method: 'POST', url: '/v1/jobs', payload: { pipeline: 'test', path: 'a.jpg' } });
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(none.json().message).toMatch(/missing "Authorization: Bearer/);
    const wrong = await app.inject({ method: 'GET', url: '/v1/jobs/1', headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual({ error: 'E_UNAUTHORIZED', message: 'wrong bearer token' });
    const events = await app.inject({ method: 'POST', url: '/v1/events', headers: { authorization: `Bearer ${TOKEN}x` }, payload: 'x'.repeat(10_000) });
    expect(events.statusCode).toBe(401); // not 413: a stranger's body is never read
  });

  it('listenHttp refuses a non-loopback address without a token, and serves on a real port with one', async () => {
    setup();
    await expect(listenHttp(service, { host: '0.0.0.0', port: 0 })).rejects.toThrow(/MEDIAFLOW_TOKEN is not set/);
    const server = await listenHttp(service, { host: '127.0.0.1', port: 0, token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }) });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${server.url}/v1/jobs/1`)).status).toBe(401);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('POST /v1/jobs and GET /v1/jobs/:id', () => {
  it('runs a pipeline on a path inside its source folder and reports the job', async () => {
    setup();
    drop('Landscape_6.jpg', 'trip/a b.jpg');
    const res = await postJob({ pipeline: 'test', path: 'trip/a b.jpg' });
    expect(res.statusCode).toBe(202);
    const { id, state } = res.json();
    expect(state).toBe('queued');
    expect(res.headers.location).toBe(`/v1/jobs/${id}`);
    const job = await waitFor('job done', async () => { const j = await getJob(id); return j.state === 'done' && j; });
    expect(job).toMatchObject({ id, pipeline: 'test', attempts: 1, error: null, input: { key: 'trip/a b.jpg', store: `folder:${ws.inbox}` } });
    expect(job.outputs).toEqual([expect.objectContaining({ stepId: 'thumb', key: 'trip/a b/thumb.png', width: 64 })]);
  });

  it('takes the request as a CloudEvent too (docs/EVENTS.md), with JSON paths into it when it is wrong', async () => {
    setup();
    drop('Landscape_6.jpg', 'ce.jpg');
    const event = { specversion: '1.0', id: 'req-1', source: 'test', type: 'dev.mediaflow.job.requested.v1', data: { pipeline: 'test', path: 'ce.jpg' } };
    expect(eventSchemaErrors(event)).toEqual([]);
    const res = await postJob(event);
    expect(res.statusCode, res.body).toBe(202);
    const job = await waitFor('job done', async () => { const j = await getJob(res.json().id); return j.state === 'done' && j; });
    expect(job).toMatchObject({ pipeline: 'test', input: { key: 'ce.jpg' } });
    const wrong = await postJob({ ...event, data: { pipeline: 'test', path: 'ce.jpg', colour: 'red' } });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toMatch(/\$\.data: .*colour/);
    const badType = await postJob({ ...event, type: 'dev.mediaflow.job.requested.v9' });
    expect(badType.json().message).toMatch(/\$\.type: /);
  });

  it('takes a file whose name starts with dots ("...jpg"): inside the folder, not "outside" it', async () => {
    // With the default key: a name of dots only keeps its whole base name as {name}, never a ".." segment.
    setup();
    drop('Landscape_6.jpg', '...jpg');
    const res = await postJob({ pipeline: 'test', path: '...jpg' });
    expect(res.statusCode, res.body).toBe(202);
    const job = await waitFor('job finished', async () => { const j = await getJob(res.json().id); return ['done', 'dead'].includes(j.state) && j; });
    expect(job).toMatchObject({ state: 'done', error: null, input: { key: '...jpg', store: `folder:${ws.inbox}` } });
    expect(job.outputs).toEqual([expect.objectContaining({ stepId: 'thumb', key: '...jpg/thumb.png', width: 64 })]);
    expect(existsSync(path.join(ws.out, '...jpg/thumb.png'))).toBe(true);
  });

  it('answers 4xx with a readable message for every bad request', async () => {
    setup();
    const cases: [unknown, number, RegExp][] = [
      [{ pipeline: 'nope', path: 'a.jpg' }, 404, /no pipeline named "nope" \(known: test\)/],
      [{ pipeline: 'test', path: 'missing.jpg' }, 404, /missing\.jpg: no such file/],
      [{ pipeline: 'test', path: '../outside.jpg' }, 400, /resolves outside/],
      [{ pipeline: 'test', path: '/etc/passwd' }, 400, /resolves outside/],
      [{ pipeline: 'test' }, 400, /give either "path" or both "bucket" and "key"/],
      [{ pipeline: 'test', bucket: 'bkt' }, 400, /\$\.key: required/],
      [{ pipeline: 'test', path: 'a.jpg', colour: 'red' }, 400, /colour/],
      [{ pipeline: 7, path: 'a.jpg' }, 400, /\$\.pipeline: .*string/],
      [[1, 2], 400, /object/],
    ];
    for (const [body, status, message] of cases) {
      const res = await postJob(body);
      expect({ body, status: res.statusCode }).toEqual({ body, status });
      expect(res.json().message).toMatch(message);
    }
    const malformed = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"pipeline": ' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: expect.stringMatching(/JSON/), message: expect.stringMatching(/JSON|Unexpected end/) });
    const big = await postJob({ pipeline: 'test', path: 'x'.repeat(5000) });
    expect(big.statusCode).toBe(413);
    expect(big.json().message).toMatch(/body/i);
    const text = await app.inject({ method: 'POST', url: '/v1/jobs', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(400); // fastify reads text/plain as a string, which is no job request
    expect(text.json().message).toMatch(/expected object/);
    for (const id of ['999', 'abc', '1e3', '-1']) {
      const res = await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: auth });
      expect(res.statusCode).toBe(404);
      expect(res.json().message).toContain(id);
    }
    expect((await app.inject({ method: 'GET', url: '/v2/nothing' })).statusCode).toBe(404);
    // Still serving after all of that.
    expect((await app.inject('/healthz')).statusCode).toBe(200);
  });
});

describe('POST /v1/events', () => {
  it('turns S3 records into decoded events; skips outputs, test events and other event kinds', async () => {
    setup();
    const seen: MediaEvent[] = [];
    service.on('event', (e: MediaEvent) => seen.push(e));
    const output = record('uploads', 'a/thumb.png', {});
    (output.s3.object.userMetadata as Record<string, string>)['X-Amz-Meta-Mediaflow-Output'] = '1';
    const res = await app.inject({ method: 'POST', url: '/v1/events', headers: auth, payload: {
      EventName: 's3:ObjectCreated:Put', Key: 'uploads/x',
      Records: [
        record('uploads', 'photos/a+b%2Bc+%C3%A9t%C3%A9%25.jpg'),
        { ...record('uploads', 'gone.jpg'), eventName: 's3:ObjectRemoved:Delete' },
        output,
        { ...record('uploads', 'x.jpg'), eventName: 's3:ObjectAccessed:Get' },
        { ...record('uploads', 'x.jpg'), eventName: 's3:TestEvent' },
        { ...record('uploads', '%E0%A4%A.jpg') },
        { eventName: 's3:ObjectCreated:Put', s3: { bucket: {} } },
      ],
    } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.accepted).toBe(2);
    expect(body.ignored.map((i: { reason: string }) => i.reason)).toEqual([
      'object is a mediaflow output', expect.stringMatching(/ObjectAccessed:Get is neither/), 'test event',
      expect.stringMatching(/not valid URL encoding/), expect.stringMatching(/^Records\.6\.s3\.bucket\.name: /),
    ]);
    expect(seen.map((e) => [e.type, e.source, e.data.store, e.data.key])).toEqual([
      ['created', 'http:bucket:uploads', 'bucket:uploads', 'photos/a b+c été%.jpg'],
      ['removed', 'http:bucket:uploads', 'bucket:uploads', 'gone.jpg'],
    ]);
    expect(seen[0]!.data).toMatchObject({ size: 1234, etag: 'abc123', contentType: 'image/jpeg', changedAtMs: Date.parse('2024-05-01T10:00:00.000Z') });
  });

  it('answers 400 to bodies that are not event notifications, 200 to an AWS test event', async () => {
    setup();
    const post = (payload: unknown) => app.inject({ method: 'POST', url: '/v1/events', headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
    expect((await post({ Service: 'Amazon S3', Event: 's3:TestEvent' })).json()).toEqual({ accepted: 0, ignored: [] });
    for (const bad of [{ Records: 'nope' }, { hello: 1 }, [1], 'text']) {
      const res = await post(bad);
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toMatch(/Records/);
    }
    expect((await app.inject({ method: 'HEAD', url: '/v1/events', headers: auth })).statusCode).toBe(200);
  });

  it('decodes keys the way notification targets escape them', () => {
    expect(decodeEventKey('a+b%2Bc%2Fd%20e')).toBe('a b+c/d e');
    expect(s3RecordsToEvents({ Records: [{ ...record('b', 'k'), eventName: 'ObjectCreated:Put' }] }).events).toHaveLength(1); // AWS naming
  });
});

describe('/metrics', () => {
  it('parses as Prometheus text and its series move as jobs run', async () => {
    setup();
    const before = await metrics();
    expect(before.get('mediaflow_jobs_total{pipeline="test",state="done"}')).toBe(0);
    expect(before.get('mediaflow_dedup_hits_total{pipeline="test"}')).toBe(0);
    expect(before.get('mediaflow_queue_depth{}')).toBe(0);
    expect(before.get(`mediaflow_jobs_in_flight{worker="${workerId()}"}`)).toBe(0);
    expect(before.get(`mediaflow_images{state="working",worker="${workerId()}"}`)).toBe(0);
    expect(before.get(`mediaflow_images{state="waiting",worker="${workerId()}"}`)).toBe(0);
    expect(before.get('mediaflow_ledger_jobs{state="queued"}')).toBe(0);
    expect(before.get('mediaflow_notify_failures_total{}')).toBe(0);

    drop('Landscape_1.jpg', 'a.jpg');
    drop('Landscape_1.jpg', 'copy.jpg');
    const a = (await postJob({ pipeline: 'test', path: 'a.jpg' })).json();
    await waitFor('a done', async () => (await getJob(a.id)).state === 'done');
    const b = (await postJob({ pipeline: 'test', path: 'copy.jpg' })).json(); // same bytes: outputs copied
    await waitFor('copy done', async () => (await getJob(b.id)).state === 'done');
    expect((await postJob({ pipeline: 'test', path: 'a.jpg' })).json().state).toBe('done'); // already done: nothing to do

    const after = await metrics();
    expect(after.get('mediaflow_events_received_total{source="http"}')).toBe(3);
    expect(after.get('mediaflow_jobs_total{pipeline="test",state="done"}')).toBe(2);
    expect(after.get('mediaflow_dedup_hits_total{pipeline="test"}')).toBe(2);
    expect(after.get('mediaflow_job_duration_seconds_count{pipeline="test"}')).toBe(2);
    expect(after.get('mediaflow_step_duration_seconds_count{pipeline="test",step="thumb"}')).toBe(1);
    expect(after.get('mediaflow_step_duration_seconds_bucket{le="+Inf",pipeline="test",step="thumb"}')).toBe(1);
    expect(after.get('mediaflow_event_lag_seconds_count{pipeline="test"}')).toBe(2);
    expect(after.get('mediaflow_event_lag_seconds_sum{pipeline="test"}')).toBeGreaterThan(0);
  });

  it('counts failed attempts and dead letters, and shows work in flight', async () => {
    setup([ws.pipeline({ retry: { attempts: 2, backoffMs: 10 } })]);
    // Read the gauge from inside a running job: its collect() runs synchronously on get().
    const inFlight: Promise<number>[] = [];
    service.on('started', () => inFlight.push(registry.getSingleMetric('mediaflow_jobs_in_flight')!.get().then((g) => g.values[0]!.value)));
    drop('corrupt-header.jpg', 'bad.jpg');
    drop('Landscape_1.jpg', 'good.jpg');
    const bad = (await postJob({ pipeline: 'test', path: 'bad.jpg' })).json();
    const good = (await postJob({ pipeline: 'test', path: 'good.jpg' })).json();
    await waitFor('both finished', async () => (await getJob(bad.id)).state === 'dead' && (await getJob(good.id)).state === 'done');
    expect(Math.min(...await Promise.all(inFlight))).toBeGreaterThan(0);
    const m = await metrics();
    expect(m.get('mediaflow_jobs_total{pipeline="test",state="dead"}')).toBe(1);
    expect(m.get('mediaflow_jobs_total{pipeline="test",state="done"}')).toBe(1);
    expect(m.get(`mediaflow_jobs_in_flight{worker="${workerId()}"}`)).toBe(0);
    // The ledger's picture, shared by every process, and this worker's own count.
    expect(m.get('mediaflow_ledger_jobs{state="dead"}')).toBeGreaterThan(0);
    expect(m.get(`mediaflow_worker_jobs_total{state="dead",worker="${workerId()}"}`)).toBeGreaterThan(0);
    expect((await getJob(bad.id)).error).toContain('bad.jpg');
  });
});
