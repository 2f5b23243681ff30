/**
 * Edge attribution scores against finite differences:
 *  - EAP of edge S->R equals the derivative of the metric along the ablation direction,
 *    d/dε metric(edge ablated by ε) at ε = 0, from the exact edge evaluator (checked against the
 *    naive definition in edges-exact.test.ts) — for every edge of small models of three
 *    architectures (LayerNorm and RMSNorm receivers, GQA, a parallel residual);
 *  - EAP-IG-inputs equals the average over its K input points of that derivative taken in the run
 *    whose input embeddings sit at the point, with the sender delta of the clean run (naive float64).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { buildEdgeGraph } from '../../src/discover/edge-graph.ts';
import { computeEdgeReplacements, resampleInRun } from '../../src/discover/edge-replacements.ts';
import { EdgeEvaluator } from '../../src/discover/edge-evaluate.ts';
import { activationBands, activationSites, contractionPlan, DEFAULT_RECEIVER_GROUPS, edgeAttribution, type IgPath } from '../../src/discover/edge-attribution.ts';
import { computeReplacements, type Ablation } from '../../src/discover/replacements.ts';
import { listComponents } from '../../src/discover/components.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { randomHfModel, writeAndLoad, type HfModel, type HfModelSpec } from '../helpers/hf-random.ts';
import { naiveEdgeForward } from '../helpers/naive-edges.ts';
import { randomTask } from '../helpers/random-task.ts';
import type { PromptPair } from '../../src/task/types.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'carve-edges-attr-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const VOCAB = 23;

const load = (hf: HfModel, name: string): HookedModel => new HookedModel(writeAndLoad(tmp, name, hf), engine, 'float64');

const cases: { name: string; spec: HfModelSpec; ablation: Ablation; removed?: string[] }[] = [
  { name: 'gpt2', spec: { arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: VOCAB, seed: 21 }, ablation: 'resample' },
  { name: 'llama-gqa', spec: { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 22 }, ablation: 'mean' },
  { name: 'qwen2-biases', spec: { arch: 'qwen2', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 25 }, ablation: 'resample' },
  { name: 'gpt2-5-layers', spec: { arch: 'gpt2', nLayer: 5, nHead: 2, dModel: 8, vocab: VOCAB, seed: 24 }, ablation: 'resample' },
  { name: 'neox-parallel', spec: { arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 23, activation: 'gelu_new' }, ablation: 'zero' },
  // Compressed models: a layer without heads, uneven head counts, a missing MLP.
  { name: 'gpt2-pruned', spec: { arch: 'gpt2', nLayer: 4, nHead: 2, dModel: 8, vocab: VOCAB, seed: 26 }, ablation: 'resample', removed: ['L1H0', 'L1H1', 'L2H0', 'L0MLP'] },
  { name: 'llama-gqa-pruned', spec: { arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 27 }, ablation: 'mean', removed: ['L0H0', 'L0H1', 'L2H3', 'L1MLP'] },
];

/** EAP, EAP-IG-inputs and EAP-IG-activations: what the invariance tests below run. */
const VARIANTS: readonly { method: 'attribution' | 'ig'; igPath?: IgPath; label: string }[] = [
  { method: 'attribution', label: 'EAP' },
  { method: 'ig', label: 'EAP-IG-inputs' },
  { method: 'ig', igPath: 'activations', label: 'EAP-IG-activations' },
];

/** The model of a case: as written, or compressed with `removed` mean-ablated away. */
async function caseModel(c: (typeof cases)[number]): Promise<HookedModel> {
  const loaded = writeAndLoad(tmp, c.name, randomHfModel(c.spec));
  const model = new HookedModel(loaded, engine, 'float64');
  if (!c.removed) return model;
  const removed = new Set(c.removed);
  const keep = new Set(listComponents(model.config, 'all').map((x) => x.name).filter((n) => !removed.has(n)));
  const repl = await computeReplacements(model, randomTask(3, VOCAB, 4, [5, 5, 5]), 'mean');
  return new HookedModel(pruneModel(loaded, keep, repl, 'mean'), engine, 'float64');
}

