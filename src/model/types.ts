/**
 * The in-memory shape of a model of any architecture carve reads: its configuration and its weights.
 * Full checkpoints and pruned ones (written by `carve compress`) share these types; a pruned model
 * simply has fewer heads in some layers, MLPs absent, or whole layers gone.
 *
 * Weights are a map from the tensor's name in the file (Hugging Face's names, e.g.
 * `model.layers.3.self_attn.q_proj.weight`) to its data; the per-architecture table in tensors.ts
 * says which names a config calls for, their shapes, and the role each plays in the forward pass.
 */
import type { Dtype } from './safetensors.ts';

/** A dense row-major float32 tensor. `data` may be shared with other models: treat as read-only. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

/** The architectures carve reads, by their Hugging Face `model_type`. */
export type ArchName = 'gpt2' | 'llama' | 'mistral' | 'qwen2' | 'gpt_neox';
export const ARCH_NAMES: readonly ArchName[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox'];

/** MLP nonlinearities, by their Hugging Face names (`silu` for the Llama family's SwiGLU gate). */
export type Activation = 'gelu_new' | 'gelu' | 'relu' | 'gelu_fast' | 'gelu_pytorch_tanh' | 'silu';

/** What remains of one original layer in a (possibly pruned) model. */
export interface LayerLayout {
  /** Index of this layer in the original, unpruned model; names like L{sourceLayer}H{h} use it. */
  sourceLayer: number;
  /** Original query-head indices kept, ascending. Empty: the attention block is gone, only its output bias remains. */
  heads: number[];
  /** False: the MLP is gone, only its output bias (the folded mean, or zero) remains. */
  mlp: boolean;
  /**
   * Original indices of the MLP neurons kept (hidden units: rows of the input projection, columns of
   * the output projection), ascending; absent: all dMlp of them. Only with `mlp: true`.
   */
  neurons?: number[];
}

/** Rotary position embedding (HF's rotate_half layout) on the first `dims` dimensions of every head. */
export interface RotaryPositions {
  kind: 'rotary';
  /** Rotated dimensions per head (even; dHead unless partial rotary). */
  dims: number;
  theta: number;
  /** HF `rope_scaling`: Llama 3's frequency-dependent scaling, or linear position interpolation. */
  scaling?:
    | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
    | { type: 'linear'; factor: number };
}

export type Positions = { kind: 'learned' } | RotaryPositions;

export interface ModelConfig {
  arch: ArchName;
  nLayer: number;
  /** Query heads per layer in the original model. */
  nHead: number;
  /** Key/value heads per layer in the original model (nHead without grouped-query attention). */
  nKvHead: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  /** Longest sequence: the learned position table's length, or the config's max_position_embeddings. */
  nCtx: number;
  vocabSize: number;
  norm: { kind: 'layer' | 'rms'; eps: number };
  positions: Positions;
  /** gated: act(x·W_gate) ⊙ (x·W_up), then W_down (SwiGLU); otherwise act(x·W_in) then W_out. */
  mlp: { gated: boolean; activation: Activation };
  /** Which projections carry biases. mlpOut and o also hold folded means in a pruned model. */
  bias: { qkv: boolean; o: boolean; mlpIn: boolean; mlpOut: boolean };
  /** GPT-NeoX's x + attn(ln1(x)) + mlp(ln2(x)) instead of two sequential residual additions. */
  parallelResidual: boolean;
  /** The unembedding is the token embedding itself (no separate tensor in the file). */
  tied: boolean;
  /** Sliding-window attention: query i sees key j when 0 ≤ i − j < size, in the layers flagged (by source layer). */
  window: { size: number; layers: boolean[] } | null;
  /**
   * The output biases of attention and MLP exist in every layer because carve added them (zero, then
   * holding folded means) to an architecture that has none: `bias.o` and `bias.mlpOut` are then true.
   */
  residualBiases: boolean;
  /** One entry per layer present in the file. For an unpruned model: every head, every MLP, sourceLayer = index. */
  layers: LayerLayout[];
  /** True when the file carried a `carve` pruned-layout section. */
  pruned: boolean;
  /**
   * A trimmed vocabulary (`carve compress --vocab task`): the original token id of each embedding
   * row, in row order (vocabSize entries). Undefined: rows are the tokenizer's ids. See vocab.ts.
   */
  vocab?: number[];
  /** The raw config.json object, kept so a rewritten model preserves keys carve does not use. */
  raw: Record<string, unknown>;
}

/** Weights by their tensor name in the file (see tensors.ts for the table of names per architecture). */
export type Weights = Map<string, Tensor>;

export interface ModelData {
  config: ModelConfig;
  weights: Weights;
}

export interface LoadedModel extends ModelData {
  /** Where it came from: a directory path (resolved), for reports and error messages. */
  source: string;
  /** A display name: the hub id, 'toy-ioi', or the directory path as given. */
  name: string;
  /**
   * The safetensors dtype most of the weights were stored in ('F16' for toy-ioi), so a rewritten
   * model can keep its precision. Undefined for models not read from a file.
   */
  storedDtype?: Dtype;
}

/** The key/value heads a layer keeps: those some kept query head reads (query head h reads h // (nHead / nKvHead)). */
export function kvHeadsOf(cfg: ModelConfig, layer: LayerLayout): number[] {
  const group = cfg.nHead / cfg.nKvHead;
  return [...new Set(layer.heads.map((h) => Math.floor(h / group)))].sort((a, b) => a - b);
}

/** The MLP width of a layer: its kept neurons, or the config's dMlp. */
export function mlpWidth(cfg: ModelConfig, layer: LayerLayout): number {
  return layer.neurons?.length ?? cfg.dMlp;
}

/** Original indices of a layer's MLP neurons, in the order the tensors hold them. */
export function neuronsOf(cfg: ModelConfig, layer: LayerLayout): number[] {
  return layer.neurons ? [...layer.neurons] : Array.from({ length: cfg.dMlp }, (_, i) => i);
}
