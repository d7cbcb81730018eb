/**
 * HTTP under abuse, against the real `mediaflow run --port 0` with a token:
 * no token, wrong token, oversized and endless bodies, malformed JSON, and a
 * bounded flood of mixed requests on loopback. Right status codes, bounded
 * memory, and the service still takes work afterwards.
 */
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { ledgerRows, RunningService, smallJpeg, writePipeline, suiteReports } from './harness.js';

const TOKEN = 'reliability-token-5f1c0d6e';
const RSS_BOUND_MB = 400;
const FLOOD = 5000;
const FLOOD_CONCURRENCY = 64;

const reports = suiteReports('http');

interface Answer { status: number; body: string; headers: http.IncomingHttpHeaders }

/**
 * One request with node:http, so the test controls the body exactly (length,
 * chunking) and sees the status even when the server answers before the
 * body is sent. `body` may be a function that streams chunks until told to stop.
 */
type BodySender = (write: (chunk: Buffer) => Promise<boolean>, answered: (withinMs: number) => Promise<boolean>) => Promise<void>;

function request(url: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer | BodySender } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    let answered = false;
    req.on('response', () => { answered = true; });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    if (typeof o.body === 'function') {
      // Resolves false once the server has answered (or gone): the sender stops there.
      const write = async (chunk: Buffer): Promise<boolean> => {
        if (answered || req.destroyed) return false;
        if (!req.write(chunk)) {
          await new Promise<void>((r) => {
            const done = () => { req.off('drain', done); req.off('response', done); req.off('close', done); r(); };
            req.on('drain', done); req.on('response', done); req.on('close', done);
          });
        }
        return !answered && !req.destroyed;
      };
      const answeredWithin = async (ms: number): Promise<boolean> => {
        req.flushHeaders();
        const deadline = Date.now() + ms;
        while (!answered && !req.destroyed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        return answered || req.destroyed;
      };
      void o.body(write, answeredWithin).then(() => req.end(), () => req.end());
    } else {
      req.end(o.body);
    }
  });
}

/** A body sent 64 KiB at a time that stops as soon as the server answers (which may be before it is read). */
/**
 * A body with a Content-Length that waits a little for an early answer (a 401
 * or 413 on the headers alone) before it is sent, 64 KiB at a time, stopping
 * as soon as the server answers. Sending it all at once would race the
 * server's early answer and close (EPIPE on the client, answer never read).
 */
const sentUntilAnswered = (data: Buffer) => async (write: (chunk: Buffer) => Promise<boolean>, answered: (withinMs: number) => Promise<boolean>): Promise<void> => {
  if (await answered(2000)) return;
  for (let at = 0; at < data.length; at += 64 * 1024) if (!(await write(data.subarray(at, at + 64 * 1024)))) return;
};

const json = (a: Answer) => JSON.parse(a.body) as { error?: string; message?: string; id?: number; state?: string };

