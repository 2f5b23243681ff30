/**
 * Edge interventions in the forward graph (SPEC "Edges"). A receiver — one head's query, key or value
 * input, a layer's MLP input, or the logits' input — normally reads the residual stream, the sum of
 * every earlier sender's output (plus biases). Ablating the edge S->R makes R read S's replacement
 * instead of S's output in this run:
 *
 *     x_R = resid + Σ_S m[S, R] · (replacement_S − output_S)          (m = 1: ablated, 0: kept)
 *
 * Effects propagate: a sender's output is its value in the current (already intervened) run.
 *
 * Receivers and senders follow the canonical order of src/discover/edge-graph.ts (every receiver
 * reads a prefix of the sender list). How the forward uses this:
 *  - Senders before the run's start layer ("pre" senders: the input and layers < start) never
 *    change within the run, so their deltas (replacement − clean) are graph inputs, one per prompt:
 *    rows are laid out prompt-major, B = U prompts × C configurations, and the pre deltas are
 *    [U, ...], shared by a prompt's C rows without copies.
 *  - Senders from the start layer on contribute replacement − (their value in this run), computed
 *    in the graph (heads through their slice of the output projection) when a later receiver reads
 *    them.
 *  - Attention receivers: only the `A` receivers some row of the run ablates something into
 *    (`edge_att_sel.{i}`, their indices among the layer's q, k, v receivers) get their own input,
 *    norm and projection; the rest keep the shared path. With a selection per row, a batch of
 *    single-edge configurations costs one extra projection per row, not one per head.
 *  - The same sum taken from the other end: x_R = ablated + Σ_S (m − 1)·(replacement_S − output_S)
 *    with ablated = resid + Σ over every earlier sender of (replacement − output), the stream a
 *    receiver cut from everything reads. Layers mostly cut from everything (EdgeSpec.fromAblated,
 *    mlpFromAblated) run their shared path on that stream and route only the receivers that keep
 *    something, mixing only the senders they keep.
 *  - A head or MLP whose every outgoing edge every row ablates is dead: its output is cancelled in
 *    every receiver. Its inputs need no routing, a dead head's q/k/v no projection
 *    (EdgeSpec.liveReceivers) and a dead MLP no computing (EdgeSpec.skipMlp).
 *
 * Graph inputs (U = prompts, B = rows, T = length, k / kv = the layer's query / key-value heads):
 *   edge_pre_input [U, T, d]                input: replacement − clean embedding
 *   edge_pre_z.{j} [U, T, k, dh]            j < start: hook_z replacement − clean
 *   edge_pre_mlp.{j} [U, T, d]              j < start: hook_mlp_out replacement − clean
 *   edge_z_repl.{j} / edge_mlp_repl.{j}     j ≥ start: replacement values, [1, 1, ...] or [B, T, ...]
 *   edge_att_sel.{i} [A] int64, edge_att_mask.{i} [B, A, S_i]      S_i senders before layer i
 *     (sharedPre: edge_att_mask_pre.{i} [A, S_pre] and edge_att_mask.{i} [B, A, S_i − S_pre])
 *     (select 'row': edge_att_sel.{i} [B, A], edge_att_onehot.{i} [B, A, R], a selection per row)
 *     (fromAblated: edge_att_sel.{i} [A], edge_att_mask.{i} [B, A, W] holding m − 1 for W listed senders)
 *   edge_mlp_mask.{i} [B, 1, S]             S: the MLP receiver's senders (mlpFromAblated: [B, 1, W], m − 1)
 *   edge_live_w.{i}, edge_live_b.{i}        liveReceivers: their q/k/v columns (gatherReceiverColumns)
 *   edge_logits_mask [B, 1, S_all]
 * Masks may hold fractions (a partly ablated edge), which finite-difference tests use.
 */
import type { Graph, Value } from '../onnx/graph.ts';
import { linear, norm } from './blocks.ts';
import type { Role, TensorSlot } from './tensors.ts';
import { kvHeadsOf, type ModelConfig } from './types.ts';

export type EdgeReplacementShape = 'row' | 'const';

