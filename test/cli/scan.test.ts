import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-scan-'));
const modelDir = makeRandomGpt2(join(dir, 'model'), { nLayer: 2, nHead: 2, dModel: 16, nCtx: 32, vocabSize: 50257, seed: 5 });

function carve(args: string[]) {
  const r = spawnSync(process.execPath, ['bin/carve.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('carve scan writes the SPEC fields, components in layer order with heads before the MLP', () => {
  const out = join(dir, 'scan.json');
  const r = carve(['scan', '--model', modelDir, '--n', '4', '--ablation', 'zero', '--method', 'attribution', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(readFileSync(out, 'utf8'));
  for (const k of ['model', 'task', 'ablation', 'method', 'n_prompts', 'clean_metric', 'clean_std', 'corrupt_metric', 'components']) assert.ok(k in s, k);
  assert.equal(s.ablation, 'zero');
  assert.equal(s.method, 'attribution');
  assert.equal(s.n_prompts, 4);
  assert.deepEqual(
    s.components.map((c: { name: string }) => c.name),
    ['L0H0', 'L0H1', 'L0MLP', 'L1H0', 'L1H1', 'L1MLP'],
  );
  assert.equal(s.components[2].head, null);
  for (const c of s.components) assert.ok(Number.isFinite(c.score) && Number.isFinite(c.std));
});

test('carve scan on a JSONL task; resample needs equal lengths', () => {
  const task = join(dir, 'task.jsonl');
  writeFileSync(task, [
    JSON.stringify({ clean: 'When Mary and John went to the store, John gave a drink to', corrupt: 'When Alice and Bob went to the store, Carl gave a drink to', correct: ' Mary', incorrect: ' John' }),
    JSON.stringify({ clean_tokens: [1, 2, 3, 4], corrupt_tokens: [5, 6, 7, 8], correct_token: 9, incorrect_token: 10 }),
  ].join('\n') + '\n');
  const r = carve(['scan', '--model', modelDir, '--task', task, '--ablation', 'resample', '--method', 'exact', '--components', 'heads']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).components.length, 4);
  const uneven = join(dir, 'uneven.jsonl');
  writeFileSync(uneven, JSON.stringify({ clean_tokens: [1, 2, 3], corrupt_tokens: [5, 6], correct_token: 9, incorrect_token: 10 }) + '\n');
  const bad = carve(['scan', '--model', modelDir, '--task', uneven, '--ablation', 'resample', '--out', join(dir, 'never.json')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^carve: error: .*uneven\.jsonl:1: field "corrupt_tokens"/);
  assert.ok(!existsSync(join(dir, 'never.json')));
});

for (const [label, args] of [
  ['an unknown method', ['--method', 'magic']],
  ['an unknown ablation', ['--ablation', 'half']],
  ['--steps 0', ['--method', 'ig', '--steps', '0']],
  ['--components neurons', ['--components', 'neurons']],
  ['--batch-size x', ['--batch-size', 'x']],
  ['a missing task file', ['--task', join(dir, 'missing.jsonl')]],
] as [string, string[]][]) {
  test(`carve scan with ${label}: one error line, exit 2, no output`, () => {
    const out = join(dir, 'never.json');
    const r = carve(['scan', '--model', modelDir, '--n', '2', ...args, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^carve: error: /);
    assert.ok(!existsSync(out));
  });
}
