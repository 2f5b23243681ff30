/**
 * `carve scan --level edges`: a score for every edge of the model (SPEC "Edges").
 *  - exact: mean over prompts of (metric with the edge ablated) − (clean metric), one configuration
 *    per edge through the batched edge evaluator;
 *  - attribution: EAP; ig: EAP-IG-inputs (edge-attribution.ts documents both).
 *
 * The exact scan can take hours (GPT-2 small: 32,491 edges), so it runs in fixed blocks of edges
 * and can checkpoint after each (`onCheckpoint`) and resume (`resume`, edge-checkpoint.ts). The
 * blocks are the same whether or not a run was interrupted — the same evaluator calls on the same
 * configurations — so a resumed scan's scores are the uninterrupted one's, bit for bit.
 */
import type { HookedModel } from '../model/hooked.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import type { Ablation, MeanOver } from './replacements.ts';
import { buildEdgeGraph, type EdgeGraph } from './edge-graph.ts';
import { computeEdgeReplacements, resampleInRun, type EdgeReplacements } from './edge-replacements.ts';
import { EdgeEvaluator } from './edge-evaluate.ts';
import { DEFAULT_IG_STEPS, edgeAttribution, type IgPath } from './edge-attribution.ts';
import { corruptMetrics, type ScanMethod } from './scan.ts';
import { fail, failOption } from '../util/errors.ts';
import type { ResumeHooks } from './checkpoint.ts';
import { runFingerprint } from './fingerprint.ts';
import { checkEdgeScanResume, EDGE_SCAN_FORMAT, type EdgeScanCheckpoint, type ScoredEdge } from './edge-checkpoint.ts';

/** exact: edges evaluated (and checkpointed) together; batch sizes dividing it, or multiples of it, fill every run. */
export const EXACT_EDGE_BLOCK = 128;

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
  ig_path?: IgPath;
  n_edges: number;
  edges: EdgeScore[];
}

/** An exact scan's options that change its result: what a checkpoint must have been made with. */
export interface EdgeScanRunOptions {
  level: 'edges';
  method: 'exact';
  ablation: Ablation;
  mean_over?: MeanOver;
  metric: MetricName;
  block: number;
}

/** exact: `onCheckpoint` hears every finished block but the last; `resume` continues from one. */
export interface EdgeScanOptions extends ResumeHooks<EdgeScanCheckpoint> {
  ablation: Ablation;
  method: ScanMethod;
  meanOver?: MeanOver;
  metric?: MetricName;
  steps?: number;
  /** ig: what is interpolated (default inputs). */
  igPath?: IgPath;
  batchSize?: number;
  onProgress?: (done: number, total: number, label: string) => void;
  /**
   * exact: called once, early (after two batches), with the projected total seconds; throwing from
   * it stops the scan (the CLI asks for --yes above 30 minutes).
   */
  onEstimate?: (seconds: number, edges: number) => void;
  /** exact: edges per block (default EXACT_EDGE_BLOCK); part of what a checkpoint must match. */
  block?: number;
}

/**
 * The exact scan's work order: edges by the layer their receiver sits in (where their runs start;
 * the evaluator groups configurations so), canonical order within, so that a block rarely spans
 * two start layers.
 */
export function exactScanOrder(graph: EdgeGraph): number[] {
  return graph.edges.map((e) => e.index).sort((a, b) => graph.edges[a].receiver.pos - graph.edges[b].receiver.pos || a - b);
}

/**
 * Exact scores (metric with the edge ablated − clean, per prompt) of `edges[from..]`, evaluated in
 * blocks of `block` edges counted from edges[0] — the same calls whatever `from` — each block handed
 * to `onBlock` as it finishes (its first position and per-edge, per-prompt scores).
 */
export async function exactEdgeBlocks(
  ev: EdgeEvaluator,
  edges: readonly number[],
  opts: Pick<EdgeScanOptions, 'onProgress' | 'onEstimate'> & {
    block: number;
    from?: number;
    onBlock: (first: number, perPrompt: Float64Array[]) => void | Promise<void>;
  },
): Promise<void> {
  const L = ev.model.config.layers.length;
  const N = ev.task.pairs.length;
  const from = opts.from ?? 0;
  if (from % opts.block !== 0 && from !== edges.length) throw new Error(`exactEdgeBlocks: ${from} is not a block boundary`);
  // Projected cost: rows × layers run (+1 for the readout), timed on the first batches.
  const workOf = (e: number) => L - ev.graph.edges[e].receiver.pos + 1;
  const totalWork = edges.slice(from).reduce((s, e) => s + workOf(e), 0) * N;
  let chunks = 0;
  for (let first = from; first < edges.length; first += opts.block) {
    const block = edges.slice(first, first + opts.block);
    const metrics = await ev.evaluate(
      block.map((e) => ({ edges: [e] })),
      (done) => opts.onProgress?.(first * N + done, edges.length * N, 'exact'),
      (info) => {
        // The first batch includes compiling its graph; the second gives the steady rate.
        if (++chunks !== 2 || !opts.onEstimate) return;
        opts.onEstimate((info.seconds / (info.rows * (L - info.start + 1))) * totalWork, edges.length - from);
      },
    );
    await opts.onBlock(first, metrics.map((m) => m.map((v, p) => v - ev.clean[p])));
  }
}

