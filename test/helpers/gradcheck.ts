import { Graph, type Value } from '../../src/onnx/graph.ts';
import { gradients } from '../../src/onnx/autodiff.ts';
import { Engine, toOrt } from '../../src/onnx/session.ts';
import type * as ort from 'onnxruntime-node';

/** A small deterministic PRNG (mulberry32) so tests never depend on Math.random. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, r: () => number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

export interface GradCheckResult {
  maxRelError: number;
  analytic: Float64Array[];
  numeric: Float64Array[];
}

/**
 * Central finite differences (float64) against the builder's reverse-mode gradient of
 * sum(f(x) * R) for a fixed random R, so every output element contributes with its own weight.
 */
export async function gradCheck(
  engine: Engine,
  build: (g: Graph, xs: Value[]) => Value,
  shapes: number[][],
  opts: { seed?: number; h?: number; init?: (i: number, n: number, r: () => number) => Float64Array; dtype?: 'float32' | 'float64' } = {},
): Promise<GradCheckResult> {
  const r = rng(opts.seed ?? 1);
  const dtype = opts.dtype ?? 'float64';
  const g = new Graph(dtype);
  const xs = shapes.map((s, i) => g.input(`x${i}`, s));
  const out = build(g, xs);
  const outShape = out.shape as number[];
  const nOut = outShape.reduce((p, d) => p * d, 1);
  const weights = g.constant(randn(nOut, r), outShape);
  const loss = g.reduceSum(g.mul(out, weights), outShape.map((_, i) => i), false);
  g.output(loss, 'loss');
  const grads = gradients(loss, xs);
  grads.forEach((d, i) => g.output(d, `grad${i}`));
  const values = shapes.map((s, i) => (opts.init ? opts.init(i, s.reduce((p, d) => p * d, 1), r) : randn(s.reduce((p, d) => p * d, 1), r)));
  const feeds = (vals: Float64Array[]): Record<string, ort.Tensor> =>
    Object.fromEntries(vals.map((v, i) => [`x${i}`, toOrt({ data: dtype === 'float32' ? Float32Array.from(v) : v, dims: shapes[i] }, dtype)]));
  const base = await engine.run(g, feeds(values));
  const analytic = shapes.map((_, i) => Float64Array.from(base[`grad${i}`].data as Float64Array | Float32Array));
  const h = opts.h ?? 1e-5;
  const numeric: Float64Array[] = [];
  let maxRel = 0;
  for (let i = 0; i < shapes.length; i++) {
    const num = new Float64Array(values[i].length);
    for (let j = 0; j < values[i].length; j++) {
      const orig = values[i][j];
      values[i][j] = orig + h;
      const fp = (await engine.run(g, feeds(values))).loss.data[0] as number;
      values[i][j] = orig - h;
      const fm = (await engine.run(g, feeds(values))).loss.data[0] as number;
      values[i][j] = orig;
      num[j] = (fp - fm) / (2 * h);
    }
    numeric.push(num);
    let scale = 1e-3;
    for (const v of num) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < num.length; j++) maxRel = Math.max(maxRel, Math.abs(num[j] - analytic[i][j]) / scale);
  }
  return { maxRelError: maxRel, analytic, numeric };
}
