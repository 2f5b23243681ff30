import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateIoi, generateIoiPrompts, ioiTemplates, labelKind } from '../../src/task/ioi.ts';
import { ABBA_TEMPLATES, BABA_TEMPLATES, NAMES, toAbba } from '../../src/task/ioi-data.ts';
import { DEFAULT_FLIP, flipSeed, parseFlip } from '../../src/task/flip.ts';
import { PyRandom } from '../../src/task/random-python.ts';
import { BOS_ID, encode } from '../../src/tokenizer/gpt2.ts';
import { CarveError } from '../../src/util/errors.ts';
import type { IoiPromptType } from '../../src/task/types.ts';
import {
  PY_FLIPS,
  PY_PROMPTS,
  REF_IO_TOKENS,
  REF_S_TOKENS,
  REF_SEED1_N25,
  REF_SHUFFLED_MIXED_SEED1,
  REF_TOKS,
  REF_WORD_IDX,
} from './ioi-fixtures.ts';

const ref25 = generateIoi({ n: 25, seed: 1, promptType: 'mixed' });

test('ABBA templates are derived from the BABA ones as the reference derives them', () => {
  assert.equal(ABBA_TEMPLATES.length, 15);
  assert.equal(ABBA_TEMPLATES[0], 'Then, [A] and [B] went to the [PLACE]. [B] gave a [OBJECT] to [A]');
  assert.equal(ABBA_TEMPLATES[13], 'The [PLACE] [A] and [B] went to had a [OBJECT]. [B] gave it to [A]');
  assert.equal(toAbba('[B] [B] x [A] y [B] [A]'), '[A] [A] x [B] y [B] [A]');
  assert.equal(NAMES.length, 109);
  for (const name of NAMES) assert.equal(encode(' ' + name).length, 1, name);
});

test("'mixed' templates: BABA[:7] + ABBA[:7], shuffled by random.shuffle after random.seed(1)", () => {
  assert.deepEqual(ioiTemplates('mixed', new PyRandom(1)), REF_SHUFFLED_MIXED_SEED1);
  assert.deepEqual(ioiTemplates('ABBA', new PyRandom(1)), ABBA_TEMPLATES);
  assert.deepEqual(ioiTemplates('BABA', new PyRandom(1)), BABA_TEMPLATES);
});

test('seed 1, N 25, mixed: text, IO, S, template index and label equal the Python reference', () => {
  const got = ref25.ioi.map((x) => [x.text, x.io, x.s, x.templateIndex, x.kind]);
  assert.deepEqual(got, REF_SEED1_N25);
  assert.equal(ref25.name, 'ioi(n=25,seed=1,mixed)');
});

test('seed 1, N 25: tokens, answers and word_idx equal the reference tokenization', () => {
  ref25.pairs.forEach((p, i) => {
    assert.deepEqual(p.clean, REF_TOKS[i]!.slice(0, -1), `clean prompt ${i} is the sentence minus its final IO token`);
    assert.deepEqual(p.correct, [REF_IO_TOKENS[i]]);
    assert.deepEqual(p.incorrect, [REF_S_TOKENS[i]]);
    assert.equal(p.cleanText, REF_SEED1_N25[i]![0].slice(0, -(REF_SEED1_N25[i]![1].length + 1)));
    const pos = ref25.ioi[i]!.positions;
    for (const key of ['IO', 'S1', 'S2', 'end', 'punct'] as const) assert.equal(pos[key], REF_WORD_IDX[key][i], `${key} of prompt ${i}`);
    assert.equal(pos['IO-1'], pos.IO! - 1);
    assert.equal(pos['IO+1'], pos.IO! + 1);
    assert.equal(pos['S1-1'], pos.S1! - 1);
    assert.equal(pos['S1+1'], pos.S1! + 1);
    assert.equal(pos.starts, 0);
    assert.equal(pos.end, p.clean.length - 1, 'the metric position is the last clean token');
    assert.deepEqual([p.clean[pos.IO!]], p.correct);
    assert.deepEqual([p.clean[pos.S1!]], p.incorrect);
    assert.deepEqual([p.clean[pos.S2!]], p.incorrect);
  });
});

