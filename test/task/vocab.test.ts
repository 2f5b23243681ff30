import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIoi, IOI_PROMPT_TYPES } from '../../src/task/ioi.ts';
import { BOS_ID, encode } from '../../src/tokenizer/gpt2.ts';
import { ioiVocabulary, pairsVocabulary } from '../../src/task/vocab.ts';

test('the IOI vocabulary covers every prompt of many seeds, prompt types, flips and --prepend-bos', () => {
  const v = ioiVocabulary(encode, BOS_ID);
  const kept = new Set(v.tokens);
  assert.deepEqual(v.tokens, [...v.tokens].sort((a, b) => a - b));
  assert.ok(kept.has(BOS_ID));
  // Far smaller than GPT-2's vocabulary, and at least every name (each one token).
  assert.ok(v.tokens.length > 109 && v.tokens.length < 400, `${v.tokens.length} tokens`);
  let longest = 0;
  let prompts = 0;
  const flips = ['ABC->XYZ, BAB->XYZ', 'ABB->XYY, BAB->XYX', 'ABB->CDD, BAB->DCD'];
  for (let seed = 0; seed < 40; seed++) {
    for (const promptType of IOI_PROMPT_TYPES) {
      const task = generateIoi({ n: 30, seed, promptType, flip: flips[seed % flips.length], prependBos: seed % 2 === 0 });
      for (const p of task.pairs) {
        for (const t of [...p.clean, ...p.corrupt, ...p.correct, ...p.incorrect]) assert.ok(kept.has(t), `seed ${seed} ${promptType}: token ${t} missing`);
        longest = Math.max(longest, p.clean.length, p.corrupt.length);
        prompts++;
      }
    }
  }
  assert.equal(prompts, 40 * 3 * 30);
  assert.ok(longest <= v.maxLen, `a prompt of ${longest} tokens exceeds maxLen ${v.maxLen}`);
  // The bound is tight to within the longest place/object choice, not a loose guess.
  assert.ok(v.maxLen - longest <= 2, `maxLen ${v.maxLen} vs longest seen ${longest}`);
});

test('a task file vocabulary is what occurs in its pairs', () => {
  const v = pairsVocabulary([
    { clean: [5, 9, 5], corrupt: [7, 9, 5, 1], correct: [3], incorrect: [9] },
    { clean: [2], corrupt: [2], correct: [4], incorrect: [5] },
  ]);
  assert.deepEqual(v.tokens, [1, 2, 3, 4, 5, 7, 9]);
  assert.equal(v.maxLen, 4);
});
