/**
 * The one definition of the forward pass, for every architecture: embed → the layers the config
 * lists → the readout the caller asks for. Running, caching, interventions, gradients, training and
 * export all build their graphs through `buildForward`; nothing else computes the model.
 *
 * A layer, as the config chooses:
 *     a = attn(norm1(x))                 (rotary or learned positions, grouped-query heads, window)
 *     sequential:  x = x + a;  x = x + mlp(norm2(x))
 *     parallel:    x = x + a + mlp(norm2(x_in))         (GPT-NeoX)
 * Weights are graph inputs named as in the file, read by role from the tensor table (tensors.ts).
 *
 * Hook points carry TransformerLens names, with the layer's original index (a pruned model keeps
 * the numbering of the model it was cut from).
 *
 * Edge interventions (edges.ts) give each head's q/k/v input, an MLP's input or the logits' input its
 * own residual stream, with some senders' outputs replaced; the normal path is untouched without them.
 *
 * For metric-only runs the last layer can be computed at the metric positions only
 * (`lastLayerAtMetric`): queries, attention output and MLP at one row per prompt, keys and values at
 * every position. Same numbers, a fraction of the last layer's work.
 */
import type { Graph, Shape, Value } from '../onnx/graph.ts';
import { activation, attend, intervene, linear, norm, rotate, splitFused } from './blocks.ts';
import { batchDim, metricReadout, type Readout } from './readout.ts';
import { EdgeRouter, type EdgeSpec } from './edges.ts';
import { rotaryTables } from './arch/rope.ts';
import { tensorTable } from './arch/index.ts';
import { slotShape, type Role, type TensorSlot } from './tensors.ts';
import { kvHeadsOf, mlpWidth, type LayerLayout, type ModelConfig } from './types.ts';

/** How a hook's replacement value is shaped: one per row and position, or one vector for all. */
export type ReplacementShape = 'row' | 'const';

export interface InterventionSpec {
  /** Layer positions (indices into cfg.layers) whose hook_z takes inputs `z_keep.{i}` and `z_value.{i}`. */
  z: Map<number, ReplacementShape>;
  /** Layer positions whose hook_mlp_out takes `mlp_keep.{i}` and `mlp_value.{i}`. */
  mlp: Map<number, ReplacementShape>;
  /**
   * Layer positions whose MLP neurons (mlp.hook_post: the activations the output projection reads,
   * after the gate for a gated MLP) take `neuron_keep.{i}` [B, 1, m] and one vector `neuron_value.{i}` [1, 1, m].
   */
  neurons?: Set<number>;
  /** Edge interventions: receivers read their senders with some edges ablated (edges.ts). */
  edges?: EdgeSpec;
  /**
   * Intervention values computed inside the graph, by input name (`z_value.{i}`, `mlp_keep.{i}`, …),
   * in place of graph inputs of those names: a graph whose replacements come from another pass
   * through the same weights (EAP-IG along activations) never sends them out and back.
   */
  given?: Map<string, Value>;
}

export interface ForwardSpec {
  /** Position in cfg.layers where the run starts. */
  startLayer: number;
  /** Read `tokens`, or `resid` (that layer's hook_resid_pre). Default: tokens at layer 0, resid later. */
  fromResid?: boolean;
  /**
   * Prefix of the run's own inputs (`tokens` or `resid`, the metric positions, the attention mask
   * and the readout's answers), default none. A second forward pass built into the same graph —
   * another batch through the same weights — takes its own; the weights and rotary tables are
   * shared by name.
   */
  feedPrefix?: string;
  /**
   * With `fromResid`, the starting residual stream as a value built in the same graph ([B, T, d])
   * instead of the input `resid` (a run whose rows start from another pass's stream).
   */
  residValue?: Value;
  /** Position after the last layer to run (default: all layers); the readout must then be 'none'. */
  endLayer?: number;
  interventions?: InterventionSpec;
  readout: Readout;
  /** With a metric readout, compute the last layer only at the metric positions (see the file comment). */
  lastLayerAtMetric?: boolean;
  /**
   * Rotary tables: by default graph inputs `rope_cos`/`rope_sin` [T, dims/2] that the caller feeds
   * for the run's length; with a number, constants of that many positions inside the graph, so the
   * graph needs no input but the tokens (self-contained exports).
   */
  ropeConstants?: number;
  /**
   * Input `attention_mask` int64 [B, T] (1: a real token, 0: padding): keys where it is 0 are hidden
   * from every query, as Hugging Face's attention_mask does. Positions stay 0..T−1, so pad on the right.
   */
  attentionMask?: boolean;
}

