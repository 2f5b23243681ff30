/**
 * Choosing what to remove for a target (SPEC `carve compress --target F`): the smallest set found
 * whose exact metric stays at least F × the clean metric.
 *
 *  - `orderByScores`, `chooseByTarget`: along a given removal order, the largest K whose first K
 *    removals keep the metric there (every K evaluated exactly).
 *  - `searchSmallest`: the search `carve compress --target F` runs when given no order. It tries
 *    exact greedy when the model is small enough to afford it (an estimate of its cost in FLOPs
 *    against a fixed budget — deterministic, unlike a clock) and always the learned masks
 *    (`--order optimize`), takes the order whose prefix removes the most, and then searches
 *    locally from that set: add any component that keeps the target (the best one), else swap a
 *    removed and a kept component when that raises the metric (then try adding again), until
 *    neither helps. On small models it then evaluates every set of the next size, and the next,
 *    while the count fits the budget (so "none of size k keeps the target" is a checked fact there).
 *    Under optimal ablation it then fits the constants to the set found (never worse than the
 *    constants it starts from, see optimal.ts) and searches again from there. Every set it accepts
 *    is evaluated exactly on every prompt.
 */
import { metricSign, type MetricName } from './metric.ts';
import type { HookedModel } from '../model/hooked.ts';
import type { ModelConfig } from '../model/types.ts';
import type { Task } from '../task/types.ts';
import { mean, std } from '../task/metrics.ts';
import { failOption } from '../util/errors.ts';
import { listComponents, type Component } from './components.ts';
import { evaluateRemovals, ExactEvaluator } from './evaluate.ts';
import type { Ablation, MeanOver, Replacements } from './replacements.ts';
import { computeReplacements } from './replacements.ts';
import { OPTIMAL_DEFAULTS, refineConstants, type ConstantsFile } from './optimal.ts';
import { pruneOrder, type PruneOrder, type PruneStep } from './prune.ts';

export interface TargetStep {
  removed: number;
  component: string | null;
  metric: number;
  std: number;
}

type Progress = (done: number, total: number, label: string) => void;

/** A target must be a fraction of the clean metric in (0, 1]. */
export function checkTarget(target: number): void {
  if (!(Number.isFinite(target) && target > 0 && target <= 1)) failOption(`{target}: expected a fraction of the clean metric greater than 0 and at most 1, got ${target}`);
}

/** Index of the largest K (0 when none) whose step metric is at least the threshold. */
function largestMeeting(steps: { metric: number }[], threshold: number): number {
  let count = 0;
  steps.forEach((s, k) => {
    if (s.metric >= threshold) count = k;
  });
  return count;
}

/**
 * Metrics after removing the first K components of `order`, for every K (exactly, all at once), and
 * the largest K whose metric is at least `target` × the clean metric (0 when none is).
 */
export async function chooseByTarget(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  order: Component[],
  target: number,
  batchSize: number,
  onProgress?: (done: number, total: number) => void,
  metric: MetricName = 'logit-diff',
): Promise<{ steps: TargetStep[]; count: number; clean: Float64Array }> {
  checkTarget(target);
  const configs = order.map((_, k) => order.slice(0, k + 1));
  const { clean, metrics } = await evaluateRemovals(model, task, repl, configs, { batchSize, onProgress, metric });
  const steps: TargetStep[] = [{ removed: 0, component: null, metric: mean(clean), std: std(clean) }];
  metrics.forEach((m, k) => steps.push({ removed: k + 1, component: order[k].name, metric: mean(m), std: std(m) }));
  return { steps, count: largestMeeting(steps, target * mean(clean)), clean };
}

