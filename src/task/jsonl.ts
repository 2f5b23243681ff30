/**
 * Tasks as JSONL, one prompt pair a line, in either of SPEC.md's forms:
 *   text form   {"clean": "...", "corrupt": "...", "correct": " Mary", "incorrect": " John"}
 *   token form  {"clean_tokens": [..], "corrupt_tokens": [..], "correct_token": 1, "incorrect_token": 2}
 * Each of the four values is taken from its token field when present, else from its text field
 * ("token fields win"), so a line may mix the forms. Other keys (IOI extras) are ignored on load.
 * Every problem is reported as `FILE:LINE: field "NAME": ...`.
 */
import { readFileSync } from 'node:fs';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { VOCAB_SIZE, decode, encode, singleToken } from '../tokenizer/gpt2.ts';
import type { PromptPair, Task, TaskLimits } from './types.ts';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tokenId(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= VOCAB_SIZE) {
    fail(`${where}: expected a GPT-2 token id (an integer from 0 to ${VOCAB_SIZE - 1}), got ${JSON.stringify(v)}`);
  }
  return v;
}

function promptField(row: Record<string, unknown>, name: 'clean' | 'corrupt', at: string): { tokens: number[]; text?: string } {
  const tokField = `${name}_tokens`;
  if (row[tokField] !== undefined) {
    const v = row[tokField];
    const where = `${at}: field "${tokField}"`;
    if (!Array.isArray(v)) fail(`${where}: expected an array of token ids, got ${JSON.stringify(v)}`);
    const tokens = v.map((t, i) => tokenId(t, `${at}: field "${tokField}[${i}]"`));
    if (tokens.length === 0) fail(`${where}: the prompt is empty`);
    const text = typeof row[name] === 'string' ? (row[name] as string) : undefined;
    return { tokens, text };
  }
  if (row[name] === undefined) fail(`${at}: field "${name}" (or "${tokField}") is missing`);
  const v = row[name];
  if (typeof v !== 'string') fail(`${at}: field "${name}": expected a string, got ${JSON.stringify(v)}`);
  const tokens = encode(v);
  if (tokens.length === 0) fail(`${at}: field "${name}": the prompt is empty`);
  return { tokens, text: v };
}

function answerField(row: Record<string, unknown>, name: 'correct' | 'incorrect', at: string): number {
  const tokField = `${name}_token`;
  if (row[tokField] !== undefined) return tokenId(row[tokField], `${at}: field "${tokField}"`);
  if (row[name] === undefined) fail(`${at}: field "${name}" (or "${tokField}") is missing`);
  const v = row[name];
  if (typeof v !== 'string') fail(`${at}: field "${name}": expected a string, got ${JSON.stringify(v)}`);
  return singleToken(v, `${at}: field "${name}"`);
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
  if (pair.correct === pair.incorrect) {
    fail(`${at}: field "${fields.incorrect}": the incorrect answer is the same token as the correct one (${pair.correct}), so the logit difference is always 0`);
  }
}

/** Parse JSONL text; `path` is only used in messages. Blank lines are skipped but still counted. */
export function parseJsonlTask(content: string, path: string, limits: TaskLimits = {}): Task {
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
    const clean = promptField(row, 'clean', at);
    const corrupt = promptField(row, 'corrupt', at);
    const pair: PromptPair = {
      clean: clean.tokens,
      corrupt: corrupt.tokens,
      correct: answerField(row, 'correct', at),
      incorrect: answerField(row, 'incorrect', at),
    };
    if (clean.text !== undefined) pair.cleanText = clean.text;
    if (corrupt.text !== undefined) pair.corruptText = corrupt.text;
    const name = (base: string, tok: string) => (row as Record<string, unknown>)[tok] !== undefined ? tok : base;
    checkPair(pair, at, limits, {
      clean: name('clean', 'clean_tokens'),
      corrupt: name('corrupt', 'corrupt_tokens'),
      correct: name('correct', 'correct_token'),
      incorrect: name('incorrect', 'incorrect_token'),
    });
    pairs.push(pair);
  });
  if (pairs.length === 0) fail(`${path}: no prompt pairs (the file has no non-blank lines)`);
  return { name: path, pairs };
}

export function loadJsonlTask(path: string, limits: TaskLimits = {}): Task {
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? `${path}: no such task file` : `${path}: cannot read the task file (${code ?? (e as Error).message})`);
  }
  return parseJsonlTask(content, path, limits);
}

/** One JSONL line per pair, with both the text and the token fields, plus IOI extras when known. */
export function taskToJsonl(task: Task): string {
  const lines = task.pairs.map((p, i) => {
    const row: Record<string, unknown> = {
      clean: p.cleanText ?? decode(p.clean),
      corrupt: p.corruptText ?? decode(p.corrupt),
      correct: decode([p.correct]),
      incorrect: decode([p.incorrect]),
      clean_tokens: p.clean,
      corrupt_tokens: p.corrupt,
      correct_token: p.correct,
      incorrect_token: p.incorrect,
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
export function writeJsonlTask(path: string, task: Task): void {
  writeFileAtomic(path, taskToJsonl(task));
}