/**
 * A prompt pair's senders in the clean and corrupt runs (naive float64) and its metric read from
 * logits [T, V] at the last position: the logit difference, or KL(clean ‖ run) of the next token.
 */
function naivePair(hf: HfModel, pair: PromptPair, name: 'logit-diff' | 'kl' = 'logit-diff') {
  const t = pair.clean.length - 1;
  const logSoftmaxAt = (out: Float64Array) => {
    const row = out.subarray(t * VOCAB, (t + 1) * VOCAB);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    return row.map((x) => x - lse);
  };
  const cleanRun = naiveEdgeForward(hf, pair.clean);
  const cleanLogP = logSoftmaxAt(cleanRun.logits);
  const metric = (out: Float64Array) => {
    if (name === 'logit-diff') return out[t * VOCAB + pair.correct[0]] - out[t * VOCAB + pair.incorrect[0]];
    const lp = logSoftmaxAt(out);
    return cleanLogP.reduce((a, c, j) => a + Math.exp(c) * (c - lp[j]), 0);
  };
  return { clean: cleanRun.senders, corrupt: naiveEdgeForward(hf, pair.corrupt).senders, metric };
}

for (const c of cases) {
  test(`EAP of every edge equals a central difference along its ablation (${c.name}, ${c.ablation})`, async () => {
    const model = await caseModel(c);
    const task = randomTask(3, VOCAB, 5, [6, 4, 7]);
    const repl = await computeEdgeReplacements(model, task, c.ablation);
    const graph = buildEdgeGraph(model.config);
    const eap = await edgeAttribution(model, task, repl, { method: 'attribution', batchSize: 2 });
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize: 16 });
    const eps = 1e-5;
    const configs = graph.edges.flatMap((e) => [
      { edges: [e.index], amount: [eps] },
      { edges: [e.index], amount: [-eps] },
    ]);
    const m = await ev.evaluate(configs);
    let largest = 0;
    graph.edges.forEach((e) => {
      task.pairs.forEach((_, p) => {
        const fd = (m[2 * e.index][p] - m[2 * e.index + 1][p]) / (2 * eps);
        const got = eap.perPrompt[e.index][p];
        largest = Math.max(largest, Math.abs(fd));
        assert.ok(Math.abs(got - fd) < 1e-6 * (1 + Math.abs(fd)), `${e.name} prompt ${p}: EAP ${got} vs finite difference ${fd}`);
      });
    });
    assert.ok(largest > 1e-2, 'the derivatives are not all ~0');
    eap.clean.forEach((v, p) => assert.ok(Math.abs(v - ev.clean[p]) < 1e-9));
  });
}

