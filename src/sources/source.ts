import type { JobRequest } from '../events/job-request.js';
import type { MediaEvent } from '../events/media-event.js';

/**
 * A source produces MediaEvents and nothing else. `emit` resolves once the
 * event is accepted; a source must await it, which is how backpressure reaches
 * it (emit waits while the queue is above its high-water mark).
 * A source lists what is already there on start (catch-up) and emits it as
 * `created` events; the ledger makes the already-done ones no-ops.
 */
export interface Source {
  readonly name: string;
  /**
   * `submit`: a job request (what POST /v1/jobs takes) for the message-queue
   * sources; like `emit`, it resolves once the job is recorded in the ledger.
   * start() resolves once the source is listening, or, for a broker that
   * cannot be reached yet, once that is logged (it goes on trying).
   */
  start(emit: (event: MediaEvent) => Promise<void>, submit: (request: JobRequest) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  /** True while connected / watching (for /readyz). */
  readonly ready: boolean;
  /** Resolves once the listings running now (catch-up, reconcile) have emitted everything they found. */
  caughtUp(): Promise<void>;
}