export interface ForwardValues {
  /** Hook values by TransformerLens name. */
  hooks: Map<string, Value>;
  /**
   * The metric-only last layer's hook values (`lastLayerAtMetric`), kept apart because most are
   * [B, 1, ...] at the metric positions rather than [B, T, ...] (its norm's output, keys and values
   * are at every position).
   */
  metricLayerHooks: Map<string, Value>;
  /** The weight inputs the graph uses, by tensor name. */
  weights: Map<string, Value>;
  /** Metric readout: [B, A] logits of the answers, [B] the metric. */
  answerLogits?: Value;
  metric?: Value;
  /** [B, T, V] (readout 'logits') or [B, V] (metric readout with logits). */
  logits?: Value;
  /** [B, K] logits of `select_tokens`. */
  selected?: Value;
}

export function hookPrefix(layout: LayerLayout): string {
  return `blocks.${layout.sourceLayer}`;
}

/** Query slot s of a layer reads key/value slot kvOf[s]; undefined when that is s itself. */
export function kvSlots(cfg: ModelConfig, layout: LayerLayout): number[] | undefined {
  const kv = kvHeadsOf(cfg, layout);
  const group = cfg.nHead / cfg.nKvHead;
  const kvOf = layout.heads.map((h) => kv.indexOf(Math.floor(h / group)));
  return kvOf.length === kv.length && kvOf.every((k, s) => k === s) ? undefined : kvOf;
}

