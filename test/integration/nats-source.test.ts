import { AckPolicy, jetstream, type ConsumerInfo } from '@nats-io/jetstream';
import * as Minio from 'minio';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { JobRequest } from '../../src/events/job-request.js';
import type { MediaEvent } from '../../src/events/media-event.js';
import { NatsSource, type NatsSourceOptions } from '../../src/sources/nats-source.js';
import { describeMinio, removeBucket, startMinio, uniqueBucket, type MinioServer } from '../helpers/minio.js';
import {
  describeNats, describeOwnNats, makeStream, memoryLogger, NATS_URL, natsClient, startOwnNats, uniqueName, type Nats, type OwnNats,
} from '../helpers/nats.js';
import { freePort } from '../helpers/own-servers.js';
import { waitFor } from '../helpers/wait.js';

const JOB_REQUESTED = 'dev.mediaflow.job.requested.v1';

/** What a service would be: it records what it is given; `submitFails` makes the first n submits throw. */
function recordingSink(opts: { submitFails?: number; gate?: (r: JobRequest) => Promise<void> } = {}) {
  let fails = opts.submitFails ?? 0;
  const submitted: JobRequest[] = [];
  const emitted: MediaEvent[] = [];
  return {
    submitted, emitted, attempts: 0,
    async emit(e: MediaEvent) { emitted.push(e); },
    async submit(r: JobRequest) {
      this.attempts++;
      if (fails > 0) { fails--; throw new Error('ledger unavailable'); }
      await opts.gate?.(r);
      submitted.push(r);
    },
  };
}

const encode = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

/** The body MinIO's NATS target publishes for one upload. */
function minioRecords(bucket: string, rawKey: string) {
  return {
    EventName: 's3:ObjectCreated:Put',
    Key: `${bucket}/${decodeURIComponent(rawKey)}`,
    Records: [{
      eventVersion: '2.0', eventSource: 'minio:s3', awsRegion: '', eventTime: '2026-01-02T03:04:05.000Z', eventName: 's3:ObjectCreated:Put',
      userIdentity: { principalId: 'minio' }, requestParameters: {}, responseElements: {},
      s3: {
        s3SchemaVersion: '1.0', configurationId: 'Config',
        bucket: { name: bucket, ownerIdentity: { principalId: 'minio' }, arn: `arn:aws:s3:::${bucket}` },
        object: { key: rawKey, size: 3, eTag: '"d41d8cd98f00b204e9800998ecf8427e"', contentType: 'image/jpeg', userMetadata: { 'content-type': 'image/jpeg' }, sequencer: '17A' },
      },
      source: { host: '127.0.0.1', port: '', userAgent: 'test' },
    }],
  };
}

