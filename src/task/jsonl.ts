/**
 * Tasks as JSONL, one prompt pair a line, in either of SPEC.md's forms:
 *   text form   {"clean": "...", "corrupt": "...", "correct": " Mary", "incorrect": " John"}
 *   token form  {"clean_tokens": [..], "corrupt_tokens": [..], "correct_token": 1, "incorrect_token": 2}
 * and with answer sets (SPEC "Answer sets and metrics"): "correct": [" 51", " 52"],
 * "correct_token": [51, 52]. Each of the four values is taken from its token field when present,
 * else from its text field ("token fields win"), so a line may mix the forms. Other keys (IOI extras)
 * are ignored on load. Every problem is reported as `FILE:LINE: field "NAME": ...`.
 *
 * Text goes through the model's tokenizer (src/tokenizer): a text prompt starts with BOS when the
 * tokenizer's post-processor adds one or the user asks for it (`bos`); answers are the tokens they
 * get after the prompt, and must be one token each.
 */
import { readFileSync } from 'node:fs';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { promptTokens, singleToken, tokenizerLabel } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { PromptPair, Task, TaskLimits } from './types.ts';

/** How text becomes tokens: the tokenizer, and whether text prompts start with BOS. */
export interface TextOptions {
  tokenizer: Tokenizer;
  bos: boolean;
}

const GPT2_TEXT: TextOptions = { tokenizer: gpt2Tokenizer, bos: false };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenId(v: unknown, where: string, tok: Tokenizer): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= tok.vocabSize) {
    fail(`${where}: expected a ${tokenizerLabel(tok)} token id (an integer from 0 to ${tok.vocabSize - 1}), got ${JSON.stringify(v)}`);
  }
  return v;
}

function promptField(row: Record<string, unknown>, name: 'clean' | 'corrupt', at: string, text: TextOptions): { tokens: number[]; text?: string } {
  const tokField = `${name}_tokens`;
  if (row[tokField] !== undefined) {
    const v = row[tokField];
    const where = `${at}: field "${tokField}"`;
    if (!Array.isArray(v)) fail(`${where}: expected an array of token ids, got ${JSON.stringify(v)}`);
    const tokens = v.map((t, i) => tokenId(t, `${at}: field "${tokField}[${i}]"`, text.tokenizer));
    if (tokens.length === 0) fail(`${where}: the prompt is empty`);
    const shown = typeof row[name] === 'string' ? (row[name] as string) : undefined;
    return { tokens, text: shown };
  }
  if (row[name] === undefined) fail(`${at}: field "${name}" (or "${tokField}") is missing`);
  const v = row[name];
  if (typeof v !== 'string') fail(`${at}: field "${name}": expected a string, got ${JSON.stringify(v)}`);
  const tokens = text.tokenizer.encode(v);
  if (tokens.length === 0) fail(`${at}: field "${name}": the prompt is empty`);
  return { tokens: promptTokens(text.tokenizer, v, text.bos), text: v };
}

/**
 * An answer set from its token field (an id or a list of ids) or its text field (a string or a
 * list of strings, each one token). Returns the ids and the field name used, for later messages.
 */
function answerField(row: Record<string, unknown>, name: 'correct' | 'incorrect', at: string, text: TextOptions): { ids: number[]; field: string } {
  const tokField = `${name}_token`;
  const field = row[tokField] !== undefined ? tokField : name;
  const v = row[field];
  if (v === undefined) fail(`${at}: field "${name}" (or "${tokField}") is missing`);
  const one = (x: unknown, where: string): number => {
    if (field === tokField) return tokenId(x, where, text.tokenizer);
    if (typeof x !== 'string') fail(`${where}: expected a string, got ${JSON.stringify(x)}`);
    return singleToken(text.tokenizer, x, where);
  };
  if (!Array.isArray(v)) return { ids: [one(v, `${at}: field "${field}"`)], field };
  if (v.length === 0) fail(`${at}: field "${field}": the answer set is empty`);
  const ids = v.map((x, i) => one(x, `${at}: field "${field}[${i}]"`));
  const seen = new Map<number, number>();
  ids.forEach((id, i) => {
    if (seen.has(id)) fail(`${at}: field "${field}[${i}]": token ${id} is already in the set at [${seen.get(id)}]`);
    seen.set(id, i);
  });
  return { ids, field };
}

/**
 * Check one pair against a consumer's limits. `at` is "FILE:LINE" (or another locator); the
 * messages name the field at fault. Exported so generated tasks get the same checks.
 */
