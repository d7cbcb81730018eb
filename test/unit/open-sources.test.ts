import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { parsePipeline } from '../../src/pipeline/load.js';
import { AmqpSource } from '../../src/sources/amqp-source.js';
import { BucketSource } from '../../src/sources/bucket-source.js';
import { FolderSource } from '../../src/sources/folder-source.js';
import { openSources } from '../../src/sources/open.js';
import { StoreRegistry } from '../../src/stores/registry.js';

const steps = [{ id: 'm', use: 'metadata' }];
const pipeline = (name: string, source: object) => parsePipeline(`${name}.json`, JSON.stringify({
  name, source, steps, output: { type: 'folder', path: './out' },
}), '/srv');
// Made, never started: no watcher, bucket or broker is reached.
const env = { MINIO_ENDPOINT: 'http://127.0.0.1:9', MINIO_ACCESS_KEY: 'k', MINIO_SECRET_KEY: 's' };

describe('openSources', () => {
  it('watches a folder once for all its pipelines, with the most careful settings of them', () => {
    const sources = openSources([
      pipeline('a', { type: 'folder', path: './in', stableMs: 100 }),
      pipeline('b', { type: 'folder', path: './in', stableMs: 500, followSymlinks: false }),
      pipeline('c', { type: 'folder', path: './other' }),
    ], new StoreRegistry(env), silentLogger);
    expect(sources.map((s) => s.name)).toEqual(['folder:/srv/in', 'folder:/srv/other']);
    const inbox = sources[0] as FolderSource;
    expect(inbox).toBeInstanceOf(FolderSource);
    expect(inbox.options.stableMs).toBe(500);
    expect(inbox.options.followSymlinks).toBe(false);
  });

  it('listens to a bucket once whatever its pipelines\' prefixes, and consumes a queue once', () => {
    const sources = openSources([
      pipeline('a', { type: 'bucket', bucket: 'ups', prefix: 'photos/' }),
      pipeline('b', { type: 'bucket', bucket: 'ups', prefix: 'scans/' }),
      pipeline('c', { type: 'amqp', url: 'amqp://127.0.0.1:9', queue: 'uploads', bucket: 'ups' }),
      pipeline('d', { type: 'amqp', url: 'amqp://127.0.0.1:9', queue: 'uploads', bucket: 'ups' }),
      pipeline('e', { type: 'amqp', url: 'amqp://127.0.0.1:9', queue: 'other', bucket: 'ups' }),
    ], new StoreRegistry(env), silentLogger);
    expect(sources.map((s) => s.constructor)).toEqual([BucketSource, AmqpSource, AmqpSource]);
    expect(sources.map((s) => s.name)).toEqual(['bucket:ups', 'amqp:amqp://127.0.0.1:9#uploads', 'amqp:amqp://127.0.0.1:9#other']);
  });
});
