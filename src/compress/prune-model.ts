/**
 * Pruning a model to the components it keeps (SPEC `carve compress`):
 *  - a removed head's Q, K and V columns (of `c_attn.weight` and `c_attn.bias`) and its rows of
 *    `c_proj.weight` are cut out; a removed MLP's weights are dropped (`mlp: false`, no ln_2);
 *  - what the removed component would have added to the residual stream under the ablation is
 *    folded into a constant: under mean ablation a head's mean output (mean hook_z slice @ its rows
 *    of W_O) is added to its layer's b_O, and a removed MLP's mean output (hook_mlp_out, bias
 *    included) becomes the layer's `mlp.c_proj.bias`; under zero ablation a head adds nothing (the
 *    shared b_O is not part of a head's output) and a removed MLP's bias is 0;
 *  - a layer left with no heads and no MLP is dropped; its two biases are constants added to the
 *    residual stream, so they move into the previous remaining layer's `mlp.c_proj.bias` (the last
 *    thing that layer adds), or into every row of `wpe` when no layer precedes it. Both are exact:
 *    nothing reads the residual stream between the two places.
 * Layouts keep their original source layers and head indices, so the pruned model's components have
 * the names they had in the full model, and a pruned model can be pruned again.
 * The result equals the original model run with the removed components' hook values replaced
 * (HookedModel interventions with the same replacement values), up to float32 rounding.
 */
import { fail } from '../util/errors.ts';
import { componentName } from '../discover/components.ts';
import type { Replacements } from '../discover/replacements.ts';
import type { GPT2Config, GPT2Weights, LayerLayout, LayerWeights, Tensor } from '../model/types.ts';

export type FoldableAblation = 'zero' | 'mean';

export interface PrunableModel {
  config: GPT2Config;
  weights: GPT2Weights;
}

const tensor = (data: Float32Array, shape: number[]): Tensor => ({ data, shape });

/** Columns `cols` (ranges [start, start + len)) of a row-major [rows, width] matrix. */
function selectColumns(m: Tensor, ranges: [number, number][]): Tensor {
  const [rows, width] = m.shape;
  const outWidth = ranges.reduce((s, [, len]) => s + len, 0);
  const out = new Float32Array(rows * outWidth);
  for (let r = 0; r < rows; r++) {
    let o = r * outWidth;
    for (const [start, len] of ranges) {
      out.set(m.data.subarray(r * width + start, r * width + start + len), o);
      o += len;
    }
  }
  return tensor(out, [rows, outWidth]);
}

/** Rows [start, start + len) for each range of a row-major [rows, width] matrix. */
function selectRows(m: Tensor, ranges: [number, number][]): Tensor {
  const width = m.shape[1];
  const outRows = ranges.reduce((s, [, len]) => s + len, 0);
  const out = new Float32Array(outRows * width);
  let o = 0;
  for (const [start, len] of ranges) {
    out.set(m.data.subarray(start * width, (start + len) * width), o);
    o += len * width;
  }
  return tensor(out, [outRows, width]);
}

function selectVector(v: Tensor, ranges: [number, number][]): Tensor {
  const n = ranges.reduce((s, [, len]) => s + len, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const [start, len] of ranges) {
    out.set(v.data.subarray(start, start + len), o);
    o += len;
  }
  return tensor(out, [n]);
}

/** The constant a component's ablated output contributes; checks that it is one vector. */
function constValue(repl: Replacements, kind: 'z' | 'mlp', pos: number, width: number, what: string): ArrayLike<number> {
  const v = (kind === 'z' ? repl.z : repl.mlp).get(pos);
  if (!v) throw new Error(`pruneModel: no ${kind === 'z' ? 'hook_z' : 'hook_mlp_out'} replacement for ${what} (layer position ${pos})`);
  if (v.shape !== 'const') {
    fail(`${what}: its replacement differs per prompt (${repl.ablation} ablation), so it cannot be folded into a bias; use zero or mean ablation`);
  }
  if (v.data.length !== width) throw new Error(`pruneModel: replacement for ${what} has ${v.data.length} values, expected ${width}`);
  return v.data;
}

/**
 * A new model holding only the components named in `keep` (component names as in the full model),
 * with the removed ones' ablated outputs folded into biases. `replacements` must be those of this
 * model (by layer position) for `ablation`. The input model is not modified; unchanged tensors are
 * shared with it.
 */
