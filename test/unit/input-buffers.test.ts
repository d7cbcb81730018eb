import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchInput, type FetchOptions } from '../../src/runner/fetch-input.js';
import { InputBuffers } from '../../src/runner/input-buffers.js';
import { FolderStore } from '../../src/stores/folder-store.js';
import { workspace } from '../helpers/workspace.js';

const MiB = 1024 * 1024;

describe('InputBuffers', () => {
  it('hands a given-back buffer out again, the smallest that fits', () => {
    const pool = new InputBuffers({ maxBufferBytes: 8 * MiB, maxTotalBytes: 16 * MiB });
    const small = pool.take(100_000);
    const large = pool.take(3 * MiB);
    pool.give(large);
    pool.give(small);
    expect(pool.take(50_000)).toBe(small);
    expect(pool.take(2 * MiB)).toBe(large);
    expect(pool.take(50_000)).not.toBe(small); // both are out: a new one
  });

  it('keeps no buffer over maxBufferBytes, and drops the smallest past maxTotalBytes', () => {
    const pool = new InputBuffers({ maxBufferBytes: 4 * MiB, maxTotalBytes: 5 * MiB });
    pool.give(pool.take(5 * MiB));
    expect(pool.kept).toBe(0);
    const a = pool.take(1 * MiB);
    const b = pool.take(2 * MiB);
    const c = pool.take(3 * MiB);
    pool.give(a); pool.give(b); pool.give(c);
    expect(pool.kept).toBe(2);
    expect(pool.take(1)).toBe(b);
  });

  it('does not keep the same buffer twice', () => {
    const pool = new InputBuffers({ maxBufferBytes: MiB, maxTotalBytes: 4 * MiB });
    const a = pool.take(1000);
    pool.give(a); pool.give(a);
    expect(pool.kept).toBe(1);
  });
});

describe('fetchInput with InputBuffers', () => {
  let ws: ReturnType<typeof workspace>;
  let store: FolderStore;
  beforeEach(() => { ws = workspace('mf-buffers-'); store = new FolderStore(ws.inbox); });
  afterEach(() => ws.cleanup());
  const options = (buffers: InputBuffers, signal = new AbortController().signal): FetchOptions =>
    ({ maxInputBytes: 64 * MiB, inMemoryBytes: 64 * MiB, tmpDir: path.join(ws.root, 'tmp'), signal, buffers });

  it('reads the next input into the buffer the last one gave back, and shows only its own bytes', async () => {
    const pool = new InputBuffers({ maxBufferBytes: 8 * MiB, maxTotalBytes: 8 * MiB });
    const big = Buffer.alloc(300_000, 0xaa);
    const small = Buffer.from('a much shorter input');
    writeFileSync(path.join(ws.inbox, 'big.bin'), big);
    writeFileSync(path.join(ws.inbox, 'small.bin'), small);

    const first = await fetchInput(store, 'big.bin', options(pool));
    expect(first.buffer!.equals(big)).toBe(true);
    const memory = first.buffer!.buffer;
    await first.release();
    expect(pool.kept).toBe(1);

    const second = await fetchInput(store, 'small.bin', options(pool));
    expect(second.buffer!.buffer).toBe(memory); // the same memory, reused
    expect(second.buffer!.equals(small)).toBe(true); // none of big.bin's bytes after it
    expect(second.size).toBe(small.length);
    expect(second.sha256).toBe(createHash('sha256').update(small).digest('hex'));
    expect(pool.kept).toBe(0);
    await second.release();
  });

  it('does not give back the buffer of an aborted job: its image work may still be reading it', async () => {
    const pool = new InputBuffers({ maxBufferBytes: 8 * MiB, maxTotalBytes: 8 * MiB });
    writeFileSync(path.join(ws.inbox, 'a.bin'), Buffer.alloc(1000, 1));
    const ac = new AbortController();
    const input = await fetchInput(store, 'a.bin', options(pool, ac.signal));
    ac.abort(new Error('shutting down'));
    await input.release();
    expect(pool.kept).toBe(0);
  });

  it('gives the buffer back when the read fails or the input is refused', async () => {
    const pool = new InputBuffers({ maxBufferBytes: 8 * MiB, maxTotalBytes: 8 * MiB });
    writeFileSync(path.join(ws.inbox, 'empty.bin'), Buffer.alloc(0));
    await expect(fetchInput(store, 'empty.bin', options(pool))).rejects.toThrow(/input is empty/);
    expect(pool.kept).toBe(1);
  });
});
