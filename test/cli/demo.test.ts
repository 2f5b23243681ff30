import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

test('carve demo --quick writes every output file and prints what it found', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'carve-demo-')), 'demo');
  const r = spawnSync(process.execPath, ['bin/carve.js', 'demo', '--quick', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = [
    'task.jsonl',
    'scan-mean-exact.json',
    'scan-mean-attribution.json',
    'scan-mean-ig.json',
    'scan-zero-exact.json',
    'scan-resample-exact.json',
    'scan-resample-attribution.json',
    'prune-scores.json',
    'prune-greedy.json',
    'prune-acdc.json',
    'prune-greedy-resample.json',
    'compressed/config.json',
    'compressed/model.safetensors',
    'compressed/carve-compress.json',
    'eval-original.json',
    'eval-compressed.json',
    'report.html',
  ];
  for (const f of files) assert.ok(existsSync(join(out, f)) && statSync(join(out, f)).size > 0, f);
  assert.equal(readFileSync(join(out, 'task.jsonl'), 'utf8').trim().split('\n').length, 8);
  const scan = JSON.parse(readFileSync(join(out, 'scan-mean-exact.json'), 'utf8'));
  assert.equal(scan.n_prompts, 8);
  assert.equal(scan.components.length, 15);
  for (const order of ['scores', 'greedy', 'acdc']) {
    const p = JSON.parse(readFileSync(join(out, `prune-${order}.json`), 'utf8'));
    assert.equal(p.order, order);
    assert.equal(p.steps[0].removed, 0);
  }
  const evalC = JSON.parse(readFileSync(join(out, 'eval-compressed.json'), 'utf8'));
  const evalO = JSON.parse(readFileSync(join(out, 'eval-original.json'), 'utf8'));
  assert.ok(evalC.n_params_non_embedding < evalO.n_params_non_embedding);
  const record = JSON.parse(readFileSync(join(out, 'compressed', 'carve-compress.json'), 'utf8'));
  // The compressed model keeps the metric the compress command promised (target 0.8 x clean).
  assert.ok(evalC.metric >= 0.8 * evalO.metric - 1e-4, `${evalC.metric} vs ${evalO.metric}`);
  assert.ok(Math.abs(evalC.metric - record.metric) < 1e-4);
  const figures = readdirSync(join(out, 'figures'));
  assert.ok(figures.some((f) => f.endsWith('.svg')) && figures.some((f) => f.endsWith('.png')));
  assert.match(r.stdout, /components the task needs most/);
  assert.match(r.stdout, /compressed model: kept \d+ of 15 components/);
  // The model to ship: carved, evaluated on held-out prompts, exported.
  for (const f of ['shipped/config.json', 'shipped/carve-compress.json', 'eval-shipped-heldout.json', 'eval-original-heldout.json', 'shipped.onnx', 'shipped.onnx.json']) {
    assert.ok(existsSync(join(out, f)) && statSync(join(out, f)).size > 0, f);
  }
  assert.match(r.stdout, /model you can ship/);
});

/**
 * The "must show", on the full demo (25 prompts to carve on, 100 held-out prompts of
 * another seed): the model to ship has ≤ 2% of toy-ioi's parameters, its ONNX file is ≤ 2% of
 * toy-ioi's file, and on the held-out prompts it keeps ≥ 90% of the logit difference with
 * accuracy ≥ 0.95.
 */
test('carve demo: the model you can ship is <= 2% of toy-ioi and keeps >= 90% of the logit difference on held-out prompts', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'carve-demo-full-')), 'demo');
  const r = spawnSync(process.execPath, ['bin/carve.js', 'demo', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const read = (f: string) => JSON.parse(readFileSync(join(out, f), 'utf8'));
  const original = read('eval-original.json');
  const base = read('eval-original-heldout.json');
  const shipped = read('eval-shipped-heldout.json');
  assert.equal(shipped.task, 'ioi(n=100,seed=2,mixed)');
  assert.equal(read('shipped/carve-compress.json').task, 'ioi(n=25,seed=1,mixed)', 'carved on seed 1, evaluated on seed 2');
  assert.ok(shipped.n_params <= 0.02 * original.n_params, `${shipped.n_params} parameters of ${original.n_params}`);
  const onnx = statSync(join(out, 'shipped.onnx')).size;
  assert.ok(onnx <= 0.02 * original.file_bytes, `ONNX ${onnx} bytes vs toy-ioi's ${original.file_bytes}`);
  assert.equal(onnx, shipped.onnx_f16_bytes);
  assert.ok(shipped.metric >= 0.9 * base.metric, `held-out logit difference ${shipped.metric} vs ${base.metric}`);
  assert.ok(shipped.accuracy >= 0.95, `held-out accuracy ${shipped.accuracy}`);
  assert.ok(shipped.n_neurons < original.n_neurons);
  assert.match(r.stdout, /parameters = \d\.\d\d% of toy-ioi's/);
});
