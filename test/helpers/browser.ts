/**
 * A real browser for the dashboard tests: Debian's Chromium driven by
 * playwright-core (MEDIAFLOW_TEST_CHROMIUM, default /usr/bin/chromium; a
 * test tool's own browser download is not used), with a fresh profile in a
 * temp folder, removed on close.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { describeNeeding } from './needs-server.js';

export const CHROMIUM = process.env.MEDIAFLOW_TEST_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
];

/** describe() for suites that need the browser (see describeNeeding). */
export function describeBrowser(name: string, fn: () => void): void {
  describeNeeding('Chromium', existsSync(CHROMIUM) ? null : `No Chromium at ${CHROMIUM}: apt-get install -y chromium (or set MEDIAFLOW_TEST_CHROMIUM)`, name, fn);
}

export interface Browser {
  context: BrowserContext;
  /** The first tab. */
  page: Page;
  /** Every console error and uncaught exception of every tab, and Content-Security-Policy violations: a test expects none. */
  problems: string[];
  /** Every dialog (alert, confirm) a page opened: a script that ran where it must not would open one. */
  dialogs: string[];
  close(): Promise<void>;
}

export async function openBrowser(viewport = { width: 1200, height: 900 }): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'mf-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const problems: string[] = [];
  const dialogs: string[] = [];
  const watch = (page: Page) => {
    page.on('console', (m) => {
      // A 401 is the page learning that it needs the token: expected, and asserted where it matters.
      if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
  };
  context.on('page', watch);
  context.pages().forEach(watch);
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context, page, problems, dialogs,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
