/**
 * `carve scan --level edges`: a score for every edge of the model (SPEC "Edges").
 *  - exact: mean over prompts of (metric with the edge ablated) − (clean metric), one configuration
 *    per edge through the batched edge evaluator;
 *  - attribution: EAP; ig: EAP-IG-inputs (edge-attribution.ts documents both).
 */
import type { HookedModel } from '../model/hooked.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import type { Ablation, MeanOver } from './replacements.ts';
import { buildEdgeGraph, type EdgeGraph } from './edge-graph.ts';
import { computeEdgeReplacements } from './edge-replacements.ts';
import { EdgeEvaluator } from './edge-evaluate.ts';
import { DEFAULT_IG_STEPS, edgeAttribution } from './edge-attribution.ts';
import { corruptMetrics, type ScanMethod } from './scan.ts';
import { fail } from '../util/errors.ts';

export interface EdgeScore {
  name: string;
  sender: string;
  receiver: string;
  score: number;
  std: number;
}

export interface EdgeScanResult {
  model: string;
  task: string;
  level: 'edges';
  ablation: Ablation;
  method: ScanMethod;
  metric_name: MetricName;
  n_prompts: number;
  clean_metric: number;
  clean_std: number;
  corrupt_metric: number;
  mean_over?: MeanOver;
  steps?: number;
  /** ig: the integration path. */
  ig_path?: 'inputs';
  n_edges: number;
  edges: EdgeScore[];
}

export interface EdgeScanOptions {
  ablation: Ablation;
  method: ScanMethod;
  meanOver?: MeanOver;
  metric?: MetricName;
  steps?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number, label: string) => void;
  /**
   * exact: called once, early (after two batches), with the projected total seconds; throwing from
   * it stops the scan (the CLI asks for --yes above 30 minutes).
   */
  onEstimate?: (seconds: number, edges: number) => void;
}

/** Exact scores of the given edges (default: all), per edge and prompt, and the evaluator used. */
export async function exactEdgeScores(
  ev: EdgeEvaluator,
  edges: number[],
  opts: Pick<EdgeScanOptions, 'onProgress' | 'onEstimate'> = {},
): Promise<Float64Array[]> {
  const L = ev.model.config.layers.length;
  const N = ev.task.pairs.length;
  // Projected cost: rows × layers run (+1 for the readout), timed on the first batches.
  const workOf = (e: number) => L - ev.graph.edges[e].receiver.pos + 1;
  const totalWork = edges.reduce((s, e) => s + workOf(e), 0) * N;
  let chunks = 0;
  const metrics = await ev.evaluate(
    edges.map((e) => ({ edges: [e] })),
    (done, total) => opts.onProgress?.(done, total, 'exact'),
    (info) => {
      // The first batch includes compiling its graph; the second gives the steady rate.
      if (++chunks !== 2 || !opts.onEstimate) return;
      opts.onEstimate((info.seconds / (info.rows * (L - info.start + 1))) * totalWork, edges.length);
    },
  );
  return metrics.map((m) => m.map((v, p) => v - ev.clean[p]));
}

export async function scanEdges(model: HookedModel, task: Task, opts: EdgeScanOptions): Promise<EdgeScanResult> {
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const metric = opts.metric ?? 'logit-diff';
  if (metric === 'kl' && opts.method !== 'exact') fail(`--metric kl: the ${opts.method} method needs a gradient, and KL's is zero at the clean run; use --method exact or another metric`);
  const graph: EdgeGraph = buildEdgeGraph(model.config);
  const repl = await computeEdgeReplacements(model, task, opts.ablation, meanOver, batchSize, metric);
  let perEdge: Float64Array[];
  let clean: Float64Array;
  let cleanLogP: Float64Array[] = [];
  if (opts.method === 'exact') {
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
    clean = ev.clean;
    cleanLogP = ev.cleanLogProbs;
    perEdge = await exactEdgeScores(ev, graph.edges.map((e) => e.index), opts);
  } else {
    const r = await edgeAttribution(model, task, repl, {
      method: opts.method,
      steps: opts.steps,
      batchSize,
      metric,
      onProgress: (done, total) => opts.onProgress?.(done, total, opts.method),
    });
    perEdge = r.perPrompt;
    clean = r.clean;
  }
  const corrupt = repl.corruptMetric ?? (await corruptMetrics(model, task, batchSize, { name: metric, ...(metric === 'kl' ? { cleanLogP } : {}) }));
  const result: EdgeScanResult = {
    model: model.name,
    task: task.name,
    level: 'edges',
    ablation: opts.ablation,
    method: opts.method,
    metric_name: metric,
    n_prompts: task.pairs.length,
    clean_metric: mean(clean),
    clean_std: std(clean),
    corrupt_metric: mean(corrupt),
    n_edges: graph.edges.length,
    edges: graph.edges.map((e, i) => ({ name: e.name, sender: e.sender.name, receiver: e.receiver.name, score: mean(perEdge[i]), std: std(perEdge[i]) })),
  };
  if (opts.ablation === 'mean') result.mean_over = meanOver;
  if (opts.method === 'ig') {
    result.steps = opts.steps ?? DEFAULT_IG_STEPS;
    result.ig_path = 'inputs';
  }
  // Key order as SPEC writes it: edges last.
  const { edges, ...head } = result;
  return { ...head, edges };
}
