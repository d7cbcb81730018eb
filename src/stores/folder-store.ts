import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, opendir, realpath, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { MediaflowError } from '../errors.js';
import { resolveInside } from '../pipeline/key-template.js';
import type { Store, StoreEntry } from './store.js';

/** A dot-prefixed name: every folder source ignores it until it is renamed into place. */
export function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file).slice(0, 200)}.${randomBytes(6).toString('hex')}.mediaflow-tmp`);
}

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

function toKey(root: string, file: string): string {
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
    const [file, root] = await Promise.all([realpath(this.pathOf(key)), realpath(this.root)]);
    const rel = path.relative(root, file);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new MediaflowError('E_KEY', `key ${JSON.stringify(key)} leads outside ${this.root} through a symbolic link: not followed`);
    }
    return file;
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

  /** Temp file + rename in the same folder: readers never see a half-written output. */
  async write(key: string, data: Buffer): Promise<void> {
    const file = this.pathOf(key);
    await makeDir(path.dirname(file));
    const tmp = tempNameFor(file);
    try {
      await writeFile(tmp, data);
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

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
