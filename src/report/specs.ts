/**
 * Vega-Lite specs as pure functions of the run's data. Every label a user's file can influence goes in
 * as data, never into a Vega expression string, so a hostile name can only ever be displayed.
 */
import type { CompressedModelData, EvalData, PruneData, ScanData } from './load-run.ts';
import type { HeadAttention } from './attention.ts';

// Vega-Lite's own types are large and strict about unions; the specs are checked by compiling them.
export type VlSpec = Record<string, unknown>;

export const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';

/** Shared look: no chart frame, quiet grid, readable titles. */
export const CONFIG = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e8e8e8', domainColor: '#888', tickColor: '#888' },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal' },
  title: { fontSize: 14, fontWeight: 'bold', anchor: 'start', subtitleFontSize: 11, subtitleColor: '#555', offset: 10 },
};

/** Compact numbers for labels: enough digits to compare, few enough to fit a cell. */
/** Axis titles by metric_name. */
const METRIC_TITLES: Record<string, string> = { 'logit-diff': 'logit difference', 'prob-diff': 'probability difference', kl: 'KL divergence from the clean run' };

export function fmt(x: number): string {
  const a = Math.abs(x);
  let s: string;
  if (a !== 0 && (a < 0.01 || a >= 1e5)) s = x.toExponential(1);
  else if (a >= 100) s = x.toFixed(0);
  else if (a >= 10) s = x.toFixed(1);
  else s = x.toFixed(2);
  return s.replace(/^-/, '\u2212');
}

/** Cell labels have room for four characters or so: fixed decimals, never an exponent. */
export function cellText(x: number): string {
  const a = Math.abs(x);
  const s = a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
  return (/^-0(\.0+)?$/.test(s) ? s.slice(1) : s).replace(/^-/, '\u2212');
}

function pm(mean: number, std: number | null): string {
  return std === null ? fmt(mean) : `${fmt(mean)} \u00b1 ${fmt(std)}`;
}

// ---------------------------------------------------------------- heatmap

export interface HeatmapCell {
  name: string;
  layer: number;
  head: number | null;
  row: string;
  column: string;
  score: number;
  std: number | null;
  /** Score text drawn in the cell. */
  text: string;
  /** Ink colour for the text: light on strong colours, dark on pale ones. */
  ink: string;
  tip: string;
}

export function heatmapData(scan: ScanData): { cells: HeatmapCell[]; rows: string[]; columns: string[]; extent: number } {
  const extent = Math.max(...scan.components.map((c) => Math.abs(c.score))) || 1;
  const maxLayer = Math.max(...scan.components.map((c) => c.layer));
  const heads = scan.components.filter((c) => c.head !== null).map((c) => c.head as number);
  const maxHead = heads.length > 0 ? Math.max(...heads) : -1;
  const hasMlp = scan.components.some((c) => c.head === null);
  const rows = Array.from({ length: maxLayer + 1 }, (_, l) => `L${l}`);
  const columns = Array.from({ length: maxHead + 1 }, (_, h) => `H${h}`);
  if (hasMlp) columns.push('MLP');
  const cells = scan.components.map((c): HeatmapCell => ({
    name: c.name,
    layer: c.layer,
    head: c.head,
    row: `L${c.layer}`,
    column: c.head === null ? 'MLP' : `H${c.head}`,
    score: c.score,
    std: c.std,
    text: cellText(c.score),
    ink: Math.abs(c.score) > 0.55 * extent ? '#ffffff' : '#222222',
    tip: `${c.name}: score ${pm(c.score, c.std)}`,
  }));
  return { cells, rows, columns, extent };
}

