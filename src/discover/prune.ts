/**
 * Pruning orders (SPEC `carve prune`): lists of components removed one after another, with the
 * metric after every prefix of the list removed together.
 *
 *  - scores: by single-component scores (exact by default, attribution with method 'attribution'),
 *    highest (least needed) first; the cumulative sets are then evaluated exactly.
 *  - greedy: at each step remove the component whose removal, together with those already removed,
 *    leaves the highest metric. Exact: every remaining component is re-evaluated at every step.
 *    Attribution: remaining components are ranked by attribution scores at the current ablated
 *    state (gradients of the metric with the removed components replaced), and the best `verify`
 *    of them are evaluated exactly; the best of those is taken.
 *  - acdc: node-level ACDC (Conmy et al. 2023): visit components from the last layer to the first
 *    (a layer's MLP before its heads, heads by descending index); remove one for good when, with
 *    those already removed, the metric gets worse by less than the threshold T. With logit-diff or
 *    prob-diff: current − new < T; with KL (from the clean run's next-token distribution):
 *    new − current < T — ACDC's rule F(H_new) − F(H) < τ for a metric F to minimise. After a
 *    removal, the current value is the new one. The default T is 0.05 (logit units, probability, or nats).
 *  - optimize: learned masks (masks.ts) rank the components; an exact pass along that ranking then
 *    builds the order — at each step the first `verify` components of the ranking not yet removed
 *    are evaluated exactly with those already removed, and the best is taken; finally local
 *    refinement swaps neighbours in the order (the k-th removed and the (k+1)-th, still kept at
 *    step k) where that raises step k's metric: a swap changes no other step, so every accepted
 *    swap improves the curve at one point and worsens it nowhere.
 *  - greedy with method 'halving': each step by successive halving (halving.ts) instead of scoring
 *    every candidate on every prompt; halving.ts states what it guarantees.
 *
 * Ablation 'optimal' uses learned constants (optimal.ts): given, or learned at the start from the
 * task's prompts (seeded) and saved in every checkpoint and in the result.
 *
 * The metric (`metric`, default logit-diff; discover/metric.ts) is the one every order uses and
 * every step reports: "better" is higher for logit-diff and prob-diff and lower for kl, so scores
 * rank least-needed first and greedy removes what leaves the best metric under either. Every metric
 * reported is exact (mean and std over prompts) with exactly the listed components replaced, from
 * ExactEvaluator, which takes the removed set explicitly per configuration. Ties are broken by
 * canonical component order.
 *
 * Long runs can be checkpointed and resumed: `hooks.onCheckpoint` receives, after every step, all
 * the state needed to continue, and `hooks.resume` continues from such a checkpoint when its
 * fingerprint (model weights and layout, task prompts, order options) matches. A resumed run makes
 * exactly the evaluations an uninterrupted one makes, so its result is identical (given the same
 * batch size and threads). The checkpoint format and its checks are in checkpoint.ts.
 *
 * With an evaluation task (`evalTask`), every step's removed set is also measured on that second
 * prompt set (eval_metric, eval_std): select on one set, report on another.
 */
