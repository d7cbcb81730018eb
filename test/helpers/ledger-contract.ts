/**
 * The ledger contract: what every ledger implementation must do, written
 * once and run against each (SQLite now; the shared PostgreSQL ledger runs
 * the same suite). Every call is awaited, so a ledger whose methods return
 * promises passes the same tests as one whose methods return values.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CompletionRule, EventDraft, Job, Ledger, OutputOrigin, RenderClaim } from '../../src/ledger/ledger.js';
import { describeListContract } from './ledger-contract-lists.js';

type ContractLedger = Ledger;

export interface LedgerPlace {
  /** A new, empty ledger of its own (a folder, a PostgreSQL schema). */
  ledger: Ledger;
  /** A second connection to the same ledger (another process or machine would have one). */
  another(): Promise<Ledger>;
  /** Closes both and removes the place. */
  cleanup(): Promise<void>;
}

const job = (key: string) => ({ pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key, relKey: key, version: 'file:1:1' });
const output = (sha256: string) => ({ stepId: 's', key: `out/${sha256}.webp`, store: 'folder:/out', size: 3, sha256, contentType: 'image/webp' });
/** Completes any input of `pipelines` (fingerprint f) with a draft named after its key; `seen` collects what each draft was given. */
const rule = (pipelines: string[], d: Partial<EventDraft> = {}, seen: Job[][] = []): CompletionRule => ({
  pipelines: new Map(pipelines.map((p) => [p, 'f'])),
  draft: (jobs) => {
    seen.push(jobs);
    return { eventId: `evt-${jobs[0]!.key}`, body: JSON.stringify({ key: jobs[0]!.key }), manifests: [], targets: [{ url: 'http://127.0.0.1:9/' }], owner: 'host-1-1', ...d };
  },
});
/** One job of pipeline p, run and ended with a completion that has an outbox row; its id. */
async function completeOne(l: Ledger, key: string, d: Partial<EventDraft>): Promise<{ id: number } | null> {
  const { job: j } = await l.upsert(job(key));
  await l.startAttempt(j.id);
  const ended = await l.finish(j.id, { state: 'done', outputs: [], deduplicated: false }, rule(['p'], d));
  return ended?.completed?.outboxId ? { id: ended.completed.outboxId } : null;
}
const claimOf = (jobId: number, owner = 'host-1-1', extra: Partial<Parameters<ContractLedger['claimRender']>[0]> = {}) =>
  ({ sha256: 'content', fingerprint: 'f', jobId, owner, leaseMs: 60_000, ...extra });
/**
 * Whose output these bytes are, asked as a job asks (claimRender, for job
 * `jobId`); a claim taken because they are no output is let go again.
 */
async function outputOf(l: Ledger, sha256: string, jobId: number): Promise<OutputOrigin | null> {
  const c = await l.claimRender(claimOf(jobId, 'host-9-9', { sha256 }));
  if (c.kind === 'claimed') await l.releaseRender(sha256, 'f', jobId);
  return c.kind === 'output' ? c.of : null;
}

