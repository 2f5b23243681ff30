/**
 * Exact evaluation of many ablation configurations at once: the task metric, per prompt, with a
 * given set of components replaced together. The fast way (DESIGN "Where the time goes"):
 *  - the clean residual stream before every layer is computed once and cached; a configuration
 *    whose first removed component sits in layer l starts from the cached stream at l;
 *  - configurations share runs along the batch axis (rows = prompt × configuration), with per-row
 *    keep masks, so one compiled graph serves every configuration that starts at the same layer;
 *  - rows are ordered by prompt length and each chunk is padded only to its own longest prompt;
 *  - the last layer runs only at the metric position, and for logit-diff only the answers' rows of
 *    the unembedding are computed.
 * The metric is any of SPEC's (discover/metric.ts), computed inside the graph.
 */
import type { FloatArray, HookedModel, RunResult } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import type { Component } from './components.ts';
import { removalInterventions, type Replacements } from './replacements.ts';
import { allocLike, collectActivations } from './activations.ts';
import { metricRun, prepareMetric, range, type MetricName, type TaskMetric } from './metric.ts';

export interface EvaluateOptions {
  batchSize: number;
  /** Default logit-diff. */
  metric?: MetricName;
  onProgress?: (done: number, total: number) => void;
}

export class ExactEvaluator {
  /** Per prompt: the clean metric (0 for kl: the clean run does not diverge from itself). */
  clean!: Float64Array;
  /** The metric and what it compares against (kl: the clean log-probabilities), for callers' own runs. */
  taskMetric!: TaskMetric;
  /** Cached clean hook_resid_pre per layer position: [N, tMax, d]. */
  private resid: FloatArray[] = [];
  /**
   * A base set of removed components (greedy pruning's removals so far) and the residual stream
   * before every layer with that set replaced. A configuration that contains the base starts from
   * this cache at the layer of its first component beyond the base: removing one more component
   * never changes the layers before it.
   */
  private base: Component[] = [];
  private baseResid: FloatArray[] = [];
  private baseMetric?: Float64Array;
  private tMax = 0;
  private lengths: number[] = [];
  private order: number[] = [];

  private constructor(
    readonly model: HookedModel,
    readonly task: Task,
    readonly repl: Replacements,
    readonly metric: MetricName,
    readonly batchSize: number,
  ) {}

  static async create(model: HookedModel, task: Task, repl: Replacements, opts: EvaluateOptions): Promise<ExactEvaluator> {
    const ev = new ExactEvaluator(model, task, repl, opts.metric ?? 'logit-diff', Math.max(1, opts.batchSize));
    await ev.prepare();
    return ev;
  }

  private async prepare(): Promise<void> {
    const { model, task } = this;
    const prompts = task.pairs.map((p) => p.clean);
    const hooks = model.config.layers.map((_, pos) => model.hookName(pos, 'hook_resid_pre'));
    this.clean = new Float64Array(prompts.length);
    this.taskMetric = await prepareMetric(model, task, this.metric, this.batchSize);
    const kl = this.metric === 'kl';
    // One pass gives the residual streams to start from and the clean metric.
    const acts = await collectActivations(model, prompts, hooks, this.batchSize, {
      options: (s, e) => (kl ? {} : metricRun(this.taskMetric, task, range(s, e))),
      result: (s, out) => {
        if (!kl) out.metric!.forEach((m, b) => (this.clean[s + b] = m));
      },
    });
    this.resid = hooks.map((h) => acts.values.get(h)!);
    this.tMax = acts.tMax;
    this.lengths = acts.lengths;
    this.order = prompts.map((_, i) => i).sort((a, b) => this.lengths[a] - this.lengths[b] || a - b);
  }

  /**
   * Make `removed` the base set: one run over the prompts with it replaced, caching the residual
   * stream before every layer. Later configurations containing it start where they first differ.
   */
  async setBase(removed: Component[]): Promise<void> {
    // A base that grows (greedy's next step) only changes the stream from its first new component's
    // layer on: start there from the cached stream, which layers before it share.
    const old = new Set(this.base.map((c) => c.name));
    const now = new Set(removed.map((c) => c.name));
    const grows = this.baseMetric !== undefined && [...old].every((n) => now.has(n));
    const extra = removed.filter((c) => !old.has(c.name));
    this.base = [...removed];
    if (grows && extra.length === 0) return;
    const start = grows ? Math.min(...extra.map((c) => c.pos)) : 0;
    if (!grows) {
      this.baseResid = [];
      this.baseMetric = undefined;
    }
    if (removed.length === 0) return;
    const { model } = this;
    const L = model.config.layers.length;
    const N = this.task.pairs.length;
    const d = model.config.dModel;
    if (!grows) this.baseResid = Array.from({ length: L }, () => allocLike(model, N * this.tMax * d));
    this.baseMetric = new Float64Array(N);
    const hooks = model.config.layers.map((_, pos) => model.hookName(pos, 'hook_resid_pre')).slice(start);
    const from = grows ? this.baseResid : this.resid;
    for (let s = 0; s < this.order.length; s += this.batchSize) {
      const rows = this.order.slice(s, s + this.batchSize).map((p) => ({ prompt: p, removed }));
      const { values, out } = await this.runChunkWith(start, from, rows, hooks);
      rows.forEach((r, b) => {
        this.baseMetric![r.prompt] = values[b];
        hooks.forEach((h, i) => {
          const v = out.hooks.get(h)!.data;
          const T = out.seqLen;
          const len = this.lengths[r.prompt];
          // Layer `start` itself reads this cache: its value is unchanged, so overwriting is safe.
          this.baseResid[start + i].set(v.subarray(b * T * d, (b * T + len) * d), r.prompt * this.tMax * d);
        });
      });
    }
  }

