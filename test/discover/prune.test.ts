import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { scan } from '../../src/discover/scan.ts';
import { listComponents } from '../../src/discover/components.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { attributionAt, pruneOrder, type PruneCheckpoint, type PruneOptions, type PruneResult } from '../../src/discover/prune.ts';
import { CarveError } from '../../src/util/errors.ts';
import type { Task } from '../../src/task/types.ts';
import { randomModel } from '../helpers/random-model.ts';
import { meanOf, naiveRemoval, randomTask, stdOf, type NaiveAblation } from '../helpers/naive-removal.ts';
import { interruptedThenResumed as resumedRun } from '../helpers/resume.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 51 });
const task = randomTask(5, 30, 3);
const m64 = new HookedModel(m, engine, 'float64');
const m32 = new HookedModel(m, engine, 'float32');
const n = listComponents(m.config).length; // 9

/** Every step: the named components distinct, and the metric (the one the result names) equal to the naive model's with exactly them removed. */
function checkAgainstNaive(res: PruneResult, opts: PruneOptions, tol = 1e-8, t: Task = task): void {
  const names = res.steps.slice(1).map((s) => s.component!);
  assert.equal(new Set(names).size, names.length, 'a component removed twice');
  assert.equal(res.metric_name, opts.metric ?? 'logit-diff');
  res.steps.forEach((s, k) => {
    assert.equal(s.removed, k);
    const naive = naiveRemoval(m.config, m.weights, t, opts.ablation as NaiveAblation, names.slice(0, k), opts.meanOver ?? 'clean');
    const ref = res.metric_name === 'kl' ? naive.kl : res.metric_name === 'prob-diff' ? naive.probDiff : naive.metric;
    assert.ok(Math.abs(s.metric - meanOf(ref)) < tol, `${res.order} step ${k}: ${s.metric} vs naive ${meanOf(ref)}`);
    assert.ok(Math.abs(s.std - stdOf(ref)) < tol, `${res.order} step ${k}: std ${s.std} vs naive ${stdOf(ref)}`);
  });
}

const cases: PruneOptions[] = [
  { order: 'scores', ablation: 'mean', batchSize: 7 },
  { order: 'scores', ablation: 'zero', method: 'attribution' },
  { order: 'greedy', ablation: 'resample', batchSize: 7 },
  { order: 'greedy', ablation: 'mean', meanOver: 'corrupt', method: 'attribution', verify: 2, batchSize: 3 },
  { order: 'acdc', ablation: 'zero', threshold: 0.3 },
  { order: 'acdc', ablation: 'resample', metric: 'kl', threshold: 0.4, batchSize: 4 },
  { order: 'greedy', ablation: 'mean', metric: 'kl', batchSize: 7 },
  { order: 'scores', ablation: 'resample', metric: 'prob-diff', method: 'attribution' },
];
for (const opts of cases) {
  test(`prune ${JSON.stringify(opts)}: the metric at every step is that of a fresh naive run with exactly those components removed`, async () => {
    const res = await pruneOrder(m64, task, opts);
    if (opts.order !== 'acdc') assert.equal(res.steps.length, n + 1);
    else {
      // The kept set is the complement of the removed one; components visited last layer first.
      const removed = res.steps.slice(1).map((s) => s.component!);
      assert.ok(removed.length > 0 && res.kept!.length > 0, 'the case should both remove and keep');
      assert.deepEqual([...res.kept!, ...removed].sort(), listComponents(m.config).map((c) => c.name).sort());
      const rank = new Map(listComponents(m.config).map((c, i) => [c.name, i]));
      removed.forEach((c, i) => i > 0 && assert.ok(rank.get(c)! < rank.get(removed[i - 1])!, 'acdc visits from the last layer to the first'));
    }
    checkAgainstNaive(res, opts);
  });
}

test('scores order follows the exact scores, highest first; greedy starts with the highest exact score', async () => {
  for (const ablation of ['zero', 'mean', 'resample'] as const) {
    const sc = await scan(m64, task, { ablation, method: 'exact', components: 'all' });
    const best = [...sc.components].sort((a, b) => b.score - a.score);
    const byScores = await pruneOrder(m64, task, { order: 'scores', ablation });
    assert.deepEqual(byScores.steps.slice(1).map((s) => s.component), best.map((c) => c.name));
    const greedy = await pruneOrder(m64, task, { order: 'greedy', ablation });
    assert.equal(greedy.steps[1].component, best[0].name);
    assert.ok(Math.abs(greedy.steps[1].metric - (sc.clean_metric + best[0].score)) < 1e-9);
    // Greedy's metric never falls below the scores order's after one step.
    assert.ok(greedy.steps[1].metric >= byScores.steps[1].metric - 1e-12);
  }
});

