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

  it('a name of dots only ("...jpg") keeps its whole base name: a file name, never a way up', () => {
    expect(renderKey('{dir}/{name}/{id}.{ext}', { ...v, sourceKey: '...jpg' })).toBe('...jpg/thumb.webp');
    expect(renderKey('{dir}/{name}/{id}.{ext}', { ...v, sourceKey: 'a/..jpg' })).toBe('a/..jpg/thumb.webp');
    expect(renderKey('{dir}/{name}/{id}.{ext}', { ...v, sourceKey: '...x.jpg' })).toBe('...x/thumb.webp');
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

  it('resolveInside takes names that start with dots, and refuses a ".." segment', () => {
    expect(resolveInside('/srv/in', '...jpg')).toBe('/srv/in/...jpg');
    expect(resolveInside('/srv/in', '..hidden/x.jpg')).toBe('/srv/in/..hidden/x.jpg');
    for (const key of ['..', '../x.jpg', 'a/../..', 'a/../../x.jpg', '.', '']) {
      expect(() => resolveInside('/srv/in', key), key).toThrow(/resolves outside/);
    }
  });
});
