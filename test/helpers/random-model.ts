import type { GPT2Config, GPT2Weights, LayerLayout, Tensor, Activation } from '../../src/model/types.ts';
import { rng, randn } from './gradcheck.ts';

export interface RandomModelSpec {
  nLayer: number;
  nHead: number;
  dModel: number;
  nCtx?: number;
  vocabSize?: number;
  dMlp?: number;
  seed?: number;
  activation?: Activation;
  /** Optional pruned layout (heads kept per layer, MLP present). */
  layers?: LayerLayout[];
  lmHead?: boolean;
  /** Weight scale (std of matrices). */
  scale?: number;
}

/** A GPT-2-format model with seeded random weights, in memory. */
export function randomModel(spec: RandomModelSpec): { config: GPT2Config; weights: GPT2Weights } {
  const r = rng(spec.seed ?? 7);
  const d = spec.dModel;
  const dh = d / spec.nHead;
  const dMlp = spec.dMlp ?? 4 * d;
  const vocab = spec.vocabSize ?? 50;
  const nCtx = spec.nCtx ?? 32;
  const scale = spec.scale ?? 0.3;
  const layers: LayerLayout[] =
    spec.layers ?? Array.from({ length: spec.nLayer }, (_, i) => ({ sourceLayer: i, heads: Array.from({ length: spec.nHead }, (_, h) => h), mlp: true }));
  const t = (shape: number[], s = scale, mean = 0): Tensor => {
    const n = shape.reduce((p, q) => p * q, 1);
    const v = randn(n, r, s);
    return { data: Float32Array.from(v, (x) => x + mean), shape };
  };
  const config: GPT2Config = {
    nLayer: layers.length,
    nHead: spec.nHead,
    dModel: d,
    dHead: dh,
    dMlp,
    nCtx,
    vocabSize: vocab,
    eps: 1e-5,
    activation: spec.activation ?? 'gelu_new',
    layers,
    pruned: spec.layers !== undefined,
    raw: {},
  };
  const weights: GPT2Weights = {
    wte: t([vocab, d], 1),
    wpe: t([nCtx, d], 0.5),
    lnf: { g: t([d], 0.1, 1), b: t([d], 0.1) },
    layers: layers.map((l) => {
      const k = l.heads.length;
      return {
        ln1: k > 0 ? { g: t([d], 0.1, 1), b: t([d], 0.1) } : undefined,
        attn: k > 0 ? { wQKV: t([d, 3 * k * dh]), bQKV: t([3 * k * dh], 0.1), wO: t([k * dh, d]) } : undefined,
        bO: t([d], 0.1),
        ln2: l.mlp ? { g: t([d], 0.1, 1), b: t([d], 0.1) } : undefined,
        mlp: l.mlp ? { wIn: t([d, dMlp]), bIn: t([dMlp], 0.1), wOut: t([dMlp, d], scale / 2) } : undefined,
        bMlpOut: t([d], 0.1),
      };
    }),
    lmHead: spec.lmHead ? t([vocab, d], 1) : undefined,
  };
  return { config, weights };
}
