import { randomUUID } from 'node:crypto';

/**
 * The one shape every source produces (modelled on CloudEvents 1.0).
 * `subject` is the decoded key relative to the source root: sources decode
 * URL-encoded keys once, at the edge, so nothing downstream ever decodes again.
 */
export interface MediaEvent {
  specversion: '1.0';
  id: string;
  /** Which source produced it, e.g. `folder:/abs/inbox` or `bucket:uploads`. */
  source: string;
  type: 'created' | 'removed';
  subject: string;
  time: string;
  data: {
    /** Store name (same as Store.name) the key lives in. */
    store: string;
    key: string;
    size?: number;
    etag?: string;
    mtimeMs?: number;
    contentType?: string;
    /** When the file/object changed, for event-lag metrics (ms since epoch). */
    changedAtMs?: number;
    /**
     * On `removed` from a folder source: the key is a folder that left (moved
     * out), with everything below it. The watcher sees only the folder go,
     * not the files inside, so the removal covers every key under `key/`.
     */
    folder?: boolean;
    /**
     * S3's `s3.object.sequencer`: grows with each event of one key, so of two
     * events of a key the later one is known whatever order they arrive in
     * (listings have none: they show what is there now).
     */
    sequencer?: string;
  };
}

export function makeEvent(
  source: string,
  type: MediaEvent['type'],
  data: MediaEvent['data'],
): MediaEvent {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type,
    subject: data.key,
    time: new Date().toISOString(),
    data,
  };
}

/**
 * What identifies one version of a key without reading it: the ETag for
 * objects, size+mtime for files. Used to skip already-done work on catch-up.
 */
export function versionOf(data: MediaEvent['data']): string {
  // Listings quote ETags, listen records do not: one version must have one name.
  if (data.etag) return `etag:${data.etag.replace(/"/g, '')}`;
  return `file:${data.size ?? '?'}:${data.mtimeMs ?? '?'}`;
}