export interface EdgeSpec {
  /** Layer positions whose attention receivers read edge-ablated inputs. */
  att: number[];
  /** Layer positions whose MLP reads an edge-ablated input. */
  mlp: number[];
  logits: boolean;
  /** Shape of the in-run senders' replacement values. */
  replacement: EdgeReplacementShape;
  /**
   * How attention receivers are selected: 'shared' — one list for all rows (`edge_att_sel.{i}` [A]),
   * for configurations that ablate into many receivers; 'row' — a list per row (`edge_att_sel.{i}`
   * [B, A] and `edge_att_onehot.{i}` [B, A, R], zero rows for padding), for batches of
   * configurations that each touch one or two receivers (single-edge scans).
   */
  select?: 'shared' | 'row';
  /**
   * Layer positions (after the start, with a shared selection) whose attention masks agree in every
   * row on the senders before the run's start: those columns come once, `edge_att_mask_pre.{i}`
   * [A, S_pre], and are mixed once per prompt instead of once per row; `edge_att_mask.{i}` then
   * holds only the in-run senders' columns, [B, A, S_i − S_pre]. ACDC's batches (one base of removals
   * below the layer being decided) are laid out this way.
   */
  sharedPre?: number[];
  /**
   * Layer positions (shared selection) where every attention receiver reads its own input, in
   * order: no selection input and no shared q/k/v projection to swap into (ACDC's layers above
   * the one being decided, where the removals so far reach every receiver). Masks [B, R, S_i].
   */
  everyReceiver?: number[];
  /**
   * Layer positions (shared selection, from the start on, in neither sharedPre nor everyReceiver)
   * measured from the fully ablated stream, resid + Σ over every earlier sender of
   * (replacement − output): what a receiver reads when all its edges are ablated. The layer's
   * shared norm and q/k/v projection read that stream, so receivers ablated from every sender in
   * every row need no routing; the selected ones read it plus Σ_S (m − 1)·delta_S over the senders
   * listed (canonical indices, ascending), `edge_att_mask.{i}` [B, A, W] holding m − 1 for them
   * (m = 1 for every other sender, selected receiver and row). An empty list: nothing is
   * selected, no selection or mask inputs. Late in ACDC, and for small circuits, most receivers
   * are cut from everything and the few kept edges come from few senders, so this replaces the mix
   * of every sender into every receiver by the mix of a few.
   */
  fromAblated?: { layer: number; senders: number[] }[];
  /**
   * The same for MLP receivers (layer positions after the start, never a metric-only last layer):
   * the MLP reads the fully ablated stream plus Σ_S (m − 1)·delta_S over the senders listed,
   * `edge_mlp_mask.{i}` [B, 1, W]; none listed, no mask input.
   */
  mlpFromAblated?: { layer: number; senders: number[] }[];
  /**
   * Layer positions (from the start on) whose MLP every row cuts off from every receiver: nothing
   * reads its output, so the graph does not compute it and takes its replacement instead (the
   * stream then holds the replacement, and its deltas are zero).
   */
  skipMlp?: number[];
  /**
   * Per layer position (from the start on, with a shared path): the attention receivers whose
   * q/k/v the shared path computes, ascending; the others' heads are dead (nothing reads their
   * output), so their projections are left out and they attend over zeros.
   */
  liveReceivers?: { layer: number; receivers: number[] }[];
}

/** How the forward hands its weights over: by role, with the tensor table's slot for layouts. */
export interface WeightAccess {
  w(role: Role, layer?: number): Value | undefined;
  must(role: Role, layer?: number): Value;
  slot(role: Role, layer?: number): TensorSlot | undefined;
}

/** Senders before layer position i (input, then each earlier layer's heads and MLP); i = L gives all. */
export function sendersBefore(cfg: ModelConfig, i: number): number {
  let n = 1;
  for (let j = 0; j < i; j++) n += cfg.layers[j].heads.length + (cfg.layers[j].mlp ? 1 : 0);
  return n;
}

/** Senders the MLP receiver of layer position i reads. */
export function mlpReceiverSenders(cfg: ModelConfig, i: number): number {
  return sendersBefore(cfg, i) + (cfg.parallelResidual ? 0 : cfg.layers[i].heads.length);
}

/** Attention receivers of layer position i: its query heads, then key heads, then value heads. */
export function attentionReceivers(cfg: ModelConfig, i: number): number {
  const l = cfg.layers[i];
  return l.heads.length === 0 ? 0 : l.heads.length + 2 * kvHeadsOf(cfg, l).length;
}

/**
 * Per-receiver projection weights of a layer: W [R, d, dh] and bias [R, dh] (or undefined), R the
 * layer's attention receivers in order (query heads, key heads, value heads), whatever the storage
 * (GPT-2's fused [d, 3·k·dh], GPT-NeoX's fused per-head rows, separate q/k/v projections).
 */
export function receiverProjections(g: Graph, cfg: ModelConfig, i: number, wa: WeightAccess): { w: Value; b?: Value } {
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const k = cfg.layers[i].heads.length;
  const kv = kvHeadsOf(cfg, cfg.layers[i]).length;
  const fused = wa.slot('qkv.w', i);
  if (fused) {
    // The fused output axis is a product of factors (3, head, dh in some order): bring it to [3, head, d, dh].
    const outAxis = fused.layout === 'in_out' ? fused.axes[1] : fused.axes[0];
    const factors = outAxis.map((f) => (f === 'head' ? k : f === 'dh' ? dh : f)) as number[];
    const at = (f: number | string) => outAxis.indexOf(f as never);
    const [i3, iH, iDh] = [at(3), at('head'), at('dh')];
    const wv = wa.must('qkv.w', i);
    let w: Value;
    if (fused.layout === 'in_out') {
      const r = g.reshape(wv, [d, ...factors], [d, ...factors]);
      w = g.transpose(r, [1 + i3, 1 + iH, 0, 1 + iDh]);
    } else {
      const r = g.reshape(wv, [...factors, d], [...factors, d]);
      w = g.transpose(r, [i3, iH, 3, iDh]);
    }
    const out: { w: Value; b?: Value } = { w: g.reshape(w, [3 * k, d, dh], [3 * k, d, dh]) };
    const bv = wa.w('qkv.b', i);
    if (bv) out.b = g.reshape(g.transpose(g.reshape(bv, factors, factors), [i3, iH, iDh]), [3 * k, dh], [3 * k, dh]);
    return out;
  }
  const one = (role: 'q' | 'k' | 'v', n: number) => {
    const s = wa.slot(`${role}.w`, i)!;
    const wv = wa.must(`${role}.w`, i);
    const w = s.layout === 'in_out' ? g.transpose(g.reshape(wv, [d, n, dh], [d, n, dh]), [1, 0, 2]) : g.transpose(g.reshape(wv, [n, dh, d], [n, dh, d]), [0, 2, 1]);
    const bv = wa.w(`${role}.b`, i);
    return { w, b: bv ? g.reshape(bv, [n, dh], [n, dh]) : undefined };
  };
  const parts = [one('q', k), one('k', kv), one('v', kv)];
  const out: { w: Value; b?: Value } = { w: g.concat(parts.map((p) => p.w), 0) };
  if (parts.every((p) => p.b)) out.b = g.concat(parts.map((p) => p.b!), 0);
  return out;
}

