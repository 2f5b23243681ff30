/**
 * ACDC over edges: the batched, speculative implementation makes exactly the decisions of the
 * one-edge-at-a-time algorithm written out here, whatever its batch width, while it decides the
 * edges into components left without outgoing edges without a run — which is exact because such
 * edges change nothing (checked on the evaluator, grouped-query key/value inputs included).
 */
import { test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { edgeAcdc } from '../../src/discover/edge-acdc.ts';
import { computeEdgeReplacements } from '../../src/discover/edge-replacements.ts';
import { EdgeEvaluator } from '../../src/discover/edge-evaluate.ts';
import { receiverNodes } from '../../src/discover/edge-graph.ts';
import { mean } from '../../src/task/metrics.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';
import { randomHfModel, writeAndLoad } from '../helpers/hf-random.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

test('edge ACDC equals the sequential algorithm, for any speculation width', async () => {
  const model = new HookedModel(randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 41 }), engine, 'float64');
  const task = randomTask(4, 30, 3, [5, 7, 6, 5]);
  const repl = await computeEdgeReplacements(model, task, 'resample');
  const ev = await EdgeEvaluator.create(model, task, repl, { batchSize: 8 });
  const graph = ev.graph;
  // A threshold between small and large single-edge effects, so some edges stay and some go.
  const single = await ev.evaluate(graph.edges.map((e) => ({ edges: [e.index] })));
  const effects = single.map((m) => Math.abs(mean(m) - mean(ev.clean))).sort((a, b) => a - b);
  const threshold = effects[Math.floor(effects.length * 0.3)];

  // The algorithm as written: receivers from last to first, senders from last to first.
  const visit = [...graph.edges].sort((a, b) => b.receiver.index - a.receiver.index || b.sender.index - a.sender.index);
  const removed: number[] = [];
  let current = mean(ev.clean);
  for (const e of visit) {
    const [m] = await ev.evaluate([{ edges: [...removed, e.index] }]);
    if (current - mean(m) < threshold) {
      removed.push(e.index);
      current = mean(m);
    }
  }
  const keptNaive = graph.edges.filter((e) => !removed.includes(e.index)).map((e) => e.name);
  assert.ok(keptNaive.length > 0 && removed.length > 0, `a mixed outcome (${keptNaive.length} kept, ${removed.length} removed)`);

  // Some receivers feed only components left with no outgoing edge: ACDC decides their edges
  // without a run (the naive loop above evaluated them, and removed them).
  const nodes = receiverNodes(model.config, graph);
  const dead = (n: number) => graph.edges.every((e) => e.sender.index !== n || removed.includes(e.index));
  const inert = graph.edges.filter((e) => nodes[e.receiver.index].length > 0 && nodes[e.receiver.index].every(dead));
  assert.ok(inert.length > 0, 'some edges enter components with no outgoing edge left');
  const rows = task.pairs.length;

  for (const width of [1, 5, 16]) {
    const seen: [number, number, { visited: number; total: number; withoutRun: number }][] = [];
    const r = await edgeAcdc(model, task, { ablation: 'resample', threshold, batchSize: 8, width, onProgress: (...a) => seen.push(a) });
    assert.deepEqual(r.kept, keptNaive, `width ${width}`);
    // Progress in work only grows and ends complete; every inert edge, and only those, went without a run.
    assert.ok(seen.every(([done], k) => k === 0 || done >= seen[k - 1][0]));
    const [done, total, edges] = seen.at(-1)!;
    assert.equal(done, total);
    assert.deepEqual(edges, { visited: graph.edges.length, total: graph.edges.length, withoutRun: inert.length });
    if (width === 1) assert.equal(r.evaluations, (graph.edges.length - inert.length) * rows, 'one evaluation per edge that can change the metric');
    assert.deepEqual(r.steps.slice(1).map((s) => s.edge), removed.map((i) => graph.edges[i].name));
    assert.ok(Math.abs(r.steps.at(-1)!.metric - current) < 1e-9);
    assert.equal(r.n_kept + r.steps.length - 1, graph.edges.length);
    // Moving down it released the graphs of the layers it had left, and the rest at the end
    // (the next width compiles them again).
    assert.deepEqual(model.edgeGraphStarts, []);
  }
  const evaluated = await edgeAcdc(model, task, { ablation: 'resample', threshold, batchSize: 8, width: 1, evaluateInert: true });
  assert.deepEqual(evaluated.kept, keptNaive);
  assert.equal(evaluated.evaluations, graph.edges.length * rows);
});

const tmp = mkdtempSync(join(tmpdir(), 'carve-acdc-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('ablating the edges into a receiver whose components have every outgoing edge ablated changes nothing (GPT-2, Llama-GQA)', async () => {
  const models = [
    new HookedModel(randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 7 }), engine, 'float64'),
    new HookedModel(writeAndLoad(tmp, 'gqa', randomHfModel({ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: 30, seed: 5 })), engine, 'float64'),
  ];
  for (const model of models) {
    const task = randomTask(3, 30, 3, [5, 6, 4]);
    const repl = await computeEdgeReplacements(model, task, 'resample');
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize: 8 });
    const graph = ev.graph;
    const nodes = receiverNodes(model.config, graph);
    const outOf = (ns: number[]) => graph.edges.filter((e) => ns.includes(e.sender.index)).map((e) => e.index);
    const gqa = model.config.nKvHead < model.config.nHead;
    for (const name of gqa ? ['L1KV0<k>', 'L1KV1<v>', 'L1H2<q>', 'L0MLP'] : ['L1H0<q>', 'L1H1<v>', 'L1MLP', 'L0H1<k>']) {
      const r = graph.receivers.find((x) => x.name === name)!;
      const into = graph.edges.filter((e) => e.receiver.index === r.index).map((e) => e.index);
      const out = outOf(nodes[r.index]);
      const [cut, both, inOnly] = await ev.evaluate([{ edges: out }, { edges: [...out, ...into] }, { edges: into }]);
      for (let p = 0; p < cut.length; p++) assert.ok(Math.abs(both[p] - cut[p]) < 1e-10, `${name}: ${both[p]} vs ${cut[p]}`);
      // Not vacuous: with the outgoing edges kept, the same inputs matter.
      assert.ok(inOnly.some((m, p) => Math.abs(m - ev.clean[p]) > 1e-6), name);
      if (nodes[r.index].length > 1) {
        // A key/value input feeds every head of its group: one head cut off is not enough.
        const some = outOf(nodes[r.index].slice(1));
        const [partCut, partBoth] = await ev.evaluate([{ edges: some }, { edges: [...some, ...into] }]);
        assert.ok(partBoth.some((m, p) => Math.abs(m - partCut[p]) > 1e-6), `${name}: one head of its group still reads it`);
      }
    }
  }
});
