/**
 * Faithfulness curves (SPEC "Edges", `carve faithfulness`), the measures of the MIB benchmark on
 * nominal fractions: for each fraction f, keep the floor(f·N) edges (or components) with the
 * highest |score| — ties go to the earlier one in canonical order — and ablate the rest; the
 * metric, averaged over prompts, gives
 *
 *     faithfulness(f) = (m(circuit) − m(nothing kept)) / (m(everything kept) − m(nothing kept))
 *
 * CPR is the area under faithfulness over f and CMD the area of |1 − faithfulness|, both by
 * trapezoids over the given fractions.
 *
 * `variant: 'mib'` is MIB's own evaluation instead (mib-faithfulness.ts): two rankings, pruning of
 * dead edges, and CPR and CMD each from the ranking MIB's leaderboard takes them from.
 */
import type { HookedModel } from '../model/hooked.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { mean } from '../task/metrics.ts';
import { fail } from '../util/errors.ts';
import { buildEdgeGraph } from './edge-graph.ts';
import { computeEdgeReplacements } from './edge-replacements.ts';
import { EdgeEvaluator } from './edge-evaluate.ts';
import { ExactEvaluator } from './evaluate.ts';
import { computeReplacements, type Ablation, type MeanOver } from './replacements.ts';
import { listComponents } from './components.ts';
import { edgesAmongKept, helpfulSign, liveEdges, topK, type Ranking } from './mib-faithfulness.ts';

export const DEFAULT_FRACTIONS: readonly number[] = [0, 0.001, 0.01, 0.1, 0.5, 1];

export type FaithfulnessLevel = 'edges' | 'components';

export type FaithfulnessVariant = 'nominal' | 'mib';
export const FAITHFULNESS_VARIANTS: readonly FaithfulnessVariant[] = ['nominal', 'mib'];

export interface FaithfulnessPoint {
  fraction: number;
  /** Edges (level edges) or components (level components) kept. */
  n_edges?: number;
  n_components?: number;
  /** mib: the edges left after pruning (components: MIB's count of the edges among them). */
  n_edges_kept?: number;
  metric: number;
  faithfulness: number;
}

export interface FaithfulnessResult {
  level: FaithfulnessLevel;
  model: string;
  task: string;
  /** The scan the ranking came from: its method (and the file, when the CLI knows it). */
  scores_method?: string;
  scores_file?: string;
  ablation: Ablation;
  mean_over?: MeanOver;
  metric_name: MetricName;
  n_prompts: number;
  n_edges?: number;
  n_components?: number;
  /** m(everything kept) and m(nothing kept). */
  metric_all: number;
  metric_none: number;
  points: FaithfulnessPoint[];
  cpr: number;
  cmd: number;
}

/**
 * MIB's variant: `points` ranks by |score| (the curve CMD comes from), `points_signed` by signed
 * score, helpful first (the curve CPR comes from); `areas` gives both measures of both curves.
 */
export interface MibFaithfulnessResult extends FaithfulnessResult {
  variant: 'mib';
  /** The signed ranking's key: −score (a higher-is-better metric's scores) or +score (kl). */
  signed_ranking: '-score' | '+score';
  points_signed: FaithfulnessPoint[];
  areas: Record<Ranking, { cpr: number; cmd: number }>;
}

/** Fractions must lie in [0, 1] and strictly increase; `where` names the flag or file. */
export function checkFractions(fractions: readonly number[], where: string): void {
  if (fractions.length < 2) fail(`${where}: at least two fractions are needed for an area, got ${fractions.length}`);
  fractions.forEach((f, i) => {
    if (!Number.isFinite(f) || f < 0 || f > 1) fail(`${where}: fraction ${f} is outside [0, 1]`);
    if (i > 0 && f <= fractions[i - 1]) fail(`${where}: fractions must increase (${fractions[i - 1]} then ${f})`);
  });
}

/** Trapezoid areas under faithfulness (CPR) and of |1 − faithfulness| (CMD) over the fractions. */
export function curveAreas(fractions: readonly number[], faithfulness: readonly number[]): { cpr: number; cmd: number } {
  let cpr = 0;
  let cmd = 0;
  for (let i = 1; i < fractions.length; i++) {
    const w = fractions[i] - fractions[i - 1];
    cpr += (w * (faithfulness[i] + faithfulness[i - 1])) / 2;
    cmd += (w * (Math.abs(1 - faithfulness[i]) + Math.abs(1 - faithfulness[i - 1]))) / 2;
  }
  return { cpr, cmd };
}

