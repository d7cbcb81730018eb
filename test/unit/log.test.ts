import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The logger buffers JSON lines (several jobs per write); these check that
// nothing is held back for good. They run the built logger (dist/, made by
// `npm test`'s tsc) in a child, as `mediaflow run` does.
const LOG = path.resolve('dist/log.js');
const script = (body: string) => `import { createLogger } from ${JSON.stringify(LOG)};
const log = createLogger({ level: 'info', pretty: false });
${body}`;

describe('createLogger (JSON lines)', () => {
  it('writes buffered lines when the process exits, even through process.exit', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script(`
      for (let i = 0; i < 3; i++) log.info({ i }, 'line');
      process.exit(0);`)]);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { i: number; msg: string });
    expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
  });

  it('writes a line of a process that goes on running without waiting for more lines', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script(`
      log.info('alone');
      setInterval(() => {}, 1000);`)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
      expect(JSON.parse(line)).toMatchObject({ msg: 'alone' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
