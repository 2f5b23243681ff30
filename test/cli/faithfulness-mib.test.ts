/**
 * `carve faithfulness --variant mib` end to end on the embedded toy-ioi (262 edges, 15 components):
 * MIB's sizes, both rankings, the edge count left after pruning (checked against the library on
 * the scan's own scores), CPR and CMD from the points; the default variant untouched; bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { carve, carveHere, isUserError } from '../helpers/cli.ts';
import { readScanScores, scoresInOrder } from '../../src/cli/faithfulness.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { buildEdgeGraph } from '../../src/discover/edge-graph.ts';
import { liveEdges, MIB_PERCENTAGES, topK } from '../../src/discover/mib-faithfulness.ts';
import { curveAreas } from '../../src/discover/faithfulness.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-mib-faith-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const model = ['--model', 'toy-ioi'];
const scanFile = join(dir, 'scan-edges-eap.json');

interface Point {
  fraction: number;
  n_edges?: number;
  n_components?: number;
  n_edges_kept: number;
  metric: number;
  faithfulness: number;
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

test('edges: both rankings at MIB sizes, pruned counts, CPR from the signed curve and CMD from the |score| one', async () => {
  const s = await carve(['scan', ...model, '--level', 'edges', '--method', 'attribution', '--ablation', 'resample', '--out', scanFile]);
  assert.equal(s.code, 0, s.stderr);
  const out = join(dir, 'faith-mib.json');
  const r = await carve(['faithfulness', ...model, '--scores', scanFile, '--variant', 'mib', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(f.variant, 'mib');
  assert.equal(f.level, 'edges');
  assert.equal(f.n_edges, 262);
  assert.equal(f.signed_ranking, '-score', 'logit-diff scores: helpful edges score low');
  const sizes = [0, 0, 1, 2, 5, 13, 26, 52, 131, 262];
  const scan = readScanScores(scanFile);
  const cfg = loadModelDir(join('models', 'toy-ioi')).config;
  const scores = scoresInOrder(cfg, scan, scanFile);
  const graph = buildEdgeGraph(cfg);
  for (const [key, ranking] of [['points', 'absolute'], ['points_signed', 'signed']] as const) {
    const pts: Point[] = f[key];
    assert.deepEqual(
      pts.map((p) => p.fraction),
      MIB_PERCENTAGES,
    );
    assert.deepEqual(
      pts.map((p) => p.n_edges),
      sizes,
    );
    pts.forEach((p, i) => {
      const live = liveEdges(cfg, graph, topK(scores, sizes[i], ranking, -1));
      assert.equal(p.n_edges_kept, live.filter(Boolean).length, `${key}[${i}]`);
      assert.ok(p.n_edges_kept <= sizes[i]);
      close(p.faithfulness, (p.metric - f.metric_none) / (f.metric_all - f.metric_none), `${key}[${i}] faithfulness`);
      // A circuit pruned to nothing is the empty circuit.
      if (p.n_edges_kept === 0) assert.equal(p.faithfulness, 0);
    });
    assert.equal(pts.at(-1)!.n_edges_kept, 262);
    close(pts.at(-1)!.faithfulness, 1, `${key} at 100%`);
    const a = curveAreas(
      MIB_PERCENTAGES,
      pts.map((p) => p.faithfulness),
    );
    close(f.areas[ranking].cpr, a.cpr, `${ranking} cpr`);
    close(f.areas[ranking].cmd, a.cmd, `${ranking} cmd`);
  }
  // Some size actually lost edges to pruning, or the test would not see it.
  assert.ok(f.points.some((p: Point) => p.n_edges_kept < p.n_edges!));
  assert.equal(f.cpr, f.areas.signed.cpr);
  assert.equal(f.cmd, f.areas.absolute.cmd);
  assert.ok(f.cpr > 0 && f.cpr < 1, `cpr ${f.cpr}`);
  assert.ok(f.cmd > 0 && f.cmd < 1, `cmd ${f.cmd}`);
  // The signed ranking keeps the edges that help first: on this scan it recovers more at 10%.
  assert.ok(f.points_signed[6].faithfulness > f.points[6].faithfulness);
});

test('components under mib: the same sizes and rankings, nothing pruned, MIB edge counts beside', async () => {
  const scan = join(dir, 'scan-components.json');
  const s = await carve(['scan', ...model, '--method', 'attribution', '--ablation', 'resample', '--out', scan]);
  assert.equal(s.code, 0, s.stderr);
  const r = await carve(['faithfulness', ...model, '--scores', scan, '--variant', 'mib', '--fractions', '0,0.2,0.5,1']);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(r.stdout);
  assert.equal(f.variant, 'mib');
  assert.equal(f.n_components, 15);
  assert.deepEqual(
    f.points.map((p: Point) => p.n_components),
    [0, 3, 7, 15],
  );
  assert.equal(f.points[0].n_edges_kept, 1, 'no component kept: input->logits remains');
  assert.equal(f.points[3].n_edges_kept, 262);
  close(f.points[3].faithfulness, 1, 'all kept');
  const a = curveAreas(
    [0, 0.2, 0.5, 1],
    f.points_signed.map((p: Point) => p.faithfulness),
  );
  close(f.cpr, a.cpr, 'cpr');
});

test('the default variant is the nominal one, its output without the MIB fields', async () => {
  const r = await carve(['faithfulness', ...model, '--scores', scanFile]);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(r.stdout);
  assert.deepEqual(
    f.points.map((p: Point) => p.fraction),
    [0, 0.001, 0.01, 0.1, 0.5, 1],
  );
  for (const k of ['variant', 'points_signed', 'areas', 'signed_ranking']) assert.ok(!(k in f), k);
  for (const p of f.points) assert.ok(!('n_edges_kept' in p));
});

test('bad input: an unknown variant, a scan with an unknown metric', async () => {
  const out = join(dir, 'never.json');
  const r = await carveHere(['faithfulness', ...model, '--scores', scanFile, '--variant', 'exact', '--out', out]);
  assert.ok(isUserError(r), JSON.stringify(r));
  assert.match(r.stderr, /--variant: expected one of nominal, mib, got "exact"/);
  const bad = join(dir, 'bad-metric.json');
  const s = JSON.parse(readFileSync(scanFile, 'utf8'));
  s.metric_name = 'accuracy';
  writeFileSync(bad, JSON.stringify(s));
  const m = await carveHere(['faithfulness', ...model, '--scores', bad, '--variant', 'mib', '--out', out]);
  assert.ok(isUserError(m), JSON.stringify(m));
  assert.match(m.stderr, /bad-metric\.json: "metric_name" must be one of logit-diff, prob-diff, kl, got "accuracy"/);
  assert.ok(!existsSync(out));
});
