import { createHmac, timingSafeEqual } from 'node:crypto';
import { backoffDelay } from '../queue/backoff.js';

/** The header a receiver checks: `sha256=<hex HMAC-SHA256 of the raw body>`. */
export const SIGNATURE_HEADER = 'x-mediaflow-signature';
export const EVENT_ID_HEADER = 'x-mediaflow-event-id';

export function sign(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** What a receiver does (and the tests do): recompute over the raw bytes, compare in constant time. */
export function verifySignature(body: string | Buffer, secret: string, header: string | undefined): boolean {
  if (!header) return false;
  const expected = Buffer.from(sign(body, secret));
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export interface Delivery {
  url: string;
  body: string;
  eventId: string;
  secret: string;
  attempts: number;
  backoffMs: number;
}

export interface DeliveryHooks {
  /** Called for every failed attempt; `final` when no attempt is left. */
  onFailure(attempt: number, error: string, final: boolean): void;
  onDelivered(attempt: number): void;
  /** Shutdown came during a wait: the attempts left are given up. */
  onAbandoned(attempt: number): void;
  /** Aborts the waits between attempts (shutdown): the remaining attempts are given up. */
  signal: AbortSignal;
  timeoutMs?: number;
}

const MAX_BACKOFF_MS = 60_000;

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) { resolve(false); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(true); }, ms);
    const onAbort = () => { clearTimeout(t); resolve(false); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * POSTs one signed completion event, retrying non-2xx answers and network
 * errors with exponential backoff and jitter. Resolves true once delivered,
 * false when every attempt failed (or shutdown cut the retries short).
 */
export async function deliver(d: Delivery, hooks: DeliveryHooks): Promise<boolean> {
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'mediaflow',
    [SIGNATURE_HEADER]: sign(d.body, d.secret),
    [EVENT_ID_HEADER]: d.eventId,
  };
  for (let attempt = 1; attempt <= d.attempts; attempt++) {
    let error: string;
    try {
      const res = await fetch(d.url, {
        // No redirects: a signed event goes to the configured URL or nowhere.
        method: 'POST', headers, body: d.body, redirect: 'error',
        signal: AbortSignal.timeout(hooks.timeoutMs ?? 10_000),
      });
      await res.body?.cancel().catch(() => {});
      if (res.ok) { hooks.onDelivered(attempt); return true; }
      error = `HTTP ${res.status} ${res.statusText}`.trim();
    } catch (err) {
      // fetch says only "fetch failed"; the cause says why (ECONNREFUSED, timeout, ...).
      const e = err as Error & { cause?: { message?: string } };
      error = e.cause?.message ? `${e.message}: ${e.cause.message}` : String(e.message ?? err);
    }
    const final = attempt === d.attempts || hooks.signal.aborted;
    hooks.onFailure(attempt, error, final);
    if (final) return false;
    if (!(await sleep(backoffDelay(attempt, d.backoffMs, MAX_BACKOFF_MS), hooks.signal))) {
      hooks.onAbandoned(attempt);
      return false;
    }
  }
  return false;
}
