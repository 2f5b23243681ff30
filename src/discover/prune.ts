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
 * batch size and threads).
 */
import { createHash } from 'node:crypto';
import type { FloatArray, HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { fail } from '../util/errors.ts';
import { mean, std } from '../task/metrics.ts';
import { listComponents, type Component, type ComponentKind } from './components.ts';
import { computeReplacements, componentHooks, removalInterventions, type Ablation, type MeanOver, type Replacements } from './replacements.ts';
import { ExactEvaluator } from './evaluate.ts';
import { corruptMetrics, dotDelta, sliceOf } from './scan.ts';
import { METRIC_NAMES, metricRun, metricSign, range, type MetricName, type TaskMetric } from './metric.ts';

export type PruneOrder = 'scores' | 'greedy' | 'acdc';
export const PRUNE_ORDERS: readonly PruneOrder[] = ['scores', 'greedy', 'acdc'];
export type PruneMethod = 'exact' | 'attribution';
export const PRUNE_METHODS: readonly PruneMethod[] = ['exact', 'attribution'];
/** ACDC's default threshold: metric units (logits, probability, or nats for KL) per removal. */
export const DEFAULT_ACDC_THRESHOLD = 0.05;
/** Attribution-guided greedy: how many of the best-ranked candidates are checked exactly. */
export const DEFAULT_VERIFY = 4;
/** scores order: cumulative sets evaluated (and checkpointed) this many at a time. */
export const SCORES_BLOCK = 8;

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
}

export interface PruneStep {
  removed: number;
  component: string | null;
  /** The metric (mean over prompts) with the first `removed` components replaced. */
  metric: number;
  std: number;
}

export interface PruneCheckpoint {
  format: 'carve-prune-partial';
  version: 1;
  fingerprint: string;
  model: string;
  task: string;
  options: ResolvedPruneOptions;
  steps: PruneStep[];
  /** scores: the order, once computed. */
  ranking?: string[];
  /** acdc: components visited so far (in visiting order), and the decision metric's current value. */
  visited?: number;
  current?: number;
}

export interface PruneHooks {
  onProgress?: (done: number, total: number, label: string) => void;
  /** Called after every step (scores: after the ranking and after every block of steps). */
  onCheckpoint?: (cp: PruneCheckpoint) => void | Promise<void>;
  /** Continue from this checkpoint (its fingerprint must match). */
  resume?: PruneCheckpoint;
  /** Where the checkpoint came from, for error messages. */
  resumeSource?: string;
  /** Called once the checkpoint to resume from has been checked and accepted. */
  onResumed?: (cp: PruneCheckpoint) => void;
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
  steps: PruneStep[];
}

