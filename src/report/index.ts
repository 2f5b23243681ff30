/**
 * `carve report`: the run directory's outputs turned into figures and one self-contained page.
 */
import { writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { loadRun, type RunData } from './load-run.ts';
import { attentionSpec, evalSpec, heatmapSpec, keptSpec, pearson, pruneSpec, scatterData, scatterPairs, scatterSpec, seriesLabels, type VlSpec } from './specs.ts';
import { reportAttention, type AttentionOptions, type HeadAttention } from './attention.ts';
import { renderSvg, svgToPng, findFont } from './render.ts';
import { escapeHtml, pageHtml, type PageFigure } from './html.ts';

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

