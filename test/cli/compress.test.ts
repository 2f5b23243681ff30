import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/model/load.ts';
import { carve as carveChild, carveHere as carveInProc, type CliResult } from '../helpers/cli.ts';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';

let dir = '';
let model = '';
let jsonl = '';

type Result = CliResult;
// Both run in the test's scratch directory, where relative output paths land.
const carve = (args: string[]): Promise<Result> => carveChild(args, dir);
const carveHere = (args: string[]): Promise<Result> => carveInProc(args, dir);

/** `carve eval` in this process, its JSON read back from --out. */
async function evalHere(args: string[]): Promise<Record<string, number>> {
  const out = join(dir, `eval-${process.hrtime.bigint()}.json`);
  await ok(['eval', ...args, '--out', out], true);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  rmSync(out);
  return json;
}

async function ok(args: string[], here = false): Promise<Result> {
  const r = here ? await carveHere(args) : await carve(args);
  assert.equal(r.code, 0, `carve ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

const record = (out: string) => JSON.parse(readFileSync(join(out, 'carve-compress.json'), 'utf8'));
const IOI = ['--task', 'ioi', '--n', '4'];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'carve-compress-cli-'));
  // IOI prompts need GPT-2's vocabulary; the model is small otherwise.
  model = makeRandomGpt2(join(dir, 'model'), { nLayer: 3, nHead: 4, dModel: 32, nCtx: 64, vocabSize: 50257, seed: 4 });
  jsonl = join(dir, 'task.jsonl');
  const rows = [
    { clean_tokens: [11, 52, 90, 7, 300], corrupt_tokens: [11, 52, 91, 7, 300], correct_token: 5, incorrect_token: 6 },
    { clean_tokens: [4, 8, 15, 16], corrupt_tokens: [4, 9, 15, 16], correct_token: 23, incorrect_token: 42 },
    { clean_tokens: [100, 200, 300, 400, 500, 600], corrupt_tokens: [101, 200, 300, 400, 500, 600], correct_token: 7, incorrect_token: 70 },
  ];
  writeFileSync(jsonl, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('compress --keep (JSON array, mean): a pruned model whose eval metric is the recorded ablated metric; eval and run accept it', async () => {
  const keepFile = join(dir, 'keep.json');
  const keep = ['L0H1', 'L0MLP', 'L2H0', 'L2H3', 'L2MLP'];
  writeFileSync(keepFile, JSON.stringify(keep, null, 2));
  const out = join(dir, 'keep-out');
  const r = await ok(['compress', '--model', model, ...IOI, '--ablation', 'mean', '--keep', keepFile, '--out', out]);
  assert.match(r.stderr, /kept 5 of 15 components/);
  assert.match(r.stderr, /parameters [\d,]+ -> [\d,]+ \(-\d+\.\d%\)/);
  assert.equal(r.stdout, '');
  assert.deepEqual(readdirSync(out).sort(), ['carve-compress.json', 'config.json', 'model.safetensors']);
  const rec = record(out);
  assert.equal(rec.ablation, 'mean');
  assert.equal(rec.task, 'ioi(n=4,seed=1,mixed)');
  assert.deepEqual(rec.kept, keep);
  assert.equal(rec.removed.length, 10);
  const loaded = loadModelDir(out);
  assert.deepEqual(loaded.config.layers, [
    { sourceLayer: 0, heads: [1], mlp: true },
    { sourceLayer: 2, heads: [0, 3], mlp: true },
  ]);

  const [evRun, runRun] = await Promise.all([ok(['eval', '--model', out, ...IOI, '--json']), ok(['run', '--model', out, '--tokens', '464,3290,318', '--top', '3', '--json'])]);
  const ev = JSON.parse(evRun.stdout);
  assert.deepEqual(Object.keys(ev).sort(), ['accuracy', 'file_bytes', 'metric', 'metric_name', 'model', 'ms_per_prompt', 'n_neurons', 'n_params', 'n_params_non_embedding', 'n_prompts', 'onnx_bytes', 'onnx_f16_bytes', 'std', 'task'].sort());
  assert.equal(ev.metric_name, 'logit-diff');
  // Sizes: the directory's config and weights on disk; the ONNX export holds every parameter in 4 (or 2) bytes, plus the graph.
  assert.equal(ev.file_bytes, statSync(join(out, 'config.json')).size + statSync(join(out, 'model.safetensors')).size);
  assert.ok(ev.onnx_bytes > 4 * ev.n_params && ev.onnx_bytes < 4 * ev.n_params + 200_000, `onnx ${ev.onnx_bytes} for ${ev.n_params} parameters`);
  assert.ok(ev.onnx_f16_bytes > 2 * ev.n_params && ev.onnx_f16_bytes < 2 * ev.n_params + 200_000);
  assert.ok(Math.abs(ev.metric - rec.metric) < 1e-4, `eval ${ev.metric} vs recorded ${rec.metric}`);
  assert.ok(Math.abs(ev.std - rec.std) < 1e-4);
  assert.ok(Math.abs(rec.metric - rec.clean_metric) > 1e-4, 'the removal should change the metric');
  assert.equal(ev.n_params, rec.n_params_after);
  assert.equal(ev.n_params_non_embedding, rec.n_params_non_embedding_after);
  assert.equal(ev.n_prompts, 4);
  assert.equal(ev.n_neurons, 2 * 4 * 32, 'two MLPs kept, 4·d neurons each');

  const run = JSON.parse(runRun.stdout);
  assert.equal(run.top.length, 3);
});

test('eval on the original model: fields, accuracy, parameter counts computed independently; JSONL task', async () => {
  const ev = await evalHere(['--model', model, '--task', jsonl]);
  const d = 32;
  const V = 50257;
  const perLayer = 2 * d + d * 3 * d + 3 * d + d * d + d + 2 * d + d * 4 * d + 4 * d + 4 * d * d + d;
  assert.equal(ev.n_params_non_embedding, 3 * perLayer + 2 * d);
  assert.equal(ev.n_params, 3 * perLayer + 2 * d + V * d + 64 * d);
  assert.equal(ev.n_prompts, 3);
  assert.ok([0, 1 / 3, 2 / 3, 1].some((a) => Math.abs(a - ev.accuracy) < 1e-12));
  assert.ok(ev.ms_per_prompt > 0 && Number.isFinite(ev.std) && Number.isFinite(ev.metric));
});

test('compress --keep (one name a line, zero) and --from PRUNE.json --count K', async () => {
  const keepFile = join(dir, 'keep.txt');
  writeFileSync(keepFile, '# the circuit\nL1H2\n\nL2MLP\n');
  const out = join(dir, 'zero-out');
  await ok(['compress', '--model', model, '--task', jsonl, '--ablation', 'zero', '--keep', keepFile, '--out', out], true);
  assert.deepEqual(loadModelDir(out).config.layers, [
    { sourceLayer: 1, heads: [2], mlp: false },
    { sourceLayer: 2, heads: [], mlp: true },
  ]);
  const rec = record(out);
  assert.equal(rec.ablation, 'zero');
  const ev = await evalHere(['--model', out, '--task', jsonl]);
  assert.ok(Math.abs(ev.metric - rec.metric) < 1e-4);

  const pruneFile = join(dir, 'prune.json');
  const order = ['L2H1', 'L0MLP', 'L1H0', 'L1H1', 'L1H2', 'L1H3', 'L1MLP'];
  writeFileSync(pruneFile, JSON.stringify({
    order: 'scores',
    ablation: 'zero',
    method: 'exact',
    steps: [{ removed: 0, component: null, metric: 1, std: 0 }, ...order.map((c, i) => ({ removed: i + 1, component: c, metric: 1, std: 0 }))],
  }));
  const out2 = join(dir, 'count-out');
  await ok(['compress', '--model', model, ...IOI, '--ablation', 'mean', '--from', pruneFile, '--count', '7', '--out', out2], true);
  assert.deepEqual(loadModelDir(out2).config.layers, [
    { sourceLayer: 0, heads: [0, 1, 2, 3], mlp: false },
    { sourceLayer: 2, heads: [0, 2, 3], mlp: true },
  ]);
  assert.deepEqual(record(out2).removal_order, order);
});

test('compress --target F: largest K whose exactly evaluated metric stays >= F x clean (scores order, and a prune file of another ablation)', async () => {
  const out = join(dir, 'target-out');
  await ok(['compress', '--model', model, ...IOI, '--ablation', 'mean', '--target', '0.95', '--search', 'scores', '--out', out]);
  const rec = record(out);
  assert.equal(rec.selection.by, 'target');
  assert.equal(rec.steps.length, 16);
  const clean = rec.steps[0].metric;
  assert.ok(Math.abs(clean - rec.clean_metric) < 1e-9);
  const best = Math.max(...rec.steps.filter((s: { metric: number }) => s.metric >= 0.95 * clean).map((s: { removed: number }) => s.removed));
  assert.equal(rec.removed.length, best);
  assert.ok(Math.abs(rec.metric - rec.steps[best].metric) < 1e-4);
  assert.ok(rec.metric >= 0.95 * clean - 1e-6);

  const pruneFile = join(dir, 'prune-zero.json');
  const order = ['L1H3', 'L0H0', 'L2MLP', 'L1MLP', 'L0H2'];
  writeFileSync(pruneFile, JSON.stringify({
    order: 'greedy',
    ablation: 'zero',
    method: 'exact',
    steps: [{ removed: 0, component: null, metric: 9, std: 0 }, ...order.map((c, i) => ({ removed: i + 1, component: c, metric: 9, std: 0 }))],
  }));
  const out2 = join(dir, 'target-from-out');
  const r = await ok(['compress', '--model', model, ...IOI, '--ablation', 'mean', '--from', pruneFile, '--target', '0.9', '--out', out2], true);
  assert.match(r.stderr, /made with zero ablation.*re-evaluated exactly with mean ablation/);
  const rec2 = record(out2);
  assert.equal(rec2.steps.length, 6);
  assert.deepEqual(rec2.steps.slice(1).map((s: { component: string }) => s.component), order);
  assert.ok(rec2.steps.every((s: { metric: number }) => s.metric !== 9), 'the file\'s numbers are not used');
  const best2 = Math.max(...rec2.steps.filter((s: { metric: number }) => s.metric >= 0.9 * rec2.steps[0].metric).map((s: { removed: number }) => s.removed));
  assert.deepEqual(rec2.removal_order, order.slice(0, best2));
});

test('bad input: one `carve: error:` line, exit code 2, no output directory left behind', async () => {
  const unknown = join(dir, 'unknown.txt');
  writeFileSync(unknown, 'L0H1\nL0H9\n');
  const unknownJson = join(dir, 'unknown.json');
  writeFileSync(unknownJson, '[\n  "L0H1",\n  "L7MLP"\n]\n');
  const notAName = join(dir, 'bad-name.txt');
  writeFileSync(notAName, 'L0H1\nhead 3\n');
  const shortPrune = join(dir, 'short.json');
  writeFileSync(shortPrune, JSON.stringify({ order: 'scores', ablation: 'mean', method: 'exact', steps: [{ removed: 0, component: null, metric: 1, std: 0 }, { removed: 1, component: 'L0H0', metric: 1, std: 0 }] }));
  const brokenPrune = join(dir, 'broken.json');
  writeFileSync(brokenPrune, '{"steps": [');
  const keepOk = join(dir, 'keep-ok.txt');
  writeFileSync(keepOk, 'L0H1\n');
  const cases: [string[], RegExp][] = [
    [['--keep', join(dir, 'missing.txt')], /missing\.txt: no such keep file/],
    [['--keep', unknown], /unknown\.txt:2: the model has no component L0H9/],
    [['--keep', unknownJson], /unknown\.json:3: the model has no component L7MLP/],
    [['--keep', notAName], /bad-name\.txt:2: "head" is not a component name/],
    [['--ablation', 'resample', '--keep', keepOk], /resample cannot be folded/],
    [['--ablation', 'max', '--keep', keepOk], /--ablation: expected one of zero, mean/],
    [['--from', shortPrune, '--count', '2'], /--count 2: .*short\.json has only 1 removal steps/],
    [['--from', brokenPrune, '--count', '1'], /broken\.json: not valid JSON/],
    [['--target', '1.5'], /--target: expected a fraction/],
    [['--target', '0'], /--target: expected a fraction of the clean metric greater than 0 and at most 1/],
    [['--target', 'most'], /--target: expected a number/],
    [['--count', '2'], /--count K needs --from/],
    [['--keep', keepOk, '--target', '0.5'], /--keep cannot be combined/],
    [[], /say what to keep/],
  ];
  // Two through bin/carve.js side by side, the rest in this process (the same main(), no start-up cost).
  const SPAWNED = [0, 4];
  const run = (i: number) => (SPAWNED.includes(i) ? carve : carveHere)(['compress', '--model', model, ...IOI, '--ablation', 'mean', ...cases[i][0], '--out', join(dir, `bad-${i}`)]);
  const results: Result[] = new Array(cases.length);
  const spawned = await Promise.all(SPAWNED.map(run));
  SPAWNED.forEach((i, j) => (results[i] = spawned[j]));
  for (let i = 0; i < cases.length; i++) if (!SPAWNED.includes(i)) results[i] = await run(i);
  results.forEach((r, i) => {
    const [args, re] = cases[i];
    assert.equal(r.code, 2, `${args.join(' ')}: exit code ${r.code}\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `${args.join(' ')}: expected one line, got:\n${r.stderr}`);
    assert.match(lines[0], /^carve: error: /);
    assert.match(lines[0], re, args.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(existsSync(join(dir, `bad-${i}`)), false);
  });
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.') || /^bad-\d/.test(f)), [], 'no temporary files left');
  // An existing directory holding other files is not replaced.
  const r = await carveHere(['compress', '--model', model, ...IOI, '--keep', keepOk, '--out', dir]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^carve: error: --out .*: the directory exists and holds other files/);
  assert.ok(existsSync(join(dir, 'task.jsonl')));
});