export function heatmapSpec(scan: ScanData): VlSpec {
  const { cells, rows, columns, extent } = heatmapData(scan);
  const subtitle = [scan.model, scan.task, scan.nPrompts !== null ? `${scan.nPrompts} prompts` : null, scan.cleanMetric !== null ? `clean metric ${pm(scan.cleanMetric, scan.cleanStd)}` : null]
    .filter((s): s is string => s !== null)
    .join(' \u00b7 ');
  const x = { field: 'column', type: 'ordinal', sort: columns, title: 'head', axis: { orient: 'top', labelAngle: 0, domain: false, ticks: false } };
  const y = { field: 'row', type: 'ordinal', sort: rows, title: 'layer', axis: { domain: false, ticks: false } };
  // Text in cells stops being legible once the grid gets large (GPT-2 medium and up); hover still works.
  const showText = cells.length <= 400;
  const big = columns.length > 16 || rows.length > 16;
  const cellW = big ? 24 : 48;
  const cellH = big ? 18 : 32;
  return {
    $schema: SCHEMA,
    title: { text: `${scan.method} scores, ${scan.ablation} ablation`, subtitle },
    data: { values: cells },
    width: { step: cellW },
    height: { step: cellH },
    layer: [
      {
        mark: { type: 'rect', stroke: '#ffffff', strokeWidth: 1 },
        encoding: {
          x,
          y,
          color: {
            field: 'score',
            type: 'quantitative',
            // Symmetric around 0 so that the neutral colour means "no effect" in every heatmap.
            scale: { scheme: 'redblue', domain: [-extent, extent], domainMid: 0 },
            legend: { title: ['score', '(< 0: needed)'], values: [-extent, 0, extent], gradientLength: Math.max(90, rows.length * cellH), format: '.2~f' },
          },
          description: { field: 'tip' },
        },
      },
      ...(showText
        ? [
            {
              mark: { type: 'text', fontSize: big ? 7 : 11 },
              encoding: { x, y, text: { field: 'text' }, color: { field: 'ink', type: 'nominal', scale: null }, description: { field: 'tip' } },
            },
          ]
        : []),
    ],
    // The ink colours are literal values, not a second use of the score colour scale.
    resolve: { scale: { color: 'independent' } },
    config: CONFIG,
  };
}

// ---------------------------------------------------------------- pruning curves

export interface CurvePoint {
  series: string;
  removed: number;
  component: string | null;
  metric: number;
  std: number | null;
  lo: number;
  hi: number;
  tip: string;
}

export interface ReferenceLine {
  label: string;
  value: number;
}

export function seriesLabel(p: PruneData): string {
  return `${p.order} \u00b7 ${p.ablation} \u00b7 ${p.method}`;
}

/** One label per prune file; files that would share one are told apart by their file names. */
export function seriesLabels(prunes: PruneData[]): string[] {
  const base = prunes.map(seriesLabel);
  return base.map((b, i) => (base.filter((o) => o === b).length > 1 ? `${b} (${prunes[i].file})` : b));
}

export function curveData(prunes: PruneData[]): CurvePoint[] {
  const labels = seriesLabels(prunes);
  return prunes.flatMap((p, i) =>
    p.steps.map((s): CurvePoint => ({
      series: labels[i],
      removed: s.removed,
      component: s.component,
      metric: s.metric,
      std: s.std,
      lo: s.metric - (s.std ?? 0),
      hi: s.metric + (s.std ?? 0),
      tip: `${labels[i]}: ${s.removed} removed${s.component ? ` (last: ${s.component})` : ''}, metric ${pm(s.metric, s.std)}`,
    })),
  );
}

/** With `--eval-task`: each prune file's steps measured on the evaluation prompts, a series of their own. */
export function heldOutCurveData(prunes: PruneData[]): CurvePoint[] {
  const labels = seriesLabels(prunes);
  return prunes.flatMap((p, i) =>
    p.steps
      .filter((s) => typeof s.evalMetric === 'number')
      .map((s): CurvePoint => {
        const series = `${labels[i]} \u00b7 held-out`;
        const m = s.evalMetric as number;
        return {
          series,
          removed: s.removed,
          component: s.component,
          metric: m,
          std: s.evalStd ?? null,
          lo: m - (s.evalStd ?? 0),
          hi: m + (s.evalStd ?? 0),
          tip: `${series}${p.evalTask ? ` (${p.evalTask})` : ''}: ${s.removed} removed${s.component ? ` (last: ${s.component})` : ''}, metric ${pm(m, s.evalStd ?? null)}`,
        };
      }),
  );
}

