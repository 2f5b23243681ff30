import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../../src/model/hooked.ts';
import type { ModelData } from '../../src/model/types.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { listComponents } from '../../src/discover/components.ts';
import { trainMasks } from '../../src/discover/masks.ts';
import { halvingPick, promptOrder } from '../../src/discover/halving.ts';
import { pruneOrder } from '../../src/discover/prune.ts';
import { searchSmallest, exactGreedyCost } from '../../src/discover/select.ts';
import { mean } from '../../src/task/metrics.ts';
import type { Task } from '../../src/task/types.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

/**
 * A model where head L1H0 alone carries the task: every other head's output projection and every
 * MLP's output weights and bias are zero (their outputs are 0 whatever they compute, and so are
 * their means), and each prompt's answers are the tokens L1H0 raises most and least.
 */
async function oneHeadModel(): Promise<{ m: ModelData; task: Task; carrier: string }> {
  const m = randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 23 });
  const dh = m.config.dHead;
  const d = m.config.dModel;
  for (const [name, t] of m.weights) {
    if (/^h\.\d+\.mlp\.c_proj\./.test(name)) t.data.fill(0);
    if (/^h\.\d+\.attn\.c_proj\.weight$/.test(name)) {
      const layer = Number(name.split('.')[1]);
      for (let r = 0; r < 2 * dh; r++) for (let c = 0; c < d; c++) t.data[r * d + c] = layer === 1 && r < dh ? 3 * t.data[r * d + c] : 0;
    }
  }
  const model = new HookedModel(m, engine, 'float64');
  const base = randomTask(6, 30, 4);
  const toks = base.pairs.map((p) => p.clean);
  const full = await model.run({ tokens: toks, logits: 'all' });
  const k = m.config.nHead;
  const without: Intervention = { keep: Float64Array.from({ length: toks.length * k }, (_, i) => (i % k === 0 ? 0 : 1)), value: { shape: 'const', data: new Float64Array(k * dh) } };
  const ablated = await model.run({ tokens: toks, logits: 'all', z: new Map([[1, without]]) });
  const V = m.config.vocabSize;
  const T = full.seqLen;
  const pairs = base.pairs.map((p, b) => {
    const at = (b * T + p.clean.length - 1) * V;
    const diff = Array.from({ length: V }, (_, v) => full.logits!.data[at + v] - ablated.logits!.data[at + v]);
    const correct = diff.indexOf(Math.max(...diff));
    const incorrect = diff.indexOf(Math.min(...diff));
    return { ...p, correct: [correct], incorrect: [incorrect] };
  });
  return { m, task: { name: 'one-head', pairs }, carrier: 'L1H0' };
}

test('masks trained on a model where one head alone carries the task find it: ranked last, kept by the search', async () => {
  const { m, task, carrier } = await oneHeadModel();
  const model = new HookedModel(m, engine, 'float64');
  const repl = await computeReplacements(model, task, 'mean');
  const comps = listComponents(m.config);
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize: 32 });
  const clean = mean(ev.clean);
  const carrierGone = mean((await ev.evaluate([comps.filter((c) => c.name === carrier)]))[0]);
  assert.ok(clean > 1 && carrierGone < 0.5 * clean, `precondition: the task needs ${carrier} (clean ${clean}, without it ${carrierGone})`);

  const masks = await trainMasks(model, task, repl, comps, { steps: 60 });
  assert.equal(masks.ranking.at(-1)!.name, carrier);
  const i = comps.findIndex((c) => c.name === carrier);
  assert.ok(masks.final[i] > 0.5, `the carrier's mask stays open (${masks.final[i]})`);
  assert.ok(masks.final.every((v, j) => j === i || v < 0.5), `every other mask closes (${masks.final.map((v) => v.toFixed(2))})`);

  const order = await pruneOrder(model, task, { order: 'optimize', ablation: 'mean', maskSteps: 60 });
  assert.equal(order.steps.at(-1)!.component, carrier);
  assert.deepEqual(order.mask_ranking, masks.ranking.map((c) => c.name));

  const found = await searchSmallest(model, task, { target: 0.9, ablation: 'mean', repl });
  const gone = new Set(found.removed.map((c) => c.name));
  assert.deepEqual(comps.filter((c) => !gone.has(c.name)).map((c) => c.name), [carrier], JSON.stringify([found.reasons, found.trials]));
  assert.ok(mean(found.metric) >= 0.9 * clean);
});

