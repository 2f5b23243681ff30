/**
 * Optimal ablation (Li & Janson 2024; SPEC "Search"): a removed component's output is replaced by
 * one constant vector (a head: d_head values at its hook_z slot; an MLP: d_model values at
 * hook_mlp_out), learned by gradient ascent on the task metric with carve's own gradients (the
 * gradient of the metric with respect to the intervention's replacement input), starting from the
 * mean. Like the mean, the constant folds into a bias when the component is cut out.
 *
 * What the constants are trained for:
 *  - `learnConstants`: a fixed, seeded family of removal sets — configuration j removes each
 *    component independently with probability (j + ½)/J — on every prompt, all at once: constants
 *    that serve whatever else is removed with them (scan, every pruning order, the search);
 *  - `refineConstants`: one removed set (the circuit's complement, when compressing): the
 *    constants that keep the metric highest with exactly that set replaced.
 * The objective is the mean metric over rows (configuration × prompt), maximised for logit-diff and
 * prob-diff; for kl the mean KL from the clean run, minimised. Full-batch Adam, deterministic for
 * a seed (and a thread count). Each step's forward pass measures the objective at the current
 * constants exactly, and the best constants seen are returned — the start (the mean) included, so
 * the result is never worse than the mean on the prompts and configurations it was trained on.
 */
import type { FloatArray, HookedModel, Intervention } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import { fail } from '../util/errors.ts';
import { AdamW } from '../train/adamw.ts';
import { MT19937 } from '../task/mt19937.ts';
import { listComponents, type Component } from './components.ts';
import { allocLike, collectActivations, meanOverTokens } from './activations.ts';
import { componentHooks, computeReplacements, removalInterventions, type Ablation, type MeanOver, type Replacements } from './replacements.ts';
import { metricRun, metricSign, prepareMetric, type MetricName, type TaskMetric } from './metric.ts';
import { modelFingerprint } from './fingerprint.ts';

export const CONSTANTS_FORMAT = 'carve-constants';

export const OPTIMAL_DEFAULTS = {
  /** Adam steps. */
  steps: 100,
  /** Step size, as a fraction of each component's activation spread (RMS deviation from its mean). */
  lr: 0.1,
  /** Removal sets in the training family of `learnConstants`. */
  configs: 8,
  seed: 0,
};

