import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements, type Replacements } from '../../src/discover/replacements.ts';
import { listComponents, type Component } from '../../src/discover/components.ts';
import {
  constantsToReplacements,
  learnConstants,
  parseConstantsFile,
  refineConstants,
  removalFamily,
  replacementsFor,
} from '../../src/discover/optimal.ts';
import { checkSameAnswerStructure } from '../../src/discover/heldout.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { CarveError } from '../../src/util/errors.ts';
import { mean } from '../../src/task/metrics.ts';
import type { Task } from '../../src/task/types.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 17 });
const task = randomTask(6, 30, 5);
const model = new HookedModel(m, engine, 'float64');
const comps = listComponents(m.config);

/** The mean metric over a family of removal sets and every prompt, by the exact evaluator. */
async function familyObjective(repl: Replacements, family: Component[][]): Promise<number> {
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize: 16 });
  return mean((await ev.evaluate(family)).map((m) => mean(m)));
}

test('optimal constants never do worse than the mean on the prompts and removal sets they are learned on, and usually do better', async () => {
  const meanRepl = await computeReplacements(model, task, 'mean');
  for (const [seed, lr] of [
    [0, 0.1],
    [3, 0.1],
    // Steps against the gradient only make things worse: the mean must come back.
    [0, -0.05],
  ] as const) {
    const { repl, file } = await learnConstants(model, task, { seed, lr, steps: lr > 0 ? 12 : 6, configs: 4 });
    const family = removalFamily(comps, 4, seed);
    const learned = await familyObjective(repl, family);
    const start = await familyObjective(meanRepl, family);
    assert.ok(learned >= start - 1e-9, `seed ${seed} lr ${lr}: ${learned} < mean's ${start}`);
    assert.ok(Math.abs(file.training.objective_start - start) < 1e-9, 'the recorded start is the mean objective');
    assert.ok(Math.abs(file.training.objective_final - learned) < 1e-9, 'the recorded objective is the exact one');
    if (lr === 0.1) assert.ok(learned > start + 1e-3, `lr ${lr}: training should improve on the mean (${learned} vs ${start})`);
    else {
      assert.equal(file.training.best_step, 0, 'a run that only gets worse keeps the mean');
      for (const [pos, v] of meanRepl.z) assert.deepEqual(Array.from(repl.z.get(pos)!.data), Array.from(v.data));
    }
  }
});

test('constants fitted to one removed set beat every start on that set; zero steps give the best start', async () => {
  const meanRepl = await computeReplacements(model, task, 'mean');
  const family = (await learnConstants(model, task, { steps: 10, configs: 4 })).repl;
  const removed = [comps[0], comps[2], comps[4], comps[7]];
  const on = async (repl: Replacements) => mean((await (await ExactEvaluator.create(model, task, repl, { batchSize: 16 })).evaluate([removed]))[0]);
  const fitted = await refineConstants(model, task, removed, [meanRepl, family], { steps: 15 });
  const [a, b, c] = [await on(meanRepl), await on(family), await on(fitted.repl)];
  assert.ok(c >= Math.max(a, b) - 1e-9, `fitted ${c} vs mean ${a}, family ${b}`);
  assert.ok(c > Math.max(a, b) + 1e-4, 'fitting should improve on both starts here');
  const none = await refineConstants(model, task, removed, [meanRepl, family], { steps: 0 });
  assert.ok(Math.abs((await on(none.repl)) - Math.max(a, b)) < 1e-9);
});

test('learning is deterministic for a seed; the seed changes the removal family', async () => {
  const a = await learnConstants(model, task, { seed: 5, steps: 4, configs: 3 });
  const b = await learnConstants(model, task, { seed: 5, steps: 4, configs: 3 });
  assert.deepEqual(a.file.components, b.file.components);
  assert.notDeepEqual(removalFamily(comps, 3, 5), removalFamily(comps, 3, 6));
  // Every component is removed somewhere in the family, so every constant can learn.
  assert.deepEqual(new Set(removalFamily(comps, 2, 1).flat().map((c) => c.name)), new Set(comps.map((c) => c.name)));
});