export function resolvePruneOptions(opts: PruneOptions): ResolvedPruneOptions {
  const { order } = opts;
  if (!PRUNE_ORDERS.includes(order)) fail(`--order: expected one of ${PRUNE_ORDERS.join(', ')}, got ${JSON.stringify(order)}`);
  const method = opts.method ?? 'exact';
  if (!PRUNE_METHODS.includes(method)) fail(`--method: expected one of ${PRUNE_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
  if (order === 'acdc' && method !== 'exact') fail('--method attribution: the acdc order is exact only');
  const metric = opts.metric ?? 'logit-diff';
  if (!METRIC_NAMES.includes(metric)) fail(`--metric: expected one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(metric)}`);
  const r: ResolvedPruneOptions = { order, ablation: opts.ablation, method, components: opts.components ?? 'all', metric };
  if (opts.ablation === 'mean') r.mean_over = opts.meanOver ?? 'clean';
  if (opts.verify !== undefined) {
    if (order !== 'greedy' || method !== 'attribution') fail('--verify applies only to --order greedy --method attribution');
    if (!Number.isSafeInteger(opts.verify) || opts.verify < 1) fail(`--verify: expected a positive integer, got ${opts.verify}`);
  }
  if (order === 'greedy' && method === 'attribution') r.verify = opts.verify ?? DEFAULT_VERIFY;
  if (opts.threshold !== undefined) {
    if (order !== 'acdc') fail('--threshold applies only to --order acdc');
    if (!Number.isFinite(opts.threshold)) fail(`--threshold: expected a finite number, got ${opts.threshold}`);
  }
  if (order === 'acdc') r.threshold = opts.threshold ?? DEFAULT_ACDC_THRESHOLD;
  return r;
}

/** sha256 over the model's layout and weights (as run: in its dtype). */
export function modelFingerprint(model: HookedModel): string {
  const h = createHash('sha256');
  const c = model.config;
  h.update(JSON.stringify({ dtype: model.dtype, config: { ...c, raw: undefined } }));
  const feeds = model.weightFeeds;
  for (const name of Object.keys(feeds).sort()) {
    const t = feeds[name];
    const data = t.data as FloatArray;
    h.update(`${name}:${t.dims.join('x')}:`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

/** sha256 over the prompt pairs (tokens and answer sets). */
export function taskFingerprint(task: Task): string {
  const h = createHash('sha256');
  for (const p of task.pairs) h.update(JSON.stringify([p.clean, p.corrupt, p.correct, p.incorrect]));
  return h.digest('hex');
}

export function pruneFingerprint(model: HookedModel, task: Task, opts: ResolvedPruneOptions): string {
  return createHash('sha256')
    .update(JSON.stringify({ v: 1, model: modelFingerprint(model), task: taskFingerprint(task), options: opts }))
    .digest('hex');
}

/** Check a checkpoint read from a file: shape, and that it belongs to this run. */
function checkResume(cp: PruneCheckpoint, fingerprint: string, opts: ResolvedPruneOptions, byName: Map<string, Component>, where: string): void {
  if (cp.format !== 'carve-prune-partial' || cp.version !== 1) fail(`${where}: not a carve prune checkpoint (format ${JSON.stringify(cp.format)}, version ${JSON.stringify(cp.version)})`);
  const differs = (Object.keys({ ...opts, ...cp.options }) as (keyof ResolvedPruneOptions)[]).filter((k) => cp.options?.[k] !== opts[k]);
  if (differs.length > 0) {
    const show = (o: ResolvedPruneOptions | undefined, k: keyof ResolvedPruneOptions) => (o?.[k] === undefined ? 'unset' : JSON.stringify(o[k]));
    fail(`${where}: made with other options (${differs.map((k) => `${k}: ${show(cp.options, k)} there, ${show(opts, k)} now`).join('; ')}); run without --resume to start over`);
  }
  if (cp.fingerprint !== fingerprint) fail(`${where}: made for a different model or task (fingerprint mismatch); run without --resume to start over`);
  if (!Array.isArray(cp.steps) || cp.steps.length === 0) fail(`${where}: "steps" must be a non-empty array`);
  const seen = new Set<string>();
  cp.steps.forEach((s, i) => {
    if (i > 0 && seen.has(s.component as string)) fail(`${where}: steps[${i}].component ${JSON.stringify(s.component)} is removed twice`);
    seen.add(s.component as string);
    if (s.removed !== i) fail(`${where}: steps[${i}].removed must be ${i}`);
    if (i > 0 && !byName.has(s.component as string)) fail(`${where}: steps[${i}].component ${JSON.stringify(s.component)} is not a component being pruned`);
  });
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
  if (comps.length === 0) fail(`--components ${opts.components}: the model has no such components`);
  const byName = new Map(comps.map((c) => [c.name, c]));
  const fingerprint = pruneFingerprint(model, task, opts);
  if (hooks.resume) {
    checkResume(hooks.resume, fingerprint, opts, byName, hooks.resumeSource ?? 'resume checkpoint');
    hooks.onResumed?.(hooks.resume);
  }

  const repl = await computeReplacements(model, task, opts.ablation, opts.mean_over ?? 'clean', batchSize);
  const ev = await ExactEvaluator.create(model, task, repl, { batchSize, metric: opts.metric });
  const metric = ev.taskMetric;
  const label = `${opts.order}${opts.order === 'greedy' ? '/' + opts.method : ''}`;
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
      });
    },
    progress: (done, total) => hooks.onProgress?.(done, total, label),
  };

  let steps: PruneStep[];
  let kept: string[] | undefined;
  if (opts.order === 'scores') steps = await scoresOrder(ctx);
  else if (opts.order === 'greedy') steps = await greedyOrder(ctx);
  else ({ steps, kept } = await acdcOrder(ctx));

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
  return { ...result, steps };
}

async function scoresOrder(ctx: Ctx): Promise<PruneStep[]> {
  const { comps, ev, byName, opts, hooks } = ctx;
  const n = comps.length;
  const total = 2 * n;
  let ranking: Component[];
  let steps: PruneStep[];
  if (hooks.resume?.ranking) {
    ranking = hooks.resume.ranking.map((name) => {
      const c = byName.get(name);
      if (!c) fail(`${hooks.resumeSource ?? 'resume checkpoint'}: ranking names ${JSON.stringify(name)}, not a component being pruned`);
      return c;
    });
    if (ranking.length !== n || new Set(ranking).size !== n) fail(`${hooks.resumeSource ?? 'resume checkpoint'}: the ranking must list every component once`);
    steps = hooks.resume.steps.map((s) => ({ ...s }));
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

async function greedyOrder(ctx: Ctx): Promise<PruneStep[]> {
  const { comps, ev, byName, opts, hooks } = ctx;
  const n = comps.length;
  const steps: PruneStep[] = hooks.resume ? hooks.resume.steps.map((s) => ({ ...s })) : [stepOf(0, null, ev.clean)];
  const removed: Component[] = steps.slice(1).map((s) => byName.get(s.component!)!);
  // Progress units: exact — candidate configurations (n + (n−1) + ... + 1); attribution — steps.
  const exact = opts.method === 'exact';
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
    const metrics = await ev.evaluate(
      candidates.map((c) => [...removed, c]),
      (done, all) => ctx.progress(base + (done / all) * stepUnits, total),
    );
    const best = argmax(metrics.map((m) => ctx.sign * mean(m)));
    removed.push(candidates[best]);
    steps.push(stepOf(removed.length, candidates[best], metrics[best]));
    ctx.progress(units(removed.length), total);
    await ctx.checkpoint({}, steps);
  }
  return steps;
}

async function acdcOrder(ctx: Ctx): Promise<{ steps: PruneStep[]; kept: string[] }> {
  const { comps, ev, byName, opts, hooks, sign } = ctx;
  const n = comps.length;
  const T = opts.threshold!;
  // Last layer first; within a layer the MLP before the heads, heads by descending index.
  const visit = [...comps].reverse();
  const cp = hooks.resume;
  const steps: PruneStep[] = cp ? cp.steps.map((s) => ({ ...s })) : [stepOf(0, null, ev.clean)];
  const removed: Component[] = steps.slice(1).map((s) => byName.get(s.component!)!);
  let visited = 0;
  let current = mean(ev.clean);
  if (cp) {
    const where = hooks.resumeSource ?? 'resume checkpoint';
    if (!Number.isSafeInteger(cp.visited) || cp.visited! < removed.length || cp.visited! > n) fail(`${where}: "visited" must be an integer from ${removed.length} to ${n}`);
    if (typeof cp.current !== 'number' || !Number.isFinite(cp.current)) fail(`${where}: "current" must be a finite number`);
    visited = cp.visited!;
    current = cp.current;
  }
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
