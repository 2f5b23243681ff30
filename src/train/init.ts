/**
 * Seeded initialisation of a GPT-2 or Llama-architecture model, for training from scratch.
 *
 * GPT-2's scheme (Radford et al. 2019, as in Hugging Face `GPT2PreTrainedModel._init_weights`),
 * for both: every matrix and embedding ~ N(0, std²) with std 0.02, the residual-output projections
 * (attention and MLP output) scaled by 1/sqrt(2·n_layer), norm gains 1, biases 0. Tensors are
 * initialised by their role in the architecture's table (tensors.ts). Every number is configurable.
 *
 * Layers can be attention-only (`mlp: false` in the pruned layout of config.ts; the MLP output bias
 * stays zero) or MLP-only (`heads: []`; the attention output bias stays zero). A model with either
 * is written with the `carve` layout section, which carve reads and Hugging Face does not.
 *
 * Determinism: each tensor draws from its own stream, seeded by (seed, tensor name), with carve's
 * own PRNG (xoshiro128**, seeded through splitmix32) and Box–Muller normals computed in float64,
 * so the same spec and seed give bit-identical weights on every machine, and adding a layer does not
 * change the draws of the others.
 */
import { fail } from '../util/errors.ts';
import { fullLayout, isFullLayout, parseConfig } from '../model/config.ts';
import { tensorTable } from '../model/arch/index.ts';
import { numel, slotShape, type Role } from '../model/tensors.ts';
import { VOCAB_SIZE } from '../tokenizer/gpt2.ts';
import type { Activation, LayerLayout, ModelConfig, ModelData, Weights } from '../model/types.ts';

export interface InitSpec {
  /** 'gpt2' (default) or 'llama' (RMSNorm, rotary, SwiGLU, grouped-query attention, untied by default). */
  arch?: 'gpt2' | 'llama';
  nLayer: number;
  nHead: number;
  dModel: number;
  nCtx: number;
  /** Default: GPT-2's 50257. */
  vocabSize?: number;
  /** The BOS/EOS token id written into config.json (default GPT-2's, 50256). */
  bosId?: number;
  /** Key/value heads (llama; default nHead). */
  nKvHead?: number;
  /** Rotary base (llama; default 10000). */
  ropeTheta?: number;
  /** Default: 4·dModel for gpt2, round(8·dModel/3) for llama. */
  dMlp?: number;
  activation?: Activation;
  /** Default 1e-5. */
  eps?: number;
  /** Layers without an MLP: true for all, or one flag per layer. */
  attnOnly?: boolean | boolean[];
  /** Layers without attention: true for all, or one flag per layer. A layer cannot lack both. */
  mlpOnly?: boolean | boolean[];
  /** Std of matrices (default 0.02). */
  std?: number;
  /** Std of wte (default: std). */
  embedStd?: number;
  /** Std of wpe (default: std). */
  posStd?: number;
  /** Scale the residual-output projections by 1/sqrt(2·n_layer) (default true). */
  residualScaling?: boolean;
  /** LayerNorm gain (default 1). */
  lnGain?: number;
  /** A separate, untied unembedding (default: false for gpt2, as GPT-2 ties; true for llama). */
  untied?: boolean;
}

