/**
 * ACDC-shaped workloads for the benches (bench/edges, bench/ab): the end states ACDC over edges
 * reaches, as sets of removed edges, and the speculative batches it evaluates at a layer.
 *  - uniform: a random 10% of the edges kept (every receiver keeps some edges);
 *  - circuit: what ACDC ends with at usual thresholds — a few percent of the edges, among a few
 *    components: `heads` random heads, every MLP (or `mlps` random ones), the input and the logits,
 *    and of the edges between them a random `edges` kept (the published GPT-2 IOI circuits:
 *    ~25–30 heads, ~1,000 edges).
 * Seeded: the same graph gives the same bases in every run and in every code tree.
 */
import type { EdgeGraph } from '../src/discover/edge-graph.ts';

export interface CircuitOptions {
  heads: number;
  /** MLPs in the circuit (every one when at least the model's count). */
  mlps: number;
  edges: number;
}

export interface AcdcBases {
  /** ACDC's visiting order (receivers last to first, each one's senders last to first). */
  order: number[];
  /** The circuit's kept edges. */
  kept: Set<number>;
  circuitMlps: number;
  /** Per base, the removed edges among `edges` in the end state. */
  removed: Record<'uniform' | 'circuit', (edges: number[]) => number[]>;
}

export function acdcBases(graph: EdgeGraph, order: number[], opts: CircuitOptions): AcdcBases {
  let seed = 777;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  const heads = graph.senders.filter((s) => s.kind === 'head');
  const circuitHeads = new Set(heads.map((h) => [h, rand()] as const).sort((a, b) => a[1] - b[1]).slice(0, opts.heads).map(([h]) => h.name));
  const mlps = graph.senders.filter((s) => s.kind === 'mlp');
  const circuitMlps = new Set((opts.mlps >= mlps.length ? mlps : mlps.map((m) => [m, rand()] as const).sort((a, b) => a[1] - b[1]).slice(0, opts.mlps).map(([m]) => m)).map((m) => m.pos));
  const inCircuit = (e: EdgeGraph['edges'][number]) => {
    const s = e.sender;
    const r = e.receiver;
    const sender = s.kind === 'input' || (s.kind === 'head' ? circuitHeads.has(s.name) : circuitMlps.has(s.pos));
    const receiver = r.kind === 'logits' || (r.kind === 'mlp' ? circuitMlps.has(r.pos) : circuitHeads.has(`L${r.layer}H${graph.senders.find((x) => x.kind === 'head' && x.pos === r.pos && x.slot === r.slot)?.head}`));
    return sender && receiver;
  };
  const between = graph.edges.filter(inCircuit).map((e) => [e.index, rand()] as const);
  const kept = new Set(between.sort((a, b) => a[1] - b[1]).slice(0, opts.edges).map(([e]) => e));
  return {
    order,
    kept,
    circuitMlps: circuitMlps.size,
    removed: {
      uniform: (edges) => edges.filter((_, i) => i % 10 !== 0),
      circuit: (edges) => edges.filter((e) => !kept.has(e)),
    },
  };
}

/**
 * A speculative batch at receiver layer position l: the base's removals among the later edges,
 * and the first `width` edges into layer l each as one more prefix on top.
 */
export function acdcBatch(graph: EdgeGraph, bases: AcdcBases, name: 'uniform' | 'circuit', l: number, width: number): { baseEdges: number[]; prefixes: number[][] } {
  const later = bases.order.filter((e) => graph.edges[e].receiver.pos > l);
  const here = bases.order.filter((e) => graph.edges[e].receiver.pos === l).slice(0, width);
  return { baseEdges: bases.removed[name](later), prefixes: here.map((_, j) => here.slice(0, j + 1)) };
}
