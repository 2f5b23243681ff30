/**
 * A deliberately plain float64 forward pass for Hugging Face causal LMs (GPT-2, Llama, Mistral,
 * Qwen2, GPT-NeoX), written with loops straight from transformers' modeling files, to check carve's
 * graphs against. It reads the HF config and the HF-named tensors itself and shares nothing with
 * src/: a misreading of HF semantics in carve's model layer cannot be repeated here by reuse.
 *
 * Where HF computes in float32 even for half-precision weights (RMSNorm, the rotary tables, the
 * softmax), this computes in float64; everything else is float64 too. One prompt at a time.
 *
 * Hooks are named as TransformerLens names them, with carve's meaning where the two differ:
 * `ln*.hook_normalized` is the norm's output after its gain (and bias), i.e. exactly what the
 * attention / MLP reads (TransformerLens's RMSNorm records it before the gain).
 *
 * HF sources (transformers 4.5x / 5.x): models/{gpt2,llama,mistral,qwen2,gpt_neox}/modeling_*.py and
 * configuration_*.py, modeling_rope_utils.py (`_compute_default_rope_parameters`,
 * `_compute_llama3_parameters`), masking_utils.py (`sliding_window_overlay`).
 */
import type { HfArch, HfModel, HfTensor } from './hf-random.ts';

export interface NaiveHfOptions {
  /** Replace head h's hook_z ([T·dh], row-major [t][e]) of layer l before the output projection. */
  z?: Map<number, Map<number, Float64Array>>;
  /** Replace layer l's whole MLP output ([T·d], output bias included) before it joins the residual. */
  mlpOut?: Map<number, Float64Array>;
}

export interface NaiveHfResult {
  /** [T, V] row-major. */
  logits: Float64Array;
  hooks: Map<string, HfTensor>;
}

