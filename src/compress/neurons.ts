/**
 * Neuron-level pruning inside the MLPs a compressed model keeps (`carve compress --neurons`).
 *
 * A neuron is one hidden unit of an MLP: one entry of `mlp.hook_post` (the activation the output
 * projection reads; for a gated MLP, act(gate)·up), one row of the input projection(s) and one
 * column of the output projection. Removing it replaces its activation by a constant r — its mean
 * over the task's tokens on the unablated model (mean ablation), or 0 (zero ablation) — so its
 * contribution to the MLP output becomes r·W_out[n], a constant that folds into the MLP's output
 * bias exactly (`pruneNeurons`), and its weights leave the file.
 *
 * Which neurons go (`searchNeurons`), with the components chosen before already removed:
 *  1. attribution: every remaining neuron's estimated effect on the metric, mean over prompts of
 *     Σ_t (r − post_t)·∂metric/∂post_t, from one forward and one backward pass at the current state;
 *  2. exact verification: neurons sorted by that score (least needed first), the largest K whose
 *     removal together with everything removed so far keeps the exact metric ≥ the threshold is
 *     found on a grid of K (several configurations per onnxruntime run), refined twice;
 *  3. the K neurons are removed for good and the scores are recomputed at the new state, until a
 *     round removes nothing.
 * Every accepted state was evaluated exactly, so the final metric is ≥ the threshold.
 */
import { fail } from '../util/errors.ts';
import type { FloatArray, HookedModel, NeuronIntervention, RunResult } from '../model/hooked.ts';
import { tensorTable } from '../model/arch/index.ts';
import { sliceTensor } from '../model/slice.ts';
import type { TensorSlot } from '../model/tensors.ts';
import { mlpWidth, neuronsOf, type LayerLayout, type ModelConfig, type ModelData, type Weights } from '../model/types.ts';
import type { Task } from '../task/types.ts';
import type { Component } from '../discover/components.ts';
import { removalInterventions, type MeanOver, type Replacements } from '../discover/replacements.ts';
import { allocLike } from '../discover/activations.ts';
import { mean } from '../task/metrics.ts';
import { metricRun, type TaskMetric } from '../discover/metric.ts';

const LOGIT_DIFF: TaskMetric = { name: 'logit-diff' };
import type { FoldableAblation } from './prune-model.ts';

/** Removed neurons: by layer position, their slots (indices among the layer's kept neurons). */
export type NeuronSet = Map<number, number[]>;

/** What a removed neuron's activation becomes: by layer position, one value per neuron slot. */
export interface NeuronValues {
  ablation: FoldableAblation;
  values: Map<number, FloatArray>;
}

/** A pruning state: the components removed and the neurons removed inside the MLPs that stay. */
export interface PruneState {
  components: Component[];
  neurons: NeuronSet;
}

export const postHook = (model: HookedModel, pos: number) => model.hookName(pos, 'mlp.hook_post');

/** Layer positions whose MLP is present. */
function mlpLayers(cfg: ModelConfig): number[] {
  return cfg.layers.flatMap((l, pos) => (l.mlp ? [pos] : []));
}

/** Replacement values of every neuron: 0, or its mean activation over every real token of the clean (or corrupt) prompts. */
export async function neuronValues(model: HookedModel, task: Task, ablation: FoldableAblation, meanOver: MeanOver, batchSize: number): Promise<NeuronValues> {
  const layers = mlpLayers(model.config);
  const values = new Map<number, FloatArray>();
  for (const pos of layers) values.set(pos, allocLike(model, mlpWidth(model.config, model.config.layers[pos])));
  if (ablation === 'zero') return { ablation, values };
  const prompts = task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt));
  const sums = new Map(layers.map((pos) => [pos, new Float64Array(values.get(pos)!.length)]));
  let count = 0;
  const hooks = layers.map((pos) => postHook(model, pos));
  for (let s = 0; s < prompts.length; s += batchSize) {
    const chunk = prompts.slice(s, s + batchSize);
    const out = await model.run({ tokens: chunk, hooks });
    const T = out.seqLen;
    layers.forEach((pos, k) => {
      const v = out.hooks.get(hooks[k])!.data;
      const acc = sums.get(pos)!;
      const m = acc.length;
      chunk.forEach((p, b) => {
        for (let t = 0; t < p.length; t++) for (let j = 0; j < m; j++) acc[j] += v[(b * T + t) * m + j];
      });
    });
    for (const p of chunk) count += p.length;
  }
  for (const pos of layers) sums.get(pos)!.forEach((x, j) => (values.get(pos)![j] = x / count));
  return { ablation, values };
}

