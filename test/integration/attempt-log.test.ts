/** The runner records every attempt in the ledger's attempt log: what the dashboard's job page shows. */
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { Job } from '../../src/ledger/ledger.js';
import { workerId } from '../../src/owner.js';
import { Service } from '../../src/service.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let ws: ReturnType<typeof workspace>;
let service: Service | undefined;

beforeEach(() => { ws = workspace('mf-attempts-'); });
afterEach(async () => {
  await service?.stop();
  service = undefined;
  ws.cleanup();
});

const jobOf = async (s: Service, key: string, state: string): Promise<Job> =>
  waitFor(`${key} ${state}`, async () => (await s.ledger.jobList.findJobs({ keyContains: key })).find((j) => j.key === key && j.state === state));

it('records a render with its steps\' times, a copy with the job it copied from, and a dead letter with its error and step', async () => {
  service = new Service({
    pipelines: [ws.pipeline({ steps: [{ id: 'thumb', use: 'thumbnail', width: 64, format: 'png' }, { id: 'meta', use: 'metadata' }] })],
    dataDir: ws.data, concurrency: 1, pollMs: 50,
  });
  await service.start();
  copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
  const a = await jobOf(service, 'a.jpg', 'done');
  expect(a.attemptLog).toHaveLength(1);
  const [rendered] = a.attemptLog;
  expect(rendered).toMatchObject({ attempt: 1, outcome: 'done', worker: workerId(), steps: [{ step: 'thumb' }, { step: 'meta' }] });
  expect(rendered!.copiedFrom).toBeUndefined();
  expect(rendered!.endedAt).toBeGreaterThanOrEqual(rendered!.startedAt);
  expect(rendered!.steps.every((s) => Number.isInteger(s.ms) && s.ms >= 0)).toBe(true);

  copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'b.jpg'));
  const b = await jobOf(service, 'b.jpg', 'done');
  expect(b.attemptLog).toMatchObject([{ outcome: 'done', copiedFrom: a.id, steps: [] }]);

  copyFileSync(fixture('truncated.jpg'), path.join(ws.inbox, 'c.jpg'));
  const c = await jobOf(service, 'c.jpg', 'dead');
  expect(c.attemptLog).toMatchObject([{ attempt: 1, outcome: 'dead', step: 'thumb', error: c.error }]);
});

it('records each failed attempt before the dead letter, with the error of each', async () => {
  writeFileSync(ws.out, 'a file where the output folder should be');
  service = new Service({ pipelines: [ws.pipeline({ retry: { attempts: 2, backoffMs: 10 } })], dataDir: ws.data, concurrency: 1, pollMs: 50 });
  await service.start();
  copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
  const a = await jobOf(service, 'a.jpg', 'dead');
  // The write failed, not a step: no step is named.
  expect(a.attemptLog.map((r) => [r.attempt, r.outcome, r.step])).toEqual([[1, 'failed', undefined], [2, 'dead', undefined]]);
  expect(a.attemptLog.every((r) => r.error && /ENOTDIR|EEXIST|not a directory/i.test(r.error))).toBe(true);
});