test('EAP-IG-inputs equals the average over its input points of the edge derivative with the clean sender delta (logit difference and KL)', async () => {
  const hf = randomHfModel({ arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: VOCAB, seed: 31 });
  const model = load(hf, 'ig');
  const task = randomTask(2, VOCAB, 9, [5, 6]);
  const repl = await computeEdgeReplacements(model, task, 'resample');
  const graph = buildEdgeGraph(model.config);
  const K = 3;
  for (const metricName of ['logit-diff', 'kl'] as const) {
    // KL: both prompts in one run, each row reading its own prompt's clean distribution.
    const ig = await edgeAttribution(model, task, repl, { method: 'ig', steps: K, batchSize: metricName === 'kl' ? 2 * K : 4, metric: metricName });
    if (metricName === 'kl') ig.clean.forEach((m) => assert.ok(Math.abs(m) < 1e-12, 'KL of the clean run from itself'));
    const d = model.config.dModel;
    const names = ['L0H1->L1H0<k>', 'L0MLP->logits', 'L1H1->L1MLP', 'L0H0->L1H1<q>'];
    for (const name of names) {
      const e = graph.byName.get(name)!;
      task.pairs.forEach((pair, p) => {
        const { clean, corrupt, metric } = naivePair(hf, pair, metricName);
        const s = e.sender.name;
        let sum = 0;
        for (let k = 0; k < K; k++) {
          // The input sender at x_k = corrupt + (k/K)(clean − corrupt), for every receiver.
          const xk = (t: number) => corrupt.get('input')![t].map((c, j) => c + (k / K) * (clean.get('input')![t][j] - c));
          const inputEdges = new Map(graph.edges.filter((x) => x.sender.name === 'input').map((x) => [x.name, 1]));
          const base = naiveEdgeForward(hf, pair.clean, { ablated: inputEdges, replacement: (sn, t) => (sn === 'input' ? xk(t) : new Float64Array(d)) }).senders;
          // Move edge e's receiver by ε·(corrupt_s − clean_s): a replacement of cur_s + that delta, ablated by ε.
          const at = (eps: number) =>
            metric(
              naiveEdgeForward(hf, pair.clean, {
                ablated: new Map([...inputEdges, [e.name, eps]]),
                replacement: (sn, t) => (sn === 'input' ? xk(t) : base.get(s)![t].map((cur, j) => cur + corrupt.get(s)![t][j] - clean.get(s)![t][j])),
              }).logits,
            );
          const eps = 1e-5;
          sum += (at(eps) - at(-eps)) / (2 * eps);
        }
        const want = sum / K;
        const got = ig.perPrompt[e.index][p];
        assert.ok(Math.abs(got - want) < 1e-6 * (1 + Math.abs(want)), `${metricName} ${name} prompt ${p}: EAP-IG ${got} vs ${want}`);
      });
    }
  }
});

