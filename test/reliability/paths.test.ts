/**
 * Paths and keys: names with `../`, absolute paths, backslashes, NUL,
 * unicode that normalises differently and names over 1,000 bytes, from a
 * watched folder, a bucket, forged bucket notifications and job requests.
 * Outputs stay inside their output root or the job is refused with a clear
 * reason; a symbolic link in the watched folder that points outside it is not
 * followed, nor read through the HTTP API.
 */
import { mkdirSync, readFileSync, realpathSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { describeMinio, makeBuckets, minioEnv, startMinio, stopMinio, type MinioServer } from '../helpers/minio.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { ledgerCounts, ledgerRows, listFiles, RunningService, sha256, smallJpeg, writePipeline, type LedgerRow, suiteReports } from './harness.js';

const reports = suiteReports('paths');

const NFC = 'caf\u00e9.jpg';
const NFD = 'cafe\u0301.jpg';
/**
 * A key of 1,024 bytes (MinIO's limit), each name within the 255-byte limit of
 * the file system, whose outputs (`{dir}/{name}/thumb.png`) would be 1,030 bytes.
 */
const LONG_KEY = `${Array.from({ length: 5 }, (_, i) => `${String(i)}${'d'.repeat(199)}`).join('/')}/${'x'.repeat(15)}.jpg`;

const steps = [{ id: 'thumb', use: 'thumbnail', width: 24, format: 'png' }, { id: 'meta', use: 'metadata' }];

function armAtime(file: string): number {
  utimesSync(file, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-02T00:00:00Z'));
  return statSync(file).atimeMs;
}

/** Every file below root that is not where it may be: inside out/, or one of the test's own folders. */
function strays(root: string, allowed: string[]): string[] {
  return listFiles(root).filter((f) => !allowed.some((a) => f === a || f.startsWith(`${a}/`)));
}

/** Every output's real path is inside the real output root. */
function outsideRoot(out: string): string[] {
  const root = realpathSync(out);
  return listFiles(out).filter((f) => {
    const rel = path.relative(root, realpathSync(path.join(out, f)));
    return rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
  });
}

async function post(url: string, body: unknown): Promise<{ status: number; body: { error?: string; message?: string; id?: number } }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() as { error?: string; message?: string } };
}

