import type { AttemptRecord, Job, JobState, NewJob, OutputRecord, StateCounts } from './job.js';
import { APPENDED, completionOf, endColumns, needsOutbox, type CompletionRule, type Ended, type EventDraft, type JobEnd, type OutboxEntry } from './job-end.js';
import type { JobList } from './job-list.js';
import { orderOf, type Ledger } from './ledger.js';
import { toJob, type Row } from './sqlite-file.js';
import { SqliteJobList } from './sqlite-job-list.js';
import { SqliteRenderClaims, type Released } from './sqlite-render-claims.js';

/**
 * The embedded ledger: one SQLite file in the data folder (SqliteFile), its
 * render claims (SqliteRenderClaims), and here its jobs: their lifecycle,
 * the end that completes an input with its outbox row, and the reads.
 * better-sqlite3 is synchronous (a statement takes microseconds, less than a
 * thread hop would); the methods are async for the Ledger contract.
 */
export class SqliteLedger extends SqliteRenderClaims implements Ledger {
  /** The dashboard's reads (lists, changes, activity), in a file of their own. */
  readonly jobList: JobList = new SqliteJobList((text) => this.sql(text), toJob);

  async upsert(j: NewJob): Promise<{ job: Job; created: boolean }> {
    const now = Date.now();
    // One statement for a new job (RETURNING gives its row); a known one is read back.
    const inserted = this.sql(
      `INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, created_at, updated_at, changed_at, size, content_type)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)
       ON CONFLICT (pipeline, fingerprint, store, key, version) DO NOTHING RETURNING *`,
    ).get(j.pipeline, j.fingerprint, j.store, j.key, j.relKey, j.version, now, now, j.changedAt ?? null, j.size ?? null, j.contentType ?? null) as Row | undefined;
    if (inserted) return { job: toJob(inserted), created: true };
    const row = this.sql(
      'SELECT * FROM jobs WHERE pipeline = ? AND fingerprint = ? AND store = ? AND key = ? AND version = ?',
    ).get(j.pipeline, j.fingerprint, j.store, j.key, j.version) as Row;
    return { job: toJob(row), created: false };
  }