export function describeLedgerContract(name: string, makePlace: () => Promise<LedgerPlace>, describeIt: typeof describe = describe): void {
  describeIt(`ledger contract: ${name}`, () => {
    let place: LedgerPlace;
    beforeEach(async () => { place = await makePlace(); });
    afterEach(async () => { await place.cleanup(); });
    const fixture = { open: () => place.ledger, another: () => place.another() };
    describeListContract(fixture.open);

    it('finds the same row for the same key version, a new one for a new version', async () => {
      const l = fixture.open();
      const a = await l.upsert(job('a.jpg'));
      const again = await l.upsert(job('a.jpg'));
      // File times have fractions of a millisecond.
      const newer = await l.upsert({ ...job('a.jpg'), version: 'file:2:2', changedAt: 1700000000000.25 });
      expect(a.created).toBe(true);
      expect(again).toMatchObject({ created: false, job: { id: a.job.id } });
      expect(newer.job).toMatchObject({ state: 'queued', attempts: 0, outputs: [], deduplicated: false });
      expect(Math.round(newer.job.changedAt!)).toBe(1700000000000);
      expect(newer.job.id).not.toBe(a.job.id);
      expect(await l.get(newer.job.id)).toEqual(newer.job);
      expect(await l.get(999_999)).toBeNull();
    });

    it('moves through running, failed, done and counts attempts', async () => {
      const l = fixture.open();
      const { job: j } = await l.upsert(job('a.jpg'));
      expect((await l.startAttempt(j.id))?.attempts).toBe(1);
      await l.markFailed(j.id, 'boom', Date.now() + 1000.5, 'sha');
      expect(await l.get(j.id)).toMatchObject({ state: 'failed', error: 'boom', sha256: 'sha' });
      expect((await l.startAttempt(j.id))?.attempts).toBe(2);
      await l.finish(j.id, { state: 'done', outputs: [{ stepId: 's', key: 'a/s.jpg', store: 'folder:/out', size: 1, contentType: 'image/jpeg', width: 3, height: 2 }], deduplicated: false, sha256: 'sha' });
      expect(await l.get(j.id)).toMatchObject({ state: 'done', error: null, sha256: 'sha', outputs: [{ key: 'a/s.jpg', width: 3 }] });
      // A job already finished is not started again (a stale queue entry).
      expect(await l.startAttempt(j.id)).toBeNull();
      expect(await l.get(j.id)).toMatchObject({ state: 'done', attempts: 2 });
      expect((await l.findRender('sha', 'f'))?.id).toBe(j.id);
      expect(await l.findRender('sha', 'other')).toBeNull();
    });

    it('finds the done jobs below a folder, at any depth, and nothing beside it', async () => {
      const l = fixture.open();
      const keys = ['trip/a.jpg', 'trip/day1/b.jpg', 'trip', 'trip.jpg', 'trip-2/c.jpg', 'trips/d.jpg', 'other/trip/e.jpg', 'trip/queued.jpg', 'Trip/x.jpg', 'trip0/y.jpg'];
      for (const key of keys) {
        const j = (await l.upsert(job(key))).job;
        if (key !== 'trip/queued.jpg') await l.finish(j.id, { state: 'done', outputs: [], deduplicated: false });
      }
      await l.finish((await l.upsert({ ...job('trip/f.jpg'), pipeline: 'q' })).job.id, { state: 'done', outputs: [], deduplicated: false });
      expect((await l.doneUnderFolder('p', 'folder:/in', 'trip')).map((j) => j.key).sort()).toEqual(['trip/a.jpg', 'trip/day1/b.jpg']);
      expect((await l.doneUnderFolder('p', 'folder:/in', 'trip/day1')).map((j) => j.key)).toEqual(['trip/day1/b.jpg']);
      expect(await l.doneUnderFolder('p', 'folder:/elsewhere', 'trip')).toEqual([]);
      expect((await l.doneForKey('p', 'folder:/in', 'trip.jpg')).map((j) => j.key)).toEqual(['trip.jpg']);
      expect((await l.jobsOfVersion('p', 'folder:/in', 'trip/queued.jpg', 'file:1:1')).map((j) => j.state)).toEqual(['queued']);
    });

    it('counts by state, lists, replays dead letters, and hands out unfinished jobs in id order', async () => {
      const l = fixture.open();
      const a = (await l.upsert(job('a.jpg'))).job;
      const b = (await l.upsert(job('b.jpg'))).job;
      const c = (await l.upsert(job('c.jpg'))).job;
      await l.finish(a.id, { state: 'dead', error: 'corrupt' });
      await l.finish(b.id, { state: 'done', outputs: [], deduplicated: true });
      expect(await l.counts()).toMatchObject({ dead: 1, done: 1, queued: 1, deduplicated: 1, skipped: 0 });
      expect((await l.list('dead')).map((j) => j.error)).toEqual(['corrupt']);
      expect((await l.unfinished()).map((j) => j.id)).toEqual([c.id]);
      expect(await l.retryDead(b.id)).toBe(0);
      expect(await l.retryDead()).toBe(1);
      expect(await l.get(a.id)).toMatchObject({ state: 'queued', attempts: 0 });
      expect((await l.unfinished()).map((j) => j.id)).toEqual([a.id, c.id]);
      expect((await l.unfinished(1, a.id)).map((j) => j.id)).toEqual([c.id]);
      // Since a time: only what changed from then on.
      const later = Date.now() + 60_000;
      expect(await l.unfinished(10, 0, later)).toEqual([]);
      expect((await l.renderCounts()).length).toBe(0); // b was a copy, not a render
    });

    it('keeps completion events in the outbox until nothing of them is left to do', async () => {
      const l = fixture.open();
      const { id } = (await completeOne(l, 'a.jpg', { manifests: [{ key: 'm.json' }], targets: [{ url: 'http://127.0.0.1:9/' }] }))!;
      expect(await l.outbox()).toMatchObject([{ id, eventId: 'evt-a.jpg', body: '{"key":"a.jpg"}', manifests: [{ key: 'm.json' }], targets: [{ url: 'http://127.0.0.1:9/' }] }]);
      await l.updateOutbox(id, [], [{ url: 'http://127.0.0.1:9/' }]);
      expect(await l.outbox()).toMatchObject([{ manifests: [], targets: [{ url: 'http://127.0.0.1:9/' }] }]);
      await l.updateOutbox(id, [], []);
      expect(await l.outbox()).toEqual([]);
    });

    it('an outbox entry has an owner, and is taken over from it by one process only', async () => {
      const l = fixture.open();
      const other = await fixture.another();
      try {
        const { id } = (await completeOne(l, 'a.jpg', { targets: [{ url: 'http://127.0.0.1:9/' }], owner: 'host-1-1' }))!;
        expect((await l.outbox()).map((e) => e.owner)).toEqual(['host-1-1']);
        const takes = await Promise.all([l.takeOutbox(id, 'host-1-1', 'host-2-2'), other.takeOutbox(id, 'host-1-1', 'host-3-3')]);
        expect(takes.filter(Boolean)).toHaveLength(1);
        expect(await l.takeOutbox(id, 'host-1-1', 'host-4-4')).toBe(false);
        const taker = (await l.outbox())[0]!.owner!;
        expect(await other.takeOutbox(id, taker, 'host-5-5')).toBe(true);
        expect((await l.outbox())[0]!.owner).toBe('host-5-5');
      } finally {
        await other.close();
      }
    });

    it('is shared with another connection (status while run works)', async () => {
      const l = fixture.open();
      await l.upsert(job('a.jpg'));
      const other = await fixture.another();
      try {
        expect((await other.counts()).queued).toBe(1);
        expect(await other.ping()).toBe(true);
      } finally {
        await other.close();
      }
    });
    async function running(l: ContractLedger, key: string, pipeline = 'p') {
      const { job: j } = await l.upsert({ ...job(key), pipeline });
      return (await l.startAttempt(j.id)) as Job;
    }

    it('one render per content: the first claim wins, a second job of the same content is told to wait', async () => {
      const l = fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      expect(await l.claimRender(claimOf(a.id))).toEqual({ kind: 'claimed' });
      const second = await l.claimRender(claimOf(b.id, 'host-2-2'));
      expect(second).toMatchObject({ kind: 'busy', jobId: a.id, owner: 'host-1-1' });
      // The same job asking again (a retry after its own process died) still holds it.
      expect(await l.claimRender(claimOf(a.id, 'host-3-3'))).toEqual({ kind: 'claimed' });
      // Another content, or the same content under another fingerprint, is another render.
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { sha256: 'other' }))).toEqual({ kind: 'claimed' });
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { fingerprint: 'g' }))).toEqual({ kind: 'claimed' });
    });

    it('when the render is done, the waiting job is given it to copy; the claim is gone with the state change', async () => {
      const l = fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      await l.claimRender(claimOf(a.id));
      const released: string[] = [];
      const off = l.onRenderReleased((sha, fp) => released.push(`${sha}/${fp}`));
      await l.finish(a.id, { state: 'done', outputs: [output('o1')], deduplicated: false, sha256: 'content' });
      off();
      expect(released).toEqual(['content/f']);
      const next = (await l.claimRender(claimOf(b.id, 'host-2-2'))) as Extract<RenderClaim, { kind: 'rendered' }>;
      expect(next.kind).toBe('rendered');
      expect(next.job).toMatchObject({ id: a.id, outputs: [{ sha256: 'o1' }] });
      // Its outputs gone (rendered: false): the waiting job claims the render itself.
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { rendered: false }))).toEqual({ kind: 'claimed' });
    });

    it('a failed or dead render lets the next job claim it', async () => {
      const l = fixture.open();
      const [a, b, c] = [await running(l, 'a.jpg'), await running(l, 'b.jpg'), await running(l, 'c.jpg')];
      await l.claimRender(claimOf(a.id));
      await l.markFailed(a.id, 'store down', Date.now() + 1000, 'content');
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
      await l.finish(b.id, { state: 'dead', error: 'corrupt', sha256: 'content' });
      expect(await l.claimRender(claimOf(c.id, 'host-3-3'))).toEqual({ kind: 'claimed' });
      await l.releaseRender('content', 'f', c.id);
      expect(await l.claimRender(claimOf(a.id, 'host-1-1'))).toEqual({ kind: 'claimed' });
    });

    it('an expired claim is taken over; a renewed one is not; a claim whose owner is known gone is taken over at once', async () => {
      const l = fixture.open();
      const [a, b, c] = [await running(l, 'a.jpg'), await running(l, 'b.jpg'), await running(l, 'c.jpg')];
      expect(await l.claimRender(claimOf(a.id, 'host-1-1', { leaseMs: -1 }))).toEqual({ kind: 'claimed' });
      expect(await l.renewRender('content', 'f', a.id, -1)).toBe(true); // still its own, still expired
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
      // a lost it: renewing says so.
      expect(await l.renewRender('content', 'f', a.id, 60_000)).toBe(false);
      expect(await l.renewRender('content', 'f', b.id, 60_000)).toBe(true);
      expect(await l.claimRender(claimOf(c.id, 'host-3-3'))).toMatchObject({ kind: 'busy', jobId: b.id });
      // Handing over only works against the owner that holds it now.
      expect(await l.claimRender(claimOf(c.id, 'host-3-3', { takeOverFrom: 'host-1-1' }))).toMatchObject({ kind: 'busy', jobId: b.id });
      expect(await l.claimRender(claimOf(c.id, 'host-3-3', { takeOverFrom: 'host-2-2' }))).toEqual({ kind: 'claimed' });
    });

    it('two connections racing for the same renders: exactly one claim wins each', async () => {
      const first = fixture.open();
      const second = await fixture.another();
      try {
        const jobs = [];
        for (let i = 0; i < 40; i++) jobs.push(await running(first, `k${i}.jpg`));
        const results = await Promise.all(jobs.map((j, i) => (i % 2 ? second : first).claimRender(
          claimOf(j.id, `host-${i}-${i}`, { sha256: `content-${Math.floor(i / 4)}` }))));
        const winners = new Map<string, number>();
        results.forEach((r, i) => { if (r.kind === 'claimed') winners.set(`content-${Math.floor(i / 4)}`, (winners.get(`content-${Math.floor(i / 4)}`) ?? 0) + 1); });
        expect([...winners.values()]).toEqual(Array(10).fill(1));
        expect(results.filter((r) => r.kind === 'busy')).toHaveLength(30);
      } finally {
        await second.close();
      }
    });

    it('knows every output it wrote by checksum: a render\'s recorded before the write, a copy\'s on done', async () => {
      const l = fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      expect(await outputOf(l, 'o1', b.id)).toBeNull();
      await l.recordOutputs(['o1', 'o3'], a.id);
      await l.recordOutputs([], a.id);
      expect(await outputOf(l, 'o3', b.id)).toEqual({ jobId: a.id, pipeline: 'p', key: 'a.jpg' });
      // Asked for a render of those bytes, the ledger answers whose output they are, and claims nothing.
      expect(await l.claimRender(claimOf(b.id, 'host-2-2', { sha256: 'o1' }))).toEqual({ kind: 'output', of: { jobId: a.id, pipeline: 'p', key: 'a.jpg' } });
      expect(await l.renewRender('o1', 'f', b.id, 60_000)).toBe(false);
      // A render's end records nothing more: its outputs were recorded before they were written.
      await l.finish(a.id, { state: 'done', outputs: [output('o1'), output('o2')], deduplicated: false, sha256: 'content' });
      expect(await outputOf(l, 'o2', b.id)).toBeNull();
      // A copy never records its outputs before writing them (no render made them): its end does.
      const c = await running(l, 'c.jpg');
      await l.finish(c.id, { state: 'done', outputs: [output('o4')], deduplicated: true, sha256: 'content' });
      expect(await outputOf(l, 'o4', b.id)).toEqual({ jobId: c.id, pipeline: 'p', key: 'c.jpg' });
      // An input's own checksum is not an output's.
      expect(await outputOf(l, 'content', b.id)).toBeNull();
    });

    it('the end of an input\'s last job completes it, in the same transaction as its outbox row', async () => {
      const l = fixture.open();
      const seen: Job[][] = [];
      const r = rule(['p', 'q'], {}, seen);
      const p = await running(l, 'a.jpg');
      const q = await running(l, 'a.jpg', 'q');
      const history = (await l.upsert({ ...job('a.jpg'), pipeline: 'q', fingerprint: 'older' })).job; // a pipeline's earlier fingerprint
      const elsewhere = await running(l, 'b.jpg', 'q');
      expect(history.state).toBe('queued');
      expect(await l.finish(p.id, { state: 'done', outputs: [output('o1')], deduplicated: false, sha256: 'content' }, r)).toMatchObject({ job: { state: 'done' }, completed: null });
      expect(await l.finish(elsewhere.id, { state: 'dead', error: 'corrupt' }, r)).toMatchObject({ completed: { jobs: [{ id: elsewhere.id }], outboxId: expect.any(Number) } });
      const ended = await l.finish(q.id, { state: 'dead', error: 'corrupt' }, r);
      expect(ended!.completed!.jobs.map((j) => [j.pipeline, j.state])).toEqual([['p', 'done'], ['q', 'dead']]);
      expect(seen.at(-1)!.map((j) => j.id)).toEqual([p.id, q.id]); // drafted from the jobs as they are after the end
      expect((await l.outbox()).map((e) => e.eventId)).toEqual([`evt-b.jpg`, 'evt-a.jpg']);
      expect((await l.outbox())[1]!.id).toBe(ended!.completed!.outboxId);
      // Ended again (a worker thought gone finishing late): nothing completes twice.
      expect(await l.finish(q.id, { state: 'done', outputs: [], deduplicated: false }, r)).toMatchObject({ job: { state: 'done' }, completed: null });
      expect(await l.outbox()).toHaveLength(2);
      // An event with nothing to write or send completes its input without an outbox row.
      const c = await running(l, 'c.jpg');
      expect(await l.finish(c.id, { state: 'done', outputs: [], deduplicated: false }, rule(['p'], { targets: [] }))).toMatchObject({ completed: { outboxId: null } });
      expect(await l.outbox()).toHaveLength(2);
      expect(await l.finish(999_999, { state: 'done', outputs: [], deduplicated: false }, r)).toBeNull();
    });

    it('an event that cannot be recorded undoes the end: the job is still running, its claim still held', async () => {
      const l = fixture.open();
      const a = await running(l, 'a.jpg');
      await l.claimRender(claimOf(a.id));
      const failing: CompletionRule = { pipelines: new Map([['p', 'f']]), draft: () => { throw new Error('no event'); } };
      // A copy's end, so that its outputs' checksums would be recorded with it.
      await expect(l.finish(a.id, { state: 'done', outputs: [output('o1')], deduplicated: true, sha256: 'content' }, failing)).rejects.toThrow('no event');
      expect(await l.get(a.id)).toMatchObject({ state: 'running', outputs: [] });
      expect(await l.claimRender(claimOf(999, 'host-2-2'))).toMatchObject({ kind: 'busy', jobId: a.id });
      expect(await outputOf(l, 'o1', 999)).toBeNull();
    });

    it('a superseded or skipped job does not hold its input open; a waiting one does', async () => {
      const l = fixture.open();
      const r = rule(['p', 'q', 's']);
      const p = await running(l, 'a.jpg');
      const q = (await l.upsert({ ...job('a.jpg'), pipeline: 'q' })).job;
      const s = await running(l, 'a.jpg', 's');
      expect((await l.finish(p.id, { state: 'done', outputs: [], deduplicated: false }, r))!.completed).toBeNull(); // q waits
      await l.markState(q.id, 'superseded');
      const skipped = await l.finish(s.id, { state: 'skipped', reason: 'an output of mediaflow', sha256: 'content' }, r);
      expect(skipped!.completed!.jobs.map((j) => j.pipeline)).toEqual(['p']);
      // All of an input's jobs skipped: nothing to complete.
      const t = await running(l, 't.jpg');
      expect((await l.finish(t.id, { state: 'skipped', reason: 'an output of mediaflow', sha256: 'content' }, r))!.completed).toBeNull();
    });

    it('two connections ending the last two jobs of each input at once: exactly one completes each', async () => {
      const l = fixture.open();
      const other = await fixture.another();
      try {
        const r = rule(['p', 'q'], { targets: [{ url: 'http://127.0.0.1:9/' }] });
        const inputs = await Promise.all(Array.from({ length: 20 }, async (_, i) => [await running(l, `${i}.jpg`), await running(l, `${i}.jpg`, 'q')] as const));
        const ends = await Promise.all(inputs.flatMap(([p, q]) => [
          l.finish(p.id, { state: 'done', outputs: [], deduplicated: false }, r),
          other.finish(q.id, { state: 'done', outputs: [], deduplicated: false }, r),
        ]));
        expect(ends.filter((e) => e?.completed)).toHaveLength(20);
        const events = (await l.outbox()).map((e) => e.eventId).sort();
        expect(events).toEqual(inputs.map((_, i) => `evt-${i}.jpg`).sort());
      } finally {
        await other.close();
      }
    });

    it('keeps the newest event sequencer per key: an older one arriving later is told so, across connections', async () => {
      const l = fixture.open();
      const other = await fixture.another();
      try {
        expect(await l.seeSequencer('bucket:b', 'a.jpg', '17A2B3C4D5E6F700')).toBe(true);
        expect(await other.seeSequencer('bucket:b', 'a.jpg', '17A2B3C4D5E6F6FF')).toBe(false); // older
        expect(await l.seeSequencer('bucket:b', 'a.jpg', '17a2b3c4d5e6f700')).toBe(true); // the same again (a duplicate)
        expect(await other.seeSequencer('bucket:b', 'a.jpg', '17A2B3C4D5E6F701')).toBe(true);
        expect(await l.seeSequencer('bucket:b', 'a.jpg', '17A2B3C4D5E6F700')).toBe(false);
        // Longer is later (AWS's grow in length); another key or store has its own order.
        expect(await l.seeSequencer('bucket:b', 'a.jpg', '0017A2B3C4D5E6F70100')).toBe(true);
        expect(await l.seeSequencer('bucket:b', 'b.jpg', '01')).toBe(true);
        expect(await l.seeSequencer('bucket:c', 'a.jpg', '01')).toBe(true);
        // Racing: of many at once, the newest is the one that stands.
        const seqs = Array.from({ length: 20 }, (_, i) => (0x100 + i).toString(16));
        await Promise.all(seqs.map((q, i) => (i % 2 ? l : other).seeSequencer('bucket:b', 'race.jpg', q)));
        expect(await l.seeSequencer('bucket:b', 'race.jpg', seqs[18]!)).toBe(false);
        expect(await l.seeSequencer('bucket:b', 'race.jpg', seqs[19]!)).toBe(true);
      } finally {
        await other.close();
      }
    });

    it('a newer version supersedes the other waiting jobs of its key; running, done and other keys stay', async () => {
      const l = fixture.open();
      const older = (await l.upsert(job('a.jpg'))).job;
      const failed = (await l.upsert({ ...job('a.jpg'), version: 'file:2:2' })).job;
      await l.startAttempt(failed.id);
      await l.markFailed(failed.id, 'store down', Date.now() + 1000);
      const other = (await l.upsert(job('b.jpg'))).job;
      const newer = (await l.upsert({ ...job('a.jpg'), version: 'file:3:3' })).job;
      expect(await l.supersedeOthers(newer)).toBe(2);
      expect((await l.get(older.id))!.state).toBe('superseded');
      expect((await l.get(failed.id))!.state).toBe('superseded');
      expect((await l.get(other.id))!.state).toBe('queued');
      expect((await l.get(newer.id))!.state).toBe('queued');
      expect(await l.startAttempt(older.id, { alone: true })).toBeNull();
    });

    it('alone: a job does not start while another version of its key runs, unless that one is stale', async () => {
      const l = fixture.open();
      const first = (await l.upsert(job('a.jpg'))).job;
      const second = (await l.upsert({ ...job('a.jpg'), version: 'file:2:2' })).job;
      const elsewhere = (await l.upsert(job('b.jpg'))).job;
      expect(await l.startAttempt(first.id, { alone: true })).toMatchObject({ state: 'running' });
      expect(await l.startAttempt(second.id, { alone: true })).toBe('key-busy');
      expect(await l.startAttempt(elsewhere.id, { alone: true })).toMatchObject({ state: 'running' });
      // A running job of a worker that died long ago does not hold the key for ever.
      expect(await l.startAttempt(second.id, { alone: true, staleAfterMs: -1 })).toMatchObject({ state: 'running', attempts: 1 });
      // The same job again (its worker died, the queue hands it on) starts its next attempt.
      expect(await l.startAttempt(first.id, { alone: true, staleAfterMs: -1 })).toMatchObject({ attempts: 2 });
    });

    it('a skipped job is finished: it counts as skipped, is not started again and holds no claim', async () => {
      const l = fixture.open();
      const a = await running(l, 'a.jpg');
      const b = await running(l, 'b.jpg');
      await l.claimRender(claimOf(a.id));
      expect((await l.finish(a.id, { state: 'skipped', reason: 'an output of mediaflow', sha256: 'content' }))?.job).toMatchObject({ state: 'skipped', error: 'an output of mediaflow', sha256: 'content' });
      expect(await l.startAttempt(a.id)).toBeNull();
      expect((await l.counts()).skipped).toBe(1);
      expect(await l.claimRender(claimOf(b.id, 'host-2-2'))).toEqual({ kind: 'claimed' });
    });
  });
}
