import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LoadedPipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let ws: ReturnType<typeof workspace>;
let services: Service[] = [];

function start(pipelines: LoadedPipeline[], extra: Partial<ConstructorParameters<typeof Service>[0]> = {}): Service {
  const s = new Service({ pipelines, dataDir: ws.data, concurrency: 2, pollMs: 50, ...extra });
  services.push(s);
  return s;
}

async function stopAll() {
  await Promise.all(services.map((s) => s.stop()));
  services = [];
}

const jobsOf = async (s: Service) => [...(await s.ledger.list('done', 1000)), ...(await s.ledger.list('dead', 1000)), ...(await s.ledger.list('queued', 1000)), ...(await s.ledger.list('failed', 1000)), ...(await s.ledger.list('superseded', 1000))];
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeEach(() => { ws = workspace(); });
afterEach(async () => { await stopAll(); ws.cleanup(); });

describe('folder to folder', () => {
  it('processes dropped photos into oriented outputs and counts them done', async () => {
    const p = ws.pipeline({
      steps: [{ id: 'thumb', use: 'thumbnail', width: 200, height: 200, format: 'webp' }, { id: 'meta', use: 'metadata' }],
    });
    const s = start([p]);
    await s.start();
    for (const f of ['Landscape_6.jpg', 'Portrait_1.jpg', 'with-alpha.png']) copyFileSync(fixture(f), path.join(ws.inbox, f));
    mkdirSync(path.join(ws.inbox, 'trip/day1'), { recursive: true });
    copyFileSync(fixture('flowers.jpeg'), path.join(ws.inbox, 'trip/day1/flowers.jpeg'));
    await waitFor('4 jobs done', async () => (await s.ledger.counts()).done === 4);
    const land = await sharp(path.join(ws.out, 'Landscape_6/thumb.webp')).metadata();
    expect(land.width! > land.height!).toBe(true);
    const portrait = await sharp(path.join(ws.out, 'Portrait_1/thumb.webp')).metadata();
    expect(portrait.height! > portrait.width!).toBe(true);
    expect((await sharp(path.join(ws.out, 'with-alpha/thumb.webp')).metadata()).hasAlpha).toBe(true);
    const meta = JSON.parse(readFileSync(path.join(ws.out, 'trip/day1/flowers/meta.json'), 'utf8'));
    expect(meta).toMatchObject({ format: 'jpeg', width: 1920, height: 1080, sha256: sha(fixture('flowers.jpeg')) });
  });

  it('same bytes under a new name: outputs copied, no image work; a restart re-renders nothing', async () => {
    const p = ws.pipeline({});
    let s = start([p]);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('a done', async () => (await s.ledger.counts()).done === 1);
    let steps = 0;
    s.on('step', () => steps++);
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'b.jpg'));
    await waitFor('b done', async () => (await s.ledger.counts()).done === 2);
    expect(steps).toBe(0);
    expect((await s.ledger.counts()).deduplicated).toBe(1);
    expect(readFileSync(path.join(ws.out, 'b/thumb.png'))).toEqual(readFileSync(path.join(ws.out, 'a/thumb.png')));
    await stopAll();

    s = start([p]);
    s.on('step', () => steps++);
    s.on('job', () => steps++);
    await s.start();
    await (s.sources[0] as unknown as { caughtUp(): Promise<void> }).caughtUp();
    await s.idle();
    expect(steps).toBe(0);
    expect((await s.ledger.counts())).toMatchObject({ done: 2, queued: 0 });
    expect((await s.ledger.renderCounts())).toEqual([expect.objectContaining({ renders: 1 })]);
  });

  it('editing the steps reprocesses; editing nothing else does', async () => {
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    let s = start([ws.pipeline({})]);
    await s.start();
    await waitFor('done', async () => (await s.ledger.counts()).done === 1);
    await stopAll();
    s = start([ws.pipeline({ concurrency: 3, retry: { attempts: 5 } })]);
    await s.start();
    await (s.sources[0] as unknown as { caughtUp(): Promise<void> }).caughtUp();
    await s.idle();
    expect((await s.ledger.counts()).done).toBe(1);
    await stopAll();
    s = start([ws.pipeline({ steps: [{ id: 'thumb', use: 'thumbnail', width: 32, format: 'png' }] })]);
    await s.start();
    await waitFor('re-rendered', async () => (await s.ledger.counts()).done === 2);
    expect((await sharp(path.join(ws.out, 'a/thumb.png')).metadata()).width).toBe(32);
  });

  it('a newer version of a key supersedes a queued older one', async () => {
    const p = ws.pipeline({ steps: [{ id: 'meta', use: 'metadata' }] });
    const s = start([p], { concurrency: 1 });
    copyFileSync(fixture('G31D.TIF'), path.join(ws.inbox, 'big.tif'));
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    const store = `folder:${ws.inbox}`;
    await s.intake.add(p, store, 'big.tif', 'big.tif', 'v1'); // occupies the only slot
    const older = await s.intake.add(p, store, 'a.jpg', 'a.jpg', 'v1');
    copyFileSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    const newer = await s.intake.add(p, store, 'a.jpg', 'a.jpg', 'v2');
    await s.idle();
    expect((await s.ledger.get(older.id))!.state).toBe('superseded');
    expect((await s.ledger.get(newer.id))!.state).toBe('done');
    expect(JSON.parse(readFileSync(path.join(ws.out, 'a/meta.json'), 'utf8')).sha256).toBe(sha(fixture('Portrait_1.jpg')));
  });

  it('retries a failing write with backoff, then succeeds once the fault is gone', async () => {
    writeFileSync(ws.out, 'not a folder'); // every write under out/ fails with ENOTDIR
    const s = start([ws.pipeline({ retry: { attempts: 5, backoffMs: 50 } })]);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    const failed = await waitFor('a failed attempt', async () => (await s.ledger.list('failed'))[0]);
    expect(failed.error).toMatch(/ENOTDIR|EEXIST/);
    unlinkSync(ws.out);
    await waitFor('done after retry', async () => (await s.ledger.counts()).done === 1);
    const job = (await s.ledger.list('done'))[0]!;
    expect(job.attempts).toBeGreaterThanOrEqual(2);
  });

  it('becomes a dead letter after the last attempt, with the error', async () => {
    writeFileSync(ws.out, 'not a folder');
    const s = start([ws.pipeline({ retry: { attempts: 2, backoffMs: 10 } })]);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    const dead = await waitFor('dead letter', async () => (await s.ledger.list('dead'))[0]);
    expect(dead.attempts).toBe(2);
    expect(dead.error).toMatch(/ENOTDIR|EEXIST/);
  });

  it('corrupt and non-image inputs become dead letters at once with a readable reason; the service goes on', async () => {
    const s = start([ws.pipeline({})]);
    await s.start();
    copyFileSync(fixture('corrupt-header.jpg'), path.join(ws.inbox, 'corrupt.jpg'));
    writeFileSync(path.join(ws.inbox, 'notes.jpg'), 'this is not an image\n');
    writeFileSync(path.join(ws.inbox, 'empty.jpg'), '');
    await waitFor('3 dead', async () => (await s.ledger.counts()).dead === 3);
    for (const j of (await s.ledger.list('dead'))) {
      expect(j.attempts).toBe(1);
      expect(j.error).toContain(j.key);
    }
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'good.jpg'));
    await waitFor('good done', async () => (await s.ledger.counts()).done === 1);
  });

  it('does not read a slowly written file before its writes finish', async () => {
    const s = start([ws.pipeline({ source: { type: 'folder', path: './inbox', stableMs: 300 } })]);
    await s.start();
    const bytes = readFileSync(fixture('flowers.jpeg'));
    const target = path.join(ws.inbox, 'slow.jpg');
    const fd = openSync(target, 'w');
    const chunk = Math.ceil(bytes.length / 10);
    for (let i = 0; i < bytes.length; i += chunk) {
      writeSync(fd, bytes.subarray(i, i + chunk));
      await new Promise((r) => setTimeout(r, 60));
    }
    closeSync(fd);
    await waitFor('done', async () => (await s.ledger.counts()).done === 1);
    await s.idle();
    const jobs = await jobsOf(s);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.sha256).toBe(sha(fixture('flowers.jpeg')));
  });

  it('ignores temp names until they are renamed into place', async () => {
    const s = start([ws.pipeline({})]);
    await s.start();
    for (const name of ['x.jpg.part', 'x.jpg.tmp', 'x.jpg.crdownload', '~x.jpg', '.x.jpg']) copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, name));
    await new Promise((r) => setTimeout(r, 400));
    expect(await jobsOf(s)).toHaveLength(0);
    renameSync(path.join(ws.inbox, 'x.jpg.part'), path.join(ws.inbox, 'x.jpg'));
    await waitFor('renamed file done', async () => (await s.ledger.counts()).done === 1);
    expect(existsSync(path.join(ws.out, 'x/thumb.png'))).toBe(true);
  });

  it('onDelete delete-outputs removes the outputs of a removed input; keep leaves them', async () => {
    const del = ws.pipeline({ name: 'del', onDelete: 'delete-outputs', output: { type: 'folder', path: './out/del' } });
    const keep = ws.pipeline({ name: 'keep', output: { type: 'folder', path: './out/keep' } });
    const s = start([del, keep]);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await waitFor('both done', async () => (await s.ledger.counts()).done === 2);
    rmSync(path.join(ws.inbox, 'a.jpg'));
    await waitFor('outputs deleted', () => !existsSync(path.join(ws.out, 'del/a/thumb.png')));
    expect(existsSync(path.join(ws.out, 'keep/a/thumb.png'))).toBe(true);
  });

  it('onDelete delete-outputs: a folder moved out of the inbox takes the outputs of every file below it', async () => {
    const del = ws.pipeline({ name: 'del', onDelete: 'delete-outputs', output: { type: 'folder', path: './out/del' } });
    const keep = ws.pipeline({ name: 'keep', output: { type: 'folder', path: './out/keep' } });
    const s = start([del, keep]);
    await s.start();
    mkdirSync(path.join(ws.inbox, 'trip/day1'), { recursive: true });
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'trip/a.jpg'));
    copyFileSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'trip/day1/b.jpg'));
    copyFileSync(fixture('flowers.jpeg'), path.join(ws.inbox, 'trip.jpg'));
    await waitFor('6 jobs done', async () => (await s.ledger.counts()).done === 6);
    // Moved out, the folder's files send no events: only the folder's own name goes.
    const away = path.join(ws.root, 'away');
    renameSync(path.join(ws.inbox, 'trip'), away);
    await waitFor('outputs below the folder deleted', () =>
      !existsSync(path.join(ws.out, 'del/trip/a/thumb.png')) && !existsSync(path.join(ws.out, 'del/trip/day1/b/thumb.png')));
    await waitFor('their jobs marked removed', async () => (await s.ledger.counts()).removed === 2);
    expect(existsSync(path.join(ws.out, 'del/trip/thumb.png'))).toBe(true); // trip.jpg, beside the folder
    expect(existsSync(path.join(ws.out, 'keep/trip/a/thumb.png'))).toBe(true);
    expect(existsSync(path.join(ws.out, 'keep/trip/day1/b/thumb.png'))).toBe(true);
    expect(existsSync(path.join(away, 'day1/b.jpg'))).toBe(true);
  });

  it('processes files present at start (catch-up) and does not follow symlinks out of the folder', async () => {
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'before.jpg'));
    const { symlinkSync } = await import('node:fs');
    symlinkSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'link.jpg'));
    const s = start([ws.pipeline({})]);
    await s.start();
    await waitFor('catch-up done', async () => (await s.ledger.counts()).done === 1);
    await new Promise((r) => setTimeout(r, 200));
    symlinkSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'link2.jpg'));
    await new Promise((r) => setTimeout(r, 300));
    await s.idle();
    expect((await jobsOf(s)).map((j) => j.key)).toEqual(['before.jpg']);
  });

  it('removes temp files that writes interrupted by a crash left (outputs, spooled inputs), and nothing else', async () => {
    const day = new Date(Date.now() - 86_400_000);
    const put = (rel: string, old: boolean) => {
      const file = path.join(ws.out, rel);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, 'x');
      if (old) utimesSync(file, day, day);
      return file;
    };
    const stale = [put('.a.jpg.0123456789ab.mediaflow-tmp', true), put('deep/.b.webp.abcdef012345.mediaflow-tmp', true)];
    const kept = [
      put('.c.jpg.0123456789ab.mediaflow-tmp', false), // young: a write may be running (another instance)
      put('a.jpg', true), put('.hidden', true), put('x.mediaflow-tmp', true), // not our temp names
    ];
    const spooled = path.join(ws.data, 'tmp', 'input-0123456789abcdef'); // a large input spooled when the crash came
    mkdirSync(path.dirname(spooled), { recursive: true });
    writeFileSync(spooled, 'x');
    utimesSync(spooled, day, day);
    stale.push(spooled);
    const s = start([ws.pipeline({})]);
    await s.start();
    await waitFor('stale temp files removed', () => stale.every((f) => !existsSync(f)));
    await s.idle();
    for (const f of kept) expect(existsSync(f)).toBe(true);
  });
});
