/**
 * The two long edge runs resume: the exact edge scan and ACDC over edges, interrupted after k
 * checkpoints and resumed from the last one (read back as the CLI reads FILE.partial.json), give
 * the uninterrupted run's output byte for byte; checkpoints of another run, or broken ones, are
 * refused with a CarveError naming what is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { scanEdges, type EdgeScanOptions } from '../../src/discover/edge-scan.ts';
import { acdcEdgeOrder, edgeAcdc, type EdgeAcdcOptions } from '../../src/discover/edge-acdc.ts';
import { computeEdgeReplacements } from '../../src/discover/edge-replacements.ts';
import { EdgeEvaluator } from '../../src/discover/edge-evaluate.ts';
import { buildEdgeGraph } from '../../src/discover/edge-graph.ts';
import { parseEdgeAcdcCheckpoint, parseEdgeScanCheckpoint, type EdgeAcdcCheckpoint, type EdgeScanCheckpoint } from '../../src/discover/edge-checkpoint.ts';
import { mean } from '../../src/task/metrics.ts';
import { CarveError } from '../../src/util/errors.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';
import { interruptedAfter, interruptedThenResumed } from '../helpers/resume.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const spec = { nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30 };
// float32: where batch layout could change the last bits, so "identical" means something.
const model = new HookedModel(randomModel({ ...spec, seed: 61 }), engine, 'float32');
const task = randomTask(5, 30, 4);
const N_EDGES = 100; // 3 layers of 2 heads

const same = (a: unknown, b: unknown, message: string) => assert.equal(JSON.stringify(a), JSON.stringify(b), message);
const refused = (p: Promise<unknown>, pattern: RegExp) => assert.rejects(p, (e: unknown) => e instanceof CarveError && pattern.test(e.message));

const scanCases: [EdgeScanOptions, number[]][] = [
  [{ ablation: 'resample', method: 'exact', block: 16, batchSize: 8 }, [1, 4]],
  [{ ablation: 'mean', method: 'exact', metric: 'kl', block: 10, batchSize: 6 }, [3]],
];
for (const [opts, points] of scanCases) {
  test(`a resumed exact edge scan (${opts.ablation}, ${opts.metric ?? 'logit-diff'}, blocks of ${opts.block}) equals the uninterrupted one`, async () => {
    const full = await scanEdges(model, task, opts);
    assert.equal(full.n_edges, N_EDGES);
    for (const after of points) {
      const { result, saved, checkpoints } = await interruptedThenResumed<EdgeScanCheckpoint, unknown>((hooks) => scanEdges(model, task, { ...opts, ...hooks }), after, parseEdgeScanCheckpoint);
      assert.equal(saved.scored.length, after * opts.block!, 'a checkpoint per finished block');
      assert.equal(checkpoints[0].scored.length, (after + 1) * opts.block!, 'the resumed run goes on from the next block');
      same(result, full, `interrupted after ${after} blocks`);
    }
  });
}

test('blocks change nothing: the blocked scan scores every edge as one evaluation of all of them does', async () => {
  const m64 = new HookedModel(randomModel({ ...spec, seed: 61 }), engine, 'float64');
  const scan = await scanEdges(m64, task, { ablation: 'resample', method: 'exact', block: 7, batchSize: 5 });
  const ev = await EdgeEvaluator.create(m64, task, await computeEdgeReplacements(m64, task, 'resample'), { batchSize: 64 });
  const all = await ev.evaluate(ev.graph.edges.map((e) => ({ edges: [e.index] })));
  all.forEach((m, i) => {
    const score = mean(m) - mean(ev.clean);
    assert.ok(Math.abs(scan.edges[i].score - score) < 1e-10, `${scan.edges[i].name}: ${scan.edges[i].score} vs ${score}`);
  });
});

/** A threshold between small and large single-edge effects, so that ACDC keeps some edges and removes others. */
async function mixedThreshold(): Promise<number> {
  const s = await scanEdges(model, task, { ablation: 'resample', method: 'exact', block: 1000 });
  const effects = s.edges.map((e) => Math.abs(e.score)).sort((a, b) => a - b);
  return effects[Math.floor(effects.length * 0.7)];
}

test('a resumed edge ACDC run equals the uninterrupted one, decisions, steps and evaluations', async () => {
  const threshold = await mixedThreshold();
  const cases: [EdgeAcdcOptions, number[]][] = [
    [{ ablation: 'resample', threshold, width: 4, batchSize: 8 }, [1, 2, 4, 6]],
    [{ ablation: 'zero', metric: 'kl', threshold: 0.02, batchSize: 16 }, [3]],
  ];
  let afterAKeptEdge = false;
  for (const [opts, points] of cases) {
    const full = await edgeAcdc(model, task, opts);
    assert.ok(full.n_kept > 0 && full.n_kept < N_EDGES, `a mixed outcome (${full.n_kept} kept)`);
    for (const after of points) {
      const { result, saved } = await interruptedThenResumed<EdgeAcdcCheckpoint, unknown>((hooks) => edgeAcdc(model, task, { ...opts, ...hooks }), after, parseEdgeAcdcCheckpoint);
      assert.ok(saved.visited > 0 && saved.visited < N_EDGES);
      if (saved.visited > saved.steps.length - 1) afterAKeptEdge = true;
      same(result, full, `${opts.ablation}: interrupted after ${after} batches`);
    }
  }
  assert.ok(afterAKeptEdge, 'some interruption came after a kept edge (a narrowed batch)');
});