test('other prompt types and seeds equal the Python re-implementation', () => {
  for (const [key, expected] of Object.entries(PY_PROMPTS)) {
    const [type, n, seed] = key.split('_');
    const got = generateIoiPrompts(Number(n), Number(seed), type as IoiPromptType).map((p) => [p.text, p.io, p.s, p.templateIndex, p.kind]);
    assert.deepEqual(got, expected, key);
  }
});

test('the Andre/Andrew quirk: the ABBA/BABA label compares substring positions, as the reference does', () => {
  assert.equal(labelKind('Then, Andrew and Andre went. Andre gave it to Andrew', 'Andrew', 'Andre'), 'BABA');
  assert.equal(labelKind('Then, Andre and Andrew went. Andrew gave it to Andre', 'Andre', 'Andrew'), 'ABBA');
  // seed 198, ABBA, prompt 8 is the first such case; the reference labels it BABA.
  const p = generateIoiPrompts(9, 198, 'ABBA')[8]!;
  assert.equal(p.text, 'Then, Andrew and Andre were thinking about going to the school. Andre wanted to give a necklace to Andrew');
  assert.equal(p.kind, 'BABA');
  // ... so its flip uses the BABA rule (checked against the Python re-implementation).
  const t = generateIoi({ n: 9, seed: 198, promptType: 'ABBA' });
  assert.equal(t.ioi[8]!.corruptFullText, 'Then, Crystal and George were thinking about going to the school. Aaron wanted to give a necklace to Andrew');
  assert.equal(t.ioi[8]!.corruptIo, 'George');
  assert.equal(t.ioi[8]!.corruptS, 'Aaron');
  // A BAB rule on that ABBA-shaped prompt gives letter B two names; like the reference, the last wins.
  const swapped = generateIoi({ n: 9, seed: 198, promptType: 'ABBA', flip: 'ABB->BAB, BAB->ABB' });
  assert.equal(swapped.ioi[8]!.corruptFullText, 'Then, Andre and Andre were thinking about going to the school. Andre wanted to give a necklace to Andrew');
  assert.equal(swapped.ioi[7]!.corruptFullText, 'When Richard and Grant got a computer at the school, Richard decided to give it to Grant');
});

test('flip seed is seed + the sum of the flip string character codes (1220 for the default at seed 1)', () => {
  assert.equal(flipSeed(1, DEFAULT_FLIP), 1220);
  assert.equal(flipSeed(0, 'ABB->XYZ, BAB->XYZ'), 1218);
});

test('flips equal the Python re-implementation run in carve\'s fixed name order', () => {
  for (const [flip, expected] of Object.entries(PY_FLIPS)) {
    const t = generateIoi({ n: 25, seed: 1, flip });
    const got = t.ioi.slice(0, expected.length).map((x) => [x.corruptFullText, x.corruptIo, x.corruptS]);
    assert.deepEqual(got, expected, flip);
    t.pairs.forEach((p, i) => {
      assert.deepEqual(p.correct, ref25.pairs[i]!.correct, 'the answer stays the clean IO');
      assert.deepEqual(p.incorrect, ref25.pairs[i]!.incorrect);
      assert.equal(p.corrupt.length, p.clean.length, 'names are single tokens, so lengths match');
      assert.deepEqual(p.corrupt, encode(t.ioi[i]!.corruptFullText!).slice(0, -1));
    });
  }
});

