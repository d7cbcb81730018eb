import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crc32, deflateSync } from 'node:zlib';
import type { StepInput } from '../../src/steps/step.js';

const root = new URL('../../fixtures/', import.meta.url);

/** Absolute path of a file in fixtures/ (see fixtures/README.md). */
export function fixture(name: string): string {
  return fileURLToPath(new URL(name, root));
}

/** The bytes of a fixture. */
export function fixtureBytes(name: string): Buffer {
  return readFileSync(fixture(name));
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A StepInput held in memory, as the runner builds it for small inputs. */
export function stepInputFrom(buffer: Buffer, key: string): StepInput {
  return { buffer, key, size: buffer.length, sha256: sha256(buffer) };
}

/** A StepInput spooled to a file, as the runner builds it for large inputs. */
export function stepInputFromPath(path: string, key: string): StepInput {
  const data = readFileSync(path);
  return { path, key, size: data.length, sha256: sha256(data) };
}

/** A valid 1-bit greyscale PNG declaring width x height (a decompression bomb: ~50 KB on disk at 20000²). */
export function pngBomb(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth 1, colour type 0 (grey), no interlace
  const rows = Buffer.alloc((1 + Math.ceil(width / 8)) * height);
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
