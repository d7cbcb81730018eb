import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import os from 'node:os';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { z } from 'zod';
import { ImageLock } from './image-lock.js';
import { DEFAULT_MAX_FRAMES, isPermanent, PermanentError, type Artefact, type StepContext, type StepInput } from './step.js';

// libvips caches operations by file path: a watched path rewritten with new
// bytes would otherwise come back with the old pixels.
sharp.cache(false);

/** libvips treats input as SVG when "<svg" occurs in its first 1000 bytes (gunzipped for svgz). */
const SVG_HEADER_SIZE = 1000;

export function looksLikeSvg(head: Buffer): boolean {
  let text = head;
  if (head.length >= 18 && head[0] === 0x1f && head[1] === 0x8b) {
    try {
      text = gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: 1 << 20 });
    } catch {
      return false; // libvips gives up on a broken gzip stream too, so librsvg is never reached
    }
  }
  text = text.subarray(0, SVG_HEADER_SIZE);
  const at = text.toString('latin1').toLowerCase().indexOf('<svg');
  if (at < 0) return false;
  // Same rule as libvips: the bytes before "<svg" must be NUL-free valid UTF-8.
  const prefix = text.subarray(0, at);
  if (prefix.includes(0)) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(prefix);
    return true;
  } catch {
    return false;
  }
}

function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4 * SVG_HEADER_SIZE);
    return head.subarray(0, readSync(fd, head, 0, head.length, 0));
  } finally {
    closeSync(fd);
  }
}

export interface OpenOptions { animated?: boolean }

/** What sharp reads: the buffer, or the path, except that SVG is refused or read into memory. */
function sourceOf(input: StepInput, ctx: StepContext): Buffer | string {
  const source = input.buffer ?? input.path;
  if (source === undefined) throw new Error(`${input.key}: step input has neither buffer nor path`);
  if (input.size === 0) throw new PermanentError(`${input.key}: input is empty (0 bytes)`);
  if (!looksLikeSvg(typeof source === 'string' ? readHead(source) : source.subarray(0, 4 * SVG_HEADER_SIZE))) return source;
  if (!ctx.allowSvg) throw new PermanentError(`${input.key}: SVG input is not allowed by this pipeline (set "allowSvg": true)`);
  // From a path librsvg resolves references against the file's folder; from memory it loads nothing.
  return typeof source === 'string' ? readFileSync(source) : source;
}

/** A sharp instance for untrusted input: strict decoding, pixel limit, timeout, SVG only from memory. */
export function openImage(input: StepInput, ctx: StepContext, opts: OpenOptions = {}): Sharp {
  ctx.signal.throwIfAborted();
  return sharp(sourceOf(input, ctx), { failOn: 'warning', limitInputPixels: ctx.limitInputPixels, animated: opts.animated ?? false })
    .timeout({ seconds: Math.min(3600, Math.max(0, Math.ceil(ctx.timeoutSeconds))) });
}

export interface PixelInfo { width: number; height: number; pages?: number; limit: number }

// A libvips loader complaining about the bytes (with failOn: 'warning', warnings count too).
const LOADER_PREFIX = /^(VipsJpeg|vipspng|VipsPng|\w*load(_\w+)?|webp\w*|tiff\w*|heif\w*|jp2k\w*|spng\w*|\w+2vips):/im;
const LOADER_PHRASE = /failOn setting|premature end|truncat|corrupt|unexpected end|read error|unable to parse|bad dimensions/i;
const TRANSIENT = /out of memory|ENOMEM|EMFILE|ENFILE|EIO|timeout|is missing/i;

/** The first useful line of a libvips error, without sharp's prefixes. */
function detail(message: string): string {
  const lines = message
    .replace(/^Input (buffer|file) has corrupt header:\s*/i, '')
    .split('\n').map((l) => l.trim())
    .filter((l) => l !== '' && !/^Warning treated as error/i.test(l));
  return lines[0] ?? '';
}

/** Maps sharp's errors about the input itself to a PermanentError naming the key; anything else passes through to be retried. */
export function toPermanent(err: unknown, key: string, pixels?: PixelInfo): Error {
  if (isPermanent(err)) return err as Error;
  const message = err instanceof Error ? err.message : String(err);
  const why = (text: string, d = detail(message)) => new PermanentError(`${key}: ${text}${d ? ` (${d})` : ''}`);
  if (/exceeds pixel limit/i.test(message)) {
    if (!pixels) return new PermanentError(`${key}: image has more pixels than the limit (limitInputPixels)`);
    const frames = pixels.pages && pixels.pages > 1 ? ` x ${pixels.pages} frames` : '';
    return new PermanentError(`${key}: image is ${pixels.width}x${pixels.height} pixels${frames}, over the limit of ${pixels.limit} (limitInputPixels)`);
  }
  if (/is empty/i.test(message)) return new PermanentError(`${key}: input is empty (0 bytes)`);
  if (/unsupported image format/i.test(message)) return new PermanentError(`${key}: not an image in a supported format`);
  if (/corrupt header/i.test(message)) return why('corrupt or unreadable image header');
  if (!TRANSIENT.test(message) && (LOADER_PREFIX.test(message) || LOADER_PHRASE.test(message))) return why('corrupt or truncated image');
  return err instanceof Error ? err : new Error(message);
}

