/**
 * Attention patterns of one prompt: the softmax weights `blocks.L.attn.hook_pattern` of every query
 * head of a layer, read from a hooked run that stops after that layer. Works for every architecture
 * the forward builds (learned or rotary positions, grouped-query attention, sliding windows), since
 * it only asks the shared forward for a hook.
 */
import type { HookedModel, Intervention } from './hooked.ts';

export interface LayerPatterns {
  /** Tokens of the prompt (its length T). */
  length: number;
  /** Original head index of each query slot of the layer. */
  heads: number[];
  /** Per slot: [T query rows × T key columns], row-major; each row sums to 1 over the keys it sees. */
  patterns: Float64Array[];
}

/**
 * The attention patterns of every head in layer position `pos` on one prompt. `interventions`
 * (hook_z / hook_mlp_out replacements at earlier layers, one row) let a caller look at the pattern
 * with components removed; a removal in `pos` itself or later cannot change it and is ignored.
 */
export async function layerPatterns(
  model: HookedModel,
  tokens: number[],
  pos: number,
  interventions: { z?: Map<number, Intervention>; mlp?: Map<number, Intervention> } = {},
): Promise<LayerPatterns> {
  const layer = model.config.layers[pos];
  if (!layer) throw new Error(`layerPatterns: no layer at position ${pos}`);
  if (layer.heads.length === 0) throw new Error(`layerPatterns: layer ${layer.sourceLayer} has no attention heads`);
  const earlier = (m: Map<number, Intervention> | undefined) => new Map([...(m ?? new Map<number, Intervention>())].filter(([p]) => p < pos));
  const hook = model.hookName(pos, 'attn.hook_pattern');
  const out = await model.run({ tokens: [tokens], hooks: [hook], logits: 'none', endLayer: pos + 1, z: earlier(interventions.z), mlp: earlier(interventions.mlp) });
  const v = out.hooks.get(hook)!;
  // [1, k, T, T]
  const T = tokens.length;
  const k = layer.heads.length;
  if (v.dims.length !== 4 || v.dims[1] !== k || v.dims[2] !== T || v.dims[3] !== T) {
    throw new Error(`layerPatterns: ${hook} has shape [${v.dims.join(', ')}], expected [1, ${k}, ${T}, ${T}]`);
  }
  const patterns = layer.heads.map((_, s) => Float64Array.from(v.data.subarray(s * T * T, (s + 1) * T * T)));
  return { length: T, heads: [...layer.heads], patterns };
}