test('flips are deterministic: two generations agree, and the default flip renames the three names', () => {
  const a = generateIoi({ n: 40, seed: 7 });
  const b = generateIoi({ n: 40, seed: 7 });
  assert.deepEqual(a.pairs, b.pairs);
  assert.deepEqual(a.ioi, b.ioi);
  const first = ref25.ioi[0]!;
  assert.equal(first.corruptFullText, 'When Stephen and Richard got a snack at the store, Justin decided to give it to Victoria');
  assert.equal(ref25.pairs[0]!.corruptText, 'When Stephen and Richard got a snack at the store, Justin decided to give it to');
  // A different flip string reseeds numpy, so it draws other names.
  const other = generateIoi({ n: 25, seed: 1, flip: 'ABB->XYZ, BAB->XYZ' });
  assert.notDeepEqual(other.pairs.map((p) => p.corrupt), ref25.pairs.map((p) => p.corrupt));
});

test('flip strings: the reference grammar is accepted, anything else is a CarveError naming --flip', () => {
  assert.deepEqual(parseFlip(DEFAULT_FLIP).abba, { orig: ['A', 'B', 'C'], next: ['X', 'Y', 'Z'] });
  assert.deepEqual(parseFlip('ABB->BAB,BAB->ABB').baba, { orig: ['B', 'A', 'B'], next: ['A', 'B', 'B'] });
  for (const bad of ['ABC->XYZ', 'ABC->XYZ, BAB->XYZ, X->Y', 'ABC-XYZ, BAB->XYZ', 'ABC->, BAB->XYZ', 'ABC->X->Y, BAB->XYZ']) {
    assert.throws(() => parseFlip(bad), (e: unknown) => e instanceof CarveError && /^--flip: /.test(e.message), bad);
  }
  // Letters before "->" that have no name in the prompt cannot be kept.
  assert.throws(() => generateIoi({ n: 2, seed: 1, flip: 'ABCD->XYD, BAB->XYZ' }), CarveError);
});

test('--prepend-bos: BOS 50256 first, IO/S1/S2/end shifted by one, punct and starts as the reference leaves them', () => {
  const bos = generateIoi({ n: 25, seed: 1, prependBos: true });
  assert.equal(bos.name, 'ioi(n=25,seed=1,mixed,bos)');
  bos.pairs.forEach((p, i) => {
    const plain = ref25.pairs[i]!;
    assert.deepEqual(p.clean, [BOS_ID, ...plain.clean]);
    assert.deepEqual(p.corrupt, [BOS_ID, ...plain.corrupt]);
    assert.ok(p.cleanText!.startsWith('<|endoftext|>'));
    assert.deepEqual(encode(p.cleanText!), p.clean, 'the text form encodes to the token form');
    const pos = bos.ioi[i]!.positions;
    const pos0 = ref25.ioi[i]!.positions;
    for (const key of ['IO', 'IO-1', 'IO+1', 'S1', 'S1-1', 'S1+1', 'S2', 'end']) assert.equal(pos[key], pos0[key]! + 1, key);
    // get_word_idxs tokenizes the sentence without BOS, so the reference's punct does not move.
    assert.equal(pos.punct, pos0.punct);
    assert.equal(pos.starts, 0);
    assert.equal(pos.end, p.clean.length - 1);
    assert.deepEqual([p.clean[pos.IO!]], p.correct);
    assert.deepEqual([p.clean[pos.S2!]], p.incorrect);
  });
});

test('bad IOI options are CarveErrors naming the flag', () => {
  const cases: [object, RegExp][] = [
    [{ n: 0 }, /^--n: /],
    [{ n: 2.5 }, /^--n: /],
    [{ seed: -1 }, /^--seed: /],
    [{ seed: 2 ** 32 }, /^--seed: /],
    [{ seed: 2 ** 32 - 10 }, /^--seed: .*exceeds/],
    [{ promptType: 'ABC' }, /^--prompt-type: /],
  ];
  for (const [opts, re] of cases) assert.throws(() => generateIoi(opts), (e: unknown) => e instanceof CarveError && re.test(e.message), JSON.stringify(opts));
});