export interface FaithfulnessOptions {
  level: FaithfulnessLevel;
  /** Scores in canonical order (every edge of the model, or every component). */
  scores: readonly number[];
  fractions: readonly number[];
  ablation: Ablation;
  meanOver?: MeanOver;
  metric?: MetricName;
  batchSize?: number;
  scoresMethod?: string;
  /** The metric the scores were computed under (the scan's), which says what sign helps; default `metric`. */
  scoresMetric?: MetricName;
  /** Default nominal. */
  variant?: FaithfulnessVariant;
  onProgress?: (done: number, total: number) => void;
}

/** The metric under a batch of removal sets (indices of edges, or of components), and the clean metric. */
interface Evaluation {
  clean: Float64Array;
  evaluate(removedSets: number[][], onProgress?: (done: number, total: number) => void): Promise<Float64Array[]>;
}

/** Removal sets of edges, under the options' ablation and metric. */
async function edgeEvaluation(model: HookedModel, task: Task, opts: FaithfulnessOptions, metric: MetricName): Promise<Evaluation> {
  const batchSize = opts.batchSize ?? 64;
  const repl = await computeEdgeReplacements(model, task, opts.ablation, opts.meanOver ?? 'clean', batchSize, metric);
  const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
  return { clean: ev.clean, evaluate: (sets, onProgress) => ev.evaluate(sets.map((edges) => ({ edges })), onProgress) };
}

async function prepareEvaluation(model: HookedModel, task: Task, opts: FaithfulnessOptions, metric: MetricName): Promise<Evaluation> {
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const N = opts.scores.length;
  if (opts.level === 'edges') {
    const edges = buildEdgeGraph(model.config).edges.length;
    if (edges !== N) throw new Error(`${N} scores for ${edges} edges`);
    return edgeEvaluation(model, task, opts, metric);
  }
  const comps = listComponents(model.config, 'all');
  if (comps.length !== N) throw new Error(`${N} scores for ${comps.length} components`);
  const repl = await computeReplacements(model, task, opts.ablation, meanOver, batchSize);
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize, metric });
  return {
    clean: ev.clean,
    evaluate: (sets, onProgress) =>
      ev.evaluate(
        sets.map((ids) => ids.map((i) => comps[i])),
        onProgress,
      ),
  };
}

/** The metric with every edge ablated (the components level's "nothing kept" in MIB's terms). */
async function everyEdgeAblated(model: HookedModel, task: Task, opts: FaithfulnessOptions, metric: MetricName): Promise<number> {
  const ev = await edgeEvaluation(model, task, opts, metric);
  const [m] = await ev.evaluate([buildEdgeGraph(model.config).edges.map((e) => e.index)]);
  return mean(m);
}

function removedFrom(keep: readonly boolean[]): number[] {
  return keep.flatMap((kept, i) => (kept ? [] : [i]));
}

export async function faithfulness(model: HookedModel, task: Task, opts: FaithfulnessOptions): Promise<FaithfulnessResult> {
  if (opts.variant === 'mib') return mibFaithfulness(model, task, opts);
  checkFractions(opts.fractions, '--fractions');
  const metric = opts.metric ?? 'logit-diff';
  const N = opts.scores.length;
  const counts = opts.fractions.map((f) => Math.floor(f * N));
  // Each fraction's configuration, plus "nothing kept" for the normalisation.
  const removedSets = [...counts, 0].map((k) => removedFrom(topK(opts.scores, k, 'absolute')));
  const ev = await prepareEvaluation(model, task, opts, metric);
  const metrics = await ev.evaluate(removedSets, opts.onProgress);
  const mAll = metric === 'kl' ? 0 : mean(ev.clean);
  const mNone = mean(metrics[metrics.length - 1]);
  const denom = mAll - mNone;
  const points: FaithfulnessPoint[] = opts.fractions.map((fraction, i) => {
    const m = mean(metrics[i]);
    const kept = opts.level === 'edges' ? { n_edges: counts[i] } : { n_components: counts[i] };
    return { fraction, ...kept, metric: m, faithfulness: denom === 0 ? NaN : (m - mNone) / denom };
  });
  const { cpr, cmd } = curveAreas(
    opts.fractions,
    points.map((p) => p.faithfulness),
  );
  return header(model, task, opts, metric, mAll, mNone, { points, cpr, cmd });
}

