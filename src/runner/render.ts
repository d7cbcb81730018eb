import { createHash } from 'node:crypto';
import type { Job, Ledger, OutputOrigin, OutputRecord } from '../ledger/ledger.js';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { renderKey } from '../pipeline/key-template.js';
import { runSteps } from '../steps/run-steps.js';
import type { StepContext } from '../steps/step.js';
import type { Store } from '../stores/store.js';
import { ownerIsGone, thisProcess } from '../owner.js';
import { fetchInput } from './fetch-input.js';
import { InputBuffers } from './input-buffers.js';

export interface RenderDeps {
  ledger: Ledger;
  /** How long a render claim holds unless renewed: what another machine waits when the renderer dies. */
  renderLeaseMs: number;
  source: Store;
  output: Store;
  tmpDir: string;
  logger: Logger;
  /** Called once per step actually rendered (metrics). */
  onStep?: (pipeline: string, stepId: string, seconds: number) => void;
}

export interface RenderResult {
  outputs: OutputRecord[];
  deduplicated: boolean;
  sha256: string;
  /** Set when nothing was made: the input is one of mediaflow's own outputs (the reason says whose). */
  skipped?: string;
  /** The job whose outputs were copied (deduplicated). */
  copiedFrom?: number;
}

const IN_MEMORY_BYTES = 64 * 1024 * 1024;

/** One set for the process: a job's input buffer serves the next job (see InputBuffers). */
const inputBuffers = new InputBuffers({ maxBufferBytes: 32 * 1024 * 1024, maxTotalBytes: 64 * 1024 * 1024 });

/** Marks an output so a bucket source never takes it as an input. */
function outputMetadata(job: Job, sha256: string): Record<string, string> {
  return {
    'mediaflow-output': '1',
    'mediaflow-pipeline': job.pipeline,
    'mediaflow-source-key': job.key,
    'mediaflow-source-sha256': sha256,
  };
}

/**
 * One job's work: fetch and hash the input, then either reuse an earlier
 * render of the same content (no image work: copy, or nothing at all when the
 * names are the same) or claim the render in the ledger and run the steps,
 * writing each output atomically. An input whose bytes are one of
 * mediaflow's own outputs starts nothing: whatever path led it back (a
 * linked folder, two pipelines feeding each other), it cannot loop.
 */
export async function renderJob(job: Job, p: LoadedPipeline, d: RenderDeps, signal: AbortSignal): Promise<RenderResult> {
  const input = await fetchInput(d.source, job.key, {
    maxInputBytes: p.maxInputBytes, inMemoryBytes: IN_MEMORY_BYTES, tmpDir: d.tmpDir, signal, buffers: inputBuffers,
  });
  try {
    const keyFor = (stepId: string, ext: string) =>
      renderKey(p.output.key, { sourceKey: job.relKey, id: stepId, ext, sha256: input.sha256, pipeline: p.name });

    const copied = await copyOrClaim(job, p, d, input.sha256, keyFor, signal);
    if ('of' in copied) {
      const { of } = copied;
      const skipped = `input has the bytes of an output of mediaflow (job ${of.jobId}, pipeline ${of.pipeline}, made from ${of.key}): not processed, so outputs never feed back into a pipeline`;
      return { outputs: [], deduplicated: false, sha256: input.sha256, skipped };
    }
    if (copied.outputs) return { outputs: copied.outputs, deduplicated: true, sha256: input.sha256, copiedFrom: copied.from };

    // The claim is this job's until it leaves 'running' (the ledger lets go then); renewed while the steps run.
    const renew = setInterval(() => {
      d.ledger.renewRender(input.sha256, p.fingerprint, job.id, d.renderLeaseMs).then((held) => {
        if (!held) d.logger.warn({ job: job.id }, 'render claim expired and was taken over: the render may run twice');
      }, (err: unknown) => d.logger.warn({ err, job: job.id }, 'render claim not renewed (ledger unreachable)'));
    }, Math.max(50, Math.floor(d.renderLeaseMs / 3)));
    renew.unref();
    try {
      const ctx: StepContext = {
        signal,
        limitInputPixels: p.limitInputPixels,
        maxFrames: p.maxFrames,
        timeoutSeconds: Math.max(1, Math.ceil(p.timeoutMs / 1000)),
        allowSvg: p.allowSvg,
      };
      const artefacts = await runSteps(input, p.steps, ctx, (stepId, seconds) => d.onStep?.(p.name, stepId, seconds));
      signal.throwIfAborted();
      const outputs: OutputRecord[] = artefacts.map((a) => ({
        stepId: a.stepId, key: keyFor(a.stepId, a.ext), store: d.output.name, size: a.data.length, sha256: sha256Of(a.data),
        contentType: a.contentType, width: a.width, height: a.height,
      }));
      // Known as mediaflow's own before anyone can read them back (a watcher may take one before this job is done).
      await d.ledger.recordOutputs(outputs.map((o) => o.sha256!), job.id);
      await Promise.all(artefacts.map((a, i) =>
        d.output.write(outputs[i]!.key, a.data, { contentType: a.contentType, metadata: outputMetadata(job, input.sha256) })));
      return { outputs, deduplicated: false, sha256: input.sha256 };
    } finally {
      clearInterval(renew);
    }
  } catch (err) {
    // The failure is recorded with the checksum of the bytes that failed.
    if (err && typeof err === 'object') Object.assign(err, { sha256: input.sha256 });
    throw err;
  } finally {
    await input.release();
  }
}

