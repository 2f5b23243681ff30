import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '../../src/tokenizer/load.ts';
import { gpt2Tokenizer } from '../../src/tokenizer/gpt2.ts';
import { promptTokens, singleToken, wantsBos } from '../../src/tokenizer/text.ts';
import { parseJsonlTask } from '../../src/task/jsonl.ts';
import { generateIoi } from '../../src/task/ioi.ts';
import { CarveError, isCarveError } from '../../src/util/errors.ts';
import { tinyTokenizerJson, writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-tok-'));
const NAMES = ['Mary', 'John', 'Anna'];
const llamaLike = writeTinyTokenizer(join(tmp, 'llama-like'), { words: NAMES });
const vocab = tinyTokenizerJson({ words: NAMES }).model as { vocab: Record<string, number> };
const MARY = vocab.vocab['▁Mary']!;
const JOHN = vocab.vocab['▁John']!;

test('a directory without tokenizer.json gets GPT-2 BPE; with one, that tokenizer', () => {
  mkdirSync(join(tmp, 'plain'), { recursive: true });
  assert.equal(loadTokenizer(join(tmp, 'plain')), gpt2Tokenizer);
  const t = loadTokenizer(llamaLike);
  assert.notEqual(t, gpt2Tokenizer);
  assert.equal(t.name, join(llamaLike, 'tokenizer.json'));
  assert.equal(t.vocabSize, Math.max(...Object.values(vocab.vocab)) + 1);
});

test('tokenizer.json: BOS follows the post-processor; encode adds no special tokens; answers are continuation tokens', () => {
  const t = loadTokenizer(llamaLike);
  assert.equal(t.addsBos, true, 'TemplateProcessing "<s> $A" adds BOS');
  assert.deepEqual(t.bos, { id: 1, text: '<s>' });
  const ids = t.encode('Mary and John');
  assert.equal(ids[0], MARY, 'the first word is marked as a word start, and no <s> is added');
  assert.equal(ids.at(-1), JOHN);
  assert.equal(t.decode(ids), 'Mary and John');
  // A word after other text: "▁Mary", one token; written back as " Mary".
  assert.deepEqual(t.encodeContinuation(' Mary'), [MARY]);
  assert.equal(singleToken(t, ' Mary', 'here'), MARY);
  assert.equal(t.tokenText(MARY), ' Mary');
  assert.equal(t.tokenString(MARY), ' Mary');
  assert.throws(() => singleToken(t, ' Maryann', 'f.jsonl:2: field "correct"'), (e: unknown) => isCarveError(e) && /^f\.jsonl:2: field "correct": " Maryann" must be exactly one token for .*tokenizer\.json, but it is \d/.test(e.message));
  // Prompts: BOS unless the user says otherwise (and never twice).
  assert.equal(wantsBos(t, undefined), true);
  assert.equal(wantsBos(t, false), false);
  assert.deepEqual(promptTokens(t, 'Mary', true), [1, MARY]);
  assert.deepEqual(promptTokens(t, '<s>Mary', true), t.encode('<s>Mary'), 'a text that starts with <s> gets no second one');
  assert.equal(t.encode('<s>Mary')[0], 1);
  assert.deepEqual(promptTokens(t, 'Mary', false), [MARY]);
});

test('tokenizer.json without a BOS post-processor: no BOS by default; the BOS token from tokenizer_config.json or its spelling', () => {
  const dir = writeTinyTokenizer(join(tmp, 'no-bos'), { words: NAMES, addBos: false });
  const t = loadTokenizer(dir);
  assert.equal(t.addsBos, false);
  assert.deepEqual(t.bos, { id: 1, text: '<s>' });
  assert.equal(wantsBos(t, undefined), false);
  assert.deepEqual(promptTokens(t, 'Mary', wantsBos(t, true)), [1, MARY]);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '</s>' } }));
  assert.deepEqual(loadTokenizer(dir).bos, { id: 2, text: '</s>' });
});

