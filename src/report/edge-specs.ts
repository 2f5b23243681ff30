/**
 * Vega-Lite specs for edge-level results: a circuit drawn as a layered graph (columns: the input,
 * then each layer's heads and its MLP, then the logits; rows: heads by index), edges as lines whose
 * width follows |score|; and faithfulness curves with their CPR and CMD. Names from the files only
 * ever enter as data.
 */
import type { FaithfulnessData } from './load-run.ts';
import { CONFIG, SCHEMA, fmt, type VlSpec } from './specs.ts';

export interface CircuitEdge {
  sender: string;
  receiver: string;
  /** Any sign; drawn by magnitude. Null: no score (uniform width). */
  score: number | null;
}

interface NodePos {
  name: string;
  x: number;
  y: number;
}

const COL = 44;
const ROW = 26;

/** Where a node sits: the input left, each layer's heads then its MLP, logits right. */
function place(name: string, layers: number, rows: number): NodePos {
  const mid = (rows - 1) / 2;
  if (name === 'input') return { name, x: 0, y: mid };
  if (name === 'logits') return { name, x: 2 * layers + 1, y: mid };
  const m = /^L(\d+)(?:H(\d+)|KV(\d+)|MLP)$/.exec(name);
  if (!m) return { name, x: 0, y: 0 };
  const l = Number(m[1]);
  if (m[2] !== undefined) return { name, x: 1 + 2 * l, y: Number(m[2]) };
  if (m[3] !== undefined) return { name, x: 1 + 2 * l, y: Number(m[3]) };
  return { name, x: 2 + 2 * l, y: mid };
}

/** The component a receiver belongs to: `L5H1<q>` → `L5H1`, `L2KV0<k>` → `L2KV0`. */
function receiverNode(receiver: string): { node: string; kind: string } {
  const m = /^(.*)<([qkv])>$/.exec(receiver);
  if (m) return { node: m[1], kind: m[2] };
  return { node: receiver, kind: receiver === 'logits' ? 'logits' : 'mlp' };
}

export function circuitData(edges: CircuitEdge[]) {
  const names = new Set<string>();
  for (const e of edges) {
    names.add(e.sender);
    names.add(receiverNode(e.receiver).node);
  }
  let layers = 0;
  let rows = 1;
  for (const n of names) {
    const m = /^L(\d+)(?:H(\d+)|KV(\d+))?/.exec(n);
    if (m) {
      layers = Math.max(layers, Number(m[1]) + 1);
      if (m[2] !== undefined || m[3] !== undefined) rows = Math.max(rows, Number(m[2] ?? m[3]) + 1);
    }
  }
  const mags = edges.map((e) => Math.abs(e.score ?? 0));
  const top = Math.max(...mags, 0);
  const lines = edges.map((e, i) => {
    const r = receiverNode(e.receiver);
    const a = place(e.sender, layers, rows);
    const b = place(r.node, layers, rows);
    return {
      x: a.x,
      y: a.y,
      x2: b.x,
      y2: b.y,
      kind: r.kind,
      width: top > 0 && e.score !== null ? mags[i] / top : 0.5,
      tip: `${e.sender}->${e.receiver}${e.score === null ? '' : `: ${fmt(e.score)}`}`,
    };
  });
  const nodes = [...names].map((n) => ({ ...place(n, layers, rows), label: n }));
  const columns = [
    { x: 0, label: 'input' },
    ...Array.from({ length: layers }, (_, l) => [
      { x: 1 + 2 * l, label: `L${l}` },
      { x: 2 + 2 * l, label: 'MLP' },
    ]).flat(),
    { x: 2 * layers + 1, label: 'logits' },
  ];
  return { lines, nodes, columns, layers, rows };
}

