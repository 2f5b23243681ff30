/**
 * The one definition of GPT-2's forward pass (learned positions, pre-LN, tied or separate
 * unembedding), written against the graph builder. Running, caching, interventions, gradients
 * and training all build their graphs through `buildForward`; nothing else computes the model.
 *
 * Hook points carry TransformerLens names, with the layer's original index (a pruned model keeps
 * the numbering of the model it was cut from).
 */
import type { Graph, Shape, Value } from '../onnx/graph.ts';
import type { GPT2Config, LayerLayout } from './types.ts';

/** How a hook's replacement value is shaped: one per row and position, or one vector for all. */
export type ReplacementShape = 'row' | 'const';

export interface InterventionSpec {
  /** Layer positions (indices into cfg.layers) whose hook_z takes inputs `z_keep.{i}` and `z_value.{i}`. */
  z: Map<number, ReplacementShape>;
  /** Layer positions whose hook_mlp_out takes `mlp_keep.{i}` and `mlp_value.{i}`. */
  mlp: Map<number, ReplacementShape>;
}

export type LogitsSpec =
  /** No unembedding: for caching residuals. */
  | 'none'
  /** logit[correct] and logit[incorrect] at each row's metric position (inputs `flat_pos`, `answers`). */
  | 'pair'
  /** Full-vocabulary logits at each row's metric position: output `logits` [B, V]. */
  | 'last'
  /** Full-vocabulary logits everywhere: output `logits` [B, T, V]. */
  | 'all';

export interface ForwardSpec {
  /** Position in cfg.layers where the run starts. */
  startLayer: number;
  /** Read `tokens`, or `resid` (that layer's hook_resid_pre). Default: tokens at layer 0, resid later. */
  fromResid?: boolean;
  /** Position after the last layer to run (default: all layers). */
  endLayer?: number;
  interventions?: InterventionSpec;
  logits: LogitsSpec;
  /** Unembed with wte itself (GPT-2's tying) rather than a separate `lm_head` input. */
  tied?: boolean;
  /**
   * With logits 'pair' or 'last', compute the last layer only where the metric reads it: queries,
   * attention output and MLP at each row's metric position (keys and values still at every
   * position). Same numbers, a fraction of the last layer's work. The last layer's hooks
   * (except hook_resid_pre) are then not available.
   */
  lastLayerAtMetric?: boolean;
  /** With logits 'pair' or 'last': also the logits of chosen tokens at the metric position (input `select_tokens` [B, K]). */
  selectTokens?: boolean;
}

export interface ForwardValues {
  /** Hook values by TransformerLens name. */
  hooks: Map<string, Value>;
  /** [B, 2] logits of the answer pair at the metric position, when logits = 'pair' (and for 'last'). */
  pairLogits?: Value;
  /** [B, K] logits of the `select_tokens` at the metric position. */
  selected?: Value;
  /** [B] logit[correct] − logit[incorrect], when logits = 'pair'. */
  metric?: Value;
  logits?: Value;
  /** The weight inputs the graph uses, by canonical name. */
  weights: Map<string, Value>;
}

/** Canonical names of weight inputs; HookedModel feeds tensors under the same names. */
export const weightName = {
  wte: 'wte',
  wpe: 'wpe',
  lnfG: 'lnf.g',
  lnfB: 'lnf.b',
  lmHead: 'lm_head',
  layer: (i: number, what: string) => `L${i}.${what}`,
};

export function hookPrefix(layout: LayerLayout): string {
  return `blocks.${layout.sourceLayer}`;
}

function layerNorm(g: Graph, x: Value, gain: Value, bias: Value, eps: number): Value {
  const mu = g.reduceMean(x, [-1]);
  const xc = g.sub(x, mu);
  const variance = g.reduceMean(g.pow(xc, 2), [-1]);
  return g.add(g.mul(g.div(xc, g.sqrt(g.add(variance, eps))), gain), bias);
}

