import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BOS_ID, VOCAB_SIZE, decode, encode, singleToken, tokenString } from '../../src/tokenizer/gpt2.ts';
import { CarveError } from '../../src/util/errors.ts';

test('GPT-2 BPE: known ids, BOS text, round trip', () => {
  assert.equal(VOCAB_SIZE, 50257);
  assert.equal(BOS_ID, 50256);
  // From the reference tokenization of 'When Victoria and Jane got a snack ...'.
  assert.deepEqual(encode('When Victoria and Jane got a snack'), [2215, 12313, 290, 12091, 1392, 257, 26906]);
  // Hugging Face's tokenizer turns the literal <|endoftext|> into the special token; so do we.
  assert.deepEqual(encode('<|endoftext|>When'), [BOS_ID, 2215]);
  const text = 'Naïve café — 東京, ok?';
  assert.equal(decode(encode(text)), text);
});

test('tokenString shows text tokens as text and partial UTF-8 tokens as bytes', () => {
  assert.equal(tokenString(12313), ' Victoria');
  assert.equal(tokenString(BOS_ID), '<|endoftext|>');
  assert.equal(tokenString(447), '<0xE2><0x80>');
  assert.throws(() => tokenString(VOCAB_SIZE), CarveError);
});

test('singleToken: exactly one token, or a CarveError naming where', () => {
  assert.equal(singleToken(' Mary', 'x'), 5335);
  assert.throws(() => singleToken('Mary Jane', 'f.jsonl:3: field "correct"'), (e: unknown) => e instanceof CarveError && /^f\.jsonl:3: field "correct": "Mary Jane" must be exactly one GPT-2 token, but it is 2/.test(e.message));
  assert.throws(() => singleToken('', 'here'), CarveError);
});