/** The exact scan's options as a checkpoint records them. */
export function resolveEdgeScanOptions(opts: EdgeScanOptions): EdgeScanRunOptions {
  const block = opts.block ?? EXACT_EDGE_BLOCK;
  if (!Number.isSafeInteger(block) || block < 1) failOption(`{block}: expected a positive integer, got ${block}`);
  const r: EdgeScanRunOptions = { level: 'edges', method: 'exact', ablation: opts.ablation, metric: opts.metric ?? 'logit-diff', block };
  if (opts.ablation === 'mean') r.mean_over = opts.meanOver ?? 'clean';
  return r;
}

/** The exact scan, resumable: every edge's mean and std over prompts, by edge index. */
async function exactScan(model: HookedModel, task: Task, ev: EdgeEvaluator, opts: EdgeScanOptions): Promise<ScoredEdge[]> {
  const graph = ev.graph;
  const run = resolveEdgeScanOptions(opts);
  const work = exactScanOrder(graph);
  const checkpoints = opts.onCheckpoint !== undefined || opts.resume !== undefined;
  // Hashing the weights costs a pass over them: only for runs that save or resume.
  const fingerprint = checkpoints ? runFingerprint(model, task, run) : '';
  let scored: ScoredEdge[] = [];
  if (opts.resume) {
    scored = checkEdgeScanResume(opts.resume, fingerprint, run, work.map((e) => graph.edges[e].name), opts.resumeSource ?? 'resume checkpoint');
    opts.onResumed?.(opts.resume);
  }
  await exactEdgeBlocks(ev, work, {
    block: run.block,
    from: scored.length,
    onProgress: opts.onProgress,
    onEstimate: opts.onEstimate,
    onBlock: async (first, perPrompt) => {
      perPrompt.forEach((m, j) => scored.push({ name: graph.edges[work[first + j]].name, score: mean(m), std: std(m) }));
      if (scored.length === work.length || !opts.onCheckpoint) return;
      await opts.onCheckpoint({ format: EDGE_SCAN_FORMAT, version: 1, fingerprint, model: model.name, task: task.name, options: run, scored: [...scored] });
    },
  });
  const byEdge: ScoredEdge[] = new Array(work.length);
  work.forEach((e, k) => (byEdge[e] = scored[k]));
  return byEdge;
}

export async function scanEdges(model: HookedModel, task: Task, opts: EdgeScanOptions): Promise<EdgeScanResult> {
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const metric = opts.metric ?? 'logit-diff';
  if (metric === 'kl' && opts.method === 'attribution') fail("--metric kl: the attribution method needs a gradient, and KL's is zero at the clean run; use --method ig or exact, or another metric");
  if (opts.method !== 'exact' && opts.resume) failOption(`{resume}: only the exact edge scan checkpoints (the ${opts.method} method takes a few passes)`);
  const graph: EdgeGraph = buildEdgeGraph(model.config);
  // EAP and EAP-IG-inputs under resample run the corrupt prompts inside their own graph: no separate
  // pass. EAP-IG-activations runs a graph per band of layers, each of which would repeat that pass:
  // one separate corrupt pass feeds them all.
  const inRun = opts.method === 'attribution' || (opts.method === 'ig' && (opts.igPath ?? 'inputs') === 'inputs');
  const repl: EdgeReplacements & { corruptMetric?: Float64Array } =
    inRun && opts.ablation === 'resample' ? resampleInRun(model, task, meanOver) : await computeEdgeReplacements(model, task, opts.ablation, meanOver, batchSize, metric);
  let corruptFromRun: Float64Array | undefined;
  // Per edge, in canonical order: the mean and std of its per-prompt scores.
  let scores: { score: number | null; std: number | null }[];
  let clean: Float64Array;
  let cleanLogP: Float64Array[] = [];
  if (opts.method === 'exact') {
    const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
    clean = ev.clean;
    cleanLogP = ev.cleanLogProbs;
    scores = await exactScan(model, task, ev, opts);
  } else {
    const r = await edgeAttribution(model, task, repl, {
      method: opts.method,
      steps: opts.steps,
      igPath: opts.igPath,
      batchSize,
      metric,
      onProgress: (done, total) => opts.onProgress?.(done, total, opts.method),
    });
    scores = r.perPrompt.map((m) => ({ score: mean(m), std: std(m) }));
    clean = r.clean;
    corruptFromRun = r.corrupt;
    cleanLogP = r.cleanLogP ?? [];
  }
  const corrupt = corruptFromRun ?? repl.corruptMetric ?? (await corruptMetrics(model, task, batchSize, { name: metric, ...(metric === 'kl' ? { cleanLogP } : {}) }));
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
    // A checkpoint's null (a NaN score, as JSON writes it) reads back as NaN: the same output.
    edges: graph.edges.map((e, i) => ({ name: e.name, sender: e.sender.name, receiver: e.receiver.name, score: scores[i].score ?? NaN, std: scores[i].std ?? NaN })),
  };
  if (opts.ablation === 'mean') result.mean_over = meanOver;
  if (opts.method === 'ig') {
    result.steps = opts.steps ?? DEFAULT_IG_STEPS;
    result.ig_path = opts.igPath ?? 'inputs';
  }
  // Key order as SPEC writes it: edges last.
  const { edges, ...head } = result;
  return { ...head, edges };
}
