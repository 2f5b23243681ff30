/**
 * Pruning a model to the components it keeps (SPEC `carve compress`), for every architecture:
 *  - a removed query head's slices are cut out of every tensor whose table axes name `head` (its
 *    columns of a fused QKV, its rows of q_proj, its part of the output projection); a key/value head
 *    goes only when no kept query head reads it; a removed MLP's weights and norm are dropped;
 *  - what the removed component would have added to the residual stream under the ablation is
 *    folded into a constant: under mean (or optimal: a learned constant instead of the mean) ablation a head's mean output (mean hook_z slice through its
 *    part of the output projection) is added to its layer's attention output bias, and a removed
 *    MLP's mean output (hook_mlp_out, bias included) becomes the layer's MLP output bias; under zero
 *    ablation a head adds nothing (the shared bias is not part of a head's output) and a removed
 *    MLP's bias is 0;
 *  - a layer left with no heads and no MLP only adds two constants to the residual stream, so they
 *    move into the previous remaining layer's MLP output bias (the last thing that layer adds), or
 *    into every row of the learned position table when no layer precedes it; both are exact, as
 *    nothing reads the residual stream between the two places. A rotary model has no position table,
 *    so there the empty layer stays, holding its two biases.
 * Layouts keep their original source layers and head indices, so the pruned model's components have
 * the names they had in the full model, and a pruned model can be pruned again.
 * The result equals the original model run with the removed components' hook values replaced
 * (HookedModel interventions with the same replacement values), up to float32 rounding.
 */
import { fail, failOption } from '../util/errors.ts';
import { componentName } from '../discover/components.ts';
import type { Replacements } from '../discover/replacements.ts';
import { tensorTable } from '../model/arch/index.ts';
import { sliceTensor } from '../model/slice.ts';
import type { Role, TensorSlot } from '../model/tensors.ts';
import { kvHeadsOf, type LayerLayout, type ModelConfig, type ModelData, type Tensor, type Weights } from '../model/types.ts';

/** optimal: learned constants (src/discover/optimal.ts), folded exactly like the mean. */
export type FoldableAblation = 'zero' | 'mean' | 'optimal';

export type PrunableModel = ModelData;

/** The constant a component's ablated output contributes; checks that it is one vector. */
function constValue(repl: Replacements, kind: 'z' | 'mlp', pos: number, width: number, what: string): ArrayLike<number> {
  const v = (kind === 'z' ? repl.z : repl.mlp).get(pos);
  if (!v) throw new Error(`pruneModel: no ${kind === 'z' ? 'hook_z' : 'hook_mlp_out'} replacement for ${what} (layer position ${pos})`);
  if (v.shape !== 'const') {
    fail(`${what}: its replacement differs per prompt (${repl.ablation} ablation), so it cannot be folded into a bias; use zero, mean or optimal ablation`);
  }
  if (v.data.length !== width) throw new Error(`pruneModel: replacement for ${what} has ${v.data.length} values, expected ${width}`);
  return v.data;
}

/** Σ over the given rows r of value[r]·W_O[r, :], W_O read as [k·dh, d] whatever its storage layout. */
function addThroughOutput(acc: Float64Array, oW: Tensor, layout: 'in_out' | 'out_in', rows: Iterable<[number, number]>): void {
  const d = acc.length;
  const kd = layout === 'in_out' ? oW.shape[0] : oW.shape[1];
  for (const [r, value] of rows) {
    if (value === 0) continue;
    if (layout === 'in_out') for (let c = 0; c < d; c++) acc[c] += value * oW.data[r * d + c];
    else for (let c = 0; c < d; c++) acc[c] += value * oW.data[c * kd + r];
  }
}

const vector = (data: ArrayLike<number>): Tensor => ({ data: Float32Array.from(data), shape: [data.length] });

/**
 * A new model holding only the components named in `keep` (component names as in the full model),
 * with the removed ones' ablated outputs folded into biases. `replacements` must be those of this
 * model (by layer position) for `ablation`. The input model is not modified; unchanged tensors are
 * shared with it. Architectures without output biases get them (zero-initialised, then holding the
 * folded values), recorded as `residualBiases` so the file stays loadable.
 */
