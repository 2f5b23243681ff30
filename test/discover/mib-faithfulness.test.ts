/**
 * MIB's own evaluation, the model-free parts: pruning a selection to the edges on an input-to-logits
 * path (against hand-made cases and against an independent transcription of MIB's iterative
 * node/edge pruning), the two rankings, and the trapezoid areas over MIB's circuit sizes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/config.ts';
import type { ModelConfig } from '../../src/model/types.ts';
import { buildEdgeGraph, receiverNodes, type EdgeGraph } from '../../src/discover/edge-graph.ts';
import { edgesAmongKept, helpfulSign, liveEdges, MIB_PERCENTAGES, topK } from '../../src/discover/mib-faithfulness.ts';
import { curveAreas } from '../../src/discover/faithfulness.ts';

const gpt2 = parseConfig({ model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 10 }, 'tiny');
const gqa = parseConfig({ model_type: 'llama', num_hidden_layers: 2, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 40, vocab_size: 10, max_position_embeddings: 16 }, 'gqa');
const neox = parseConfig({ model_type: 'gpt_neox', num_hidden_layers: 3, hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 10, max_position_embeddings: 16 }, 'neox');
/** A pruned layout: layer 0 keeps head 1 and no MLP, layer 1 keeps heads 0 and 2 and its MLP. */
const base3 = parseConfig({ model_type: 'gpt2', n_layer: 2, n_head: 3, n_embd: 12, n_positions: 16, vocab_size: 10 }, 'p');
const pruned: ModelConfig = {
  ...base3,
  pruned: true,
  layers: [
    { ...base3.layers[0], heads: [1], mlp: false },
    { ...base3.layers[1], heads: [0, 2] },
  ],
};

/** Select the named edges; return the names kept after pruning. */
function kept(cfg: ModelConfig, names: string[]): string[] {
  const g = buildEdgeGraph(cfg);
  const sel = new Array<boolean>(g.edges.length).fill(false);
  for (const n of names) {
    const e = g.byName.get(n);
    assert.ok(e, `no edge ${n}`);
    sel[e.index] = true;
  }
  return liveEdges(cfg, g, sel).flatMap((k, i) => (k ? [g.edges[i].name] : []));
}

test('an edge whose sender the input cannot reach is dropped, and so is one whose receiver reaches no logits', () => {
  assert.deepEqual(kept(gpt2, ['L0H0->logits']), [], 'L0H0 has no selected input');
  assert.deepEqual(kept(gpt2, ['input->L0H0<q>', 'L0H0->logits']), ['input->L0H0<q>', 'L0H0->logits']);
  assert.deepEqual(kept(gpt2, ['input->L1H0<q>']), [], 'L1H0 writes nowhere selected');
  assert.deepEqual(kept(gpt2, ['input->logits', 'input->L0MLP', 'L0MLP->L1H0<q>']), ['input->logits'], 'a chain that stops before the logits goes, the direct path stays');
  // Dead ends are dropped all the way back: L0MLP only feeds L1H0, which feeds nothing.
  assert.deepEqual(kept(gpt2, ['input->L0H1<v>', 'L0H1->L0MLP', 'L0MLP->L1H0<k>', 'L0H1->logits']), ['input->L0H1<v>', 'L0H1->logits']);
});

test('paths run through heads: any of q, k, v reaches the head, whose output leaves from it', () => {
  const chain = ['input->L0H0<k>', 'L0H0->L1H1<v>', 'L1H1->L1MLP', 'L1MLP->logits'];
  assert.deepEqual(kept(gpt2, chain), chain);
  // A head reached through its key alone still passes its output on; an extra dead branch goes.
  assert.deepEqual(kept(gpt2, [...chain, 'L0H0->L1H0<q>']), chain);
  // Nothing leaves the MLP: the whole chain is dead.
  assert.deepEqual(kept(gpt2, chain.slice(0, 3)), []);
});

