/**
 * The exact edge evaluator against SPEC's definition computed literally (test/helpers/naive-edges.ts):
 * the metric of a set of ablated edges, per prompt, on random models of several architectures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { buildEdgeGraph, edgeCountFormula, receiverNodes, type EdgeGraph } from '../../src/discover/edge-graph.ts';
import { computeEdgeReplacements } from '../../src/discover/edge-replacements.ts';
import { EdgeEvaluator, type EdgeAblation } from '../../src/discover/edge-evaluate.ts';
import type { EdgeSpec } from '../../src/model/edges.ts';
import type { Ablation } from '../../src/discover/replacements.ts';
import { randomHfModel, writeAndLoad, type HfModel, type HfModelSpec } from '../helpers/hf-random.ts';
import { naiveEdgeForward } from '../helpers/naive-edges.ts';
import { randomTask } from '../helpers/random-task.ts';
import { rng } from '../helpers/gradcheck.ts';
import type { Task } from '../../src/task/types.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'carve-edges-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const VOCAB = 23;

const load = (hf: HfModel, name: string): HookedModel => new HookedModel(writeAndLoad(tmp, name, hf), engine, 'float64');

/** The naive metric of one prompt with `ablated` edges, replacements per SPEC for this ablation. */
function naiveMetric(hf: HfModel, task: Task, p: number, ablation: Ablation, ablated: Map<string, number>): number {
  const pair = task.pairs[p];
  let replacement: (s: string, t: number) => Float64Array;
  if (ablation === 'resample') {
    const corrupt = naiveEdgeForward(hf, pair.corrupt).senders;
    replacement = (s, t) => corrupt.get(s)![t];
  } else if (ablation === 'zero') {
    replacement = () => new Float64Array(hf.config.n_embd as number ?? hf.config.hidden_size as number);
  } else {
    const runs = task.pairs.map((q) => naiveEdgeForward(hf, q.clean).senders);
    const means = new Map<string, Float64Array>();
    for (const s of runs[0].keys()) {
      const m = new Float64Array(runs[0].get(s)![0].length);
      let n = 0;
      for (const r of runs) for (const v of r.get(s)!) (v.forEach((x, j) => (m[j] += x)), n++);
      means.set(s, m.map((x) => x / n));
    }
    replacement = (s) => means.get(s)!;
  }
  const { logits } = naiveEdgeForward(hf, pair.clean, { ablated, replacement });
  const V = VOCAB;
  const t = pair.clean.length - 1;
  return logits[t * V + pair.correct[0]] - logits[t * V + pair.incorrect[0]];
}

/**
 * Each configuration's metric, per prompt, equals the naive forward's with its base's edges and
 * its own (at their amounts) ablated, to 1e-8.
 */
function assertNaive(hf: HfModel, task: Task, ablation: Ablation, graph: EdgeGraph, configs: EdgeAblation[], got: Float64Array[], label: string): void {
  configs.forEach((conf, ci) => {
    const ablated = new Map((conf.base?.edges ?? []).map((e) => [graph.edges[e].name, 1]));
    conf.edges.forEach((e, k) => ablated.set(graph.edges[e].name, conf.amount?.[k] ?? 1));
    task.pairs.forEach((_, p) => {
      const want = naiveMetric(hf, task, p, ablation, ablated);
      assert.ok(Math.abs(got[ci][p] - want) < 1e-8, `${label} config ${ci} prompt ${p}: ${got[ci][p]} vs naive ${want}`);
    });
  });
}

const cases: { name: string; spec: HfModelSpec; ablation: Ablation }[] = [
  { name: 'gpt2', spec: { arch: 'gpt2', nLayer: 3, nHead: 2, dModel: 8, vocab: VOCAB, seed: 3 }, ablation: 'resample' },
  { name: 'gpt2-mean', spec: { arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: VOCAB, seed: 4 }, ablation: 'mean' },
  { name: 'llama-gqa', spec: { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 5 }, ablation: 'resample' },
  { name: 'neox-parallel', spec: { arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 6, activation: 'gelu_new' }, ablation: 'zero' },
];

