/** The task options every command shares (`--task` and the IOI generator's options). */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { DEFAULT_FLIP } from '../task/flip.ts';
import { IOI_DEFAULTS, IOI_PROMPT_TYPES } from '../task/ioi.ts';
import { loadTask } from '../task/load.ts';
import type { IoiOptions, IoiPromptType, Task, TaskLimits } from '../task/types.ts';

/** What commander hands us for these options: strings as typed, or the defaults. */
export interface TaskCliOptions {
  task?: string;
  n?: string | number;
  seed?: string | number;
  promptType?: string;
  flip?: string;
  prependBos?: boolean;
}

/**
 * The IOI generator's options alone. Values stay strings here and are checked in `ioiOptionsFrom`,
 * so a bad value becomes a CarveError (one `carve: error:` line) rather than commander's own exit.
 */
export function addIoiOptions(cmd: Command): Command {
  return cmd
    .option('--n <count>', 'IOI: number of prompts', String(IOI_DEFAULTS.n))
    .option('--seed <int>', 'IOI: random seed, as in the Python reference', String(IOI_DEFAULTS.seed))
    .option('--prompt-type <type>', `IOI: ${IOI_PROMPT_TYPES.join('|')}`, IOI_DEFAULTS.promptType)
    .option('--flip <rules>', 'IOI: how corrupt prompts rename the first three names (ABBA rule, BABA rule)', DEFAULT_FLIP)
    .option('--prepend-bos', 'IOI: start every prompt with <|endoftext|> (token 50256)', false);
}

export function addTaskOptions(cmd: Command): Command {
  cmd.option('--task <ioi|FILE.jsonl>', 'the task: the built-in IOI generator or a JSONL file of prompt pairs', 'ioi');
  return addIoiOptions(cmd);
}

function parseInteger(value: string | number | undefined, flag: string, fallback: number, min: number, max: number, what: string): number {
  if (value === undefined) return fallback;
  const text = String(value).trim();
  const n = /^[+-]?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(`${flag}: expected ${what}, got ${JSON.stringify(String(value))}`);
  return n;
}

/** Checked IOI options from commander's values. */
export function ioiOptionsFrom(opts: TaskCliOptions): IoiOptions {
  const n = parseInteger(opts.n, '--n', IOI_DEFAULTS.n, 1, 1_000_000, 'a positive integer');
  const seed = parseInteger(opts.seed, '--seed', IOI_DEFAULTS.seed, 0, 4294967295, 'an integer from 0 to 4294967295');
  const promptType = opts.promptType ?? IOI_DEFAULTS.promptType;
  if (!(IOI_PROMPT_TYPES as readonly string[]).includes(promptType)) {
    fail(`--prompt-type: expected one of ${IOI_PROMPT_TYPES.join(', ')}, got ${JSON.stringify(promptType)}`);
  }
  return {
    n,
    seed,
    promptType: promptType as IoiPromptType,
    flip: opts.flip ?? DEFAULT_FLIP,
    prependBos: opts.prependBos === true,
  };
}

/** Build the Task the options name; `limits` come from the model (nCtx) and the ablation. */
export function taskFromOptions(opts: TaskCliOptions, limits: TaskLimits = {}): Task {
  const task = (opts.task ?? 'ioi').trim();
  if (task === '') fail('--task: expected "ioi" or a path to a JSONL file, got an empty value');
  if (task === 'ioi') return loadTask({ task, ...ioiOptionsFrom(opts) }, limits);
  return loadTask({ task }, limits);
}
