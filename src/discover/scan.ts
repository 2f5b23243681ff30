/**
 * Scores of every component (SPEC "Components, metric, scores"):
 *  - exact: mean over prompts of (metric with c replaced) − (clean metric);
 *  - attribution: mean over prompts of Σ_positions (replacement − clean output) · ∂metric/∂output,
 *    at the clean run — one forward and one backward pass for all components together;
 *  - ig: integrated gradients along each component's own path from its clean output to its
 *    replacement: (replacement − clean) · (1/K) Σ_k ∂metric/∂output at clean + α_k·(replacement − clean),
 *    α_k = (k − ½)/K (midpoint rule). K = 1 on a model linear in the component gives the
 *    attribution score; as K grows it converges to the exact score (the path integral of the
 *    gradient is exactly the change in the metric). EAP-IG (Hanna et al. 2024) integrates along
 *    a path in the input embeddings instead, shared by all components; interpolating each
 *    component's own output is what makes carve's ig converge to carve's exact score.
 * The gradient-based scores live in attribution.ts.
 */
import type { HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import { metricRun, prepareMetric, range, type MetricName, type TaskMetric } from './metric.ts';
import { listComponents, type Component, type ComponentKind } from './components.ts';
import type { Ablation, MeanOver } from './replacements.ts';
import { replacementsFor, type ConstantsFile } from './optimal.ts';
import { attributionAt, attributionScan, igScores } from './attribution.ts';
import { ExactEvaluator } from './evaluate.ts';

export { dotDelta, sliceOf } from './attribution.ts';

export type ScanMethod = 'exact' | 'attribution' | 'ig';
export const SCAN_METHODS: readonly ScanMethod[] = ['exact', 'attribution', 'ig'];

export interface ScanOptions {
  ablation: Ablation;
  method: ScanMethod;
  components: ComponentKind;
  /** Default logit-diff. */
  metric?: MetricName;
  meanOver?: MeanOver;
  /** ig: number of interpolation points. */
  steps?: number;
  /** Rows per onnxruntime run (prompts × configurations). */
  batchSize?: number;
  onProgress?: (done: number, total: number, label: string) => void;
  /** optimal ablation: saved constants (otherwise learned with `seed` and `optimalSteps`; see optimal.ts). */
  constants?: { file: ConstantsFile; where: string };
  seed?: number;
  optimalSteps?: number;
}

export interface ComponentScore {
  name: string;
  layer: number;
  head: number | null;
  score: number;
  std: number;
}

export interface ScanResult {
  model: string;
  task: string;
  ablation: Ablation;
  method: ScanMethod;
  metric_name: MetricName;
  n_prompts: number;
  clean_metric: number;
  clean_std: number;
  corrupt_metric: number;
  mean_over?: MeanOver;
  steps?: number;
  /** optimal ablation: the constants used (the CLI saves them beside the JSON and names the file here). */
  constants?: ConstantsFile | string;
  components: ComponentScore[];
}

/**
 * Metric of the unablated model on the clean or corrupt prompts (clean answers), per prompt. With
 * `answerLogits`, also each prompt's answer logits (correct set first, then incorrect) for accuracy.
 */
async function promptMetrics(
  model: HookedModel,
  task: Task,
  batchSize: number,
  which: 'clean' | 'corrupt',
  metric: TaskMetric,
  answerLogits?: Float64Array[],
): Promise<Float64Array> {
  const out = new Float64Array(task.pairs.length);
  for (let s = 0; s < task.pairs.length; s += batchSize) {
    const chunk = task.pairs.slice(s, s + batchSize);
    const r = await model.run({ tokens: chunk.map((p) => p[which]), ...metricRun(metric, task, range(s, s + chunk.length)) });
    chunk.forEach((p, b) => {
      out[s + b] = r.metric![b];
      if (answerLogits) {
        const A = r.answerLogits!.dims[1];
        answerLogits[s + b] = Float64Array.from(r.answerLogits!.data.subarray(b * A, b * A + p.correct.length + p.incorrect.length));
      }
    });
  }
  return out;
}

/** The metric of the unablated model on the corrupt prompts (KL: from the clean run's distribution). */
export async function corruptMetrics(model: HookedModel, task: Task, batchSize: number, metric: TaskMetric = { name: 'logit-diff' }): Promise<Float64Array> {
  return promptMetrics(model, task, batchSize, 'corrupt', metric);
}

/** The metric of the unablated model on the clean prompts, and each prompt's answer logits. */
export async function cleanMetrics(
  model: HookedModel,
  task: Task,
  batchSize: number,
  metric: TaskMetric = { name: 'logit-diff' },
): Promise<{ metrics: Float64Array; answerLogits: Float64Array[] }> {
  const answerLogits: Float64Array[] = [];
  const metrics = await promptMetrics(model, task, batchSize, 'clean', metric, answerLogits);
  return { metrics, answerLogits };
}

function summary(c: Component, perPrompt: ArrayLike<number>): ComponentScore {
  return { name: c.name, layer: c.layer, head: c.head, score: mean(perPrompt), std: std(perPrompt) };
}

export async function scan(model: HookedModel, task: Task, opts: ScanOptions): Promise<ScanResult> {
  const batchSize = opts.batchSize ?? 64;
  const meanOver = opts.meanOver ?? 'clean';
  const metricName = opts.metric ?? 'logit-diff';
  const comps = listComponents(model.config, opts.components);
  let perPrompt: Float64Array[];
  let clean: Float64Array;
  let corrupt: Float64Array;
  const metric = await prepareMetric(model, task, metricName, batchSize);
  let constants: ConstantsFile | undefined;
  if (opts.method === 'attribution' && opts.ablation !== 'optimal') {
    ({ perPrompt, clean, corrupt } = await attributionScan(model, task, comps, opts.ablation, meanOver, batchSize, metric, opts.onProgress));
  } else {
    const r = await replacementsFor(model, task, opts.ablation, {
      meanOver,
      batchSize,
      constants: opts.constants,
      optimal: { seed: opts.seed, steps: opts.optimalSteps, components: comps, metric: metricName, onProgress: (d, t) => opts.onProgress?.(d, t, 'optimal constants') },
    });
    const repl = r.repl;
    constants = r.constants;
    if (opts.method === 'attribution') {
      // Learned constants: the attribution score at the clean run (nothing removed) with them as the replacement.
      perPrompt = await attributionAt(model, task, repl, [], comps, { batchSize, metric });
      clean = (await cleanMetrics(model, task, batchSize, metric)).metrics;
    } else if (opts.method === 'exact') {
      const evaluator = await ExactEvaluator.create(model, task, repl, { batchSize, metric: metricName });
      clean = evaluator.clean;
      const metrics = await evaluator.evaluate(comps.map((c) => [c]), (done, total) => opts.onProgress?.(done, total, 'exact'));
      perPrompt = metrics.map((m) => m.map((v, p) => v - clean[p]));
    } else {
      perPrompt = await igScores(model, task, repl, comps, opts.steps ?? 8, batchSize, metric, opts.onProgress);
      clean = (await cleanMetrics(model, task, batchSize, metric)).metrics;
    }
    corrupt = await corruptMetrics(model, task, batchSize, metric);
  }
  const result: ScanResult = {
    model: model.name,
    task: task.name,
    ablation: opts.ablation,
    method: opts.method,
    metric_name: metricName,
    n_prompts: task.pairs.length,
    clean_metric: mean(clean),
    clean_std: std(clean),
    corrupt_metric: mean(corrupt),
    components: comps.map((c, i) => summary(c, perPrompt[i])),
  };
  if (opts.ablation === 'mean' || opts.ablation === 'optimal') result.mean_over = meanOver;
  if (opts.method === 'ig') result.steps = opts.steps ?? 8;
  if (constants) result.constants = constants;
  return result;
}
