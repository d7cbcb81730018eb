import { describe, expect, it } from 'vitest';
import { MediaflowError } from '../../src/errors.js';
import { confineKey, renderKey, resolveInside } from '../../src/pipeline/key-template.js';

const v = { id: 'thumb', ext: 'webp', sha256: 'abc', pipeline: 'photos' };

describe('key templates', () => {
  it('collapses the empty {dir} of a top-level file', () => {
    expect(renderKey('{dir}/{name}/{id}.{ext}', { ...v, sourceKey: 'photo.jpg' })).toBe('photo/thumb.webp');
    expect(renderKey('{dir}/{name}/{id}.{ext}', { ...v, sourceKey: 'a/b/photo.jpg' })).toBe('a/b/photo/thumb.webp');
  });

  it('fills every placeholder', () => {
    expect(renderKey('{pipeline}/{sha256}/{name}-{id}.{ext}', { ...v, sourceKey: 'x/y.tar.gz' })).toBe('photos/abc/y.tar-thumb.webp');
  });

  it('never leaves the output root', () => {
    expect(() => renderKey('{dir}/{name}.{ext}', { ...v, sourceKey: '../../etc/passwd' })).toThrow(MediaflowError);
    expect(() => confineKey('a/../../b')).toThrow(/would leave the output root/);
    expect(() => confineKey('a\0b')).toThrow(/NUL/);
    expect(() => confineKey(`${'x'.repeat(300)}.jpg`)).toThrow(/over 255 bytes/);
    expect(confineKey('/abs/path.jpg')).toBe('abs/path.jpg');
  });

  it('resolveInside refuses siblings that share a prefix', () => {
    expect(resolveInside('/srv/out', 'a/b.jpg')).toBe('/srv/out/a/b.jpg');
    expect(() => resolveInside('/srv/out', '../out-evil/x.jpg')).toThrow(/outside/);
    expect(() => resolveInside('/srv/out', '/etc/passwd')).toThrow(/outside/);
  });
});
