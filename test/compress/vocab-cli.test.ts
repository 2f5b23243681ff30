import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/model/load.ts';
import { encode } from '../../src/tokenizer/gpt2.ts';
import { carve, carveHere, isUserError } from '../helpers/cli.ts';

let dir = '';
let trimmed = '';
const ALL = ['L0H0', 'L0H1', 'L0H2', 'L0H3', 'L1H0', 'L1H1', 'L1H2', 'L1H3', 'L2H0', 'L2H1', 'L2H2', 'L2H3', 'L0MLP', 'L1MLP', 'L2MLP'];
const PROMPT = 'When Mary and John went to the store, John gave a drink to';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'carve-vocab-cli-'));
  writeFileSync(join(dir, 'all.json'), JSON.stringify(ALL));
  writeFileSync(join(dir, 'extra.json'), JSON.stringify([' Zorro', 50256]));
  trimmed = join(dir, 'trimmed');
  const r = await carve(['compress', '--keep', join(dir, 'all.json'), '--n', '6', '--vocab', 'task', '--vocab-extra', join(dir, 'extra.json'), '--out', trimmed]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /vocabulary 50,257 -> \d+ tokens; context 64 -> \d+ positions/);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('a task-vocabulary model predicts like the untrimmed one: carve run by text and by --tokens (original ids)', async () => {
  const out = (name: string) => join(dir, `${name}.json`);
  const a = await carveHere(['run', '--prompt', PROMPT, '--top', '5', '--out', out('a')]);
  const b = await carveHere(['run', '--model', trimmed, '--prompt', PROMPT, '--top', '5', '--out', out('b')]);
  const c = await carveHere(['run', '--model', trimmed, '--tokens', encode(PROMPT + ' Zorro').join(','), '--top', '5', '--out', out('c')]);
  for (const r of [a, b, c]) assert.equal(r.code, 0, r.stderr);
  const read = (name: string) => JSON.parse(readFileSync(out(name), 'utf8'));
  const full = read('a');
  const cut = read('b');
  assert.deepEqual(cut.tokens, full.tokens, 'prompt ids stay the tokenizer ids');
  assert.deepEqual(cut.top.map((t: { id: number }) => t.id), full.top.map((t: { id: number }) => t.id));
  cut.top.forEach((t: { logit: number; token: string }, i: number) => {
    assert.ok(Math.abs(t.logit - full.top[i].logit) < 1e-5);
    assert.equal(t.token, full.top[i].token);
  });
  // --vocab-extra's " Zorro" is readable.
  assert.deepEqual(read('c').tokens, encode(PROMPT + ' Zorro'));
  const rec = JSON.parse(readFileSync(join(trimmed, 'carve-compress.json'), 'utf8'));
  const cfg = loadModelDir(trimmed).config;
  assert.equal(rec.vocab.n_tokens_after, cfg.vocabSize);
  assert.ok(cfg.vocab!.includes(encode(' Zorro')[0]) && cfg.vocab!.includes(50256));
});

test('eval on held-out IOI prompts (another seed) matches the untrimmed model', async () => {
  const args = ['--n', '12', '--seed', '77', '--prompt-type', 'ABBA', '--prepend-bos'];
  const a = await carveHere(['eval', ...args, '--out', join(dir, 'eval-full.json')]);
  const b = await carveHere(['eval', '--model', trimmed, ...args, '--out', join(dir, 'eval-cut.json')]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const full = JSON.parse(readFileSync(join(dir, 'eval-full.json'), 'utf8'));
  const cut = JSON.parse(readFileSync(join(dir, 'eval-cut.json'), 'utf8'));
  assert.ok(Math.abs(full.metric - cut.metric) < 1e-4, `${full.metric} vs ${cut.metric}`);
  assert.equal(full.accuracy, cut.accuracy);
  assert.ok(cut.n_params < full.n_params / 10);
});

test('bad input: out-of-vocabulary prompt, --max-len too short, unknown --vocab-extra token; one error line, exit 2, no output', async () => {
  const out = join(dir, 'never.json');
  const oov = await carveHere(['run', '--model', trimmed, '--prompt', 'When Mary and John went to Gandalf', '--out', out]);
  assert.ok(isUserError(oov), oov.stderr);
  assert.match(oov.stderr, /token \d+ \(" G\w*"\) is not in the model's vocabulary/);
  assert.ok(!existsSync(out));
  const oovTokens = await carveHere(['run', '--model', trimmed, '--tokens', '464,3290,318']);
  assert.ok(isUserError(oovTokens), oovTokens.stderr);
  assert.match(oovTokens.stderr, /token 3290 \(" dog"\)/);
  const oovTask = await carveHere(['eval', '--model', trimmed, '--task', 'ioi', '--n', '2', '--out', out]);
  assert.equal(oovTask.code, 0, 'IOI prompts of any seed run');

  const short = join(dir, 'short');
  const tooShort = await carveHere(['compress', '--keep', join(dir, 'all.json'), '--n', '2', '--vocab', 'task', '--max-len', '8', '--out', short]);
  assert.ok(isUserError(tooShort), tooShort.stderr);
  assert.match(tooShort.stderr, /--max-len 8: shorter than the task's longest prompt \(\d+ tokens/);
  assert.ok(!existsSync(short));

  writeFileSync(join(dir, 'bad-extra.json'), JSON.stringify([' Bob', 99999]));
  const badExtra = await carveHere(['compress', '--keep', join(dir, 'all.json'), '--n', '2', '--vocab', 'task', '--vocab-extra', join(dir, 'bad-extra.json'), '--out', short]);
  assert.ok(isUserError(badExtra), badExtra.stderr);
  assert.match(badExtra.stderr, /bad-extra\.json: entry 1: unknown token: token 99999 is outside the model's vocabulary of 50257/);
  assert.ok(!existsSync(short));
  // Trimming a trimmed model cannot bring back a token it dropped.
  writeFileSync(join(dir, 'gone.json'), JSON.stringify([' Gandalf']));
  const gone = await carveHere(['compress', '--model', trimmed, '--keep', join(dir, 'all.json'), '--n', '2', '--vocab', 'task', '--vocab-extra', join(dir, 'gone.json'), '--out', short]);
  assert.ok(isUserError(gone), gone.stderr);
  assert.match(gone.stderr, /gone\.json: entry 0: unknown token: token \d+ \(" G\w*"\) is not in the model's vocabulary/);
  assert.ok(!existsSync(short));
});

test('a JSONL task keeps exactly the tokens that occur in it', async () => {
  const jsonl = join(dir, 'task.jsonl');
  const rows = [
    { clean: 'When Mary and John went to the store, John gave a drink to', corrupt: 'When Alice and Bob went to the store, Bob gave a drink to', correct: ' Mary', incorrect: ' John' },
  ];
  writeFileSync(jsonl, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = join(dir, 'from-file');
  const r = await carveHere(['compress', '--keep', join(dir, 'all.json'), '--task', jsonl, '--vocab', 'task', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const expected = [...new Set([...encode(rows[0].clean), ...encode(rows[0].corrupt), ...encode(' Mary'), ...encode(' John')])].sort((a, b) => a - b);
  const cfg = loadModelDir(out).config;
  assert.deepEqual(cfg.vocab, expected);
  assert.equal(cfg.nCtx, Math.max(encode(rows[0].clean).length, encode(rows[0].corrupt).length));
});
