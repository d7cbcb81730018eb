/**
 * The PostgreSQL ledger's kept counts (migration 8): job_counts holds the
 * jobs by pipeline, state and deduplicated as of the last fold, and
 * job_count_changes the +1 and -1 rows that jobs' changes inserted since.
 * A read sums both in one snapshot, so it is exact whatever a fold is
 * doing; the fold keeps the changes few. Reads cost a few rows, however
 * many jobs there are (a count of every job took 111-143 ms at 1,000,000).
 */

/** Every (pipeline, state, deduplicated) with its number of jobs (0 for one that had jobs). */
export const KEPT_COUNTS = `SELECT pipeline, state, deduplicated, SUM(n)::int AS n FROM (
    SELECT pipeline, state, deduplicated, n FROM job_counts
    UNION ALL SELECT pipeline, state, deduplicated, d FROM job_count_changes) kept
  GROUP BY pipeline, state, deduplicated`;

/**
 * Moves the changes into the counts, by whoever gets the try-lock (the
 * others go on: their reads are exact anyway). DELETE ... RETURNING takes
 * each change once, however many fold at once; the counts are updated in
 * key order. Changes of transactions still open are not visible yet, and
 * are folded next time.
 */
export const FOLD_COUNTS = `WITH turn AS (SELECT pg_try_advisory_xact_lock(hashtext('mediaflow job counts ' || current_schema())) AS mine),
  moved AS (DELETE FROM job_count_changes WHERE (SELECT mine FROM turn) RETURNING pipeline, state, deduplicated, d)
  INSERT INTO job_counts AS c (pipeline, state, deduplicated, n)
    SELECT pipeline, state, deduplicated, SUM(d) FROM moved GROUP BY pipeline, state, deduplicated ORDER BY pipeline, state, deduplicated
  ON CONFLICT (pipeline, state, deduplicated) DO UPDATE SET n = c.n + excluded.n`;

/** How often a process folds: about five change rows a job (one new, two a change of state), so at 100 jobs a second a read sums some 5,000 rows at most. */
export const FOLD_EVERY_MS = 10_000;
