/**
 * Parameter counts of a (possibly pruned) GPT-2-format model:
 *  - n_params: every stored weight, a tied unembedding counted once (it is wte itself);
 *  - n_params_non_embedding: the same without wte, wpe and lm_head — what attention, MLPs,
 *    layer norms and residual biases hold, the part circuit pruning can shrink.
 */
import type { GPT2Weights, Tensor } from '../model/types.ts';

export interface ParamCounts {
  n_params: number;
  n_params_non_embedding: number;
}

const size = (t: Tensor | undefined): number => (t ? t.shape.reduce((a, b) => a * b, 1) : 0);

/** Weights of the transformer blocks and final layer norm (everything but wte, wpe, lm_head). */
export function countNonEmbedding(w: GPT2Weights): number {
  let n = size(w.lnf.g) + size(w.lnf.b);
  for (const l of w.layers) {
    n += size(l.ln1?.g) + size(l.ln1?.b);
    n += size(l.attn?.wQKV) + size(l.attn?.bQKV) + size(l.attn?.wO) + size(l.bO);
    n += size(l.ln2?.g) + size(l.ln2?.b);
    n += size(l.mlp?.wIn) + size(l.mlp?.bIn) + size(l.mlp?.wOut) + size(l.bMlpOut);
  }
  return n;
}

export function countParams(model: { weights: GPT2Weights }): ParamCounts {
  const w = model.weights;
  const nonEmbedding = countNonEmbedding(w);
  return {
    n_params: nonEmbedding + size(w.wte) + size(w.wpe) + size(w.lmHead),
    n_params_non_embedding: nonEmbedding,
  };
}
