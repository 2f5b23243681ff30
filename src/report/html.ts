/**
 * The self-contained page: inline SVG figures, inline CSS, one tiny inline script for hover values.
 * Everything that comes from a user's files passes through escapeHtml; SVGs arrive already escaped by vega.
 */
import type { CompressedModelData, EvalData, KeptLayer, RunData, TaskPrompt } from './load-run.ts';
import { baselineEval, fmt, orderEvals } from './specs.ts';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/**
 * Every vega SVG numbers its gradients and clip paths from 0, so two inline SVGs on one page would
 * point at each other's definitions; give each figure's ids its own prefix.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]);
  if (ids.size === 0) return svg;
  return svg.replace(/(\sid="|url\(#|href="#)([^")]+)/g, (all, lead: string, id: string) => (ids.has(id) ? `${lead}${prefix}${id}` : all));
}

export interface PageFigure {
  id: string;
  section: 'scores' | 'attention' | 'curves' | 'scatter' | 'edges' | 'compressed';
  svg: string;
  /** Figure file names relative to the page, for the download links. */
  svgFile: string;
  pngFile: string;
  caption: string;
}

export interface PageInput {
  run: RunData;
  title: string;
  figures: PageFigure[];
  generated: string;
}

const CSS = `
:root { --ink: #1d2327; --muted: #5f6b73; --line: #e3e7ea; --io: #cfe8ff; --s: #ffe0b3; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 "DejaVu Sans", "Liberation Sans", Helvetica, Arial, sans-serif; color: var(--ink); background: #f6f7f8; }
header { background: #ffffff; border-bottom: 1px solid var(--line); padding: 22px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .meta { color: var(--muted); font-size: 14px; }
header .meta b { color: var(--ink); font-weight: 600; }
main { padding: 8px 32px 40px; max-width: 1500px; }
section { margin-top: 26px; }
section > h2 { font-size: 18px; margin: 0 0 4px; }
section > p.lead { margin: 0 0 12px; color: var(--muted); max-width: 900px; }
.grid { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.card { background: #ffffff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card table { border: none; }
.card .note { margin: 0 0 8px; font-size: 13px; color: var(--muted); max-width: 360px; }
figure { margin: 0; background: #ffffff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px 10px; max-width: 100%; }
figure .fig svg { display: block; max-width: 100%; height: auto; }
figcaption { margin-top: 8px; font-size: 13px; color: var(--muted); max-width: 620px; }
figcaption .files { display: block; margin-top: 4px; font-size: 12px; }
figcaption a { color: var(--accent); }
table { border-collapse: collapse; background: #ffffff; border: 1px solid var(--line); border-radius: 8px; font-size: 14px; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #fafbfc; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.prompt { max-width: 760px; }
td.prompt .corrupt { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
code, .tok { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, monospace; font-size: 13px; }
mark { border-radius: 3px; padding: 0 2px; }
mark.io { background: var(--io); }
mark.s { background: var(--s); }
.legend-chip { display: inline-block; padding: 0 6px; border-radius: 3px; margin-right: 8px; }
.better { color: #2f7d32; }
.worse { color: #b3261e; }
.warnings { color: #8a5a00; font-size: 13px; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 30px; }
#tip { position: fixed; pointer-events: none; background: #1d2327; color: #fff; padding: 4px 8px; border-radius: 4px; font-size: 12px; white-space: pre; z-index: 10; }
`;

/**
 * Native <title> tooltips take a second to appear; this shows the same text at once. It reads titles,
 * so the page still works (more slowly) with scripts off.
 */
const SCRIPT = `
(function () {
  var tip = document.getElementById('tip');
  document.querySelectorAll('.fig svg title').forEach(function (t) {
    var el = t.parentNode;
    el.setAttribute('data-tip', t.textContent);
    el.removeChild(t);
  });
  document.addEventListener('mousemove', function (e) {
    var el = e.target && e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!el) { tip.hidden = true; return; }
    tip.textContent = el.getAttribute('data-tip');
    tip.hidden = false;
    tip.style.left = (e.clientX + 14) + 'px';
    tip.style.top = (e.clientY + 12) + 'px';
  });
})();
`;

