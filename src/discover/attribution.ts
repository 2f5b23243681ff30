/**
 * Attribution (gradient) scores of components, in one module (SPEC "Components, metric, scores"):
 *  - `attributionScan`: the scan's attribution scores at the clean run, Σ_positions
 *    (replacement − clean output) · ∂metric/∂output, for every component from one forward and one
 *    backward pass;
 *  - `attributionAt`: the same at an ablated state (some components already replaced), which
 *    attribution-guided greedy pruning ranks by; with nothing removed it equals the scan's scores;
 *  - `igScores`: integrated gradients along each component's own path from its clean output to its
 *    replacement, (replacement − clean) · (1/K) Σ_k ∂metric/∂output at clean + α_k·(replacement −
 *    clean), α_k = (k − ½)/K (midpoint rule); K = 1 on a model linear in the component gives the
 *    attribution score, and as K grows it converges to the exact score.
 */
import type { FloatArray, HookedModel, Intervention } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { metricRun, range, type TaskMetric } from './metric.ts';
import type { Component } from './components.ts';
import { componentHooks, removalInterventions, type Ablation, type MeanOver, type Replacements } from './replacements.ts';
import { allocLike, collectActivations, meanOverTokens } from './activations.ts';

export type Progress = (done: number, total: number, label: string) => void;

/** Width and offset of a component's slice within its hook (hook_z: k·d_head; hook_mlp_out: d). */
export function sliceOf(model: HookedModel, c: Component): { width: number; offset: number; span: number } {
  if (c.head === null) return { width: model.config.dModel, offset: 0, span: model.config.dModel };
  const dh = model.config.dHead;
  return { width: model.config.layers[c.pos].heads.length * dh, offset: c.slot * dh, span: dh };
}

/** Σ over real positions and the component's slice of (replacement − clean) · grad, for one prompt. */
export function dotDelta(
  c: Component,
  sl: { width: number; offset: number; span: number },
  repl: Replacements,
  len: number,
  clean: { data: Float32Array | Float64Array; base: number; T: number },
  grad: { data: Float32Array | Float64Array; base: number; T: number },
  replRow: { data: FloatArray; base: number } | null,
): number {
  const r = c.head === null ? repl.mlp.get(c.pos)! : repl.z.get(c.pos)!;
  let s = 0;
  for (let t = 0; t < len; t++) {
    const co = clean.base + t * sl.width + sl.offset;
    const go = grad.base + t * sl.width + sl.offset;
    for (let j = 0; j < sl.span; j++) {
      const target = r.shape === 'const' ? r.data[sl.offset + j] : replRow!.data[replRow!.base + t * sl.width + sl.offset + j];
      s += (target - clean.data[co + j]) * grad.data[go + j];
    }
  }
  return s;
}