/** Header-only look at an image refused for its size, so the message can say how big it is. */
async function pixelInfo(input: StepInput, ctx: StepContext, animated: boolean): Promise<PixelInfo | undefined> {
  try {
    const m = await imageLock.runShared(() => sharp(sourceOf(input, ctx), { limitInputPixels: false, animated }).metadata());
    return { width: m.width, height: m.pageHeight ?? m.height, pages: animated ? m.pages : undefined, limit: ctx.limitInputPixels };
  } catch {
    return undefined;
  }
}

/**
 * Refuses an input with more frames than ctx.maxFrames, from its header,
 * before any frame is decoded: a frame bomb fits under the pixel limit (many
 * small frames), yet every frame is decoded, resized and encoded.
 */
async function checkFrames(input: StepInput, ctx: StepContext): Promise<void> {
  const limit = ctx.maxFrames ?? DEFAULT_MAX_FRAMES;
  // Opened as the render opens it, so a header over the pixel limit is refused with that reason first.
  const { pages = 1 } = await openImage(input, ctx, { animated: true }).metadata();
  if (pages > limit) throw new PermanentError(`${input.key}: animated image has ${pages} frames, over the limit of ${limit} (maxFrames)`);
}

/**
 * Images in the works at once in this process by default: two a core, as
 * many as bin/mediaflow gives libuv's pool threads, so each core alternates
 * between two images, plus two more waiting in libuv's queue, so a pool
 * thread that finishes an image starts the next at once instead of waiting
 * for the main thread to hand it over (on 2 cores 6 beat 4 in 4 of 5 paired
 * rounds, with 3 ms less CPU an image). On one core the main thread shares
 * the core, so a late hand-over idles nothing, and a third image at once
 * was slower than two: two. Measured in docs/BENCHMARKS.md, Image work and
 * jobs. Bounded, so file work queued behind images waits for two at most.
 */
export function defaultImageConcurrency(): number {
  const cores = os.availableParallelism();
  return cores === 1 ? 2 : 2 * cores + 2;
}

/** All image work of this process: at most that many images at once, and see ImageLock for why a failure runs again alone. */
const imageLock = new ImageLock(defaultImageConcurrency());

/** Images of this process now: in the works (running in libuv's pool or queued there) and waiting for a slot (metrics). */
export function imageWork(): { working: number; waiting: number } {
  const { shared, exclusive } = imageLock.holders;
  return { working: shared + (exclusive ? 1 : 0), waiting: imageLock.waiters };
}

/** Sets how many images this process makes at once (`--image-concurrency`); process-wide, as libvips is. */
export function setImageConcurrency(n: number): void {
  imageLock.setSlots(n);
}

/**
 * Runs `work` on an opened image: rejects with the abort reason as soon as
 * ctx.signal fires (sharp cannot be cancelled; its timeout bounds the rest),
 * and turns input errors into PermanentErrors. An animated open is refused
 * first when the input has more frames than ctx.maxFrames. Work that fails
 * in libvips runs once more, alone, so its error is its own (ImageLock): a
 * failure that depended on the moment (memory) may succeed then.
 */
export function withImage<T>(input: StepInput, ctx: StepContext, opts: OpenOptions, work: (img: Sharp) => Promise<T>): Promise<T> {
  // Only an animated open decodes every frame; one that reads the first frame needs no frame count.
  const attempt = async () => {
    if (opts.animated) await checkFrames(input, ctx);
    return work(openImage(input, ctx, opts));
  };
  return guarded(ctx, input.key, attempt, () => pixelInfo(input, ctx, opts.animated ?? false));
}

/** Raw pixels decoded once from an input, for several steps (steps/run-steps.ts). */
export interface Pixels { data: Buffer; info: { width: number; height: number; channels: 1 | 2 | 3 | 4 } }

