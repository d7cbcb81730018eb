import type { ResizeOptions, Sharp } from 'sharp';
import type { z } from 'zod';
import { MediaflowError } from '../errors.js';

/** The input as fetched once by the runner: hashed, and held in memory or spooled to a temp file. */
export interface StepInput {
  /** The bytes, when small enough to hold in memory (always for SVG). */
  buffer?: Buffer;
  /** A private snapshot file otherwise (never the watched file itself). */
  path?: string;
  sha256: string;
  size: number;
  /** Source key, for messages. */
  key: string;
}

export interface StepContext {
  signal: AbortSignal;
  /** sharp's limitInputPixels for this pipeline. */
  limitInputPixels: number;
  /**
   * Most frames an animated step renders (the pipeline's maxFrames); more is
   * refused from the header. Unset means DEFAULT_MAX_FRAMES, so the guard
   * holds for a caller that does not know of it.
   */
  maxFrames?: number;
  /** Seconds sharp may spend on one operation (sharp().timeout()). */
  timeoutSeconds: number;
  /** Whether SVG input may be rendered (it is passed as a Buffer so nothing external loads). */
  allowSvg: boolean;
}

/**
 * The pipeline's default maxFrames: 10 s at 30 frames a second. A frame bomb
 * fits under the pixel limit (1,000 small frames took 1.3-1.6 s into
 * animated WebP), so the frame count needs a limit of its own.
 */
export const DEFAULT_MAX_FRAMES = 300;

/** One produced file. */
export interface Artefact {
  stepId: string;
  /** Output extension without dot: jpg, png, webp, avif, json. */
  ext: string;
  contentType: string;
  data: Buffer;
  width?: number;
  height?: number;
}

/**
 * A step type: a name, a version (part of the pipeline fingerprint: bump it
 * when the output for the same options changes), an options schema (zod, the
 * one source for validation, defaults and the JSON Schema) and run().
 */
export interface StepType<S extends z.ZodType = z.ZodType> {
  name: string;
  version: number;
  /** A strict object schema including `id` and `use: z.literal(name)`. */
  schema: S;
  run(input: StepInput, options: z.output<S>, ctx: StepContext): Promise<Artefact>;
  /** A step that resizes and encodes can also be made from pixels decoded once for several steps (see steps/shared-decode.ts). */
  fromPixels?: FromPixels<z.output<S>>;
}

/** Width and height of the input as displayed (EXIF orientation applied). */
export interface Size { width: number; height: number }

/**
 * How an image step is made from pixels that several steps share: one decode
 * of the input, auto-oriented and already shrunk to what the largest of them
 * needs, instead of one decode per step.
 */
export interface FromPixels<O> {
  /**
   * The fraction of the displayed input size this step's output needs, at
   * most 1 (the shared pixels are never enlarged; a step that enlarges does
   * so from full size, as it would alone); null when these options cannot
   * share pixels (all frames, or the input's metadata kept).
   */
  scale(options: O, input: Size): number | null;
  /**
   * The resize these options make when it keeps the whole picture at one
   * scale (no crop, pad or stretch): when this step needs the most, the
   * shared decode is this very resize, so its output is what it would be
   * alone, pixel for pixel.
   */
  resize?(options: O): ResizeOptions | null;
  /** Makes the output from `pixels`: the shared decode, auto-oriented, at least `scale` of the input. */
  run(pixels: Sharp, options: O): Promise<Artefact>;
}

/** A step failure that retrying cannot fix (corrupt or unsupported input). */
export class PermanentError extends Error {
  readonly permanent = true;
  constructor(message: string, readonly code = 'E_INPUT') {
    super(message);
    this.name = 'PermanentError';
  }
}

export function isPermanent(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  // A key refused for leaving its root (E_KEY) is refused the same way on every attempt.
  return (err as { permanent?: boolean }).permanent === true || (err instanceof MediaflowError && err.code === 'E_KEY');
}
