/**
 * Cutting tensors along the factors the tensor table describes (tensors.ts): keep some heads, some
 * key/value heads, some MLP neurons, some vocabulary rows or positions, in any tensor of any
 * architecture, with one routine. An axis made of factors [3, head, dh] is indexed in mixed radix, so
 * keeping heads {0, 2} of a fused QKV keeps those heads' slices in each of the Q, K and V blocks.
 */
import { factorSizes, type Axis, type Factor, type TensorSlot } from './tensors.ts';
import type { LayerLayout, ModelConfig, Tensor } from './types.ts';

/** Indices to keep, per symbolic factor (original index space of that factor); absent: keep all. */
export type Keep = Partial<Record<Exclude<Factor, number>, number[]>>;

/** Flat indices of an axis that survive `keep`, in order. */
export function keptIndices(axis: Axis, sizes: Record<Exclude<Factor, number>, number>, keep: Keep): number[] {
  let out = [0];
  for (const f of axis) {
    const n = typeof f === 'number' ? f : sizes[f];
    const kept = typeof f === 'number' ? undefined : keep[f];
    const picks = kept ?? Array.from({ length: n }, (_, i) => i);
    for (const p of picks) if (p < 0 || p >= n) throw new Error(`slice: index ${p} out of range for factor ${f} of size ${n}`);
    const next: number[] = [];
    for (const base of out) for (const p of picks) next.push(base * n + p);
    out = next;
  }
  return out;
}

/** A tensor of rank 1 or 2 restricted to the given indices along each axis. */
export function gatherAxes(t: Tensor, idx: number[][]): Tensor {
  if (t.shape.length === 1) {
    return { data: Float32Array.from(idx[0], (i) => t.data[i]), shape: [idx[0].length] };
  }
  if (t.shape.length !== 2) throw new Error(`slice: rank ${t.shape.length} tensors are not supported`);
  const [rows, cols] = idx;
  const width = t.shape[1];
  const allCols = cols.length === width && cols.every((c, i) => c === i);
  const out = new Float32Array(rows.length * cols.length);
  rows.forEach((r, i) => {
    if (allCols) out.set(t.data.subarray(r * width, (r + 1) * width), i * width);
    else cols.forEach((c, j) => (out[i * cols.length + j] = t.data[r * width + c]));
  });
  return { data: out, shape: [rows.length, cols.length] };
}

/** Cut one tensor of `cfg`'s table to `keep`; unchanged tensors are returned as they are (shared). */
export function sliceTensor(cfg: ModelConfig, slot: TensorSlot, t: Tensor, keep: Keep, layer?: LayerLayout): Tensor {
  const sizes = factorSizes(cfg, layer ?? (slot.layer === undefined ? undefined : cfg.layers[slot.layer]));
  const idx = slot.axes.map((a) => keptIndices(a, sizes, keep));
  if (idx.every((ix, k) => ix.length === t.shape[k])) return t;
  return gatherAxes(t, idx);
}
