/**
 * HookedModel: runs the forward graph of forward.ts, for any architecture, with TransformerLens-style conveniences —
 * run with cache (any hook values out), logits only where and for what is needed, starting from a
 * cached residual stream, per-row interventions on hook_z and hook_mlp_out, and gradients of the
 * task metric with respect to hook points.
 *
 * Token ids given to `run` (prompts, answers, selected tokens) are the tokenizer's original ids;
 * a model with a trimmed vocabulary maps them to its own rows (`vocab`, src/model/vocab.ts), and a
 * token it does not keep is a user error naming it. Logit columns are the model's own (local) ids:
 * `vocab.original(column)` is the token.
 */
import type * as ort from 'onnxruntime-node';
import { Graph } from '../onnx/graph.ts';
import { gradients } from '../onnx/autodiff.ts';
import { Engine, runCompiled, toOrt, type CompiledGraph } from '../onnx/session.ts';
import { buildForward, hookPrefix, type ReplacementShape } from './forward.ts';
import type { EdgeSpec } from './edges.ts';
import type { MetricName, Readout } from './readout.ts';
import { rotaryTables } from './arch/rope.ts';
import { mlpWidth, type ModelConfig, type ModelData, type LoadedModel, type Weights } from './types.ts';
import { VocabMap } from './vocab.ts';

/**
 * What a run reads out: nothing ('none', for caching), full logits at every position ('all'), the
 * answers' logits and the task metric at each row's metric position ('answers'), or those plus the
 * full-vocabulary logits there ('last'). See readout.ts.
 */
export type LogitsSpec = 'none' | 'all' | 'answers' | 'last';

/** A prompt's answer sets: the metric compares the correct tokens' logits (or probabilities) with the incorrect ones'. */
export interface Answers {
  correct: number[];
  incorrect: number[];
}

export type FloatArray = Float32Array | Float64Array;

export interface HostValue {
  data: FloatArray;
  dims: number[];
}

/** Replace a hook's value where keep is 0. keep: one entry per row (and head, for hook_z). */
export interface Intervention {
  /** hook_z: [B * nHeadsInLayer]; hook_mlp_out: [B]. 1 keeps the model's value, 0 replaces it. */
  keep: FloatArray;
  /** 'const': one vector ([k, d_head] for hook_z, [d_model] for hook_mlp_out); 'row': [B, T, ...] per row and position. */
  value: { shape: ReplacementShape; data: FloatArray };
}

/** Replace MLP neurons' activations where keep is 0, by one constant per neuron. */
export interface NeuronIntervention {
  /** [B * m]: 1 keeps the neuron's activation on that row, 0 replaces it. */
  keep: FloatArray;
  /** [m] */
  value: FloatArray;
}

export interface RunOptions {
  /** Ragged token lists (right-padded internally), or a cached residual stream with `startLayer`. */
  tokens?: number[][];
  resid?: HostValue;
  /** Layer position to start at (requires `resid` [B, T, d] = that layer's hook_resid_pre). */
  startLayer?: number;
  /** Per-row lengths when `resid` is given (for default metric positions). */
  lengths?: number[];
  /** Stop after this many layer positions (for caching residual streams); logits must be 'none'. */
  endLayer?: number;
  /** Hook values to return, by TransformerLens name. */
  hooks?: string[];
  logits?: LogitsSpec;
  /** The metric computed by logits 'answers' / 'last' (default logit-diff). */
  metric?: MetricName;
  /** Per-row metric position (default: each row's last real token). */
  positions?: number[];
  /** Per-row answer sets, for logits 'answers' / 'last'. */
  answers?: Answers[];
  /** Per-row clean log-probabilities [V] at the metric position, for the kl metric. */
  cleanLogProbs?: FloatArray[];
  /** Per-row token ids (the same count K in every row) whose logits at the metric position are wanted: `selected` [B, K]. */
  selectTokens?: number[][];
  /** Interventions by layer position. */
  z?: Map<number, Intervention>;
  mlp?: Map<number, Intervention>;
  /** MLP neurons (mlp.hook_post) by layer position: keep [B * m], value one constant [m]. */
  neurons?: Map<number, NeuronIntervention>;
  /** Edge interventions: the spec and the graph inputs it calls for, by name (see edges.ts). */
  edges?: EdgeRun;
  /**
   * Names whose gradient of Σ_rows rowWeight·metric is wanted (logits 'answers' or 'last'): hook
   * names, or intervention inputs (`z_keep.{i}`, `z_value.{i}`, `mlp_keep.{i}`, `mlp_value.{i}`),
   * whose gradients have the shapes those inputs are fed with (keep masks as continuous masks).
   */
  gradients?: string[];
  /** Default: 1 for every row. */
  rowWeights?: number[];
}

