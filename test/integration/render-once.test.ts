/**
 * One render per content, even when its copies run at the same time: the
 * ledger's render claim decides who renders, the others wait and copy.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Service } from '../../src/service.js';
import { smallJpeg } from '../reliability/harness.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

const CONTENTS = 20;
const COPIES = 3;
const ROUNDS = 20;

describe('the same content under several names at once', () => {
  it(`${CONTENTS * COPIES} files of ${CONTENTS} contents moved in at once: exactly ${CONTENTS} renders, ${ROUNDS} rounds`, async () => {
    const images = await Promise.all(Array.from({ length: CONTENTS }, (_, i) => smallJpeg(i, 96, 64)));
    for (let round = 0; round < ROUNDS; round++) {
      const ws = workspace('mf-once-');
      cleanups.push(() => ws.cleanup());
      const p = ws.pipeline({
        steps: [{ id: 'thumb', use: 'thumbnail', width: 48, format: 'webp' }, { id: 'meta', use: 'metadata' }],
      });
      // Concurrency 2 and 3 in turn: each copy of a content can meet another in flight.
      const service = new Service({ pipelines: [p], dataDir: ws.data, concurrency: 2 + (round % 2), pollMs: 50 });
      cleanups.push(() => service.stop());
      let renders = 0;
      service.on('step', (_p: string, step: string) => { if (step === 'thumb') renders++; });
      await service.start();
      // Written beside the inbox, then moved in together: the copies of one content are next to each other.
      const staging = path.join(ws.root, 'staging');
      mkdirSync(staging);
      const names: string[] = [];
      images.forEach((img, i) => {
        for (let c = 0; c < COPIES; c++) {
          const name = `c${String(i).padStart(2, '0')}-${c}.jpg`;
          writeFileSync(path.join(staging, name), img);
          names.push(name);
        }
      });
      for (const n of names) renameSync(path.join(staging, n), path.join(ws.inbox, n));
      await waitFor('every copy done', async () => (await service.ledger.counts()).done === names.length);
      await service.idle();

      const perContent = (await service.ledger.renderCounts());
      expect({ round, renders, contents: perContent.length }).toEqual({ round, renders: CONTENTS, contents: CONTENTS });
      expect(perContent.every((r) => r.renders === 1)).toBe(true);
      expect((await service.ledger.counts())).toMatchObject({ done: CONTENTS * COPIES, deduplicated: CONTENTS * (COPIES - 1) });
      // Every name has its outputs, the copies byte for byte those of the render.
      for (let i = 0; i < CONTENTS; i++) {
        const first = readFileSync(path.join(ws.out, `c${String(i).padStart(2, '0')}-0/thumb.webp`));
        for (let c = 1; c < COPIES; c++) expect(readFileSync(path.join(ws.out, `c${String(i).padStart(2, '0')}-${c}/thumb.webp`)).equals(first)).toBe(true);
      }
      expect(readdirSync(ws.out)).toHaveLength(CONTENTS * COPIES);
      await service.stop();
    }
  }, 240_000);
});
