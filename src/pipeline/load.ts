import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import type { z } from 'zod';
import { describeValue, jsonPath, PipelineError, type Problem } from '../errors.js';
import { climbsOut } from '../paths.js';
import { extOf, type OutputFormat } from '../steps/sharp-input.js';
import { fingerprintOf } from './fingerprint.js';
import { renderKey } from './key-template.js';
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
  const loaded = { ...p, file, fingerprint: fingerprintOf(p) };
  const problems = overlapProblems(loaded, loaded);
  if (problems.length) throw new PipelineError(problems);
  return loaded;
}

/**
 * A folder's real path, following symbolic links, for folders that may not
 * exist yet: the nearest existing ancestor is resolved and the rest appended.
 * An output folder that is a link into a watched folder is inside it.
 */
export function realPathOf(folder: string): string {
  const rest: string[] = [];
  let at = path.resolve(folder);
  for (;;) {
    try {
      return path.join(realpathSync(at), ...rest.reverse());
    } catch {
      const parent = path.dirname(at);
      if (parent === at) return path.resolve(folder);
      rest.push(path.basename(at));
      at = parent;
    }
  }
}

/** The extension a step's output gets (thumbnail and convert: their format; metadata: json). */
function extOfStep(step: Pipeline['steps'][number]): string {
  return 'format' in step && typeof step.format === 'string' ? extOf(step.format as OutputFormat) : 'json';
}

/**
 * Where an output of `from` would land inside the source of `to`, as a key
 * of that source that `to` would take (its include and exclude globs, its
 * suffix) — or null when none would. Probed with a top-level input
 * `photo.jpg` and every step's extension. Folders are compared by real path.
 */
function landsIn(from: Pipeline, to: Pipeline): string | null {
  const src = to.source;
  const out = from.output;
  let rel: string | null = null;
  if (src.type === 'folder' && out.type === 'folder') {
    const r = path.relative(realPathOf(src.path), realPathOf(out.path));
    if (!climbsOut(r)) rel = r.split(path.sep).join('/');
  } else if (src.type !== 'folder' && out.type === 'bucket' && src.bucket === out.bucket) {
    // A queue source carries its bucket's notifications: the same as listening to it.
    if (out.prefix.startsWith(src.prefix)) rel = out.prefix.slice(src.prefix.length).replace(/\/$/, '');
    else if (src.prefix.startsWith(out.prefix)) rel = '';
  }
  if (rel === null) return null;
  const include = picomatch(src.include, { dot: false, nocase: true });
  const exclude = src.exclude.length ? picomatch(src.exclude, { dot: true, nocase: true }) : () => false;
  for (const step of from.steps) {
    let key: string;
    try {
      key = renderKey(out.key, { sourceKey: 'photo.jpg', id: step.id, ext: extOfStep(step), sha256: '0'.repeat(64), pipeline: from.name });
    } catch {
      continue; // a key template that cannot render is reported by the schema
    }
    const probe = rel ? `${rel}/${key}` : key;
    if (src.type !== 'folder' && !probe.endsWith(src.suffix)) continue;
    if (include(probe) && !exclude(probe)) return probe;
  }
  return null;
}

/**
 * mediaflow never takes its own outputs as inputs (outputs are tagged, and
 * their checksums known), so an output that lands where a source would
 * take it is a mistake: into its own source it would feed itself forever,
 * into another pipeline's it would be skipped. Refused unless that source
 * excludes it.
 */
function overlapProblems(from: LoadedPipeline, to: LoadedPipeline): Problem[] {
  const probe = landsIn(from, to);
  if (probe === null) return [];
  const dir = probe.includes('/') ? probe.slice(0, probe.indexOf('/')) : '';
  const advice = `add an exclude such as "${dir ? `${dir}/**` : '**/*'}" to the source, or write elsewhere`;
  const message = from === to
    ? `output lands inside this pipeline's own source (an output such as ${JSON.stringify(probe)}), so outputs would be processed again; ${advice}`
    : `output lands inside the source of pipeline "${to.name}" (${to.file}) as ${JSON.stringify(probe)}; mediaflow never processes its own outputs, so that source would skip them: ${advice.replace('the source', `the source of "${to.name}"`)}, or add the steps to this pipeline`;
  return [{ file: from.file, path: '$.output', message }];
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
  for (const from of pipelines) {
    for (const to of pipelines) if (to !== from) problems.push(...overlapProblems(from, to));
  }
  if (problems.length) throw new PipelineError(problems);
  return pipelines;
}
