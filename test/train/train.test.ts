import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIoi } from '../../src/task/ioi.ts';
import { generateGreaterThan } from '../../src/task/greater-than.ts';
import { checkSeeds, heldOut, objectiveFeeds, trainBatch, type DataSpec } from '../../src/train/data.ts';
import { resolveRecipe, train, type Recipe } from '../../src/train/trainer.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { recipeFromOptions } from '../../src/cli/train.ts';
import { loadTokenizer } from '../../src/tokenizer/load.ts';
import { isCarveError } from '../../src/util/errors.ts';

const spec: DataSpec = { promptType: 'mixed', dataSeed: 1_000_000, heldOutSeed: 1, heldOutN: 30 };

test('data: the held-out set is the default IOI task; training batches are fresh, seeded per step, and packed for the objective', () => {
  const held = heldOut(spec);
  const task = generateIoi({ n: 30, seed: 1 });
  assert.deepEqual(
    held.map((e) => [e.tokens, e.correct, e.incorrect]),
    task.pairs.map((p) => [p.clean, p.correct, p.incorrect]),
  );
  const b0 = trainBatch(spec, 0, 8);
  assert.deepEqual(trainBatch(spec, 0, 8), b0);
  assert.notDeepEqual(trainBatch(spec, 1, 8), b0);
  assert.deepEqual(b0, heldOut({ ...spec, heldOutSeed: 1_000_000, heldOutN: 8 }));

  const V = 50257;
  const f = objectiveFeeds(b0, V, 64);
  const T = Math.max(...b0.map((e) => e.tokens.length));
  assert.deepEqual(f.tokens.dims, [8, T]);
  const tok = f.tokens.data as BigInt64Array;
  b0.forEach((e, b) => {
    assert.equal(Number((f.flat_pos.data as BigInt64Array)[b]), b * T + e.tokens.length - 1);
    assert.equal(Number((f.target_flat.data as BigInt64Array)[b]), b * V + e.correct[0]!);
    assert.equal(Number((f.metric_pos.data as BigInt64Array)[b]), e.tokens.length - 1);
    assert.deepEqual(f.answer_ids.dims, [8, 2]);
    assert.equal(Number((f.answer_ids.data as BigInt64Array)[2 * b]), e.correct[0]);
    assert.equal(Number((f.answer_ids.data as BigInt64Array)[2 * b + 1]), e.incorrect[0]);
    assert.deepEqual(Array.from((f.answer_weights.data as Float32Array).subarray(2 * b, 2 * b + 2)), [1, -1]);
    for (let j = e.tokens.length; j < T; j++) assert.equal(tok[b * T + j], 0n);
    assert.ok(Math.abs((f.row_scale.data as Float32Array)[b] - 1 / 8) < 1e-9);
  });
  assert.throws(() => objectiveFeeds(b0, V, 5), isCarveError);

  // A curriculum phase restricts prompt type and templates, then the default takes over.
  const cur: DataSpec = { ...spec, curriculum: [{ until: 3, promptType: 'ABBA', templates: [2, 5] }] };
  const early = trainBatch(cur, 2, 20);
  assert.equal(early.length, 20);
  assert.ok(early.every((e) => e.templateIndex === 2 || e.templateIndex === 5));
  assert.deepEqual(trainBatch(cur, 3, 8), trainBatch(spec, 3, 8));
  assert.throws(() => checkSeeds({ ...spec, dataSeed: 0 }, 10), isCarveError);
  assert.throws(() => resolveRecipe({ curriculum: [{ until: 5, templates: [1] }] }), isCarveError);
});

const tiny: Partial<Recipe> = {
  nLayer: 1,
  nHead: 2,
  dModel: 32,
  steps: 40,
  batch: 16,
  lr: 3e-3,
  warmup: 5,
  evalEvery: 20,
  heldOutN: 40,
  threads: 2,
};

