import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertUserError, carveInProcess } from '../helpers/cli.ts';
import { partialPath } from '../../src/cli/prune.ts';
import { saveModelDir, loadModelDir } from '../../src/model/load.ts';
import { writeJsonlTask } from '../../src/task/jsonl.ts';
import { loadJsonlTask } from '../../src/task/jsonl.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { Engine } from '../../src/onnx/session.ts';
import { pruneOrder, type PruneCheckpoint } from '../../src/discover/prune.ts';
import { randomModel } from '../helpers/random-model.ts';
import { randomTask } from '../helpers/naive-removal.ts';
import { interruptedAfter } from '../helpers/resume.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-prune-cli-'));
const modelDir = join(dir, 'model');
saveModelDir(modelDir, randomModel({ nLayer: 2, nHead: 2, dModel: 16, vocabSize: 30, seed: 5 }));
const taskFile = join(dir, 'task.jsonl');
writeJsonlTask(taskFile, randomTask(4, 30, 8));
const common = ['--model', modelDir, '--task', taskFile];

const carve = carveInProcess;


test('carve prune writes the order, the steps and the extra fields, and no partial file is left', async () => {
  const out = join(dir, 'greedy.json');
  const r = await carve(['prune', '--order', 'greedy', '--ablation', 'zero', ...common, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(res.order, 'greedy');
  assert.equal(res.ablation, 'zero');
  assert.equal(res.method, 'exact');
  assert.equal(res.n_prompts, 4);
  assert.equal(res.steps.length, 7);
  assert.deepEqual(Object.keys(res.steps[0]), ['removed', 'component', 'metric', 'std']);
  assert.equal(res.steps[0].component, null);
  assert.equal(res.steps[0].metric, res.clean_metric);
  assert.equal(typeof res.corrupt_metric, 'number');
  assert.ok(!existsSync(partialPath(out)));

  const acdcOut = join(dir, 'acdc.json');
  const acdc = await carve(['prune', '--order', 'acdc', '--metric', 'kl', '--threshold', '1e9', ...common, '--out', acdcOut]);
  assert.equal(acdc.code, 0, acdc.stderr);
  const a = JSON.parse(readFileSync(acdcOut, 'utf8'));
  assert.deepEqual(a.kept, []);
  assert.equal(a.metric_name, 'kl');
  assert.equal(a.mean_over, 'clean');
  assert.equal(a.steps[0].metric, 0, 'nothing removed: no divergence from the clean run');
  assert.ok(a.steps[3].metric > 0);
  assert.equal(res.metric_name, 'logit-diff');
});

test('bad flags: one `carve: error:` line, exit 2, no output file', async () => {
  const out = join(dir, 'bad.json');
  const cases: [string[], RegExp][] = [
    [[], /--order: expected one of scores, greedy, acdc/],
    [['--order', 'random'], /--order: expected one of/],
    [['--order', 'greedy', '--method', 'ig'], /--method: expected one of exact, attribution/],
    [['--order', 'acdc', '--threshold', 'abc'], /--threshold: expected a number/],
    [['--order', 'acdc', '--method', 'attribution'], /acdc order is exact only/],
    [['--order', 'scores', '--threshold', '0.1'], /--threshold applies only to --order acdc/],
    [['--order', 'greedy', '--method', 'attribution', '--verify', '0'], /--verify: expected a positive integer/],
    [['--order', 'greedy', '--verify', '3'], /--verify applies only to --order greedy --method attribution/],
    [['--order', 'acdc', '--metric', 'l2'], /--metric: expected one of logit-diff, prob-diff, kl/],
    [['--order', 'greedy', '--components', 'layers'], /--components: expected one of/],
    [['--order', 'greedy', '--ablation', 'noise'], /--ablation: expected one of/],
    [['--order', 'greedy', '--bogus'], /unknown option '--bogus'/],
    [['--order', 'greedy', '--resume'], /--resume needs --out/],
    [['--order', 'greedy', '--task', join(dir, 'missing.jsonl')], /missing\.jsonl/],
  ];
  for (const [args, pattern] of cases) {
    const withOut = args.includes('--resume') ? [...common, ...args] : [...common, ...args, '--out', out];
    assertUserError(await carve(['prune', ...withOut]), pattern, out);
  }
});

/** A partial file as an interrupted CLI run leaves it: the checkpoint after `after` steps. */
function interruptedPartial(args: { order: 'scores' | 'greedy' | 'acdc'; ablation: 'zero' | 'mean' | 'resample' }, after: number): Promise<PruneCheckpoint> {
  const model = new HookedModel(loadModelDir(modelDir, 'model'), new Engine({ device: 'cpu', threads: 0 }));
  return interruptedAfter<PruneCheckpoint>((hooks) => pruneOrder(model, loadJsonlTask(taskFile), args, hooks), after);
}

test('--resume continues an interrupted run to the same output and removes the partial file', async () => {
  const full = join(dir, 'full.json');
  assert.equal((await carve(['prune', '--order', 'greedy', '--ablation', 'mean', ...common, '--out', full])).code, 0);
  const out = join(dir, 'resumed.json');
  writeFileSync(partialPath(out), JSON.stringify(await interruptedPartial({ order: 'greedy', ablation: 'mean' }, 2)));
  const r = await carve(['prune', '--order', 'greedy', '--ablation', 'mean', ...common, '--out', out, '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from .*resumed\.json\.partial\.json \(2 components removed so far\)/);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), JSON.parse(readFileSync(full, 'utf8')));
  assert.ok(!existsSync(partialPath(out)));
});

test('--resume with a partial file of another run or a broken one: one error line, exit 2, no output, the partial file kept', async () => {
  const out = join(dir, 'mismatch.json');
  const partial = partialPath(out);
  writeFileSync(partial, JSON.stringify(await interruptedPartial({ order: 'greedy', ablation: 'zero' }, 1)));
  assertUserError(await carve(['prune', '--order', 'greedy', '--ablation', 'mean', ...common, '--out', out, '--resume']), /mismatch\.json\.partial\.json: made with other options/, out);
  assert.ok(existsSync(partial));
  const cp = JSON.parse(readFileSync(partial, 'utf8'));
  writeFileSync(partial, JSON.stringify({ ...cp, fingerprint: '0'.repeat(64) }));
  assertUserError(await carve(['prune', '--order', 'greedy', '--ablation', 'zero', ...common, '--out', out, '--resume']), /fingerprint mismatch/, out);
  writeFileSync(partial, '{"format": "carve-prune-partial", "steps": ');
  assertUserError(await carve(['prune', '--order', 'greedy', '--ablation', 'zero', ...common, '--out', out, '--resume']), /partial\.json: cannot read the partial result/, out);
  writeFileSync(partial, JSON.stringify({ ...cp, steps: [cp.steps[0], { ...cp.steps[1], component: 'L7H9' }] }));
  assertUserError(await carve(['prune', '--order', 'greedy', '--ablation', 'zero', ...common, '--out', out, '--resume']), /steps\[1\]\.component "L7H9"/, out);
  // Without --resume the stale partial file is simply replaced and then removed.
  const r = await carve(['prune', '--order', 'greedy', '--ablation', 'zero', ...common, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(out) && !existsSync(partial));
});
