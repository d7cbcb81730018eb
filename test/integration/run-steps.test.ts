import { afterEach, describe, expect, it, vi } from 'vitest';
import sharp from 'sharp';
import { convert } from '../../src/steps/convert.js';
import { stepSchema, type StepConfig } from '../../src/steps/registry.js';
import { MAX_SHARED_PIXELS, runSteps } from '../../src/steps/run-steps.js';
import { PermanentError, type StepContext, type StepInput } from '../../src/steps/step.js';
import { thumbnail } from '../../src/steps/thumbnail.js';
import { fixture, fixtureBytes, stepInputFrom, stepInputFromPath } from '../helpers/fixtures.js';

const ctx: StepContext = { signal: new AbortController().signal, limitInputPixels: 268_402_689, timeoutSeconds: 60, allowSvg: false };
const input = (name: string): StepInput => stepInputFrom(fixtureBytes(name), name);
const steps = (...s: Record<string, unknown>[]): StepConfig[] => s.map((x, i) => stepSchema.parse({ id: `s${i}`, ...x }));

const small = steps(
  { use: 'thumbnail', width: 160, format: 'jpeg' },
  { use: 'thumbnail', width: 320, height: 200, fit: 'cover', format: 'webp' },
  { use: 'thumbnail', width: 640, format: 'webp' },
  { use: 'metadata' },
);

/** Counts how each image step was made: from the input itself (run) or from shared pixels. */
function spy() {
  const alone = [vi.spyOn(thumbnail, 'run'), vi.spyOn(convert, 'run')];
  const shared = [vi.spyOn(thumbnail.fromPixels!, 'run'), vi.spyOn(convert.fromPixels!, 'run')];
  const count = (s: typeof alone | typeof shared) => s.reduce((n, x) => n + x.mock.calls.length, 0);
  return { alone: () => count(alone), shared: () => count(shared) };
}

afterEach(() => vi.restoreAllMocks());

/** Mean absolute difference (0-255) of two encoded images of the same size. */
async function difference(a: Buffer, b: Buffer): Promise<number> {
  const [A, B] = await Promise.all([a, b].map((x) => sharp(x).removeAlpha().raw().toBuffer()));
  let sum = 0;
  for (let i = 0; i < A!.length; i++) sum += Math.abs(A![i]! - B![i]!);
  return sum / A!.length;
}