/** Components by single-component exact score, least needed first (highest score; kl: lowest); ties in layer order. */
export async function orderByScores(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  batchSize: number,
  onProgress?: (done: number, total: number) => void,
  metric: MetricName = 'logit-diff',
): Promise<{ order: Component[]; scores: Map<string, number> }> {
  const comps = listComponents(model.config);
  const { clean, metrics } = await evaluateRemovals(model, task, repl, comps.map((c) => [c]), { batchSize, onProgress, metric });
  const base = mean(clean);
  const scores = new Map(comps.map((c, i) => [c.name, mean(metrics[i]) - base]));
  const sign = metricSign(metric);
  const order = comps.map((c, i) => ({ c, i })).sort((a, b) => sign * (scores.get(b.c.name)! - scores.get(a.c.name)!) || a.i - b.i).map((x) => x.c);
  return { order, scores };
}

/** Above this estimated cost (FLOPs) the search does not run exact greedy: ~2–4 minutes at 100–150 GFLOP/s. */
export const EXACT_GREEDY_BUDGET = 2e13;

/**
 * FLOPs of exact greedy over every component: n(n+1)/2 candidate sets, each run over every prompt
 * from its own layer (half the layers on average), at 2 FLOPs per weight per token plus attention,
 * and the unembedding rows the metric reads at the metric position.
 */
export function exactGreedyCost(cfg: ModelConfig, task: Task, fullVocab = false): { configs: number; flops: number } {
  const n = listComponents(cfg).length;
  const configs = (n * (n + 1)) / 2;
  const d = cfg.dModel;
  const tokens = task.pairs.reduce((s, p) => s + p.clean.length, 0);
  const T = Math.max(...task.pairs.map((p) => p.clean.length));
  let perToken = 0;
  for (const l of cfg.layers) {
    const k = l.heads.length;
    const kv = Math.min(k, cfg.nKvHead);
    const attn = k > 0 ? d * (2 * k + 2 * kv) * cfg.dHead + 2 * T * k * cfg.dHead : 0;
    const mlp = l.mlp ? d * cfg.dMlp * (cfg.mlp.gated ? 3 : 2) : 0;
    perToken += 2 * (attn + mlp);
  }
  const unembed = task.pairs.length * 2 * d * (fullVocab ? cfg.vocabSize : 2);
  return { configs, flops: configs * (tokens * perToken * 0.5 + unembed) };
}

export interface SearchOptions {
  target: number;
  ablation: Ablation;
  meanOver?: MeanOver;
  batchSize?: number;
  seed?: number;
  /** The replacements in use (for optimal: the learned or given constants, `constants` their file). */
  repl: Replacements;
  constants?: ConstantsFile;
  /** Optimal ablation: fit the constants to the set found (default true; false keeps given constants as they are). */
  fit?: boolean;
  /** Exact greedy runs when its estimated cost is at most this many FLOPs (default EXACT_GREEDY_BUDGET). */
  budget?: number;
  /** The metric kept above the target (higher is better: logit-diff or prob-diff; default logit-diff). */
  metric?: MetricName;
  onProgress?: Progress;
}

/** One candidate the search measured: an order's prefix, or the set after local moves. */
export interface SearchTrial {
  search: string;
  removed: number;
  metric: number;
}

export interface SearchResult {
  /** The removed set, in the order it was built. */
  removed: Component[];
  metric: Float64Array;
  clean: Float64Array;
  threshold: number;
  /** The replacements the set was verified with (under optimal: the constants fitted to it). */
  repl: Replacements;
  constants?: ConstantsFile;
  /** Which search found the starting set, every candidate measured, the local moves made, and why. */
  chosen: PruneOrder;
  trials: SearchTrial[];
  moves: string[];
  reasons: string[];
  /** The chosen order's curve (steps as `carve prune` reports them). */
  steps: PruneStep[];
}

/** Optimal ablation: kept components tried with constants fitted to each (the cheapest to remove first). */
const FITTED_ADDS = 3;

