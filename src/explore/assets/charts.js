// Small SVG charts for the explore page, drawn with the DOM (no libraries, no network).
// Every text that comes from the server is set with textContent or as an attribute value, never as HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function empty(container, text) {
  clear(container);
  const p = document.createElement('p');
  p.className = 'empty';
  p.textContent = text;
  container.appendChild(p);
}

function mix(a, b, t) {
  return a.map((x, i) => Math.round(x + (b[i] - x) * t));
}
const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
const RED = [178, 24, 43];
const WHITE = [247, 247, 247];
const BLUE = [33, 102, 172];
const NAVY = [8, 48, 107];

/** Red below 0 (the task needs it), blue above, white at 0; symmetric in |score| / extent. */
export function divergingColor(score, extent) {
  const t = Math.max(-1, Math.min(1, extent > 0 ? score / extent : 0));
  return rgb(t < 0 ? mix(WHITE, RED, -t) : mix(WHITE, BLUE, t));
}

/** Ink that stays legible on a diverging colour. */
export function inkOn(score, extent) {
  return extent > 0 && Math.abs(score) / extent > 0.55 ? '#ffffff' : '#1d2327';
}

/** White (0) to navy (1), for attention weights. */
export function weightColor(w) {
  const t = Math.max(0, Math.min(1, w));
  return rgb(mix([255, 255, 255], NAVY, Math.sqrt(t)));
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return x.toFixed(digits).replace(/^-/, '\u2212');
}

function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function text(parent, x, y, content, attrs = {}) {
  const t = svg('text', { x, y, 'font-size': 11, fill: '#5f6b73', ...attrs }, parent);
  t.textContent = content;
  return t;
}

/**
 * One bar per prompt (its metric with the removed set) and a tick at its clean metric.
 * opts: { values, clean, selected, onClick(i), label(i) }
 */
export function barChart(container, opts) {
  clear(container);
  const n = opts.values.length;
  const W = Math.max(360, Math.min(900, n * 14 + 60));
  const H = 170;
  const m = { l: 44, r: 8, t: 8, b: 22 };
  const all = [...opts.values, ...opts.clean, 0].filter(Number.isFinite);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 1e-9) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'per-prompt metric' }, container);
  const y = (v) => m.t + ((hi - v) / (hi - lo)) * (H - m.t - m.b);
  const bw = (W - m.l - m.r) / n;
  for (const t of niceTicks(lo, hi, 4)) {
    svg('line', { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t), stroke: t === 0 ? '#888' : '#ececec' }, root);
    text(root, m.l - 4, y(t) + 4, fmt(t, Math.abs(hi - lo) < 2 ? 2 : 1), { 'text-anchor': 'end' });
  }
  opts.values.forEach((v, i) => {
    const x = m.l + i * bw;
    const top = Math.min(y(v), y(0));
    const g = svg('g', { class: 'bar', 'data-index': i, cursor: 'pointer' }, root);
    // A full-height hit area, so thin bars are easy to click.
    svg('rect', { x, y: m.t, width: bw, height: H - m.t - m.b, fill: i === opts.selected ? '#e6eef7' : 'transparent' }, g);
    svg('rect', { x: x + bw * 0.15, y: top, width: Math.max(1, bw * 0.7), height: Math.max(1, Math.abs(y(v) - y(0))), fill: v > 0 ? '#5b9bd5' : '#d9534f' }, g);
    const c = opts.clean[i];
    if (Number.isFinite(c)) svg('line', { x1: x + bw * 0.05, x2: x + bw * 0.95, y1: y(c), y2: y(c), stroke: '#1d2327', 'stroke-width': 1.5 }, g);
    g.setAttribute('data-tip', opts.label(i));
    g.addEventListener('click', () => opts.onClick(i));
  });
  text(root, m.l + (W - m.l - m.r) / 2, H - 6, 'prompt', { 'text-anchor': 'middle' });
}

const PALETTE = ['#2b6cb0', '#d95f02', '#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#a6761d', '#666666'];

/**
 * Pruning curves: metric against the number of components removed, with ±std bands, the clean
 * reference, and the current set as a point. opts: { series: [{label, points: [{x, y, std, component}]}],
 * clean, current: {x, y} | null, onPoint(seriesIndex, x) }
 */