export function circuitSpec(edges: CircuitEdge[], title: string, subtitle: string): VlSpec {
  const { lines, nodes, columns, layers, rows } = circuitData(edges);
  const x = { type: 'quantitative', scale: { domain: [-0.5, 2 * layers + 1.5], nice: false }, axis: null };
  const y = { type: 'quantitative', scale: { domain: [rows - 0.5, -1.2], nice: false }, axis: null };
  return {
    $schema: SCHEMA,
    title: { text: title, subtitle },
    width: Math.max(240, COL * (2 * layers + 2)),
    height: Math.max(120, ROW * (rows + 1)),
    layer: [
      {
        data: { values: lines },
        mark: { type: 'rule', opacity: 0.7, strokeCap: 'round' },
        encoding: {
          x: { field: 'x', ...x },
          y: { field: 'y', ...y },
          x2: { field: 'x2' },
          y2: { field: 'y2' },
          strokeWidth: { field: 'width', type: 'quantitative', scale: { domain: [0, 1], range: [0.6, 6] }, legend: null },
          color: {
            field: 'kind',
            type: 'nominal',
            title: 'into',
            scale: { domain: ['q', 'k', 'v', 'mlp', 'logits'], range: ['#2b6cb0', '#2f855a', '#c05621', '#6b46c1', '#444444'] },
            legend: { orient: 'bottom', direction: 'horizontal' },
          },
          description: { field: 'tip' },
        },
      },
      {
        data: { values: nodes },
        mark: { type: 'circle', size: 90, color: '#1d2327', opacity: 0.85 },
        encoding: { x: { field: 'x', ...x }, y: { field: 'y', ...y }, description: { field: 'label' } },
      },
      {
        data: { values: nodes },
        mark: { type: 'text', dy: -9, fontSize: 9, color: '#1d2327' },
        encoding: { x: { field: 'x', ...x }, y: { field: 'y', ...y }, text: { field: 'label' } },
      },
      {
        data: { values: columns },
        mark: { type: 'text', fontSize: 10, color: '#5f6b73' },
        encoding: { x: { field: 'x', ...x }, y: { datum: -1, ...y }, text: { field: 'label' } },
      },
    ],
    config: CONFIG,
  };
}

export function faithfulnessLabel(f: FaithfulnessData): string {
  const from = (f.scoresFile ?? f.file).split(/[\\/]/).at(-1);
  // MIB's variant draws its |score| curve but takes CPR from its signed ranking: say so.
  if (f.variant === 'mib') return `${f.method ?? f.level} (${from}, MIB): CPR ${f.cpr.toFixed(3)} (signed ranking), CMD ${f.cmd.toFixed(3)}`;
  return `${f.method ?? f.level} (${from}): CPR ${f.cpr.toFixed(3)}, CMD ${f.cmd.toFixed(3)}`;
}

export function faithfulnessSpec(curves: FaithfulnessData[]): VlSpec {
  const labels = curves.map(faithfulnessLabel);
  const points = curves.flatMap((c, i) =>
    c.points.map((p) => ({ series: labels[i], fraction: p.fraction, faithfulness: p.faithfulness, tip: `${labels[i]}: ${p.kept ?? '?'} kept (${p.fraction}), faithfulness ${fmt(p.faithfulness)}` })),
  );
  const ticks = [...new Set(curves.flatMap((c) => c.points.map((p) => p.fraction)))].sort((a, b) => a - b);
  const x = { field: 'fraction', type: 'quantitative', title: 'fraction kept (symlog scale)', scale: { type: 'symlog', constant: 0.001, domain: [0, 1], nice: false }, axis: { values: ticks, labelAngle: -40 } };
  return {
    $schema: SCHEMA,
    title: { text: 'Faithfulness', subtitle: ['the kept circuit\u2019s metric, from 0 (nothing kept) to 1 (everything kept);', 'CPR: area under the curve, CMD: area between it and 1'] },
    width: 520,
    height: 300,
    layer: [
      {
        data: { values: [{ v: 0 }, { v: 1 }] },
        mark: { type: 'rule', strokeDash: [5, 4], color: '#777' },
        encoding: { y: { field: 'v', type: 'quantitative' } },
      },
      {
        data: { values: points },
        mark: { type: 'line', strokeWidth: 2, point: { filled: true, size: 30 } },
        encoding: {
          x,
          y: { field: 'faithfulness', type: 'quantitative', title: 'faithfulness' },
          color: { field: 'series', type: 'nominal', sort: labels, title: 'ranking', legend: { orient: 'bottom', direction: 'vertical', labelLimit: 0 } },
          description: { field: 'tip' },
        },
      },
    ],
    config: CONFIG,
  };
}
