import type { Activity, StateCounts } from '../ledger/ledger.js';
import type { Service } from '../service.js';

/** The activity chart's span and interval: the last 15 minutes, a bar a minute. */
export const ACTIVITY_MS = 15 * 60_000;
export const ACTIVITY_INTERVAL_MS = 60_000;

/**
 * How long one overview serves every dashboard that asks: the counts by
 * pipeline read the whole jobs table, so however many tabs are open the
 * ledger does that at most once per this.
 */
export const OVERVIEW_TTL_MS = 2000;

export interface Overview {
  /** The server's time when this was read (ms). */
  now: number;
  role: Service['role'];
  /** Loaded pipelines first (with zero counts when they have no jobs yet), then any the ledger has jobs of that are not loaded now. */
  pipelines: { name: string; loaded: boolean; counts: StateCounts }[];
  /** Waiting (delayed retries apart) and running against the high-water mark the sources wait at; null when the queue cannot be asked. */
  queue: { waiting: number; running: number; delayed: number; highWaterMark: number } | null;
  /** `spanMs`: how far back it goes (the chart's title says so); `since`: the start of its first interval. */
  activity: { since: number; intervalMs: number; spanMs: number; intervals: Activity[] };
}

const zero = (): StateCounts => ({ queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 });

/** Everything read from the shared ledger and queue, so every role's dashboard shows the same picture. */
async function readOverview(service: Service): Promise<Overview> {
  const now = Date.now();
  // Whole intervals, the current one last: 15 bars, the last one filling up.
  const since = Math.floor(now / ACTIVITY_INTERVAL_MS) * ACTIVITY_INTERVAL_MS - (ACTIVITY_MS - ACTIVITY_INTERVAL_MS);
  const [counts, intervals, depth] = await Promise.all([
    service.ledger.jobList.countsByPipeline(),
    service.ledger.jobList.activity(since, ACTIVITY_INTERVAL_MS),
    service.queue.depth().catch(() => null),
  ]);
  const loaded = service.pipelineList.map((p) => p.name);
  const others = Object.keys(counts).filter((n) => !loaded.includes(n)).sort();
  return {
    now,
    role: service.role,
    pipelines: [
      ...loaded.map((name) => ({ name, loaded: true, counts: counts[name] ?? zero() })),
      ...others.map((name) => ({ name, loaded: false, counts: counts[name]! })),
    ],
    queue: depth && { ...depth, highWaterMark: service.highWaterMark },
    activity: { since, intervalMs: ACTIVITY_INTERVAL_MS, spanMs: ACTIVITY_MS, intervals },
  };
}

/** One overview at a time, kept for OVERVIEW_TTL_MS (see there). */
export function overviewSource(service: Service, ttlMs = OVERVIEW_TTL_MS): () => Promise<Overview> {
  let last: { at: number; value: Promise<Overview> } | null = null;
  return () => {
    if (!last || Date.now() - last.at >= ttlMs) {
      const value = readOverview(service);
      last = { at: Date.now(), value };
      // A failed read is not kept: the next request asks again.
      value.catch(() => { if (last?.value === value) last = null; });
    }
    return last.value;
  };
}
