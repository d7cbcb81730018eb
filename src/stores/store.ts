import type { Readable } from 'node:stream';

/** What a store knows about one key without reading its bytes. */
export interface StoreEntry {
  key: string;
  size: number;
  mtimeMs?: number;
  etag?: string;
  contentType?: string;
  /** User metadata (bucket objects); lower-case names without the x-amz-meta- prefix. */
  metadata?: Record<string, string>;
}

export interface WriteOptions {
  contentType?: string;
  /** Marks outputs (source key, source sha256, pipeline) so a source can ignore them. */
  metadata?: Record<string, string>;
}

/**
 * "A place with keys". Folder and bucket both implement it, so any source can
 * feed any output. Keys are always '/'-separated and relative to the store root.
 */
export interface Store {
  /** Stable identity, e.g. `folder:/abs/path` or `bucket:name`. */
  readonly name: string;
  read(key: string): Promise<Readable>;
  /**
   * Optional fast path: the whole value in one Buffer when it is at most
   * `limit` bytes (null when larger: use read()). Saves the stream's chunks
   * and the copy that joins them. `allocate(n)` gives the buffer to read
   * into (at least n bytes; a reused one, see InputBuffers); the result is
   * a view of it.
   */
  readWhole?(key: string, limit: number, allocate?: (size: number) => Buffer): Promise<Buffer | null>;
  /** Atomic: readers see the old object/file or the new one, never a half-written one. */
  write(key: string, data: Buffer, options?: WriteOptions): Promise<void>;
  stat(key: string): Promise<StoreEntry | null>;
  list(prefix?: string): AsyncIterable<StoreEntry>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes leftovers of writes that never finished (a process killed
   * mid-write): those of a writer known to be gone at once, others once older
   * than `olderThanMs`. Returns how many were removed.
   */
  sweep?(olderThanMs: number): Promise<number>;
}
