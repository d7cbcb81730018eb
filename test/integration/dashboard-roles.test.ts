/**
 * The dashboard in a scaled-out setup: a sources process and a worker on a
 * shared PostgreSQL ledger and BullMQ queue. The worker's dashboard watches
 * no folder and queues nothing, yet shows every job, the shared queue and the
 * attempts the worker recorded; a retry clicked there is queued by the
 * sources process and run by the worker.
 */
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { buildHttpServer } from '../../src/http/server.js';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { Metrics } from '../../src/metrics.js';
import { openQueue } from '../../src/queue/open.js';
import { Service, type Role } from '../../src/service.js';
import { fixture } from '../helpers/fixtures.js';
import { describePostgres, testSchema } from '../helpers/postgres.js';
import { describeRedis, testPrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'roles-token-0123456789';

describePostgres('dashboard across roles (real PostgreSQL)', () => {
  describeRedis('dashboard across roles (real Redis)', () => {
    let ws: ReturnType<typeof workspace>;
    let cleanups: (() => Promise<void>)[] = [];
    beforeEach(() => { ws = workspace('mf-dash-roles-'); });
    afterEach(async () => {
      for (const c of cleanups.reverse()) await c();
      cleanups = [];
      ws.cleanup();
    });

    async function process(role: Role, ledgerUrl: string, queueUrl: string): Promise<{ service: Service; app: FastifyInstance }> {
      const queue = (await openQueue({ url: queueUrl, concurrency: 2, highWaterMark: 50, lockMs: 2000 }))!;
      const ledger = await PostgresLedger.connect({ url: ledgerUrl });
      const service = new Service({ pipelines: [ws.pipeline({ name: 'photos' })], dataDir: path.join(ws.data, role), ledger, queue, role, pollMs: 100, highWaterMark: 50 });
      const app = buildHttpServer(service, { token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }), rateLimit: false });
      await service.start();
      cleanups.push(async () => { await app.close(); await service.stop(); });
      return { service, app };
    }

    it('the worker\'s dashboard shows the shared picture, and its retry goes through the sources process to a worker', async () => {
      const schema = testSchema();
      const prefix = testPrefix();
      cleanups.push(() => schema.drop(), () => prefix.drop());
      await process('sources', schema.url, prefix.url);
      const worker = await process('worker', schema.url, prefix.url);
      const api = async (method: 'GET' | 'POST', url: string) => {
        const res = await worker.app.inject({ method, url, headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.statusCode, res.body).toBeLessThan(300);
        return res.json();
      };
      copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
      copyFileSync(fixture('truncated.jpg'), path.join(ws.inbox, 'broken.jpg'));
      const jobs = await waitFor('both ended, seen from the worker', async () => {
        const { jobs: list } = await api('GET', '/v1/jobs');
        return list.length === 2 && list.every((j: { state: string }) => j.state === 'done' || j.state === 'dead') && list;
      });
      const broken = jobs.find((j: { input: { key: string } }) => j.input.key === 'broken.jpg');
      expect(broken).toMatchObject({ state: 'dead', attemptLog: [{ outcome: 'dead', error: expect.stringMatching(/broken\.jpg/) }] });
      const overview = await api('GET', '/v1/overview');
      expect(overview).toMatchObject({ role: 'worker', queue: { highWaterMark: 50 }, pipelines: [{ name: 'photos', counts: { done: 1, dead: 1 } }] });
      // The output is read from the store the ledger names, whichever process wrote it.
      const done = jobs.find((j: { state: string }) => j.state === 'done');
      expect((await worker.app.inject({ url: `/v1/jobs/${done.id}/outputs/0`, headers: { authorization: `Bearer ${TOKEN}` } })).headers['content-type']).toBe('image/png');

      expect(await api('POST', `/v1/pipelines/photos/retry`)).toEqual({ retried: 1 });
      await waitFor('the retry ran on the worker', async () => (await api('GET', `/v1/jobs/${broken.id}`)).attemptLog.length === 2, 30_000);
    });
  });
});
