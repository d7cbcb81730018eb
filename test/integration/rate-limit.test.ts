/**
 * Per-client rate limit on /v1/*: counted before the token check, answered in
 * the service's error shape with Retry-After, off when asked, and the
 * MAX/WINDOW syntax shared by `--rate-limit` and MEDIAFLOW_RATE_LIMIT.
 * Date is faked where a window matters, so no assertion waits on the clock.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_RATE_LIMIT, formatRateLimit, parseRateLimit } from '../../src/http/rate-limit.js';
import { buildHttpServer, type HttpOptions } from '../../src/http/server.js';
import { Metrics } from '../../src/metrics.js';
import { Service } from '../../src/service.js';
import { mediaflow } from '../helpers/cli.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'rate-limit-token-7d2e';
const auth = { authorization: `Bearer ${TOKEN}` };
const wrong = { authorization: 'Bearer guess' };

let ws: ReturnType<typeof workspace>;
let service: Service | undefined;
let app: FastifyInstance | undefined;

function setup(o: HttpOptions = {}): FastifyInstance {
  service = new Service({ pipelines: [ws.pipeline({})], dataDir: ws.data, concurrency: 1, pollMs: 50 });
  app = buildHttpServer(service, { token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }), ...o });
  return app;
}

const get = (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
  app!.inject({ method: 'GET', url: '/v1/jobs/999', headers, remoteAddress });

function expectLimited(res: LightMyRequestResponse, limit: string): number {
  expect(res.statusCode).toBe(429);
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  expect(res.json()).toEqual({ error: 'E_RATE_LIMITED', message: expect.stringContaining(`rate limit ${limit}`) });
  expect(res.json().message).toContain(`retry in ${retryAfter} s`);
  return retryAfter;
}

beforeEach(() => {
  ws = workspace('mf-ratelimit-');
  vi.useFakeTimers({ toFake: ['Date'] });
});
afterEach(async () => {
  vi.useRealTimers();
  await app?.close();
  await service?.stop();
  app = undefined;
  service = undefined;
  ws.cleanup();
});

describe('rate limit on /v1/*', () => {
  it('past the limit: 429 with Retry-After and { error: E_RATE_LIMITED }, per address; probes and metrics are not limited; the next window lets it in', async () => {
    setup({ rateLimit: { max: 5, windowMs: 60_000 } });
    for (let i = 0; i < 5; i++) {
      const res = await get(auth);
      expect(res.statusCode).toBe(404);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(4 - i));
    }
    const retryAfter = expectLimited(await get(auth), '5/1m');
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(expectLimited(await get(auth), '5/1m')).toBe(retryAfter); // Date is frozen: the same wait
    // Every /v1 route, and a body is not read once the limit is reached.
    expectLimited(await app!.inject({ method: 'POST', url: '/v1/jobs', headers: auth, payload: { pipeline: 'test', path: 'a.jpg' } }), '5/1m');
    expectLimited(await app!.inject({ method: 'POST', url: '/v1/events', headers: auth, payload: 'x'.repeat(2 * 1024 * 1024) }), '5/1m');
    const head = await app!.inject({ method: 'HEAD', url: '/v1/events', headers: auth }); // MinIO's liveness check: no body
    expect([head.statusCode, head.headers['retry-after']]).toEqual([429, String(retryAfter)]);

    for (const url of ['/healthz', '/readyz', '/metrics']) {
      for (let i = 0; i < 10; i++) expect((await app!.inject(url)).statusCode, url).not.toBe(429);
      expect((await app!.inject(url)).headers['x-ratelimit-limit'], url).toBeUndefined();
    }
    expect((await get(auth, '10.0.0.7')).statusCode).toBe(404); // another client has its own count

    vi.setSystemTime(Date.now() + retryAfter * 1000);
    expect((await get(auth)).statusCode).toBe(404);
  });

  it('wrong and missing tokens are counted: a guesser gets 429 instead of 401 past the limit, and so does the right token from its address', async () => {
    setup({ rateLimit: { max: 3, windowMs: 10_000 } });
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) answers.push((await get(i % 2 ? wrong : {})).statusCode);
    expect(answers).toEqual([401, 401, 401, 429, 429, 429]);
    const guess = await get(wrong);
    expectLimited(guess, '3/10s');
    expect(guess.headers['www-authenticate']).toBeUndefined(); // not told whether the guess was right
    expectLimited(await get(auth), '3/10s');
    expect((await get(auth, '10.0.0.8')).statusCode).toBe(404);
  });

  it('the default when HttpOptions leave it out: 500 requests from one address, 300 answered, 200 refused with 429', async () => {
    setup();
    const counts: Record<number, number> = {};
    let retryAfter = '';
    for (let i = 0; i < 500; i++) {
      const res = await get(i % 3 ? wrong : auth);
      counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 429) retryAfter = String(res.headers['retry-after']);
    }
    expect(DEFAULT_RATE_LIMIT).toEqual({ max: 300, windowMs: 10_000 });
    expect(counts).toEqual({ 401: 200, 404: 100, 429: 200 });
    expect(Number(retryAfter)).toBe(10); // Date is frozen: the whole window is left
  });

  it('rateLimit: false never answers 429', async () => {
    setup({ rateLimit: false });
    for (let i = 0; i < 500; i++) {
      const res = await get(i % 2 ? wrong : auth);
      expect(res.statusCode).toBe(i % 2 ? 401 : 404);
      expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    }
  });
});

describe('--rate-limit / MEDIAFLOW_RATE_LIMIT syntax', () => {
  it('parses MAX/WINDOW, and 0 or off', () => {
    expect(parseRateLimit('300/10s')).toEqual({ max: 300, windowMs: 10_000 });
    expect(parseRateLimit('50/s')).toEqual({ max: 50, windowMs: 1000 });
    expect(parseRateLimit(' 1000 / 1m ')).toEqual({ max: 1000, windowMs: 60_000 });
    expect(parseRateLimit('20/500ms')).toEqual({ max: 20, windowMs: 500 });
    expect(parseRateLimit('5000/1.5H')).toEqual({ max: 5000, windowMs: 5_400_000 });
    expect(parseRateLimit('0')).toBe(false);
    expect(parseRateLimit('off')).toBe(false);
    expect(parseRateLimit('OFF')).toBe(false);
    for (const v of ['300/10s', '50/1s', '1000/1m', '20/500ms', '7/2h']) expect(formatRateLimit(parseRateLimit(v))).toBe(v);
    expect(formatRateLimit(false)).toBe('off');
    expect(formatRateLimit(DEFAULT_RATE_LIMIT)).toBe('300/10s');
  });

  it('refuses anything else with E_CONFIG naming the option, what it expects and what it found', () => {
    for (const v of ['', '300', '300/10', '300/10x', '0/10s', '-1/10s', '1.5/10s', '300/0s', '300/0.0001ms', 'ten/10s', 'on', '300/10s/2', '99999999999999999999/1s']) {
      let err: unknown;
      try { parseRateLimit(v); } catch (e) { err = e; }
      expect(err, JSON.stringify(v)).toMatchObject({ code: 'E_CONFIG' });
      const message = (err as Error).message;
      expect(message).toContain('`--rate-limit` / `MEDIAFLOW_RATE_LIMIT`');
      expect(message).toContain('MAX/WINDOW');
      expect(message).toContain(`got \`${v}\``);
    }
  });

  it('mediaflow run: a bad --rate-limit or MEDIAFLOW_RATE_LIMIT exits 1 with that message before starting; --help shows the default', () => {
    const flag = mediaflow(['run', '--data', 'data', '--rate-limit', '300/10 s!'], ws.root);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toMatch(/^mediaflow: Expected `--rate-limit` \/ `MEDIAFLOW_RATE_LIMIT` to be MAX\/WINDOW .* got `300\/10 s!`$/m);
    const env = mediaflow(['run', '--data', 'data'], ws.root, { MEDIAFLOW_RATE_LIMIT: 'lots' });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain('got `lots`');
    const help = mediaflow(['run', '--help'], ws.root).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('--rate-limit <max/window>');
    expect(help).toContain('(default: 300/10s, env: MEDIAFLOW_RATE_LIMIT)');
  });
});
