/**
 * `carve train --out DIR [--recipe FILE.json] [flags]`: train a small task model on IOI (or, with
 * `--task greater-than`, greater-than) prompts (src/train/) and write it as a model directory, with `training.json` beside the weights
 * recording the full recipe, the data seeds and the held-out figures of the saved (rounded) model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as ort from 'onnxruntime-node';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { progressBar } from '../util/progress.ts';
import { Engine } from '../onnx/session.ts';
import { HookedModel } from '../model/hooked.ts';
import { loadModelDir, saveModelDir } from '../model/load.ts';
import { loadTokenizer, TOKENIZER_FILE } from '../tokenizer/load.ts';
import { checkRecipeField, dataSpec, evaluate, mergeRecipe, parameterCounts, resolveRecipe, train, type EvalLog, type Recipe, type StepLog, type TrainResult } from '../train/trainer.ts';
import { heldOut } from '../train/data.ts';
import { engineFrom, parseNonNegativeInt, parseNumber, parsePositiveInt, writeJson } from './common.ts';

export const TRAINING_FILE = 'training.json';

interface TrainCliOptions {
  out?: string;
  tokenizer?: string;
  arch?: string;
  kvHeads?: string;
  ropeTheta?: string;
  untied?: boolean;
  recipe?: string;
  layers?: string;
  heads?: string;
  dModel?: string;
  nCtx?: string;
  dMlp?: string;
  attnOnly?: boolean | string;
  activation?: string;
  steps?: string;
  batch?: string;
  lr?: string;
  warmup?: string;
  schedule?: string;
  minLrRatio?: string;
  weightDecay?: string;
  beta1?: string;
  beta2?: string;
  clip?: string;
  ceWeight?: string;
  hingeWeight?: string;
  margin?: string;
  seed?: string;
  dataSeed?: string;
  promptType?: string;
  prependBos?: boolean;
  task?: string;
  evalEvery?: string;
  heldOutN?: string;
  heldOutSeed?: string;
  threads?: string;
  device?: string;
  dtype?: string;
  json?: boolean;
}

/** A recipe file: a recipe object, or a training.json (its "recipe" is used). */
export function readRecipeFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`--recipe ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`--recipe ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(`--recipe ${path}: expected a JSON object of recipe fields`);
  const obj = json as Record<string, unknown>;
  const recipe = obj.format === TRAINING_FORMAT && typeof obj.recipe === 'object' && obj.recipe !== null ? (obj.recipe as Record<string, unknown>) : obj;
  try {
    mergeRecipe(recipe);
  } catch (e) {
    fail(`--recipe ${path}: ${(e as Error).message}`);
  }
  return recipe;
}

function parseAttnOnly(v: boolean | string | undefined, nLayer: number): boolean | boolean[] | undefined {
  if (v === undefined || typeof v === 'boolean') return v;
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) fail(`--attn-only: expected nothing (all layers) or layer indices like 0,1, got ${JSON.stringify(v)}`);
  const set = new Set(parts.map(Number));
  for (const l of set) if (l >= nLayer) fail(`--attn-only: layer ${l} does not exist in a ${nLayer}-layer model`);
  return Array.from({ length: nLayer }, (_, i) => set.has(i));
}

/** Recipe fields from the flags given (undefined where a flag is absent, so the recipe file's value stands). */
export function recipeFromFlags(o: TrainCliOptions, nLayerSoFar: number): Record<string, unknown> {
  const int = (v: string | undefined, flag: string) => (v === undefined ? undefined : parsePositiveInt(v, flag));
  const nonNeg = (v: string | undefined, flag: string) => (v === undefined ? undefined : parseNonNegativeInt(v, flag));
  const num = (v: string | undefined, flag: string) => (v === undefined ? undefined : parseNumber(v, flag));
  const nLayer = int(o.layers, '--layers');
  const out: Record<string, unknown> = {
    arch: o.arch,
    nKvHead: nonNeg(o.kvHeads, '--kv-heads'),
    ropeTheta: num(o.ropeTheta, '--rope-theta'),
    untied: o.untied,
    nLayer,
    nHead: int(o.heads, '--heads'),
    dModel: int(o.dModel, '--d-model'),
    nCtx: int(o.nCtx, '--n-ctx'),
    dMlp: nonNeg(o.dMlp, '--d-mlp'),
    attnOnly: parseAttnOnly(o.attnOnly, nLayer ?? nLayerSoFar),
    activation: o.activation,
    steps: int(o.steps, '--steps'),
    batch: int(o.batch, '--batch'),
    lr: num(o.lr, '--lr'),
    warmup: nonNeg(o.warmup, '--warmup'),
    schedule: o.schedule,
    minLrRatio: num(o.minLrRatio, '--min-lr-ratio'),
    weightDecay: num(o.weightDecay, '--weight-decay'),
    clip: num(o.clip, '--clip'),
    ceWeight: num(o.ceWeight, '--ce-weight'),
    hingeWeight: num(o.hingeWeight, '--hinge-weight'),
    margin: num(o.margin, '--margin'),
    seed: nonNeg(o.seed, '--seed'),
    dataSeed: nonNeg(o.dataSeed, '--data-seed'),
    promptType: o.promptType,
    prependBos: o.prependBos,
    tokenizer: o.tokenizer,
    task: o.task,
    evalEvery: int(o.evalEvery, '--eval-every'),
    heldOutN: int(o.heldOutN, '--held-out-n'),
    heldOutSeed: nonNeg(o.heldOutSeed, '--held-out-seed'),
    threads: nonNeg(o.threads, '--threads'),
    dtype: o.dtype === undefined ? undefined : o.dtype.toUpperCase(),
  };
  if (o.beta1 !== undefined || o.beta2 !== undefined) out.betas = [o.beta1, o.beta2];
  return out;
}

