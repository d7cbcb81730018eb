import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines by default; pretty when stdout is a terminal (and pino-pretty is
 * installed). MEDIAFLOW_LOG_LEVEL overrides the level ("silent" in tests).
 *
 * JSON lines are gathered up to 4 KiB and written together, at most 100 ms
 * after the first of them: one write (and one wake-up of whatever reads the
 * log) per several jobs instead of per line. docs/BENCHMARKS.md has the cost.
 * Lines still buffered are written when the process exits; a SIGKILL loses
 * at most the last 100 ms of lines (the ledger, not the log, is the record).
 */
export function createLogger(options: { level?: string; pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env.MEDIAFLOW_LOG_LEVEL ?? 'info';
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  const destination = pino.destination({ dest: 1, sync: true, minLength: 4096, periodicFlush: 100 });
  process.once('exit', () => destination.flushSync());
  return pino({ level }, destination);
}

/** A logger that writes nothing, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
