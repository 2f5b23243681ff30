/**
 * The edge graph's shape (SPEC "Edges": 32,491 edges on GPT-2 small), its names and order, and the
 * link to components: ablating every edge out of a component is ablating the component.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/config.ts';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { buildEdgeGraph, edgeCountFormula, findEdge } from '../../src/discover/edge-graph.ts';
import { computeEdgeReplacements } from '../../src/discover/edge-replacements.ts';
import { EdgeEvaluator } from '../../src/discover/edge-evaluate.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements, type Ablation } from '../../src/discover/replacements.ts';
import { listComponents } from '../../src/discover/components.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';
import { isCarveError } from '../../src/util/errors.ts';
import { toMib } from '../../src/discover/mib.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

test('GPT-2 small has 32,491 edges, by the formula and by enumeration', () => {
  assert.equal(edgeCountFormula(12, 12), 32491);
  const cfg = parseConfig({ model_type: 'gpt2', n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 }, 'gpt2-small');
  const g = buildEdgeGraph(cfg);
  assert.equal(g.edges.length, 32491);
  assert.equal(g.senders.length, 1 + 12 * 13);
  assert.equal(g.receivers.length, 12 * 37 + 1);
  // Canonical order: by sender, then receiver; q inputs of every head, then k, then v, then the MLP.
  assert.deepEqual(g.edges.slice(0, 4).map((e) => e.name), ['input->L0H0<q>', 'input->L0H1<q>', 'input->L0H2<q>', 'input->L0H3<q>']);
  assert.equal(g.edges[12].name, 'input->L0H0<k>');
  assert.equal(g.edges[36].name, 'input->L0MLP');
  assert.equal(g.edges.at(-1)!.name, 'L11MLP->logits');
  // A layer's MLP reads its own heads; later heads never feed earlier receivers.
  assert.ok(g.byName.has('L3H2->L3MLP'));
  assert.ok(!g.byName.has('L3H2->L3H1<q>'));
  assert.ok(g.byName.has('L3H2->L4H1<v>'));
  for (const e of g.edges) assert.ok(e.sender.index < e.receiver.nSenders);
  // And the formula holds for other shapes.
  for (const [L, H] of [[1, 1], [3, 4], [24, 16]]) {
    const c = parseConfig({ model_type: 'gpt2', n_layer: L, n_head: H, n_embd: 8 * H, n_positions: 16, vocab_size: 10 }, 'x');
    assert.equal(buildEdgeGraph(c).edges.length, edgeCountFormula(L, H));
  }
});

test('grouped-query attention: one key and one value receiver per key/value head, named L{l}KV{j}', () => {
  const cfg = parseConfig({ model_type: 'llama', num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 40, vocab_size: 10, max_position_embeddings: 16 }, 'gqa');
  const g = buildEdgeGraph(cfg);
  assert.equal(g.edges.length, edgeCountFormula(2, 4, 2));
  const layer1 = g.receivers.filter((r) => r.layer === 1).map((r) => r.name);
  assert.deepEqual(layer1, ['L1H0<q>', 'L1H1<q>', 'L1H2<q>', 'L1H3<q>', 'L1KV0<k>', 'L1KV1<k>', 'L1KV0<v>', 'L1KV1<v>', 'L1MLP']);
  const neox = parseConfig({ model_type: 'gpt_neox', num_hidden_layers: 3, hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 10, max_position_embeddings: 16 }, 'neox');
  assert.ok(neox.parallelResidual);
  const gn = buildEdgeGraph(neox);
  assert.equal(gn.edges.length, edgeCountFormula(3, 2, 2, true));
  assert.ok(!gn.byName.has('L1H0->L1MLP'), 'a parallel MLP does not read its own layer');
});

test('an unknown edge name is a user error naming it', () => {
  const cfg = parseConfig({ model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 10 }, 'x');
  const g = buildEdgeGraph(cfg);
  assert.throws(() => findEdge(g, 'L1H0->L0H1<q>', 'keep.json'), (e) => isCarveError(e) && /keep\.json: the model has no edge L1H0->L0H1<q>/.test((e as Error).message));
  assert.throws(() => findEdge(g, 'L1H0 L0H1', 'keep.json'), (e) => isCarveError(e) && /not an edge name/.test((e as Error).message));
});

for (const ablation of ['mean', 'resample'] as Ablation[]) {
  test(`ablating every edge out of a component equals ablating the component (${ablation})`, async () => {
    const model = new HookedModel(randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 13 }), engine, 'float64');
    const task = randomTask(4, 30, 2, [5, 7, 6, 8]);
    const edgeRepl = await computeEdgeReplacements(model, task, ablation);
    const ev = await EdgeEvaluator.create(model, task, edgeRepl, { batchSize: 6 });
    const comp = await ExactEvaluator.create(model, task, await computeReplacements(model, task, ablation), { batchSize: 6 });
    const comps = listComponents(model.config);
    const names = ['L0H1', 'L0MLP', 'L1H0', 'L2H1', 'L2MLP'];
    const chosen = names.map((n) => comps.find((c) => c.name === n)!);
    const outOf = (n: string) => ev.graph.edges.filter((e) => e.sender.name === n).map((e) => e.index);
    const viaEdges = await ev.evaluate([...names.map((n) => ({ edges: outOf(n) })), { edges: [...outOf('L0H1'), ...outOf('L2MLP')] }]);
    const viaComps = await comp.evaluate([...chosen.map((c) => [c]), [chosen[0], chosen[4]]]);
    viaEdges.forEach((row, i) =>
      row.forEach((v, p) => assert.ok(Math.abs(v - viaComps[i][p]) < 1e-9, `${i < names.length ? names[i] : 'L0H1+L2MLP'} prompt ${p}: edges ${v} vs component ${viaComps[i][p]}`)),
    );
    assert.ok(Math.abs(viaEdges[0][0] - ev.clean[0]) > 1e-4);
  });
}

test("MIB format: MIB's names, and a GQA key/value receiver written for every query head that reads it", () => {
  const cfg = parseConfig({ model_type: 'llama', num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 40, vocab_size: 10, max_position_embeddings: 16 }, 'gqa');
  const g = buildEdgeGraph(cfg);
  const scores = g.edges.map((e) => e.index / 10);
  const m = toMib(cfg, 'edges', scores, 1);
  assert.deepEqual(m.cfg, { n_layers: 2, n_heads: 4, parallel_attn_mlp: false, d_model: 32 });
  const kv1 = g.byName.get('L0H2->L1KV1<k>')!;
  assert.equal(m.edges['a0.h2->a1.h2<k>'].score, scores[kv1.index]);
  assert.equal(m.edges['a0.h2->a1.h3<k>'].score, scores[kv1.index]);
  assert.equal(m.edges['input->a1.h0<q>'].score, scores[g.byName.get('input->L1H0<q>')!.index]);
  assert.equal(m.edges['m0->logits'].score, scores[g.byName.get('L0MLP->logits')!.index]);
  // MIB's graph: 3 receivers per query head, whatever the key/value heads.
  assert.equal(Object.keys(m.edges).length, edgeCountFormula(2, 4, 4));
  assert.ok(Object.values(m.edges).every((e) => e.in_graph));
});
