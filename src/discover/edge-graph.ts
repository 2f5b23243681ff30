/**
 * The edge graph (SPEC "Edges"): who writes into the residual stream, who reads from it, and which
 * writer reaches which reader.
 *
 *  - Senders, in canonical order: `input` (token + position embeddings), then layer by layer each
 *    kept head `L{l}H{h}` and the layer's MLP `L{l}MLP`.
 *  - Receivers, in canonical order: layer by layer the query input of every kept head
 *    (`L{l}H{h}<q>`), then the key inputs, then the value inputs, then the MLP (`L{l}MLP`); `logits`
 *    last. With grouped-query attention a query head's key and value inputs are those of the
 *    key/value head it reads, so there is one `<k>` and one `<v>` receiver per key/value head, named
 *    `L{l}KV{j}<k>` / `L{l}KV{j}<v>` (j the original key/value head index). Models without GQA keep
 *    SPEC's `L{l}H{h}<k>`.
 *  - An edge S->R exists when S writes before R reads: attention inputs of layer l read the input
 *    and every component of layers < l; a layer's MLP also reads its own layer's heads (not with a
 *    parallel residual, where attention and MLP read the same stream); logits read everything.
 *    So every receiver reads a prefix of the canonical sender list.
 *  - Canonical edge order (ties in rankings, output order): by sender, then by receiver.
 *
 * Pure bookkeeping: nothing here runs a model.
 */
import { fail } from '../util/errors.ts';
import { kvHeadsOf, type ModelConfig } from '../model/types.ts';

export type SenderKind = 'input' | 'head' | 'mlp';
export type ReceiverKind = 'q' | 'k' | 'v' | 'mlp' | 'logits';

export interface Sender {
  index: number;
  name: string;
  kind: SenderKind;
  /** Layer position (index into cfg.layers); -1 for input. */
  pos: number;
  /** Original layer index; -1 for input. */
  layer: number;
  /** Original head index (heads only). */
  head: number | null;
  /** Heads: slot among the layer's kept heads (its place in hook_z). */
  slot: number;
}

export interface Receiver {
  index: number;
  name: string;
  kind: ReceiverKind;
  /** Layer position; cfg.layers.length for logits. */
  pos: number;
  /** Original layer index; -1 for logits. */
  layer: number;
  /** q: query-head slot; k/v: key/value-head slot; -1 otherwise. */
  slot: number;
  /** Place among the layer's attention receivers (q slots, then k, then v); -1 for MLP and logits. */
  attIndex: number;
  /** It reads senders 0 .. nSenders−1. */
  nSenders: number;
}

export interface Edge {
  index: number;
  name: string;
  sender: Sender;
  receiver: Receiver;
}

export interface EdgeGraph {
  senders: Sender[];
  receivers: Receiver[];
  /** Canonical order: by sender, then receiver. */
  edges: Edge[];
  byName: Map<string, Edge>;
  /** Per layer position: index of its first sender (heads, then MLP); entry L = total senders. */
  senderStart: number[];
  /** Per layer position: the number of attention receivers (query slots + 2 × key/value slots). */
  attCount: number[];
  /** edgeAt[receiver][sender] = edge index (every receiver reads a prefix of the senders). */
  edgeAt: Int32Array[];
}

export function edgeName(sender: string, receiver: string): string {
  return `${sender}->${receiver}`;
}

/** Whether the layout calls for GQA names (several query heads share key/value heads). */
export function groupedKv(cfg: ModelConfig): boolean {
  return cfg.nKvHead < cfg.nHead;
}

const graphs = new WeakMap<ModelConfig, EdgeGraph>();

/** The edge graph of a model (built once per config object and shared: treat it as read-only). */
export function buildEdgeGraph(cfg: ModelConfig): EdgeGraph {
  let graph = graphs.get(cfg);
  if (!graph) graphs.set(cfg, (graph = makeEdgeGraph(cfg)));
  return graph;
}

