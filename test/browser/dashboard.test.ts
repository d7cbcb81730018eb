/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core)
 * against a real service: files dropped into its watched folder, its HTTP
 * server on a real port. No assertion is about how long anything takes.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { listenHttp, type HttpServer } from '../../src/http/server.js';
import { Metrics } from '../../src/metrics.js';
import { loadPipelines } from '../../src/pipeline/load.js';
import { Service } from '../../src/service.js';
import { describeBrowser, openBrowser, type Browser } from '../helpers/browser.js';
import { fixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { workspace } from '../helpers/workspace.js';

const TOKEN = 'browser-token-0123456789';
const WAIT = 30_000;

describeBrowser('dashboard in Chromium', () => {
  let ws: ReturnType<typeof workspace>;
  let service: Service;
  let http: HttpServer;
  let browser: Browser | undefined;
  let pipelineFile: string;

  const pipeline = (steps: unknown[] = [{ id: 'thumb', use: 'thumbnail', width: 160, height: 160, format: 'webp' }, { id: 'meta', use: 'metadata' }]) =>
    JSON.stringify({ name: 'photos', source: { type: 'folder', path: ws.inbox, stableMs: 50 }, output: { type: 'folder', path: ws.out }, steps, retry: { attempts: 2, backoffMs: 50 } }, null, 2);

  beforeEach(async () => {
    ws = workspace('mf-browser-');
    mkdirSync(path.join(ws.root, 'pipelines'));
    pipelineFile = path.join(ws.root, 'pipelines', 'photos.json');
    writeFileSync(pipelineFile, pipeline());
    service = new Service({ pipelines: loadPipelines([pipelineFile]), dataDir: ws.data, concurrency: 2, pollMs: 100 });
    await service.start();
    http = await listenHttp(service, {
      host: '127.0.0.1', port: 0, token: TOKEN, metrics: new Metrics(service, { defaultMetrics: false }), pipelinePaths: [path.dirname(pipelineFile)], rateLimit: false,
    });
  });
  afterEach(async () => {
    await browser?.close();
    browser = undefined;
    await http?.close();
    await service?.stop();
    ws.cleanup();
  });

  const drop = (name: string, as: string) => copyFileSync(fixture(name), path.join(ws.inbox, as));
  const ended = (key: string, state: 'done' | 'dead') => waitFor(`${key} ${state}`, async () =>
    (await service.ledger.jobList.findJobs({ keyContains: key })).find((j) => j.key === key && j.state === state), WAIT);

  async function signIn(page: Page): Promise<void> {
    await page.goto(`${http.url}/`);
    await page.getByLabel('Access token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  }

  /** A view reached through its link in the navigation, as a user goes there. */
  async function view(page: Page, name: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name }).click();
    await page.getByRole('heading', { name, level: 1 }).waitFor();
  }

  /** Nothing went wrong on the page: no uncaught error, no console error, no Content-Security-Policy violation, no dialog. */
  function clean(b: Browser): void {
    expect(b.problems).toEqual([]);
    expect(b.dialogs).toEqual([]);
  }

  it('without the token the page asks for it and the API answers 401; the token is kept for the tab only', async () => {
    browser = await openBrowser();
    const { page, context } = browser;
    await page.goto(`${http.url}/`);
    await page.getByLabel('Access token').waitFor();
    expect(await page.getByRole('heading', { name: 'Overview' }).count()).toBe(0);
    const statuses = await page.evaluate(async () => Promise.all(
      ['/v1/overview', '/v1/jobs', '/v1/jobs/1', '/v1/jobs/1/outputs/0', '/v1/pipelines'].map(async (u) => (await fetch(u)).status)));
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    expect(await page.evaluate(async () => (await fetch('/v1/jobs/1/retry', { method: 'POST', headers: { authorization: 'Bearer guess' } })).status)).toBe(401);

    await page.getByLabel('Access token').fill('not-the-token');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    expect(await page.getByRole('alert').textContent()).toBe('That token was refused.');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

    await page.getByLabel('Access token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor(); // kept for this tab
    const other = await context.newPage();
    await other.goto(`${http.url}/`);
    await other.getByLabel('Access token').waitFor(); // another tab asks again
    clean(browser);
  });

  it('files dropped into the watched folder appear live, without reloading, with their thumbnails; the overview counts them', async () => {
    browser = await openBrowser();
    const { page } = browser;
    await signIn(page);
    await view(page, 'Jobs');
    await page.getByText('No jobs yet').waitFor();
    await page.evaluate(() => { (window as unknown as { sameDocument: boolean }).sameDocument = true; });
    drop('Landscape_1.jpg', 'beach.jpg');
    drop('flowers.jpeg', 'flowers.jpeg');
    drop('Portrait_1.jpg', 'portrait.jpg');
    await page.waitForFunction(() => {
      const images = [...document.querySelectorAll<HTMLImageElement>('li.job[data-state="done"] .thumb img')];
      return images.length === 3 && images.every((i) => i.complete && i.naturalWidth > 0);
    }, null, { timeout: WAIT });
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    const rows = await page.locator('li.job').evaluateAll((lis) => lis.map((li) => ({
      key: li.querySelector('a.key')!.textContent, src: li.querySelector('img')!.getAttribute('src')!, width: li.querySelector('img')!.naturalWidth,
    })));
    expect(rows.map((r) => r.key).sort()).toEqual(['beach.jpg', 'flowers.jpeg', 'portrait.jpg']);
    expect(rows.every((r) => r.src.startsWith('blob:') && r.width > 0)).toBe(true);

    await view(page, 'Overview');
    const done = page.locator('tr[data-pipeline="photos"] td[data-state="done"]');
    await waitFor('overview counts 3 done', async () => (await done.textContent()) === '3', WAIT);
    expect(await page.locator('.chart svg title').textContent()).toMatch(/^3 jobs ended in the last \d+ minutes/);
    expect(await page.getByLabel(/^Queue: \d+ of 1000$/).getAttribute('max')).toBe('1000');
    clean(browser);
  });

  it('a corrupt file shows as a dead letter with its reason; the file fixed and Retry clicked, the row goes to done', async () => {
    browser = await openBrowser();
    const { page } = browser;
    drop('truncated.jpg', 'broken.jpg');
    const dead = await ended('broken.jpg', 'dead');
    await signIn(page);
    await view(page, 'Dead letters');
    const row = page.locator(`li.job[data-job="${dead.id}"]`);
    expect(await row.locator('.reason').textContent()).toBe(dead.error);
    expect(dead.error).toMatch(/broken\.jpg: corrupt or truncated image/);

    // Fixed: the watcher makes a job of the new version; it ends before the retry, so the two never meet in the queue.
    drop('Landscape_1.jpg', 'broken.jpg');
    const fixed = await ended('broken.jpg', 'done');
    await row.getByRole('button', { name: 'Retry broken.jpg' }).click();
    await page.waitForFunction((id) => document.querySelector<HTMLElement>(`li.job[data-job="${id}"]`)?.dataset.state === 'done', dead.id, { timeout: WAIT });
    expect(await row.locator('.moving').textContent()).toBe('retried: done');
    expect((await service.ledger.get(dead.id))!.state).toBe('done');

    // Its page tells the story: the dead attempt with its reason, the retry, and the attempt that copied the fixed file's outputs (same bytes).
    await row.getByRole('link', { name: 'broken.jpg' }).click();
    await page.getByRole('heading', { name: 'Attempts' }).waitFor();
    const attempts = await page.locator('ol.attempts > li').allTextContents();
    expect(attempts[0]).toMatch(/^Attempt 1: dead .*Step thumb: broken\.jpg: corrupt or truncated image/);
    expect(attempts[1]).toBe('Put back in the queue (a dead letter retried).');
    expect(attempts[2]).toMatch(new RegExp(`^Attempt 1: done .*, copied from job #${fixed.id}$`));
    expect(await page.locator('.decision').textContent()).toMatch(new RegExp(`^Copied from job #${fixed.id}: the same content went through the same steps there`));
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('img.output-image')].some((i) => i.naturalWidth > 0), null, { timeout: WAIT });

    // Every dead letter of a pipeline at once: still corrupt, it is tried again and is dead again.
    drop('corrupt-header.jpg', 'bad-header.jpg');
    const bad = await ended('bad-header.jpg', 'dead');
    await view(page, 'Dead letters');
    await page.getByRole('button', { name: 'Retry the dead letter of photos' }).click();
    expect(await page.getByRole('status').filter({ hasText: 'queued again' }).textContent()).toBe('1 job queued again');
    await waitFor('tried again', async () => (await service.ledger.get(bad.id))!.attemptLog.length === 2, WAIT);
    clean(browser);
  });

  it('hostile file names and error texts render as text and run no script', async () => {
    browser = await openBrowser();
    const { page } = browser;
    const image = '<img src=x onerror=alert(1)>.jpg';
    const broken = '<svg onload=alert(2)>&amp;"\'.jpg';
    drop('Landscape_6.jpg', image);
    drop('truncated.jpg', broken);
    const [good, bad] = [await ended(image, 'done'), await ended(broken, 'dead')];
    expect(bad.error).toContain(broken);
    await signIn(page);
    await view(page, 'Jobs');
    const keys = page.locator('li.job a.key');
    await waitFor('both listed', async () => (await keys.count()) === 2, WAIT);
    expect((await keys.allTextContents()).sort()).toEqual([broken, image].sort());
    expect(await page.locator(`li.job[data-job="${bad.id}"] .reason`).textContent()).toBe(bad.error);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.thumb img')].some((i) => i.naturalWidth > 0), null, { timeout: WAIT });
    const injected = () => page.evaluate(() => ({
      elements: document.querySelectorAll('img[src="x"], svg[onload], #app script, [onerror], [onload]').length,
      html: document.getElementById('app')!.innerHTML.includes('<img src=x'),
    }));
    expect(await injected()).toEqual({ elements: 0, html: false });
    await page.locator(`li.job[data-job="${good.id}"] a.key`).click();
    await page.getByRole('heading', { name: 'Outputs' }).waitFor();
    expect(await page.locator('h1').textContent()).toBe(`Job #${good.id}: ${image}`);
    // The image itself: until its bytes are fetched with the token, a placeholder with an aria-label stands in its place.
    expect(await page.locator('img.output-image').getAttribute('alt')).toMatch(/^thumb: /);
    await view(page, 'Dead letters');
    await page.locator(`li.job[data-job="${bad.id}"]`).waitFor();
    expect(await injected()).toEqual({ elements: 0, html: false });
    clean(browser);
  });

  it('at 360 px wide nothing runs off the side, and every view is reached and worked by keyboard', async () => {
    browser = await openBrowser({ width: 360, height: 740 });
    const { page } = browser;
    drop('Landscape_1.jpg', 'a-rather-long-file-name-from-a-camera-roll-IMG_20240501_101112.jpg');
    drop('truncated.jpg', 'broken.jpg');
    const done = await ended('a-rather-long-file-name-from-a-camera-roll-IMG_20240501_101112.jpg', 'done');
    await ended('broken.jpg', 'dead');
    await signIn(page);
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    for (const [hash, heading] of [['#/', 'Overview'], ['#/jobs', 'Jobs'], [`#/jobs/${done.id}`, 'Outputs'], ['#/dead-letters', 'Dead letters'], ['#/pipelines', 'Pipelines']] as const) {
      await page.goto(`${http.url}/${hash}`);
      await page.getByRole('heading', { name: heading }).first().waitFor();
      expect([hash, await fits()]).toEqual([hash, true]);
    }

    // Keyboard only: Tab to a view's link, Enter; Tab to a row's Retry, Enter.
    await page.goto(`${http.url}/#/`);
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    const tabTo = async (name: string) => {
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        const focused = await page.evaluate(() => (document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? '').trim());
        if (focused === name) return;
      }
      throw new Error(`Tab never reached "${name}"`);
    };
    await tabTo('Dead letters');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Dead letters', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Retry broken.jpg' }).waitFor();
    await tabTo('Retry broken.jpg');
    await page.keyboard.press('Enter');
    await waitFor('retried by keyboard', async () => (await service.ledger.jobList.findJobs({ keyContains: 'broken.jpg' }))[0]!.attemptLog.length === 2, WAIT);
    // The filters are labelled controls.
    await page.goto(`${http.url}/#/jobs`);
    await page.getByLabel('Search by key').fill('camera-roll');
    await waitFor('search narrows the list', async () => (await page.locator('li.job').count()) === 1, WAIT);
    await page.getByRole('group', { name: 'State' }).getByLabel('dead').check();
    await page.getByText('No job matches.').waitFor();
    clean(browser);
  });

  it('shows each loaded pipeline, and a file edited since with its problem by file and JSON path', async () => {
    browser = await openBrowser();
    const { page } = browser;
    await signIn(page);
    await view(page, 'Pipelines');
    await page.getByText('running as loaded').first().waitFor();
    expect(await page.locator('pre.json').textContent()).toContain('"name": "photos"');
    writeFileSync(pipelineFile, pipeline([{ id: 'thumb', use: 'thumbnail', width: '<b>wide</b>' }]));
    const problem = page.locator('.problems li');
    await problem.waitFor({ timeout: WAIT });
    expect(await problem.textContent()).toBe('$.steps[0].width: wrong type; expected number, found "<b>wide</b>" (string)');
    expect(await page.locator('.problems b').count()).toBe(0);
    clean(browser);
  });
});