describe('several outputs of one input', () => {
  it('JPEG and WebP inputs are decoded once for all image steps; the outputs are the ones made alone, the largest pixel for pixel', async () => {
    for (const name of ['2569067123_aca715a2ee_o.jpg', 'Landscape_6.jpg', '4.webp', 'Channel_digital_image_CMYK_color.jpg']) {
      const counts = spy();
      const shared = await runSteps(input(name), small, ctx);
      expect(counts.shared()).toBe(3);
      expect(counts.alone()).toBe(0);
      vi.restoreAllMocks();
      const alone = await Promise.all(small.map((s) => (s.use === 'metadata' ? null : thumbnail.run(input(name), s as never, ctx))));
      for (let i = 0; i < 3; i++) {
        const [a, b] = [shared[i]!, alone[i]!];
        expect([a.stepId, a.ext, a.contentType]).toEqual([b.stepId, b.ext, b.contentType]);
        // Sizes as sharp makes them alone; its shrink-on-load may round a smaller output's side one pixel the other way.
        expect(Math.abs(a.width! - b.width!) + Math.abs(a.height! - b.height!)).toBeLessThanOrEqual(1);
        const m = await sharp(a.data).metadata();
        expect([m.width, m.height, m.space]).toEqual([a.width, a.height, 'srgb']);
        if (a.width === b.width && a.height === b.height) expect(await difference(a.data, b.data)).toBeLessThan(12);
      }
      // The step that needs the most pixels sizes the decode with its own resize: nothing differs.
      expect(shared[2]!.data.equals(alone[2]!.data)).toBe(true);
      expect(JSON.parse(shared[3]!.data.toString()).format).toBe(name.endsWith('webp') ? 'webp' : 'jpeg');
    }
  });

  it('is upright for an EXIF-rotated photo, and reads a spooled file too', async () => {
    const out = await runSteps(stepInputFromPath(fixture('Landscape_6.jpg'), 'Landscape_6.jpg'), small, ctx);
    expect([out[0]!.width, out[0]!.height]).toEqual([160, 120]);
    expect([out[2]!.width, out[2]!.height]).toEqual([600, 450]);
  });

  it('a full-size convert shares the decode with thumbnails', async () => {
    const counts = spy();
    const out = await runSteps(input('flowers.jpeg'), steps({ use: 'convert', format: 'png' }, { use: 'thumbnail', width: 100 }), ctx);
    expect(counts.shared()).toBe(2);
    const m = await sharp(fixtureBytes('flowers.jpeg')).metadata();
    expect([out[0]!.width, out[0]!.height]).toEqual([m.width, m.height]);
    expect(out[1]!.width).toBe(100);
  });

  it('other formats, a single image step, all frames or kept metadata: each step reads the input itself', async () => {
    const cases: [string, StepConfig[], number][] = [
      ['with-alpha.png', small, 3],
      ['G31D.TIF', small, 3],
      ['flowers.jpeg', steps({ use: 'thumbnail', width: 100 }, { use: 'metadata' }), 1],
      ['4.webp', steps({ use: 'thumbnail', width: 100 }, { use: 'thumbnail', width: 200, format: 'webp', animated: true }), 2],
      ['flowers.jpeg', steps({ use: 'thumbnail', width: 100 }, { use: 'thumbnail', width: 200, keepMetadata: true }), 2],
    ];
    for (const [name, s, n] of cases) {
      const counts = spy();
      const out = await runSteps(input(name), s, ctx);
      expect(out.map((o) => o.stepId)).toEqual(s.map((x) => x.id));
      expect([counts.alone(), counts.shared()]).toEqual([n, 0]);
      vi.restoreAllMocks();
    }
  });

  it('a shared decode larger than MAX_SHARED_PIXELS is not made: each step reads the input itself', async () => {
    // 4000x3100 (12.4 MP), just over the limit when a full-size convert shares it; thumbnails alone would share.
    const big = await sharp({ create: { width: 4000, height: 3100, channels: 3, background: '#88aacc' } }).jpeg().toBuffer();
    expect(4000 * 3100).toBeGreaterThan(MAX_SHARED_PIXELS);
    let counts = spy();
    await runSteps(stepInputFrom(big, 'big.jpg'), steps({ use: 'convert', format: 'webp' }, { use: 'thumbnail', width: 100 }), ctx);
    expect([counts.alone(), counts.shared()]).toEqual([2, 0]);
    vi.restoreAllMocks();
    counts = spy();
    await runSteps(stepInputFrom(big, 'big.jpg'), steps({ use: 'thumbnail', width: 1000 }, { use: 'thumbnail', width: 100 }), ctx);
    expect([counts.alone(), counts.shared()]).toEqual([0, 2]);
  });

  it('the steps that can share do, and the one that cannot reads the input beside them', async () => {
    const counts = spy();
    const s = steps({ use: 'thumbnail', width: 100 }, { use: 'thumbnail', width: 300, format: 'webp' }, { use: 'thumbnail', width: 200, keepMetadata: true });
    const out = await runSteps(input('flowers.jpeg'), s, ctx);
    expect([counts.shared(), counts.alone()]).toEqual([2, 1]);
    expect(out.map((o) => o.width)).toEqual([100, 300, 200]);
  });

  it('a corrupt input fails once, as a permanent error naming the key and the step', async () => {
    for (const name of ['corrupt-header.jpg', 'truncated.jpg']) {
      const err = await runSteps(input(name), small, ctx).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message.startsWith(`${name}: `)).toBe(true);
      expect((err as { step?: string }).step).toMatch(/^s\d$/);
    }
  });

  it('tells each step done with its own time', async () => {
    const done: string[] = [];
    await runSteps(input('flowers.jpeg'), small, ctx, (id, seconds) => { expect(seconds).toBeGreaterThanOrEqual(0); done.push(id); });
    expect(done.sort()).toEqual(['s0', 's1', 's2', 's3']);
  });
});
