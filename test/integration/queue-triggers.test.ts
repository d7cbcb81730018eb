/**
 * The message-queue triggers end to end, as a user runs them: pipelines whose
 * source is an AMQP queue or a NATS stream, a real MinIO publishing its
 * bucket notifications to the real broker, the service reading the objects
 * and writing outputs back to the bucket.
 */
import * as Minio from 'minio';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Completion } from '../../src/completion/completion.js';
import type { LoadedPipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { eventSchemaErrors } from '../helpers/event-schema.js';
import { fixtureBytes } from '../helpers/fixtures.js';
import { describeMinio, minioEnv, startMinio, stopMinio, uniqueBucket, type MinioServer } from '../helpers/minio.js';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { AMQP_URL, Broker, describeRabbitmq, uniqueName } from '../helpers/rabbitmq.js';
import { describeNats, makeStream, natsClient, NATS_URL, type Nats } from '../helpers/nats.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

async function readObject(client: Minio.Client, bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function notifyTo(server: MinioServer, bucket: string, arn: string): Promise<void> {
  const config = new Minio.NotificationConfig();
  const target = new Minio.QueueConfig(arn);
  target.addEvent(Minio.ObjectCreatedAll);
  config.add(target);
  // MinIO may answer before it has loaded its targets (the ARN is "unknown" until then).
  await waitFor(`MinIO to know ${arn}`, () => server.client.setBucketNotification(bucket, config).then(() => true), 30_000, 200);
}

/** What differs between the brokers; the scenarios below are the same for both. */
interface Trigger {
  /** Before MinIO starts: what it needs to exist (an exchange, a stream). */
  prepare(): Promise<void>;
  /** MinIO's settings for its target MF. */
  minioEnv(): Record<string, string>;
  arn: string;
  source(bucket: string): Record<string, unknown>;
  /** Publishes as a producer would (to where MinIO publishes). */
  publish(doc: unknown): Promise<void>;
  /** Messages waiting for the consumer. */
  waiting(): Promise<number>;
  cleanup(): Promise<void>;
}

function amqpTrigger(): Trigger {
  const broker = new Broker();
  const queue = uniqueName('q');
  const exchange = uniqueName('x');
  const routingKey = uniqueName('rk');
  broker.track('queue', queue, `${queue}.dead-letter`);
  broker.track('exchange', exchange);
  return {
    // Declared as MinIO declares it (durable topic): the source checks it and binds its queue.
    prepare: async () => { await broker.with((ch) => ch.assertExchange(exchange, 'topic', { durable: true })); },
    minioEnv: () => ({
      MINIO_NOTIFY_AMQP_ENABLE_MF: 'on', MINIO_NOTIFY_AMQP_URL_MF: AMQP_URL, MINIO_NOTIFY_AMQP_EXCHANGE_MF: exchange,
      MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_MF: 'topic', MINIO_NOTIFY_AMQP_ROUTING_KEY_MF: routingKey,
      MINIO_NOTIFY_AMQP_DURABLE_MF: 'on', MINIO_NOTIFY_AMQP_DELIVERY_MODE_MF: '2',
    }),
    arn: 'arn:minio:sqs::MF:amqp',
    source: (bucket) => ({ type: 'amqp', url: AMQP_URL, queue, exchange, routingKey, bucket }),
    publish: (doc) => broker.publish(doc as object, { exchange, routingKey }),
    waiting: () => broker.ready(queue),
    cleanup: () => broker.close(),
  };
}

function natsTrigger(): Trigger {
  let nats: Nats | undefined;
  let stream: { name: string; remove(): Promise<void> } | undefined;
  const subject = `mf.test.${uniqueName('s').replace(/-/g, '_')}`;
  const consumer = 'mediaflow';
  return {
    // The stream first: MinIO's JetStream target publishes with acknowledgement, which needs a stream on the subject.
    prepare: async () => { nats = await natsClient(); stream = await makeStream(nats.jsm, subject); },
    minioEnv: () => ({
      MINIO_NOTIFY_NATS_ENABLE_MF: 'on', MINIO_NOTIFY_NATS_ADDRESS_MF: new URL(NATS_URL).host,
      MINIO_NOTIFY_NATS_SUBJECT_MF: subject, MINIO_NOTIFY_NATS_JETSTREAM_MF: 'on',
    }),
    arn: 'arn:minio:sqs::MF:nats',
    source: (bucket) => ({ type: 'nats', servers: NATS_URL, stream: stream!.name, consumer, bucket }),
    publish: async (doc) => { await nats!.nc.request(subject, JSON.stringify(doc), { timeout: 5000, headers: natsHeaders() }); },
    waiting: async () => {
      const info = await nats!.jsm.consumers.info(stream!.name, consumer).catch(() => null);
      // No consumer yet (the service has not run): everything in the stream waits.
      return info ? info.num_pending : (await nats!.jsm.streams.info(stream!.name)).state.messages;
    },
    cleanup: async () => { await stream?.remove(); await nats?.close(); },
  };
}

function endToEnd(makeTrigger: () => Trigger): void {
  describeMinio('uploads through the broker', () => {
    let ws: ReturnType<typeof workspace>;
    let server: MinioServer;
    const trigger = makeTrigger();
    const bucket = uniqueBucket('queue-e2e');
    // The service reads MINIO_* at its first bucket access, so this is completed once MinIO is up.
    const env: NodeJS.ProcessEnv = {};
    let pipeline: LoadedPipeline;
    let running: { service: Service; completion: Completion } | null = null;
    const logged: { msg: string; etag?: string; key?: string }[] = [];

    async function start(): Promise<Service> {
      const logger = pino({ level: 'info' }, { write: (line: string) => { logged.push(JSON.parse(line) as { msg: string }); } });
      const service = new Service({ pipelines: [pipeline], dataDir: ws.data, concurrency: 2, env, pollMs: 100, logger });
      const completion = new Completion(service);
      await service.start();
      running = { service, completion };
      await waitFor('the queue source consuming', () => service.sources.every((s) => s.ready), 30_000);
      return service;
    }
    async function stop(): Promise<void> {
      if (!running) return;
      const { service, completion } = running;
      running = null;
      await service.stop(() => completion.close());
    }

    beforeAll(async () => {
      ws = workspace('mf-queue-e2e-');
      await trigger.prepare();
      server = await startMinio({ env: trigger.minioEnv() });
      Object.assign(env, minioEnv(server));
      await server.client.makeBucket(bucket);
      await notifyTo(server, bucket, trigger.arn);
      pipeline = ws.pipeline({
        name: 'uploads',
        source: { ...trigger.source(bucket), exclude: ['derived/**'] },
        output: { type: 'bucket', bucket, prefix: 'derived/' },
        manifest: {},
      });
    });

    afterAll(async () => {
      await stop();
      await stopMinio(server, [bucket], { ignoreRemoveErrors: true });
      await trigger.cleanup();
      ws?.cleanup();
    });

    it('an upload becomes outputs; the outputs\' own notifications start nothing', async () => {
      const service = await start();
      await server.client.putObject(bucket, 'trip/a.jpg', fixtureBytes('Portrait_1.jpg'), undefined, { 'Content-Type': 'image/jpeg' });
      const job = await waitFor('job done', async () => (await service.ledger.list('done'))[0], 60_000);
      expect(job).toMatchObject({ pipeline: 'uploads', store: `bucket:${bucket}`, key: 'trip/a.jpg', size: fixtureBytes('Portrait_1.jpg').length, contentType: 'image/jpeg' });
      expect((await readObject(server.client, bucket, 'derived/trip/a/thumb.png')).length).toBeGreaterThan(0);
      await service.idle();
      expect(await service.ledger.counts()).toMatchObject({ done: 1, dead: 0, queued: 0 });
    });

    it('50 uploads while the service is down are all processed after it starts, none twice', async () => {
      await stop();
      const keys = Array.from({ length: 50 }, (_, i) => `batch/p${String(i).padStart(2, '0')}.jpg`);
      // Distinct bytes, so each is its own render.
      for (const [i, key] of keys.entries()) {
        const bytes = Buffer.concat([fixtureBytes('Landscape_1.jpg'), Buffer.from(`\n${i}`)]);
        await server.client.putObject(bucket, key, bytes, undefined, { 'Content-Type': 'image/jpeg' });
      }
      await waitFor('50 messages held by the broker', async () => (await trigger.waiting()) >= 50, 30_000);
      const service = await start();
      await waitFor('51 done', async () => (await service.ledger.counts()).done === 51, 120_000, 100);
      await service.idle();
      const renders = await service.ledger.renderCounts();
      expect(renders.filter((r) => r.renders !== 1)).toEqual([]);
      expect((await service.ledger.counts()).done).toBe(51);
      for (const key of keys.slice(0, 3)) expect((await readObject(server.client, bucket, `derived/${key.replace(/\.jpg$/, '')}/thumb.png`)).length).toBeGreaterThan(0);
    });

    it('an older record of a key delivered after the newer one (a late redelivery): the newer version stands', async () => {
      const service = running?.service ?? (await start());
      await server.client.putObject(bucket, 'order/a.jpg', fixtureBytes('Portrait_1.jpg'), undefined, { 'Content-Type': 'image/jpeg' });
      const newer = await waitFor('the upload done', async () => (await service.ledger.list('done', 1000)).find((j) => j.key === 'order/a.jpg'), 60_000);
      // The record of the version before it, published late (MinIO's sequencers are its clock in ns: 1 is long ago).
      await trigger.publish({
        EventName: 's3:ObjectCreated:Put', Key: `${bucket}/order/a.jpg`,
        Records: [{ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: bucket }, object: { key: 'order/a.jpg', size: 5, eTag: 'older0000', sequencer: '0000000000000001' } } }],
      });
      await waitFor('the late record refused', () => logged.some((l) => l.msg === 'event older than one already seen for this key: not processed' && l.key === 'order/a.jpg'), 30_000);
      await service.idle();
      const jobs = [...await service.ledger.list('done', 1000), ...await service.ledger.list('queued', 1000), ...await service.ledger.list('dead', 1000)];
      expect(jobs.filter((j) => j.key === 'order/a.jpg').map((j) => j.id)).toEqual([newer.id]);
    });

    it('a job request published as a CloudEvent: its outputs, and a completion event valid against the shipped schema', async () => {
      const service = running?.service ?? (await start());
      await server.client.putObject(bucket, 'requested/b.jpg', fixtureBytes('Landscape_6.jpg'));
      // Its notification comes through the queue too: the request names the same version, and the ledger makes the two one job.
      await trigger.publish({
        specversion: '1.0', id: 'req-1', source: 'test', type: 'dev.mediaflow.job.requested.v1',
        data: { pipeline: 'uploads', path: 'requested/b.jpg' },
      });
      const manifest = await waitFor('the manifest', async () => JSON.parse((await readObject(server.client, bucket, 'derived/requested/b/manifest.json')).toString('utf8')), 60_000);
      expect(eventSchemaErrors(manifest)).toEqual([]);
      expect(manifest).toMatchObject({ type: 'dev.mediaflow.input.completed.v1', data: { state: 'done', input: { key: 'requested/b.jpg' } } });
      await service.idle();
      expect((await service.ledger.jobsOfVersion('uploads', `bucket:${bucket}`, 'requested/b.jpg', manifest.data.input.version))).toHaveLength(1);
    });
  });
}

describeRabbitmq('AMQP trigger, end to end (real MinIO, real RabbitMQ)', () => endToEnd(amqpTrigger));
describeNats('NATS JetStream trigger, end to end (real MinIO, real NATS)', () => endToEnd(natsTrigger));
