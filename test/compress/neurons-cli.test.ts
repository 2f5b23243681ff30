import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir } from '../../src/model/load.ts';
import { carve, carveHere } from '../helpers/cli.ts';

let dir = '';
// toy-ioi's circuit for 95% of its logit difference (greedy pruning under mean ablation); L1MLP matters to it.
const KEEP = ['L0H0', 'L0H2', 'L0H3', 'L1H0', 'L1H2', 'L1H3', 'L1MLP', 'L2H2'];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'carve-neurons-cli-'));
  writeFileSync(join(dir, 'keep.json'), JSON.stringify(KEEP));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('compress --neurons on toy-ioi: fewer neurons, the metric holds, eval and report count them', async () => {
  const plain = join(dir, 'run', 'plain');
  const carved = join(dir, 'run', 'compressed');
  const common = ['--keep', join(dir, 'keep.json'), '--n', '10'];
  const [a, b] = await Promise.all([carve(['compress', ...common, '--out', plain]), carve(['compress', ...common, '--neurons', '--out', carved])]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /MLP neurons 256 -> \d+ in the MLPs kept/);
  const without = JSON.parse(readFileSync(join(plain, 'carve-compress.json'), 'utf8'));
  const rec = JSON.parse(readFileSync(join(carved, 'carve-compress.json'), 'utf8'));
  // Without --target, neurons go only while the metric stays at the kept components' metric.
  assert.ok(rec.metric >= without.metric - 1e-9, `${rec.metric} vs ${without.metric}`);
  assert.ok(Math.abs(rec.neurons.threshold - without.metric) < 1e-9);
  assert.equal(rec.neurons.n_before, 256);
  assert.ok(rec.neurons.n_after < 256 && rec.neurons.n_after > 0, `${rec.neurons.n_after} neurons kept`);
  assert.ok(rec.n_params_after < without.n_params_after);
  const cfg = loadModelDir(carved).config;
  assert.equal(cfg.layers.reduce((s, l) => s + (l.mlp ? (l.neurons?.length ?? cfg.dMlp) : 0), 0), rec.neurons.n_after);

  const ev = join(dir, 'run', 'eval-compressed.json');
  const r = await carveHere(['eval', '--model', carved, '--n', '10', '--out', ev]);
  assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(readFileSync(ev, 'utf8'));
  assert.ok(Math.abs(e.metric - rec.metric) < 1e-4, `eval ${e.metric} vs recorded ${rec.metric}`);
  assert.equal(e.n_neurons, rec.neurons.n_after);
  assert.equal(e.n_params, rec.n_params_after);

  const rep = await carveHere(['report', join(dir, 'run')]);
  assert.equal(rep.code, 0, rep.stderr);
  const html = readFileSync(join(dir, 'run', 'report.html'), 'utf8');
  const l1 = cfg.layers.find((l) => l.sourceLayer === 1)!;
  assert.ok(html.includes(`${l1.neurons!.length} of 256 neurons`), 'the kept-layers table shows the neurons');
  assert.match(html, /<th>MLP neurons<\/th>/);
});
