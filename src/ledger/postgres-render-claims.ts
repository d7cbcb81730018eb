import { EventEmitter } from 'node:events';
import type { Job } from './job.js';
import { PostgresConnection, toJob, type Row } from './postgres-connection.js';
import type { ClaimRequest, OutputOrigin, RenderClaim } from './render-claim.js';

/** A render claim let go: announced to this process's waiters after its commit. */
export type Released = { sha256: string; fingerprint: string };

/** The newest real render first: one made after an older one's outputs were found overwritten is the one to copy. */
const FIND_RENDER =
  "SELECT * FROM jobs WHERE sha256 = $1 AND fingerprint = $2 AND state = 'done' ORDER BY deduplicated ASC, updated_at DESC, id DESC LIMIT 1";

/**
 * The PostgreSQL ledger's render claims: one render per (content,
 * fingerprint) across any number of workers, the checksums of the outputs
 * mediaflow wrote, and the waiters of this process woken when a claim ends.
 */
export abstract class PostgresRenderClaims extends PostgresConnection {
  private readonly released = new EventEmitter().setMaxListeners(0);

  protected announce(released: Released[]): void {
    for (const c of released) this.released.emit('released', c.sha256, c.fingerprint);
  }

  async findRender(sha256: string, fingerprint: string): Promise<Job | null> {
    const row = await this.one(FIND_RENDER, [sha256, fingerprint]);
    return row ? toJob(row) : null;
  }

  /**
   * The claim is the render_claims row: an INSERT that takes it when it is
   * free, expired, this job's own or handed over; the primary key makes two
   * winners impossible across any number of workers. Claim first, then look
   * for a done render (a statement of its own, so it sees what committed
   * before the claim was won: the holder's done and its release commit
   * together, so a render that just ended is never made again).
   */
  async claimRender(c: ClaimRequest): Promise<RenderClaim> {
    for (let tries = 0; ; tries++) {
      const result = await this.tx(async (db): Promise<RenderClaim | null> => {
        const now = Date.now();
        // The output check rides on the claim's first statement: no claim is taken for bytes that are an output.
        const won = await db.query<{ job_id: number | null; of: OutputOrigin | null }>(
          `WITH own AS (
             SELECT c.job_id AS "jobId", COALESCE(j.pipeline, '?') AS pipeline, COALESCE(j.key, '?') AS key
             FROM output_checksums c LEFT JOIN jobs j ON j.id = c.job_id WHERE c.sha256 = $1 LIMIT 1),
           claim AS (
             INSERT INTO render_claims (sha256, fingerprint, job_id, owner, expires_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM own)
             ON CONFLICT (sha256, fingerprint) DO UPDATE SET job_id = EXCLUDED.job_id, owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
             WHERE render_claims.expires_at <= $6 OR render_claims.job_id = EXCLUDED.job_id OR render_claims.owner = $7
             RETURNING job_id)
           SELECT (SELECT job_id FROM claim) AS job_id, (SELECT row_to_json(own) FROM own) AS of`,
          [c.sha256, c.fingerprint, c.jobId, c.owner, now + c.leaseMs, now, c.takeOverFrom ?? null]);
        const { job_id: claimed, of } = won.rows[0]!;
        if (of) return { kind: 'output', of: { jobId: Number(of.jobId), pipeline: of.pipeline, key: of.key } };
        if (claimed !== null) {
          const done = c.rendered === false ? undefined : (await db.query<Row>(FIND_RENDER, [c.sha256, c.fingerprint])).rows[0];
          if (!done || done.id === c.jobId) return { kind: 'claimed' };
          await db.query('DELETE FROM render_claims WHERE sha256 = $1 AND fingerprint = $2 AND job_id = $3', [c.sha256, c.fingerprint, c.jobId]);
          return { kind: 'rendered', job: toJob(done) };
        }
        const held = (await db.query<{ job_id: number; owner: string; expires_at: number }>(
          'SELECT job_id, owner, expires_at FROM render_claims WHERE sha256 = $1 AND fingerprint = $2', [c.sha256, c.fingerprint])).rows[0];
        return held ? { kind: 'busy', jobId: held.job_id, owner: held.owner, expiresAt: held.expires_at } : null;
      });
      // null: the holder let go between the two statements; ask again.
      if (result) return result;
      if (tries >= 5) return { kind: 'busy', jobId: 0, owner: '', expiresAt: Date.now() };
    }
  }

  async renewRender(sha256: string, fingerprint: string, jobId: number, leaseMs: number): Promise<boolean> {
    const r = await this.query('UPDATE render_claims SET expires_at = $1 WHERE sha256 = $2 AND fingerprint = $3 AND job_id = $4',
      [Date.now() + leaseMs, sha256, fingerprint, jobId]);
    return r.rowCount === 1;
  }

  async releaseRender(sha256: string, fingerprint: string, jobId: number): Promise<void> {
    const r = await this.query('DELETE FROM render_claims WHERE sha256 = $1 AND fingerprint = $2 AND job_id = $3', [sha256, fingerprint, jobId]);
    if (r.rowCount) this.released.emit('released', sha256, fingerprint);
  }

  onRenderReleased(listener: (sha256: string, fingerprint: string) => void): () => void {
    this.released.on('released', listener);
    return () => this.released.off('released', listener);
  }

  async recordOutputs(sha256s: readonly string[], jobId: number): Promise<void> {
    if (sha256s.length === 0) return;
    await this.query('INSERT INTO output_checksums (sha256, job_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING', [[...sha256s], jobId]);
  }

  async renderCounts(): Promise<{ sha256: string; fingerprint: string; renders: number }[]> {
    return (await this.query<{ sha256: string; fingerprint: string; renders: number }>(
      "SELECT sha256, fingerprint, COUNT(*)::int AS renders FROM jobs WHERE state = 'done' AND NOT deduplicated GROUP BY sha256, fingerprint")).rows;
  }
}
