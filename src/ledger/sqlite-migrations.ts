/**
 * Versioned migrations: PRAGMA user_version is the number applied. Version 1
 * is the schema as it stood before versions (every statement IF NOT EXISTS,
 * so a ledger file from then opens as version 0 and becomes 1 unchanged).
 * Never edit a migration that has shipped: add the next one.
 */
export const SQLITE_MIGRATIONS: string[] = [
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
  // 3: completions sent, so that of several workers seeing one input complete, one sends its event.
  `CREATE TABLE completions (
    key TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;`,
  // 4: who sends an outbox entry, so a process starting beside a live one does not send its entries too.
  'ALTER TABLE outbox ADD COLUMN owner TEXT;',
  // 5: an input's completion is decided in the transaction that ends its last job: its jobs are found
  // by (store, key, version), the event carries the input's size and type from the job rows, and
  // the table of completions claimed (the decision before) goes.
  `ALTER TABLE jobs ADD COLUMN size INTEGER;
  ALTER TABLE jobs ADD COLUMN content_type TEXT;
  CREATE INDEX jobs_input ON jobs (store, key, version);
  DROP TABLE completions;`,
  // 6: the newest storage-event sequencer seen per key, so an older event arriving late never supersedes a newer version.
  `CREATE TABLE key_order (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    sequencer TEXT NOT NULL,
    PRIMARY KEY (store, key)
  ) WITHOUT ROWID;`,
  // 7: each attempt's record (its error, its steps' times, the job it copied from), appended by the
  // statement that ends the attempt; and the jobs that ended, by time, for the dashboard's recent
  // activity (partial: the index takes an entry only when a job ends, none on the way there).
  `ALTER TABLE jobs ADD COLUMN attempt_log TEXT NOT NULL DEFAULT '[]';
  CREATE INDEX jobs_ended ON jobs (updated_at) WHERE state IN ('done', 'dead');`,
  // 8: jobs counted by pipeline, state and deduplicated, kept by triggers in the statement that changes a job,
  // so /metrics, `status` and the dashboard read a few rows instead of counting every job: on the main
  // thread, that count took 0.3–0.4 s (by state) and 1.3–1.9 s (by pipeline) at 1,000,000 jobs (bench/ledger-counts.js).
  `CREATE TABLE job_counts (
    pipeline TEXT NOT NULL,
    state TEXT NOT NULL,
    deduplicated INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (pipeline, state, deduplicated)
  ) WITHOUT ROWID;
  INSERT INTO job_counts (pipeline, state, deduplicated, n)
    SELECT pipeline, state, deduplicated, COUNT(*) FROM jobs GROUP BY pipeline, state, deduplicated;
  CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (pipeline, state, deduplicated, n) VALUES (NEW.pipeline, NEW.state, NEW.deduplicated, 1)
      ON CONFLICT (pipeline, state, deduplicated) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER job_counts_update AFTER UPDATE OF pipeline, state, deduplicated ON jobs
    WHEN OLD.pipeline IS NOT NEW.pipeline OR OLD.state IS NOT NEW.state OR OLD.deduplicated IS NOT NEW.deduplicated BEGIN
    UPDATE job_counts SET n = n - 1 WHERE pipeline = OLD.pipeline AND state = OLD.state AND deduplicated = OLD.deduplicated;
    INSERT INTO job_counts (pipeline, state, deduplicated, n) VALUES (NEW.pipeline, NEW.state, NEW.deduplicated, 1)
      ON CONFLICT (pipeline, state, deduplicated) DO UPDATE SET n = n + 1;
  END;
  CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE pipeline = OLD.pipeline AND state = OLD.state AND deduplicated = OLD.deduplicated;
  END;`,
];
