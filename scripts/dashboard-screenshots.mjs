#!/usr/bin/env node
// Regenerates docs/dashboard-overview.png and docs/dashboard-job.png: a real service (dist/, so
// `npm run build` first; `npm run screenshots` does both) on a temp folder, the fixtures dropped into it in batches
// a minute apart (so the activity chart has a bar for each), and Chromium through playwright-core.
//
//   node scripts/dashboard-screenshots.mjs [--batches N] [--gap-ms MS]
//
// MEDIAFLOW_TEST_CHROMIUM names the browser (default /usr/bin/chromium).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(path.join(root, 'dist', p));
const { Service } = await dist('service.js');
const { listenHttp } = await dist('http/server.js');
const { loadPipelines } = await dist('pipeline/load.js');

const { values } = parseArgs({ options: { batches: { type: 'string', default: '3' }, 'gap-ms': { type: 'string', default: '61000' } } });
const batches = Number(values.batches);
const gapMs = Number(values['gap-ms']);
const TOKEN = 'screenshot-token';
const fixture = (name) => path.join(root, 'fixtures', name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const work = mkdtempSync(path.join(os.tmpdir(), 'mf-screenshots-'));
const profile = mkdtempSync(path.join(os.tmpdir(), 'mf-screenshots-chromium-'));
const inbox = path.join(work, 'inbox');
mkdirSync(inbox);
mkdirSync(path.join(work, 'pipelines'));
const pipeline = (name, steps, out) => writeFileSync(path.join(work, 'pipelines', `${name}.json`), JSON.stringify({
  name, source: { type: 'folder', path: inbox, stableMs: 100 }, output: { type: 'folder', path: path.join(work, out) }, steps,
}));
pipeline('photos', [
  { id: 'thumb', use: 'thumbnail', width: 320, height: 320, format: 'webp' },
  { id: 'large', use: 'thumbnail', width: 1200, format: 'jpeg' },
  { id: 'meta', use: 'metadata' },
], 'out');
pipeline('web-avif', [{ id: 'avif', use: 'convert', format: 'avif', quality: 50 }], 'avif');

const service = new Service({ pipelines: loadPipelines([path.join(work, 'pipelines')]), dataDir: path.join(work, 'data'), concurrency: 2 });
await service.start();
const http = await listenHttp(service, { host: '127.0.0.1', port: 0, token: TOKEN, pipelinePaths: [path.join(work, 'pipelines')] });
let context;
try {
  const drops = [
    [['Landscape_1.jpg', 'holiday/beach.jpg'], ['flowers.jpeg', 'garden/flowers.jpeg']],
    [['Portrait_1.jpg', 'holiday/portrait.jpg'], ['Landscape_6.jpg', 'holiday/beach-rotated.jpg'], ['truncated.jpg', 'upload-cut-short.jpg']],
    [['with-alpha.png', 'logo.png'], ['Landscape_1.jpg', 'copies/beach-again.jpg']],
  ];
  for (let i = 0; i < Math.min(batches, drops.length); i++) {
    if (i > 0) await sleep(gapMs);
    for (const [name, as] of drops[i]) {
      mkdirSync(path.dirname(path.join(inbox, as)), { recursive: true });
      copyFileSync(fixture(name), path.join(inbox, as));
    }
    console.log(`batch ${i + 1} dropped`);
  }
  for (;;) {
    const c = await service.ledger.counts();
    if (c.queued + c.running + c.failed === 0 && c.done + c.dead > 0) break;
    await sleep(200);
  }
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.MEDIAFLOW_TEST_CHROMIUM ?? '/usr/bin/chromium', headless: true, viewport: { width: 1100, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(`${http.url}/`);
  await page.getByLabel('Access token').fill(TOKEN);
  await page.getByRole('button', { name: 'Open the dashboard' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  await sleep(2500); // one more poll, so the chart and counts are the last ones
  await page.screenshot({ path: path.join(root, 'docs', 'dashboard-overview.png'), fullPage: true });

  const [beach] = await service.ledger.jobList.findJobs({ keyContains: 'holiday/beach.jpg', pipeline: 'photos' });
  await page.goto(`${http.url}/#/jobs/${beach.id}`);
  await page.getByRole('heading', { name: 'Outputs' }).waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('img.output-image')].every((i) => i.naturalWidth > 0));
  await page.screenshot({ path: path.join(root, 'docs', 'dashboard-job.png'), fullPage: true });
  console.log('docs/dashboard-overview.png, docs/dashboard-job.png written');
} finally {
  await context?.close();
  await http.close();
  await service.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
}
