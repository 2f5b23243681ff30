/**
 * The pieces every architecture's layer is made of, each a short function on the graph builder:
 * norms (LayerNorm, RMSNorm), projections in either weight layout, rotary position embedding,
 * causal (optionally windowed) attention with grouped-query heads, and the MLP (plain or gated).
 * forward.ts wires them together as the config says.
 */
import type { Dim, Graph, Shape, Value } from '../onnx/graph.ts';
import type { Activation, ModelConfig } from './types.ts';

/** Leading axes of a value: every axis but the last. */
const leading = (v: Value): number[] => Array.from({ length: v.rank - 1 }, (_, i) => i);

/**
 * LayerNorm, written out in the operator pattern onnxruntime fuses into one kernel for inference,
 * with its closed-form VJP for differentiated graphs: with ĝ = γ⊙dy,
 * dx = (ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂))/σ, dγ = Σ dy⊙x̂, dβ = Σ dy (sums over the leading axes).
 */
export function layerNorm(g: Graph, x: Value, w: Value, b: Value, eps: number): Value {
  const mu = g.reduceMean(x, [-1]);
  const xc = g.sub(x, mu);
  const variance = g.reduceMean(g.pow(xc, 2), [-1]);
  const sigma = g.sqrt(g.add(variance, eps));
  const xhat = g.div(xc, sigma);
  return g.customGradient(g.add(g.mul(xhat, w), b), [x, w, b], (dy) => {
    const gh = g.mul(dy, w);
    const centred = g.sub(g.sub(gh, g.reduceMean(gh, [-1])), g.mul(xhat, g.reduceMean(g.mul(gh, xhat), [-1])));
    return [g.div(centred, sigma), g.reduceSum(g.mul(dy, xhat), leading(dy), false), g.reduceSum(dy, leading(dy), false)];
  });
}

/**
 * HF's RMSNorm: x / sqrt(mean(x²) + eps), times the weight (no centring, no bias). VJP, with
 * ĝ = γ⊙dy and r = sqrt(mean(x²) + eps): dx = (ĝ − x̂·mean(ĝ⊙x̂))/r, dγ = Σ dy⊙x̂.
 */
export function rmsNorm(g: Graph, x: Value, w: Value, eps: number): Value {
  const ms = g.reduceMean(g.pow(x, 2), [-1]);
  const r = g.sqrt(g.add(ms, eps));
  const xhat = g.div(x, r);
  return g.customGradient(g.mul(xhat, w), [x, w], (dy) => {
    const gh = g.mul(dy, w);
    return [g.div(g.sub(gh, g.mul(xhat, g.reduceMean(g.mul(gh, xhat), [-1]))), r), g.reduceSum(g.mul(dy, xhat), leading(dy), false)];
  });
}

export function norm(g: Graph, cfg: ModelConfig, x: Value, w: Value, b: Value | undefined): Value {
  if (cfg.norm.kind === 'rms') return rmsNorm(g, x, w, cfg.norm.eps);
  if (!b) throw new Error('LayerNorm needs a bias');
  return layerNorm(g, x, w, b, cfg.norm.eps);
}

/**
 * x·W (+ b) for W stored [in, out] (`in_out`, GPT-2's Conv1D) or [out, in] (`out_in`, torch Linear).
 * An [out, in] weight is used as it is, through Gemm's transB on a 2-D view of x, rather than
 * transposed once per run.
 */
export function linear(g: Graph, x: Value, w: Value, layout: 'in_out' | 'out_in', b?: Value): Value {
  let y: Value;
  if (layout === 'in_out') {
    y = g.matmul(x, w);
  } else {
    const inDim = x.shape[x.rank - 1] as number;
    const outDim = w.shape[0] as number;
    const lead = x.shape.slice(0, -1);
    if (x.rank === 2) {
      y = g.gemmTransB(x, w);
    } else {
      const flat = g.reshape(x, [-1, inDim], [lead.join('*'), inDim]);
      const shape = g.concat([g.slice(g.shapeOf(x), g.ints([0]), g.ints([x.rank - 1]), [0], [x.rank - 1]), g.ints([outDim])], 0);
      y = g.reshapeTo(g.gemmTransB(flat, w), shape, [...lead, outDim]);
    }
  }
  return b ? g.add(y, b) : y;
}

