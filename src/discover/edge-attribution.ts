/**
 * Attribution scores of every edge (SPEC "Edges"): for edge S->R and a prompt,
 *
 *     Σ_positions (replacement_S − clean_S) · ∂metric/∂x_R
 *
 * with x_R the receiver's own input before its norm (a head's q, k or v input, an MLP's input,
 * the final residual stream for `logits`).
 *
 *  - `attribution` (EAP, Syed et al. 2023): the gradient at the clean run. One forward and one
 *    backward pass over the clean prompts give every receiver's gradient and every sender's clean
 *    output at once; the replacements are constants, per-prompt values, or (resample, with
 *    `resampleInRun`) a side forward pass over the corrupt prompts in the same graph.
 *  - `ig` (EAP-IG-inputs, Hanna et al. 2024, as MIB runs it): the gradient averaged over K runs
 *    whose input embeddings lie on the straight line from the input sender's replacement to the
 *    clean embeddings, x_k = replacement + (k/K)(clean − replacement), k = 0 … K−1 (MIB's
 *    schedule: the replacement end is included, the clean end is not); every other activation
 *    flows freely from there. The sender deltas stay (replacement − clean) of the clean run, which
 *    is a side forward pass in the same graph; under resample the k = 0 rows are the corrupt run.
 *    This integrates along the inputs, not along each sender's own activation, so unlike the
 *    component-level `ig` it does not converge to the exact score; it is what MIB's best-scoring
 *    IOI method does.
 *  - `ig` along activations (`igPath: 'activations'`, EAP-IG-activations as MIB's EAP-IG code runs
 *    it): one site at a time — the input, a layer's heads together, a layer's MLP — has its output
 *    pinned at replacement + α(clean − replacement), α = k/K for k = 1 … K (the clean end included),
 *    while everything else flows from the clean prompt; every receiver's gradient in each such run
 *    is contracted with the clean run's sender deltas, and the scores are the mean over all
 *    sites × steps (so each edge's score averages over every site's pinning, not only its own
 *    sender's). A row pinning a site is the clean run below it, so the rows run in bands of layers
 *    (AttributionBand): a band's sites' rows start at its first layer, and what they contribute to
 *    the receivers below reaches them through one clean row per prompt in the band below (the
 *    backward through clean layers is linear in the gradient it starts from) — on GPT-2 small about
 *    two thirds of the row-layers of running every row from the embeddings. A band's rows are cut
 *    into several runs when they exceed a batch.
 *
 * Every receiver shares the residual stream in these runs, so the forward is the normal one. The
 * gradient with respect to a receiver's own pre-norm input is the norm's vector-Jacobian product
 * applied to the gradient at that receiver's normed input (for a head: its q/k/v gradient through
 * its own slice of the projection). That product is written out here in closed form (LayerNorm:
 * Jᵀu = (γ⊙u − mean(γ⊙u) − x̂·mean(γ⊙u⊙x̂))/σ; RMSNorm without the mean term) because asking the
 * autodiff for it would mean running the norm once per receiver in the forward; the tests check it
 * against finite differences of exact edge ablations.
 *
 * The sum over positions and the contraction with the sender deltas are matrix products inside the
 * same onnxruntime graph, a group of receiving layers at a time against the chunks of senders that
 * group reads (contractionPlan): only [receivers × senders] scores per prompt leave it. With K steps
 * the part of each attention receiver's gradient that is linear in its q/k/v gradient is summed
 * over the steps before it is projected to d_model, so the per-receiver work does not grow with K.
 */
