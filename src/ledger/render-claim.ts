/** What a job asks the ledger before it renders, and what it is told (see Ledger.claimRender). */
import type { Job } from './job.js';

/** The job that wrote an output with given bytes. */
export interface OutputOrigin { jobId: number; pipeline: string; key: string }

/**
 * What a job may do with one (content sha256, fingerprint): nothing when the
 * bytes are an output of mediaflow itself, else render it (the
 * claim is its own until the job leaves 'running' or the lease runs out),
 * copy the outputs of the job that rendered it, or wait for the job that is
 * rendering it now.
 */
export type RenderClaim =
  /** The bytes are one of mediaflow's own outputs (written by that job): nothing is made from them, so outputs never feed back in. */
  | { kind: 'output'; of: OutputOrigin }
  | { kind: 'claimed' }
  | { kind: 'rendered'; job: Job }
  | { kind: 'busy'; jobId: number; owner: string; expiresAt: number };

/** Asking for the render of one (content, fingerprint) on behalf of one job (see Ledger.claimRender). */
export interface ClaimRequest {
  sha256: string;
  fingerprint: string;
  jobId: number;
  /** The asking process (owner.ts thisProcess): a waiter judges whether the holder is gone by it. */
  owner: string;
  /** The claim holds this long unless renewed. */
  leaseMs: number;
  /** false: do not offer the done render (its outputs were found gone); claim it to render again. */
  rendered?: boolean;
  /** Take the claim from this owner, known to be gone, without waiting for its lease. */
  takeOverFrom?: string;
}
