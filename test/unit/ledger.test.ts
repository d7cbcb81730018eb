import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { BIN } from '../helpers/cli.js';
import { fixture } from '../helpers/fixtures.js';
import { describeLedgerContract } from '../helpers/ledger-contract.js';

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

describeLedgerContract('SQLite', {
  open: () => ledger,
  another: () => new SqliteLedger(dir),
});

describe('SqliteLedger across processes', () => {
  it('threads with their own connections claiming the same renders at the same moment: one winner per content', async () => {
    const dist = path.resolve(path.dirname(BIN), '../dist/ledger/sqlite-ledger.js');
    const ids: number[] = [];
    for (let i = 0; i < 60; i++) ids.push(ledger.startAttempt(ledger.upsert({ ...job, key: `k${i}.jpg`, relKey: `k${i}.jpg` }).job.id)!.id);
    const start = new SharedArrayBuffer(4);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.dist).then(({ SqliteLedger }) => {
        const l = new SqliteLedger(workerData.dir);
        Atomics.wait(new Int32Array(workerData.start), 0, 0); // every thread starts at once
        const won = [];
        for (const [i, id] of workerData.ids.entries()) {
          const c = l.claimRender({ sha256: 'content-' + (i % 20), fingerprint: 'f', jobId: id, owner: 'w' + workerData.n, leaseMs: 60000 });
          if (c.kind === 'claimed') won.push(i % 20);
        }
        l.close();
        parentPort.postMessage(won);
      });`;
    const workers = [0, 1, 2].map((n) => new Worker(code, { eval: true, workerData: { dist, dir, start, n, ids: ids.filter((_, i) => i % 3 === n) } }));
    const results = workers.map((w) => new Promise<number[]>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); }));
    await new Promise((r) => setTimeout(r, 200)); // let them open their connections
    Atomics.store(new Int32Array(start), 0, 1);
    Atomics.notify(new Int32Array(start), 0);
    const won = (await Promise.all(results)).flat().sort((a, b) => a - b);
    expect(won).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});

describe('SqliteLedger migrations', () => {
  it('opens a ledger file written by release 0.1.0 and migrates it with nothing lost', () => {
    const old = mkdtempSync(path.join(os.tmpdir(), 'mf-ledger-old-'));
    try {
      copyFileSync(fixture('ledger-0.1.0/ledger.sqlite'), path.join(old, 'ledger.sqlite'));
      const l = new SqliteLedger(old);
      try {
        expect(l.schemaVersion).toBe(2);
        expect(l.counts()).toMatchObject({ queued: 1, done: 1, dead: 1, skipped: 0 });
        expect(l.get(1)).toMatchObject({ key: 'a.jpg', state: 'done', sha256: '11'.repeat(32), changedAt: 1700000000000, outputs: [{ key: 'a/thumb.webp', width: 32 }, { key: 'a/meta.json' }] });
        expect(l.get(2)).toMatchObject({ key: 'b.jpg', state: 'dead', error: 'b.jpg: corrupt or truncated image' });
        expect(l.unfinished().map((j) => j.key)).toEqual(['c.jpg']);
        expect(l.outbox()).toMatchObject([{ eventId: 'evt-1', body: '{"id":"evt-1"}', targets: [{ url: 'http://127.0.0.1:9/hook' }] }]);
        // The outputs the old release wrote are known as mediaflow's own.
        expect(l.outputWith('aa'.repeat(32))).toMatchObject({ jobId: 1, key: 'a.jpg' });
        expect(l.outputWith('bb'.repeat(32))).toMatchObject({ jobId: 1 });
        expect(l.findRender('11'.repeat(32), 'f1')?.id).toBe(1);
      } finally {
        l.close();
      }
      // Opening again applies nothing twice.
      const again = new SqliteLedger(old);
      expect(again.schemaVersion).toBe(2);
      expect(again.counts().done).toBe(1);
      again.close();
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  });

  it('refuses a ledger written by a newer release, saying so', () => {
    const db = new Database(path.join(dir, 'ledger.sqlite'));
    db.pragma('user_version = 99');
    db.close();
    expect(() => new SqliteLedger(dir)).toThrow(/ledger is version 99, newer than this mediaflow knows \(2\); upgrade mediaflow/);
  });
});
