/**
 * Tiny seeded Hugging Face checkpoints for every architecture carve reads (GPT-2, Llama, Mistral,
 * Qwen2, GPT-NeoX), held in memory as float64 and written as real model directories.
 *
 * The config is a genuine `config.json` object (HF field names, `model_type`) and the tensors carry
 * the names real checkpoints use, so a loader under test sees what it would see from the hub. Every
 * value is rounded to the chosen dtype when generated, so the float64 copy held here and the file
 * agree bit for bit: a reference computed from the in-memory tensors is a reference for the file.
 *
 * Weights are deliberately far from "nice": matrices are large enough for attention patterns to be
 * peaked, norm gains are 1 + noise and every bias that exists is non-zero, so a dropped bias, a
 * transposed matrix or a misplaced head shows up in the numbers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite, type WriteDtype } from '../../src/model/safetensors.ts';
import { randn, rng } from './gradcheck.ts';
import { loadModelDir } from '../../src/model/load.ts';
import type { LoadedModel } from '../../src/model/types.ts';

export type HfArch = 'gpt2' | 'llama' | 'mistral' | 'qwen2' | 'gpt_neox';

/** A float64 tensor in HF's layout (nn.Linear weights are [out, in]; GPT-2's Conv1D are [in, out]). */
export interface HfTensor {
  shape: number[];
  data: Float64Array;
}

export interface HfModel {
  arch: HfArch;
  /** The config.json object, exactly as written. */
  config: Record<string, unknown>;
  /** HF tensor name → tensor, every value exactly representable in `dtype`. */
  tensors: Map<string, HfTensor>;
  /** The precision the values were rounded to (and the default precision they are written in). */
  dtype: WriteDtype;
}

/** HF's rope scaling block, in HF's own field names (it is copied into the config verbatim). */
export type HfRopeScaling =
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    }
  | { rope_type: 'linear'; factor: number };

export interface HfModelSpec {
  arch: HfArch;
  nLayer: number;
  nHead: number;
  dModel: number;
  vocab: number;
  /** Key/value heads (Llama family): default nHead. Must divide nHead. */
  nKvHead?: number;
  /** Llama family: per-head width; default dModel / nHead. When given it is written as `head_dim`. */
  headDim?: number;
  /** MLP width: default 4·d for gpt2 / gpt_neox, 3·d for the gated (Llama-family) MLP. */
  dMlp?: number;
  /** n_positions / max_position_embeddings: default 16. */
  maxPos?: number;
  /** tie_word_embeddings: default true for gpt2 (HF's GPT-2 default), false for the others (theirs). */
  tied?: boolean;
  /** llama: q/k/v/o biases (default false); gpt_neox: query_key_value and dense biases (default true). */
  attentionBias?: boolean;
  /** llama: gate/up/down biases (default false). */
  mlpBias?: boolean;
  /** gpt_neox: rotary_pct (default 0.25, HF's default). */
  rotaryPct?: number;
  /** gpt_neox: use_parallel_residual (default true). */
  parallelResidual?: boolean;
  /** rope_theta / rotary_emb_base: default 10000. */
  ropeTheta?: number;
  /** Rotary models: rope_scaling (null / absent by default). */
  ropeScaling?: HfRopeScaling;
  /**
   * mistral: sliding_window (default 4096, HF's default; null for none).
   * qwen2: the window size; giving it sets use_sliding_window (default: no window, sliding_window 4096
   * written with use_sliding_window false, as Qwen2 checkpoints do).
   */
  slidingWindow?: number | null;
  /** qwen2: use_sliding_window (default: true exactly when slidingWindow is given). */
  useSlidingWindow?: boolean;
  /** qwen2: max_window_layers, the number of leading layers that keep full attention (default 1). */
  maxWindowLayers?: number;
  /** gpt2: activation_function (default 'gelu_new'); gpt_neox: hidden_act (default 'gelu', exact erf). */
  activation?: string;
  /** layer_norm_epsilon / layer_norm_eps / rms_norm_eps: default HF's (1e-5 gpt2 and gpt_neox, 1e-6 others). */
  eps?: number;
  seed?: number;
  /** Standard deviation of matrices, embeddings and biases: default 0.3. */
  scale?: number;
  /** Precision every value is rounded to: default 'F32'. */
  dtype?: WriteDtype;
  /**
   * 'legacy' (default): rope_theta, rope_scaling, rotary_pct, rotary_emb_base, torch_dtype as in
   * transformers 4.x configs. 'v5': one `rope_parameters` block (rope_type, rope_theta,
   * partial_rotary_factor, scaling fields) and `dtype`, as transformers 5 writes them.
   */
  configStyle?: 'legacy' | 'v5';
}