import type { HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { failOption } from '../util/errors.ts';
import { mean, std } from '../task/metrics.ts';
import { listComponents, type Component, type ComponentKind } from './components.ts';
import type { Ablation, MeanOver, Replacements } from './replacements.ts';
import { ExactEvaluator } from './evaluate.ts';
import { METRIC_NAMES, metricSign, type MetricName, type TaskMetric } from './metric.ts';
import { corruptMetrics } from './scan.ts';
import { attributionAt } from './attribution.ts';
import { jsonFingerprint, runFingerprint } from './fingerprint.ts';
import { checkResume, type PruneCheckpoint, type ResumeHooks, type ResumeState } from './checkpoint.ts';
import { replacementsFor, type ConstantsFile } from './optimal.ts';
import { MASK_DEFAULTS, trainMasks } from './masks.ts';
import { DEFAULT_FINALISTS, defaultFirst, halvingPick, promptOrder } from './halving.ts';
import { measureHeldOut, type HeldOut } from './heldout.ts';

export { modelFingerprint, taskFingerprint } from './fingerprint.ts';
export { attributionAt, type AttributionAtOptions } from './attribution.ts';
export type { PruneCheckpoint } from './checkpoint.ts';

export type PruneOrder = 'scores' | 'greedy' | 'acdc' | 'optimize';
export const PRUNE_ORDERS: readonly PruneOrder[] = ['scores', 'greedy', 'acdc', 'optimize'];
export type PruneMethod = 'exact' | 'attribution' | 'halving';
export const PRUNE_METHODS: readonly PruneMethod[] = ['exact', 'attribution', 'halving'];

/** ACDC's default threshold: metric units (logits, probability, or nats for KL) per removal. */
export const DEFAULT_ACDC_THRESHOLD = 0.05;
/** Attribution-guided greedy: how many of the best-ranked candidates are checked exactly. */
export const DEFAULT_VERIFY = 4;
/** scores order: cumulative sets evaluated (and checkpointed) this many at a time. */
export const SCORES_BLOCK = 8;
/** optimize: refinement passes (each evaluates n − 1 swapped prefixes; stops early when none helps). */
export const DEFAULT_REFINE = 4;

export interface PruneOptions {
  order: PruneOrder;
  ablation: Ablation;
  /** scores: what ranks the components; greedy: exact re-scoring or attribution-guided. Default exact. */
  method?: PruneMethod;
  components?: ComponentKind;
  meanOver?: MeanOver;
  /** greedy + attribution only: candidates checked exactly per step (default 4). */
  verify?: number;
  /** acdc only (default 0.05). */
  threshold?: number;
  /** The metric every order uses and every step reports (default logit-diff). */
  metric?: MetricName;
  /** Rows per onnxruntime run (prompts × configurations). Not part of the fingerprint. */
  batchSize?: number;
  /** Seed of everything random in the search: optimal constants' removal family, halving's prompt order (default 0). */
  seed?: number;
  /** optimal ablation: saved constants (`where`: their file); without them they are learned. */
  constants?: { file: ConstantsFile; where: string };
  /** optimal ablation: Adam steps for learning the constants (default optimal.ts OPTIMAL_DEFAULTS). */
  optimalSteps?: number;
  /** optimize: mask training steps (default 200) and refinement passes (default 4). */
  maskSteps?: number;
  refine?: number;
  /** greedy + halving: prompts in the first round and finalists scored on every prompt. */
  halvingFirst?: number;
  finalists?: number;
  /** A second prompt set every step is also measured on (same answer structure). Not part of the fingerprint. */
  evalTask?: Task;
}

/** The options with defaults filled in and only those that apply to the order. */
export interface ResolvedPruneOptions {
  order: PruneOrder;
  ablation: Ablation;
  method: PruneMethod;
  components: ComponentKind;
  mean_over?: MeanOver;
  verify?: number;
  threshold?: number;
  metric: MetricName;
  seed?: number;
  /** optimal: the sha256 of the constants given, or how many steps learn them. */
  constants?: string;
  optimal_steps?: number;
  mask_steps?: number;
  refine?: number;
  halving_first?: number;
  finalists?: number;
}

export interface PruneStep {
  removed: number;
  component: string | null;
  /** The metric (mean over prompts) with the first `removed` components replaced. */
  metric: number;
  std: number;
  /** With an evaluation task: the metric there with the same components removed. */
  eval_metric?: number;
  eval_std?: number;
}

/** onCheckpoint is called after every step (scores: after the ranking and after every block of steps). */
export interface PruneHooks extends ResumeHooks<PruneCheckpoint> {
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface PruneResult {
  order: PruneOrder;
  ablation: Ablation;
  method: PruneMethod;
  metric_name: MetricName;
  model: string;
  task: string;
  components: ComponentKind;
  n_prompts: number;
  clean_metric: number;
  clean_std: number;
  corrupt_metric: number;
  mean_over?: MeanOver;
  verify?: number;
  threshold?: number;
  /** acdc: the components kept, in canonical order. */
  kept?: string[];
  seed?: number;
  /** optimize: the mask ranking (least needed first), before the exact pass. */
  mask_ranking?: string[];
  /** greedy + halving: configuration × prompt evaluations made, and what exact greedy would make. */
  evaluations?: number;
  exact_evaluations?: number;
  /** optimal ablation: the constants used (the CLI saves them beside the JSON and names the file here). */
  constants?: ConstantsFile | string;
  /** With an evaluation task: its name, size and clean metric; the steps carry eval_metric. */
  eval?: HeldOut;
  steps: PruneStep[];
}

const positiveInt = (v: number | undefined, key: string) => {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) failOption(`{${key}}: expected a positive integer, got ${v}`);
};

/** Option values and combinations, checked; messages name options as `{key}` (the CLI shows its flags). */
export function resolvePruneOptions(opts: PruneOptions): ResolvedPruneOptions {
  const { order } = opts;
  if (!PRUNE_ORDERS.includes(order)) failOption(`{order}: expected one of ${PRUNE_ORDERS.join(', ')}, got ${JSON.stringify(order)}`);
  const method = opts.method ?? 'exact';
  if (!PRUNE_METHODS.includes(method)) failOption(`{method}: expected one of ${PRUNE_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
  if ((order === 'acdc' || order === 'optimize') && method !== 'exact') failOption(`{method} ${method}: the ${order} order is exact only`);
  if (method === 'halving' && order !== 'greedy') failOption('{method} halving applies only to {order} greedy');
  const metric = opts.metric ?? 'logit-diff';
  if (!METRIC_NAMES.includes(metric)) failOption(`{metric}: expected one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(metric)}`);
  const r: ResolvedPruneOptions = { order, ablation: opts.ablation, method, components: opts.components ?? 'all', metric };
  if (opts.ablation === 'mean' || opts.ablation === 'optimal') r.mean_over = opts.meanOver ?? 'clean';
  if (opts.verify !== undefined) {
    if (!((order === 'greedy' && method === 'attribution') || order === 'optimize')) failOption('{verify} applies only to {order} greedy {method} attribution and to {order} optimize');
    positiveInt(opts.verify, 'verify');
  }
  if ((order === 'greedy' && method === 'attribution') || order === 'optimize') r.verify = opts.verify ?? DEFAULT_VERIFY;
  if (opts.threshold !== undefined) {
    if (order !== 'acdc') failOption('{threshold} applies only to {order} acdc');
    if (!Number.isFinite(opts.threshold)) failOption(`{threshold}: expected a finite number, got ${opts.threshold}`);
  }
  if (order === 'acdc') r.threshold = opts.threshold ?? DEFAULT_ACDC_THRESHOLD;
  if (opts.seed !== undefined && (!Number.isSafeInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff)) failOption(`{seed}: expected an integer from 0 to 4294967295, got ${opts.seed}`);
  const random = opts.ablation === 'optimal' || method === 'halving';
  if (random) r.seed = opts.seed ?? 0;
  if (opts.constants !== undefined && opts.ablation !== 'optimal') failOption(`{constants} apply only to {ablation} optimal, not ${opts.ablation}`);
  if (opts.optimalSteps !== undefined && opts.ablation !== 'optimal') failOption('{optimalSteps} applies only to {ablation} optimal');
  if (opts.ablation === 'optimal') {
    if (opts.constants) {
      if (opts.optimalSteps !== undefined) failOption('{optimalSteps}: the constants are given ({constants}), nothing is learned');
      r.constants = jsonFingerprint(opts.constants.file.components);
    } else {
      if (opts.optimalSteps !== undefined && (!Number.isSafeInteger(opts.optimalSteps) || opts.optimalSteps < 0)) failOption(`{optimalSteps}: expected a non-negative integer, got ${opts.optimalSteps}`);
      r.optimal_steps = opts.optimalSteps ?? 100;
    }
  }
  for (const [key, v, applies, what] of [
    ['maskSteps', opts.maskSteps, order === 'optimize', '{order} optimize'],
    ['refine', opts.refine, order === 'optimize', '{order} optimize'],
    ['halvingFirst', opts.halvingFirst, method === 'halving', '{method} halving'],
    ['finalists', opts.finalists, method === 'halving', '{method} halving'],
  ] as const) {
    if (v !== undefined && !applies) failOption(`{${key}} applies only to ${what}`);
  }
  positiveInt(opts.maskSteps, 'maskSteps');
  if (opts.refine !== undefined && (!Number.isSafeInteger(opts.refine) || opts.refine < 0)) failOption(`{refine}: expected a non-negative integer, got ${opts.refine}`);
  positiveInt(opts.halvingFirst, 'halvingFirst');
  positiveInt(opts.finalists, 'finalists');
  if (order === 'optimize') {
    r.mask_steps = opts.maskSteps ?? MASK_DEFAULTS.steps;
    r.refine = opts.refine ?? DEFAULT_REFINE;
  }
  if (method === 'halving') {
    if (opts.halvingFirst !== undefined) r.halving_first = opts.halvingFirst;
    r.finalists = opts.finalists ?? DEFAULT_FINALISTS;
  }
  return r;
}

export function pruneFingerprint(model: HookedModel, task: Task, opts: ResolvedPruneOptions): string {
  return runFingerprint(model, task, opts);
}

interface Ctx {
  model: HookedModel;
  task: Task;
  opts: ResolvedPruneOptions;
  comps: Component[];
  byName: Map<string, Component>;
  repl: Replacements;
  ev: ExactEvaluator;
  metric: TaskMetric;
  /** +1: higher is better (logit-diff, prob-diff); −1: lower is (kl). */
  sign: 1 | -1;
  batchSize: number;
  hooks: PruneHooks;
  /** The checked checkpoint to continue from. */
  resume?: ResumeState;
  checkpoint: (extra: Partial<PruneCheckpoint>, steps: PruneStep[]) => Promise<void>;
  progress: (done: number, total: number) => void;
}

function stepOf(removed: number, c: Component | null, perPrompt: ArrayLike<number>): PruneStep {
  return { removed, component: c ? c.name : null, metric: mean(perPrompt), std: std(perPrompt) };
}

/** Index of the highest value; the first one on ties (candidates are in canonical order). */
function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Indices sorted by value, highest first; ties keep their (canonical) order. */
function rankDescending(values: number[]): number[] {
  return values.map((_, i) => i).sort((a, b) => values[b] - values[a] || a - b);
}

export async function pruneOrder(model: HookedModel, task: Task, options: PruneOptions, hooks: PruneHooks = {}): Promise<PruneResult> {
  const opts = resolvePruneOptions(options);
  const batchSize = options.batchSize ?? 64;
  const comps = listComponents(model.config, opts.components);
  if (comps.length === 0) failOption(`{components} ${opts.components}: the model has no such components`);
  const byName = new Map(comps.map((c) => [c.name, c]));
  const fingerprint = pruneFingerprint(model, task, opts);
  let resume: ResumeState | undefined;
  if (hooks.resume) {
    resume = checkResume(hooks.resume, fingerprint, opts, byName, hooks.resumeSource ?? 'resume checkpoint');
    hooks.onResumed?.(hooks.resume);
  }

  const label = `${opts.order}${opts.order === 'greedy' ? '/' + opts.method : ''}`;
  // Optimal constants: given, from the checkpoint (learned by the interrupted run), or learned now.
  const given = options.constants ?? (hooks.resume?.constants ? { file: hooks.resume.constants, where: hooks.resumeSource ?? 'resume checkpoint' } : undefined);
  const { repl, constants } = await replacementsFor(model, task, opts.ablation, {
    meanOver: opts.mean_over,
    batchSize,
    constants: given,
    optimal: { seed: opts.seed, steps: opts.optimal_steps, components: comps, metric: opts.metric, onProgress: (d: number, t: number) => hooks.onProgress?.(d, t, 'optimal constants') },
  });
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize, metric: opts.metric });
  const metric = ev.taskMetric;
  const ctx: Ctx = {
    model,
    task,
    opts,
    comps,
    byName,
    repl,
    ev,
    metric,
    sign: metricSign(opts.metric),
    batchSize,
    hooks,
    resume,
    checkpoint: async (extra, steps) => {
      await hooks.onCheckpoint?.({
        format: 'carve-prune-partial',
        version: 1,
        fingerprint,
        model: model.name,
        task: task.name,
        options: opts,
        steps: steps.map((s) => ({ ...s })),
        ...extra,
        ...(constants ? { constants } : {}),
      });
    },
    progress: (done, total) => hooks.onProgress?.(done, total, label),
  };

  let steps: PruneStep[];
  let kept: string[] | undefined;
  let maskRanking: string[] | undefined;
  let evaluations: number | undefined;
  if (opts.order === 'scores') steps = await scoresOrder(ctx);
  else if (opts.order === 'greedy') ({ steps, evaluations } = await greedyOrder(ctx));
  else if (opts.order === 'optimize') ({ steps, ranking: maskRanking } = await optimizeOrder(ctx));
  else ({ steps, kept } = await acdcOrder(ctx));

  let heldOut: HeldOut | undefined;
  if (options.evalTask) {
    const removedAt = steps.map((_, k) => steps.slice(1, k + 1).map((s) => byName.get(s.component!)!));
    const m = await measureHeldOut(model, task, options.evalTask, repl, removedAt, { batchSize, metric: opts.metric, onProgress: (d, t) => hooks.onProgress?.(d, t, 'held-out') });
    heldOut = m.summary;
    steps.forEach((s, k) => {
      s.eval_metric = mean(m.metrics[k]);
      s.eval_std = std(m.metrics[k]);
    });
  }

  const corrupt = await corruptMetrics(model, task, batchSize, metric);
  const result: Omit<PruneResult, 'steps'> = {
    order: opts.order,
    ablation: opts.ablation,
    method: opts.method,
    metric_name: opts.metric,
    model: model.name,
    task: task.name,
    components: opts.components,
    n_prompts: task.pairs.length,
    clean_metric: mean(ev.clean),
    clean_std: std(ev.clean),
    corrupt_metric: mean(corrupt),
  };
  if (opts.mean_over) result.mean_over = opts.mean_over;
  if (opts.verify !== undefined) result.verify = opts.verify;
  if (opts.order === 'acdc') {
    result.threshold = opts.threshold;
    result.kept = kept;
  }
  if (opts.seed !== undefined) result.seed = opts.seed;
  if (maskRanking) result.mask_ranking = maskRanking;
  if (evaluations !== undefined) {
    result.evaluations = evaluations;
    result.exact_evaluations = ((comps.length * (comps.length + 1)) / 2) * task.pairs.length;
  }
  if (constants) result.constants = constants;
  if (heldOut) result.eval = heldOut;
  return { ...result, steps };
}

async function scoresOrder(ctx: Ctx): Promise<PruneStep[]> {
  const { comps, ev, opts } = ctx;
  const n = comps.length;
  const total = 2 * n;
  let ranking: Component[];
  let steps: PruneStep[];
  if (ctx.resume?.ranking) {
    ranking = ctx.resume.ranking;
    steps = ctx.resume.steps;
  } else {
    const clean = ev.clean;
    let scores: number[];
    if (opts.method === 'exact') {
      const metrics = await ev.evaluate(
        comps.map((c) => [c]),
        (done, all) => ctx.progress((done / all) * n, total),
      );
      scores = metrics.map((m) => mean(m.map((v, p) => v - clean[p])));
    } else {
      const per = await attributionAt(ctx.model, ctx.task, ctx.repl, [], comps, { batchSize: ctx.batchSize, metric: ctx.metric });
      scores = per.map((p) => mean(p));
    }
    // Least needed first: the highest score, or for kl the lowest (the smallest divergence).
    ranking = rankDescending(scores.map((v) => ctx.sign * v)).map((i) => comps[i]);
    steps = [stepOf(0, null, clean)];
    await ctx.checkpoint({ ranking: ranking.map((c) => c.name) }, steps);
  }
  // Cumulative sets in fixed blocks [1 + b·S, 1 + (b+1)·S): a resumed run makes the same calls.
  let k = 1 + Math.floor((steps.length - 1) / SCORES_BLOCK) * SCORES_BLOCK;
  steps = steps.slice(0, k);
  ctx.progress(n + k - 1, total);
  while (k <= n) {
    const end = Math.min(n, k + SCORES_BLOCK - 1);
    const configs: Component[][] = [];
    for (let j = k; j <= end; j++) configs.push(ranking.slice(0, j));
    const base = n + k - 1;
    const metrics = await ev.evaluate(configs, (done, all) => ctx.progress(base + (done / all) * configs.length, total));
    metrics.forEach((m, i) => steps.push(stepOf(k + i, ranking[k + i - 1], m)));
    k = end + 1;
    await ctx.checkpoint({ ranking: ranking.map((c) => c.name) }, steps);
  }
  return steps;
}

async function greedyOrder(ctx: Ctx): Promise<{ steps: PruneStep[]; evaluations?: number }> {
  const { comps, ev, opts } = ctx;
  const n = comps.length;
  const steps: PruneStep[] = ctx.resume ? ctx.resume.steps : [stepOf(0, null, ev.clean)];
  const removed: Component[] = ctx.resume ? [...ctx.resume.removed] : [];
  // Progress units: exact and halving — candidate configurations (n + (n−1) + ... + 1); attribution — steps.
  const exact = opts.method !== 'attribution';
  const halving = opts.method === 'halving';
  const order = halving ? promptOrder(ctx.task.pairs.length, opts.seed!) : [];
  let evaluations = ctx.resume?.evaluations ?? 0;
  const units = (k: number) => (exact ? (k * (2 * n - k + 1)) / 2 : k);
  const total = units(n);
  ctx.progress(units(removed.length), total);
  while (removed.length < n) {
    const gone = new Set(removed.map((c) => c.name));
    const remaining = comps.filter((c) => !gone.has(c.name));
    let candidates = remaining;
    if (!exact && opts.verify! < remaining.length) {
      const per = await attributionAt(ctx.model, ctx.task, ctx.repl, removed, remaining, { batchSize: ctx.batchSize, scope: comps, metric: ctx.metric });
      const top = new Set(rankDescending(per.map((p) => ctx.sign * mean(p))).slice(0, opts.verify!));
      // Evaluated in canonical order: with verify ≥ remaining this is exactly exact greedy's call.
      candidates = remaining.filter((_, i) => top.has(i));
    }
    const base = units(removed.length);
    const stepUnits = units(removed.length + 1) - base;
    // Every candidate contains the removals so far: cache the stream with them replaced, so each
    // candidate starts at its own layer rather than at the earliest removal.
    await ev.setBase(removed);
    const stepProgress = (done: number, all: number) => ctx.progress(base + (done / all) * stepUnits, total);
    if (halving) {
      const pick = await halvingPick(ev, removed, candidates, order, { first: opts.halving_first ?? defaultFirst(order.length), finalists: opts.finalists, sign: ctx.sign }, stepProgress);
      evaluations += pick.evaluations;
      removed.push(candidates[pick.best]);
      steps.push(stepOf(removed.length, candidates[pick.best], pick.metric));
    } else {
      const metrics = await ev.evaluate(
        candidates.map((c) => [...removed, c]),
        stepProgress,
      );
      const best = argmax(metrics.map((m) => ctx.sign * mean(m)));
      removed.push(candidates[best]);
      steps.push(stepOf(removed.length, candidates[best], metrics[best]));
    }
    ctx.progress(units(removed.length), total);
    await ctx.checkpoint(halving ? { evaluations } : {}, steps);
  }
  return { steps, ...(halving ? { evaluations } : {}) };
}

/** optimize: masks rank, an exact pass along the ranking orders, neighbour swaps refine (file comment). */
async function optimizeOrder(ctx: Ctx): Promise<{ steps: PruneStep[]; ranking: string[] }> {
  const { comps, ev, opts, byName } = ctx;
  const n = comps.length;
  const W = opts.verify!;
  // Progress units: mask steps, then candidate configurations of the exact pass, then refinement prefixes.
  const maskUnits = opts.mask_steps!;
  const passUnits = (k: number) => {
    let u = 0;
    for (let j = 0; j < k; j++) u += Math.min(W, n - j);
    return u;
  };
  const total = maskUnits + passUnits(n) + opts.refine! * Math.max(0, n - 1);
  let ranking: Component[];
  let steps: PruneStep[];
  let phase: 'verify' | 'refine' = 'verify';
  let refined = 0;
  if (ctx.resume) {
    ranking = ctx.resume.ranking!;
    steps = ctx.resume.steps;
    phase = ctx.resume.phase ?? 'verify';
    refined = ctx.resume.refined ?? 0;
  } else {
    const masks = await trainMasks(ctx.model, ctx.task, ctx.repl, comps, {
      steps: opts.mask_steps,
      batchSize: ctx.batchSize,
      metric: opts.metric,
      onProgress: (d) => ctx.progress(d, total),
    });
    ranking = masks.ranking;
    steps = [stepOf(0, null, ev.clean)];
    await ctx.checkpoint({ ranking: ranking.map((c) => c.name), phase }, steps);
  }
  const names = ranking.map((c) => c.name);
  if (phase === 'verify') {
    const removed = steps.slice(1).map((s) => byName.get(s.component!)!);
    while (removed.length < n) {
      const gone = new Set(removed.map((c) => c.name));
      const window = ranking.filter((c) => !gone.has(c.name)).slice(0, W);
      const base = maskUnits + passUnits(removed.length);
      await ev.setBase(removed);
      const metrics = await ev.evaluate(
        window.map((c) => [...removed, c]),
        (done, all) => ctx.progress(base + (done / all) * window.length, total),
      );
      // Ties: the earlier in the ranking.
      const best = argmax(metrics.map((m) => mean(m)));
      removed.push(window[best]);
      steps.push(stepOf(removed.length, window[best], metrics[best]));
      if (removed.length === n) phase = 'refine';
      await ctx.checkpoint({ ranking: names, phase, ...(phase === 'refine' ? { refined: 0 } : {}) }, steps);
    }
    phase = 'refine';
  }
  await ev.setBase([]);
  for (; refined < opts.refine!; refined++) {
    const order = steps.slice(1).map((s) => byName.get(s.component!)!);
    const base = maskUnits + passUnits(n) + refined * (n - 1);
    // Swap i (1 ≤ i < n): the i-th removed and the (i+1)-th change places; only prefix i changes.
    const configs = Array.from({ length: n - 1 }, (_, j) => [...order.slice(0, j), order[j + 1]]);
    const metrics = await ev.evaluate(configs, (done, all) => ctx.progress(base + (done / all) * (n - 1), total));
    const gains = metrics.map((m, j) => ({ i: j + 1, gain: ctx.sign * (mean(m) - steps[j + 1].metric), m }));
    const accepted = new Set<number>();
    for (const g of gains.filter((x) => x.gain > 0).sort((a, b) => b.gain - a.gain || a.i - b.i)) {
      // Swaps i and i+1 share a component: never both in one pass.
      if (!accepted.has(g.i - 1) && !accepted.has(g.i + 1)) accepted.add(g.i);
    }
    if (accepted.size === 0) {
      refined = opts.refine!;
      await ctx.checkpoint({ ranking: names, phase, refined }, steps);
      break;
    }
    for (const i of [...accepted].sort((a, b) => a - b)) {
      const [a, b] = [order[i - 1], order[i]];
      order[i - 1] = b;
      order[i] = a;
      steps[i] = stepOf(i, b, gains[i - 1].m);
      steps[i + 1] = { ...steps[i + 1], component: a.name };
    }
    await ctx.checkpoint({ ranking: names, phase, refined: refined + 1 }, steps);
  }
  ctx.progress(total, total);
  return { steps, ranking: names };
}

async function acdcOrder(ctx: Ctx): Promise<{ steps: PruneStep[]; kept: string[] }> {
  const { comps, ev, opts, sign } = ctx;
  const n = comps.length;
  const T = opts.threshold!;
  // Last layer first; within a layer the MLP before the heads, heads by descending index.
  const visit = [...comps].reverse();
  const cp = ctx.resume;
  const steps: PruneStep[] = cp ? cp.steps : [stepOf(0, null, ev.clean)];
  const removed: Component[] = cp ? [...cp.removed] : [];
  let visited = cp ? cp.visited! : 0;
  let current = cp ? cp.current! : mean(ev.clean);
  ctx.progress(visited, n);
  for (; visited < n; ) {
    const c = visit[visited];
    const config = [...removed, c];
    const [m] = await ev.evaluate([config]);
    const value = mean(m);
    // How much worse the metric gets: current − new for logit-diff and prob-diff, new − current for kl.
    if (sign * (current - value) < T) {
      removed.push(c);
      current = value;
      steps.push(stepOf(removed.length, c, m));
    }
    visited++;
    ctx.progress(visited, n);
    await ctx.checkpoint({ visited, current }, steps);
  }
  const gone = new Set(removed.map((c) => c.name));
  return { steps, kept: comps.filter((c) => !gone.has(c.name)).map((c) => c.name) };
}
