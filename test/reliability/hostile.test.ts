/**
 * Hostile input dropped into a running `mediaflow run`: each file ends as a
 * clear dead letter (the key, then the reason; no retries) or a correct
 * output, nothing is read or fetched on an SVG's behalf, and the service is
 * still up and working afterwards.
 */
import { copyFileSync, mkdirSync, openSync, readFileSync, statSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fixture, pngBomb } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';
import { ledgerCounts, ledgerRows, listFiles, RunningService, sha256, smallJpeg, writePipeline, type LedgerRow, suiteReports } from './harness.js';

const RSS_BOUND_MB = 400;

const reports = suiteReports('hostile');

/** Inserts an APP1 segment right after the JPEG's SOI marker. */
function withApp1(jpeg: Buffer, payload: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(payload.length + 2);
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, 0xe1]), len, payload, jpeg.subarray(2)]);
}

/** An animated GIF of `frames` alternating black and white 64x64 frames (alternating, so no encoder merges them). */
async function manyFrameGif(frames: number): Promise<Buffer> {
  const size = 64 * 64 * 3;
  const raw = Buffer.alloc(size * frames);
  for (let f = 1; f < frames; f += 2) raw.fill(255, f * size, (f + 1) * size);
  return sharp(raw, { raw: { width: 64, height: 64 * frames, channels: 3, pageHeight: 64 } }).gif({ effort: 1 }).toBuffer();
}

const redPng = () => sharp({ create: { width: 32, height: 32, channels: 3, background: '#ff0000' } }).png().toBuffer();

/** Pixels that are clearly red: any sign of a referenced red image in the output. */
async function redPixels(file: string): Promise<number> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i]! > 180 && data[i + 1]! < 90 && data[i + 2]! < 90) n++;
  return n;
}

