/**
 * Scores computed the slow, obvious way with the naive float64 model: one full forward per
 * component for exact scores, and a central difference along (replacement − clean) for
 * attribution scores (the directional derivative that attribution patching linearises).
 */
import type { ModelConfig, Weights } from '../../src/model/types.ts';
import type { Task, PromptPair } from '../../src/task/types.ts';
import { naiveForward } from './naive-gpt2.ts';

export type NaiveAblation = 'zero' | 'mean' | 'resample';
export type NaiveMetric = 'logit-diff' | 'prob-diff' | 'kl';

function naiveLogSoftmax(l: Float64Array): Float64Array {
  let mx = -Infinity;
  for (const v of l) mx = Math.max(mx, v);
  let s = 0;
  for (const v of l) s += Math.exp(v - mx);
  const lse = mx + Math.log(s);
  return l.map((v) => v - lse);
}

/**
 * SPEC's metrics for one prompt from its logits at the metric position, written out plainly:
 * logit-diff = mean logit over the correct set − mean over the incorrect set; prob-diff = Σ p(correct)
 * − Σ p(incorrect) (softmax over the whole vocabulary); kl = Σ p_clean (log p_clean − log p).
 */
export function naiveMetric(l: Float64Array, p: PromptPair, metric: NaiveMetric, cleanLogits?: Float64Array): number {
  if (metric === 'logit-diff') {
    let c = 0;
    for (const t of p.correct) c += l[t];
    let i = 0;
    for (const t of p.incorrect) i += l[t];
    return c / p.correct.length - i / p.incorrect.length;
  }
  const lp = naiveLogSoftmax(l);
  if (metric === 'prob-diff') {
    let d = 0;
    for (const t of p.correct) d += Math.exp(lp[t]);
    for (const t of p.incorrect) d -= Math.exp(lp[t]);
    return d;
  }
  const lc = naiveLogSoftmax(cleanLogits!);
  let kl = 0;
  for (let v = 0; v < l.length; v++) kl += Math.exp(lc[v]) * (lc[v] - lp[v]);
  return kl;
}

interface Comp {
  pos: number;
  slot: number; // -1 for MLP
  name: string;
}

export function naiveComponents(cfg: ModelConfig): Comp[] {
  const out: Comp[] = [];
  cfg.layers.forEach((l, pos) => {
    l.heads.forEach((h, slot) => out.push({ pos, slot, name: `L${l.sourceLayer}H${h}` }));
    if (l.mlp) out.push({ pos, slot: -1, name: `L${l.sourceLayer}MLP` });
  });
  return out;
}

export function naiveScores(
  cfg: ModelConfig,
  w: Weights,
  task: Task,
  ablation: NaiveAblation,
  meanOver: 'clean' | 'corrupt' = 'clean',
  metric: NaiveMetric = 'logit-diff',
) {
  const dh = cfg.dHead;
  const clean = naiveForward(cfg, w, task.pairs.map((p) => p.clean));
  const at = (logits: Float64Array[][], b: number) => logits[b][task.pairs[b].clean.length - 1];
  const metricOf = (logits: Float64Array[][]) => task.pairs.map((p, b) => naiveMetric(at(logits, b), p, metric, at(clean.logits, b)));
  const cleanMetric = metricOf(clean.logits);
  const hookName = (c: Comp) => `blocks.${cfg.layers[c.pos].sourceLayer}.${c.slot >= 0 ? 'attn.hook_z' : 'hook_mlp_out'}`;
  const sliceOf = (v: Float64Array, c: Comp) => (c.slot >= 0 ? v.subarray(c.slot * dh, (c.slot + 1) * dh) : v);
  const source = ablation === 'resample' ? naiveForward(cfg, w, task.pairs.map((p) => p.corrupt)) : ablation === 'mean' ? naiveForward(cfg, w, task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt))) : undefined;
  const meanPrompts = task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt));
  const replacement = (c: Comp, b: number, t: number): Float64Array => {
    const width = c.slot >= 0 ? dh : cfg.dModel;
    if (ablation === 'zero') return new Float64Array(width);
    const hv = source!.hooks.get(hookName(c))!;
    if (ablation === 'resample') return Float64Array.from(sliceOf(hv[b][t], c));
    const m = new Float64Array(width);
    let n = 0;
    meanPrompts.forEach((p, pb) => {
      for (let tt = 0; tt < p.length; tt++) {
        const v = sliceOf(hv[pb][tt], c);
        for (let j = 0; j < width; j++) m[j] += v[j];
        n++;
      }
    });
    return m.map((x) => x / n);
  };
  const run = (c: Comp, value: (b: number, t: number) => Float64Array) => {
    const iv =
      c.slot >= 0
        ? {
            z: new Map([
              [
                c.pos,
                (b: number, t: number, h: number) => {
                  if (h !== c.slot) return undefined;
                  return value(b, t);
                },
              ],
            ]),
          }
        : { mlp: new Map([[c.pos, (b: number, t: number) => value(b, t)]]) };
    // hook_z interventions in the naive model replace one head's d_head slice.
    return metricOf(naiveForward(cfg, w, task.pairs.map((p) => p.clean), iv).logits);
  };
  const comps = naiveComponents(cfg);
  const exact = comps.map((c) => {
    const m = run(c, (b, t) => replacement(c, b, t));
    return m.map((v, i) => v - cleanMetric[i]);
  });
  const eps = 1e-5;
  const attribution = comps.map((c) => {
    const cleanVal = (b: number, t: number) => sliceOf(clean.hooks.get(hookName(c))![b][t], c);
    const at = (e: number) =>
      run(c, (b, t) => {
        const cv = cleanVal(b, t);
        const r = replacement(c, b, t);
        return cv.map((x, j) => x + e * (r[j] - x));
      });
    const plus = at(eps);
    const minus = at(-eps);
    return plus.map((v, i) => (v - minus[i]) / (2 * eps));
  });
  const corruptRun = naiveForward(cfg, w, task.pairs.map((p) => p.corrupt));
  const corruptMetric = task.pairs.map((p, b) => naiveMetric(corruptRun.logits[b][p.corrupt.length - 1], p, metric, at(clean.logits, b)));
  return { comps, cleanMetric, corruptMetric, exact, attribution };
}
