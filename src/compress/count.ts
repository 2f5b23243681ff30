/**
 * Parameter counts of a (possibly pruned) model of any architecture, from its tensor table:
 *  - n_params: every stored weight, a tied unembedding counted once (it is the embedding itself);
 *  - n_params_non_embedding: the same without the token and position embeddings and the
 *    unembedding — what attention, MLPs, norms and residual biases hold, the part circuit pruning
 *    can shrink.
 */
import { tensorTable } from '../model/arch/index.ts';
import { EMBEDDING_ROLES, numel, slotShape } from '../model/tensors.ts';
import type { ModelConfig } from '../model/types.ts';

export interface ParamCounts {
  n_params: number;
  n_params_non_embedding: number;
}

/** Counts from the config alone: the table gives every tensor's shape. */
export function countParams(model: { config: ModelConfig }): ParamCounts {
  let total = 0;
  let embedding = 0;
  for (const slot of tensorTable(model.config)) {
    const n = numel(slotShape(model.config, slot));
    total += n;
    if (EMBEDDING_ROLES.has(slot.role)) embedding += n;
  }
  return { n_params: total, n_params_non_embedding: total - embedding };
}
