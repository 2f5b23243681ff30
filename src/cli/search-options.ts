/**
 * Options the searching commands share (scan, prune, compress): optimal ablation's constants
 * (`--constants FILE` to reuse saved ones, `--optimal-steps`), the search seed, and a second prompt
 * set to report on (`--eval-task`, `--eval-seed`, `--eval-n`, the other task options shared).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { Task, TaskLimits } from '../task/types.ts';
import { parseConstantsFile, type ConstantsFile } from '../discover/optimal.ts';
import { checkSameAnswerStructure } from '../discover/heldout.ts';
import { parseNonNegativeInt } from './common.ts';
import { taskFromOptions, type TaskCliOptions } from './task-options.ts';
import type { Tokenizer } from '../tokenizer/types.ts';

export interface SearchCliOptions {
  constants?: string;
  searchSeed?: string;
  optimalSteps?: string;
}

export interface EvalTaskCliOptions {
  evalTask?: string;
  evalSeed?: string;
  evalN?: string;
}

export function addConstantsOptions(cmd: Command): Command {
  return cmd
    .option('--constants <file>', 'optimal ablation: use these saved constants (a .constants.json file) instead of learning them')
    .option('--optimal-steps <n>', 'optimal ablation: Adam steps when learning the constants (default 100)')
    .option('--search-seed <n>', 'seed of everything random in the search (optimal constants, halving\'s prompt order)', '0');
}

export function addEvalTaskOptions(cmd: Command): Command {
  return cmd
    .option('--eval-task <ioi|FILE.jsonl>', 'also report every result on this task (select on --task, report on both)')
    .option('--eval-seed <int>', 'IOI evaluation task: its seed (default: --seed + 1, a different draw)')
    .option('--eval-n <count>', 'IOI evaluation task: its number of prompts (default: --n)');
}

/** The saved constants --constants names, read and shape-checked. */
export function readConstants(path: string | undefined): { file: ConstantsFile; where: string } | undefined {
  if (path === undefined) return undefined;
  if (!existsSync(path)) fail(`${path}: no such constants file`);
  if (statSync(path).isDirectory()) fail(`${path}: is a directory, expected a constants file`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { file: parseConstantsFile(text, path), where: path };
}

export function searchSeedFrom(opts: SearchCliOptions): number {
  const seed = parseNonNegativeInt(opts.searchSeed ?? '0', '--search-seed');
  if (seed > 0xffffffff) fail(`--search-seed: expected an integer from 0 to 4294967295, got ${seed}`);
  return seed;
}

export function optimalStepsFrom(opts: SearchCliOptions): number | undefined {
  return opts.optimalSteps === undefined ? undefined : parseNonNegativeInt(opts.optimalSteps, '--optimal-steps');
}

/** The evaluation task the options name (undefined without --eval-task), checked against the selection task. */
export function evalTaskFromOptions(opts: EvalTaskCliOptions & TaskCliOptions, limits: TaskLimits, selection: Task, tokenizer?: Tokenizer): Task | undefined {
  if (opts.evalTask === undefined) {
    if (opts.evalSeed !== undefined || opts.evalN !== undefined) fail('--eval-seed and --eval-n need --eval-task');
    return undefined;
  }
  const seed = opts.evalSeed ?? String(Number(opts.seed ?? 1) + 1);
  const evaluation = taskFromOptions({ ...opts, task: opts.evalTask, seed, n: opts.evalN ?? opts.n }, limits, tokenizer);
  checkSameAnswerStructure(selection, evaluation);
  return evaluation;
}

/** Where a JSON output's constants go: FILE.json → FILE.constants.json. */
export function constantsPathFor(out: string): string {
  return `${out.replace(/\.json$/i, '')}.constants.json`;
}

/**
 * Put the constants of a result beside its JSON file (written first, so the JSON never names a
 * missing file), or inline when the JSON goes to stdout. Returns the value for the "constants" field.
 */
export function saveConstants(out: string | undefined, constants: ConstantsFile): ConstantsFile | string {
  if (!out) return constants;
  const path = constantsPathFor(out);
  writeFileAtomic(path, JSON.stringify(constants, null, 2) + '\n');
  process.stderr.write(`wrote ${path}\n`);
  return basename(path);
}
