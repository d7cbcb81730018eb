import { expect } from 'vitest';
import type { Job, Ledger } from '../../src/ledger/ledger.js';

/**
 * Every kind of change a job goes through, for the tests of the counts a
 * ledger keeps: new, seen again, started, done with and without dedup,
 * dead, failed, skipped, a newer version beside a running one, superseded,
 * removed, a dead letter retried and done. `by(i)` is the ledger that makes
 * the i-th change (one, or several processes sharing one); `midway` runs
 * after the first two ends. Returns the six jobs of the first versions.
 */
export async function changeEveryWay(by: (i: number) => Ledger, midway: () => Promise<void> = async () => {}): Promise<Job[]> {
  let n = 0;
  const next = () => by(n++);
  const up = async (pipeline: string, key: string, version = 'v1') =>
    (await next().upsert({ pipeline, fingerprint: 'f1', store: 'folder:/in', key, relKey: key, version })).job;
  const jobs: Job[] = [];
  for (let i = 0; i < 6; i++) jobs.push(await up(i % 2 ? 'p' : 'q', `k${i}.jpg`));
  await up('p', 'k1.jpg'); // seen again: no new job
  for (const j of jobs) await next().startAttempt(j.id);
  await next().finish(jobs[0]!.id, { state: 'done', outputs: [], deduplicated: true });
  await next().finish(jobs[1]!.id, { state: 'done', outputs: [], deduplicated: false });
  await midway();
  await next().finish(jobs[2]!.id, { state: 'dead', error: 'corrupt' });
  await next().markFailed(jobs[3]!.id, 'timeout', Date.now() + 60_000);
  await next().finish(jobs[4]!.id, { state: 'skipped', reason: 'an output', sha256: 'ab'.repeat(32) });
  const newer = await up('p', 'k5.jpg', 'v2');
  expect(await next().supersedeOthers(newer)).toBe(0); // k5 v1 is running: not superseded
  await next().markState(jobs[5]!.id, 'superseded');
  await next().markState(jobs[0]!.id, 'removed');
  expect(await next().retryDead()).toBe(1);
  await next().startAttempt(jobs[2]!.id);
  await next().finish(jobs[2]!.id, { state: 'done', outputs: [], deduplicated: true });
  return jobs;
}
