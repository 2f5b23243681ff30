/**
 * ACDC over edges (Conmy et al. 2023; `carve prune --order acdc --level edges`): visit receivers in
 * reverse topological order — logits, then the last layer's MLP, its value, key and query inputs
 * (last head first), and so on down to layer 0 — and for each receiver its incoming edges from the
 * latest sender to the earliest. An edge is removed for good when, with every edge removed so far
 * also ablated, removing it makes the metric worse by less than the threshold T: for logit-diff
 * and prob-diff, current − new < T; for kl (from the clean run), new − current < T. After a
 * removal the current value is the new one.
 *
 * Each decision needs the metric of (removed so far) ∪ {edge}. carve evaluates several upcoming
 * edges at once, speculating that they will all be removed: row j of a batch has the next j + 1
 * edges ablated on top of the removals so far. Decisions are then read in order; at the first edge
 * kept the rest of the batch is discarded and the next batch starts after it. Every decision uses
 * exactly the metric the one-at-a-time algorithm would compute, so the result does not depend on
 * the batch width (which grows while edges keep being removed, and shrinks after a kept one).
 */
import type { HookedModel } from '../model/hooked.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import { fail } from '../util/errors.ts';
import type { Ablation, MeanOver } from './replacements.ts';
import { buildEdgeGraph } from './edge-graph.ts';
import { computeEdgeReplacements } from './edge-replacements.ts';
import { EdgeEvaluator } from './edge-evaluate.ts';

export const DEFAULT_EDGE_ACDC_THRESHOLD = 0.05;
/** The most upcoming edges evaluated together. */
export const DEFAULT_ACDC_WIDTH = 16;

export interface EdgeAcdcOptions {
  threshold?: number;
  ablation: Ablation;
  meanOver?: MeanOver;
  metric?: MetricName;
  batchSize?: number;
  /** Most speculative candidates per batch (default 16). Does not change the result. */
  width?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EdgeAcdcStep {
  removed: number;
  edge: string | null;
  metric: number;
  std: number;
}

export interface EdgeAcdcResult {
  order: 'acdc';
  level: 'edges';
  method: 'exact';
  ablation: Ablation;
  mean_over?: MeanOver;
  model: string;
  task: string;
  metric_name: MetricName;
  threshold: number;
  n_prompts: number;
  clean_metric: number;
  clean_std: number;
  n_edges: number;
  n_kept: number;
  /** Edges kept, in canonical order. */
  kept: string[];
  /** Step k: the first k removed edges ablated together; its metric over the prompts. */
  steps: EdgeAcdcStep[];
  /** Model evaluations made (rows of prompts), for the record. */
  evaluations: number;
}

/** Edge indices in ACDC's visiting order: receivers last to first, each one's senders last to first. */
export function acdcEdgeOrder(graph: ReturnType<typeof buildEdgeGraph>): number[] {
  const out: number[] = [];
  for (let r = graph.receivers.length - 1; r >= 0; r--) {
    const row = graph.edgeAt[r];
    for (let s = row.length - 1; s >= 0; s--) out.push(row[s]);
  }
  return out;
}

export async function edgeAcdc(model: HookedModel, task: Task, opts: EdgeAcdcOptions): Promise<EdgeAcdcResult> {
  const threshold = opts.threshold ?? DEFAULT_EDGE_ACDC_THRESHOLD;
  if (!Number.isFinite(threshold)) fail(`--threshold: expected a finite number, got ${threshold}`);
  const metric = opts.metric ?? 'logit-diff';
  const batchSize = opts.batchSize ?? 64;
  const maxWidth = Math.max(1, opts.width ?? DEFAULT_ACDC_WIDTH);
  const meanOver = opts.meanOver ?? 'clean';
  const repl = await computeEdgeReplacements(model, task, opts.ablation, meanOver, batchSize, metric);
  const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
  const graph = ev.graph;
  const order = acdcEdgeOrder(graph);
  const worse = (current: number, next: number) => (metric === 'kl' ? next - current : current - next);

  const removed: number[] = [];
  let base = ev.base(removed);
  let currentPer: Float64Array = Float64Array.from(ev.clean);
  let current = mean(currentPer);
  const steps: EdgeAcdcStep[] = [{ removed: 0, edge: null, metric: current, std: std(currentPer) }];
  let width = Math.min(2, maxWidth);
  let evaluations = 0;
  let i = 0;
  while (i < order.length) {
    const batch = order.slice(i, i + width);
    const configs = batch.map((_, j) => ({ edges: batch.slice(0, j + 1), base }));
    const per = await ev.evaluate(configs);
    evaluations += batch.length * task.pairs.length;
    let accepted = 0;
    for (let j = 0; j < batch.length; j++) {
      const next = mean(per[j]);
      if (worse(current, next) < threshold) {
        accepted++;
        current = next;
        currentPer = per[j];
        removed.push(batch[j]);
        steps.push({ removed: removed.length, edge: graph.edges[batch[j]].name, metric: next, std: std(per[j]) });
      } else {
        break;
      }
    }
    // All removed: speculate further next time; a kept edge ends the batch and narrows it.
    i += accepted === batch.length ? batch.length : accepted + 1;
    width = accepted === batch.length ? Math.min(maxWidth, width * 2) : Math.max(1, Math.ceil(width / 2));
    if (accepted > 0) base = ev.base(removed);
    opts.onProgress?.(i, order.length);
  }
  const removedSet = new Set(removed);
  const kept = graph.edges.filter((e) => !removedSet.has(e.index)).map((e) => e.name);
  const result: EdgeAcdcResult = {
    order: 'acdc',
    level: 'edges',
    method: 'exact',
    ablation: opts.ablation,
    model: model.name,
    task: task.name,
    metric_name: metric,
    threshold,
    n_prompts: task.pairs.length,
    clean_metric: mean(ev.clean),
    clean_std: std(ev.clean),
    n_edges: graph.edges.length,
    n_kept: kept.length,
    kept,
    steps,
    evaluations,
  };
  if (opts.ablation === 'mean') result.mean_over = meanOver;
  return result;
}
