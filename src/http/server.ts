import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { MediaflowError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { Metrics } from '../metrics.js';
import type { Service } from '../service.js';
import { readJobRequest } from '../events/event-schema.js';
import { BadRequest } from '../events/job-request.js';
import { jobView, statusOf } from './jobs.js';
import { DEFAULT_RATE_LIMIT, formatRateLimit, formatWindow, type RateLimit } from './rate-limit.js';
import { NotS3EventsError, s3RecordsToEvents } from '../events/s3-records.js';
import { registerDashboardPage } from '../dashboard/page.js';
import { registerDashboardApi } from '../dashboard/routes.js';

export interface HttpOptions {
  /** Bearer token for /v1/* (MEDIAFLOW_TOKEN). Unset: /v1/* is open, which listenHttp allows on loopback only. */
  token?: string;
  logger?: Logger;
  /** Largest request body in bytes; larger ones get 413. @default 1048576 (1 MiB) */
  bodyLimit?: number;
  /** Shares the service's metrics with the caller; a new set is made when absent. */
  metrics?: Metrics;
  /** Requests to /v1/* per client address (req.ip) and window; past it 429 with Retry-After. false: no limit. @default DEFAULT_RATE_LIMIT (300 per 10 s) */
  rateLimit?: RateLimit | false;
  /** The pipeline files and folders the service was started with (`run --pipelines`): the dashboard checks them again. */
  pipelinePaths?: string[];
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Hash both sides first: timingSafeEqual needs equal lengths, and the hash hides the token's length. */
function tokenMatches(given: string, token: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function errorBody(code: string, message: string) {
  return { error: code, message };
}

/** Thrown by the limiter's hook so the error handler answers it in the service's error shape. */
class RateLimited extends Error {
  readonly code = 'E_RATE_LIMITED';
  readonly statusCode = 429;
}

/**
 * The HTTP endpoint: S3/MinIO event records in, job requests, job state,
 * health, metrics and the dashboard (docs/HTTP.md). Errors answer
 * `{ error, message }` with a 4xx for anything the caller can fix; nothing a
 * request sends can stop the service.
 */
export function buildHttpServer(service: Service, o: HttpOptions = {}): FastifyInstance {
  const logger = (o.logger ?? silentLogger).child({ part: 'http' });
  const metrics = o.metrics ?? new Metrics(service);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: o.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Probes and scrapes every few seconds would drown the log at info.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  if (!o.metrics) app.addHook('onClose', async () => metrics.close());

  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = statusOf(err);
    if (status >= 500 && status !== 503) {
      req.log.error({ err, method: req.method, url: req.url }, 'request failed');
      return reply.code(500).send(errorBody('E_INTERNAL', 'internal error (see the service log)'));
    }
    const code = err instanceof MediaflowError || err instanceof BadRequest ? err.code : err.code ?? 'E_REQUEST';
    return reply.code(status).send(errorBody(code, err.message));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody('E_NOT_FOUND', `no route ${req.method} ${req.url}`)));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const sources = service.sources.map((s) => ({ name: s.name, ready: s.ready }));
    // Both asked at once: a ledger or queue that cannot be reached fails readiness within its own timeout.
    const [ledger, queue] = await Promise.all([service.ledger.ping().catch(() => false), service.queue.ping().catch(() => false)]);
    const ready = ledger && queue && sources.every((s) => s.ready);
    return reply.code(ready ? 200 : 503).send({ ready, ledger, queue, role: service.role, sources });
  });

  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));

  registerDashboardPage(app);

  // Everything under /v1 needs the token; checked before the body is read, so a
  // stranger cannot make the service parse a large body.
  void app.register(async (v1) => {
    const limit = o.rateLimit ?? DEFAULT_RATE_LIMIT;
    if (limit) {
      // global: false and an instance hook rather than the plugin's own per-route
      // hooks: fastify runs route hooks after instance hooks, so those would
      // come after the token check and a 401 would never be counted.
      await v1.register(rateLimit, {
        global: false,
        max: limit.max,
        timeWindow: limit.windowMs,
        // The same rounding as the plugin's Retry-After header, so the two agree.
        errorResponseBuilder: (_req, ctx) => new RateLimited(
          `rate limit ${formatRateLimit(limit)}: more than ${limit.max} requests to /v1 in ${formatWindow(limit.windowMs)} from this address; retry in ${Math.ceil(ctx.ttl / 1000)} s (Retry-After)`),
      });
      v1.addHook('onRequest', v1.rateLimit());
    }
    v1.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      if (!o.token) return;
      const header = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(header);
      if (!m || !tokenMatches(m[1]!.trim(), o.token)) {
        return reply.code(401).header('www-authenticate', 'Bearer realm="mediaflow"')
          .send(errorBody('E_UNAUTHORIZED', m ? 'wrong bearer token' : 'missing "Authorization: Bearer <MEDIAFLOW_TOKEN>" header'));
      }
    });

    // MinIO checks that a webhook target is up with a HEAD on its endpoint.
    v1.head('/v1/events', async (_req, reply) => reply.code(200).send());

    v1.post('/v1/events', async (req, reply) => {
      let parsed;
      try {
        parsed = s3RecordsToEvents(req.body);
      } catch (err) {
        if (err instanceof NotS3EventsError) throw new BadRequest(err.message);
        throw err;
      }
      for (const i of parsed.ignored) req.log.debug({ record: i.record, reason: i.reason }, 'event record ignored');
      // accept() waits while the queue is over its high-water mark: backpressure reaches the sender.
      for (const event of parsed.events) await service.accept(event);
      return reply.code(200).send({ accepted: parsed.events.length, ignored: parsed.ignored });
    });

    v1.post('/v1/jobs', async (req, reply) => {
      const job = await service.intake.request(readJobRequest(req.body)); // bare, or a CloudEvent (docs/EVENTS.md)
      return reply.code(202).header('location', `/v1/jobs/${job.id}`).send({ id: job.id, state: job.state, pipeline: job.pipeline });
    });

    v1.get('/v1/jobs/:id', async (req, reply) => {
      const raw = (req.params as { id: string }).id;
      const id = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
      const job = Number.isSafeInteger(id) ? await service.ledger.get(id) : null;
      if (!job) return reply.code(404).send(errorBody('E_NOT_FOUND', `no job ${JSON.stringify(raw)}`));
      return reply.send(jobView(job));
    });

    registerDashboardApi(v1, service, { pipelinePaths: o.pipelinePaths });
  });

  return app;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host === '::1';
}

