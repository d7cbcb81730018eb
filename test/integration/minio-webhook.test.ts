import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import * as Minio from 'minio';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Completion } from '../../src/completion/completion.js';
import type { MediaEvent } from '../../src/events/media-event.js';
import { buildHttpServer } from '../../src/http/server.js';
import { Metrics } from '../../src/metrics.js';
import { Service } from '../../src/service.js';
import { fixtureBytes } from '../helpers/fixtures.js';
import { describeMinio, minioEnv, startMinio, stopMinio, uniqueBucket, type MinioServer } from '../helpers/minio.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = `webhook-${randomUUID()}`;
/** Space, '+', '%' and unicode: MinIO's webhook sends it query-escaped, and it must come out as stored. */
const KEY = 'trip 1/a+b 100% été.jpg';

interface Seen { method: string; url: string; status: number; authorization?: string; body?: { accepted: number; ignored: { reason: string }[] } }

describeMinio('MinIO webhook target -> POST /v1/events (real MinIO)', () => {
  let ws: ReturnType<typeof workspace>;
  let server: MinioServer;
  let service: Service;
  let completion: Completion;
  let app: FastifyInstance;
  let url: string;
  const bucket = uniqueBucket('webhook');
  const refused = uniqueBucket('webhook-refused');
  const seen: Seen[] = [];
  const events: MediaEvent[] = [];
  // The service reads MINIO_* at its first bucket access, so this is completed once MinIO is up.
  const env: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    ws = workspace('mf-webhook-');
    const pipeline = ws.pipeline({
      name: 'uploads',
      source: { type: 'bucket', bucket, exclude: ['derived/**'] },
      output: { type: 'bucket', bucket, prefix: 'derived/' },
      manifest: {},
    });
    // Not started: only the webhook feeds this service (no listen-API source, no catch-up listing).
    service = new Service({ pipelines: [pipeline], dataDir: ws.data, concurrency: 2, env });
    service.on('event', (e: MediaEvent) => events.push(e));
    completion = new Completion(service);
    app = buildHttpServer(service, { token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }) });
    app.addHook('onSend', async (req, reply, payload) => {
      let body;
      try { body = typeof payload === 'string' && payload ? JSON.parse(payload) : undefined; } catch { /* not JSON */ }
      seen.push({ method: req.method, url: req.url, status: reply.statusCode, authorization: req.headers.authorization, body });
      return payload;
    });
    // Listening first: MinIO checks its webhook targets when it starts.
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    server = await startMinio({ env: {
      MINIO_NOTIFY_WEBHOOK_ENABLE_MEDIAFLOW: 'on',
      MINIO_NOTIFY_WEBHOOK_ENDPOINT_MEDIAFLOW: `${url}/v1/events`,
      MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_MEDIAFLOW: TOKEN,
      // A second target with the wrong token, to see the endpoint refuse MinIO itself.
      MINIO_NOTIFY_WEBHOOK_ENABLE_WRONGTOKEN: 'on',
      MINIO_NOTIFY_WEBHOOK_ENDPOINT_WRONGTOKEN: `${url}/v1/events`,
      MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_WRONGTOKEN: `${TOKEN}-not`,
    } });
    Object.assign(env, minioEnv(server));
    for (const [name, target] of [[bucket, 'MEDIAFLOW'], [refused, 'WRONGTOKEN']] as const) {
      await server.client.makeBucket(name);
      const config = new Minio.NotificationConfig();
      const queue = new Minio.QueueConfig(`arn:minio:sqs::${target}:webhook`);
      queue.addEvent(Minio.ObjectCreatedAll);
      queue.addEvent(Minio.ObjectRemovedAll);
      config.add(queue);
      // MinIO can answer requests before it has loaded its webhook targets; until then it calls their ARN
      // unknown ("A specified destination ARN does not exist"): ask again until it knows them.
      await waitFor(`MinIO to know target ${target}`, () => server.client.setBucketNotification(name, config).then(() => true), 30_000, 200);
    }
  });

  afterAll(async () => {
    await app?.close();
    await service?.stop();
    await completion?.close();
    await stopMinio(server, [bucket, refused], { ignoreRemoveErrors: true });
    ws?.cleanup();
  });

  it('an upload becomes outputs; the key arrives decoded once; outputs do not come back as inputs', async () => {
    await server.client.putObject(bucket, KEY, fixtureBytes('Portrait_1.jpg'), undefined, { 'Content-Type': 'image/jpeg' });
    const job = await waitFor('job done', async () => (await service.ledger.list('done'))[0], 60_000);
    expect(job).toMatchObject({ pipeline: 'uploads', store: `bucket:${bucket}`, key: KEY, relKey: KEY });
    const thumbKey = 'derived/trip 1/a+b 100% été/thumb.png';
    expect(job.outputs.map((o) => o.key)).toEqual(['trip 1/a+b 100% été/thumb.png']);
    const chunks: Buffer[] = [];
    for await (const c of await server.client.getObject(bucket, thumbKey)) chunks.push(c as Buffer);
    const meta = await sharp(Buffer.concat(chunks)).metadata();
    expect(meta.width).toBe(64);
    expect(meta.height! > meta.width!).toBe(true);

    // The manifest lands next to the outputs, tagged like them.
    const manifest = await waitFor('manifest', async () => {
      const body: Buffer[] = [];
      for await (const c of await server.client.getObject(bucket, 'derived/trip 1/a+b 100% été/manifest.json')) body.push(c as Buffer);
      return JSON.parse(Buffer.concat(body).toString('utf8'));
    });
    expect(manifest.data).toMatchObject({ state: 'done', input: { key: KEY, store: `bucket:${bucket}` } });
    expect(manifest.data.pipelines[0].outputs[0]).toMatchObject({ key: 'trip 1/a+b 100% été/thumb.png', store: `bucket:${bucket}/derived` });
    expect((await server.client.statObject(bucket, 'derived/trip 1/a+b 100% été/manifest.json')).metaData).toMatchObject({ 'mediaflow-output': '1' });

    expect(events.filter((e) => e.type === 'created').map((e) => e.data.key)).toEqual([KEY]);
    expect(events[0]).toMatchObject({ source: `http:bucket:${bucket}`, data: { store: `bucket:${bucket}`, size: fixtureBytes('Portrait_1.jpg').length } });
    // MinIO sent the token it was given; the output's own notification was recognised and skipped.
    const posts = seen.filter((s) => s.method === 'POST' && s.status === 200);
    expect(posts.every((s) => s.authorization === `Bearer ${TOKEN}`)).toBe(true);
    await waitFor('output notification ignored', () => seen.some((s) => s.body?.ignored?.some((i) => i.reason === 'object is a mediaflow output')));
    await service.idle();
    expect((await service.ledger.counts())).toMatchObject({ done: 1, queued: 0, dead: 0 });
  });

  it('MinIO with the wrong token is refused (401) and nothing is queued', async () => {
    await server.client.putObject(refused, 'x.jpg', fixtureBytes('Landscape_1.jpg'));
    await waitFor('a refused POST', () => seen.some((s) => s.method === 'POST' && s.status === 401));
    expect(events.some((e) => e.data.store === `bucket:${refused}`)).toBe(false);
    const direct = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer nope' }, body: '{"Records":[]}' });
    expect(direct.status).toBe(401);
  });

  it('POST /v1/jobs runs a pipeline on any object; a missing object or bucket is a 404', async () => {
    const post = (body: unknown) => fetch(`${url}/v1/jobs`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body),
    });
    // x.jpg sits in a bucket no notification reaches us from: only the request starts it.
    const res = await post({ pipeline: 'uploads', bucket: refused, key: 'x.jpg' });
    expect(res.status).toBe(202);
    const { id } = await res.json() as { id: number };
    const job = await waitFor('job done', async () => {
      const j = await (await fetch(`${url}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { state: string };
      return j.state === 'done' && j;
    });
    expect(job).toMatchObject({ input: { store: `bucket:${refused}`, key: 'x.jpg' }, outputs: [expect.objectContaining({ key: 'x/thumb.png' })] });
    expect((await post({ pipeline: 'uploads', bucket: refused, key: 'missing.jpg' })).status).toBe(404);
    expect((await post({ pipeline: 'uploads', bucket: uniqueBucket('absent'), key: 'x.jpg' })).status).toBe(404);
    expect((await post({ pipeline: 'uploads', path: KEY })).status).toBe(202); // path: relative to the source bucket
  });
});
