import { MediaflowError } from '../errors.js';

/** At most `max` requests to /v1/* per client address in each window of `windowMs`. */
export interface RateLimit {
  max: number;
  windowMs: number;
}

/**
 * 300 per 10 s: a token guesser gets 30 tries a second at most, well under what
 * a flood sends (500 in 2 s is cut at 300), while a MinIO webhook — one POST per
 * object, all from one address — keeps up with a burst of 300 uploads and
 * 30 a second after that. The CLI and HttpOptions share it.
 */
export const DEFAULT_RATE_LIMIT: RateLimit = { max: 300, windowMs: 10_000 };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `10s`, `1m`, `500ms`: the largest unit that divides the window. */
export function formatWindow(windowMs: number): string {
  const [unit, size] = windowMs % 3_600_000 === 0 ? ['h', 3_600_000] : windowMs % 60_000 === 0 ? ['m', 60_000] : windowMs % 1000 === 0 ? ['s', 1000] : ['ms', 1];
  return `${windowMs / size}${unit}`;
}

/** `300/10s` for 300 per 10 s: the form the option takes, so messages and logs read back as input. */
export function formatRateLimit(l: RateLimit | false): string {
  return l ? `${l.max}/${formatWindow(l.windowMs)}` : 'off';
}

/**
 * Parses `MAX/WINDOW` (`300/10s`, `50/s`, `1000/1m`, `20/500ms`); `0` or `off`
 * turns the limit off. `name` is how the caller spells the setting, so the
 * error points at what to fix: commander hands over a flag's and an
 * environment variable's value alike, so the default names both.
 */
export function parseRateLimit(value: string, name = '`--rate-limit` / `MEDIAFLOW_RATE_LIMIT`'): RateLimit | false {
  const v = value.trim().toLowerCase();
  if (v === '0' || v === 'off') return false;
  const m = /^(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)$/.exec(v);
  const max = m ? Number(m[1]) : NaN;
  const windowMs = m ? Math.round(Number(m[2] ?? '1') * UNITS[m[3]!]!) : NaN;
  if (!Number.isSafeInteger(max) || max < 1 || !Number.isSafeInteger(windowMs) || windowMs < 1) {
    throw new MediaflowError('E_CONFIG', `Expected ${name} to be MAX/WINDOW with MAX an integer >= 1 and WINDOW a duration in ms, s, m or h (such as 300/10s), or 0 or off to turn it off, got \`${value}\``);
  }
  return { max, windowMs };
}
