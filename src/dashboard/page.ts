import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { MediaflowError } from '../errors.js';

/** The page's own files: web/dashboard in the package (next to dist/ and src/, so both find it at ../../web). */
const WEB = fileURLToPath(new URL('../../web/dashboard/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset { body: Buffer; type: string; etag: string }

/** Preact and htm as they are installed: ES modules with no build step, the import map in index.html names them. */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    'vendor/preact.mjs': require.resolve('preact'),
    'vendor/preact-hooks.mjs': require.resolve('preact/hooks'),
    // htm's package names its ES module for `import` only; it sits beside the CommonJS file `require` finds.
    'vendor/htm.mjs': path.join(path.dirname(require.resolve('htm')), 'htm.mjs'),
  };
}

/** A file the page needs, or a start-up error saying which is missing (a package without web/). */
function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new MediaflowError('E_CONFIG', `the dashboard's file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is web/ missing from this install?`);
  }
}

function asset(file: string): Asset {
  const body = read(file);
  const type = TYPES[path.extname(file)];
  if (!type) throw new MediaflowError('E_CONFIG', `dashboard file ${file}: no content type for ${path.extname(file) || 'a name without extension'}`);
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/**
 * Every file the page may load, read once: a request picks one by its name
 * from this table, so no part of a URL is ever a path on disk.
 */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(WEB)) if (name !== 'index.html') assets.set(name, asset(path.join(WEB, name)));
  for (const [name, file] of Object.entries(vendorFiles())) assets.set(name, asset(file));
  return assets;
}

/**
 * The page's Content-Security-Policy: scripts only from this origin (plus
 * the one inline import map, by its hash), no inline script or style, images
 * from here or from blob: URLs (outputs are fetched with the token and shown
 * from blobs), requests only to here, no framing, and Trusted Types so no
 * string can become HTML.
 */
export function pageSecurityPolicy(html: string): string {
  const map = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html);
  if (!map) throw new MediaflowError('E_CONFIG', 'dashboard index.html has no <script type="importmap">');
  const hash = createHash('sha256').update(map[1]!).digest('base64');
  return [
    "default-src 'none'", `script-src 'self' 'sha256-${hash}'`, "style-src 'self'", "img-src 'self' blob:", "connect-src 'self'",
    "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'", "require-trusted-types-for 'script'", "trusted-types 'none'",
  ].join('; ');
}

/**
 * The dashboard page at / and its files at /assets/<name>. They need no
 * token: the page holds no data and asks for the token itself; every
 * request for data goes to /v1, which does.
 */
export function registerDashboardPage(app: FastifyInstance): void {
  const html = read(path.join(WEB, 'index.html'));
  const csp = pageSecurityPolicy(html.toString('utf8'));
  const assets = loadAssets();
  const secure = { 'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };

  app.get('/', async (_req, reply) => reply.headers({ ...secure, 'content-type': TYPES['.html']!, 'cache-control': 'no-cache' }).send(html));

  app.get('/assets/*', async (req, reply) => {
    const name = (req.params as { '*': string })['*'];
    const found = assets.get(name);
    if (!found) return reply.code(404).send({ error: 'E_NOT_FOUND', message: `no dashboard file ${JSON.stringify(name.slice(0, 80))}` });
    if (req.headers['if-none-match'] === found.etag) return reply.code(304).headers(secure).send();
    return reply.headers({ ...secure, 'content-type': found.type, etag: found.etag, 'cache-control': 'no-cache' }).send(found.body);
  });
}