/**
 * Where some attention receivers' slices of the q/k/v projection lie in the stored tensors: for
 * each source tensor (the fused one, or q, k, v) the receivers' flat indices along its output axis,
 * dh per receiver, receivers ascending; gathered and concatenated along that axis they are
 * one matrix in the stored layout (`in_out` [d, n·dh] or `out_in` [n·dh, d]) and its bias [n·dh].
 * Undefined for a fused projection with grouped keys, or sources stored in different layouts.
 */
export interface ReceiverColumns {
  layout: 'in_out' | 'out_in';
  parts: { w: string; b?: string; idx: number[] }[];
}

export function receiverColumnPlan(cfg: ModelConfig, i: number, slot: WeightAccess['slot'], receivers: number[]): ReceiverColumns | undefined {
  const dh = cfg.dHead;
  const k = cfg.layers[i].heads.length;
  const kv = kvHeadsOf(cfg, cfg.layers[i]).length;
  const fused = slot('qkv.w', i);
  if (fused && kv !== k) return undefined;
  // Ascending, so that the separate q, k, v sources, concatenated in that order, keep the receivers' order.
  if (receivers.some((r, j) => j > 0 && r <= receivers[j - 1])) throw new Error('receiver columns: receivers must be ascending');
  const sources = fused ? [{ role: 'qkv' as const, idx: [] as number[] }] : (['q', 'k', 'v'] as const).map((role) => ({ role, idx: [] as number[] }));
  for (const r of receivers) {
    const x = r < k ? 0 : r < k + kv ? 1 : 2;
    const h = r - [0, k, k + kv][x];
    const src = fused ? sources[0] : sources[x];
    const s = slot(`${src.role}.w`, i)!;
    const axis = s.layout === 'in_out' ? s.axes[1] : s.axes[0];
    const sizes = axis.map((f) => (f === 'head' ? k : f === 'kv' ? kv : f === 'dh' ? dh : (f as number)));
    for (let j = 0; j < dh; j++) {
      let flat = 0;
      axis.forEach((f, a) => (flat = flat * sizes[a] + (f === 3 ? x : f === 'dh' ? j : h)));
      src.idx.push(flat);
    }
  }
  const used = sources.filter((src) => src.idx.length > 0);
  const layout = slot(`${used[0].role}.w`, i)!.layout!;
  if (used.some((src) => slot(`${src.role}.w`, i)!.layout !== layout)) return undefined;
  const parts = used.map((src) => ({ w: slot(`${src.role}.w`, i)!.name, b: slot(`${src.role}.b`, i)?.name, idx: src.idx }));
  // A bias only where every source has one (the gathered matrix has one bias or none).
  if (parts.some((p) => !p.b)) for (const p of parts) delete p.b;
  return { layout, parts };
}

type Floats = Float32Array | Float64Array;

/**
 * The matrix and bias a ReceiverColumns plan describes, gathered on the host from the stored
 * tensors (`tensor(name)`, d_model `d`): computed once per layer and set of receivers and fed to
 * every run, where a Gather of the fed weights would redo it on every run.
 */
export function gatherReceiverColumns(plan: ReceiverColumns, tensor: (name: string) => Floats, d: number): { w: { data: Floats; dims: number[] }; b?: { data: Floats; dims: number[] } } {
  const n = plan.parts.reduce((a, p) => a + p.idx.length, 0);
  const first = tensor(plan.parts[0].w);
  const make = (len: number): Floats => (first instanceof Float64Array ? new Float64Array(len) : new Float32Array(len));
  const w = make(d * n);
  let col = 0;
  for (const p of plan.parts) {
    const src = tensor(p.w);
    const width = src.length / d; // the source's output axis
    if (plan.layout === 'in_out') {
      for (let r = 0; r < d; r++) p.idx.forEach((c, j) => (w[r * n + col + j] = src[r * width + c]));
    } else {
      p.idx.forEach((c, j) => w.set(src.subarray(c * d, (c + 1) * d), (col + j) * d));
    }
    col += p.idx.length;
  }
  const out: { w: { data: Floats; dims: number[] }; b?: { data: Floats; dims: number[] } } = { w: { data: w, dims: plan.layout === 'in_out' ? [d, n] : [n, d] } };
  if (plan.parts.every((p) => p.b)) {
    const b = make(n);
    let at = 0;
    for (const p of plan.parts) {
      const src = tensor(p.b!);
      p.idx.forEach((c, j) => (b[at + j] = src[c]));
      at += p.idx.length;
    }
    out.b = { data: b, dims: [n] };
  }
  return out;
}

