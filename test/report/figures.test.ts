import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadRun, type ScanData } from '../../src/report/load-run.ts';
import { curveData, evalData, heatmapData, heatmapSpec, keptData, pearson, pruneSpec, referenceLines, scatterData, scatterPairs, scatterSpec } from '../../src/report/specs.ts';
import { addTooltipTitles, renderSvg, svgToPng } from '../../src/report/render.ts';
import { planFigures } from '../../src/report/index.ts';
import { FIXTURE_RUN } from './helpers.ts';

const run = loadRun(FIXTURE_RUN);
const scan = (file: string) => run.scans.find((s) => s.file === file)!;

/** Data values of a spec, wherever vega-lite lets them live (top level or per layer). */
function specValues(spec: Record<string, unknown>): Record<string, unknown>[][] {
  const out: Record<string, unknown>[][] = [];
  const visit = (s: Record<string, unknown>) => {
    const data = s.data as { values?: Record<string, unknown>[] } | undefined;
    if (data?.values) out.push(data.values);
    for (const key of ['layer', 'hconcat', 'vconcat']) for (const sub of (s[key] as Record<string, unknown>[] | undefined) ?? []) visit(sub);
  };
  visit(spec);
  return out;
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

test('heatmap plots every component at its layer and head, scores unchanged', async () => {
  const s = scan('scan-exact-zero.json');
  const spec = heatmapSpec(s);
  const cells = specValues(spec)[0] as unknown as ReturnType<typeof heatmapData>['cells'];
  assert.equal(cells.length, 15);
  for (const c of s.components) {
    const cell = cells.find((x) => x.name === c.name)!;
    assert.equal(cell.score, c.score);
    assert.equal(cell.row, `L${c.layer}`);
    assert.equal(cell.column, c.head === null ? 'MLP' : `H${c.head}`);
  }
  // Diverging and centred: the colour domain is symmetric about 0 and covers the largest score.
  const color = ((spec.layer as Record<string, any>[])[0].encoding.color) as { scale: { domain: number[]; scheme: string } };
  const m = Math.max(...s.components.map((c) => Math.abs(c.score)));
  assert.deepEqual(color.scale.domain, [-m, m]);
  assert.equal(color.scale.scheme, 'redblue');

  const svg = await renderSvg(spec);
  assert.equal(count(svg, /aria-roledescription="rect mark"/g), 15, 'one rect per component');
  assert.match(svg, /role-legend/, 'has a colour legend');
  assert.equal(count(svg, /<title>L\d+(H\d+|MLP): score /g), 30, 'hover titles on every cell and its label');
  assert.match(svg, /<title>L2H1: score −2\.04 ± 0\.\d+<\/title>/);
});

test('heatmap of a heads-only scan of a bigger model has no MLP column', () => {
  const big: ScanData = { ...scan('scan-exact-zero.json'), components: [] };
  for (let l = 0; l < 12; l++) for (let h = 0; h < 12; h++) big.components.push({ name: `L${l}H${h}`, layer: l, head: h, score: l - h, std: 0 });
  const d = heatmapData(big);
  assert.equal(d.columns.length, 12);
  assert.ok(!d.columns.includes('MLP'));
  assert.equal(d.rows.length, 12);
  assert.equal(d.extent, 11);
});

test('pruning curves plot each step with its ±std band and the clean and corrupt references', async () => {
  const spec = pruneSpec(run.prunes, run.scans);
  const points = curveData(run.prunes);
  assert.equal(points.length, run.prunes.reduce((n, p) => n + p.steps.length, 0));
  for (const p of run.prunes) {
    const mine = points.filter((x) => x.series.startsWith(p.order));
    assert.deepEqual(mine.map((x) => x.metric), p.steps.map((s) => s.metric));
    assert.deepEqual(mine.map((x) => x.lo), p.steps.map((s) => s.metric - (s.std ?? 0)));
    assert.deepEqual(mine.map((x) => x.hi), p.steps.map((s) => s.metric + (s.std ?? 0)));
  }
  assert.deepEqual(referenceLines(run.prunes, run.scans).map((r) => r.value), [3.2, -0.4]);
  const layers = spec.layer as { mark: { type: string } }[];
  assert.deepEqual(layers.map((l) => l.mark.type), ['area', 'line', 'rule', 'text']);

  const svg = await renderSvg(spec);
  assert.equal(count(svg, /aria-roledescription="area mark"/g), 3, 'one band per prune file');
  assert.equal(count(svg, /aria-roledescription="line mark"/g), 3, 'one line per prune file');
  assert.equal(count(svg, /aria-roledescription="rule mark"/g), 2, 'clean and corrupt lines');
  assert.match(svg, /clean 3\.20/);
  assert.match(svg, /corrupt −0\.40/);
});

test('references fall back to a scan when prune files lack them', () => {
  const prunes = run.prunes.map((p) => ({ ...p, cleanMetric: null, corruptMetric: null }));
  assert.deepEqual(referenceLines(prunes, run.scans).map((r) => r.value), [3.2, -0.4]);
  assert.deepEqual(referenceLines(prunes, []), []);
});

test('attribution and ig scans are paired with the exact scan of the same ablation', async () => {
  const pairs = scatterPairs(run.scans);
  assert.deepEqual(pairs.map(([e, a]) => [e.file, a.file]).sort(), [
    ['scan-exact-mean.json', 'scan-ig-mean.json'],
    ['scan-exact-zero.json', 'scan-attribution-zero.json'],
  ]);
  const [exact, attr] = pairs.find(([, a]) => a.method === 'attribution')!;
  const pts = scatterData(exact, attr);
  assert.equal(pts.length, 15);
  for (const p of pts) {
    assert.equal(p.exact, exact.components.find((c) => c.name === p.name)!.score);
    assert.equal(p.approx, attr.components.find((c) => c.name === p.name)!.score);
  }
  const r = pearson(pts.map((p) => p.exact), pts.map((p) => p.approx))!;
  const spec = scatterSpec(exact, attr);
  assert.match(JSON.stringify((spec.title as { text: string[] }).text), new RegExp(`Pearson r = ${r.toFixed(3)}`));
  const svg = await renderSvg(spec);
  assert.equal(count(svg, /aria-roledescription="point"/g), 15);
});

test('pearson', () => {
  assert.equal(pearson([1, 2, 3], [2, 4, 6]), 1);
  assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1])! + 1) < 1e-12);
  assert.equal(pearson([1, 1], [1, 2]), null);
  assert.equal(pearson([1], [1]), null);
});

