/**
 * Learned masks over components (SPEC "Search": `carve prune --order optimize`): a continuous
 * relaxation of removal, trained with carve's own gradients, whose path ranks the components.
 *
 * Each component c gets a mask m_c = σ(θ_c) ∈ (0, 1) that mixes its output with its replacement,
 * out = output·m_c + replacement·(1 − m_c) — exactly the intervention's keep input, so the gradient
 * with respect to the keep inputs is the gradient with respect to the masks. Full-batch Adam on θ
 * minimises
 *
 *     L(θ) = −sign · mean_prompts metric(m) / scale + μ_t · Σ_c m_c
 *
 * where scale = |metric with nothing removed − metric with everything removed| makes the penalty
 * task-independent, and the per-component penalty μ_t is annealed linearly from 0 to `penalty`:
 * a component is pushed out once its marginal (normalised) contribution falls below μ_t, so the
 * path removes the least needed components first and, at the end, nearly everything. The ranking
 * is by the mean of m_c over the path (its area: how early a mask fell), then the final θ_c, then
 * canonical order. Deterministic: no sampling, full batch.
 *
 * The relaxation only ranks; the order carve reports is then verified exactly (prune.ts).
 */
import type { HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { AdamW } from '../train/adamw.ts';
import type { Component } from './components.ts';
import { removalInterventions, type Replacements } from './replacements.ts';
import { metricRun, metricSign, prepareMetric, type MetricName, type TaskMetric } from './metric.ts';

export const MASK_DEFAULTS = {
  steps: 200,
  lr: 0.1,
  /** The per-component penalty at the end of the path, in units of the metric's scale. */
  penalty: 1.5,
  /** θ at the start: σ(3) ≈ 0.95, every component almost fully in. */
  init: 3,
};

export interface MaskOptions {
  metric?: MetricName;
  steps?: number;
  lr?: number;
  penalty?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface MaskResult {
  /** The components in removal order: least needed first. */
  ranking: Component[];
  /** Per component (in the given order): mean mask over the path, and the final mask. */
  area: number[];
  final: number[];
  /** The metric with nothing and with everything removed (the scale's ends). */
  full: number;
  empty: number;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
/** The penalty's start; it grows geometrically to `penalty`, resolving small contributions as finely as large ones. */
const MU_START = 1e-3;

/**
 * Train masks over `comps` (the others stay fully in) with replacements `repl`, and rank them.
 */
export async function trainMasks(model: HookedModel, task: Task, repl: Replacements, comps: Component[], options: MaskOptions = {}): Promise<MaskResult> {
  const steps = options.steps ?? MASK_DEFAULTS.steps;
  const lr = options.lr ?? MASK_DEFAULTS.lr;
  const penalty = options.penalty ?? MASK_DEFAULTS.penalty;
  const batchSize = Math.max(1, options.batchSize ?? 64);
  const metric = options.metric ?? 'logit-diff';
  const tm: TaskMetric = await prepareMetric(model, task, metric, batchSize);
  const sign = metricSign(metric);
  const N = task.pairs.length;
  const n = comps.length;
  const lengths = task.pairs.map((p) => p.clean.length);
  const zLayers = [...new Set(comps.filter((c) => c.head !== null).map((c) => c.pos))].sort((a, b) => a - b);
  const mlpLayers = [...new Set(comps.filter((c) => c.head === null).map((c) => c.pos))].sort((a, b) => a - b);
  const gradNames = [...zLayers.map((p) => `z_keep.${p}`), ...mlpLayers.map((p) => `mlp_keep.${p}`)];

  /** Mean metric over prompts with masks m, and d(mean metric)/dm per component. */
  const measure = async (m: number[], withGrad: boolean): Promise<{ value: number; grad: Float64Array }> => {
    const grad = new Float64Array(n);
    let sum = 0;
    for (let s = 0; s < N; s += batchSize) {
      const prompts = Array.from({ length: Math.min(batchSize, N - s) }, (_, b) => s + b);
      const B = prompts.length;
      const T = Math.max(...prompts.map((p) => lengths[p]));
      const rows = prompts.map((prompt) => ({ prompt, removed: [] as Component[] }));
      const { z, mlp } = removalInterventions(model, repl, rows, T, lengths, zLayers, mlpLayers);
      comps.forEach((c, i) => {
        if (c.head === null) mlp.get(c.pos)!.keep.fill(m[i]);
        else {
          const k = model.config.layers[c.pos].heads.length;
          const keep = z.get(c.pos)!.keep;
          for (let b = 0; b < B; b++) keep[b * k + c.slot] = m[i];
        }
      });
      const out = await model.run({
        tokens: prompts.map((p) => task.pairs[p].clean),
        ...metricRun(tm, task, prompts),
        z,
        mlp,
        gradients: withGrad ? gradNames : undefined,
        rowWeights: withGrad ? prompts.map(() => 1 / N) : undefined,
      });
      out.metric!.forEach((v) => (sum += v));
      if (withGrad) {
        comps.forEach((c, i) => {
          if (c.head === null) out.grads.get(`mlp_keep.${c.pos}`)!.data.forEach((g) => (grad[i] += g));
          else {
            const k = model.config.layers[c.pos].heads.length;
            const g = out.grads.get(`z_keep.${c.pos}`)!.data;
            for (let b = 0; b < B; b++) grad[i] += g[b * k + c.slot];
          }
        });
      }
    }
    return { value: sum / N, grad };
  };

  const full = (await measure(comps.map(() => 1), false)).value;
  const empty = (await measure(comps.map(() => 0), false)).value;
  const scale = Math.max(Math.abs(full - empty), 1e-6);
  const theta = new Float32Array(n).fill(MASK_DEFAULTS.init);
  const adam = new AdamW([{ name: 'theta', data: theta, decay: false }], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clip: 0 });
  const area = new Float64Array(n);
  for (let t = 0; t < steps; t++) {
    const m = Array.from(theta, sigmoid);
    m.forEach((v, i) => (area[i] += v / steps));
    const mu = steps > 1 ? MU_START * (penalty / MU_START) ** (t / (steps - 1)) : penalty;
    const { grad } = await measure(m, true);
    const dTheta = Float32Array.from(grad, (g, i) => (-(sign * g) / scale + mu) * m[i] * (1 - m[i]));
    adam.step([dTheta], lr);
    options.onProgress?.(t + 1, steps);
  }
  const final = Array.from(theta, sigmoid);
  const order = comps.map((_, i) => i).sort((a, b) => area[a] - area[b] || theta[a] - theta[b] || a - b);
  return { ranking: order.map((i) => comps[i]), area: Array.from(area), final, full, empty };
}
