import type { ModelConfig, ModelData, LayerLayout, Tensor, Activation, Weights } from '../../src/model/types.ts';
import { parseConfig } from '../../src/model/config.ts';
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

/** A GPT-2-format model with seeded random weights, in memory (tensors under GPT-2's Hugging Face names). */
export function randomModel(spec: RandomModelSpec): ModelData {
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
  const base = parseConfig(
    { model_type: 'gpt2', n_layer: layers.length, n_head: spec.nHead, n_embd: d, n_positions: nCtx, vocab_size: vocab, n_inner: dMlp, activation_function: spec.activation ?? 'gelu_new' },
    'random-model',
  );
  const config: ModelConfig = { ...base, layers, pruned: spec.layers !== undefined, tied: !spec.lmHead };
  const weights: Weights = new Map();
  const put = (name: string, x: Tensor) => weights.set(name, x);
  put('wte.weight', t([vocab, d], 1));
  put('wpe.weight', t([nCtx, d], 0.5));
  const lnfG = t([d], 0.1, 1);
  const lnfB = t([d], 0.1);
  layers.forEach((l, i) => {
    const p = `h.${i}.`;
    const k = l.heads.length;
    if (k > 0) {
      put(p + 'ln_1.weight', t([d], 0.1, 1));
      put(p + 'ln_1.bias', t([d], 0.1));
      put(p + 'attn.c_attn.weight', t([d, 3 * k * dh]));
      put(p + 'attn.c_attn.bias', t([3 * k * dh], 0.1));
      put(p + 'attn.c_proj.weight', t([k * dh, d]));
    }
    put(p + 'attn.c_proj.bias', t([d], 0.1));
    if (l.mlp) {
      put(p + 'ln_2.weight', t([d], 0.1, 1));
      put(p + 'ln_2.bias', t([d], 0.1));
      put(p + 'mlp.c_fc.weight', t([d, dMlp]));
      put(p + 'mlp.c_fc.bias', t([dMlp], 0.1));
      put(p + 'mlp.c_proj.weight', t([dMlp, d], scale / 2));
    }
    put(p + 'mlp.c_proj.bias', t([d], 0.1));
  });
  put('ln_f.weight', lnfG);
  put('ln_f.bias', lnfB);
  if (spec.lmHead) put('lm_head.weight', t([vocab, d], 1));
  return { config, weights };
}
