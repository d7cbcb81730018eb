import { z } from 'zod';
import { checkAnimated, contentTypeOf, encode, encodeFields, extOf, outputFormats, stepId, withImage } from './sharp-input.js';
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
    return withImage(input, ctx, { animated: o.animated }, async (img) => {
      const { data, info } = await encode(img.autoOrient(), o).toBuffer({ resolveWithObject: true });
      return {
        stepId: o.id,
        ext: extOf(o.format),
        contentType: contentTypeOf(o.format),
        data,
        width: info.width,
        height: info.pageHeight ?? info.height,
      };
    });
  },
};