test('under kl (lower is better) scores rank the smallest divergence first, and greedy removes what diverges least', async () => {
  const sc = await scan(m64, task, { ablation: 'mean', method: 'exact', components: 'all', metric: 'kl' });
  assert.equal(sc.metric_name, 'kl');
  const best = [...sc.components].sort((a, b) => a.score - b.score);
  const byScores = await pruneOrder(m64, task, { order: 'scores', ablation: 'mean', metric: 'kl' });
  assert.deepEqual(byScores.steps.slice(1).map((s) => s.component), best.map((c) => c.name));
  const greedy = await pruneOrder(m64, task, { order: 'greedy', ablation: 'mean', metric: 'kl' });
  assert.equal(greedy.steps[1].component, best[0].name);
  assert.ok(Math.abs(greedy.steps[1].metric - best[0].score) < 1e-9, 'the clean KL is 0, so the step metric is the score');
});

test('attribution-guided greedy with --verify K ≥ the remaining count is exact greedy', async () => {
  for (const dtype of ['float64', 'float32'] as const) {
    const model = dtype === 'float64' ? m64 : m32;
    const exact = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean', batchSize: 16 });
    const attr = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean', method: 'attribution', verify: n, batchSize: 16 });
    assert.deepEqual(attr.steps, exact.steps);
    assert.equal(attr.method, 'attribution');
    assert.equal(attr.verify, n);
  }
});

test('attribution at an ablated state is the directional derivative of the metric there (naive central difference)', async () => {
  const comps = listComponents(m.config);
  const removed = [comps[1], comps[2], comps[7]]; // L0H1, L0MLP, L2H1
  const targets = comps.filter((c) => !removed.includes(c));
  for (const ablation of ['mean', 'resample'] as const) {
    const repl = await computeReplacements(m64, task, ablation);
    const per = await attributionAt(m64, task, repl, removed, targets, { batchSize: 2, scope: comps });
    const state = naiveRemoval(m.config, m.weights, task, ablation, removed.map((c) => c.name));
    const eps = 1e-5;
    targets.forEach((c, i) => {
      const at = (e: number) =>
        naiveRemoval(m.config, m.weights, task, ablation, removed.map((x) => x.name), 'clean', new Map([[c.name, (_b, _t, cur, r) => cur.map((x, j) => x + e * (r[j] - x))]]), state.hooks).metric;
      const plus = at(eps);
      const minus = at(-eps);
      plus.forEach((v, p) => {
        const fd = (v - minus[p]) / (2 * eps);
        assert.ok(Math.abs(per[i][p] - fd) < 1e-6 * Math.max(1, Math.abs(fd)), `${ablation} ${c.name} prompt ${p}: ${per[i][p]} vs ${fd}`);
      });
    });
  }
  // Nothing removed: the scan's attribution scores.
  const sc = await scan(m64, task, { ablation: 'resample', method: 'attribution', components: 'all' });
  const repl = await computeReplacements(m64, task, 'resample');
  const per = await attributionAt(m64, task, repl, [], comps);
  per.forEach((p, i) => assert.ok(Math.abs(meanOf(p) - sc.components[i].score) < 1e-10));
});

/** Interrupted after `after` checkpoints, then resumed (test/helpers/resume.ts); the resumed run checkpoints from where it was. */
async function interruptedThenResumed(model: HookedModel, opts: PruneOptions, after: number): Promise<{ result: PruneResult; saved: PruneCheckpoint }> {
  const { result, saved, checkpoints } = await resumedRun<PruneCheckpoint, PruneResult>((hooks) => pruneOrder(model, task, opts, hooks), after);
  assert.ok(checkpoints.length > 0 && checkpoints.every((cp) => cp.steps.length >= saved.steps.length));
  return { result, saved };
}