export function checkPair(pair: PromptPair, at: string, limits: TaskLimits = {}, fields = { clean: 'clean', corrupt: 'corrupt', correct: 'correct', incorrect: 'incorrect' }): void {
  const { nCtx, requireEqualLengths } = limits;
  if (nCtx !== undefined) {
    for (const key of ['clean', 'corrupt'] as const) {
      if (pair[key].length > nCtx) {
        fail(`${at}: field "${fields[key]}": the prompt is ${pair[key].length} tokens, longer than the model's context of ${nCtx}`);
      }
    }
  }
  if (requireEqualLengths && pair.corrupt.length !== pair.clean.length) {
    fail(
      `${at}: field "${fields.corrupt}": resample ablation needs the corrupt prompt to have the clean prompt's length, ` +
        `but it is ${pair.corrupt.length} tokens against ${pair.clean.length}`,
    );
  }
  for (const key of ['correct', 'incorrect'] as const) {
    if (pair[key].length === 0) fail(`${at}: field "${fields[key]}": the answer set is empty`);
  }
  const correct = new Set(pair.correct);
  const both = pair.incorrect.findIndex((t) => correct.has(t));
  if (both >= 0 && pair.correct.length === 1 && pair.incorrect.length === 1) {
    fail(`${at}: field "${fields.incorrect}": the incorrect answer is the same token as the correct one (${pair.correct[0]}), so the metric is always 0`);
  }
  if (both >= 0) {
    const t = pair.incorrect[both]!;
    const field = pair.incorrect.length > 1 ? `${fields.incorrect}[${both}]` : fields.incorrect;
    fail(`${at}: field "${field}": token ${t} is in both the correct and the incorrect set, so it cancels out of the metric`);
  }
}

/** Parse JSONL text; `path` is only used in messages. Blank lines are skipped but still counted. */
export function parseJsonlTask(content: string, path: string, limits: TaskLimits = {}, text: TextOptions = GPT2_TEXT): Task {
  const pairs: PromptPair[] = [];
  const lines = content.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    const at = `${path}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      fail(`${at}: not valid JSON (${(e as Error).message})`);
    }
    if (!isObject(row)) fail(`${at}: expected a JSON object with clean/corrupt/correct/incorrect fields, got ${JSON.stringify(row).slice(0, 60)}`);
    const clean = promptField(row, 'clean', at, text);
    const corrupt = promptField(row, 'corrupt', at, text);
    const correct = answerField(row, 'correct', at, text);
    const incorrect = answerField(row, 'incorrect', at, text);
    const pair: PromptPair = { clean: clean.tokens, corrupt: corrupt.tokens, correct: correct.ids, incorrect: incorrect.ids };
    if (clean.text !== undefined) pair.cleanText = clean.text;
    if (corrupt.text !== undefined) pair.corruptText = corrupt.text;
    const name = (base: string, tok: string) => (row as Record<string, unknown>)[tok] !== undefined ? tok : base;
    checkPair(pair, at, limits, {
      clean: name('clean', 'clean_tokens'),
      corrupt: name('corrupt', 'corrupt_tokens'),
      correct: correct.field,
      incorrect: incorrect.field,
    });
    pairs.push(pair);
  });
  if (pairs.length === 0) fail(`${path}: no prompt pairs (the file has no non-blank lines)`);
  return { name: path, pairs };
}

export function loadJsonlTask(path: string, limits: TaskLimits = {}, text: TextOptions = GPT2_TEXT): Task {
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? `${path}: no such task file` : `${path}: cannot read the task file (${code ?? (e as Error).message})`);
  }
  return parseJsonlTask(content, path, limits, text);
}

/**
 * One JSONL line per pair, with both the text and the token fields, plus IOI extras when known.
 * Answers are written as lists when some pair of the task has more than one (the form a reader
 * of that task expects on every line), else as single values.
 */
export function taskToJsonl(task: Task, tokenizer: Tokenizer = gpt2Tokenizer): string {
  const asSets = task.pairs.some((p) => p.correct.length !== 1 || p.incorrect.length !== 1);
  const text = (ids: number[]) => (asSets ? ids.map((t) => tokenizer.tokenText(t)) : tokenizer.tokenText(ids[0]!));
  const lines = task.pairs.map((p, i) => {
    const row: Record<string, unknown> = {
      clean: p.cleanText ?? tokenizer.decode(p.clean),
      corrupt: p.corruptText ?? tokenizer.decode(p.corrupt),
      correct: text(p.correct),
      incorrect: text(p.incorrect),
      clean_tokens: p.clean,
      corrupt_tokens: p.corrupt,
      correct_token: asSets ? p.correct : p.correct[0],
      incorrect_token: asSets ? p.incorrect : p.incorrect[0],
    };
    const x = task.ioi?.[i];
    if (x) {
      row.io = x.io;
      row.s = x.s;
      row.template_index = x.templateIndex;
      row.kind = x.kind;
      if (x.corruptIo !== undefined) row.corrupt_io = x.corruptIo;
      if (x.corruptS !== undefined) row.corrupt_s = x.corruptS;
      row.positions = x.positions;
    }
    return JSON.stringify(row);
  });
  return lines.join('\n') + '\n';
}

/** Write a task as JSONL atomically: readers never see a half-written file. */
export function writeJsonlTask(path: string, task: Task, tokenizer: Tokenizer = gpt2Tokenizer): void {
  writeFileAtomic(path, taskToJsonl(task, tokenizer));
}
