import type { Readable } from 'node:stream';
import type * as Minio from 'minio';
import { MediaflowError } from '../errors.js';
import type { Store, StoreEntry, WriteOptions } from './store.js';

const META_PREFIX = 'x-amz-meta-';
/**
 * Headers minio-js's statObject mixes into `metaData` next to the user
 * metadata (it strips x-amz-meta- and keeps these as they are). User metadata
 * with one of these names could not be told apart, so write() refuses them.
 */
const STANDARD_HEADERS = new Set([
  'content-type', 'cache-control', 'content-encoding', 'content-disposition',
  'content-language', 'if-none-match', 'if-match',
]);

/** A bucket (optionally below a key prefix) as a Store. Keys are relative to the prefix. */
export class BucketStore implements Store {
  readonly name: string;
  /** '' or 'some/prefix/' (always ends with '/'), prepended to every key. */
  private readonly root: string;

  constructor(
    private readonly client: Minio.Client,
    readonly bucket: string,
    prefix = '',
  ) {
    const clean = prefix.replace(/^\/+|\/+$/g, '');
    this.root = clean ? `${clean}/` : '';
    this.name = clean ? `bucket:${bucket}/${clean}` : `bucket:${bucket}`;
  }

  /** The full object key for a store key. */
  objectKey(key: string): string {
    if (!key || key.startsWith('/')) throw new MediaflowError('E_KEY', `${this.name}: invalid key ${JSON.stringify(key)}`);
    // MinIO refuses these names too (it counts "\\" as "/"), but a HEAD says so without a reason: refuse them here, clearly.
    if (key.includes('\0') || key.split(/[\\/]/).some((s) => s === '.' || s === '..')) {
      throw new MediaflowError('E_KEY', `${this.name}: ${JSON.stringify(key)} is not a valid object key (a "." or ".." segment, or NUL)`);
    }
    return this.root + key;
  }

  /** Streams the object; the body is never buffered here. */
  async read(key: string): Promise<Readable> {
    return this.client.getObject(this.bucket, this.objectKey(key)).catch((err: unknown) => { throw invalidName(err, this.name, key); });
  }

