/**
 * The in-memory shape of a GPT-2-format model: its configuration and its weights.
 * Full GPT-2 checkpoints and pruned ones (written by `carve compress`) share these types; a pruned
 * model simply has fewer heads in some layers, MLPs absent, or whole layers gone.
 */

/** A dense row-major float32 tensor. `data` may be a view into a memory-mapped file: treat as read-only. */
export interface Tensor {
  data: Float32Array;
  shape: number[];
}

export type Activation = 'gelu_new' | 'gelu' | 'relu' | 'gelu_fast' | 'gelu_pytorch_tanh';

/** What remains of one original layer in a (possibly pruned) model. */
export interface LayerLayout {
  /** Index of this layer in the original, unpruned model; names like L{sourceLayer}H{h} use it. */
  sourceLayer: number;
  /** Original head indices kept, ascending. Empty: the attention block is gone, only its output bias remains. */
  heads: number[];
  /** False: the MLP is gone, only its output bias (the folded mean, or zero) remains. */
  mlp: boolean;
}

export interface GPT2Config {
  nLayer: number;
  nHead: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  nCtx: number;
  vocabSize: number;
  eps: number;
  activation: Activation;
  /** One entry per layer present in the file. For an unpruned model: every head, every MLP, sourceLayer = index. */
  layers: LayerLayout[];
  /** True when the file carried a `carve` pruned-layout section. */
  pruned: boolean;
  /** The raw config.json object, kept so a rewritten model preserves keys carve does not use. */
  raw: Record<string, unknown>;
}

export interface AttentionWeights {
  /** Conv1D layout [d_model, 3 * nKept * d_head]: the Q, K and V column blocks, each nKept heads wide. */
  wQKV: Tensor;
  /** [3 * nKept * d_head] */
  bQKV: Tensor;
  /** [nKept * d_head, d_model] */
  wO: Tensor;
}

export interface MlpWeights {
  /** [d_model, d_mlp] */
  wIn: Tensor;
  /** [d_mlp] */
  bIn: Tensor;
  /** [d_mlp, d_model] */
  wOut: Tensor;
}

export interface LayerWeights {
  /** ln_1; absent when the layer has no heads. */
  ln1?: { g: Tensor; b: Tensor };
  attn?: AttentionWeights;
  /** attn.c_proj.bias [d_model]: always present; in a pruned model it also holds folded head means. */
  bO: Tensor;
  /** ln_2; absent when the MLP is gone. */
  ln2?: { g: Tensor; b: Tensor };
  mlp?: MlpWeights;
  /** mlp.c_proj.bias [d_model]: always present; when the MLP is gone it is the folded mean output. */
  bMlpOut: Tensor;
}

export interface GPT2Weights {
  /** [vocab, d_model] */
  wte: Tensor;
  /** [n_ctx, d_model] */
  wpe: Tensor;
  layers: LayerWeights[];
  lnf: { g: Tensor; b: Tensor };
  /** [vocab, d_model] when the checkpoint has its own lm_head.weight; otherwise tied to wte. */
  lmHead?: Tensor;
}

export interface LoadedModel {
  config: GPT2Config;
  weights: GPT2Weights;
  /** Where it came from: a directory path (resolved), for reports and error messages. */
  source: string;
  /** A display name: the hub id, 'toy-ioi', or the directory path as given. */
  name: string;
}
