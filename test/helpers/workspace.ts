import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePipeline, type LoadedPipeline } from '../../src/pipeline/load.js';

/** A temporary folder with inbox/, out/ and a data dir; removed by cleanup(). */
export function workspace(prefix = 'mf-') {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  const inbox = path.join(root, 'inbox');
  const out = path.join(root, 'out');
  const data = path.join(root, 'data');
  mkdirSync(inbox);
  return {
    root, inbox, out, data,
    /** A pipeline parsed exactly as a file would be, relative paths resolved against root. */
    pipeline(doc: Record<string, unknown>): LoadedPipeline {
      const full = {
        name: 'test',
        source: { type: 'folder', path: './inbox', stableMs: 50 },
        output: { type: 'folder', path: './out' },
        steps: [{ id: 'thumb', use: 'thumbnail', width: 64, format: 'png' }],
        ...doc,
      };
      return parsePipeline(path.join(root, `${String(full.name)}.json`), JSON.stringify(full), root);
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
