import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { listComponents } from '../../src/discover/components.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

for (const ablation of ['mean', 'resample'] as const) {
  test(`evaluating from a base set's cached stream equals evaluating from the clean stream (${ablation})`, async () => {
    const m = randomModel({ nLayer: 4, nHead: 2, dModel: 16, vocabSize: 30, seed: 61 });
    const model = new HookedModel(m, engine, 'float64');
    const task = randomTask(5, 30, 8);
    const repl = await computeReplacements(model, task, ablation);
    const comps = listComponents(model.config);
    const byName = new Map(comps.map((c) => [c.name, c]));
    const base = ['L2H1', 'L0MLP', 'L3H0'].map((n) => byName.get(n)!);
    const configs = [
      base,
      [...base, byName.get('L1H0')!],
      [...base, byName.get('L3MLP')!],
      [...base, byName.get('L0H0')!, byName.get('L2MLP')!],
      [byName.get('L1H1')!], // does not contain the base: evaluated from the clean stream
      [],
    ];
    const plain = await ExactEvaluator.create(model, task, repl, { batchSize: 4 });
    const expected = await plain.evaluate(configs);
    const rebased = await ExactEvaluator.create(model, task, repl, { batchSize: 4 });
    await rebased.setBase(base);
    const got = await rebased.evaluate(configs);
    got.forEach((row, i) => row.forEach((v, p) => assert.ok(Math.abs(v - expected[i][p]) < 1e-9, `config ${i} prompt ${p}: ${v} vs ${expected[i][p]}`)));
    // And the metric really changes with the base removed (the test is not vacuous).
    assert.ok(Math.abs(got[0][0] - plain.clean[0]) > 1e-6);
  });
}