function figureHtml(f: PageFigure): string {
  return `<figure id="${escapeHtml(f.id)}">
<div class="fig">${scopeSvgIds(f.svg, `${f.id}-`)}</div>
<figcaption>${f.caption}<span class="files">Files: <a href="${escapeHtml(f.svgFile)}">SVG</a> \u00b7 <a href="${escapeHtml(f.pngFile)}">PNG</a></span></figcaption>
</figure>`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The prompt with its names wrapped in <mark>; each piece is escaped on its own, names included. */
export function highlightNames(text: string, names: { name: string; cls: string }[]): string {
  const usable = names.filter((n) => n.name.trim() !== '').map((n) => ({ name: n.name.trim(), cls: n.cls }));
  if (usable.length === 0) return escapeHtml(text);
  // Longest first so that "Ann" does not split "Anna".
  usable.sort((a, b) => b.name.length - a.name.length);
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${usable.map((n) => escapeRegExp(n.name)).join('|')})(?![\\p{L}\\p{N}])`, 'gu');
  let out = '';
  let last = 0;
  for (const m of text.matchAll(re)) {
    const cls = usable.find((n) => n.name === m[1])?.cls ?? 'io';
    out += escapeHtml(text.slice(last, m.index)) + `<mark class="${cls}">${escapeHtml(m[1])}</mark>`;
    last = (m.index ?? 0) + m[1].length;
  }
  return out + escapeHtml(text.slice(last));
}

function promptNames(p: TaskPrompt): { name: string; cls: string }[] {
  const io = p.io ?? (typeof p.correct === 'string' ? p.correct : null);
  const s = p.s ?? (typeof p.incorrect === 'string' ? p.incorrect : null);
  return [
    ...(io ? [{ name: io, cls: 'io' }] : []),
    ...(s ? [{ name: s, cls: 's' }] : []),
  ];
}

function showAnswer(a: string | string[] | null): string {
  // Answers usually start with a space that matters to the tokenizer; make it visible.
  if (a === null) return '\u2013';
  if (typeof a === 'string') return `<code>${escapeHtml(JSON.stringify(a))}</code>`;
  // An answer set: its size and its first and last members.
  const q = (x: string) => escapeHtml(JSON.stringify(x));
  return a.length <= 3 ? `<code>${a.map(q).join(', ')}</code>` : `<code>${q(a[0]!)} \u2026 ${q(a[a.length - 1]!)}</code> (${a.length})`;
}

/** How the report describes a metric (metric_name from the JSON; absent: logit-diff, as before it existed). */
export function metricDescription(name: string | null): string {
  switch (name ?? 'logit-diff') {
    case 'logit-diff':
      return 'the logit difference, mean logit of the correct answers \u2212 mean logit of the incorrect ones (one each: logit(correct) \u2212 logit(incorrect))';
    case 'prob-diff':
      return 'the probability difference, p(correct answers) \u2212 p(incorrect answers)';
    case 'kl':
      return 'the KL divergence of the next-token distribution from the clean run\u2019s';
    default:
      return String(name);
  }
}

/** The metric a run's files used: the first that names one. */
export function runMetricName(run: RunData): string | null {
  for (const x of [...run.scans, ...run.prunes, ...run.evals]) if (x.metricName) return x.metricName;
  return null;
}

export function taskTableHtml(run: RunData): string {
  const task = run.task;
  if (!task) return '';
  const rows = task.prompts
    .map((p, i) => {
      const clean = p.clean !== null ? highlightNames(p.clean, promptNames(p)) : `<span class="tok">tokens ${escapeHtml(p.cleanTokens?.join(', ') ?? '')}</span>`;
      const corrupt = p.corrupt !== null ? `<span class="corrupt">corrupt: ${escapeHtml(p.corrupt)}</span>` : '';
      return `<tr><td class="num">${i + 1}</td><td class="prompt">${clean}${corrupt}</td><td>${showAnswer(p.correct)}</td><td>${showAnswer(p.incorrect)}</td></tr>`;
    })
    .join('\n');
  const hasIoS = task.prompts.some((p) => p.io !== null || p.s !== null);
  const key = hasIoS
    ? '<span class="legend-chip" style="background:var(--io)">IO: indirect object (the answer)</span><span class="legend-chip" style="background:var(--s)">S: subject (repeated name)</span>'
    : '<span class="legend-chip" style="background:var(--io)">correct answer</span><span class="legend-chip" style="background:var(--s)">incorrect answer</span>';
  return `<section id="task">
<h2>Task prompts</h2>
<p class="lead">The first ${task.prompts.length} of ${task.count} prompts in <code>${escapeHtml(task.file)}</code>. The metric is ${escapeHtml(metricDescription(runMetricName(run)))}, at the end of the clean prompt. ${key}</p>
<table><thead><tr><th>#</th><th>clean prompt (corrupt below)</th><th>correct</th><th>incorrect</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</section>`;
}

