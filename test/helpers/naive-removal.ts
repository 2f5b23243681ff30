/**
 * The metric with a set of components replaced, the slow, obvious way: the naive float64 model,
 * replacement values from its own hooks, one full forward with every removed output overwritten.
 * Shares nothing with src/discover.
 */
import type { ModelConfig, Weights } from '../../src/model/types.ts';
import type { Task } from '../../src/task/types.ts';
import { naiveForward, type NaiveIntervention } from '../helpers/naive-gpt2.ts';
import { naiveComponents, naiveMetric } from '../helpers/naive-scores.ts';
import { rng } from '../helpers/gradcheck.ts';

export type NaiveAblation = 'zero' | 'mean' | 'resample';

export interface NaiveRemoval {
  /** Per prompt: logit difference (of the answer sets) at the metric position. */
  metric: number[];
  /** Per prompt: probability difference of the answer sets. */
  probDiff: number[];
  /** Per prompt: KL(clean ‖ ablated) of the next-token distribution at the metric position. */
  kl: number[];
  /** Per prompt and position: the hooks of the ablated run (names as TransformerLens). */
  hooks: Map<string, Float64Array[][]>;
}

function logSoftmax(l: Float64Array): Float64Array {
  const mx = Math.max(...l);
  const lse = mx + Math.log(l.reduce((s, v) => s + Math.exp(v - mx), 0));
  return l.map((v) => v - lse);
}

export function naiveRemoval(
  cfg: ModelConfig,
  w: Weights,
  task: Task,
  ablation: NaiveAblation,
  removed: string[],
  meanOver: 'clean' | 'corrupt' = 'clean',
  /** Optional override: per component name, a function giving its value at (prompt, position). */
  override?: Map<string, (b: number, t: number, cur: Float64Array, repl: Float64Array) => Float64Array>,
  /** The current outputs the override is given (from an earlier run); default: the clean run. */
  current?: Map<string, Float64Array[][]>,
): NaiveRemoval {
  const dh = cfg.dHead;
  const comps = naiveComponents(cfg);
  const clean = naiveForward(cfg, w, task.pairs.map((p) => p.clean));
  const hookName = (pos: number, mlp: boolean) => `blocks.${cfg.layers[pos].sourceLayer}.${mlp ? 'hook_mlp_out' : 'attn.hook_z'}`;
  const meanPrompts = task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt));
  const source =
    ablation === 'resample' ? naiveForward(cfg, w, task.pairs.map((p) => p.corrupt)) : ablation === 'mean' ? naiveForward(cfg, w, meanPrompts) : undefined;
  const means = new Map<string, Float64Array>();
  const replacement = (pos: number, slot: number, b: number, t: number): Float64Array => {
    const mlp = slot < 0;
    const width = mlp ? cfg.dModel : dh;
    const cut = (v: Float64Array) => (mlp ? Float64Array.from(v) : v.slice(slot * dh, (slot + 1) * dh));
    if (ablation === 'zero') return new Float64Array(width);
    const hv = source!.hooks.get(hookName(pos, mlp))!;
    if (ablation === 'resample') return cut(hv[b][t]);
    const key = `${pos}:${slot}`;
    if (!means.has(key)) {
      const m = new Float64Array(width);
      let n = 0;
      meanPrompts.forEach((p, pb) => {
        for (let tt = 0; tt < p.length; tt++) {
          cut(hv[pb][tt]).forEach((x, j) => (m[j] += x));
          n++;
        }
      });
      means.set(key, m.map((x) => x / n));
    }
    return means.get(key)!;
  };
  const gone = new Set(removed);
  const cur = current ?? clean.hooks;
  const iv: NaiveIntervention = { z: new Map(), mlp: new Map() };
  cfg.layers.forEach((_, pos) => {
    const here = comps.filter((c) => c.pos === pos);
    iv.z!.set(pos, (b, t, h) => {
      const c = here.find((x) => x.slot === h);
      if (!c) return undefined;
      const o = override?.get(c.name);
      if (o) return o(b, t, cur.get(hookName(pos, false))![b][t].slice(h * dh, (h + 1) * dh), replacement(pos, h, b, t));
      return gone.has(c.name) ? replacement(pos, h, b, t) : undefined;
    });
    iv.mlp!.set(pos, (b, t) => {
      const c = here.find((x) => x.slot < 0);
      if (!c) return undefined;
      const o = override?.get(c.name);
      if (o) return o(b, t, Float64Array.from(cur.get(hookName(pos, true))![b][t]), replacement(pos, -1, b, t));
      return gone.has(c.name) ? replacement(pos, -1, b, t) : undefined;
    });
  });
  const run = naiveForward(cfg, w, task.pairs.map((p) => p.clean), iv);
  const metric = task.pairs.map((p, b) => naiveMetric(run.logits[b][p.clean.length - 1], p, 'logit-diff'));
  const probDiff = task.pairs.map((p, b) => naiveMetric(run.logits[b][p.clean.length - 1], p, 'prob-diff'));
  const kl = task.pairs.map((p, b) => {
    const lp = logSoftmax(clean.logits[b][p.clean.length - 1]);
    const lq = logSoftmax(run.logits[b][p.clean.length - 1]);
    return lp.reduce((s, v, i) => s + Math.exp(v) * (v - lq[i]), 0);
  });
  return { metric, probDiff, kl, hooks: run.hooks };
}

export const meanOf = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
export const stdOf = (a: ArrayLike<number>) => {
  const m = meanOf(a);
  return a.length < 2 ? 0 : Math.sqrt(Array.from(a).reduce((s, v) => s + (v - m) ** 2, 0) / (a.length - 1));
};

/** Prompts of unequal lengths; corrupt prompts keep each clean prompt's length (for resample). As in test/discover/scan.test.ts. */
export { randomTask } from '../helpers/random-task.ts';

