import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import { stepSchema, stepTypeOf, stepTypes } from '../../src/steps/registry.js';

const issues = (value: unknown) => {
  const r = stepSchema.safeParse(value);
  expect(r.success).toBe(false);
  return r.error!.issues;
};

describe('step options schema', () => {
  it('applies thumbnail defaults', () => {
    expect(stepSchema.parse({ id: 'thumb', use: 'thumbnail', width: 320 })).toEqual({
      id: 'thumb', use: 'thumbnail', width: 320, fit: 'inside', format: 'jpeg', quality: 80,
      enlarge: false, keepMetadata: false, animated: false, background: '#ffffff',
    });
  });

  it('applies convert and metadata defaults', () => {
    expect(stepSchema.parse({ id: 'c', use: 'convert', format: 'webp' })).toEqual({
      id: 'c', use: 'convert', format: 'webp', quality: 80, keepMetadata: false, animated: false, background: '#ffffff',
    });
    expect(stepSchema.parse({ id: 'meta', use: 'metadata' })).toEqual({ id: 'meta', use: 'metadata' });
  });

  it('rejects unknown keys', () => {
    const found = issues({ id: 't', use: 'thumbnail', width: 10, widht: 20 });
    expect(found[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['widht'] });
    expect(issues({ id: 'm', use: 'metadata', format: 'png' })[0]).toMatchObject({ code: 'unrecognized_keys' });
  });

  it('rejects a thumbnail without width and height, at path width', () => {
    const [issue] = issues({ id: 't', use: 'thumbnail' });
    expect(issue.path).toEqual(['width']);
    expect(issue.message).toMatch(/width, height or both/);
  });

  it('accepts height alone', () => {
    expect(stepSchema.parse({ id: 't', use: 'thumbnail', height: 100 })).toMatchObject({ height: 100 });
  });

  it('rejects out-of-range quality and dimensions', () => {
    expect(issues({ id: 't', use: 'thumbnail', width: 10, quality: 0 })[0].path).toEqual(['quality']);
    expect(issues({ id: 'c', use: 'convert', format: 'png', quality: 101 })[0].path).toEqual(['quality']);
    expect(issues({ id: 't', use: 'thumbnail', width: 16385 })[0].path).toEqual(['width']);
    expect(issues({ id: 't', use: 'thumbnail', width: 1.5 })[0].path).toEqual(['width']);
  });

  it('rejects bad ids, formats, fits and colours', () => {
    expect(issues({ id: 'a b', use: 'metadata' })[0].path).toEqual(['id']);
    expect(issues({ id: 'c', use: 'convert' })[0].path).toEqual(['format']);
    expect(issues({ id: 'c', use: 'convert', format: 'gif' })[0].path).toEqual(['format']);
    expect(issues({ id: 't', use: 'thumbnail', width: 1, fit: 'crop' })[0].path).toEqual(['fit']);
    const [colour] = issues({ id: 'c', use: 'convert', format: 'jpeg', background: 'not-a-colour' });
    expect(colour.path).toEqual(['background']);
    expect(colour.message).toMatch(/CSS colour/);
    expect(stepSchema.parse({ id: 'c', use: 'convert', format: 'png', background: 'rgba(0,0,0,0)' })).toMatchObject({ background: 'rgba(0,0,0,0)' });
  });

  it('rejects animated output in a format that holds one frame', () => {
    const [issue] = issues({ id: 't', use: 'thumbnail', width: 10, format: 'jpeg', animated: true });
    expect(issue.path).toEqual(['animated']);
    expect(issue.message).toMatch(/webp/);
    expect(issues({ id: 'c', use: 'convert', format: 'avif', animated: true })[0].path).toEqual(['animated']);
    expect(stepSchema.parse({ id: 'c', use: 'convert', format: 'webp', animated: true })).toMatchObject({ animated: true });
  });

  it('rejects an unknown step type on the discriminator', () => {
    expect(issues({ id: 'x', use: 'blur' })[0].path).toEqual(['use']);
  });

  it('generates a JSON Schema with descriptions and defaults', () => {
    for (const opts of [{ io: 'input' as const }, { io: 'input' as const, unrepresentable: 'any' as const }]) {
      const schema = z.toJSONSchema(stepSchema, opts) as { oneOf?: unknown[]; anyOf?: unknown[] };
      const variants = (schema.oneOf ?? schema.anyOf) as Array<{ properties: Record<string, { description?: string; default?: unknown }>; required?: string[] }>;
      expect(variants).toHaveLength(3);
      const thumb = variants[0];
      expect(thumb.properties.fit.default).toBe('inside');
      expect(thumb.required).toEqual(expect.arrayContaining(['id', 'use']));
      expect(thumb.required).not.toContain('fit');
      for (const v of variants) {
        for (const [name, prop] of Object.entries(v.properties)) {
          expect(prop.description, name).toBeTruthy();
        }
      }
    }
  });

  it('looks step types up by name', () => {
    expect(stepTypes.map((t) => t.name)).toEqual(['thumbnail', 'convert', 'metadata']);
    expect(stepTypeOf('convert').version).toBe(1);
    expect(() => stepTypeOf('blur')).toThrow(/unknown step type "blur"/);
  });
});
