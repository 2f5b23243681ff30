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

export const DEFAULT_FRACTIONS: readonly number[] = [0, 0.001, 0.01, 0.1, 0.5, 1];

export type FaithfulnessLevel = 'edges' | 'components';

export interface FaithfulnessPoint {
  fraction: number;
  /** Edges (level edges) or components (level components) kept. */
  n_edges?: number;
  n_components?: number;
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

/** Fractions must lie in [0, 1] and strictly increase; `where` names the flag or file. */
export function checkFractions(fractions: readonly number[], where: string): void {
  if (fractions.length < 2) fail(`${where}: at least two fractions are needed for an area, got ${fractions.length}`);
  fractions.forEach((f, i) => {
    if (!Number.isFinite(f) || f < 0 || f > 1) fail(`${where}: fraction ${f} is outside [0, 1]`);
    if (i > 0 && f <= fractions[i - 1]) fail(`${where}: fractions must increase (${fractions[i - 1]} then ${f})`);
  });
}

/**
 * Indices of the k highest |score|s, ties to the lower index (canonical order). Returns a
 * membership array.
 */
export function topByMagnitude(scores: readonly number[], k: number): boolean[] {
  const order = scores.map((_, i) => i).sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a]) || a - b);
  const keep = new Array<boolean>(scores.length).fill(false);
  for (let i = 0; i < k; i++) keep[order[i]] = true;
  return keep;
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
  onProgress?: (done: number, total: number) => void;
}

export async function faithfulness(model: HookedModel, task: Task, opts: FaithfulnessOptions): Promise<FaithfulnessResult> {
  checkFractions(opts.fractions, '--fractions');
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const metric = opts.metric ?? 'logit-diff';
  const N = opts.scores.length;
  const counts = opts.fractions.map((f) => Math.floor(f * N));
  // Each fraction's configuration, plus "nothing kept" for the normalisation.
  const removedSets = [...counts, 0].map((k) => {
    const keep = topByMagnitude(opts.scores, k);
    return keep.flatMap((kept, i) => (kept ? [] : [i]));
  });
  let metrics: Float64Array[];
  let clean: Float64Array;
  if (opts.level === 'edges') {
    const graph = buildEdgeGraph(model.config);
    if (graph.edges.length !== N) throw new Error(`${N} scores for ${graph.edges.length} edges`);
    const repl = await computeEdgeReplacements(model, task, opts.ablation, meanOver, batchSize, metric);
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
    clean = ev.clean;
    metrics = await ev.evaluate(removedSets.map((edges) => ({ edges })), opts.onProgress);
  } else {
    const comps = listComponents(model.config, 'all');
    if (comps.length !== N) throw new Error(`${N} scores for ${comps.length} components`);
    const repl = await computeReplacements(model, task, opts.ablation, meanOver, batchSize);
    const ev = await ExactEvaluator.create(model, task, repl, { batchSize, metric });
    clean = ev.clean;
    metrics = await ev.evaluate(
      removedSets.map((ids) => ids.map((i) => comps[i])),
      opts.onProgress,
    );
  }
  const mAll = metric === 'kl' ? 0 : mean(clean);
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
  const result: FaithfulnessResult = {
    level: opts.level,
    model: model.name,
    task: task.name,
    ablation: opts.ablation,
    metric_name: metric,
    n_prompts: task.pairs.length,
    metric_all: mAll,
    metric_none: mNone,
    points,
    cpr,
    cmd,
  };
  if (opts.scoresMethod) result.scores_method = opts.scoresMethod;
  if (opts.ablation === 'mean') result.mean_over = meanOver;
  if (opts.level === 'edges') result.n_edges = N;
  else result.n_components = N;
  return result;
}