/** How long a job waiting for another's render looks again when no release of this process wakes it: renders elsewhere. */
const CLAIM_POLL_MS = 1000;

/**
 * The ledger decides who renders (claimRender). Returns the job that wrote
 * these bytes when they are an output of mediaflow; the outputs copied from
 * the render of the same content and the job that made them; or `outputs:
 * null` once this job holds the claim and must render. While another job renders, this one waits for it
 * (woken by the ledger when that claim ends in this process, polling for
 * other processes); a claim whose owner is provably gone (a process of this
 * machine that died) is taken over at once, any other once its lease expires.
 */
async function copyOrClaim(
  job: Job, p: LoadedPipeline, d: RenderDeps, sha256: string, keyFor: (id: string, ext: string) => string, signal: AbortSignal,
): Promise<{ of: OutputOrigin } | { outputs: OutputRecord[]; from: number } | { outputs: null }> {
  let rendered = true;
  let takeOverFrom: string | undefined;
  let waitedFor: number | undefined;
  for (;;) {
    signal.throwIfAborted();
    const c = await d.ledger.claimRender({ sha256, fingerprint: p.fingerprint, jobId: job.id, owner: thisProcess, leaseMs: d.renderLeaseMs, rendered, takeOverFrom });
    if (c.kind === 'output') return { of: c.of };
    if (c.kind === 'claimed') return { outputs: null };
    if (c.kind === 'rendered') {
      const copied = await copyOutputs(c.job, job, keyFor, d, sha256).catch((err) => {
        d.logger.warn({ err, job: job.id, from: c.job.id }, 'earlier outputs unreadable, rendering again');
        return null;
      });
      if (copied) return { outputs: copied, from: c.job.id };
      rendered = false; // gone or overwritten since: this job renders again, once it holds the claim
      continue;
    }
    if (ownerIsGone(c.owner)) {
      d.logger.info({ job: job.id, from: c.jobId, owner: c.owner }, 'render claim of a process that is gone: taken over');
      takeOverFrom = c.owner;
      continue;
    }
    if (waitedFor !== c.jobId) d.logger.debug({ job: job.id, renderer: c.jobId }, 'same content is being rendered by another job: waiting for it');
    waitedFor = c.jobId;
    await waitForRelease(d.ledger, sha256, p.fingerprint, Math.max(10, Math.min(CLAIM_POLL_MS, c.expiresAt - Date.now() + 5)), signal);
    rendered = true;
  }
}

function waitForRelease(ledger: Ledger, sha256: string, fingerprint: string, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const end = () => {
      clearTimeout(timer);
      off();
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => { end(); reject(signal.reason); };
    const off = ledger.onRenderReleased((s, f) => { if (s === sha256 && f === fingerprint) { end(); resolve(); } });
    const timer = setTimeout(() => { end(); resolve(); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const sha256Of = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Same content, same steps: the outputs are already made; put them under this
 * key's names. Only while they still hold what that render wrote (checked by
 * checksum): a later version of the same key, or another input under the same
 * names, may have overwritten them since, and then this renders again.
 */
async function copyOutputs(
  earlier: Job, job: Job, keyFor: (id: string, ext: string) => string, d: RenderDeps, sha256: string,
): Promise<OutputRecord[] | null> {
  const outputs: OutputRecord[] = [];
  for (const o of earlier.outputs) {
    if (o.store !== d.output.name || !o.sha256) return null;
    const ext = o.key.slice(o.key.lastIndexOf('.') + 1);
    const key = keyFor(o.stepId, ext);
    if (!(await d.output.stat(o.key))) return null; // removed since: render again
    const chunks: Buffer[] = [];
    for await (const c of await d.output.read(o.key)) chunks.push(c as Buffer);
    const data = Buffer.concat(chunks);
    if (sha256Of(data) !== o.sha256) return null; // overwritten since: render again
    if (key !== o.key) await d.output.write(key, data, { contentType: o.contentType, metadata: outputMetadata(job, sha256) });
    outputs.push({ ...o, key });
  }
  return outputs;
}
