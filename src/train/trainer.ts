/**
 * The training loop for small GPT-2 or Llama-architecture task models: seeded init (init.ts), fresh IOI
 * or greater-than batches every step (data.ts), the objective graph with weight gradients (objective.ts) compiled once,
 * AdamW in place on the Float32Arrays the graph reads (adamw.ts), held-out accuracy and logit
 * difference every `evalEvery` steps.
 *
 * Determinism: the same recipe (threads included) gives bit-identical weights on the same machine.
 * Init and data come from seeded generators (no Math.random), AdamW is plain JS arithmetic, and
 * onnxruntime's CPU kernels for these graphs repeat exactly for a fixed intra-op thread count
 * (test/train/train.test.ts checks two runs with two threads). Different thread counts split some
 * reductions differently and change the last bits (measured: 1 vs 2 threads differ after a few
 * steps), hence `threads` is part of the recipe, with a fixed default of 2 rather than "one per
 * core". Other CPUs may pick other kernels (AVX2 vs AVX-512) with the same effect.
 */
import type * as ort from 'onnxruntime-node';
import { fail } from '../util/errors.ts';
import { Engine, runCompiled, toOrt } from '../onnx/session.ts';
import { HookedModel, rotaryFeeds } from '../model/hooked.ts';
import { tensorTable } from '../model/arch/index.ts';
import type { TensorSlot } from '../model/tensors.ts';
import { countParams } from '../compress/count.ts';
import { buildObjective } from './objective.ts';
import { initModel, type InitSpec } from './init.ts';
import { AdamW, decaysByDefault, lrAt, SCHEDULES, type Param, type Schedule } from './adamw.ts';
import { checkCurriculum, checkSeeds, dataSeedFor, heldOut, objectiveFeeds, trainBatch, TRAIN_TASKS, type CurriculumPhase, type DataSpec, type Example, type TrainTask } from './data.ts';
import { answeredCorrectly } from '../task/metrics.ts';
import { IOI_PROMPT_TYPES } from '../task/ioi.ts';
import type { Activation, ModelConfig, Weights } from '../model/types.ts';
import type { IoiPromptType } from '../task/types.ts';
import type { WriteDtype } from '../model/safetensors.ts';
import { trainingTokenizer, TRAIN_TOKENIZERS, type TrainTokenizer } from './tokenizer.ts';

/** Everything that determines a trained model (plus `threads` and `dtype`, which only affect speed and the file). */
export interface Recipe {
  // Architecture
  /** gpt2, or llama (RMSNorm, rotary, SwiGLU, grouped-query attention, untied). */
  arch: 'gpt2' | 'llama';
  nLayer: number;
  nHead: number;
  /** Key/value heads (llama); 0: nHead. */
  nKvHead: number;
  /** Rotary base (llama). */
  ropeTheta: number;
  dModel: number;
  nCtx: number;
  /** 0: 4·dModel. */
  dMlp: number;
  /** Layers without MLPs: all, or one flag per layer. */
  attnOnly: boolean | boolean[];
  /** Layers without attention: all, or one flag per layer. */
  mlpOnly: boolean | boolean[];
  /** 'auto': gelu_new for gpt2, silu for llama. */
  activation: Activation | 'auto';
  /** A separate unembedding; 'auto': tied for gpt2, untied for llama. */
  untied: boolean | 'auto';
  // Init
  initStd: number;
  residualScaling: boolean;
  // Optimisation
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  schedule: Schedule;
  /** Floor of the cosine/linear decay as a fraction of lr. */
  minLrRatio: number;
  weightDecay: number;
  /** Decay embeddings (wte, wpe, lm_head) too. */
  decayEmbeddings: boolean;
  betas: [number, number];
  adamEps: number;
  /** Max global gradient norm; 0: off. */
  clip: number;
  // Objective
  ceWeight: number;
  hingeWeight: number;
  margin: number;
  // Data
  /** What to train on: IOI, or greater-than (answer sets; cross-entropy of the correct set). */
  task: TrainTask;
  seed: number;
  /** First IOI generator seed of the training batches; -1: 1,000,000 · (1 + seed). */
  dataSeed: number;
  promptType: IoiPromptType;
  curriculum: CurriculumPhase[];
  prependBos: boolean;
  /** gpt2: GPT-2's BPE and vocabulary; task: a vocabulary of the task's words (saved as tokenizer.json). */
  tokenizer: TrainTokenizer;
  // Evaluation
  evalEvery: number;
  heldOutN: number;
  heldOutSeed: number;
  // Not part of the result
  threads: number;
  dtype: WriteDtype;
}

