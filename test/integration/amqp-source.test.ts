import * as Minio from 'minio';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import type { JobRequest } from '../../src/events/job-request.js';
import type { MediaEvent } from '../../src/events/media-event.js';
import { AmqpSource, REASON_HEADER, type AmqpSourceOptions } from '../../src/sources/amqp-source.js';
import { describeMinio, startMinio, stopMinio, uniqueBucket, type MinioServer } from '../helpers/minio.js';
import { freePort } from '../helpers/own-servers.js';
import { AMQP_URL, Broker, describeRabbitmq, uniqueName, withBrokerStopped } from '../helpers/rabbitmq.js';
import { waitFor } from '../helpers/wait.js';

/** The CloudEvents type of a job request (docs/EVENTS.md). */
const JOB_REQUESTED = 'dev.mediaflow.job.requested.v1';

type Line = { level: number; msg: string; [k: string]: unknown };

/** What a source gave its sink; `onSubmit`/`onEmit` stand in for a slow or failing service. */
function recordingSink() {
  const sink = {
    emitted: [] as MediaEvent[],
    submitted: [] as JobRequest[],
    onEmit: async (_e: MediaEvent): Promise<void> => {},
    onSubmit: async (_r: JobRequest): Promise<void> => {},
    emit: async (e: MediaEvent) => { await sink.onEmit(e); sink.emitted.push(e); },
    submit: async (r: JobRequest) => { await sink.onSubmit(r); sink.submitted.push(r); },
  };
  return sink;
}

