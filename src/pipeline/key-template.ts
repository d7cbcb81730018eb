import path from 'node:path';
import { MediaflowError } from '../errors.js';
import { isInside } from '../paths.js';

export interface KeyValues {
  /** Source key relative to the source root, '/'-separated. */
  sourceKey: string;
  id: string;
  ext: string;
  sha256: string;
  pipeline: string;
}

const PLACEHOLDER = /\{(dir|name|ext|id|sha256|pipeline)\}/g;

/**
 * Renders an output key. Empty segments collapse, so `{dir}/{name}/{id}.{ext}`
 * gives `photo/thumb.webp` for a top-level `photo.jpg`. The result can never
 * climb out of the output root: `.`/`..` segments, NUL and over-long names are
 * refused with a reason rather than silently rewritten.
 */
export function renderKey(template: string, v: KeyValues): string {
  const dir = path.posix.dirname(v.sourceKey);
  const base = path.posix.basename(v.sourceKey);
  const dot = base.lastIndexOf('.');
  const values: Record<string, string> = {
    dir: dir === '.' ? '' : dir,
    // A name of dots only (`...jpg` would give `..`) keeps its whole base name: it is a file name, never a way up.
    name: dot > 0 && !/^\.+$/.test(base.slice(0, dot)) ? base.slice(0, dot) : base,
    ext: v.ext,
    id: v.id,
    sha256: v.sha256,
    pipeline: v.pipeline,
  };
  const raw = template.replace(PLACEHOLDER, (_, k: string) => values[k]!);
  return confineKey(raw);
}

/** Normalises a key to '/'-separated relative segments, or throws E_KEY. */
export function confineKey(raw: string): string {
  if (raw.includes('\0')) throw new MediaflowError('E_KEY', `output key ${JSON.stringify(raw)} contains a NUL byte`);
  const segments = raw.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw new MediaflowError('E_KEY', 'output key is empty');
  for (const s of segments) {
    if (s === '.' || s === '..') {
      throw new MediaflowError('E_KEY', `output key ${JSON.stringify(raw)} has a "${s}" segment and would leave the output root`);
    }
    if (Buffer.byteLength(s) > 255) {
      throw new MediaflowError('E_KEY', `output key ${JSON.stringify(raw.slice(0, 60))}... has a name over 255 bytes`);
    }
  }
  const key = segments.join('/');
  if (Buffer.byteLength(key) > 1024) throw new MediaflowError('E_KEY', `output key is over 1024 bytes: ${JSON.stringify(key.slice(0, 60))}...`);
  return key;
}

/** Resolves a key under a folder root, refusing anything that lands outside it. */
export function resolveInside(root: string, key: string): string {
  if (key.includes('\0')) throw new MediaflowError('E_KEY', `key ${JSON.stringify(key)} contains a NUL byte`);
  const full = path.resolve(root, key);
  // Not a prefix test: a sibling such as "out-evil/" shares the prefix, and "...jpg" starts with ".." yet is inside.
  if (!isInside(root, full)) {
    throw new MediaflowError('E_KEY', `key ${JSON.stringify(key)} resolves outside ${root}`);
  }
  return full;
}
