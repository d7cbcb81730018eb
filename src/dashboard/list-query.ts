import { BadRequest } from '../events/job-request.js';
import { JOB_STATES, type JobChanges, type JobQuery, type JobState } from '../ledger/ledger.js';
import { MAX_LIST } from '../ledger/job-list.js';

/** What GET /v1/jobs was asked: a list, or (with `since`) what changed in it since the last poll. */
export interface ListRequest {
  query: JobQuery;
  changes: JobChanges | null;
}

const ID = /^\d{1,15}$/;

function one(raw: Record<string, unknown>, name: string): string | undefined {
  const v = raw[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadRequest(`Expected \`${name}\` once in the query string, got it ${Array.isArray(v) ? v.length : 0} times`);
  return v;
}

function int(raw: Record<string, unknown>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = one(raw, name);
  if (v === undefined) return undefined;
  const n = ID.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw new BadRequest(`Expected \`${name}\` to be an integer from ${min} to ${max}, got \`${v.slice(0, 40)}\``);
  return n;
}

function states(v: string): JobState[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) {
    if (!JOB_STATES.includes(s as JobState)) {
      throw new BadRequest(`Expected \`state\` to be a comma-separated list of ${JOB_STATES.join(', ')}, got \`${s.slice(0, 40)}\``);
    }
  }
  return list as JobState[];
}

function ids(v: string): number[] {
  const list = v ? v.split(',') : [];
  if (list.length > MAX_LIST) throw new BadRequest(`Expected at most ${MAX_LIST} ids in \`ids\`, got ${list.length}`);
  return list.map((s) => {
    if (!ID.test(s)) throw new BadRequest(`Expected \`ids\` to be a comma-separated list of job ids, got \`${s.slice(0, 40)}\``);
    return Number(s);
  });
}

function required<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new BadRequest(`a poll (\`since\`) needs \`${name}\`: the last answer's cursor gives both`);
  return v;
}

/**
 * Reads GET /v1/jobs's query string: `state` (comma-separated), `pipeline`,
 * `q` (part of the key), `before` (an id: the next page), `limit`; and for a
 * poll `since` (the last answer's cursor), `after`, `from` and `ids` (the
 * jobs the list shows). Anything else, or a bad value, is a 400 naming it.
 */
export function readListRequest(raw: Record<string, unknown>): ListRequest {
  const known = new Set(['state', 'pipeline', 'q', 'before', 'limit', 'since', 'after', 'from', 'ids']);
  for (const name of Object.keys(raw)) {
    if (!known.has(name)) throw new BadRequest(`unknown query parameter \`${name.slice(0, 40)}\` (known: ${[...known].join(', ')})`);
  }
  const state = one(raw, 'state');
  const q = one(raw, 'q');
  if (q !== undefined && q.length > 200) throw new BadRequest(`Expected \`q\` to be at most 200 characters, got ${q.length}`);
  const query: JobQuery = {
    ...(state && { states: states(state) }),
    ...(one(raw, 'pipeline') !== undefined && { pipeline: one(raw, 'pipeline') }),
    ...(q && { keyContains: q }),
    ...(raw.before !== undefined && { beforeId: int(raw, 'before', 1) }),
    limit: int(raw, 'limit', 1, MAX_LIST) ?? 50,
  };
  const since = int(raw, 'since', 0);
  if (since === undefined) {
    for (const name of ['after', 'from', 'ids']) if (raw[name] !== undefined) throw new BadRequest(`\`${name}\` goes with \`since\` (a poll), which is missing`);
    return { query, changes: null };
  }
  return {
    query,
    changes: { since, afterId: required(int(raw, 'after', 0), 'after'), fromId: int(raw, 'from', 0) ?? 0, ids: ids(one(raw, 'ids') ?? '') },
  };
}
