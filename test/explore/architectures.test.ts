/**
 * The explore session goes through carve's generic model layer: on random Hugging Face checkpoints of
 * every architecture (GQA, rotary, parallel residual, sliding windows) its evaluations equal the exact
 * evaluator's, its attention patterns are proper (causal, windowed, rows summing to 1), and a set it
 * compresses evaluates to the metric it showed. Also the kl metric.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { findComponent } from '../../src/discover/components.ts';
import { cleanMetrics } from '../../src/discover/scan.ts';
import { mean } from '../../src/task/metrics.ts';
import { ExploreSession } from '../../src/explore/session.ts';
import { randomHfModel, writeHfModelDir, type HfModelSpec } from '../helpers/hf-random.ts';
import { randomTask } from '../helpers/random-task.ts';
import { engine, freshDir } from './helpers.ts';

const VOCAB = 40;
const archs: [string, HfModelSpec][] = [
  ['llama (GQA)', { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 3 }],
  ['gpt_neox (parallel residual)', { arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 4 }],
  ['qwen2', { arch: 'qwen2', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 5 }],
  ['mistral (window 3)', { arch: 'mistral', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 6, slidingWindow: 3 }],
];

for (const [label, spec] of archs) {
  test(`explore session on ${label}: exact evaluation, attention, compression`, async () => {
    const root = freshDir(`arch-${spec.arch}`);
    const dir = join(root, 'model');
    writeHfModelDir(dir, randomHfModel({ maxPos: 16, ...spec }));
    const loaded = loadModelDir(dir);
    const task = randomTask(4, VOCAB, 11);
    const session = new ExploreSession(loaded, task, engine, { outDir: join(root, 'out'), batchSize: 8 });
    const removed = ['L1H1', 'L0MLP'];

    const got = await session.evaluate(removed, 'mean');
    const model = new HookedModel(loaded, engine);
    const repl = await computeReplacements(model, task, 'mean', 'clean', 8);
    const ev = await ExactEvaluator.create(model, task, repl, { batchSize: 8 });
    const [want] = await ev.evaluate([removed.map((n) => findComponent(model.config, n, 'test'))]);
    got.per_prompt.forEach((v, p) => assert.ok(Math.abs(v - want[p]) < 1e-5, `prompt ${p}: ${v} vs ${want[p]}`));
    assert.ok(Math.abs(got.metric - mean(ev.clean)) > 1e-6, 'the removal changes the metric');

    for (const head of [0, 1]) {
      const att = await session.attention(2, 1, head);
      const T = task.pairs[2].clean.length;
      assert.equal(att.pattern.length, T);
      att.pattern.forEach((row, q) => {
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${q} sums to 1`);
        row.forEach((w, k) => {
          if (k > q) assert.equal(w, 0, 'causal');
          if (spec.slidingWindow && q - k >= spec.slidingWindow) assert.ok(w < 1e-7, `outside the window: q${q} k${k} = ${w}`);
        });
      });
    }

    const written = await session.compress(removed, 'mean', 'small');
    const small = new HookedModel(loadModelDir(join(root, 'out', 'small')), engine);
    const metric = mean((await cleanMetrics(small, task, 8)).metrics);
    assert.ok(Math.abs(metric - got.metric) < 1e-4, `compressed ${metric} vs shown ${got.metric}`);
    assert.equal(written.kept.length, session.info().components.length - removed.length);
  });
}

test('explore session with the kl metric: 0 for the clean model, the evaluator\'s KL otherwise, no accuracy', async () => {
  const root = freshDir('arch-kl');
  const dir = join(root, 'model');
  writeHfModelDir(dir, randomHfModel({ arch: 'llama', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 9, maxPos: 16 }));
  const loaded = loadModelDir(dir);
  const task = randomTask(3, VOCAB, 2);
  const session = new ExploreSession(loaded, task, engine, { metric: 'kl', batchSize: 8 });
  const clean = await session.evaluate([], 'zero');
  assert.deepEqual(clean.per_prompt, [0, 0, 0]);
  assert.equal(clean.accuracy, null);
  assert.equal((await session.components()).clean_metric, 0);
  const got = await session.evaluate(['L0H1'], 'zero');
  const model = new HookedModel(loaded, engine);
  const ev = await ExactEvaluator.create(model, task, await computeReplacements(model, task, 'zero'), { batchSize: 8, metric: 'kl' });
  const [want] = await ev.evaluate([[findComponent(model.config, 'L0H1', 'test')]]);
  got.per_prompt.forEach((v, p) => assert.ok(Math.abs(v - want[p]) < 1e-6 && v > 0, `prompt ${p}: ${v} vs ${want[p]}`));
  // prob-diff: the session's numbers are the evaluator's under the same metric.
  const pd = new ExploreSession(loaded, task, engine, { metric: 'prob-diff', batchSize: 8 });
  const gotPd = await pd.evaluate(['L0H1'], 'zero');
  const evPd = await ExactEvaluator.create(model, task, await computeReplacements(model, task, 'zero'), { batchSize: 8, metric: 'prob-diff' });
  const [wantPd] = await evPd.evaluate([[findComponent(model.config, 'L0H1', 'test')]]);
  gotPd.per_prompt.forEach((v, p) => assert.ok(Math.abs(v - wantPd[p]) < 1e-6, `prob-diff prompt ${p}: ${v} vs ${wantPd[p]}`));
  assert.equal(gotPd.metric_name, 'prob-diff');
});