  async get(id: number): Promise<Job | null> {
    const row = this.sql('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  /**
   * Updates a job and returns it as it is now (RETURNING: no second query to
   * read it back). A job that leaves 'running' lets go of its render claim in
   * the same transaction, so no one waits for a render that is over; a
   * copied job's outputs are known by checksum from then on (a render's were
   * recorded before they were written, see recordOutputs).
   */
  private set(id: number, fields: Record<string, unknown> & { state?: JobState }): Job | null {
    const released: Released[] = [];
    const row = this.transaction(() => this.setNow(id, fields, released));
    this.announce(released);
    return row ? toJob(row) : null;
  }

  /** The update of set(), inside a transaction; the claim let go is added to `released`, to announce after the commit. */
  private setNow(id: number, fields: Record<string, unknown> & { state?: JobState }, released: Released[]): Row | undefined {
    const cols = Object.keys(fields);
    const values = { ...fields, now: Date.now(), id } as Record<string, unknown>;
    if (typeof values.deduplicated === 'boolean') values.deduplicated = values.deduplicated ? 1 : 0;
    // The attempt log is appended to in the same statement: its record costs no statement of its own.
    const sets = cols.map((c) => (c === APPENDED ? `${c} = json_insert(${c}, '$[#]', json(@${c}))` : `${c} = @${c}`));
    const r = this.sql(`UPDATE jobs SET ${sets.join(', ')}, updated_at = @now WHERE id = @id RETURNING *`).get(values) as Row | undefined;
    if (r && fields.state !== undefined && fields.state !== 'running') {
      const claim = this.sql('DELETE FROM render_claims WHERE job_id = ? RETURNING sha256, fingerprint').get(id) as Released | undefined;
      if (claim) released.push(claim);
      if (r.state === 'done' && r.deduplicated === 1) {
        const record = this.sql('INSERT OR IGNORE INTO output_checksums (sha256, job_id) VALUES (?, ?)');
        for (const o of JSON.parse(r.outputs) as OutputRecord[]) if (o.sha256) record.run(o.sha256, id);
      }
    }
    return r;
  }

  async startAttempt(id: number, o: { alone?: boolean; staleAfterMs?: number } = {}): Promise<Job | null | 'key-busy'> {
    const now = Date.now();
    if (!o.alone) {
      const row = this.sql(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, next_attempt_at = NULL, updated_at = ?
         WHERE id = ? AND state IN ('queued', 'running', 'failed') RETURNING *`,
      ).get(now, id) as Row | undefined;
      return row ? toJob(row) : null;
    }
    const row = this.sql(
      `UPDATE jobs SET state = 'running', attempts = attempts + 1, next_attempt_at = NULL, updated_at = @now
       WHERE id = @id AND state IN ('queued', 'running', 'failed') AND NOT EXISTS (
         SELECT 1 FROM jobs o WHERE o.pipeline = jobs.pipeline AND o.store = jobs.store AND o.key = jobs.key
           AND o.state = 'running' AND o.id <> jobs.id AND o.updated_at > @fresh)
       RETURNING *`,
    ).get({ now, id, fresh: now - (o.staleAfterMs ?? 600_000) }) as Row | undefined;
    if (row) return toJob(row);
    const state = (this.sql('SELECT state FROM jobs WHERE id = ?').get(id) as { state: JobState } | undefined)?.state;
    return state === 'queued' || state === 'running' || state === 'failed' ? 'key-busy' : null;
  }

  async supersedeOthers(job: Job): Promise<number> {
    return this.sql(`UPDATE jobs SET state = 'superseded', updated_at = ? WHERE pipeline = ? AND store = ? AND key = ? AND id <> ?
      AND state IN ('queued', 'failed')`).run(Date.now(), job.pipeline, job.store, job.key, job.id).changes;
  }

  /**
   * One IMMEDIATE transaction (the write lock first, so the input's jobs read
   * here cannot change before the commit): the end, the claim let go, and
   * the completion with its outbox row.
   */
  async finish<D extends EventDraft>(id: number, end: JobEnd, rule?: CompletionRule<D>): Promise<Ended<D> | null> {
    const released: Released[] = [];
    const result = this.transaction((): Ended<D> | null => {
      const before = (this.sql('SELECT state FROM jobs WHERE id = ?').get(id) as { state: JobState } | undefined)?.state;
      const row = before === undefined ? undefined : this.setNow(id, endColumns(end), released);
      if (!row) return null;
      const job = toJob(row);
      if (!rule) return { job, completed: null };
      const input = (this.sql('SELECT * FROM jobs WHERE store = ? AND key = ? AND version = ? ORDER BY id').all(row.store, row.key, row.version) as Row[]).map(toJob);
      const c = completionOf(rule, input, before!);
      if (!c) return { job, completed: null };
      const outboxId = needsOutbox(c.draft) ? this.addToOutbox(c.draft) : null;
      return { job, completed: { ...c, outboxId } };
    }, 'immediate');
    this.announce(released);
    return result;
  }

  async markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string, attempt?: AttemptRecord): Promise<Job | null> {
    return this.set(id, { state: 'failed', error, next_attempt_at: nextAttemptAt, ...(sha256 && { sha256 }), ...(attempt && { [APPENDED]: JSON.stringify(attempt) }) });
  }

  async markState(id: number, state: JobState): Promise<Job | null> {
    return this.set(id, { state });
  }

  private addToOutbox(d: EventDraft): number {
    return Number(this.sql('INSERT INTO outbox (event_id, body, manifests, targets, created_at, owner) VALUES (?, ?, ?, ?, ?, ?)')
      .run(d.eventId, d.body, JSON.stringify(d.manifests), JSON.stringify(d.targets), Date.now(), d.owner).lastInsertRowid);
  }

  async takeOutbox(id: number, from: string | null, to: string): Promise<boolean> {
    return this.sql('UPDATE outbox SET owner = ? WHERE id = ? AND owner IS ?').run(to, id, from).changes === 1;
  }

  async updateOutbox(id: number, manifests: unknown[], targets: unknown[]): Promise<void> {
    if (manifests.length === 0 && targets.length === 0) this.sql('DELETE FROM outbox WHERE id = ?').run(id);
    else this.sql('UPDATE outbox SET manifests = ?, targets = ? WHERE id = ?').run(JSON.stringify(manifests), JSON.stringify(targets), id);
  }

  async outbox<M, T>(): Promise<OutboxEntry<M, T>[]> {
    return (this.sql('SELECT * FROM outbox ORDER BY id').all() as { id: number; event_id: string; body: string; manifests: string; targets: string; created_at: number; owner: string | null }[])
      .map((r) => ({ id: r.id, eventId: r.event_id, body: r.body, manifests: JSON.parse(r.manifests) as M[], targets: JSON.parse(r.targets) as T[], createdAt: r.created_at, owner: r.owner }));
  }

  async seeSequencer(store: string, key: string, sequencer: string): Promise<boolean> {
    const seq = orderOf(sequencer);
    const row = this.sql(`INSERT INTO key_order (store, key, sequencer) VALUES (?, ?, ?)
      ON CONFLICT (store, key) DO UPDATE SET sequencer = excluded.sequencer WHERE excluded.sequencer > key_order.sequencer
      RETURNING sequencer`).get(store, key, seq) as { sequencer: string } | undefined;
    // No row returned: the stored one is newer or the same.
    return row !== undefined || (this.sql('SELECT sequencer FROM key_order WHERE store = ? AND key = ?').get(store, key) as { sequencer: string }).sequencer === seq;
  }

  async jobsOfVersion(pipeline: string, store: string, key: string, version: string): Promise<Job[]> {
    return (this.sql('SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key = ? AND version = ?')
      .all(pipeline, store, key, version) as Row[]).map(toJob);
  }

  async doneForKey(pipeline: string, store: string, key: string): Promise<Job[]> {
    return (this.sql("SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key = ? AND state = 'done'")
      .all(pipeline, store, key) as Row[]).map(toJob);
  }

  /** A key range rather than LIKE, so the (pipeline, store, key) index serves it: '0' is the character after '/'. */
  async doneUnderFolder(pipeline: string, store: string, folder: string): Promise<Job[]> {
    return (this.sql("SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key > ? AND key < ? AND state = 'done'")
      .all(pipeline, store, `${folder}/`, `${folder}0`) as Row[]).map(toJob);
  }

  /** A service polls with `since`, so a poll costs nothing when the jobs it holds are the only unfinished ones. */
  async unfinished(limit = 1000, afterId = 0, since = 0): Promise<Job[]> {
    const rows = since === 0
      ? this.sql("SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > ? ORDER BY id LIMIT ?").all(afterId, limit)
      : this.sql(`SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > @afterId
          AND (updated_at >= @since OR (state = 'failed' AND next_attempt_at >= @since AND next_attempt_at <= @now))
          ORDER BY id LIMIT @limit`).all({ afterId, limit, since, now: Date.now() });
    return (rows as Row[]).map(toJob);
  }

  /** From the counts the ledger keeps (job_counts, migration 8): a few rows, however many jobs. */
  async counts(): Promise<StateCounts & { deduplicated: number }> {
    const counts: StateCounts = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
    let deduplicated = 0;
    for (const r of this.sql('SELECT state, deduplicated, SUM(n) AS n FROM job_counts GROUP BY state, deduplicated').all() as { state: JobState; deduplicated: number; n: number }[]) {
      counts[r.state] += r.n;
      if (r.state === 'done' && r.deduplicated === 1) deduplicated = r.n;
    }
    return { ...counts, deduplicated };
  }

  async list(state: JobState, limit = 100): Promise<Job[]> {
    return (this.sql('SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC LIMIT ?').all(state, limit) as Row[]).map(toJob);
  }

  async retryDead(which?: number | { pipeline: string }): Promise<number> {
    const retry = "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = ? WHERE state = 'dead'";
    const now = Date.now();
    if (which === undefined) return this.sql(retry).run(now).changes;
    if (typeof which === 'number') return this.sql(`${retry} AND id = ?`).run(now, which).changes;
    return this.sql(`${retry} AND pipeline = ?`).run(now, which.pipeline).changes;
  }
}