test('kept grid and evaluation bars show the files\u2019 numbers', () => {
  const kept = keptData(run.compressed[0], run.scans);
  assert.equal(kept.cells.length, 15);
  assert.deepEqual(kept.cells.filter((c) => c.status === 'kept').map((c) => `${c.row}${c.column}`).sort(), ['L0H2', 'L1H0', 'L1H3', 'L2H1', 'L2MLP']);
  const bars = evalData(run.evals);
  const get = (label: string, q: string) => bars.find((b) => b.label === label && b.quantity === q)!.value;
  assert.equal(get('original', 'non-embedding parameters'), 150016);
  assert.equal(get('compressed', 'non-embedding parameters'), 36096);
  assert.equal(get('compressed', 'accuracy'), 0.92);
  assert.equal(get('original', 'ms per prompt'), 1.9);
});

test('user strings are escaped in SVG text and hover titles', async () => {
  const evil = '<script>alert(1)</script>';
  const s: ScanData = { ...scan('scan-exact-zero.json'), model: evil, task: `"quoted" & ${evil}` };
  s.components = s.components.map((c, i) => (i === 0 ? { ...c, name: `<img src=x onerror=alert(2)>` } : c));
  const svg = await renderSvg(heatmapSpec(s));
  assert.ok(!svg.includes('<script>'), 'no raw script tag');
  assert.ok(!svg.includes('<img'), 'no raw img tag');
  assert.match(svg, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  assert.match(svg, /<title>&lt;img src=x onerror=alert\(2\)&gt;: score/);
  const prunes = run.prunes.map((p, i) => (i === 0 ? { ...p, order: evil } : p));
  const curves = await renderSvg(pruneSpec(prunes, run.scans));
  assert.ok(!curves.includes('<script>'));
  assert.match(curves, /&lt;script&gt;/);
});

test('titles are added only to data marks', () => {
  const svg = '<svg><path aria-label="a &lt;b&gt;" role="graphics-symbol" d="M0"/><g role="graphics-symbol" aria-label="axis"></g><text aria-label="t" role="graphics-symbol">1</text></svg>';
  assert.equal(addTooltipTitles(svg), '<svg><path aria-label="a &lt;b&gt;" role="graphics-symbol" d="M0"><title>a &lt;b&gt;</title></path><g role="graphics-symbol" aria-label="axis"></g><text aria-label="t" role="graphics-symbol"><title>t</title>1</text></svg>');
});

test('every planned figure renders to SVG and PNG', async () => {
  const figs = planFigures(run);
  assert.deepEqual(figs.map((f) => f.section), ['scores', 'scores', 'scores', 'scores', 'curves', 'scatter', 'scatter', 'compressed', 'compressed']);
  assert.equal(new Set(figs.map((f) => f.name)).size, figs.length);
  const svg = await renderSvg(figs[0].spec);
  const png = svgToPng(svg);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const width = png.readUInt32BE(16);
  const svgWidth = Number(/width="(\d+)"/.exec(svg)![1]);
  assert.equal(width, svgWidth * 2, 'PNG drawn at twice the SVG size');
});
