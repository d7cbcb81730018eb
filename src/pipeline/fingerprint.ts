import { createHash } from 'node:crypto';
import { stepTypeOf } from '../steps/registry.js';
import { DEFAULT_MAX_FRAMES } from '../steps/step.js';
import type { Pipeline } from './schema.js';

/** JSON with object keys sorted, so formatting and key order never change a fingerprint. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * What a result depends on: the steps (with defaults filled in), each step
 * type's version, the input guards, and where and under which names outputs
 * go. Editing any of these reprocesses; renaming the pipeline, its source,
 * retries or concurrency does not. The output is included because "done"
 * in the ledger means "the outputs exist there".
 */
export function fingerprintOf(p: Pipeline): string {
  const material = {
    steps: p.steps.map((s) => ({ ...s, version: stepTypeOf(s.use).version })),
    output: p.output,
    limitInputPixels: p.limitInputPixels,
    // Left out at its default, so the pipelines of releases before maxFrames keep their fingerprint
    // and an upgrade does not reprocess everything; any other value is part of the result.
    maxFrames: p.maxFrames === DEFAULT_MAX_FRAMES ? undefined : p.maxFrames,
    allowSvg: p.allowSvg,
    // Only when outputs are named after it does the pipeline's name matter.
    name: p.output.key.includes('{pipeline}') ? p.name : undefined,
  };
  return createHash('sha256').update(canonicalJson(material)).digest('hex').slice(0, 32);
}
