/**
 * A deliberately plain float64 GPT-2, written with loops straight from the definitions, to check
 * carve's graphs against. Shares nothing with src/ but the weight types.
 */
import type { GPT2Config, GPT2Weights } from '../../src/model/types.ts';

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

export function naiveForward(cfg: GPT2Config, w: GPT2Weights, tokens: number[][], iv: NaiveIntervention = {}): NaiveResult {
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
      for (let i = 0; i < d; i++) v[i] = w.wte.data[tok * d + i] + w.wpe.data[t * d + i];
      return v;
    });
    cfg.layers.forEach((layout, li) => {
      const lw = w.layers[li];
      const p = `blocks.${layout.sourceLayer}`;
      resid.forEach((v, t) => rec(`${p}.hook_resid_pre`, b, t, v));
      const k = layout.heads.length;
      const attnOut: Float64Array[] = resid.map(() => Float64Array.from(lw.bO.data));
      if (k > 0) {
        const x = resid.map((v) => layerNorm(v, lw.ln1!.g.data, lw.ln1!.b.data, cfg.eps));
        const W = lw.attn!.wQKV.data;
        const bq = lw.attn!.bQKV.data;
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
          const o = affine(z, lw.attn!.wO.data, d, 0, d);
          for (let i = 0; i < d; i++) attnOut[t][i] += o[i];
        });
      }
      resid = resid.map((v, t) => v.map((x, i) => x + attnOut[t][i]));
      resid.forEach((v, t) => rec(`${p}.hook_resid_mid`, b, t, v));
      resid = resid.map((v, t) => {
        let out: Float64Array;
        if (layout.mlp) {
          const x = layerNorm(v, lw.ln2!.g.data, lw.ln2!.b.data, cfg.eps);
          const pre = affine(x, lw.mlp!.wIn.data, cfg.dMlp, 0, cfg.dMlp, lw.mlp!.bIn.data);
          out = affine(pre.map(gelu), lw.mlp!.wOut.data, d, 0, d, lw.bMlpOut.data);
          const rep = iv.mlp?.get(li)?.(b, t);
          if (rep) out = Float64Array.from(rep);
        } else {
          out = Float64Array.from(lw.bMlpOut.data);
        }
        rec(`${p}.hook_mlp_out`, b, t, out);
        return v.map((x, i) => x + out[i]);
      });
      resid.forEach((v, t) => rec(`${p}.hook_resid_post`, b, t, v));
    });
    const U = (w.lmHead ?? w.wte).data;
    logits[b] = resid.map((v) => {
      const x = layerNorm(v, w.lnf.g.data, w.lnf.b.data, cfg.eps);
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