/** FLOPs of fitting constants to one set: OPTIMAL_DEFAULTS.steps steps of a forward and backward (≈ 3 forwards) over every prompt. */
function fitCost(cfg: ModelConfig, task: Task): number {
  const n = listComponents(cfg).length;
  const perSet = exactGreedyCost(cfg, task).flops / ((n * (n + 1)) / 2);
  // perSet runs half the layers; a fit runs all of them, forward and backward.
  return OPTIMAL_DEFAULTS.steps * 3 * 2 * perSet;
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

/** Every k-subset of comps, in lexicographic order of their indices. */
function* subsets(n: number, k: number): Generator<number[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  for (;;) {
    yield [...idx];
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i]++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1] + 1;
  }
}

/** The removed set of size k with the highest metric (ties: the first in lexicographic order), by evaluating them all. */
async function bestOfSize(ev: ExactEvaluator, comps: Component[], k: number, onProgress?: (done: number, total: number) => void): Promise<{ set: Component[]; metric: Float64Array }> {
  const total = binomial(comps.length, k);
  let best: { set: Component[]; metric: Float64Array; v: number } | undefined;
  let batch: Component[][] = [];
  let done = 0;
  const flush = async () => {
    const metrics = await ev.evaluate(batch);
    metrics.forEach((m, i) => {
      const v = mean(m);
      if (!best || v > best.v) best = { set: batch[i], metric: m, v };
    });
    done += batch.length;
    onProgress?.(done, total);
    batch = [];
  };
  for (const idx of subsets(comps.length, k)) {
    batch.push(idx.map((i) => comps[i]));
    if (batch.length === 2048) await flush();
  }
  if (batch.length > 0) await flush();
  return best!;
}

/** A set's metric per prompt, exactly. */
async function metricOf(ev: ExactEvaluator, set: Component[]): Promise<Float64Array> {
  return (await ev.evaluate([set]))[0];
}

/**
 * Local search from `start`: add the best component that keeps the threshold; else swap a removed
 * and a kept component when that raises the metric. Candidates for swaps: the `width` kept
 * components whose removal costs least and the `width` removed ones whose return helps most.
 */
async function localSearch(
  ev: ExactEvaluator,
  comps: Component[],
  start: Component[],
  threshold: number,
  moves: string[],
  width = 6,
): Promise<{ set: Component[]; metric: Float64Array }> {
  let set = [...start];
  let metric = await metricOf(ev, set);
  const names = (s: Component[]) => new Set(s.map((c) => c.name));
  // Every move strictly raises (size, metric) in lexicographic order, so this ends; the cap is a guard.
  for (let iter = 0; iter < 4 * comps.length + 8; iter++) {
    const gone = names(set);
    const kept = comps.filter((c) => !gone.has(c.name));
    if (kept.length === 0) break;
    await ev.setBase(set);
    const adds = (await ev.evaluate(kept.map((k) => [...set, k]))).map((m) => ({ m, v: mean(m) }));
    let best = 0;
    adds.forEach((a, i) => (a.v > adds[best].v ? (best = i) : 0));
    if (adds[best].v >= threshold) {
      moves.push(`add ${kept[best].name}`);
      set = [...set, kept[best]];
      metric = adds[best].m;
      continue;
    }
    if (set.length === 0) break;
    await ev.setBase([]);
    const restores = (await ev.evaluate(set.map((r) => set.filter((c) => c !== r)))).map((m) => mean(m));
    const outs = set
      .map((r, i) => ({ r, v: restores[i], i }))
      .sort((a, b) => b.v - a.v || a.i - b.i)
      .slice(0, width);
    const ins = kept
      .map((k, i) => ({ k, v: adds[i].v, i }))
      .sort((a, b) => b.v - a.v || a.i - b.i)
      .slice(0, width);
    const pairs = outs.flatMap((o) => ins.map((x) => ({ out: o.r, in: x.k })));
    const swapped = await ev.evaluate(pairs.map((p) => [...set.filter((c) => c !== p.out), p.in]));
    let bestSwap = -1;
    let bestV = mean(metric);
    swapped.forEach((m, i) => {
      const v = mean(m);
      if (v > bestV) {
        bestV = v;
        bestSwap = i;
      }
    });
    if (bestSwap < 0) break;
    const p = pairs[bestSwap];
    moves.push(`swap ${p.out.name} -> ${p.in.name}`);
    set = [...set.filter((c) => c !== p.out), p.in];
    metric = swapped[bestSwap];
  }
  await ev.setBase([]);
  return { set, metric };
}

