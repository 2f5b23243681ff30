/**
 * The one mapping between GPT2Weights fields and the names of weight inputs in carve's graphs,
 * used for feeding runs, for training (gradients by name) and for updating weights in place.
 */
import { weightName } from './gpt2-graph.ts';
import type { GPT2Weights, Tensor } from './types.ts';

export interface NamedWeight {
  name: string;
  tensor: Tensor;
}

export function namedWeights(weights: GPT2Weights): NamedWeight[] {
  const out: NamedWeight[] = [];
  const put = (name: string, t: Tensor | undefined) => {
    if (t) out.push({ name, tensor: t });
  };
  put(weightName.wte, weights.wte);
  put(weightName.wpe, weights.wpe);
  put(weightName.lnfG, weights.lnf.g);
  put(weightName.lnfB, weights.lnf.b);
  put(weightName.lmHead, weights.lmHead);
  weights.layers.forEach((lw, i) => {
    const L = (what: string) => weightName.layer(i, what);
    put(L('ln1.g'), lw.ln1?.g);
    put(L('ln1.b'), lw.ln1?.b);
    put(L('wQKV'), lw.attn?.wQKV);
    put(L('bQKV'), lw.attn?.bQKV);
    put(L('wO'), lw.attn?.wO);
    put(L('bO'), lw.bO);
    put(L('ln2.g'), lw.ln2?.g);
    put(L('ln2.b'), lw.ln2?.b);
    put(L('wIn'), lw.mlp?.wIn);
    put(L('bIn'), lw.mlp?.bIn);
    put(L('wOut'), lw.mlp?.wOut);
    put(L('bMlpOut'), lw.bMlpOut);
  });
  return out;
}
