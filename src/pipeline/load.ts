import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import type { z } from 'zod';
import { describeValue, jsonPath, PipelineError, type Problem } from '../errors.js';
import { fingerprintOf } from './fingerprint.js';
import { pipelineSchema, type Pipeline } from './schema.js';

/** A validated pipeline with its paths resolved and its fingerprint computed. */
export type LoadedPipeline = Pipeline & {
  file: string;
  fingerprint: string;
};

/** Expands directories to their `*.json` files (sorted, so load order is stable). */
export function pipelineFiles(paths: string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try { st = statSync(p); } catch { throw new PipelineError([{ file: p, path: '$', message: 'no such file or folder' }]); }
    if (st.isDirectory()) {
      for (const f of readdirSync(p).filter((n) => n.endsWith('.json')).sort()) files.push(path.join(p, f));
    } else files.push(p);
  }
  return files;
}

function issueToProblem(file: string, issue: z.core.$ZodIssue): Problem[] {
  const base = { file, path: jsonPath(issue.path) };
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ ...base, path: jsonPath([...issue.path, k]), message: `unknown key "${k}"` }));
    case 'invalid_type':
      return [{ ...base, message: 'wrong type', expected: issue.expected, found: describeValue(issue.input) }];
    case 'invalid_value':
      return [{ ...base, message: 'not an allowed value', expected: issue.values.map((v) => JSON.stringify(v)).join(' | '), found: describeValue(issue.input) }];
    case 'invalid_union': {
      const note = (issue as { note?: string }).note;
      if (note === 'No matching discriminator') {
        // zod puts the discriminator itself at the end of the path.
        const disc = String(issue.path[issue.path.length - 1] ?? 'type');
        return [{ ...base, message: `unknown ${disc}`, found: describeValue(issue.input) }];
      }
      // Report the branch that got furthest: its issues are the useful ones.
      const best = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      return best.flatMap((i) => issueToProblem(file, { ...i, path: [...issue.path, ...i.path] } as z.core.$ZodIssue));
    }
    default:
      return [{ ...base, message: issue.message, found: 'input' in issue && issue.input !== undefined ? describeValue(issue.input) : undefined }];
  }
}

/** Parses and validates one pipeline document; problems name the file and JSON path. */
export function parsePipeline(file: string, text: string, cwd = process.cwd()): LoadedPipeline {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new PipelineError([{ file, path: '$', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const result = pipelineSchema.safeParse(data, { reportInput: true });
  if (!result.success) throw new PipelineError(result.error.issues.flatMap((i) => issueToProblem(file, i)));
  const p = result.data;
  if (p.source.type === 'folder') p.source.path = path.resolve(cwd, p.source.path);
  if (p.output.type === 'folder') p.output.path = path.resolve(cwd, p.output.path);
  const problems = overlapProblems(file, p);
  if (problems.length) throw new PipelineError(problems);
  return { ...p, file, fingerprint: fingerprintOf(p) };
}

/**
 * An output that lands where its own source watches would feed itself forever,
 * unless the source excludes it: check with a key an output could get there.
 */
function overlapProblems(file: string, p: Pipeline): Problem[] {
  const src = p.source;
  const out = p.output;
  let rel: string | null = null;
  if (src.type === 'folder' && out.type === 'folder') {
    const r = path.relative(src.path, out.path);
    if (!r.startsWith('..') && !path.isAbsolute(r)) rel = r.split(path.sep).join('/');
  } else if (src.type === 'bucket' && out.type === 'bucket' && src.bucket === out.bucket) {
    if (out.prefix.startsWith(src.prefix)) rel = out.prefix.slice(src.prefix.length).replace(/\/$/, '');
    else if (src.prefix.startsWith(out.prefix)) rel = '';
  }
  if (rel === null) return [];
  const probe = `${rel ? `${rel}/` : ''}photo/thumb.jpg`;
  if (src.exclude.length && picomatch(src.exclude, { dot: true })(probe)) return [];
  return [{
    file, path: '$.output',
    message: `output lands inside this pipeline's own source, so outputs would be processed again; add an exclude such as "${rel ? `${rel}/**` : '**/*'}" to the source, or write elsewhere`,
  }];
}

/** Loads every pipeline; all problems of all files are reported together. */
export function loadPipelines(paths: string[], cwd = process.cwd()): LoadedPipeline[] {
  const problems: Problem[] = [];
  const pipelines: LoadedPipeline[] = [];
  const byName = new Map<string, string>();
  for (const file of pipelineFiles(paths)) {
    try {
      const p = parsePipeline(file, readFileSync(file, 'utf8'), cwd);
      const other = byName.get(p.name);
      if (other) problems.push({ file, path: '$.name', message: `pipeline name "${p.name}" is already used by ${other}` });
      byName.set(p.name, file);
      pipelines.push(p);
    } catch (err) {
      if (err instanceof PipelineError) problems.push(...err.problems);
      else throw err;
    }
  }
  if (problems.length) throw new PipelineError(problems);
  return pipelines;
}
