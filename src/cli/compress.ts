/**
 * `carve compress --ablation zero|mean|optimal (--keep FILE | --from PRUNE.json --count K | --target F) --out DIR`:
 * write a smaller model holding only the kept components, the removed ones' ablated outputs folded
 * into residual biases (src/compress/prune-model.ts), plus `DIR/carve-compress.json` recording what
 * was done and the metric of the original model with those components ablated — the metric
 * `carve eval` gives on DIR.
 *
 * Choosing what to keep:
 *  - `--keep FILE`: the names to keep, a JSON array or one name a line (blank lines and `#` comments
 *    skipped);
 *  - `--from PRUNE.json --count K`: remove the first K components of a `carve prune` order;
 *  - `--target F --from PRUNE.json`: the largest K whose first K removals leave the metric at least
 *    F × the clean metric (every K evaluated exactly, with this model, task and ablation, whatever
 *    numbers the file carries);
 *  - `--target F` alone: the search chooses (src/discover/select.ts searchSmallest: exact greedy when
 *    affordable, learned masks, local search; `--search scores|greedy|optimize` forces one order).
 * Under optimal ablation the constants are learned (or read with --constants), fitted to the final
 * removed set unless given, folded like the mean, and saved as DIR/constants.json.
 * With --eval-task the result is also measured on a second prompt set (the record's "eval").
 * The metric is `--metric` (default: the task's own; discover/metric.ts); with kl, "at least F × the
 * clean metric" means nothing (the clean KL is 0), so --target needs logit-diff or prob-diff. The
 * source model's tokenizer files (tokenizer.json ...) are copied into DIR, so DIR tokenises as the
 * original does.
 * Then, optionally:
 *  - `--neurons`: MLP neurons inside the kept MLPs go too, while the metric stays ≥ F × clean
 *    (`--target F`) or, without a target, at the kept components' metric (src/compress/neurons.ts);
 *  - `--vocab task [--vocab-extra FILE] [--max-len N]`: only the tokens the task can produce keep
 *    their embedding rows, and the context is cut (vocab-options.ts, src/compress/trim-vocab.ts).
 * The weights are written in `--dtype`, every tensor rounded to it (to nearest even). Without it: in
 * the dtype the source model is stored in (F32 when that is none of F32, F16, BF16), so a model carved
 * from an F16 checkpoint is not written at twice its size; but rounding nothing: the few tensors that
 * dtype cannot hold exactly (chiefly the biases the removed components were folded into, computed in
 * float64/float32) stay F32, so `carve eval` on DIR gives what the F32 file would, the metric recorded
 * (SPEC: to 1e-4; rounding those biases to F16 moves toy-ioi's logit difference by up to ~2e-4).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { resolveModel } from '../model/hub.ts';
import { CONFIG_FILE, WEIGHTS_FILE, keptDtype, loadModelDir, losslessDtypes, saveModelDir, type SaveDtype } from '../model/load.ts';
import type { Dtype, WriteDtype } from '../model/safetensors.ts';
import { HookedModel } from '../model/hooked.ts';
import type { ModelConfig } from '../model/types.ts';
import { mean, std } from '../task/metrics.ts';
import { canonicalOrder, findComponent, listComponents, type Component } from '../discover/components.ts';
import { computeReplacements, type MeanOver, type Replacements } from '../discover/replacements.ts';
import { evaluateRemovals } from '../discover/evaluate.ts';
import type { Task } from '../task/types.ts';
import type { MetricName } from '../model/readout.ts';
import { metricSign } from '../discover/metric.ts';
import { loadTokenizer, TOKENIZER_FILES } from '../tokenizer/load.ts';
import { refineConstants, replacementsFor, type ConstantsFile } from '../discover/optimal.ts';
import { chooseByTarget, orderByScores, searchSmallest, type TargetStep } from '../discover/select.ts';
import { pruneOrder } from '../discover/prune.ts';
import { measureHeldOut } from '../discover/heldout.ts';
import { pruneModel, type FoldableAblation } from '../compress/prune-model.ts';
import { countParams } from '../compress/count.ts';
import { addModelOptions, engineFrom, parseChoice, parseNonNegativeInt, parseNumber, parsePositiveInt, type EngineCliOptions } from './common.ts';
import { addMetricOption, addTaskOptions, metricFor, parseMetric, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { checkTaskVocabulary, DEFAULT_BATCH_SIZE } from './eval.ts';
import {
  addConstantsOptions,
  addEvalTaskOptions,
  evalTaskFromOptions,
  optimalStepsFrom,
  readConstants,
  searchSeedFrom,
  type EvalTaskCliOptions,
  type SearchCliOptions,
} from './search-options.ts';
import { progressBar } from '../util/progress.ts';
import { trimModel } from '../compress/trim-vocab.ts';
import { countNeurons, neuronValues, pruneNeurons, searchNeurons, type RemovedNeuron } from '../compress/neurons.ts';
import { neuronsOf } from '../model/types.ts';
import { VocabMap } from '../model/vocab.ts';
import { resolveVocab, vocabPlanFrom, type VocabCliOptions } from './vocab-options.ts';

export const COMPRESS_RECORD = 'carve-compress.json';
/** Optimal ablation: the constants folded into the model, beside it. */
export const CONSTANTS_FILE = 'constants.json';