function makeEdgeGraph(cfg: ModelConfig): EdgeGraph {
  const senders: Sender[] = [{ index: 0, name: 'input', kind: 'input', pos: -1, layer: -1, head: null, slot: -1 }];
  const senderStart: number[] = [];
  cfg.layers.forEach((l, pos) => {
    senderStart.push(senders.length);
    l.heads.forEach((h, slot) => senders.push({ index: senders.length, name: `L${l.sourceLayer}H${h}`, kind: 'head', pos, layer: l.sourceLayer, head: h, slot }));
    if (l.mlp) senders.push({ index: senders.length, name: `L${l.sourceLayer}MLP`, kind: 'mlp', pos, layer: l.sourceLayer, head: null, slot: -1 });
  });
  senderStart.push(senders.length);

  const receivers: Receiver[] = [];
  const attCount: number[] = [];
  const gqa = groupedKv(cfg);
  cfg.layers.forEach((l, pos) => {
    const before = senderStart[pos];
    const push = (name: string, kind: ReceiverKind, slot: number, attIndex: number, nSenders: number) =>
      receivers.push({ index: receivers.length, name, kind, pos, layer: l.sourceLayer, slot, attIndex, nSenders });
    let att = 0;
    if (l.heads.length > 0) {
      l.heads.forEach((h, slot) => push(`L${l.sourceLayer}H${h}<q>`, 'q', slot, att++, before));
      const kv = kvHeadsOf(cfg, l);
      for (const kind of ['k', 'v'] as const) {
        kv.forEach((j, slot) => push(gqa ? `L${l.sourceLayer}KV${j}<${kind}>` : `L${l.sourceLayer}H${j}<${kind}>`, kind, slot, att++, before));
      }
    }
    attCount.push(att);
    if (l.mlp) push(`L${l.sourceLayer}MLP`, 'mlp', -1, -1, cfg.parallelResidual ? before : before + l.heads.length);
  });
  receivers.push({ index: receivers.length, name: 'logits', kind: 'logits', pos: cfg.layers.length, layer: -1, slot: -1, attIndex: -1, nSenders: senders.length });

  // Sender-major order: for each sender, the receivers that read it, in receiver order.
  const edges: Edge[] = [];
  const edgeAt = receivers.map((r) => new Int32Array(r.nSenders).fill(-1));
  for (const s of senders) {
    for (const r of receivers) {
      if (s.index >= r.nSenders) continue;
      edgeAt[r.index][s.index] = edges.length;
      edges.push({ index: edges.length, name: edgeName(s.name, r.name), sender: s, receiver: r });
    }
  }
  return { senders, receivers, edges, byName: new Map(edges.map((e) => [e.name, e])), senderStart, attCount, edgeAt };
}

/**
 * The number of edges of an unpruned model: per layer l, (H + 2K) attention receivers read the
 * 1 + l(H+1) earlier senders, the MLP reads those plus the layer's H heads (sequential residual);
 * logits read all 1 + L(H+1). GPT-2 small (L = H = K = 12): 32,491.
 */
export function edgeCountFormula(nLayer: number, nHead: number, nKvHead = nHead, parallelResidual = false): number {
  let n = 0;
  for (let l = 0; l < nLayer; l++) {
    const before = 1 + l * (nHead + 1);
    n += (nHead + 2 * nKvHead) * before + before + (parallelResidual ? 0 : nHead);
  }
  return n + 1 + nLayer * (nHead + 1);
}

/**
 * Per receiver, the senders (nodes) whose output depends on its input: a query input its head; a
 * key or value input every head reading that key/value head; an MLP input the MLP; logits none
 * (they always count as live).
 */
export function receiverNodes(cfg: ModelConfig, graph: EdgeGraph): number[][] {
  const group = cfg.nHead / cfg.nKvHead;
  return graph.receivers.map((r) => {
    if (r.kind === 'logits') return [];
    const start = graph.senderStart[r.pos];
    const layout = cfg.layers[r.pos];
    if (r.kind === 'mlp') return [start + layout.heads.length];
    if (r.kind === 'q') return [start + r.slot];
    const kv = kvHeadsOf(cfg, layout)[r.slot];
    return layout.heads.flatMap((h, slot) => (Math.floor(h / group) === kv ? [start + slot] : []));
  });
}

/** Edges are sender-major: sender s owns edges from[s] .. from[s + 1] − 1 (`from` has one entry per sender, plus the end). */
export function senderEdgeRanges(graph: EdgeGraph): Int32Array {
  const from = new Int32Array(graph.senders.length + 1);
  for (const e of graph.edges) from[e.sender.index + 1]++;
  for (let s = 0; s < graph.senders.length; s++) from[s + 1] += from[s];
  return from;
}

/** Whether every outgoing edge of sender s is in `removed` (`from`: senderEdgeRanges): nothing reads its output. */
export function cutOff(from: Int32Array, s: number, removed: ReadonlySet<number>): boolean {
  for (let e = from[s]; e < from[s + 1]; e++) if (!removed.has(e)) return false;
  return true;
}

/** Look an edge up by name; `where` says which file or flag it came from. */
export function findEdge(graph: EdgeGraph, name: string, where: string): Edge {
  const e = graph.byName.get(name.trim());
  if (!e) {
    if (!/^[^\s]+->[^\s]+$/.test(name.trim())) fail(`${where}: ${JSON.stringify(name)} is not an edge name (expected SENDER->RECEIVER, e.g. L3H2->L5H1<q>)`);
    fail(`${where}: the model has no edge ${name.trim()}`);
  }
  return e;
}

/** Group a set of edge indices by receiver layer position (logits at cfg.layers.length). */
export function edgesByReceiverLayer(graph: EdgeGraph, edges: readonly number[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const i of edges) {
    const p = graph.edges[i].receiver.pos;
    let list = out.get(p);
    if (!list) out.set(p, (list = []));
    list.push(i);
  }
  return out;
}