test('EAP-IG-activations equals the average over its sites and points of the edge derivative in the run with that site pinned (naive float64; logit difference and KL)', async () => {
  for (const [spec, names, metricName] of [
    [{ arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: VOCAB, seed: 33 }, ['L0H1->L1H0<k>', 'L0MLP->logits', 'L1H1->L1MLP', 'input->L1H1<q>', 'L0H0->L0MLP'], 'logit-diff'],
    [{ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 34 }, ['L0H3->L1KV1<v>', 'input->L0MLP', 'L1H2->logits', 'L0MLP->L1H0<q>'], 'logit-diff'],
    [{ arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: VOCAB, seed: 35 }, ['L0H1->L1H0<v>', 'L1MLP->logits', 'input->L0MLP'], 'kl'],
    // A parallel residual (the MLP reads the layer's input, not its heads) and q/k/v biases.
    [{ arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 16, vocab: VOCAB, seed: 36, activation: 'gelu_new' }, ['L0H1->L1H0<q>', 'L0MLP->L1MLP', 'L1H1->logits'], 'logit-diff'],
    [{ arch: 'qwen2', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 37 }, ['L0H2->L1KV0<k>', 'input->L1H3<q>', 'L0MLP->logits'], 'logit-diff'],
  ] as [HfModelSpec, string[], 'logit-diff' | 'kl'][]) {
    const hf = randomHfModel(spec);
    const model = load(hf, `ig-act-${spec.arch}-${metricName}`);
    const task = randomTask(2, VOCAB, 19, [5, 6]);
    const repl = await computeEdgeReplacements(model, task, 'resample');
    const graph = buildEdgeGraph(model.config);
    const K = 2;
    // A batch smaller than a prompt's rows: each prompt runs in parts, the last one padded (KL: both
    // prompts in one run, each row reading its own prompt's clean distribution).
    const ig = await edgeAttribution(model, task, repl, { method: 'ig', igPath: 'activations', steps: K, batchSize: metricName === 'kl' ? 20 : 4, metric: metricName });
    const L = spec.nLayer;
    const heads = Array.from({ length: spec.nHead }, (_, h) => h);
    const sites: string[][] = [['input'], ...Array.from({ length: L }, (_, l) => [heads.map((h) => `L${l}H${h}`), [`L${l}MLP`]]).flat()];
    let largest = 0;
    for (const name of names) {
      const e = graph.byName.get(name)!;
      task.pairs.forEach((pair, p) => {
        const { clean, corrupt, metric } = naivePair(hf, pair, metricName);
        const s = e.sender.name;
        const delta = (t: number) => corrupt.get(s)![t].map((c, j) => c - clean.get(s)![t][j]);
        let sum = 0;
        for (const site of sites) {
          for (let k = 1; k <= K; k++) {
            // The site's senders read as alpha·clean + (1 − alpha)·corrupt by every receiver.
            const alpha = k / K;
            const pinnedAt = (sn: string, t: number) => clean.get(sn)![t].map((c, j) => alpha * c + (1 - alpha) * corrupt.get(sn)![t][j]);
            const siteEdges = new Map(graph.edges.filter((x) => site.includes(x.sender.name)).map((x) => [x.name, 1]));
            const base = naiveEdgeForward(hf, pair.clean, { ablated: siteEdges, replacement: pinnedAt }).senders;
            const senderNow = (t: number) => (site.includes(s) ? pinnedAt(s, t) : base.get(s)![t]);
            // Edge e's receiver reads what it reads in the pinned run, plus ε·(corrupt − clean).
            const at = (eps: number) =>
              metric(
                naiveEdgeForward(hf, pair.clean, {
                  ablated: new Map([...siteEdges, [e.name, 1]]),
                  replacement: (sn, t, r) => (sn === s && r === e.receiver.name ? senderNow(t).map((x, j) => x + eps * delta(t)[j]) : pinnedAt(sn, t)),
                }).logits,
              );
            const eps = 1e-5;
            sum += (at(eps) - at(-eps)) / (2 * eps);
          }
        }
        const want = sum / (sites.length * K);
        const got = ig.perPrompt[e.index][p];
        largest = Math.max(largest, Math.abs(want));
        assert.ok(Math.abs(got - want) < 1e-6 * (1 + Math.abs(want)), `${spec.arch} ${name} prompt ${p}: EAP-IG-activations ${got} vs ${want}`);
      });
    }
    assert.ok(largest > 1e-2, `${spec.arch}: the scores are not all ~0`);
  }
});

test('contraction plan: every head layer in exactly one chunk, in order; a group multiplies exactly the heads before its last layer', () => {
  for (const L of [1, 2, 5, 12]) {
    for (const n of [1, 2, 3, 4, 6, 20]) {
      const cfg = { layers: Array.from({ length: L }, (_, i) => ({ heads: i === 1 && L > 3 ? [] : [0, 1] })) };
      const plan = contractionPlan(cfg, n);
      const withHeads = cfg.layers.map((l, i) => (l.heads.length > 0 ? i : -1)).filter((i) => i >= 0);
      assert.deepEqual(plan.headChunks.flat(), withHeads, `L=${L} n=${n}`);
      assert.deepEqual(plan.receiverGroups.flatMap((r) => r.layers), withHeads);
      for (const r of plan.receiverGroups) {
        const last = r.layers[r.layers.length - 1];
        assert.equal(r.chunks.at(-1), plan.headChunks.length, 'the rest chunk comes last');
        assert.deepEqual(r.chunks.slice(0, -1).flatMap((c) => plan.headChunks[c]), withHeads.filter((i) => i < last));
      }
    }
  }
});

