/**
 * The task layer across commands: --metric and metric_name, the model's tokenizer.json for text,
 * and bad input (answer sets, unknown metric) as one `carve: error:` line with exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';
import { writeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-task-layer-'));
// GPT-2's vocabulary: greater-than's year tokens are ids in the thousands.
const gpt2Dir = makeRandomGpt2(join(dir, 'gpt2'), { nLayer: 1, nHead: 2, dModel: 16, nCtx: 32, vocabSize: 50257, seed: 4 });
// A model whose directory has a Llama-style tokenizer.json (BOS added by its post-processor).
const tokDir = writeTinyTokenizer(makeRandomGpt2(join(dir, 'with-tokenizer'), { nLayer: 1, nHead: 2, dModel: 16, nCtx: 96, vocabSize: 200, seed: 5 }), { words: ['Mary', 'John', 'Anna'] });

function carve(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['bin/carve.js', ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('--metric: the default is the task\'s own (greater-than: prob-diff), the flag overrides it, and every JSON names it', async () => {
  const gt = ['--model', gpt2Dir, '--task', 'greater-than', '--n', '6', '--threads', '1'];
  const [ev, evLd, sc, pr] = await Promise.all([
    carve(['eval', ...gt, '--json']),
    carve(['eval', ...gt, '--json', '--metric', 'logit-diff']),
    carve(['scan', ...gt, '--method', 'attribution', '--ablation', 'resample', '--metric', 'kl']),
    carve(['prune', ...gt, '--order', 'scores', '--ablation', 'zero', '--components', 'heads']),
  ]);
  for (const r of [ev, evLd, sc, pr]) assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(ev.stdout);
  assert.equal(e.metric_name, 'prob-diff');
  assert.ok(Math.abs(e.metric) <= 1 && e.accuracy >= 0 && e.accuracy <= 1);
  assert.equal(JSON.parse(evLd.stdout).metric_name, 'logit-diff');
  const s = JSON.parse(sc.stdout);
  assert.equal(s.metric_name, 'kl');
  // At the clean run KL sits at its minimum, so its gradient — and every attribution score — is ~0.
  assert.ok(s.components.every((c: { score: number }) => Math.abs(c.score) < 1e-5));
  const p = JSON.parse(pr.stdout);
  assert.equal(p.metric_name, 'prob-diff');
  assert.equal(p.steps[0].metric, p.clean_metric);
});

test('bad input: an empty answer set, a token in both sets, a multi-token answer in a set, an unknown metric: one error line, exit 2, no output', async () => {
  const row = { clean: 'The war lasted from the year 1732 to the year 17', corrupt: 'The war lasted from the year 1701 to the year 17', correct: ['33', '34'], incorrect: ['31', '32'] };
  const files: [object, RegExp][] = [
    [{ ...row, incorrect: [] }, /bad-0\.jsonl:2: field "incorrect": the answer set is empty/],
    [{ ...row, incorrect: ['31', '34'] }, /bad-1\.jsonl:2: field "incorrect\[1\]": token \d+ is in both the correct and the incorrect set/],
    [{ ...row, correct: ['33', ' 34 35'] }, /bad-2\.jsonl:2: field "correct\[1\]": " 34 35" must be exactly one GPT-2 token/],
  ];
  const runs = files.map(([bad], i) => {
    const path = join(dir, `bad-${i}.jsonl`);
    writeFileSync(path, JSON.stringify(row) + '\n' + JSON.stringify(bad) + '\n');
    return carve(['scan', '--model', gpt2Dir, '--task', path, '--out', join(dir, `never-${i}.json`)]);
  });
  runs.push(carve(['eval', '--model', gpt2Dir, '--metric', 'accuracy', '--out', join(dir, 'never-3.json')]));
  runs.push(carve(['compress', '--model', gpt2Dir, '--metric', 'kl', '--target', '0.8', '--out', join(dir, 'never-4')]));
  const patterns = [...files.map(([, p]) => p), /--metric: expected one of logit-diff, prob-diff, kl, got "accuracy"/, /--target with --metric kl/];
  const results = await Promise.all(runs);
  results.forEach((r, i) => {
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^carve: error: /);
    assert.match(lines[0]!, patterns[i]!);
    assert.ok(!existsSync(join(dir, `never-${i}.json`)) && !existsSync(join(dir, `never-${i}`)));
  });
});

test("a model with tokenizer.json: run, task and eval tokenise with it (BOS from its post-processor); compress copies it", async () => {
  const keep = join(dir, 'keep.txt');
  writeFileSync(keep, 'L0H1\n');
  const out = join(dir, 'compressed');
  const ioi = ['--task', 'ioi', '--n', '4', '--threads', '1'];
  const [run, task, comp] = await Promise.all([
    carve(['run', '--model', tokDir, '--prompt', 'Mary and John', '--json']),
    carve(['task', 'ioi', '--n', '4', '--model', tokDir, '--show', '0']),
    carve(['compress', '--model', tokDir, ...ioi, '--ablation', 'zero', '--keep', keep, '--out', out]),
  ]);
  for (const r of [run, task, comp]) assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(run.stdout).tokens[0], 1, 'the <s> of the post-processor comes first');
  const rows = task.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(rows.every((r) => r.clean_tokens[0] === 1 && ['Mary', 'John', 'Anna'].includes(r.io)));
  assert.match(task.stderr, /carve: note: ioi: 3 of the 109 names are one token/);
  assert.deepEqual(readFileSync(join(out, 'tokenizer.json')), readFileSync(join(tokDir, 'tokenizer.json')));
  const ev = await carve(['eval', '--model', out, ...ioi, '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  const rec = JSON.parse(readFileSync(join(out, 'carve-compress.json'), 'utf8'));
  assert.equal(rec.metric_name, 'logit-diff');
  assert.ok(Math.abs(JSON.parse(ev.stdout).metric - rec.metric) < 1e-4, 'eval on the copy tokenises as the original did');
});
