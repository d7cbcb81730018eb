import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { MediaflowError } from '../errors.js';
import type { Job, JobState, NewJob, OutputRecord, RenderClaim, StateCounts } from './ledger.js';

/**
 * Versioned migrations: PRAGMA user_version is the number applied. Version 1
 * is the schema as it stood before versions (every statement IF NOT EXISTS,
 * so a ledger file from then opens as version 0 and becomes 1 unchanged).
 * Never edit a migration that has shipped: add the next one.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    rel_key TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    sha256 TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    deduplicated INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER,
    changed_at INTEGER,
    UNIQUE (pipeline, fingerprint, store, key, version)
  );
  CREATE INDEX IF NOT EXISTS jobs_render ON jobs (sha256, fingerprint, state);
  CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
  CREATE INDEX IF NOT EXISTS jobs_key ON jobs (pipeline, store, key);
  CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    manifests TEXT NOT NULL,
    targets TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );`,
  // 2: render claims (one render per content even when its copies run at once) and the
  // checksums of every output written (an output that comes back as an input is skipped).
  `CREATE TABLE render_claims (
    sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (sha256, fingerprint)
  );
  CREATE TABLE output_checksums (
    sha256 TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (sha256, job_id)
  ) WITHOUT ROWID;
  INSERT OR IGNORE INTO output_checksums (sha256, job_id)
    SELECT json_extract(o.value, '$.sha256'), j.id FROM jobs j, json_each(j.outputs) o
    WHERE j.state = 'done' AND json_extract(o.value, '$.sha256') IS NOT NULL;`,
];

/**
 * A completion event still to write or send: its body byte for byte (the
 * manifests' contents and what is signed), the manifests to write and the
 * notify targets not yet delivered to.
 */
export interface OutboxEntry<M = unknown, T = unknown> {
  id: number;
  eventId: string;
  body: string;
  manifests: M[];
  targets: T[];
  createdAt: number;
}

interface Row {
  id: number; pipeline: string; fingerprint: string; store: string; key: string; rel_key: string;
  version: string; state: JobState; attempts: number; error: string | null; sha256: string | null;
  outputs: string; deduplicated: number; created_at: number; updated_at: number;
  next_attempt_at: number | null; changed_at: number | null;
}

function toJob(r: Row): Job {
  return {
    id: r.id, pipeline: r.pipeline, fingerprint: r.fingerprint, store: r.store, key: r.key, relKey: r.rel_key,
    version: r.version, state: r.state, attempts: r.attempts, error: r.error, sha256: r.sha256,
    outputs: JSON.parse(r.outputs) as OutputRecord[], deduplicated: r.deduplicated === 1,
    createdAt: r.created_at, updatedAt: r.updated_at, nextAttemptAt: r.next_attempt_at, changedAt: r.changed_at,
  };
}

/**
 * The embedded ledger: one SQLite file in the data folder. WAL mode lets
 * `mediaflow status` and `dlq` read and write from another process while
 * `run` works; busy_timeout makes those writers wait instead of failing.
 */
