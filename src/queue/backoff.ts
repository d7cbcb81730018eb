/**
 * Delay before attempt `attempt + 1` (attempt counts from 1): exponential with
 * "full jitter" so that many jobs failing together (a store going down) do not
 * all retry in the same instant. `random` is injectable for tests.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  // Keep at least half the delay, so a retry is never immediate.
  return Math.round(exp / 2 + random() * (exp / 2));
}
