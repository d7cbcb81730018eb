import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { convert } from '../../src/steps/convert.js';
import { metadata } from '../../src/steps/metadata.js';
import { stepSchema } from '../../src/steps/registry.js';
import { toPermanent } from '../../src/steps/sharp-input.js';
import { isPermanent, PermanentError, type StepContext, type StepInput } from '../../src/steps/step.js';
import { thumbnail } from '../../src/steps/thumbnail.js';
import { fixture, fixtureBytes, pngBomb, stepInputFrom, stepInputFromPath } from '../helpers/fixtures.js';

const ctx = (over: Partial<StepContext> = {}): StepContext => ({
  signal: new AbortController().signal, limitInputPixels: 268_402_689, timeoutSeconds: 60, allowSvg: false, ...over,
});
const input = (name: string): StepInput => stepInputFrom(fixtureBytes(name), name);

const thumb = (i: StepInput, opts: Record<string, unknown>, c = ctx()) =>
  thumbnail.run(i, thumbnail.schema.parse({ id: 'thumb', use: 'thumbnail', ...opts }), c);
const conv = (i: StepInput, opts: Record<string, unknown>, c = ctx()) =>
  convert.run(i, convert.schema.parse({ id: 'conv', use: 'convert', ...opts }), c);
const meta = (i: StepInput, c = ctx()) => metadata.run(i, metadata.schema.parse({ id: 'meta', use: 'metadata' }), c);
const steps = [(i: StepInput, c?: StepContext) => thumb(i, { width: 100 }, c), (i: StepInput, c?: StepContext) => conv(i, { format: 'png' }, c), meta];

/** An animated GIF of `frames` 8x8 frames, alternating black and white so no encoder merges them: a frame bomb far under the pixel limit. */
async function frameBombGif(frames: number): Promise<Buffer> {
  const size = 8 * 8 * 3;
  const raw = Buffer.alloc(size * frames);
  for (let f = 1; f < frames; f += 2) raw.fill(255, f * size, (f + 1) * size);
  return sharp(raw, { raw: { width: 8, height: 8 * frames, channels: 3, pageHeight: 8 } }).gif({ effort: 1 }).toBuffer();
}

/** Rejects with a PermanentError whose message names the key; returns the message. */
async function permanent(p: Promise<unknown>, key: string): Promise<string> {
  const err = await p.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e);
  expect(err).toBeInstanceOf(PermanentError);
  expect(isPermanent(err)).toBe(true);
  const message = (err as Error).message;
  expect(message.startsWith(`${key}: `)).toBe(true);
  return message;
}

