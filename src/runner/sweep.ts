import type { Logger } from '../log.js';
import { SPOOL_NAME } from './fetch-input.js';
import { removeStaleFiles } from '../stores/folder-store.js';
import type { Store } from '../stores/store.js';

/**
 * Leftovers of writes a crash interrupted: in every output (temp files in
 * folders, incomplete multipart uploads in buckets) and in the spool of large
 * inputs. A temp file whose writer was a process of this machine that is
 * gone goes at once; any other only once older than `olderThanMs`, since it
 * may be a write in progress elsewhere (a folder or bucket shared by several
 * machines). Failures are logged, never thrown: a sweep runs in the background.
 */
export async function sweepLeftovers(outputs: Store[], spoolDir: string, olderThanMs: number, logger: Logger): Promise<void> {
  const swept = (where: string) => (n: number) => {
    if (n > 0) logger.info({ output: where, removed: n }, 'removed leftovers of interrupted writes');
  };
  const failed = (where: string) => (err: unknown) => logger.warn({ err, output: where }, 'could not sweep leftovers of interrupted writes');
  await Promise.all([
    ...outputs.map((store) => (store.sweep?.(olderThanMs) ?? Promise.resolve(0)).then(swept(store.name), failed(store.name))),
    removeStaleFiles(spoolDir, SPOOL_NAME, olderThanMs).then(swept(spoolDir), failed(spoolDir)),
  ]);
}