/** Clean and corrupt metrics: from the prune files when they carry them, else from a scan. */
export function referenceLines(prunes: PruneData[], scans: ScanData[]): ReferenceLine[] {
  const first = (xs: (number | null)[]): number | null => xs.find((x): x is number => x !== null) ?? null;
  const clean = first([...prunes.map((p) => p.cleanMetric), ...scans.map((s) => s.cleanMetric)]);
  const corrupt = first([...prunes.map((p) => p.corruptMetric), ...scans.map((s) => s.corruptMetric)]);
  const lines: ReferenceLine[] = [];
  if (clean !== null) lines.push({ label: `clean ${fmt(clean)}`, value: clean });
  if (corrupt !== null) lines.push({ label: `corrupt ${fmt(corrupt)}`, value: corrupt });
  const heldClean = first(prunes.map((p) => p.evalCleanMetric ?? null));
  if (heldClean !== null && prunes.some((p) => p.steps.some((st) => typeof st.evalMetric === 'number'))) lines.push({ label: `held-out clean ${fmt(heldClean)}`, value: heldClean });
  return lines;
}

export const CURVES_WIDTH = 720;

export function pruneSpec(prunes: PruneData[], scans: ScanData[]): VlSpec {
  const points = curveData(prunes);
  const held = heldOutCurveData(prunes);
  const refs = referenceLines(prunes, scans);
  const labels = [...seriesLabels(prunes), ...new Set(held.map((h) => h.series))];
  const maxRemoved = Math.max(...points.map((p) => p.removed));
  const x = { field: 'removed', type: 'quantitative', title: 'components removed', scale: { domain: [0, Math.max(1, maxRemoved)], nice: false }, axis: { tickMinStep: 1 } };
  // Bands and lines share one colour scale; one legend definition on both keeps vega-lite from
  // disabling the merged legend, and stroke symbols keep the pale band fill out of it.
  const color = {
    field: 'series',
    type: 'nominal',
    sort: labels,
    title: 'order \u00b7 ablation \u00b7 method',
    legend: { orient: 'bottom', direction: 'vertical', symbolType: 'stroke', symbolStrokeWidth: 3, symbolOpacity: 1, labelLimit: 0, titleLimit: 0 },
  };
  const maxSteps = Math.max(...prunes.map((p) => p.steps.length));
  return {
    $schema: SCHEMA,
    title: {
      text: 'Pruning curves',
      subtitle: `task metric as components are removed together (band: \u00b11 std over prompts)${held.length > 0 ? '; dashed: the same removals on the held-out prompts (--eval-task)' : ''}`,
    },
    width: CURVES_WIDTH,
    height: 340,
    layer: [
      {
        data: { values: points },
        mark: { type: 'area', opacity: 0.15 },
        encoding: { x, y: { field: 'lo', type: 'quantitative', title: `metric (${METRIC_TITLES[prunes.find((p) => p.metricName)?.metricName ?? 'logit-diff'] ?? prunes[0]!.metricName})` }, y2: { field: 'hi' }, color },
      },
      {
        data: { values: points },
        // Points are only legible (and worth hovering) while the curve is short.
        mark: { type: 'line', strokeWidth: 2, point: maxSteps <= 80 ? { filled: true, size: 22 } : false },
        encoding: {
          x,
          y: { field: 'metric', type: 'quantitative' },
          color,
          description: { field: 'tip' },
        },
      },
      ...(held.length > 0
        ? [
            {
              data: { values: held },
              // Selected on one prompt set, measured on another: dashed, in the colour scale of its own series.
              mark: { type: 'line', strokeWidth: 2, strokeDash: [6, 4], point: maxSteps <= 80 ? { filled: false, size: 22 } : false },
              encoding: { x, y: { field: 'metric', type: 'quantitative' }, color, description: { field: 'tip' } },
            },
          ]
        : []),
      ...(refs.length > 0
        ? [
            {
              data: { values: refs },
              mark: { type: 'rule', strokeDash: [5, 4], color: '#555', strokeWidth: 1.2 },
              encoding: { y: { field: 'value', type: 'quantitative' }, description: { field: 'label' } },
            },
            {
              data: { values: refs.filter((r) => !r.label.startsWith('held-out')) },
              mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -2, color: '#444', fontSize: 11 },
              encoding: { y: { field: 'value', type: 'quantitative' }, x: { value: CURVES_WIDTH - 2 }, text: { field: 'label' } },
            },
            // The held-out clean line sits close to the clean one: its label goes under it, on the left.
            ...(refs.some((r) => r.label.startsWith('held-out'))
              ? [
                  {
                    data: { values: refs.filter((r) => r.label.startsWith('held-out')) },
                    mark: { type: 'text', align: 'left', baseline: 'top', dy: 2, color: '#444', fontSize: 11 },
                    encoding: { y: { field: 'value', type: 'quantitative' }, x: { value: 4 }, text: { field: 'label' } },
                  },
                ]
              : []),
          ]
        : []),
    ],
    config: CONFIG,
  };
}