describe('HTTP endpoint under abuse (mediaflow run --port 0, MEDIAFLOW_TOKEN set)', () => {
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService;
  let url: string;
  const auth = { authorization: `Bearer ${TOKEN}` };

  beforeEach(async () => {
    ws = workspace('mf-http-');
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 },
      steps: [{ id: 'thumb', use: 'thumbnail', width: 24, format: 'png' }], output: { type: 'folder', path: './out' },
    });
    writeFileSync(path.join(ws.inbox, 'a.jpg'), await smallJpeg(1));
    // Off here: these measure the handlers under abuse, and the flood would be cut at 300 per 10 s. The limit has its own tests below.
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0', '--rate-limit', 'off'], ws.root, { MEDIAFLOW_TOKEN: TOKEN });
    await svc.ready();
    url = svc.url!;
  });
  afterEach(async () => {
    svc.kill('SIGKILL');
    await svc.exited();
    ws.cleanup();
  });

  it('no token, wrong token, oversized and endless bodies, malformed JSON: the right status, the right error', async () => {
    const seen: Record<string, string> = {};
    const check = async (name: string, a: Promise<Answer>, status: number, error?: string) => {
      const answer = await a;
      expect({ name, status: answer.status }).toEqual({ name, status });
      const body = json(answer);
      expect(body.message, name).toEqual(expect.any(String));
      if (error) expect(body.error, name).toBe(error);
      seen[name] = `${answer.status} ${body.error}`;
      return answer;
    };
    const jobBody = JSON.stringify({ pipeline: 'photos', path: 'a.jpg' });

    const none = await check('no token', request(`${url}/v1/jobs/1`), 401, 'E_UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    await check('wrong token', request(`${url}/v1/jobs/1`, { headers: { authorization: 'Bearer nope' } }), 401, 'E_UNAUTHORIZED');
    await check('token as Basic', request(`${url}/v1/jobs/1`, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } }), 401, 'E_UNAUTHORIZED');
    await check('token with a suffix', request(`${url}/v1/jobs/1`, { headers: { authorization: `Bearer ${TOKEN}x` } }), 401, 'E_UNAUTHORIZED');
    await check('no token, POST with a body', request(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: jobBody }), 401, 'E_UNAUTHORIZED');
    await check('right token, unknown job', request(`${url}/v1/jobs/999999`, { headers: auth }), 404, 'E_NOT_FOUND');
    await check('right token, job id not a number', request(`${url}/v1/jobs/..%2F..%2Fetc`, { headers: auth }), 404, 'E_NOT_FOUND');

    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    big.write('{"pipeline":"photos","path":"a.jpg","pad":"');
    big.write('"}', big.length - 2);
    const length = { 'content-type': 'application/json', 'content-length': String(big.length) };
    await check('2 MiB body, right token', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, ...length }, body: sentUntilAnswered(big) }), 413);
    // No token: refused before the body is read.
    await check('2 MiB body, no token', request(`${url}/v1/jobs`, { method: 'POST', headers: length, body: sentUntilAnswered(big) }), 401, 'E_UNAUTHORIZED');
    // A chunked body with no length that never ends: cut off at the limit, not read to the end.
    let streamed = 0;
    await check('endless chunked body', request(`${url}/v1/events`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: async (write) => {
        await write(Buffer.from('{"Records":["'));
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        // Paced (1 ms between chunks) so the client reads the server's early answer before its next write hits the closed socket.
        while (streamed < 256 * 1024 * 1024 && (await write(chunk))) {
          streamed += chunk.length;
          await new Promise((r) => setTimeout(r, 1));
        }
      },
    }), 413);
    expect(streamed).toBeLessThan(64 * 1024 * 1024);

    await check('malformed JSON', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"pipeline": "photos", "path": ' }), 400);
    await check('empty JSON body', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '' }), 400);
    await check('JSON of the wrong shape', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '[1,2,3]' }), 400, 'E_REQUEST');
    await check('__proto__ in the body', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"__proto__":{"polluted":1},"pipeline":"photos","path":"a.jpg"}' }), 400);
    await check('deeply nested JSON', request(`${url}/v1/events`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` }), 400);
    await check('text/plain body', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'hello' }), 400, 'E_REQUEST');
    await check('XML body', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/xml' }, body: '<job/>' }), 415);
    await check('events without Records', request(`${url}/v1/events`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"Records":"nope"}' }), 400, 'E_REQUEST');
    await check('unknown pipeline', request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"pipeline":"nope","path":"a.jpg"}' }), 404, 'E_PIPELINE_UNKNOWN');

    const ok = await request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: jobBody });
    expect(ok.status).toBe(202);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(svc.alive).toBe(true);
    expect((await request(`${url}/healthz`)).status).toBe(200);
    reports.abuse = { ...seen, endlessBodyBytesSentBeforeCutOff: streamed };
  }, 60_000);

  it(`a flood of ${FLOOD} mixed requests (${FLOOD_CONCURRENCY} at a time): right codes, bounded memory, still working`, async () => {
    const before = svc.memory();
    const jobBody = JSON.stringify({ pipeline: 'photos', path: 'a.jpg' });
    const oversized = Buffer.alloc(1024 * 1024 + 1024, 0x20);
    const kinds: { name: string; expect: number; send: () => Promise<Answer> }[] = [
      { name: 'healthz', expect: 200, send: () => request(`${url}/healthz`) },
      { name: 'no token', expect: 401, send: () => request(`${url}/v1/jobs/1`) },
      { name: 'wrong token', expect: 401, send: () => request(`${url}/v1/jobs/1`, { headers: { authorization: 'Bearer wrong' } }) },
      { name: 'malformed JSON', expect: 400, send: () => request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"pipeline":' }) },
      { name: 'oversized body', expect: 413, send: () => request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': String(oversized.length) }, body: sentUntilAnswered(oversized) }) },
      { name: 'job request (same file)', expect: 202, send: () => request(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: jobBody }) },
      { name: 'metrics', expect: 200, send: () => request(`${url}/metrics`) },
      { name: 'unknown route', expect: 404, send: () => request(`${url}/nope/${'x'.repeat(2000)}`) },
    ];
    const counts = new Map<string, number>();
    const failures: string[] = [];
    let next = 0;
    const started = Date.now();
    let peakDuring = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= FLOOD) return;
        const kind = kinds[i % kinds.length]!;
        try {
          const a = await kind.send();
          const key = `${kind.name} -> ${a.status}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
          if (a.status !== kind.expect) failures.push(`${key}: ${a.body.slice(0, 200)}`);
        } catch (err) {
          failures.push(`${kind.name}: ${(err as Error).message}`);
        }
        if (i % 200 === 0) peakDuring = Math.max(peakDuring, svc.memory().rssMb);
      }
    };
    await Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, worker));
    const seconds = (Date.now() - started) / 1000;

    expect(failures.slice(0, 20)).toEqual([]);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(FLOOD);
    const { rssMb, peakMb } = svc.memory();
    expect(peakMb).toBeLessThan(RSS_BOUND_MB);
    // Still serving, still working: the requested job is done (once), and a new file is processed.
    expect(svc.alive).toBe(true);
    expect((await request(`${url}/healthz`)).status).toBe(200);
    writeFileSync(path.join(ws.inbox, 'after.jpg'), await smallJpeg(2));
    await waitFor('a.jpg and after.jpg done', () => {
      const rows = ledgerRows(ws.data);
      return ['a.jpg', 'after.jpg'].every((k) => rows.some((r) => r.key === k && r.state === 'done')) ? rows : null;
    }, 30_000);
    expect(ledgerRows(ws.data).filter((r) => r.key === 'a.jpg')).toHaveLength(1); // ~375 requests for it, one job
    expect(await svc.stop()).toBe(0);
    reports.flood = {
      requests: FLOOD, concurrency: FLOOD_CONCURRENCY, seconds: Math.round(seconds * 10) / 10, requestsPerSecond: Math.round(FLOOD / seconds),
      statuses: Object.fromEntries([...counts].sort()), rssBeforeMb: Math.round(before.rssMb), rssAfterMb: Math.round(rssMb),
      peakRssMb: Math.round(peakMb), sampledRssDuringMb: Math.round(peakDuring),
    };
  }, 120_000);
});

