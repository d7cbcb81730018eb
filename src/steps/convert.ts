import { z } from 'zod';
import { checkAnimated, encodeFields, outputFormats, stepId, toArtefact, withImage } from './sharp-input.js';
import type { StepType } from './step.js';

const schema = z.strictObject({
  id: stepId,
  use: z.literal('convert').describe('Re-encode at the displayed size (auto-oriented) in another format'),
  format: z.enum(outputFormats).describe('Output format; the extension is jpg for jpeg'),
  ...encodeFields,
}).superRefine(checkAnimated);

/** Re-encodes at the displayed size (EXIF orientation applied). */
export const convert: StepType<typeof schema> = {
  name: 'convert',
  version: 1,
  schema,
  run(input, o, ctx) {
    return withImage(input, ctx, { animated: o.animated }, (img) => toArtefact(img.autoOrient(), o));
  },
  // Full size: shares a decode with thumbnails, which then resize from its pixels.
  fromPixels: {
    scale: (o) => (o.animated || o.keepMetadata ? null : 1),
    run: toArtefact,
  },
};
