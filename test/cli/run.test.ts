import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { naiveForward } from '../helpers/naive-gpt2.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-run-'));
const modelDir = makeRandomGpt2(join(dir, 'model'), { nLayer: 2, nHead: 2, dModel: 16, nCtx: 16, vocabSize: 50257, seed: 3 });

function carve(args: string[]) {
  const r = spawnSync(process.execPath, ['bin/carve.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('carve run --json gives the top tokens of the naive reference, highest logit first', () => {
  const r = carve(['run', '--model', modelDir, '--tokens', '464,3290,318', '--top', '4', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.tokens, [464, 3290, 318]);
  assert.equal(out.top.length, 4);
  const m = loadModelDir(modelDir);
  const ref = naiveForward(m.config, m.weights, [[464, 3290, 318]]).logits[0][2];
  const order = Array.from(ref.keys()).sort((a, b) => ref[b] - ref[a]);
  assert.deepEqual(out.top.map((t: { id: number }) => t.id), order.slice(0, 4));
  for (const t of out.top) {
    assert.ok(Math.abs(t.logit - ref[t.id]) < 1e-4);
    assert.ok(t.prob > 0 && t.prob < 1);
    assert.equal(typeof t.token, 'string');
  }
});

test('carve run --prompt tokenises text; --out writes the file', () => {
  const out = join(dir, 'pred.json');
  const r = carve(['run', '--model', modelDir, '--prompt', 'Hello world', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(out));
});

const bad: [string, string[]][] = [
  ['both --prompt and --tokens', ['run', '--model', modelDir, '--prompt', 'a', '--tokens', '1']],
  ['neither', ['run', '--model', modelDir]],
  ['a bad token list', ['run', '--model', modelDir, '--tokens', '1,,2']],
  ['a token outside the vocabulary', ['run', '--model', modelDir, '--tokens', '60000']],
  ['a prompt longer than the context', ['run', '--model', modelDir, '--tokens', Array(17).fill('1').join(',')]],
  ['--top 0', ['run', '--model', modelDir, '--tokens', '1', '--top', '0']],
  ['an unknown device', ['run', '--model', modelDir, '--tokens', '1', '--device', 'tpu']],
  ['a missing model directory', ['run', '--model', join(dir, 'nope'), '--tokens', '1']],
  ['an unknown flag', ['run', '--model', modelDir, '--tokens', '1', '--bogus']],
  ['an unknown command', ['frobnicate']],
];
for (const [label, args] of bad) {
  test(`carve run with ${label}: one carve: error: line, exit 2`, () => {
    const r = carve([...args, '--out', join(dir, 'never.json')]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^carve: error: /);
    assert.ok(!existsSync(join(dir, 'never.json')));
  });
}

test('--device cuda / webgpu: runs where available, otherwise one clear error', () => {
  for (const device of ['cuda', 'webgpu']) {
    const r = carve(['run', '--model', modelDir, '--tokens', '1,2', '--device', device, '--json']);
    if (r.code === 0) continue;
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`carve: error: --device ${device} is not available`));
  }
});