/** A gate a blocked sink waits on. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return { open, opened };
}

const s3Record = (bucket: string, escapedKey: string, sequencer: string) => ({
  EventName: 's3:ObjectCreated:Put',
  Key: `${bucket}/${escapedKey}`,
  Records: [{
    eventVersion: '2.0', eventSource: 'minio:s3', awsRegion: '', eventTime: '2024-05-01T10:00:00.000Z',
    eventName: 's3:ObjectCreated:Put', userIdentity: { principalId: 'minio' },
    requestParameters: { principalId: 'minio', region: '', sourceIPAddress: '127.0.0.1' },
    responseElements: { 'x-amz-id-2': 'dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8', 'x-amz-request-id': '17CA7E0B8E0A6F5C' },
    s3: {
      s3SchemaVersion: '1.0', configurationId: 'Config',
      bucket: { name: bucket, ownerIdentity: { principalId: 'minio' }, arn: `arn:aws:s3:::${bucket}` },
      object: { key: escapedKey, size: 1234, eTag: 'a1b2c3', contentType: 'image/jpeg', userMetadata: { 'content-type': 'image/jpeg' }, sequencer },
    },
    source: { host: '127.0.0.1', port: '', userAgent: 'MinIO (linux; amd64) minio-go/v7.0.70' },
  }],
});

describeRabbitmq('AMQP source (real RabbitMQ)', () => {
  const started: AmqpSource[] = [];
  const brokers: Broker[] = [];

  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop();
    for (const b of brokers.splice(0)) await b.close();
  });

  /** A queue of its own (deleted afterwards, with its dead-letter queue), a broker handle, a log to read. */
  function setup() {
    const queue = uniqueName('q');
    const broker = new Broker();
    broker.track('queue', queue, `${queue}.dead-letter`);
    brokers.push(broker);
    const logged: Line[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => { logged.push(JSON.parse(line)); } });
    const sink = recordingSink();
    const source = (opts: Partial<AmqpSourceOptions> = {}) => {
      const s = new AmqpSource({ url: AMQP_URL, queue, routingKey: '#', prefetch: 16, logger, retryDelayMs: 200, ...opts });
      started.push(s);
      return s;
    };
    return { queue, broker, logged, logger, sink, source };
  }

  it('a job request, bare or as a CloudEvent, is submitted and acknowledged', async () => {
    const { queue, broker, sink, source } = setup();
    const src = source();
    await src.start(sink.emit, sink.submit);
    expect(src.ready).toBe(true);
    expect(src.name).toBe(`amqp:amqp://guest:***@127.0.0.1:5672#${queue}`);

    await broker.publish({ pipeline: 'photos', path: 'trip/a.jpg' }, { queue });
    await broker.publish({
      specversion: '1.0', type: JOB_REQUESTED, source: 'test', id: 'job-1',
      data: { pipeline: 'photos', bucket: 'uploads', key: 'b.jpg' },
    }, { queue });
    await waitFor('two submits', () => sink.submitted.length === 2);
    expect(sink.submitted).toEqual(expect.arrayContaining([
      { pipeline: 'photos', path: 'trip/a.jpg' }, { pipeline: 'photos', bucket: 'uploads', key: 'b.jpg' },
    ]));
    // Stopping closes the channel: anything not acknowledged would be ready again.
    await src.stop();
    expect(src.ready).toBe(false);
    expect(await broker.ready(queue)).toBe(0);
    expect(await broker.ready(`${queue}.dead-letter`)).toBe(0);
  });

  it('S3 records (the body MinIO publishes) become events of the bucket store, keys decoded', async () => {
    const { queue, broker, sink, source } = setup();
    await source().start(sink.emit, sink.submit);
    await broker.publish(s3Record('photos', 'trip+1%2Fa%2Bb.jpg', '17CA7E0B8E2C4A01'), { queue });
    const event = await waitFor('an event', () => sink.emitted[0]);
    expect(event).toMatchObject({ type: 'created', data: { store: 'bucket:photos', key: 'trip 1/a+b.jpg', etag: 'a1b2c3', sequencer: '17CA7E0B8E2C4A01' } });
  });

  it('a message that is not JSON, and an invalid job request, go to the dead-letter queue with their reason', async () => {
    const { queue, broker, sink, source, logged } = setup();
    const src = source();
    await src.start(sink.emit, sink.submit);
    await broker.publish('{not json', { queue }, { 'x-test': 'kept' });
    await broker.publish({ pipeline: 'photos' }, { queue });
    await broker.publish({ pipeline: 'photos', path: 'good.jpg' }, { queue });
    await waitFor('the good one', () => sink.submitted.length === 1);
    await waitFor('two dead letters', async () => (await broker.ready(`${queue}.dead-letter`)) === 2);
    const dead = await broker.drain(`${queue}.dead-letter`);
    const byBody = new Map(dead.map((m) => [m.content.toString(), m.properties.headers ?? {}]));
    expect(byBody.get('{not json')).toMatchObject({ [REASON_HEADER]: expect.stringMatching(/not JSON/), 'x-test': 'kept' });
    expect(byBody.get('{"pipeline":"photos"}')?.[REASON_HEADER]).toMatch(/"path"/);
    expect(logged.filter((l) => l.msg === 'message dead-lettered' && l.level >= 50)).toHaveLength(2);
    await src.stop();
    expect(await broker.ready(queue)).toBe(0);
  });

  it('a message that could not be recorded now is delivered again and then recorded', async () => {
    const { queue, broker, sink, source, logged } = setup();
    let calls = 0;
    sink.onSubmit = async () => { if (++calls === 1) throw new Error('ledger unreachable'); };
    const src = source();
    await src.start(sink.emit, sink.submit);
    await broker.publish({ pipeline: 'photos', path: 'again.jpg' }, { queue });
    await waitFor('recorded on the second delivery', () => sink.submitted.length === 1);
    expect(calls).toBe(2);
    expect(logged.find((l) => l.msg.includes('delivered again'))).toMatchObject({ reason: 'ledger unreachable' });
    await src.stop();
    expect(await broker.ready(queue)).toBe(0);
    expect(await broker.ready(`${queue}.dead-letter`)).toBe(0);
  });

  it('prefetch bounds what is in flight; nothing is acknowledged before the sink resolves', async () => {
    const { queue, broker, sink, source } = setup();
    const release = gate();
    let inFlight = 0;
    let most = 0;
    sink.onSubmit = async () => {
      most = Math.max(most, ++inFlight);
      await release.opened;
      inFlight--;
    };
    const src = source({ prefetch: 2 });
    await src.start(sink.emit, sink.submit);
    for (let i = 0; i < 6; i++) await broker.publish({ pipeline: 'photos', path: `${i}.jpg` }, { queue });
    await waitFor('two in flight', () => inFlight === 2);
    await waitFor('the other four held back by the broker', async () => (await broker.ready(queue)) === 4);
    // Time for a third delivery, were prefetch not honoured.
    await new Promise((r) => setTimeout(r, 300));
    expect(most).toBe(2);
    expect(sink.submitted).toHaveLength(0);
    expect(await broker.ready(queue)).toBe(4);
    release.open();
    await waitFor('all six', () => sink.submitted.length === 6);
    expect(most).toBe(2);
    await src.stop();
    expect(await broker.ready(queue)).toBe(0);
  });

  it('a broker that cannot be reached: start resolves, not ready, one error naming the masked URL', async () => {
    const { sink, source, logged } = setup();
    const port = await freePort();
    const url = `amqp://mediaflow:s3cret-pw@127.0.0.1:${port}/`;
    const src = source({ url });
    await src.start(sink.emit, sink.submit);
    expect(src.ready).toBe(false);
    const errors = logged.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ url: `amqp://mediaflow:***@127.0.0.1:${port}/` });
    expect(errors[0]!.msg).toContain(`127.0.0.1:${port}`);
    // It keeps trying, quietly.
    await waitFor('a second attempt', () => logged.some((l) => l.msg.includes('still unreachable')));
    expect(logged.filter((l) => l.level >= 50)).toHaveLength(1);
    expect(JSON.stringify(logged)).not.toContain('s3cret-pw');
    expect(src.name).not.toContain('s3cret-pw');
    await src.stop();
    expect(src.ready).toBe(false);
  });

  it('an exchange that does not exist is an error naming it; once it exists the queue is bound to it', async () => {
    const { queue, broker, sink, source, logged } = setup();
    const exchange = uniqueName('x');
    broker.track('exchange', exchange);
    const src = source({ exchange, routingKey: 'uploads.#' });
    await src.start(sink.emit, sink.submit);
    expect(src.ready).toBe(false);
    const error = logged.find((l) => l.level >= 50);
    expect(error?.msg).toContain('amqp://guest:***@127.0.0.1:5672');
    expect(error?.msg).toContain(`exchange "${exchange}" not found`);
    await broker.with((ch) => ch.assertExchange(exchange, 'topic', { durable: true }));
    await waitFor('consuming', () => src.ready, 60_000);
    await broker.publish({ pipeline: 'photos', path: 'routed.jpg' }, { exchange, routingKey: 'uploads.photos' });
    await waitFor('the routed request', () => sink.submitted.length === 1);
  });

  it('an existing queue is used as it is, whatever its arguments', async () => {
    const { queue, broker, sink, source } = setup();
    await broker.with((ch) => ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 1000 } }));
    const src = source();
    await src.start(sink.emit, sink.submit);
    expect(src.ready).toBe(true);
    await broker.publish({ pipeline: 'photos', path: 'x.jpg' }, { queue });
    await waitFor('submitted', () => sink.submitted.length === 1);
  });

  it('stop() is idempotent and waits for the messages being handled, then acknowledges them', async () => {
    const { queue, broker, sink, source } = setup();
    const release = gate();
    let handling = 0;
    sink.onSubmit = async () => { handling++; await release.opened; };
    const src = source();
    await src.start(sink.emit, sink.submit);
    await broker.publish({ pipeline: 'photos', path: 'slow.jpg' }, { queue });
    await waitFor('handling', () => handling === 1);
    let stopped = false;
    const stopping = src.stop().then(() => { stopped = true; });
    const again = src.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(stopped).toBe(false);
    release.open();
    await Promise.all([stopping, again]);
    expect(sink.submitted).toHaveLength(1);
    expect(await broker.ready(queue)).toBe(0);
  });

  it('a broker restart: reconnects by itself, and nothing published before or after is lost', async () => {
    const { queue, broker, sink, source } = setup();
    const src = source({ prefetch: 4 });
    // One message is still being handled when the broker goes: its ack is lost, so it comes again.
    const held = gate();
    sink.onSubmit = async (r) => { if (r.path === 'held.jpg') await held.opened; };
    await src.start(sink.emit, sink.submit);
    for (const k of ['before-1', 'before-2', 'held']) await broker.publish({ pipeline: 'photos', path: `${k}.jpg` }, { queue });
    await waitFor('the first two', () => sink.submitted.length === 2);
    const readiness: boolean[] = [];
    const watch = setInterval(() => { if (readiness.at(-1) !== src.ready) readiness.push(src.ready); }, 20);
    try {
      await withBrokerStopped(async () => {
        await waitFor('not ready while the broker is down', () => !src.ready, 60_000);
        held.open();
      });
      await waitFor('ready again', () => src.ready, 120_000, 100);
      for (const k of ['after-1', 'after-2']) await broker.publish({ pipeline: 'photos', path: `${k}.jpg` }, { queue });
      const want = ['before-1', 'before-2', 'held', 'after-1', 'after-2'].map((k) => `${k}.jpg`);
      await waitFor('every message handled', () => want.every((p) => sink.submitted.some((r) => r.path === p)), 120_000, 100);
    } finally {
      clearInterval(watch);
    }
    expect(readiness[0]).toBe(true);
    expect(readiness).toContain(false);
    expect(readiness.at(-1)).toBe(true);
    await src.stop();
    expect(await broker.ready(queue)).toBe(0);
  }, 300_000);
});