test('EAP and both EAP-IGs do not depend on how the receivers are grouped (5 layers, float64)', async () => {
  for (const spec of [
    { arch: 'gpt2', nLayer: 5, nHead: 2, dModel: 8, vocab: VOCAB, seed: 41 },
    { arch: 'llama', nLayer: 5, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 42 },
  ] as HfModelSpec[]) {
    const model = load(randomHfModel(spec), `groups-${spec.arch}`);
    const task = randomTask(3, VOCAB, 11, [6, 6, 6]);
    const repl = await computeEdgeReplacements(model, task, 'resample');
    for (const { method, igPath, label } of VARIANTS) {
      const one = await edgeAttribution(model, task, repl, { method, igPath, steps: 3, batchSize: 9, receiverGroups: 1 });
      let largest = 0;
      for (const groups of [2, 3, 5]) {
        const other = await edgeAttribution(model, task, repl, { method, igPath, steps: 3, batchSize: 9, receiverGroups: groups });
        one.perPrompt.forEach((row, e) =>
          row.forEach((v, p) => {
            largest = Math.max(largest, Math.abs(v));
            assert.ok(Math.abs(other.perPrompt[e][p] - v) < 1e-10 * (1 + Math.abs(v)), `${spec.arch} ${label} groups=${groups} edge ${e}`);
          }),
        );
      }
      assert.ok(largest > 1e-3, 'the scores are not all ~0');
    }
  }
});

test('EAP-IG-activations in bands equals it in one band on compressed models (layers without heads or an MLP)', async () => {
  for (const c of cases.filter((x) => x.removed)) {
    const model = await caseModel(c);
    const task = randomTask(2, VOCAB, 21, [6, 5]);
    const repl = await computeEdgeReplacements(model, task, c.ablation);
    const plan = contractionPlan(model.config, DEFAULT_RECEIVER_GROUPS);
    const bands = activationBands(model.config, plan, activationSites(model.config));
    assert.ok(bands.length >= 3, `${c.name}: several bands`);
    assert.deepEqual(bands.flatMap((b) => b.sites).sort((a, b) => a - b), activationSites(model.config).map((_, j) => j), `${c.name}: every site in one band`);
    const one = await edgeAttribution(model, task, repl, { method: 'ig', igPath: 'activations', steps: 2, batchSize: 7, receiverGroups: 1 });
    const banded = await edgeAttribution(model, task, repl, { method: 'ig', igPath: 'activations', steps: 2, batchSize: 7 });
    let largest = 0;
    one.perPrompt.forEach((row, e) =>
      row.forEach((v, p) => {
        largest = Math.max(largest, Math.abs(v));
        assert.ok(Math.abs(banded.perPrompt[e][p] - v) < 1e-10 * (1 + Math.abs(v)), `${c.name} edge ${e} prompt ${p}: ${banded.perPrompt[e][p]} vs ${v}`);
      }),
    );
    assert.ok(largest > 1e-3, 'the scores are not all ~0');
  }
});

test('EAP and both EAP-IGs do not depend on how the prompts are split into runs (ragged lengths, uneven last run)', async () => {
  const model = load(randomHfModel({ arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 43 }), 'chunks-llama');
  const task = randomTask(7, VOCAB, 12, [4, 9, 6, 7, 5, 9, 8]);
  for (const repl of [resampleInRun(model, task), await computeEdgeReplacements(model, task, 'mean')]) {
    for (const { method, igPath, label } of VARIANTS) {
      const steps = method === 'ig' ? 3 : 1;
      // All prompts in one run, then runs of at most 3 and 2 prompts (7 = 3+2+2, 2+2+2+1), then a
      // batch smaller than a prompt's steps (one prompt a run; along activations, parts of a band).
      const runs = [];
      for (const batchSize of [7 * steps, 3 * steps, 2 * steps, 2]) {
        // Progress only grows, and ends at its total.
        const seen: [number, number][] = [];
        runs.push(await edgeAttribution(model, task, repl, { method, igPath, steps: 3, batchSize, onProgress: (d, t) => seen.push([d, t]) }));
        assert.ok(seen.length > 0 && seen.every(([d, t], i) => t === seen[0][1] && (i === 0 || d > seen[i - 1][0])), `${label}: progress grows`);
        assert.equal(seen.at(-1)![0], seen.at(-1)![1], `${label}: progress ends at its total`);
      }
      const [all, ...split] = runs;
      for (const other of split) {
        all.perPrompt.forEach((row, e) => row.forEach((v, p) => assert.ok(Math.abs(other.perPrompt[e][p] - v) < 1e-10 * (1 + Math.abs(v)), `${label} edge ${e} prompt ${p}`)));
        other.clean.forEach((m, p) => assert.ok(Math.abs(m - all.clean[p]) < 1e-10, `${label} clean metric ${p}`));
      }
      assert.ok(all.perPrompt.some((row) => row.some((v) => Math.abs(v) > 1e-3)), 'the scores are not all ~0');
    }
  }
});