/** Everything the forward needs from config.json, with HF's defaults applied per model_type. */
export interface NaiveHfArch {
  modelType: HfArch;
  nLayer: number;
  d: number;
  nHead: number;
  nKvHead: number;
  dHead: number;
  dMlp: number;
  vocab: number;
  eps: number;
  norm: 'layer' | 'rms';
  positions: 'learned' | 'rotary';
  /** Rotary models: the inverse frequencies; the first 2·length dims of each head rotate. */
  invFreq: Float64Array;
  /** Per layer: the sliding window (query i sees key j when 0 ≤ i − j < window), or null. */
  window: (number | null)[];
  /** Attention-score multiplier per layer (1/√dh unless GPT-2's scale flags say otherwise). */
  scoreScale: number[];
  parallelResidual: boolean;
  activation: string;
  gated: boolean;
  tied: boolean;
  /** Which optional biases exist. */
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions

/**
 * erf to ~1e-14: Maclaurin series below 2.5, the Laplace continued fraction for erfc above
 * (JavaScript has no Math.erf, and GPT-NeoX's "gelu" is the exact erf form).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (ax < 2.5) {
    let sum = 0;
    let power = ax; // (-1)^n x^(2n+1) / n!
    for (let n = 0; n < 200; n++) {
      const t = power / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17) break;
      power *= (-ax * ax) / (n + 1);
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  if (ax > 6) return sign; // erfc(6) ≈ 2e-17
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated bottom-up.
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + n / 2 / f;
  return sign * (1 - Math.exp(-ax * ax) / (Math.sqrt(Math.PI) * f));
}

/** HF ACT2FN: "gelu" is exact (erf); gelu_new / gelu_fast / gelu_pytorch_tanh the tanh approximation. */
export function activate(name: string, x: number): number {
  switch (name) {
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_new':
    case 'gelu_fast':
    case 'gelu_pytorch_tanh':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'relu':
      return Math.max(0, x);
    case 'silu':
    case 'swish':
      return x / (1 + Math.exp(-x));
    default:
      throw new Error(`naive-hf: activation '${name}' not implemented`);
  }
}

// ---------------------------------------------------------------------------------------------
// Config

const num = (cfg: Record<string, unknown>, key: string, fallback?: number): number => {
  const v = cfg[key];
  if (typeof v === 'number') return v;
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  throw new Error(`naive-hf: config field '${key}' missing or not a number (${JSON.stringify(v)})`);
};
const bool = (cfg: Record<string, unknown>, key: string, fallback: boolean): boolean => {
  const v = cfg[key];
  return typeof v === 'boolean' ? v : fallback;
};

/** The rope block HF uses: v5's rope_parameters, else 4.x's rope_scaling (`type` was the old key). */
function ropeBlock(cfg: Record<string, unknown>): Record<string, unknown> {
  const params = cfg.rope_parameters;
  if (params && typeof params === 'object') return params as Record<string, unknown>;
  const scaling = cfg.rope_scaling;
  if (scaling && typeof scaling === 'object') return scaling as Record<string, unknown>;
  return {};
}

/**
 * Inverse frequencies per modeling_rope_utils.py: `_compute_default_rope_parameters` gives
 * 1 / base^(2i/dim) for i < dim/2 with dim = int(head_dim · partial_rotary_factor) (head_dim the
 * config's `head_dim` when set, else hidden / heads); 'linear' divides them by factor; 'llama3'
 * (`_compute_llama3_parameters`) divides the long wavelengths (> original_max / low_freq_factor) by
 * factor, keeps the short ones (< original_max / high_freq_factor) and blends in between with
 * smooth = (original_max / wavelen − low) / (high − low): (1 − smooth)·f/factor + smooth·f.
 */
export function ropeInverseFrequencies(cfg: Record<string, unknown>): Float64Array {
  const modelType = cfg.model_type as HfArch;
  const rope = ropeBlock(cfg);
  const H = num(cfg, 'num_attention_heads');
  const headDim = modelType === 'gpt_neox' ? num(cfg, 'hidden_size') / H : num(cfg, 'head_dim', num(cfg, 'hidden_size') / H);
  let base: number;
  let partial: number;
  if (modelType === 'gpt_neox') {
    // GPTNeoXConfig: rope_theta ← rotary_emb_base, partial_rotary_factor ← rotary_pct (default 0.25).
    base = typeof rope.rope_theta === 'number' ? rope.rope_theta : num(cfg, 'rotary_emb_base', num(cfg, 'rope_theta', 10000));
    partial = typeof rope.partial_rotary_factor === 'number' ? rope.partial_rotary_factor : num(cfg, 'rotary_pct', num(cfg, 'partial_rotary_factor', 0.25));
  } else {
    base = typeof rope.rope_theta === 'number' ? rope.rope_theta : num(cfg, 'rope_theta', 10000);
    partial = typeof rope.partial_rotary_factor === 'number' ? rope.partial_rotary_factor : num(cfg, 'partial_rotary_factor', 1);
    // Llama-family apply_rotary_pos_emb multiplies the whole head by cos/sin: a shorter table cannot work.
    if (partial !== 1) throw new Error(`naive-hf: ${modelType} with partial_rotary_factor ${partial} is not something HF can run`);
  }
  const dim = Math.trunc(headDim * partial);
  if (dim % 2 !== 0) throw new Error(`naive-hf: odd rotary width ${dim}`);
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / base ** ((2 * i) / dim);

  const type = (rope.rope_type ?? rope.type ?? 'default') as string;
  if (type === 'default') return inv;
  const factor = num(rope, 'factor');
  if (type === 'linear') return inv.map((f) => f / factor);
  if (type === 'llama3') {
    const low = num(rope, 'low_freq_factor');
    const high = num(rope, 'high_freq_factor');
    const oldLen = num(rope, 'original_max_position_embeddings');
    const lowFreqWavelen = oldLen / low;
    const highFreqWavelen = oldLen / high;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highFreqWavelen) return f;
      if (wavelen > lowFreqWavelen) return f / factor;
      const smooth = (oldLen / wavelen - low) / (high - low);
      return ((1 - smooth) * f) / factor + smooth * f;
    });
  }
  throw new Error(`naive-hf: rope_type '${type}' not implemented`);
}

