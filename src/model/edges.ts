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
 *
 * Graph inputs (U = prompts, B = rows, T = length, k / kv = the layer's query / key-value heads):
 *   edge_pre_input [U, T, d]                input: replacement − clean embedding
 *   edge_pre_z.{j} [U, T, k, dh]            j < start: hook_z replacement − clean
 *   edge_pre_mlp.{j} [U, T, d]              j < start: hook_mlp_out replacement − clean
 *   edge_z_repl.{j} / edge_mlp_repl.{j}     j ≥ start: replacement values, [1, 1, ...] or [B, T, ...]
 *   edge_att_sel.{i} [A] int64, edge_att_mask.{i} [B, A, S_i]      S_i senders before layer i
 *     (sharedPre: edge_att_mask_pre.{i} [A, S_pre] and edge_att_mask.{i} [B, A, S_i − S_pre])
 *     (select 'row': edge_att_sel.{i} [B, A], edge_att_onehot.{i} [B, A, R], a selection per row)
 *   edge_mlp_mask.{i} [B, 1, S]             S: the MLP receiver's senders
 *   edge_logits_mask [B, 1, S_all]
 * Masks may hold fractions (a partly ablated edge), which finite-difference tests use.
 */
import type { Graph, Value } from '../onnx/graph.ts';
import { norm } from './blocks.ts';
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

interface Piece {
  /** Senders it holds (consecutive in canonical order). */
  size: number;
  /** [U or B, size, R, d]: 'pre' pieces are per prompt, 'run' pieces per row. */
  value: Value;
  kind: 'pre' | 'run';
  /** R is 1 (the metric rows of a metric-only last layer) instead of T. */
  atMetric: boolean;
}

export class EdgeRouter {
  private readonly pieces: Piece[] = [];
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
    const pre = (size: number, value: Value) => this.pieces.push({ size, value, kind: 'pre', atMetric: false });
    pre(1, g.unsqueeze(g.input('edge_pre_input', ['U', 'T', d]), [1]));
    for (let j = 0; j < start; j++) {
      const l = cfg.layers[j];
      if (l.heads.length > 0) pre(l.heads.length, headOutputs(g, g.input(`edge_pre_z.${j}`, ['U', 'T', l.heads.length, cfg.dHead]), headOutputWeights(g, cfg, j, wa)));
      if (l.mlp) pre(1, g.unsqueeze(g.input(`edge_pre_mlp.${j}`, ['U', 'T', d]), [1]));
    }
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

  /** Layer position j's heads as senders: z [B, R, k, dh] after any hook_z intervention. */
  addHeads(j: number, z: Value, atMetric: boolean): void {
    const k = this.cfg.layers[j].heads.length;
    if (k === 0 || !this.readsHeads(j)) return;
    const g = this.g;
    const delta = g.sub(this.replacement(`edge_z_repl.${j}`, [k, this.cfg.dHead], atMetric), z);
    this.pieces.push({ size: k, value: headOutputs(g, delta, headOutputWeights(g, this.cfg, j, this.wa)), kind: 'run', atMetric });
  }

  /** Layer position j's MLP as a sender: out [B, R, d], its output bias included. */
  addMlp(j: number, out: Value, atMetric: boolean): void {
    if (!this.cfg.layers[j].mlp || !this.readsMlp(j)) return;
    const delta = this.g.sub(this.replacement(`edge_mlp_repl.${j}`, [this.d], atMetric), out);
    this.pieces.push({ size: 1, value: this.g.unsqueeze(delta, [1]), kind: 'run', atMetric });
  }

  /**
   * Σ_S mask[b, a, S] · delta_S over the first `count` senders: [B, A, T, d], or with `metricRows`
   * [B, A, 1, d] at each row's metric position.
   *
   * With `joined`, consecutive sender groups of one kind are concatenated and mixed by one product:
   * for many receivers (A large) the per-group products each write a full [B, A, T, d] that a chain
   * of additions then reads and writes again — measured as half of an ACDC batch's time on the
   * GPT-2-small shape — while copying the deltas once costs a fraction of that. For one or two
   * receivers the outputs are small and the copy would dominate, so the groups stay apart.
   */
  private mix(mask: Value, count: number, metricRows: boolean, A: number | string, joined: boolean, from = 0): Value {
    const g = this.g;
    const d = this.d;
    const used = this.piecesBetween(from, count);
    const runs: Piece[][] = [];
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

  /** A sender group's deltas as [U or B, size, T·d] (or [.., size, d] at the metric rows). */
  private flat(p: Piece): Value {
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
    if (this.spec.sharedPre?.includes(i)) {
      if (perRow || i <= this.start) throw new Error(`shared pre-start masks need a shared selection after the start (layer position ${i})`);
      const pre = sendersBefore(cfg, this.start);
      // [A, S_pre] @ [U, S_pre, T·d] → [U, 1, A, T, d], added to the rows' own mix as [U, C, A, T, d].
      const preMix = this.sharedMix(g.input(`edge_att_mask_pre.${i}`, [A, pre]), pre, A);
      const rows = g.add(g.unsqueeze(resid, [1]), this.mix(g.input(`edge_att_mask.${i}`, ['B', A, S - pre]), S, false, A, true, pre));
      const U = g.slice(g.shapeOf(preMix), g.ints([0]), g.ints([1]), [0], [1]);
      const byPrompt = g.reshapeTo(rows, g.concat([U, g.ints([-1]), g.slice(g.shapeOf(rows), g.ints([1]), g.ints([4]), [0], [3])], 0), ['U', 'C', A, 'T', this.d]);
      x = g.reshapeTo(g.add(byPrompt, g.unsqueeze(preMix, [1])), g.shapeOf(rows), rows.shape);
    } else {
      x = g.add(g.unsqueeze(resid, [1]), this.mix(g.input(`edge_att_mask.${i}`, ['B', A, S]), S, false, A, !perRow));
    }
    return norm(g, cfg, x, this.wa.must('norm1.w', i), this.wa.w('norm1.b', i));
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
    const mask = g.input(`edge_mlp_mask.${i}`, ['B', 1, S]);
    return g.add(x, g.squeeze(this.mix(mask, S, atMetric, 1, false), [1]));
  }

  /** The final residual stream [B, R, d] (R = 1 when it is only at the metric rows) with the logits' ablated edges. */
  logitsInput(resid: Value, atMetric: boolean): Value {
    const g = this.g;
    const S = sendersBefore(this.cfg, this.cfg.layers.length);
    const mask = g.input('edge_logits_mask', ['B', 1, S]);
    return g.add(resid, g.squeeze(this.mix(mask, S, atMetric, 1, false), [1]));
  }
}
