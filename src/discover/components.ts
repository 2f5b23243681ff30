/**
 * Components: attention heads (`L{l}H{h}`, the head's output z_h·W_O[h], without the shared b_O)
 * and MLPs (`L{l}MLP`, output bias included). Names use original layer and head indices, so a
 * pruned model's components keep the names they had in the full model.
 */
import { fail } from '../util/errors.ts';
import type { ModelConfig } from '../model/types.ts';

export type ComponentKind = 'heads' | 'mlps' | 'all';
export const COMPONENT_KINDS: readonly ComponentKind[] = ['heads', 'mlps', 'all'];

export interface Component {
  name: string;
  /** Original layer index (as in the name). */
  layer: number;
  /** Original head index, or null for an MLP. */
  head: number | null;
  /** Position of the layer in this model's layer list (what the graphs index by). */
  pos: number;
  /** For a head: its index among the layer's kept heads (its slot in hook_z). -1 for an MLP. */
  slot: number;
}

export function componentName(layer: number, head: number | null): string {
  return head === null ? `L${layer}MLP` : `L${layer}H${head}`;
}

/** Every component of the model, in layer order, a layer's heads before its MLP. */
export function listComponents(cfg: ModelConfig, kind: ComponentKind = 'all'): Component[] {
  const out: Component[] = [];
  cfg.layers.forEach((l, pos) => {
    if (kind !== 'mlps') l.heads.forEach((h, slot) => out.push({ name: componentName(l.sourceLayer, h), layer: l.sourceLayer, head: h, pos, slot }));
    if (kind !== 'heads' && l.mlp) out.push({ name: componentName(l.sourceLayer, null), layer: l.sourceLayer, head: null, pos, slot: -1 });
  });
  return out;
}

/** Look a name up among the model's components; `where` says which file or flag it came from. */
export function findComponent(cfg: ModelConfig, name: string, where: string): Component {
  const m = /^L(\d+)(?:H(\d+)|MLP)$/.exec(name.trim());
  if (!m) fail(`${where}: ${JSON.stringify(name)} is not a component name (expected L{layer}H{head} or L{layer}MLP)`);
  const found = listComponents(cfg, 'all').find((c) => c.name === name.trim());
  if (!found) fail(`${where}: the model has no component ${name.trim()}`);
  return found;
}

/** Sort components into canonical (layer, heads-before-MLP) order. */
export function canonicalOrder(cfg: ModelConfig, comps: Component[]): Component[] {
  const index = new Map(listComponents(cfg, 'all').map((c, i) => [c.name, i]));
  return [...comps].sort((a, b) => index.get(a.name)! - index.get(b.name)!);
}