describeNats('NATS JetStream source (real NATS)', () => {
  let client: Nats;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => { client = await natsClient(); });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });
  afterAll(async () => { await client?.close(); });

  /** A stream and consumer of the test's own, and a source on them (not started); all removed after the test. */
  async function setup(opts: Partial<NatsSourceOptions> = {}) {
    const subject = `mf.test.${uniqueName('s')}`;
    const stream = await makeStream(client.jsm, subject);
    cleanups.push(() => stream.remove());
    const consumer = uniqueName('c');
    const { logger, logged } = memoryLogger();
    const make = () => {
      const source = new NatsSource({ servers: NATS_URL, stream: stream.name, consumer, ackWaitMs: 5000, maxDeliver: 5, logger, ...opts });
      cleanups.push(() => source.stop());
      return source;
    };
    const js = jetstream(client.nc);
    const publish = (v: unknown) => js.publish(subject, encode(v));
    const info = () => client.jsm.consumers.info(stream.name, consumer);
    /** Every message delivered, and none waiting for an ack or a delivery. */
    const settled = async (): Promise<ConsumerInfo | null> => { const i = await info(); return i.num_pending === 0 && i.num_ack_pending === 0 ? i : null; };
    return { subject, stream: stream.name, consumer, logged, make, publish, info, settled };
  }

  it('a job request, bare and as a CloudEvent, is submitted and acknowledged', async () => {
    const t = await setup();
    const sink = recordingSink();
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    expect(source.ready).toBe(true);
    expect(source.name).toBe(`nats:${t.stream}/${t.consumer}@${NATS_URL}`);
    await t.publish({ pipeline: 'photos', path: 'trip/a.jpg' });
    await t.publish({ specversion: '1.0', id: 'req-1', source: 'test', type: JOB_REQUESTED, data: { pipeline: 'photos', bucket: 'uploads', key: 'b c.jpg' } });
    await waitFor('both submitted', () => sink.submitted.length === 2);
    expect(sink.submitted).toEqual([{ pipeline: 'photos', path: 'trip/a.jpg' }, { pipeline: 'photos', bucket: 'uploads', key: 'b c.jpg' }]);
    const info = await waitFor('both acknowledged', t.settled);
    expect(info.delivered.consumer_seq).toBe(2); // each delivered once
    // The consumer was created as the pipeline says.
    expect(info.config).toMatchObject({ durable_name: t.consumer, ack_policy: AckPolicy.Explicit, ack_wait: 5000 * 1e6, max_deliver: 5 });
  });

  it('S3 records as MinIO publishes them become MediaEvents of the bucket, keys decoded', async () => {
    const t = await setup();
    const sink = recordingSink();
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish(minioRecords('uploads', 'trip%2Fa+b.jpg'));
    await waitFor('event emitted', () => sink.emitted.length === 1);
    expect(sink.emitted[0]).toMatchObject({ type: 'created', source: `${source.name}:bucket:uploads`, data: { store: 'bucket:uploads', key: 'trip/a b.jpg', size: 3 } });
    await waitFor('acknowledged', t.settled);
  });

  it('a message that is not JSON or not a valid request is terminated with its reason logged; the next one is handled', async () => {
    const t = await setup();
    const sink = recordingSink();
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish('this is not json');
    await t.publish({ pipeline: 'photos' });
    await t.publish({ pipeline: 'photos', path: 'good.jpg' });
    await waitFor('good one submitted', () => sink.submitted.length === 1);
    expect(sink.submitted).toEqual([{ pipeline: 'photos', path: 'good.jpg' }]);
    // Terminated: nothing is waiting for an ack or a redelivery.
    const info = await waitFor('all settled', t.settled);
    expect(info.num_redelivered).toBe(0);
    const errors = t.logged.filter((l) => l.level === 50);
    expect(errors.map((l) => l.reason)).toEqual([
      expect.stringMatching(/^message is not JSON/),
      expect.stringContaining('give either "path" or both "bucket" and "key"'),
    ]);
    expect(errors.every((l) => /terminated/.test(String(l.msg)))).toBe(true);
  });

  it('a message whose submit fails is delivered again and then handled', async () => {
    const t = await setup();
    const sink = recordingSink({ submitFails: 1 });
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'retry.jpg' });
    await waitFor('submitted on the second delivery', () => sink.submitted.length === 1);
    expect(sink.attempts).toBe(2);
    await waitFor('acknowledged', t.settled);
    expect(t.logged.some((l) => l.level === 40 && l.reason === 'ledger unavailable' && l.deliveries === 1)).toBe(true);
  });

  it('a message that still fails at maxDeliver is given up, and that is logged', async () => {
    const t = await setup({ maxDeliver: 2 });
    const sink = recordingSink({ submitFails: 100 });
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'never.jpg' });
    await waitFor('given up', () => t.logged.some((l) => l.level === 50 && /given up after 2 deliveries/.test(String(l.msg))));
    expect(sink.attempts).toBe(2);
    expect(t.logged.find((l) => l.level === 50)).toMatchObject({ reason: 'ledger unavailable', maxDeliver: 2 });
    await waitFor('nothing pending', t.settled);
  });

  it('a message handled for longer than ackWait is kept from redelivery (working)', async () => {
    const t = await setup({ ackWaitMs: 1000 });
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    const sink = recordingSink({ gate: () => released });
    const source = t.make();
    cleanups.push(async () => release()); // a failed expectation must not leave stop() waiting on the gate
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'slow.jpg' });
    await waitFor('in hand', () => sink.attempts === 1);
    // Three ack waits: without the progress acks the server would hand it to the next puller
    // (another instance of the service; here the test pulling on the same durable).
    await new Promise((r) => setTimeout(r, 3000));
    const other = await jetstream(client.nc).consumers.get(t.stream, t.consumer);
    const stolen = await other.next({ expires: 1000 });
    stolen?.nak();
    expect(stolen?.json()).toBeUndefined();
    const during = await t.info();
    expect(during.num_ack_pending).toBe(1);
    expect(during.delivered.consumer_seq).toBe(1);
    release();
    await waitFor('acknowledged', t.settled);
    expect(sink.attempts).toBe(1);
  });

  it('an existing durable consumer is reused (and set to the pipeline\'s values); what was published while stopped is handled once', async () => {
    const t = await setup({ ackWaitMs: 7000, maxDeliver: 4 });
    const before = await client.jsm.consumers.add(t.stream, { durable_name: t.consumer, ack_policy: AckPolicy.Explicit, ack_wait: 30_000 * 1e6, max_deliver: 9 });
    const sink = recordingSink();
    const first = t.make();
    await first.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'first.jpg' });
    await waitFor('first handled', () => sink.submitted.length === 1);
    await first.stop();
    expect(first.ready).toBe(false);
    for (let i = 0; i < 50; i++) await t.publish({ pipeline: 'photos', path: `while-stopped/${i}.jpg` });
    expect((await t.info()).num_pending).toBe(50);

    const second = t.make();
    await second.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await waitFor('all 50 handled', () => sink.submitted.length === 51);
    const info = await waitFor('all acknowledged', t.settled);
    const paths = sink.submitted.map((r) => r.path);
    expect(new Set(paths).size).toBe(51);
    expect(info.created).toBe(before.created); // the same consumer, not a new one
    expect(info.config).toMatchObject({ ack_wait: 7000 * 1e6, max_deliver: 4 });
    expect(info.delivered.consumer_seq).toBe(51);
  });

  it('a stream that does not exist is logged with how to create it, and found once it is created', async () => {
    const stream = uniqueName('mf_missing');
    const subject = `mf.test.${stream}`;
    const { logger, logged } = memoryLogger();
    const source = new NatsSource({ servers: NATS_URL, stream, consumer: 'c', ackWaitMs: 5000, maxDeliver: 5, logger, retryMs: 50 });
    cleanups.push(() => source.stop());
    const sink = recordingSink();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    expect(source.ready).toBe(false);
    expect(logged.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([expect.stringContaining(`stream ${stream} does not exist on ${NATS_URL}: create it, e.g. \`nats stream add ${stream} --subjects`)]);
    const created = await makeStream(client.jsm, subject, stream);
    cleanups.push(() => created.remove());
    await waitFor('consuming', () => source.ready);
    await jetstream(client.nc).publish(subject, encode({ pipeline: 'p', path: 'late.jpg' }));
    await waitFor('handled', () => sink.submitted.length === 1);
  });

  it('a consumer deleted mid-run is created again and consuming goes on', async () => {
    const t = await setup({ retryMs: 50 });
    const sink = recordingSink();
    const source = t.make();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'one.jpg' });
    await waitFor('first handled', () => sink.submitted.length === 1);
    await client.jsm.consumers.delete(t.stream, t.consumer);
    // Noticed from the server's 409 (2.10 on), or from two missed heartbeats (10 s) before that.
    await waitFor('consumer created again', () => t.info().then(() => true, () => false), 45_000, 100);
    await t.publish({ pipeline: 'photos', path: 'two.jpg' });
    // A new consumer starts at the beginning of the stream: one.jpg comes again (the ledger makes it a no-op).
    await waitFor('second handled', () => sink.submitted.some((r) => r.path === 'two.jpg'));
    await waitFor('settled', t.settled);
    expect(source.ready).toBe(true);
  }, 90_000);

  it('a server that cannot be reached at start: start resolves, not ready, one error naming the masked URL', async () => {
    const port = await freePort(); // nothing listens there
    const url = `nats://mediaflow:hunter2secret@127.0.0.1:${port}`;
    const { logger, logged } = memoryLogger();
    const source = new NatsSource({ servers: url, stream: 's', consumer: 'c', ackWaitMs: 5000, maxDeliver: 5, logger, retryMs: 20 });
    cleanups.push(() => source.stop());
    const sink = recordingSink();
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    expect(source.ready).toBe(false);
    // Tried again (logged at debug), without another error line.
    await waitFor('retried', () => logged.filter((l) => l.level === 20 && /NATS JetStream at/.test(String(l.msg))).length >= 2);
    const errors = logged.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toContain(`nats://mediaflow:***@127.0.0.1:${port}`);
    expect(JSON.stringify(logged)).not.toContain('hunter2secret');
    expect(source.name).not.toContain('hunter2secret');
    expect(source.ready).toBe(false);
    await source.stop();
    await source.stop(); // idempotent
  });

  it('stop() lets the message in hand finish and acknowledges it', async () => {
    const t = await setup();
    let release!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    let entered = false;
    const sink = recordingSink({ gate: async () => { entered = true; await released; } });
    const source = t.make();
    cleanups.push(async () => release()); // a failed expectation must not leave stop() waiting on the gate
    await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
    await t.publish({ pipeline: 'photos', path: 'slow.jpg' });
    await waitFor('handling', () => entered);
    const stopped = source.stop();
    expect(source.ready).toBe(false);
    release();
    await stopped;
    expect(sink.submitted).toHaveLength(1);
    await waitFor('acknowledged', t.settled);
  });
});

