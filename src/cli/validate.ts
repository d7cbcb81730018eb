import { PipelineError } from '../errors.js';
import { loadPipelines } from '../pipeline/load.js';
import { pipelineJsonSchema } from '../pipeline/schema.js';
import { eventsJsonSchema } from '../events/event-schema.js';

export function validateCommand(paths: string[]): number {
  try {
    const pipelines = loadPipelines(paths);
    for (const p of pipelines) console.log(`ok  ${p.file}  (${p.name}: ${p.steps.length} step${p.steps.length === 1 ? '' : 's'})`);
    return 0;
  } catch (err) {
    if (!(err instanceof PipelineError)) throw err;
    console.error(err.message);
    console.error(`${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} found`);
    return 1;
  }
}

export function schemaCommand(which: 'pipeline' | 'events' = 'pipeline'): number {
  process.stdout.write(`${JSON.stringify(which === 'events' ? eventsJsonSchema() : pipelineJsonSchema(), null, 2)}\n`);
  return 0;
}
