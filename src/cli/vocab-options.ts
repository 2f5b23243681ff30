/**
 * `carve compress --vocab all|task [--vocab-extra FILE] [--max-len N]`: which tokens and how many
 * positions the compressed model keeps (src/task/vocab.ts says what a task can produce;
 * src/compress/trim-vocab.ts cuts the tensors).
 *
 * `--vocab-extra FILE` is a JSON list whose entries are original token ids (numbers) or text
 * (strings, each adding every token the tokenizer makes of it), for prompts beyond the task's.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fail } from '../util/errors.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { VocabMap } from '../model/vocab.ts';
import type { Task } from '../task/types.ts';
import { ioiVocabulary, pairsVocabulary, type TaskVocabulary } from '../task/vocab.ts';
import { greaterThanTaskVocabulary } from '../task/greater-than.ts';
import { parsePositiveInt } from './common.ts';

export type VocabMode = 'all' | 'task';

export interface VocabCliOptions {
  vocab?: string;
  vocabExtra?: string;
  maxLen?: string;
}

/** An entry of --vocab-extra, with where it was written. */
interface ExtraEntry {
  value: number | string;
  where: string;
}

export interface VocabPlan {
  mode: VocabMode;
  extra?: { path: string; entries: ExtraEntry[] };
  maxLen?: number;
}

/** Everything that can be checked before the model is loaded. */
export function vocabPlanFrom(opts: VocabCliOptions): VocabPlan {
  const mode = (opts.vocab ?? 'all') as VocabMode;
  if (mode !== 'all' && mode !== 'task') fail(`--vocab: expected all or task, got ${JSON.stringify(opts.vocab)}`);
  if (opts.vocabExtra !== undefined && mode !== 'task') fail('--vocab-extra FILE adds tokens to a task vocabulary: use it with --vocab task');
  const maxLen = opts.maxLen !== undefined ? parsePositiveInt(opts.maxLen, '--max-len') : undefined;
  const plan: VocabPlan = { mode, maxLen };
  if (opts.vocabExtra !== undefined) plan.extra = { path: opts.vocabExtra, entries: parseVocabExtra(opts.vocabExtra) };
  return plan;
}

function parseVocabExtra(path: string): ExtraEntry[] {
  if (!existsSync(path)) fail(`${path}: no such --vocab-extra file`);
  if (statSync(path).isDirectory()) fail(`${path}: is a directory, expected a JSON list of token ids or strings`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message}); expected a list of token ids or strings, like [50256, " Bob"]`);
  }
  if (!Array.isArray(json)) fail(`${path}: expected a JSON list of token ids or strings, like [50256, " Bob"]`);
  return json.map((v, i) => {
    const where = `${path}: entry ${i}`;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) fail(`${where}: ${JSON.stringify(v)} is not a token id (a non-negative integer)`);
      return { value: v, where };
    }
    if (typeof v === 'string') {
      if (v === '') fail(`${where}: the empty string has no tokens`);
      return { value: v, where };
    }
    fail(`${where}: ${JSON.stringify(v)} is neither a token id nor a string`);
  });
}

/**
 * The task's own tokens and longest prompt under the model's tokenizer: every IOI prompt of any
 * seed or greater-than prompt of any seed, or what a task file's pairs hold.
 */
export function vocabularyOfTask(taskArg: string, task: Task, tokenizer: Tokenizer = gpt2Tokenizer): TaskVocabulary {
  if (taskArg.trim() === 'greater-than') return greaterThanTaskVocabulary(tokenizer);
  if (taskArg.trim() !== 'ioi') return pairsVocabulary(task.pairs);
  const bos = tokenizer.bos?.id;
  if (bos === undefined) fail(`--vocab task: ${tokenizer.name} has no BOS token, which IOI prompts may start with`);
  return ioiVocabulary((text) => tokenizer.encode(text), bos);
}

/** Readable text of a token for error messages (undefined when the tokenizer has no such token). */
export function describeToken(id: number, tokenizer: Tokenizer = gpt2Tokenizer): string | undefined {
  return describeTokenOf(id, tokenizer);
}

function describeTokenOf(id: number, tokenizer: Tokenizer): string | undefined {
  if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) return undefined;
  try {
    return tokenizer.tokenString(id);
  } catch {
    return undefined;
  }
}

/**
 * The original ids to keep and the context length, checked against the model being compressed:
 * every token must be one the model has, and N must cover the task's longest prompt.
 */
export function resolveVocab(
  plan: VocabPlan,
  taskArg: string,
  task: Task,
  source: VocabMap,
  nCtx: number,
  tokenizer: Tokenizer = gpt2Tokenizer,
): { keep?: number[]; maxLen?: number; taskMaxLen: number } {
  const tv = vocabularyOfTask(taskArg, task, tokenizer);
  const describeToken = (id: number) => describeTokenOf(id, tokenizer);
  if (plan.maxLen !== undefined) {
    if (plan.maxLen < tv.maxLen) {
      fail(`--max-len ${plan.maxLen}: shorter than the task's longest prompt (${tv.maxLen} tokens${taskArg.trim() === 'ioi' ? ', over every IOI template' : ''})`);
    }
    if (plan.maxLen > nCtx) fail(`--max-len ${plan.maxLen}: longer than the model's context of ${nCtx} positions`);
  }
  if (plan.mode === 'all') return { maxLen: plan.maxLen, taskMaxLen: tv.maxLen };
  const keep = new Set<number>();
  for (const t of tv.tokens) {
    if (!source.has(t)) fail(`${task.name}: ${source.missing(t, describeToken(t))}`);
    keep.add(t);
  }
  for (const e of plan.extra?.entries ?? []) {
    const ids = typeof e.value === 'number' ? [e.value] : tokenizer.encode(e.value);
    for (const id of ids) {
      if (!source.has(id)) {
        const shown = typeof e.value === 'string' ? ` (from ${JSON.stringify(e.value)})` : '';
        fail(`${e.where}: unknown token: ${source.missing(id, describeToken(id))}${shown}`);
      }
      keep.add(id);
    }
  }
  return { keep: [...keep].sort((a, b) => a - b), maxLen: plan.maxLen ?? Math.min(nCtx, tv.maxLen), taskMaxLen: tv.maxLen };
}