interface Row {
  prompt: number;
  state: PruneState;
}

/** Run rows (prompt × state) with every removal of their state replaced. */
async function runRows(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  nv: NeuronValues,
  rows: Row[],
  tm: TaskMetric,
  extra: { hooks?: string[]; gradients?: string[] } = {},
): Promise<RunResult> {
  const cfg = model.config;
  const lengths = task.pairs.map((p) => p.clean.length);
  const T = Math.max(...rows.map((r) => lengths[r.prompt]));
  const zLayers = cfg.layers.flatMap((l, pos) => (l.heads.length > 0 ? [pos] : []));
  const layers = mlpLayers(cfg);
  const { z, mlp } = removalInterventions(
    model,
    repl,
    rows.map((r) => ({ prompt: r.prompt, removed: r.state.components })),
    T,
    lengths,
    zLayers,
    layers,
  );
  const neurons = new Map<number, NeuronIntervention>();
  for (const pos of layers) {
    const m = mlpWidth(cfg, cfg.layers[pos]);
    const keep = new Float32Array(rows.length * m).fill(1);
    rows.forEach((r, b) => {
      for (const slot of r.state.neurons.get(pos) ?? []) keep[b * m + slot] = 0;
    });
    neurons.set(pos, { keep, value: nv.values.get(pos)! });
  }
  return model.run({ tokens: rows.map((r) => task.pairs[r.prompt].clean), ...metricRun(tm, task, rows.map((r) => r.prompt)), z, mlp, neurons, ...extra });
}

/** The exact metric of each state, per prompt: many states per run, rows ordered by prompt length. */
export async function stateMetrics(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  nv: NeuronValues,
  states: PruneState[],
  batchSize: number,
  tm: TaskMetric = LOGIT_DIFF,
): Promise<Float64Array[]> {
  const N = task.pairs.length;
  const out = states.map(() => new Float64Array(N));
  const order = task.pairs.map((_, i) => i).sort((a, b) => task.pairs[a].clean.length - task.pairs[b].clean.length || a - b);
  const rows: (Row & { s: number })[] = [];
  for (const p of order) states.forEach((state, s) => rows.push({ prompt: p, state, s }));
  for (let i = 0; i < rows.length; i += batchSize) {
    const chunk = rows.slice(i, i + batchSize);
    const r = await runRows(model, task, repl, nv, chunk, tm);
    chunk.forEach((row, b) => (out[row.s][row.prompt] = r.metric![b]));
  }
  return out;
}

export interface NeuronScore {
  pos: number;
  slot: number;
  /** Estimated change of the metric when the neuron is removed (attribution): negative means needed. */
  score: number;
}

/** Attribution scores of every neuron of every kept MLP not yet removed, at a state. */
export async function neuronAttribution(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  nv: NeuronValues,
  state: PruneState,
  batchSize: number,
  tm: TaskMetric = LOGIT_DIFF,
): Promise<NeuronScore[]> {
  const cfg = model.config;
  const removedMlps = new Set(state.components.filter((c) => c.head === null).map((c) => c.pos));
  const layers = mlpLayers(cfg).filter((pos) => !removedMlps.has(pos));
  if (layers.length === 0) return [];
  const hooks = layers.map((pos) => postHook(model, pos));
  const sums = layers.map((pos) => new Float64Array(mlpWidth(cfg, cfg.layers[pos])));
  const N = task.pairs.length;
  for (let s = 0; s < N; s += batchSize) {
    const rows = Array.from({ length: Math.min(batchSize, N - s) }, (_, b) => ({ prompt: s + b, state }));
    const out = await runRows(model, task, repl, nv, rows, tm, { hooks, gradients: hooks });
    const T = out.seqLen;
    layers.forEach((pos, k) => {
      const post = out.hooks.get(hooks[k])!.data;
      const grad = out.grads.get(hooks[k])!.data;
      const r = nv.values.get(pos)!;
      const acc = sums[k];
      const m = acc.length;
      rows.forEach((row, b) => {
        const len = task.pairs[row.prompt].clean.length;
        for (let t = 0; t < len; t++) {
          const o = (b * T + t) * m;
          for (let j = 0; j < m; j++) acc[j] += (r[j] - post[o + j]) * grad[o + j];
        }
      });
    });
  }
  const out: NeuronScore[] = [];
  layers.forEach((pos, k) => {
    const gone = new Set(state.neurons.get(pos) ?? []);
    sums[k].forEach((x, slot) => {
      if (!gone.has(slot)) out.push({ pos, slot, score: x / N });
    });
  });
  return out;
}

