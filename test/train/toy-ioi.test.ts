import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { resolveModel } from '../../src/model/hub.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { loadTask } from '../../src/task/load.ts';
import { loadTokenizer } from '../../src/tokenizer/load.ts';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

test('toy-ioi: held-out IOI (seeds never trained on, all mixed templates) at >= 95% accuracy and logit diff >= 3', async () => {
  const { dir } = await resolveModel('toy-ioi');
  assert.ok(statSync(join(dir, 'model.safetensors')).size <= 15 * 2 ** 20, 'at most 15 MB');
  const record = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8'));
  const model = new HookedModel(loadModelDir(dir, 'toy-ioi'), new Engine({ device: 'cpu', threads: 0 }));
  // Training draws its batches from generator seeds >= 1,000,000 (see src/train/data.ts); these are far below.
  const diffs: number[] = [];
  let correct = 0;
  for (const seed of [2, 3, 4, 5]) {
    const task = loadTask({ task: 'ioi', n: 100, seed, promptType: 'mixed', flip: 'ABC->XYZ, BAB->XYZ', prependBos: false });
    // The mixed prompt type draws from 14 templates (as the Python reference does); every one appears.
    assert.equal(new Set(task.ioi!.map((info) => info.templateIndex)).size, 14);
    const out = await model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
    for (const m of out.metric!) {
      diffs.push(m);
      if (m > 0) correct++;
    }
  }
  assert.ok(JSON.stringify(record).includes('1000000') || record.recipe !== undefined, 'training.json records the recipe');
  const accuracy = correct / diffs.length;
  const meanDiff = diffs.reduce((a, b) => a + b, 0) / diffs.length;
  assert.ok(accuracy >= 0.95, `accuracy ${accuracy}`);
  assert.ok(meanDiff >= 3, `mean logit difference ${meanDiff}`);
});

test('toy-ioi-llama: a Llama (RMSNorm, rotary, SwiGLU, GQA, untied) read through its own tokenizer.json; held-out IOI >= 95% accuracy, logit diff >= 3, <= 10 MB', async () => {
  const { dir } = await resolveModel('toy-ioi-llama');
  const size = statSync(join(dir, 'model.safetensors')).size + statSync(join(dir, 'tokenizer.json')).size;
  assert.ok(size <= 10 * 2 ** 20, `at most 10 MB (${size} bytes)`);
  const loaded = loadModelDir(dir, 'toy-ioi-llama');
  assert.equal(loaded.config.arch, 'llama');
  assert.ok(loaded.config.nKvHead < loaded.config.nHead && !loaded.config.tied, 'grouped-query attention, untied');
  const tokenizer = loadTokenizer(dir);
  assert.ok(tokenizer.name.endsWith('tokenizer.json') && tokenizer.addsBos, 'its tokenizer.json adds BOS, as Llama tokenizers do');
  const model = new HookedModel(loaded, new Engine({ device: 'cpu', threads: 0 }));
  const diffs: number[] = [];
  for (const seed of [2, 3]) {
    const task = loadTask({ task: 'ioi', n: 100, seed, promptType: 'mixed', flip: 'ABC->XYZ, BAB->XYZ', tokenizer });
    assert.ok(task.pairs.every((p) => p.clean[0] === tokenizer.bos!.id), 'BOS from the tokenizer');
    const out = await model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
    diffs.push(...out.metric!);
  }
  const accuracy = diffs.filter((m) => m > 0).length / diffs.length;
  const meanDiff = diffs.reduce((a, b) => a + b, 0) / diffs.length;
  assert.ok(accuracy >= 0.95, `accuracy ${accuracy}`);
  assert.ok(meanDiff >= 3, `mean logit difference ${meanDiff}`);
});

test('toy-gt: held-out greater-than (seeds never trained on) at prob-diff >= 0.8 and accuracy >= 0.95', async () => {
  const { dir } = await resolveModel('toy-gt');
  const model = new HookedModel(loadModelDir(dir, 'toy-gt'), new Engine({ device: 'cpu', threads: 0 }));
  const task = loadTask({ task: 'greater-than', n: 200, seed: 2 });
  const out = await model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs, metric: 'prob-diff' });
  const probDiff = Array.from(out.metric!).reduce((a, b) => a + b, 0) / out.metric!.length;
  // Accuracy with sets: the highest-logit answer among correct ∪ incorrect is a correct one.
  const A = out.answerLogits!.dims[1];
  let correct = 0;
  task.pairs.forEach((p, b) => {
    const row = out.answerLogits!.data.subarray(b * A, (b + 1) * A);
    let best = 0;
    for (let a = 1; a < p.correct.length + p.incorrect.length; a++) if (row[a] > row[best]) best = a;
    if (best < p.correct.length) correct++;
  });
  assert.ok(probDiff >= 0.8, `prob-diff ${probDiff}`);
  assert.ok(correct / task.pairs.length >= 0.95, `accuracy ${correct / task.pairs.length}`);
});
