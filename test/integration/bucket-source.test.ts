import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { MediaEvent } from '../../src/events/media-event.js';
import { silentLogger } from '../../src/log.js';
import { BucketSource } from '../../src/sources/bucket-source.js';
import { describeMinio, makeBuckets, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';
import { waitFor } from '../helpers/wait.js';

/** Keys that break anything that decodes one time too many (or too few). */
const KEYS = ['with space.jpg', 'a+b.jpg', '100%.jpg', 'a%20b.jpg', 'ü/日本.jpg', 'deep/nested/x y+z%2F.png', 'q?&=#.jpg'];
const OUTPUT = { 'X-Amz-Meta-Mediaflow-Output': 'thumb' };

describeMinio('BucketSource (real MinIO)', () => {
  let server: MinioServer;
  let bucket: string;
  let source: BucketSource;
  let heads: { mock: { calls: unknown[] } };
  const events: MediaEvent[] = [];

  const put = (key: string, meta: Record<string, string> = {}) =>
    server.client.putObject(bucket, key, Buffer.from(`data ${key}`), undefined, { 'Content-Type': 'image/jpeg', ...meta });
  const find = (type: MediaEvent['type'], key: string) => events.find((e) => e.type === type && e.data.key === key);

  /** Waits for an event (setup-minio.sh builds MinIO with the listen-flush fix, so records arrive at once). */
  async function eventually(type: MediaEvent['type'], key: string): Promise<MediaEvent> {
    return waitFor(`${type} ${key}`, () => find(type, key), 40_000, 50);
  }

  beforeAll(async () => {
    server = await startMinio();
    [bucket] = await makeBuckets(server.client, 'bucket-source');
    await put('before/old one+1%.jpg');
    await put('before/ü.jpg');
    await put('before/an output.jpg', OUTPUT);
    for (const key of KEYS) await put(`before/${key}`);
    heads = vi.spyOn(server.client, 'statObject');
    // An hour: every event below comes from the listen stream (or a reconnect), not a timer.
    source = new BucketSource({ client: server.client, bucket, reconcileIntervalMs: 3_600_000, logger: silentLogger });
    await source.start(async (e) => { events.push(e); });
    await source.caughtUp(); // start() returns once listening; the listing goes on in the background
  });

  afterAll(async () => {
    await source?.stop();
    await stopMinio(server, [bucket]);
  });

  it('emits objects that were there before start (catch-up), but not outputs', async () => {
    const old = find('created', 'before/old one+1%.jpg');
    expect(old).toMatchObject({
      specversion: '1.0', source: `bucket:${bucket}`, type: 'created', subject: 'before/old one+1%.jpg',
      data: { store: `bucket:${bucket}`, key: 'before/old one+1%.jpg', size: Buffer.byteLength('data before/old one+1%.jpg') },
    });
    expect(old!.data.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(old!.data.changedAtMs).toBeGreaterThan(0);
    expect(find('created', 'before/ü.jpg')).toBeTruthy();
    expect(find('created', 'before/an output.jpg')).toBeUndefined();
    await waitFor('listen connection', () => source.ready);
  });

  it('reads which objects are outputs from the listing itself (MinIO lists metadata): no HEAD per object, keys exact', () => {
    for (const key of KEYS) expect(find('created', `before/${key}`)).toBeTruthy();
    const listed = events.filter((e) => e.data.key.startsWith('before/')).map((e) => e.data.key);
    expect(listed.sort()).toEqual(['before/old one+1%.jpg', 'before/ü.jpg', ...KEYS.map((k) => `before/${k}`)].sort());
    expect(heads.mock.calls).toHaveLength(0);
  });

  it('emits created with the exact key for spaces, +, %, unicode and nested prefixes', async () => {
    for (const key of KEYS) await put(`live/${key}`);
    for (const key of KEYS) {
      const e = await eventually('created', `live/${key}`);
      expect(e.subject).toBe(`live/${key}`);
      expect(e.data).toMatchObject({ store: `bucket:${bucket}`, size: Buffer.byteLength(`data live/${key}`), contentType: 'image/jpeg' });
      expect(e.data.etag).toMatch(/^[0-9a-f]{32}$/);
    }
    // Nothing arrived under a mangled (decoded or re-encoded) name.
    const live = new Set(events.filter((e) => e.data.key.startsWith('live/')).map((e) => e.data.key));
    expect([...live].sort()).toEqual(KEYS.map((k) => `live/${k}`).sort());
  });

  it('emits removed when an object is deleted', async () => {
    const key = 'rm/gone soon+%.jpg';
    await put(key);
    await eventually('created', key);
    await server.client.removeObject(bucket, key);
    const e = await eventually('removed', key);
    expect(e).toMatchObject({ type: 'removed', subject: key, data: { store: `bucket:${bucket}`, key } });
  });

  it('never emits objects marked as mediaflow outputs (created or removed)', async () => {
    await put('out/thumb+1.jpg', OUTPUT);
    await put('out/marker.jpg'); // written after the output: once it is seen, the output's record was handled
    await eventually('created', 'out/marker.jpg');
    await server.client.removeObject(bucket, 'out/thumb+1.jpg');
    await server.client.removeObject(bucket, 'out/marker.jpg');
    await eventually('removed', 'out/marker.jpg');
    expect(events.filter((e) => e.data.key === 'out/thumb+1.jpg')).toEqual([]);
    expect(events.filter((e) => e.data.key.startsWith('zz-flush/'))).toEqual([]);
  });

  it('reconnects after MinIO restarts and emits objects uploaded afterwards', async (ctx) => {
    if (server.external) ctx.skip();
    await waitFor('listen connection', () => source.ready);
    await server.restart();
    await waitFor('listen connection after restart', () => source.ready, 60_000);
    const key = 'after-restart/ñ 1+1%.jpg';
    await put(key);
    const e = await eventually('created', key);
    expect(e.data.key).toBe(key);
  });

  it('stop() closes the listen connection', async () => {
    await source.stop();
    expect(source.ready).toBe(false);
  });
});