// ---------------------------------------------------------------------------------------------
// Rounding to a storage precision, done here in float64 rather than through carve's converters so
// that the round trip through src/model/safetensors.ts is checked against an independent answer.

const FRACTION_BITS: Record<WriteDtype, number> = { F32: 23, F16: 10, BF16: 7 };
const MIN_NORMAL_EXP: Record<WriteDtype, number> = { F32: -126, F16: -14, BF16: -126 };
const MAX_FINITE: Record<WriteDtype, number> = { F32: 3.4028234663852886e38, F16: 65504, BF16: 3.3895313892515355e38 };

/** The dtype value nearest to x, ties to even (IEEE round-to-nearest), subnormals included. */
export function roundToDtype(x: number, dtype: WriteDtype): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  if (2 ** e > ax) e--;
  else if (2 ** (e + 1) <= ax) e++;
  const quantum = 2 ** (Math.max(e, MIN_NORMAL_EXP[dtype]) - FRACTION_BITS[dtype]);
  const r = x / quantum; // exact: quantum is a power of two
  const f = Math.floor(r);
  const frac = r - f;
  const n = frac > 0.5 ? f + 1 : frac < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  const out = n === 0 ? (x < 0 ? -0 : 0) : n * quantum;
  if (Math.abs(out) > MAX_FINITE[dtype]) throw new Error(`${x} overflows ${dtype}`);
  return out;
}

// ---------------------------------------------------------------------------------------------

const LLAMA_FAMILY = new Set<HfArch>(['llama', 'mistral', 'qwen2']);

interface Resolved {
  arch: HfArch;
  L: number;
  H: number;
  K: number;
  d: number;
  dh: number;
  dMlp: number;
  V: number;
  maxPos: number;
  tied: boolean;
  attnBias: boolean;
  mlpBias: boolean;
  rotaryPct: number;
  parallel: boolean;
  theta: number;
  act: string;
  eps: number;
  dtype: WriteDtype;
}