/** Gives a file an atime older than its mtime: under relatime (or strictatime) the next read moves it. */
function armAtime(file: string): number {
  utimesSync(file, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-02T00:00:00Z'));
  return statSync(file).atimeMs;
}

describe('hostile input', () => {
  let ws: ReturnType<typeof workspace>;
  let svc: RunningService | null = null;
  let canary: http.Server | null = null;

  beforeEach(() => { ws = workspace('mf-hostile-'); });
  afterEach(async () => {
    svc?.kill('SIGKILL');
    await svc?.exited();
    svc = null;
    await new Promise((r) => (canary ? canary.close(r) : r(undefined)));
    canary = null;
    ws.cleanup();
  });

  it('bombs, frame bombs, broken, empty, disguised, many-frame, SVG with external references, huge EXIF: dead letters or correct outputs, service up', async () => {
    // Anything an SVG could make the service fetch lands here.
    const hits: string[] = [];
    canary = http.createServer((req, res) => { hits.push(req.url ?? ''); res.end(); });
    await new Promise<void>((r) => canary!.listen(0, '127.0.0.1', () => r()));
    const port = (canary.address() as AddressInfo).port;

    // Files an SVG might reference: outside the inbox, and inside it under a name no pipeline takes.
    const secret = path.join(ws.root, 'secret');
    mkdirSync(secret);
    writeFileSync(path.join(secret, 'red.png'), await redPng());
    writeFileSync(path.join(secret, 'secret.txt'), 'top secret\n');
    writeFileSync(path.join(ws.inbox, 'sibling.dat'), await redPng());
    const watched = [path.join(secret, 'red.png'), path.join(secret, 'secret.txt'), path.join(ws.inbox, 'sibling.dat')];
    const atimes = watched.map(armAtime);
    // The probe itself: a control file read once must show a new atime, or the check proves nothing here.
    const control = path.join(secret, 'control.txt');
    writeFileSync(control, 'x');
    const controlBefore = armAtime(control);
    readFileSync(control);
    expect(statSync(control).atimeMs).not.toBe(controlBefore);

    const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xi="http://www.w3.org/2001/XInclude" width="64" height="64">
  <style>@import url("http://127.0.0.1:${port}/style.css");</style>
  <rect width="64" height="64" fill="#ffffff"/>
  <image href="../secret/red.png" x="0" y="0" width="32" height="32"/>
  <image xlink:href="file://${secret}/red.png" x="32" y="0" width="32" height="32"/>
  <image href="http://127.0.0.1:${port}/pixel.png" x="0" y="32" width="32" height="32"/>
  <image href="sibling.dat" x="32" y="32" width="32" height="32"/>
  <rect width="10" height="10" fill="url(http://127.0.0.1:${port}/paint.svg#p)"/>
  <use href="http://127.0.0.1:${port}/use.svg#x"/>
  <xi:include href="file://${secret}/secret.txt" parse="text"/>
</svg>`;
    // An external entity (XXE): refused by the XML parser, never read.
    const xxe = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY secret SYSTEM "file://${secret}/secret.txt"> ]>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text x="2" y="30">&secret;</text></svg>`;

    const base = await smallJpeg(1, 96, 64);
    const goodExif = await sharp(base).withExif({ IFD0: { ImageDescription: 'A'.repeat(60_000), Make: 'Hostile', Model: 'Test' } }).jpeg().toBuffer();
    // A TIFF header whose first IFD claims 65535 entries and points far past the segment.
    const badTiff = Buffer.concat([Buffer.from('Exif\0\0II*\0', 'latin1'), Buffer.from([8, 0, 0, 0, 0xff, 0xff, 0x0f, 0x01, 0x02, 0x00, 0xff, 0xff, 0xff, 0x7f, 0xf0, 0xff, 0xff, 0x7f])]);
    let manyApp1 = withApp1(base, badTiff);
    for (let i = 0; i < 30; i++) manyApp1 = withApp1(manyApp1, Buffer.concat([Buffer.from('Exif\0\0MM\0*', 'latin1'), Buffer.alloc(65_000, i)]));

    const files: Record<string, Buffer> = {
      'bomb.png': pngBomb(20_000, 20_000),
      'truncated.jpg': readFileSync(fixture('truncated.jpg')),
      'corrupt-header.jpg': readFileSync(fixture('corrupt-header.jpg')),
      'empty.jpg': Buffer.alloc(0),
      'not-an-image.jpg': Buffer.from('%PDF-1.4 this is not a JPEG at all\n'.repeat(50)),
      'svg-in-disguise.jpg': Buffer.from(svg),
      'frames.gif': await manyFrameGif(5000),
      // Under the anim pipeline's pixel limit (64x64 x 400 = 1.6 million), over maxFrames (300 by default).
      'framebomb.gif': await manyFrameGif(400),
      'loop.gif': readFileSync(fixture('animated-loop-3.gif')),
      'evil.svg': Buffer.from(svg),
      'xxe.svg': Buffer.from(xxe),
      'huge-exif.jpg': goodExif,
      'broken-exif.jpg': manyApp1,
    };
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 50, include: ['**/*.{jpg,png,gif,svg}'] },
      steps: [{ id: 'thumb', use: 'thumbnail', width: 32, format: 'webp' }, { id: 'meta', use: 'metadata' }],
      output: { type: 'folder', path: './out' }, retry: { attempts: 3, backoffMs: 100 },
    });
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'anim', source: { type: 'folder', path: './inbox', stableMs: 50, include: ['**/*.gif'] },
      steps: [{ id: 'anim', use: 'thumbnail', width: 32, format: 'webp', animated: true }],
      output: { type: 'folder', path: './out-anim' }, limitInputPixels: 10_000_000, retry: { attempts: 3, backoffMs: 100 },
    });
    writePipeline(path.join(ws.root, 'pipelines'), {
      name: 'svg', source: { type: 'folder', path: './inbox', stableMs: 50, include: ['**/*.svg'] },
      steps: [{ id: 'render', use: 'convert', format: 'png' }], allowSvg: true,
      output: { type: 'folder', path: './out-svg' }, retry: { attempts: 3, backoffMs: 100 },
    });

    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root);
    await svc.ready();
    for (const [name, data] of Object.entries(files)) writeFileSync(path.join(ws.inbox, name), data);
    const expectedJobs = Object.keys(files).length + 5; // the three .gif files, evil.svg and xxe.svg go to two pipelines each
    await waitFor('every hostile job finished', () => {
      const c = ledgerCounts(ws.data);
      // At least: a file caught mid-write on a loaded machine is two versions of its key, the older superseded or ended.
      return c.done + c.dead >= expectedJobs && c.queued + c.running + c.failed === 0;
    }, 90_000, 50);

    const rows = ledgerRows(ws.data);
    // The newest version of the key: what the file is now.
    const job = (pipeline: string, key: string): LedgerRow => rows.filter((r) => r.pipeline === pipeline && r.key === key).at(-1)!;
    const dead = (pipeline: string, key: string, reason: RegExp) => {
      const r = job(pipeline, key);
      expect({ key, state: r.state, attempts: r.attempts }).toEqual({ key, state: 'dead', attempts: 1 });
      expect(r.error!.startsWith(`${key}: `), r.error!).toBe(true);
      expect(r.error).toMatch(reason);
      return r.error;
    };
    const outcomes: Record<string, string> = {};
    outcomes.bomb = dead('photos', 'bomb.png', /image is 20000x20000 pixels, over the limit of 268402689 \(limitInputPixels\)/)!;
    outcomes.truncated = dead('photos', 'truncated.jpg', /corrupt or truncated image \(VipsJpeg: premature end of JPEG image\)/)!;
    outcomes.corruptHeader = dead('photos', 'corrupt-header.jpg', /corrupt|not an image/)!;
    outcomes.empty = dead('photos', 'empty.jpg', /input is empty \(0 bytes\)/)!;
    outcomes.notAnImage = dead('photos', 'not-an-image.jpg', /not an image in a supported format/)!;
    outcomes.svgInDisguise = dead('photos', 'svg-in-disguise.jpg', /SVG input is not allowed by this pipeline/)!;
    outcomes.svgRefused = dead('photos', 'evil.svg', /SVG input is not allowed by this pipeline/)!;
    dead('photos', 'xxe.svg', /SVG input is not allowed by this pipeline/);
    outcomes.svgExternalEntity = dead('svg', 'xxe.svg', /corrupt or unreadable image header \(.*Entity 'secret' not defined\)/)!;
    outcomes.manyFramesAnimated = dead('anim', 'frames.gif', /64x64 pixels x 5000 frames, over the limit of 10000000/)!;
    outcomes.frameBomb = dead('anim', 'framebomb.gif', /^framebomb\.gif: animated image has 400 frames, over the limit of 300 \(maxFrames\)$/)!;
    // The frame count matters only to an animated step; an animation under the limit keeps its frames.
    expect(job('photos', 'framebomb.gif').state).toBe('done');
    expect(job('anim', 'loop.gif'), job('anim', 'loop.gif').error ?? '').toMatchObject({ state: 'done' });
    expect((await sharp(path.join(ws.root, 'out-anim/loop/anim.webp')).metadata()).pages).toBe(10);

    // Many frames, first frame only: a correct, small output.
    expect(job('photos', 'frames.gif').state).toBe('done');
    const thumb = await sharp(path.join(ws.out, 'frames/thumb.webp')).metadata();
    expect({ width: thumb.width, height: thumb.height, pages: thumb.pages ?? 1 }).toEqual({ width: 32, height: 32, pages: 1 });
    expect(JSON.parse(readFileSync(path.join(ws.out, 'frames/meta.json'), 'utf8'))).toMatchObject({ format: 'gif', pages: 5000 });
    outcomes.manyFramesFirstFrame = 'done: 32x32 webp from frame 1; metadata pages 5000';

    // SVG rendered from memory: nothing referenced was fetched or read, nothing of it shows.
    expect(job('svg', 'evil.svg'), job('svg', 'evil.svg').error ?? '').toMatchObject({ state: 'done' });
    const rendered = path.join(ws.root, 'out-svg/evil/render.png');
    expect(await sharp(rendered).metadata()).toMatchObject({ width: 64, height: 64 });
    expect(await redPixels(rendered)).toBe(0);
    expect(hits).toEqual([]);
    expect(watched.map((f) => statSync(f).atimeMs)).toEqual(atimes);
    outcomes.svgAllowed = 'done: 64x64 png, 0 red pixels, 0 HTTP requests, referenced files not read (atime unchanged)';

    // Huge or broken EXIF: an output whose metadata is right, or a clear dead letter.
    for (const key of ['huge-exif.jpg', 'broken-exif.jpg']) {
      const r = job('photos', key);
      if (r.state === 'done') {
        const meta = JSON.parse(readFileSync(path.join(ws.out, key.replace('.jpg', ''), 'meta.json'), 'utf8'));
        expect(meta).toMatchObject({ format: 'jpeg', width: 96, height: 64, sha256: sha256(files[key]!) });
        outcomes[key] = `done${meta.exif ? `: exif ${JSON.stringify(meta.exif)}` : ': no exif summary'}`;
      } else {
        outcomes[key] = dead('photos', key, /corrupt|EXIF|exif/)!;
      }
    }
    expect(outcomes['huge-exif.jpg']).toContain('"make":"Hostile"');

    // Nothing half-written, nothing for the dead letters.
    expect(listFiles(ws.out).filter((f) => path.basename(f).startsWith('.'))).toEqual([]);
    // Still up, still working, memory bounded.
    expect(svc.alive).toBe(true);
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    writeFileSync(path.join(ws.inbox, 'after.jpg'), await smallJpeg(7));
    await waitFor('a good file after all that', () => ledgerRows(ws.data).find((r) => r.key === 'after.jpg' && r.state === 'done'), 30_000);
    const { peakMb } = svc.memory();
    expect(peakMb).toBeLessThan(RSS_BOUND_MB);
    expect(await svc.stop()).toBe(0);
    reports.inputs = { ...outcomes, peakRssMb: Math.round(peakMb) };
  }, 150_000);

  it('a file rewritten in place while it is read: outputs always match the bytes hashed, the last version wins', async () => {
    const landscape = await sharp({ create: { width: 2400, height: 1600, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 95 }).toBuffer();
    const portrait = await sharp({ create: { width: 1600, height: 2400, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 95 }).toBuffer();
    writePipeline(path.join(ws.root, 'pipelines'), {
      // stableMs 0: take a file at every change, the most hostile setting for this.
      name: 'photos', source: { type: 'folder', path: './inbox', stableMs: 0 },
      steps: [{ id: 'thumb', use: 'thumbnail', width: 60, height: 60, format: 'png' }, { id: 'meta', use: 'metadata' }],
      output: { type: 'folder', path: './out' }, retry: { attempts: 2, backoffMs: 50 },
    });
    const file = path.join(ws.inbox, 'moving.jpg');
    copyFileSync(fixture('Landscape_1.jpg'), file);
    svc = new RunningService(['--data', 'data', '--concurrency', '2', '--port', '0'], ws.root);
    await svc.ready();

    // A writer that rewrites the file in place (truncate, then 256 KiB at a time), over and over.
    const rewrites = 16;
    for (let n = 0; n < rewrites; n++) {
      const data = n % 2 === 0 ? portrait : landscape; // the last one (n = 15) is the landscape
      const fd = openSync(file, 'w');
      for (let at = 0; at < data.length; at += 256 * 1024) {
        writeSync(fd, data, at, Math.min(256 * 1024, data.length - at));
        await new Promise((r) => setTimeout(r, 2));
      }
      closeSync(fd);
      await new Promise((r) => setTimeout(r, 15 + (n % 4) * 20));
    }
    const final = statSync(file);
    const finalVersion = `file:${final.size}:${final.mtimeMs}`;
    await waitFor('the final version done', () => {
      const rows = ledgerRows(ws.data);
      const c = ledgerCounts(ws.data);
      return rows.some((r) => r.version === finalVersion && r.state === 'done') && c.queued + c.running + c.failed === 0;
    }, 20_000, 50).catch((err) => {
      console.log(finalVersion, ledgerRows(ws.data).map((r) => `${r.id} ${r.version} ${r.state} ${r.attempts} ${r.error}`).join('\n'));
      console.log(svc!.logTail(60));
      throw err;
    });

    const rows = ledgerRows(ws.data).filter((r) => r.key === 'moving.jpg');
    for (const r of rows) {
      expect(['done', 'dead', 'superseded']).toContain(r.state);
      if (r.state === 'dead') expect(r.error).toMatch(/^moving\.jpg: (corrupt or truncated image|input is empty|corrupt or unreadable image header|not an image)/);
    }
    // The outputs on disk come from one snapshot: the last version's bytes.
    const meta = JSON.parse(readFileSync(path.join(ws.out, 'moving/meta.json'), 'utf8'));
    expect(meta).toMatchObject({ sha256: sha256(landscape), width: 2400, height: 1600, size: landscape.length });
    expect(await sharp(path.join(ws.out, 'moving/thumb.png')).metadata()).toMatchObject({ width: 60, height: 40 });
    // Every done job rendered what it hashed: a complete version's bytes (the original, or one of the two).
    const known = new Set([sha256(readFileSync(fixture('Landscape_1.jpg'))), sha256(landscape), sha256(portrait)]);
    for (const r of rows.filter((row) => row.state === 'done')) expect(known.has(r.sha256!), `job ${r.id} rendered ${r.sha256}`).toBe(true);
    expect(svc.alive).toBe(true);
    expect(await svc.stop()).toBe(0);
    const by = (s: string) => rows.filter((r) => r.state === s).length;
    reports.changingFile = { rewrites, jobs: rows.length, done: by('done'), dead: by('dead'), superseded: by('superseded'), deadReasons: [...new Set(rows.filter((r) => r.error && r.state === 'dead').map((r) => r.error!.replace(/ \(.*$/, '')))] };
  }, 150_000);
});
