import type { Stats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { makeEvent, type MediaEvent } from '../events/media-event.js';
import type { Logger } from '../log.js';
import { MediaflowError } from '../errors.js';
import { isInside } from '../paths.js';
import { toKey } from '../stores/folder-store.js';
import { DirectoryWatcher } from './directory-watcher.js';
import type { Source } from './source.js';

export interface FolderSourceOptions {
  root: string;
  /** A file is taken once size and mtime have not changed for this long. */
  stableMs: number;
  followSymlinks: boolean;
  /** Re-walk the folder at this interval (0: only at start). */
  reconcileIntervalMs: number;
  logger: Logger;
}

/** Names of files still being written by their writer: ignored until renamed into place. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') || name.startsWith('~') || /\.(part|tmp|crdownload)$/i.test(name);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Watches a folder tree and turns finished files into events. A file is
 * taken once its size and mtime have held still for stableMs, whether the
 * watcher or a walk found it; the watcher (one watch per folder, see
 * DirectoryWatcher) only says which name to look at.
 */
export class FolderSource implements Source {
  readonly name: string;
  private readonly root: string;
  private watcher: DirectoryWatcher | null = null;
  private emit: ((e: MediaEvent) => Promise<void>) | null = null;
  /**
   * Files waiting to settle: path -> generation. Every event bumps the
   * generation; one check loop per file runs until it sees a generation
   * that no event has bumped since its last look.
   */
  private readonly settling = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private walking: Promise<void> | null = null;
  /** A walk was asked for while one ran (a burst, a new interval): walk again after it. */
  private walkAgain = false;

  constructor(readonly options: FolderSourceOptions) {
    this.root = path.resolve(options.root);
    this.name = `folder:${this.root}`;
  }

  get ready(): boolean {
    return this.watcher !== null && !this.stopped && this.watcher.isWatched(this.root);
  }

  /** Folders watched, one watch each (tests, benchmarks). */
  get watchedFolders(): number {
    return this.watcher?.size ?? 0;
  }

  async start(emit: (e: MediaEvent) => Promise<void>): Promise<void> {
    this.emit = emit;
    this.watcher = new DirectoryWatcher({
      ignore: isTempName,
      onName: (file) => this.changed(file),
      onBurst: () => this.walk('burst'),
      onError: (err, dir) => this.options.logger.error({ err, source: this.name, dir }, 'folder watch failed'),
    });
    // The root is watched before start() returns; the walk below watches each sub-folder before listing it.
    if (!this.watcher.watch(this.root)) throw new MediaflowError('E_CONFIG', `${this.root}: cannot watch this folder`);
    this.walk('start');
    if (this.options.reconcileIntervalMs > 0) {
      this.timer = setInterval(() => this.walk('interval'), this.options.reconcileIntervalMs);
      this.timer.unref();
    }
  }

  /** Resolves when the walks asked for so far have emitted everything they found (tests, benchmarks). */
  async caughtUp(): Promise<void> {
    while (this.walking) await this.walking;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.settling.clear();
    this.watcher?.close();
  }

  private keyOf(file: string): string {
    return toKey(this.root, file);
  }

  /** Walks the whole tree (at start, on the interval, after a burst); one walk at a time. */
  private walk(why: string): void {
    if (this.stopped) return;
    if (this.walking) {
      this.walkAgain = true;
      return;
    }
    this.walking = this.walkTree(this.root)
      .catch((err) => this.options.logger.error({ err, source: this.name, why }, 'folder walk failed'))
      .finally(() => {
        this.walking = null;
        if (this.walkAgain) {
          this.walkAgain = false;
          this.walk('again');
        }
      });
  }

  private async walkTree(dir: string): Promise<void> {
    // Links come too, followed or not: check() follows them or logs the refusal, as for a link made later.
    for await (const { file } of this.watcher!.walk(dir)) {
      if (this.stopped) return;
      const st = await lstat(file).catch(() => null);
      // Awaited: an emit inline applies backpressure to the walk.
      if (st) await this.take(file, st);
    }
  }

  /** The watcher named this path: a file to settle, a new folder to walk, or something gone. */
  private changed(file: string): void {
    if (this.stopped) return;
    if (this.settling.has(file)) {
      this.settle(file); // its check loop is running: bump the generation, no extra lstat
      return;
    }
    lstat(file).then((st) => {
      if (this.stopped) return;
      if (st.isDirectory()) {
        // Created or moved in: its files may already be there and its sub-folders unwatched.
        if (!this.watcher!.isWatched(file)) {
          this.walkTree(file).catch((err) => this.options.logger.error({ err, source: this.name, dir: file }, 'folder walk failed'));
        }
      } else {
        void this.take(file, st);
      }
    }, (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') {
        this.options.logger.error({ err, source: this.name, file }, 'could not read file');
      } else if (this.watcher!.isWatched(file)) {
        // A folder removed or moved away. Moved away, its files send no events of their own: the removal covers them all.
        this.watcher!.unwatch(file);
        this.removed(file, true);
      } else {
        this.removed(file);
      }
    });
  }

  /**
   * A file found by a walk or an event: one already finished (older than
   * stableMs, moved in or there all along) is emitted at once, without a
   * wait; any other waits in its settle loop.
   */
  private async take(file: string, st: Stats): Promise<void> {
    if (Date.now() - st.mtimeMs >= this.options.stableMs && !this.settling.has(file)) await this.check(file, st);
    else this.settle(file);
  }

  private settle(file: string): void {
    if (this.stopped) return;
    const gen = this.settling.get(file);
    this.settling.set(file, (gen ?? 0) + 1);
    if (gen === undefined) void this.check(file);
  }

  /**
   * Waits until size and mtime hold still for stableMs and no event came in
   * meanwhile, then emits. `known`: stats of a file the walk found old enough,
   * emitted without waiting.
   */
  private async check(file: string, known?: Stats): Promise<void> {
    try {
      let st: Stats;
      if (known) st = known;
      else {
        for (;;) {
          const seen = this.settling.get(file);
          st = await lstat(file);
          const age = Date.now() - st.mtimeMs;
          if (this.stopped || this.settling.get(file) === undefined) return;
          if (age >= this.options.stableMs && this.settling.get(file) === seen) break;
          await sleep(Math.max(10, Math.min(this.options.stableMs, this.options.stableMs - age + 5)));
          if (this.stopped || this.settling.get(file) === undefined) return;
        }
        this.settling.delete(file);
      }
      if (st.isSymbolicLink()) {
        if (!this.options.followSymlinks || !(await this.insideRoot(file))) {
          this.options.logger.warn({ source: this.name, key: this.keyOf(file) }, 'symbolic link not followed');
          return;
        }
        st = await stat(file);
      }
      if (!st.isFile() || this.stopped) return;
      await this.emit!(makeEvent(this.name, 'created', {
        store: this.name, key: this.keyOf(file), size: st.size, mtimeMs: st.mtimeMs, changedAtMs: st.mtimeMs,
      }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // Gone while settling: an earlier version may have been emitted, and its removal event came to this loop.
        if (!known && this.settling.delete(file)) this.removed(file);
        return;
      }
      if (!known) this.settling.delete(file);
      this.options.logger.error({ err, source: this.name, file }, 'could not read file');
    }
  }

  private async insideRoot(file: string): Promise<boolean> {
    try {
      return isInside(await realpath(this.root), await realpath(file));
    } catch {
      return false;
    }
  }

  /** `folder`: a folder left, and with it every file below it. */
  private removed(file: string, folder = false): void {
    if (this.stopped) return;
    this.settling.delete(file);
    void this.emit!(makeEvent(this.name, 'removed', { store: this.name, key: this.keyOf(file), ...(folder && { folder: true }) }))
      .catch((err) => this.options.logger.error({ err, source: this.name }, 'removed event failed'));
  }
}
