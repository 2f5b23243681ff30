import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadJsonlTask, parseJsonlTask, writeJsonlTask } from '../../src/task/jsonl.ts';
import { loadTask } from '../../src/task/load.ts';
import { generateIoi } from '../../src/task/ioi.ts';
import { encode } from '../../src/tokenizer/gpt2.ts';
import { CarveError } from '../../src/util/errors.ts';

const F = 'tasks.jsonl';
const line = (o: object) => JSON.stringify(o);
const textRow = { clean: 'When Mary and John went to the store, John gave a drink to', corrupt: 'When Alice and Bob went to the store, Carl gave a drink to', correct: ' Mary', incorrect: ' John' };
const tokenRow = { clean_tokens: [464, 3290, 318], corrupt_tokens: [464, 3797, 318], correct_token: 257, incorrect_token: 262 };

/** Asserts a CarveError whose message matches every pattern (file:line, field ...). */
function throwsCarve(f: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof CarveError, `expected a CarveError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('text form: prompts and single-token answers are encoded', () => {
  const t = parseJsonlTask(line(textRow) + '\n', F);
  assert.equal(t.name, F);
  assert.equal(t.pairs.length, 1);
  const p = t.pairs[0]!;
  assert.deepEqual(p.clean, encode(textRow.clean));
  assert.deepEqual(p.corrupt, encode(textRow.corrupt));
  assert.deepEqual(p.correct, encode(' Mary'));
  assert.deepEqual(p.incorrect, encode(' John'));
  assert.equal(p.cleanText, textRow.clean);
});

test('token form, and token fields win over text fields field by field', () => {
  const t = parseJsonlTask([line(tokenRow), line({ ...textRow, ...tokenRow }), line({ ...textRow, correct_token: 99 })].join('\n'), F);
  assert.deepEqual(t.pairs[0], { clean: [464, 3290, 318], corrupt: [464, 3797, 318], correct: [257], incorrect: [262] });
  assert.deepEqual(t.pairs[1]!.clean, tokenRow.clean_tokens);
  assert.deepEqual(t.pairs[1]!.correct, [257]);
  assert.deepEqual(t.pairs[2]!.correct, [99]);
  assert.deepEqual(t.pairs[2]!.incorrect, encode(' John'));
});

test('blank lines are skipped but counted, so later errors name the right line', () => {
  const content = [line(textRow), '', '  ', line({ ...textRow, correct: ' Mary Jane' })].join('\n');
  throwsCarve(() => parseJsonlTask(content, F), /^tasks\.jsonl:4: /, /field "correct"/, /2 tokens|is 2/);
});

test('every malformed line is a CarveError naming file, line and field', () => {
  const cases: [string, RegExp[]][] = [
    ['{"clean": ', [/^tasks\.jsonl:2: not valid JSON/]],
    ['[1, 2]', [/^tasks\.jsonl:2: expected a JSON object/]],
    [line({ corrupt: 'a', correct: ' a', incorrect: ' b' }), [/^tasks\.jsonl:2: field "clean" \(or "clean_tokens"\) is missing/]],
    [line({ ...textRow, corrupt: 5 }), [/^tasks\.jsonl:2: field "corrupt": expected a string/]],
    [line({ ...textRow, clean: '' }), [/^tasks\.jsonl:2: field "clean": the prompt is empty/]],
    [line({ ...textRow, incorrect: ' Johnathan Smith' }), [/^tasks\.jsonl:2: field "incorrect": /, /exactly one GPT-2 token/]],
    [line({ ...textRow, correct: '' }), [/^tasks\.jsonl:2: field "correct": /, /exactly one/]],
    [line({ ...tokenRow, correct_token: 50257 }), [/^tasks\.jsonl:2: field "correct_token": /]],
    [line({ ...tokenRow, incorrect_token: '262' }), [/^tasks\.jsonl:2: field "incorrect_token": /]],
    [line({ ...tokenRow, clean_tokens: [464, 1.5] }), [/^tasks\.jsonl:2: field "clean_tokens\[1\]": /]],
    [line({ ...tokenRow, corrupt_tokens: 'abc' }), [/^tasks\.jsonl:2: field "corrupt_tokens": expected an array/]],
    [line({ ...tokenRow, corrupt_tokens: [] }), [/^tasks\.jsonl:2: field "corrupt_tokens": the prompt is empty/]],
    [line({ ...tokenRow, incorrect_token: 257 }), [/^tasks\.jsonl:2: field "incorrect_token": /, /same token/]],
  ];
  for (const [bad, patterns] of cases) throwsCarve(() => parseJsonlTask(line(textRow) + '\n' + bad + '\n', F), ...patterns);
});

test('answer sets in text and token form: lists of single tokens, checked like single answers', () => {
  const sets = { clean: 'The war lasted from the year 1732 to the year 17', corrupt: 'The war lasted from the year 1701 to the year 17', correct: ['33', '34'], incorrect: ['31', '32'] };
  const t = parseJsonlTask([line(sets), line({ ...tokenRow, correct_token: [257, 258], incorrect_token: [262] }), line({ ...sets, correct_token: [5] })].join('\n'), F);
  assert.deepEqual(t.pairs[0]!.correct, [...encode('33'), ...encode('34')]);
  assert.deepEqual(t.pairs[0]!.incorrect, [...encode('31'), ...encode('32')]);
  assert.deepEqual(t.pairs[1]!.correct, [257, 258]);
  assert.deepEqual(t.pairs[1]!.incorrect, [262]);
  assert.deepEqual(t.pairs[2]!.correct, [5], 'token fields win for sets too');
  const bad: [object, RegExp[]][] = [
    [{ ...sets, correct: [] }, [/^tasks\.jsonl:2: field "correct": the answer set is empty/]],
    [{ ...tokenRow, incorrect_token: [] }, [/^tasks\.jsonl:2: field "incorrect_token": the answer set is empty/]],
    [{ ...sets, incorrect: ['31', '33'] }, [/^tasks\.jsonl:2: field "incorrect\[1\]": token \d+ is in both the correct and the incorrect set/]],
    [{ ...tokenRow, correct_token: [1, 2], incorrect_token: [3, 2] }, [/^tasks\.jsonl:2: field "incorrect_token\[1\]": token 2 is in both/]],
    [{ ...sets, correct: ['33', ' 1732'] }, [/^tasks\.jsonl:2: field "correct\[1\]": " 1732" must be exactly one GPT-2 token, but it is 2/]],
    [{ ...sets, incorrect: ['31', 32] }, [/^tasks\.jsonl:2: field "incorrect\[1\]": expected a string/]],
    [{ ...tokenRow, correct_token: [257, -1] }, [/^tasks\.jsonl:2: field "correct_token\[1\]": expected a GPT-2 token id/]],
    [{ ...tokenRow, correct_token: [257, 257] }, [/^tasks\.jsonl:2: field "correct_token\[1\]": token 257 is already in the set/]],
  ];
  for (const [row, patterns] of bad) throwsCarve(() => parseJsonlTask(line(sets) + '\n' + line(row), F), ...patterns);
});

test('a prompt longer than the model context is a CarveError naming line and field', () => {
  const long = { ...tokenRow, clean_tokens: [1, 2, 3, 4, 5], corrupt_tokens: [1, 2, 3, 4, 5] };
  assert.equal(parseJsonlTask(line(long), F, { nCtx: 5 }).pairs.length, 1);
  throwsCarve(() => parseJsonlTask(line(tokenRow) + '\n' + line(long), F, { nCtx: 4 }), /^tasks\.jsonl:2: field "clean_tokens": /, /5 tokens/, /context of 4/);
  throwsCarve(() => parseJsonlTask(line({ ...textRow, corrupt: textRow.corrupt + ' and more words here' }), F, { nCtx: 16 }), /^tasks\.jsonl:1: field "corrupt": /, /context of 16/);
});

test('requireEqualLengths: a corrupt prompt of another length is a CarveError naming line and field', () => {
  const uneven = { ...tokenRow, corrupt_tokens: [464, 3797] };
  assert.equal(parseJsonlTask(line(uneven), F).pairs.length, 1, 'fine unless resample ablation asks');
  throwsCarve(() => parseJsonlTask(line(tokenRow) + '\n' + line(uneven), F, { requireEqualLengths: true }), /^tasks\.jsonl:2: field "corrupt_tokens": /, /2 tokens against 3/);
  throwsCarve(() => parseJsonlTask(line({ ...textRow, corrupt: 'Short one' }), F, { requireEqualLengths: true }), /^tasks\.jsonl:1: field "corrupt": /);
});

test('an empty or missing file is a CarveError naming it', () => {
  throwsCarve(() => parseJsonlTask('\n\n', F), /^tasks\.jsonl: no prompt pairs/);
  throwsCarve(() => loadJsonlTask('/nonexistent/dir/tasks.jsonl'), /^\/nonexistent\/dir\/tasks\.jsonl: no such task file/);
});

test('an IOI task written as JSONL has text and token fields plus IOI extras, and loads back to the same pairs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-task-'));
  try {
    const ioi = generateIoi({ n: 6, seed: 3, prependBos: true });
    const path = join(dir, 'sub', 'ioi.jsonl');
    writeJsonlTask(path, ioi);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['ioi.jsonl'], 'no temporary file left behind');
    const rows = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 6);
    for (const key of ['clean', 'corrupt', 'correct', 'incorrect', 'clean_tokens', 'corrupt_tokens', 'correct_token', 'incorrect_token', 'io', 's', 'template_index', 'kind', 'positions']) {
      assert.ok(key in rows[0], key);
    }
    assert.equal(rows[0].correct, ' ' + rows[0].io);
    assert.ok(rows[0].kind === 'ABBA' || rows[0].kind === 'BABA');
    const back = loadJsonlTask(path, { nCtx: 1024, requireEqualLengths: true });
    assert.deepEqual(back.pairs.map((p) => [p.clean, p.corrupt, p.correct, p.incorrect]), ioi.pairs.map((p) => [p.clean, p.corrupt, p.correct, p.incorrect]));
    // The text fields alone reproduce the tokens too (BOS is written as <|endoftext|>).
    const textOnly = rows.map((r) => line({ clean: r.clean, corrupt: r.corrupt, correct: r.correct, incorrect: r.incorrect })).join('\n');
    writeFileSync(join(dir, 'text.jsonl'), textOnly);
    assert.deepEqual(loadJsonlTask(join(dir, 'text.jsonl')).pairs.map((p) => p.clean), ioi.pairs.map((p) => p.clean));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadTask: "ioi" generates, applying the same context check; anything else is a JSONL path', () => {
  assert.equal(loadTask({ task: 'ioi', n: 3 }).pairs.length, 3);
  throwsCarve(() => loadTask({ task: 'ioi', n: 3 }, { nCtx: 10 }), /ioi\(n=3,seed=1,mixed\) prompt 0: field "clean": /, /context of 10/);
  throwsCarve(() => loadTask({ task: 'missing.jsonl' }), /^missing\.jsonl: no such task file/);
});