for (const c of cases) {
  test(`exact edge ablations equal the naive float64 edge forward (${c.name}, ${c.ablation})`, async () => {
    const hf = randomHfModel(c.spec);
    const model = load(hf, c.name);
    const graph = buildEdgeGraph(model.config);
    const cfg = model.config;
    assert.equal(graph.edges.length, edgeCountFormula(cfg.layers.length, cfg.nHead, cfg.nKvHead, cfg.parallelResidual));
    const task = randomTask(3, VOCAB, 11, [5, 7, 6]);
    const repl = await computeEdgeReplacements(model, task, c.ablation);
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize: 4 });
    const r = rng(17);
    const pick = (n: number) => [...new Set(Array.from({ length: n }, () => Math.floor(r() * graph.edges.length)))];
    const byName = (n: string) => graph.byName.get(n)!.index;
    const configs: EdgeAblation[] = [
      { edges: [byName('input->logits')] },
      { edges: [byName(`input->L${cfg.layers.length - 1}MLP`)] },
      { edges: pick(4) },
      { edges: pick(12) },
      { edges: graph.edges.map((e) => e.index) },
      { edges: pick(6), amount: [0.5, 0.25, 1, 0.75, 0.1, 1] },
      // Every receiver kind of layer 1, one edge each.
      { edges: graph.edges.filter((e) => e.receiver.layer === 1 && e.sender.index === 0).map((e) => e.index) },
    ];
    configs[5] = { edges: configs[5].edges, amount: configs[5].amount!.slice(0, configs[5].edges.length) };
    const got = await ev.evaluate(configs);
    assertNaive(hf, task, c.ablation, graph, configs, got, c.name);
    // Batches of one- and two-edge configurations select receivers per row: same numbers.
    const att = graph.edges.filter((e) => e.receiver.attIndex >= 0);
    const few: EdgeAblation[] = [...pick(5).map((e) => ({ edges: [e] })), { edges: [att[0].index, att[att.length - 1].index] }, { edges: [att[1].index, att[2].index], amount: [0.5, 1] }];
    const gotFew = await ev.evaluate(few);
    assertNaive(hf, task, c.ablation, graph, few, gotFew, `${c.name} few-edge`);
    // Not vacuous: ablating every edge moves the metric.
    assert.ok(Math.abs(got[4][0] - ev.clean[0]) > 1e-3);
  });
}

/** A random model of `spec`, a two-prompt task and its edge evaluator (batches of 8 rows). */
async function twoPromptEvaluator(spec: HfModelSpec, ablation: Ablation, name: string, taskSeed: number) {
  const hf = randomHfModel(spec);
  const model = load(hf, name);
  const task = randomTask(2, VOCAB, taskSeed, [6, 5]);
  const ev = await EdgeEvaluator.create(model, task, await computeEdgeReplacements(model, task, ablation), { batchSize: 8 });
  return { hf, task, ev, graph: ev.graph };
}

test('ACDC-shaped batches (one base of later edges, each configuration a few edges at the first layer) equal the naive edge forward', async () => {
  for (const [spec, ablation] of [
    [{ arch: 'gpt2', nLayer: 4, nHead: 2, dModel: 8, vocab: VOCAB, seed: 9 }, 'resample'],
    [{ arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 10 }, 'mean'],
  ] as [HfModelSpec, Ablation][]) {
    const { hf, task, ev, graph } = await twoPromptEvaluator(spec, ablation, `acdc-shaped-${spec.arch}`, 13);
    const at = 1; // the layer being decided
    const later = graph.edges.filter((e) => e.receiver.pos > at).map((e) => e.index);
    const baseEdges = later.filter((_, i) => i % 4 !== 0);
    const base = ev.base(baseEdges);
    const here = graph.edges.filter((e) => e.receiver.pos === at && e.receiver.attIndex >= 0).map((e) => e.index);
    // Speculative prefixes at the layer being decided, and one that also cuts an in-run sender's
    // edge into a later layer (still sharing the senders before the start).
    const inRun = graph.edges.find((e) => e.receiver.pos > at && e.receiver.attIndex >= 0 && e.sender.layer === at && !baseEdges.includes(e.index))!;
    const extras = [here.slice(0, 1), here.slice(0, 3), here.slice(0, 6), [...here.slice(0, 2), inRun.index]];
    const configs = extras.map((edges) => ({ edges, base }));
    const got = await ev.evaluate(configs);
    assertNaive(hf, task, ablation, graph, configs, got, spec.arch);
    assert.ok(Math.abs(got[2][0] - ev.clean[0]) > 1e-3, 'the ablations move the metric');
  }
});

