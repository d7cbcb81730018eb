import { imageSize } from 'image-size';
import type { ResizeOptions } from 'sharp';
import { stepTypeOf, type StepConfig } from './registry.js';
import { headOf, withImage, withPixels, type Pixels } from './sharp-input.js';
import type { Artefact, FromPixels, Size, StepContext, StepInput } from './step.js';

/**
 * The most pixels a shared decode holds (3-4 bytes each, in memory while the
 * outputs are made): beyond it each step reads the input itself, as libvips
 * then streams it in tiles instead of holding it whole. 12 MP is a full-size
 * 4000x3000 photo (about 36 MB) and far above the thumbnail sizes that gain.
 */
export const MAX_SHARED_PIXELS = 12_000_000;

/** Told when a step's output is made: its id and the seconds its own work took. */
export type OnStepDone = (stepId: string, seconds: number) => void;

/**
 * JPEG and WebP: the formats measured to gain from one decode (bench/outputs.js,
 * docs/BENCHMARKS.md). Their decoders shrink on load, so the shared decode is
 * cheap too, and they hold 8 bits a channel, which raw pixels carry unchanged.
 */
function decodesOnceWell(head: Buffer): boolean {
  const jpeg = head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  const webp = head.length >= 12 && head.toString('latin1', 0, 4) === 'RIFF' && head.toString('latin1', 8, 12) === 'WEBP';
  return jpeg || webp;
}

/** Like Promise.all, but settles only once every step has: no image work of a failed job goes on behind its retry. The first failure in step order wins. */
async function allSteps<T>(work: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** The error names the step it came from, for the job's failure log line. */
function inStep<T>(stepId: string, work: Promise<T>): Promise<T> {
  return work.catch((err: unknown) => {
    if (err && typeof err === 'object') Object.assign(err, { step: stepId });
    throw err;
  });
}

/**
 * Makes every step's output, in step order. Two or more image steps that can
 * share pixels (FromPixels) share one decode of a JPEG or WebP input: it is
 * decoded once, auto-oriented, at the size the largest of them needs, and
 * each is resized and encoded from those pixels. Every decode of a JPEG
 * reads the whole file even when it shrinks on load, so one per output cost
 * 1.05-1.16x the time of one in all (docs/BENCHMARKS.md). A step that shares
 * no pixels (all frames, kept metadata, metadata JSON) reads the input as it
 * would alone, and so does every step when the shared pixels would be more
 * than MAX_SHARED_PIXELS. The outputs of one input are made at once: the
 * queue bounds inputs, and an input's outputs are ready together.
 */
export async function runSteps(input: StepInput, steps: readonly StepConfig[], ctx: StepContext, onDone?: OnStepDone): Promise<Artefact[]> {
  const timed = (step: StepConfig, work: () => Promise<Artefact>) => {
    const started = performance.now();
    return inStep(step.id, work()).then((a) => {
      onDone?.(step.id, (performance.now() - started) / 1000);
      return a;
    });
  };
  const alone = (step: StepConfig) => timed(step, () => stepTypeOf(step.use).run(input, step as never, ctx));

  const sharing = steps.filter((s) => stepTypeOf(s.use).fromPixels);
  if (sharing.length < 2 || !decodesOnceWell(headOf(input))) return allSteps(steps.map(alone));

  const size = await inStep(sharing[0]!.id, displayedSize(input, ctx));
  const scales = new Map<StepConfig, number>();
  for (const s of sharing) {
    const scale = (stepTypeOf(s.use).fromPixels as FromPixels<unknown>).scale(s, size);
    if (scale !== null) scales.set(s, scale);
  }
  if (scales.size < 2) return allSteps(steps.map(alone));

  // The step that needs the most pixels (the first of equals) sizes the decode.
  const [largest, scale] = [...scales].reduce((a, b) => (b[1] > a[1] ? b : a));
  if (size.width * size.height * scale * scale > MAX_SHARED_PIXELS) return allSteps(steps.map(alone));
  const asLargest = (stepTypeOf(largest.use).fromPixels as FromPixels<unknown>).resize?.(largest) ?? null;
  const pixels = await inStep(largest.id, decode(input, ctx, size, scale, asLargest));
  return allSteps(steps.map((step) => {
    if (!scales.has(step)) return alone(step);
    const make = stepTypeOf(step.use).fromPixels as FromPixels<unknown>;
    return timed(step, () => withPixels(pixels, input.key, ctx, (img) => make.run(img, step)));
  }));
}

/**
 * The input's width and height as displayed, from its header: read in
 * JavaScript by image-size (~12 µs for the bench photo against ~0.9 ms of
 * main-thread time for sharp's metadata call, measured), and by sharp when
 * image-size cannot read it, so a broken header fails with sharp's reason.
 */
async function displayedSize(input: StepInput, ctx: StepContext): Promise<Size> {
  if (input.buffer) {
    try {
      const { width, height, orientation } = imageSize(input.buffer);
      if (width > 0 && height > 0) return orientation && orientation >= 5 ? { width: height, height: width } : { width, height };
    } catch { /* sharp says why below */ }
  }
  return withImage(input, ctx, {}, async (img) => {
    const m = await img.metadata();
    return { width: m.autoOrient?.width ?? m.width, height: m.autoOrient?.height ?? m.height };
  });
}

/**
 * The shared decode: upright, shrunk to `scale` of the displayed size. By the
 * largest step's own resize when it has one that keeps the whole picture
 * (then its output is pixel for pixel what it makes alone); else at that
 * scale, rounded as sharp rounds an output's size.
 */
function decode(input: StepInput, ctx: StepContext, size: Size, scale: number, asLargest: ResizeOptions | null): Promise<Pixels> {
  return withImage(input, ctx, {}, async (img) => {
    let upright = img.autoOrient();
    if (asLargest && scale < 1) upright = upright.resize(asLargest);
    else if (scale < 1) {
      upright = upright.resize({
        width: Math.max(1, Math.round(size.width * scale)),
        height: Math.max(1, Math.round(size.height * scale)),
        fit: 'fill',
      });
    }
    const { data, info } = await upright.raw().toBuffer({ resolveWithObject: true });
    return { data, info: { width: info.width, height: info.height, channels: info.channels } };
  });
}