describe('paths in a watched folder, and job requests naming paths', () => {
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | null = null;
  beforeEach(() => { ws = workspace('mf-paths-'); });
  afterEach(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    svc = null;
    ws.cleanup();
  });

  it('backslashes, NFC/NFD names and 1,000-byte keys stay inside out/ or are refused; symlinks out are not followed', async () => {
    const secret = path.join(ws.root, 'secret');
    mkdirSync(secret);
    const secretJpg = path.join(secret, 'red.jpg');
    writeFileSync(secretJpg, await sharp({ create: { width: 40, height: 30, channels: 3, background: '#ff0000' } }).jpeg().toBuffer());
    const secretAtime = armAtime(secretJpg);

    const inputs: Record<string, Buffer> = {
      'back\\slash\\..\\..\\evil.jpg': await smallJpeg(1),
      [NFC]: await smallJpeg(2),
      [NFD]: await smallJpeg(3),
      [LONG_KEY]: await smallJpeg(4),
      ' lead and trail .jpg': await smallJpeg(5),
    };
    for (const [name, data] of Object.entries(inputs)) {
      mkdirSync(path.dirname(path.join(ws.inbox, name)), { recursive: true });
      writeFileSync(path.join(ws.inbox, name), data);
    }
    // Present at start (catch-up walk): a file link and a folder link out of the inbox.
    symlinkSync(secretJpg, path.join(ws.inbox, 'link-out.jpg'));
    symlinkSync(secret, path.join(ws.inbox, 'linkdir'));
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50 }, steps,
      output: { type: 'folder', path: './out' }, retry: { attempts: 3, backoffMs: 100 },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root);
    await svc.ready();
    // Created while watching (watcher path): the same two kinds, with an absolute and a relative target.
    symlinkSync('../secret/red.jpg', path.join(ws.inbox, 'link-late.jpg'));
    symlinkSync(secret, path.join(ws.inbox, 'linkdir-late'));

    const total = Object.keys(inputs).length;
    await waitFor('every input finished', () => {
      const c = ledgerCounts(ws.data);
      return c.done + c.dead === total && c.queued + c.running + c.failed === 0;
    }, 60_000, 50);
    await waitFor('the late links seen and refused', () => svc!.count('symbolic link not followed') >= 1, 10_000);

    // Job requests: a path must stay inside the source folder, links included.
    const jobs = `${svc.url}/v1/jobs`;
    const refused: Record<string, string> = {};
    for (const p of ['../secret/red.jpg', '/etc/hostname', secretJpg, 'a\u0000b.jpg', 'link-out.jpg', 'linkdir/red.jpg', 'link-late.jpg']) {
      const r = await post(jobs, { pipeline: 'photos', path: p });
      expect({ path: p, status: r.status }).toEqual({ path: p, status: 400 });
      expect(r.body.error).toBe('E_KEY');
      refused[JSON.stringify(p)] = r.body.message!;
    }

    const rows = ledgerRows(ws.data);
    const byKey = new Map<string, LedgerRow>(rows.map((r) => [r.key, r]));
    expect([...byKey.keys()].sort()).toEqual(Object.keys(inputs).sort()); // no job for any link
    const long = byKey.get(LONG_KEY)!;
    expect(long).toMatchObject({ state: 'dead', attempts: 1 });
    expect(long.error).toMatch(/^output key is over 1024 bytes/);
    for (const name of ['back\\slash\\..\\..\\evil.jpg', NFC, NFD, ' lead and trail .jpg']) {
      expect(byKey.get(name)!.state).toBe('done');
      const meta = JSON.parse(readFileSync(path.join(ws.out, name.replace(/\.jpg$/, ''), 'meta.json'), 'utf8'));
      expect(meta.sha256).toBe(sha256(inputs[name]!)); // NFC and NFD: two inputs, two outputs, neither overwrote the other
    }
    expect(outsideRoot(ws.out)).toEqual([]);
    expect(strays(ws.root, ['inbox', 'out', 'data', 'pipelines', 'secret'])).toEqual([]);
    expect(listFiles(secret)).toEqual(['red.jpg']);
    expect(statSync(secretJpg).atimeMs).toBe(secretAtime); // never read, by the source or a job request
    expect(svc.alive).toBe(true);
    expect(await svc.stop()).toBe(0);
    reports.folder = {
      done: rows.filter((r) => r.state === 'done').map((r) => r.key.slice(0, 40)),
      refused: { [`${LONG_KEY.slice(0, 12)}… (${Buffer.byteLength(long.key)} bytes)`]: long.error!.slice(0, 60), ...refused },
      symlinksNotFollowedLogged: svc.count('symbolic link not followed'),
    };
  }, 120_000);
});

