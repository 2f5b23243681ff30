/**
 * SPEC's metrics over answer sets (logit-diff, prob-diff, kl), as the model computes them in its
 * graph and as scans use them, against plain float64 computations on the naive model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { scan } from '../../src/discover/scan.ts';
import { cleanLogProbs } from '../../src/discover/metric.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';
import { naiveForward } from '../helpers/naive-gpt2.ts';
import { naiveMetric, naiveScores, type NaiveMetric } from '../helpers/naive-scores.ts';
import { setAccuracy } from '../../src/task/metrics.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const m = randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 61 });
// Answer sets of 3 correct and 4 incorrect tokens, prompts of unequal lengths.
const task = randomTask(5, 30, 9, [5, 8, 6, 9, 7], [3, 4]);
const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((s, v) => s + v, 0) / xs.length;
/** |a − b| ≤ 1e-6·|b| (relative), with an absolute floor far below any value compared. */
const close = (a: number, b: number, what: string, rel = 1e-6) => assert.ok(Math.abs(a - b) <= rel * Math.abs(b) + 1e-12, `${what}: ${a} vs ${b}`);

test('the readout: set logit-diff, prob-diff and kl per prompt equal the naive float64 computation; so do the answer logits and accuracy', async () => {
  const clean = naiveForward(m.config, m.weights, task.pairs.map((p) => p.clean));
  const corrupt = naiveForward(m.config, m.weights, task.pairs.map((p) => p.corrupt));
  const at = (r: typeof clean, b: number, which: 'clean' | 'corrupt') => r.logits[b][task.pairs[b][which].length - 1];
  for (const dtype of ['float64', 'float32'] as const) {
    const model = new HookedModel(m, engine, dtype);
    const tol = dtype === 'float64' ? 1e-9 : 1e-5;
    const logp = await cleanLogProbs(model, task, 2);
    for (const metric of ['logit-diff', 'prob-diff', 'kl'] as NaiveMetric[]) {
      // On the corrupt prompts, so that kl is not 0.
      const out = await model.run({ tokens: task.pairs.map((p) => p.corrupt), logits: 'answers', metric, answers: task.pairs, cleanLogProbs: metric === 'kl' ? logp : undefined });
      task.pairs.forEach((p, b) => {
        const ref = naiveMetric(at(corrupt, b, 'corrupt'), p, metric, at(clean, b, 'clean'));
        assert.ok(Math.abs(out.metric![b] - ref) < tol * Math.max(1, Math.abs(ref)), `${dtype} ${metric} prompt ${b}: ${out.metric![b]} vs ${ref}`);
      });
      if (metric === 'prob-diff') assert.ok(task.pairs.some((_, b) => Math.abs(out.metric![b]) > 1e-3), 'the values compared are not all ~0');
    }
    const out = await model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
    const A = out.answerLogits!.dims[1];
    assert.equal(A, 7);
    const rows = task.pairs.map((p, b) => {
      const row = out.answerLogits!.data.subarray(b * A, (b + 1) * A);
      [...p.correct, ...p.incorrect].forEach((id, j) => assert.ok(Math.abs(row[j]! - at(clean, b, 'clean')[id]!) < tol, 'answer logits: correct set, then incorrect'));
      return row;
    });
    // Accuracy: the best answer of correct ∪ incorrect is a correct one.
    const expected = task.pairs.filter((p, b) => {
      const l = at(clean, b, 'clean');
      return Math.max(...p.correct.map((t) => l[t]!)) > Math.max(...p.incorrect.map((t) => l[t]!));
    }).length / task.pairs.length;
    assert.equal(setAccuracy(rows, task.pairs), expected);
  }
});

for (const metric of ['prob-diff', 'kl'] as const) {
  for (const ablation of ['zero', 'mean', 'resample'] as const) {
    test(`exact scores under ${metric} (${ablation}) equal a naive float64 patching loop to 1e-6 relative`, async () => {
      const ref = naiveScores(m.config, m.weights, task, ablation, 'clean', metric);
      const model = new HookedModel(m, engine, 'float64');
      const res = await scan(model, task, { ablation, method: 'exact', components: 'all', metric, batchSize: 4 });
      assert.equal(res.metric_name, metric);
      res.components.forEach((c, i) => close(c.score, mean(ref.exact[i]!), `${c.name}`));
      close(res.clean_metric, mean(ref.cleanMetric), 'clean metric');
      close(res.corrupt_metric, mean(ref.corruptMetric), 'corrupt metric');
      assert.ok(res.components.some((c) => Math.abs(c.score) > 1e-4), 'some component matters');
    });
  }
}

test('attribution under prob-diff is the directional derivative of the metric (central finite difference), for every ablation', async () => {
  const model = new HookedModel(m, engine, 'float64');
  for (const ablation of ['zero', 'mean', 'resample'] as const) {
    const ref = naiveScores(m.config, m.weights, task, ablation, 'clean', 'prob-diff');
    const res = await scan(model, task, { ablation, method: 'attribution', components: 'all', metric: 'prob-diff', batchSize: 3 });
    res.components.forEach((c, i) => close(c.score, mean(ref.attribution[i]!), `${ablation} ${c.name}`, 1e-5));
    // Attribution linearises: it differs from the exact score on this nonlinear model.
    assert.ok(res.components.some((c, i) => Math.abs(c.score - mean(ref.exact[i]!)) > 1e-5));
  }
});

test('ig under prob-diff converges to the exact score; attribution under kl is 0 (the clean run is its minimum)', async () => {
  const model = new HookedModel(m, engine, 'float64');
  const exact = await scan(model, task, { ablation: 'resample', method: 'exact', components: 'all', metric: 'prob-diff' });
  const errs: number[] = [];
  for (const steps of [1, 16]) {
    const ig = await scan(model, task, { ablation: 'resample', method: 'ig', steps, components: 'all', metric: 'prob-diff', batchSize: 32 });
    errs.push(Math.max(...ig.components.map((c, i) => Math.abs(c.score - exact.components[i]!.score))));
  }
  assert.ok(errs[1]! < errs[0]! / 10, `ig error should shrink with K: ${errs}`);
  const kl = await scan(model, task, { ablation: 'resample', method: 'attribution', components: 'all', metric: 'kl' });
  assert.ok(kl.components.every((c) => Math.abs(c.score) < 1e-12), 'the gradient of KL(clean ‖ run) vanishes at the clean run');
  const klExact = await scan(model, task, { ablation: 'resample', method: 'exact', components: 'all', metric: 'kl' });
  assert.ok(klExact.components.every((c) => c.score >= 0) && klExact.components.some((c) => c.score > 1e-4), 'a KL divergence is ≥ 0, and patching moves it');
});
