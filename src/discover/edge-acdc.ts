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
 *
 * An edge into a head or MLP whose every outgoing edge is already removed cannot change the metric:
 * that component's output reaches no receiver. ACDC reaches such an edge only after all of the
 * component's outgoing edges are decided (they go to later receivers), so it decides it without a
 * run, with a change of exactly 0 (removed whenever T > 0; each step records the unchanged metric).
 * On circuits of a few heads, most heads' inputs are such edges. `evaluateInert` evaluates them
 * instead (the decisions are the same; the steps' metrics differ by rounding only).
 *
 * After every batch `onCheckpoint` receives the decisions so far (edges visited, steps, the next
 * width, evaluations made; edge-checkpoint.ts), and `resume` continues from such a checkpoint: the
 * removed set is laid out again as the base and the batches go on exactly as they would have, so
 * the result — `evaluations` included — is the uninterrupted run's.
 */
import type { HookedModel } from '../model/hooked.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import { fail } from '../util/errors.ts';
import type { Ablation, MeanOver } from './replacements.ts';
import { buildEdgeGraph, cutOff, receiverNodes, senderEdgeRanges, type EdgeGraph } from './edge-graph.ts';
import { computeEdgeReplacements } from './edge-replacements.ts';
import { EdgeEvaluator } from './edge-evaluate.ts';
import type { ResumeHooks } from './checkpoint.ts';
import { runFingerprint } from './fingerprint.ts';
import { checkEdgeAcdcResume, EDGE_ACDC_FORMAT, type EdgeAcdcCheckpoint, type EdgeAcdcState } from './edge-checkpoint.ts';

export const DEFAULT_EDGE_ACDC_THRESHOLD = 0.05;
/** The most upcoming edges evaluated together. */
export const DEFAULT_ACDC_WIDTH = 16;

/** The options that change the result (width changes `evaluations`): what a checkpoint must have been made with. */
export interface EdgeAcdcRunOptions {
  order: 'acdc';
  level: 'edges';
  ablation: Ablation;
  mean_over?: MeanOver;
  metric: MetricName;
  threshold: number;
  width: number;
}

/** `onCheckpoint` hears every batch but the last; `resume` continues from one. */
export interface EdgeAcdcOptions extends ResumeHooks<EdgeAcdcCheckpoint> {
  threshold?: number;
  ablation: Ablation;
  meanOver?: MeanOver;
  metric?: MetricName;
  batchSize?: number;
  /** Most speculative candidates per batch (default 16). Does not change the result. */
  width?: number;
  /** Evaluate edges into components with no outgoing edge left instead of deciding them as unchanged (for comparisons). */
  evaluateInert?: boolean;
  /**
   * Progress in estimated work (a run from layer position l costs 2(L − l) + 1 units a row: the
   * layers it crosses, so the late layers ACDC starts with count for little), with the edges visited and those decided
   * without a run. Edges still ahead count as needing a run, so the estimate only ever drops.
   */
  onProgress?: (done: number, total: number, edges: { visited: number; total: number; withoutRun: number }) => void;
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

/**
 * Whether an edge's receiver feeds only components whose every outgoing edge is removed, once that
 * is known: `inert(k, decided)` for the edge at position k of `order`, with the edges at positions
 * before `decided` decided and `removed` holding those removed. Undefined while some outgoing edge
 * of those components is still undecided (ACDC's order decides them all before it reaches their
 * inputs, except across a layer boundary inside one batch). Known answers are kept per receiver.
 */
function inertEdges(cfg: HookedModel['config'], graph: EdgeGraph, order: readonly number[], removed: ReadonlySet<number>) {
  const nodes = receiverNodes(cfg, graph);
  const from = senderEdgeRanges(graph);
  const at = new Int32Array(graph.edges.length);
  order.forEach((e, k) => (at[e] = k));
  // Per receiver: the last position in `order` of an outgoing edge of the components it feeds.
  const lastOut = nodes.map((ns) => {
    let last = -1;
    for (const n of ns) for (let e = from[n]; e < from[n + 1]; e++) last = Math.max(last, at[e]);
    return last;
  });
  const known = new Map<number, boolean>();
  return (k: number, decided: number): boolean | undefined => {
    const r = graph.edges[order[k]].receiver.index;
    if (nodes[r].length === 0) return false; // logits: always read
    let dead = known.get(r);
    if (dead === undefined) {
      if (lastOut[r] >= decided) return undefined;
      dead = nodes[r].every((n) => cutOff(from, n, removed));
      known.set(r, dead);
    }
    return dead;
  };
}

/** The options as a checkpoint records them, checked. */
export function resolveEdgeAcdcOptions(opts: EdgeAcdcOptions): EdgeAcdcRunOptions {
  const threshold = opts.threshold ?? DEFAULT_EDGE_ACDC_THRESHOLD;
  if (!Number.isFinite(threshold)) fail(`--threshold: expected a finite number, got ${threshold}`);
  const r: EdgeAcdcRunOptions = { order: 'acdc', level: 'edges', ablation: opts.ablation, metric: opts.metric ?? 'logit-diff', threshold, width: Math.max(1, opts.width ?? DEFAULT_ACDC_WIDTH) };
  if (opts.ablation === 'mean') r.mean_over = opts.meanOver ?? 'clean';
  return r;
}

export async function edgeAcdc(model: HookedModel, task: Task, opts: EdgeAcdcOptions): Promise<EdgeAcdcResult> {
  const run = resolveEdgeAcdcOptions(opts);
  const { threshold, metric, width: maxWidth } = run;
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const repl = await computeEdgeReplacements(model, task, opts.ablation, meanOver, batchSize, metric);
  const ev = await EdgeEvaluator.create(model, task, repl, { batchSize, metric });
  const graph = ev.graph;
  const order = acdcEdgeOrder(graph);
  const worse = (current: number, next: number) => (metric === 'kl' ? next - current : current - next);
  // Hashing the weights costs a pass over them: only for runs that save or resume.
  const fingerprint = opts.onCheckpoint || opts.resume ? runFingerprint(model, task, run) : '';
  let state: EdgeAcdcState | undefined;
  if (opts.resume) {
    state = checkEdgeAcdcResume(opts.resume, fingerprint, run, order.map((e) => graph.edges[e].name), opts.resumeSource ?? 'resume checkpoint');
    opts.onResumed?.(opts.resume);
  }

  const removed: number[] = state ? state.removedAt.map((k) => order[k]) : [];
  const removedSet = new Set(removed);
  const inert = inertEdges(model.config, graph, order, removedSet);
  let base = ev.base(removed);
  const steps: EdgeAcdcStep[] = state ? state.steps : [{ removed: 0, edge: null, metric: mean(ev.clean), std: std(ev.clean) }];
  let current = steps[steps.length - 1].metric;
  let width = state ? state.width : Math.min(2, maxWidth);
  let evaluations = state ? state.evaluations : 0;
  let i = state ? state.visited : 0;
  // Work done and in all (EdgeAcdcOptions.onProgress): each edge's run, by the layers it crosses.
  const L = model.config.layers.length;
  const cost = order.map((e) => 2 * (L - graph.edges[e].receiver.pos) + 1);
  const totalWork = cost.reduce((a, c) => a + c, 0);
  let work = cost.slice(0, i).reduce((a, c) => a + c, 0);
  let withoutRun = 0;
  const progress = () => opts.onProgress?.(work, totalWork, { visited: i, total: order.length, withoutRun });
  if (state) progress();
  let layer = Infinity; // the receiver layer of the next batch's first edge
  while (i < order.length) {
    // Edges that cannot change the metric: decided as unchanged, without a run.
    if (!opts.evaluateInert && inert(i, i)) {
      if (worse(current, current) < threshold) {
        removed.push(order[i]);
        removedSet.add(order[i]);
        steps.push({ removed: removed.length, edge: graph.edges[order[i]].name, metric: current, std: steps[steps.length - 1].std });
      }
      work += cost[i];
      withoutRun++;
      i++;
      if (i === order.length || !inert(i, i)) {
        base = ev.base(removed);
        progress();
      }
      continue;
    }
    // The batch stops before an edge that is (or may yet turn out) inert, so that every such edge
    // is decided the same way whatever the width.
    let end = i + 1;
    while (end < Math.min(order.length, i + width) && (opts.evaluateInert || inert(end, i) === false)) end++;
    const batch = order.slice(i, end);
    // A configuration starts at its lowest receiver's layer, never above its first edge's, and
    // ACDC never returns to a layer it has left: the graphs of runs starting above the first
    // edge's layer can go (each holds its onnxruntime arena).
    const first = graph.edges[batch[0]].receiver.pos;
    if (first < layer) {
      layer = first;
      await model.releaseEdgeGraphsAfter(layer);
    }
    const configs = batch.map((_, j) => ({ edges: batch.slice(0, j + 1), base }));
    const per = await ev.evaluate(configs);
    evaluations += batch.length * task.pairs.length;
    let accepted = 0;
    for (let j = 0; j < batch.length; j++) {
      const next = mean(per[j]);
      if (worse(current, next) < threshold) {
        accepted++;
        current = next;
        removed.push(batch[j]);
        removedSet.add(batch[j]);
        steps.push({ removed: removed.length, edge: graph.edges[batch[j]].name, metric: next, std: std(per[j]) });
      } else {
        break;
      }
    }
    // All removed: speculate further next time; a kept edge ends the batch and narrows it.
    const decided = accepted === batch.length ? batch.length : accepted + 1;
    for (let k = i; k < i + decided; k++) work += cost[k];
    i += decided;
    width = accepted === batch.length ? Math.min(maxWidth, width * 2) : Math.max(1, Math.ceil(width / 2));
    if (accepted > 0) base = ev.base(removed);
    progress();
    if (i < order.length && opts.onCheckpoint) {
      await opts.onCheckpoint({ format: EDGE_ACDC_FORMAT, version: 1, fingerprint, model: model.name, task: task.name, options: run, visited: i, width, evaluations, steps: [...steps] });
    }
  }
  await model.releaseEdgeGraphsAfter(-1);
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
