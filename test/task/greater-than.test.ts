import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateGreaterThan, greaterThanVocabulary, GREATER_THAN_NOUNS } from '../../src/task/greater-than.ts';
import { loadTask } from '../../src/task/load.ts';
import { parseJsonlTask } from '../../src/task/jsonl.ts';
import { BOS_ID, decode, encode, gpt2Tokenizer } from '../../src/tokenizer/gpt2.ts';
import { loadTokenizer } from '../../src/tokenizer/load.ts';
import { isCarveError } from '../../src/util/errors.ts';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-gt-'));
const two = (n: number) => String(n).padStart(2, '0');

test('every greater-than prompt tokenises as specified (GPT-2): " XX" + "YY" inside, " XX" last, corrupt "01", answer sets split at YY', () => {
  const task = generateGreaterThan({ n: 200, seed: 7 });
  assert.equal(task.name, 'greater-than(n=200,seed=7)');
  assert.equal(task.defaultMetric, 'prob-diff');
  const yearTok = (yy: number) => encode(two(yy));
  task.pairs.forEach((p, i) => {
    const { noun, year } = task.greaterThan[i]!;
    const xx = Math.floor(year / 100);
    const yy = year % 100;
    assert.ok(GREATER_THAN_NOUNS.includes(noun));
    assert.ok(yy >= 2 && yy <= 98, `start year ${year} must end in 02-98`);
    assert.equal(p.cleanText, `The ${noun} lasted from the year ${year} to the year ${xx}`);
    assert.equal(p.corruptText, `The ${noun} lasted from the year ${xx}01 to the year ${xx}`);
    // The whole text tokenises to the prompt, with the years as [" XX", "YY"].
    assert.deepEqual(p.clean, encode(p.cleanText!));
    assert.deepEqual(p.corrupt, encode(p.corruptText!));
    assert.deepEqual(p.clean, [...encode(`The ${noun} lasted from the year`), ...encode(` ${xx}`), ...yearTok(yy), ...encode(' to the year'), ...encode(` ${xx}`)]);
    assert.equal(p.clean.length, 12, 'nouns are single tokens: every prompt has 12 tokens');
    assert.equal(p.corrupt.length, p.clean.length);
    assert.deepEqual(p.corrupt.slice(7, 8), yearTok(1));
    // correct = "YY+1".."99", incorrect = "00".."YY": single tokens, disjoint, all 100 endings.
    assert.deepEqual(p.correct.map((t) => decode([t])), Array.from({ length: 99 - yy }, (_, k) => two(yy + 1 + k)));
    assert.deepEqual(p.incorrect.map((t) => decode([t])), Array.from({ length: yy + 1 }, (_, k) => two(k)));
    for (const t of [...p.correct, ...p.incorrect]) assert.equal(encode(decode([t])).length, 1);
  });
  // The GPT-2 valid centuries: " 1001" is " 100" + "1", so the 11th to 18th centuries remain.
  const centuries = new Set(task.greaterThan.map((g) => Math.floor(g.year / 100)));
  assert.deepEqual([...centuries].sort(), [11, 12, 13, 14, 15, 16, 17, 18]);
});

test('greater-than draws: deterministic for a seed, different across seeds, start years spread over 02-98 for any n', () => {
  const a = generateGreaterThan({ n: 25, seed: 1 });
  assert.deepEqual(generateGreaterThan({ n: 25, seed: 1 }), a);
  assert.notDeepEqual(generateGreaterThan({ n: 25, seed: 2 }).greaterThan, a.greaterThan);
  const yys = a.greaterThan.map((g) => g.year % 100);
  assert.ok(Math.min(...yys) <= 10 && Math.max(...yys) >= 90, `YY ${yys} should cover the range`);
  assert.deepEqual(yys, [...yys].sort((x, y) => x - y), 'prompt i takes the ⌊i·97/n⌋-th ending');
  // n = 97: every ending 02..98 exactly once.
  assert.deepEqual(generateGreaterThan({ n: 97, seed: 5 }).greaterThan.map((g) => g.year % 100), Array.from({ length: 97 }, (_, k) => k + 2));
  const v = greaterThanVocabulary(loadTokenizer(join(tmp, 'none')));
  assert.equal(v.nouns.length, 120);
  // As get_valid_years: a century's first and last valid years are left out (1701 and 1799 for 17).
  assert.ok(!v.years.includes(1701) && !v.years.includes(1799) && v.years.includes(1702) && v.years.includes(1798));
});

