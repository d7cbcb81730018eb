import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';

let dir: string;
let ledger: SqliteLedger;
const job = { pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key: 'a.jpg', relKey: 'a.jpg', version: 'file:1:1' };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mf-ledger-'));
  ledger = new SqliteLedger(dir);
});
afterEach(() => {
  ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SqliteLedger', () => {
  it('finds the same row for the same key version, a new one for a new version', () => {
    const a = ledger.upsert(job);
    const again = ledger.upsert(job);
    const newer = ledger.upsert({ ...job, version: 'file:2:2' });
    expect(a.created).toBe(true);
    expect(again).toMatchObject({ created: false, job: { id: a.job.id } });
    expect(newer.job.id).not.toBe(a.job.id);
  });

  it('moves through running, failed, done and counts attempts', () => {
    const { job: j } = ledger.upsert(job);
    expect(ledger.startAttempt(j.id)?.attempts).toBe(1);
    ledger.markFailed(j.id, 'boom', Date.now() + 1000, 'sha');
    expect(ledger.get(j.id)).toMatchObject({ state: 'failed', error: 'boom', sha256: 'sha' });
    expect(ledger.startAttempt(j.id)?.attempts).toBe(2);
    ledger.markDone(j.id, [{ stepId: 's', key: 'a/s.jpg', store: 'folder:/out', size: 1, contentType: 'image/jpeg' }], false, 'sha');
    expect(ledger.get(j.id)).toMatchObject({ state: 'done', error: null, sha256: 'sha', outputs: [{ key: 'a/s.jpg' }] });
    // A job already finished is not started again (a stale queue entry).
    expect(ledger.startAttempt(j.id)).toBeNull();
    expect(ledger.get(j.id)).toMatchObject({ state: 'done', attempts: 2 });
    expect(ledger.findRender('sha', 'f')?.id).toBe(j.id);
    expect(ledger.findRender('sha', 'other')).toBeNull();
  });

  it('finds the done jobs below a folder, at any depth, and nothing beside it', () => {
    const keys = ['trip/a.jpg', 'trip/day1/b.jpg', 'trip', 'trip.jpg', 'trip-2/c.jpg', 'trips/d.jpg', 'other/trip/e.jpg', 'trip/queued.jpg'];
    for (const key of keys) {
      const j = ledger.upsert({ ...job, key, relKey: key }).job;
      if (key !== 'trip/queued.jpg') ledger.markDone(j.id, [], false);
    }
    ledger.markDone(ledger.upsert({ ...job, pipeline: 'q', key: 'trip/f.jpg', relKey: 'trip/f.jpg' }).job.id, [], false);
    expect(ledger.doneUnderFolder('p', job.store, 'trip').map((j) => j.key).sort()).toEqual(['trip/a.jpg', 'trip/day1/b.jpg']);
    expect(ledger.doneUnderFolder('p', job.store, 'trip/day1').map((j) => j.key)).toEqual(['trip/day1/b.jpg']);
    expect(ledger.doneUnderFolder('p', 'folder:/elsewhere', 'trip')).toEqual([]);
  });

  it('counts by state and replays dead letters', () => {
    const a = ledger.upsert(job).job;
    const b = ledger.upsert({ ...job, key: 'b.jpg' }).job;
    ledger.markDead(a.id, 'corrupt');
    ledger.markDone(b.id, [], true);
    expect(ledger.counts()).toMatchObject({ dead: 1, done: 1, queued: 0, deduplicated: 1 });
    expect(ledger.retryDead()).toBe(1);
    expect(ledger.get(a.id)).toMatchObject({ state: 'queued', attempts: 0 });
    expect(ledger.unfinished().map((j) => j.id)).toEqual([a.id]);
  });

  it('is shared with another connection (status while run works)', () => {
    ledger.upsert(job);
    const other = new SqliteLedger(dir);
    expect(other.counts().queued).toBe(1);
    other.close();
  });
});