/** Inputs of an edge-intervened run, already laid out as edges.ts documents (float data is cast to the model's dtype). */
export interface EdgeRun {
  spec: EdgeSpec;
  feeds: Record<string, HostValue | { data: BigInt64Array; dims: number[] }>;
}

export interface RunResult {
  /** [B] the metric at the metric position. */
  metric?: FloatArray;
  /** [B, A] logits of each row's answers, correct set first, then incorrect (rows padded to A). */
  answerLogits?: HostValue;
  /** Full logits, one column per local token id (see `HookedModel.vocab`). */
  logits?: HostValue;
  /** [B, K] logits of `selectTokens`. */
  selected?: HostValue;
  hooks: Map<string, HostValue>;
  grads: Map<string, HostValue>;
  /** Padded length used for this run. */
  seqLen: number;
}

export const PAD_TOKEN = 0;

/** Intervention inputs a run can differentiate with respect to (see RunOptions.gradients). */
const INTERVENTION_INPUT = /^(z|mlp)_(keep|value)\.\d+$/;

function toHost(t: ort.Tensor): HostValue {
  return { data: t.data as FloatArray, dims: [...t.dims] };
}

export class HookedModel {
  readonly config: ModelConfig;
  readonly name: string;
  readonly dtype: 'float32' | 'float64';
  /** Original token ids ↔ the model's own rows (the identity unless the vocabulary was trimmed). */
  readonly vocab: VocabMap;
  private feeds: Record<string, ort.Tensor> = {};
  private compiled = new Map<string, Promise<CompiledGraph>>();
  /** Compiled graphs with edge interventions: their start layer (releaseEdgeGraphsAfter). */
  private edgeStarts = new Map<string, number>();
  private ropeFeeds = new Map<number, Record<string, ort.Tensor>>();

  constructor(
    model: LoadedModel | (ModelData & { name?: string }),
    readonly engine: Engine = new Engine(),
    dtype: 'float32' | 'float64' = 'float32',
  ) {
    this.config = model.config;
    this.name = ('name' in model && model.name) || 'model';
    this.dtype = dtype;
    this.vocab = VocabMap.of(model.config);
    this.setWeights(model.weights);
  }