export interface NeuronSearchOptions {
  batchSize: number;
  /** Configurations tried per refinement level (default 8). */
  grid?: number;
  /** Refinement levels per round (default 3: resolution of 1/grid³ of the candidates). */
  levels?: number;
  /** Rounds of re-scoring (default 8). */
  maxRounds?: number;
  onProgress?: (round: number, removed: number, metric: number) => void;
  /** The metric kept above the threshold (higher is better: logit-diff or prob-diff; default logit-diff). */
  metric?: TaskMetric;
}

export interface NeuronRound {
  round: number;
  candidates: number;
  removed: number;
  metric: number;
}

export interface NeuronSearchResult {
  neurons: NeuronSet;
  /** Per prompt, the exact metric with the components and these neurons removed. */
  metrics: Float64Array;
  rounds: NeuronRound[];
}

function withNeurons(state: PruneState, extra: NeuronScore[]): PruneState {
  const neurons: NeuronSet = new Map([...state.neurons].map(([p, s]) => [p, [...s]]));
  for (const n of extra) {
    if (!neurons.has(n.pos)) neurons.set(n.pos, []);
    neurons.get(n.pos)!.push(n.slot);
  }
  return { components: state.components, neurons };
}

/** Remove neurons while the exact metric (mean over prompts) stays ≥ threshold; see the file comment. */
export async function searchNeurons(
  model: HookedModel,
  task: Task,
  repl: Replacements,
  nv: NeuronValues,
  components: Component[],
  threshold: number,
  opts: NeuronSearchOptions,
): Promise<NeuronSearchResult> {
  const grid = opts.grid ?? 8;
  const levels = opts.levels ?? 3;
  let state: PruneState = { components, neurons: new Map() };
  const tm = opts.metric ?? LOGIT_DIFF;
  if (tm.name === 'kl') throw new Error('searchNeurons keeps a metric above a threshold; kl is lower-is-better');
  let [metrics] = await stateMetrics(model, task, repl, nv, [state], opts.batchSize, tm);
  const rounds: NeuronRound[] = [];
  if (mean(metrics) < threshold) return { neurons: state.neurons, metrics, rounds };
  for (let round = 1; round <= (opts.maxRounds ?? 8); round++) {
    const scores = await neuronAttribution(model, task, repl, nv, state, opts.batchSize, tm);
    // Least needed first; ties in layer and slot order.
    scores.sort((a, b) => b.score - a.score || a.pos - b.pos || a.slot - b.slot);
    let lo = 0;
    let hi = scores.length;
    let best: Float64Array | undefined;
    // Invariant: removing the first `lo` candidates is verified to pass; more than `hi` is not tried.
    for (let level = 0; level < levels && hi > lo; level++) {
      const ks = [...new Set(Array.from({ length: grid }, (_, j) => lo + Math.max(1, Math.round(((hi - lo) * (j + 1)) / grid))))];
      const results = await stateMetrics(model, task, repl, nv, ks.map((k) => withNeurons(state, scores.slice(0, k))), opts.batchSize, tm);
      let passed = -1;
      ks.forEach((_, j) => {
        if (mean(results[j]) >= threshold) passed = j;
      });
      if (passed < 0) {
        hi = ks[0] - 1;
        continue;
      }
      best = results[passed];
      lo = ks[passed];
      hi = passed + 1 < ks.length ? ks[passed + 1] - 1 : hi;
    }
    if (lo === 0 || !best) {
      rounds.push({ round, candidates: scores.length, removed: 0, metric: mean(metrics) });
      break;
    }
    state = withNeurons(state, scores.slice(0, lo));
    metrics = best;
    rounds.push({ round, candidates: scores.length, removed: lo, metric: mean(metrics) });
    opts.onProgress?.(round, lo, mean(metrics));
  }
  for (const slots of state.neurons.values()) slots.sort((a, b) => a - b);
  return { neurons: state.neurons, metrics, rounds };
}

/** A removed neuron named by where it lives in the original model, and what its activation becomes. */
export interface RemovedNeuron {
  /** Original index among the MLP's dMlp neurons. */
  neuron: number;
  value: number;
}