test('layers measured from the fully ablated stream (small circuits, late ACDC) equal the naive edge forward', async () => {
  for (const [spec, ablation] of [
    [{ arch: 'gpt2', nLayer: 4, nHead: 3, dModel: 12, vocab: VOCAB, seed: 21 }, 'resample'],
    [{ arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 22 }, 'mean'],
    [{ arch: 'gpt_neox', nLayer: 3, nHead: 2, dModel: 16, vocab: VOCAB, seed: 23, activation: 'gelu_new' }, 'zero'],
    [{ arch: 'qwen2', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 24 }, 'resample'],
    [{ arch: 'mistral', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 25, slidingWindow: 3 }, 'resample'],
  ] as [HfModelSpec, Ablation][]) {
    const { hf, task, ev, graph } = await twoPromptEvaluator(spec, ablation, `from-ablated-${spec.arch}`, 14);
    const r = rng(31);
    // A small circuit: a few kept edges, every other edge ablated.
    const keep = new Set(graph.edges.filter(() => r() < 0.03).map((e) => e.index));
    // And every MLP reading the input and read by the logits: MLPs then mix a sender on top of the
    // stream, and their outputs count (a sender whose every out-edge is ablated does not).
    for (const e of graph.edges) if ((e.receiver.kind === 'mlp' && e.sender.index === 0) || (e.sender.kind === 'mlp' && e.receiver.kind === 'logits')) keep.add(e.index);
    // And, as in a real circuit, the heads a kept edge enters write to the logits: otherwise
    // nothing reads them, and the evaluator rightly leaves their inputs out of the routing.
    const nodes = receiverNodes(ev.model.config, graph);
    const live = new Set([...keep].flatMap((e) => nodes[graph.edges[e].receiver.index]));
    for (const e of graph.edges) if (live.has(e.sender.index) && e.receiver.kind === 'logits') keep.add(e.index);
    const circuit = graph.edges.filter((e) => !keep.has(e.index)).map((e) => e.index);
    // ACDC late in its run: every edge into layers after `at` decided (most removed), speculative
    // prefixes at `at`, one with a partly ablated in-run edge into a later layer.
    const at = 1;
    const later = graph.edges.filter((e) => e.receiver.pos > at).map((e) => e.index);
    const baseEdges = later.filter((e) => !keep.has(e));
    const base = ev.base(baseEdges);
    const here = graph.edges.filter((e) => e.receiver.pos === at && e.receiver.attIndex >= 0).map((e) => e.index);
    const inRun = graph.edges.find((e) => e.receiver.pos > at && e.receiver.attIndex >= 0 && e.sender.layer === at && !keep.has(e.index))!;
    const configs: EdgeAblation[] = [
      { edges: circuit },
      { edges: here.slice(0, 1), base },
      { edges: here.slice(0, 4), base },
      { edges: [...here.slice(0, 2), inRun.index], amount: [1, 1, 0.5], base },
    ];
    const specs: EdgeSpec[] = [];
    const got = await ev.evaluate(configs, undefined, (info) => specs.push(info.spec));
    assert.ok(specs.some((s) => (s.fromAblated ?? []).some((f) => f.senders.length > 0)), `${spec.arch}: some layer routes receivers from the fully ablated stream`);
    assert.ok(specs.some((s) => (s.mlpFromAblated ?? []).some((f) => f.senders.length > 0)), `${spec.arch}: some MLP reads the fully ablated stream`);
    assertNaive(hf, task, ablation, graph, configs, got, spec.arch);
    assert.ok(Math.abs(got[0][0] - ev.clean[0]) > 1e-3, 'the ablations move the metric');
  }
});