function ratio(value: number | null, base: number | null, lowerIsBetter: boolean): string {
  if (value === null || base === null || base === 0) return '';
  const r = value / base;
  if (Math.abs(r - 1) < 0.005) return '';
  const pct = (r - 1) * 100;
  const better = lowerIsBetter ? r < 1 : r > 1;
  return ` <span class="${better ? 'better' : 'worse'}">(${pct > 0 ? '+' : '\u2212'}${Math.abs(pct).toFixed(0)}%)</span>`;
}

export function evalTableHtml(evals: EvalData[]): string {
  if (evals.length === 0) return '';
  const base = baselineEval(evals);
  // Neuron counts and sizes, when the evals carry them (older eval files do not).
  const sizes = evals.some((e) => e.nNeurons !== null || e.fileBytes !== null);
  const rows = orderEvals(evals)
    .map((e) => {
      const b = e === base ? null : base;
      return `<tr><td>${escapeHtml(e.label)}${e.model && e.model !== e.label ? ` <span class="tok">${escapeHtml(e.model)}</span>` : ''}</td>
<td class="num">${e.nParams.toLocaleString('en-US')}${ratio(e.nParams, b?.nParams ?? null, true)}</td>
<td class="num">${e.nParamsNonEmbedding === null ? '\u2013' : e.nParamsNonEmbedding.toLocaleString('en-US') + ratio(e.nParamsNonEmbedding, b?.nParamsNonEmbedding ?? null, true)}</td>
<td class="num">${(e.accuracy * 100).toFixed(1)}%</td>
<td class="num">${fmt(e.metric)}${e.std === null ? '' : ` \u00b1 ${fmt(e.std)}`}${ratio(e.metric, b?.metric ?? null, false)}</td>
<td class="num">${e.msPerPrompt === null ? '\u2013' : fmt(e.msPerPrompt) + ratio(e.msPerPrompt, b?.msPerPrompt ?? null, true)}</td>${
        sizes
          ? `
<td class="num">${e.nNeurons === null ? '\u2013' : e.nNeurons.toLocaleString('en-US') + ratio(e.nNeurons, b?.nNeurons ?? null, true)}</td>
<td class="num">${e.fileBytes === null ? '\u2013' : humanBytes(e.fileBytes) + ratio(e.fileBytes, b?.fileBytes ?? null, true)}</td>
<td class="num">${e.onnxF16Bytes === null ? '\u2013' : humanBytes(e.onnxF16Bytes) + ratio(e.onnxF16Bytes, b?.onnxF16Bytes ?? null, true)}</td>`
          : ''
      }</tr>`;
    })
    .join('\n');
  const sizeHeads = sizes ? '<th>MLP neurons</th><th>files</th><th>ONNX (f16)</th>' : '';
  return `<table class="evals"><thead><tr><th>model</th><th>parameters</th><th>non-embedding</th><th>accuracy</th><th>metric \u00b1 std</th><th>ms / prompt</th>${sizeHeads}</tr></thead>
<tbody>
${rows}
</tbody></table>`;
}

export function keptTableHtml(model: CompressedModelData): string {
  const rows = model.layers
    .map((l) => `<tr><td>L${l.sourceLayer}</td><td>${l.heads.length === 0 ? '\u2013' : l.heads.map((h) => `H${h}`).join(' ')}</td><td>${mlpText(l, model.dMlp)}</td></tr>`)
    .join('\n');
  const vocab = model.vocabKept === null ? '' : ` Vocabulary: the ${model.vocabKept.toLocaleString('en-US')} tokens of the task.`;
  const size = (model.weightBytes === null ? '' : ` Weights file: ${humanBytes(model.weightBytes)}.`) + vocab;
  return `<div class="card"><p class="note"><code>${escapeHtml(model.dir)}</code>: the layers in the pruned model and what each keeps.${size}</p>
<table><thead><tr><th>layer</th><th>heads kept</th><th>MLP</th></tr></thead><tbody>
${rows}
</tbody></table></div>`;
}