for (const opts of [
  { order: 'scores', ablation: 'mean', batchSize: 5 },
  { order: 'greedy', ablation: 'resample', batchSize: 6 },
  { order: 'greedy', ablation: 'zero', method: 'attribution', verify: 3 },
  { order: 'acdc', ablation: 'mean', threshold: 0.5 },
  { order: 'acdc', ablation: 'resample', metric: 'kl', threshold: 0.8 },
] as PruneOptions[]) {
  test(`a resumed ${opts.order}/${opts.method ?? 'exact'} run equals the uninterrupted one`, async () => {
    const full = await pruneOrder(m32, task, opts);
    const { result, saved } = await interruptedThenResumed(m32, opts, 2);
    assert.ok(saved.steps.length < full.steps.length || opts.order === 'acdc');
    assert.deepEqual(result, full);
  });
}

test('a checkpoint made for other options, another task or another model is refused with a CarveError', async () => {
  let saved: PruneCheckpoint | undefined;
  await pruneOrder(m32, task, { order: 'greedy', ablation: 'zero' }, { onCheckpoint: (cp) => void (saved ??= cp) });
  await assert.rejects(pruneOrder(m32, task, { order: 'greedy', ablation: 'mean' }, { resume: saved, resumeSource: 'x.partial.json' }), (e: unknown) => {
    assert.ok(e instanceof CarveError);
    assert.match(e.message, /^x\.partial\.json: made with other options \(ablation: "zero" there, "mean" now/);
    return true;
  });
  await assert.rejects(pruneOrder(m32, randomTask(5, 30, 4), { order: 'greedy', ablation: 'zero' }, { resume: saved }), (e: unknown) => e instanceof CarveError && /fingerprint/.test(e.message));
  const other = new HookedModel(randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 52 }), engine, 'float32');
  await assert.rejects(pruneOrder(other, task, { order: 'greedy', ablation: 'zero' }, { resume: saved }), (e: unknown) => e instanceof CarveError && /fingerprint/.test(e.message));
  // Same run: accepted.
  const res = await pruneOrder(m32, task, { order: 'greedy', ablation: 'zero' }, { resume: saved });
  assert.equal(res.steps.length, n + 1);
});

test('acdc with T = 0 never accepts a removal that lowers the metric; with a huge T it removes everything', async () => {
  for (const ablation of ['zero', 'mean', 'resample'] as const) {
    const strict = await pruneOrder(m64, task, { order: 'acdc', ablation, threshold: 0 });
    strict.steps.slice(1).forEach((s, i) => assert.ok(s.metric > strict.steps[i].metric, `${ablation}: step ${i + 1} lowered the metric`));
    const strictKl = await pruneOrder(m64, task, { order: 'acdc', ablation, threshold: 0, metric: 'kl' });
    strictKl.steps.slice(1).forEach((s, i) => assert.ok(s.metric < strictKl.steps[i].metric, `${ablation}: step ${i + 1} raised the KL`));
    for (const metric of ['logit-diff', 'kl'] as const) {
      const all = await pruneOrder(m64, task, { order: 'acdc', ablation, threshold: 1e9, metric });
      assert.equal(all.steps.length, n + 1);
      assert.deepEqual(all.kept, []);
      assert.deepEqual(all.steps.slice(1).map((s) => s.component), listComponents(m.config).map((c) => c.name).reverse());
      assert.equal(all.threshold, 1e9);
      assert.equal(all.metric_name, metric);
    }
  }
});

test('options that do not apply to the order are refused', async () => {
  const bad: PruneOptions[] = [
    { order: 'scores', ablation: 'zero', verify: 2 },
    { order: 'greedy', ablation: 'zero', verify: 2 }, // exact greedy checks every candidate
    { order: 'greedy', ablation: 'zero', threshold: 0.1 },
    { order: 'greedy', ablation: 'zero', metric: 'l2' as 'kl' },
    { order: 'acdc', ablation: 'zero', method: 'attribution' },
    { order: 'acdc', ablation: 'zero', threshold: NaN },
    { order: 'nope' as 'acdc', ablation: 'zero' },
  ];
  for (const o of bad) await assert.rejects(pruneOrder(m32, task, o), CarveError, JSON.stringify(o));
});

test('heads only and MLPs only', async () => {
  const heads = await pruneOrder(m64, task, { order: 'greedy', ablation: 'zero', components: 'heads' });
  assert.equal(heads.steps.length, 7);
  assert.ok(heads.steps.slice(1).every((s) => /H\d+$/.test(s.component!)));
  checkAgainstNaive(heads, { order: 'greedy', ablation: 'zero' });
  const mlps = await pruneOrder(m64, task, { order: 'scores', ablation: 'mean', components: 'mlps' });
  assert.equal(mlps.steps.length, 4);
  assert.equal(mlps.components, 'mlps');
});