test('grouped-query attention: a key/value receiver reaches every head of its group and lives while one of them does', () => {
  assert.deepEqual(kept(gqa, ['input->L0KV0<k>', 'L0H1->logits']), ['input->L0KV0<k>', 'L0H1->logits'], 'KV0 feeds heads 0 and 1');
  assert.deepEqual(kept(gqa, ['input->L0KV1<v>', 'L0H1->logits']), [], 'KV1 feeds heads 2 and 3, not 1');
  assert.deepEqual(kept(gqa, ['input->L1KV0<k>', 'L1H1->logits']), ['input->L1KV0<k>', 'L1H1->logits']);
  assert.deepEqual(kept(gqa, ['input->L1KV0<k>', 'L1H2->logits']), []);
  const g = buildEdgeGraph(gqa);
  const nodes = receiverNodes(gqa, g);
  const name = (i: number) => g.senders[i].name;
  assert.deepEqual(nodes[g.receivers.find((r) => r.name === 'L1KV1<v>')!.index].map(name), ['L1H2', 'L1H3']);
  assert.deepEqual(nodes[g.receivers.find((r) => r.name === 'L1MLP')!.index].map(name), ['L1MLP']);
  assert.deepEqual(nodes[g.receivers.find((r) => r.name === 'logits')!.index], []);
});

test('a pruned layout: receivers map onto the heads and MLPs that are there', () => {
  const g = buildEdgeGraph(pruned);
  const nodes = receiverNodes(pruned, g);
  const name = (i: number) => g.senders[i].name;
  assert.deepEqual(
    g.receivers.map((r) => `${r.name}:${nodes[r.index].map(name).join('+')}`),
    ['L0H1<q>:L0H1', 'L0H1<k>:L0H1', 'L0H1<v>:L0H1', 'L1H0<q>:L1H0', 'L1H2<q>:L1H2', 'L1H0<k>:L1H0', 'L1H2<k>:L1H2', 'L1H0<v>:L1H0', 'L1H2<v>:L1H2', 'L1MLP:L1MLP', 'logits:'],
  );
  assert.deepEqual(kept(pruned, ['input->L0H1<q>', 'L0H1->L1H2<k>', 'L1H2->L1MLP', 'L1MLP->logits', 'L0H1->L1H0<q>']), ['input->L0H1<q>', 'L0H1->L1H2<k>', 'L1H2->L1MLP', 'L1MLP->logits']);
});

/**
 * MIB's pruning as EAP-IG's Graph.prune does it, transcribed independently: over and over, a node
 * stays when it has a selected outgoing edge and a selected incoming one (the input needs no
 * incoming), then edges lose their place when their sender or any receiving node is gone (logits
 * always stay) — until nothing changes.
 */
function mibPrune(cfg: ModelConfig, g: EdgeGraph, selected: readonly boolean[]): boolean[] {
  const nodesOf = receiverNodes(cfg, g);
  const edges = [...selected];
  for (;;) {
    const out = new Array<boolean>(g.senders.length).fill(false);
    const inc = new Array<boolean>(g.senders.length).fill(false);
    inc[0] = true;
    g.edges.forEach((e, i) => {
      if (!edges[i]) return;
      out[e.sender.index] = true;
      for (const n of nodesOf[e.receiver.index]) inc[n] = true;
    });
    const alive = out.map((o, s) => o && inc[s]);
    let changed = false;
    g.edges.forEach((e, i) => {
      if (!edges[i]) return;
      const r = e.receiver;
      const receiverAlive = r.kind === 'logits' || nodesOf[r.index].some((n) => alive[n]);
      if (!alive[e.sender.index] || !receiverAlive) {
        edges[i] = false;
        changed = true;
      }
    });
    if (!changed) return edges;
  }
}

test('pruning agrees with an iterate-until-stable transcription of MIB on random selections', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const [label, cfg] of Object.entries({ gpt2, gqa, neox, pruned })) {
    const g = buildEdgeGraph(cfg);
    let nonTrivial = 0;
    for (let trial = 0; trial < 200; trial++) {
      const density = [0.03, 0.1, 0.3, 0.6][trial % 4];
      const sel = g.edges.map(() => rand() < density);
      const mine = liveEdges(cfg, g, sel);
      assert.deepEqual(mine, mibPrune(cfg, g, sel), `${label} trial ${trial}`);
      for (let i = 0; i < sel.length; i++) assert.ok(!mine[i] || sel[i], 'pruning never adds an edge');
      const n = mine.filter(Boolean).length;
      if (n > 0 && n < sel.filter(Boolean).length) nonTrivial++;
    }
    assert.ok(nonTrivial > 20, `${label}: only ${nonTrivial} selections were partly pruned`);
    // Everything selected: every node reads the input and writes to the logits, nothing goes.
    assert.ok(liveEdges(cfg, g, g.edges.map(() => true)).every(Boolean));
  }
});