describe('thumbnail', () => {
  it('resizes and reports the output', async () => {
    const out = await thumb(input('Landscape_1.jpg'), { width: 200 });
    expect(out).toMatchObject({ stepId: 'thumb', ext: 'jpg', contentType: 'image/jpeg', width: 200, height: 150 });
    const m = await sharp(out.data).metadata();
    expect([m.format, m.width, m.height]).toEqual(['jpeg', 200, 150]);
  });

  it('auto-orients: EXIF orientation 6 comes out landscape, portrait stays portrait', async () => {
    const l6 = await thumb(input('Landscape_6.jpg'), { width: 300, height: 300 });
    expect(l6.width!).toBeGreaterThan(l6.height!);
    expect([l6.width, l6.height]).toEqual([300, 225]);
    const decoded = await sharp(l6.data).metadata();
    expect(decoded.width).toBeGreaterThan(decoded.height);
    const p1 = await thumb(input('Portrait_1.jpg'), { width: 300, height: 300 });
    expect(p1.height!).toBeGreaterThan(p1.width!);
  });

  it('writes each format with the right extension and content type', async () => {
    const expected = { jpeg: ['jpg', 'image/jpeg', 'jpeg'], png: ['png', 'image/png', 'png'], webp: ['webp', 'image/webp', 'webp'], avif: ['avif', 'image/avif', 'heif'] };
    for (const [format, [ext, type, decoded]] of Object.entries(expected)) {
      const out = await thumb(input('flowers.jpeg'), { width: 160, format });
      expect([out.ext, out.contentType]).toEqual([ext, type]);
      const m = await sharp(out.data).metadata();
      expect(m.format).toBe(decoded);
      if (format === 'avif') expect(m.compression).toBe('av1');
    }
  });

  it('keeps alpha for png, webp and avif and flattens it onto the background for jpeg', async () => {
    const src = input('with-alpha.png');
    const { data: raw, info } = await sharp(src.buffer).raw().toBuffer({ resolveWithObject: true });
    expect(raw[3]).toBeLessThan(255); // this fixture is uniformly semi-transparent
    for (const format of ['png', 'webp', 'avif']) {
      const out = await thumb(src, { width: info.width, format });
      expect((await sharp(out.data).metadata()).hasAlpha, format).toBe(true);
    }
    const jpeg = await thumb(src, { width: info.width, format: 'jpeg', background: '#ff0000' });
    const m = await sharp(jpeg.data).metadata();
    expect([m.hasAlpha, m.channels]).toEqual([false, 3]);
    const flat = await sharp(jpeg.data).raw().toBuffer();
    const a = raw[3] / 255;
    const expected = [raw[0] * a + 255 * (1 - a), raw[1] * a, raw[2] * a];
    expected.forEach((v, c) => expect(Math.abs(flat[c] - v), `channel ${c}`).toBeLessThan(12));
  });

  it('does not enlarge unless asked', async () => {
    const src = input('Landscape_1.jpg');
    expect(await thumb(src, { width: 2000 })).toMatchObject({ width: 600, height: 450 });
    expect(await thumb(src, { width: 2000, enlarge: true })).toMatchObject({ width: 2000, height: 1500 });
  });

  it('honours fit cover and contain', async () => {
    const src = input('Landscape_1.jpg');
    expect(await thumb(src, { width: 100, height: 100, fit: 'cover' })).toMatchObject({ width: 100, height: 100 });
    const contain = await thumb(src, { width: 100, height: 100, fit: 'contain', background: '#000000' });
    expect(contain).toMatchObject({ width: 100, height: 100 });
    const { data } = await sharp(contain.data).raw().toBuffer({ resolveWithObject: true });
    expect(Math.max(...data.subarray(0, 3))).toBeLessThan(20); // top-left is padding
  });

  it('strips metadata by default and keeps it (orientation reset) with keepMetadata', async () => {
    const src = input('Landscape_6.jpg');
    const stripped = await sharp((await thumb(src, { width: 300 })).data).metadata();
    expect([stripped.exif, stripped.icc, stripped.orientation]).toEqual([undefined, undefined, undefined]);
    const kept = await sharp((await thumb(src, { width: 300, keepMetadata: true })).data).metadata();
    expect(kept.exif).toBeDefined();
    expect(kept.orientation).toBe(1);
    expect(kept.width).toBeGreaterThan(kept.height);
  });

  it('takes the first frame of an animation by default and keeps all frames for animated webp', async () => {
    const gif = input('animated-loop-3.gif');
    const first = await sharp((await thumb(gif, { width: 100, format: 'webp' })).data).metadata();
    expect(first.pages ?? 1).toBe(1);
    const out = await thumb(gif, { width: 100, format: 'webp', animated: true });
    const all = await sharp(out.data).metadata();
    expect(all.pages).toBe(10);
    expect([out.width, out.height]).toEqual([100, Math.round((285 * 100) / 370)]);
  });

  it('converts CMYK to sRGB', async () => {
    const out = await thumb(input('Channel_digital_image_CMYK_color.jpg'), { width: 200 });
    const m = await sharp(out.data).metadata();
    expect([m.space, m.channels]).toEqual(['srgb', 3]);
  });

  it('reads a spooled file as well as a buffer', async () => {
    const out = await thumb(stepInputFromPath(fixture('Landscape_6.jpg'), 'Landscape_6.jpg'), { width: 300 });
    expect(out).toMatchObject({ width: 300, height: 225 });
  });
});

