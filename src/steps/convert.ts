import { z } from 'zod';
import type { Sharp } from 'sharp';
import { checkAnimated, contentTypeOf, encode, encodeFields, extOf, outputFormats, stepId, withImage } from './sharp-input.js';
import type { Artefact, StepType } from './step.js';

const schema = z.strictObject({
  id: stepId,
  use: z.literal('convert').describe('Re-encode at the displayed size (auto-oriented) in another format'),
  format: z.enum(outputFormats).describe('Output format; the extension is jpg for jpeg'),
  ...encodeFields,
}).superRefine(checkAnimated);

/** Encode (pixels already upright). */
async function make(img: Sharp, o: z.output<typeof schema>): Promise<Artefact> {
  const { data, info } = await encode(img, o).toBuffer({ resolveWithObject: true });
  return {
    stepId: o.id,
    ext: extOf(o.format),
    contentType: contentTypeOf(o.format),
    data,
    width: info.width,
    height: info.pageHeight ?? info.height,
  };
}

/** Re-encodes at the displayed size (EXIF orientation applied). */
export const convert: StepType<typeof schema> = {
  name: 'convert',
  version: 1,
  schema,
  run(input, o, ctx) {
    return withImage(input, ctx, { animated: o.animated }, (img) => make(img.autoOrient(), o));
  },
  // Full size: shares a decode with thumbnails, which then resize from its pixels.
  fromPixels: {
    scale: (o) => (o.animated || o.keepMetadata ? null : 1),
    run: make,
  },
};