test('a constants file round-trips into the same replacements; bad files are CarveErrors naming the field', async () => {
  const { repl, file } = await learnConstants(model, task, { steps: 3, configs: 2 });
  const fallback = await computeReplacements(model, task, 'mean');
  const text = JSON.stringify(file);
  const back = constantsToReplacements(model, parseConstantsFile(text, 'c.json'), fallback, 'c.json');
  for (const [pos, v] of repl.z) assert.deepEqual(Array.from(back.z.get(pos)!.data), Array.from(v.data));
  for (const [pos, v] of repl.mlp) assert.deepEqual(Array.from(back.mlp.get(pos)!.data), Array.from(v.data));
  const via = await replacementsFor(model, task, 'optimal', { constants: { file, where: 'c.json' } });
  assert.deepEqual(Array.from(via.repl.z.get(1)!.data), Array.from(repl.z.get(1)!.data));
  const bad = (f: unknown, re: RegExp) =>
    assert.throws(
      () => constantsToReplacements(model, parseConstantsFile(JSON.stringify(f), 'c.json'), fallback, 'c.json'),
      (e: unknown) => e instanceof CarveError && re.test(e.message),
    );
  bad({ ...file, components: { ...file.components, L0H0: [1, 2] } }, /^c\.json: components\.L0H0: expected 8 finite numbers/);
  bad({ ...file, components: { L9H0: new Array(8).fill(0) } }, /^c\.json: components\.L9H0: the model has no such component/);
  bad({ ...file, format: 'x' }, /not a carve constants file/);
  bad({ ...file, components: {} }, /"components" is empty/);
  await assert.rejects(replacementsFor(model, task, 'mean', { constants: { file, where: 'c.json' } }), /c\.json: constants apply only to optimal ablation/);
});

test('optimal ablation with zero prompts is a CarveError', async () => {
  const empty: Task = { name: 'empty.jsonl', pairs: [] };
  await assert.rejects(learnConstants(model, empty), (e: unknown) => e instanceof CarveError && /empty\.jsonl has none/.test(e.message));
  await assert.rejects(replacementsFor(model, empty, 'optimal'), CarveError);
});

test('a compressed model with optimal constants folded in equals the original with those components replaced', async () => {
  const m32 = new HookedModel(m, engine, 'float32');
  const { repl } = await learnConstants(m32, task, { steps: 8, configs: 3 });
  const removed = [comps[1], comps[2], comps[5], comps[6], comps[8]];
  const ev = await ExactEvaluator.create(m32, task, repl, { batchSize: 16 });
  const expected = (await ev.evaluate([removed]))[0];
  const keep = new Set(comps.filter((c) => !removed.includes(c)).map((c) => c.name));
  const small = new HookedModel(pruneModel(m, keep, repl, 'optimal'), engine, 'float32');
  const out = await small.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
  out.metric!.forEach((v, p) => assert.ok(Math.abs(v - expected[p]) < 1e-4, `prompt ${p}: ${v} vs ${expected[p]}`));
  // The constants matter: the mean would give another model.
  const meanRepl = await computeReplacements(m32, task, 'mean');
  const withMean = (await (await ExactEvaluator.create(m32, task, meanRepl, { batchSize: 16 })).evaluate([removed]))[0];
  assert.ok(Math.abs(mean(withMean) - mean(expected)) > 1e-3);
});

test('an evaluation task must have the selection task\'s answer structure', () => {
  const sets: Task = { name: 'sets.jsonl', pairs: task.pairs.map((p) => ({ ...p, correct: [p.correct, 3], incorrect: [p.incorrect] }) as unknown as Task['pairs'][number]) };
  assert.throws(() => checkSameAnswerStructure(task, sets), (e: unknown) => e instanceof CarveError && /sets\.jsonl has answer sets, the selection task random one correct and one incorrect token per prompt/.test(e.message));
  assert.throws(() => checkSameAnswerStructure(sets, task), CarveError);
  checkSameAnswerStructure(task, randomTask(3, 30, 9));
});