function resolve(s: HfModelSpec): Resolved {
  const { arch } = s;
  const llamaFamily = LLAMA_FAMILY.has(arch);
  const reject = (field: keyof HfModelSpec, why: string) => {
    if (s[field] !== undefined) throw new Error(`randomHfModel: '${field}' ${why} (arch ${arch})`);
  };
  if (!llamaFamily) {
    reject('nKvHead', 'is only for the Llama family');
    reject('headDim', 'is only for the Llama family (GPT-2 and GPT-NeoX derive it from d_model / n_head)');
  }
  if (arch !== 'llama') reject('mlpBias', "is Llama's mlp_bias only");
  if (arch !== 'llama' && arch !== 'gpt_neox') reject('attentionBias', 'is fixed by the architecture');
  if (arch !== 'gpt_neox') {
    reject('rotaryPct', 'is GPT-NeoX only (Llama-family attention rotates every dim)');
    reject('parallelResidual', 'is GPT-NeoX only');
  }
  if (arch === 'gpt2') {
    reject('ropeTheta', 'needs a rotary model');
    reject('ropeScaling', 'needs a rotary model');
  }
  if (arch !== 'mistral' && arch !== 'qwen2') reject('slidingWindow', 'is Mistral / Qwen2 only');
  if (arch !== 'qwen2') {
    reject('useSlidingWindow', 'is Qwen2 only');
    reject('maxWindowLayers', 'is Qwen2 only');
  }
  if (llamaFamily) reject('activation', 'is silu (SwiGLU) for the Llama family');

  const H = s.nHead;
  const K = s.nKvHead ?? H;
  if (H % K !== 0) throw new Error(`randomHfModel: nKvHead ${K} does not divide nHead ${H}`);
  if (s.headDim === undefined && s.dModel % H !== 0) throw new Error(`randomHfModel: nHead ${H} does not divide dModel ${s.dModel}`);
  const dh = s.headDim ?? s.dModel / H;
  const rotaryPct = s.rotaryPct ?? (arch === 'gpt_neox' ? 0.25 : 1);
  if (arch !== 'gpt2' && Math.trunc(dh * rotaryPct) % 2 !== 0) {
    throw new Error(`randomHfModel: rotary width int(${dh}·${rotaryPct}) must be even`);
  }
  return {
    arch,
    L: s.nLayer,
    H,
    K,
    d: s.dModel,
    dh,
    dMlp: s.dMlp ?? (llamaFamily ? 3 : 4) * s.dModel,
    V: s.vocab,
    maxPos: s.maxPos ?? 16,
    tied: s.tied ?? arch === 'gpt2',
    attnBias: s.attentionBias ?? arch === 'gpt_neox',
    mlpBias: s.mlpBias ?? false,
    rotaryPct,
    parallel: s.parallelResidual ?? true,
    theta: s.ropeTheta ?? 10000,
    act: s.activation ?? (arch === 'gpt2' ? 'gelu_new' : 'gelu'),
    eps: s.eps ?? (arch === 'gpt2' || arch === 'gpt_neox' ? 1e-5 : 1e-6),
    dtype: s.dtype ?? 'F32',
  };
}

function buildConfig(s: HfModelSpec, r: Resolved): Record<string, unknown> {
  const v5 = s.configStyle === 'v5';
  const dtypeName = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[r.dtype];
  const dtypeField = v5 ? { dtype: dtypeName } : { torch_dtype: dtypeName };
  if (r.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: r.V,
      n_positions: r.maxPos,
      n_ctx: r.maxPos,
      n_embd: r.d,
      n_layer: r.L,
      n_head: r.H,
      n_inner: r.dMlp === 4 * r.d ? null : r.dMlp,
      activation_function: r.act,
      layer_norm_epsilon: r.eps,
      scale_attn_weights: true,
      tie_word_embeddings: r.tied,
      bos_token_id: 0,
      eos_token_id: 0,
      ...dtypeField,
    };
  }
  const rope = (extra: Record<string, unknown>): Record<string, unknown> => {
    if (v5) {
      const params: Record<string, unknown> = { rope_type: s.ropeScaling?.rope_type ?? 'default', rope_theta: r.theta, ...s.ropeScaling };
      if (r.arch === 'gpt_neox') params.partial_rotary_factor = r.rotaryPct;
      return { rope_parameters: params };
    }
    return { ...extra, rope_scaling: s.ropeScaling ? { ...s.ropeScaling } : null };
  };
  if (r.arch === 'gpt_neox') {
    const cfg: Record<string, unknown> = {
      architectures: ['GPTNeoXForCausalLM'],
      model_type: 'gpt_neox',
      vocab_size: r.V,
      hidden_size: r.d,
      intermediate_size: r.dMlp,
      num_hidden_layers: r.L,
      num_attention_heads: r.H,
      hidden_act: r.act,
      max_position_embeddings: r.maxPos,
      layer_norm_eps: r.eps,
      use_parallel_residual: r.parallel,
      tie_word_embeddings: r.tied,
      bos_token_id: 0,
      eos_token_id: 0,
      ...rope({ rotary_pct: r.rotaryPct, rotary_emb_base: r.theta }),
      ...dtypeField,
    };
    // Pythia's configs predate attention_bias (HF then defaults it to true): only write it when asked.
    if (s.attentionBias !== undefined) cfg.attention_bias = s.attentionBias;
    return cfg;
  }
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[r.arch];
  const cfg: Record<string, unknown> = {
    architectures: [arch],
    model_type: r.arch,
    vocab_size: r.V,
    hidden_size: r.d,
    intermediate_size: r.dMlp,
    num_hidden_layers: r.L,
    num_attention_heads: r.H,
    num_key_value_heads: r.K,
    hidden_act: 'silu',
    max_position_embeddings: r.maxPos,
    rms_norm_eps: r.eps,
    tie_word_embeddings: r.tied,
    bos_token_id: 1,
    eos_token_id: 2,
    ...rope({ rope_theta: r.theta }),
    ...dtypeField,
  };
  if (s.headDim !== undefined) cfg.head_dim = s.headDim;
  if (r.arch === 'llama') {
    cfg.attention_bias = r.attnBias;
    cfg.mlp_bias = r.mlpBias;
  }
  if (r.arch === 'mistral') cfg.sliding_window = s.slidingWindow === undefined ? 4096 : s.slidingWindow;
  if (r.arch === 'qwen2') {
    const given = s.slidingWindow !== undefined && s.slidingWindow !== null;
    cfg.use_sliding_window = s.useSlidingWindow ?? given;
    cfg.sliding_window = given ? s.slidingWindow : 4096;
    cfg.max_window_layers = s.maxWindowLayers ?? 1;
  }
  return cfg;
}