describe('convert', () => {
  it('re-encodes at the displayed size', async () => {
    expect(await conv(input('G31D.TIF'), { format: 'webp' })).toMatchObject({ ext: 'webp', width: 2464, height: 3248 });
    const jpeg = await conv(input('4.webp'), { format: 'jpeg' });
    expect(jpeg).toMatchObject({ ext: 'jpg', contentType: 'image/jpeg', width: 1024, height: 772 });
    expect((await sharp(jpeg.data).metadata()).format).toBe('jpeg');
    expect(await conv(input('Landscape_6.jpg'), { format: 'png' })).toMatchObject({ width: 600, height: 450 });
  });

  it('applies the alpha, CMYK and animation rules of thumbnail', async () => {
    expect((await sharp((await conv(input('with-alpha.png'), { format: 'webp' })).data).metadata()).hasAlpha).toBe(true);
    expect((await sharp((await conv(input('with-alpha.png'), { format: 'jpeg' })).data).metadata()).hasAlpha).toBe(false);
    expect((await sharp((await conv(input('Channel_digital_image_CMYK_color.jpg'), { format: 'jpeg' })).data).metadata()).space).toBe('srgb');
    const anim = await conv(input('animated-loop-3.gif'), { format: 'webp', animated: true });
    expect((await sharp(anim.data).metadata()).pages).toBe(10);
    expect([anim.width, anim.height]).toEqual([370, 285]);
  });
});

