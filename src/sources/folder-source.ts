import { watch, type FSWatcher } from 'chokidar';
import type { Stats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { makeEvent, type MediaEvent } from '../events/media-event.js';
import type { Logger } from '../log.js';
import { walk } from '../stores/folder-store.js';
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

/** chokidar drops a 'change' that comes within 50 ms of the previous one (its _throttle), with no trailing event. */
const CHANGE_THROTTLE_MS = 60;

/**
 * Watches a folder with chokidar and turns finished files into events.
 * chokidar's awaitWriteFinish only watches the size and skips files found by
 * its initial scan, so stability (size and mtime) is checked here, for every
 * file, whether the watcher or the catch-up walk found it.
 */
export class FolderSource implements Source {
  readonly name: string;
  private watcher: FSWatcher | null = null;
  private emit: ((e: MediaEvent) => Promise<void>) | null = null;
  /** Files waiting to settle: path -> generation, so a newer change restarts the wait. */
  private readonly settling = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private watching = false;
  private walking: Promise<void> | null = null;

  constructor(readonly options: FolderSourceOptions) {
    const o = options;
    this.name = `folder:${path.resolve(o.root)}`;
  }

  get ready(): boolean {
    return this.watching;
  }

  async start(emit: (e: MediaEvent) => Promise<void>): Promise<void> {
    this.emit = emit;
    const root = path.resolve(this.options.root);
    // Watch first, then walk: anything arriving during the walk is seen by one or both.
    this.watcher = watch(root, {
      ignoreInitial: true,
      followSymlinks: this.options.followSymlinks,
      ignored: (p: string) => p !== root && isTempName(path.basename(p)),
      awaitWriteFinish: false,
    });
    this.watcher.on('add', (p) => this.settle(p));
    this.watcher.on('change', (p) => this.settle(p));
    this.watcher.on('unlink', (p) => this.removed(p));
    this.watcher.on('error', (err) => this.options.logger.error({ err, source: this.name }, 'folder watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.watching = true;
    this.walking = this.catchUp();
    if (this.options.reconcileIntervalMs > 0) {
      this.timer = setInterval(() => {
        if (!this.walking) this.walking = this.catchUp();
      }, this.options.reconcileIntervalMs);
      this.timer.unref();
    }
  }

  /** Resolves when the start-up walk has emitted everything it found (tests, benchmarks). */
  async caughtUp(): Promise<void> {
    await this.walking;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watching = false;
    if (this.timer) clearInterval(this.timer);
    this.settling.clear();
    await this.watcher?.close();
  }

  private keyOf(file: string): string {
    return path.relative(path.resolve(this.options.root), file).split(path.sep).join('/');
  }

  private async catchUp(): Promise<void> {
    try {
      for await (const file of walk(path.resolve(this.options.root))) {
        if (this.stopped) return;
        const rel = this.keyOf(file);
        if (rel.split('/').some(isTempName)) continue;
        // Old files are finished: emit inline, which also applies backpressure to the walk.
        const st = await lstat(file).catch(() => null);
        if (st && Date.now() - st.mtimeMs >= this.options.stableMs) await this.check(file, 0);
        else this.settle(file);
      }
    } catch (err) {
      this.options.logger.error({ err, source: this.name }, 'folder catch-up failed');
    } finally {
      this.walking = null;
    }
  }

  private settle(file: string): void {
    if (this.stopped) return;
    const gen = (this.settling.get(file) ?? 0) + 1;
    this.settling.set(file, gen);
    void this.check(file, gen);
  }

  /** Waits until size and mtime hold still for stableMs, then emits (gen 0: no wait). */
  private async check(file: string, gen: number): Promise<void> {
    try {
      let st = await lstat(file);
      while (gen !== 0 && Date.now() - st.mtimeMs < this.options.stableMs) {
        await sleep(Math.max(10, Math.min(this.options.stableMs, this.options.stableMs - (Date.now() - st.mtimeMs) + 5)));
        if (this.stopped || this.settling.get(file) !== gen) return;
        const next = await lstat(file);
        if (next.size === st.size && next.mtimeMs === st.mtimeMs && Date.now() - next.mtimeMs >= this.options.stableMs) { st = next; break; }
        st = next;
      }
      if (gen !== 0) this.settling.delete(file);
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
      this.recheckLater(file, st);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone before it settled
      this.options.logger.error({ err, source: this.name, file }, 'could not read file');
    }
  }

  /**
   * Looks at an emitted file once more after chokidar's throttle window: a
   * write it swallowed (the end of a burst) would otherwise leave the last
   * version of the file unprocessed until the next catch-up.
   */
  private recheckLater(file: string, emitted: Stats): void {
    setTimeout(() => {
      if (this.stopped || this.settling.has(file)) return;
      stat(file).then((now) => {
        if (now.size !== emitted.size || now.mtimeMs !== emitted.mtimeMs) this.settle(file);
      }, () => {}); // gone: the watcher reports the unlink
    }, CHANGE_THROTTLE_MS).unref();
  }

  private async insideRoot(file: string): Promise<boolean> {
    try {
      const real = await realpath(file);
      const root = await realpath(path.resolve(this.options.root));
      const rel = path.relative(root, real);
      return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
    } catch {
      return false;
    }
  }

  private removed(file: string): void {
    if (this.stopped) return;
    this.settling.delete(file);
    void this.emit!(makeEvent(this.name, 'removed', { store: this.name, key: this.keyOf(file) }))
      .catch((err) => this.options.logger.error({ err, source: this.name }, 'removed event failed'));
  }
}