/** Each head's slice of the output projection: [k, dh, d]. */
export function headOutputWeights(g: Graph, cfg: ModelConfig, i: number, wa: WeightAccess): Value {
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const k = cfg.layers[i].heads.length;
  const s = wa.slot('o.w', i)!;
  const wv = wa.must('o.w', i);
  return s.layout === 'in_out' ? g.reshape(wv, [k, dh, d], [k, dh, d]) : g.transpose(g.reshape(wv, [d, k, dh], [d, k, dh]), [1, 2, 0]);
}

/**
 * x [N, S, R, in] times a matrix per slot, w [S, in, out] → [N, S, R, out]. Computed as S products
 * of (N·R) rows — one per slot — rather than N·S small ones: several times faster in onnxruntime.
 */
export function perSlotMatmul(g: Graph, x: Value, w: Value): Value {
  const [N, S, R, inDim] = x.shape;
  const out = w.shape[2];
  const rows = g.reshape(g.transpose(x, [1, 0, 2, 3]), [0, -1, inDim as number], [S, `${N}*${R}`, inDim]);
  const prod = g.matmul(rows, w);
  const first = (v: Value) => g.slice(g.shapeOf(v), g.ints([0]), g.ints([1]), [0], [1]);
  const y = g.reshapeTo(prod, g.concat([first(prod), first(x), g.ints([-1, out as number])], 0), [S, N, R, out]);
  return g.transpose(y, [1, 0, 2, 3]);
}

/** Per-head outputs of hook_z-shaped values: z [N, R, k, dh] → [N, k, R, d] (each head's z_h · W_O[h]). */
export function headOutputs(g: Graph, z: Value, wo: Value): Value {
  return perSlotMatmul(g, g.transpose(z, [0, 2, 1, 3]), wo);
}

/** Senders as mixing reads them: deltas stacked along axis 1. */
interface Mixable {
  /** Senders it holds. */
  size: number;
  /** [U or B, size, R, d]: 'pre' pieces are per prompt, 'run' pieces per row. */
  value: Value;
  kind: 'pre' | 'run';
  /** R is 1 (the metric rows of a metric-only last layer) instead of T. */
  atMetric: boolean;
}

/** A sender group: the input, a layer's heads or a layer's MLP. */
interface Piece extends Mixable {
  /** Its first sender's index (canonical order; its senders are consecutive). */
  first: number;
  /** Σ over its senders, [U or B, R, d] (for the fully ablated stream). */
  total: () => Value;
  /** Some of its senders (slots within the group, ascending). */
  pick: (slots: number[]) => Mixable;
}

/** f, computed on the first call and kept. */
function once<T>(f: () => T): () => T {
  let v: T | undefined;
  let done = false;
  return () => {
    if (!done) [v, done] = [f(), true];
    return v as T;
  };
}

export class EdgeRouter {
  private readonly pieces: Piece[] = [];
  /** The fully ablated stream per layer position (EdgeSpec.fromAblated). */
  private readonly streams = new Map<number, Value>();
  /** Running sums of the pieces' totals (ablatedSum). */
  private readonly sums = new Map<string, Value | undefined>();
  private readonly att: Set<number>;
  private readonly mlp: Set<number>;
  private readonly d: number;

  constructor(
    private readonly g: Graph,
    private readonly cfg: ModelConfig,
    private readonly spec: EdgeSpec,
    private readonly start: number,
    private readonly wa: WeightAccess,
    /** x [B, T, ...rest] → [B, 1, ...rest] at each row's metric position. */
    private readonly rowsOf: (x: Value) => Value,
  ) {
    this.att = new Set(spec.att);
    this.mlp = new Set(spec.mlp);
    this.d = cfg.dModel;
    for (const i of [...spec.att, ...spec.mlp]) if (i < start) throw new Error(`edge receivers of layer position ${i} precede the run's start ${start}`);
    const d = this.d;
    // One piece per sender group (not concatenated: mixing reads each where it lies).
    const input = g.input('edge_pre_input', ['U', 'T', d]);
    this.pieces.push(this.single(0, input, 'pre', false));
    for (let j = 0; j < start; j++) {
      const l = cfg.layers[j];
      if (l.heads.length > 0) this.pieces.push(this.heads(j, g.input(`edge_pre_z.${j}`, ['U', 'T', l.heads.length, cfg.dHead]), 'pre', false));
      if (l.mlp) this.pieces.push(this.single(sendersBefore(cfg, j) + l.heads.length, g.input(`edge_pre_mlp.${j}`, ['U', 'T', d]), 'pre', false));
    }
  }

  /** A one-sender group (the input, an MLP) from its delta [N, R, d]. */
  private single(first: number, delta: Value, kind: Piece['kind'], atMetric: boolean): Piece {
    const piece: Piece = { first, size: 1, value: this.g.unsqueeze(delta, [1]), kind, atMetric, total: () => delta, pick: () => piece };
    return piece;
  }