describe('metadata', () => {
  it('describes the displayed size, checksum and orientation as JSON', async () => {
    const src = input('Landscape_6.jpg');
    const out = await meta(src);
    expect([out.ext, out.contentType]).toEqual(['json', 'application/json']);
    const text = out.data.toString('utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).toContain('\n  "width": 600');
    expect(JSON.parse(text)).toMatchObject({
      format: 'jpeg', width: 600, height: 450, size: src.size, sha256: src.sha256, orientation: 6, hasAlpha: false, space: 'srgb',
    });
    expect(JSON.parse(text).pages).toBeUndefined();
  });

  it('includes EXIF date and camera where present, and frame count', async () => {
    const cmyk = JSON.parse((await meta(input('Channel_digital_image_CMYK_color.jpg'))).data.toString());
    expect(cmyk).toMatchObject({ space: 'cmyk', exif: { date: '2004-03-20T14:54:55', camera: { make: 'Canon', model: 'Canon EOS 300D DIGITAL' } } });
    const flowers = JSON.parse((await meta(input('flowers.jpeg'))).data.toString());
    expect(flowers.exif).toEqual({ date: '2016-04-08T02:32:20' });
    expect(JSON.parse((await meta(input('4.webp'))).data.toString()).exif).toBeUndefined();
    expect(JSON.parse((await meta(input('animated-loop-3.gif'))).data.toString())).toMatchObject({ pages: 10, hasAlpha: true });
  });

  it('reads headers only: a truncated body still has metadata', async () => {
    expect(JSON.parse((await meta(input('truncated.jpg'))).data.toString())).toMatchObject({ width: 2725, height: 2225 });
  });
});

describe('bad input', () => {
  it('refuses a corrupt header in every step', async () => {
    for (const run of steps) {
      expect(await permanent(run(input('corrupt-header.jpg')), 'corrupt-header.jpg')).toMatch(/corrupt or unreadable image header \(VipsJpeg: .+\)$/);
    }
  });

  it('refuses a truncated image instead of grey-filling it', async () => {
    for (const run of steps.slice(0, 2)) {
      expect(await permanent(run(input('truncated.jpg')), 'truncated.jpg')).toMatch(/corrupt or truncated image \(VipsJpeg: premature end of JPEG image\)$/);
    }
  });

  it('gives each of many failures at once its own reason (libvips has one error buffer per process)', async () => {
    const good = input('Landscape_1.jpg');
    const runs = Array.from({ length: 8 }, (_, i) => {
      const [name, reason] = i % 2
        ? ['truncated.jpg', /: corrupt or truncated image \(VipsJpeg: premature end of JPEG image\)$/]
        : ['corrupt-header.jpg', /: corrupt or unreadable image header \(VipsJpeg: .+\)$/];
      return permanent(thumb(input(name), { width: 100 }), name).then((message) => ({ name, message, reason }));
    });
    const images = Array.from({ length: 4 }, () => thumb(good, { width: 100 })); // successes beside them are unaffected
    for (const { message, reason } of await Promise.all(runs)) expect(message).toMatch(reason);
    for (const out of await Promise.all(images)) expect(out.width).toBe(100);
  });

  it('refuses empty input and text named .jpg, from memory and from a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mediaflow-steps-'));
    try {
      for (const run of steps) {
        expect(await permanent(run(stepInputFrom(Buffer.alloc(0), 'empty.jpg')), 'empty.jpg')).toMatch(/empty/);
        expect(await permanent(run(stepInputFrom(Buffer.from('hello, not a photo\n'), 'note.jpg')), 'note.jpg')).toMatch(/not an image in a supported format/);
      }
      writeFileSync(join(dir, 'note.jpg'), 'hello, not a photo\n');
      expect(await permanent(steps[0](stepInputFromPath(join(dir, 'note.jpg'), 'note.jpg')), 'note.jpg')).toMatch(/not an image/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a decompression bomb and says how big it is', async () => {
    const bomb = stepInputFrom(pngBomb(20000, 20000), 'bomb.png');
    expect(bomb.size).toBeLessThan(200_000);
    for (const run of steps) {
      expect(await permanent(run(bomb), 'bomb.png')).toBe('bomb.png: image is 20000x20000 pixels, over the limit of 268402689 (limitInputPixels)');
    }
    expect(await permanent(thumb(input('Landscape_1.jpg'), { width: 10 }, ctx({ limitInputPixels: 1000 })), 'Landscape_1.jpg'))
      .toMatch(/600x450 pixels, over the limit of 1000/);
  });

  it('counts every frame against the pixel limit when animated', async () => {
    const gif = input('animated-loop-3.gif');
    const c = ctx({ limitInputPixels: 370 * 285 * 5 });
    await expect(thumb(gif, { width: 50, format: 'webp' }, c)).resolves.toBeDefined();
    expect(await permanent(thumb(gif, { width: 50, format: 'webp', animated: true }, c), 'animated-loop-3.gif')).toMatch(/370x285 pixels x 10 frames/);
  });

  it('refuses a frame bomb from its header when animated (maxFrames, 300 by default); the first frame alone still renders', async () => {
    const bomb = stepInputFrom(await frameBombGif(400), 'bomb.gif');
    expect(bomb.size).toBeLessThan(50_000);
    const refusal = 'bomb.gif: animated image has 400 frames, over the limit of 300 (maxFrames)';
    // Unset in the context: the guard holds at the default.
    expect(await permanent(thumb(bomb, { width: 4, format: 'webp', animated: true }), 'bomb.gif')).toBe(refusal);
    expect(await permanent(conv(bomb, { format: 'webp', animated: true }, ctx({ maxFrames: 300 })), 'bomb.gif')).toBe(refusal);
    expect(await permanent(thumb(bomb, { width: 4, format: 'webp', animated: true }, ctx({ maxFrames: 399 })), 'bomb.gif'))
      .toBe('bomb.gif: animated image has 400 frames, over the limit of 399 (maxFrames)');
    const first = await thumb(bomb, { width: 4, format: 'webp' }, ctx({ maxFrames: 1 }));
    expect((await sharp(first.data).metadata()).pages ?? 1).toBe(1);
    const all = await thumb(bomb, { width: 4, format: 'webp', animated: true }, ctx({ maxFrames: 400 }));
    expect((await sharp(all.data).metadata()).pages).toBe(400);
  });

  it('renders an animation with as many frames as maxFrames, from memory and from a file', async () => {
    const gif = input('animated-loop-3.gif'); // 10 frames
    expect((await sharp((await thumb(gif, { width: 50, format: 'webp', animated: true })).data).metadata()).pages).toBe(10);
    expect((await sharp((await conv(gif, { format: 'webp', animated: true }, ctx({ maxFrames: 10 }))).data).metadata()).pages).toBe(10);
    expect(await permanent(thumb(gif, { width: 50, format: 'webp', animated: true }, ctx({ maxFrames: 9 })), 'animated-loop-3.gif'))
      .toBe('animated-loop-3.gif: animated image has 10 frames, over the limit of 9 (maxFrames)');
    const spooled = stepInputFromPath(fixture('animated-loop-3.gif'), 'animated-loop-3.gif');
    expect(await permanent(thumb(spooled, { width: 50, format: 'webp', animated: true }, ctx({ maxFrames: 9 })), 'animated-loop-3.gif'))
      .toMatch(/10 frames, over the limit of 9 \(maxFrames\)/);
  });

  it('maps other loaders\' complaints, and leaves errors that are not about the input to be retried', () => {
    expect(toPermanent(new Error('vipspng: libpng read error'), 'a.png').message).toBe('a.png: corrupt or truncated image (vipspng: libpng read error)');
    expect(toPermanent(new Error('Warning treated as error due to failOn setting\nPremature EOL at line 3240'), 'a.tif').message)
      .toBe('a.tif: corrupt or truncated image (Premature EOL at line 3240)');
    expect(isPermanent(toPermanent(new Error('Input buffer has corrupt header: gifload_buffer: Invalid frame data'), 'a.gif'))).toBe(true);
    const err = new Error('write ENOSPC');
    expect(toPermanent(err, 'a.jpg')).toBe(err);
    expect(isPermanent(toPermanent(new Error('Input file is missing: /tmp/x'), 'a.jpg'))).toBe(false);
  });
});