import type * as ort from 'onnxruntime-node';
import { Graph, type Shape, type Value } from '../onnx/graph.ts';
import { gradients } from '../onnx/autodiff.ts';
import { runCompiled, toOrt, type CompiledGraph } from '../onnx/session.ts';
import { buildForward, hookPrefix, type ForwardValues, type InterventionSpec } from '../model/forward.ts';
import { answerFeeds, rotaryFeeds, type FloatArray, type HookedModel } from '../model/hooked.ts';
import { headOutputWeights, receiverProjections, type WeightAccess } from '../model/edges.ts';
import { tensorTable } from '../model/arch/index.ts';
import { slotShape, type Role, type TensorSlot } from '../model/tensors.ts';
import { batchDim, type MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { buildEdgeGraph } from './edge-graph.ts';
import { promptEmbeddings, type EdgeReplacements } from './edge-replacements.ts';
import { allocLike, collectActivations } from './activations.ts';
import { cleanLogProbs } from './metric.ts';
import { componentHooks } from './replacements.ts';

export type EdgeAttributionMethod = 'attribution' | 'ig';

/** What EAP-IG interpolates: the input embeddings (MIB's EAP-IG-inputs) or each site's activations (EAP-IG-activations). */
export type IgPath = 'inputs' | 'activations';
export const IG_PATHS: readonly IgPath[] = ['inputs', 'activations'];

/** A site EAP-IG-activations interpolates: the input embeddings, a layer's heads together, or a layer's MLP. */
export type ActivationSite = { kind: 'input'; layer?: undefined } | { kind: 'heads' | 'mlp'; layer: number };

/**
 * EAP-IG-activations' sites in MIB's order: the input, then per layer its attention (every head at
 * once, MIB's `a{l}.h0` hook_result) and its MLP; a compressed model's layer without heads or MLP
 * has no such site.
 */
export function activationSites(cfg: { layers: { heads: unknown[]; mlp: unknown }[] }): ActivationSite[] {
  const sites: ActivationSite[] = [{ kind: 'input' }];
  cfg.layers.forEach((l, layer) => {
    if (l.heads.length > 0) sites.push({ kind: 'heads', layer });
    if (l.mlp) sites.push({ kind: 'mlp', layer });
  });
  return sites;
}

export interface EdgeAttributionOptions {
  method: EdgeAttributionMethod;
  /** ig: interpolation points (default 5, as MIB). */
  steps?: number;
  /** ig: what is interpolated (default inputs). */
  igPath?: IgPath;
  /** Rows (prompts × steps) per onnxruntime run. */
  batchSize: number;
  metric?: MetricName;
  /** Layer groups the attention receivers are contracted in (default DEFAULT_RECEIVER_GROUPS); the scores do not depend on it. */
  receiverGroups?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EdgeAttributionResult {
  /** Per edge (canonical order), per prompt. */
  perPrompt: Float64Array[];
  /** With replacements from the run itself (`sendersInRun`): the corrupt metric per prompt. */
  corrupt?: Float64Array;
  /** The clean metric per prompt. */
  clean: Float64Array;
  /** kl: each prompt's clean log-probabilities at its metric position (what the divergence is taken from). */
  cleanLogP?: Float64Array[];
}

export const DEFAULT_IG_STEPS = 5;

/**
 * Where the graph gets the heads' and MLPs' replacements: fed constants, fed per-prompt values, or,
 * under resample, the corrupt run inside the graph — for EAP a second forward pass over the corrupt
 * embeddings through the same weights (`corruptRun`), for EAP-IG-inputs each prompt's first step,
 * whose input is the corrupt prompt's embedding and so is the corrupt run itself (`firstStep`).
 */
type ReplacementSource = 'const' | 'row' | 'corruptRun' | 'firstStep';

/**
 * Where the clean senders come from: the main rows themselves (EAP), a clean side run in the graph
 * (EAP-IG-inputs), or fed per prompt (`attr_clean.{hook}`, EAP-IG-activations: one clean pass
 * serves every band's graph).
 */
type CleanSource = 'main' | 'sideRun' | 'fed';

const graphCache = new WeakMap<HookedModel, Map<string, Promise<{ compiled: CompiledGraph; blocks: ScoreBlock[] }>>>();

function weightAccess(g: Graph, model: HookedModel, fvWeights: Map<string, Value>): WeightAccess {
  const cfg = model.config;
  const slots = new Map<string, TensorSlot>();
  for (const s of tensorTable(cfg)) slots.set(`${s.role}@${s.layer ?? ''}`, s);
  const slot = (role: Role, layer?: number) => slots.get(`${role}@${layer ?? ''}`);
  const w = (role: Role, layer?: number) => {
    const s = slot(role, layer);
    if (!s) return undefined;
    let v = fvWeights.get(s.name);
    if (!v) {
      v = g.input(s.name, slotShape(cfg, s));
      fvWeights.set(s.name, v);
    }
    return v;
  };
  const must = (role: Role, layer?: number) => {
    const v = w(role, layer);
    if (!v) throw new Error(`${cfg.arch}: no ${role} tensor`);
    return v;
  };
  return { slot, w, must };
}

/**
 * What the attribution graph needs of the weights beyond the weights themselves, per receiver
 * group, layer or head chunk. They depend on the weights alone, so they are computed once per model
 * by a graph of their own (`derivedWeights`) and fed, instead of being rebuilt in every run.
 */
interface DerivedWeightValues {
  /**
   * Per receiver group: γ⊙W_r of its receivers, [n, d, dh] (the graph reads it transposed, which
   * onnxruntime folds into the product; transposing it here cost ~0.25 s per model).
   */
  wg: Value[];
  /** Per layer with heads: Σ_j (γ⊙W_r)_j / d, [R, 1, dh] (LayerNorm's mean term). */
  wgMean: Map<number, Value>;
  /** Per layer with heads: the projection's bias plus βW_r, [R, 1, dh], where there is one. */
  offset: Map<number, Value>;
  /** Per head chunk: the heads' output projections, [H, dh, d]. */
  wo: Value[];
}

/** The derived weights' names and values in a graph, in one place for the one-off graph and the inputs. */
function namedDerived(dw: DerivedWeightValues): [string, Value][] {
  return [
    ...dw.wg.map((v, j): [string, Value] => [`attr_w.wg.${j}`, v]),
    ...[...dw.wgMean].map(([i, v]): [string, Value] => [`attr_w.wgMean.${i}`, v]),
    ...[...dw.offset].map(([i, v]): [string, Value] => [`attr_w.offset.${i}`, v]),
    ...dw.wo.map((v, j): [string, Value] => [`attr_w.wo.${j}`, v]),
  ];
}

/** Names and shapes of the derived weights (built on a scratch graph, so they follow its code). */
function derivedWeightShapes(model: HookedModel, plan: ContractionPlan): Map<string, Shape> {
  const g = new Graph(model.dtype);
  return new Map(namedDerived(buildDerivedWeights(g, model.config, weightAccess(g, model, new Map()), plan)).map(([n, v]) => [n, v.shape]));
}

/** xs joined along `axis`; a single value as it is (no Concat node). */
function concatOrOne(g: Graph, xs: Value[], axis: number): Value {
  return xs.length === 1 ? xs[0] : g.concat(xs, axis);
}

/** Build the derived weights from the weight inputs of `g` (the one-off graph). */
function buildDerivedWeights(g: Graph, cfg: HookedModel['config'], wa: WeightAccess, plan: ContractionPlan): DerivedWeightValues {
  const d = cfg.dModel;
  const wgs: Value[] = [];
  const wgMean = new Map<number, Value>();
  const offset = new Map<number, Value>();
  for (const r of plan.receiverGroups) {
    const parts: Value[] = [];
    for (const i of r.layers) {
      const proj = receiverProjections(g, cfg, i, wa); // W [R, d, dh]
      const wg = g.mul(proj.w, g.reshape(wa.must('norm1.w', i), [1, d, 1], [1, d, 1])); // [R, d, dh]
      parts.push(wg);
      if (cfg.norm.kind === 'layer') wgMean.set(i, g.div(g.reduceSum(wg, [1]), d)); // [R, 1, dh]
      let off = proj.b ? g.unsqueeze(proj.b, [1]) : undefined; // [R, 1, dh]
      const beta = wa.w('norm1.b', i);
      if (beta) {
        const betaW = g.matmul(g.reshape(beta, [1, 1, d], [1, 1, d]), proj.w);
        off = off ? g.add(off, betaW) : betaW;
      }
      if (off) offset.set(i, off);
    }
    wgs.push(concatOrOne(g, parts, 0));
  }
  const wo = plan.headChunks.map((c) => concatOrOne(g, c.map((i) => headOutputWeights(g, cfg, i, wa)), 0));
  return { wg: wgs, wgMean, offset, wo };
}

const derivedCache = new WeakMap<HookedModel, Map<number, Promise<Record<string, ort.Tensor>>>>();

/** The derived weights of a model for a grouping, computed once (one onnxruntime run) and kept. */
function derivedWeights(model: HookedModel, groups: number): Promise<Record<string, ort.Tensor>> {
  let cache = derivedCache.get(model);
  if (!cache) derivedCache.set(model, (cache = new Map()));
  let entry = cache.get(groups);
  if (!entry) {
    const cfg = model.config;
    const plan = contractionPlan(cfg, groups);
    const g = new Graph(model.dtype);
    const dw = buildDerivedWeights(g, cfg, weightAccess(g, model, new Map()), plan);
    for (const [name, v] of namedDerived(dw)) g.output(v, name);
    entry = model.engine.run(g, model.weightFeeds);
    cache.set(groups, entry);
  }
  return entry;
}

/** One score output of the graph: [U, receivers, columns], columns being sender indices. */
export interface ScoreBlock {
  output: string;
  receivers: number[];
  columns: number[];
}

export interface AttributionGraph {
  graph: Graph;
  blocks: ScoreBlock[];
}

/**
 * Attention receivers are contracted a group of layers at a time (bigger products run faster and
 * read the senders fewer times, but hold more receivers' gradients at once); this many groups by
 * default (measured on the GPT-2-small shape: 2 to 6 within a few percent of each other, one
 * product per layer ~10% slower).
 */
export const DEFAULT_RECEIVER_GROUPS = 4;

export interface ContractionPlan {
  /** Layer positions whose heads form each chunk of the sender deltas, in order. */
  headChunks: number[][];
  /** Each group of receiving layers (with heads) and the chunks (indices; the last is the rest: input and MLPs) it multiplies. */
  receiverGroups: { layers: number[]; chunks: number[] }[];
}

/**
 * Split the layers with heads into `n` contiguous receiving groups, and cut the heads' deltas into
 * chunks at the layers the groups need: a group reads the heads of the layers before its last one,
 * so it multiplies exactly the chunks before that layer (products on the heads a layer of the group
 * does not read yet are computed and never read). The heads no attention group reads (the last
 * group's last layer on) form a final chunk that only the MLPs and logits use.
 */
export function contractionPlan(cfg: { layers: { heads: unknown[] }[] }, n: number): ContractionPlan {
  const withHeads = cfg.layers.map((l, i) => (l.heads.length > 0 ? i : -1)).filter((i) => i >= 0);
  const k = Math.min(n, withHeads.length);
  const groups = Array.from({ length: k }, (_, j) => withHeads.slice(Math.floor((j * withHeads.length) / k), Math.floor(((j + 1) * withHeads.length) / k)));
  const headChunks: number[][] = [];
  const receiverGroups: { layers: number[]; chunks: number[] }[] = [];
  let from = 0; // index into withHeads of the next head layer not yet in a chunk
  for (const layers of groups) {
    const last = layers[layers.length - 1];
    const upTo = withHeads.filter((i) => i < last);
    if (upTo.length > from) {
      headChunks.push(withHeads.slice(from, upTo.length));
      from = upTo.length;
    }
    receiverGroups.push({ layers, chunks: headChunks.map((_, c) => c) });
  }
  if (from < withHeads.length) headChunks.push(withHeads.slice(from));
  // The rest chunk (input, MLPs) comes after the head chunks; every group reads it.
  for (const r of receiverGroups) r.chunks.push(headChunks.length);
  return { headChunks, receiverGroups };
}

/**
 * EAP-IG-activations a band of layers at a time (pinned graphs only): the rows of the sites of
 * layer positions [start, the next band's start) run from `start`, reading the clean run's stream
 * there, and give every receiver from `start` on its gradient; what they give the receivers below
 * is a linear function of their gradient at that stream (the layers below are the clean run's in
 * every such row), so their sum leaves the graph (`attr_boundary`) and the band below takes it in
 * one extra row per prompt: the clean run, whose objective is that gradient's inner product with
 * its stream at the layer it was taken (`attr_inject` at `injectAt`), in place of a metric.
 */
export interface AttributionBand {
  /** The receiver group (contractionPlan) the band starts at, and its first layer position. */
  group: number;
  start: number;
  /** The band above's start: the prompt's last row is the clean run, taking the band above's boundary gradient there. */
  injectAt?: number;
}

/**
 * The graph: the forward from the embeddings (rows = U prompts × K steps, prompt-major), the
 * backward to every receiver, and per receiving layer the scores [U, receivers, senders] summed over
 * the K steps.
 *
 * With `pinned` (EAP-IG along activations) every head layer's hook_z and every MLP's output take
 * per-row keeps (`z_keep.{i}`, `mlp_keep.{i}`, fed) and values between the replacement and the clean
 * run's, replacement − α·(replacement − clean) with α per row (`attr_alpha`); the metric is
 * weighted per row (`attr_row_weight`, 0 on padding rows) before the backward.
 */
export function buildAttributionGraph(model: HookedModel, metric: MetricName, K: number, cleanSource: CleanSource, replShape: ReplacementSource, receiverGroups = DEFAULT_RECEIVER_GROUPS, pinned = false, band?: AttributionBand): AttributionGraph {
  const cfg = model.config;
  const L = cfg.layers.length;
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const g = new Graph(model.dtype, { differentiated: true });
  const hookKey = (i: number, name: string) => `${hookPrefix(cfg.layers[i])}.${name}`;
  const onehots = new Map<string, Value>();
  /** The main rows' starting stream where a band starts them from the clean run's (else they read the input `resid`). */
  let bandInput: Value | undefined;
  /** x [B, 1, ...] at each row's metric position (of the run with inputs `prefix`) → [B, T, ...], zero elsewhere; full-length values as they are. */
  const spread = (x: Value, prefix: string): Value => {
    if (x.shape[1] !== 1) return x;
    let onehot = onehots.get(prefix);
    if (!onehot) {
      const resid = prefix === '' && bandInput ? bandInput : g.input(`${prefix}resid`, [batchDim(prefix), 'T', d]);
      const T = g.squeeze(g.slice(g.shapeOf(resid), g.ints([1]), g.ints([2]), [0], [1]), [0]);
      const one = g.constant([1], [], 'int64');
      const pos = g.unsqueeze(g.range(g.constant([0], [], 'int64'), T, one, 'T'), [0]); // [1, T]
      const at = g.unsqueeze(g.input(`${prefix}metric_pos`, [batchDim(prefix)], 'int64'), [1]); // [B, 1]
      onehot = g.where(g.or(g.greater(pos, at), g.greater(at, pos)), g.scalar(0), g.scalar(1)); // [B, T]
      onehots.set(prefix, onehot);
    }
    const axes = Array.from({ length: x.rank - 2 }, (_, j) => j + 2);
    return g.mul(axes.length > 0 ? g.unsqueeze(onehot, axes) : onehot, x);
  };
  /** A run's hook as computed (for gradient targets) and at full length (for everything else). */
  const rawHook = (run: ForwardValues, name: string): Value => run.hooks.get(name) ?? run.metricLayerHooks.get(name)!;
  const fullHook = (run: ForwardValues, prefix: string, name: string): Value => spread(rawHook(run, name), prefix);

  if (cleanSource === 'main' && K !== 1) throw new Error('senders from the run itself need one step per prompt');
  if (pinned && (cleanSource === 'main' || replShape === 'firstStep')) throw new Error('pinned sites need the clean run and replacements from outside the main rows');
  if (band && !pinned) throw new Error('bands are for pinned sites (EAP-IG along activations)');
  const start = band?.start ?? 0;
  const U = K === 1 ? 'B' : 'U';
  /**
   * A second forward pass over one row per prompt, through the same weights, with its own inputs
   * (`prefix`): its values never leave the graph. No gradient passes through it, so it is built in
   * the form onnxruntime fuses.
   */
  const sideRun = (prefix: string) => {
    g.options.differentiated = false;
    const run = buildForward(g, cfg, { startLayer: 0, fromResid: true, feedPrefix: prefix, readout: { kind: 'metric', metric }, lastLayerAtMetric: true });
    g.options.differentiated = true;
    g.output(run.metric!, `${prefix}metric`);
    return { run, prefix };
  };
  // The corrupt run, where the replacements come from it (EAP under resample), and the clean run
  // whose senders the steps' deltas are taken from (EAP-IG; EAP's clean run is the main one). Built
  // before the main rows, which read them when sites are pinned.
  const corruptRun = replShape === 'corruptRun' ? sideRun('attr_corrupt.') : undefined;
  const cleanRun = cleanSource === 'sideRun' ? sideRun('attr_clean.') : undefined;
  // Set once the main run exists: the side runs' values never depend on it.
  let fv: ForwardValues | undefined;
  const hookOf = (name: string) => fullHook(fv!, '', name);
  const hook = (i: number, name: string) => hookOf(hookKey(i, name));
  /** Rows [B, ...rest] → [U, K, ...rest] (prompt-major rows). */
  const bySteps = (x: Value): Value => {
    const rest = g.slice(g.shapeOf(x), g.ints([1]), g.ints([x.rank]), [0], [x.rank - 1]);
    return g.reshapeTo(x, g.concat([g.ints([-1, K]), rest], 0), [U, K, ...x.shape.slice(1)]);
  };
  const memo = new Map<string, Value>();
  const once = (key: string, make: () => Value): Value => {
    let v = memo.get(key);
    if (!v) memo.set(key, (v = make()));
    return v;
  };
  /** A side run's hook at full length, its rows (one per prompt) relabelled U. */
  const sideHook = (side: { run: ForwardValues; prefix: string }, name: string): Value => {
    const v = fullHook(side.run, side.prefix, name);
    return g.reshape(v, v.shape.map(() => 0), [U, ...v.shape.slice(1)]);
  };
  /** A clean hook [U, T, ...rest]: the main run's (EAP), the clean side run's, or fed (`attr_clean.{name}`). */
  const cleanHook = (name: string, rest: number[]): Value =>
    once(`clean ${name}`, () => (cleanSource === 'fed' ? g.input(`attr_clean.${name}`, [U, 'T', ...rest]) : cleanRun ? sideHook(cleanRun, name) : hookOf(name)));
  /** The replacement of a sender: a constant, per prompt, or its value in the corrupt run (its own, or each prompt's k = 0 row). */
  const repl = (name: string, rest: number[], inRunHook: string): Value =>
    once(`repl ${name}`, () => {
      if (replShape === 'const') return g.input(name, [1, 1, ...rest]);
      if (replShape === 'row') return g.input(name, [U, 'T', ...rest]);
      if (corruptRun) return sideHook(corruptRun, inRunHook);
      return g.squeeze(g.slice(bySteps(hookOf(inRunHook)), g.ints([0]), g.ints([1]), [1], [U, 1, 'T', ...rest]), [1]);
    });
  /** Sender deltas (replacement − clean), [U, T, k, dh] for a layer's heads and [U, T, d] for its MLP. */
  const zRepl = (i: number) => repl(`attr_repl_z.${i}`, [cfg.layers[i].heads.length, dh], hookKey(i, 'attn.hook_z'));
  const zDelta = (i: number) => once(`dz ${i}`, () => g.sub(zRepl(i), cleanHook(hookKey(i, 'attn.hook_z'), [cfg.layers[i].heads.length, dh])));
  const mlpRepl = (i: number) => repl(`attr_repl_mlp.${i}`, [d], hookKey(i, 'hook_mlp_out'));
  const mlpDelta = (i: number) => once(`dmlp ${i}`, () => g.sub(mlpRepl(i), cleanHook(hookKey(i, 'hook_mlp_out'), [d])));

  let interventions: InterventionSpec | undefined;
  if (pinned) {
    // Every row's value at every site, replacement − α·(replacement − clean), broadcast over the
    // prompt's rows: [U, 1, T, ...] against α [U, K, 1, ...], then rows [B, T, ...].
    const alpha = g.input('attr_alpha', ['B']);
    const byRows = (x: Value): Value => {
      const rest = g.slice(g.shapeOf(x), g.ints([2]), g.ints([x.rank]), [0], [x.rank - 2]);
      return g.reshapeTo(x, g.concat([g.ints([-1]), rest], 0), ['B', ...x.shape.slice(2)]);
    };
    const between = (replacement: Value, delta: Value): Value => {
      const a = g.reshape(alpha, [-1, K, ...delta.shape.slice(1).map(() => 1)], [U, K, ...delta.shape.slice(1).map(() => 1)]);
      return byRows(g.sub(g.unsqueeze(replacement, [1]), g.mul(a, g.unsqueeze(delta, [1]))));
    };
    interventions = { z: new Map(), mlp: new Map(), given: new Map() };
    cfg.layers.forEach((l, i) => {
      if (i < start) return;
      if (l.heads.length > 0) {
        interventions!.z.set(i, 'row');
        interventions!.given!.set(`z_value.${i}`, between(zRepl(i), zDelta(i)));
      }
      if (l.mlp) {
        interventions!.mlp.set(i, 'row');
        interventions!.given!.set(`mlp_value.${i}`, between(mlpRepl(i), mlpDelta(i)));
      }
    });
  }
  // Every run computes its last layer at the metric positions only (keys and values everywhere):
  // nothing after it reads its other positions, so there every receiver's gradient is zero and no
  // sender delta there can score.
  // A band after the first starts from the clean run's stream at its first layer, every row alike.
  if (start > 0) {
    const clean = cleanHook(hookKey(start, 'hook_resid_pre'), [d]); // [U, T, d]
    const rows = g.concat([g.ints([-1]), g.slice(g.shapeOf(clean), g.ints([1]), g.ints([3]), [0], [2])], 0);
    const each = g.expand(g.unsqueeze(clean, [1]), g.concat([g.ints([1, K]), g.ints([1, 1])], 0), [U, K, 'T', d]);
    bandInput = g.reshapeTo(each, rows, ['B', 'T', d]);
  }
  fv = buildForward(g, cfg, { startLayer: start, fromResid: true, residValue: bandInput, readout: { kind: 'metric', metric }, lastLayerAtMetric: true, interventions });
  const wa = weightAccess(g, model, fv.weights);
  let total = g.reduceSum(pinned ? g.mul(fv.metric!, g.input('attr_row_weight', ['B'])) : fv.metric!, [0], false);
  if (band?.injectAt !== undefined) {
    // Σ attr_inject ⊙ stream: nonzero only on each prompt's clean row (the host feeds zeros elsewhere).
    const inject = g.reduceSum(g.mul(hook(band.injectAt, 'hook_resid_pre'), g.input('attr_inject', ['B', 'T', d])), [0, 1, 2], false);
    total = g.add(total, inject);
  }

  // Gradient targets: q, k, v of every layer with heads, the normed MLP input, the final stream.
  const targets: Value[] = [];
  const at = new Map<string, number>();
  const want = (key: string, v: Value) => {
    at.set(key, targets.length);
    targets.push(v);
  };
  cfg.layers.forEach((l, i) => {
    if (i < start) return;
    if (l.heads.length > 0) for (const x of ['q', 'k', 'v']) want(`${x}${i}`, rawHook(fv!, hookKey(i, `attn.hook_${x}`)));
    if (l.mlp) want(`mlp${i}`, rawHook(fv!, hookKey(i, 'ln2.hook_normalized')));
  });
  if (L > 0) want('final', rawHook(fv, hookKey(L - 1, 'hook_resid_post')));
  if (bandInput) want('boundary', bandInput);
  const grads = gradients(total, targets);
  const grad = (key: string) => spread(grads[at.get(key)!], '');
  // The band's rows' gradient at the stream they started from, summed over each prompt's rows: [U, T·d].
  if (bandInput) g.output(g.reshape(g.reduceSum(bySteps(grads[at.get('boundary')!]), [1], false), [0, -1], [U, 'T*d']), 'attr_boundary');

  // Sender deltas (replacement − clean) per prompt, E [S, U, T·d], in chunks: the heads of each
  // group of layers (one product of the small hook_z deltas with the heads' output projections),
  // and the rest (input, MLPs). With one step a prompt is a row, and the clean senders can be this
  // run's own (EAP).
  const cat = (xs: Value[], axis: number) => concatOrOne(g, xs, axis);
  const eg = buildEdgeGraph(cfg);
  const headSender = (i: number, slot: number) => eg.senderStart[i] + slot;
  const inputDelta = g.input('attr_input_delta', [U, 'T', d]);
  /** [R, U, T, w] (or [R, U·T, w]) → [R, U, T·w], U read from the prompts' input. */
  const uDim = g.slice(g.shapeOf(inputDelta), g.ints([0]), g.ints([1]), [0], [1]);
  const UT = `${U}*T`;
  const promptRows = (x: Value): Value => g.reshapeTo(x, g.concat([g.ints([x.shape[0] as number]), uDim, g.ints([-1])], 0), [x.shape[0], U, 'T*d']);
  // Sender deltas and receiver gradients are laid out sender- (receiver-) major, [S, U, T·d]: the
  // products that make them from the heads' d_head-wide values are then one GEMM per head over
  // every prompt's positions ([U·T, dh] × [dh, d]) rather than one small [T, dh] × [dh, d] per
  // prompt and head (measured 2× faster on the GPT-2-small shape), and the contraction reads both
  // through onnxruntime's batch-transposed MatMul without copying them.
  interface Chunk {
    value: Value; // [S_chunk, U, T·d]
    /** Σ_j E_s(t)_j, [U, T, S_chunk] (LayerNorm receivers' mean term). */
    sums: () => Value;
    columns: number[]; // sender indices
  }
  const plan = contractionPlan(cfg, receiverGroups);
  const derivedShapes = derivedWeightShapes(model, plan);
  const derived = (name: string) => g.input(name, derivedShapes.get(name)!);
  const chunks: Chunk[] = [];
  for (const group of plan.headChunks) {
    const dz: Value[] = [];
    const columns: number[] = [];
    for (const i of group) {
      const k = cfg.layers[i].heads.length;
      dz.push(zDelta(i)); // [U, T, k, dh]
      for (let h = 0; h < k; h++) columns.push(headSender(i, h));
    }
    const z = cat(dz, 2); // [U, T, H, dh]
    const H = columns.length;
    const w = derived(`attr_w.wo.${plan.headChunks.indexOf(group)}`); // [H, dh, d]
    const zs = g.reshape(g.transpose(z, [2, 0, 1, 3]), [0, -1, dh], [H, UT, dh]);
    chunks.push({
      value: promptRows(g.matmul(zs, w)),
      // Σ_j E_h(t)_j = Δz_h(t) · (W_O[h] 1), without reading E.
      sums: () => g.transpose(g.squeeze(g.matmul(g.transpose(z, [0, 2, 1, 3]), g.reduceSum(w, [-1])), [-1]), [0, 2, 1]),
      columns,
    });
  }
  {
    /** A [U, T, d] delta as one sender's rows, [1, U, T·d]. */
    const asSender = (x: Value) => g.unsqueeze(g.reshape(x, [0, -1], [U, 'T*d']), [0]);
    const others: Value[] = [asSender(inputDelta)];
    const columns = [0];
    cfg.layers.forEach((l, i) => {
      if (!l.mlp) return;
      others.push(asSender(mlpDelta(i)));
      columns.push(eg.senderStart[i] + l.heads.length);
    });
    const rest = cat(others, 0);
    const S = columns.length;
    chunks.push({ value: rest, sums: () => g.transpose(g.reduceSum(g.reshape(rest, [0, 0, -1, d], [S, U, 'T', d]), [-1], false), [1, 2, 0]), columns });
  }
  const sums = cfg.norm.kind === 'layer' ? chunks.map((c) => c.sums()) : [];

  /** Σ over the K steps of rows [B, R, ...] → [U, R, ...rest] (rest flattened). */
  const sumSteps = (x: Value, R: number | string, rest: string): Value => {
    const flat = g.reshape(x, [0, 0, -1], [K === 1 ? U : 'B', R, rest]);
    if (K === 1) return flat;
    const n = g.slice(g.shapeOf(flat), g.ints([1]), g.ints([3]), [0], [2]);
    return g.reduceSum(g.reshapeTo(flat, g.concat([g.ints([-1, K]), n], 0), [U, K, R, rest]), [1], false);
  };
  /** x̂ and 1/σ of a norm's input x [B, T, d]. */
  const normStats = (x: Value): { xhat: Value; inv: Value } => {
    const eps = cfg.norm.eps;
    if (cfg.norm.kind === 'rms') {
      const inv = g.div(g.scalar(1), g.sqrt(g.add(g.reduceMean(g.mul(x, x), [-1]), eps)));
      return { xhat: g.mul(x, inv), inv };
    }
    const xc = g.sub(x, g.reduceMean(x, [-1]));
    const inv = g.div(g.scalar(1), g.sqrt(g.add(g.reduceMean(g.mul(xc, xc), [-1]), eps)));
    return { xhat: g.mul(xc, inv), inv };
  };
  /** The norm's VJP: ũ = γ⊙u/σ → ũ − mean(ũ) − x̂·mean(ũ⊙x̂) (no mean term for RMSNorm). */
  const normVjp = (scaled: Value, xhat: Value): Value => {
    let out = g.sub(scaled, g.mul(xhat, g.reduceMean(g.mul(scaled, xhat), [-1])));
    if (cfg.norm.kind === 'layer') out = g.sub(out, g.reduceMean(scaled, [-1]));
    return out;
  };
  /**
   * scores[u, r, s] = Σ_t G[r, u, t]·E[s, u, t] (− Σ_t c1[u, r, t]·Σ_j E[s, u, t, j]) against the
   * chunks given, one product each, concatenated along the senders. G is [R, U, T·d].
   */
  const contract = (G: Value, c1: Value | undefined, use: number[], xTerm?: (j: number) => Value): Value => {
    const Gu = g.transpose(G, [1, 0, 2]);
    const cols = use.map((j) => {
      let part = g.matmul(Gu, g.transpose(chunks[j].value, [1, 2, 0]));
      if (xTerm) part = g.sub(part, xTerm(j));
      return c1 ? g.sub(part, g.matmul(c1, sums[j])) : part;
    });
    return cat(cols, 2);
  };
  const blocks: ScoreBlock[] = [];
  const emit = (name: string, value: Value, receivers: number[], use: number[]) => {
    g.output(value, name);
    blocks.push({ output: name, receivers, columns: use.flatMap((j) => chunks[j].columns) });
  };

  // Attention receivers. A receiver's gradient at its own pre-norm input is
  // G_r = γ⊙(W_r δ_r)/σ − mean(·) − x̂·c2_r. The first term is linear in δ_r/σ with weights
  // shared by every row, so it is summed over the K steps before the product with W_r; the x̂ term
  // differs per step (x̂ does), and the mean term is contracted with Σ_j E instead of being
  // subtracted from every G. Without passes over [B, R, T, d] for its means:
  // mean(ũ) = δ_r/σ · (γᵀW_r)/d and mean(ũ⊙x̂) = δ_r/σ · W_rᵀ(γ⊙x̂)/d, where W_rᵀ(γ⊙x̂) is the
  // receiver's projection output less its bias and W_rᵀβ.
  interface AttentionParts {
    dSum: Value; // Σ_k δ_r/σ, [R, U·T, dh]
    c2: Value; // per row, [B, R, T]
    xhat: Value; // per row, [B, T, d]
    c1?: Value; // LayerNorm: Σ_k mean(ũ), [U, R, T]
  }
  const attentionParts = (i: number): AttentionParts => {
    const R = eg.attCount[i];
    const { xhat, inv } = normStats(hook(i, 'hook_resid_pre'));
    const delta = g.concat([grad(`q${i}`), grad(`k${i}`), grad(`v${i}`)], 2); // [B, T, R, dh]
    const dPrime = g.transpose(g.mul(delta, g.unsqueeze(inv, [-1])), [0, 2, 1, 3]); // [B, R, T, dh]
    const offset = derivedShapes.has(`attr_w.offset.${i}`) ? derived(`attr_w.offset.${i}`) : undefined; // [R, 1, dh]
    const P = g.transpose(g.concat([hook(i, 'attn.hook_q'), hook(i, 'attn.hook_k'), hook(i, 'attn.hook_v')], 2), [0, 2, 1, 3]);
    const c2 = g.div(g.reduceSum(g.mul(dPrime, offset ? g.sub(P, offset) : P), [-1], false), d); // [B, R, T]
    const dSum = g.reshape(g.transpose(sumSteps(dPrime, R, 'T*dh'), [1, 0, 2]), [0, -1, dh], [R, UT, dh]);
    const c1 = cfg.norm.kind === 'layer' ? sumSteps(g.reduceSum(g.mul(dPrime, derived(`attr_w.wgMean.${i}`)), [-1], false), R, 'T') : undefined;
    return { dSum, c2, xhat, c1 };
  };
  // Receivers a group of layers at a time: one product per chunk for all of the group's receivers
  // (bigger products run faster, and each chunk is read once per group instead of once per layer).
  let receiverBase = 0;
  const receiverStart = new Map<number, number>();
  cfg.layers.forEach((l, i) => {
    receiverStart.set(i, receiverBase);
    receiverBase += eg.attCount[i] + (l.mlp ? 1 : 0);
  });
  for (const [gi, { layers, chunks: use }] of plan.receiverGroups.entries()) {
    // A band's receivers start at its group (the layers before it are the clean run's here).
    if (gi < (band?.group ?? 0)) continue;
    const parts = layers.map(attentionParts);
    const Rs = layers.map((i) => eg.attCount[i]);
    const n = Rs.reduce((a, b) => a + b, 0);
    const scaled = g.matmul(cat(parts.map((p) => p.dSum), 0), g.transpose(derived(`attr_w.wg.${gi}`), [0, 2, 1])); // [n, U·T, d]
    // The x̂ term, Σ_{k,t} c2_k(t)·(x̂_k(t)·E_s(t)), from D = x̂·E: one product per chunk reads its
    // deltas once for every layer and step of the group (batched over prompt and position), instead
    // of writing c2·x̂ over [n, U·T, d] and subtracting it from every receiver's gradient.
    const st = cat(parts.map((p) => g.unsqueeze(bySteps(p.xhat), [0])), 0); // [layers, U, K, T, d]
    const cols = layers.length * K;
    const X = g.reshape(g.transpose(st, [1, 3, 4, 0, 2]), [-1, d, cols], [UT, d, cols]); // [U·T, d, layers·K]
    const KT = `${K}*T`;
    const c2s = parts.map((p, a) => g.reshape(g.transpose(bySteps(p.c2), [0, 2, 1, 3]), [0, 0, -1], [U, Rs[a], KT])); // [U, R, K·T]
    const xTerm = (j: number): Value => {
      const S = chunks[j].columns.length;
      const D = g.matmul(g.transpose(g.reshape(chunks[j].value, [0, -1, d], [S, UT, d]), [1, 0, 2]), X); // [U·T, S, layers·K]
      const perLayer = c2s.map((c2, a) => {
        const Da = g.slice(D, g.ints([a * K]), g.ints([(a + 1) * K]), [2], [UT, S, K]);
        const byPrompt = g.reshapeTo(Da, g.concat([uDim, g.ints([-1, S, K])], 0), [U, 'T', S, K]);
        return g.matmul(c2, g.reshape(g.transpose(byPrompt, [0, 3, 1, 2]), [0, -1, S], [U, KT, S])); // [U, R, S]
      });
      return cat(perLayer, 1);
    };
    const G = promptRows(scaled); // [n, U, T·d]
    const c1 = parts[0].c1 ? cat(parts.map((p) => p.c1!), 1) : undefined;
    const receivers = layers.flatMap((i, j) => Array.from({ length: Rs[j] }, (_, r) => receiverStart.get(i)! + r));
    emit(`scores.att${layers[0]}`, contract(G, c1, use, xTerm), receivers, use);
  }
  /** One receiver's gradient per row, [B, T, d], summed over the steps as [1, U, T·d]. */
  const asReceiver = (x: Value): Value => g.unsqueeze(g.squeeze(sumSteps(g.unsqueeze(x, [1]), 1, 'T*d'), [1]), [0]);
  const stacked: { G: Value; receiver: number }[] = [];
  cfg.layers.forEach((l, i) => {
    if (!l.mlp || i < start) return;
    const x = hook(i, cfg.parallelResidual ? 'hook_resid_pre' : 'hook_resid_mid');
    const { xhat, inv } = normStats(x);
    const scaled = g.mul(g.mul(grad(`mlp${i}`), wa.must('norm2.w', i)), inv);
    stacked.push({ G: asReceiver(normVjp(scaled, xhat)), receiver: receiverStart.get(i)! + eg.attCount[i] });
  });
  // The MLP receivers and the logits, stacked: one product per chunk for all of them.
  if (L > 0) stacked.push({ G: asReceiver(grad('final')), receiver: receiverBase });
  if (stacked.length > 0) {
    const G = cat(stacked.map((x) => x.G), 0);
    const all = chunks.map((_, j) => j);
    emit('scores.rest', contract(G, undefined, all), stacked.map((x) => x.receiver), all);
  }
  g.output(fv.metric!, 'metric');
  return { graph: g, blocks };
}

async function attributionGraph(model: HookedModel, metric: MetricName, K: number, ig: boolean, replShape: ReplacementSource, groups: number, pinned: boolean, band?: AttributionBand): Promise<{ compiled: CompiledGraph; blocks: ScoreBlock[] }> {
  let cache = graphCache.get(model);
  if (!cache) graphCache.set(model, (cache = new Map()));
  const key = JSON.stringify([metric, K, ig, replShape, groups, pinned, band ?? null]);
  let entry = cache.get(key);
  if (!entry) {
    const { graph, blocks } = buildAttributionGraph(model, metric, K, pinned ? 'fed' : ig ? 'sideRun' : 'main', replShape, groups, pinned, band);
    entry = model.engine.compile(graph).then((compiled) => ({ compiled, blocks }));
    cache.set(key, entry);
  }
  return entry;
}

/**
 * EAP-IG-activations' bands (AttributionBand), bottom up: one per receiver group, from its first
 * layer (the first from layer 0) to the next one's, with the indices of the sites in its layers
 * (the input in the first).
 */
export function activationBands(cfg: { layers: unknown[] }, plan: ContractionPlan, sites: ActivationSite[]): { band: AttributionBand; sites: number[] }[] {
  const starts = plan.receiverGroups.length === 0 ? [0] : plan.receiverGroups.map((r, gi) => (gi === 0 ? 0 : r.layers[0]));
  return starts.map((start, gi) => {
    const end = gi + 1 < starts.length ? starts[gi + 1] : cfg.layers.length;
    const own = sites.flatMap((site, j) => ((site.kind === 'input' ? gi === 0 : site.layer >= start && site.layer < end) ? [j] : []));
    return { band: { group: gi, start, ...(gi + 1 < starts.length ? { injectAt: starts[gi + 1] } : {}) }, sites: own };
  });
}

export async function edgeAttribution(model: HookedModel, task: Task, repl: EdgeReplacements, opts: EdgeAttributionOptions): Promise<EdgeAttributionResult> {
  const cfg = model.config;
  const L = cfg.layers.length;
  const d = cfg.dModel;
  const dh = cfg.dHead;
  const metric = opts.metric ?? 'logit-diff';
  const K = opts.method === 'ig' ? (opts.steps ?? DEFAULT_IG_STEPS) : 1;
  const ig = opts.method === 'ig';
  // KL is taken from the clean run's next-token distribution; its gradient vanishes at the clean run
  // itself, so EAP cannot use it, while EAP-IG's points lie off the clean run. (Before any graph is
  // compiled.)
  if (metric === 'kl' && !ig) throw new Error('edge attribution with the kl metric: its gradient at the clean run is zero');
  const pinned = ig && (opts.igPath ?? 'inputs') === 'activations';
  const sites = pinned ? activationSites(cfg) : [];
  // Rows per prompt in all (along activations: every site at every step), the normaliser of the scores.
  const perPrompt = pinned ? sites.length * K : K;
  const graph = buildEdgeGraph(cfg);
  const N = task.pairs.length;
  // One buffer, a view per edge.
  const all = new Float64Array(graph.edges.length * N);
  const scoresOf = graph.edges.map((_, e) => all.subarray(e * N, (e + 1) * N));
  const clean = new Float64Array(N);
  const prompts = task.pairs.map((p) => p.clean);
  const lengths = prompts.map((p) => p.length);
  const tMax = Math.max(...lengths);
  const order = prompts.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const corrupt = repl.sendersInRun ? new Float64Array(N) : undefined;
  const replShape: ReplacementSource = repl.sendersInRun ? (ig && !pinned ? 'firstStep' : 'corruptRun') : repl.comp.ablation === 'resample' ? 'row' : 'const';
  const groups = opts.receiverGroups ?? DEFAULT_RECEIVER_GROUPS;
  const plan = contractionPlan(cfg, groups);
  // Along activations, a band per receiver group, run from the top down (each band's clean row
  // takes the boundary gradient of the band above); a band's rows are cut into parts when they are
  // more than a batch. Otherwise one band of K rows a prompt.
  const bands = pinned ? activationBands(cfg, plan, sites) : [{ sites: [] as number[], band: undefined }];
  const layouts = bands.map(({ sites: own, band }, b) => {
    const rows = pinned ? own.length * K + (b < bands.length - 1 ? 1 : 0) : K;
    // Only pinned rows are cut (the other graphs hold each prompt's K steps together).
    const parts = pinned ? Math.ceil(rows / Math.max(1, opts.batchSize)) : 1;
    return { parts, Kr: Math.ceil(rows / parts), band, own };
  });
  const compiled = await Promise.all(layouts.map((l) => attributionGraph(model, metric, l.Kr, ig, replShape, groups, pinned, l.band)));
  const derivedFeeds = await derivedWeights(model, groups);
  // Per block, the edge behind each [receiver, column] cell, −1 where the sender comes at or after
  // the receiver (a product nobody reads).
  const edgeCells = new Map<ScoreBlock, Int32Array>();
  for (const { blocks } of compiled) {
    for (const b of blocks) {
      const cells = new Int32Array(b.receivers.length * b.columns.length).fill(-1);
      b.receivers.forEach((ri, n) => {
        const row = graph.edgeAt[ri];
        b.columns.forEach((sd, c) => {
          if (sd < row.length) cells[n * b.columns.length + c] = row[sd];
        });
      });
      edgeCells.set(b, cells);
    }
  }

  const embed = promptEmbeddings(model, prompts, tMax);
  const cleanLogP = metric === 'kl' ? await cleanLogProbs(model, task, Math.max(1, opts.batchSize)) : undefined;
  // EAP-IG-activations: the clean senders, and the streams the bands start from, from one pass over
  // the clean prompts that every band's graph is fed (and the clean metric).
  const cleanHooks = new Map<string, number[]>(); // hook → its shape after [prompt, position]
  if (pinned) {
    const { z, mlp } = componentHooks(model);
    for (const [i, name] of z) cleanHooks.set(name, [cfg.layers[i].heads.length, dh]);
    for (const name of mlp.values()) cleanHooks.set(name, [d]);
    for (const { band } of bands) if (band && band.start > 0) cleanHooks.set(model.hookName(band.start, 'hook_resid_pre'), [d]);
  }
  const cleanActs = pinned
    ? await collectActivations(model, prompts, [...cleanHooks.keys()], Math.max(1, opts.batchSize), {
        options: (s, e) => ({ logits: 'answers', metric, answers: task.pairs.slice(s, e), ...(cleanLogP ? { cleanLogProbs: cleanLogP.slice(s, e) } : {}) }),
        result: (s, out) => out.metric!.forEach((m, b) => (clean[s + b] = m)),
      })
    : undefined;
  const cast = (a: FloatArray): FloatArray => (model.dtype === 'float64' ? (a instanceof Float64Array ? a : Float64Array.from(a)) : a instanceof Float32Array ? a : Float32Array.from(a));
  const tensor = (data: FloatArray, dims: number[]) => toOrt({ data: cast(data), dims }, model.dtype);

  // Prompts per run: the batch size over the rows, and few enough that what the contraction holds
  // stays under ~2 GiB — per prompt every sender's delta, a receiver group's gradients, and the MLP
  // and logits receivers' gradients, each T · d floats. One run rather than several is worth ~0.4 ×
  // one forward on the GPT-2-small bench (25 prompts). The prompts are split evenly over the runs
  // that takes (64 rows of 5 steps for 25 prompts: 9 + 8 + 8, not 12 + 12 + 1).
  const perGroup = Math.max(1, ...plan.receiverGroups.map((r) => r.layers.reduce((n, i) => n + graph.attCount[i], 0)));
  const bytesPerPrompt = (graph.senders.length + perGroup + cfg.layers.length + 1) * tMax * d * (model.dtype === 'float64' ? 8 : 4);
  const most = Math.max(1, Math.min(Math.floor(opts.batchSize / Math.max(...layouts.map((l) => l.Kr))), Math.floor(2 ** 31 / bytesPerPrompt)));
  const U = Math.ceil(N / Math.ceil(N / most));
  // Progress in row-layers (a band's rows cross the layers from its start on).
  const work = layouts.map((l) => l.Kr * Math.max(1, L - (l.band?.start ?? 0)));
  const perPromptWork = layouts.reduce((n, l, b) => n + l.parts * work[b], 0);
  let done = 0;
  for (let s = 0; s < N; s += U) {
    const chunk = order.slice(s, s + U);
    const u = chunk.length;
    const T = Math.max(...chunk.map((p) => lengths[p]));
    /** Per prompt of the chunk: [u, T, width] from a [N, tm, width] array. */
    const take = (src: FloatArray, width: number, tm: number) => {
      const out = allocLike(model, u * T * width);
      chunk.forEach((p, r) => out.set(src.subarray(p * tm * width, (p * tm + Math.min(T, tm)) * width), r * T * width));
      return out;
    };
    const replInput = repl.input.shape === 'const' ? undefined : take(repl.input.data, d, repl.comp.tMax);
    const cleanEmb = take(embed, d, tMax);
    const replConst = repl.input.data;
    const inputDelta = allocLike(model, u * T * d);
    for (let r = 0; r < u; r++) {
      for (let t = 0; t < lengths[chunk[r]]; t++) {
        const at = (r * T + t) * d;
        for (let j = 0; j < d; j++) inputDelta[at + j] = (replInput ? replInput[at + j] : replConst[j]) - cleanEmb[at + j];
      }
    }
    // The feeds every run of the chunk shares.
    const shared: Record<string, ort.Tensor> = { ...model.weightFeeds, ...derivedFeeds, attr_input_delta: tensor(inputDelta, [u, T, d]) };
    cfg.layers.forEach((l, i) => {
      const k = l.heads.length;
      if (k > 0) {
        const zr = repl.comp.z.get(i);
        if (zr) shared[`attr_repl_z.${i}`] = zr.shape === 'const' ? tensor(zr.data, [1, 1, k, dh]) : tensor(take(zr.data, k * dh, repl.comp.tMax), [u, T, k, dh]);
      }
      if (l.mlp) {
        const mr = repl.comp.mlp.get(i);
        if (mr) shared[`attr_repl_mlp.${i}`] = mr.shape === 'const' ? tensor(mr.data, [1, 1, d]) : tensor(take(mr.data, d, repl.comp.tMax), [u, T, d]);
      }
    });
    if (cleanActs) for (const [name, rest] of cleanHooks) shared[`attr_clean.${name}`] = tensor(take(cleanActs.values.get(name)!, cleanActs.widths.get(name)!, cleanActs.tMax), [u, T, ...rest]);
    if (cfg.positions.kind === 'rotary') Object.assign(shared, rotaryFeeds(cfg, T, model.dtype));
    /** A run's own feeds: its input rows (one prompt each, `rowPrompt`; none where the graph makes them), metric positions and answers. */
    const runFeeds = (feeds: Record<string, ort.Tensor>, prefix: string, rowPrompt: number[], input: FloatArray | undefined) => {
      const rows = rowPrompt.length;
      const pos = rowPrompt.map((p) => lengths[p] - 1);
      const af = answerFeeds(rowPrompt.map((p) => model.localAnswers(task.pairs[p])), metric);
      if (input) feeds[`${prefix}resid`] = tensor(input, [rows, T, d]);
      feeds[`${prefix}flat_pos`] = toOrt({ data: BigInt64Array.from(pos, (p, b) => BigInt(b * T + p)), dims: [rows] }, 'int64');
      feeds[`${prefix}metric_pos`] = toOrt({ data: BigInt64Array.from(pos, (p) => BigInt(p)), dims: [rows] }, 'int64');
      feeds[`${prefix}answer_ids`] = toOrt({ data: af.ids, dims: [rows, af.A] }, 'int64');
      feeds[`${prefix}answer_weights`] = tensor(af.weights, [rows, af.A]);
      if (cleanLogP) {
        const V = cfg.vocabSize;
        const lp = allocLike(model, rows * V);
        rowPrompt.forEach((p, r) => lp.set(cleanLogP[p], r * V));
        feeds[`${prefix}clean_logp`] = tensor(lp, [rows, V]);
      }
    };
    // The band above's gradient at the clean stream where it starts, per prompt [u, T, d].
    let boundary: Float64Array | undefined;
    for (let bi = bands.length - 1; bi >= 0; bi--) {
      const { parts, Kr, band, own } = layouts[bi];
      const { compiled: ag, blocks } = compiled[bi];
      const next = band && band.start > 0 ? new Float64Array(u * T * d) : undefined;
      const trunkRow = pinned && bi < bands.length - 1 ? own.length * K : -1;
      for (let part = 0; part < parts; part++) {
        const B = u * Kr;
        const feeds: Record<string, ort.Tensor> = { ...shared };
        // Rows: prompt-major, row m of prompt r at r·Kr + m. EAP: the clean embeddings. EAP-IG-inputs:
        // step k = m at repl + (k/K)(clean − repl). Along activations the band's row j = part·Kr + m
        // of a prompt is its site ⌊j/K⌋ at α = (j mod K + 1)/K (MIB's schedule there: the clean end
        // included, the replacement end not), on the clean embeddings unless its site is the input;
        // the row after the sites is the clean run taking the band above's gradient; rows past
        // those are padding, weighted 0.
        const alpha = allocLike(model, B);
        const weight = allocLike(model, B).fill(1);
        const siteOf = new Int32Array(B).fill(-1);
        const trunk = new Uint8Array(B);
        for (let b = 0; b < B; b++) {
          if (!pinned) {
            alpha[b] = (b % K) / K;
            continue;
          }
          const j = part * Kr + (b % Kr);
          if (j < own.length * K) [siteOf[b], alpha[b]] = [own[Math.floor(j / K)], ((j % K) + 1) / K];
          else weight[b] = 0;
          if (j === trunkRow) trunk[b] = 1;
        }
        const atInput = (b: number) => ig && (!pinned || (siteOf[b] >= 0 && sites[siteOf[b]].kind === 'input'));
        if (!band || band.start === 0) {
          const resid = allocLike(model, B * T * d);
          for (let r = 0; r < u; r++) {
            for (let t = 0; t < lengths[chunk[r]]; t++) {
              const at = (r * T + t) * d;
              for (let b = r * Kr; b < (r + 1) * Kr; b++) {
                const row = (b * T + t) * d;
                if (!atInput(b)) resid.set(cleanEmb.subarray(at, at + d), row);
                // The replacement end exactly at α = 0 (EAP-IG-inputs' k = 0 is the corrupt run where replacements come from it).
                else for (let j = 0; j < d; j++) resid[row + j] = (replInput ? replInput[at + j] : replConst[j]) - alpha[b] * inputDelta[at + j];
              }
            }
          }
          runFeeds(feeds, '', Array.from({ length: B }, (_, b) => chunk[Math.floor(b / Kr)]), resid);
        } else {
          // The band's rows start from the clean run's stream, inside the graph.
          runFeeds(feeds, '', Array.from({ length: B }, (_, b) => chunk[Math.floor(b / Kr)]), undefined);
        }
        if (pinned) {
          feeds.attr_alpha = tensor(alpha, [B]);
          feeds.attr_row_weight = tensor(weight, [B]);
          /** 0 on the rows whose site is `kind` at layer i, 1 elsewhere, `width` values a row. */
          const keep = (kind: ActivationSite['kind'], i: number, width: number) => {
            const out = allocLike(model, B * width).fill(1);
            for (let b = 0; b < B; b++) {
              const site = sites[siteOf[b]];
              if (site && site.kind === kind && site.layer === i) out.fill(0, b * width, (b + 1) * width);
            }
            return out;
          };
          cfg.layers.forEach((l, i) => {
            const k = l.heads.length;
            if (k > 0) feeds[`z_keep.${i}`] = tensor(keep('heads', i, k), [B, 1, k, 1]);
            if (l.mlp) feeds[`mlp_keep.${i}`] = tensor(keep('mlp', i, 1), [B, 1, 1]);
          });
          if (band?.injectAt !== undefined) {
            const inject = allocLike(model, B * T * d);
            for (let b = 0; b < B; b++) if (trunk[b]) inject.set(boundary!.subarray(Math.floor(b / Kr) * T * d, (Math.floor(b / Kr) + 1) * T * d), b * T * d);
            feeds.attr_inject = tensor(inject, [B, T, d]);
          }
        }
        if (replShape === 'corruptRun') runFeeds(feeds, 'attr_corrupt.', chunk, replInput!);
        if (ig && !pinned) runFeeds(feeds, 'attr_clean.', chunk, cleanEmb);
        const out = await runCompiled(ag, feeds);
        if (!pinned) ((out['attr_clean.metric'] ?? out.metric).data as FloatArray).forEach((m, r) => (clean[chunk[r]] = m));
        // The corrupt run's metric: its own, or (EAP-IG) each prompt's first step's.
        if (corrupt) chunk.forEach((p, r) => (corrupt[p] = out['attr_corrupt.metric'] ? (out['attr_corrupt.metric'].data as FloatArray)[r] : (out.metric.data as FloatArray)[r * K]));
        if (next) (out.attr_boundary.data as FloatArray).forEach((v, x) => (next[x] += v));
        // Each block [u, receivers, columns]; a receiver reads a prefix of the senders, so columns of
        // senders at or after it are products nobody reads.
        for (const b of blocks) {
          const data = out[b.output].data as FloatArray;
          const cells = b.receivers.length * b.columns.length;
          const edgeOf = edgeCells.get(b)!;
          for (let r = 0; r < u; r++) {
            const p = chunk[r];
            const base = r * cells;
            for (let c = 0; c < cells; c++) if (edgeOf[c] >= 0) all[edgeOf[c] * N + p] += data[base + c] / perPrompt;
          }
        }
        done += u * work[bi];
        opts.onProgress?.(done, N * perPromptWork);
      }
      boundary = next;
    }
  }
  return { perPrompt: scoresOf, clean, ...(corrupt ? { corrupt } : {}), ...(cleanLogP ? { cleanLogP } : {}) };
}