function flagName(key: string): string {
  const map: Record<string, string> = { nLayer: 'layers', nHead: 'heads', nKvHead: 'kv-heads' };
  return '--' + (map[key] ?? key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
}

/** Merge defaults, the recipe file and the flags; errors name the flag where one was given. */
export function recipeFromOptions(o: TrainCliOptions): Recipe {
  const file = o.recipe ? readRecipeFile(o.recipe) : {};
  const base = mergeRecipe(file);
  const flags = recipeFromFlags(o, base.nLayer);
  if (flags.betas) {
    const [b1, b2] = flags.betas as (string | undefined)[];
    flags.betas = [b1 === undefined ? base.betas[0] : parseNumber(b1, '--beta1'), b2 === undefined ? base.betas[1] : parseNumber(b2, '--beta2')];
  }
  // A layer count changed by flag invalidates a per-layer list from the file.
  if (flags.nLayer !== undefined && flags.attnOnly === undefined && Array.isArray(base.attnOnly) && base.attnOnly.length !== flags.nLayer) {
    fail(`--layers ${String(flags.nLayer)}: the recipe's per-layer attnOnly lists ${base.attnOnly.length} layers; give --attn-only too`);
  }
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined) continue;
    try {
      checkRecipeField(k, v);
    } catch (e) {
      const msg = (e as Error).message;
      fail(msg.startsWith(k + ':') ? `${flagName(k)}${msg.slice(k.length)}` : msg);
    }
  }
  return resolveRecipe(file, flags);
}

const f = (x: number, d = 3) => x.toFixed(d);

export const TRAINING_FORMAT = 'carve-training/1';

/** The training record written beside the weights. */
export function trainingRecord(res: TrainResult, saved: Omit<EvalLog, 'step'>, argv: string[], seconds: number): Record<string, unknown> {
  const r = res.recipe;
  const data = dataSpec(r);
  const last = res.evals[res.evals.length - 1];
  const window = r.evalEvery;
  const curve: { step: number; loss: number; trainAccuracy: number; trainLogitDiff: number; lr: number; gradNorm: number }[] = [];
  for (let i = 0; i < res.steps.length; i += window) {
    const part = res.steps.slice(i, i + window);
    const mean = (fn: (s: StepLog) => number) => part.reduce((a, s) => a + fn(s), 0) / part.length;
    curve.push({
      step: part[part.length - 1].step,
      loss: mean((s) => s.loss),
      trainAccuracy: mean((s) => s.trainAccuracy),
      trainLogitDiff: mean((s) => s.trainLogitDiff),
      lr: part[part.length - 1].lr,
      gradNorm: mean((s) => s.gradNorm),
    });
  }
  return {
    format: TRAINING_FORMAT,
    command: ['carve', ...argv].join(' '),
    reproduce: `carve train --recipe ${TRAINING_FILE} --out DIR (same recipe and threads: bit-identical weights)`,
    recipe: r,
    data: {
      generator:
        r.task === 'greater-than'
          ? 'greater-than (src/task/greater-than.ts generateGreaterThan; clean prompts, answer sets (years after / up to the start year))'
          : 'ioi (src/task/ioi.ts generateIoiPrompts; prompts without the final IO name, answer pair (IO, S))',
      trainSeeds: [data.dataSeed, data.dataSeed + r.steps - 1],
      trainSeedRule: 'step s (0-based) draws batch prompts from the generator with seed trainSeeds[0] + s',
      heldOut:
        r.task === 'greater-than'
          ? { seed: data.heldOutSeed, n: data.heldOutN, same_as: `--task greater-than --seed ${data.heldOutSeed} --n ${data.heldOutN}${r.prependBos ? ' --prepend-bos' : ''}` }
          : { seed: data.heldOutSeed, n: data.heldOutN, promptType: r.promptType, same_as: `--task ioi --seed ${data.heldOutSeed} --n ${data.heldOutN} --prompt-type ${r.promptType}${r.prependBos ? ' --prepend-bos' : ''}` },
    },
    model: { ...parameterCounts(res.config), dtype: r.dtype, layers: res.config.layers },
    final: {
      step: r.steps,
      heldOut: saved,
      heldOutBeforeRounding: last,
      trainLoss: curve.length > 0 ? curve[curve.length - 1].loss : null,
    },
    evals: res.evals,
    curve,
    timing: { ...res.timing, totalSeconds: seconds },
    environment: { node: process.version, onnxruntime: ort.env.versions.common, platform: `${process.platform}-${process.arch}`, threads: r.threads },
  };
}