/** The fields every variant shares, in the nominal variant's key order. */
function header<T extends { points: FaithfulnessPoint[]; cpr: number; cmd: number }>(
  model: HookedModel,
  task: Task,
  opts: FaithfulnessOptions,
  metric: MetricName,
  mAll: number,
  mNone: number,
  curve: T,
): FaithfulnessResult & T {
  const result = {
    level: opts.level,
    model: model.name,
    task: task.name,
    ablation: opts.ablation,
    metric_name: metric,
    n_prompts: task.pairs.length,
    metric_all: mAll,
    metric_none: mNone,
    ...curve,
  } as FaithfulnessResult & T;
  if (opts.scoresMethod) result.scores_method = opts.scoresMethod;
  if (opts.ablation === 'mean') result.mean_over = opts.meanOver ?? 'clean';
  if (opts.level === 'edges') result.n_edges = opts.scores.length;
  else result.n_components = opts.scores.length;
  return result;
}

/**
 * MIB's own evaluation (mib-faithfulness.ts): at each size the top floor(p·N) by |score| and,
 * separately, by signed score (helpful first), pruned to the edges on an input-to-logits path;
 * CPR is the area under the signed ranking's curve and CMD the area of |1 − faithfulness| under
 * the |score| ranking's, both by trapezoids over the nominal fractions, as MIB's leaderboard
 * takes them. Components: the same rankings, no pruning (none applies), MIB's edge count beside,
 * and "nothing kept" is every edge ablated, as in MIB.
 */
async function mibFaithfulness(model: HookedModel, task: Task, opts: FaithfulnessOptions): Promise<MibFaithfulnessResult> {
  checkFractions(opts.fractions, '--fractions');
  const metric = opts.metric ?? 'logit-diff';
  const cfg = model.config;
  const graph = buildEdgeGraph(cfg);
  const N = opts.scores.length;
  const sign = helpfulSign(opts.scoresMetric ?? metric);
  const counts = opts.fractions.map((f) => Math.floor(f * N));
  const rankings: Ranking[] = ['absolute', 'signed'];
  // Per ranking and fraction: what is kept (indices into the scores), and MIB's edge count.
  const plans = rankings.map((ranking) =>
    counts.map((k) => {
      const selected = topK(opts.scores, k, ranking, sign);
      if (opts.level === 'edges') {
        const live = liveEdges(cfg, graph, selected);
        return { keep: live, edgesKept: live.filter(Boolean).length };
      }
      return { keep: selected, edgesKept: edgesAmongKept(cfg, graph, [false, ...selected]) };
    }),
  );
  // Identical circuits (everything kept by both rankings, say) are evaluated once; "nothing kept" last.
  const unique = new Map<string, number>();
  const sets: number[][] = [];
  const slot = (removed: number[]): number => {
    const key = removed.join(',');
    if (!unique.has(key)) {
      unique.set(key, sets.length);
      sets.push(removed);
    }
    return unique.get(key)!;
  };
  const at = plans.map((list) => list.map((p) => slot(removedFrom(p.keep))));
  // MIB's "nothing kept" is its empty edge graph at every level: with no edges even the input's
  // direct path to the logits is ablated, which removing every component leaves alone.
  const none = opts.level === 'edges' ? slot(opts.scores.map((_, i) => i)) : -1;
  const ev = await prepareEvaluation(model, task, opts, metric);
  const metrics = (await ev.evaluate(sets, opts.onProgress)).map(mean);
  const mAll = metric === 'kl' ? 0 : mean(ev.clean);
  const mNone = none >= 0 ? metrics[none] : await everyEdgeAblated(model, task, opts, metric);
  const denom = mAll - mNone;
  const curves = plans.map((list, r) =>
    list.map((p, i): FaithfulnessPoint => {
      const m = metrics[at[r][i]];
      const kept = opts.level === 'edges' ? { n_edges: counts[i] } : { n_components: counts[i] };
      return { fraction: opts.fractions[i], ...kept, n_edges_kept: p.edgesKept, metric: m, faithfulness: denom === 0 ? NaN : (m - mNone) / denom };
    }),
  );
  const areas = (points: FaithfulnessPoint[]) =>
    curveAreas(
      opts.fractions,
      points.map((p) => p.faithfulness),
    );
  const absolute = areas(curves[0]);
  const signed = areas(curves[1]);
  return {
    variant: 'mib',
    ...header(model, task, opts, metric, mAll, mNone, {
      signed_ranking: sign > 0 ? ('+score' as const) : ('-score' as const),
      points: curves[0],
      points_signed: curves[1],
      cpr: signed.cpr,
      cmd: absolute.cmd,
      areas: { absolute, signed },
    }),
  };
}