// ---------------------------------------------------------------- attribution vs exact

export interface ScatterPoint {
  name: string;
  kind: 'head' | 'MLP';
  exact: number;
  approx: number;
  tip: string;
}

export function pearson(xs: number[], ys: number[]): number | null {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  if (sxx === 0 || syy === 0) return null;
  return sxy / Math.sqrt(sxx * syy);
}

/** Components present in both scans, matched by name. */
export function scatterData(exact: ScanData, approx: ScanData): ScatterPoint[] {
  const byName = new Map(approx.components.map((c) => [c.name, c]));
  return exact.components.flatMap((c) => {
    const a = byName.get(c.name);
    if (!a) return [];
    return [{ name: c.name, kind: c.head === null ? 'MLP' : 'head', exact: c.score, approx: a.score, tip: `${c.name}: exact ${fmt(c.score)}, ${approx.method} ${fmt(a.score)}` } as ScatterPoint];
  });
}

/** Every (exact, attribution-or-ig) pair of scans with the same ablation and, where stated, model and task. */
export function scatterPairs(scans: ScanData[]): [ScanData, ScanData][] {
  const same = (a: string | null, b: string | null) => a === null || b === null || a === b;
  const pairs: [ScanData, ScanData][] = [];
  for (const approx of scans.filter((s) => s.method !== 'exact')) {
    const exact = scans.find((e) => e.method === 'exact' && e.ablation === approx.ablation && same(e.model, approx.model) && same(e.task, approx.task));
    if (exact && scatterData(exact, approx).length > 0) pairs.push([exact, approx]);
  }
  return pairs;
}

export function scatterSpec(exact: ScanData, approx: ScanData): VlSpec {
  const points = scatterData(exact, approx);
  const r = pearson(points.map((p) => p.exact), points.map((p) => p.approx));
  const all = points.flatMap((p) => [p.exact, p.approx]);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  return {
    $schema: SCHEMA,
    title: {
      // Two lines: vega estimates text widths generously without a canvas, and one long line widens the figure.
      text: [`${approx.method} vs exact scores`, `Pearson r = ${r === null ? 'n/a' : r.toFixed(3)}`],
      subtitle: `${approx.ablation} ablation \u00b7 ${points.length} components \u00b7 dashed: y = x`,
    },
    width: 320,
    height: 320,
    layer: [
      {
        data: { values: [{ v: lo }, { v: hi }] },
        mark: { type: 'line', strokeDash: [4, 4], color: '#999', strokeWidth: 1 },
        encoding: { x: { field: 'v', type: 'quantitative' }, y: { field: 'v', type: 'quantitative' } },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 46, opacity: 0.8 },
        encoding: {
          x: { field: 'exact', type: 'quantitative', title: 'exact score' },
          y: { field: 'approx', type: 'quantitative', title: `${approx.method} score` },
          color: { field: 'kind', type: 'nominal', title: 'component', scale: { domain: ['head', 'MLP'], range: ['#4c78a8', '#f58518'] } },
          shape: { field: 'kind', type: 'nominal', scale: { domain: ['head', 'MLP'], range: ['circle', 'square'] } },
          description: { field: 'tip' },
        },
      },
    ],
    config: CONFIG,
  };
}

// ---------------------------------------------------------------- compressed model

export interface KeptCell {
  row: string;
  column: string;
  /** partial: an MLP that keeps only some of its neurons. */
  status: 'kept' | 'partial' | 'removed';
  tip: string;
}

