import { appendFileSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MediaEvent } from '../../src/events/media-event.js';
import { pino } from 'pino';
import { silentLogger } from '../../src/log.js';
import { FolderSource } from '../../src/sources/folder-source.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('folder source (one watch per folder, real file system)', () => {
  let ws: ReturnType<typeof workspace>;
  let source: FolderSource;
  let events: MediaEvent[];

  const created = () => events.filter((e) => e.type === 'created').map((e) => e.data.key).sort();
  const removed = () => events.filter((e) => e.type === 'removed').map((e) => e.data.key).sort();
  const file = (rel: string, body = rel) => {
    mkdirSync(path.dirname(path.join(ws.inbox, rel)), { recursive: true });
    writeFileSync(path.join(ws.inbox, rel), body);
  };

  async function start(options: Partial<ConstructorParameters<typeof FolderSource>[0]> = {}) {
    source = new FolderSource({ root: ws.inbox, stableMs: 40, followSymlinks: false, reconcileIntervalMs: 0, logger: silentLogger, ...options });
    await source.start(async (e) => { events.push(e); });
  }

  beforeEach(() => {
    ws = workspace('mf-fsrc-');
    events = [];
  });
  afterEach(async () => {
    await source?.stop();
    ws.cleanup();
  });

  it('finds files already there, in nested folders, and watches folders, not files', async () => {
    for (let i = 0; i < 50; i++) file(`a/b/${i}.jpg`);
    file('top.jpg');
    file('.hidden/x.jpg');
    await start();
    await waitFor('51 files', () => created().length === 51); // just written: each waits stableMs first
    expect(created()).not.toContain('.hidden/x.jpg');
    // inbox, a, a/b: one watch each, none for the 51 files or the ignored folder.
    expect(source.watchedFolders).toBe(3);
  });

  it('sees files in folders made with mkdir -p and written at once, and files added there later', async () => {
    await start();
    mkdirSync(path.join(ws.inbox, 'x/y/z'), { recursive: true });
    writeFileSync(path.join(ws.inbox, 'x/y/z/first.jpg'), 'first');
    await waitFor('first.jpg', () => created().includes('x/y/z/first.jpg'));
    writeFileSync(path.join(ws.inbox, 'x/y/z/later.jpg'), 'later');
    writeFileSync(path.join(ws.inbox, 'x/y/mid.jpg'), 'mid');
    await waitFor('later files', () => created().includes('x/y/z/later.jpg') && created().includes('x/y/mid.jpg'));
  });

  it('takes a folder moved in with its files, then watches it under its new name when renamed', async () => {
    await start();
    const outside = path.join(ws.root, 'upload');
    mkdirSync(path.join(outside, 'deep'), { recursive: true });
    writeFileSync(path.join(outside, 'a.jpg'), 'a');
    writeFileSync(path.join(outside, 'deep/b.jpg'), 'b');
    renameSync(outside, path.join(ws.inbox, 'batch'));
    await waitFor('moved-in files', () => created().includes('batch/a.jpg') && created().includes('batch/deep/b.jpg'));

    renameSync(path.join(ws.inbox, 'batch'), path.join(ws.inbox, 'renamed'));
    await sleep(100);
    writeFileSync(path.join(ws.inbox, 'renamed/deep/c.jpg'), 'c');
    await waitFor('file in the renamed folder', () => created().includes('renamed/deep/c.jpg'));
    expect(created()).not.toContain('batch/deep/c.jpg');
    // The old name left as a folder: one removal covering what was under it.
    expect(events.filter((e) => e.type === 'removed').map((e) => [e.data.key, e.data.folder])).toEqual([['batch', true]]);
  });

  it('reports a folder moved out as one removal of the folder, its files included', async () => {
    file('keep.jpg');
    file('trip/a.jpg');
    file('trip/day1/b.jpg');
    await start();
    await waitFor('3 files', () => created().length === 3);
    renameSync(path.join(ws.inbox, 'trip'), path.join(ws.root, 'away'));
    await waitFor('the folder removed', () => removed().includes('trip'));
    expect(events.find((e) => e.type === 'removed')?.data).toMatchObject({ key: 'trip', folder: true });
    await waitFor('watches of the folders moved out closed', () => source.watchedFolders === 1);
    // Their files send nothing of their own, and nothing else was reported.
    await sleep(100);
    expect(removed()).toEqual(['trip']);
  });

  it('reports each file of a removed folder as removed, and each removed file', async () => {
    file('keep.jpg');
    file('dir/one.jpg');
    file('dir/sub/two.jpg');
    await start();
    await waitFor('3 files', () => created().length === 3);
    rmSync(path.join(ws.inbox, 'dir'), { recursive: true });
    await waitFor('removals', () => removed().includes('dir/one.jpg') && removed().includes('dir/sub/two.jpg'));
    expect(removed()).not.toContain('keep.jpg');
    await waitFor('watches of the removed folders closed', () => source.watchedFolders === 1);
  });

  it('waits for a file written in pieces, and emits it once, complete', async () => {
    await start({ stableMs: 150 });
    const p = path.join(ws.inbox, 'slow.jpg');
    writeFileSync(p, 'x');
    for (let i = 0; i < 5; i++) {
      await sleep(60); // pauses shorter than stableMs
      appendFileSync(p, 'x');
    }
    await waitFor('slow.jpg', () => created().includes('slow.jpg'));
    await sleep(300);
    const mine = events.filter((e) => e.data.key === 'slow.jpg');
    expect(mine).toHaveLength(1);
    expect(mine[0]!.type === 'created' && mine[0]!.data.size).toBe(6);
  });

  it('ignores a temporary name and takes the file once it is renamed into place', async () => {
    await start();
    writeFileSync(path.join(ws.inbox, 'photo.jpg.part'), 'data');
    await sleep(150);
    expect(created()).toEqual([]);
    renameSync(path.join(ws.inbox, 'photo.jpg.part'), path.join(ws.inbox, 'photo.jpg'));
    await waitFor('photo.jpg', () => created().includes('photo.jpg'));
    expect(created()).toEqual(['photo.jpg']);
  });

  it('does not follow a symbolic link unless asked, and never out of the folder', async () => {
    writeFileSync(path.join(ws.root, 'outside.jpg'), 'secret');
    file('real.jpg');
    await start({ followSymlinks: true });
    symlinkSync(path.join(ws.root, 'outside.jpg'), path.join(ws.inbox, 'escape.jpg'));
    symlinkSync(path.join(ws.inbox, 'real.jpg'), path.join(ws.inbox, 'inside.jpg'));
    await waitFor('inside link', () => created().includes('inside.jpg'));
    await sleep(100);
    expect(created()).not.toContain('escape.jpg');
  });

  it('logs a symbolic link present at start the way it logs one made later, and never enters a linked folder', async () => {
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => { logged.push(JSON.parse(line)); } });
    const warned = () => logged.filter((l) => l.msg === 'symbolic link not followed').map((l) => l.key).sort();
    writeFileSync(path.join(ws.root, 'outside.jpg'), 'secret');
    mkdirSync(path.join(ws.root, 'elsewhere'));
    writeFileSync(path.join(ws.root, 'elsewhere/x.jpg'), 'x');
    file('real.jpg');
    file('sub/y.jpg');
    symlinkSync(path.join(ws.root, 'outside.jpg'), path.join(ws.inbox, 'escape.jpg'));
    symlinkSync(path.join(ws.inbox, 'real.jpg'), path.join(ws.inbox, 'inside.jpg'));
    symlinkSync(path.join(ws.root, 'elsewhere'), path.join(ws.inbox, 'linked-out'));
    symlinkSync(path.join(ws.inbox, 'sub'), path.join(ws.inbox, 'linked-in'));
    await start({ logger });
    await waitFor('links present at start logged', () => warned().length === 4);
    symlinkSync(path.join(ws.inbox, 'real.jpg'), path.join(ws.inbox, 'later.jpg'));
    await waitFor('link made later logged', () => warned().includes('later.jpg'));
    await source.caughtUp();
    await sleep(100);
    expect(warned()).toEqual(['escape.jpg', 'inside.jpg', 'later.jpg', 'linked-in', 'linked-out']);
    const lineOf = (key: string) => logged.find((l) => l.key === key)!;
    expect(lineOf('inside.jpg')).toMatchObject({ level: 40, source: source.name, msg: 'symbolic link not followed' });
    const shape = (l: Record<string, unknown>) => Object.keys(l).filter((k) => k !== 'time' && k !== 'key').sort();
    expect(shape(lineOf('inside.jpg'))).toEqual(shape(lineOf('later.jpg')));
    expect(created()).toEqual(['real.jpg', 'sub/y.jpg']);
  });

  it('follows a link present at start when asked, only inside the folder, and still does not enter a linked folder', async () => {
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => { logged.push(JSON.parse(line)); } });
    writeFileSync(path.join(ws.root, 'outside.jpg'), 'secret');
    file('real.jpg');
    file('sub/y.jpg');
    symlinkSync(path.join(ws.root, 'outside.jpg'), path.join(ws.inbox, 'escape.jpg'));
    symlinkSync(path.join(ws.inbox, 'real.jpg'), path.join(ws.inbox, 'inside.jpg'));
    symlinkSync(path.join(ws.inbox, 'sub'), path.join(ws.inbox, 'linked-in'));
    await start({ followSymlinks: true, logger });
    await waitFor('inside link', () => created().includes('inside.jpg'));
    await waitFor('escape logged', () => logged.some((l) => l.key === 'escape.jpg' && l.msg === 'symbolic link not followed'));
    await source.caughtUp();
    await sleep(100);
    expect(created()).toEqual(['inside.jpg', 'real.jpg', 'sub/y.jpg']);
  });

  it('walks the folder again when asked while a walk runs, so nothing found in between is left', async () => {
    const old = new Date(Date.now() - 60_000);
    for (let i = 0; i < 200; i++) {
      file(`${i}.jpg`);
      utimesSync(path.join(ws.inbox, `${i}.jpg`), old, old); // finished long ago: each walk emits it at once
    }
    let slow = true;
    source = new FolderSource({ root: ws.inbox, stableMs: 40, followSymlinks: false, reconcileIntervalMs: 0, logger: silentLogger });
    await source.start(async (e) => {
      events.push(e);
      if (slow) await sleep(1); // a walk that takes a while, as with backpressure
    });
    // A walk asked for during the start-up walk (the interval, or a burst of events) runs after it.
    (source as unknown as { walk(why: string): void }).walk('test');
    await source.caughtUp();
    slow = false;
    const counts = new Map<string, number>();
    for (const key of created()) counts.set(key, (counts.get(key) ?? 0) + 1);
    expect(counts.size).toBe(200);
    expect([...counts.values()].every((n) => n === 2)).toBe(true);
  });
});
