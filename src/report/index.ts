/**
 * `carve report`: the run directory's outputs turned into figures and one self-contained page.
 */
import { writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { loadRun, type RunData } from './load-run.ts';
import { attentionSpec, evalSpec, fmt, heatmapSpec, keptSpec, pearson, pruneSpec, scatterData, scatterPairs, scatterSpec, seriesLabels, type VlSpec } from './specs.ts';
import { reportAttention, type AttentionOptions, type HeadAttention } from './attention.ts';
import { renderSvg, svgToPng, findFont } from './render.ts';
import { escapeHtml, pageHtml, type PageFigure } from './html.ts';
import { circuitSpec, faithfulnessSpec, type CircuitEdge } from './edge-specs.ts';

/** An edge scan's circuit figure draws its this many highest-|score| edges. */
export const CIRCUIT_TOP_EDGES = 40;

export { loadRun } from './load-run.ts';
export type { RunData } from './load-run.ts';

export const FIGURES_DIR = 'figures';

export interface ReportResult {
  /** Path of report.html. */
  html: string;
  /** Paths of every SVG and PNG written. */
  figures: string[];
  /** Files skipped as unreadable, and notes such as a missing font. */
  warnings: string[];
}

interface PlannedFigure {
  name: string;
  section: PageFigure['section'];
  spec: VlSpec;
  caption: string;
}

function slug(s: string): string {
  return s.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase() || 'x';
}

/** Distinct names even when two inputs slug alike. */
function uniqueNames(figs: PlannedFigure[]): void {
  const seen = new Map<string, number>();
  for (const f of figs) {
    const n = seen.get(f.name) ?? 0;
    seen.set(f.name, n + 1);
    if (n > 0) f.name = `${f.name}-${n + 1}`;
  }
}

const METHOD_RANK: Record<string, number> = { exact: 0, attribution: 1, ig: 2 };

/** Grouped by ablation with the exact scan first, so each approximation sits beside its reference. */
function orderScans(scans: RunData['scans']): RunData['scans'] {
  return [...scans].sort((a, b) => a.ablation.localeCompare(b.ablation) || (METHOD_RANK[a.method] ?? 9) - (METHOD_RANK[b.method] ?? 9) || a.file.localeCompare(b.file));
}

/** Which figures a run supports, each with its caption. Pure: exposed for tests. */
export function planFigures(run: RunData, attention: HeadAttention[] = []): PlannedFigure[] {
  const figs: PlannedFigure[] = [];
  for (const scan of orderScans(run.scans)) {
    figs.push({
      name: `heatmap-${slug(scan.file)}`,
      section: 'scores',
      spec: heatmapSpec(scan),
      caption: `From <code>${escapeHtml(scan.file)}</code>. Each cell: the mean change in the metric when that component is ${escapeHtml(scan.method === 'exact' ? 'replaced' : 'replaced (estimated by ' + scan.method + ')')} under ${escapeHtml(scan.ablation)} ablation. Colours are centred on 0 and symmetric, so equal shades mean equal magnitudes.`,
    });
  }
  for (const a of attention) {
    figs.push({
      name: `attention-${slug(a.name)}`,
      section: 'attention',
      spec: attentionSpec(a),
      caption: `Head ${escapeHtml(a.name)} (score ${escapeHtml(a.score.toFixed(3))} in <code>${escapeHtml(a.scanFile)}</code>) on the first prompt of <code>${escapeHtml(a.taskFile)}</code>. Row: the token attending (query); column: the token it attends to (key); darker means more weight. Each row sums to 1.`,
    });
  }
  if (run.prunes.length > 0) {
    const labels = seriesLabels(run.prunes);
    figs.push({
      name: 'pruning-curves',
      section: 'curves',
      spec: pruneSpec(run.prunes, run.scans),
      caption: `x: number of components removed together; y: the task metric with them replaced, mean over prompts, with a \u00b11 std band. Dashed lines: the clean model and the corrupt prompts. Series: ${labels.map(escapeHtml).join('; ')}.`,
    });
  }
  for (const [exact, approx] of scatterPairs(run.scans)) {
    const pts = scatterData(exact, approx);
    const r = pearson(pts.map((p) => p.exact), pts.map((p) => p.approx));
    figs.push({
      name: `scatter-${slug(approx.file)}-vs-${slug(exact.file)}`,
      section: 'scatter',
      spec: scatterSpec(exact, approx),
      caption: `Each point is one component: x its exact score (<code>${escapeHtml(exact.file)}</code>), y its ${escapeHtml(approx.method)} score (<code>${escapeHtml(approx.file)}</code>). Pearson r = ${r === null ? 'n/a' : r.toFixed(3)}; points far from the diagonal are where the approximation misleads.`,
    });
  }
  for (const prune of run.edgePrunes) {
    // ACDC keeps edges without scores; an edge scan of the same ablation gives them widths.
    const scan = run.edgeScans.find((s) => s.ablation === prune.ablation && s.method === 'exact') ?? run.edgeScans.find((s) => s.ablation === prune.ablation);
    const score = new Map(scan?.edges.map((e) => [e.name, e.score]) ?? []);
    const edges: CircuitEdge[] = prune.kept.map((e) => ({ sender: e.sender, receiver: e.receiver, score: score.get(e.name) ?? null }));
    figs.push({
      name: `circuit-${slug(prune.file)}`,
      section: 'edges',
      spec: circuitSpec(edges, 'Circuit found by ACDC over edges', `${prune.kept.length}${prune.nEdges === null ? '' : ` of ${prune.nEdges}`} edges kept, threshold ${prune.threshold ?? '?'}`),
      caption: `From <code>${escapeHtml(prune.file)}</code>: the edges ACDC kept under ${escapeHtml(prune.ablation)} ablation${prune.finalMetric === null ? '' : `, metric ${escapeHtml(fmt(prune.finalMetric))} with every other edge ablated`}${prune.cleanMetric === null ? '' : ` (clean ${escapeHtml(fmt(prune.cleanMetric))})`}. Columns are layers (each layer's heads, then its MLP); colour says which input of the receiving component the edge feeds${scan ? `; width follows |score| in <code>${escapeHtml(scan.file)}</code>` : ''}.`,
    });
  }
  for (const scan of run.edgeScans) {
    const top = [...scan.edges].sort((a, b) => Math.abs(b.score) - Math.abs(a.score)).slice(0, CIRCUIT_TOP_EDGES);
    figs.push({
      name: `circuit-${slug(scan.file)}`,
      section: 'edges',
      spec: circuitSpec(
        top.map((e) => ({ sender: e.sender, receiver: e.receiver, score: e.score })),
        `Top ${top.length} edges by |score|`,
        `${scan.method} scores under ${scan.ablation} ablation, ${scan.edges.length} edges in all`,
      ),
      caption: `From <code>${escapeHtml(scan.file)}</code>: the ${top.length} edges whose ${escapeHtml(scan.method)} score has the largest magnitude; width follows |score|, colour the input of the receiving component it feeds (q, k, v, MLP or logits). Hover an edge for its score.`,
    });
  }
  if (run.faithfulness.length > 0) {
    figs.push({
      name: 'faithfulness',
      section: 'edges',
      spec: faithfulnessSpec(run.faithfulness),
      caption: `From ${run.faithfulness.map((f) => `<code>${escapeHtml(f.file)}</code>`).join(', ')}. For each fraction, the highest-|score| edges (or components) are kept and the rest ablated${run.faithfulness.some((f) => f.variant === 'mib') ? ' (MIB: then pruned to the edges on a path from the input to the logits)' : ''}. Higher CPR and lower CMD mean a ranking whose small circuits already behave like the model.`,
    });
  }
  for (const model of run.compressed) {
    figs.push({
      name: `kept-${slug(model.dir)}`,
      section: 'compressed',
      spec: keptSpec(model, run.scans),
      caption: `The original model\u2019s layer \u00d7 head grid (last column: MLPs); green cells survive in <code>${escapeHtml(model.dir)}</code>, grey ones were carved away.`,
    });
  }
  if (run.evals.length > 0) {
    figs.push({
      name: 'evaluation',
      section: 'compressed',
      spec: evalSpec(run.evals),
      caption: `From ${run.evals.map((e) => `<code>${escapeHtml(e.file)}</code>`).join(', ')}. Smaller parameters and ms per prompt are better; accuracy is the share of prompts where the correct name outscores the incorrect one.`,
    });
  }
  uniqueNames(figs);
  return figs;
}

export async function writeReport(runDir: string, opts: AttentionOptions = {}): Promise<ReportResult> {
  const run = loadRun(runDir);
  const attention = await reportAttention(run, opts);
  const planned = planFigures(run, attention.heads);
  const warnings = [...run.warnings, ...attention.warnings];
  if (findFont() === null) warnings.push('no font found: PNG figures are drawn without text (install fonts-dejavu-core)');

  const rendered: { fig: PlannedFigure; svg: string; png: Buffer }[] = [];
  for (const fig of planned) {
    const svg = await renderSvg(fig.spec);
    rendered.push({ fig, svg, png: svgToPng(svg) });
  }

  // Replaced as a whole, so figures from an earlier report with other inputs do not linger.
  const figuresDir = join(runDir, FIGURES_DIR);
  writeDirAtomic(figuresDir, (tmp) => {
    for (const r of rendered) {
      writeFileSync(join(tmp, `${r.fig.name}.svg`), r.svg);
      writeFileSync(join(tmp, `${r.fig.name}.png`), r.png);
    }
  });

  const page = pageHtml({
    run,
    title: `carve report: ${basename(resolve(runDir))}`,
    generated: new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
    figures: rendered.map((r) => ({
      id: r.fig.name,
      section: r.fig.section,
      svg: r.svg,
      svgFile: `${FIGURES_DIR}/${r.fig.name}.svg`,
      pngFile: `${FIGURES_DIR}/${r.fig.name}.png`,
      caption: r.fig.caption,
    })),
  });
  const html = join(runDir, 'report.html');
  writeFileAtomic(html, page);
  return {
    html,
    figures: rendered.flatMap((r) => [join(figuresDir, `${r.fig.name}.svg`), join(figuresDir, `${r.fig.name}.png`)]),
    warnings,
  };
}

