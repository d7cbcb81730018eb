import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines by default; pretty when stdout is a terminal (and pino-pretty is
 * installed). MEDIAFLOW_LOG_LEVEL overrides the level ("silent" in tests).
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
  return pino({ level });
}

/** A logger that writes nothing, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