test('EAP and both EAP-IGs under resample with the corrupt run inside the graph equal them with a separate corrupt pass; the corrupt metric too', async () => {
  for (const spec of [
    { arch: 'gpt2', nLayer: 3, nHead: 2, dModel: 8, vocab: VOCAB, seed: 51 },
    { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 52 },
  ] as HfModelSpec[]) {
    const model = load(randomHfModel(spec), `in-run-${spec.arch}`);
    const task = randomTask(4, VOCAB, 13, [5, 7, 7, 6]);
    const full = await computeEdgeReplacements(model, task, 'resample');
    const light = resampleInRun(model, task);
    for (const { method, igPath, label } of VARIANTS) {
      const a = await edgeAttribution(model, task, full, { method, igPath, steps: 3, batchSize: 6 });
      const b = await edgeAttribution(model, task, light, { method, igPath, steps: 3, batchSize: 6 });
      a.perPrompt.forEach((row, e) => row.forEach((v, p) => assert.ok(Math.abs(b.perPrompt[e][p] - v) < 1e-10 * (1 + Math.abs(v)), `${spec.arch} ${label} edge ${e} prompt ${p}: ${b.perPrompt[e][p]} vs ${v}`)));
      assert.ok(a.corrupt === undefined);
      b.corrupt!.forEach((m, p) => assert.ok(Math.abs(m - full.corruptMetric![p]) < 1e-10, `${label}: corrupt metric of prompt ${p}`));
      b.clean.forEach((m, p) => assert.ok(Math.abs(m - a.clean[p]) < 1e-10));
    }
  }
});

test('float32 edge attribution (onnxruntime fully optimising the graph and its side runs) agrees with float64', async () => {
  for (const spec of [
    { arch: 'gpt2', nLayer: 4, nHead: 4, dModel: 32, vocab: VOCAB, seed: 61 },
    { arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 32, vocab: VOCAB, seed: 62 },
  ] as HfModelSpec[]) {
    const loaded = writeAndLoad(tmp, `f32-${spec.arch}`, randomHfModel(spec));
    const m64 = new HookedModel(loaded, engine, 'float64');
    const m32 = new HookedModel(loaded, engine, 'float32');
    const task = randomTask(5, VOCAB, 17, [7, 7, 7, 7, 7]);
    for (const { method, igPath, label } of VARIANTS) {
      const r64 = await edgeAttribution(m64, task, resampleInRun(m64, task), { method, igPath, steps: 4, batchSize: 20 });
      const r32 = await edgeAttribution(m32, task, resampleInRun(m32, task), { method, igPath, steps: 4, batchSize: 20 });
      const big = Math.max(...r64.perPrompt.map((row) => Math.max(...row.map(Math.abs))));
      assert.ok(big > 0.1, 'the scores are not all ~0');
      r64.perPrompt.forEach((row, e) => row.forEach((v, p) => assert.ok(Math.abs(r32.perPrompt[e][p] - v) < 1e-4 * (1 + big), `${spec.arch} ${label} edge ${e} prompt ${p}`)));
      r64.clean.forEach((v, p) => assert.ok(Math.abs(r32.clean[p] - v) < 1e-4 * (1 + Math.abs(v))));
      r64.corrupt!.forEach((v, p) => assert.ok(Math.abs(r32.corrupt![p] - v) < 1e-4 * (1 + Math.abs(v))));
    }
  }
});