describe('SVG', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mediaflow-svg-'));
    await sharp({ create: { width: 40, height: 40, channels: 3, background: '#ff0000' } }).png().toFile(join(dir, 'red.png'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const svg = (href: string) => Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="40">
  <rect width="40" height="40" fill="#ffffff"/>
  <image href="${href}" xlink:href="${href}" x="0" y="0" width="40" height="40"/>
</svg>
`);

  it('is refused unless the pipeline allows it, also gzipped and from a file', async () => {
    expect(await permanent(thumb(stepInputFrom(svg('red.png'), 'logo.svg'), { width: 20 }), 'logo.svg')).toMatch(/SVG input is not allowed/);
    expect(await permanent(meta(stepInputFrom(gzipSync(svg('red.png')), 'logo.svgz')), 'logo.svgz')).toMatch(/SVG/);
    writeFileSync(join(dir, 'logo.svg'), svg('red.png'));
    expect(await permanent(meta(stepInputFromPath(join(dir, 'logo.svg'), 'logo.svg')), 'logo.svg')).toMatch(/SVG/);
  });

  it('renders from memory when allowed, without loading what it references', async () => {
    const allow = ctx({ allowSvg: true });
    for (const href of ['/etc/passwd', 'file:///etc/passwd', 'http://127.0.0.1:9/x.png', 'https://example.invalid/x.png']) {
      const out = await thumb(stepInputFrom(svg(href), 'x.svg'), { width: 20, format: 'png' }, allow);
      expect(out).toMatchObject({ width: 20, height: 20, ext: 'png' });
    }
    // Read from its path, libvips would paint the sibling red.png; the step must not.
    writeFileSync(join(dir, 'logo.svg'), svg('red.png'));
    const direct = await sharp(join(dir, 'logo.svg')).raw().toBuffer();
    expect([...direct.subarray(0, 3)]).toEqual([255, 0, 0]);
    for (const src of [stepInputFromPath(join(dir, 'logo.svg'), 'logo.svg'), stepInputFrom(svg(join(dir, 'red.png')), 'abs.svg')]) {
      const out = await conv(src, { format: 'png' }, allow);
      const { data } = await sharp(out.data).raw().toBuffer({ resolveWithObject: true });
      expect([...data.subarray(0, 3)]).toEqual([255, 255, 255]);
    }
  });
});

describe('abort', () => {
  it('rejects with the reason when the signal is already aborted', async () => {
    const reason = new Error('shutting down');
    const c = ctx({ signal: AbortSignal.abort(reason) });
    for (const run of steps) await expect(run(input('Landscape_1.jpg'), c)).rejects.toBe(reason);
  });

  it('rejects with the reason when aborted while running', async () => {
    const controller = new AbortController();
    const reason = new Error('job timed out');
    const running = thumb(input('2569067123_aca715a2ee_o.jpg'), { width: 2000, format: 'avif' }, ctx({ signal: controller.signal }));
    setTimeout(() => controller.abort(reason), 5);
    await expect(running).rejects.toBe(reason);
  });
});

it('parses every step config the registry knows', () => {
  expect(stepSchema.parse({ id: 'm', use: 'metadata' }).use).toBe('metadata');
});
