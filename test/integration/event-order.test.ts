/**
 * Per-key order: storage events carry S3's sequencer, and whichever trigger
 * brings them (bucket listen, webhook, AMQP, NATS: all go through
 * Service.handle), an event older than one already seen for its key must not
 * supersede the newer version or remove its outputs.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeEvent } from '../../src/events/media-event.js';
import { Service } from '../../src/service.js';
import { fixture, sha256 } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let ws: ReturnType<typeof workspace>;
let service: Service | undefined;

beforeEach(() => { ws = workspace('mf-order-'); });
afterEach(async () => { await service?.stop(); service = undefined; ws.cleanup(); });

describe('events of one key out of order', () => {
  it('an older created event arriving after a newer one makes no job; the newer version\'s outputs stand', async () => {
    const p = ws.pipeline({ steps: [{ id: 'meta', use: 'metadata' }] });
    service = new Service({ pipelines: [p], dataDir: ws.data, concurrency: 1 });
    const store = `folder:${ws.inbox}`;
    copyFileSync(fixture('Portrait_1.jpg'), path.join(ws.inbox, 'a.jpg')); // the newer content, now in place
    const newer = await service.intake.handle(makeEvent('test', 'created', { store, key: 'a.jpg', size: 2, mtimeMs: 2, sequencer: '17A2B3C4D5E6F702' }));
    const older = await service.intake.handle(makeEvent('test', 'created', { store, key: 'a.jpg', size: 1, mtimeMs: 1, sequencer: '17A2B3C4D5E6F701' }));
    await service.idle();
    expect(newer).toHaveLength(1);
    expect(older).toEqual([]);
    expect(await service.ledger.get(newer[0]!.id)).toMatchObject({ state: 'done', version: 'file:2:2' });
    expect((await service.ledger.counts())).toMatchObject({ done: 1, superseded: 0 });
    expect(JSON.parse(readFileSync(path.join(ws.out, 'a/meta.json'), 'utf8')).sha256).toBe(sha256(readFileSync(fixture('Portrait_1.jpg'))));
  });

  it('a removal older than the upload after it does not delete that upload\'s outputs', async () => {
    const p = ws.pipeline({ steps: [{ id: 'meta', use: 'metadata' }], onDelete: 'delete-outputs' });
    service = new Service({ pipelines: [p], dataDir: ws.data, concurrency: 1 });
    const store = `folder:${ws.inbox}`;
    copyFileSync(fixture('Landscape_1.jpg'), path.join(ws.inbox, 'a.jpg'));
    await service.intake.handle(makeEvent('test', 'created', { store, key: 'a.jpg', size: 3, mtimeMs: 3, sequencer: '0A' }));
    await service.idle();
    const out = path.join(ws.out, 'a/meta.json');
    expect(existsSync(out)).toBe(true);
    // The removal of the version before it, delivered late (a broker redelivery, a slow webhook).
    await service.intake.handle(makeEvent('test', 'removed', { store, key: 'a.jpg', sequencer: '09' }));
    await new Promise((r) => setTimeout(r, 300)); // removals run on after handle()
    expect(existsSync(out)).toBe(true);
    // A removal after it does delete them.
    await service.intake.handle(makeEvent('test', 'removed', { store, key: 'a.jpg', sequencer: '0B' }));
    await waitFor('outputs deleted', () => !existsSync(out));
  });
});