test('training: the loss falls in a short run, and the same seed gives bit-identical weights', async () => {
  const r = resolveRecipe(tiny);
  const a = await train(r);
  const losses = a.steps.map((s) => s.loss);
  assert.equal(losses.length, 40);
  const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
  const first = mean(losses.slice(0, 5));
  const last = mean(losses.slice(-5));
  assert.ok(last < first - 0.5, `loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  assert.deepEqual(a.evals.map((e) => e.step), [0, 20, 40]);
  for (const e of a.evals) {
    assert.equal(e.n, 40);
    assert.ok(e.accuracy >= 0 && e.accuracy <= 1 && Number.isFinite(e.logitDiff));
  }

  const b = await train(r);
  const wa = [...a.weights].map(([name, tensor]) => ({ name, tensor }));
  const wb = [...b.weights].map(([name, tensor]) => ({ name, tensor }));
  assert.deepEqual(wa.map((w) => w.name), wb.map((w) => w.name));
  wa.forEach((w, i) => assert.ok(Buffer.from(w.tensor.data.buffer).equals(Buffer.from(wb[i].tensor.data.buffer)), `${w.name} differs between runs`));
  assert.deepEqual(b.steps.map((s) => s.loss), losses);
});

test('greater-than data: held-out = the clean prompts of --task greater-than; feeds carry each correct set for the cross-entropy', () => {
  const gt: DataSpec = { ...spec, task: 'greater-than' };
  const held = heldOut(gt);
  const task = generateGreaterThan({ n: 30, seed: 1 });
  assert.deepEqual(held.map((e) => [e.tokens, e.correct, e.incorrect]), task.pairs.map((p) => [p.clean, p.correct, p.incorrect]));
  const b0 = trainBatch(gt, 0, 4);
  assert.deepEqual(b0, heldOut({ ...gt, heldOutSeed: 1_000_000, heldOutN: 4 }));
  const f = objectiveFeeds(b0, 50257, 64, true);
  assert.equal(f.target_flat, undefined);
  const C = Math.max(...b0.map((e) => e.correct.length));
  assert.deepEqual(f.correct_ids.dims, [4, C]);
  b0.forEach((e, b) => {
    const ids = Array.from((f.correct_ids.data as BigInt64Array).subarray(b * C, (b + 1) * C), Number);
    const mask = Array.from((f.correct_mask.data as Float32Array).subarray(b * C, (b + 1) * C));
    assert.deepEqual(ids.slice(0, e.correct.length), e.correct);
    assert.deepEqual(mask, ids.map((_, j) => (j < e.correct.length ? 1 : 0)));
  });
  assert.throws(() => objectiveFeeds(b0, 50257, 64, false), /answer sets need sets = true/);
});

test('training on greater-than: the loss falls, and held-out figures include the probability difference', async () => {
  const r = resolveRecipe({ ...tiny, task: 'greater-than', steps: 30, evalEvery: 30, heldOutN: 30 });
  const res = await train(r);
  const losses = res.steps.map((s) => s.loss);
  const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
  assert.ok(mean(losses.slice(-5)) < mean(losses.slice(0, 5)) - 0.5, `loss ${mean(losses.slice(0, 5)).toFixed(3)} -> ${mean(losses.slice(-5)).toFixed(3)}`);
  for (const e of res.evals) assert.ok(e.probDiff !== undefined && Math.abs(e.probDiff) <= 1 && e.accuracy >= 0 && e.accuracy <= 1);
  assert.throws(() => resolveRecipe({ task: 'acronyms' }), (e: unknown) => isCarveError(e) && /task: expected one of ioi, greater-than/.test((e as Error).message));
});

test('training: attention-only layers train with the MLP output bias held at zero', async () => {
  const r = resolveRecipe({ ...tiny, nLayer: 2, dModel: 16, steps: 6, attnOnly: [true, false], evalEvery: 6, heldOutN: 10 });
  const res = await train(r);
  assert.deepEqual(res.config.layers.map((l) => l.mlp), [false, true]);
  assert.ok(res.weights.get('h.0.mlp.c_proj.bias')!.data.every((v) => v === 0));
  assert.ok(res.weights.get('h.1.mlp.c_proj.bias')!.data.some((v) => v !== 0));
  assert.ok(res.weights.get('h.0.attn.c_proj.bias')!.data.some((v) => v !== 0));
});

test('carve train: writes a loadable F16 model with training.json; --recipe training.json reproduces it; bad flags are user errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-train-'));
  try {
    const out = join(dir, 'm');
    const args = ['--layers', '1', '--heads', '2', '--d-model', '16', '--steps', '6', '--batch', '8', '--warmup', '2', '--eval-every', '3', '--held-out-n', '20'];
    await buildProgram().parseAsync(['node', 'carve', 'train', '--out', out, ...args]);
    const model = loadModelDir(out);
    assert.equal(model.config.dModel, 16);
    assert.equal(model.config.vocabSize, 50257);
    const header = readFileSync(join(out, 'model.safetensors'));
    assert.ok(header.subarray(8, 2000).toString('latin1').includes('"F16"'));
    const rec = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8'));
    assert.equal(rec.format, 'carve-training/1');
    assert.equal(rec.recipe.steps, 6);
    assert.equal(rec.recipe.dModel, 16);
    assert.equal(rec.recipe.dtype, 'F16');
    assert.deepEqual(rec.data.trainSeeds, [1_000_000, 1_000_005]);
    assert.equal(rec.final.heldOut.n, 20);
    assert.deepEqual(rec.evals.map((e: { step: number }) => e.step), [0, 3, 6]);

    const again = join(dir, 'again');
    await buildProgram().parseAsync(['node', 'carve', 'train', '--out', again, '--recipe', join(out, 'training.json')]);
    assert.ok(readFileSync(join(again, 'model.safetensors')).equals(readFileSync(join(out, 'model.safetensors'))));

    const bad = (o: Record<string, unknown>, re: RegExp) =>
      assert.throws(() => recipeFromOptions({ out, ...o }), (e: unknown) => isCarveError(e) && re.test((e as Error).message));
    bad({ steps: 'ten' }, /--steps/);
    bad({ lr: 'fast' }, /--lr/);
    bad({ schedule: 'step' }, /--schedule/);
    bad({ promptType: 'ABC' }, /--prompt-type/);
    bad({ layers: '2', attnOnly: '0,2' }, /--attn-only/);
    bad({ heads: '3' }, /divisible/);
    bad({ beta1: '1.5' }, /--betas|beta/);
    bad({ dtype: 'F8' }, /--dtype/);
    bad({ steps: '10' }, /warmup/);
    bad({ recipe: join(dir, 'missing.json') }, /cannot read/);
    writeFileSync(join(dir, 'r.json'), JSON.stringify({ nLayers: 2 }));
    bad({ recipe: join(dir, 'r.json') }, /unknown recipe field "nLayers"/);
    // Cross-field checks apply to the merged recipe: the file's steps 50 < warmup 100 is fine once --warmup 5 is given.
    writeFileSync(join(dir, 'r.json'), JSON.stringify({ steps: 50 }));
    bad({ recipe: join(dir, 'r.json') }, /warmup/);
    assert.equal(recipeFromOptions({ out, recipe: join(dir, 'r.json'), warmup: '5' }).steps, 50);
    writeFileSync(join(dir, 'r.json'), JSON.stringify({ nLayer: 3, attnOnly: [true, false, true], steps: 500 }));
    const r = recipeFromOptions({ out, recipe: join(dir, 'r.json'), steps: '400', heads: '8' });
    assert.equal(r.steps, 400);
    assert.equal(r.nHead, 8);
    assert.deepEqual(r.attnOnly, [true, false, true]);
    assert.equal(recipeFromOptions({ out, attnOnly: true }).attnOnly, true);
    assert.deepEqual(recipeFromOptions({ out, layers: '3', attnOnly: '0,2' }).attnOnly, [true, false, true]);
    bad({ arch: 'falcon' }, /--arch/);
    bad({ arch: 'llama', heads: '4', kvHeads: '3' }, /does not divide/);
    bad({ kvHeads: '2' }, /needs arch llama/);
    bad({ tokenizer: 'bpe' }, /--tokenizer/);
    const llama = recipeFromOptions({ out, arch: 'llama', heads: '4', kvHeads: '2', ropeTheta: '500000' });
    assert.deepEqual([llama.arch, llama.nKvHead, llama.ropeTheta, llama.untied], ['llama', 2, 500000, 'auto']);
    assert.equal(recipeFromOptions({ out, arch: 'llama', untied: false }).untied, false);
    assert.ok(!existsSync(join(dir, 'never')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('carve train --arch llama: RMSNorm, rotary, SwiGLU, grouped-query attention, untied; loads as a Llama and reproduces from its recipe', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-train-llama-'));
  try {
    const out = join(dir, 'm');
    const args = ['--arch', 'llama', '--tokenizer', 'task', '--prepend-bos', '--layers', '1', '--heads', '4', '--kv-heads', '2', '--d-model', '16', '--steps', '4', '--batch', '8', '--warmup', '1', '--eval-every', '2', '--held-out-n', '10'];
    await buildProgram().parseAsync(['node', 'carve', 'train', '--out', out, ...args]);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, 'llama');
    assert.equal(cfg.num_key_value_heads, 2);
    assert.equal(cfg.hidden_act, 'silu');
    assert.equal(cfg.tie_word_embeddings, false);
    const model = loadModelDir(out);
    assert.equal(model.config.norm.kind, 'rms');
    assert.equal(model.config.positions.kind, 'rotary');
    assert.ok(model.config.mlp.gated);
    assert.ok(model.weights.has('lm_head.weight'));
    assert.deepEqual(model.weights.get('model.layers.0.self_attn.k_proj.weight')!.shape, [8, 16]);
    // The task vocabulary: every IOI word one token, saved as the model's tokenizer.json (BOS first).
    const tok = loadTokenizer(out);
    assert.equal(model.config.vocabSize, tok.vocabSize);
    assert.ok(tok.vocabSize < 1000, `a task vocabulary, not GPT-2's (${tok.vocabSize})`);
    assert.ok(tok.addsBos);
    assert.equal(tok.encode(' Mary').length, 1);
    assert.equal(cfg.bos_token_id, tok.bos!.id);
    const again = join(dir, 'again');
    await buildProgram().parseAsync(['node', 'carve', 'train', '--out', again, '--recipe', join(out, 'training.json')]);
    assert.ok(readFileSync(join(again, 'model.safetensors')).equals(readFileSync(join(out, 'model.safetensors'))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