/**
 * A new model without the given neurons (by source layer), each one's constant contribution
 * value·W_out[n] folded into its layer's MLP output bias. A layer left with no neurons keeps only
 * that bias (`mlp: false`). Exact: equals the input model with those neurons' activations replaced.
 */
export function pruneNeurons(model: ModelData, removed: Map<number, RemovedNeuron[]>): ModelData {
  const cfg = model.config;
  const d = cfg.dModel;
  const table = tensorTable(cfg);
  const slotOf = new Map<string, TensorSlot>(table.map((s) => [`${s.role}@${s.layer ?? ''}`, s]));
  const layers: LayerLayout[] = [];
  const downBias = new Map<number, Float32Array>();
  const keepSlots = new Map<number, number[]>();
  for (const sl of removed.keys()) {
    if (!cfg.layers.some((l) => l.sourceLayer === sl && l.mlp)) fail(`the model has no MLP in layer ${sl} to remove neurons from`);
  }
  cfg.layers.forEach((layout, pos) => {
    const gone = removed.get(layout.sourceLayer);
    if (!layout.mlp || !gone || gone.length === 0) {
      layers.push(layout);
      return;
    }
    const original = neuronsOf(cfg, layout);
    const slotByNeuron = new Map(original.map((n, s) => [n, s]));
    const downW = model.weights.get(slotOf.get(`down.w@${pos}`)!.name)!;
    const inOut = slotOf.get(`down.w@${pos}`)!.layout === 'in_out';
    const m = original.length;
    const bias = Float64Array.from(model.weights.get(slotOf.get(`down.b@${pos}`)?.name ?? '')?.data ?? new Float32Array(d));
    const goneSlots = new Set<number>();
    for (const { neuron, value } of gone) {
      const s = slotByNeuron.get(neuron);
      if (s === undefined) fail(`layer ${layout.sourceLayer} has no neuron ${neuron} (it keeps ${m})`);
      if (goneSlots.has(s)) fail(`layer ${layout.sourceLayer}: neuron ${neuron} is removed twice`);
      goneSlots.add(s);
      if (value === 0) continue;
      for (let c = 0; c < d; c++) bias[c] += value * (inOut ? downW.data[s * d + c] : downW.data[c * m + s]);
    }
    const kept = original.map((_, s) => s).filter((s) => !goneSlots.has(s));
    downBias.set(pos, Float32Array.from(bias));
    keepSlots.set(pos, kept);
    layers.push(kept.length === 0 ? { sourceLayer: layout.sourceLayer, heads: layout.heads, mlp: false } : { ...layout, neurons: kept.map((s) => original[s]) });
  });
  const config: ModelConfig = {
    ...cfg,
    layers,
    // The folded constants need an MLP output bias in every layer (zero where the architecture has none).
    bias: { ...cfg.bias, mlpOut: true },
    residualBiases: cfg.residualBiases || !cfg.bias.mlpOut,
    pruned: true,
    raw: { ...cfg.raw },
  };
  if (config.residualBiases) config.bias.o = true;
  const weights: Weights = new Map();
  for (const out of tensorTable(config)) {
    const src = slotOf.get(`${out.role}@${out.layer ?? ''}`);
    if (out.layer !== undefined && out.role === 'down.b' && downBias.has(out.layer)) {
      weights.set(out.name, { data: downBias.get(out.layer)!, shape: [d] });
    } else if (!src) {
      // A bias the architecture lacked: zero (o.b or down.b of a layer without removed neurons).
      weights.set(out.name, { data: new Float32Array(d), shape: [d] });
    } else if (out.layer !== undefined && keepSlots.has(out.layer)) {
      weights.set(out.name, sliceTensor(cfg, src, model.weights.get(src.name)!, { mlp: keepSlots.get(out.layer)! }));
    } else {
      weights.set(out.name, model.weights.get(src.name)!);
    }
  }
  return { config, weights };
}

/** Neurons a model has in its MLPs: kept over the original width of those layers. */
export function countNeurons(cfg: ModelConfig): { kept: number; layers: { source_layer: number; kept: number; of: number }[] } {
  const layers = cfg.layers.filter((l) => l.mlp).map((l) => ({ source_layer: l.sourceLayer, kept: mlpWidth(cfg, l), of: cfg.dMlp }));
  return { kept: layers.reduce((s, l) => s + l.kept, 0), layers };
}