describeRabbitmq('AMQP source fed by MinIO\'s AMQP target (real MinIO, real RabbitMQ)', () => {
  describeMinio('end to end', () => {
    let server: MinioServer | undefined;
    let src: AmqpSource | undefined;
    const broker = new Broker();
    const bucket = uniqueBucket('amqp');
    const queue = uniqueName('q');
    const exchange = uniqueName('x');
    const routingKey = uniqueName('rk');
    broker.track('queue', queue, `${queue}.dead-letter`);
    broker.track('exchange', exchange);

    afterEach(async () => {
      await src?.stop();
      await stopMinio(server, [bucket], { ignoreRemoveErrors: true });
      await broker.close();
    });

    it('an upload reaches the source as a created event of its bucket', async () => {
      // Declared as MinIO declares it (durable topic), so neither refuses the other's.
      await broker.with((ch) => ch.assertExchange(exchange, 'topic', { durable: true }));
      const sink = recordingSink();
      src = new AmqpSource({ url: AMQP_URL, queue, exchange, routingKey, prefetch: 16, logger: pino({ level: 'silent' }) });
      await src.start(sink.emit, sink.submit);
      expect(src.ready).toBe(true);

      server = await startMinio({ env: {
        MINIO_NOTIFY_AMQP_ENABLE_MF: 'on',
        MINIO_NOTIFY_AMQP_URL_MF: AMQP_URL,
        MINIO_NOTIFY_AMQP_EXCHANGE_MF: exchange,
        MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_MF: 'topic',
        MINIO_NOTIFY_AMQP_ROUTING_KEY_MF: routingKey,
        MINIO_NOTIFY_AMQP_DURABLE_MF: 'on',
        MINIO_NOTIFY_AMQP_DELIVERY_MODE_MF: '2',
      } });
      await server.client.makeBucket(bucket);
      const config = new Minio.NotificationConfig();
      const target = new Minio.QueueConfig('arn:minio:sqs::MF:amqp');
      target.addEvent(Minio.ObjectCreatedAll);
      config.add(target);
      // MinIO may answer before it has loaded its targets (the ARN is "unknown" until then).
      await waitFor('MinIO to know the AMQP target', () => server!.client.setBucketNotification(bucket, config).then(() => true), 30_000, 200);

      const key = 'trip 1/photo été.jpg';
      await server.client.putObject(bucket, key, Buffer.from('not really a jpeg'), undefined, { 'Content-Type': 'image/jpeg' });
      const event = await waitFor('the created event', () => sink.emitted.find((e) => e.data.key === key), 60_000);
      expect(event).toMatchObject({ type: 'created', data: { store: `bucket:${bucket}`, key, size: 17 } });
    }, 180_000);
  });
});
