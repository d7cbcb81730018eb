import { readFileSync } from 'node:fs';
import { formatProblem, PipelineError, type Problem } from '../errors.js';
import { loadPipelines, parsePipeline, pipelineFiles, type LoadedPipeline } from '../pipeline/load.js';

/**
 * A pipeline file as the dashboard shows it. `run` refuses to start while
 * any file has a problem, so every file it was given loaded; the files are
 * read again when asked, with the same checks as at start, so a file edited
 * (or added) since shows the problem a restart would stop at.
 *
 * - loaded: running, and the file still says the same
 * - changed: running as it was loaded; the file now says something else (valid: a restart applies it)
 * - invalid: the file now has problems (a restart would refuse to start)
 * - new: a valid file that was not there at start
 * - missing: a file that was loaded is gone
 */
export interface PipelineFile {
  file: string;
  /** The pipeline it declares as loaded (null: none loaded from this file). */
  pipeline: string | null;
  status: 'loaded' | 'changed' | 'invalid' | 'new' | 'missing';
  /** Each with `text`, the line `mediaflow validate` prints. */
  problems: (Problem & { text: string })[];
}

export interface PipelinesView {
  /** The pipelines running now, as loaded: defaults filled in, paths resolved. */
  pipelines: { name: string; file: string; fingerprint: string; definition: Record<string, unknown> }[];
  /** null: the service was not started from files (an embedding program passed the pipelines). */
  files: PipelineFile[] | null;
}

/** The pipeline as it runs, without what loading adds. */
function definitionOf(p: LoadedPipeline): Record<string, unknown> {
  const { file: _file, fingerprint: _fingerprint, ...definition } = p;
  return definition;
}

const same = (a: LoadedPipeline, b: LoadedPipeline) => JSON.stringify(definitionOf(a)) === JSON.stringify(definitionOf(b));

/**
 * Checks the files behind `paths` (what `run --pipelines` was given) as
 * loadPipelines would, per file; `loaded` are the pipelines running.
 */
export function pipelineFilesNow(paths: string[], loaded: LoadedPipeline[], cwd = process.cwd()): PipelineFile[] {
  const problems: Problem[] = [];
  let files: string[] = [];
  try {
    files = pipelineFiles(paths);
  } catch (err) {
    if (!(err instanceof PipelineError)) throw err;
    problems.push(...err.problems);
  }
  // The checks across files (names used twice, an output landing in another's source) are loadPipelines's.
  try {
    loadPipelines(files, cwd);
  } catch (err) {
    if (!(err instanceof PipelineError)) throw err;
    problems.push(...err.problems);
  }
  const withText = (p: Problem) => ({ ...p, text: formatProblem(p) });
  const seen = new Set<string>();
  const result: PipelineFile[] = [];
  for (const file of [...files, ...problems.map((p) => p.file)]) {
    if (seen.has(file)) continue;
    seen.add(file);
    const own = problems.filter((p) => p.file === file).map(withText);
    const running = loaded.find((p) => p.file === file) ?? null;
    let status: PipelineFile['status'];
    if (own.length) status = 'invalid';
    else if (!running) status = 'new';
    else status = same(parsePipeline(file, readFileSync(file, 'utf8'), cwd), running) ? 'loaded' : 'changed';
    result.push({ file, pipeline: running?.name ?? null, status, problems: own });
  }
  for (const p of loaded) {
    if (!seen.has(p.file)) result.push({ file: p.file, pipeline: p.name, status: 'missing', problems: [] });
  }
  return result;
}

export function pipelinesView(loaded: LoadedPipeline[], paths: string[] | undefined): PipelinesView {
  return {
    pipelines: loaded.map((p) => ({ name: p.name, file: p.file, fingerprint: p.fingerprint, definition: definitionOf(p) })),
    files: paths ? pipelineFilesNow(paths, loaded) : null,
  };
}