/** The search of `carve compress --target F` without an order (see the file comment). */
export async function searchSmallest(model: HookedModel, task: Task, opts: SearchOptions): Promise<SearchResult> {
  const metric = opts.metric ?? 'logit-diff';
  // "At least F × clean" needs a metric where higher is better; kl (a divergence, 0 when clean) has no such target.
  if (metricSign(metric) < 0) failOption(`{target} with {metric} ${metric}: a fraction of the clean metric needs logit-diff or prob-diff`);
  checkTarget(opts.target);
  const batchSize = opts.batchSize ?? 64;
  const comps = listComponents(model.config);
  const reasons: string[] = [];
  const trials: SearchTrial[] = [];
  const budget = opts.budget ?? EXACT_GREEDY_BUDGET;
  const cost = exactGreedyCost(model.config, task);
  const affordable = cost.flops <= budget;
  const fmt = (x: number) => x.toExponential(1);
  reasons.push(
    affordable
      ? `exact greedy costs about ${fmt(cost.flops)} FLOP (${cost.configs} candidate sets × ${task.pairs.length} prompts), within the budget of ${fmt(budget)}: trying it and the learned masks`
      : `exact greedy would cost about ${fmt(cost.flops)} FLOP (${cost.configs} candidate sets × ${task.pairs.length} prompts), over the budget of ${fmt(budget)}: learned masks with an exact pass instead`,
  );
  const orders: PruneOrder[] = affordable ? ['greedy', 'optimize'] : ['optimize'];
  const constants = opts.constants ? { file: opts.constants, where: 'the search constants' } : undefined;
  let best: { order: PruneOrder; count: number; steps: PruneStep[] } | undefined;
  let threshold = NaN;
  for (const order of orders) {
    const r = await pruneOrder(
      model,
      task,
      { order, ablation: opts.ablation, meanOver: opts.meanOver, batchSize, seed: opts.seed, constants, metric },
      { onProgress: (d, t, label) => opts.onProgress?.(d, t, `search: ${label}`) },
    );
    threshold = opts.target * r.clean_metric;
    const count = largestMeeting(r.steps, threshold);
    trials.push({ search: order, removed: count, metric: r.steps[count].metric });
    reasons.push(`${order}: removes ${count} of ${comps.length} (metric ${r.steps[count].metric.toFixed(4)}, threshold ${threshold.toFixed(4)})`);
    if (!best || count > best.count) best = { order, count, steps: r.steps };
  }
  const byName = new Map(comps.map((c) => [c.name, c]));
  let set = best!.steps.slice(1, best!.count + 1).map((s) => byName.get(s.component!)!);
  let repl = opts.repl;
  let file = opts.constants;
  const moves: string[] = [];
  let ev = await ExactEvaluator.create(model, task, repl, { batchSize, metric });
  const clean: Float64Array = ev.clean;
  let found = await localSearch(ev, comps, set, threshold, moves);
  set = found.set;
  trials.push({ search: 'local', removed: set.length, metric: mean(found.metric) });
  // Small models: every set of the next size, while that fits the budget.
  const perSet = (2 * cost.flops) / cost.configs;
  let spent = 0;
  for (let k = set.length + 1; k <= comps.length; k++) {
    const count = binomial(comps.length, k);
    if (spent + count * perSet > budget) {
      reasons.push(`checking every set of ${k} removals (${count}) would exceed the budget: not tried`);
      break;
    }
    spent += count * perSet;
    const best = await bestOfSize(ev, comps, k, (d, t) => opts.onProgress?.(d, t, `search: every set of ${k}`));
    trials.push({ search: `every set of ${k}`, removed: k, metric: mean(best.metric) });
    if (mean(best.metric) < threshold) {
      reasons.push(`every set of ${k} removals (${count}) was evaluated: none keeps the target (best ${mean(best.metric).toFixed(4)})`);
      break;
    }
    reasons.push(`every set of ${k} removals (${count}) was evaluated: the best keeps the target (${mean(best.metric).toFixed(4)})`);
    moves.push(`best set of ${k}`);
    set = best.set;
    found = best;
  }
  if (opts.ablation === 'optimal' && opts.fit !== false) {
    // Constants fitted to the set found, a local search with them, then adds whose own fitted
    // constants keep the target; stop when a round removes nothing more.
    const meanRepl = await computeReplacements(model, task, 'mean', opts.meanOver ?? 'clean', batchSize);
    const fit = async (removed: Component[], starts: Replacements[]) => {
      const f = await refineConstants(model, task, removed, starts, {
        seed: opts.seed,
        meanOver: opts.meanOver,
        batchSize,
        metric,
        onProgress: (d, t) => opts.onProgress?.(d, t, 'search: fitting constants'),
      });
      const e = await ExactEvaluator.create(model, task, f.repl, { batchSize, metric });
      return { ...f, ev: e, metric: await metricOf(e, removed) };
    };
    // A fit costs about 3 × (forward of every prompt) per step; try fitted adds only when cheap.
    const fitAdds = fitCost(model.config, task) * FITTED_ADDS <= budget;
    for (let round = 0; round < 2 * comps.length; round++) {
      const fitted = await fit(set, [repl, opts.repl, meanRepl]);
      // Fitting never lowers the set's own metric (refineConstants keeps the best start); should
      // rounding say otherwise at the threshold, the constants it started from stay.
      if (mean(fitted.metric) < Math.min(threshold, mean(found.metric))) break;
      const before = set.length;
      if (round === 0 || moves.at(-1)?.startsWith('add') !== true) moves.push(`fit constants to the ${before} removed`);
      const again = await localSearch(fitted.ev, comps, set, threshold, moves);
      ({ repl, file, ev } = { repl: fitted.repl, file: fitted.file, ev: fitted.ev });
      set = again.set;
      found = again;
      trials.push({ search: 'fit+local', removed: set.length, metric: mean(found.metric) });
      if (set.length > before) continue;
      if (!fitAdds) break;
      // The kept components whose removal costs least with these constants, each with constants of its own.
      const gone = new Set(set.map((c) => c.name));
      const kept = comps.filter((c) => !gone.has(c.name));
      await ev.setBase(set);
      const adds = (await ev.evaluate(kept.map((k) => [...set, k]))).map((m, i) => ({ k: kept[i], v: mean(m), i }));
      await ev.setBase([]);
      let accepted: (Awaited<ReturnType<typeof fit>> & { k: Component }) | undefined;
      for (const a of adds.sort((x, y) => y.v - x.v || x.i - y.i).slice(0, FITTED_ADDS)) {
        const f = await fit([...set, a.k], [repl, opts.repl, meanRepl]);
        if (mean(f.metric) >= threshold && (!accepted || mean(f.metric) > mean(accepted.metric))) accepted = { ...f, k: a.k };
      }
      if (!accepted) break;
      moves.push(`add ${accepted.k.name} with constants fitted to it`);
      set = [...set, accepted.k];
      ({ repl, file, ev } = { repl: accepted.repl, file: accepted.file, ev: accepted.ev });
      found = { set, metric: accepted.metric };
      trials.push({ search: 'fitted add', removed: set.length, metric: mean(found.metric) });
    }
  }
  const gained = set.length - best!.count;
  reasons.push(
    `kept the ${best!.order} set and searched locally from it: ${gained > 0 ? `${gained} more removed` : 'no further removal keeps the target'}${moves.length > 0 ? ` (${moves.join(', ')})` : ''}`,
  );
  return { removed: set, metric: found.metric, clean, threshold, repl, constants: file, chosen: best!.order, trials, moves, reasons, steps: best!.steps };
}