function activation(g: Graph, x: Value, kind: GPT2Config['activation']): Value {
  switch (kind) {
    case 'gelu_new':
    case 'gelu_fast':
    case 'gelu_pytorch_tanh': {
      const inner = g.mul(g.add(x, g.mul(g.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return g.mul(g.mul(x, 0.5), g.add(g.tanh(inner), 1));
    }
    case 'gelu':
      return g.mul(g.mul(x, 0.5), g.add(g.erf(g.mul(x, Math.SQRT1_2)), 1));
    case 'relu':
      return g.relu(x);
  }
}

/** Replace a hook's value on rows/heads where keep = 0: out = x·keep + value·(1 − keep). */
function intervene(g: Graph, x: Value, keep: Value, value: Value): Value {
  return g.add(g.mul(x, keep), g.mul(value, g.sub(g.scalar(1, x.dtype), keep)));
}

export function buildForward(g: Graph, cfg: GPT2Config, spec: ForwardSpec): ForwardValues {
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const weights = new Map<string, Value>();
  const w = (name: string, shape: Shape): Value => {
    let v = weights.get(name);
    if (!v) {
      v = g.input(name, shape);
      weights.set(name, v);
    }
    return v;
  };
  const hooks = new Map<string, Value>();
  const hook = (name: string, v: Value): Value => {
    hooks.set(name, v);
    return v;
  };
  const end = spec.endLayer ?? cfg.layers.length;
  const iv = spec.interventions ?? { z: new Map(), mlp: new Map() };

  let resid: Value;
  let seqLen: Value; // scalar int64 T
  if (!(spec.fromResid ?? spec.startLayer > 0)) {
    if (spec.startLayer !== 0) throw new Error('a run from tokens starts at layer 0');
    const tokens = g.input('tokens', ['B', 'T'], 'int64');
    seqLen = g.squeeze(g.slice(g.shapeOf(tokens), g.ints([1]), g.ints([2]), [0], [1]), [0]);
    const embed = hook('hook_embed', g.gather(w(weightName.wte, [cfg.vocabSize, d]), tokens));
    const positions = g.range(g.constant([0], [], 'int64'), seqLen, g.constant([1], [], 'int64'), 'T');
    const pos = hook('hook_pos_embed', g.gather(w(weightName.wpe, [cfg.nCtx, d]), positions));
    resid = g.add(embed, pos);
  } else {
    resid = g.input('resid', ['B', 'T', d]);
    seqLen = g.squeeze(g.slice(g.shapeOf(resid), g.ints([1]), g.ints([2]), [0], [1]), [0]);
  }

  // Causal mask as an additive bias: exp(-1e9) is exactly 0 in float32 and float64, the same as
  // TransformerLens's -inf fill, without NaN risk. Built from T at run time, so one graph fits all lengths.
  let flatPosIn: Value | undefined;
  const flatPos = (): Value => (flatPosIn ??= g.input('flat_pos', ['B'], 'int64'));
  /** x [B, T, ...rest] → [B, 1, ...rest] at each row's metric position. */
  const rowsOf = (x: Value): Value => {
    const rest = x.shape.slice(2);
    const flat = g.reshape(x, [-1, ...rest.map((r) => r as number)], ['BT', ...rest]);
    return g.unsqueeze(g.gather(flat, flatPos()), [1]);
  };
  let keyMask: Value | undefined;
  /** [B, 1, 1, T]: keys after a row's metric position (its padding) are masked. */
  const metricKeyBias = (): Value => {
    if (!keyMask) {
      const pos = g.input('metric_pos', ['B'], 'int64');
      const r = g.range(g.constant([0], [], 'int64'), seqLen, g.constant([1], [], 'int64'), 'T');
      const after = g.greater(g.unsqueeze(r, [0]), g.unsqueeze(pos, [1]));
      keyMask = g.unsqueeze(g.where(after, g.scalar(-1e9), g.scalar(0)), [1, 2]);
    }
    return keyMask;
  };
  let causal: Value | undefined;
  const causalBias = (): Value => {
    if (!causal) {
      const r = g.range(g.constant([0], [], 'int64'), seqLen, g.constant([1], [], 'int64'), 'T');
      const future = g.greater(g.unsqueeze(r, [0]), g.unsqueeze(r, [1]));
      causal = g.where(future, g.scalar(-1e9), g.scalar(0));
    }
    return causal;
  };

  const metricOnly = spec.lastLayerAtMetric === true && (spec.logits === 'pair' || spec.logits === 'last') && end === cfg.layers.length;
  for (let i = spec.startLayer; i < end; i++) {
    const layout = cfg.layers[i];
    const p = hookPrefix(layout);
    const L = (what: string) => weightName.layer(i, what);
    resid = hook(`${p}.hook_resid_pre`, resid);
    // In the metric-only last layer, "rows" are the metric positions: [B, 1, ...] instead of [B, T, ...].
    const atMetric = metricOnly && i === end - 1;
    const rows = (x: Value) => (atMetric ? rowsOf(x) : x);
    const hk = (name: string, v: Value) => (atMetric ? v : hook(name, v));
    const rowDim = atMetric ? 1 : 'T';
    const residRows = rows(resid);
    const k = layout.heads.length;
    const bO = w(L('bO'), [d]);
    let attnOut: Value;
    if (k > 0) {
      const x = hk(`${p}.ln1.hook_normalized`, layerNorm(g, resid, w(L('ln1.g'), [d]), w(L('ln1.b'), [d]), cfg.eps));
      const qkv = g.add(g.matmul(x, w(L('wQKV'), [d, 3 * k * dh])), w(L('bQKV'), [3 * k * dh]));
      const [q, kk, v] = g.split(qkv, -1, [k * dh, k * dh, k * dh]).map((t) => g.reshape(t, [0, 0, k, dh], ['B', 'T', k, dh]));
      hk(`${p}.attn.hook_q`, q);
      hk(`${p}.attn.hook_k`, kk);
      hk(`${p}.attn.hook_v`, v);
      const qh = g.transpose(rows(q), [0, 2, 1, 3]);
      const kt = g.transpose(kk, [0, 2, 3, 1]);
      const vh = g.transpose(v, [0, 2, 1, 3]);
      const mask = atMetric ? metricKeyBias() : causalBias();
      const scores = hk(`${p}.attn.hook_attn_scores`, g.add(g.mul(g.matmul(qh, kt), 1 / Math.sqrt(dh)), mask));
      const pattern = hk(`${p}.attn.hook_pattern`, g.softmax(scores, -1));
      let z = g.transpose(g.matmul(pattern, vh), [0, 2, 1, 3]);
      const zShape = iv.z.get(i);
      if (zShape !== undefined) {
        const keep = g.input(`z_keep.${i}`, ['B', 1, k, 1]);
        const value = g.input(`z_value.${i}`, zShape === 'row' ? ['B', 'T', k, dh] : [1, 1, k, dh]);
        z = intervene(g, z, keep, zShape === 'row' ? rows(value) : value);
      }
      hk(`${p}.attn.hook_z`, z);
      const flat = g.reshape(z, [0, 0, k * dh], ['B', rowDim, k * dh]);
      attnOut = g.add(g.matmul(flat, w(L('wO'), [k * dh, d])), bO);
    } else {
      if (iv.z.has(i)) throw new Error(`layer ${layout.sourceLayer} has no heads to intervene on`);
      // Broadcast so the hook has the same [B, T, d] shape with or without heads.
      attnOut = g.expandLike(bO, residRows);
    }
    hk(`${p}.hook_attn_out`, attnOut);
    resid = hk(`${p}.hook_resid_mid`, g.add(residRows, attnOut));

    let mlpOut: Value;
    if (layout.mlp) {
      const x = hk(`${p}.ln2.hook_normalized`, layerNorm(g, resid, w(L('ln2.g'), [d]), w(L('ln2.b'), [d]), cfg.eps));
      const pre = hk(`${p}.mlp.hook_pre`, g.add(g.matmul(x, w(L('wIn'), [d, cfg.dMlp])), w(L('bIn'), [cfg.dMlp])));
      const post = hk(`${p}.mlp.hook_post`, activation(g, pre, cfg.activation));
      mlpOut = g.add(g.matmul(post, w(L('wOut'), [cfg.dMlp, d])), w(L('bMlpOut'), [d]));
      const mShape = iv.mlp.get(i);
      if (mShape !== undefined) {
        const keep = g.input(`mlp_keep.${i}`, ['B', 1, 1]);
        const value = g.input(`mlp_value.${i}`, mShape === 'row' ? ['B', 'T', d] : [1, 1, d]);
        mlpOut = intervene(g, mlpOut, keep, mShape === 'row' ? rows(value) : value);
      }
    } else {
      if (iv.mlp.has(i)) throw new Error(`layer ${layout.sourceLayer} has no MLP to intervene on`);
      mlpOut = g.expandLike(w(L('bMlpOut'), [d]), resid);
    }
    hk(`${p}.hook_mlp_out`, mlpOut);
    resid = hk(`${p}.hook_resid_post`, g.add(resid, mlpOut));
  }
  const residAtMetric = metricOnly && end > spec.startLayer;

  const out: ForwardValues = { hooks, weights };
  if (spec.logits === 'none') return out;
  if (end !== cfg.layers.length) throw new Error('logits need the run to reach the last layer');

  const unembed = cfg.vocabSize;
  // Tied: the same graph value as the embedding, so a training gradient sums both uses.
  const wU = spec.tied ? w(weightName.wte, [unembed, d]) : w(weightName.lmHead, [unembed, d]);
  const lnf = (x: Value) => layerNorm(g, x, w(weightName.lnfG, [d]), w(weightName.lnfB, [d]), cfg.eps);
  if (spec.logits === 'all') {
    const x = hook('ln_final.hook_normalized', lnf(resid));
    const flat = g.reshape(x, [-1, d], ['BT', d]);
    const logits = g.gemmTransB(flat, wU);
    const bt = g.slice(g.shapeOf(resid), g.ints([0]), g.ints([2]), [0], [2]);
    out.logits = g.reshapeTo(logits, g.concat([bt, g.ints([unembed])], 0), ['B', 'T', unembed]);
    return out;
  }
  // Only the metric position of each row matters: gather those residuals before the final LN,
  // so the unembedding costs one row per prompt instead of one per position.
  const rowsAtMetric = residAtMetric ? g.squeeze(resid, [1]) : g.gather(g.reshape(resid, [-1, d], ['BT', d]), flatPos());
  const x = lnf(rowsAtMetric);
  hook('ln_final.hook_normalized_at_pos', x);
  const answers = g.input('answers', ['B', 2], 'int64');
  const sel = g.gather(wU, answers); // [B, 2, d]
  const pair = g.reduceSum(g.mul(g.unsqueeze(x, [1]), sel), [-1], false); // [B, 2]
  out.pairLogits = pair;
  const [lc, li] = g.split(pair, 1, [1, 1]);
  out.metric = g.squeeze(g.sub(lc, li), [1]);
  if (spec.logits === 'last') out.logits = g.gemmTransB(x, wU);
  if (spec.selectTokens) {
    const chosen = g.gather(wU, g.input('select_tokens', ['B', 'K'], 'int64')); // [B, K, d]
    out.selected = g.reduceSum(g.mul(g.unsqueeze(x, [1]), chosen), [-1], false);
  }
  return out;
}