describeOwnNats('NATS JetStream source across a server restart (own nats-server)', () => {
  let own: OwnNats;
  beforeAll(async () => { own = await startOwnNats(); });
  afterAll(async () => { await own?.stop(); });

  it('reconnects and resumes: nothing published before or after the restart is lost; ready false, then true', async () => {
    let publisher = await natsClient(own.url);
    const subject = 'mf.restart';
    const stream = await makeStream(publisher.jsm, subject);
    const { logger, logged } = memoryLogger();
    // The message in hand when the server dies waits here until it is back.
    let hold: Promise<void> | null = null;
    let release = () => {};
    let held = false;
    const sink = recordingSink({ gate: async (r) => { if (r.path === 'held.jpg' && hold) { held = true; await hold; } } });
    const source = new NatsSource({ servers: own.url, stream: stream.name, consumer: 'restart', ackWaitMs: 2000, maxDeliver: 20, logger });
    try {
      await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
      expect(source.ready).toBe(true);
      const js = () => jetstream(publisher.nc);
      for (let i = 0; i < 5; i++) await js().publish(subject, encode({ pipeline: 'p', path: `before/${i}.jpg` }));
      await waitFor('first five handled', () => sink.submitted.length === 5);

      hold = new Promise<void>((r) => { release = r; });
      await js().publish(subject, encode({ pipeline: 'p', path: 'held.jpg' }));
      for (let i = 0; i < 5; i++) await js().publish(subject, encode({ pipeline: 'p', path: `queued/${i}.jpg` }));
      await waitFor('held message in hand', () => held);

      await publisher.close();
      await own.down();
      await waitFor('not ready while the server is down', () => !source.ready);
      // Done while the server is down: its ack cannot reach it (confirmed late, or redelivered after ack_wait).
      release();
      await waitFor('held message recorded', () => sink.submitted.some((r) => r.path === 'held.jpg'));
      await own.up();
      await waitFor('ready again', () => source.ready);

      publisher = await natsClient(own.url);
      for (let i = 0; i < 5; i++) await js().publish(subject, encode({ pipeline: 'p', path: `after/${i}.jpg` }));
      const expected = ['held.jpg', ...[0, 1, 2, 3, 4].flatMap((i) => [`before/${i}.jpg`, `queued/${i}.jpg`, `after/${i}.jpg`])].sort();
      await waitFor('everything handled', () => expected.every((p) => sink.submitted.some((r) => r.path === p)), 60_000);
      await waitFor('all acknowledged', async () => {
        const i = await publisher.jsm.consumers.info(stream.name, 'restart');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      }, 60_000);
      expect([...new Set(sink.submitted.map((r) => r.path))].sort()).toEqual(expected);
      expect(logged.some((l) => l.msg === 'NATS connection lost; reconnecting')).toBe(true);
    } finally {
      release();
      await source.stop();
      await stream.remove().catch(() => {});
      await publisher.close().catch(() => {});
    }
  }, 120_000);
});

