import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel, type NeuronIntervention } from '../../src/model/hooked.ts';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import { computeReplacements, removalInterventions } from '../../src/discover/replacements.ts';
import { listComponents } from '../../src/discover/components.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { countNeurons, neuronValues, pruneNeurons, searchNeurons, stateMetrics, type NeuronSet, type RemovedNeuron } from '../../src/compress/neurons.ts';
import { countParams } from '../../src/compress/count.ts';
import { mean } from '../../src/task/metrics.ts';
import type { ModelData } from '../../src/model/types.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';
import { randomHfModel, writeHfModelDir, type HfModelSpec } from '../helpers/hf-random.ts';
import { rng } from '../helpers/gradcheck.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

function hfModel(spec: HfModelSpec): ModelData {
  const dir = mkdtempSync(join(tmpdir(), 'carve-neurons-'));
  try {
    writeHfModelDir(dir, randomHfModel(spec));
    return loadModelDir(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const models: [string, () => ModelData][] = [
  ['gpt2 (tied)', () => randomModel({ nLayer: 3, nHead: 4, dModel: 32, seed: 13 })],
  ['llama (SwiGLU, no biases: carve adds the output bias)', () => hfModel({ arch: 'llama', nLayer: 3, nHead: 4, nKvHead: 2, dModel: 32, vocab: 60, maxPos: 16, seed: 4 })],
  ['gpt_neox (parallel residual, untied)', () => hfModel({ arch: 'gpt_neox', nLayer: 3, nHead: 4, dModel: 32, vocab: 60, maxPos: 16, seed: 6 })],
];

for (const [label, make] of models) {
  for (const ablation of ['mean', 'zero'] as const) {
    test(`pruneNeurons after pruneModel, ${label} (${ablation}): logits equal the original with the same components and neurons ablated`, async () => {
      const m = make();
      const cfg = m.config;
      const hooked = new HookedModel(m, engine);
      const task = randomTask(6, cfg.vocabSize, 3);
      const repl = await computeReplacements(hooked, task, ablation, 'clean');
      const nv = await neuronValues(hooked, task, ablation, 'clean', 4);
      // Components: two heads and layer 1's MLP; neurons: a third of layer 0's, all of layer 2's.
      const removedComps = listComponents(cfg).filter((c) => ['L0H1', 'L2H3', 'L1MLP'].includes(c.name));
      const r = rng(9);
      const neurons: NeuronSet = new Map([
        [0, Array.from({ length: cfg.dMlp }, (_, i) => i).filter(() => r() < 0.33)],
        [2, Array.from({ length: cfg.dMlp }, (_, i) => i)],
      ]);
      const removedNames = new Set(removedComps.map((c) => c.name));
      const carved = pruneModel(m, new Set(listComponents(cfg).map((c) => c.name).filter((n) => !removedNames.has(n))), repl, ablation);
      const bySource = new Map<number, RemovedNeuron[]>();
      for (const [pos, slots] of neurons) bySource.set(cfg.layers[pos].sourceLayer, slots.map((s) => ({ neuron: s, value: nv.values.get(pos)![s] })));
      const pruned = pruneNeurons(carved, bySource);
      assert.deepEqual(pruned.config.layers[0].neurons, Array.from({ length: cfg.dMlp }, (_, i) => i).filter((i) => !neurons.get(0)!.includes(i)));
      assert.equal(pruned.config.layers.at(-1)!.mlp, false, 'every neuron of layer 2 gone: no MLP left');
      // Exactly the removed neurons' weights leave the file.
      const perNeuron = cfg.dModel * (cfg.mlp.gated ? 3 : 2) + (cfg.bias.mlpIn ? (cfg.mlp.gated ? 2 : 1) : 0);
      const norm2 = cfg.norm.kind === 'layer' ? 2 * cfg.dModel : cfg.dModel;
      const addedBiases = countParams(pruned).n_params - countParams(carved).n_params + (neurons.get(0)!.length + cfg.dMlp) * perNeuron + norm2;
      assert.equal(addedBiases, 0, 'parameter count falls by the removed neurons (and the emptied MLP\'s norm)');
      assert.equal(countNeurons(pruned.config).kept, cfg.dMlp - neurons.get(0)!.length);

      // Reference: the original model with interventions.
      const toks = randomTask(3, cfg.vocabSize, 8, [7, 4, 9]).pairs.map((p) => p.clean);
      const B = toks.length;
      const T = Math.max(...toks.map((t) => t.length));
      const rows = toks.map((_, b) => ({ prompt: b, removed: removedComps }));
      const zLayers = cfg.layers.map((_, i) => i);
      const { z, mlp } = removalInterventions(hooked, { ...repl, tMax: T }, rows, T, toks.map((t) => t.length), zLayers, zLayers);
      const nIv = new Map<number, NeuronIntervention>();
      for (const [pos, slots] of neurons) {
        const keep = new Float32Array(B * cfg.dMlp).fill(1);
        for (let b = 0; b < B; b++) for (const s of slots) keep[b * cfg.dMlp + s] = 0;
        nIv.set(pos, { keep, value: nv.values.get(pos)! });
      }
      const ref = await hooked.run({ tokens: toks, logits: 'all', z, mlp, neurons: nIv });
      const dir = mkdtempSync(join(tmpdir(), 'carve-neurons-out-'));
      try {
        saveModelDir(join(dir, 'm'), pruned);
        const back = loadModelDir(join(dir, 'm'));
        assert.deepEqual(back.config.layers, pruned.config.layers);
        const got = await new HookedModel(back, engine).run({ tokens: toks, logits: 'all' });
        let worst = 0;
        const V = cfg.vocabSize;
        toks.forEach((row, b) => {
          for (let t = 0; t < row.length; t++) {
            for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(got.logits!.data[(b * T + t) * V + j] - ref.logits!.data[(b * T + t) * V + j]));
          }
        });
        assert.ok(worst <= 1e-4, `${label}: logits differ by ${worst}`);
        // The neuron ablation matters: without it the logits differ.
        const compsOnly = await hooked.run({ tokens: toks, logits: 'all', z, mlp });
        let moved = 0;
        compsOnly.logits!.data.forEach((x, i) => (moved = Math.max(moved, Math.abs(x - ref.logits!.data[i]))));
        assert.ok(moved > 1e-3, `${label}: removing the neurons changes nothing (${moved})`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
}

test('searchNeurons: removes neurons while the exact metric holds, and the folded model has that metric', async () => {
  const m = randomModel({ nLayer: 2, nHead: 2, dModel: 16, dMlp: 32, seed: 31 });
  const hooked = new HookedModel(m, engine);
  const task = randomTask(8, m.config.vocabSize, 5);
  const repl = await computeReplacements(hooked, task, 'mean', 'clean');
  const nv = await neuronValues(hooked, task, 'mean', 'clean', 8);
  const comps = listComponents(m.config).filter((c) => c.name === 'L0H1');
  const all: NeuronSet = new Map(m.config.layers.map((_, pos) => [pos, Array.from({ length: 32 }, (_, i) => i)]));
  const [base, none] = await stateMetrics(hooked, task, repl, nv, [{ components: comps, neurons: new Map() }, { components: comps, neurons: all }], 8);
  // Halfway between the components-only metric and the metric with no neurons left: some can go, not all.
  assert.ok(mean(base) - mean(none) > 0.1, `the neurons matter: ${mean(base)} vs ${mean(none)}`);
  const threshold = (mean(base) + mean(none)) / 2;
  const found = await searchNeurons(hooked, task, repl, nv, comps, threshold, { batchSize: 16 });
  const removed = [...found.neurons.values()].reduce((s, x) => s + x.length, 0);
  assert.ok(removed > 0 && removed < 64, `removed ${removed} of 64`);
  assert.ok(mean(found.metrics) >= threshold);
  const [again] = await stateMetrics(hooked, task, repl, nv, [{ components: comps, neurons: found.neurons }], 5);
  again.forEach((x, i) => assert.ok(Math.abs(x - found.metrics[i]) < 1e-5));
  assert.ok(found.rounds.length >= 1 && found.rounds[0].removed > 0);

  const carved = pruneModel(m, new Set(listComponents(m.config).map((c) => c.name).filter((n) => n !== 'L0H1')), repl, 'mean');
  const bySource = new Map<number, RemovedNeuron[]>();
  for (const [pos, slots] of found.neurons) bySource.set(m.config.layers[pos].sourceLayer, slots.map((s) => ({ neuron: s, value: nv.values.get(pos)![s] })));
  const small = new HookedModel(pruneNeurons(carved, bySource), engine);
  const [direct] = await stateMetrics(small, task, await computeReplacements(small, task, 'zero'), await neuronValues(small, task, 'zero', 'clean', 8), [{ components: [], neurons: new Map() }], 8);
  direct.forEach((x, i) => assert.ok(Math.abs(x - found.metrics[i]) < 1e-4, `prompt ${i}: ${x} vs ${found.metrics[i]}`));
});
