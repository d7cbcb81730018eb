import { describe, expect, it } from 'vitest';
import { makeEvent } from '../../src/events/media-event.js';
import { parsePipeline } from '../../src/pipeline/load.js';
import { Router } from '../../src/pipeline/router.js';

const steps = [{ id: 'm', use: 'metadata' }];
const folder = parsePipeline('a.json', JSON.stringify({
  name: 'folder', source: { type: 'folder', path: './in', include: ['**/*.jpg'], exclude: ['private/**'] }, steps,
  output: { type: 'folder', path: './out' },
}), '/srv');
const bucket = parsePipeline('b.json', JSON.stringify({
  name: 'bucket', source: { type: 'bucket', bucket: 'ups', prefix: 'photos/', suffix: '.png' }, steps,
  output: { type: 'folder', path: './out' },
}), '/srv');
const router = new Router([folder, bucket]);
const at = (store: string, key: string) => router.route(makeEvent(store, 'created', { store, key })).map((r) => `${r.pipeline.name}:${r.relKey}`);

describe('Router', () => {
  it('matches folder events by include/exclude globs, case-insensitively', () => {
    expect(at('folder:/srv/in', 'a/b.jpg')).toEqual(['folder:a/b.jpg']);
    expect(at('folder:/srv/in', 'B.JPG')).toEqual(['folder:B.JPG']);
    expect(at('folder:/srv/in', 'b.png')).toEqual([]);
    expect(at('folder:/srv/in', 'private/b.jpg')).toEqual([]);
    expect(at('folder:/srv/other', 'b.jpg')).toEqual([]);
  });

  it('routes a folder that left to every pipeline of its store, whatever the globs (they name files)', () => {
    const gone = (store: string, key: string, folder?: boolean) =>
      router.route(makeEvent(store, 'removed', { store, key, ...(folder !== undefined && { folder }) })).map((r) => `${r.pipeline.name}:${r.relKey}`);
    expect(gone('folder:/srv/in', 'trip/day1', true)).toEqual(['folder:trip/day1']);
    expect(gone('folder:/srv/in', 'trip/day1')).toEqual([]);
    expect(gone('folder:/srv/other', 'trip', true)).toEqual([]);
    // Only a removal: a created event for a folder is never routed.
    expect(router.route(makeEvent('folder:/srv/in', 'created', { store: 'folder:/srv/in', key: 'trip', folder: true }))).toEqual([]);
  });

  it('matches bucket events by prefix and suffix and strips the prefix', () => {
    expect(at('bucket:ups', 'photos/x/y.png')).toEqual(['bucket:x/y.png']);
    expect(at('bucket:ups', 'other/y.png')).toEqual([]);
    expect(at('bucket:ups', 'photos/y.jpg')).toEqual([]);
  });
});