export interface OptimalOptions {
  metric?: MetricName;
  meanOver?: MeanOver;
  seed?: number;
  steps?: number;
  lr?: number;
  configs?: number;
  /** The components that may be removed (default: every component). */
  components?: Component[];
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/** How a constants file's values were obtained. */
export interface ConstantsTraining {
  /** random-removals: the seeded family of removal sets; removed-set: one set, `removed`. */
  objective: 'random-removals' | 'removed-set';
  metric: MetricName;
  seed: number;
  steps: number;
  lr: number;
  configs?: number;
  removed?: string[];
  mean_over: MeanOver;
  /** The objective (mean metric over configurations and prompts) at the start and at the constants kept. */
  objective_start: number;
  objective_final: number;
  /** The step whose constants were kept (0: the start — training did not improve on it). */
  best_step: number;
}

/** The saved form: reproducible results (`--constants FILE`) and the values folded into a compressed model. */
export interface ConstantsFile {
  format: typeof CONSTANTS_FORMAT;
  version: 1;
  model: string;
  model_fingerprint: string;
  task: string;
  training: ConstantsTraining;
  /** Per component name: a head's d_head values (its hook_z slot) or an MLP's d_model values. */
  components: Record<string, number[]>;
}

interface Spread {
  /** Per layer position: one scale per value of the layer's replacement vector. */
  z: Map<number, Float64Array>;
  mlp: Map<number, Float64Array>;
}

/** Means (the start) and per-component spreads of every component's output over the meanOver prompts. */
async function meansAndSpreads(model: HookedModel, task: Task, meanOver: MeanOver, batchSize: number): Promise<{ repl: Replacements; spread: Spread }> {
  const { z, mlp } = componentHooks(model);
  const prompts = task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt));
  const acts = await collectActivations(model, prompts, [...z.values(), ...mlp.values()], batchSize);
  const repl: Replacements = { ablation: 'optimal', meanOver, z: new Map(), mlp: new Map(), tMax: acts.tMax };
  const spread: Spread = { z: new Map(), mlp: new Map() };
  const dh = model.config.dHead;
  // RMS deviation from the mean over real tokens, per component (a head's slot, an MLP's vector).
  const rms = (hook: string, mean: FloatArray, span: number): Float64Array => {
    const data = acts.values.get(hook)!;
    const width = acts.widths.get(hook)!;
    const groups = width / span;
    const ss = new Float64Array(groups);
    let n = 0;
    acts.lengths.forEach((len, p) => {
      for (let t = 0; t < len; t++) {
        const off = (p * acts.tMax + t) * width;
        for (let j = 0; j < width; j++) ss[Math.floor(j / span)] += (data[off + j] - mean[j]) ** 2;
        n++;
      }
    });
    const out = new Float64Array(width);
    for (let j = 0; j < width; j++) out[j] = Math.max(1e-6, Math.sqrt(ss[Math.floor(j / span)] / (n * span)));
    return out;
  };
  for (const [pos, h] of z) {
    const m = meanOverTokens(acts, h);
    repl.z.set(pos, { shape: 'const', data: m });
    spread.z.set(pos, rms(h, m, dh));
  }
  for (const [pos, h] of mlp) {
    const m = meanOverTokens(acts, h);
    repl.mlp.set(pos, { shape: 'const', data: m });
    spread.mlp.set(pos, rms(h, m, model.config.dModel));
  }
  return { repl, spread };
}

/** The seeded family: configuration j removes each component with probability (j + ½)/J; each component is removed somewhere. */
export function removalFamily(comps: Component[], count: number, seed: number): Component[][] {
  const rng = new MT19937();
  rng.initGenrand(seed >>> 0);
  const family = Array.from({ length: count }, (_, j) => comps.filter(() => rng.nextDouble() < (j + 0.5) / count));
  const seen = new Set(family.flat().map((c) => c.name));
  for (const c of comps) if (!seen.has(c.name)) family[count - 1].push(c);
  return family.map((cfg) => comps.filter((c) => cfg.includes(c)));
}

interface AscentResult {
  repl: Replacements;
  start: number;
  best: number;
  bestStep: number;
}

/**
 * Full-batch Adam on the constants of the layers in `repl`, maximising sign · mean metric over
 * rows (configuration × prompt). The parameters are u with constant = start + spread ⊙ u.
 */