/** Per-layer sliding windows, per HF: Mistral everywhere; Qwen2 per `layer_types` or max_window_layers. */
function slidingWindows(cfg: Record<string, unknown>, modelType: HfArch, L: number): (number | null)[] {
  if (modelType === 'mistral') {
    // MistralConfig defaults sliding_window to 4096 when the key is absent; null means none.
    const w = 'sliding_window' in cfg ? cfg.sliding_window : 4096;
    return Array.from({ length: L }, () => (typeof w === 'number' ? w : null));
  }
  if (modelType === 'qwen2') {
    // Qwen2Config: sliding_window = sliding_window if use_sliding_window else None; layer_types default to
    // "sliding_attention" for i >= max_window_layers (the first max_window_layers layers stay full).
    const w = bool(cfg, 'use_sliding_window', false) ? num(cfg, 'sliding_window', 4096) : null;
    const types = Array.isArray(cfg.layer_types)
      ? (cfg.layer_types as string[])
      : Array.from({ length: L }, (_, i) => (w !== null && i >= num(cfg, 'max_window_layers', 28) ? 'sliding_attention' : 'full_attention'));
    return types.map((t) => (t === 'sliding_attention' ? w : null));
  }
  return Array.from({ length: L }, () => null);
}

export function interpretHfConfig(cfg: Record<string, unknown>): NaiveHfArch {
  const modelType = cfg.model_type as HfArch;
  if (modelType === 'gpt2') {
    const d = num(cfg, 'n_embd');
    const H = num(cfg, 'n_head');
    const L = num(cfg, 'n_layer');
    const dh = d / H;
    // GPT2Attention: scale_attn_weights (default true) divides by √dh; scale_attn_by_inverse_layer_idx
    // (default false) also divides by layer_idx + 1.
    const scale = bool(cfg, 'scale_attn_weights', true) ? 1 / Math.sqrt(dh) : 1;
    const byLayer = bool(cfg, 'scale_attn_by_inverse_layer_idx', false);
    return {
      modelType,
      nLayer: L,
      d,
      nHead: H,
      nKvHead: H,
      dHead: dh,
      dMlp: num(cfg, 'n_inner', 4 * d),
      vocab: num(cfg, 'vocab_size'),
      eps: num(cfg, 'layer_norm_epsilon', 1e-5),
      norm: 'layer',
      positions: 'learned',
      invFreq: new Float64Array(0),
      window: Array.from({ length: L }, () => null),
      scoreScale: Array.from({ length: L }, (_, l) => (byLayer ? scale / (l + 1) : scale)),
      parallelResidual: false,
      activation: (cfg.activation_function as string | undefined) ?? 'gelu_new',
      gated: false,
      tied: bool(cfg, 'tie_word_embeddings', true),
      qkvBias: true,
      oBias: true,
      mlpBias: true,
    };
  }
  if (modelType !== 'gpt_neox' && modelType !== 'llama' && modelType !== 'mistral' && modelType !== 'qwen2') {
    throw new Error(`naive-hf: model_type '${String(cfg.model_type)}' not implemented`);
  }
  const d = num(cfg, 'hidden_size');
  const H = num(cfg, 'num_attention_heads');
  const L = num(cfg, 'num_hidden_layers');
  const neox = modelType === 'gpt_neox';
  // LlamaAttention: head_dim = getattr(config, "head_dim", None) or hidden_size // num_attention_heads.
  const dh = neox ? d / H : num(cfg, 'head_dim', d / H);
  const K = neox ? H : num(cfg, 'num_key_value_heads', H);
  // Llama: attention_bias → q, k, v AND o biases; Qwen2: q/k/v only; Mistral none; NeoX: attention_bias (default true) on both.
  const attnBias = bool(cfg, 'attention_bias', neox);
  return {
    modelType,
    nLayer: L,
    d,
    nHead: H,
    nKvHead: K,
    dHead: dh,
    dMlp: num(cfg, 'intermediate_size'),
    vocab: num(cfg, 'vocab_size'),
    eps: neox ? num(cfg, 'layer_norm_eps', 1e-5) : num(cfg, 'rms_norm_eps', 1e-6),
    norm: neox ? 'layer' : 'rms',
    positions: 'rotary',
    invFreq: ropeInverseFrequencies(cfg),
    window: slidingWindows(cfg, modelType, L),
    scoreScale: Array.from({ length: L }, () => 1 / Math.sqrt(dh)),
    parallelResidual: neox && bool(cfg, 'use_parallel_residual', true),
    activation: (cfg.hidden_act as string | undefined) ?? (neox ? 'gelu' : 'silu'),
    gated: !neox,
    tied: bool(cfg, 'tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2' || ((modelType === 'llama' || neox) && attnBias),
    oBias: (modelType === 'llama' || neox) && attnBias,
    mlpBias: neox || (modelType === 'llama' && bool(cfg, 'mlp_bias', false)),
  };
}

// ---------------------------------------------------------------------------------------------
// Linear algebra on plain arrays

/** nn.Linear: y = W x + b with W [out, in] row-major. */
export function linear(x: Float64Array, W: Float64Array, nOut: number, b?: Float64Array): Float64Array {
  const nIn = x.length;
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < nIn; i++) s += W[o * nIn + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** GPT-2's Conv1D: y = x W + b with W [in, out] row-major. */
export function conv1d(x: Float64Array, W: Float64Array, nOut: number, b?: Float64Array): Float64Array {
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < x.length; i++) s += x[i] * W[i * nOut + o];
    y[o] = s;
  }
  return y;
}