/** Runs `work` on a fresh sharp instance over decoded pixels, guarded as withImage is; `key` names the input in errors. */
export function withPixels<T>(pixels: Pixels, key: string, ctx: StepContext, work: (img: Sharp) => Promise<T>): Promise<T> {
  const { width, height, channels } = pixels.info;
  // The pixel limit held when the input was decoded; these are at most as many.
  const open = () => sharp(pixels.data, { raw: { width, height, channels }, limitInputPixels: false })
    .timeout({ seconds: Math.min(3600, Math.max(0, Math.ceil(ctx.timeoutSeconds))) });
  // Ahead of other inputs' decodes: these pixels are held until their outputs are made.
  return guarded(ctx, key, () => work(open()), undefined, true);
}

async function guarded<T>(ctx: StepContext, key: string, attempt: () => Promise<T>, pixelsOf?: () => Promise<PixelInfo | undefined>, soon = false): Promise<T> {
  const { signal } = ctx;
  signal.throwIfAborted();
  let onAbort = (): void => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    try {
      return await Promise.race([imageLock.runShared(attempt, soon), aborted]);
    } catch (err) {
      // Refused before libvips ran (SVG not allowed, empty input), aborted, or timed out (again would double the wait).
      if (signal.aborted || isPermanent(err) || /timeout/i.test(err instanceof Error ? err.message : '')) throw err;
      return await Promise.race([imageLock.runExclusive(attempt), aborted]);
    }
  } catch (err) {
    if (signal.aborted && err === signal.reason) throw err;
    const message = err instanceof Error ? err.message : '';
    const pixels = pixelsOf && /exceeds pixel limit/i.test(message) ? await pixelsOf() : undefined;
    throw toPermanent(err, key, pixels);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** The input's first bytes (enough to tell its format), from memory or its spooled file. */
export function headOf(input: StepInput): Buffer {
  if (input.buffer) return input.buffer.subarray(0, 16);
  if (input.path) return readHead(input.path).subarray(0, 16);
  return Buffer.alloc(0);
}

// ---- encoding shared by thumbnail and convert ----

export const outputFormats = ['jpeg', 'png', 'webp', 'avif'] as const;
export type OutputFormat = (typeof outputFormats)[number];

export function isColour(value: string): boolean {
  try {
    sharp({ create: { width: 1, height: 1, channels: 4, background: value } });
    return true;
  } catch {
    return false;
  }
}

export const stepId = z.string().regex(/^[A-Za-z0-9_-]+$/, 'use letters, digits, "_" and "-"')
  .describe('Step id, unique within the pipeline; used as {id} in output keys');

/** Option fields common to the steps that write an image. */
export const encodeFields = {
  quality: z.int().min(1).max(100).default(80).describe('Encoder quality 1-100 for jpeg, webp and avif (png is lossless and ignores it)'),
  keepMetadata: z.boolean().default(false)
    .describe('Keep EXIF, ICC, XMP and IPTC metadata in the output (default: stripped; orientation is always applied and reset)'),
  animated: z.boolean().default(false)
    .describe('Keep all frames of an animated input (needs format "webp"); default: first frame only'),
  background: z.string().refine(isColour, 'expected a CSS colour such as "#ffffff" or "rgba(0,0,0,0)"').default('#ffffff')
    .describe('CSS colour that transparency is flattened onto for jpeg output, and that fit "contain" pads with'),
};

export interface EncodeOptions { format: OutputFormat; quality: number; keepMetadata: boolean; background: string }

/** Zod check shared by the image steps: only webp output can hold frames. */
export function checkAnimated(o: { animated: boolean; format: OutputFormat }, ctx: z.RefinementCtx): void {
  if (o.animated && o.format !== 'webp') {
    ctx.addIssue({ code: 'custom', path: ['animated'], input: o.animated,
      message: `animated output needs format "webp"; "${o.format}" holds one frame` });
  }
}

export function encode(img: Sharp, o: EncodeOptions): Sharp {
  // sharp strips metadata by default and converts CMYK/ICC input to sRGB; keepMetadata keeps an sRGB profile.
  if (o.keepMetadata) img = img.keepMetadata();
  switch (o.format) {
    case 'jpeg': return img.flatten({ background: o.background }).jpeg({ quality: o.quality });
    case 'png': return img.png();
    case 'webp': return img.webp({ quality: o.quality });
    case 'avif': return img.avif({ quality: o.quality });
  }
}

/** Encodes an image step's output and describes it. */
export async function toArtefact(img: Sharp, o: EncodeOptions & { id: string }): Promise<Artefact> {
  const { data, info } = await encode(img, o).toBuffer({ resolveWithObject: true });
  return {
    stepId: o.id,
    ext: extOf(o.format),
    contentType: contentTypeOf(o.format),
    data,
    width: info.width,
    // For animated output sharp reports the height of all frames stacked.
    height: info.pageHeight ?? info.height,
  };
}

export const extOf = (f: OutputFormat): string => (f === 'jpeg' ? 'jpg' : f);
export const contentTypeOf = (f: OutputFormat): string => `image/${f}`;
