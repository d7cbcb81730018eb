import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { climbsOut, isAtOrInside, isInside } from '../../src/paths.js';

describe('paths: climbing out is a ".." segment, not a name starting with dots', () => {
  it('climbsOut', () => {
    expect(climbsOut('...jpg')).toBe(false);
    expect(climbsOut('..hidden')).toBe(false);
    expect(climbsOut('a/..hidden/..jpg')).toBe(false);
    expect(climbsOut('')).toBe(false);
    expect(climbsOut('a/..')).toBe(false);
    expect(climbsOut('..')).toBe(true);
    expect(climbsOut('../x')).toBe(true);
    expect(climbsOut('a/../..')).toBe(true);
    expect(climbsOut('a/../../x')).toBe(true);
    expect(climbsOut('/etc/passwd')).toBe(true);
  });

  it('isInside: strictly below the root', () => {
    const root = path.resolve('/srv/in');
    const at = (rel: string) => path.resolve(root, rel);
    expect(isInside(root, at('...jpg'))).toBe(true);
    expect(isInside(root, at('..hidden'))).toBe(true);
    expect(isInside(root, at('deep/...jpg'))).toBe(true);
    expect(isInside(root, root)).toBe(false);
    expect(isInside(root, at('..'))).toBe(false);
    expect(isInside(root, at('../x'))).toBe(false);
    expect(isInside(root, at('a/../..'))).toBe(false);
    expect(isInside(root, path.resolve('/srv/in-evil/x.jpg'))).toBe(false); // shares the prefix
    expect(isInside(root, path.resolve('/etc/passwd'))).toBe(false);
  });

  it('isAtOrInside: the root itself counts', () => {
    const root = path.resolve('/srv/in');
    expect(isAtOrInside(root, root)).toBe(true);
    expect(isAtOrInside(root, path.resolve(root, '...jpg'))).toBe(true);
    expect(isAtOrInside(root, path.resolve(root, '..'))).toBe(false);
    expect(isAtOrInside(root, path.resolve(root, '../x'))).toBe(false);
    expect(isAtOrInside(root, path.resolve('/etc'))).toBe(false);
  });
});
