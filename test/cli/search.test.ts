import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';

let dir = '';
let model = '';
const IOI = ['--task', 'ioi', '--n', '5'];

/**
 * A `carve` command line in this process: stderr and the exit code. stdout carries the test
 * runner's own report, so it is not captured: every command here writes its JSON with --out.
 */
async function carve(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const err = process.stderr.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = 0;
  try {
    await main(['node', 'carve', ...args]);
  } finally {
    process.stderr.write = err;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { code, stderr };
}

async function ok(args: string[]): Promise<{ stderr: string }> {
  const r = await carve(args);
  assert.equal(r.code, 0, `carve ${args.join(' ')}:\n${r.stderr}`);
  return r;
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const record = (out: string) => json(join(out, 'carve-compress.json'));

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'carve-search-cli-'));
  model = makeRandomGpt2(join(dir, 'model'), { nLayer: 2, nHead: 3, dModel: 24, nCtx: 64, vocabSize: 50257, seed: 8 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('compress --target alone searches, says what it chose and why, and keeps no more than exact greedy', async () => {
  const prune = join(dir, 'greedy.json');
  await ok(['prune', '--model', model, ...IOI, '--order', 'greedy', '--ablation', 'mean', '--out', prune]);
  const g = json(prune);
  const greedyCount = Math.max(...g.steps.filter((s: { metric: number }) => s.metric >= 0.8 * g.clean_metric).map((s: { removed: number }) => s.removed));
  const out = join(dir, 'auto');
  const r = await ok(['compress', '--model', model, ...IOI, '--ablation', 'mean', '--target', '0.8', '--out', out]);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('carve compress: search: '));
  assert.match(lines[0], /exact greedy costs about .* FLOP .*within the budget/);
  assert.match(lines.at(-1)!, /kept the (greedy|optimize) set and searched locally/);
  const rec = record(out);
  assert.equal(rec.selection.order, 'search');
  assert.deepEqual(rec.selection.search.reasons.length, lines.length);
  assert.ok(rec.removed.length >= greedyCount, `search removed ${rec.removed.length}, greedy ${greedyCount}`);
  assert.ok(rec.metric >= 0.8 * rec.clean_metric - 1e-9);
});

test('compress --ablation optimal: learned constants folded in and saved; eval on the directory and --constants reproduce it; --eval-task reports held out', async () => {
  const out = join(dir, 'optimal');
  await ok(['compress', '--model', model, ...IOI, '--ablation', 'optimal', '--optimal-steps', '8', '--target', '0.8', '--eval-task', 'ioi', '--eval-n', '4', '--out', out]);
  const rec = record(out);
  assert.equal(rec.ablation, 'optimal');
  assert.equal(rec.constants, 'constants.json');
  const constants = json(join(out, 'constants.json'));
  assert.equal(constants.format, 'carve-constants');
  assert.equal(rec.eval.task, 'ioi(n=4,seed=2,mixed)');
  assert.equal(rec.eval.n_prompts, 4);
  assert.ok(Number.isFinite(rec.eval.metric) && Number.isFinite(rec.eval.clean_metric));
  assert.ok(rec.steps.every((s: { eval_metric?: number }) => typeof s.eval_metric === 'number'));
  // The folded model gives the recorded metric.
  const ev = join(dir, 'eval-optimal.json');
  await ok(['eval', '--model', out, ...IOI, '--out', ev]);
  assert.ok(Math.abs(json(ev).metric - rec.metric) < 1e-4, `eval ${json(ev).metric} vs record ${rec.metric}`);
  // The saved constants reproduce the model from the kept list.
  const keep = join(dir, 'keep.json');
  writeFileSync(keep, JSON.stringify(rec.kept));
  const again = join(dir, 'optimal-again');
  await ok(['compress', '--model', model, ...IOI, '--ablation', 'optimal', '--constants', join(out, 'constants.json'), '--keep', keep, '--out', again]);
  assert.ok(Math.abs(record(again).metric - rec.metric) < 1e-6);
  assert.deepEqual(json(join(again, 'constants.json')).components, constants.components);
});

test('prune --order optimize --ablation optimal writes the constants beside the JSON and held-out metrics per step', async () => {
  const out = join(dir, 'opt.json');
  await ok(['prune', '--model', model, ...IOI, '--order', 'optimize', '--ablation', 'optimal', '--optimal-steps', '5', '--mask-steps', '20', '--eval-task', 'ioi', '--eval-seed', '7', '--out', out]);
  const r = json(out);
  assert.equal(r.order, 'optimize');
  assert.equal(r.constants, 'opt.constants.json');
  assert.ok(existsSync(join(dir, 'opt.constants.json')));
  assert.equal(r.eval.task, 'ioi(n=5,seed=7,mixed)');
  assert.equal(r.steps.length, 9);
  assert.ok(r.steps.every((s: { eval_metric?: number }) => Number.isFinite(s.eval_metric)));
  assert.equal(r.mask_ranking.length, 8);
  // scan with the saved constants.
  const scan = join(dir, 'scan.json');
  await ok(['scan', '--model', model, ...IOI, '--ablation', 'optimal', '--constants', join(dir, 'opt.constants.json'), '--out', scan]);
  assert.equal(json(scan).constants, 'scan.constants.json');
  assert.deepEqual(json(join(dir, 'scan.constants.json')).components, json(join(dir, 'opt.constants.json')).components);
});

test('bad input for the search options: one `carve: error:` line, exit 2, nothing written', async () => {
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '\n');
  const cases: [string[], RegExp][] = [
    [['compress', '--target', '0', '--out', join(dir, 'bad-c1')], /--target: expected a fraction of the clean metric greater than 0 and at most 1/],
    [['compress', '--target', '1.01', '--out', join(dir, 'bad-c2')], /--target: expected a fraction/],
    [['compress', '--ablation', 'optimal', '--task', empty, '--target', '0.5', '--out', join(dir, 'bad-c3')], /empty\.jsonl: no prompt pairs/],
    [['compress', '--ablation', 'mean', '--constants', join(dir, 'x.json'), '--target', '0.5', '--out', join(dir, 'bad-c4')], /--constants applies only to --ablation optimal/],
    [['compress', '--target', '0.5', '--eval-seed', '3', '--out', join(dir, 'bad-c5')], /--eval-seed and --eval-n need --eval-task/],
    [['compress', '--target', '0.5', '--search', 'greedy', '--from', join(dir, 'greedy.json'), '--out', join(dir, 'bad-c6')], /--search applies only to --target F without --from/],
    [['prune', '--order', 'optimize', '--method', 'attribution', '--out', join(dir, 'bad-p1.json')], /^carve: error: --method attribution: the optimize order is exact only$/],
    [['prune', '--order', 'scores', '--verify', '2', '--out', join(dir, 'bad-p2.json')], /--verify applies only to --order greedy --method attribution and to --order optimize/],
    [['prune', '--order', 'greedy', '--ablation', 'mean', '--constants', join(dir, 'opt.constants.json'), '--out', join(dir, 'bad-p3.json')], /--constants apply only to --ablation optimal, not mean/],
    [['prune', '--order', 'scores', '--method', 'halving', '--out', join(dir, 'bad-p4.json')], /--method halving applies only to --order greedy/],
    [['prune', '--order', 'greedy', '--eval-task', empty, '--out', join(dir, 'bad-p5.json')], /empty\.jsonl: no prompt pairs/],
  ];
  for (const [args, re] of cases) {
    const r = await carve([args[0], '--model', model, ...IOI, ...args.slice(1)]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], /^carve: error: /);
    assert.match(lines[0], re, args.join(' '));
    const outAt = args.indexOf('--out');
    assert.ok(!existsSync(args[outAt + 1]), `${args.join(' ')}: no output`);
  }
});
