/**
 * A deliberately plain float64 GPT-2, written with loops straight from the definitions, to check
 * carve's graphs against. Shares nothing with src/ but the types: it reads the tensors under
 * Hugging Face GPT-2's names (`h.{i}.attn.c_attn.weight`, ...), tied to wte unless lm_head.weight exists.
 */
import type { ModelConfig, Weights } from '../../src/model/types.ts';

export interface NaiveIntervention {
  /** z: [layerPos] -> (b, t, headIdx) => replacement vector or undefined to keep */
  z?: Map<number, (b: number, t: number, h: number) => Float64Array | undefined>;
  mlp?: Map<number, (b: number, t: number) => Float64Array | undefined>;
}

export interface NaiveResult {
  /** logits[b][t] = Float64Array(vocab) */
  logits: Float64Array[][];
  /** hooks[name][b][t] = flat vector (z: heads × d_head) */
  hooks: Map<string, Float64Array[][]>;
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function layerNorm(x: Float64Array, g: Float32Array, b: Float32Array, eps: number): Float64Array {
  const n = x.length;
  let mu = 0;
  for (const v of x) mu += v;
  mu /= n;
  let varr = 0;
  for (const v of x) varr += (v - mu) ** 2;
  varr /= n;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((x[i] - mu) / Math.sqrt(varr + eps)) * g[i] + b[i];
  return out;
}

/** y = x @ W (+ bias) with W [in, out] row-major, using columns [c0, c0 + nOut). */
function affine(x: Float64Array, W: Float32Array, nOutTotal: number, c0: number, nOut: number, bias?: Float32Array): Float64Array {
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = bias ? bias[c0 + o] : 0;
    for (let i = 0; i < x.length; i++) s += x[i] * W[i * nOutTotal + c0 + o];
    y[o] = s;
  }
  return y;
}

export function naiveForward(cfg: ModelConfig, weights: Weights, tokens: number[][], iv: NaiveIntervention = {}): NaiveResult {
  const get = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`naive GPT-2: no tensor ${name}`);
    return t.data;
  };
  const eps = cfg.norm.eps;
  const wte = get('wte.weight');
  const wpe = get('wpe.weight');
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const hooks = new Map<string, Float64Array[][]>();
  const rec = (name: string, b: number, t: number, v: Float64Array) => {
    if (!hooks.has(name)) hooks.set(name, []);
    const arr = hooks.get(name)!;
    (arr[b] ??= [])[t] = Float64Array.from(v);
  };
  const logits: Float64Array[][] = [];
  tokens.forEach((toks, b) => {
    const T = toks.length;
    let resid: Float64Array[] = toks.map((tok, t) => {
      const v = new Float64Array(d);
      for (let i = 0; i < d; i++) v[i] = wte[tok * d + i] + wpe[t * d + i];
      return v;
    });
    cfg.layers.forEach((layout, li) => {
      const L = (n: string) => get(`h.${li}.${n}`);
      const p = `blocks.${layout.sourceLayer}`;
      resid.forEach((v, t) => rec(`${p}.hook_resid_pre`, b, t, v));
      const k = layout.heads.length;
      const attnOut: Float64Array[] = resid.map(() => Float64Array.from(L('attn.c_proj.bias')));
      if (k > 0) {
        const x = resid.map((v) => layerNorm(v, L('ln_1.weight'), L('ln_1.bias'), eps));
        const W = L('attn.c_attn.weight');
        const bq = L('attn.c_attn.bias');
        const tot = 3 * k * dh;
        const zAll: Float64Array[] = resid.map(() => new Float64Array(k * dh));
        for (let h = 0; h < k; h++) {
          const q = x.map((xv) => affine(xv, W, tot, h * dh, dh, bq));
          const kk = x.map((xv) => affine(xv, W, tot, k * dh + h * dh, dh, bq));
          const vv = x.map((xv) => affine(xv, W, tot, 2 * k * dh + h * dh, dh, bq));
          for (let i = 0; i < T; i++) {
            const s = new Float64Array(i + 1);
            let mx = -Infinity;
            for (let j = 0; j <= i; j++) {
              let dot = 0;
              for (let e = 0; e < dh; e++) dot += q[i][e] * kk[j][e];
              s[j] = dot / Math.sqrt(dh);
              mx = Math.max(mx, s[j]);
            }
            let sum = 0;
            for (let j = 0; j <= i; j++) sum += (s[j] = Math.exp(s[j] - mx));
            let z = new Float64Array(dh);
            for (let j = 0; j <= i; j++) for (let e = 0; e < dh; e++) z[e] += (s[j] / sum) * vv[j][e];
            const rep = iv.z?.get(li)?.(b, i, h);
            if (rep) z = Float64Array.from(rep);
            zAll[i].set(z, h * dh);
          }
        }
        zAll.forEach((z, t) => {
          rec(`${p}.attn.hook_z`, b, t, z);
          const o = affine(z, L('attn.c_proj.weight'), d, 0, d);
          for (let i = 0; i < d; i++) attnOut[t][i] += o[i];
        });
      }
      resid = resid.map((v, t) => v.map((x, i) => x + attnOut[t][i]));
      resid.forEach((v, t) => rec(`${p}.hook_resid_mid`, b, t, v));
      resid = resid.map((v, t) => {
        let out: Float64Array;
        if (layout.mlp) {
          const x = layerNorm(v, L('ln_2.weight'), L('ln_2.bias'), eps);
          const pre = affine(x, L('mlp.c_fc.weight'), cfg.dMlp, 0, cfg.dMlp, L('mlp.c_fc.bias'));
          out = affine(pre.map(gelu), L('mlp.c_proj.weight'), d, 0, d, L('mlp.c_proj.bias'));
          const rep = iv.mlp?.get(li)?.(b, t);
          if (rep) out = Float64Array.from(rep);
        } else {
          out = Float64Array.from(L('mlp.c_proj.bias'));
        }
        rec(`${p}.hook_mlp_out`, b, t, out);
        return v.map((x, i) => x + out[i]);
      });
      resid.forEach((v, t) => rec(`${p}.hook_resid_post`, b, t, v));
    });
    const U = weights.has('lm_head.weight') ? get('lm_head.weight') : wte;
    logits[b] = resid.map((v) => {
      const x = layerNorm(v, get('ln_f.weight'), get('ln_f.bias'), eps);
      const l = new Float64Array(cfg.vocabSize);
      for (let tok = 0; tok < cfg.vocabSize; tok++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += x[i] * U[tok * d + i];
        l[tok] = s;
      }
      return l;
    });
  });
  return { logits, hooks };
}
