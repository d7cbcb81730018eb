import { EventEmitter } from 'node:events';
import type { Job } from './job.js';
import type { ClaimRequest, OutputOrigin, RenderClaim } from './render-claim.js';
import { SqliteFile, toJob, type Row } from './sqlite-file.js';

/** A render claim let go: announced to this process's waiters after its commit. */
export type Released = { sha256: string; fingerprint: string };

/**
 * The SQLite ledger's render claims: one render per (content, fingerprint)
 * for every process on the file, the checksums of the outputs mediaflow
 * wrote, and the waiters of this process woken when a claim ends.
 */
export abstract class SqliteRenderClaims extends SqliteFile {
  /** Every job waiting for a render listens here: no listener limit. */
  private readonly released = new EventEmitter().setMaxListeners(0);

  protected announce(released: Released[]): void {
    for (const c of released) this.released.emit('released', c.sha256, c.fingerprint);
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
    return this.transaction((): RenderClaim => {
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
    }, 'immediate');
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
    this.transaction(() => { for (const s of sha256s) insert.run(s, jobId); });
  }

  /** The job that wrote an output with these bytes, if any. */
  private outputWith(sha256: string): OutputOrigin | null {
    const row = this.sql(`SELECT c.job_id AS jobId, j.pipeline AS pipeline, j.key AS key FROM output_checksums c
      LEFT JOIN jobs j ON j.id = c.job_id WHERE c.sha256 = ? LIMIT 1`).get(sha256) as { jobId: number; pipeline: string | null; key: string | null } | undefined;
    return row ? { jobId: row.jobId, pipeline: row.pipeline ?? '?', key: row.key ?? '?' } : null;
  }

  async renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]> {
    return this.sql(
      "SELECT sha256, fingerprint, COUNT(*) AS renders FROM jobs WHERE state = 'done' AND deduplicated = 0 GROUP BY sha256, fingerprint",
    ).all() as { sha256: string; fingerprint: string; renders: number }[];
  }
}
