import path from 'node:path';

/**
 * True when `rel` (a path.relative result) climbs out of its base: an
 * absolute path (another drive), `..`, or a first segment that is `..`.
 * A name that merely starts with dots (`...jpg`, `..hidden`) stays inside:
 * a `startsWith('..')` test refused those.
 */
export function climbsOut(rel: string): boolean {
  if (path.isAbsolute(rel)) return true;
  // Normalised first: a relative path written by hand ("a/../..") climbs out only once its ".." are applied.
  const first = path.normalize(rel).split(/[\\/]/, 1)[0];
  return first === '..';
}

/** `file` is strictly below `root` (both resolved the same way; the root itself is not inside). */
export function isInside(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  return rel !== '' && !climbsOut(rel);
}

/** `file` is `root` or below it. */
export function isAtOrInside(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  return rel === '' || !climbsOut(rel);
}
