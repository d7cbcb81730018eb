/**
 * The ledger contract, continued: the attempt log and the dashboard's reads
 * (lists, what changed since a poll, counts by pipeline, recent activity,
 * retrying a pipeline's dead letters). Run by describeLedgerContract on every
 * ledger.
 */
import { expect, it } from 'vitest';
import type { AttemptRecord, CompletionRule, Job, Ledger } from '../../src/ledger/ledger.js';

const job = (key: string, extra: { pipeline?: string; changedAt?: number } = {}) =>
  ({ pipeline: 'p', fingerprint: 'f', store: 'folder:/in', key, relKey: key, version: 'file:1:1', ...extra });
const record = (extra: Partial<AttemptRecord> = {}): AttemptRecord =>
  ({ attempt: 1, startedAt: 1_000, endedAt: 1_100, outcome: 'failed', steps: [{ step: 'thumb', ms: 40 }], worker: 'host-a:1', ...extra });
const rule: CompletionRule = {
  pipelines: new Map([['p', 'f']]),
  draft: ([j]) => ({ eventId: `evt-${j!.id}`, body: '{}', manifests: [], targets: [], owner: 'host-1-1' }),
};
const FUTURE = () => Date.now() + 3_600_000;

async function started(l: Ledger, key: string, extra: Parameters<typeof job>[1] = {}): Promise<Job> {
  const { job: j } = await l.upsert(job(key, extra));
  return (await l.startAttempt(j.id)) as Job;
}

