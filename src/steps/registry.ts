import { z } from 'zod';
import { MediaflowError } from '../errors.js';
import { convert } from './convert.js';
import { metadata } from './metadata.js';
import type { StepType } from './step.js';
import { thumbnail } from './thumbnail.js';

/** Every step type, listed explicitly: adding one means writing its module and naming it here. */
export const stepTypes = [thumbnail, convert, metadata] as const;

export const stepSchema = z.discriminatedUnion('use', [thumbnail.schema, convert.schema, metadata.schema])
  .describe('One step: "use" names the step type, the other fields are its options');

export type StepConfig = z.output<typeof stepSchema>;

const byName = new Map<string, StepType>(stepTypes.map((t) => [t.name, t as StepType]));

export function stepTypeOf(use: string): StepType {
  const type = byName.get(use);
  if (!type) {
    throw new MediaflowError('E_PIPELINE_INVALID', `unknown step type "${use}"; known types: ${[...byName.keys()].join(', ')}`);
  }
  return type;
}