test('components cut off from every receiver: their inputs are left out and their MLPs not computed, and the metric still equals the naive edge forward', async () => {
  for (const [spec, ablation] of [
    [{ arch: 'gpt2', nLayer: 3, nHead: 2, dModel: 8, vocab: VOCAB, seed: 41 }, 'resample'],
    [{ arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 42 }, 'mean'],
    [{ arch: 'gpt_neox', nLayer: 3, nHead: 2, dModel: 16, vocab: VOCAB, seed: 43, activation: 'gelu_new' }, 'zero'],
  ] as [HfModelSpec, Ablation][]) {
    const { hf, task, ev, graph } = await twoPromptEvaluator(spec, ablation, `inert-${spec.arch}`, 15);
    const nodes = receiverNodes(ev.model.config, graph);
    const cut = new Set(['L1H0', 'L1MLP', 'L0MLP']);
    const cutIdx = new Set(graph.senders.filter((x) => cut.has(x.name)).map((x) => x.index));
    const out = graph.edges.filter((e) => cut.has(e.sender.name)).map((e) => e.index);
    // Their inputs partly ablated (so they would be routed), and some edges into the rest.
    const into = graph.edges.filter((e) => !cut.has(e.sender.name) && nodes[e.receiver.index].length > 0 && nodes[e.receiver.index].every((n) => cutIdx.has(n)) && e.index % 2 === 0).map((e) => e.index);
    const other = graph.edges.filter((e) => !cut.has(e.sender.name) && !into.includes(e.index) && e.index % 7 === 3).map((e) => e.index);
    const inert: EdgeAblation = { edges: [...out, ...into, ...other], amount: [...out.map(() => 1), ...into.map(() => 0.5), ...other.map(() => 1)] };
    // The same, with one outgoing edge of each only half ablated: nothing is cut off, and those inputs count.
    const halves = new Set(cut);
    const open: EdgeAblation = { edges: inert.edges, amount: inert.edges.map((e, k) => (halves.delete(graph.edges[e].sender.name) ? 0.5 : inert.amount![k])) };
    for (const [ci, conf] of [inert, open].entries()) {
      const specs: EdgeSpec[] = [];
      const got = await ev.evaluate([conf], undefined, (info) => specs.push(info.spec));
      const skipped = specs.flatMap((x) => x.skipMlp ?? []);
      if (ci === 0) {
        assert.deepEqual([...new Set(skipped)].sort(), [0, 1], `${spec.arch}: the cut-off MLPs are not computed`);
        assert.ok(specs.every((x) => !x.mlp.includes(1) && !x.mlp.includes(0)), `${spec.arch}: their inputs are not routed`);
        assert.ok(specs.some((x) => (x.liveReceivers ?? []).some((l) => l.layer === 1 && l.receivers.length > 0)), `${spec.arch}: layer 1 projects its live receivers only`);
      } else {
        assert.deepEqual(skipped, [], `${spec.arch}: nothing is cut off`);
      }
      assertNaive(hf, task, ablation, graph, [conf], got, `${spec.arch} (${ci === 0 ? 'cut off' : 'half open'})`);
    }
  }
});

test('configurations on a shared base set equal the same sets written out', async () => {
  const hf = randomHfModel({ arch: 'gpt2', nLayer: 3, nHead: 2, dModel: 8, vocab: VOCAB, seed: 8 });
  const model = load(hf, 'base');
  const task = randomTask(3, VOCAB, 12, [5, 7, 6]);
  const repl = await computeEdgeReplacements(model, task, 'resample');
  const ev = await EdgeEvaluator.create(model, task, repl, { batchSize: 5 });
  const graph = ev.graph;
  const late = graph.edges.filter((e) => e.receiver.pos >= 1).map((e) => e.index);
  const baseEdges = late.filter((_, i) => i % 3 === 0);
  const base = ev.base(baseEdges);
  const extras = [[], [late[1]], [late[2], late[4]], graph.edges.filter((e) => e.receiver.pos === 0).slice(0, 3).map((e) => e.index)];
  const onBase = await ev.evaluate(extras.map((edges) => ({ edges, base })));
  const written = await ev.evaluate(extras.map((edges) => ({ edges: [...baseEdges, ...edges] })));
  onBase.forEach((row, i) => row.forEach((v, p) => assert.ok(Math.abs(v - written[i][p]) < 1e-10, `config ${i} prompt ${p}`)));
  assert.ok(Math.abs(onBase[0][0] - ev.clean[0]) > 1e-4);
});
