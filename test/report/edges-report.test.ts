/**
 * The report's edge figures: a circuit drawn as a layered graph (for ACDC's kept edges and an edge
 * scan's top edges) and the faithfulness curves with CPR and CMD.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { planFigures, writeReport, loadRun } from '../../src/report/index.ts';
import { circuitData, faithfulnessLabel } from '../../src/report/edge-specs.ts';
import { CarveError } from '../../src/util/errors.ts';
import { emptyDir } from './helpers.ts';

const edge = (name: string, score: number) => ({ name, sender: name.split('->')[0], receiver: name.split('->')[1], score, std: 0.1 });

function writeRun(dir: string): void {
  const edges = [edge('input->L0H0<q>', 0.5), edge('input->L0H1<v>', -2), edge('L0H0->L1H1<k>', 1.5), edge('L0H1->L1MLP', 0.1), edge('L1H1->logits', -3), edge('L1MLP->logits', 0.2)];
  writeFileSync(join(dir, 'scan-edges.json'), JSON.stringify({ model: 'm', task: 't', level: 'edges', ablation: 'resample', method: 'exact', n_edges: edges.length, edges }));
  writeFileSync(join(dir, 'acdc-edges.json'), JSON.stringify({ order: 'acdc', level: 'edges', ablation: 'resample', threshold: 0.1, n_edges: 6, kept: ['input->L0H1<v>', 'L1H1->logits'], steps: [{ removed: 0, edge: null, metric: 3, std: 1 }, { removed: 1, edge: 'L1MLP->logits', metric: 2.9, std: 1 }] }));
  for (const [method, cpr] of [['exact', 0.8], ['attribution', 0.6]] as const) {
    writeFileSync(
      join(dir, `faithfulness-${method}.json`),
      JSON.stringify({ level: 'edges', scores_method: method, scores_file: `scan-${method}.json`, ablation: 'resample', points: [{ fraction: 0, n_edges: 0, metric: -1, faithfulness: 0 }, { fraction: 0.5, n_edges: 3, metric: 1, faithfulness: 0.6 }, { fraction: 1, n_edges: 6, metric: 2, faithfulness: 1 }], cpr, cmd: 1 - cpr }),
    );
  }
}

test('circuit layout: input left, each layer its heads then its MLP, logits right', () => {
  const { lines, nodes, layers, rows } = circuitData([
    { sender: 'input', receiver: 'L0H1<q>', score: 1 },
    { sender: 'L0H1', receiver: 'L1MLP', score: -2 },
    { sender: 'L1MLP', receiver: 'logits', score: null },
  ]);
  assert.equal(layers, 2);
  assert.equal(rows, 2);
  const at = (n: string) => nodes.find((x) => x.label === n)!;
  assert.deepEqual([at('input').x, at('L0H1').x, at('L1MLP').x, at('logits').x], [0, 1, 4, 5]);
  assert.equal(at('L0H1').y, 1);
  assert.deepEqual(lines.map((l) => l.kind), ['q', 'mlp', 'logits']);
  assert.deepEqual(lines.map((l) => l.width), [0.5, 1, 0.5], 'width by |score| relative to the largest; unscored edges mid-width');
});

test('the report draws edge circuits and faithfulness curves', async () => {
  const dir = emptyDir('edges-report');
  writeRun(dir);
  const run = loadRun(dir);
  assert.equal(run.edgeScans.length, 1);
  assert.equal(run.edgePrunes.length, 1);
  assert.equal(run.faithfulness.length, 2);
  const names = planFigures(run).map((f) => f.name);
  assert.deepEqual(names, ['circuit-acdc-edges', 'circuit-scan-edges', 'faithfulness']);
  const result = await writeReport(dir);
  for (const f of result.figures) assert.ok(existsSync(f), f);
  assert.equal(result.figures.length, 6);
  const html = readFileSync(result.html, 'utf8');
  assert.match(html, /Edges and faithfulness/);
  assert.match(html, /CPR 0\.800, CMD 0\.200/);
  assert.match(html, /2 of 6 edges kept, threshold 0\.1/);
});

test('an edge scan with a malformed edge name is a user error naming the file', () => {
  const dir = emptyDir('edges-report-bad');
  writeFileSync(join(dir, 'scan-edges.json'), JSON.stringify({ level: 'edges', edges: [{ name: 'L0H0 to logits', score: 1 }] }));
  assert.throws(() => loadRun(dir), (e) => e instanceof CarveError && /scan-edges\.json: edges\[0\]\.name: "L0H0 to logits" is not an edge name/.test(e.message));
});

test("a faithfulness file of MIB's variant says its CPR comes from the signed ranking", () => {
  const curve = { file: 'f.json', level: 'edges', method: 'ig', scoresFile: 'scan-ig.json', ablation: 'resample', points: [], cpr: 0.81, cmd: 0.17 };
  assert.equal(faithfulnessLabel({ ...curve, variant: 'mib' }), 'ig (scan-ig.json, MIB): CPR 0.810 (signed ranking), CMD 0.170');
  assert.equal(faithfulnessLabel({ ...curve, variant: null }), 'ig (scan-ig.json): CPR 0.810, CMD 0.170');
});

test('edge scans of ig along activations are told apart from ig along the inputs', () => {
  const dir = emptyDir('edges-report-ig-paths');
  const edges = [edge('input->L0H0<q>', 0.5), edge('L0H0->logits', -1)];
  writeFileSync(join(dir, 'scan-ig.json'), JSON.stringify({ level: 'edges', ablation: 'resample', method: 'ig', steps: 5, ig_path: 'inputs', edges }));
  writeFileSync(join(dir, 'scan-ig-act.json'), JSON.stringify({ level: 'edges', ablation: 'resample', method: 'ig', steps: 5, ig_path: 'activations', edges }));
  const methods = loadRun(dir).edgeScans.map((s) => `${s.file}: ${s.method}`).sort();
  assert.deepEqual(methods, ['scan-ig-act.json: ig (activations)', 'scan-ig.json: ig']);
});
