/** The task options every command shares (`--task`, the generators' options, `--metric`). */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { DEFAULT_FLIP } from '../task/flip.ts';
import { IOI_DEFAULTS, IOI_PROMPT_TYPES } from '../task/ioi.ts';
import { loadTask } from '../task/load.ts';
import { METRIC_NAMES, type MetricName } from '../model/readout.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { IoiOptions, IoiPromptType, Task, TaskLimits } from '../task/types.ts';

/** What commander hands us for these options: strings as typed, or the defaults. */
export interface TaskCliOptions {
  task?: string;
  n?: string | number;
  seed?: string | number;
  promptType?: string;
  flip?: string;
  /** true: --prepend-bos; false: --no-prepend-bos; undefined: as the tokenizer's post-processor does. */
  prependBos?: boolean;
  metric?: string;
}

/**
 * The generators' options (IOI; --n, --seed and BOS also greater-than). Values stay strings here and
 * are checked in `ioiOptionsFrom`, so a bad value becomes a CarveError (one `carve: error:` line)
 * rather than commander's own exit.
 */
export function addIoiOptions(cmd: Command): Command {
  return cmd
    .option('--n <count>', 'generated tasks: number of prompts', String(IOI_DEFAULTS.n))
    .option('--seed <int>', 'generated tasks: random seed (IOI: as in the Python reference)', String(IOI_DEFAULTS.seed))
    .option('--prompt-type <type>', `IOI: ${IOI_PROMPT_TYPES.join('|')}`, IOI_DEFAULTS.promptType)
    .option('--flip <rules>', 'IOI: how corrupt prompts rename the first three names (ABBA rule, BABA rule)', DEFAULT_FLIP)
    .option('--prepend-bos', "start every text prompt with the tokenizer's BOS (GPT-2: <|endoftext|>, token 50256); default: as the tokenizer's post-processor does")
    .option('--no-prepend-bos', "never start text prompts with BOS, even where the tokenizer's post-processor adds one");
}

export function addTaskOptions(cmd: Command): Command {
  cmd.option('--task <ioi|greater-than|FILE.jsonl>', 'the task: a built-in generator (ioi, greater-than) or a JSONL file of prompt pairs', 'ioi');
  return addIoiOptions(cmd);
}

/** `--metric`, for commands that report a metric; its default is the task's (logit-diff, or prob-diff for greater-than). */
export function addMetricOption(cmd: Command): Command {
  return cmd.option('--metric <logit-diff|prob-diff|kl>', "the metric: logit-diff (mean logit of the correct set − of the incorrect set), prob-diff (their probability mass difference) or kl (KL divergence from the clean run); default: the task's own (logit-diff; greater-than: prob-diff)");
}

/** `--metric` checked before anything is loaded; undefined when not given. `logit_diff` (the old spelling) is accepted. */
export function parseMetric(value: string | undefined): MetricName | undefined {
  if (value === undefined) return undefined;
  const v = value.trim() === 'logit_diff' ? 'logit-diff' : value.trim();
  if (!(METRIC_NAMES as readonly string[]).includes(v)) fail(`--metric: expected one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(value)}`);
  return v as MetricName;
}

/** The metric to use: --metric when given, else the task's default, else logit-diff. */
export function metricFor(opts: TaskCliOptions, task: Task): MetricName {
  return parseMetric(opts.metric) ?? task.defaultMetric ?? 'logit-diff';
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
    prependBos: opts.prependBos,
  };
}

/**
 * Build the Task the options name, its text through `tokenizer` (the model's; default GPT-2 BPE);
 * `limits` come from the model (nCtx) and the ablation. Notes about how it was made go to stderr.
 */
export function taskFromOptions(opts: TaskCliOptions, limits: TaskLimits = {}, tokenizer?: Tokenizer): Task {
  const task = (opts.task ?? 'ioi').trim();
  if (task === '') fail('--task: expected "ioi", "greater-than" or a path to a JSONL file, got an empty value');
  const loaded =
    task === 'ioi' || task === 'greater-than'
      ? loadTask({ task, tokenizer, ...ioiOptionsFrom(opts) }, limits)
      : loadTask({ task, tokenizer, prependBos: opts.prependBos }, limits);
  for (const note of loaded.notes ?? []) process.stderr.write(`carve: note: ${note}\n`);
  return loaded;
}
