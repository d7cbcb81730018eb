import { z } from 'zod';
import { checkAnimated, contentTypeOf, encode, encodeFields, extOf, outputFormats, stepId, withImage } from './sharp-input.js';
import type { StepType } from './step.js';

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

export const thumbnail: StepType<typeof schema> = {
  name: 'thumbnail',
  version: 1,
  schema,
  run(input, o, ctx) {
    return withImage(input, ctx, { animated: o.animated }, async (img) => {
      const resized = img.autoOrient().resize({
        width: o.width,
        height: o.height,
        fit: o.fit,
        withoutEnlargement: !o.enlarge,
        background: o.background,
      });
      const { data, info } = await encode(resized, o).toBuffer({ resolveWithObject: true });
      return {
        stepId: o.id,
        ext: extOf(o.format),
        contentType: contentTypeOf(o.format),
        data,
        width: info.width,
        // For animated output sharp reports the height of all frames stacked.
        height: info.pageHeight ?? info.height,
      };
    });
  },
};