  /**
   * Layer position j's heads from their hook_z deltas z [N, R, k, dh]: per head through its slice
   * of the output projection (one product for the layer's heads; a subset is gathered from it, so
   * the layers that read different subsets share it), their sum as one product with the stacked
   * slices.
   */
  private heads(j: number, z: Value, kind: Piece['kind'], atMetric: boolean): Piece {
    const g = this.g;
    const wo = headOutputWeights(g, this.cfg, j, this.wa); // [k, dh, d]
    const k = this.cfg.layers[j].heads.length;
    const first = sendersBefore(this.cfg, j);
    const kdh = k * this.cfg.dHead;
    const value = headOutputs(g, z, wo);
    const picked = new Map<string, Mixable>();
    const piece: Piece = {
      first,
      size: k,
      value,
      kind,
      atMetric,
      total: once(() => g.matmul(g.reshape(z, [0, 0, -1], [z.shape[0], z.shape[1], kdh]), g.reshape(wo, [kdh, this.d], [kdh, this.d]))),
      pick: (slots) => {
        if (slots.length === k) return piece;
        let p = picked.get(slots.join());
        if (!p) {
          p = { size: slots.length, value: g.gather(value, g.constant(Float64Array.from(slots), [slots.length], 'int64'), 1), kind, atMetric };
          picked.set(slots.join(), p);
        }
        return p;
      },
    };
    return piece;
  }

  hasAttention(i: number): boolean {
    return this.att.has(i);
  }

  hasMlp(i: number): boolean {
    return this.mlp.has(i);
  }

  /** Whether some receiver of this graph reads layer position j's heads (or its MLP). */
  private readsHeads(j: number): boolean {
    return this.spec.logits || this.spec.att.some((i) => i > j) || this.spec.mlp.some((i) => i > j || (i === j && !this.cfg.parallelResidual));
  }
  private readsMlp(j: number): boolean {
    return this.spec.logits || this.spec.att.some((i) => i > j) || this.spec.mlp.some((i) => i > j);
  }

  private replacement(name: string, rest: number[], atMetric: boolean): Value {
    if (this.spec.replacement === 'const') return this.g.input(name, [1, 1, ...rest]);
    const v = this.g.input(name, ['B', 'T', ...rest]);
    return atMetric ? this.rowsOf(v) : v;
  }

  /** The receivers layer position i's shared path computes (EdgeSpec.liveReceivers), or undefined for all. */
  liveAt(i: number): number[] | undefined {
    return this.spec.liveReceivers?.find((l) => l.layer === i)?.receivers;
  }

  /**
   * The shared path's q, k, v ([B, T, n, dh], all positions) from the normed x [B, T, d], computed
   * for the live receivers only (one product with their columns), zeros for the rest; undefined
   * where the projection cannot be gathered that way (the caller computes all).
   */
  liveProjection(i: number, x: Value): [Value, Value, Value] | undefined {
    const g = this.g;
    const cfg = this.cfg;
    const live = this.liveAt(i);
    if (!live || i < this.start) return undefined;
    const cols = receiverColumnPlan(cfg, i, this.wa.slot, live);
    if (!cols) return undefined;
    const R = attentionReceivers(cfg, i);
    const kq = cfg.layers[i].heads.length;
    const kv = (R - kq) / 2;
    const dh = cfg.dHead;
    const d = this.d;
    const n = live.length;
    // The live columns are fed (edge_live_w.{i}, edge_live_b.{i}: gatherReceiverColumns).
    const w = g.input(`edge_live_w.${i}`, cols.layout === 'in_out' ? [d, n * dh] : [n * dh, d]);
    const b = cols.parts[0].b ? g.input(`edge_live_b.${i}`, [n * dh]) : undefined;
    let y = linear(g, x, w, cols.layout, b); // [B, T, n·dh]
    y = g.reshape(y, [0, 0, n, dh], [x.shape[0], x.shape[1], n, dh]);
    // Scatter into [B, T, R, dh]: each receiver reads its own slot or, when not live, a zero one.
    const zero = g.mul(g.slice(y, g.ints([0]), g.ints([1]), [2], [x.shape[0], x.shape[1], 1, dh]), 0);
    const slot = new Float64Array(R).fill(n);
    live.forEach((r, j) => (slot[r] = j));
    const all = g.gather(g.concat([y, zero], 2), g.constant(slot, [R], 'int64'), 2);
    return g.split(all, 2, [kq, kv, kv]) as [Value, Value, Value];
  }

  /** Whether layer position j's MLP is not computed (EdgeSpec.skipMlp). */
  skipsMlp(j: number): boolean {
    return this.spec.skipMlp?.includes(j) ?? false;
  }

  /** Layer position j's MLP replacement, [B or 1, R, d], where the MLP is not computed. */
  mlpReplacement(j: number, atMetric: boolean): Value {
    if (j < this.start || !this.skipsMlp(j)) throw new Error(`layer position ${j}: its MLP is computed`);
    return this.replacement(`edge_mlp_repl.${j}`, [this.d], atMetric);
  }

  /** Layer position j's heads as senders: z [B, R, k, dh] after any hook_z intervention. */
  addHeads(j: number, z: Value, atMetric: boolean): void {
    const k = this.cfg.layers[j].heads.length;
    if (k === 0 || !this.readsHeads(j)) return;
    const g = this.g;
    this.pieces.push(this.heads(j, g.sub(this.replacement(`edge_z_repl.${j}`, [k, this.cfg.dHead], atMetric), z), 'run', atMetric));
  }