describeMinio('object keys from a bucket and from forged notifications', () => {
  let server: MinioServer;
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | null = null;
  let bucket: string;

  beforeAll(async () => {
    server = await startMinio();
    ws = workspace('mf-paths-bucket-');
    [bucket] = await makeBuckets(server.client, 'paths-src');
  });
  afterAll(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    ws?.cleanup();
    await stopMinio(server, [bucket], { ignoreRemoveErrors: true });
  });

  it('keys MinIO stores stay inside out/ or are refused; keys it refuses, forged into notifications, are refused too', async () => {
    const put = (key: string, data: Buffer) => server.client.putObject(bucket, key, data, data.length, { 'Content-Type': 'image/jpeg' });
    const stored: Record<string, Buffer> = {
      [NFC]: await smallJpeg(12),
      [NFD]: await smallJpeg(13),
      [LONG_KEY]: await smallJpeg(14),
      'back\\slash.jpg': await smallJpeg(15),
      'q?&=#+%41 .jpg': await smallJpeg(16),
    };
    for (const [key, data] of Object.entries(stored)) await put(key, data);
    // MinIO itself keeps a leading slash out of the key: "/abs/x.jpg" is stored as "abs/x.jpg".
    const abs = await smallJpeg(17);
    await put('/abs/x.jpg', abs);
    stored['abs/x.jpg'] = abs;
    // What MinIO refuses to store at all.
    const refusedByMinio: Record<string, string> = {};
    for (const key of ['../escape.jpg', 'a/../../escape.jpg', '..\\..\\escape.jpg', 'a/./b.jpg', 'nul\u0000.jpg']) {
      const err = await put(key, await smallJpeg(18)).then(() => null, (e: Error & { code?: string }) => e);
      expect(err, `MinIO stored ${JSON.stringify(key)}`).not.toBeNull();
      refusedByMinio[JSON.stringify(key)] = err!.code ?? err!.message;
    }

    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'uploads', source: { type: 'bucket', bucket }, steps,
      output: { type: 'folder', path: './out' }, retry: { attempts: 3, backoffMs: 100 },
    });
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root, minioEnv(server));
    await svc.ready();
    await waitFor('every stored object finished', () => {
      const c = ledgerCounts(ws.data);
      return c.done + c.dead === Object.keys(stored).length && c.queued + c.running + c.failed === 0;
    }, 60_000, 50);

    // Forged notifications (a webhook target's records, keys query-escaped) naming keys that leave the root.
    const hostile = ['../escape.jpg', 'a/../../escape.jpg', '/etc/passwd.jpg', '..\\..\\escape.jpg', 'nul\u0000.jpg', `${'x'.repeat(1100)}.jpg`];
    const record = (key: string) => ({
      eventName: 's3:ObjectCreated:Put', eventTime: new Date().toISOString(),
      s3: { bucket: { name: bucket }, object: { key: encodeURIComponent(key).replace(/%20/g, '+'), size: 100, eTag: sha256(key).slice(0, 32) } },
    });
    const events = await post(`${svc.url}/v1/events`, { Records: hostile.map(record) });
    expect(events.status).toBe(200);
    // Job requests naming them directly.
    const jobRequests: Record<string, string> = {};
    for (const key of hostile) {
      const r = await post(`${svc.url}/v1/jobs`, { pipeline: 'uploads', bucket, key });
      expect({ key, status: r.status, error: r.body.error }).toEqual({ key, status: 400, error: 'E_KEY' });
      jobRequests[JSON.stringify(key).slice(0, 40)] = `${r.status} ${r.body.message!.slice(0, 90)}`;
    }
    await waitFor('forged notifications finished', () => {
      const c = ledgerCounts(ws.data);
      return c.queued + c.running + c.failed === 0;
    }, 60_000, 50);

    const rows = ledgerRows(ws.data);
    const byKey = new Map(rows.map((r) => [r.key, r]));
    for (const key of [NFC, NFD, 'back\\slash.jpg', 'q?&=#+%41 .jpg', 'abs/x.jpg']) {
      expect(byKey.get(key), key).toMatchObject({ state: 'done' });
      const meta = JSON.parse(readFileSync(path.join(ws.out, key.replace(/\.jpg$/, ''), 'meta.json'), 'utf8'));
      expect(meta.sha256).toBe(sha256(stored[key]!));
    }
    expect(byKey.get(LONG_KEY)).toMatchObject({ state: 'dead', attempts: 1, error: expect.stringMatching(/^output key is over 1024 bytes/) });
    const forged: Record<string, string> = {};
    for (const key of hostile) {
      const row = byKey.get(key);
      // Refused on arrival (no job), or a dead letter at the first attempt that says why.
      if (row) {
        expect({ key, state: row.state, attempts: row.attempts }).toEqual({ key, state: 'dead', attempts: 1 });
        expect(row.error).toMatch(/output key|leave the output root|NUL|no such|refus|invalid/i);
      }
      forged[JSON.stringify(key).slice(0, 40)] = row ? `dead: ${row.error!.slice(0, 90)}` : 'no job';
    }
    expect(outsideRoot(ws.out)).toEqual([]);
    expect(strays(ws.root, ['inbox', 'out', 'data', 'pipelines'])).toEqual([]);
    expect(svc.alive).toBe(true);
    expect(await svc.stop()).toBe(0);
    reports.bucket = { refusedByMinio, forgedNotificationsAnswer: events.body, forged, jobRequests };
  }, 120_000);
});
