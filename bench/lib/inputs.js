// Benchmark inputs: N copies of one JPEG, each made unique so mediaflow's
// content dedup (sha256 + pipeline fingerprint) cannot skip any of them.
// The copies differ only in a short ASCII tail appended after the JPEG EOI marker:
// decoders stop at EOI, so the image work is identical for every copy and
// for every contender.
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { ROOT } from './common.js';

export const BENCH_IMAGE = path.join(ROOT, 'fixtures/2569067123_aca715a2ee_o.jpg');

/** `src` with a unique tail after EOI (`\n#bench:TAG:I\n`). */
export function uniqueCopy(src, i, tag = 'mf') {
  return Buffer.concat([src, Buffer.from(`\n#bench:${tag}:${i}\n`)]);
}

/** Writes `count` unique copies of `source` (a path or Buffer) into dir as PREFIX000001.jpg … */
export async function writeCopies(dir, count, { source = BENCH_IMAGE, prefix = 'img', tag = prefix, start = 0 } = {}) {
  await mkdir(dir, { recursive: true });
  const src = Buffer.isBuffer(source) ? source : readFileSync(source);
  const names = [];
  for (let i = start; i < start + count; i++) {
    const name = `${prefix}${String(i).padStart(6, '0')}.jpg`;
    await writeFile(path.join(dir, name), uniqueCopy(src, i, tag));
    names.push(name);
  }
  return names;
}

/** Moves every file of `from` into `to` by rename (atomic, no data copied); returns the names in order. */
export async function moveAll(from, to, names) {
  names ??= (await readdir(from)).sort();
  await mkdir(to, { recursive: true });
  for (const n of names) await rename(path.join(from, n), path.join(to, n));
  return names;
}

/** A small unique JPEG (for the 100k backlog), made once. */
export async function smallJpeg(width = 64, height = 48) {
  return sharp({ create: { width, height, channels: 3, background: { r: 40, g: 120, b: 200 } } })
    .jpeg({ quality: 80 }).toBuffer();
}