  /** Layer position j's MLP as a sender: out [B, R, d], its output bias included. */
  addMlp(j: number, out: Value, atMetric: boolean): void {
    if (!this.cfg.layers[j].mlp || !this.readsMlp(j)) return;
    const delta = this.g.sub(this.replacement(`edge_mlp_repl.${j}`, [this.d], atMetric), out);
    this.pieces.push(this.single(sendersBefore(this.cfg, j) + this.cfg.layers[j].heads.length, delta, 'run', atMetric));
  }

  /**
   * Σ_S mask[b, a, S] · delta_S over the senders of `used` (sender groups, in order): [B, A, T, d],
   * or with `metricRows` [B, A, 1, d] at each row's metric position.
   *
   * With `joined`, consecutive sender groups of one kind are concatenated and mixed by one product:
   * for many receivers (A large) the per-group products each write a full [B, A, T, d] that a chain
   * of additions then reads and writes again — measured as half of an ACDC batch's time on the
   * GPT-2-small shape — while copying the deltas once costs a fraction of that. For one or two
   * receivers the outputs are small and the copy would dominate, so the groups stay apart.
   */
  private mix(mask: Value, used: Mixable[], metricRows: boolean, A: number | string, joined: boolean): Value {
    const g = this.g;
    const d = this.d;
    const runs: Mixable[][] = [];
    for (const p of used) {
      const last = runs.at(-1);
      if (joined && last && last[0].kind === p.kind && last[0].atMetric === p.atMetric) last.push(p);
      else runs.push([p]);
    }
    const sizes = runs.map((r) => r.reduce((a, p) => a + p.size, 0));
    const masks = runs.length === 1 ? [mask] : g.split(mask, 2, sizes);
    const BA = g.slice(g.shapeOf(mask), g.ints([0]), g.ints([2]), [0], [2]); // [B, A]
    let total: Value | undefined;
    runs.forEach((run, idx) => {
      const m = masks[idx];
      const { kind, atMetric } = run[0];
      const size = sizes[idx];
      const R = atMetric ? 1 : 'T';
      const flat = run.length === 1 ? this.flat(run[0]) : g.concat(run.map((p) => this.flat(p)), 1);
      let mixed: Value;
      if (kind === 'pre') {
        // Rows are prompt-major (b = u·C + c): [U, C·A, S] @ [U, S, T·d].
        const U = g.slice(g.shapeOf(run[0].value), g.ints([0]), g.ints([1]), [0], [1]);
        const mm = g.reshapeTo(m, g.concat([U, g.ints([-1, size])], 0), ['U', `C*${A}`, size]);
        mixed = g.matmul(mm, flat);
      } else {
        mixed = g.matmul(m, flat);
      }
      // Back to [B, A, R, d].
      let v = g.reshapeTo(mixed, g.concat([BA, g.ints([-1, d])], 0), ['B', A, R, d]);
      if (metricRows && !atMetric) v = g.transpose(this.rowsOf(g.transpose(v, [0, 2, 1, 3])), [0, 2, 1, 3]);
      total = total ? g.add(total, v) : v;
    });
    return total!;
  }

  /** The sender groups holding senders [from, count), which must start and end at group boundaries. */
  private piecesBetween(from: number, count: number): Piece[] {
    const used: Piece[] = [];
    let n = 0;
    for (const p of this.pieces) {
      if (n >= count) break;
      if (n + p.size > count) throw new Error('edge mask does not end at a sender-layer boundary');
      if (n >= from) used.push(p);
      else if (n + p.size > from) throw new Error('edge mask does not start at a sender-layer boundary');
      n += p.size;
    }
    if (n !== count) throw new Error(`edge mask covers ${count} senders, the graph has ${n} before this receiver`);
    return used;
  }

  /** Senders' deltas as [U or B, size, T·d] (or [.., size, d] at the metric rows). */
  private flat(p: Mixable): Value {
    const g = this.g;
    return g.reshapeTo(p.value, g.concat([g.slice(g.shapeOf(p.value), g.ints([0]), g.ints([2]), [0], [2]), g.ints([-1])], 0), [p.kind === 'pre' ? 'U' : 'B', p.size, p.atMetric ? this.d : 'T*d']);
  }

  /** Σ_S mask[a, S] · delta_S over the senders before the start, one mask for all rows: [U, A, T, d]. */
  private sharedMix(mask: Value, count: number, A: number | string): Value {
    const g = this.g;
    const pieces = this.piecesBetween(0, count);
    if (pieces.some((p) => p.kind !== 'pre')) throw new Error('a shared mask covers only the senders before the start');
    const all = pieces.length === 1 ? this.flat(pieces[0]) : g.concat(pieces.map((p) => this.flat(p)), 1); // [U, S_pre, T·d]
    const mixed = g.matmul(mask, all); // [U, A, T·d]
    return g.reshapeTo(mixed, g.concat([g.slice(g.shapeOf(mixed), g.ints([0]), g.ints([2]), [0], [2]), g.ints([-1, this.d])], 0), ['U', A, 'T', this.d]);
  }