test('successive-halving greedy meets its stated guarantee on random models', async () => {
  let cases = 0;
  let exactPicks = 0;
  let leadCases = 0;
  for (const seed of [1, 2, 3, 4]) {
    const m = randomModel({ nLayer: 3, nHead: 3, dModel: 12, vocabSize: 25, seed: 100 + seed });
    const model = new HookedModel(m, engine, 'float64');
    const task = randomTask(16, 25, seed, [4, 6, 5, 7]);
    const repl = await computeReplacements(model, task, 'mean');
    const comps = listComponents(m.config);
    const ev = await ExactEvaluator.create(model, task, repl, { batchSize: 64 });
    const order = promptOrder(task.pairs.length, seed);
    // A few greedy states: nothing removed, and two random removed sets.
    for (const removed of [[], [comps[1], comps[5]], [comps[0], comps[3], comps[7], comps[10]]]) {
      const candidates = comps.filter((c) => !removed.includes(c));
      await ev.setBase(removed);
      const pick = await halvingPick(ev, removed, candidates, order, { first: 2, finalists: 2 });
      const full = (await ev.evaluate(candidates.map((c) => [...removed, c]))).map((m) => mean(m));
      const best = full.indexOf(Math.max(...full));
      // 1. The pick's metric is exact, on every prompt.
      assert.ok(Math.abs(mean(pick.metric) - full[pick.best]) < 1e-12);
      assert.ok(pick.metric.every((v) => Number.isFinite(v)));
      // Sampling errors of the rounds.
      const deltas = pick.rounds.map((r) => Math.max(...r.candidates.map((c, a) => Math.abs(r.partial[a] - full[c]))));
      const eliminating = pick.rounds.filter((r, i) => i + 1 < pick.rounds.length && pick.rounds[i + 1].candidates.length < r.candidates.length);
      const sumDelta = eliminating.reduce((s, r) => s + deltas[pick.rounds.indexOf(r)], 0);
      // 2. M(pick) ≥ M(c*) − 2 Σ Δ_r over the eliminating rounds.
      assert.ok(full[pick.best] >= full[best] - 2 * sumDelta - 1e-12, `seed ${seed}: ${full[pick.best]} vs best ${full[best]} − 2·${sumDelta}`);
      // 3. A lead over every other candidate larger than twice the largest sampling error is kept.
      const lead = full[best] - Math.max(...full.filter((_, i) => i !== best));
      if (lead > 2 * Math.max(...deltas)) {
        leadCases++;
        assert.equal(pick.best, best);
      }
      if (pick.best === best) exactPicks++;
      // Halving does less work than scoring every candidate on every prompt.
      assert.ok(pick.evaluations < candidates.length * task.pairs.length);
      cases++;
    }
  }
  assert.equal(cases, 12);
  // Not vacuous: halving mostly finds exact greedy's pick here.
  assert.ok(exactPicks >= 8, `${exactPicks} of ${cases} picks equal exact greedy's`);
  assert.ok(leadCases + exactPicks > 0);
});

test('greedy by halving with every candidate a finalist is exact greedy; with fewer it still reports exact metrics', async () => {
  const m = randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 9 });
  const model = new HookedModel(m, engine, 'float64');
  const task = randomTask(8, 30, 2);
  const n = listComponents(m.config).length;
  const exact = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean' });
  const all = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean', method: 'halving', finalists: n });
  assert.deepEqual(all.steps, exact.steps);
  const few = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean', method: 'halving', halvingFirst: 1, finalists: 1 });
  assert.ok(few.evaluations! < few.exact_evaluations!);
  // Every step's metric is that of its removed set, on every prompt.
  const repl = await computeReplacements(model, task, 'mean');
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize: 32 });
  const byName = new Map(listComponents(m.config).map((c) => [c.name, c]));
  const sets = few.steps.map((_, k) => few.steps.slice(1, k + 1).map((s) => byName.get(s.component!)!));
  (await ev.evaluate(sets)).forEach((mt, k) => assert.ok(Math.abs(mean(mt) - few.steps[k].metric) < 1e-12));
});

test('the search never keeps more than exact greedy; its cost estimate grows with the model', async () => {
  const m = randomModel({ nLayer: 2, nHead: 3, dModel: 12, vocabSize: 25, seed: 31 });
  const model = new HookedModel(m, engine, 'float64');
  const task = randomTask(8, 25, 6);
  const repl = await computeReplacements(model, task, 'mean');
  for (const target of [0.5, 0.8]) {
    const greedy = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean' });
    const thr = target * greedy.clean_metric;
    const greedyCount = Math.max(...greedy.steps.filter((s) => s.metric >= thr).map((s) => s.removed));
    const found = await searchSmallest(model, task, { target, ablation: 'mean', repl });
    assert.ok(found.removed.length >= greedyCount, `target ${target}: search removes ${found.removed.length}, greedy ${greedyCount}`);
    assert.ok(mean(found.metric) >= thr);
    assert.equal(found.trials[0].search, 'greedy');
  }
  const big = randomModel({ nLayer: 4, nHead: 3, dModel: 12, vocabSize: 25, seed: 31 });
  assert.ok(exactGreedyCost(big.config, task).flops > 2 * exactGreedyCost(m.config, task).flops);
  // Over budget: no exact greedy, the masks alone.
  const found = await searchSmallest(model, task, { target: 0.8, ablation: 'mean', repl, budget: 1 });
  assert.deepEqual(found.trials.map((t) => t.search), ['optimize', 'local']);
  assert.match(found.reasons[0], /over the budget/);
});