  /** (Re)bind weight tensors, e.g. after a training step; compiled graphs stay valid. */
  setWeights(weights: Weights): void {
    const f: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of weights) {
      const data = this.dtype === 'float64' ? Float64Array.from(tensor.data) : tensor.data;
      f[name] = toOrt({ data, dims: tensor.shape }, this.dtype);
    }
    this.feeds = f;
  }

  get weightFeeds(): Record<string, ort.Tensor> {
    return this.feeds;
  }

  /** Layer position of the layer whose original index is `sourceLayer`. */
  layerPosition(sourceLayer: number): number {
    const i = this.config.layers.findIndex((l) => l.sourceLayer === sourceLayer);
    if (i < 0) throw new Error(`layer ${sourceLayer} is not in this model`);
    return i;
  }

  hookName(layerPos: number, hook: string): string {
    return `${hookPrefix(this.config.layers[layerPos])}.${hook}`;
  }

  /** An answer set as the model's own logit columns (a trimmed vocabulary renumbers them). */
  localAnswers(a: Answers): Answers {
    return { correct: this.vocab.toLocal(a.correct), incorrect: this.vocab.toLocal(a.incorrect) };
  }

  private graphFor(opts: RunOptions, logits: LogitsSpec): Promise<CompiledGraph> {
    const zSpec = new Map([...(opts.z ?? new Map()).entries()].map(([i, v]) => [i, v.value.shape] as const));
    const mSpec = new Map([...(opts.mlp ?? new Map()).entries()].map(([i, v]) => [i, v.value.shape] as const));
    const nSpec = new Set([...(opts.neurons ?? new Map()).keys()]);
    const fromResid = opts.resid !== undefined;
    // The last layer only at the metric positions, unless someone wants to look inside it.
    const lastLayer = this.config.layers.at(-1);
    const lastPrefix = lastLayer ? `${hookPrefix(lastLayer)}.` : '';
    const lastResidPre = `${lastPrefix}hook_resid_pre`;
    const looksInsideLast = [...(opts.hooks ?? []), ...(opts.gradients ?? [])].some((h) => h.startsWith(lastPrefix) && h !== lastResidPre);
    const lastLayerAtMetric = lastLayer !== undefined && (logits === 'answers' || logits === 'last') && !looksInsideLast;
    const metric = opts.metric ?? 'logit-diff';
    const key = JSON.stringify({
      a: lastLayerAtMetric,
      t: opts.selectTokens !== undefined,
      r: fromResid,
      s: opts.startLayer ?? 0,
      e: opts.endLayer,
      l: logits,
      mt: metric,
      h: opts.hooks ?? [],
      g: opts.gradients ?? [],
      z: [...zSpec.entries()].sort(),
      m: [...mSpec.entries()].sort(),
      n: [...nSpec].sort((a, b) => a - b),
      ed: opts.edges?.spec,
    });
    let c = this.compiled.get(key);
    if (!c) {
      const g = new Graph(this.dtype, { differentiated: (opts.gradients ?? []).length > 0 });
      const readout: Readout =
        logits === 'none' ? { kind: 'none' } : logits === 'all' ? { kind: 'logits' } : { kind: 'metric', metric, logits: logits === 'last', select: opts.selectTokens !== undefined };
      const fv = buildForward(g, this.config, {
        startLayer: opts.startLayer ?? 0,
        fromResid,
        lastLayerAtMetric,
        endLayer: opts.endLayer,
        readout,
        interventions: { z: zSpec, mlp: mSpec, neurons: nSpec, edges: opts.edges?.spec },
      });
      const endLayer = opts.endLayer ?? this.config.layers.length;
      for (const h of opts.hooks ?? []) {
        const v = fv.hooks.get(h);
        if (!v) throw new Error(`unknown hook point ${h} (or not computed in layers ${opts.startLayer ?? 0}..${endLayer - 1})`);
        g.output(v, `hook:${h}`);
      }
      if (fv.metric) g.output(fv.metric, 'metric');
      if (fv.answerLogits) g.output(fv.answerLogits, 'answer_logits');
      if (fv.logits) g.output(fv.logits, 'logits');
      if (opts.selectTokens !== undefined) {
        if (!fv.selected) throw new Error('selectTokens needs logits answers or last');
        g.output(fv.selected, 'selected');
      }
      const gradNames = opts.gradients ?? [];
      if (gradNames.length > 0) {
        if (!fv.metric) throw new Error('gradients need the metric (logits answers or last)');
        const rw = g.input('row_weights', ['B']);
        const scalar = g.reduceSum(g.mul(fv.metric, rw), [0], false);
        const targets = gradNames.map((h) => {
          const v = fv.hooks.get(h) ?? (INTERVENTION_INPUT.test(h) ? g.inputs.find((i) => i.name === h) : undefined);
          if (!v) throw new Error(`unknown hook point ${h}`);
          return v;
        });
        gradients(scalar, targets).forEach((d, i) => g.output(d, `grad:${gradNames[i]}`));
      }
      c = this.engine.compile(g);
      this.compiled.set(key, c);
      if (opts.edges) this.edgeStarts.set(key, opts.startLayer ?? 0);
      c.catch(() => this.compiled.delete(key));
    }
    return c;
  }

  /** The start layers of the compiled edge-intervention graphs this model holds. */
  get edgeGraphStarts(): number[] {
    return [...this.edgeStarts.values()];
  }

  /**
   * Release the compiled edge-intervention graphs of runs starting after layer position `layer`
   * (ACDC over edges, which never comes back to a layer it has decided, calls this as it moves
   * down; each layer leaves a few graphs holding ~0.3 GiB each on the GPT-2-small shape). They
   * are compiled again if needed.
   */
  async releaseEdgeGraphsAfter(layer: number): Promise<void> {
    const gone = new Set<CompiledGraph>();
    for (const [key, start] of [...this.edgeStarts]) {
      if (start <= layer) continue;
      const c = await this.compiled.get(key)?.catch(() => undefined);
      this.edgeStarts.delete(key);
      if (c) gone.add(c);
    }
    if (gone.size === 0) return;
    // Every key that compiled to one of them (the engine shares a session between equal graphs).
    for (const [key, p] of [...this.compiled]) {
      const c = await p.catch(() => undefined);
      if (c && gone.has(c)) {
        this.compiled.delete(key);
        this.edgeStarts.delete(key);
      }
    }
    for (const c of gone) await this.engine.releaseCompiled(c);
  }

  async run(opts: RunOptions): Promise<RunResult> {
    const start = opts.startLayer ?? 0;
    const logits = opts.logits ?? 'none';
    const feeds: Record<string, ort.Tensor> = { ...this.feeds };
    let B: number;
    let T: number;
    let lengths: number[];
    if (opts.resid === undefined) {
      if (start !== 0) throw new Error('a run from a later layer needs resid');
      const toks = opts.tokens?.map((t) => this.vocab.toLocal(t));
      if (!toks || toks.length === 0) throw new Error('run needs tokens');
      B = toks.length;
      lengths = toks.map((t) => t.length);
      T = Math.max(...lengths);
      if (T > this.config.nCtx) throw new Error(`prompt of ${T} tokens exceeds the context of ${this.config.nCtx}`);
      const data = new BigInt64Array(B * T).fill(BigInt(PAD_TOKEN));
      toks.forEach((t, b) => t.forEach((id, j) => (data[b * T + j] = BigInt(id))));
      feeds.tokens = toOrt({ data, dims: [B, T] }, 'int64');
    } else {
      const r = opts.resid;
      [B, T] = r.dims;
      lengths = opts.lengths ?? new Array(B).fill(T);
      feeds.resid = toOrt({ data: this.cast(r.data), dims: r.dims }, this.dtype);
    }
    const d = this.config.dModel;
    const dh = this.config.dHead;
    for (const [i, iv] of opts.z ?? new Map<number, Intervention>()) {
      const k = this.config.layers[i].heads.length;
      feeds[`z_keep.${i}`] = toOrt({ data: this.cast(iv.keep), dims: [B, 1, k, 1] }, this.dtype);
      const dims = iv.value.shape === 'row' ? [B, T, k, dh] : [1, 1, k, dh];
      feeds[`z_value.${i}`] = toOrt({ data: this.cast(iv.value.data), dims }, this.dtype);
    }
    for (const [i, iv] of opts.mlp ?? new Map<number, Intervention>()) {
      feeds[`mlp_keep.${i}`] = toOrt({ data: this.cast(iv.keep), dims: [B, 1, 1] }, this.dtype);
      const dims = iv.value.shape === 'row' ? [B, T, d] : [1, 1, d];
      feeds[`mlp_value.${i}`] = toOrt({ data: this.cast(iv.value.data), dims }, this.dtype);
    }
    for (const [i, iv] of opts.neurons ?? new Map<number, NeuronIntervention>()) {
      const m = mlpWidth(this.config, this.config.layers[i]);
      feeds[`neuron_keep.${i}`] = toOrt({ data: this.cast(iv.keep), dims: [B, 1, m] }, this.dtype);
      feeds[`neuron_value.${i}`] = toOrt({ data: this.cast(iv.value), dims: [1, 1, m] }, this.dtype);
    }
    for (const [name, v] of Object.entries(opts.edges?.feeds ?? {})) {
      feeds[name] = v.data instanceof BigInt64Array ? toOrt({ data: v.data, dims: v.dims }, 'int64') : toOrt({ data: this.cast(v.data as FloatArray), dims: v.dims }, this.dtype);
    }
    if (this.config.positions.kind === 'rotary') Object.assign(feeds, this.rotaryFeeds(T));
    if (logits === 'answers' || logits === 'last') {
      const pos = opts.positions ?? lengths.map((n) => n - 1);
      const flat = new BigInt64Array(B);
      pos.forEach((p, b) => (flat[b] = BigInt(b * T + p)));
      feeds.flat_pos = toOrt({ data: flat, dims: [B] }, 'int64');
      feeds.metric_pos = toOrt({ data: BigInt64Array.from(pos, (p) => BigInt(p)), dims: [B] }, 'int64');
      const metric = opts.metric ?? 'logit-diff';
      // Without answers (a run for the full logits) the metric reads local row 0, whatever it is.
      const answers = opts.answers?.map((a) => this.localAnswers(a)) ?? new Array<Answers>(B).fill({ correct: [0], incorrect: [0] });
      if (answers.length !== B) throw new Error(`run: ${answers.length} answer sets for ${B} rows`);
      const { ids, weights, A } = answerFeeds(answers, metric);
      feeds.answer_ids = toOrt({ data: ids, dims: [B, A] }, 'int64');
      feeds.answer_weights = toOrt({ data: this.cast(weights), dims: [B, A] }, this.dtype);
      if (metric === 'kl') {
        const V = this.config.vocabSize;
        const clean = opts.cleanLogProbs;
        if (!clean || clean.length !== B) throw new Error('the kl metric needs the clean log-probabilities of every row');
        const data = this.dtype === 'float64' ? new Float64Array(B * V) : new Float32Array(B * V);
        clean.forEach((row, b) => data.set(row, b * V));
        feeds.clean_logp = toOrt({ data, dims: [B, V] }, this.dtype);
      }
      if (opts.selectTokens) {
        const K = opts.selectTokens[0]?.length ?? 0;
        if (opts.selectTokens.length !== B || opts.selectTokens.some((r) => r.length !== K)) throw new Error('selectTokens needs one list of K tokens per row');
        feeds.select_tokens = toOrt({ data: BigInt64Array.from(this.vocab.toLocal(opts.selectTokens.flat()), (t) => BigInt(t)), dims: [B, K] }, 'int64');
      }
    }
    if (opts.gradients && opts.gradients.length > 0) {
      const rw = opts.rowWeights ?? new Array(B).fill(1);
      feeds.row_weights = toOrt({ data: this.cast(Float64Array.from(rw)), dims: [B] }, this.dtype);
    }
    const compiled = await this.graphFor(opts, logits);
    const out = await runCompiled(compiled, feeds);
    const result: RunResult = { hooks: new Map(), grads: new Map(), seqLen: T };
    for (const [name, t] of Object.entries(out)) {
      if (name === 'metric') result.metric = t.data as FloatArray;
      else if (name === 'answer_logits') result.answerLogits = toHost(t);
      else if (name === 'logits') result.logits = toHost(t);
      else if (name === 'selected') result.selected = toHost(t);
      else if (name.startsWith('hook:')) result.hooks.set(name.slice(5), toHost(t));
      else if (name.startsWith('grad:')) result.grads.set(name.slice(5), toHost(t));
    }
    return result;
  }

  /** cos/sin tables for positions 0..T−1, once per length. */
  private rotaryFeeds(T: number): Record<string, ort.Tensor> {
    let f = this.ropeFeeds.get(T);
    if (!f) {
      f = rotaryFeeds(this.config, T, this.dtype);
      this.ropeFeeds.set(T, f);
    }
    return f;
  }

  private cast(a: FloatArray): FloatArray {
    if (this.dtype === 'float64') return a instanceof Float64Array ? a : Float64Array.from(a);
    return a instanceof Float32Array ? a : Float32Array.from(a);
  }
}

