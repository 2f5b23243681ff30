/** One entry point for "give me the task": the built-in IOI generator or a JSONL file. */
import { generateIoi } from './ioi.ts';
import { checkPair, loadJsonlTask } from './jsonl.ts';
import type { IoiOptions, Task, TaskLimits } from './types.ts';

export interface TaskSpec extends Partial<IoiOptions> {
  /** "ioi" or a path to a JSONL file. */
  task: string;
}

export function loadTask(spec: TaskSpec, limits: TaskLimits = {}): Task {
  const { task, ...ioiOptions } = spec;
  if (task === 'ioi') {
    const generated = generateIoi(ioiOptions);
    // Generated prompts face the same limits as a file's: a small model's context can be shorter
    // than an IOI sentence.
    generated.pairs.forEach((pair, i) => checkPair(pair, `${generated.name} prompt ${i}`, limits));
    return generated;
  }
  return loadJsonlTask(task, limits);
}
