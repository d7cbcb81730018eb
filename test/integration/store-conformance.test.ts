import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BucketStore } from '../../src/stores/bucket-store.js';
import { FolderStore } from '../../src/stores/folder-store.js';
import type { Store } from '../../src/stores/store.js';
import { describeMinio, makeBuckets, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';

/**
 * One contract, every store: a source can read from either and an output can
 * write to either, so both must behave the same way on the same calls.
 */
function conformance(make: () => Store) {
  let store: Store;
  beforeAll(() => { store = make(); });

  const read = async (key: string) => {
    const chunks: Buffer[] = [];
    for await (const c of await store.read(key)) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  };

  it('writes, reads, stats and overwrites keys with spaces, +, % and unicode in nested folders', async () => {
    const keys = ['a.jpg', 'trip 2024/ü+1 %2F.jpg', 'x/y/z/日本.png'];
    for (const k of keys) await store.write(k, Buffer.from(`v1 ${k}`), { contentType: 'image/jpeg' });
    for (const k of keys) {
      expect(await read(k)).toBe(`v1 ${k}`);
      expect(await store.stat(k)).toMatchObject({ key: k, size: Buffer.byteLength(`v1 ${k}`) });
    }
    await store.write('a.jpg', Buffer.from('v2'));
    expect(await read('a.jpg')).toBe('v2');
  });

  it('lists every key recursively, filtered by prefix', async () => {
    const all: string[] = [];
    for await (const e of store.list()) all.push(e.key);
    expect(all.sort()).toEqual(['a.jpg', 'trip 2024/ü+1 %2F.jpg', 'x/y/z/日本.png'].sort());
    const under: string[] = [];
    for await (const e of store.list('x/')) under.push(e.key);
    expect(under).toEqual(['x/y/z/日本.png']);
  });

  it('reads a whole value into the buffer it is given, or answers null over the limit', async () => {
    const bytes = Buffer.from('y'.repeat(5000));
    await store.write('whole/y.bin', bytes);
    const sizes: number[] = [];
    const reused = Buffer.alloc(64 * 1024, 0xee);
    const whole = await store.readWhole!('whole/y.bin', 10_000, (n) => { sizes.push(n); return reused; });
    expect(whole!.equals(bytes)).toBe(true);
    expect(whole!.buffer).toBe(reused.buffer); // a view of the buffer given, not a copy
    expect(sizes[0]).toBeGreaterThanOrEqual(5000);
    expect(await store.readWhole!('whole/y.bin', 4999)).toBeNull();
    expect((await store.readWhole!('whole/y.bin', 5000))!.equals(bytes)).toBe(true);
    await expect(store.readWhole!('whole/missing.bin', 10_000)).rejects.toThrow();
    await store.delete('whole/y.bin');
  });

  it('stat of a missing key is null, reading it rejects, deleting it is fine', async () => {
    expect(await store.stat('missing.jpg')).toBeNull();
    await expect(store.read('missing.jpg')).rejects.toThrow();
    await expect(store.delete('missing.jpg')).resolves.toBeUndefined();
  });

  it('deletes', async () => {
    await store.delete('a.jpg');
    expect(await store.stat('a.jpg')).toBeNull();
  });
}

describe('FolderStore conformance', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'mf-store-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  conformance(() => new FolderStore(root));

  it('leaves no temp file behind and refuses keys outside its root', async () => {
    const store = new FolderStore(root);
    await store.write('b.jpg', Buffer.from('x'));
    expect(readdirSync(root).filter((n) => n.includes('mediaflow-tmp'))).toEqual([]);
    await expect(store.write('../escape.jpg', Buffer.from('x'))).rejects.toThrow(/outside/);
  });
});

describeMinio('BucketStore conformance (real MinIO)', () => {
  let minio: MinioServer;
  let bucket: string;
  beforeAll(async () => {
    minio = await startMinio();
    [bucket] = await makeBuckets(minio.client, 'conformance');
  }, 120_000);
  afterAll(async () => {
    await stopMinio(minio, [bucket]);
  });
  conformance(() => new BucketStore(minio.client, bucket, 'under/prefix'));
});
