/**
 * Every error a user can meet in one place: a code, and a message that names
 * the place (file, JSON path, key) and what was expected and found.
 */
export type ErrorCode =
  | 'E_PIPELINE_INVALID'   // a pipeline file fails validation
  | 'E_PIPELINE_JSON'      // a pipeline file is not JSON
  | 'E_PIPELINE_DUPLICATE' // two files declare the same name
  | 'E_PIPELINE_UNKNOWN'   // a command names a pipeline that does not exist
  | 'E_INPUT'              // the input cannot be processed (corrupt, too large, unsupported)
  | 'E_KEY'                // an output key would leave its output root
  | 'E_TIMEOUT'            // a job ran past timeoutMs
  | 'E_LEDGER'             // the ledger cannot be opened or used (e.g. written by a newer release)
  | 'E_STOPPING'           // the service is stopping: what was asked is left for the next start
  | 'E_CONFIG';            // environment / command-line settings

export class MediaflowError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'MediaflowError';
  }
}

/** One validation problem, as printed by `mediaflow validate`. */
export interface Problem {
  file: string;
  /** JSON path such as `$.steps[0].width`. */
  path: string;
  message: string;
  expected?: string;
  found?: string;
}

export function formatProblem(p: Problem): string {
  let s = `${p.file}: ${p.path}: ${p.message}`;
  if (p.expected !== undefined) s += `; expected ${p.expected}`;
  if (p.found !== undefined) s += `, found ${p.found}`;
  return s;
}

export class PipelineError extends MediaflowError {
  constructor(readonly problems: Problem[]) {
    super('E_PIPELINE_INVALID', problems.map(formatProblem).join('\n'));
    this.name = 'PipelineError';
  }
}

export function jsonPath(path: readonly PropertyKey[]): string {
  let s = '$';
  for (const part of path) {
    if (typeof part === 'number') s += `[${part}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(String(part))) s += `.${String(part)}`;
    else s += `[${JSON.stringify(String(part))}]`;
  }
  return s;
}

/** A short, printable rendering of a found value. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  if (s.length > 80) s = `${s.slice(0, 77)}...`;
  const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return `${s} (${type})`;
}