export function layerNorm(x: Float64Array, g: Float64Array, b: Float64Array, eps: number): Float64Array {
  const n = x.length;
  let mu = 0;
  for (const v of x) mu += v;
  mu /= n;
  let variance = 0;
  for (const v of x) variance += (v - mu) ** 2;
  variance /= n;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((x[i] - mu) / Math.sqrt(variance + eps)) * g[i] + b[i];
  return out;
}

/** LlamaRMSNorm: weight · x / √(mean(x²) + eps) (the gain is `weight`, not 1 + weight). */
export function rmsNorm(x: Float64Array, g: Float64Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  ms /= x.length;
  const r = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => g[i] * v * r);
}

/**
 * HF's rotate_half rotary on one head vector at position `pos`: with r = 2·invFreq.length and
 * half = r/2, dim i < half pairs with dim i + half (not i+1): out_i = v_i cos θ_i − v_{i+half} sin θ_i,
 * out_{i+half} = v_{i+half} cos θ_i + v_i sin θ_i, θ_i = pos · invFreq_i; dims ≥ r pass through
 * (GPT-NeoX's partial rotary).
 */
export function applyRotary(v: Float64Array, pos: number, invFreq: Float64Array): Float64Array {
  const half = invFreq.length;
  const out = Float64Array.from(v);
  for (let i = 0; i < half; i++) {
    const th = pos * invFreq[i];
    const c = Math.cos(th);
    const s = Math.sin(th);
    out[i] = v[i] * c - v[i + half] * s;
    out[i + half] = v[i + half] * c + v[i] * s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The forward pass

export function naiveHfForward(model: HfModel, tokens: number[], opts: NaiveHfOptions = {}): NaiveHfResult {
  const a = interpretHfConfig(model.config);
  const { d, nHead: H, nKvHead: K, dHead: dh, dMlp, vocab: V } = a;
  const T = tokens.length;
  if (H % K !== 0) throw new Error(`naive-hf: ${K} kv heads do not divide ${H} heads`);
  const group = H / K;

  const get = (name: string, size?: number): Float64Array => {
    // The hub's own gpt2 checkpoint names tensors without the `transformer.` prefix.
    const t = model.tensors.get(name) ?? (name.startsWith('transformer.') ? model.tensors.get(name.slice('transformer.'.length)) : undefined);
    if (!t) throw new Error(`naive-hf: tensor '${name}' missing`);
    if (size !== undefined && t.data.length !== size) throw new Error(`naive-hf: tensor '${name}' has ${t.data.length} values, expected ${size}`);
    return t.data;
  };

  const hooks = new Map<string, HfTensor>();
  const put = (name: string, shape: number[], rows: Float64Array[] | Float64Array) => {
    const data = rows instanceof Float64Array ? Float64Array.from(rows) : new Float64Array(rows.reduce((n, r) => n + r.length, 0));
    if (!(rows instanceof Float64Array)) {
      let o = 0;
      for (const r of rows) {
        data.set(r, o);
        o += r.length;
      }
    }
    if (data.length !== shape.reduce((p, q) => p * q, 1)) throw new Error(`naive-hf: hook ${name} shape ${shape} vs ${data.length}`);
    hooks.set(name, { shape, data });
  };

  const arch = a.modelType;
  const names = tensorNames(arch);
  for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`naive-hf: token ${t} outside vocab ${V}`);

  // Embedding (GPT-2 adds learned positions; the rotary models have none).
  const wte = get(names.embed, V * d);
  const embed = tokens.map((tok) => wte.slice(tok * d, (tok + 1) * d));
  put('hook_embed', [T, d], embed);
  let resid = embed.map((e) => Float64Array.from(e));
  if (a.positions === 'learned') {
    const wpe = get('transformer.wpe.weight');
    if (T * d > wpe.length) throw new Error(`naive-hf: ${T} positions exceed n_positions`);
    const pos = Array.from({ length: T }, (_, t) => wpe.slice(t * d, (t + 1) * d));
    put('hook_pos_embed', [T, d], pos);
    resid = resid.map((r, t) => r.map((x, i) => x + pos[t][i]));
  }

  const norm = (x: Float64Array, gName: string, bName: string | null): Float64Array =>
    a.norm === 'layer' ? layerNorm(x, get(gName, d), get(bName!, d), a.eps) : rmsNorm(x, get(gName, d), a.eps);

  for (let l = 0; l < a.nLayer; l++) {
    const P = `blocks.${l}`;
    const n = names.layer(l);
    put(`${P}.hook_resid_pre`, [T, d], resid);
    const residPre = resid;

    // ---- attention
    const x1 = residPre.map((r) => norm(r, n.ln1g, n.ln1b));
    put(`${P}.ln1.hook_normalized`, [T, d], x1);
    // q[t] [H·dh], k[t], v[t] [K·dh], heads contiguous.
    const q: Float64Array[] = [];
    const k: Float64Array[] = [];
    const v: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      if (arch === 'gpt2') {
        // Conv1D c_attn [d, 3d]: output columns [Q | K | V], head h at h·dh within each block.
        const qkv = conv1d(x1[t], get(n.qkv!, d * 3 * d), 3 * d, get(n.qkvBias!, 3 * d));
        q.push(qkv.slice(0, d));
        k.push(qkv.slice(d, 2 * d));
        v.push(qkv.slice(2 * d, 3 * d));
      } else if (arch === 'gpt_neox') {
        // GPTNeoXAttention: qkv.view(..., heads, 3·head_size): rows grouped per head as [q_h, k_h, v_h].
        const qkv = linear(x1[t], get(n.qkv!, 3 * d * d), 3 * d, a.qkvBias ? get(n.qkvBias!, 3 * d) : undefined);
        const qt = new Float64Array(H * dh);
        const kt = new Float64Array(H * dh);
        const vt = new Float64Array(H * dh);
        for (let h = 0; h < H; h++) {
          for (let e = 0; e < dh; e++) {
            qt[h * dh + e] = qkv[h * 3 * dh + e];
            kt[h * dh + e] = qkv[h * 3 * dh + dh + e];
            vt[h * dh + e] = qkv[h * 3 * dh + 2 * dh + e];
          }
        }
        q.push(qt);
        k.push(kt);
        v.push(vt);
      } else {
        q.push(linear(x1[t], get(n.q!, H * dh * d), H * dh, a.qkvBias ? get(n.qBias!, H * dh) : undefined));
        k.push(linear(x1[t], get(n.k!, K * dh * d), K * dh, a.qkvBias ? get(n.kBias!, K * dh) : undefined));
        v.push(linear(x1[t], get(n.v!, K * dh * d), K * dh, a.qkvBias ? get(n.vBias!, K * dh) : undefined));
      }
    }
    put(`${P}.attn.hook_q`, [T, H, dh], q);
    put(`${P}.attn.hook_k`, [T, K, dh], k);
    put(`${P}.attn.hook_v`, [T, K, dh], v);
    let qr = q;
    let kr = k;
    if (a.positions === 'rotary') {
      const rot = (x: Float64Array, nh: number, pos: number) => {
        const out = new Float64Array(x.length);
        for (let h = 0; h < nh; h++) out.set(applyRotary(x.subarray(h * dh, (h + 1) * dh), pos, a.invFreq), h * dh);
        return out;
      };
      qr = q.map((x, t) => rot(x, H, t));
      kr = k.map((x, t) => rot(x, K, t));
      put(`${P}.attn.hook_rot_q`, [T, H, dh], qr);
      put(`${P}.attn.hook_rot_k`, [T, K, dh], kr);
    }

    const scores = new Float64Array(H * T * T);
    const pattern = new Float64Array(H * T * T);
    const z: Float64Array[] = Array.from({ length: T }, () => new Float64Array(H * dh));
    const window = a.window[l];
    for (let h = 0; h < H; h++) {
      // repeat_kv: query head h reads key/value head h // (H / K).
      const kv = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const row = (h * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          // Causal, plus masking_utils' sliding_window_overlay: kv_idx > q_idx - window.
          const visible = j <= i && (window === null || i - j < window);
          if (!visible) {
            scores[row + j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let e = 0; e < dh; e++) dot += qr[i][h * dh + e] * kr[j][kv * dh + e];
          scores[row + j] = dot * a.scoreScale[l];
          max = Math.max(max, scores[row + j]);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) sum += pattern[row + j] = scores[row + j] === -Infinity ? 0 : Math.exp(scores[row + j] - max);
        for (let j = 0; j < T; j++) pattern[row + j] /= sum;
        for (let j = 0; j < T; j++) {
          const p = pattern[row + j];
          if (p === 0) continue;
          for (let e = 0; e < dh; e++) z[i][h * dh + e] += p * v[j][kv * dh + e];
        }
      }
      const rep = opts.z?.get(l)?.get(h);
      if (rep) {
        if (rep.length !== T * dh) throw new Error(`naive-hf: z replacement for L${l}H${h} has ${rep.length} values, expected ${T * dh}`);
        for (let t = 0; t < T; t++) z[t].set(rep.subarray(t * dh, (t + 1) * dh), h * dh);
      }
    }
    put(`${P}.attn.hook_attn_scores`, [H, T, T], scores);
    put(`${P}.attn.hook_pattern`, [H, T, T], pattern);
    put(`${P}.attn.hook_z`, [T, H, dh], z);

    // Output projection, and each head's share of it without the bias (carve's L{l}H{h} component).
    const Wo = get(n.o, d * H * dh);
    const bo = a.oBias ? get(n.oBias!, d) : undefined;
    // W_O[j][o]: the weight from z index j to output o, whatever the storage layout.
    const wo = arch === 'gpt2' ? (j: number, o: number) => Wo[j * d + o] : (j: number, o: number) => Wo[o * H * dh + j];
    const result: Float64Array[] = [];
    const attnOut: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const perHead = new Float64Array(H * d);
      const out = bo ? Float64Array.from(bo) : new Float64Array(d);
      for (let h = 0; h < H; h++) {
        for (let o = 0; o < d; o++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += z[t][h * dh + e] * wo(h * dh + e, o);
          perHead[h * d + o] = s;
          out[o] += s;
        }
      }
      result.push(perHead);
      attnOut.push(out);
    }
    put(`${P}.attn.hook_result`, [T, H, d], result);
    put(`${P}.hook_attn_out`, [T, d], attnOut);

    // ---- MLP: reads resid_pre when the residual is parallel (GPT-NeoX), resid_mid otherwise.
    let mlpIn = residPre;
    if (!a.parallelResidual) {
      mlpIn = residPre.map((r, t) => r.map((x, i) => x + attnOut[t][i]));
      put(`${P}.hook_resid_mid`, [T, d], mlpIn);
    }
    const x2 = mlpIn.map((r) => norm(r, n.ln2g, n.ln2b));
    put(`${P}.ln2.hook_normalized`, [T, d], x2);
    const pre: Float64Array[] = [];
    const preLinear: Float64Array[] = [];
    const post: Float64Array[] = [];
    let mlpOut: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      if (arch === 'gpt2') {
        const p = conv1d(x2[t], get(n.mlpIn, d * dMlp), dMlp, get(n.mlpInBias!, dMlp));
        const g = p.map((x) => activate(a.activation, x));
        pre.push(p);
        post.push(g);
        mlpOut.push(conv1d(g, get(n.mlpOut, dMlp * d), d, get(n.mlpOutBias!, d)));
      } else if (!a.gated) {
        const p = linear(x2[t], get(n.mlpIn, dMlp * d), dMlp, get(n.mlpInBias!, dMlp));
        const g = p.map((x) => activate(a.activation, x));
        pre.push(p);
        post.push(g);
        mlpOut.push(linear(g, get(n.mlpOut, d * dMlp), d, get(n.mlpOutBias!, d)));
      } else {
        // LlamaMLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)).
        const gate = linear(x2[t], get(n.mlpIn, dMlp * d), dMlp, a.mlpBias ? get(n.mlpInBias!, dMlp) : undefined);
        const up = linear(x2[t], get(n.mlpUp!, dMlp * d), dMlp, a.mlpBias ? get(n.mlpUpBias!, dMlp) : undefined);
        const g = gate.map((x, i) => activate(a.activation, x) * up[i]);
        pre.push(gate);
        preLinear.push(up);
        post.push(g);
        mlpOut.push(linear(g, get(n.mlpOut, d * dMlp), d, a.mlpBias ? get(n.mlpOutBias!, d) : undefined));
      }
    }
    put(`${P}.mlp.hook_pre`, [T, dMlp], pre);
    if (a.gated) put(`${P}.mlp.hook_pre_linear`, [T, dMlp], preLinear);
    put(`${P}.mlp.hook_post`, [T, dMlp], post);
    const mrep = opts.mlpOut?.get(l);
    if (mrep) {
      if (mrep.length !== T * d) throw new Error(`naive-hf: mlpOut replacement for layer ${l} has ${mrep.length} values, expected ${T * d}`);
      mlpOut = Array.from({ length: T }, (_, t) => mrep.slice(t * d, (t + 1) * d));
    }
    put(`${P}.hook_mlp_out`, [T, d], mlpOut);

    // GPTNeoXLayer parallel: x + attn(ln1(x)) + mlp(ln2(x)); otherwise (x + attn) + mlp.
    resid = a.parallelResidual
      ? residPre.map((r, t) => r.map((x, i) => x + attnOut[t][i] + mlpOut[t][i]))
      : mlpIn.map((r, t) => r.map((x, i) => x + mlpOut[t][i]));
    put(`${P}.hook_resid_post`, [T, d], resid);
  }

  const xf = resid.map((r) => norm(r, names.lnfG, names.lnfB));
  put('ln_final.hook_normalized', [T, d], xf);
  // Tied: the unembedding IS the embedding matrix (HF ties lm_head / embed_out to it, ignoring any stored copy).
  const U = a.tied ? wte : get(names.unembed, V * d);
  const logits = new Float64Array(T * V);
  for (let t = 0; t < T; t++) {
    for (let tok = 0; tok < V; tok++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += xf[t][i] * U[tok * d + i];
      logits[t * V + tok] = s;
    }
  }
  return { logits, hooks };
}

