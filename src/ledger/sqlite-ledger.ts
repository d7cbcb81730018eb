import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { MediaflowError } from '../errors.js';
import {
  APPENDED, completionOf, endColumns, needsOutbox, orderOf,
  type AttemptRecord, type ClaimRequest, type CompletionRule, type Ended, type EventDraft, type Job, type JobEnd,
  type JobList, type JobState, type Ledger, type NewJob, type OutboxEntry, type OutputOrigin, type OutputRecord, type RenderClaim, type StateCounts,
} from './ledger.js';
import { SqliteJobList } from './sqlite-job-list.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';

interface Row {
  id: number; pipeline: string; fingerprint: string; store: string; key: string; rel_key: string;
  version: string; state: JobState; attempts: number; error: string | null; sha256: string | null;
  outputs: string; deduplicated: number; created_at: number; updated_at: number;
  next_attempt_at: number | null; changed_at: number | null; size: number | null; content_type: string | null; attempt_log: string;
}

function toJob(r: Row): Job {
  return {
    id: r.id, pipeline: r.pipeline, fingerprint: r.fingerprint, store: r.store, key: r.key, relKey: r.rel_key,
    version: r.version, state: r.state, attempts: r.attempts, error: r.error, sha256: r.sha256,
    outputs: JSON.parse(r.outputs) as OutputRecord[], deduplicated: r.deduplicated === 1,
    createdAt: r.created_at, updatedAt: r.updated_at, nextAttemptAt: r.next_attempt_at, changedAt: r.changed_at,
    size: r.size, contentType: r.content_type, attemptLog: JSON.parse(r.attempt_log) as AttemptRecord[],
  };
}

/**
 * The embedded ledger: one SQLite file in the data folder. WAL mode lets
 * `mediaflow status` and `dlq` read and write from another process while
 * `run` works; busy_timeout makes those writers wait instead of failing.
 * better-sqlite3 is synchronous (a statement takes microseconds, less than a
 * thread hop would); the methods are async for the Ledger contract.
 */
export class SqliteLedger implements Ledger {
  private readonly db: Database.Database;
  private readonly file: string;
  /** Every job waiting for a render listens here: no listener limit. */
  private readonly released = new EventEmitter().setMaxListeners(0);

  constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.file = path.join(dataDir, 'ledger.sqlite');
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 10000');
    this.migrate();
    this.jobList = new SqliteJobList((text) => this.sql(text), toJob);
  }

  /** The dashboard's reads (lists, changes, activity), in a file of their own. */
  readonly jobList: JobList;

  get location(): string {
    return this.file;
  }

  /** Applies the migrations this file lacks, each in its own transaction with its version number. */
  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > SQLITE_MIGRATIONS.length) {
      throw new MediaflowError('E_LEDGER', `${this.file}: ledger is version ${current}, newer than this mediaflow knows (${SQLITE_MIGRATIONS.length}); upgrade mediaflow`);
    }
    for (let v = current; v < SQLITE_MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(SQLITE_MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  /** The schema version this ledger file is at (tests, audits). */
  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  async ping(): Promise<boolean> {
    return this.db.open;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** Statements are compiled once and reused: compiling each time doubled the ledger's CPU per job (0.31 -> 0.16 ms). */
  private readonly statements = new Map<string, Database.Statement>();
  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

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
    const released: { sha256: string; fingerprint: string }[] = [];
    const row = this.db.transaction(() => this.setNow(id, fields, released))();
    this.announce(released);
    return row ? toJob(row) : null;
  }

  /** The update of set(), inside a transaction; the claim let go is added to `released`, to announce after the commit. */
  private setNow(id: number, fields: Record<string, unknown> & { state?: JobState }, released: { sha256: string; fingerprint: string }[]): Row | undefined {
    const cols = Object.keys(fields);
    const values = { ...fields, now: Date.now(), id } as Record<string, unknown>;
    if (typeof values.deduplicated === 'boolean') values.deduplicated = values.deduplicated ? 1 : 0;
    // The attempt log is appended to in the same statement: its record costs no statement of its own.
    const sets = cols.map((c) => (c === APPENDED ? `${c} = json_insert(${c}, '$[#]', json(@${c}))` : `${c} = @${c}`));
    const r = this.sql(`UPDATE jobs SET ${sets.join(', ')}, updated_at = @now WHERE id = @id RETURNING *`).get(values) as Row | undefined;
    if (r && fields.state !== undefined && fields.state !== 'running') {
      const claim = this.sql('DELETE FROM render_claims WHERE job_id = ? RETURNING sha256, fingerprint').get(id) as { sha256: string; fingerprint: string } | undefined;
      if (claim) released.push(claim);
      if (r.state === 'done' && r.deduplicated === 1) {
        const record = this.sql('INSERT OR IGNORE INTO output_checksums (sha256, job_id) VALUES (?, ?)');
        for (const o of JSON.parse(r.outputs) as OutputRecord[]) if (o.sha256) record.run(o.sha256, id);
      }
    }
    return r;
  }

  private announce(released: { sha256: string; fingerprint: string }[]): void {
    for (const c of released) this.released.emit('released', c.sha256, c.fingerprint);
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
    const released: { sha256: string; fingerprint: string }[] = [];
    const result = this.db.transaction((): Ended<D> | null => {
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
    }).immediate();
    this.announce(released);
    return result;
  }

  async markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string, attempt?: AttemptRecord): Promise<Job | null> {
    return this.set(id, { state: 'failed', error, next_attempt_at: nextAttemptAt, ...(sha256 && { sha256 }), ...(attempt && { [APPENDED]: JSON.stringify(attempt) }) });
  }

  async markState(id: number, state: JobState): Promise<Job | null> {
    return this.set(id, { state });
  }

  private findRenderNow(sha256: string, fingerprint: string): Job | null {
    // The newest real render first: one made after an older one's outputs were found overwritten is the one to copy.
    const row = this.sql(
      "SELECT * FROM jobs WHERE sha256 = ? AND fingerprint = ? AND state = 'done' ORDER BY deduplicated ASC, updated_at DESC, id DESC LIMIT 1",
    ).get(sha256, fingerprint) as Row | undefined;
    return row ? toJob(row) : null;
  }

  async findRender(sha256: string, fingerprint: string): Promise<Job | null> {
    return this.findRenderNow(sha256, fingerprint);
  }

  /**
   * Claim first, then look for a done render: whoever wins the claim after
   * its holder finished sees that render (the holder's done and its release
   * commit together), so a render that just ended is never made again. One
   * IMMEDIATE transaction: every process on this file takes the write lock.
   */
  async claimRender(c: ClaimRequest): Promise<RenderClaim> {
    return this.db.transaction((): RenderClaim => {
      const of = this.outputWith(c.sha256);
      if (of) return { kind: 'output', of };
      const now = Date.now();
      const won = this.sql(`INSERT INTO render_claims (sha256, fingerprint, job_id, owner, expires_at) VALUES (@sha256, @fingerprint, @jobId, @owner, @expires)
        ON CONFLICT (sha256, fingerprint) DO UPDATE SET job_id = excluded.job_id, owner = excluded.owner, expires_at = excluded.expires_at
        WHERE render_claims.expires_at <= @now OR render_claims.job_id = excluded.job_id OR render_claims.owner = @takeOverFrom
        RETURNING job_id`).get({
        sha256: c.sha256, fingerprint: c.fingerprint, jobId: c.jobId, owner: c.owner, takeOverFrom: c.takeOverFrom ?? null, expires: now + c.leaseMs, now,
      }) as { job_id: number } | undefined;
      if (won) {
        const done = c.rendered === false ? null : this.findRenderNow(c.sha256, c.fingerprint);
        if (!done || done.id === c.jobId) return { kind: 'claimed' };
        this.sql('DELETE FROM render_claims WHERE sha256 = ? AND fingerprint = ? AND job_id = ?').run(c.sha256, c.fingerprint, c.jobId);
        return { kind: 'rendered', job: done };
      }
      const held = this.sql('SELECT job_id, owner, expires_at FROM render_claims WHERE sha256 = ? AND fingerprint = ?')
        .get(c.sha256, c.fingerprint) as { job_id: number; owner: string; expires_at: number };
      return { kind: 'busy', jobId: held.job_id, owner: held.owner, expiresAt: held.expires_at };
    }).immediate();
  }

  async renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): Promise<boolean> {
    return this.sql('UPDATE render_claims SET expires_at = ? WHERE sha256 = ? AND fingerprint = ? AND job_id = ?')
      .run(Date.now() + leaseMs, sha256, fingerprint, jobId).changes === 1;
  }

  async releaseRender(sha256: string, fingerprint: string, jobId: number): Promise<void> {
    if (this.sql('DELETE FROM render_claims WHERE sha256 = ? AND fingerprint = ? AND job_id = ?').run(sha256, fingerprint, jobId).changes) {
      this.released.emit('released', sha256, fingerprint);
    }
  }

  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void {
    this.released.on('released', listener);
    return () => this.released.off('released', listener);
  }

  async recordOutputs(sha256s: readonly string[], jobId: number): Promise<void> {
    const insert = this.sql('INSERT OR IGNORE INTO output_checksums (sha256, job_id) VALUES (?, ?)');
    this.db.transaction(() => { for (const s of sha256s) insert.run(s, jobId); })();
  }

  /** The job that wrote an output with these bytes, if any. */
  private outputWith(sha256: string): OutputOrigin | null {
    const row = this.sql(`SELECT c.job_id AS jobId, j.pipeline AS pipeline, j.key AS key FROM output_checksums c
      LEFT JOIN jobs j ON j.id = c.job_id WHERE c.sha256 = ? LIMIT 1`).get(sha256) as { jobId: number; pipeline: string | null; key: string | null } | undefined;
    return row ? { jobId: row.jobId, pipeline: row.pipeline ?? '?', key: row.key ?? '?' } : null;
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

  async counts(): Promise<StateCounts & { deduplicated: number }> {
    const counts: StateCounts = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
    for (const r of this.sql('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[]) {
      counts[r.state] = r.n;
    }
    const { n } = this.sql("SELECT COUNT(*) AS n FROM jobs WHERE deduplicated = 1 AND state = 'done'").get() as { n: number };
    return { ...counts, deduplicated: n };
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

  async renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]> {
    return this.sql(
      "SELECT sha256, fingerprint, COUNT(*) AS renders FROM jobs WHERE state = 'done' AND deduplicated = 0 GROUP BY sha256, fingerprint",
    ).all() as { sha256: string; fingerprint: string; renders: number }[];
  }
}