/** splitmix32: turns a seed into well-mixed state words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a over a string: a stable 32-bit hash of tensor names. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** xoshiro128**: a small, fast, seedable PRNG; `next()` is a uniform 32-bit integer. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  /** `seed`: any safe integer; `stream`: an optional string naming an independent stream. */
  constructor(seed: number, stream = '') {
    const st = { s: (Math.floor(seed / 4294967296) ^ fnv1a(stream)) | 0 };
    const lo = seed >>> 0;
    st.s ^= Math.imul(lo, 0x27d4eb2d);
    this.a = splitmix32(st) ^ lo;
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  next(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in (0, 1), 53 bits. */
  uniform(): number {
    const hi = this.next() >>> 5;
    const lo = this.next() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function perLayer(v: boolean | boolean[] | undefined, nLayer: number, what: string): boolean[] {
  if (v === undefined || typeof v === 'boolean') return new Array(nLayer).fill(v ?? false);
  if (!Array.isArray(v) || v.length !== nLayer || v.some((x) => typeof x !== 'boolean')) {
    fail(`${what}: expected true/false or a list of ${nLayer} true/false values (one per layer), got ${JSON.stringify(v)}`);
  }
  return [...v];
}

/** The layout an init spec describes. */
export function initLayout(spec: InitSpec): LayerLayout[] {
  const attnOnly = perLayer(spec.attnOnly, spec.nLayer, 'attnOnly');
  const mlpOnly = perLayer(spec.mlpOnly, spec.nLayer, 'mlpOnly');
  return fullLayout(spec.nLayer, spec.nHead).map((l, i) => {
    if (attnOnly[i] && mlpOnly[i]) fail(`layer ${i} cannot be both attention-only and MLP-only`);
    return { sourceLayer: i, heads: mlpOnly[i] ? [] : l.heads, mlp: !attnOnly[i] };
  });
}

function checkSpec(spec: InitSpec): void {
  const posInt = (v: unknown, name: string) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) fail(`${name}: expected a positive integer, got ${JSON.stringify(v)}`);
  };
  posInt(spec.nLayer, 'nLayer');
  posInt(spec.nHead, 'nHead');
  posInt(spec.dModel, 'dModel');
  posInt(spec.nCtx, 'nCtx');
  if (spec.vocabSize !== undefined) posInt(spec.vocabSize, 'vocabSize');
  if (spec.dMlp !== undefined) posInt(spec.dMlp, 'dMlp');
  if (spec.dModel % spec.nHead !== 0) fail(`dModel ${spec.dModel} is not divisible by nHead ${spec.nHead}`);
  if (spec.nKvHead !== undefined) {
    posInt(spec.nKvHead, 'nKvHead');
    if (spec.nHead % spec.nKvHead !== 0) fail(`nHead ${spec.nHead} is not a multiple of nKvHead ${spec.nKvHead}`);
  }
  if (spec.arch !== undefined && spec.arch !== 'gpt2' && spec.arch !== 'llama') fail(`arch: expected gpt2 or llama, got ${JSON.stringify(spec.arch)}`);
  for (const k of ['std', 'embedStd', 'posStd', 'lnGain', 'eps'] as const) {
    const v = spec[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) fail(`${k}: expected a non-negative number, got ${JSON.stringify(v)}`);
  }
}

/** The Hugging Face config.json object an init spec describes (before any pruned layout). */
function hfConfig(spec: InitSpec, vocab: number, dMlp: number, std: number): Record<string, unknown> {
  const arch = spec.arch ?? 'gpt2';
  if (arch === 'gpt2') {
    return {
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      initializer_range: std,
      bos_token_id: spec.bosId ?? 50256,
      eos_token_id: spec.bosId ?? 50256,
      tie_word_embeddings: !spec.untied,
      n_layer: spec.nLayer,
      n_head: spec.nHead,
      n_embd: spec.dModel,
      n_positions: spec.nCtx,
      vocab_size: vocab,
      layer_norm_epsilon: spec.eps ?? 1e-5,
      activation_function: spec.activation ?? 'gelu_new',
      n_inner: dMlp === 4 * spec.dModel ? null : dMlp,
    };
  }
  return {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    initializer_range: std,
    bos_token_id: spec.bosId ?? 50256,
    eos_token_id: spec.bosId ?? 50256,
    hidden_size: spec.dModel,
    num_hidden_layers: spec.nLayer,
    num_attention_heads: spec.nHead,
    num_key_value_heads: spec.nKvHead ?? spec.nHead,
    head_dim: spec.dModel / spec.nHead,
    intermediate_size: dMlp,
    max_position_embeddings: spec.nCtx,
    vocab_size: vocab,
    rms_norm_eps: spec.eps ?? 1e-6,
    rope_theta: spec.ropeTheta ?? 10000,
    hidden_act: spec.activation ?? 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: !(spec.untied ?? true),
  };
}

/** Standard deviation of each tensor, by role (0: a constant, see `constantOf`). */
function stdOf(role: Role, std: number, residStd: number, spec: InitSpec): number {
  switch (role) {
    case 'embed':
    case 'unembed':
      return spec.embedStd ?? std;
    case 'pos_embed':
      return spec.posStd ?? std;
    case 'o.w':
    case 'down.w':
      return residStd;
    case 'qkv.w':
    case 'q.w':
    case 'k.w':
    case 'v.w':
    case 'gate.w':
    case 'up.w':
      return std;
    default:
      return 0;
  }
}

/** A fresh model with seeded weights (see the file comment for the scheme). */
export function initModel(spec: InitSpec, seed: number): ModelData {
  checkSpec(spec);
  if (!Number.isSafeInteger(seed)) fail(`seed: expected an integer, got ${JSON.stringify(seed)}`);
  const dMlp = spec.dMlp ?? ((spec.arch ?? 'gpt2') === 'gpt2' ? 4 * spec.dModel : Math.round((8 * spec.dModel) / 3));
  const vocab = spec.vocabSize ?? VOCAB_SIZE;
  const std = spec.std ?? 0.02;
  const residStd = spec.residualScaling === false ? std : std / Math.sqrt(2 * spec.nLayer);
  const gain = spec.lnGain ?? 1;
  const layers = initLayout(spec);
  const base = parseConfig(hfConfig(spec, vocab, dMlp, std), 'init spec');
  const config: ModelConfig = { ...base, layers, pruned: !isFullLayout(layers, spec.nHead) };

  const weights: Weights = new Map();
  for (const slot of tensorTable(config)) {
    const shape = slotShape(config, slot);
    const n = numel(shape);
    const data = new Float32Array(n);
    const s = stdOf(slot.role, std, residStd, spec);
    if (s > 0) {
      // Each tensor draws from its own stream named by its file name, so adding a layer does not
      // change the draws of the others.
      const r = new Prng(seed, slot.name);
      for (let i = 0; i < n; i++) data[i] = r.normal() * s;
    } else if (slot.role === 'norm1.w' || slot.role === 'norm2.w' || slot.role === 'final_norm.w') {
      data.fill(gain);
    }
    weights.set(slot.name, { data, shape });
  }
  return { config, weights };
}