export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('train a small task model (IOI or greater-than prompts) and write it as a model directory (with training.json)')
    .requiredOption('--out <dir>', 'the model directory to write (config.json, model.safetensors, training.json)')
    .option('--recipe <file.json>', 'recipe fields as JSON (or a training.json to reproduce); flags override')
    .option('--arch <gpt2|llama>', 'gpt2 (LayerNorm, learned positions, gelu, tied) or llama (RMSNorm, rotary, SwiGLU, grouped-query attention, untied); default gpt2')
    .option('--kv-heads <n>', 'llama: key/value heads, dividing --heads (default 0: as many as query heads)')
    .option('--rope-theta <x>', 'llama: rotary base (default 10000)')
    .option('--untied', 'a separate unembedding matrix (default: tied for gpt2, untied for llama)')
    .option('--no-untied', 'unembedding tied to the embedding')
    .option('--layers <n>', 'layers (default 2)')
    .option('--heads <n>', 'heads per layer (default 4)')
    .option('--d-model <n>', 'residual width (default 64)')
    .option('--n-ctx <n>', 'context length (default 64)')
    .option('--d-mlp <n>', 'MLP width (default 0: 4 x d-model)')
    .option('--attn-only [layers]', 'layers without MLPs: all, or comma-separated layer indices')
    .option('--no-attn-only', 'every layer keeps its MLP')
    .option('--activation <name>', 'MLP activation (default gelu_new)')
    .option('--steps <n>', 'optimizer steps (default 2000)')
    .option('--batch <n>', 'prompts per step (default 64)')
    .option('--lr <x>', 'peak learning rate (default 1e-3)')
    .option('--warmup <n>', 'linear warmup steps (default 100)')
    .option('--schedule <s>', 'cosine|constant|linear after warmup (default cosine)')
    .option('--min-lr-ratio <x>', 'decay floor as a fraction of lr (default 0.1)')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay on matrices (default 0.01)')
    .option('--beta1 <x>', 'AdamW beta1 (default 0.9)')
    .option('--beta2 <x>', 'AdamW beta2 (default 0.999)')
    .option('--clip <x>', 'max global gradient norm, 0 for none (default 1)')
    .option('--ce-weight <x>', 'weight of the full-vocabulary cross-entropy of IO (default 1)')
    .option('--hinge-weight <x>', 'weight of relu(margin - (logit[IO] - logit[S])) (default 1)')
    .option('--margin <x>', 'hinge margin (default 2)')
    .option('--task <ioi|greater-than>', 'what to train on (default ioi); greater-than trains on answer sets (cross-entropy against the uniform distribution over the correct years)')
    .option('--seed <n>', 'init and data seed (default 0)')
    .option('--data-seed <n>', 'first IOI generator seed of the training batches (default 1000000 x (1 + seed))')
    .option('--prompt-type <t>', 'mixed|ABBA|BABA (default mixed)')
    .option('--prepend-bos', 'start every prompt with <|endoftext|>')
    .option('--tokenizer <gpt2|task>', "gpt2: GPT-2's BPE and 50,257-token vocabulary; task: one token per word the task can write, saved as tokenizer.json (default gpt2)")
    .option('--eval-every <n>', 'held-out evaluation interval in steps (default 100)')
    .option('--held-out-n <n>', 'held-out prompts (default 200)')
    .option('--held-out-seed <n>', 'IOI seed of the held-out prompts (default 1)')
    .option('--threads <n>', 'onnxruntime intra-op threads, 0: one per core (default 2; the weights depend on it in the last bits)')
    .option('--device <cpu|webgpu|cuda>', 'onnxruntime execution provider', 'cpu')
    .option('--dtype <F16|F32|BF16>', 'weight dtype of the saved model (default F16)')
    .option('--json', 'print the training summary as JSON on stdout')
    .action(async (opts: TrainCliOptions) => {
      const recipe = recipeFromOptions(opts);
      const out = opts.out!;
      const engine: Engine = engineFrom({ device: opts.device, threads: String(recipe.threads) });
      const t0 = performance.now();
      const log = (s: string) => process.stderr.write(s + '\n');
      const tty = process.stderr.isTTY === true && !process.env.CI;
      const arch = `${recipe.nLayer} layer${recipe.nLayer === 1 ? '' : 's'} x ${recipe.nHead} heads, d_model ${recipe.dModel}${recipe.attnOnly === true ? ', attention-only' : Array.isArray(recipe.attnOnly) ? `, attention-only layers ${recipe.attnOnly.flatMap((a, i) => (a ? [i] : [])).join(',')}` : ''}`;
      const prompts = recipe.task === 'greater-than' ? 'greater-than' : `${recipe.promptType} IOI`;
      log(`carve train: ${arch}; ${recipe.steps} steps of ${recipe.batch} ${prompts} prompts, lr ${recipe.lr} (${recipe.schedule}), seed ${recipe.seed}`);
      const bar = progressBar('train');
      let lastEval: EvalLog | undefined;
      let recentLoss: number[] = [];
      const evalText = (e: EvalLog) => `held-out acc ${f(e.accuracy)} logit diff ${f(e.logitDiff)}${e.probDiff !== undefined ? ` prob diff ${f(e.probDiff)}` : ''}`;
      const res = await train(recipe, {
        engine,
        onStep: (s) => {
          recentLoss.push(s.loss);
          if (recentLoss.length > 20) recentLoss = recentLoss.slice(-20);
          const avg = recentLoss.reduce((a, b) => a + b, 0) / recentLoss.length;
          bar.update(s.step, recipe.steps, `loss ${f(avg, 4)}${lastEval ? ' | ' + evalText(lastEval) : ''}`);
        },
        onEval: (e) => {
          lastEval = e;
          if (!tty) {
            const secs = (performance.now() - t0) / 1000;
            const avg = recentLoss.length ? recentLoss.reduce((a, b) => a + b, 0) / recentLoss.length : NaN;
            log(`step ${String(e.step).padStart(String(recipe.steps).length)}/${recipe.steps}  loss ${Number.isNaN(avg) ? '-' : f(avg, 4)}  ${evalText(e)}  (${secs.toFixed(1)} s)`);
          }
        },
      });
      bar.stop();
      const extra: Record<string, string> = res.tokenizerJson ? { [TOKENIZER_FILE]: JSON.stringify(res.tokenizerJson) } : {};
      saveModelDir(out, { config: res.config, weights: res.weights }, recipe.dtype, extra);
      // The figures that matter are those of the model as saved (rounded to the file's dtype), read
      // through its own tokenizer.
      const saved = loadModelDir(out);
      const savedEval = await evaluate(new HookedModel(saved, engine, 'float32'), heldOut(dataSpec(recipe), loadTokenizer(out)));
      const seconds = (performance.now() - t0) / 1000;
      const record = trainingRecord(res, savedEval, process.argv.slice(2), seconds);
      writeFileAtomic(join(out, TRAINING_FILE), JSON.stringify(record, null, 2) + '\n');
      log(
        `wrote ${out}: ${recipe.dtype} weights; held-out (n ${savedEval.n}, seed ${recipe.heldOutSeed}): accuracy ${f(savedEval.accuracy)}, ` +
          `logit diff ${f(savedEval.logitDiff)} ± ${f(savedEval.logitDiffStd)}` +
          (savedEval.probDiff !== undefined ? `, prob diff ${f(savedEval.probDiff)} ± ${f(savedEval.probDiffStd!)}` : '') +
          `; ${seconds.toFixed(1)} s, ${res.timing.msPerStep.toFixed(0)} ms/step`,
      );
      if (opts.json) writeJson(undefined, { out, final: record.final, timing: record.timing });
      await engine.release();
    });
}