export function activation(g: Graph, x: Value, kind: Activation): Value {
  switch (kind) {
    case 'gelu_new':
    case 'gelu_fast':
    case 'gelu_pytorch_tanh': {
      // 0.5·x·(1 + tanh(c(x + a·x³))), in the pattern onnxruntime fuses; its derivative, from the
      // forward's tanh t: 0.5(1 + t) + 0.5·x·(1 − t²)·c(1 + 3a·x²).
      const a = 0.044715;
      const c = Math.sqrt(2 / Math.PI);
      const t = g.tanh(g.mul(g.add(x, g.mul(g.pow(x, 3), a)), c));
      return g.customGradient(g.mul(g.mul(x, 0.5), g.add(t, 1)), [x], (dy) => {
        const slope = g.add(g.mul(g.mul(x, x), 1.5 * a * c), 0.5 * c); // 0.5·c(1 + 3a·x²)
        const outer = g.mul(g.mul(x, g.sub(g.scalar(1, x.dtype), g.mul(t, t))), slope);
        return [g.mul(dy, g.add(g.mul(g.add(t, 1), 0.5), outer))];
      });
    }
    case 'gelu':
      return g.mul(g.mul(x, 0.5), g.add(g.erf(g.mul(x, Math.SQRT1_2)), 1));
    case 'relu':
      return g.relu(x);
    case 'silu':
      return g.mul(x, g.sigmoid(x));
  }
}

/**
 * Rotary embedding in HF's rotate_half layout on the first 2·half dimensions of each head:
 * [x1, x2, rest] → [x1·cos − x2·sin, x2·cos + x1·sin, rest]. `cos`/`sin` broadcast against
 * x [B, R, H, half] ([1, T, 1, half] for every position, [B, 1, 1, half] for one position per row).
 */
export function rotate(g: Graph, x: Value, cos: Value, sin: Value, half: number): Value {
  const dh = x.shape[x.rank - 1] as number;
  const sizes = dh > 2 * half ? [half, half, dh - 2 * half] : [half, half];
  const [x1, x2, rest] = g.split(x, -1, sizes);
  const r1 = g.sub(g.mul(x1, cos), g.mul(x2, sin));
  const r2 = g.add(g.mul(x2, cos), g.mul(x1, sin));
  return g.concat(rest ? [r1, r2, rest] : [r1, r2], -1);
}

/** Replace a hook's value on rows/heads where keep = 0: out = x·keep + value·(1 − keep). */
export function intervene(g: Graph, x: Value, keep: Value, value: Value): Value {
  return g.add(g.mul(x, keep), g.mul(value, g.sub(g.scalar(1, x.dtype), keep)));
}

export interface AttentionResult {
  scores: Value;
  pattern: Value;
  /** [B, R, k, dh] */
  z: Value;
}

/**
 * Scaled dot-product attention of k query heads over key/value heads.
 * q [B, R, k, dh] (R query rows), keys/values [B, T, kv, dh]; `kvOf[s]` is the key/value slot that query
 * slot s reads (grouped-query attention; undefined when it is the identity); `mask` is an additive
 * bias broadcasting to [B, k, R, T].
 */
