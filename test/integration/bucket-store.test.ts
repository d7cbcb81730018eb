import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BucketStore } from '../../src/stores/bucket-store.js';
import { describeMinio, makeBuckets, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';

/** Keys that break anything that encodes or decodes one time too many. */
const KEYS = ['plain.jpg', 'with space.jpg', 'a+b.jpg', '100%.jpg', 'a%20b.jpg', 'ü/日本.jpg', 'deep/nested/dir/x y+z%.png'];

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function keys(iter: AsyncIterable<{ key: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of iter) out.push(e.key);
  return out.sort();
}

describeMinio('BucketStore (real MinIO)', () => {
  let server: MinioServer;
  let bucket: string;

  beforeAll(async () => {
    server = await startMinio();
    [bucket] = await makeBuckets(server.client, 'bucket-store');
  });

  afterAll(async () => {
    await stopMinio(server, [bucket]);
  });

  it('names itself after the bucket and prefix', () => {
    expect(new BucketStore(server.client, bucket).name).toBe(`bucket:${bucket}`);
    expect(new BucketStore(server.client, bucket, 'out/thumbs/').name).toBe(`bucket:${bucket}/out/thumbs`);
  });

  it('round-trips write, read, stat, list and delete for keys with spaces, +, %, unicode and nested prefixes', async () => {
    const store = new BucketStore(server.client, bucket, 'rt');
    for (const key of KEYS) await store.write(key, Buffer.from(`body of ${key}`), { contentType: 'image/jpeg' });

    for (const key of KEYS) {
      expect((await readAll(await store.read(key))).toString()).toBe(`body of ${key}`);
      const stat = await store.stat(key);
      expect(stat).toMatchObject({ key, size: Buffer.byteLength(`body of ${key}`), contentType: 'image/jpeg' });
      expect(stat!.etag).toMatch(/^[0-9a-f]{32}$/);
      expect(stat!.mtimeMs).toBeGreaterThan(0);
      // The object really lives at <prefix>/<key>, byte for byte.
      await expect(server.client.statObject(bucket, `rt/${key}`)).resolves.toBeTruthy();
    }

    expect(await keys(store.list())).toEqual([...KEYS].sort());
    expect(await keys(store.list('deep/'))).toEqual(['deep/nested/dir/x y+z%.png']);
    expect(await keys(store.list('ü/'))).toEqual(['ü/日本.jpg']);
    // The same objects seen from the bucket root carry the prefix.
    expect(await keys(new BucketStore(server.client, bucket).list('rt/'))).toEqual(KEYS.map((k) => `rt/${k}`).sort());

    for (const key of KEYS) await store.delete(key);
    for (const key of KEYS) expect(await store.stat(key)).toBeNull();
    expect(await keys(store.list())).toEqual([]);
  });

  it('treats missing keys as documented: stat is null, delete is fine, read rejects', async () => {
    const store = new BucketStore(server.client, bucket, 'missing');
    expect(await store.stat('nope.jpg')).toBeNull();
    await expect(store.delete('nope.jpg')).resolves.toBeUndefined();
    await expect(store.read('nope.jpg')).rejects.toMatchObject({ code: 'NoSuchKey' });
  });

  it('round-trips user metadata as x-amz-meta-* (names lower-cased, unicode values intact)', async () => {
    const store = new BucketStore(server.client, bucket, 'meta');
    const metadata = { 'Mediaflow-Output': 'thumb', 'source-key': 'ü/日本 a+b%.jpg', 'source-sha256': 'ab'.repeat(32) };
    await store.write('x.webp', Buffer.from('x'), { contentType: 'image/webp', metadata });

    const stat = await store.stat('x.webp');
    expect(stat!.contentType).toBe('image/webp');
    expect(stat!.metadata).toEqual({ 'mediaflow-output': 'thumb', 'source-key': 'ü/日本 a+b%.jpg', 'source-sha256': 'ab'.repeat(32) });
    // On the wire it is ordinary S3 user metadata (the unicode value as an RFC 2047 encoded word).
    const raw = await server.client.statObject(bucket, 'meta/x.webp');
    expect(raw.metaData['mediaflow-output']).toBe('thumb');
    expect(raw.metaData['source-key']).toMatch(/^=\?UTF-8\?B\?.+\?=$/);

    await expect(store.write('y', Buffer.from('y'), { metadata: { 'content-type': 'x' } })).rejects.toThrow(/invalid metadata name/);
  });

  it('reads a 20 MB object as a stream', async () => {
    const store = new BucketStore(server.client, bucket, 'big');
    const data = randomBytes(20 * 1024 * 1024);
    await store.write('big.bin', data);

    const stream = await store.read('big.bin');
    const hash = createHash('sha256');
    let total = 0;
    let largestChunk = 0;
    let chunks = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      total += chunk.length;
      largestChunk = Math.max(largestChunk, chunk.length);
      chunks++;
    }
    expect(total).toBe(data.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    // Arrives in many pieces: nothing collected the body before handing it over.
    expect(chunks).toBeGreaterThan(10);
    expect(largestChunk).toBeLessThan(data.length / 10);
    await store.delete('big.bin');
  });
});

describeMinio('BucketStore sweep (real MinIO)', () => {
  let server: MinioServer;
  let bucket: string;

  beforeAll(async () => {
    server = await startMinio();
    [bucket] = await makeBuckets(server.client, 'bucket-sweep');
  });

  afterAll(async () => {
    await stopMinio(server, [bucket]);
  });

  it('aborts incomplete multipart uploads below its prefix once older than the limit, and no others', async () => {
    const store = new BucketStore(server.client, bucket, 'derived/');
    // What a writer killed between a multipart upload's start and its completion leaves.
    const mine = await server.client.initiateNewMultipartUpload(bucket, 'derived/big/thumb.webp', {});
    const other = await server.client.initiateNewMultipartUpload(bucket, 'uploads/elsewhere.jpg', {});
    const pending = async () => {
      const ids: string[] = [];
      for await (const u of server.client.listIncompleteUploads(bucket, '', true) as AsyncIterable<{ uploadId: string }>) ids.push(u.uploadId);
      return ids.sort();
    };
    expect(await pending()).toEqual([mine, other].sort());
    // Younger than the limit: may be an upload in progress.
    expect(await store.sweep(3_600_000)).toBe(0);
    expect(await pending()).toEqual([mine, other].sort());
    await new Promise((r) => setTimeout(r, 1100)); // S3 dates have a resolution of a second
    expect(await store.sweep(0)).toBe(1);
    expect(await pending()).toEqual([other]);
    await server.client.abortMultipartUpload(bucket, 'uploads/elsewhere.jpg', other);
  });
});