export async function igScores(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  comps: Component[],
  steps: number,
  batchSize: number,
  metric: TaskMetric,
  progress: Progress | undefined,
): Promise<Float64Array[]> {
  const N = task.pairs.length;
  const cfg = model.config;
  const d = cfg.dModel;
  const { z, mlp } = componentHooks(model);
  const layersUsed = [...new Set(comps.map((c) => c.pos))].sort((a, b) => a - b);
  const residHooks = layersUsed.map((pos) => model.hookName(pos, 'hook_resid_pre'));
  const allHooks = [...new Set([...residHooks, ...comps.map((c) => (c.head === null ? mlp.get(c.pos)! : z.get(c.pos)!))])];
  const acts = await collectActivations(model, task.pairs.map((p) => p.clean), allHooks, batchSize);
  const per = comps.map(() => new Float64Array(N));
  const rows: { comp: number; k: number; prompt: number }[] = [];
  comps.forEach((_, ci) => {
    for (let p = 0; p < N; p++) for (let k = 0; k < steps; k++) rows.push({ comp: ci, k, prompt: p });
  });
  // Rows of one run must share a start layer and hook: group by component layer and kind.
  const groups = new Map<string, typeof rows>();
  for (const r of rows) {
    const c = comps[r.comp];
    const key = `${c.pos}|${c.head === null ? 'mlp' : 'z'}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  let done = 0;
  for (const group of groups.values()) {
    const c0 = comps[group[0].comp];
    const pos = c0.pos;
    const isMlp = c0.head === null;
    const hook = isMlp ? mlp.get(pos)! : z.get(pos)!;
    const sl0 = sliceOf(model, c0);
    const residAll = acts.values.get(model.hookName(pos, 'hook_resid_pre'))!;
    const cleanAll = acts.values.get(hook)!;
    const r = isMlp ? repl.mlp.get(pos)! : repl.z.get(pos)!;
    const k = cfg.layers[pos].heads.length;
    for (let s = 0; s < group.length; s += batchSize) {
      const chunk = group.slice(s, s + batchSize);
      const R = chunk.length;
      const T = Math.max(...chunk.map((row) => acts.lengths[row.prompt]));
      const resid = allocLike(model, R * T * d);
      chunk.forEach((row, b) => {
        for (let t = 0; t < T; t++) resid.set(residAll.subarray((row.prompt * acts.tMax + t) * d, (row.prompt * acts.tMax + t + 1) * d), (b * T + t) * d);
      });
      // keep = 1 − α on the component's slot: the hook becomes clean + α·(replacement − clean).
      const keep = new Float32Array(isMlp ? R : R * k).fill(1);
      chunk.forEach((row, b) => {
        const alpha = (row.k + 0.5) / steps;
        const c = comps[row.comp];
        keep[isMlp ? b : b * k + c.slot] = 1 - alpha;
      });
      let value: Intervention['value'];
      if (r.shape === 'const') value = { shape: 'const', data: r.data };
      else {
        const data = allocLike(model, R * T * sl0.width);
        chunk.forEach((row, b) => {
          const len = acts.lengths[row.prompt];
          data.set(r.data.subarray(row.prompt * repl.tMax * sl0.width, (row.prompt * repl.tMax + len) * sl0.width), b * T * sl0.width);
        });
        value = { shape: 'row', data };
      }
      const iv = new Map<number, Intervention>([[pos, { keep, value }]]);
      const out = await model.run({
        resid: { data: resid, dims: [R, T, d] },
        startLayer: pos,
        lengths: chunk.map((row) => acts.lengths[row.prompt]),
        ...metricRun(metric, task, chunk.map((row) => row.prompt)),
        z: isMlp ? undefined : iv,
        mlp: isMlp ? iv : undefined,
        gradients: [hook],
      });
      const grad = out.grads.get(hook)!.data;
      chunk.forEach((row, b) => {
        const c = comps[row.comp];
        const sl = sliceOf(model, c);
        const len = acts.lengths[row.prompt];
        const replRow = r.shape === 'row' ? { data: r.data, base: row.prompt * repl.tMax * sl.width } : null;
        per[row.comp][row.prompt] +=
          dotDelta(c, sl, repl, len, { data: cleanAll, base: row.prompt * acts.tMax * sl.width, T: acts.tMax }, { data: grad, base: b * T * sl.width, T }, replRow) / steps;
      });
      done += R;
      progress?.(done, rows.length, 'ig');
    }
  }
  return per;
}

/**
 * The attribution scan in one forward-and-backward pass over the clean prompts (plus one forward
 * over the corrupt prompts, which the corrupt metric needs anyway and resample and
 * mean-over-corrupt take their values from). For a constant replacement r (zero, mean), the score
 * Σ_t (r − clean_t)·g_t = r·(Σ_t g_t) − Σ_t clean_t·g_t, so the gradient pass only keeps, per
 * prompt and component, Σ_t g_t and Σ_t clean_t·g_t, and the means of clean outputs can be
 * gathered in the same pass: memory stays O(prompts × d_model) whatever the prompt count.
 */
export async function attributionScan(
  model: HookedModel,
  task: Task,
  comps: Component[],
  ablation: Ablation,
  meanOver: MeanOver,
  batchSize: number,
  metric: TaskMetric,
  progress: Progress | undefined,
): Promise<{ perPrompt: Float64Array[]; clean: Float64Array; corrupt: Float64Array }> {
  const N = task.pairs.length;
  const { z, mlp } = componentHooks(model);
  const hookOf = (c: Component) => (c.head === null ? mlp.get(c.pos)! : z.get(c.pos)!);
  const hooks = [...new Set(comps.map(hookOf))];
  // Corrupt pass first: the corrupt metric, and the values resample / mean-over-corrupt need.
  const needCorruptActs = ablation === 'resample' || (ablation === 'mean' && meanOver === 'corrupt');
  const corrupt = new Float64Array(N);
  const corruptActs = await collectActivations(model, task.pairs.map((p) => p.corrupt), needCorruptActs ? hooks : [], batchSize, {
    options: (st, e) => metricRun(metric, task, range(st, e)),
    result: (st, out) => {
      out.metric!.forEach((m, b) => (corrupt[st + b] = m));
      progress?.(Math.min(st + batchSize, N), 2 * N, 'attribution');
    },
  });
  const sliceW = comps.map((c) => sliceOf(model, c));
  // Per component and prompt: Σ_t g_t (span) and Σ_t clean_t·g_t, or for resample the full dot.
  const gSum = comps.map((_, i) => new Float64Array(N * sliceW[i].span));
  const cleanDotG = comps.map(() => new Float64Array(N));
  const perPrompt = comps.map(() => new Float64Array(N));
  const cleanSum = new Map<string, Float64Array>(hooks.map((h) => [h, new Float64Array(0)]));
  let cleanCount = 0;
  const clean = new Float64Array(N);
  for (let s = 0; s < N; s += batchSize) {
    const chunk = task.pairs.slice(s, s + batchSize);
    const out = await model.run({ tokens: chunk.map((p) => p.clean), ...metricRun(metric, task, range(s, s + chunk.length)), hooks, gradients: hooks });
    const T = out.seqLen;
    chunk.forEach((_, b) => (clean[s + b] = out.metric![b]));
    for (const h of hooks) {
      const v = out.hooks.get(h)!.data;
      const width = v.length / (chunk.length * T);
      let acc = cleanSum.get(h)!;
      if (acc.length === 0) cleanSum.set(h, (acc = new Float64Array(width)));
      chunk.forEach((p, b) => {
        for (let t = 0; t < p.clean.length; t++) for (let j = 0; j < width; j++) acc[j] += v[(b * T + t) * width + j];
      });
    }
    chunk.forEach((p) => (cleanCount += p.clean.length));
    comps.forEach((c, ci) => {
      const h = hookOf(c);
      const sl = sliceW[ci];
      const cv = out.hooks.get(h)!.data;
      const g = out.grads.get(h)!.data;
      chunk.forEach((p, b) => {
        const len = p.clean.length;
        let dot = 0;
        let full = 0;
        const gs = gSum[ci];
        for (let t = 0; t < len; t++) {
          const o = (b * T + t) * sl.width + sl.offset;
          for (let j = 0; j < sl.span; j++) {
            gs[(s + b) * sl.span + j] += g[o + j];
            dot += cv[o + j] * g[o + j];
            if (ablation === 'resample') {
              const rv = corruptActs.values.get(h)!;
              full += (rv[((s + b) * corruptActs.tMax + t) * sl.width + sl.offset + j] - cv[o + j]) * g[o + j];
            }
          }
        }
        cleanDotG[ci][s + b] = dot;
        if (ablation === 'resample') perPrompt[ci][s + b] = full;
      });
    });
    progress?.(N + Math.min(s + batchSize, N), 2 * N, 'attribution');
  }
  if (ablation !== 'resample') {
    comps.forEach((c, ci) => {
      const h = hookOf(c);
      const sl = sliceW[ci];
      const r = new Float64Array(sl.span);
      if (ablation === 'mean') {
        const mean = meanOver === 'clean' ? Float64Array.from(cleanSum.get(h)!, (v) => v / cleanCount) : Float64Array.from(meanOverTokens(corruptActs, h));
        for (let j = 0; j < sl.span; j++) r[j] = mean[sl.offset + j];
      }
      for (let p = 0; p < N; p++) {
        let rg = 0;
        for (let j = 0; j < sl.span; j++) rg += r[j] * gSum[ci][p * sl.span + j];
        perPrompt[ci][p] = rg - cleanDotG[ci][p];
      }
    });
  }
  return { perPrompt, clean, corrupt };
}

export interface AttributionAtOptions {
  batchSize?: number;
  /**
   * Components whose layers get intervention inputs and whose hooks get gradients, whatever is
   * removed now: one compiled graph then serves every step. Default: removed ∪ targets.
   */
  scope?: Component[];
  /** Default logit-diff. */
  metric?: TaskMetric;
}

/**
 * Attribution scores at an ablated state, per target and prompt: with `removed` replaced, the
 * gradient g of the metric with respect to each target's output, and
 * Σ_positions (replacement − current output) · g. With nothing removed this is the attribution
 * score of `carve scan --method attribution`.
 */
export async function attributionAt(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  removed: Component[],
  targets: Component[],
  opts: AttributionAtOptions = {},
): Promise<Float64Array[]> {
  const batchSize = opts.batchSize ?? 64;
  const { z, mlp } = componentHooks(model);
  const scope = [...(opts.scope ?? []), ...removed, ...targets];
  const hookOf = (c: Component) => (c.head === null ? mlp.get(c.pos)! : z.get(c.pos)!);
  const hooks = [...new Set(scope.map(hookOf))];
  const zLayers = [...new Set(scope.filter((c) => c.head !== null).map((c) => c.pos))].sort((a, b) => a - b);
  const mlpLayers = [...new Set(scope.filter((c) => c.head === null).map((c) => c.pos))].sort((a, b) => a - b);
  const N = task.pairs.length;
  const metric = opts.metric ?? { name: 'logit-diff' };
  const taskLengths = task.pairs.map((p) => p.clean.length);
  const per = targets.map(() => new Float64Array(N));
  for (let s = 0; s < N; s += batchSize) {
    const chunk = task.pairs.slice(s, s + batchSize);
    const T = Math.max(...chunk.map((p) => p.clean.length));
    const rows = chunk.map((_, b) => ({ prompt: s + b, removed }));
    const { z: zIv, mlp: mlpIv } = removalInterventions(model, repl, rows, T, taskLengths, zLayers, mlpLayers);
    const out = await model.run({
      tokens: chunk.map((p) => p.clean),
      ...metricRun(metric, task, range(s, s + chunk.length)),
      hooks,
      gradients: hooks,
      z: zIv,
      mlp: mlpIv,
    });
    const Tr = out.seqLen;
    targets.forEach((c, ci) => {
      const h = hookOf(c);
      const sl = sliceOf(model, c);
      const cur = out.hooks.get(h)!.data;
      const grad = out.grads.get(h)!.data;
      const r = c.head === null ? repl.mlp.get(c.pos)! : repl.z.get(c.pos)!;
      chunk.forEach((p, b) => {
        const replRow = r.shape === 'row' ? { data: r.data, base: (s + b) * repl.tMax * sl.width } : null;
        per[ci][s + b] = dotDelta(c, sl, repl, p.clean.length, { data: cur, base: b * Tr * sl.width, T: Tr }, { data: grad, base: b * Tr * sl.width, T: Tr }, replRow);
      });
    });
  }
  return per;
}