  /**
   * The selected receivers' inputs, resid + Δ, normed: [B, A, T, d] (A the selection's size, or
   * every receiver of the layer).
   */
  private receiverInputs(i: number, resid: Value, A: number | string): Value {
    const g = this.g;
    const cfg = this.cfg;
    const perRow = this.spec.select === 'row';
    const S = sendersBefore(cfg, i);
    let x: Value; // [B, A, T, d]
    const fa = this.fromAblatedAt(i);
    if (fa) {
      const used = this.pickSenders(S, fa.senders);
      x = g.add(g.unsqueeze(this.ablatedStream(i, resid), [1]), this.mix(g.input(`edge_att_mask.${i}`, ['B', A, fa.senders.length]), used, false, A, true));
    } else if (this.spec.sharedPre?.includes(i)) {
      if (perRow || i <= this.start) throw new Error(`shared pre-start masks need a shared selection after the start (layer position ${i})`);
      const pre = sendersBefore(cfg, this.start);
      // [A, S_pre] @ [U, S_pre, T·d] → [U, 1, A, T, d], added to the rows' own mix as [U, C, A, T, d].
      const preMix = this.sharedMix(g.input(`edge_att_mask_pre.${i}`, [A, pre]), pre, A);
      const rows = g.add(g.unsqueeze(resid, [1]), this.mix(g.input(`edge_att_mask.${i}`, ['B', A, S - pre]), this.piecesBetween(pre, S), false, A, true));
      const U = g.slice(g.shapeOf(preMix), g.ints([0]), g.ints([1]), [0], [1]);
      const byPrompt = g.reshapeTo(rows, g.concat([U, g.ints([-1]), g.slice(g.shapeOf(rows), g.ints([1]), g.ints([4]), [0], [3])], 0), ['U', 'C', A, 'T', this.d]);
      x = g.reshapeTo(g.add(byPrompt, g.unsqueeze(preMix, [1])), g.shapeOf(rows), rows.shape);
    } else {
      x = g.add(g.unsqueeze(resid, [1]), this.mix(g.input(`edge_att_mask.${i}`, ['B', A, S]), this.piecesBetween(0, S), false, A, !perRow));
    }
    return norm(g, cfg, x, this.wa.must('norm1.w', i), this.wa.w('norm1.b', i));
  }

  private fromAblatedAt(i: number): { layer: number; senders: number[] } | undefined {
    const fa = this.spec.fromAblated?.find((f) => f.layer === i);
    if (fa && (i < this.start || this.spec.select === 'row' || this.spec.sharedPre?.includes(i) || this.routesEvery(i))) {
      throw new Error(`layer position ${i}: the fully ablated stream needs a shared selection, without sharedPre or everyReceiver`);
    }
    return fa;
  }

  /** What layer position i's shared norm and q/k/v projection read: the fully ablated stream (EdgeSpec.fromAblated) or resid. */
  sharedInput(i: number, resid: Value): Value {
    return this.fromAblatedAt(i) ? this.ablatedStream(i, resid) : resid;
  }

  /** The listed senders (ascending canonical indices, all before `count`) as mixing reads them. */
  private pickSenders(count: number, senders: number[]): Mixable[] {
    const used = this.piecesBetween(0, count).flatMap((p) => {
      const slots = senders.filter((x) => x >= p.first && x < p.first + p.size).map((x) => x - p.first);
      return slots.length === 0 ? [] : [p.pick(slots)];
    });
    if (used.reduce((n, p) => n + p.size, 0) !== senders.length) throw new Error(`senders outside the ${count} a receiver reads`);
    return used;
  }

  /** The attention's fully ablated stream at layer position i, from its resid [B, T, d] (one per layer: the shared path and the selected receivers read it). */
  private ablatedStream(i: number, resid: Value): Value {
    let v = this.streams.get(i);
    if (!v) this.streams.set(i, (v = this.ablatedSum(sendersBefore(this.cfg, i), resid)));
    return v;
  }

  /**
   * x [B, T, d] + Σ over the first `count` senders of (replacement − output): the in-run groups'
   * sums per row (a running sum, each group's added once for the whole graph), the earlier ones'
   * per prompt, added to each of its rows.
   */
  private ablatedSum(count: number, x: Value): Value {
    const g = this.g;
    const n = this.piecesBetween(0, count).length;
    if (this.pieces.slice(0, n).some((p) => p.atMetric)) throw new Error('the fully ablated stream is built at every position');
    const run = this.prefixSum(n, 'run');
    const rows = run ? g.add(x, run) : x;
    const pre = this.prefixSum(n, 'pre')!; // [U, T, d]: the input is always there
    const U = g.slice(g.shapeOf(pre), g.ints([0]), g.ints([1]), [0], [1]);
    const byPrompt = g.reshapeTo(rows, g.concat([U, g.ints([-1]), g.slice(g.shapeOf(rows), g.ints([1]), g.ints([3]), [0], [2])], 0), ['U', 'C', 'T', this.d]);
    return g.reshapeTo(g.add(byPrompt, g.unsqueeze(pre, [1])), g.shapeOf(rows), rows.shape);
  }

  /** Σ of the totals of the first n pieces of one kind (memoised, so each is added once). */
  private prefixSum(n: number, kind: Piece['kind']): Value | undefined {
    const key = `${kind}${n}`;
    if (this.sums.has(key)) return this.sums.get(key);
    let v: Value | undefined;
    if (n > 0) {
      const prev = this.prefixSum(n - 1, kind);
      const p = this.pieces[n - 1];
      v = p.kind !== kind ? prev : prev ? this.g.add(prev, p.total()) : p.total();
    }
    this.sums.set(key, v);
    return v;
  }