/** The HF tensor names and shapes of one architecture, in the order real checkpoints list them. */
function tensorPlan(r: Resolved): { name: string; shape: number[]; kind: 'matrix' | 'bias' | 'gain' | 'shift' }[] {
  const plan: { name: string; shape: number[]; kind: 'matrix' | 'bias' | 'gain' | 'shift' }[] = [];
  const m = (name: string, shape: number[]) => plan.push({ name, shape, kind: 'matrix' });
  const b = (name: string, n: number) => plan.push({ name, shape: [n], kind: 'bias' });
  const g = (name: string, n: number) => plan.push({ name, shape: [n], kind: 'gain' });
  const sh = (name: string, n: number) => plan.push({ name, shape: [n], kind: 'shift' });
  const { d, dh, H, K, dMlp, V } = r;
  if (r.arch === 'gpt2') {
    // GPT2LMHeadModel's state dict: Conv1D weights are [in, out]; c_attn's columns are [Q | K | V].
    const p = 'transformer.';
    m(p + 'wte.weight', [V, d]);
    m(p + 'wpe.weight', [r.maxPos, d]);
    for (let l = 0; l < r.L; l++) {
      const q = `${p}h.${l}.`;
      g(q + 'ln_1.weight', d);
      sh(q + 'ln_1.bias', d);
      m(q + 'attn.c_attn.weight', [d, 3 * d]);
      b(q + 'attn.c_attn.bias', 3 * d);
      m(q + 'attn.c_proj.weight', [d, d]);
      b(q + 'attn.c_proj.bias', d);
      g(q + 'ln_2.weight', d);
      sh(q + 'ln_2.bias', d);
      m(q + 'mlp.c_fc.weight', [d, dMlp]);
      b(q + 'mlp.c_fc.bias', dMlp);
      m(q + 'mlp.c_proj.weight', [dMlp, d]);
      b(q + 'mlp.c_proj.bias', d);
    }
    g(p + 'ln_f.weight', d);
    sh(p + 'ln_f.bias', d);
    if (!r.tied) m('lm_head.weight', [V, d]);
    return plan;
  }
  if (r.arch === 'gpt_neox') {
    const p = 'gpt_neox.';
    m(p + 'embed_in.weight', [V, d]);
    for (let l = 0; l < r.L; l++) {
      const q = `${p}layers.${l}.`;
      g(q + 'input_layernorm.weight', d);
      sh(q + 'input_layernorm.bias', d);
      g(q + 'post_attention_layernorm.weight', d);
      sh(q + 'post_attention_layernorm.bias', d);
      // nn.Linear [out, in]; the 3·d output rows are grouped per head: [q_h, k_h, v_h] for each h.
      m(q + 'attention.query_key_value.weight', [3 * d, d]);
      if (r.attnBias) b(q + 'attention.query_key_value.bias', 3 * d);
      m(q + 'attention.dense.weight', [d, d]);
      if (r.attnBias) b(q + 'attention.dense.bias', d);
      // GPTNeoXMLP's Linears always carry biases.
      m(q + 'mlp.dense_h_to_4h.weight', [dMlp, d]);
      b(q + 'mlp.dense_h_to_4h.bias', dMlp);
      m(q + 'mlp.dense_4h_to_h.weight', [d, dMlp]);
      b(q + 'mlp.dense_4h_to_h.bias', d);
    }
    g(p + 'final_layer_norm.weight', d);
    sh(p + 'final_layer_norm.bias', d);
    if (!r.tied) m('embed_out.weight', [V, d]);
    return plan;
  }
  // Llama family: nn.Linear [out, in]. Qwen2: q/k/v biases always, o_proj and MLP never;
  // Mistral: none; Llama: attention_bias → q, k, v and o; mlp_bias → gate, up, down.
  const qkvBias = r.arch === 'qwen2' || (r.arch === 'llama' && r.attnBias);
  const oBias = r.arch === 'llama' && r.attnBias;
  const mlpBias = r.arch === 'llama' && r.mlpBias;
  m('model.embed_tokens.weight', [V, d]);
  for (let l = 0; l < r.L; l++) {
    const q = `model.layers.${l}.`;
    g(q + 'input_layernorm.weight', d);
    m(q + 'self_attn.q_proj.weight', [H * dh, d]);
    if (qkvBias) b(q + 'self_attn.q_proj.bias', H * dh);
    m(q + 'self_attn.k_proj.weight', [K * dh, d]);
    if (qkvBias) b(q + 'self_attn.k_proj.bias', K * dh);
    m(q + 'self_attn.v_proj.weight', [K * dh, d]);
    if (qkvBias) b(q + 'self_attn.v_proj.bias', K * dh);
    m(q + 'self_attn.o_proj.weight', [d, H * dh]);
    if (oBias) b(q + 'self_attn.o_proj.bias', d);
    g(q + 'post_attention_layernorm.weight', d);
    m(q + 'mlp.gate_proj.weight', [dMlp, d]);
    if (mlpBias) b(q + 'mlp.gate_proj.bias', dMlp);
    m(q + 'mlp.up_proj.weight', [dMlp, d]);
    if (mlpBias) b(q + 'mlp.up_proj.bias', dMlp);
    m(q + 'mlp.down_proj.weight', [d, dMlp]);
    if (mlpBias) b(q + 'mlp.down_proj.bias', d);
  }
  g('model.norm.weight', d);
  if (!r.tied) m('lm_head.weight', [V, d]);
  return plan;
}