/** The original grid size: the largest of what the config, the pruned layout and the scans imply. */
export function keptData(model: CompressedModelData, scans: ScanData[]): { cells: KeptCell[]; rows: string[]; columns: string[] } {
  const scanLayers = scans.flatMap((s) => s.components.map((c) => c.layer));
  const scanHeads = scans.flatMap((s) => s.components.filter((c) => c.head !== null).map((c) => c.head as number));
  const nLayer = Math.max(model.nLayer ?? 0, ...model.layers.map((l) => l.sourceLayer + 1), ...scanLayers.map((l) => l + 1));
  const nHead = Math.max(model.nHead ?? 0, ...model.layers.flatMap((l) => l.heads.map((h) => h + 1)), ...scanHeads.map((h) => h + 1));
  const rows = Array.from({ length: nLayer }, (_, l) => `L${l}`);
  const columns = [...Array.from({ length: nHead }, (_, h) => `H${h}`), 'MLP'];
  const byLayer = new Map(model.layers.map((l) => [l.sourceLayer, l]));
  const cells: KeptCell[] = [];
  for (let l = 0; l < nLayer; l++) {
    const kept = byLayer.get(l);
    for (let h = 0; h < nHead; h++) {
      const status = kept?.heads.includes(h) ? 'kept' : 'removed';
      cells.push({ row: `L${l}`, column: `H${h}`, status, tip: `L${l}H${h}: ${status}` });
    }
    const status = !kept?.mlp ? 'removed' : kept.neurons !== undefined ? 'partial' : 'kept';
    const neurons = status === 'partial' ? `, ${kept!.neurons} of ${model.dMlp ?? '?'} neurons` : '';
    cells.push({ row: `L${l}`, column: 'MLP', status, tip: `L${l}MLP: ${status === 'partial' ? 'kept' : status}${neurons}` });
  }
  return { cells, rows, columns };
}

export function keptSpec(model: CompressedModelData, scans: ScanData[]): VlSpec {
  const { cells, rows, columns } = keptData(model, scans);
  const nKept = cells.filter((c) => c.status !== 'removed').length;
  return {
    $schema: SCHEMA,
    title: { text: `Components kept in ${model.dir}`, subtitle: `${nKept} of ${cells.length} components kept` },
    data: { values: cells },
    width: { step: columns.length > 16 ? 24 : 48 },
    height: { step: rows.length > 16 ? 18 : 32 },
    mark: { type: 'rect', stroke: '#ffffff', strokeWidth: 1 },
    encoding: {
      x: { field: 'column', type: 'ordinal', sort: columns, title: 'head', axis: { orient: 'top', labelAngle: 0, domain: false, ticks: false } },
      y: { field: 'row', type: 'ordinal', sort: rows, title: 'layer', axis: { domain: false, ticks: false } },
      color: { field: 'status', type: 'nominal', title: null, scale: cells.some((c) => c.status === 'partial') ? { domain: ['kept', 'partial', 'removed'], range: ['#2f9e44', '#8ce99a', '#e9ecef'] } : { domain: ['kept', 'removed'], range: ['#2f9e44', '#e9ecef'] } },
      description: { field: 'tip' },
    },
    config: CONFIG,
  };
}

// ---------------------------------------------------------------- evaluation

export interface EvalBar {
  label: string;
  quantity: string;
  value: number;
  text: string;
  tip: string;
}

const EVAL_QUANTITIES: { key: string; title: string; get: (e: EvalData) => number | null; show: (v: number) => string }[] = [
  { key: 'params', title: 'non-embedding parameters', get: (e) => e.nParamsNonEmbedding ?? e.nParams, show: (v) => v.toLocaleString('en-US') },
  { key: 'accuracy', title: 'accuracy', get: (e) => e.accuracy, show: (v) => `${(v * 100).toFixed(1)}%` },
  { key: 'ms', title: 'ms per prompt', get: (e) => e.msPerPrompt, show: (v) => fmt(v) },
];

