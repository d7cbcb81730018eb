/**
 * The machine's Redis for the shared-queue tests (MEDIAFLOW_TEST_REDIS,
 * default redis://127.0.0.1:6379). Each test gets a key prefix of its own
 * (mf-test-<random>) and removes its keys afterwards.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describeNeeding } from './needs-server.js';

export const REDIS_URL = process.env.MEDIAFLOW_TEST_REDIS ?? 'redis://127.0.0.1:6379';

let reachable: string | null | undefined;
function unreachable(): string | null {
  if (reachable !== undefined) return reachable;
  const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { Redis } from 'ioredis';
    const r = new Redis(${JSON.stringify(REDIS_URL)}, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    await r.connect(); await r.ping(); r.disconnect();`], { encoding: 'utf8', cwd: process.cwd(), timeout: 10_000 });
  reachable = probe.status === 0 ? null : (probe.stderr.trim().split('\n').filter((l) => /Error/.test(l))[0] ?? `exit ${probe.status}`);
  return reachable;
}

/** describe() for suites that need Redis (see describeNeeding). */
export function describeRedis(name: string, fn: () => void): void {
  const why = unreachable();
  describeNeeding('a Redis server', why === null ? null : `No Redis at ${REDIS_URL}: ${why} (set MEDIAFLOW_TEST_REDIS)`, name, fn);
}

/** A key prefix of its own: the URL to give mediaflow, and drop() to delete every key under it. */
export function testPrefix(base = REDIS_URL): { prefix: string; url: string; drop(): Promise<void> } {
  const prefix = `mf-test-${randomBytes(6).toString('hex')}`;
  const url = new URL(base);
  url.searchParams.set('prefix', prefix);
  return {
    prefix,
    url: url.toString(),
    async drop() {
      const r = new Redis(base, { maxRetriesPerRequest: 1 });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
          if (keys.length) await r.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } finally {
        r.disconnect();
      }
    },
  };
}
