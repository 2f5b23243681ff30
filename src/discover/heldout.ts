/**
 * Select on one prompt set, report on another: the removed sets a search chose, measured exactly on
 * an evaluation task. The replacement values are the selection's (a mean or a learned constant is
 * part of what was chosen — it is what compress folds into the biases); resample ablation takes
 * each evaluation prompt's own corrupt partner.
 */
import type { MetricName } from './metric.ts';
import type { HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import { fail } from '../util/errors.ts';
import type { Component } from './components.ts';
import { ExactEvaluator } from './evaluate.ts';
import { computeReplacements, type Replacements } from './replacements.ts';

export interface HeldOut {
  task: string;
  n_prompts: number;
  clean_metric: number;
  clean_std: number;
}

/** How many tokens an answer field holds: one id, or a list of them (answer sets). */
const sizeOf = (answer: number | number[]) => (Array.isArray(answer) ? answer.length : 1);

/** How a task's answers are shaped: one correct and one incorrect token per prompt, or sets. */
export function answerStructure(task: Task): 'pair' | 'sets' {
  return task.pairs.every((p) => sizeOf(p.correct) === 1 && sizeOf(p.incorrect) === 1) ? 'pair' : 'sets';
}

const describe = (s: 'pair' | 'sets') => (s === 'pair' ? 'one correct and one incorrect token per prompt' : 'answer sets');

/** An evaluation task must be scored like the selection task: the same answer structure. */
export function checkSameAnswerStructure(selection: Task, evaluation: Task): void {
  if (evaluation.pairs.length === 0) fail(`evaluation task ${evaluation.name}: it has no prompts`);
  const a = answerStructure(selection);
  const b = answerStructure(evaluation);
  if (a !== b) {
    fail(`evaluation task ${evaluation.name} has ${describe(b)}, the selection task ${selection.name} ${describe(a)}: select and report on tasks whose answers have the same structure`);
  }
}

/** The metric per prompt on the evaluation task with each of `removedSets` replaced (and its clean metric). */
export async function measureHeldOut(
  model: HookedModel,
  selection: Task,
  evaluation: Task,
  repl: Replacements,
  removedSets: Component[][],
  opts: { batchSize: number; metric?: MetricName; onProgress?: (done: number, total: number) => void },
): Promise<{ summary: HeldOut; metrics: Float64Array[] }> {
  checkSameAnswerStructure(selection, evaluation);
  const evalRepl = repl.ablation === 'resample' ? await computeReplacements(model, evaluation, 'resample', repl.meanOver, opts.batchSize) : repl;
  const ev = await ExactEvaluator.create(model, evaluation, evalRepl, { batchSize: opts.batchSize, metric: opts.metric });
  const metrics = await ev.evaluate(removedSets, opts.onProgress);
  return { summary: { task: evaluation.name, n_prompts: evaluation.pairs.length, clean_metric: mean(ev.clean), clean_std: std(ev.clean) }, metrics };
}