test('under prob-diff too, the search never keeps more than exact greedy and its set meets the target; kl is refused', async () => {
  const m = randomModel({ nLayer: 2, nHead: 3, dModel: 12, vocabSize: 25, seed: 33 });
  const model = new HookedModel(m, engine, 'float64');
  // Answer sets, as greater-than's: prob-diff sums probabilities over each set.
  const task = randomTask(8, 25, 7);
  task.pairs.forEach((p, i) => {
    p.correct = [p.correct[0]!, (p.correct[0]! + 1 + i) % 25].filter((t, j, a) => a.indexOf(t) === j && !p.incorrect.includes(t));
  });
  const repl = await computeReplacements(model, task, 'mean');
  const target = 0.6;
  const greedy = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean', metric: 'prob-diff' });
  assert.equal(greedy.metric_name, 'prob-diff');
  const thr = target * greedy.clean_metric;
  const greedyCount = Math.max(...greedy.steps.filter((s) => s.metric >= thr).map((s) => s.removed));
  const found = await searchSmallest(model, task, { target, ablation: 'mean', repl, metric: 'prob-diff' });
  assert.ok(found.removed.length >= greedyCount, `search removes ${found.removed.length}, greedy ${greedyCount}`);
  // The set's metric is the exact prob-diff with it removed (an evaluator of that metric agrees).
  const ev = await ExactEvaluator.create(model, task, repl, { metric: 'prob-diff', batchSize: 16 });
  const [m0] = await ev.evaluate([found.removed]);
  assert.ok(Math.abs(mean(m0) - mean(found.metric)) < 1e-9 && mean(m0) >= thr);
  await assert.rejects(searchSmallest(model, task, { target, ablation: 'mean', repl, metric: 'kl' }), /kl/);
});

test('a growing base (greedy\'s next step) is cached incrementally, with the same results as a fresh one', async () => {
  const m = randomModel({ nLayer: 4, nHead: 2, dModel: 16, vocabSize: 30, seed: 61 });
  const model = new HookedModel(m, engine, 'float64');
  const task = randomTask(5, 30, 8);
  const repl = await computeReplacements(model, task, 'mean');
  const comps = listComponents(m.config);
  const [a, b, c, d] = [comps[4], comps[7], comps[2], comps[10]]; // L1H1, L2H1, L0MLP, L3H1
  const configs = [[a, b, c, d], [a, b, c], [a, b, c, comps[11]], [comps[1]]];
  const grown = await ExactEvaluator.create(model, task, repl, { batchSize: 3 });
  await grown.setBase([a, b]);
  await grown.setBase([a, b, c]); // grows from layer 0 (c is in layer 0)
  const fresh = await ExactEvaluator.create(model, task, repl, { batchSize: 3 });
  await fresh.setBase([a, b, c]);
  const plain = await ExactEvaluator.create(model, task, repl, { batchSize: 3 });
  const expected = await plain.evaluate(configs);
  for (const ev of [grown, fresh]) (await ev.evaluate(configs)).forEach((row, i) => row.forEach((v, p) => assert.ok(Math.abs(v - expected[i][p]) < 1e-9)));
  await grown.setBase([a, b, c, d]); // grows from layer 3
  (await grown.evaluate(configs)).forEach((row, i) => row.forEach((v, p) => assert.ok(Math.abs(v - expected[i][p]) < 1e-9)));
  await grown.setBase([b]); // shrinks: a fresh cache
  (await grown.evaluate(configs)).forEach((row, i) => row.forEach((v, p) => assert.ok(Math.abs(v - expected[i][p]) < 1e-9)));
});

test('halving with sign −1 (a metric to minimise) picks the lowest mean', async () => {
  const m = randomModel({ nLayer: 2, nHead: 3, dModel: 12, vocabSize: 25, seed: 5 });
  const model = new HookedModel(m, engine, 'float64');
  const task = randomTask(8, 25, 3);
  const ev = await ExactEvaluator.create(model, task, await computeReplacements(model, task, 'mean'), { batchSize: 64 });
  const comps = listComponents(m.config);
  const full = (await ev.evaluate(comps.map((c) => [c]))).map((x) => mean(x));
  const order = promptOrder(8, 1);
  const low = await halvingPick(ev, [], comps, order, { finalists: comps.length, sign: -1 });
  assert.equal(low.best, full.indexOf(Math.min(...full)));
  const high = await halvingPick(ev, [], comps, order, { finalists: comps.length });
  assert.equal(high.best, full.indexOf(Math.max(...full)));
  assert.notEqual(low.best, high.best);
});