function mlpText(l: KeptLayer, dMlp: number | null): string {
  if (!l.mlp) return 'removed';
  if (l.neurons === undefined) return 'kept';
  return `${l.neurons.toLocaleString('en-US')}${dMlp === null ? '' : ` of ${dMlp.toLocaleString('en-US')}`} neurons`;
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const SECTION_TEXT: Record<PageFigure['section'], { title: string; lead: string }> = {
  scores: {
    title: 'Component scores',
    lead: 'One heatmap per scan: each cell is a head (columns H0\u2026) or the layer\u2019s MLP (last column). Red: removing it lowers the metric (the task needs it); blue: removing it helps; white: no effect. Hover a cell for its value \u00b1 std over prompts.',
  },
  attention: {
    title: 'Attention patterns',
    lead: 'Where the heads that matter most look, on the task\u2019s first prompt: the heads with the largest |score| in the scan named under each figure. Hover a cell for its weight.',
  },
  curves: {
    title: 'Pruning curves',
    lead: 'Components are removed together, in each method\u2019s order. A curve that stays near the clean line while many components are gone means those components were not needed.',
  },
  scatter: {
    title: 'Approximate vs exact scores',
    lead: 'How well the cheap gradient-based scores predict the exact patching scores. Points on the dashed diagonal agree exactly; r near 1 means the ranking can be trusted.',
  },
  edges: {
    title: 'Edges and faithfulness',
    lead: 'Circuits as edges between components: which head or MLP output reaches which head\u2019s query, key or value input, which MLP, or the logits. The faithfulness curves show how much of the model\u2019s behaviour a ranking\u2019s top edges keep on their own.',
  },
  compressed: {
    title: 'Compressed model',
    lead: 'What the carved model kept, and how it compares with the original on the task.',
  },
};

export function pageHtml(input: PageInput): string {
  const { run } = input;
  const scan = run.scans[0];
  const model = scan?.model ?? run.evals.find((e) => e.model)?.model ?? null;
  const taskName = scan?.task ?? null;
  const nPrompts = scan?.nPrompts ?? run.task?.count ?? null;
  const meta = [
    model !== null ? `model <b>${escapeHtml(model)}</b>` : null,
    taskName !== null ? `task <b>${escapeHtml(taskName)}</b>` : null,
    nPrompts !== null ? `<b>${nPrompts}</b> prompts` : null,
    scan?.cleanMetric != null ? `clean metric <b>${escapeHtml(fmt(scan.cleanMetric))}</b>` : null,
    scan?.corruptMetric != null ? `corrupt metric <b>${escapeHtml(fmt(scan.corruptMetric))}</b>` : null,
  ].filter((s) => s !== null);

  const sections: string[] = [];
  for (const key of ['scores', 'attention', 'curves', 'scatter', 'edges'] as const) {
    const figs = input.figures.filter((f) => f.section === key);
    if (figs.length === 0) continue;
    sections.push(`<section id="${key}">
<h2>${SECTION_TEXT[key].title}</h2>
<p class="lead">${SECTION_TEXT[key].lead}</p>
<div class="grid">
${figs.map(figureHtml).join('\n')}
</div>
</section>`);
  }
  const compressedFigs = input.figures.filter((f) => f.section === 'compressed');
  if (compressedFigs.length > 0 || run.evals.length > 0 || run.compressed.length > 0) {
    sections.push(`<section id="compressed">
<h2>${SECTION_TEXT.compressed.title}</h2>
<p class="lead">${SECTION_TEXT.compressed.lead}</p>
${evalTableHtml(run.evals)}
<div class="grid" style="margin-top:14px">
${compressedFigs.map(figureHtml).join('\n')}
${run.compressed.map(keptTableHtml).join('\n')}
</div>
</section>`);
  }
  const task = taskTableHtml(run);
  if (task) sections.push(task);

  const warnings = run.warnings.length > 0 ? `<p class="warnings">Skipped: ${run.warnings.map(escapeHtml).join('; ')}</p>` : '';
  const inputs = [...run.scans.map((s) => s.file), ...run.prunes.map((p) => p.file), ...run.edgeScans.map((s) => s.file), ...run.edgePrunes.map((p) => p.file), ...run.faithfulness.map((f) => f.file), ...run.evals.map((e) => e.file), ...run.compressed.map((c) => c.dir), ...(run.task ? [run.task.file] : [])];
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(input.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(input.title)}</h1>
<div class="meta">${meta.join(' \u00b7 ')}</div>
</header>
<main>
${sections.join('\n')}
</main>
<footer>
${warnings}
<p>Read from ${inputs.map((f) => `<code>${escapeHtml(f)}</code>`).join(', ')}. Generated by carve on ${escapeHtml(input.generated)}. The metric is ${escapeHtml(metricDescription(runMetricName(input.run)))}, averaged over prompts; \u00b1 is one standard deviation over prompts.</p>
</footer>
<div id="tip" hidden></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