export function lineChart(container, opts) {
  clear(container);
  const W = 640;
  const H = 260 + 16 * Math.ceil(opts.series.length / 2);
  const m = { l: 48, r: 12, t: 10, b: 40 + 16 * Math.ceil(opts.series.length / 2) };
  const pts = opts.series.flatMap((s) => s.points);
  const xs = pts.map((p) => p.x);
  const ys = pts.flatMap((p) => [p.y - (p.std ?? 0), p.y + (p.std ?? 0)]);
  if (opts.clean !== null && Number.isFinite(opts.clean)) ys.push(opts.clean);
  if (opts.current) {
    xs.push(opts.current.x);
    ys.push(opts.current.y);
  }
  const x0 = 0;
  const x1 = Math.max(1, ...xs);
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  if (hi - lo < 1e-9) hi = lo + 1;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'pruning curves' }, container);
  const px = (v) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (v) => m.t + ((hi - v) / (hi - lo)) * (H - m.t - m.b);
  for (const t of niceTicks(lo, hi, 5)) {
    svg('line', { x1: m.l, x2: W - m.r, y1: py(t), y2: py(t), stroke: '#ececec' }, root);
    text(root, m.l - 4, py(t) + 4, fmt(t, 1), { 'text-anchor': 'end' });
  }
  for (const t of niceTicks(x0, x1, 8)) {
    if (!Number.isInteger(t)) continue;
    text(root, px(t), H - m.b + 14, String(t), { 'text-anchor': 'middle' });
  }
  text(root, m.l + (W - m.l - m.r) / 2, H - m.b + 28, 'components removed', { 'text-anchor': 'middle' });
  if (opts.clean !== null && Number.isFinite(opts.clean)) {
    svg('line', { x1: m.l, x2: W - m.r, y1: py(opts.clean), y2: py(opts.clean), stroke: '#888', 'stroke-dasharray': '4 3' }, root);
    text(root, W - m.r - 2, py(opts.clean) - 3, 'clean', { 'text-anchor': 'end' });
  }
  opts.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    const band = s.points.filter((p) => p.std !== null && p.std !== undefined);
    if (band.length > 1) {
      const up = band.map((p) => `${px(p.x)},${py(p.y + p.std)}`);
      const down = band.map((p) => `${px(p.x)},${py(p.y - p.std)}`).reverse();
      svg('polygon', { points: [...up, ...down].join(' '), fill: color, 'fill-opacity': 0.12, stroke: 'none' }, root);
    }
    svg('polyline', { points: s.points.map((p) => `${px(p.x)},${py(p.y)}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 1.8 }, root);
    for (const p of s.points) {
      const c = svg('circle', { cx: px(p.x), cy: py(p.y), r: 3.2, fill: color, cursor: 'pointer', class: 'curve-point', 'data-series': si, 'data-x': p.x }, root);
      c.setAttribute('data-tip', `${s.label}\n${p.x} removed${p.component ? ` (last: ${p.component})` : ''}\nmetric ${fmt(p.y)}${p.std !== null && p.std !== undefined ? ` \u00b1 ${fmt(p.std)}` : ''}\nclick: remove these ${p.x}`);
      c.addEventListener('click', () => opts.onPoint(si, p.x));
    }
    const lx = m.l + (si % 2) * ((W - m.l - m.r) / 2);
    const ly = H - m.b + 44 + 16 * Math.floor(si / 2);
    svg('line', { x1: lx, x2: lx + 16, y1: ly - 4, y2: ly - 4, stroke: color, 'stroke-width': 2.5 }, root);
    text(root, lx + 22, ly, s.label, { fill: '#1d2327' });
  });
  if (opts.current) {
    const c = svg('circle', { cx: px(opts.current.x), cy: py(opts.current.y), r: 6, fill: 'none', stroke: '#1d2327', 'stroke-width': 2, id: 'current-point' }, root);
    c.setAttribute('data-tip', `current set: ${opts.current.x} removed, metric ${fmt(opts.current.y)}`);
  }
}

/**
 * Attention heatmap: rows are query tokens, columns key tokens, both labelled.
 * opts: { tokens, pattern, marks: Map(pos -> kind), title }
 */
export function attentionMap(container, opts) {
  clear(container);
  const T = opts.tokens.length;
  const cell = T > 40 ? 10 : T > 24 ? 14 : 18;
  const label = (i) => {
    const t = opts.tokens[i].replace(/\n/g, '\u21b5');
    return t.length > 14 ? t.slice(0, 13) + '\u2026' : t;
  };
  const labelW = 8 + 7 * Math.max(...opts.tokens.map((_, i) => label(i).length));
  const m = { l: labelW + 8, t: labelW + 8, r: 70, b: 24 };
  const W = m.l + T * cell + m.r;
  const H = m.t + T * cell + m.b;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': opts.title, class: 'attention-map' }, container);
  const markColor = { io: '#cfe8ff', s: '#ffe0b3', end: '#e4dcf5' };
  for (let i = 0; i < T; i++) {
    const kind = opts.marks.get(i);
    if (kind) {
      svg('rect', { x: 0, y: m.t + i * cell, width: m.l - 4, height: cell, fill: markColor[kind] }, root);
      svg('rect', { x: m.l + i * cell, y: 0, width: cell, height: m.t - 4, fill: markColor[kind] }, root);
    }
    const font = { 'font-size': Math.min(11, cell - 2), fill: '#1d2327', 'font-family': 'DejaVu Sans Mono, Liberation Mono, monospace' };
    const yl = text(root, m.l - 6, m.t + i * cell + cell * 0.72, label(i), { ...font, 'text-anchor': 'end' });
    yl.setAttribute('class', 'query-label');
    const xl = text(root, 0, 0, label(i), { ...font, 'text-anchor': 'start', transform: `translate(${m.l + i * cell + cell * 0.72}, ${m.t - 6}) rotate(-90)` });
    xl.setAttribute('class', 'key-label');
  }
  for (let q = 0; q < T; q++) {
    for (let k = 0; k < T; k++) {
      const w = opts.pattern[q][k];
      const r = svg('rect', { x: m.l + k * cell, y: m.t + q * cell, width: cell - 1, height: cell - 1, fill: k > q ? '#fafafa' : weightColor(w), class: 'att-cell' }, root);
      if (k <= q) r.setAttribute('data-tip', `query ${q} ${JSON.stringify(opts.tokens[q])}\nkey ${k} ${JSON.stringify(opts.tokens[k])}\nweight ${fmt(w)}`);
    }
  }
  // A small legend.
  const lx = m.l + T * cell + 16;
  for (let i = 0; i <= 10; i++) svg('rect', { x: lx, y: m.t + (10 - i) * 10, width: 12, height: 10, fill: weightColor(i / 10) }, root);
  text(root, lx + 16, m.t + 8, '1');
  text(root, lx + 16, m.t + 108, '0');
  text(root, m.l, H - 6, 'rows: query (from), columns: key (to)');
}