  /** Whether every attention receiver of layer position i reads its own input (EdgeSpec.everyReceiver). */
  routesEvery(i: number): boolean {
    return this.spec.everyReceiver?.includes(i) ?? false;
  }

  /**
   * The attention's q, k, v ([B, T, n, dh], all positions) when every receiver has its own input:
   * no shared projection to swap into.
   */
  attentionEvery(i: number, resid: Value): [Value, Value, Value] {
    const g = this.g;
    const cfg = this.cfg;
    if (this.spec.select === 'row') throw new Error('every receiver routed needs a shared selection');
    const R = attentionReceivers(cfg, i);
    const kq = cfg.layers[i].heads.length;
    const kv = (R - kq) / 2;
    const proj = receiverProjections(g, cfg, i, this.wa);
    let p = perSlotMatmul(g, this.receiverInputs(i, resid, R), proj.w); // [B, R, T, dh]
    if (proj.b) p = g.add(p, g.unsqueeze(proj.b, [-2]));
    return g.split(g.transpose(p, [0, 2, 1, 3]), 2, [kq, kv, kv]) as [Value, Value, Value];
  }

  /**
   * The attention's q, k, v ([B, T, n, dh], all positions) with the selected receivers' inputs
   * replaced: resid + Δ, normed and projected with that receiver's own weights.
   */
  attention(i: number, resid: Value, q: Value, k: Value, v: Value): [Value, Value, Value] {
    const g = this.g;
    const cfg = this.cfg;
    const R = attentionReceivers(cfg, i);
    const kq = cfg.layers[i].heads.length;
    const kv = (R - kq) / 2;
    // Every receiver cut from every sender: the shared path already read the fully ablated stream.
    if (this.fromAblatedAt(i)?.senders.length === 0) return [q, k, v];
    // Each layer's count of selected receivers is its own symbolic dim (onnxruntime checks names agree).
    const A = `Arecv${i}`;
    const perRow = this.spec.select === 'row';
    const sel = g.input(`edge_att_sel.${i}`, perRow ? ['B', A] : [A], 'int64');
    const y = this.receiverInputs(i, resid, A);
    const proj = receiverProjections(g, cfg, i, this.wa);
    // Each selected receiver's own projection: weights [A, d, dh] (or [B, A, d, dh] per row).
    let p = perRow ? g.matmul(y, g.gather(proj.w, sel)) : perSlotMatmul(g, y, g.gather(proj.w, sel)); // [B, A, T, dh]
    if (proj.b) p = g.add(p, g.unsqueeze(g.gather(proj.b, sel), [-2]));
    // Swap the selected receivers into the shared [B, T, R, dh] projections with a one-hot [A, R]
    // (per row: [B, 1, A, R], whose zero rows leave padding out).
    let onehot: Value;
    if (perRow) {
      onehot = g.unsqueeze(g.input(`edge_att_onehot.${i}`, ['B', A, R]), [1]);
    } else {
      const eye = new Float64Array(R * R);
      for (let r = 0; r < R; r++) eye[r * R + r] = 1;
      onehot = g.gather(g.constant(eye, [R, R]), sel);
    }
    const all = g.concat([q, k, v], 2);
    const diff = g.sub(g.transpose(p, [0, 2, 1, 3]), g.matmul(onehot, all)); // [B, T, A, dh]
    const swapped = g.add(all, g.matmul(g.transpose(onehot, perRow ? [0, 1, 3, 2] : [1, 0]), diff));
    const [q2, k2, v2] = g.split(swapped, 2, [kq, kv, kv]);
    return [q2, k2, v2];
  }

  /** The MLP's input x [B, R, d] (R = 1 in a metric-only last layer) with its ablated edges. */
  mlpInput(i: number, x: Value, atMetric: boolean): Value {
    const g = this.g;
    const S = mlpReceiverSenders(this.cfg, i);
    const fa = this.spec.mlpFromAblated?.find((f) => f.layer === i);
    if (fa) {
      if (atMetric || i < this.start) throw new Error(`layer position ${i}: an MLP measured from the fully ablated stream must be after the start, at every position`);
      const stream = this.ablatedSum(S, x);
      if (fa.senders.length === 0) return stream;
      const mixed = this.mix(g.input(`edge_mlp_mask.${i}`, ['B', 1, fa.senders.length]), this.pickSenders(S, fa.senders), false, 1, false);
      return g.add(stream, g.squeeze(mixed, [1]));
    }
    const mask = g.input(`edge_mlp_mask.${i}`, ['B', 1, S]);
    return g.add(x, g.squeeze(this.mix(mask, this.piecesBetween(0, S), atMetric, 1, false), [1]));
  }

  /** The final residual stream [B, R, d] (R = 1 when it is only at the metric rows) with the logits' ablated edges. */
  logitsInput(resid: Value, atMetric: boolean): Value {
    const g = this.g;
    const S = sendersBefore(this.cfg, this.cfg.layers.length);
    const mask = g.input('edge_logits_mask', ['B', 1, S]);
    return g.add(resid, g.squeeze(this.mix(mask, this.piecesBetween(0, S), atMetric, 1, false), [1]));
  }
}