export class SqliteLedger {
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
  }

  /** Applies the migrations this file lacks, each in its own transaction with its version number. */
  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new MediaflowError('E_LEDGER', `${this.file}: ledger is version ${current}, newer than this mediaflow knows (${MIGRATIONS.length}); upgrade mediaflow`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  /** The schema version this ledger file is at (tests, audits). */
  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  close(): void {
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

  get open(): boolean {
    return this.db.open;
  }

  /** Returns the job for this key version, creating it queued when new. */
  upsert(j: NewJob): { job: Job; created: boolean } {
    const now = Date.now();
    // One statement for a new job (RETURNING gives its row); a known one is read back.
    const inserted = this.sql(
      `INSERT INTO jobs (pipeline, fingerprint, store, key, rel_key, version, state, created_at, updated_at, changed_at)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
       ON CONFLICT (pipeline, fingerprint, store, key, version) DO NOTHING RETURNING *`,
    ).get(j.pipeline, j.fingerprint, j.store, j.key, j.relKey, j.version, now, now, j.changedAt ?? null) as Row | undefined;
    if (inserted) return { job: toJob(inserted), created: true };
    const row = this.sql(
      'SELECT * FROM jobs WHERE pipeline = ? AND fingerprint = ? AND store = ? AND key = ? AND version = ?',
    ).get(j.pipeline, j.fingerprint, j.store, j.key, j.version) as Row;
    return { job: toJob(row), created: false };
  }

  get(id: number): Job | null {
    const row = this.sql('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  /**
   * Updates a job and returns it as it is now (RETURNING: no second query to
   * read it back). A job that leaves 'running' lets go of its render claim in
   * the same transaction, so no one waits for a render that is over.
   */
  private set(id: number, fields: Record<string, unknown> & { state?: JobState }): Job | null {
    const cols = Object.keys(fields);
    const update = this.sql(`UPDATE jobs SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @now WHERE id = @id RETURNING *`);
    let released: { sha256: string; fingerprint: string } | undefined;
    const row = this.db.transaction(() => {
      const r = update.get({ ...fields, now: Date.now(), id }) as Row | undefined;
      if (r && fields.state !== undefined && fields.state !== 'running') {
        released = this.sql('DELETE FROM render_claims WHERE job_id = ? RETURNING sha256, fingerprint').get(id) as typeof released;
        if (r.state === 'done') {
          const record = this.sql('INSERT OR IGNORE INTO output_checksums (sha256, job_id) VALUES (?, ?)');
          for (const o of JSON.parse(r.outputs) as OutputRecord[]) if (o.sha256) record.run(o.sha256, id);
        }
      }
      return r;
    })();
    if (released) this.released.emit('released', released.sha256, released.fingerprint);
    return row ? toJob(row) : null;
  }

  /** Starts an attempt of a job that is still to do; null when it is not (done, dead, superseded or gone meanwhile). */
  startAttempt(id: number): Job | null {
    const row = this.sql(
      `UPDATE jobs SET state = 'running', attempts = attempts + 1, next_attempt_at = NULL, updated_at = ?
       WHERE id = ? AND state IN ('queued', 'running', 'failed') RETURNING *`,
    ).get(Date.now(), id) as Row | undefined;
    return row ? toJob(row) : null;
  }

  /** sha256: the content checksum, recorded with the outcome (one write a job fewer than recording it apart). */
  markDone(id: number, outputs: OutputRecord[], deduplicated: boolean, sha256?: string): Job | null {
    return this.set(id, { state: 'done', outputs: JSON.stringify(outputs), deduplicated: deduplicated ? 1 : 0, error: null, ...(sha256 && { sha256 }) });
  }

  markFailed(id: number, error: string, nextAttemptAt: number, sha256?: string): Job | null {
    return this.set(id, { state: 'failed', error, next_attempt_at: nextAttemptAt, ...(sha256 && { sha256 }) });
  }

  markDead(id: number, error: string, sha256?: string): Job | null {
    return this.set(id, { state: 'dead', error, next_attempt_at: null, ...(sha256 && { sha256 }) });
  }

  /** The input is one of mediaflow's own outputs (`reason` says whose): nothing is made from it. */
  markSkipped(id: number, reason: string, sha256: string): Job | null {
    return this.set(id, { state: 'skipped', error: reason, next_attempt_at: null, sha256 });
  }

  markState(id: number, state: JobState): Job | null {
    return this.set(id, { state });
  }

  /** A job already done for the same content and fingerprint, whose outputs can be copied. */
  findRender(sha256: string, fingerprint: string): Job | null {
    const row = this.sql(
      "SELECT * FROM jobs WHERE sha256 = ? AND fingerprint = ? AND state = 'done' ORDER BY deduplicated ASC, updated_at DESC, id DESC LIMIT 1",
    ).get(sha256, fingerprint) as Row | undefined;
    return row ? toJob(row) : null;
  }

  /**
   * One render per (content, fingerprint), decided here in one IMMEDIATE
   * transaction (every process on this file takes its write lock, so two
   * claims never both win): an earlier render that is done is returned to
   * copy from (unless `rendered` is false: its outputs were found gone), else
   * the claim goes to this job unless another job holds one that has not
   * expired and was not handed over by `takeOverFrom` (its owner is gone).
   */
  claimRender(c: { sha256: string; fingerprint: string; jobId: number; owner: string; leaseMs: number; rendered?: boolean; takeOverFrom?: string }): RenderClaim {
    return this.db.transaction((): RenderClaim => {
      if (c.rendered !== false) {
        const done = this.findRender(c.sha256, c.fingerprint);
        if (done && done.id !== c.jobId) return { kind: 'rendered', job: done };
      }
      const now = Date.now();
      const won = this.sql(`INSERT INTO render_claims (sha256, fingerprint, job_id, owner, expires_at) VALUES (@sha256, @fingerprint, @jobId, @owner, @expires)
        ON CONFLICT (sha256, fingerprint) DO UPDATE SET job_id = excluded.job_id, owner = excluded.owner, expires_at = excluded.expires_at
        WHERE render_claims.expires_at <= @now OR render_claims.job_id = excluded.job_id OR render_claims.owner = @takeOverFrom
        RETURNING job_id`).get({ ...c, takeOverFrom: c.takeOverFrom ?? null, expires: now + c.leaseMs, now }) as { job_id: number } | undefined;
      if (won) return { kind: 'claimed' };
      const held = this.sql('SELECT job_id, owner, expires_at FROM render_claims WHERE sha256 = ? AND fingerprint = ?')
        .get(c.sha256, c.fingerprint) as { job_id: number; owner: string; expires_at: number };
      return { kind: 'busy', jobId: held.job_id, owner: held.owner, expiresAt: held.expires_at };
    }).immediate();
  }

  /** Extends a claim this job holds; false when it no longer holds it (expired and taken over). */
  renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): boolean {
    return this.sql('UPDATE render_claims SET expires_at = ? WHERE sha256 = ? AND fingerprint = ? AND job_id = ?')
      .run(Date.now() + leaseMs, sha256, fingerprint, jobId).changes === 1;
  }

  /** Lets go of a claim without finishing the job (its render was not needed after all). */
  releaseRender(sha256: string, fingerprint: string, jobId: number): void {
    if (this.sql('DELETE FROM render_claims WHERE sha256 = ? AND fingerprint = ? AND job_id = ?').run(sha256, fingerprint, jobId).changes) {
      this.released.emit('released', sha256, fingerprint);
    }
  }

  /**
   * Calls `listener` when a claim of this process ends (done, failed, let go),
   * so a job waiting for that render need not wait for its next poll; claims of
   * other processes are seen by polling. Returns the unsubscribe.
   */
  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void {
    this.released.on('released', listener);
    return () => this.released.off('released', listener);
  }

  /**
   * Records the checksum of an output before it is written, so it is known
   * as mediaflow's own even if it is read back before its job is done.
   */
  recordOutput(sha256: string, jobId: number): void {
    this.sql('INSERT OR IGNORE INTO output_checksums (sha256, job_id) VALUES (?, ?)').run(sha256, jobId);
  }

  /** A job that wrote an output with these bytes, if any: such an input came from mediaflow itself. */
  outputWith(sha256: string): { jobId: number; pipeline: string; key: string } | null {
    const row = this.sql(`SELECT c.job_id AS jobId, j.pipeline AS pipeline, j.key AS key FROM output_checksums c
      LEFT JOIN jobs j ON j.id = c.job_id WHERE c.sha256 = ? LIMIT 1`).get(sha256) as { jobId: number; pipeline: string | null; key: string | null } | undefined;
    return row ? { jobId: row.jobId, pipeline: row.pipeline ?? '?', key: row.key ?? '?' } : null;
  }

  /** Records a completion event before anything of it is written or sent; returns its id. */
  addToOutbox(eventId: string, body: string, manifests: unknown[], targets: unknown[]): number {
    return Number(this.sql('INSERT INTO outbox (event_id, body, manifests, targets, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(eventId, body, JSON.stringify(manifests), JSON.stringify(targets), Date.now()).lastInsertRowid);
  }

  /** What is left of an outbox entry: the manifests and targets still to do; nothing left removes it. */
  updateOutbox(id: number, manifests: unknown[], targets: unknown[]): void {
    if (manifests.length === 0 && targets.length === 0) this.sql('DELETE FROM outbox WHERE id = ?').run(id);
    else this.sql('UPDATE outbox SET manifests = ?, targets = ? WHERE id = ?').run(JSON.stringify(manifests), JSON.stringify(targets), id);
  }

  /** Completion events an earlier run left unwritten or unsent (stopped or killed meanwhile), oldest first. */
  outbox<M, T>(): OutboxEntry<M, T>[] {
    return (this.sql('SELECT * FROM outbox ORDER BY id').all() as { id: number; event_id: string; body: string; manifests: string; targets: string; created_at: number }[])
      .map((r) => ({ id: r.id, eventId: r.event_id, body: r.body, manifests: JSON.parse(r.manifests) as M[], targets: JSON.parse(r.targets) as T[], createdAt: r.created_at }));
  }

  /** The jobs of one version of one source key in one pipeline (one per fingerprint the pipeline had). */
  jobsOfVersion(pipeline: string, store: string, key: string, version: string): Job[] {
    return (this.sql('SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key = ? AND version = ?')
      .all(pipeline, store, key, version) as Row[]).map(toJob);
  }

  /** Done jobs of one source key, for delete-outputs on removal. */
  doneForKey(pipeline: string, store: string, key: string): Job[] {
    return (this.sql("SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key = ? AND state = 'done'")
      .all(pipeline, store, key) as Row[]).map(toJob);
  }

  /**
   * Done jobs of every source key below a folder (`folder/...`, any depth), for
   * delete-outputs when the folder leaves. A key range rather than LIKE, so
   * the (pipeline, store, key) index serves it: '0' is the character after '/'.
   */
  doneUnderFolder(pipeline: string, store: string, folder: string): Job[] {
    return (this.sql("SELECT * FROM jobs WHERE pipeline = ? AND store = ? AND key > ? AND key < ? AND state = 'done'")
      .all(pipeline, store, `${folder}/`, `${folder}0`) as Row[]).map(toJob);
  }

  /**
   * Jobs to (re)queue. `since` (ms): only those changed since then, or whose
   * retry fell due since then; 0 for all. A service polls with `since`, so a
   * poll costs nothing when the jobs it holds are the only unfinished ones.
   */
  unfinished(limit = 1000, afterId = 0, since = 0): Job[] {
    const rows = since === 0
      ? this.sql("SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > ? ORDER BY id LIMIT ?").all(afterId, limit)
      : this.sql(`SELECT * FROM jobs WHERE state IN ('queued','running','failed') AND id > @afterId
          AND (updated_at >= @since OR (state = 'failed' AND next_attempt_at >= @since AND next_attempt_at <= @now))
          ORDER BY id LIMIT @limit`).all({ afterId, limit, since, now: Date.now() });
    return (rows as Row[]).map(toJob);
  }

  counts(): StateCounts & { deduplicated: number } {
    const counts: StateCounts = { queued: 0, running: 0, done: 0, failed: 0, dead: 0, superseded: 0, removed: 0, skipped: 0 };
    for (const r of this.sql('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[]) {
      counts[r.state] = r.n;
    }
    const { n } = this.sql("SELECT COUNT(*) AS n FROM jobs WHERE deduplicated = 1 AND state = 'done'").get() as { n: number };
    return { ...counts, deduplicated: n };
  }

  list(state: JobState, limit = 100): Job[] {
    return (this.sql('SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC LIMIT ?').all(state, limit) as Row[]).map(toJob);
  }

  /** Puts dead letters back in the queue with a fresh attempt count; returns how many. */
  retryDead(id?: number): number {
    const now = Date.now();
    const stmt = id === undefined
      ? this.sql("UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = ? WHERE state = 'dead'")
      : this.sql("UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = ? WHERE state = 'dead' AND id = ?");
    return (id === undefined ? stmt.run(now) : stmt.run(now, id)).changes;
  }

  /** How many times each (content, fingerprint) was actually rendered: for tests and audits. */
  renderCounts(): { sha256: string; fingerprint: string; renders: number }[] {
    return this.sql(
      "SELECT sha256, fingerprint, COUNT(*) AS renders FROM jobs WHERE state = 'done' AND deduplicated = 0 GROUP BY sha256, fingerprint",
    ).all() as { sha256: string; fingerprint: string; renders: number }[];
  }
}
