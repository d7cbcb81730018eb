import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { LoadedPipeline } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { fixture, fixtureBytes } from '../helpers/fixtures.js';
import { describeMinio, makeBuckets, minioEnv, removeBuckets, startMinio, type MinioServer } from '../helpers/minio.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let minio: MinioServer;
let ws: ReturnType<typeof workspace>;
let uploads: string;
let derived: string;
let services: Service[] = [];

function service(pipelines: LoadedPipeline[]): Service {
  const s = new Service({ pipelines, dataDir: ws.data, concurrency: 2, pollMs: 50, env: minioEnv(minio) });
  services.push(s);
  return s;
}

async function stopAll() {
  await Promise.all(services.map((s) => s.stop()));
  services = [];
}

const put = (bucket: string, key: string, data: Buffer, meta: Record<string, string> = {}) =>
  minio.client.putObject(bucket, key, data, data.length, { 'Content-Type': 'image/jpeg', ...meta });

async function objectExists(bucket: string, key: string): Promise<boolean> {
  try { await minio.client.statObject(bucket, key); return true; } catch { return false; }
}

async function readObject(bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await minio.client.getObject(bucket, key)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const bucketToBucket = (extra: Record<string, unknown> = {}) => ws.pipeline({
  name: 'b2b',
  source: { type: 'bucket', bucket: uploads, prefix: 'photos/', reconcileIntervalMs: 0 },
  output: { type: 'bucket', bucket: derived, prefix: 'thumbs/' },
  steps: [{ id: 'thumb', use: 'thumbnail', width: 120, format: 'webp' }, { id: 'meta', use: 'metadata' }],
  ...extra,
});

describeMinio('bucket pipelines against a real MinIO', () => {
  beforeAll(async () => { minio = await startMinio(); }, 120_000);
  afterAll(async () => { await minio?.stop(); });
  beforeEach(async () => {
    ws = workspace('mf-bucket-');
    [uploads, derived] = await makeBuckets(minio.client, 'up', 'out');
  });
  afterEach(async () => {
    await stopAll();
    await removeBuckets(minio.client, [uploads, derived]);
    ws.cleanup();
  });

  it('upload -> outputs in the output bucket, tagged, with content types; keys decoded once', async () => {
    const s = service([bucketToBucket()]);
    await s.start();
    const key = 'photos/trip 2024/ü+1 %2F.jpg';
    await put(uploads, key, fixtureBytes('Landscape_6.jpg'));
    await waitFor('job done', async () => (await s.ledger.counts()).done === 1);
    const thumbKey = 'thumbs/trip 2024/ü+1 %2F/thumb.webp';
    const stat = await minio.client.statObject(derived, thumbKey);
    expect(stat.metaData['content-type']).toBe('image/webp');
    expect(stat.metaData['mediaflow-output']).toBe('1');
    const img = await sharp(await readObject(derived, thumbKey)).metadata();
    expect(img.width! > img.height!).toBe(true); // auto-oriented
    const meta = JSON.parse((await readObject(derived, 'thumbs/trip 2024/ü+1 %2F/meta.json')).toString());
    expect(meta).toMatchObject({ width: 600, height: 450 });
  });

  it('removal with delete-outputs deletes the outputs', async () => {
    const s = service([bucketToBucket({ onDelete: 'delete-outputs' })]);
    await s.start();
    await put(uploads, 'photos/a.jpg', fixtureBytes('Landscape_1.jpg'));
    await waitFor('done', async () => (await s.ledger.counts()).done === 1);
    expect(await objectExists(derived, 'thumbs/a/thumb.webp')).toBe(true);
    await minio.client.removeObject(uploads, 'photos/a.jpg');
    await waitFor('outputs removed', async () => !(await objectExists(derived, 'thumbs/a/thumb.webp')) && !(await objectExists(derived, 'thumbs/a/meta.json')));
  });

  it('outputs written into the watched bucket never retrigger', async () => {
    // "into-bucket" writes into the bucket the "whole-bucket" pipeline watches:
    // only the object metadata tells the outputs apart.
    const intoBucket = ws.pipeline({
      name: 'into-bucket',
      source: { type: 'bucket', bucket: uploads, prefix: 'in/', reconcileIntervalMs: 0 },
      output: { type: 'bucket', bucket: uploads, prefix: 'derived/' },
    });
    const wholeBucket = ws.pipeline({
      name: 'whole-bucket',
      source: { type: 'bucket', bucket: uploads, reconcileIntervalMs: 0 },
      output: { type: 'folder', path: './out' },
      steps: [{ id: 'meta', use: 'metadata' }],
    });
    const s = service([intoBucket, wholeBucket]);
    await s.start();
    await put(uploads, 'in/a.jpg', fixtureBytes('Landscape_1.jpg'));
    await waitFor('both pipelines done', async () => (await s.ledger.counts()).done === 2);
    expect(await objectExists(uploads, 'derived/a/thumb.png')).toBe(true);
    // Give a loop every chance to show itself: a reconcile listing sees the output too.
    await (s.sources[0] as unknown as { reconcile(): Promise<unknown> }).reconcile?.();
    await new Promise((r) => setTimeout(r, 500));
    await s.idle();
    const keys = (await s.ledger.list('done', 100)).map((j) => `${j.pipeline}:${j.key}`).sort();
    expect(keys).toEqual(['into-bucket:in/a.jpg', 'whole-bucket:in/a.jpg']);
  });

  it('objects uploaded while the service was stopped are processed after it starts; done ones are not redone', async () => {
    const p = bucketToBucket();
    let s = service([p]);
    await s.start();
    await put(uploads, 'photos/first.jpg', fixtureBytes('Landscape_1.jpg'));
    await waitFor('first done', async () => (await s.ledger.counts()).done === 1);
    await stopAll();
    await put(uploads, 'photos/while-down.jpg', fixtureBytes('Portrait_1.jpg'));
    s = service([p]);
    let renders = 0;
    s.on('step', () => renders++);
    await s.start();
    await waitFor('caught up', async () => (await s.ledger.counts()).done === 2);
    await s.idle();
    expect(renders).toBe(2); // two steps of while-down.jpg, nothing for first.jpg
    expect(await objectExists(derived, 'thumbs/while-down/thumb.webp')).toBe(true);
  });

  it('the same object re-uploaded, or uploaded under another key, is deduplicated', async () => {
    const s = service([bucketToBucket()]);
    let renders = 0;
    s.on('step', () => renders++);
    await s.start();
    const bytes = fixtureBytes('flowers.jpeg');
    await put(uploads, 'photos/a.jpg', bytes);
    await waitFor('done', async () => (await s.ledger.counts()).done === 1);
    await put(uploads, 'photos/a.jpg', bytes); // duplicate notification for identical bytes
    await put(uploads, 'photos/copy.jpg', bytes);
    await waitFor('copy done', async () => (await s.ledger.counts()).done === 2);
    await s.idle();
    expect(renders).toBe(2);
    expect((await s.ledger.counts()).deduplicated).toBe(1);
    expect(await readObject(derived, 'thumbs/copy/thumb.webp')).toEqual(await readObject(derived, 'thumbs/a/thumb.webp'));
  });

  it('recovers when MinIO restarts mid-run, losing no upload', async () => {
    if (minio.external) return; // cannot restart a server we do not own
    const s = service([bucketToBucket()]);
    await s.start();
    await put(uploads, 'photos/before.jpg', fixtureBytes('Landscape_1.jpg'));
    await waitFor('before done', async () => (await s.ledger.counts()).done === 1);
    await minio.restart();
    await put(uploads, 'photos/after.jpg', fixtureBytes('Portrait_1.jpg'));
    await waitFor('after done', async () => (await s.ledger.counts()).done === 2, 60_000);
    expect(await objectExists(derived, 'thumbs/after/thumb.webp')).toBe(true);
  });

  it('any source to any output: folder -> bucket and bucket -> folder', async () => {
    const f2b = ws.pipeline({ name: 'f2b', output: { type: 'bucket', bucket: derived, prefix: 'from-folder/' } });
    const b2f = ws.pipeline({ name: 'b2f', source: { type: 'bucket', bucket: uploads, reconcileIntervalMs: 0 }, output: { type: 'folder', path: './out' } });
    const s = service([f2b, b2f]);
    await s.start();
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'dropped.jpg'));
    await put(uploads, 'uploaded.jpg', fixtureBytes('Portrait_1.jpg'));
    await waitFor('both done', async () => (await s.ledger.counts()).done === 2);
    expect(await objectExists(derived, 'from-folder/dropped/thumb.png')).toBe(true);
    expect(existsSync(path.join(ws.out, 'uploaded/thumb.png'))).toBe(true);
  });
});