  /**
   * The metric of one configuration per prompt, for each configuration. With `prompts`, only those
   * prompts are run (indices into the task; the other entries are NaN).
   */
  async evaluate(configs: Component[][], onProgress?: (done: number, total: number) => void, prompts?: number[]): Promise<Float64Array[]> {
    const N = this.task.pairs.length;
    const only = prompts ? new Set(prompts) : undefined;
    const order = only ? this.order.filter((p) => only.has(p)) : this.order;
    const subset = (full: Float64Array): Float64Array => (only ? Float64Array.from(full, (v, p) => (only.has(p) ? v : NaN)) : full);
    const results: Float64Array[] = configs.map(() => new Float64Array(N));
    const groups = new Map<string, { start: number; fromBase: boolean; ids: number[] }>();
    const baseNames = new Set(this.base.map((c) => c.name));
    configs.forEach((cfg, i) => {
      if (cfg.length === 0) {
        results[i] = subset(Float64Array.from(this.clean));
        return;
      }
      const names = new Set(cfg.map((c) => c.name));
      const fromBase = this.baseMetric !== undefined && [...baseNames].every((n) => names.has(n));
      const extra = fromBase ? cfg.filter((c) => !baseNames.has(c.name)) : cfg;
      if (extra.length === 0) {
        results[i] = subset(Float64Array.from(this.baseMetric!));
        return;
      }
      const start = Math.min(...extra.map((c) => c.pos));
      const key = `${fromBase}|${start}`;
      if (!groups.has(key)) groups.set(key, { start, fromBase, ids: [] });
      groups.get(key)!.ids.push(i);
    });
    if (only) for (const { ids } of groups.values()) for (const i of ids) results[i].fill(NaN);
    const total = [...groups.values()].reduce((s, g) => s + g.ids.length * order.length, 0);
    let done = 0;
    for (const { start, fromBase, ids } of [...groups.values()].sort((a, b) => a.start - b.start)) {
      // Rows: prompts in length order, each with every configuration of this group.
      const rows: { prompt: number; config: number }[] = [];
      for (const p of order) for (const c of ids) rows.push({ prompt: p, config: c });
      for (let s = 0; s < rows.length; s += this.batchSize) {
        const chunk = rows.slice(s, s + this.batchSize);
        const { values } = await this.runChunkWith(
          start,
          fromBase ? this.baseResid : this.resid,
          chunk.map((r) => ({ prompt: r.prompt, removed: configs[r.config] })),
        );
        chunk.forEach((r, b) => (results[r.config][r.prompt] = values[b]));
        done += chunk.length;
        onProgress?.(done, total);
      }
    }
    return results;
  }

  /**
   * One run of `rows` from the cached residual stream `cache` at layer `start`; every component a
   * row removes at a layer >= start is replaced (those before start are already in the cache).
   */
  private async runChunkWith(
    start: number,
    cache: FloatArray[],
    rows: { prompt: number; removed: Component[] }[],
    hooks: string[] = [],
  ): Promise<{ values: Float64Array; out: RunResult }> {
    const { model, repl } = this;
    const cfg = model.config;
    const d = cfg.dModel;
    const R = rows.length;
    const T = Math.max(...rows.map((r) => this.lengths[r.prompt]));
    const resid = allocLike(model, R * T * d);
    const src = cache[start];
    rows.forEach((r, b) => {
      for (let t = 0; t < T; t++) {
        const from = (r.prompt * this.tMax + t) * d;
        resid.set(src.subarray(from, from + d), (b * T + t) * d);
      }
    });
    // Constant replacements intervene at every later layer (one graph per start layer);
    // per-prompt replacements only where some row removes something (their values are big).
    const touched = new Set<number>();
    for (const r of rows) for (const c of r.removed) touched.add(c.pos);
    const zLayers: number[] = [];
    const mlpLayers: number[] = [];
    for (let pos = start; pos < cfg.layers.length; pos++) {
      const zr = repl.z.get(pos);
      if (cfg.layers[pos].heads.length > 0 && zr && (zr.shape === 'const' || touched.has(pos))) zLayers.push(pos);
      const mr = repl.mlp.get(pos);
      if (cfg.layers[pos].mlp && mr && (mr.shape === 'const' || touched.has(pos))) mlpLayers.push(pos);
    }
    const { z, mlp } = removalInterventions(model, repl, rows, T, this.lengths, zLayers, mlpLayers);
    const out = await model.run({
      resid: { data: resid, dims: [R, T, d] },
      startLayer: start,
      lengths: rows.map((r) => this.lengths[r.prompt]),
      ...metricRun(this.taskMetric, this.task, rows.map((r) => r.prompt)),
      z,
      mlp,
      hooks,
    });
    return { values: Float64Array.from(out.metric!), out };
  }


}

/** Convenience: the per-prompt metric of each configuration, and the clean metric. */
export async function evaluateRemovals(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  configs: Component[][],
  opts: EvaluateOptions,
): Promise<{ clean: Float64Array; metrics: Float64Array[] }> {
  const ev = await ExactEvaluator.create(model, task, repl, opts);
  const metrics = await ev.evaluate(configs, opts.onProgress);
  return { clean: ev.clean, metrics };
}