/** What `--target F` alone searches with: the automatic choice, or one order. */
const SEARCHES = ['auto', 'scores', 'greedy', 'optimize'] as const;
type Search = (typeof SEARCHES)[number];

/** `--dtype` values, lower-case as `carve export --dtype` spells them. */
const DTYPES = ['f32', 'f16', 'bf16'] as const;
type DtypeFlag = (typeof DTYPES)[number];

/**
 * The dtype to write: the one asked for, else the source's own when carve can write it (a compressed
 * model keeps the precision it came in), else F32 (F64: float32 is what carve computes in anyway).
 */
export function outputDtype(flag: DtypeFlag | undefined, stored: Dtype | undefined): WriteDtype {
  if (flag !== undefined) return flag.toUpperCase() as WriteDtype;
  return keptDtype(stored);
}

interface CompressCliOptions extends EngineCliOptions, TaskCliOptions, VocabCliOptions, SearchCliOptions, EvalTaskCliOptions {
  ablation?: string;
  keep?: string;
  from?: string;
  count?: string;
  target?: string;
  search?: string;
  meanOver: string;
  batchSize: string;
  neurons?: boolean;
  dtype?: string;
}

/** A name as written in a file, with where it was written. */
interface NameAt {
  name: string;
  where: string;
}

function readText(path: string, what: string): string {
  if (!existsSync(path)) fail(`${path}: no such ${what} file`);
  if (statSync(path).isDirectory()) fail(`${path}: is a directory, expected a ${what} file`);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

const lineOf = (text: string, offset: number) => text.slice(0, offset).split('\n').length;

/** Component names from a keep file: a JSON array of strings, or one name a line. */
export function parseKeepFile(path: string, text: string): NameAt[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (e) {
      fail(`${path}: not a valid JSON array of component names (${(e as Error).message})`);
    }
    if (!Array.isArray(arr)) fail(`${path}: expected a JSON array of component names`);
    let cursor = 0;
    return arr.map((v, i) => {
      if (typeof v !== 'string') fail(`${path}: entry ${i} is ${JSON.stringify(v)}, expected a component name like "L9H9" or "L0MLP"`);
      const at = text.indexOf(JSON.stringify(v), cursor);
      if (at >= 0) cursor = at + 1;
      return { name: v.trim(), where: at >= 0 ? `${path}:${lineOf(text, at)}` : `${path}: entry ${i}` };
    });
  }
  const out: NameAt[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    for (const name of line.split(/[\s,]+/).filter((s) => s !== '')) out.push({ name, where: `${path}:${i + 1}` });
  });
  return out;
}

export interface PruneOrder {
  ablation?: string;
  method?: string;
  order?: string;
  /** The components in removal order, with where each was read. */
  components: NameAt[];
  /** The metric the file records after each number of removals (index = removed), when present. */
  metrics: (number | undefined)[];
}

