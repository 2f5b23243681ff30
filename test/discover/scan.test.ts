import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { scan } from '../../src/discover/scan.ts';
import { randomModel } from '../helpers/random-model.ts';
import { naiveScores } from '../helpers/naive-scores.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 51 });
const task = randomTask(5, 30, 3);

for (const ablation of ['zero', 'mean', 'resample'] as const) {
  const ref = naiveScores(m.config, m.weights, task, ablation);
  const refMean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  for (const dtype of ['float64', 'float32'] as const) {
    const tol = dtype === 'float64' ? 1e-7 : 1e-4;
    test(`exact scan (${ablation}, ${dtype}) equals the naive one-run-per-component scores`, async () => {
      const model = new HookedModel(m, engine, dtype);
      // A small batch size forces several chunks and mixed prompt lengths per chunk.
      const res = await scan(model, task, { ablation, method: 'exact', components: 'all', batchSize: 7 });
      assert.equal(res.components.length, ref.comps.length);
      res.components.forEach((c, i) => {
        assert.equal(c.name, ref.comps[i].name);
        assert.ok(Math.abs(c.score - refMean(ref.exact[i])) < tol, `${c.name}: ${c.score} vs ${refMean(ref.exact[i])}`);
      });
      assert.ok(Math.abs(res.clean_metric - refMean(ref.cleanMetric)) < tol);
    });
    test(`attribution scan (${ablation}, ${dtype}) equals the naive directional derivative`, async () => {
      const model = new HookedModel(m, engine, dtype);
      const res = await scan(model, task, { ablation, method: 'attribution', components: 'all', batchSize: 3 });
      res.components.forEach((c, i) => {
        assert.ok(Math.abs(c.score - refMean(ref.attribution[i])) < tol, `${c.name}: ${c.score} vs ${refMean(ref.attribution[i])}`);
      });
    });
  }
}

test('mean ablation over corrupt prompts uses the corrupt means', async () => {
  const ref = naiveScores(m.config, m.weights, task, 'mean', 'corrupt');
  const model = new HookedModel(m, engine, 'float64');
  const res = await scan(model, task, { ablation: 'mean', meanOver: 'corrupt', method: 'exact', components: 'all' });
  res.components.forEach((c, i) => {
    const expected = ref.exact[i].reduce((s, v) => s + v, 0) / ref.exact[i].length;
    assert.ok(Math.abs(c.score - expected) < 1e-7);
  });
  assert.equal(res.mean_over, 'corrupt');
  const attr = await scan(model, task, { ablation: 'mean', meanOver: 'corrupt', method: 'attribution', components: 'all', batchSize: 2 });
  attr.components.forEach((c, i) => {
    const expected = ref.attribution[i].reduce((s, v) => s + v, 0) / ref.attribution[i].length;
    assert.ok(Math.abs(c.score - expected) < 1e-7, `${c.name}: ${c.score} vs ${expected}`);
  });
  assert.ok(Math.abs(attr.corrupt_metric - res.corrupt_metric) < 1e-9);
  assert.ok(Math.abs(attr.clean_metric - res.clean_metric) < 1e-9);
});

test('ig approaches the exact score as K grows (midpoint rule), and differs from attribution on a nonlinear model', async () => {
  const model = new HookedModel(m, engine, 'float64');
  const exact = await scan(model, task, { ablation: 'resample', method: 'exact', components: 'all' });
  const attr = await scan(model, task, { ablation: 'resample', method: 'attribution', components: 'all' });
  const errs: number[] = [];
  for (const K of [1, 4, 16]) {
    const ig = await scan(model, task, { ablation: 'resample', method: 'ig', steps: K, components: 'all', batchSize: 16 });
    assert.equal(ig.steps, K);
    errs.push(Math.max(...ig.components.map((c, i) => Math.abs(c.score - exact.components[i].score))));
  }
  assert.ok(errs[1] < errs[0] && errs[2] < errs[1], `ig errors should shrink with K: ${errs}`);
  assert.ok(errs[2] < 1e-3 * Math.max(...exact.components.map((c) => Math.abs(c.score))) + 1e-9, `ig K=16 error ${errs[2]}`);
  const attrErr = Math.max(...attr.components.map((c, i) => Math.abs(c.score - exact.components[i].score)));
  assert.ok(errs[2] < attrErr, 'ig with 16 steps should beat plain attribution');
});

test('ig with K=1 equals attribution on a model linear in the component (and not on a nonlinear one)', async () => {
  // The last layer's MLP output reaches the metric only through the final LayerNorm. A huge
  // constant added just before it (the last layer's attention bias) makes that LayerNorm's scale
  // constant to ~1e-6 relative, so the metric is linear in that component along its ablation path.
  const lin = randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 71 });
  const bO = lin.weights.get('h.1.attn.c_proj.bias')!;
  const big = 1e6;
  lin.weights.set('h.1.attn.c_proj.bias', { data: Float32Array.from(bO.data, (_, i) => (i % 2 ? 1 : -1) * big * (1 + i / 16)), shape: bO.shape });
  // Scale the final LayerNorm's gain up by as much, so the component's effect keeps its size.
  const lnf = lin.weights.get('ln_f.weight')!;
  lin.weights.set('ln_f.weight', { data: Float32Array.from(lnf.data, (g) => g * big), shape: lnf.shape });
  const plain = randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 71 });
  const gap = async (m: typeof lin) => {
    const model = new HookedModel(m, engine, 'float64');
    const attr = await scan(model, task, { ablation: 'zero', method: 'attribution', components: 'mlps' });
    const ig = await scan(model, task, { ablation: 'zero', method: 'ig', steps: 1, components: 'mlps' });
    const a = attr.components.find((c) => c.name === 'L1MLP')!.score;
    const i = ig.components.find((c) => c.name === 'L1MLP')!.score;
    return { a, rel: Math.abs(i - a) / Math.abs(a) };
  };
  const linear = await gap(lin);
  assert.ok(Math.abs(linear.a) > 1e-2, `the component matters (${linear.a})`);
  assert.ok(linear.rel < 1e-5, `ig K=1 vs attribution on the linear model: relative gap ${linear.rel}`);
  const nonlinear = await gap(plain);
  assert.ok(nonlinear.rel > 1e-4, `on the nonlinear model they should differ (relative gap ${nonlinear.rel})`);
});
