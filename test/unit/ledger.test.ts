import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { BIN } from '../helpers/cli.js';
import { changeEveryWay } from '../helpers/every-change.js';
import { fixture } from '../helpers/fixtures.js';
import { describeLedgerContract } from '../helpers/ledger-contract.js';

let dir: string;
let ledger: SqliteLedger;
const job = { pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key: 'a.jpg', relKey: 'a.jpg', version: 'file:1:1' };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mf-ledger-'));
  ledger = new SqliteLedger(dir);
});
afterEach(async () => {
  await ledger.close();
  rmSync(dir, { recursive: true, force: true });
});

describeLedgerContract('SQLite', async () => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'mf-ledger-contract-'));
  const own = new SqliteLedger(folder);
  const others: SqliteLedger[] = [];
  return {
    ledger: own,
    another: async () => { const o = new SqliteLedger(folder); others.push(o); return o; },
    cleanup: async () => {
      for (const l of [own, ...others]) await l.close();
      rmSync(folder, { recursive: true, force: true });
    },
  };
});

describe('SqliteLedger across processes', () => {
  it('threads with their own connections claiming the same renders at the same moment: one winner per content', async () => {
    const dist = path.resolve(path.dirname(BIN), '../dist/ledger/sqlite-ledger.js');
    const ids: number[] = [];
    for (let i = 0; i < 60; i++) ids.push((await ledger.startAttempt((await ledger.upsert({ ...job, key: `k${i}.jpg`, relKey: `k${i}.jpg` })).job.id))!.id);
    const start = new SharedArrayBuffer(4);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.dist).then(async ({ SqliteLedger }) => {
        const l = new SqliteLedger(workerData.dir);
        Atomics.wait(new Int32Array(workerData.start), 0, 0); // every thread starts at once
        const won = [];
        for (const [i, id] of workerData.ids.entries()) {
          const c = await l.claimRender({ sha256: 'content-' + (i % 20), fingerprint: 'f', jobId: id, owner: 'w' + workerData.n, leaseMs: 60000 });
          if (c.kind === 'claimed') won.push(i % 20);
        }
        await l.close();
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

describe('SqliteLedger counts', () => {
  /** What a count of every job says, to hold the kept counts against. */
  function countedFromJobs(): { byState: Record<string, number>; byPipeline: Record<string, Record<string, number>>; deduplicated: number } {
    const db = new Database(path.join(dir, 'ledger.sqlite'), { readonly: true });
    try {
      const byState: Record<string, number> = {};
      const byPipeline: Record<string, Record<string, number>> = {};
      for (const r of db.prepare('SELECT pipeline, state, COUNT(*) AS n FROM jobs GROUP BY pipeline, state').all() as { pipeline: string; state: string; n: number }[]) {
        byState[r.state] = (byState[r.state] ?? 0) + r.n;
        (byPipeline[r.pipeline] ??= {})[r.state] = r.n;
      }
      const { n } = db.prepare("SELECT COUNT(*) AS n FROM jobs WHERE state = 'done' AND deduplicated = 1").get() as { n: number };
      return { byState, byPipeline, deduplicated: n };
    } finally {
      db.close();
    }
  }
  const nonZero = (c: object) => Object.fromEntries(Object.entries(c).filter(([, n]) => n !== 0));

  it('keeps its counts by state and pipeline in step with the jobs through every kind of change', async () => {
    await changeEveryWay(() => ledger);

    const full = countedFromJobs();
    const { deduplicated, ...byState } = await ledger.counts();
    expect(nonZero(byState)).toEqual(full.byState);
    expect(deduplicated).toBe(full.deduplicated);
    expect(deduplicated).toBe(1);
    const byPipeline = await ledger.jobList.countsByPipeline();
    expect(Object.fromEntries(Object.entries(byPipeline).map(([p, c]) => [p, nonZero(c)]))).toEqual(full.byPipeline);
    // Read from the kept table, not counted from the jobs.
    const db = new Database(path.join(dir, 'ledger.sqlite'), { readonly: true });
    try {
      const kept = db.prepare('SELECT SUM(n) AS n FROM job_counts').get() as { n: number };
      expect(kept.n).toBe(7);
    } finally {
      db.close();
    }
  });
});

describe('SqliteLedger migrations', () => {
  it('opens a ledger file written by release 0.1.0 and migrates it with nothing lost', async () => {
    const old = mkdtempSync(path.join(os.tmpdir(), 'mf-ledger-old-'));
    try {
      copyFileSync(fixture('ledger-0.1.0/ledger.sqlite'), path.join(old, 'ledger.sqlite'));
      const l = new SqliteLedger(old);
      try {
        expect(l.schemaVersion).toBe(8);
        expect(await l.counts()).toMatchObject({ queued: 1, done: 1, dead: 1, skipped: 0 });
        expect(await l.get(1)).toMatchObject({ key: 'a.jpg', state: 'done', sha256: '11'.repeat(32), changedAt: 1700000000000, size: null, outputs: [{ key: 'a/thumb.webp', width: 32 }, { key: 'a/meta.json' }] });
        // Jobs from before the attempt log have an empty one; they count in the activity of when they ended.
        expect((await l.get(1))!.attemptLog).toEqual([]);
        const ended = await l.jobList.activity(0, 60_000);
        expect([ended.reduce((n, a) => n + a.done, 0), ended.reduce((n, a) => n + a.dead, 0)]).toEqual([1, 1]);
        expect(ended.every((a) => a.lagMeanMs === null)).toBe(true);
        expect(await l.get(2)).toMatchObject({ key: 'b.jpg', state: 'dead', error: 'b.jpg: corrupt or truncated image' });
        expect((await l.unfinished()).map((j) => j.key)).toEqual(['c.jpg']);
        expect(await l.outbox()).toMatchObject([{ eventId: 'evt-1', owner: null, body: '{"id":"evt-1"}', targets: [{ url: 'http://127.0.0.1:9/hook' }] }]);
        // The outputs the old release wrote are known as mediaflow's own.
        const asked = (sha256: string) => l.claimRender({ sha256, fingerprint: 'f1', jobId: 3, owner: 'host-1-1', leaseMs: 60_000 });
        expect(await asked('aa'.repeat(32))).toMatchObject({ kind: 'output', of: { jobId: 1, key: 'a.jpg' } });
        expect(await asked('bb'.repeat(32))).toMatchObject({ kind: 'output', of: { jobId: 1 } });
        expect((await l.findRender('11'.repeat(32), 'f1'))?.id).toBe(1);
      } finally {
        await l.close();
      }
      // Opening again applies nothing twice.
      const again = new SqliteLedger(old);
      expect(again.schemaVersion).toBe(8);
      expect((await again.counts()).done).toBe(1);
      await again.close();
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  });

  it('refuses a ledger written by a newer release, saying so', () => {
    const db = new Database(path.join(dir, 'ledger.sqlite'));
    db.pragma('user_version = 99');
    db.close();
    expect(() => new SqliteLedger(dir)).toThrow(/ledger is version 99, newer than this mediaflow knows \(8\); upgrade mediaflow/);
  });
});