test('--prepend-bos follows the original eos=True prompts: "<|endoftext|> The ..."', () => {
  const t = loadTask({ task: 'greater-than', n: 3, seed: 1, prependBos: true });
  assert.match(t.name, /,bos\)$/);
  t.pairs.forEach((p) => {
    assert.equal(p.clean[0], BOS_ID);
    assert.match(p.cleanText!, /^<\|endoftext\|> The /);
    assert.deepEqual(p.clean, encode(p.cleanText!));
  });
});

test('a tokenizer that splits digits gets one clear error; one with two-digit tokens runs the task', () => {
  const llama = loadTokenizer(writeTinyTokenizer(join(tmp, 'digits-split'), { words: ['war'] }));
  assert.throws(
    () => generateGreaterThan({ n: 2 }, llama),
    (e: unknown) => isCarveError(e) && /greater-than: .*tokenizer\.json splits the two-digit year ending "00" into 2 tokens .*tokenizers that split digits \(Llama, Mistral, Qwen2\) cannot run it/.test(e.message),
  );
  const pairs = loadTokenizer(writeTinyTokenizer(join(tmp, 'digit-pairs'), { words: ['The', 'war', 'siege', 'treaty', 'lasted', 'from', 'the', 'year', 'to'], digitPairs: true }));
  const t = generateGreaterThan({ n: 4, seed: 1, prependBos: false }, pairs);
  assert.match(t.name, /nouns=2\/120/, 'only "siege" and "treaty" are nouns of the list that are one token here ("war" is not in the list)');
  t.pairs.forEach((p, i) => {
    assert.ok(['siege', 'treaty'].includes(t.greaterThan[i]!.noun));
    assert.equal(p.clean.length, p.corrupt.length);
    assert.equal(p.correct.length + p.incorrect.length, 100);
  });
});

test('carve task greater-than writes list answers that round-trip through carve task FILE', () => {
  const out = join(tmp, 'gt.jsonl');
  const r = spawnSync(process.execPath, ['bin/carve.js', 'task', 'greater-than', '--n', '6', '--seed', '3', '--out', out, '--show', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /greater-than\(n=6,seed=3\): 6 prompt pairs/);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const task = generateGreaterThan({ n: 6, seed: 3 });
  rows.forEach((row, i) => {
    assert.ok(Array.isArray(row.correct) && Array.isArray(row.incorrect) && Array.isArray(row.correct_token));
    assert.deepEqual(row.correct_token, task.pairs[i]!.correct);
    assert.deepEqual(row.correct, task.pairs[i]!.correct.map((t) => decode([t])));
  });
  // Text form alone (token fields dropped) reads back to the same pairs.
  const textOnly = rows.map((row) => JSON.stringify({ clean: row.clean, corrupt: row.corrupt, correct: row.correct, incorrect: row.incorrect })).join('\n');
  assert.deepEqual(parseJsonlTask(textOnly, 'x.jsonl').pairs.map(({ clean, corrupt, correct, incorrect }) => ({ clean, corrupt, correct, incorrect })), task.pairs.map(({ clean, corrupt, correct, incorrect }) => ({ clean, corrupt, correct, incorrect })));
  const again = spawnSync(process.execPath, ['bin/carve.js', 'task', out, '--show', '0'], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, readFileSync(out, 'utf8'), 'rewriting the file gives the same file');
});

test('the greater-than task vocabulary holds every token of prompts of any seed (what compress --vocab task keeps)', async () => {
  const { greaterThanTaskVocabulary } = await import('../../src/task/greater-than.ts');
  const v = greaterThanTaskVocabulary(gpt2Tokenizer);
  const kept = new Set(v.tokens);
  let longest = 0;
  for (let seed = 0; seed < 30; seed++) {
    for (const prependBos of [false, true]) {
      for (const p of generateGreaterThan({ n: 40, seed, prependBos }).pairs) {
        for (const t of [...p.clean, ...p.corrupt, ...p.correct, ...p.incorrect]) assert.ok(kept.has(t), `seed ${seed}: token ${t} missing`);
        longest = Math.max(longest, p.clean.length);
      }
    }
  }
  assert.ok(longest <= v.maxLen && v.maxLen - longest <= 1, `maxLen ${v.maxLen} vs longest ${longest}`);
});
