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