async function ascend(
  model: HookedModel,
  task: Task,
  tm: TaskMetric,
  configs: Component[][],
  start: Replacements,
  spread: Spread,
  opts: { steps: number; lr: number; batchSize: number; onProgress?: (done: number, total: number) => void },
): Promise<AscentResult> {
  const sign = metricSign(tm.name);
  const lengths = task.pairs.map((p) => p.clean.length);
  // Rows by prompt length (less padding), then configuration and prompt.
  const rows = configs.flatMap((removed, c) => task.pairs.map((_, p) => ({ prompt: p, removed, c })));
  rows.sort((a, b) => lengths[a.prompt] - lengths[b.prompt] || a.c - b.c || a.prompt - b.prompt);
  const R = rows.length;
  const touched = new Set(configs.flat().map((c) => `${c.head === null ? 'mlp' : 'z'}:${c.pos}`));
  const zLayers = [...start.z.keys()].filter((pos) => touched.has(`z:${pos}`)).sort((a, b) => a - b);
  const mlpLayers = [...start.mlp.keys()].filter((pos) => touched.has(`mlp:${pos}`)).sort((a, b) => a - b);
  const params = [
    ...zLayers.map((pos) => ({ key: `z_value.${pos}`, base: start.z.get(pos)!.data, scale: spread.z.get(pos)! })),
    ...mlpLayers.map((pos) => ({ key: `mlp_value.${pos}`, base: start.mlp.get(pos)!.data, scale: spread.mlp.get(pos)! })),
  ].map((p) => ({ ...p, u: new Float32Array(p.base.length) }));
  const adam = new AdamW(
    params.map((p) => ({ name: p.key, data: p.u, decay: false })),
    { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clip: 0 },
  );
  const current = (): Replacements => {
    const out: Replacements = { ...start, z: new Map(start.z), mlp: new Map(start.mlp) };
    for (const p of params) {
      const data = allocLike(model, p.base.length);
      for (let j = 0; j < data.length; j++) data[j] = p.base[j] + p.scale[j] * p.u[j];
      (p.key.startsWith('z') ? out.z : out.mlp).set(Number(p.key.split('.')[1]), { shape: 'const', data });
    }
    return out;
  };
  const gradNames = params.map((p) => p.key);
  /** The objective at the current constants, and (when asked) its gradient with respect to them. */
  const measure = async (repl: Replacements, withGrad: boolean): Promise<{ value: number; grads: Float64Array[] }> => {
    const grads = params.map((p) => new Float64Array(p.base.length));
    let sum = 0;
    for (let s = 0; s < R; s += opts.batchSize) {
      const chunk = rows.slice(s, s + opts.batchSize);
      const T = Math.max(...chunk.map((r) => lengths[r.prompt]));
      const { z, mlp } = removalInterventions(model, repl, chunk, T, lengths, zLayers, mlpLayers);
      const out = await model.run({
        tokens: chunk.map((r) => task.pairs[r.prompt].clean),
        ...metricRun(tm, task, chunk.map((r) => r.prompt)),
        z: z as Map<number, Intervention>,
        mlp: mlp as Map<number, Intervention>,
        gradients: withGrad ? gradNames : undefined,
        rowWeights: withGrad ? chunk.map(() => sign / R) : undefined,
      });
      out.metric!.forEach((v) => (sum += sign * v));
      if (withGrad) params.forEach((p, i) => out.grads.get(p.key)!.data.forEach((g, j) => (grads[i][j] += g)));
    }
    return { value: sum / R, grads };
  };
  let best = { value: -Infinity, repl: start, step: 0 };
  let startValue = NaN;
  for (let step = 0; step <= opts.steps; step++) {
    const repl = step === 0 ? start : current();
    const last = step === opts.steps;
    const { value, grads } = await measure(repl, !last);
    if (step === 0) startValue = value;
    // Strictly better only: ties keep the earlier constants (the mean, at worst).
    if (value > best.value) best = { value, repl, step };
    opts.onProgress?.(step + 1, opts.steps + 1);
    if (last) break;
    // Adam minimises: descend on −J, in u-space (dJ/du = spread ⊙ dJ/da).
    adam.step(
      grads.map((g, i) => Float32Array.from(g, (v, j) => -v * params[i].scale[j])),
      opts.lr,
    );
  }
  return { repl: best.repl, start: sign * startValue, best: sign * best.value, bestStep: best.step };
}

function checkPrompts(task: Task): void {
  if (task.pairs.length === 0) fail(`optimal ablation learns its constants from the task's prompts, and ${task.name} has none`);
}

function resolve(opts: OptimalOptions) {
  const o = {
    metric: opts.metric ?? 'logit-diff',
    meanOver: opts.meanOver ?? 'clean',
    seed: opts.seed ?? OPTIMAL_DEFAULTS.seed,
    steps: opts.steps ?? OPTIMAL_DEFAULTS.steps,
    lr: opts.lr ?? OPTIMAL_DEFAULTS.lr,
    configs: opts.configs ?? OPTIMAL_DEFAULTS.configs,
    batchSize: Math.max(1, opts.batchSize ?? 64),
  };
  if (!Number.isSafeInteger(o.steps) || o.steps < 0) throw new Error(`optimal ablation: steps must be a non-negative integer, got ${o.steps}`);
  if (!Number.isSafeInteger(o.configs) || o.configs < 1) throw new Error(`optimal ablation: configs must be a positive integer, got ${o.configs}`);
  return o;
}