export function pruneModel(
  model: PrunableModel,
  keep: Set<string>,
  replacements: Replacements,
  ablation: FoldableAblation | 'resample',
): PrunableModel {
  if (ablation === 'resample' || replacements.ablation === 'resample') {
    fail('resample ablation cannot be folded into a smaller model: the replacement differs per prompt (it is the output on the paired corrupt prompt); use --ablation zero or mean');
  }
  if (ablation !== 'zero' && ablation !== 'mean') fail(`ablation: expected zero or mean, got ${JSON.stringify(ablation)}`);
  if (replacements.ablation !== ablation) {
    throw new Error(`pruneModel: replacements are for ${replacements.ablation} ablation, not ${ablation}`);
  }
  const { config: cfg, weights: w } = model;
  const d = cfg.dModel;
  const dh = cfg.dHead;
  if (w.layers.length !== cfg.layers.length) throw new Error(`pruneModel: ${w.layers.length} weight layers for ${cfg.layers.length} layouts`);

  const known = new Set<string>();
  cfg.layers.forEach((l) => {
    l.heads.forEach((h) => known.add(componentName(l.sourceLayer, h)));
    if (l.mlp) known.add(componentName(l.sourceLayer, null));
  });
  for (const name of keep) if (!known.has(name)) fail(`the model has no component ${name}`);

  const layouts: LayerLayout[] = [];
  const layers: LayerWeights[] = [];
  /** Constants of dropped layers with no remaining layer before them: added to every row of wpe. */
  const toWpe = new Float64Array(d);
  let anyToWpe = false;

  cfg.layers.forEach((layout, pos) => {
    const lw = w.layers[pos];
    const k = layout.heads.length;
    const keptSlots: number[] = [];
    const removedSlots: number[] = [];
    layout.heads.forEach((h, s) => (keep.has(componentName(layout.sourceLayer, h)) ? keptSlots : removedSlots).push(s));

    // b_O plus the removed heads' ablated outputs, in float64.
    const bO = Float64Array.from(lw.bO.data);
    if (removedSlots.length > 0) {
      const zr = constValue(replacements, 'z', pos, k * dh, `layer ${layout.sourceLayer}'s heads`);
      const wO = lw.attn!.wO.data;
      for (const s of removedSlots) {
        for (let j = 0; j < dh; j++) {
          const zj = zr[s * dh + j];
          if (zj === 0) continue;
          const row = (s * dh + j) * d;
          for (let c = 0; c < d; c++) bO[c] += zj * wO[row + c];
        }
      }
    }

    const out: LayerWeights = { bO: lw.bO, bMlpOut: lw.bMlpOut };
    if (removedSlots.length > 0) out.bO = tensor(Float32Array.from(bO), [d]);
    const kk = keptSlots.length;
    if (kk > 0) {
      out.ln1 = lw.ln1;
      if (removedSlots.length === 0) {
        out.attn = lw.attn;
      } else {
        const a = lw.attn!;
        const blocks = (block: number): [number, number][] => keptSlots.map((s) => [block * k * dh + s * dh, dh]);
        const qkvRanges = [...blocks(0), ...blocks(1), ...blocks(2)];
        out.attn = {
          wQKV: selectColumns(a.wQKV, qkvRanges),
          bQKV: selectVector(a.bQKV, qkvRanges),
          wO: selectRows(a.wO, keptSlots.map((s) => [s * dh, dh])),
        };
      }
    }

    let keepMlp = layout.mlp;
    if (layout.mlp && !keep.has(componentName(layout.sourceLayer, null))) {
      keepMlp = false;
      const mr = constValue(replacements, 'mlp', pos, d, `L${layout.sourceLayer}MLP`);
      out.bMlpOut = tensor(Float32Array.from(mr), [d]);
    }
    if (keepMlp) {
      out.ln2 = lw.ln2;
      out.mlp = lw.mlp;
    }

    if (kk === 0 && !keepMlp) {
      // Nothing left to compute: the layer only adds two constants to the residual stream.
      const add = (target: Float64Array) => {
        for (let c = 0; c < d; c++) target[c] += bO[c] + out.bMlpOut.data[c];
      };
      if (layers.length > 0) {
        const prev = layers[layers.length - 1];
        const sum = Float64Array.from(prev.bMlpOut.data);
        add(sum);
        prev.bMlpOut = tensor(Float32Array.from(sum), [d]);
      } else {
        add(toWpe);
        anyToWpe = true;
      }
      return;
    }
    layouts.push({ sourceLayer: layout.sourceLayer, heads: keptSlots.map((s) => layout.heads[s]), mlp: keepMlp });
    layers.push(out);
  });

  let wpe = w.wpe;
  if (anyToWpe) {
    const data = new Float32Array(w.wpe.data.length);
    const rows = w.wpe.shape[0];
    for (let r = 0; r < rows; r++) for (let c = 0; c < d; c++) data[r * d + c] = w.wpe.data[r * d + c] + toWpe[c];
    wpe = tensor(data, [...w.wpe.shape]);
  }

  const config: GPT2Config = { ...cfg, nLayer: layouts.length, layers: layouts, pruned: true, raw: { ...cfg.raw } };
  const weights: GPT2Weights = { wte: w.wte, wpe, layers, lnf: w.lnf };
  if (w.lmHead) weights.lmHead = w.lmHead;
  return { config, weights };
}

/** The components a keep set removes from a model, in canonical order. */
export function removedComponents(cfg: GPT2Config, keep: Set<string>): string[] {
  const out: string[] = [];
  cfg.layers.forEach((l) => {
    for (const h of l.heads) if (!keep.has(componentName(l.sourceLayer, h))) out.push(componentName(l.sourceLayer, h));
    if (l.mlp && !keep.has(componentName(l.sourceLayer, null))) out.push(componentName(l.sourceLayer, null));
  });
  return out;
}