export const DEFAULT_RECIPE: Recipe = {
  arch: 'gpt2',
  nLayer: 2,
  nHead: 4,
  nKvHead: 0,
  ropeTheta: 10000,
  dModel: 64,
  nCtx: 64,
  dMlp: 0,
  attnOnly: false,
  mlpOnly: false,
  activation: 'auto',
  untied: 'auto',
  initStd: 0.02,
  residualScaling: true,
  steps: 2000,
  batch: 64,
  lr: 1e-3,
  warmup: 100,
  schedule: 'cosine',
  minLrRatio: 0.1,
  weightDecay: 0.01,
  decayEmbeddings: false,
  betas: [0.9, 0.999],
  adamEps: 1e-8,
  clip: 1,
  ceWeight: 1,
  hingeWeight: 1,
  margin: 2,
  task: 'ioi',
  seed: 0,
  dataSeed: -1,
  promptType: 'mixed',
  curriculum: [],
  prependBos: false,
  tokenizer: 'gpt2',
  evalEvery: 100,
  heldOutN: 200,
  heldOutSeed: 1,
  threads: 2,
  dtype: 'F16',
};

type Check = (v: unknown, key: string) => unknown;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const int = (min: number, max = Number.MAX_SAFE_INTEGER): Check => (v, k) => {
  if (!isNum(v) || !Number.isSafeInteger(v) || v < min || v > max) {
    fail(`${k}: expected an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
};
const num = (min: number, max = Infinity, open = false): Check => (v, k) => {
  if (!isNum(v) || v < min || v > max || (open && v === min)) {
    fail(`${k}: expected a number ${open ? '>' : '>='} ${min}${max < Infinity ? ` and <= ${max}` : ''}, got ${JSON.stringify(v)}`);
  }
  return v;
};
const bool: Check = (v, k) => {
  if (typeof v !== 'boolean') fail(`${k}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
};
const boolOrList: Check = (v, k) => {
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'boolean')) return [...v];
  fail(`${k}: expected true/false or a list of true/false per layer, got ${JSON.stringify(v)}`);
};
const oneOf = (choices: readonly string[]): Check => (v, k) => {
  if (typeof v !== 'string' || !choices.includes(v)) fail(`${k}: expected one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
};

const CHECKS: Record<keyof Recipe, Check> = {
  arch: oneOf(['gpt2', 'llama']),
  nLayer: int(1),
  nHead: int(1),
  nKvHead: int(0),
  ropeTheta: num(0, Infinity, true),
  dModel: int(1),
  nCtx: int(1),
  dMlp: int(0),
  attnOnly: boolOrList,
  mlpOnly: boolOrList,
  activation: oneOf(['auto', 'gelu_new', 'gelu', 'relu', 'gelu_fast', 'gelu_pytorch_tanh', 'silu']),
  untied: (v, k) => (v === 'auto' ? v : bool(v, k)),
  initStd: num(0),
  residualScaling: bool,
  steps: int(1),
  batch: int(1),
  lr: num(0),
  warmup: int(0),
  schedule: oneOf(SCHEDULES),
  minLrRatio: num(0, 1),
  weightDecay: num(0),
  decayEmbeddings: bool,
  betas: (v, k) => {
    if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => isNum(x) && x >= 0 && x < 1)) fail(`${k}: expected [beta1, beta2], each in [0, 1), got ${JSON.stringify(v)}`);
    return [v[0], v[1]];
  },
  adamEps: num(0, Infinity, true),
  clip: num(0),
  ceWeight: num(0),
  hingeWeight: num(0),
  margin: num(-Infinity),
  task: oneOf(TRAIN_TASKS),
  seed: int(0, 4294967295),
  dataSeed: (v, k) => (v === -1 ? -1 : int(0)(v, k)),
  promptType: oneOf(IOI_PROMPT_TYPES),
  curriculum: (v) => checkCurriculum(v, 0),
  prependBos: bool,
  tokenizer: oneOf(TRAIN_TOKENIZERS),
  evalEvery: int(1),
  heldOutN: int(1),
  heldOutSeed: int(0),
  threads: int(0),
  dtype: oneOf(['F32', 'F16', 'BF16']),
};

export const RECIPE_KEYS = Object.keys(DEFAULT_RECIPE) as (keyof Recipe)[];

/** Validate one recipe field on its own (no cross-field checks); returns the normalised value. */
export function checkRecipeField(key: string, value: unknown): unknown {
  if (!(key in CHECKS)) fail(`unknown recipe field ${JSON.stringify(key)} (known: ${RECIPE_KEYS.join(', ')})`);
  return CHECKS[key as keyof Recipe](value, key);
}

/** Defaults overridden by each layer in turn, each field checked on its own (no cross-field checks). */
export function mergeRecipe(...layers: Record<string, unknown>[]): Recipe {
  const out: Record<string, unknown> = { ...DEFAULT_RECIPE };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      out[k] = checkRecipeField(k, v);
    }
  }
  return out as unknown as Recipe;
}

/**
 * Defaults, overridden by each layer in turn (a recipe file, then flags); unknown keys and bad
 * values are user errors naming the key.
 */
export function resolveRecipe(...layers: Record<string, unknown>[]): Recipe {
  const r = mergeRecipe(...layers);
  if (r.dModel % r.nHead !== 0) fail(`dModel ${r.dModel} is not divisible by nHead ${r.nHead}`);
  if (r.nKvHead > 0 && r.arch !== 'llama') fail(`nKvHead: grouped-query attention needs arch llama (arch is ${r.arch})`);
  if (r.nKvHead > 0 && r.nHead % r.nKvHead !== 0) fail(`nKvHead: ${r.nKvHead} does not divide the ${r.nHead} query heads`);
  for (const k of ['attnOnly', 'mlpOnly'] as const) {
    const v = r[k];
    if (Array.isArray(v) && v.length !== r.nLayer) fail(`${k}: lists ${v.length} layers, the model has nLayer ${r.nLayer}`);
  }
  if (r.ceWeight === 0 && r.hingeWeight === 0) fail('ceWeight and hingeWeight are both 0: nothing to train on');
  if (r.warmup > r.steps) fail(`warmup (${r.warmup}) is longer than steps (${r.steps})`);
  checkCurriculum(r.curriculum, r.steps);
  checkSeeds(dataSpec(r), r.steps);
  return r;
}

export function initSpecOf(r: Recipe): InitSpec {
  return {
    arch: r.arch,
    nLayer: r.nLayer,
    nHead: r.nHead,
    nKvHead: r.nKvHead > 0 ? r.nKvHead : undefined,
    ropeTheta: r.ropeTheta,
    dModel: r.dModel,
    nCtx: r.nCtx,
    dMlp: r.dMlp > 0 ? r.dMlp : undefined,
    activation: r.activation === 'auto' ? undefined : r.activation,
    attnOnly: r.attnOnly,
    mlpOnly: r.mlpOnly,
    std: r.initStd,
    residualScaling: r.residualScaling,
    untied: r.untied === 'auto' ? undefined : r.untied,
  };
}

export function dataSpec(r: Recipe): DataSpec {
  return {
    task: r.task,
    promptType: r.promptType,
    curriculum: r.curriculum,
    dataSeed: r.dataSeed === -1 ? dataSeedFor(r.seed) : r.dataSeed,
    heldOutSeed: r.heldOutSeed,
    heldOutN: r.heldOutN,
    prependBos: r.prependBos,
  };
}

export interface StepLog {
  /** 1-based: the number of updates done. */
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Fraction of the batch answered correctly (IOI: logit[IO] > logit[S]), before this step's update. */
  trainAccuracy: number;
  trainLogitDiff: number;
}

export interface EvalLog {
  /** Updates done when evaluated (0: at init). */
  step: number;
  n: number;
  accuracy: number;
  /** Mean (set) logit difference and its spread. */
  logitDiff: number;
  logitDiffStd: number;
  /** Answer-set tasks (greater-than): the probability difference, the task's own metric. */
  probDiff?: number;
  probDiffStd?: number;
}

export interface TrainResult {
  recipe: Recipe;
  config: ModelConfig;
  weights: Weights;
  /** The task vocabulary's tokenizer.json, when the recipe trains with one. */
  tokenizerJson?: Record<string, unknown>;
  steps: StepLog[];
  evals: EvalLog[];
  timing: { seconds: number; msPerStep: number; msGraph: number; msOptimizer: number; msData: number };
}

export interface TrainHooks {
  engine?: Engine;
  onStep?: (log: StepLog) => void;
  onEval?: (log: EvalLog) => void;
}

/**
 * Held-out accuracy (the highest-logit answer is a correct one; IOI: logit[IO] > logit[S]) and mean
 * logit difference of a model on examples; for answer sets also the probability difference.
 */
export async function evaluate(model: HookedModel, examples: Example[], chunk = 256): Promise<Omit<EvalLog, 'step'>> {
  const sets = examples.some((e) => e.correct.length !== 1 || e.incorrect.length !== 1);
  let correct = 0;
  const ld: number[] = [];
  const pd: number[] = [];
  for (let i = 0; i < examples.length; i += chunk) {
    const part = examples.slice(i, i + chunk);
    const out = await model.run({ tokens: part.map((e) => e.tokens), logits: 'answers', answers: part });
    const A = out.answerLogits!.dims[1];
    part.forEach((e, b) => {
      if (answeredCorrectly(out.answerLogits!.data.subarray(b * A, b * A + e.correct.length + e.incorrect.length), e.correct.length)) correct++;
      ld.push(out.metric![b]);
    });
    if (sets) {
      const p = await model.run({ tokens: part.map((e) => e.tokens), logits: 'answers', metric: 'prob-diff', answers: part });
      pd.push(...p.metric!);
    }
  }
  const n = examples.length;
  const spread = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return { mean, std: Math.sqrt(Math.max(0, xs.reduce((a, x) => a + x * x, 0) / xs.length - mean * mean)) };
  };
  const l = spread(ld);
  const out: Omit<EvalLog, 'step'> = { n, accuracy: correct / n, logitDiff: l.mean, logitDiffStd: l.std };
  if (sets) {
    const p = spread(pd);
    out.probDiff = p.mean;
    out.probDiffStd = p.std;
  }
  return out;
}

/** Parameters trained: every weight the objective has a gradient for, except output biases of absent blocks. */
function trainable(cfg: ModelConfig, slot: TensorSlot): boolean {
  if (slot.layer === undefined) return true;
  const layer = cfg.layers[slot.layer];
  if (slot.role === 'o.b') return layer.heads.length > 0;
  if (slot.role === 'down.b') return layer.mlp;
  return true;
}

export async function train(recipe: Recipe, hooks: TrainHooks = {}): Promise<TrainResult> {
  const t0 = performance.now();
  const engine = hooks.engine ?? new Engine({ device: 'cpu', threads: recipe.threads });
  const { tokenizer: tok, json: tokenizerJson } = trainingTokenizer(recipe.tokenizer, recipe.task, recipe.prependBos);
  const { config, weights } = initModel({ ...initSpecOf(recipe), vocabSize: tok.vocabSize, bosId: tok.bos?.id }, recipe.seed);
  const data = dataSpec(recipe);
  const held = heldOut(data, tok);

  const sets = recipe.task !== 'ioi';
  const obj = buildObjective(config, 'float32', {
    ceWeight: recipe.ceWeight,
    hingeWeight: recipe.hingeWeight,
    margin: recipe.margin,
    sets,
  });
  // Weight feeds wrap the parameter arrays themselves: AdamW's in-place updates are what the next run reads.
  const weightFeeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of weights) weightFeeds[name] = toOrt({ data: tensor.data, dims: tensor.shape }, 'float32');
  const slots = new Map(tensorTable(config).map((s) => [s.name, s]));
  const params: Param[] = obj.weightNames
    .filter((n) => trainable(config, slots.get(n)!))
    .map((name) => {
      const t = weights.get(name);
      if (!t) throw new Error(`the objective reads weight ${name}, which the model lacks`);
      return { name, data: t.data, decay: decaysByDefault(slots.get(name)!.role, recipe.decayEmbeddings) };
    });
  const opt = new AdamW(params, {
    beta1: recipe.betas[0],
    beta2: recipe.betas[1],
    eps: recipe.adamEps,
    weightDecay: recipe.weightDecay,
    clip: recipe.clip,
  });
  const evalModel = new HookedModel({ config, weights, name: 'training' }, engine, 'float32');
  const sched = { lr: recipe.lr, warmup: recipe.warmup, steps: recipe.steps, schedule: recipe.schedule, minLrRatio: recipe.minLrRatio };

  const steps: StepLog[] = [];
  const evals: EvalLog[] = [];
  const doEval = async (step: number) => {
    const e: EvalLog = { step, ...(await evaluate(evalModel, held)) };
    evals.push(e);
    hooks.onEval?.(e);
  };
  await doEval(0);
  let msGraph = 0;
  let msOpt = 0;
  let msData = 0;
  // Compiled once: engine.run would serialise and hash the graph again on every step.
  const compiled = await engine.compile(obj.graph);
  const tLoop = performance.now();
  for (let s = 0; s < recipe.steps; s++) {
    const ta = performance.now();
    const batch = trainBatch(data, s, recipe.batch, tok);
    const feeds = { ...weightFeeds, ...objectiveFeeds(batch, config.vocabSize, config.nCtx, sets) };
    if (config.positions.kind === 'rotary') Object.assign(feeds, rotaryFeeds(config, feeds.tokens.dims[1], 'float32'));
    const tb = performance.now();
    const out = await runCompiled(compiled, feeds);
    const tc = performance.now();
    const loss = out.loss.data[0] as number;
    if (!Number.isFinite(loss)) fail(`training diverged at step ${s + 1}: loss ${loss} (try a lower lr or clipping)`);
    const metric = out.metric.data as Float32Array;
    let right = 0;
    let diff = 0;
    metric.forEach((m, b) => {
      diff += m;
      if (!sets) {
        if (m > 0) right++;
        return;
      }
      const A = out.answer_logits.dims[1];
      const e = batch[b]!;
      if (answeredCorrectly((out.answer_logits.data as Float32Array).subarray(b * A, b * A + e.correct.length + e.incorrect.length), e.correct.length)) right++;
    });
    const lr = lrAt(s, sched);
    const info = opt.step(params.map((p) => out[`grad:${p.name}`].data as Float32Array), lr);
    const td = performance.now();
    msData += tb - ta;
    msGraph += tc - tb;
    msOpt += td - tc;
    const log: StepLog = { step: s + 1, loss, lr, gradNorm: info.gradNorm, trainAccuracy: right / metric.length, trainLogitDiff: diff / metric.length };
    steps.push(log);
    hooks.onStep?.(log);
    if ((s + 1) % recipe.evalEvery === 0 || s + 1 === recipe.steps) await doEval(s + 1);
  }
  const n = recipe.steps;
  return {
    recipe,
    config,
    weights,
    tokenizerJson,
    steps,
    evals,
    timing: {
      seconds: (performance.now() - t0) / 1000,
      msPerStep: (performance.now() - tLoop) / n,
      msGraph: msGraph / n,
      msOptimizer: msOpt / n,
      msData: msData / n,
    },
  };
}

/** Parameter counts: all, and without the embeddings (token, position, unembedding). */
export function parameterCounts(config: ModelConfig): { total: number; nonEmbedding: number } {
  const c = countParams({ config });
  return { total: c.n_params, nonEmbedding: c.n_params_non_embedding };
}
