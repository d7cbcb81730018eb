import { z } from 'zod';
import type { ResizeOptions, Sharp } from 'sharp';
import { checkAnimated, encodeFields, outputFormats, stepId, toArtefact, withImage } from './sharp-input.js';
import type { Artefact, Size, StepType } from './step.js';

const dimension = z.int().min(1).max(16384);

const schema = z.strictObject({
  id: stepId,
  use: z.literal('thumbnail').describe('Resize to fit a box, auto-oriented, and encode'),
  width: dimension.optional().describe('Target width in pixels (1-16384); omit to follow the aspect ratio from height'),
  height: dimension.optional().describe('Target height in pixels (1-16384); omit to follow the aspect ratio from width'),
  fit: z.enum(['cover', 'contain', 'fill', 'inside', 'outside']).default('inside')
    .describe('How the image fits width x height: inside keeps it whole within the box, cover crops to fill it, contain pads, fill stretches, outside covers it without cropping'),
  format: z.enum(outputFormats).default('jpeg').describe('Output format; the extension is jpg for jpeg'),
  enlarge: z.boolean().default(false).describe('Allow output larger than the input (default: a smaller input keeps its size)'),
  ...encodeFields,
}).superRefine((o, ctx) => {
  if (o.width === undefined && o.height === undefined) {
    ctx.addIssue({ code: 'custom', path: ['width'], input: o, message: 'a thumbnail needs width, height or both' });
  }
  checkAnimated(o, ctx);
});

type Options = z.output<typeof schema>;

const resizeOf = (o: Options): ResizeOptions => ({
  width: o.width,
  height: o.height,
  fit: o.fit,
  withoutEnlargement: !o.enlarge,
  background: o.background,
});

/** Resize (of pixels already upright) and encode. */
const make = (img: Sharp, o: Options): Promise<Artefact> => toArtefact(img.resize(resizeOf(o)), o);

/**
 * The scale sharp resizes the input by for these options: inside and contain
 * fit the box (the smaller factor), cover and outside fill it (the larger),
 * fill stretches each axis (the larger is what must be kept).
 */
function scaleOf(o: Options, input: Size): number {
  const factors = [o.width && o.width / input.width, o.height && o.height / input.height].filter((f): f is number => !!f);
  return o.fit === 'inside' || o.fit === 'contain' ? Math.min(...factors) : Math.max(...factors);
}

export const thumbnail: StepType<typeof schema> = {
  name: 'thumbnail',
  version: 1,
  schema,
  run(input, o, ctx) {
    return withImage(input, ctx, { animated: o.animated }, (img) => make(img.autoOrient(), o));
  },
  fromPixels: {
    scale: (o, input) => (o.animated || o.keepMetadata ? null : Math.min(1, scaleOf(o, input))),
    resize: (o) => (o.fit === 'inside' || o.fit === 'outside' ? resizeOf(o) : null),
    run: make,
  },
};