/** A seeded random model of the given architecture; same spec and seed → identical model. */
export function randomHfModel(spec: HfModelSpec): HfModel {
  const r = resolve(spec);
  const config = buildConfig(spec, r);
  const next = rng(spec.seed ?? 1);
  const scale = spec.scale ?? 0.3;
  const tensors = new Map<string, HfTensor>();
  for (const { name, shape, kind } of tensorPlan(r)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const noise = randn(n, next);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // Norm gains 1 ± 0.1 and shifts ±0.1: near the identity, far enough from it to matter.
      const v = kind === 'gain' ? 1 + 0.1 * noise[i] : kind === 'shift' ? 0.1 * noise[i] : scale * noise[i];
      data[i] = roundToDtype(v, r.dtype);
    }
    tensors.set(name, { shape, data });
  }
  return { arch: r.arch, config, tensors, dtype: r.dtype };
}

/** A deep copy, so a test can edit weights without touching the original. */
export function cloneHfModel(model: HfModel): HfModel {
  const tensors = new Map<string, HfTensor>();
  for (const [name, t] of model.tensors) tensors.set(name, { shape: [...t.shape], data: Float64Array.from(t.data) });
  return { arch: model.arch, config: structuredClone(model.config), tensors, dtype: model.dtype };
}

export interface WriteHfOptions {
  /** Storage dtype: default the model's own. Writing in a dtype that cannot hold every value exactly throws. */
  dtype?: WriteDtype;
  /** Split into this many `model-0000k-of-0000N.safetensors` files plus `model.safetensors.index.json` (default 1: one `model.safetensors`). */
  shards?: number;
}

