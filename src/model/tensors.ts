/**
 * The one table of each architecture's tensors: for a config (pruned layout included), every tensor
 * the file holds — its name, its shape, and the role it plays in the forward pass. Loading checks
 * files against it, saving writes it, parameter counts sum it, compression slices tensors along the
 * axes it describes, training initialises by role, and the graphs take their weight inputs from it.
 * Nothing else spells a tensor name.
 *
 * Shapes are written as axes made of factors, so one description serves every layout: GPT-2's fused
 * `c_attn.weight` is [[d], [3, head, dh]] (columns: Q, K, V blocks, each `head` heads of dh), GPT-NeoX's
 * `query_key_value.weight` is [[head, 3, dh], [d]] (rows grouped per head). Factor `head` counts the
 * query heads the layer keeps, `kv` its key/value heads, `mlp` its MLP neurons, `vocab`/`ctx` the
 * embedding tables' rows; cutting a head out of any tensor is the same operation on every architecture.
 */
import type { LayerLayout, ModelConfig } from './types.ts';
import { kvHeadsOf, mlpWidth } from './types.ts';

export type Factor = 'd' | 'head' | 'kv' | 'dh' | 'mlp' | 'vocab' | 'ctx' | number;
export type Axis = Factor[];

/** What a tensor is for. `qkv` is a fused query/key/value projection; `up` the MLP's input (gated: its linear half). */
export type Role =
  | 'embed'
  | 'pos_embed'
  | 'unembed'
  | 'final_norm.w'
  | 'final_norm.b'
  | 'norm1.w'
  | 'norm1.b'
  | 'norm2.w'
  | 'norm2.b'
  | 'qkv.w'
  | 'qkv.b'
  | 'q.w'
  | 'q.b'
  | 'k.w'
  | 'k.b'
  | 'v.w'
  | 'v.b'
  | 'o.w'
  | 'o.b'
  | 'gate.w'
  | 'gate.b'
  | 'up.w'
  | 'up.b'
  | 'down.w'
  | 'down.b';

export interface TensorSlot {
  /** Name in the file (and of the graph's weight input). */
  name: string;
  role: Role;
  /** Layer position (index into cfg.layers) for per-layer tensors. */
  layer?: number;
  axes: Axis[];
  /**
   * For matrices used as projections: `in_out` is [in, out] (GPT-2's Conv1D, used as x·W);
   * `out_in` is [out, in] (torch.nn.Linear, used as x·Wᵀ).
   */
  layout?: 'in_out' | 'out_in';
}

/** Roles of the token and position tables: "embedding parameters" in counts. */
export const EMBEDDING_ROLES: ReadonlySet<Role> = new Set(['embed', 'pos_embed', 'unembed']);

/** Sizes of the symbolic factors for one layer (or for global tensors, layer undefined). */
export function factorSizes(cfg: ModelConfig, layer?: LayerLayout): Record<Exclude<Factor, number>, number> {
  return {
    d: cfg.dModel,
    head: layer ? layer.heads.length : cfg.nHead,
    kv: layer ? kvHeadsOf(cfg, layer).length : cfg.nKvHead,
    dh: cfg.dHead,
    mlp: layer ? mlpWidth(cfg, layer) : cfg.dMlp,
    vocab: cfg.vocabSize,
    ctx: cfg.nCtx,
  };
}

export function axisSize(axis: Axis, sizes: Record<Exclude<Factor, number>, number>): number {
  return axis.reduce<number>((p, f) => p * (typeof f === 'number' ? f : sizes[f]), 1);
}

/** The concrete shape of a slot in a config. */
export function slotShape(cfg: ModelConfig, slot: TensorSlot): number[] {
  const sizes = factorSizes(cfg, slot.layer === undefined ? undefined : cfg.layers[slot.layer]);
  return slot.axes.map((a) => axisSize(a, sizes));
}

export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