/** Constants for every component, trained on the seeded family of removal sets (see the file comment). */
export async function learnConstants(model: HookedModel, task: Task, options: OptimalOptions = {}): Promise<{ repl: Replacements; file: ConstantsFile }> {
  checkPrompts(task);
  const o = resolve(options);
  const comps = options.components ?? listComponents(model.config);
  const { repl: start, spread } = await meansAndSpreads(model, task, o.meanOver, o.batchSize);
  const tm = await prepareMetric(model, task, o.metric, o.batchSize);
  const family = removalFamily(comps, o.configs, o.seed);
  const res = await ascend(model, task, tm, family, start, spread, { steps: o.steps, lr: o.lr, batchSize: o.batchSize, onProgress: options.onProgress });
  const training: ConstantsTraining = {
    objective: 'random-removals',
    metric: o.metric,
    seed: o.seed,
    steps: o.steps,
    lr: o.lr,
    configs: o.configs,
    mean_over: o.meanOver,
    objective_start: res.start,
    objective_final: res.best,
    best_step: res.bestStep,
  };
  return { repl: res.repl, file: constantsFile(model, task, res.repl, training, comps) };
}

/**
 * Constants for exactly one removed set: trained from the best of `starts` (each measured on this
 * set; the first wins ties), so the result is never worse than any of them on these prompts.
 */
export async function refineConstants(
  model: HookedModel,
  task: Task,
  removed: Component[],
  starts: Replacements[],
  options: OptimalOptions = {},
): Promise<{ repl: Replacements; file: ConstantsFile }> {
  checkPrompts(task);
  const o = resolve(options);
  if (starts.length === 0) throw new Error('refineConstants: no starting constants');
  const { spread } = await meansAndSpreads(model, task, o.meanOver, o.batchSize);
  const tm = await prepareMetric(model, task, o.metric, o.batchSize);
  // Which start is best on this set: zero steps of ascent from each is one measurement.
  let start = starts[0];
  let startValue = -Infinity;
  const sign = metricSign(o.metric);
  for (const s of starts) {
    const r = await ascend(model, task, tm, [removed], s, spread, { steps: 0, lr: o.lr, batchSize: o.batchSize });
    if (sign * r.start > startValue) {
      startValue = sign * r.start;
      start = s;
    }
  }
  const res = await ascend(model, task, tm, [removed], { ...start, ablation: 'optimal' }, spread, {
    steps: o.steps,
    lr: o.lr,
    batchSize: o.batchSize,
    onProgress: options.onProgress,
  });
  const training: ConstantsTraining = {
    objective: 'removed-set',
    metric: o.metric,
    seed: o.seed,
    steps: o.steps,
    lr: o.lr,
    removed: removed.map((c) => c.name),
    mean_over: o.meanOver,
    objective_start: res.start,
    objective_final: res.best,
    best_step: res.bestStep,
  };
  return { repl: res.repl, file: constantsFile(model, task, res.repl, training, options.components ?? listComponents(model.config)) };
}

function constantsFile(model: HookedModel, task: Task, repl: Replacements, training: ConstantsTraining, comps: Component[]): ConstantsFile {
  const components: Record<string, number[]> = {};
  const dh = model.config.dHead;
  for (const c of comps) {
    const v = c.head === null ? repl.mlp.get(c.pos)!.data : repl.z.get(c.pos)!.data.subarray(c.slot * dh, (c.slot + 1) * dh);
    components[c.name] = Array.from(v);
  }
  return { format: CONSTANTS_FORMAT, version: 1, model: model.name, model_fingerprint: modelFingerprint(model), task: task.name, training, components };
}