export interface HttpServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 (the real port when 0 was asked for). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Without a token the endpoint listens on loopback only: on any other address
 * anyone who can reach it could queue work. Checked before anything starts.
 */
export function checkHttpConfig(host: string, token: string | undefined): void {
  if (!token && !isLoopback(host)) {
    throw new MediaflowError('E_CONFIG', `MEDIAFLOW_TOKEN is not set: refusing to serve HTTP on ${host}; set a token, or bind to 127.0.0.1 (--host)`);
  }
}

/** Starts the endpoint (see checkHttpConfig). */
export async function listenHttp(service: Service, o: HttpOptions & { host: string; port: number }): Promise<HttpServer> {
  checkHttpConfig(o.host, o.token);
  const app = buildHttpServer(service, o);
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await app.close().catch(() => {});
    const e = err as NodeJS.ErrnoException;
    throw new MediaflowError('E_CONFIG', `cannot listen on ${o.host}:${o.port}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message} (--port / MEDIAFLOW_PORT, --host)`);
  }
  const address = app.server.address() as net.AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  const log = (o.logger ?? silentLogger);
  if (!o.token) log.warn({ url }, 'MEDIAFLOW_TOKEN is not set: /v1 endpoints accept requests without a token (loopback only)');
  log.info({ url, rateLimit: formatRateLimit(o.rateLimit ?? DEFAULT_RATE_LIMIT) }, 'http listening');
  return { app, url, port: address.port, close: () => app.close() };
}
