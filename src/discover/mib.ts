/**
 * Scores in the MIB circuit-track submission format (the "importance scores" form: one JSON file
 * per model/task, Mueller et al. 2025, github.com/aaronmueller/MIB): MIB's EAP-IG `Graph.to_json`
 * layout,
 *
 *   {"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"},
 *    "nodes": {"input": {"in_graph": true}, "a0.h0": {...}, "m0": {...}, ..., "logits": {...}},
 *    "edges": {"input->a0.h0<q>": {"score": s, "in_graph": true}, ...}}
 *
 * Names map as: `input` → input, `L{l}H{h}` → `a{l}.h{h}`, `L{l}MLP` → `m{l}`, `logits` → logits,
 * receivers `L{l}H{h}<q>` → `a{l}.h{h}<q>`. MIB keeps one k and one v receiver per query head; with
 * grouped-query attention carve's `L{l}KV{j}<k>` is written for every query head reading key/value
 * head j, with the same score. Every node and edge is marked in the graph: MIB's evaluation ranks
 * by score itself. Component (node) scans give node scores and zero edge scores.
 *
 * Scores are written in MIB's sign: MIB scores are loss(ablated) − loss(clean), with loss the
 * negated logit difference (or a KL divergence), so an edge that helps the task scores high and
 * MIB's default signed ranking puts it first. carve's are metric(ablated) − metric(clean): the
 * caller passes `helpful`, +1 where a high carve score marks a helpful edge (kl), −1 where a low
 * one does (logit-diff, prob-diff), and each score is multiplied by it.
 */
import { kvHeadsOf, type ModelConfig } from '../model/types.ts';
import { fail } from '../util/errors.ts';
import { buildEdgeGraph } from './edge-graph.ts';
import { listComponents } from './components.ts';

export interface MibGraph {
  cfg: { n_layers: number; n_heads: number; parallel_attn_mlp: boolean; d_model: number };
  nodes: Record<string, { in_graph: boolean; score?: number }>;
  edges: Record<string, { score: number; in_graph: boolean }>;
}

function mibNode(carveName: string): string {
  if (carveName === 'input' || carveName === 'logits') return carveName;
  const m = /^L(\d+)(?:H(\d+)|MLP)$/.exec(carveName);
  if (!m) throw new Error(`not a node name: ${carveName}`);
  return m[2] === undefined ? `m${m[1]}` : `a${m[1]}.h${m[2]}`;
}

/** `level` edges: one score per edge in canonical order; components: one per component. */
export function toMib(cfg: ModelConfig, level: 'edges' | 'components', scores: readonly number[], helpful: 1 | -1): MibGraph {
  if (cfg.pruned) fail('MIB format: the model is pruned; MIB expects every head and MLP of the original model');
  const graph = buildEdgeGraph(cfg);
  const out: MibGraph = {
    cfg: { n_layers: cfg.layers.length, n_heads: cfg.nHead, parallel_attn_mlp: cfg.parallelResidual, d_model: cfg.dModel },
    nodes: {},
    edges: {},
  };
  const nodeScore = new Map<string, number>();
  if (level === 'components') listComponents(cfg, 'all').forEach((c, i) => nodeScore.set(c.name, helpful * scores[i]));
  for (const s of graph.senders) out.nodes[mibNode(s.name)] = nodeScore.has(s.name) ? { in_graph: true, score: nodeScore.get(s.name)! } : { in_graph: true };
  out.nodes.logits = { in_graph: true };
  const group = cfg.nHead / cfg.nKvHead;
  for (const e of graph.edges) {
    const score = level === 'edges' ? helpful * scores[e.index] : 0;
    const sender = mibNode(e.sender.name);
    const r = e.receiver;
    if (r.kind === 'mlp' || r.kind === 'logits') {
      out.edges[`${sender}->${r.kind === 'mlp' ? `m${r.layer}` : 'logits'}`] = { score, in_graph: true };
      continue;
    }
    const layout = cfg.layers[r.pos];
    // The query heads this receiver serves: itself (q), or every head reading this key/value head.
    const kv = r.kind === 'q' ? -1 : kvHeadsOf(cfg, layout)[r.slot];
    const served = r.kind === 'q' ? [layout.heads[r.slot]] : layout.heads.filter((h) => Math.floor(h / group) === kv);
    for (const h of served) out.edges[`${sender}->a${r.layer}.h${h}<${r.kind}>`] = { score, in_graph: true };
  }
  return out;
}