export function pruneModel(
  model: PrunableModel,
  keep: Set<string>,
  replacements: Replacements,
  ablation: FoldableAblation | 'resample',
): PrunableModel {
  if (ablation === 'resample' || replacements.ablation === 'resample') {
    failOption('resample ablation cannot be folded into a smaller model: the replacement differs per prompt (it is the output on the paired corrupt prompt); use {ablation} zero, mean or optimal');
  }
  if (ablation !== 'zero' && ablation !== 'mean' && ablation !== 'optimal') fail(`ablation: expected zero, mean or optimal, got ${JSON.stringify(ablation)}`);
  if (replacements.ablation !== ablation) {
    throw new Error(`pruneModel: replacements are for ${replacements.ablation} ablation, not ${ablation}`);
  }
  const { config: cfg, weights: w } = model;
  const d = cfg.dModel;
  const dh = cfg.dHead;

  const known = new Set<string>();
  cfg.layers.forEach((l) => {
    l.heads.forEach((h) => known.add(componentName(l.sourceLayer, h)));
    if (l.mlp) known.add(componentName(l.sourceLayer, null));
  });
  for (const name of keep) if (!known.has(name)) fail(`the model has no component ${name}`);

  const table = tensorTable(cfg);
  const bySlot = new Map<string, TensorSlot>(table.map((s) => [`${s.role}@${s.layer ?? ''}`, s]));
  const slot = (role: Role, pos?: number) => bySlot.get(`${role}@${pos ?? ''}`);
  const tensor = (role: Role, pos?: number): Tensor | undefined => {
    const s = slot(role, pos);
    return s ? w.get(s.name) : undefined;
  };

  const layouts: LayerLayout[] = [];
  /** Per kept layer: its source position and its two residual biases (float64 while folding). */
  const kept: { pos: number; oB: Float64Array; downB: Float64Array; keepSlots: number[]; keepKv: number[] }[] = [];
  /** Constants of dropped layers with no remaining layer before them, for the position table. */
  const toPositions = new Float64Array(d);
  let anyToPositions = false;

  cfg.layers.forEach((layout, pos) => {
    const keptSlots: number[] = [];
    const removedSlots: number[] = [];
    layout.heads.forEach((h, s) => (keep.has(componentName(layout.sourceLayer, h)) ? keptSlots : removedSlots).push(s));

    // The output bias plus the removed heads' ablated outputs, in float64.
    const oB = Float64Array.from(tensor('o.b', pos)?.data ?? new Float32Array(d));
    if (removedSlots.length > 0) {
      const zr = constValue(replacements, 'z', pos, layout.heads.length * dh, `layer ${layout.sourceLayer}'s heads`);
      const rows: [number, number][] = [];
      for (const s of removedSlots) for (let j = 0; j < dh; j++) rows.push([s * dh + j, zr[s * dh + j]]);
      addThroughOutput(oB, tensor('o.w', pos)!, slot('o.w', pos)!.layout!, rows);
    }
    let keepMlp = layout.mlp;
    let downB = Float64Array.from(tensor('down.b', pos)?.data ?? new Float32Array(d));
    if (layout.mlp && !keep.has(componentName(layout.sourceLayer, null))) {
      keepMlp = false;
      // The MLP's output, its bias included, replaced by the constant.
      downB = Float64Array.from(constValue(replacements, 'mlp', pos, d, `L${layout.sourceLayer}MLP`));
    }

    if (keptSlots.length === 0 && !keepMlp) {
      // Nothing left to compute: the layer only adds two constants to the residual stream, and
      // nothing reads the stream between here and the previous remaining layer's last addition.
      const target = kept.length > 0 ? kept[kept.length - 1].downB : cfg.positions.kind === 'learned' ? toPositions : undefined;
      if (target) {
        for (let c = 0; c < d; c++) target[c] += oB[c] + downB[c];
        if (target === toPositions) anyToPositions = true;
        return;
      }
      // Rotary models have no position table to carry the constants: the empty layer stays.
    }
    const heads = keptSlots.map((s) => layout.heads[s]);
    const kvAll = kvHeadsOf(cfg, layout);
    const kvKept = kvHeadsOf(cfg, { ...layout, heads });
    layouts.push({ sourceLayer: layout.sourceLayer, heads, mlp: keepMlp, ...(keepMlp && layout.neurons ? { neurons: [...layout.neurons] } : {}) });
    kept.push({ pos, oB, downB, keepSlots: keptSlots, keepKv: kvKept.map((k) => kvAll.indexOf(k)) });
  });

  const config: ModelConfig = {
    ...cfg,
    nLayer: layouts.length,
    layers: layouts,
    bias: { ...cfg.bias, o: true, mlpOut: true },
    residualBiases: cfg.residualBiases || !cfg.bias.o || !cfg.bias.mlpOut,
    pruned: true,
    raw: { ...cfg.raw },
  };
  const weights: Weights = new Map();
  const byRole = new Map<string, TensorSlot>(tensorTable(config).map((s) => [`${s.role}@${s.layer ?? ''}`, s]));
  for (const out of tensorTable(config)) {
    if (out.layer === undefined) {
      let t = w.get(slot(out.role)!.name)!;
      if (out.role === 'pos_embed' && anyToPositions) {
        const data = Float32Array.from(t.data);
        for (let r = 0; r < t.shape[0]; r++) for (let c = 0; c < d; c++) data[r * d + c] += toPositions[c];
        t = { data, shape: [...t.shape] };
      }
      weights.set(out.name, t);
      continue;
    }
    const k = kept[out.layer];
    if (out.role === 'o.b') weights.set(out.name, vector(k.oB));
    else if (out.role === 'down.b') weights.set(out.name, vector(k.downB));
    else {
      const src = slot(out.role, k.pos)!;
      weights.set(out.name, sliceTensor(cfg, src, w.get(src.name)!, { head: k.keepSlots, kv: k.keepKv }));
    }
  }
  if (byRole.size !== weights.size) throw new Error('pruneModel: tensor table mismatch');
  return { config, weights };
}

/** The components a keep set removes from a model, in canonical order. */
export function removedComponents(cfg: ModelConfig, keep: Set<string>): string[] {
  const out: string[] = [];
  cfg.layers.forEach((l) => {
    for (const h of l.heads) if (!keep.has(componentName(l.sourceLayer, h))) out.push(componentName(l.sourceLayer, h));
    if (l.mlp && !keep.has(componentName(l.sourceLayer, null))) out.push(componentName(l.sourceLayer, null));
  });
  return out;
}
