/**
 * Every command on every architecture family: random Llama (GQA), Qwen2 and GPT-NeoX checkpoints in
 * Hugging Face layout go through run, scan (exact, attribution, ig), prune (every order), compress,
 * eval and report from the command line, and the compressed model's metric is the one the search
 * recorded for the same removals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeJsonlTask } from '../../src/task/jsonl.ts';
import { randomHfModel, writeHfModelDir, type HfModelSpec } from '../helpers/hf-random.ts';
import { randomTask } from '../helpers/random-task.ts';
import { carveInProcess } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-arch-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const VOCAB = 32;
const taskFile = join(dir, 'task.jsonl');
writeJsonlTask(taskFile, randomTask(6, VOCAB, 4, [6, 8, 7]));

const FAMILIES: HfModelSpec[] = [
  { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 71 },
  { arch: 'qwen2', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: VOCAB, seed: 72 },
  { arch: 'gpt_neox', nLayer: 2, nHead: 4, dModel: 16, vocab: VOCAB, rotaryPct: 0.5, seed: 73 },
];

async function ok(args: string[]) {
  const r = await carveInProcess(args);
  assert.equal(r.code, 0, `carve ${args.join(' ')}\n${r.stderr}`);
  return r;
}

for (const spec of FAMILIES) {
  test(`${spec.arch}: run, scan, prune, compress, eval and report from the command line`, async () => {
    const run = join(dir, spec.arch);
    const model = join(run, 'model');
    writeHfModelDir(model, randomHfModel(spec));
    const common = ['--model', model, '--task', taskFile];
    // JSON goes to files: the test runner shares this process's stdout.
    const json = (name: string) => JSON.parse(readFileSync(join(run, name), 'utf8'));
    await ok(['run', '--model', model, '--tokens', '1,2,3', '--top', '3', '--out', join(run, 'run.json')]);
    const top = json('run.json');
    assert.equal(top.top.length, 3);
    for (const method of ['exact', 'attribution', 'ig']) {
      await ok(['scan', ...common, '--ablation', 'mean', '--method', method, '--out', join(run, `scan-mean-${method}.json`)]);
    }
    const scanJson = JSON.parse(readFileSync(join(run, 'scan-mean-exact.json'), 'utf8'));
    assert.equal(scanJson.components.length, 2 * 4 + 2);
    for (const order of ['scores', 'greedy', 'acdc']) {
      const extra = order === 'acdc' ? ['--threshold', '0.05'] : [];
      await ok(['prune', ...common, '--ablation', 'mean', '--order', order, ...extra, '--out', join(run, `prune-${order}.json`)]);
    }
    const prune = JSON.parse(readFileSync(join(run, 'prune-greedy.json'), 'utf8'));
    const k = 4;
    await ok(['compress', ...common, '--ablation', 'mean', '--from', join(run, 'prune-greedy.json'), '--count', String(k), '--out', join(run, 'compressed')]);
    await ok(['eval', '--model', join(run, 'compressed'), '--task', taskFile, '--out', join(run, 'eval-compressed.json')]);
    const ev = json('eval-compressed.json');
    const step = prune.steps.find((x: { removed: number }) => x.removed === k);
    const recorded = step.metric;
    assert.ok(Math.abs(ev.metric - recorded) < 1e-4 * Math.max(1, Math.abs(recorded)), `compressed ${ev.metric} vs recorded ${recorded}`);
    await ok(['report', run]);
    assert.ok(existsSync(join(run, 'report.html')));
  });
}