describeMinio('MinIO -> NATS JetStream -> NatsSource (real MinIO)', () => {
  let nats: Nats;
  let server: MinioServer | undefined;
  const bucket = uniqueBucket('nats');
  const subject = `mf.minio.${uniqueName('e')}`;
  let stream: { name: string; remove(): Promise<void> };

  beforeAll(async () => {
    nats = await natsClient();
    // The stream first: MinIO's JetStream target publishes with acknowledgement, which needs a stream on the subject.
    stream = await makeStream(nats.jsm, subject);
    const address = new URL(NATS_URL).host;
    server = await startMinio({ env: {
      MINIO_NOTIFY_NATS_ENABLE_MF: 'on',
      MINIO_NOTIFY_NATS_ADDRESS_MF: address,
      MINIO_NOTIFY_NATS_SUBJECT_MF: subject,
      MINIO_NOTIFY_NATS_JETSTREAM_MF: 'on',
    } });
    await server.client.makeBucket(bucket);
    const config = new Minio.NotificationConfig();
    const queue = new Minio.QueueConfig('arn:minio:sqs::MF:nats');
    queue.addEvent(Minio.ObjectCreatedAll);
    config.add(queue);
    // MinIO may answer before its targets are loaded ("destination ARN does not exist"): ask until it knows it.
    await waitFor('MinIO to know target MF', () => server!.client.setBucketNotification(bucket, config).then(() => true), 30_000, 200);
  });

  afterAll(async () => {
    if (server) await removeBucket(server.client, bucket).catch(() => {});
    await server?.stop();
    await stream?.remove();
    await nats?.close();
  });

  it('an upload reaches the source as its created event', async () => {
    const { logger } = memoryLogger();
    const source = new NatsSource({ servers: NATS_URL, stream: stream.name, consumer: 'mediaflow', ackWaitMs: 5000, maxDeliver: 5, logger });
    const sink = recordingSink();
    try {
      await source.start(sink.emit.bind(sink), sink.submit.bind(sink));
      const key = 'trip 1/a+b été.jpg';
      await server!.client.putObject(bucket, key, Buffer.from('abc'), 3, { 'Content-Type': 'image/jpeg' });
      const event = await waitFor('created event', () => sink.emitted.find((e) => e.type === 'created'));
      expect(event).toMatchObject({ type: 'created', data: { store: `bucket:${bucket}`, key, size: 3 } });
      await waitFor('acknowledged', async () => {
        const i = await nats.jsm.consumers.info(stream.name, 'mediaflow');
        return i.num_pending === 0 && i.num_ack_pending === 0;
      });
    } finally {
      await source.stop();
    }
  });
});
