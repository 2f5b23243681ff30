/** One entry point for "give me the task": a built-in generator (IOI, greater-than) or a JSONL file. */
import { generateIoi } from './ioi.ts';
import { generateGreaterThan } from './greater-than.ts';
import { checkPair, loadJsonlTask } from './jsonl.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { wantsBos } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { IoiOptions, Task, TaskLimits } from './types.ts';

/** The built-in generators, by their --task name. */
export const BUILTIN_TASKS = ['ioi', 'greater-than'] as const;

export interface TaskSpec extends Partial<IoiOptions> {
  /** "ioi", "greater-than" or a path to a JSONL file. */
  task: string;
  /** Turns text into tokens (default GPT-2 BPE): the model's tokenizer. */
  tokenizer?: Tokenizer;
}

export function loadTask(spec: TaskSpec, limits: TaskLimits = {}): Task {
  const { task, tokenizer = gpt2Tokenizer, ...options } = spec;
  if (task === 'ioi' || task === 'greater-than') {
    const generated = task === 'ioi' ? generateIoi(options, tokenizer) : generateGreaterThan({ n: options.n, seed: options.seed, prependBos: options.prependBos }, tokenizer);
    // Generated prompts face the same limits as a file's: a small model's context can be shorter
    // than a generated sentence.
    generated.pairs.forEach((pair, i) => checkPair(pair, `${generated.name} prompt ${i}`, limits));
    return generated;
  }
  return loadJsonlTask(task, limits, { tokenizer, bos: wantsBos(tokenizer, options.prependBos) });
}
