import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

/**
 * Who made a temp file or holds a render claim: this machine (hostname, boot,
 * PID namespace), the process id and the process's start time. The start time
 * tells a live owner from a new process that got the same pid; the PID
 * namespace keeps two containers with one hostname apart (each sees only its
 * own pids, so neither may judge the other's). An owner that is provably gone
 * lets its leftovers go at once; one on another machine is judged by age.
 */

function readOr(file: string, fallback: string, read: (f: string) => string = (f) => readFileSync(f, 'utf8')): string {
  try { return read(file).trim(); } catch { return fallback; }
}

/** Field 22 of /proc/<pid>/stat: clock ticks from boot to the process's start (null: no such process, or no /proc). */
function startTicksOf(pid: number): string | null {
  const stat = readOr(`/proc/${pid}/stat`, '');
  if (!stat) return null;
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

const machine = createHash('sha256')
  .update(os.hostname())
  .update(readOr('/proc/sys/kernel/random/boot_id', ''))
  .update(readOr('/proc/self/ns/pid', '', readlinkSync))
  .digest('hex').slice(0, 8);

const hasProc = startTicksOf(process.pid) !== null;

/** This process: `<machine>-<pid>-<start>`, safe in file names. */
export const thisProcess = `${machine}-${process.pid}-${startTicksOf(process.pid) ?? '0'}`;

/** The owner pattern inside temp and spool names. */
export const OWNER = '[0-9a-f]{8}-\\d+-\\d+';

/**
 * True only when `owner` ran on this machine and is no longer running.
 * Anything else (another machine, a malformed token, a live process) is false:
 * leftovers of those are judged by age.
 */
export function ownerIsGone(owner: string): boolean {
  const m = /^([0-9a-f]{8})-(\d+)-(\d+)$/.exec(owner);
  if (!m || m[1] !== machine) return false;
  if (owner === thisProcess) return false;
  const pid = Number(m[2]);
  if (hasProc) {
    const ticks = startTicksOf(pid);
    return ticks === null || ticks !== m[3];
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** This process among the workers, as people read it (metrics' `worker` label, the attempt log): MEDIAFLOW_WORKER_ID, or host and pid. */
export function workerId(env: NodeJS.ProcessEnv = process.env): string {
  return env.MEDIAFLOW_WORKER_ID || `${os.hostname()}:${process.pid}`;
}