export function attend(g: Graph, q: Value, k: Value, v: Value, kvOf: number[] | undefined, mask: Value): AttentionResult {
  const dh = q.shape[3] as number;
  const heads = q.shape[2];
  const group = kvOf === undefined ? undefined : regularGroup(kvOf, k.shape[2] as number);
  if (group !== undefined) return attendGrouped(g, q, k, v, group, mask);
  const qh = g.transpose(q, [0, 2, 1, 3]);
  let kt: Value;
  let vh: Value;
  if (kvOf === undefined) {
    kt = g.transpose(k, [0, 2, 3, 1]);
    vh = g.transpose(v, [0, 2, 1, 3]);
  } else {
    // Heads first, so a Gather along axis 0 picks each query head's key/value head.
    const idx = g.constant(kvOf, [kvOf.length], 'int64');
    const pick = (x: Value) => g.gather(g.transpose(x, [2, 0, 1, 3]), idx); // [k, B, T, dh]
    kt = g.transpose(pick(k), [1, 0, 3, 2]);
    vh = g.transpose(pick(v), [1, 0, 2, 3]);
  }
  const scores = g.add(g.mul(g.matmul(qh, kt), 1 / Math.sqrt(dh)), mask);
  const pattern = g.softmax(scores, -1);
  const z = g.transpose(g.matmul(pattern, vh), [0, 2, 1, 3]);
  if (z.shape[2] !== heads) throw new Error('attention changed the head count');
  return { scores, pattern, z };
}

/** The group size when query slot s reads key/value slot ⌊s / group⌋ for every s (HF's repeat_kv, nothing pruned), else undefined. */
function regularGroup(kvOf: number[], kvCount: number): number | undefined {
  const group = kvOf.length / kvCount;
  return Number.isInteger(group) && kvOf.every((kv, s) => kv === Math.floor(s / group)) ? group : undefined;
}

/**
 * Grouped-query attention with each key/value head's query heads side by side: [B, kv, group, R, dh]
 * against keys [B, kv, 1, dh, T] broadcast over the group, so no key or value is copied per query
 * head (the gather and its transposes were ~5% of a SmolLM2-shape forward). Scores and pattern are
 * reported as [B, k, R, T] like the general path.
 */
function attendGrouped(g: Graph, q: Value, k: Value, v: Value, group: number, mask: Value): AttentionResult {
  const [B, R, H, dh] = q.shape as [Dim, Dim, number, number];
  const kv = H / group;
  const T = k.shape[1];
  const qg = g.transpose(g.reshape(q, [0, 0, kv, group, dh], [B, R, kv, group, dh]), [0, 2, 3, 1, 4]); // [B, kv, group, R, dh]
  const kt = g.unsqueeze(g.transpose(k, [0, 2, 3, 1]), [2]); // [B, kv, 1, dh, T]
  const vh = g.unsqueeze(g.transpose(v, [0, 2, 1, 3]), [2]); // [B, kv, 1, T, dh]
  const m = mask.rank === 4 ? g.unsqueeze(mask, [1]) : mask; // [B, 1, 1|R, T] → [B, 1, 1, 1|R, T]
  const scores5 = g.add(g.mul(g.matmul(qg, kt), 1 / Math.sqrt(dh)), m);
  const pattern5 = g.softmax(scores5, -1);
  const z = g.reshape(g.transpose(g.matmul(pattern5, vh), [0, 3, 1, 2, 4]), [0, 0, H, dh], [B, R, H, dh]);
  /** [B, kv, group, R, T] → [B, H, R, T]. */
  const byHead = (x: Value): Value => {
    const shape = g.shapeOf(x);
    const dims = g.concat([g.slice(shape, g.ints([0]), g.ints([1]), [0], [1]), g.ints([H]), g.slice(shape, g.ints([3]), g.ints([5]), [0], [2])], 0);
    return g.reshapeTo(x, dims, [B, H, R, T]);
  };
  return { scores: byHead(scores5), pattern: byHead(pattern5), z };
}

/** Split a fused projection's output [..., prod(factors)] along its factor `which` into `count` parts, each [..., k, dh]. */
export function splitFused(g: Graph, y: Value, factors: number[], which: number): Value[] {
  const lead = y.shape.slice(0, -1);
  const target: Shape = [...lead, ...factors];
  const r = g.reshape(y, [...lead.map(() => 0), ...factors], target);
  const axis = lead.length + which;
  const count = factors[which];
  return g.split(r, axis, new Array(count).fill(1)).map((part) => g.squeeze(part, [axis]));
}
