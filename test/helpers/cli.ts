import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, as a user runs it (`npm test` builds dist/ first). */
export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/mediaflow.js');

export function mediaflow(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, MEDIAFLOW_LOG_LEVEL: 'warn', MEDIAFLOW_PORT: '0', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function spawnMediaflow(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, MEDIAFLOW_LOG_LEVEL: 'info', MEDIAFLOW_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += String(d); });
  child.stderr!.on('data', (d) => { out += String(d); });
  return Object.assign(child, { output: () => out });
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
