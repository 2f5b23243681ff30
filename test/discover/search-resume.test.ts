import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { pruneOrder, type PruneCheckpoint, type PruneOptions, type PruneResult } from '../../src/discover/prune.ts';
import { parseCheckpoint } from '../../src/discover/checkpoint.ts';
import { CarveError } from '../../src/util/errors.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/naive-removal.ts';
import { interruptedThenResumed as resumedRun } from '../helpers/resume.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 30, seed: 51 });
const task = randomTask(5, 30, 3);
const model = new HookedModel(m, engine, 'float32');

/** Interrupted after `after` checkpoints (read back by the CLI's parser), then resumed (test/helpers/resume.ts). */
function interruptedThenResumed(opts: PruneOptions, after: number): Promise<{ result: PruneResult; saved: PruneCheckpoint }> {
  return resumedRun<PruneCheckpoint, PruneResult>((hooks) => pruneOrder(model, task, opts, hooks), after, parseCheckpoint);
}

const fast = { optimalSteps: 6, maskSteps: 30 };
const cases: [PruneOptions, number[]][] = [
  [{ order: 'greedy', ablation: 'mean', method: 'halving', halvingFirst: 1, finalists: 2 }, [2, 5]],
  // optimize: after the mask ranking, during the exact pass, during refinement.
  [{ order: 'optimize', ablation: 'mean', maskSteps: 30, verify: 3 }, [1, 4, 10, 11]],
  [{ order: 'optimize', ablation: 'optimal', ...fast, refine: 2 }, [1, 6, 10]],
  [{ order: 'greedy', ablation: 'optimal', optimalSteps: 6, seed: 3 }, [1, 4]],
  [{ order: 'scores', ablation: 'optimal', optimalSteps: 6 }, [1]],
  [{ order: 'acdc', ablation: 'optimal', optimalSteps: 6, threshold: 0.3 }, [3]],
];
for (const [opts, points] of cases) {
  test(`a resumed ${opts.order}/${opts.method ?? 'exact'} run under ${opts.ablation} ablation equals the uninterrupted one`, async () => {
    const full = await pruneOrder(model, task, opts);
    for (const after of points) {
      const { result, saved } = await interruptedThenResumed(opts, after);
      if (opts.order === 'optimize' && after >= 10) assert.equal(saved.phase, 'refine', 'interrupted during refinement');
      if (opts.ablation === 'optimal') assert.ok(saved.constants, 'the checkpoint holds the constants');
      assert.deepEqual(result, full, `interrupted after ${after} checkpoints`);
    }
  });
}

test('an optimal-ablation checkpoint without its constants, or with a bad optimize phase, is refused', async () => {
  const opts: PruneOptions = { order: 'optimize', ablation: 'optimal', ...fast };
  let saved: PruneCheckpoint | undefined;
  await pruneOrder(model, task, opts, { onCheckpoint: (cp) => void (saved ??= JSON.parse(JSON.stringify(cp))) });
  const refuse = (cp: PruneCheckpoint, re: RegExp) =>
    assert.rejects(pruneOrder(model, task, opts, { resume: cp, resumeSource: 'x.partial.json' }), (e: unknown) => e instanceof CarveError && re.test(e.message));
  await refuse({ ...saved!, constants: undefined }, /x\.partial\.json: an optimal-ablation checkpoint must hold its "constants"/);
  await refuse({ ...saved!, ranking: undefined }, /needs the mask "ranking"/);
  await refuse({ ...saved!, phase: 'refine', refined: 0 }, /refinement starts from a complete order/);
  assert.throws(() => parseCheckpoint(JSON.stringify({ ...saved!, phase: 'later' }), 'x.partial.json'), /"phase" must be "verify" or "refine"/);
  // Other learned-constant settings are other options.
  await assert.rejects(pruneOrder(model, task, { ...opts, optimalSteps: 7 }, { resume: saved, resumeSource: 'x.partial.json' }), /made with other options \(optimal_steps: 6 there, 7 now\)/);
});
