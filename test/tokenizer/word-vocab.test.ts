import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import { byteSymbols, preTokenize, wordVocabTokenizer } from '../../src/tokenizer/word-vocab.ts';

const texts = ['When Mary and John went to the store, John gave a drink to Mary', 'Then, Anna and Bob had fun.'];
const load = (addBos: boolean) => new Tokenizer(wordVocabTokenizer(texts, { bos: '<|endoftext|>', addBos }), {});

test('byte symbols: 256 distinct characters, printable bytes map to themselves (GPT-2 byte-level)', () => {
  const s = byteSymbols();
  assert.equal(new Set(s).size, 256);
  assert.equal(s[0x41], 'A');
  assert.equal(s[0x20], 'Ġ');
  assert.equal(s[0x0a], 'Ċ');
});

test('every word of the texts is one token; other text falls back to bytes and still round-trips', () => {
  const t = load(false);
  for (const text of texts) {
    const e = t.encode(text);
    assert.deepEqual(e.tokens, preTokenize(text), text);
    assert.equal(t.decode(e.ids), text);
  }
  const odd = 'Zoë met Mary\n';
  const e = t.encode(odd);
  assert.ok(e.ids.includes(t.token_to_id('ĠMary')!));
  assert.ok(e.ids.some((id: number) => id >= 1 && id <= 256), 'unknown words are spelled in bytes');
  assert.equal(t.decode(e.ids), odd);
});

test('BOS at id 0 comes from the post-processor when asked; ids are deterministic', () => {
  const withBos = load(true).encode('Mary and John');
  const without = load(false).encode('Mary and John');
  assert.deepEqual(withBos.ids, [0, ...without.ids]);
  assert.deepEqual(wordVocabTokenizer(texts, { bos: '<s>', addBos: true }), wordVocabTokenizer(texts, { bos: '<s>', addBos: true }));
  const vocab = (wordVocabTokenizer(texts, { bos: '<s>', addBos: false }).model as { vocab: Record<string, number> }).vocab;
  assert.equal(vocab['<s>'], 0);
  assert.equal(vocab.When, 257, 'the first word follows the 256 byte symbols');
});
