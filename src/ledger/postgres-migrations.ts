/**
 * The PostgreSQL ledger's migrations, in order; mediaflow_migrations holds
 * the versions applied. The same tables as the SQLite ledger. Never edit a
 * migration that has shipped: add the next one.
 */
export const POSTGRES_MIGRATIONS: string[] = [
  // 1: jobs (one row per pipeline, fingerprint, key version) and the completion outbox.
  // Keys sort bytewise (COLLATE "C"), so a folder's keys are one index range whatever the database's locale.
  `CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    store TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    rel_key TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    sha256 TEXT,
    outputs JSONB NOT NULL DEFAULT '[]',
    deduplicated BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    next_attempt_at BIGINT,
    changed_at BIGINT,
    UNIQUE (pipeline, fingerprint, store, key, version)
  );
  CREATE INDEX jobs_render ON jobs (sha256, fingerprint, state);
  CREATE INDEX jobs_state ON jobs (state, id);
  CREATE INDEX jobs_key ON jobs (pipeline, store, key);
  CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    manifests JSONB NOT NULL,
    targets JSONB NOT NULL,
    created_at BIGINT NOT NULL
  );`,
  // 2: render claims (one render per content across every worker) and the checksums of every output written.
  `CREATE TABLE render_claims (
    sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (sha256, fingerprint)
  );
  CREATE INDEX render_claims_job ON render_claims (job_id);
  CREATE TABLE output_checksums (
    sha256 TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    PRIMARY KEY (sha256, job_id)
  );`,
  // 3: completions sent, so that of several workers seeing one input complete, one sends its event.
  `CREATE TABLE completions (
    key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
  );`,
  // 4: who sends an outbox entry, so a process starting beside a live one does not send its entries too.
  'ALTER TABLE outbox ADD COLUMN owner TEXT;',
  // 5: an input's completion is decided in the transaction that ends its last job: its jobs are found
  // (and locked) by (store, key, version), the event carries the input's size and type from the job
  // rows, and the table of completions claimed (the decision before) goes.
  `ALTER TABLE jobs ADD COLUMN size BIGINT, ADD COLUMN content_type TEXT;
  CREATE INDEX jobs_input ON jobs (store, key, version);
  DROP TABLE completions;`,
  // 6: the newest storage-event sequencer seen per key, so an older event arriving late never supersedes a newer version.
  `CREATE TABLE key_order (
    store TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    sequencer TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (store, key)
  );`,
  // 7: each attempt's record (its error, its steps' times, the job it copied from), appended by the
  // statement that ends the attempt; and the jobs that ended, by time, for the dashboard's recent
  // activity (partial: the index takes an entry only when a job ends, none on the way there).
  `ALTER TABLE jobs ADD COLUMN attempt_log JSONB NOT NULL DEFAULT '[]';
  CREATE INDEX jobs_ended ON jobs (updated_at) WHERE state IN ('done', 'dead');`,
  // 8: the jobs counted by pipeline, state and deduplicated without counting every job on each read
  // (/metrics, status, the dashboard's overview; see postgres-counts.ts). A job's change only inserts
  // change rows (+1, -1): a count row that every worker's transaction updated would serialize them
  // and, updated in different orders, deadlock. The jobs are locked against writers while counted.
  `LOCK TABLE jobs IN SHARE MODE;
  CREATE TABLE job_counts (
    pipeline TEXT NOT NULL,
    state TEXT NOT NULL,
    deduplicated BOOLEAN NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (pipeline, state, deduplicated)
  );
  CREATE TABLE job_count_changes (
    pipeline TEXT NOT NULL,
    state TEXT NOT NULL,
    deduplicated BOOLEAN NOT NULL,
    d SMALLINT NOT NULL
  );
  INSERT INTO job_counts (pipeline, state, deduplicated, n)
    SELECT pipeline, state, deduplicated, COUNT(*) FROM jobs GROUP BY pipeline, state, deduplicated;
  CREATE FUNCTION job_count_change() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    IF TG_OP = 'UPDATE' THEN
      INSERT INTO job_count_changes (pipeline, state, deduplicated, d)
        VALUES (OLD.pipeline, OLD.state, OLD.deduplicated, -1), (NEW.pipeline, NEW.state, NEW.deduplicated, 1);
    ELSIF TG_OP = 'INSERT' THEN
      INSERT INTO job_count_changes (pipeline, state, deduplicated, d) VALUES (NEW.pipeline, NEW.state, NEW.deduplicated, 1);
    ELSE
      INSERT INTO job_count_changes (pipeline, state, deduplicated, d) VALUES (OLD.pipeline, OLD.state, OLD.deduplicated, -1);
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER job_counts_insert_delete AFTER INSERT OR DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION job_count_change();
  CREATE TRIGGER job_counts_update AFTER UPDATE OF pipeline, state, deduplicated ON jobs FOR EACH ROW
    WHEN (OLD.pipeline IS DISTINCT FROM NEW.pipeline OR OLD.state IS DISTINCT FROM NEW.state OR OLD.deduplicated IS DISTINCT FROM NEW.deduplicated)
    EXECUTE FUNCTION job_count_change();`,
];
