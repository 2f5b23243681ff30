/**
 * The task metric as the search code reads it: its name, and for `kl` the clean run's next-token
 * log-probabilities it compares against. The model computes every metric inside its graph
 * (src/model/readout.ts), so training runs (optimal constants, masks) read the same definition as
 * the exact evaluator.
 *
 * Merge note: the task-layer branch adds a module of this name with this API (TaskMetric,
 * prepareMetric, metricRun, metricSign, range); take that one.
 */
import type { HookedModel, RunOptions } from '../model/hooked.ts';
import { METRIC_NAMES, type MetricName } from '../model/readout.ts';
import { answersOf, type Task } from '../task/types.ts';
import { logSoftmax } from '../task/metrics.ts';

export { METRIC_NAMES, type MetricName };

export interface TaskMetric {
  name: MetricName;
  /** kl only: per prompt, the clean run's log-probabilities at its metric position [V]. */
  cleanLogP?: Float64Array[];
}

/** +1 where a higher value means the task is done better (logit-diff, prob-diff); −1 for kl. */
export function metricSign(name: MetricName): 1 | -1 {
  return name === 'kl' ? -1 : 1;
}

/** The clean run's log-probabilities at each prompt's metric position (for kl), computed in float64. */
export async function cleanLogProbs(model: HookedModel, task: Task, batchSize: number): Promise<Float64Array[]> {
  const out: Float64Array[] = [];
  const V = model.config.vocabSize;
  for (let s = 0; s < task.pairs.length; s += batchSize) {
    const chunk = task.pairs.slice(s, s + batchSize);
    const r = await model.run({ tokens: chunk.map((p) => p.clean), logits: 'last', answers: chunk.map(answersOf) });
    for (let b = 0; b < chunk.length; b++) out.push(logSoftmax(r.logits!.data.subarray(b * V, (b + 1) * V)));
  }
  return out;
}

/** Everything a metric needs before runs: for kl, one clean pass. */
export async function prepareMetric(model: HookedModel, task: Task, name: MetricName, batchSize: number): Promise<TaskMetric> {
  return name === 'kl' ? { name, cleanLogP: await cleanLogProbs(model, task, batchSize) } : { name };
}

/** Run options that read the metric for these prompts (indices into task.pairs), one row each. */
export function metricRun(m: TaskMetric, task: Task, prompts: readonly number[]): Pick<RunOptions, 'logits' | 'metric' | 'answers' | 'cleanLogProbs'> {
  const opts: Pick<RunOptions, 'logits' | 'metric' | 'answers' | 'cleanLogProbs'> = {
    logits: 'answers',
    metric: m.name,
    answers: prompts.map((i) => answersOf(task.pairs[i]!)),
  };
  if (m.name === 'kl') opts.cleanLogProbs = prompts.map((i) => m.cleanLogP![i]!);
  return opts;
}

/** Indices start..end−1. */
export function range(start: number, end: number): number[] {
  return Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}