/**
 * Answer sets as the metric readout's inputs: ids [B, A] (correct set, then incorrect set, then
 * padding) and weights — ±1/|set| for logit-diff (mean over each set), ±1 for prob-diff (sums), 0 on
 * padding.
 */
export function answerFeeds(answers: Answers[], metric: MetricName): { ids: BigInt64Array; weights: Float64Array; A: number } {
  const A = Math.max(1, ...answers.map((a) => a.correct.length + a.incorrect.length));
  const B = answers.length;
  const ids = new BigInt64Array(B * A);
  const weights = new Float64Array(B * A);
  answers.forEach((a, b) => {
    const wc = metric === 'logit-diff' ? 1 / a.correct.length : 1;
    const wi = metric === 'logit-diff' ? -1 / a.incorrect.length : -1;
    [...a.correct, ...a.incorrect].forEach((id, j) => {
      ids[b * A + j] = BigInt(id);
      weights[b * A + j] = j < a.correct.length ? wc : wi;
    });
  });
  return { ids, weights, A };
}

/** The rotary inputs `rope_cos`/`rope_sin` [T, dims/2] of a run of length T, computed in float64. */
export function rotaryFeeds(cfg: ModelConfig, T: number, dtype: 'float32' | 'float64'): Record<string, ort.Tensor> {
  const rope = cfg.positions;
  if (rope.kind !== 'rotary') throw new Error('not a rotary model');
  const { cos, sin } = rotaryTables(rope, T);
  const dims = [T, rope.dims / 2];
  const cast = (a: Float64Array) => (dtype === 'float64' ? a : Float32Array.from(a));
  return { rope_cos: toOrt({ data: cast(cos), dims }, dtype), rope_sin: toOrt({ data: cast(sin), dims }, dtype) };
}