export function buildForward(g: Graph, cfg: ModelConfig, spec: ForwardSpec): ForwardValues {
  const prefix = spec.feedPrefix ?? '';
  const batch = batchDim(prefix);
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const slots = new Map<string, TensorSlot>();
  for (const s of tensorTable(cfg)) slots.set(`${s.role}@${s.layer ?? ''}`, s);
  const weights = new Map<string, Value>();
  const slotOf = (role: Role, layer?: number) => slots.get(`${role}@${layer ?? ''}`);
  /** The weight input for a role, or undefined where the table has no such tensor. */
  const w = (role: Role, layer?: number): Value | undefined => {
    const s = slotOf(role, layer);
    if (!s) return undefined;
    let v = weights.get(s.name);
    if (!v) {
      v = g.input(s.name, slotShape(cfg, s));
      weights.set(s.name, v);
    }
    return v;
  };
  const must = (role: Role, layer?: number): Value => {
    const v = w(role, layer);
    if (!v) throw new Error(`${cfg.arch}: no ${role} tensor${layer === undefined ? '' : ` in layer position ${layer}`}`);
    return v;
  };
  const proj = (x: Value, role: 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'down', layer: number): Value => {
    const s = slotOf(`${role}.w`, layer)!;
    return linear(g, x, must(`${role}.w`, layer), s.layout!, w(`${role}.b`, layer));
  };

  const hooks = new Map<string, Value>();
  const metricLayerHooks = new Map<string, Value>();
  const hook = (name: string, v: Value): Value => {
    hooks.set(name, v);
    return v;
  };
  const end = spec.endLayer ?? cfg.layers.length;
  const iv: InterventionSpec = spec.interventions ?? { z: new Map(), mlp: new Map() };
  const ivInput = (name: string, shape: Shape): Value => iv.given?.get(name) ?? g.input(name, shape);
  const ints = (n: number) => g.constant([n], [], 'int64');

  let resid: Value;
  let seqLen: Value; // scalar int64 T
  if (!(spec.fromResid ?? spec.startLayer > 0)) {
    if (spec.startLayer !== 0) throw new Error('a run from tokens starts at layer 0');
    const tokens = g.input(`${prefix}tokens`, [batch, 'T'], 'int64');
    seqLen = g.squeeze(g.slice(g.shapeOf(tokens), g.ints([1]), g.ints([2]), [0], [1]), [0]);
    resid = hook('hook_embed', g.gather(must('embed'), tokens));
    if (cfg.positions.kind === 'learned') {
      const positions = g.range(ints(0), seqLen, ints(1), 'T');
      resid = g.add(resid, hook('hook_pos_embed', g.gather(must('pos_embed'), positions)));
    }
  } else {
    resid = spec.residValue ?? g.input(`${prefix}resid`, [batch, 'T', d]);
    seqLen = g.squeeze(g.slice(g.shapeOf(resid), g.ints([1]), g.ints([2]), [0], [1]), [0]);
  }
  const positions = () => g.range(ints(0), seqLen, ints(1), 'T');

  // Metric positions: flat_pos [B] = b·T + position, metric_pos [B] = position.
  let flatPosIn: Value | undefined;
  const flatPos = (): Value => (flatPosIn ??= g.input(`${prefix}flat_pos`, [batch], 'int64'));
  let metricPosIn: Value | undefined;
  const metricPos = (): Value => (metricPosIn ??= g.input(`${prefix}metric_pos`, [batch], 'int64'));
  /** x [B, T, ...rest] → [B, 1, ...rest] at each row's metric position. */
  const rowsOf = (x: Value): Value => {
    const rest = x.shape.slice(2);
    const flat = g.reshape(x, [-1, ...rest.map((r) => r as number)], [`${batch}*T`, ...rest]);
    return g.unsqueeze(g.gather(flat, flatPos()), [1]);
  };

  // Additive attention masks (exp(−1e9) is exactly 0 in float32 and float64, like TransformerLens's
  // −inf fill, without NaN risk), built from T at run time so one graph fits every length.
  const masks = new Map<string, Value>();
  let attentionMaskIn: Value | undefined;
  const maskFor = (atMetric: boolean, window: number | undefined): Value => {
    const key = `${atMetric}|${window ?? ''}`;
    let m = masks.get(key);
    if (!m) {
      const keys = g.unsqueeze(positions(), [0]); // [1, T]
      const queries = atMetric ? g.unsqueeze(metricPos(), [1]) : g.unsqueeze(positions(), [1]); // [B|T, 1]
      let hidden = g.greater(keys, queries);
      if (window !== undefined) {
        // Query i sees key j when 0 ≤ i − j < window: j ≤ i − window is hidden too.
        const tooOld = g.greater(g.sub(queries, g.constant([window - 1], [], 'int64')), keys);
        hidden = g.or(hidden, tooOld);
      }
      if (atMetric) hidden = g.unsqueeze(hidden, [1, 2]); // [B, 1, 1, T]; else [T, T]
      if (spec.attentionMask) {
        const mask = (attentionMaskIn ??= g.input(`${prefix}attention_mask`, [batch, 'T'], 'int64'));
        hidden = g.or(hidden, g.unsqueeze(g.greater(g.constant([1], [], 'int64'), mask), [1, 2])); // [B, 1, R, T]
      }
      m = g.where(hidden, g.scalar(-1e9), g.scalar(0));
      masks.set(key, m);
    }
    return m;
  };

  // Rotary tables [T, half] (or [B, 1, 1, half] at the metric positions).
  let rope: { cos: Value; sin: Value; half: number } | undefined;
  if (cfg.positions.kind === 'rotary') {
    const half = cfg.positions.dims / 2;
    let cos: Value;
    let sin: Value;
    if (spec.ropeConstants !== undefined) {
      const t = rotaryTables(cfg.positions, spec.ropeConstants);
      const cut = (x: Value) => g.slice(x, g.ints([0]), g.unsqueeze(seqLen, [0]), [0], ['T', half]);
      cos = cut(g.constant(t.cos, [spec.ropeConstants, half]));
      sin = cut(g.constant(t.sin, [spec.ropeConstants, half]));
    } else {
      cos = g.input('rope_cos', ['T', half]);
      sin = g.input('rope_sin', ['T', half]);
    }
    rope = { cos, sin, half };
  }
  const ropeAt = (atMetric: boolean) => {
    const r = rope!;
    if (!atMetric) return { cos: g.unsqueeze(r.cos, [0, 2]), sin: g.unsqueeze(r.sin, [0, 2]) };
    const at = (x: Value) => g.unsqueeze(g.gather(x, metricPos()), [1, 2]);
    return { cos: at(r.cos), sin: at(r.sin) };
  };

  const metricOnly = spec.lastLayerAtMetric === true && spec.readout.kind === 'metric' && end === cfg.layers.length;
  const router = iv.edges ? new EdgeRouter(g, cfg, iv.edges, spec.startLayer, { w, must, slot: slotOf }, rowsOf) : undefined;
  for (let i = spec.startLayer; i < end; i++) {
    const layout = cfg.layers[i];
    const p = hookPrefix(layout);
    resid = hook(`${p}.hook_resid_pre`, resid);
    // In the metric-only last layer, "rows" are the metric positions: [B, 1, ...] instead of [B, T, ...].
    const atMetric = metricOnly && i === end - 1;
    const rows = (x: Value) => (atMetric ? rowsOf(x) : x);
    const hk = (name: string, v: Value) => (atMetric ? (metricLayerHooks.set(name, v), v) : hook(name, v));
    const rowDim = atMetric ? 1 : 'T';
    const residRows = rows(resid);
    const k = layout.heads.length;
    const kvCount = kvHeadsOf(cfg, layout).length;

    let attnOut: Value | undefined;
    if (k > 0) {
      let q: Value;
      let kk: Value;
      let v: Value;
      // Edge interventions swap receivers' inputs at every position, so q is computed everywhere first.
      const edgeAtt = router?.hasAttention(i) ?? false;
      const fused = slotOf('qkv.w', i);
      // Every receiver with its own input: the layer's shared norm and projection would go unread.
      const x = router?.routesEvery(i) ? undefined : hk(`${p}.ln1.hook_normalized`, norm(g, cfg, router?.sharedInput(i, resid) ?? resid, must('norm1.w', i), w('norm1.b', i)));
      // Only the live receivers' projections where some heads are dead (EdgeSpec.liveReceivers).
      const live = x ? router?.liveProjection(i, x) : undefined;
      if (!x) {
        [q, kk, v] = router!.attentionEvery(i, resid);
      } else if (live) {
        [q, kk, v] = live;
      } else if (fused) {
        // The fused output's factor structure (from the table) tells where Q, K and V sit.
        const axis = fused.layout === 'in_out' ? fused.axes[1] : fused.axes[0];
        const factors = axis.map((f) => (f === 'head' ? k : f === 'dh' ? dh : f)) as number[];
        // The q/k/v factor is the literal 3 in the table (a layer may also keep exactly 3 heads).
        [q, kk, v] = splitFused(g, proj(x, 'qkv', i), factors, axis.indexOf(3));
      } else {
        const heads = (y: Value, n: number, rowsDim: 1 | 'T') => g.reshape(y, [0, 0, n, dh], [batch, rowsDim, n, dh]);
        q = edgeAtt ? heads(proj(x, 'q', i), k, 'T') : heads(proj(rows(x), 'q', i), k, rowDim);
        kk = heads(proj(x, 'k', i), kvCount, 'T');
        v = heads(proj(x, 'v', i), kvCount, 'T');
      }
      if (edgeAtt && x) [q, kk, v] = router!.attention(i, resid, q, kk, v);
      if (fused || edgeAtt || live) q = rows(q);
      hk(`${p}.attn.hook_q`, q);
      hk(`${p}.attn.hook_k`, kk);
      hk(`${p}.attn.hook_v`, v);
      if (rope) {
        const all = ropeAt(false);
        const here = atMetric ? ropeAt(true) : all;
        q = hk(`${p}.attn.hook_rot_q`, rotate(g, q, here.cos, here.sin, rope.half));
        kk = hk(`${p}.attn.hook_rot_k`, rotate(g, kk, all.cos, all.sin, rope.half));
      }
      const window = cfg.window?.layers[layout.sourceLayer] ? cfg.window.size : undefined;
      const a = attend(g, q, kk, v, kvSlots(cfg, layout), maskFor(atMetric, window));
      hk(`${p}.attn.hook_attn_scores`, a.scores);
      hk(`${p}.attn.hook_pattern`, a.pattern);
      let z = a.z;
      const zShape = iv.z.get(i);
      if (zShape !== undefined) {
        const keep = ivInput(`z_keep.${i}`, [batch, 1, k, 1]);
        const value = ivInput(`z_value.${i}`, zShape === 'row' ? [batch, 'T', k, dh] : [1, 1, k, dh]);
        z = intervene(g, z, keep, zShape === 'row' ? rows(value) : value);
      }
      hk(`${p}.attn.hook_z`, z);
      router?.addHeads(i, z, atMetric);
      const flat = g.reshape(z, [0, 0, k * dh], [batch, rowDim, k * dh]);
      const os = slotOf('o.w', i)!;
      // A head's output excludes the shared bias (SPEC): the bias is added after the heads' sum.
      attnOut = linear(g, flat, must('o.w', i), os.layout!, w('o.b', i));
    } else {
      if (iv.z.has(i)) throw new Error(`layer ${layout.sourceLayer} has no heads to intervene on`);
      const ob = w('o.b', i);
      // Broadcast so the hook has the same [B, T, d] shape with or without heads.
      if (ob) attnOut = g.expandLike(ob, residRows);
    }
    if (attnOut) hk(`${p}.hook_attn_out`, attnOut);

    const mid = cfg.parallelResidual || !attnOut ? residRows : g.add(residRows, attnOut);
    if (!cfg.parallelResidual) resid = hk(`${p}.hook_resid_mid`, mid);
    let mlpIn = cfg.parallelResidual ? residRows : mid;
    if (router?.hasMlp(i)) mlpIn = router.mlpInput(i, mlpIn, atMetric);

    let mlpOut: Value | undefined;
    if (layout.mlp && router?.skipsMlp(i)) {
      // Cut off from every receiver: its replacement stands in (edges.ts, EdgeSpec.skipMlp), at
      // full shape so that it is a sender like any other (a constant one is [1, 1, d]).
      mlpOut = g.expandLike(router.mlpReplacement(i, atMetric), residRows);
    } else if (layout.mlp) {
      const x = hk(`${p}.ln2.hook_normalized`, norm(g, cfg, mlpIn, must('norm2.w', i), w('norm2.b', i)));
      let post: Value;
      if (cfg.mlp.gated) {
        const gate = hk(`${p}.mlp.hook_pre`, proj(x, 'gate', i));
        const up = hk(`${p}.mlp.hook_pre_linear`, proj(x, 'up', i));
        post = g.mul(activation(g, gate, cfg.mlp.activation), up);
      } else {
        post = activation(g, hk(`${p}.mlp.hook_pre`, proj(x, 'up', i)), cfg.mlp.activation);
      }
      if (iv.neurons?.has(i)) {
        const m = mlpWidth(cfg, layout);
        post = intervene(g, post, g.input(`neuron_keep.${i}`, [batch, 1, m]), g.input(`neuron_value.${i}`, [1, 1, m]));
      }
      hk(`${p}.mlp.hook_post`, post);
      mlpOut = proj(post, 'down', i);
      const mShape = iv.mlp.get(i);
      if (mShape !== undefined) {
        const keep = ivInput(`mlp_keep.${i}`, [batch, 1, 1]);
        const value = ivInput(`mlp_value.${i}`, mShape === 'row' ? [batch, 'T', d] : [1, 1, d]);
        mlpOut = intervene(g, mlpOut, keep, mShape === 'row' ? rows(value) : value);
      }
    } else {
      if (iv.mlp.has(i) || iv.neurons?.has(i)) throw new Error(`layer ${layout.sourceLayer} has no MLP to intervene on`);
      const db = w('down.b', i);
      if (db) mlpOut = g.expandLike(db, residRows);
    }
    if (mlpOut) hk(`${p}.hook_mlp_out`, mlpOut);
    if (layout.mlp && mlpOut) router?.addMlp(i, mlpOut, atMetric);
    let post = mid;
    if (cfg.parallelResidual && attnOut) post = g.add(post, attnOut);
    if (mlpOut) post = g.add(post, mlpOut);
    resid = hk(`${p}.hook_resid_post`, post);
  }
  const residAtMetric = metricOnly && end > spec.startLayer;
  if (iv.edges?.logits) resid = router!.logitsInput(resid, residAtMetric);

  const out: ForwardValues = { hooks, metricLayerHooks, weights };
  if (spec.readout.kind === 'none') return out;
  if (end !== cfg.layers.length) throw new Error('a readout needs the run to reach the last layer');

  // Tied: the same graph value as the embedding, so a training gradient sums both uses.
  const unembed = cfg.tied ? must('embed') : must('unembed');
  const finalNorm = (x: Value) => norm(g, cfg, x, must('final_norm.w'), w('final_norm.b'));
  if (spec.readout.kind === 'logits') {
    const x = hook('ln_final.hook_normalized', finalNorm(resid));
    const flat = g.reshape(x, [-1, d], [`${batch}*T`, d]);
    const V = cfg.vocabSize;
    const bt = g.slice(g.shapeOf(resid), g.ints([0]), g.ints([2]), [0], [2]);
    out.logits = g.reshapeTo(g.gemmTransB(flat, unembed), g.concat([bt, g.ints([V])], 0), [batch, 'T', V] as Shape);
    return out;
  }
  // Only the metric position of each row matters: gather those residuals before the final norm,
  // so the unembedding costs one row per prompt instead of one per position.
  const atMetric = residAtMetric ? g.squeeze(resid, [1]) : g.gather(g.reshape(resid, [-1, d], [`${batch}*T`, d]), flatPos());
  const x = hook('ln_final.hook_normalized_at_pos', finalNorm(atMetric));
  Object.assign(out, metricReadout(g, x, unembed, spec.readout, prefix));
  return out;
}
