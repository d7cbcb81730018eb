import { createHash } from 'node:crypto';
import type { Job, OutputRecord } from '../ledger/ledger.js';
import type { SqliteLedger } from '../ledger/sqlite-ledger.js';
import type { Logger } from '../log.js';
import type { LoadedPipeline } from '../pipeline/load.js';
import { renderKey } from '../pipeline/key-template.js';
import { stepTypeOf } from '../steps/registry.js';
import type { StepContext } from '../steps/step.js';
import type { Store } from '../stores/store.js';
import { fetchInput } from './fetch-input.js';
import { InputBuffers } from './input-buffers.js';

export interface RenderDeps {
  ledger: SqliteLedger;
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
 * names are the same) or run the steps, writing each output atomically.
 */
export async function renderJob(job: Job, p: LoadedPipeline, d: RenderDeps, signal: AbortSignal): Promise<RenderResult> {
  const input = await fetchInput(d.source, job.key, {
    maxInputBytes: p.maxInputBytes, inMemoryBytes: IN_MEMORY_BYTES, tmpDir: d.tmpDir, signal, buffers: inputBuffers,
  });
  try {
    const keyFor = (stepId: string, ext: string) =>
      renderKey(p.output.key, { sourceKey: job.relKey, id: stepId, ext, sha256: input.sha256, pipeline: p.name });

    const earlier = d.ledger.findRender(input.sha256, p.fingerprint);
    if (earlier && earlier.id !== job.id) {
      const copied = await copyOutputs(earlier, job, keyFor, d, input.sha256).catch((err) => {
        d.logger.warn({ err, job: job.id, from: earlier.id }, 'earlier outputs unreadable, rendering again');
        return null;
      });
      if (copied) return { outputs: copied, deduplicated: true, sha256: input.sha256 };
    }

    const ctx: StepContext = {
      signal,
      limitInputPixels: p.limitInputPixels,
      timeoutSeconds: Math.max(1, Math.ceil(p.timeoutMs / 1000)),
      allowSvg: p.allowSvg,
    };
    const outputs: OutputRecord[] = [];
    for (const step of p.steps) {
      const started = performance.now();
      const artefact = await stepTypeOf(step.use).run(input, step as never, ctx).catch((err: unknown) => {
        // Which step failed goes into the job's failure log line.
        if (err && typeof err === 'object') Object.assign(err, { step: step.id });
        throw err;
      });
      const key = keyFor(step.id, artefact.ext);
      signal.throwIfAborted();
      await d.output.write(key, artefact.data, { contentType: artefact.contentType, metadata: outputMetadata(job, input.sha256) });
      d.onStep?.(p.name, step.id, (performance.now() - started) / 1000);
      outputs.push({
        stepId: step.id, key, store: d.output.name, size: artefact.data.length, sha256: sha256Of(artefact.data),
        contentType: artefact.contentType, width: artefact.width, height: artefact.height,
      });
    }
    return { outputs, deduplicated: false, sha256: input.sha256 };
  } catch (err) {
    // The failure is recorded with the checksum of the bytes that failed.
    if (err && typeof err === 'object') Object.assign(err, { sha256: input.sha256 });
    throw err;
  } finally {
    await input.release();
  }
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