/** The removal order of a `carve prune` output. */
export function parsePruneFile(path: string, text: string): PruneOrder {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(`${path}: expected the JSON object \`carve prune\` writes`);
  const o = json as Record<string, unknown>;
  if (!Array.isArray(o.steps)) fail(`${path}: "steps" must be an array (the output of \`carve prune\`)`);
  const components: NameAt[] = [];
  const metrics: (number | undefined)[] = [];
  const seen = new Set<string>();
  o.steps.forEach((s, i) => {
    const at = `${path}: steps[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s)) fail(`${at} must be an object`);
    const step = s as Record<string, unknown>;
    const expected = components.length + (step.component === null || step.component === undefined ? 0 : 1);
    if (step.removed !== undefined && step.removed !== expected) {
      fail(`${at}.removed is ${JSON.stringify(step.removed)}, expected ${expected} (each step removes one more component)`);
    }
    if (step.component === null || step.component === undefined) {
      if (i !== 0) fail(`${at}.component is missing; only the first step (nothing removed) has none`);
      metrics[0] = typeof step.metric === 'number' ? step.metric : undefined;
      return;
    }
    if (typeof step.component !== 'string') fail(`${at}.component must be a component name, found ${JSON.stringify(step.component)}`);
    const name = step.component.trim();
    if (seen.has(name)) fail(`${at}.component: ${name} is removed twice`);
    seen.add(name);
    components.push({ name, where: `${at}.component` });
    metrics[components.length] = typeof step.metric === 'number' ? step.metric : undefined;
  });
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { ablation: str(o.ablation), method: str(o.method), order: str(o.order), components, metrics };
}

/** Refuse to replace a directory that is not a model directory (a typo in --out must not delete files). */
function checkOutDir(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) fail(`--out ${out}: exists and is not a directory`);
  const ours = new Set([CONFIG_FILE, WEIGHTS_FILE, COMPRESS_RECORD, CONSTANTS_FILE, ...TOKENIZER_FILES]);
  const foreign = readdirSync(out).filter((f) => !ours.has(f));
  if (foreign.length > 0) {
    fail(`--out ${out}: the directory exists and holds other files (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}); choose a new directory`);
  }
}

/** A progress callback drawing a bar on a terminal (quiet when piped); stopped when the loop is done. */
function progress(label: string): (done: number, total: number) => void {
  const bar = progressBar(label);
  return (done, total) => {
    bar.update(done, total);
    if (done >= total) bar.stop();
  };
}

/** The source directory's tokenizer files, to travel with the compressed weights. */
function tokenizerFiles(dir: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const f of TOKENIZER_FILES) {
    const path = join(dir, f);
    if (existsSync(path)) files[f] = readFileSync(path);
  }
  return files;
}

const fmtInt = (x: number) => x.toLocaleString('en-US');
const pct = (before: number, after: number) => (before === 0 ? '0.0' : ((100 * (before - after)) / before).toFixed(1));

export function registerCompressCommand(program: Command): void {
  const cmd = program
    .command('compress')
    .description('write a smaller model holding only the kept components, ablated outputs folded into biases')
    .option('--ablation <zero|mean|optimal>', 'what removed components are replaced with (folded into residual biases)', 'mean')
    .option('--keep <file>', 'component names to keep: a JSON array or one name a line')
    .option('--from <prune.json>', 'a `carve prune` output: its removal order')
    .option('--count <k>', 'with --from: remove its first K components')
    .option('--target <f>', 'keep the smallest set found whose metric stays >= F x the clean metric (0 < F <= 1)')
    .option('--search <auto|scores|greedy|optimize>', '--target without --from: how to search (auto: exact greedy when affordable, learned masks, local search)', 'auto')
    .option('--mean-over <clean|corrupt>', 'prompts the mean ablation averages over', 'clean')
    .option('--batch-size <n>', 'rows per onnxruntime run', String(DEFAULT_BATCH_SIZE))
    .option('--neurons', 'also remove MLP neurons inside the MLPs that stay while the metric holds (>= F x clean with --target F; else not below the kept components\' metric)')
    .option('--vocab <all|task>', "task: keep only the embedding rows of tokens the task can produce", 'all')
    .option('--vocab-extra <file>', 'with --vocab task: a JSON list of more token ids or strings to keep')
    .option('--max-len <n>', 'cut the context (the position table) to N tokens (default with --vocab task: the longest prompt the task can produce)')
    .option('--dtype <f32|f16|bf16>', 'storage precision of the written weights (default: the source model\'s, F32 if it is none of these)')
    .option('--out <dir>', 'the model directory to write (required)');
  addEvalTaskOptions(addConstantsOptions(cmd));
  addMetricOption(addTaskOptions(addModelOptions(cmd))).action(async (opts: CompressCliOptions) => {
    // Everything that can be checked without the model, first.
    if (opts.ablation === 'resample') {
      fail('--ablation resample cannot be folded into a smaller model: the replacement differs per prompt (the output on the paired corrupt prompt); use zero, mean or optimal');
    }
    const ablation = parseChoice(opts.ablation, '--ablation', ['zero', 'mean', 'optimal'] as const) as FoldableAblation;
    const search = parseChoice<Search>(opts.search, '--search', SEARCHES);
    const seed = searchSeedFrom(opts);
    const optimalSteps = optimalStepsFrom(opts);
    if (ablation !== 'optimal' && (opts.constants !== undefined || optimalSteps !== undefined)) fail(`${opts.constants !== undefined ? '--constants' : '--optimal-steps'} applies only to --ablation optimal`);
    if (opts.constants !== undefined && optimalSteps !== undefined) fail('--optimal-steps: the constants are given (--constants), nothing is learned');
    const given = readConstants(opts.constants);
    const meanOver = parseChoice(opts.meanOver, '--mean-over', ['clean', 'corrupt'] as const) as MeanOver;
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const dtypeFlag = opts.dtype !== undefined ? parseChoice<DtypeFlag>(opts.dtype, '--dtype', DTYPES) : undefined;
    if (!opts.out) fail('--out DIR: give the directory to write the compressed model to');
    const out = opts.out;
    checkOutDir(out);

    if (opts.keep !== undefined && (opts.from !== undefined || opts.count !== undefined || opts.target !== undefined)) {
      fail('--keep cannot be combined with --from, --count or --target');
    }
    if (opts.count !== undefined && opts.from === undefined) fail('--count K needs --from PRUNE.json (the order to remove components in)');
    if (opts.count !== undefined && opts.target !== undefined) fail('give either --count K or --target F, not both');
    if (opts.from !== undefined && opts.count === undefined && opts.target === undefined) fail('--from PRUNE.json needs --count K or --target F');
    if (opts.keep === undefined && opts.from === undefined && opts.target === undefined) fail('say what to keep: --keep FILE, --from PRUNE.json --count K, or --target F');
    const count = opts.count !== undefined ? parseNonNegativeInt(opts.count, '--count') : undefined;
    let target: number | undefined;
    if (opts.target !== undefined) {
      target = parseNumber(opts.target, '--target');
      if (!(target > 0 && target <= 1)) fail(`--target: expected a fraction of the clean metric greater than 0 and at most 1, got ${JSON.stringify(opts.target)}`);
    }
    if (target !== undefined && parseMetric(opts.metric) === 'kl') {
      fail('--target with --metric kl: the clean KL divergence is 0, so "at least F x the clean metric" means nothing; use logit-diff or prob-diff (or --keep / --count with kl)');
    }
    const vocabPlan = vocabPlanFrom(opts);
    if (opts.search !== 'auto' && (target === undefined || opts.from !== undefined)) fail('--search applies only to --target F without --from');
    const keepNames = opts.keep !== undefined ? parseKeepFile(opts.keep, readText(opts.keep, 'keep')) : undefined;
    const prune = opts.from !== undefined ? parsePruneFile(opts.from, readText(opts.from, 'prune')) : undefined;
    if (prune && count !== undefined && count > prune.components.length) {
      fail(`--count ${count}: ${opts.from} has only ${prune.components.length} removal steps`);
    }

    const engine = engineFrom(opts);
    const { dir, name } = await resolveModel(opts.model ?? 'toy-ioi');
    const tokenizer = loadTokenizer(dir);
    const loaded = loadModelDir(dir, name);
    const cfg: ModelConfig = loaded.config;
    const dtype = outputDtype(dtypeFlag, loaded.storedDtype);
    if (dtypeFlag === undefined && loaded.storedDtype !== undefined && loaded.storedDtype !== dtype) {
      process.stderr.write(`carve compress: note: ${name} is stored in ${loaded.storedDtype}, which carve does not write; writing ${dtype} (--dtype chooses)\n`);
    }
    const task = taskFromOptions(opts, { nCtx: cfg.nCtx }, tokenizer);
    const metric = metricFor(opts, task);
    if (target !== undefined && metric === 'kl') fail('--target needs a metric where higher is better (logit-diff or prob-diff); the task\'s default here is kl');
    if (opts.neurons && metric === 'kl') fail('--neurons keeps the metric above a threshold, which needs logit-diff or prob-diff (kl is lower-is-better)');
    checkTaskVocabulary(task, VocabMap.of(cfg), tokenizer);
    const vocabChoice = resolveVocab(vocabPlan, opts.task ?? 'ioi', task, VocabMap.of(cfg), cfg.nCtx, tokenizer);
    if (opts.neurons && ablation === 'optimal') fail('--neurons with --ablation optimal: removed neurons are replaced by their mean (or zero); use --ablation mean or zero');
    const evalTask = evalTaskFromOptions(opts, { nCtx: cfg.nCtx }, task, tokenizer);
    if (evalTask) checkTaskVocabulary(evalTask, VocabMap.of(cfg), tokenizer);
    // Names are checked against the model before any long computation.
    const keepComps = keepNames?.map((n) => findComponent(cfg, n.name, n.where));
    const pruneComps = prune?.components.map((n) => findComponent(cfg, n.name, n.where));
    if (prune && prune.ablation !== undefined && prune.ablation !== ablation && target !== undefined) {
      process.stderr.write(
        `carve compress: note: ${opts.from} was made with ${prune.ablation} ablation; its metrics do not apply to ${ablation} ablation, ` +
          `so every step is re-evaluated exactly with ${ablation} ablation\n`,
      );
    }

    const model = new HookedModel(loaded, engine);
    const bar = progressBar('compress');
    const onProgress = (done: number, total: number, label: string) => bar.update(done, total, label);
    const learned = await replacementsFor(model, task, ablation, {
      meanOver,
      batchSize,
      constants: given,
      optimal: { seed, steps: optimalSteps, onProgress: (d, t) => onProgress(d, t, 'optimal constants') },
    });
    let repl: Replacements = learned.repl;
    let constants: ConstantsFile | undefined = learned.constants;
    const all = listComponents(cfg);
    let removed: Component[];
    let steps: TargetStep[] | undefined;
    let selection: Record<string, unknown>;
    // The searches below keep the constants as they are; fitting happens once the set is chosen.
    const searchConstants = constants ? { file: constants, where: opts.constants ?? 'the learned constants' } : undefined;
    try {
      if (keepComps) {
        const keepSet = new Set(keepComps.map((c) => c.name));
        removed = all.filter((c) => !keepSet.has(c.name));
        selection = { by: 'keep', file: opts.keep };
      } else if (count !== undefined) {
        removed = pruneComps!.slice(0, count);
        selection = { by: 'count', from: opts.from, count, prune_order: prune!.order ?? null, prune_ablation: prune!.ablation ?? null };
      } else if (pruneComps || search !== 'auto') {
        let order: Component[];
        if (pruneComps) order = pruneComps;
        else if (search === 'scores') {
          order = (await orderByScores(model, task, repl, batchSize, (d, t) => onProgress(d, t, 'scoring components'), metric)).order;
        } else {
          const r = await pruneOrder(model, task, { order: search as 'greedy' | 'optimize', ablation, meanOver, batchSize, seed, constants: searchConstants, metric }, { onProgress });
          order = r.steps.slice(1).map((s) => findComponent(cfg, s.component!, 'search'));
        }
        const chosen = await chooseByTarget(model, task, repl, order, target!, batchSize, (d, t) => onProgress(d, t, 'evaluating removal steps'), metric);
        steps = chosen.steps;
        removed = order.slice(0, chosen.count);
        const cleanMean = mean(chosen.clean);
        if (steps[chosen.count].metric < target! * cleanMean) {
          bar.stop();
          process.stderr.write(`carve compress: note: no removal keeps the metric at ${target} x the clean metric (${cleanMean.toFixed(4)}); nothing removed\n`);
        }
        selection = { by: 'target', target, threshold: target! * cleanMean, from: opts.from ?? null, order: prune ? (prune.order ?? 'file') : search, count: chosen.count };
      } else {
        const found = await searchSmallest(model, task, { target: target!, ablation, meanOver, batchSize, seed, repl, constants, fit: given === undefined, metric, onProgress });
        removed = found.removed;
        repl = found.repl;
        constants = found.constants;
        steps = found.steps.map((s) => ({ removed: s.removed, component: s.component, metric: s.metric, std: s.std }));
        bar.stop();
        process.stderr.write(found.reasons.map((r) => `carve compress: search: ${r}\n`).join(''));
        selection = {
          by: 'target',
          target,
          threshold: found.threshold,
          from: null,
          order: 'search',
          search: { chosen: found.chosen, trials: found.trials, moves: found.moves, reasons: found.reasons },
          count: removed.length,
        };
      }
      // Learned constants fitted to the set chosen (never worse on it than those it starts from).
      if (ablation === 'optimal' && given === undefined && removed.length > 0 && !(selection.order === 'search')) {
        const meanRepl = await computeReplacements(model, task, 'mean', meanOver, batchSize);
        const fitted = await refineConstants(model, task, removed, [repl, meanRepl], { seed, meanOver, batchSize, onProgress: (d, t) => onProgress(d, t, 'fitting constants') });
        repl = fitted.repl;
        constants = fitted.file;
      }
    } finally {
      bar.stop();
    }

    // The metric of the original model with exactly these components ablated (what eval on DIR gives).
    const final = await evaluateRemovals(model, task, repl, [removed], { batchSize, metric });
    const evaluated = { clean: final.clean, ablated: final.metrics[0] };
    const removedSet = new Set(removed.map((c) => c.name));
    const kept = all.filter((c) => !removedSet.has(c.name));
    let carved = pruneModel(loaded, new Set(kept.map((c) => c.name)), repl, ablation);

    // Neurons inside the MLPs that stay, with the chosen components already removed.
    let neuronRecord: Record<string, unknown> | undefined;
    if (opts.neurons) {
      const nv = await neuronValues(model, task, ablation, meanOver, batchSize);
      const threshold = target !== undefined ? target * mean(evaluated.clean) : mean(evaluated.ablated);
      const before = countNeurons(carved.config).kept;
      const found = await searchNeurons(model, task, repl, nv, removed, threshold, {
        batchSize,
        metric: { name: metric },
        onProgress: (round, n, metric) => process.stderr.write(`  neurons, round ${round}: removed ${n} more (metric ${metric.toFixed(4)})\n`),
      });
      const bySource = new Map<number, RemovedNeuron[]>();
      for (const [pos, slots] of found.neurons) {
        const layout = cfg.layers[pos];
        const original = neuronsOf(cfg, layout);
        bySource.set(layout.sourceLayer, slots.map((s) => ({ neuron: original[s], value: nv.values.get(pos)![s] })));
      }
      carved = pruneNeurons(carved, bySource);
      evaluated.ablated = found.metrics;
      const after = countNeurons(carved.config);
      neuronRecord = { threshold, n_before: before, n_after: after.kept, layers: after.layers, rounds: found.rounds };
    }

    // Dropping embedding rows and positions changes no kept token's logit (trim-vocab.ts).
    const pruned = vocabChoice.keep !== undefined || vocabChoice.maxLen !== undefined ? trimModel(carved, { keep: vocabChoice.keep, maxLen: vocabChoice.maxLen }) : carved;
    const before = countParams(loaded);
    const after = countParams(pruned);
    // An explicit --dtype rounds every tensor; the default rounds none (tensors the dtype cannot hold stay F32).
    const perTensor: SaveDtype = dtypeFlag !== undefined ? dtype : losslessDtypes(pruned, dtype);
    const keptF32 = typeof perTensor === 'string' ? [] : [...perTensor].filter(([, d]) => d !== dtype).map(([n]) => n);
    const record = {
      format: 1,
      source_model: name,
      source_dir: dir,
      task: task.name,
      n_prompts: task.pairs.length,
      ablation,
      ...(ablation !== 'zero' ? { mean_over: meanOver } : {}),
      selection,
      kept: kept.map((c) => c.name),
      removed: canonicalOrder(cfg, removed).map((c) => c.name),
      removal_order: removed.map((c) => c.name),
      metric_name: metric,
      clean_metric: mean(evaluated.clean),
      clean_std: std(evaluated.clean),
      metric: mean(evaluated.ablated),
      std: std(evaluated.ablated),
      n_params_before: before.n_params,
      n_params_after: after.n_params,
      n_params_non_embedding_before: before.n_params_non_embedding,
      n_params_non_embedding_after: after.n_params_non_embedding,
      dtype,
      ...(keptF32.length > 0 ? { f32_tensors: keptF32 } : {}),
      layers: pruned.config.layers.map((l) => ({ source_layer: l.sourceLayer, heads: l.heads, mlp: l.mlp, ...(l.neurons ? { neurons: l.neurons.length } : {}) })),
      ...(neuronRecord ? { neurons: neuronRecord } : {}),
      ...(constants ? { constants: CONSTANTS_FILE } : {}),
      vocab: {
        mode: vocabPlan.mode,
        n_tokens_before: cfg.vocabSize,
        n_tokens_after: pruned.config.vocabSize,
        extra_file: vocabPlan.extra?.path ?? null,
        max_len_before: cfg.nCtx,
        max_len_after: pruned.config.nCtx,
        task_max_len: vocabChoice.taskMaxLen,
      },
      ...(steps ? { steps } : {}),
    } as Record<string, unknown> & { metric: number; std: number; clean_metric: number };
    if (evalTask) {
      // The same removals (and replacement values) on the second prompt set: the final set, and every step of the curve.
      const sets = [removed, ...(steps ?? []).map((s) => steps!.slice(1, s.removed + 1).map((x) => findComponent(cfg, x.component!, 'steps')))];
      const held = await measureHeldOut(model, task, evalTask, repl, sets, { batchSize, metric });
      record.eval = { ...held.summary, metric: mean(held.metrics[0]), std: std(held.metrics[0]) };
      if (steps) steps.forEach((s, k) => Object.assign(s, { eval_metric: mean(held.metrics[k + 1]), eval_std: std(held.metrics[k + 1]) }));
    }
    writeDirAtomic(out, (tmp) => {
      // saveModelDir builds its own temporary directory and moves it onto `tmp`: the whole of DIR
      // (model, record and constants) appears at once.
      saveModelDir(tmp, pruned, perTensor, tokenizerFiles(dir));
      writeFileAtomic(join(tmp, COMPRESS_RECORD), JSON.stringify(record, null, 2) + '\n');
      if (constants) writeFileAtomic(join(tmp, CONSTANTS_FILE), JSON.stringify(constants, null, 2) + '\n');
    });

    if (target !== undefined && record.clean_metric <= 0) {
      process.stderr.write(`carve compress: note: the clean metric is ${record.clean_metric.toFixed(4)}, not positive, so ${target} x it is no bar: check the task's answers\n`);
    }
    const nHeads = removed.filter((c) => c.head !== null).length;
    const nMlps = removed.length - nHeads;
    const lines = [
      `carve compress: kept ${kept.length} of ${all.length} components (removed ${nHeads} heads, ${nMlps} MLPs); ${pruned.config.layers.length} of ${cfg.layers.length} layers remain`,
      `  ${metric} ${record.metric.toFixed(4)} ± ${record.std.toFixed(4)} with ${ablation} ablation (clean ${record.clean_metric.toFixed(4)})`,
      ...(record.eval
        ? [(() => {
            const e = record.eval as { task: string; metric: number; std: number; clean_metric: number };
            return `  held out (${e.task}): metric ${e.metric.toFixed(4)} ± ${e.std.toFixed(4)} (clean ${e.clean_metric.toFixed(4)})`;
          })()]
        : []),
      `  parameters ${fmtInt(before.n_params)} -> ${fmtInt(after.n_params)} (-${pct(before.n_params, after.n_params)}%); ` +
        `non-embedding ${fmtInt(before.n_params_non_embedding)} -> ${fmtInt(after.n_params_non_embedding)} (-${pct(before.n_params_non_embedding, after.n_params_non_embedding)}%)`,
      ...(neuronRecord ? [`  MLP neurons ${fmtInt(neuronRecord.n_before as number)} -> ${fmtInt(neuronRecord.n_after as number)} in the MLPs kept`] : []),
      ...(vocabPlan.mode === 'task' || pruned.config.nCtx !== cfg.nCtx
        ? [`  vocabulary ${fmtInt(cfg.vocabSize)} -> ${fmtInt(pruned.config.vocabSize)} tokens; context ${fmtInt(cfg.nCtx)} -> ${fmtInt(pruned.config.nCtx)} positions`]
        : []),
      `  wrote ${out}: ${dtype} weights` +
        (keptF32.length > 0 ? ` (${keptF32.length} tensor${keptF32.length === 1 ? '' : 's'} kept in F32: ${dtype} would round ${keptF32.length === 1 ? 'it' : 'them'})` : '') +
        `, ${(statSync(join(out, WEIGHTS_FILE)).size / 2 ** 20).toFixed(1)} MiB`,
    ];
    process.stderr.write(lines.join('\n') + '\n');
  });
}