export interface LayerNames {
  ln1g: string;
  ln1b: string | null;
  ln2g: string;
  ln2b: string | null;
  qkv?: string;
  qkvBias?: string;
  q?: string;
  k?: string;
  v?: string;
  qBias?: string;
  kBias?: string;
  vBias?: string;
  o: string;
  oBias?: string;
  mlpIn: string;
  mlpInBias?: string;
  mlpUp?: string;
  mlpUpBias?: string;
  mlpOut: string;
  mlpOutBias?: string;
}

/** HF checkpoint tensor names per architecture. */
export function tensorNames(arch: HfArch): { embed: string; unembed: string; lnfG: string; lnfB: string | null; layer: (l: number) => LayerNames } {
  if (arch === 'gpt2') {
    return {
      embed: 'transformer.wte.weight',
      unembed: 'lm_head.weight',
      lnfG: 'transformer.ln_f.weight',
      lnfB: 'transformer.ln_f.bias',
      layer: (l) => {
        const p = `transformer.h.${l}.`;
        return {
          ln1g: p + 'ln_1.weight',
          ln1b: p + 'ln_1.bias',
          ln2g: p + 'ln_2.weight',
          ln2b: p + 'ln_2.bias',
          qkv: p + 'attn.c_attn.weight',
          qkvBias: p + 'attn.c_attn.bias',
          o: p + 'attn.c_proj.weight',
          oBias: p + 'attn.c_proj.bias',
          mlpIn: p + 'mlp.c_fc.weight',
          mlpInBias: p + 'mlp.c_fc.bias',
          mlpOut: p + 'mlp.c_proj.weight',
          mlpOutBias: p + 'mlp.c_proj.bias',
        };
      },
    };
  }
  if (arch === 'gpt_neox') {
    return {
      embed: 'gpt_neox.embed_in.weight',
      unembed: 'embed_out.weight',
      lnfG: 'gpt_neox.final_layer_norm.weight',
      lnfB: 'gpt_neox.final_layer_norm.bias',
      layer: (l) => {
        const p = `gpt_neox.layers.${l}.`;
        return {
          ln1g: p + 'input_layernorm.weight',
          ln1b: p + 'input_layernorm.bias',
          ln2g: p + 'post_attention_layernorm.weight',
          ln2b: p + 'post_attention_layernorm.bias',
          qkv: p + 'attention.query_key_value.weight',
          qkvBias: p + 'attention.query_key_value.bias',
          o: p + 'attention.dense.weight',
          oBias: p + 'attention.dense.bias',
          mlpIn: p + 'mlp.dense_h_to_4h.weight',
          mlpInBias: p + 'mlp.dense_h_to_4h.bias',
          mlpOut: p + 'mlp.dense_4h_to_h.weight',
          mlpOutBias: p + 'mlp.dense_4h_to_h.bias',
        };
      },
    };
  }
  return {
    embed: 'model.embed_tokens.weight',
    unembed: 'lm_head.weight',
    lnfG: 'model.norm.weight',
    lnfB: null,
    layer: (l) => {
      const p = `model.layers.${l}.`;
      return {
        ln1g: p + 'input_layernorm.weight',
        ln1b: null,
        ln2g: p + 'post_attention_layernorm.weight',
        ln2b: null,
        q: p + 'self_attn.q_proj.weight',
        k: p + 'self_attn.k_proj.weight',
        v: p + 'self_attn.v_proj.weight',
        qBias: p + 'self_attn.q_proj.bias',
        kBias: p + 'self_attn.k_proj.bias',
        vBias: p + 'self_attn.v_proj.bias',
        o: p + 'self_attn.o_proj.weight',
        oBias: p + 'self_attn.o_proj.bias',
        mlpIn: p + 'mlp.gate_proj.weight',
        mlpInBias: p + 'mlp.gate_proj.bias',
        mlpUp: p + 'mlp.up_proj.weight',
        mlpUpBias: p + 'mlp.up_proj.bias',
        mlpOut: p + 'mlp.down_proj.weight',
        mlpOutBias: p + 'mlp.down_proj.bias',
      };
    },
  };
}