const BYTES: Record<WriteDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Write `dir/config.json` and the weights (one file or HF-style shards). Returns the file names written. */
export function writeHfModelDir(dir: string, model: HfModel, opts: WriteHfOptions = {}): string[] {
  const dtype = opts.dtype ?? model.dtype;
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > model.tensors.size) {
    throw new Error(`writeHfModelDir: shards must be an integer in [1, ${model.tensors.size}], got ${shards}`);
  }
  const toWrite: TensorToWrite[] = [];
  for (const [name, t] of model.tensors) {
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i];
      if (roundToDtype(v, dtype) !== v) throw new Error(`writeHfModelDir: ${name}[${i}] = ${v} is not exact in ${dtype}`);
      data[i] = v;
    }
    toWrite.push({ name, dtype, shape: t.shape, data });
  }
  mkdirSync(dir, { recursive: true });
  const config = { ...model.config };
  const dtypeName = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype];
  if ('dtype' in config) config.dtype = dtypeName;
  else config.torch_dtype = dtypeName;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const metadata = { format: 'pt' };
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), toWrite, metadata);
    return ['config.json', 'model.safetensors'];
  }
  // Contiguous groups of roughly equal byte size, each non-empty, in checkpoint order.
  const sizes = toWrite.map((t) => t.data.length * BYTES[dtype]);
  const total = sizes.reduce((a, b) => a + b, 0);
  const groups: TensorToWrite[][] = [];
  let acc = 0;
  let current: TensorToWrite[] = [];
  toWrite.forEach((t, i) => {
    current.push(t);
    acc += sizes[i];
    const remainingTensors = toWrite.length - i - 1;
    const remainingGroups = shards - groups.length - 1;
    const full = acc >= (total * (groups.length + 1)) / shards;
    if (remainingGroups > 0 && remainingTensors >= remainingGroups && (full || remainingTensors === remainingGroups)) {
      groups.push(current);
      current = [];
    }
  });
  groups.push(current);
  const pad = (k: number) => String(k).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const files: string[] = ['config.json'];
  groups.forEach((group, k) => {
    const file = `model-${pad(k + 1)}-of-${pad(shards)}.safetensors`;
    writeSafetensors(join(dir, file), group, metadata);
    for (const t of group) weightMap[t.name] = file;
    files.push(file);
  });
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
  files.push('model.safetensors.index.json');
  return files;
}

/** Write `model` as a Hugging Face directory `root/name` and load it back as carve reads it. */
export function writeAndLoad(root: string, name: string, model: HfModel, opts: WriteHfOptions = {}): LoadedModel {
  const dir = join(root, name);
  writeHfModelDir(dir, model, opts);
  return loadModelDir(dir, name);
}