describe('rate limit on /v1/* (mediaflow run, defaults and --rate-limit)', () => {
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | undefined;
  const start = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    svc = new RunningService(['--data', 'data', '--port', '0', ...args], ws.root, { MEDIAFLOW_TOKEN: TOKEN, ...env });
    await svc.ready();
    return svc.url!;
  };

  beforeEach(() => {
    ws = workspace('mf-http-rl-');
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 },
      steps: [{ id: 'thumb', use: 'thumbnail', width: 24, format: 'png' }], output: { type: 'folder', path: './out' },
    });
  });
  afterEach(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    svc = undefined;
    ws.cleanup();
  });

  it('by default, 500 token guesses at once from one address: 300 get 401, 200 get 429 with Retry-After; /healthz still answers', async () => {
    const url = await start([]);
    const answers: Answer[] = [];
    let next = 0;
    // 500 on loopback take well under a second, inside the 10 s window.
    const worker = async () => { while (next++ < 500) answers.push(await request(`${url}/v1/jobs/1`, { headers: { authorization: `Bearer guess-${next}` } })); };
    await Promise.all(Array.from({ length: 25 }, worker));
    const counts: Record<number, number> = {};
    for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
    expect(counts).toEqual({ 401: 300, 429: 200 });
    const limited = answers.find((a) => a.status === 429)!;
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter >= 1 && retryAfter <= 10).toBe(true);
    expect(json(limited)).toEqual({ error: 'E_RATE_LIMITED', message: expect.stringMatching(new RegExp(`^rate limit 300/10s: .*retry in ${retryAfter} s`)) });
    // The right token from the same address waits too; probes do not.
    expect((await request(`${url}/v1/jobs/1`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(429);
    expect((await request(`${url}/healthz`)).status).toBe(200);
    expect((await request(`${url}/metrics`)).status).toBe(200);
    expect(svc!.alive).toBe(true);
    reports.rateLimitDefault = { requests: 500, statuses: counts, retryAfter };
  }, 60_000);

  it('--rate-limit wins over MEDIAFLOW_RATE_LIMIT; MEDIAFLOW_RATE_LIMIT=off turns it off', async () => {
    let url = await start(['--rate-limit', '4/1m'], { MEDIAFLOW_RATE_LIMIT: 'off' });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(`${url}/v1/jobs/1`)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
    svc!.kill('SIGKILL');
    await svc!.exited();

    url = await start([], { MEDIAFLOW_RATE_LIMIT: 'off' });
    const answers = await Promise.all(Array.from({ length: 400 }, () => request(`${url}/v1/jobs/1`)));
    expect(answers.filter((a) => a.status !== 401)).toEqual([]);
  }, 60_000);
});