/**
 * Replacements from saved constants: each listed component's vector; a component the file does
 * not list keeps `fallback`'s value (the mean). Checks names and sizes; `where` names the file.
 */
export function constantsToReplacements(model: HookedModel, file: ConstantsFile, fallback: Replacements, where: string): Replacements {
  const byName = new Map(listComponents(model.config).map((c) => [c.name, c]));
  const dh = model.config.dHead;
  const d = model.config.dModel;
  const out: Replacements = { ablation: 'optimal', meanOver: fallback.meanOver, z: new Map(), mlp: new Map(), tMax: fallback.tMax };
  for (const [pos, v] of fallback.z) out.z.set(pos, { shape: 'const', data: Float64Array.from(v.data) });
  for (const [pos, v] of fallback.mlp) out.mlp.set(pos, { shape: 'const', data: Float64Array.from(v.data) });
  for (const [name, values] of Object.entries(file.components)) {
    const c = byName.get(name);
    if (!c) fail(`${where}: components.${name}: the model has no such component`);
    const width = c.head === null ? d : dh;
    if (!Array.isArray(values) || values.length !== width || values.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      fail(`${where}: components.${name}: expected ${width} finite numbers (${c.head === null ? 'd_model' : 'd_head'})`);
    }
    if (c.head === null) out.mlp.get(c.pos)!.data.set(values);
    else out.z.get(c.pos)!.data.set(values, c.slot * dh);
  }
  // In the model's float type, as computeReplacements gives.
  for (const m of [out.z, out.mlp]) for (const [pos, v] of m) m.set(pos, { shape: 'const', data: model.dtype === 'float64' ? v.data : Float32Array.from(v.data) });
  return out;
}

/** Parse and shape-check a constants file's text (whether it fits the model is checked by constantsToReplacements). */
export function parseConstantsFile(text: string, where: string): ConstantsFile {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    fail(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(`${where}: expected a JSON object (a carve constants file)`);
  const f = o as Record<string, unknown>;
  if (f.format !== CONSTANTS_FORMAT) fail(`${where}: not a carve constants file ("format" is ${JSON.stringify(f.format)}, expected "${CONSTANTS_FORMAT}")`);
  if (f.version !== 1) fail(`${where}: unsupported version ${JSON.stringify(f.version)} (expected 1)`);
  if (typeof f.components !== 'object' || f.components === null || Array.isArray(f.components)) fail(`${where}: "components" must be an object of name → vector`);
  if (Object.keys(f.components).length === 0) fail(`${where}: "components" is empty`);
  return f as unknown as ConstantsFile;
}

export interface ReplacementsRequest {
  meanOver?: MeanOver;
  batchSize?: number;
  /** optimal: saved constants to use instead of learning them (`where`: the file, for messages). */
  constants?: { file: ConstantsFile; where: string };
  /** optimal: how to learn them when none are given. */
  optimal?: OptimalOptions;
}

/**
 * The replacement values of any ablation: zero, mean and resample as computeReplacements gives them;
 * optimal from saved constants or learned here (`constants` is then what to save with the result).
 */
export async function replacementsFor(model: HookedModel, task: Task, ablation: Ablation, req: ReplacementsRequest = {}): Promise<{ repl: Replacements; constants?: ConstantsFile }> {
  const meanOver = req.meanOver ?? 'clean';
  const batchSize = req.batchSize ?? 64;
  if (ablation !== 'optimal') {
    if (req.constants) fail(`${req.constants.where}: constants apply only to optimal ablation, not ${ablation}`);
    return { repl: await computeReplacements(model, task, ablation, meanOver, batchSize) };
  }
  checkPrompts(task);
  if (req.constants) {
    const mean = await computeReplacements(model, task, 'mean', meanOver, batchSize);
    return { repl: constantsToReplacements(model, req.constants.file, mean, req.constants.where), constants: req.constants.file };
  }
  const { repl, file } = await learnConstants(model, task, { ...req.optimal, meanOver, batchSize });
  return { repl, constants: file };
}