/** The model the others are compared with: the one labelled original, else the largest. */
export function baselineEval(evals: EvalData[]): EvalData | null {
  if (evals.length === 0) return null;
  return evals.find((e) => /^(original|base|baseline|full)$/i.test(e.label)) ?? [...evals].sort((a, b) => b.nParams - a.nParams)[0];
}

/** Baseline first, so every chart and table reads "before, after". */
export function orderEvals(evals: EvalData[]): EvalData[] {
  const base = baselineEval(evals);
  return base ? [base, ...evals.filter((e) => e !== base)] : [];
}

export function evalData(evals: EvalData[]): EvalBar[] {
  return EVAL_QUANTITIES.flatMap((q) =>
    evals.flatMap((e) => {
      const v = q.get(e);
      return v === null ? [] : [{ label: e.label, quantity: q.title, value: v, text: q.show(v), tip: `${e.label}: ${q.title} ${q.show(v)}` }];
    }),
  );
}

export function evalSpec(evals: EvalData[]): VlSpec {
  const ordered = orderEvals(evals);
  const bars = evalData(ordered);
  const labels = ordered.map((e) => e.label);
  const panels = EVAL_QUANTITIES.filter((q) => bars.some((b) => b.quantity === q.title)).map((q) => ({
    title: { text: q.title, fontSize: 12, fontWeight: 'normal' },
    transform: [{ filter: { field: 'quantity', equal: q.title } }],
    width: 170,
    height: { step: 26 },
    layer: [
      {
        mark: { type: 'bar', cornerRadiusEnd: 2 },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: labels, title: null },
          x: { field: 'value', type: 'quantitative', title: null, axis: { labels: false, ticks: false, grid: false, domain: false } },
          color: { field: 'label', type: 'nominal', sort: labels, legend: null, scale: { scheme: 'tableau10' } },
          description: { field: 'tip' },
        },
      },
      {
        mark: { type: 'text', align: 'left', dx: 3, fontSize: 10, color: '#222' },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: labels },
          x: { field: 'value', type: 'quantitative' },
          text: { field: 'text' },
        },
      },
    ],
  }));
  return {
    $schema: SCHEMA,
    title: { text: 'Size, accuracy and speed' },
    data: { values: bars },
    hconcat: panels,
    spacing: 60,
    config: CONFIG,
  };
}

// ---------------------------------------------------------------- attention patterns

export interface AttentionCell {
  query: string;
  key: string;
  weight: number;
  tip: string;
}

/** Token labels made unique by their position ("Mary 3"), as data: tokens repeat in a prompt. */
export function tokenLabels(tokens: string[]): string[] {
  return tokens.map((t, i) => `${t.trim() === '' ? JSON.stringify(t) : t.trim()} ${i}`);
}

export function attentionData(a: HeadAttention): { cells: AttentionCell[]; labels: string[] } {
  const labels = tokenLabels(a.tokens);
  const cells: AttentionCell[] = [];
  a.pattern.forEach((row, q) =>
    row.forEach((w, k) => {
      // A causal model's query sees only keys up to itself; the rest stays blank.
      if (k <= q) cells.push({ query: labels[q], key: labels[k], weight: w, tip: `${labels[q]} \u2192 ${labels[k]}: ${w.toFixed(3)}` });
    }),
  );
  return { cells, labels };
}

export function attentionSpec(a: HeadAttention): VlSpec {
  const { cells, labels } = attentionData(a);
  const step = labels.length > 40 ? 10 : labels.length > 24 ? 14 : 18;
  return {
    $schema: SCHEMA,
    title: { text: `${a.name} attention`, subtitle: `score ${fmt(a.score)} in ${a.scanFile} \u00b7 first prompt of ${a.taskFile}` },
    data: { values: cells },
    width: { step },
    height: { step },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'key', type: 'ordinal', sort: labels, title: 'key (attended to)', axis: { orient: 'top', labelAngle: -90, domain: false, ticks: false, labelFontSize: 10 } },
      y: { field: 'query', type: 'ordinal', sort: labels, title: 'query (attending)', axis: { domain: false, ticks: false, labelFontSize: 10 } },
      color: { field: 'weight', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1] }, legend: { title: 'weight', values: [0, 0.5, 1] } },
      description: { field: 'tip' },
    },
    config: CONFIG,
  };
}