  /**
   * One GET into one Buffer of the object's size (its Content-Length), up to
   * `limit` bytes: no chunks kept and joined, and the buffer may be a reused
   * one (InputBuffers). Larger objects: null, and the caller streams them.
   */
  async readWhole(key: string, limit: number, allocate = (size: number) => Buffer.allocUnsafeSlow(size)): Promise<Buffer | null> {
    const res = (await this.read(key)) as Readable & { headers?: Record<string, string | string[] | undefined> };
    const size = Number(res.headers?.['content-length']);
    if (!Number.isSafeInteger(size) || size > limit) {
      res.destroy();
      return null;
    }
    const buf = allocate(size).subarray(0, size);
    let got = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (got + chunk.length > size) {
        res.destroy();
        throw new Error(`${this.name}: ${key}: the body ran past its Content-Length of ${size} bytes`);
      }
      chunk.copy(buf, got);
      got += chunk.length;
    }
    // An S3 GET is one version of the object: a short body is a cut connection, worth a retry.
    if (got !== size) throw new Error(`${this.name}: ${key}: the body ended after ${got} of ${size} bytes`);
    return buf;
  }

  /** One PUT (S3 PUTs are atomic: readers see the old or the new object). */
  async write(key: string, data: Buffer, options: WriteOptions = {}): Promise<void> {
    const headers: Record<string, string> = {
      'Content-Type': options.contentType ?? 'application/octet-stream',
    };
    for (const [name, value] of Object.entries(options.metadata ?? {})) {
      const lower = name.toLowerCase();
      if (!/^[a-z0-9][a-z0-9-]*$/.test(lower) || STANDARD_HEADERS.has(lower) || lower.startsWith('x-amz-')) {
        throw new Error(`${this.name}: invalid metadata name ${JSON.stringify(name)}`);
      }
      headers[META_PREFIX + lower] = encodeMetaValue(value);
    }
    await this.client.putObject(this.bucket, this.objectKey(key), data, data.length, headers);
  }

  async stat(key: string): Promise<StoreEntry | null> {
    let stat: Minio.BucketItemStat;
    try {
      stat = await this.client.statObject(this.bucket, this.objectKey(key));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw invalidName(err, this.name, key);
    }
    const raw = stat.metaData as Record<string, string | undefined>;
    return {
      key,
      size: stat.size,
      mtimeMs: stat.lastModified.getTime(),
      etag: stat.etag,
      contentType: raw['content-type'],
      metadata: userMetadata(raw),
    };
  }

  /**
   * Streams the listing page by page (recursive); keys come back relative to
   * the store prefix. `metadata`: ask for each object's metadata in the
   * listing (MinIO's ListObjectsV2 extension), so a caller needs no HEAD per
   * object to read it; a server without the extension lists without it, and
   * such entries have no `metadata` (stat them).
   */
  async *list(prefix = '', o: { metadata?: boolean } = {}): AsyncIterable<StoreEntry> {
    const stream = o.metadata
      ? this.client.extensions.listObjectsV2WithMetadata(this.bucket, this.root + prefix, true)
      : this.client.listObjectsV2(this.bucket, this.root + prefix, true);
    for await (const item of stream as AsyncIterable<Minio.BucketItem & { metadata?: Record<string, unknown> | null }>) {
      if (!item.name) continue; // common prefixes only appear in non-recursive listings
      const entry: StoreEntry = {
        key: item.name.slice(this.root.length),
        size: item.size,
        mtimeMs: item.lastModified?.getTime(),
        etag: item.etag,
      };
      if (item.metadata) {
        // Values come parsed from XML ("1" as a number): back to header strings first.
        const raw = Object.fromEntries(Object.entries(item.metadata).map(([k, v]) => [k, v === undefined || v === null ? undefined : String(v)]));
        entry.metadata = userMetadata(raw);
        entry.contentType = raw['content-type'];
      }
      yield entry;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.removeObject(this.bucket, this.objectKey(key));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Aborts multipart uploads below this store's prefix that were begun more
   * than `olderThanMs` ago and never completed (a writer killed mid-upload):
   * their parts are stored, and billed, until someone aborts them. An upload
   * names no process, so age is the only rule.
   */
  async sweep(olderThanMs: number): Promise<number> {
    const stale: { key: string; uploadId: string }[] = [];
    // The whole bucket's, filtered here: MinIO lists uploads for '' or one exact object name, and none for a shorter prefix.
    const stream = this.client.listIncompleteUploads(this.bucket, '', true);
    // minio-js parses each upload's Initiated date but leaves it out of its type.
    for await (const u of stream as AsyncIterable<Minio.IncompleteUploadedBucketItem & { initiated?: Date }>) {
      if (!u.key?.startsWith(this.root) || !u.uploadId || !u.initiated) continue;
      if (Date.now() - u.initiated.getTime() > olderThanMs) stale.push({ key: u.key, uploadId: u.uploadId });
    }
    let removed = 0;
    for (const u of stale) {
      await this.client.abortMultipartUpload(this.bucket, u.key, u.uploadId).then(() => removed++, (err: unknown) => {
        if (!isNotFound(err) && (err as { code?: string }).code !== 'NoSuchUpload') throw err;
      });
    }
    return removed;
  }
}

/**
 * A key no object can have (MinIO refuses "." and ".." segments, NUL, "//";
 * the client refuses some names itself) gets the same answer every time:
 * E_KEY, so a job naming one is refused at once instead of retried.
 */
function invalidName(err: unknown, store: string, key: string): unknown {
  const e = err as { code?: string; name?: string; message?: string } | null;
  if (e?.code === 'XMinioInvalidObjectName' || e?.code === 'XMinioInvalidResourceName' || e?.name === 'InvalidObjectNameError') {
    return new MediaflowError('E_KEY', `${store}: ${JSON.stringify(key)} is not a valid object key (${e.message ?? e.code})`);
  }
  return err;
}

/** S3 answers 404 to HEAD without a body (code NotFound) and NoSuchKey otherwise. */
export function isNotFound(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'NotFound' || code === 'NoSuchKey';
}

/**
 * User metadata, lower-case names without x-amz-meta-, values decoded. Takes
 * minio-js's statObject `metaData` (prefix already stripped, standard headers
 * mixed in) as well as listen records' `userMetadata` (`X-Amz-Meta-Name`).
 */
export function userMetadata(raw: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const lower = name.toLowerCase();
    if (value === undefined) continue;
    if (lower.startsWith(META_PREFIX)) out[lower.slice(META_PREFIX.length)] = decodeMetaValue(value);
    else if (!STANDARD_HEADERS.has(lower) && !lower.startsWith('x-amz-')) out[lower] = decodeMetaValue(value);
  }
  return out;
}

/**
 * Metadata travels as HTTP headers, which only carry printable ASCII; a
 * source key like `ü/日本.jpg` would be rejected. Such values (and values that
 * already look encoded, to stay unambiguous) are sent as RFC 2047 encoded
 * words, the convention S3 documents for non-ASCII metadata.
 */
export function encodeMetaValue(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value) && !ENCODED_WORD.test(value)) return value;
  return `=?UTF-8?B?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

const ENCODED_WORD = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$/i;

export function decodeMetaValue(value: string): string {
  const m = ENCODED_WORD.exec(value);
  return m ? Buffer.from(m[1]!, 'base64').toString('utf8') : value;
}