export function describeListContract(open: () => Ledger): void {
  it('keeps each attempt\'s record, written by the statement that ends it: error, failed step, step times, the job copied from', async () => {
    const l = open();
    const a = await started(l, 'a.jpg');
    const failed = record({ error: 'store down', step: 'large' });
    expect((await l.markFailed(a.id, 'store down', Date.now() + 1000, 'sha', failed))!.attemptLog).toEqual([failed]);
    await l.startAttempt(a.id);
    const done = record({ attempt: 2, outcome: 'done', steps: [], copiedFrom: 7, startedAt: 2_000, endedAt: 2_050 });
    // With a completion rule: the PostgreSQL ledger's transaction path.
    await l.finish(a.id, { state: 'done', outputs: [], deduplicated: true, sha256: 'sha', attempt: done }, rule);
    expect((await l.get(a.id))!.attemptLog).toEqual([failed, done]);

    const b = await started(l, 'b.jpg');
    const dead = record({ outcome: 'dead', error: 'b.jpg: corrupt', steps: [{ step: '1', ms: 3 }, { step: 'thumb', ms: 2 }] });
    await l.finish(b.id, { state: 'dead', error: 'b.jpg: corrupt', attempt: dead });
    // A dead letter put back keeps its log; its next attempt is 1 again.
    expect(await l.retryDead(b.id)).toBe(1);
    expect(await l.get(b.id)).toMatchObject({ state: 'queued', attempts: 0, attemptLog: [dead] });

    // An end without a record leaves the log as it is.
    const c = await started(l, 'c.jpg');
    await l.finish(c.id, { state: 'skipped', reason: 'an output of mediaflow', sha256: 'x' });
    expect((await l.get(c.id))!.attemptLog).toEqual([]);
  });

  it('lists jobs newest first, by state, pipeline and part of the key (either case, % and _ as themselves), a page at a time', async () => {
    const l = open();
    const keys = ['trip/IMG_1.jpg', 'trip/img_2.jpg', 'trip/imgX3.jpg', '100%_real.jpg', '100x_real.jpg'];
    const ids: number[] = [];
    for (const key of keys) ids.push((await l.upsert(job(key))).job.id);
    const q = (await l.upsert(job('trip/IMG_1.jpg', { pipeline: 'q' }))).job;
    await l.finish(ids[1]!, { state: 'dead', error: 'corrupt' });
    const keysOf = (jobs: Job[]) => jobs.map((j) => `${j.pipeline}:${j.key}`);
    expect((await l.jobList.findJobs({})).map((j) => j.id)).toEqual([q.id, ...[...ids].reverse()]);
    expect(keysOf(await l.jobList.findJobs({ keyContains: 'img_' }))).toEqual(['q:trip/IMG_1.jpg', 'p:trip/img_2.jpg', 'p:trip/IMG_1.jpg']);
    expect(keysOf(await l.jobList.findJobs({ keyContains: '100%' }))).toEqual(['p:100%_real.jpg']);
    expect(keysOf(await l.jobList.findJobs({ states: ['dead'] }))).toEqual(['p:trip/img_2.jpg']);
    expect(keysOf(await l.jobList.findJobs({ states: ['dead', 'queued'], pipeline: 'q' }))).toEqual(['q:trip/IMG_1.jpg']);
    const first = await l.jobList.findJobs({ limit: 2 });
    expect(first.map((j) => j.id)).toEqual([q.id, ids[4]]);
    expect((await l.jobList.findJobs({ limit: 2, beforeId: first[1]!.id })).map((j) => j.id)).toEqual([ids[3], ids[2]]);
    expect(await l.jobList.lastJobId()).toBe(q.id);
  });

  it('tells a list what changed since its last poll: new jobs, the jobs it shows, older jobs that entered its states', async () => {
    const l = open();
    const [a, b, c] = [(await l.upsert(job('a.jpg'))).job, (await l.upsert(job('b.jpg'))).job, (await l.upsert(job('c.jpg'))).job];
    await l.finish(b.id, { state: 'dead', error: 'corrupt' });
    const afterId = await l.jobList.lastJobId();
    const idsOf = (jobs: Job[]) => jobs.map((j) => j.id);
    // Nothing new, nothing changed since (a time after every write).
    expect(await l.jobList.jobChanges({}, { since: FUTURE(), afterId, fromId: 0, ids: [a.id, b.id, c.id] })).toEqual([]);
    // Jobs just below afterId made since the poll are new too (an id taken before it may commit after it).
    expect(idsOf(await l.jobList.jobChanges({}, { since: 0, afterId, fromId: 0, ids: [] }))).toEqual([c.id, b.id, a.id]);
    // A new job, whenever the poll was; a new job outside the list's states is not its business.
    const d = (await l.upsert(job('d.jpg'))).job;
    expect(idsOf(await l.jobList.jobChanges({}, { since: FUTURE(), afterId, fromId: 0, ids: [] }))).toEqual([d.id]);
    expect(await l.jobList.jobChanges({ states: ['dead'] }, { since: FUTURE(), afterId, fromId: 0, ids: [b.id] })).toEqual([]);
    // A dead-letter list showing b, polled from here on: a, older, becomes dead; b is retried and leaves the state, so the list can show it moving.
    await new Promise((r) => setTimeout(r, 5)); // a poll time after every write so far (times are in ms)
    const since = Date.now();
    await l.finish(a.id, { state: 'dead', error: 'corrupt too' });
    await l.retryDead(b.id);
    expect((await l.jobList.jobChanges({ states: ['dead'] }, { since, afterId: d.id, fromId: 0, ids: [b.id] })).map((j) => [j.id, j.state]))
      .toEqual([[b.id, 'queued'], [a.id, 'dead']]);
    // A list of queued jobs learns of b (put back), not of c and d (queued, unchanged since); a list of both states of both.
    expect(idsOf(await l.jobList.jobChanges({ states: ['queued'] }, { since, afterId: d.id, fromId: 0, ids: [] }))).toEqual([b.id]);
    expect(idsOf(await l.jobList.jobChanges({ states: ['queued', 'dead'] }, { since, afterId: d.id, fromId: 0, ids: [] }))).toEqual([b.id, a.id]);
    // A full list showing only from b on does not take a, below it.
    expect(idsOf(await l.jobList.jobChanges({ states: ['dead'] }, { since, afterId: d.id, fromId: b.id, ids: [b.id] }))).toEqual([b.id]);
    // The list's other conditions hold for every part.
    expect(await l.jobList.jobChanges({ states: ['dead'], keyContains: 'zzz' }, { since, afterId: 0, fromId: 0, ids: [] })).toEqual([]);
  });

  it('counts jobs by pipeline and state, and what ended per interval with the event lag from the attempt log', async () => {
    const l = open();
    const a = await started(l, 'a.jpg', { changedAt: 10_000 });
    await l.finish(a.id, { state: 'done', outputs: [], deduplicated: false, attempt: record({ outcome: 'done', startedAt: 10_500 }) });
    const b = await started(l, 'b.jpg', { changedAt: 10_000 });
    await l.finish(b.id, { state: 'dead', error: 'corrupt', attempt: record({ outcome: 'dead', startedAt: 11_500 }) });
    const c = await started(l, 'c.jpg', { pipeline: 'q' });
    await l.finish(c.id, { state: 'done', outputs: [], deduplicated: false }); // no record: no lag
    await l.upsert(job('d.jpg', { pipeline: 'q' }));
    // A clock ahead of the writer's (the change after the start): no negative lag.
    const e = await started(l, 'e.jpg', { pipeline: 'r', changedAt: 20_000 });
    await l.finish(e.id, { state: 'done', outputs: [], deduplicated: false, attempt: record({ outcome: 'done', startedAt: 19_000 }) });

    const zero = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
    expect(await l.jobList.countsByPipeline()).toEqual({ p: { ...zero, done: 1, dead: 1 }, q: { ...zero, done: 1, queued: 1 }, r: { ...zero, done: 1 } });

    const ended = await l.jobList.activity(Date.now() - 600_000, 60_000);
    const of = (pipeline: string) => ended.filter((x) => x.pipeline === pipeline);
    expect(ended.every((x) => x.at % 60_000 === 0)).toBe(true);
    const sum = (xs: typeof ended, f: (x: (typeof ended)[number]) => number) => xs.reduce((n, x) => n + f(x), 0);
    expect([sum(of('p'), (x) => x.done), sum(of('p'), (x) => x.dead)]).toEqual([1, 1]);
    // Lag: a 500 ms, b 1500 ms (from their change to their first attempt's start).
    expect(Math.max(...of('p').map((x) => x.lagMaxMs!))).toBe(1500);
    expect(sum(of('p'), (x) => x.lagMeanMs! * (x.done + x.dead))).toBe(2000);
    expect(of('q').map((x) => [x.done, x.lagMeanMs])).toEqual([[1, null]]);
    expect(of('r').map((x) => x.lagMaxMs)).toEqual([0]);
    expect(await l.jobList.activity(FUTURE(), 60_000)).toEqual([]);
  });

  it('retries the dead letters of one pipeline, and only those', async () => {
    const l = open();
    const [a, b, c] = [await started(l, 'a.jpg'), await started(l, 'b.jpg'), await started(l, 'a.jpg', { pipeline: 'q' })];
    for (const j of [a, b, c]) await l.finish(j.id, { state: 'dead', error: 'corrupt' });
    expect(await l.retryDead({ pipeline: 'p' })).toBe(2);
    expect((await l.jobList.findJobs({ states: ['dead'] })).map((j) => j.id)).toEqual([c.id]);
    expect(await l.retryDead({ pipeline: 'nothing-here' })).toBe(0);
    expect(await l.get(a.id)).toMatchObject({ state: 'queued', attempts: 0 });
  });
}
