import { useEffect, useState } from 'preact/hooks';
import { getJson, query, Unauthorized } from './api.js';

const POLL_MS = 1000;

const matches = (job, f) => (!f.states?.length || f.states.includes(job.state))
  && (!f.pipeline || job.pipeline === f.pipeline)
  && (!f.q || job.input.key.toLowerCase().includes(f.q.toLowerCase()));

/**
 * Merges a poll's jobs into the list: new ones in id order, changed ones in
 * place; one that no longer matches the filter leaves, unless `keep` (the
 * dead letters keep a retried row, so it can be watched as it runs).
 */
function merge(rows, changed, filter, keep, limit) {
  const byId = new Map(rows.map((j) => [j.id, j]));
  for (const job of changed) {
    if (matches(job, filter) || (keep && byId.has(job.id))) byId.set(job.id, job);
    else byId.delete(job.id);
  }
  return [...byId.values()].sort((a, b) => b.id - a.id).slice(0, limit);
}

/**
 * A list of jobs kept up to date without reloading it: one request for the
 * list, then a poll a second asking only for what changed since (the
 * answer's cursor), for the jobs it shows and for new ones.
 */
export function useLiveJobs(filter, { keep = false, limit = 50 } = {}) {
  const [state, setState] = useState({ jobs: null, error: null });
  const key = JSON.stringify(filter);
  useEffect(() => {
    let stopped = false;
    let timer = null;
    let rows = [];
    let cursor = null;
    const controller = new AbortController();
    const base = { state: filter.states?.join(','), pipeline: filter.pipeline, q: filter.q, limit };
    const poll = async () => {
      try {
        if (!document.hidden || !cursor) {
          if (!cursor) {
            const r = await getJson(`/v1/jobs${query(base)}`, { signal: controller.signal });
            rows = r.jobs;
            cursor = r.cursor;
          } else {
            const ids = rows.map((j) => j.id);
            const from = rows.length >= limit ? Math.min(...ids) : 0;
            const r = await getJson(`/v1/jobs${query({ ...base, since: cursor.since, after: cursor.after, from, ids: ids.join(',') })}`, { signal: controller.signal });
            rows = merge(rows, r.jobs, filter, keep, limit);
            cursor = r.cursor;
          }
          if (!stopped) setState({ jobs: rows, error: null });
        }
      } catch (error) {
        if (stopped || error.name === 'AbortError' || error instanceof Unauthorized) return;
        setState({ jobs: rows.length ? rows : null, error });
      }
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    };
    setState({ jobs: null, error: null });
    poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
    };
  }, [key, keep, limit]);
  return state;
}
