import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// bin/mediaflow, the command users run (npm start, the package's bin, the
// Docker image): it sets glibc's malloc for libvips, then runs node on
// bin/mediaflow.js. A stand-in `node` first on PATH shows what it was given.
const LAUNCHER = path.resolve('bin/mediaflow');
const TUNED = ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'VIPS_CONCURRENCY'] as const;
const glibc = spawnSync('getconf', ['GNU_LIBC_VERSION']).status === 0;
const cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());

const dir = mkdtempSync(path.join(tmpdir(), 'mediaflow-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fakeBin = path.join(dir, 'fake-bin');
execFileSync('mkdir', ['-p', fakeBin]);
writeFileSync(path.join(fakeBin, 'node'), '#!/bin/sh\nfor a in "$@"; do echo "arg=$a"; done\necho ---\nenv\nexit 7\n');
chmodSync(path.join(fakeBin, 'node'), 0o755);

/** Runs the launcher (or a link to it) with the stand-in node and exactly `extra` of the tuned variables set. */
function launch(extra: Record<string, string> = {}, file = LAUNCHER, args = ['run', '--port', '0']) {
  const env: Record<string, string> = { PATH: `${fakeBin}:${process.env.PATH}` };
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !TUNED.includes(k as never) && !['LD_PRELOAD', 'PATH', 'UV_THREADPOOL_SIZE'].includes(k)) env[k] = v;
  }
  const r = spawnSync(file, args, { env: { ...env, ...extra }, encoding: 'utf8' });
  const [given = '', environ = ''] = r.stdout.split('\n---\n');
  const seen = Object.fromEntries(environ.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])
    .filter(([k]) => TUNED.includes(k as never) || k === 'LD_PRELOAD'));
  const pool = /^UV_THREADPOOL_SIZE=(.*)$/m.exec(environ)?.[1];
  return { status: r.status, args: given.split('\n').filter(Boolean).map((l) => l.slice('arg='.length)), env: seen, pool };
}

describe('bin/mediaflow', () => {
  it.runIf(glibc)('runs node on bin/mediaflow.js with the arguments as given and glibc malloc tuned for libvips', () => {
    const r = launch();
    expect(r.args).toEqual([path.resolve('bin/mediaflow.js'), 'run', '--port', '0']);
    expect(r.env).toEqual({
      MALLOC_ARENA_MAX: '2',
      MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
      MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
      VIPS_CONCURRENCY: '1',
    });
  });

  it('gives libuv\'s pool two threads a core (one an image made at once), never fewer than node\'s 4', () => {
    expect(launch().pool).toBe(String(Math.max(4, cores * 2)));
    // Under taskset the cores are those the process may run on.
    const one = spawnSync('taskset', ['-c', '0', LAUNCHER, 'run'], { env: { PATH: `${fakeBin}:${process.env.PATH}` }, encoding: 'utf8' });
    expect(/^UV_THREADPOOL_SIZE=(.*)$/m.exec(one.stdout)?.[1]).toBe('4');
  });

  it('leaves UV_THREADPOOL_SIZE as the user set it', () => {
    expect(launch({ UV_THREADPOOL_SIZE: '2' }).pool).toBe('2');
  });

  it('passes node\'s exit code through (exec: node is the process)', () => {
    expect(launch().status).toBe(7);
  });

  it.each([
    ['MALLOC_ARENA_MAX', '8'],
    ['MALLOC_MMAP_THRESHOLD_', '131072'],
    ['MALLOC_TRIM_THRESHOLD_', '131072'],
    ['VIPS_CONCURRENCY', '4'],
    ['LD_PRELOAD', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'],
  ])('sets nothing when %s is set already: the user chose', (name, value) => {
    expect(launch({ [name]: value }).env).toEqual({ [name]: value });
  });

  it('finds bin/mediaflow.js when it is reached through a link, as node_modules/.bin/mediaflow is', () => {
    const link = path.join(dir, 'mediaflow');
    symlinkSync(LAUNCHER, link);
    expect(launch({}, link, ['status']).args).toEqual([path.resolve('bin/mediaflow.js'), 'status']);
  });

  it('is the command of the package, of npm start and of the Docker image', async () => {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.bin.mediaflow).toBe('bin/mediaflow');
    expect(pkg.scripts.start).toMatch(/^bin\/mediaflow run\b/);
  });

  it('runs the real CLI', () => {
    const r = spawnSync(LAUNCHER, ['validate', path.resolve('pipelines')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