test('edge checkpoints of another run, or inconsistent ones, are refused with a CarveError', async () => {
  const opts: EdgeAcdcOptions = { ablation: 'resample', threshold: 0.05, width: 4 };
  const saved = await interruptedAfter<EdgeAcdcCheckpoint>((hooks) => edgeAcdc(model, task, { ...opts, ...hooks }), 3);
  const resume = (cp: EdgeAcdcCheckpoint, o: EdgeAcdcOptions = opts, m = model) => edgeAcdc(m, task, { ...o, resume: cp, resumeSource: 'x.partial.json' });
  await refused(resume(saved, { ...opts, threshold: 0.2 }), /^x\.partial\.json: made with other options \(threshold: 0\.05 there, 0\.2 now\); run without resume to start over$/);
  await refused(resume(saved, { ...opts, ablation: 'mean' }), /ablation: "resample" there, "mean" now; mean_over: unset there, "clean" now/);
  await refused(resume(saved, opts, new HookedModel(randomModel({ ...spec, seed: 62 }), engine, 'float32')), /made for a different model or task \(fingerprint mismatch\)/);
  await refused(edgeAcdc(model, randomTask(5, 30, 5), { ...opts, resume: saved }), /fingerprint mismatch/);
  const graph = buildEdgeGraph(model.config);
  const last = graph.edges[acdcEdgeOrder(graph).at(-1)!].name;
  await refused(resume({ ...saved, steps: [...saved.steps, { removed: saved.steps.length, edge: last, metric: 1, std: 0 }] }), /is not among the \d+ edges visited/);
  assert.ok(saved.steps.length > 2, 'two removals to swap');
  const [s0, s1, s2] = saved.steps;
  await refused(resume({ ...saved, steps: [s0, { ...s2, removed: 1 }, { ...s1, removed: 2 }, ...saved.steps.slice(3)] }), /out of ACDC's visiting order/);
  await refused(resume({ ...saved, steps: [...saved.steps, { removed: saved.steps.length, edge: 'L9H9->logits', metric: 1, std: 0 }] }), /"L9H9->logits" is not an edge of the model/);
  await refused(resume({ ...saved, width: 99 }), /"width" must be at most 4/);
  // Shape: what the CLI checks on reading the file.
  const parse = (cp: unknown) => () => parseEdgeAcdcCheckpoint(JSON.stringify(cp), 'x.partial.json');
  assert.throws(parse({ ...saved, visited: -1 }), /x\.partial\.json: "visited" must be a non-negative integer/);
  assert.throws(parse({ ...saved, steps: [{ ...saved.steps[0], edge: 'input->logits' }] }), /steps\[0\]\.edge must be null/);
  assert.throws(parse({ ...saved, format: 'carve-prune-partial' }), /not a carve edge ACDC partial result/);
  assert.throws(() => parseEdgeAcdcCheckpoint('{"format": ', 'x.partial.json'), /x\.partial\.json: cannot read the partial result/);

  const scanOpts: EdgeScanOptions = { ablation: 'resample', method: 'exact', block: 16 };
  const scanned = await interruptedAfter<EdgeScanCheckpoint>((hooks) => scanEdges(model, task, { ...scanOpts, ...hooks }), 2, parseEdgeScanCheckpoint);
  const rescan = (cp: EdgeScanCheckpoint, o: EdgeScanOptions = scanOpts) => scanEdges(model, task, { ...o, resume: cp, resumeSource: 'x.partial.json' });
  await refused(rescan(scanned, { ...scanOpts, block: 8 }), /made with other options \(block: 16 there, 8 now\)/);
  await refused(rescan(scanned, { ...scanOpts, metric: 'kl' }), /metric: "logit-diff" there, "kl" now/);
  await refused(rescan({ ...scanned, scored: scanned.scored.slice(0, 5) }), /5 edges scored: expected whole blocks of 16 \(or all 100\)/);
  await refused(rescan({ ...scanned, scored: [scanned.scored[1], scanned.scored[0], ...scanned.scored.slice(2)] }), /scored\[0\] is "[^"]+", expected "[^"]+" \(the scan's order\)/);
  await refused(scanEdges(model, task, { ...scanOpts, method: 'attribution', resume: scanned }), /only the exact edge scan checkpoints/);
  assert.throws(() => parseEdgeScanCheckpoint(JSON.stringify({ ...scanned, scored: [{ name: 'x', score: 'high', std: 0 }] }), 'x.partial.json'), /scored\[0\] must be/);
});
