/**
 * Building an architecture's tensor table from its naming scheme. Which tensors a layer has follows
 * from the config alone, the same way for every architecture:
 *  - attention tensors (norm1, q/k/v or fused qkv, o.w) exist when the layer keeps a head;
 *  - MLP tensors (norm2, gate/up/down) exist when the layer keeps its MLP;
 *  - biases exist when the config says the projection has one; `o.b` and `down.b` do not depend on
 *    the layer's contents, because in a pruned model they also carry the folded outputs of what was cut;
 *  - norm biases exist for LayerNorm, not RMSNorm.
 */
import type { Axis, Role, TensorSlot } from '../tensors.ts';
import type { ModelConfig } from '../types.ts';

export interface SlotName {
  name: string;
  axes: Axis[];
  layout?: 'in_out' | 'out_in';
}

export interface Naming {
  embed: string;
  posEmbed?: string;
  finalNorm: { w: string; b?: string };
  unembed: string;
  /** Per-layer tensors by role, name relative to `layerPrefix(i)`, in file order. */
  layerPrefix: (i: number) => string;
  layer: Partial<Record<Role, SlotName>>;
}

function present(cfg: ModelConfig, role: Role, heads: boolean, mlp: boolean): boolean {
  const layerNorm = cfg.norm.kind === 'layer';
  switch (role) {
    case 'norm1.w':
      return heads;
    case 'norm1.b':
      return heads && layerNorm;
    case 'norm2.w':
      return mlp;
    case 'norm2.b':
      return mlp && layerNorm;
    case 'qkv.w':
    case 'q.w':
    case 'k.w':
    case 'v.w':
    case 'o.w':
      return heads;
    case 'qkv.b':
    case 'q.b':
    case 'k.b':
    case 'v.b':
      return heads && cfg.bias.qkv;
    case 'o.b':
      return cfg.bias.o;
    case 'gate.w':
      return mlp && cfg.mlp.gated;
    case 'up.w':
    case 'down.w':
      return mlp;
    case 'gate.b':
      return mlp && cfg.mlp.gated && cfg.bias.mlpIn;
    case 'up.b':
      return mlp && cfg.bias.mlpIn;
    case 'down.b':
      return cfg.bias.mlpOut;
    default:
      throw new Error(`${role} is not a per-layer role`);
  }
}

export function buildTable(cfg: ModelConfig, n: Naming): TensorSlot[] {
  const out: TensorSlot[] = [{ name: n.embed, role: 'embed', axes: [['vocab'], ['d']] }];
  if (cfg.positions.kind === 'learned') {
    if (!n.posEmbed) throw new Error(`${cfg.arch} has no learned position table`);
    out.push({ name: n.posEmbed, role: 'pos_embed', axes: [['ctx'], ['d']] });
  }
  cfg.layers.forEach((layout, i) => {
    const heads = layout.heads.length > 0;
    for (const [role, s] of Object.entries(n.layer) as [Role, SlotName][]) {
      if (!present(cfg, role, heads, layout.mlp)) continue;
      out.push({ name: n.layerPrefix(i) + s.name, role, layer: i, axes: s.axes, layout: s.layout });
    }
  });
  out.push({ name: n.finalNorm.w, role: 'final_norm.w', axes: [['d']] });
  if (cfg.norm.kind === 'layer') {
    if (!n.finalNorm.b) throw new Error(`${cfg.arch}: LayerNorm without a bias name`);
    out.push({ name: n.finalNorm.b, role: 'final_norm.b', axes: [['d']] });
  }
  if (!cfg.tied) out.push({ name: n.unembed, role: 'unembed', axes: [['vocab'], ['d']] });
  return out;
}
