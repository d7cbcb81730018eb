#!/usr/bin/env node
// Contender (c): the naive watcher a user writes in ten lines. No write-finish
// detection, no ledger, no dedup, no retries, unbounded concurrency (sharp
// queues the work on libuv's threadpool itself), sharp's defaults otherwise.
//
//   node bench/contenders/chokidar-sharp.js IN_DIR OUT_DIR     (prints "ready" once watching)
import path from 'node:path';
import { watch } from 'chokidar';
import sharp from 'sharp';

const [inDir, outDir] = process.argv.slice(2);
watch(inDir, { ignoreInitial: true })
  .on('add', (file) => {
    sharp(file)
      .resize(720, 588, { fit: 'inside' })
      .jpeg({ quality: 80 })
      .toFile(path.join(outDir, path.basename(file)))
      .catch((err) => console.error(file, err.message));
  })
  .on('ready', () => console.log('ready'));
