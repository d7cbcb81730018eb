import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, opendir, realpath, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { MediaflowError } from '../errors.js';
import { resolveInside } from '../pipeline/key-template.js';
import { OWNER, ownerIsGone, thisProcess } from '../owner.js';
import { isInside } from '../paths.js';
import type { Store, StoreEntry } from './store.js';

/**
 * A dot-prefixed name (every folder source ignores it until it is renamed
 * into place) that names its writer, so a sweep can remove a dead writer's
 * temp files at once instead of waiting for them to age.
 */
export function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file).slice(0, 200)}.${thisProcess}.${randomBytes(6).toString('hex')}.mediaflow-tmp`);
}

/** Temp names, with the writer since this release (names without one came from earlier releases: judged by age). */
const TEMP_NAME = new RegExp(`^\\..+?\\.(?:(?<owner>${OWNER})\\.)?[0-9a-f]{12}\\.mediaflow-tmp$`);

/**
 * mkdir -p that fails with the real reason: Node's recursive mkdir reports
 * ENOENT whatever stopped it (a read-only or full disk, no permission), so on
 * ENOENT the levels are made one at a time, and the first refusal is thrown.
 */
async function makeDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const parent = path.dirname(dir);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw err;
    await makeDir(parent);
    await mkdir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
  }
}

/**
 * Removes the leftovers below dir whose name matches: at once when the name's
 * `owner` group names a process of this machine that is gone (see owner.ts),
 * otherwise once their mtime is older than olderThanMs (a younger one may be
 * a write in progress, here or on another machine sharing the folder).
 * Returns how many were removed.
 */
export async function removeStaleFiles(dir: string, name: RegExp, olderThanMs: number): Promise<number> {
  let removed = 0;
  for await (const file of walk(dir)) {
    const m = name.exec(path.basename(file));
    if (!m) continue;
    const owner = m.groups?.owner;
    const stale = owner !== undefined && ownerIsGone(owner)
      ? true
      : await stat(file).then((st) => Date.now() - st.mtimeMs > olderThanMs, () => false);
    if (stale && (await unlink(file).then(() => true, () => false))) removed++;
  }
  return removed;
}

/** A file's key: its path below root, '/'-separated. */
export function toKey(root: string, file: string): string {
  return path.relative(root, file).split(path.sep).join('/');
}

/** Walks a folder tree without loading it whole (a 100k-file inbox is read as it goes). */
export async function* walk(dir: string): AsyncGenerator<string> {
  let handle;
  try {
    handle = await opendir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for await (const entry of handle) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.isFile()) yield full;
  }
}

export class FolderStore implements Store {
  readonly name: string;

  constructor(readonly root: string) {
    this.root = path.resolve(root);
    this.name = `folder:${this.root}`;
  }

  pathOf(key: string): string {
    return resolveInside(this.root, key);
  }

  /**
   * The file a key names, after following symbolic links: a key inside the
   * root that leads out of it through a link (`link.jpg -> /etc/...`, a
   * linked folder) is refused, so no job request or listing reads past the root.
   */
  private async realFileOf(key: string): Promise<string> {
    const file = await realpath(this.pathOf(key));
    if (this.inside(await this.realRoot(), file)) return file;
    // The root itself may have been re-pointed (a linked folder) since it was resolved: resolve it again once.
    this.rootReal = null;
    if (this.inside(await this.realRoot(), file)) return file;
    throw new MediaflowError('E_KEY', `key ${JSON.stringify(key)} leads outside ${this.root} through a symbolic link: not followed`);
  }

  /** The root's real path, resolved once: every read and stat needs it. */
  private rootReal: Promise<string> | null = null;
  private realRoot(): Promise<string> {
    this.rootReal ??= realpath(this.root);
    this.rootReal.catch(() => { this.rootReal = null; });
    return this.rootReal;
  }

  private inside(root: string, file: string): boolean {
    return isInside(root, file);
  }

  async read(key: string): Promise<Readable> {
    const file = await this.realFileOf(key);
    const stream = createReadStream(file);
    // Surface ENOENT/EACCES here rather than on the first read.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    return stream;
  }

  /** One open, one fstat and (for files up to `limit`) one read into a Buffer of the file's size. */
  async readWhole(key: string, limit: number, allocate = (size: number) => Buffer.allocUnsafeSlow(size)): Promise<Buffer | null> {
    const fh = await open(await this.realFileOf(key), 'r');
    try {
      const { size } = await fh.stat();
      if (size > limit) return null;
      // One byte more than the size: a file still growing shows up as a short read of a longer file.
      const buf = allocate(size + 1).subarray(0, size + 1);
      let got = 0;
      for (;;) {
        const want = buf.length - got;
        const { bytesRead } = await fh.read(buf, got, want, got);
        got += bytesRead;
        if (got === buf.length) return null; // grew past its size while read: take the streaming path
        if (bytesRead < want) break; // a short read of a regular file is its end
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /** Temp file + rename in the same folder: readers never see a half-written output. */
  async write(key: string, data: Buffer): Promise<void> {
    const file = this.pathOf(key);
    const tmp = tempNameFor(file);
    try {
      // The folder is there for all but the first output in it: make it only when the write says it is missing.
      await writeFile(tmp, data).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        await makeDir(path.dirname(file));
        await writeFile(tmp, data);
      });
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async stat(key: string): Promise<StoreEntry | null> {
    try {
      const st = await stat(await this.realFileOf(key));
      if (!st.isFile()) return null;
      return { key, size: st.size, mtimeMs: st.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async *list(prefix = ''): AsyncIterable<StoreEntry> {
    for await (const file of walk(this.root)) {
      const key = toKey(this.root, file);
      if (!key.startsWith(prefix)) continue;
      const st = await stat(file).catch(() => null);
      if (st) yield { key, size: st.size, mtimeMs: st.mtimeMs };
    }
  }

  /**
   * Removes temp files of writes that never finished (the process was killed
   * mid-write): a dead writer's of this machine at once, any other once older
   * than `olderThanMs` (see removeStaleFiles).
   */
  sweep(olderThanMs: number): Promise<number> {
    return removeStaleFiles(this.root, TEMP_NAME, olderThanMs);
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