test('an unparseable or malformed tokenizer.json: one CarveError naming the file; the CLI prints one line and exits 2', () => {
  const cases: [string, RegExp][] = [
    ['{"model": ', /not valid JSON/],
    ['[1, 2]', /must be a JSON object/],
    ['{"added_tokens": []}', /field "model"/],
    [JSON.stringify({ model: { type: 'Nonsense', vocab: {} } }), /tokenizer\.json/],
  ];
  cases.forEach(([text, pattern], i) => {
    const dir = join(tmp, `broken-${i}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), text);
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof CarveError && e.message.includes(join(dir, 'tokenizer.json')) && pattern.test(e.message), text);
  });
  const r = spawnSync(process.execPath, ['bin/carve.js', 'task', 'ioi', '--n', '2', '--model', join(tmp, 'broken-0')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^carve: error: .*broken-0\/tokenizer\.json: .*not valid JSON/);
});

test("a JSONL task through tokenizer.json: text prompts start with its BOS, answers (and sets) are its tokens", () => {
  const t = loadTokenizer(llamaLike);
  const row = { clean: 'Mary and John saw', corrupt: 'Anna and John saw', correct: ' Mary', incorrect: [' John', ' Anna'] };
  const task = parseJsonlTask(JSON.stringify(row), 'f.jsonl', {}, { tokenizer: t, bos: true });
  const p = task.pairs[0]!;
  assert.deepEqual(p.clean, [1, ...t.encode(row.clean)]);
  assert.deepEqual(p.correct, [MARY]);
  assert.deepEqual(p.incorrect, [JOHN, vocab.vocab['▁Anna']]);
  const noBos = parseJsonlTask(JSON.stringify(row), 'f.jsonl', {}, { tokenizer: t, bos: false });
  assert.deepEqual(noBos.pairs[0]!.clean, t.encode(row.clean));
});

test('IOI on another tokenizer keeps the names that are one token, deterministically, and says so', () => {
  const t = loadTokenizer(llamaLike);
  const a = generateIoi({ n: 8, seed: 3 }, t);
  assert.deepEqual(generateIoi({ n: 8, seed: 3 }, t), a, 'the same seed gives the same task');
  assert.match(a.name, /^ioi\(n=8,seed=3,mixed,bos,names=3\/109\)$/);
  assert.ok(a.notes?.some((n) => /3 of the 109 names are one token/.test(n)));
  a.ioi.forEach((x, i) => {
    assert.ok(NAMES.includes(x.io) && NAMES.includes(x.s), `${x.io}/${x.s}`);
    const p = a.pairs[i]!;
    assert.equal(p.clean[0], 1, 'the post-processor adds BOS, so the prompts start with it');
    assert.deepEqual([p.clean[x.positions.IO!]], p.correct);
    assert.deepEqual([p.clean[x.positions.S2!]], p.incorrect);
    assert.deepEqual([...p.clean, p.correct[0]], [1, ...t.encode(x.text!)], 'the prompt is the sentence without its final name');
  });
  const plain = generateIoi({ n: 8, seed: 3, prependBos: false }, t);
  assert.ok(plain.pairs.every((p, i) => p.clean[0] !== 1 && p.clean.length === a.pairs[i]!.clean.length - 1));
  // Fewer than three usable names: the task cannot be made.
  const two = loadTokenizer(writeTinyTokenizer(join(tmp, 'two-names'), { words: ['Mary', 'John'] }));
  assert.throws(() => generateIoi({ n: 2 }, two), (e: unknown) => isCarveError(e) && /only 2 of the 109 IOI names are one token/.test(e.message));
});

/** ../shared/tokenizers (beside the checkout, or beside its worktree folder), when present. */
function sharedTokenizer(name: string): string | undefined {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return [join(root, '..', 'shared'), join(root, '..', '..', 'shared')].map((d) => join(d, 'tokenizers', name)).find((d) => existsSync(join(d, 'tokenizer.json')));
}

const neox = sharedTokenizer('gpt-neox-20b');
test("Pythia's real tokenizer.json (GPT-NeoX-20B): no BOS added, known ids, the IOI prompts of GPT-2", { skip: neox === undefined && 'shared/tokenizers/gpt-neox-20b is not here' }, () => {
  const t = loadTokenizer(neox!);
  assert.equal(t.addsBos, false);
  assert.deepEqual(t.bos, { id: 0, text: '<|endoftext|>' });
  assert.equal(t.vocabSize, 50277);
  assert.deepEqual(t.encodeContinuation(' Mary'), [6393]);
  assert.deepEqual(t.encode('<|endoftext|>When'), [0, 3039]);
  // Every IOI name is one token here too: the same sentences as with GPT-2, other ids.
  const a = generateIoi({ n: 10, seed: 1 }, t);
  const g = generateIoi({ n: 10, seed: 1 });
  assert.equal(a.name, g.name);
  assert.deepEqual(a.pairs.map((p) => p.cleanText), g.pairs.map((p) => p.cleanText));
  a.pairs.forEach((p, i) => assert.deepEqual([...p.clean, ...p.correct], t.encode(a.ioi[i]!.text!)));
});
