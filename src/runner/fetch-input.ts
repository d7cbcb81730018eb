import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { PermanentError, type StepInput } from '../steps/step.js';
import type { Store } from '../stores/store.js';
import type { InputBuffers } from './input-buffers.js';
import { OWNER, thisProcess } from '../owner.js';

export interface FetchedInput extends StepInput {
  /** Removes the spooled snapshot, if any. */
  release(): Promise<void>;
}

/** Names of inputs spooled to tmpDir (below), with their process, so a sweep after a crash knows them and whose they were. */
export const SPOOL_NAME = new RegExp(`^input-(?:(?<owner>${OWNER})-)?[0-9a-f]{16}$`);

export interface FetchOptions {
  maxInputBytes: number;
  /** Inputs up to this size are held in memory; larger ones are spooled to tmpDir. */
  inMemoryBytes: number;
  tmpDir: string;
  signal: AbortSignal;
  /** Where in-memory inputs are read into and given back on release (none: a new Buffer each time). */
  buffers?: InputBuffers;
}

/**
 * Reads the input once, hashing while reading. The bytes hashed are the bytes
 * rendered: steps get this snapshot (a Buffer, or a private temp file for
 * large inputs), never the live file, which may change underneath.
 */
export async function fetchInput(store: Store, key: string, o: FetchOptions): Promise<FetchedInput> {
  let taken: Buffer | undefined;
  const allocate = o.buffers && ((size: number) => (taken = o.buffers!.take(size)));
  // Given back only while nothing can still read it: not after an abort (libvips may still be at work on it).
  const giveBack = () => {
    if (taken && !o.signal.aborted) o.buffers!.give(taken);
    taken = undefined;
  };
  let whole: Buffer | null | undefined;
  try {
    whole = await store.readWhole?.(key, Math.min(o.inMemoryBytes, o.maxInputBytes), allocate);
    o.signal.throwIfAborted();
    if (whole?.length === 0) throw new PermanentError(`${key}: input is empty (0 bytes)`);
  } catch (err) {
    giveBack();
    throw err;
  }
  if (whole) {
    return { key, size: whole.length, sha256: createHash('sha256').update(whole).digest('hex'), buffer: whole, release: async () => giveBack() };
  }
  giveBack(); // too large, or still growing: streamed below
  const stream = await store.read(key);
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  let spool: { path: string; out: ReturnType<typeof createWriteStream> } | null = null;
  const onAbort = () => stream.destroy(o.signal.reason as Error);
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > o.maxInputBytes) {
        throw new PermanentError(`${key}: input is over the limit of ${o.maxInputBytes} bytes (maxInputBytes)`);
      }
      hash.update(chunk);
      if (!spool && size > o.inMemoryBytes) {
        await mkdir(o.tmpDir, { recursive: true });
        const p = path.join(o.tmpDir, `input-${thisProcess}-${randomBytes(8).toString('hex')}`); // matches SPOOL_NAME
        spool = { path: p, out: createWriteStream(p) };
        for (const c of chunks) spool.out.write(c);
        chunks.length = 0;
      }
      if (spool) {
        if (!spool.out.write(chunk)) await new Promise<void>((r) => spool!.out.once('drain', () => r()));
      } else chunks.push(chunk);
    }
    if (spool) await new Promise<void>((resolve, reject) => spool!.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    stream.destroy();
    if (spool) { spool.out.destroy(); await unlink(spool.path).catch(() => {}); }
    throw err;
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
  if (size === 0) throw new PermanentError(`${key}: input is empty (0 bytes)`);
  const spooled = spool?.path;
  return {
    key,
    size,
    sha256: hash.digest('hex'),
    buffer: spooled ? undefined : Buffer.concat(chunks, size),
    path: spooled,
    release: async () => { if (spooled) await unlink(spooled).catch(() => {}); },
  };
}
