/**
 * The pieces of MIB's own circuit-track evaluation (Mueller et al. 2025; the circuit track's
 * `MIB_circuit_track/evaluation.py`, `evaluate_area_under_curve`, on EAP-IG's `Graph`) that carve's
 * nominal faithfulness does not have, written for carve's edge graph. Pure bookkeeping: nothing
 * here runs a model (faithfulness.ts does).
 *
 *  - MIB's circuit sizes: .1%, .2%, .5%, 1%, 2%, 5%, 10%, 20%, 50%, 100% of the edges (no 0%).
 *  - At each size, the top floor(p·N) edges are selected, by |score| or by signed score, and then
 *    the selection is pruned to the edges that lie on a path from the input to the logits: an
 *    edge whose sender cannot be reached from the input through selected edges, or whose receiver
 *    reaches no logits through them, changes nothing a path carries, and MIB drops it (EAP-IG's
 *    `Graph.prune`, which `evaluate_graph` calls before every evaluation). The pruned circuit is
 *    what gets evaluated and counted.
 *  - Paths run through nodes: an edge into any of a head's q, k or v inputs reaches the head, and
 *    the head's output edges leave from it. With grouped-query attention carve's `L{l}KV{j}<k>`
 *    feeds every query head that reads key/value head j, so it reaches all of them, and it stays
 *    when any of them reaches the logits.
 *  - MIB's signed ranking puts first the edges that help most. MIB's scores are loss(ablated) −
 *    loss(clean) with the loss −logit-diff, so its helpful edges score high; carve's are
 *    metric(ablated) − metric(clean), so for a higher-is-better metric (logit-diff, prob-diff) the
 *    helpful edges score low and the signed ranking is by −score; KL is already a loss (+score).
 */
import { metricSign, type MetricName } from './metric.ts';
import type { ModelConfig } from '../model/types.ts';
import { receiverNodes, senderEdgeRanges, type EdgeGraph } from './edge-graph.ts';

/** MIB's circuit sizes as fractions of the edges (evaluation.py's `percentages`). */
export const MIB_PERCENTAGES: readonly number[] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];

export type Ranking = 'absolute' | 'signed';

/** +1 when a high score marks a helpful edge (a loss: kl), −1 when a low one does (logit-diff, prob-diff). */
export function helpfulSign(scoresMetric: MetricName): 1 | -1 {
  // A helpful edge's ablation moves the metric the wrong way: down for logit-diff, up for kl.
  return metricSign(scoresMetric) > 0 ? -1 : 1;
}

/**
 * Membership of the k first edges in a ranking: by |score| (absolute), or by sign·score (signed),
 * highest first; ties go to the lower index (canonical order).
 */
export function topK(scores: readonly number[], k: number, ranking: Ranking, sign: 1 | -1 = 1): boolean[] {
  const key = ranking === 'absolute' ? scores.map(Math.abs) : scores.map((s) => sign * s);
  const order = key.map((_, i) => i).sort((a, b) => key[b] - key[a] || a - b);
  const keep = new Array<boolean>(scores.length).fill(false);
  for (let i = 0; i < k; i++) keep[order[i]] = true;
  return keep;
}

/**
 * The selected edges that lie on a path from the input to the logits (MIB's pruning, at its fixed
 * point). A sender is reached when it is the input or a selected edge from a reached sender enters
 * one of its inputs; it is useful when a selected edge leaves it for the logits or for a useful
 * node. Every receiver reads only earlier senders, so one pass forward and one backward suffice.
 */
export function liveEdges(cfg: ModelConfig, graph: EdgeGraph, selected: readonly boolean[]): boolean[] {
  if (selected.length !== graph.edges.length) throw new Error(`${selected.length} flags for ${graph.edges.length} edges`);
  const nodesOf = receiverNodes(cfg, graph);
  const S = graph.senders.length;
  const from = senderEdgeRanges(graph);
  const reached = new Array<boolean>(S).fill(false);
  reached[0] = true;
  for (let s = 0; s < S; s++) {
    if (!reached[s]) continue;
    for (let e = from[s]; e < from[s + 1]; e++) if (selected[e]) for (const n of nodesOf[graph.edges[e].receiver.index]) reached[n] = true;
  }
  const live = new Array<boolean>(graph.edges.length).fill(false);
  const useful = new Array<boolean>(S).fill(false);
  for (let s = S - 1; s >= 0; s--) {
    if (!reached[s]) continue;
    for (let e = from[s]; e < from[s + 1]; e++) {
      if (!selected[e]) continue;
      const r = graph.edges[e].receiver;
      if (r.kind === 'logits' || nodesOf[r.index].some((n) => useful[n])) {
        live[e] = true;
        useful[s] = true;
      }
    }
  }
  return live;
}

/**
 * MIB's edge count for a set of kept components (its node-level evaluation): the edges from a kept
 * sender (the input always) into an input of a kept component or into the logits. Nothing is
 * pruned at this level: every component reads the input and writes to the logits directly.
 * `keptSenders` is indexed by sender (the input's entry is ignored).
 */
export function edgesAmongKept(cfg: ModelConfig, graph: EdgeGraph, keptSenders: readonly boolean[]): number {
  const nodesOf = receiverNodes(cfg, graph);
  let n = 0;
  for (const e of graph.edges) {
    if (e.sender.index !== 0 && !keptSenders[e.sender.index]) continue;
    const r = e.receiver;
    if (r.kind === 'logits' || nodesOf[r.index].some((s) => keptSenders[s])) n++;
  }
  return n;
}
