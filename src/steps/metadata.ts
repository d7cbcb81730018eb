import exifReader from 'exif-reader';
import { z } from 'zod';
import { stepId, withImage } from './sharp-input.js';
import type { StepType } from './step.js';

const schema = z.strictObject({
  id: stepId,
  use: z.literal('metadata').describe("Write the input's format, displayed size, checksum and EXIF date and camera as JSON"),
});

export interface ExifSummary {
  /** ISO 8601 local date-time as the camera recorded it; with an offset only when EXIF carries one. */
  date?: string;
  camera?: { make?: string; model?: string };
}

const clean = (s: unknown): string | undefined =>
  typeof s === 'string' && s.replace(/\0+$/, '').trim() !== '' ? s.replace(/\0+$/, '').trim() : undefined;

/**
 * EXIF dates carry no time zone; exif-reader returns them as if UTC, so the
 * wall-clock digits are read back with the UTC getters and no "Z" is claimed.
 */
function isoDate(d: unknown, offset: unknown): string | undefined {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) return undefined;
  const zone = typeof offset === 'string' && /^[+-]\d{2}:\d{2}$/.test(offset.trim()) ? offset.trim() : '';
  return d.toISOString().slice(0, 19) + zone;
}

export function summariseExif(raw: Buffer | undefined): ExifSummary | undefined {
  if (!raw) return undefined;
  let exif: ReturnType<typeof exifReader>;
  try {
    exif = exifReader(raw);
  } catch {
    return undefined; // unreadable EXIF is not worth failing the job over
  }
  const out: ExifSummary = {};
  const date = isoDate(exif.Photo?.DateTimeOriginal, exif.Photo?.OffsetTimeOriginal)
    ?? isoDate(exif.Image?.DateTime, exif.Photo?.OffsetTime);
  if (date) out.date = date;
  const make = clean(exif.Image?.Make);
  const model = clean(exif.Image?.Model);
  if (make || model) out.camera = { ...(make && { make }), ...(model && { model }) };
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Describes the input as JSON from its header alone; pixels are never decoded. */
export const metadata: StepType<typeof schema> = {
  name: 'metadata',
  version: 1,
  schema,
  run(input, o, ctx) {
    return withImage(input, ctx, {}, async (img) => {
      const m = await img.metadata();
      const exif = summariseExif(m.exif);
      const doc = {
        format: m.format,
        ...(m.mediaType && { mediaType: m.mediaType }),
        // Displayed size: a photo stored sideways with EXIF orientation 6 reports its upright width and height.
        width: m.autoOrient?.width ?? m.width,
        height: m.autoOrient?.height ?? m.height,
        size: input.size,
        sha256: input.sha256,
        ...(m.orientation !== undefined && { orientation: m.orientation }),
        ...(m.pages !== undefined && m.pages > 1 && { pages: m.pages }),
        hasAlpha: m.hasAlpha,
        space: m.space,
        ...(exif && { exif }),
      };
      return {
        stepId: o.id,
        ext: 'json',
        contentType: 'application/json',
        data: Buffer.from(`${JSON.stringify(doc, null, 2)}\n`),
        width: doc.width,
        height: doc.height,
      };
    });
  },
};