test('rankings: |score| or helpful-first signed score, ties to the canonical order', () => {
  const s = [1, -3, 3, 0.5, -0.5];
  const ids = (keep: boolean[]) => keep.flatMap((k, i) => (k ? [i] : []));
  assert.deepEqual(ids(topK(s, 1, 'absolute')), [1], '|−3| = |3|: the earlier edge');
  assert.deepEqual(ids(topK(s, 3, 'absolute')), [0, 1, 2]);
  // logit-diff: carve's helpful edges lower the metric when ablated, so they score low.
  assert.equal(helpfulSign('logit-diff'), -1);
  assert.equal(helpfulSign('prob-diff'), -1);
  assert.equal(helpfulSign('kl'), 1);
  assert.deepEqual(ids(topK(s, 2, 'signed', -1)), [1, 4]);
  assert.deepEqual(ids(topK(s, 2, 'signed', 1)), [0, 2]);
  assert.deepEqual(ids(topK(s, 0, 'signed', 1)), []);
  assert.deepEqual(ids(topK(s, 5, 'signed', -1)), [0, 1, 2, 3, 4]);
});

test("MIB's sizes and areas: trapezoids over the nominal fractions, no clipping, no rescaling", () => {
  assert.deepEqual(MIB_PERCENTAGES, [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]);
  assert.deepEqual(
    MIB_PERCENTAGES.map((p) => Math.floor(p * 32491)),
    [32, 64, 162, 324, 649, 1624, 3249, 6498, 16245, 32491],
    "GPT-2 small's circuit sizes, as Python's int(p · n)",
  );
  // By hand: CPR = .05·(0 + .5)/2 + .1·.5 + .3·(.5 + 1)/2 + .5·1 = .7875;
  // CMD = .049·1 + .05·(1 + .5)/2 + .1·.5 + .3·(.5 + 0)/2 = .2115. Within [0, 1] they sum to .999.
  const a = curveAreas(MIB_PERCENTAGES, [0, 0, 0, 0, 0, 0, 0.5, 0.5, 1, 1]);
  assert.ok(Math.abs(a.cpr - 0.7875) < 1e-12, String(a.cpr));
  assert.ok(Math.abs(a.cmd - 0.2115) < 1e-12, String(a.cmd));
  // Below 0 and above 1 count as they are: CPR = .001·(−.2)/2 + .3·1.2/2 + .5·2.2/2 = .7299;
  // CMD = .001·2.2/2 + .198·1 + .3·1.2/2 + .5·.2/2 = .4291.
  const b = curveAreas(MIB_PERCENTAGES, [-0.2, 0, 0, 0, 0, 0, 0, 0, 1.2, 1]);
  assert.ok(Math.abs(b.cpr - 0.7299) < 1e-12, String(b.cpr));
  assert.ok(Math.abs(b.cmd - 0.4291) < 1e-12, String(b.cmd));
});

test("components: MIB's edge count is the edges among the kept ones, the input's and the logits' included", () => {
  const g = buildEdgeGraph(gpt2);
  const keep = (names: string[]) => g.senders.map((s) => names.includes(s.name));
  assert.equal(edgesAmongKept(gpt2, g, keep([])), 1, 'input->logits');
  // L0H1: input->L0H1<q,k,v>, L0H1->logits, input->logits.
  assert.equal(edgesAmongKept(gpt2, g, keep(['L0H1'])), 5);
  // Adding L1MLP: input->L1MLP, L0H1->L1MLP, L1MLP->logits.
  assert.equal(edgesAmongKept(gpt2, g, keep(['L0H1', 'L1MLP'])), 8);
  assert.equal(edgesAmongKept(gpt2, g, g.senders.map(() => true)), g.edges.length);
});
