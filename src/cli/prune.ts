/**
 * `carve prune`: a pruning order (scores, greedy, acdc, optimize) and the metric after every step;
 * with `--level edges`, ACDC over edges (which checkpoints and resumes the same way).
 * With --out, the partial result is written after every step to FILE.partial.json (atomically);
 * --resume continues from it when it was made for the same model, task and options, and the
 * partial file is removed once FILE is written. Under optimal ablation the constants used are saved
 * beside the output (FILE.constants.json). With --eval-task every step is also measured there.
 */
import type { Command } from 'commander';
import { addModelOptions, loadModelAndTokenizer, parseChoice, parseNumber, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addMetricOption, addTaskOptions, metricFor, parseMetric, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { checkTaskVocabulary } from './eval.ts';
import { addAblationOptions } from './scan.ts';
import { fail } from '../util/errors.ts';
import { partialWriter, removePartial, resumeFrom } from './resume.ts';
import { progressBar } from '../util/progress.ts';
import { ABLATIONS, type Ablation, type MeanOver } from '../discover/replacements.ts';
import { COMPONENT_KINDS, type ComponentKind } from '../discover/components.ts';
import { edgeAcdc } from '../discover/edge-acdc.ts';
import { parseCheckpoint } from '../discover/checkpoint.ts';
import { parseEdgeAcdcCheckpoint } from '../discover/edge-checkpoint.ts';
import {
  addConstantsOptions,
  addEvalTaskOptions,
  evalTaskFromOptions,
  optimalStepsFrom,
  readConstants,
  saveConstants,
  searchSeedFrom,
  type EvalTaskCliOptions,
  type SearchCliOptions,
} from './search-options.ts';
import {
  DEFAULT_ACDC_THRESHOLD,
  DEFAULT_VERIFY,
  PRUNE_METHODS,
  PRUNE_ORDERS,
  pruneOrder,
  resolvePruneOptions,
  type PruneMethod,
  type PruneOptions,
  type PruneOrder,
} from '../discover/prune.ts';

export interface PruneCliOptions extends EngineCliOptions, TaskCliOptions, SearchCliOptions, EvalTaskCliOptions {
  maskSteps?: string;
  order?: string;
  ablation: string;
  method: string;
  components: string;
  meanOver: string;
  verify?: string;
  threshold?: string;
  resume?: boolean;
  batchSize: string;
  level: string;
}

export { partialPath } from './resume.ts';

export function registerPruneCommand(program: Command): void {
  const cmd = program
    .command('prune')
    .description('order components for removal (by scores, greedily, by ACDC, or by learned masks) and measure the metric after every step')
    .option('--order <scores|greedy|acdc|optimize>', 'scores: by single-component scores; greedy: re-score after every removal; acdc: node-level ACDC; optimize: learned masks, verified exactly')
    .option('--method <exact|attribution|halving>', 'exact patching, attribution scores (greedy: checked exactly with --verify), or greedy by successive halving', 'exact')
    .option('--verify <K>', `greedy attribution, optimize: candidates checked exactly per step (default ${DEFAULT_VERIFY})`)
    .option('--mask-steps <n>', 'optimize: mask training steps (default 200)')
    .option('--threshold <T>', `acdc: remove when the metric gets worse by less than T (default ${DEFAULT_ACDC_THRESHOLD})`)
    .option('--components <heads|mlps|all>', 'which components to prune', 'all')
    .option('--level <components|edges>', 'prune components, or (with --order acdc) edges', 'components')
    .option('--resume', 'continue from FILE.partial.json of an interrupted run with the same model, task and options', false)
    .option('--out <file>', 'write the JSON here (default: stdout); with it, partial results go to FILE.partial.json');
  addAblationOptions(cmd);
  addMetricOption(cmd);
  addConstantsOptions(cmd);
  addEvalTaskOptions(cmd);
  addTaskOptions(cmd);
  addModelOptions(cmd).action(async (opts: PruneCliOptions) => {
    const order = parseChoice<PruneOrder>(opts.order, '--order', PRUNE_ORDERS);
    const level = parseChoice<'components' | 'edges'>(opts.level, '--level', ['components', 'edges']);
    if (level === 'edges') return pruneEdges(opts, order);
    const ablation = parseChoice<Ablation>(opts.ablation, '--ablation', ABLATIONS);
    const method = parseChoice<PruneMethod>(opts.method, '--method', PRUNE_METHODS);
    const components = parseChoice<ComponentKind>(opts.components, '--components', COMPONENT_KINDS);
    const meanOver = parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']);
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const pruneOpts: PruneOptions = { order, ablation, method, components, meanOver, batchSize };
    if (opts.verify !== undefined) pruneOpts.verify = parsePositiveInt(opts.verify, '--verify');
    if (opts.threshold !== undefined) pruneOpts.threshold = parseNumber(opts.threshold, '--threshold');
    pruneOpts.metric = parseMetric(opts.metric);
    if (opts.maskSteps !== undefined) pruneOpts.maskSteps = parsePositiveInt(opts.maskSteps, '--mask-steps');
    pruneOpts.seed = searchSeedFrom(opts);
    const optimalSteps = optimalStepsFrom(opts);
    if (optimalSteps !== undefined) pruneOpts.optimalSteps = optimalSteps;
    pruneOpts.constants = readConstants(opts.constants);
    resolvePruneOptions(pruneOpts); // flag combinations, before any loading
    const { partial, resume } = resumeFrom(opts, parseCheckpoint);
    const { model, tokenizer } = await loadModelAndTokenizer(opts);
    const limits = { nCtx: model.config.nCtx, requireEqualLengths: ablation === 'resample' };
    const task = taskFromOptions(opts, limits, tokenizer);
    pruneOpts.metric = metricFor(opts, task);
    checkTaskVocabulary(task, model.vocab, tokenizer);
    pruneOpts.evalTask = evalTaskFromOptions(opts, limits, task, tokenizer);
    const bar = progressBar(`prune ${order}`);
    let result;
    try {
      result = await pruneOrder(model, task, pruneOpts, {
        resume,
        resumeSource: partial,
        onResumed: (cp) => process.stderr.write(`resuming from ${partial} (${cp.steps.length - 1} components removed so far)\n`),
        onProgress: (done, total, label) => bar.update(done, total, label),
        onCheckpoint: partialWriter(partial),
      });
    } finally {
      bar.stop();
    }
    if (result.constants && typeof result.constants === 'object') result.constants = saveConstants(opts.out, result.constants);
    writeJson(opts.out, result);
    removePartial(partial);
  });
}

/** `--level edges`: ACDC over edges (edge-acdc.ts). */
async function pruneEdges(opts: PruneCliOptions, order: PruneOrder): Promise<void> {
  if (order !== 'acdc') fail(`--level edges: only --order acdc works on edges, got --order ${order}`);
  if (opts.method !== 'exact') fail('--level edges: ACDC over edges is exact only (--method exact)');
  if (opts.verify !== undefined) fail('--verify applies only to --order greedy --method attribution');
  const ablation = parseChoice<Ablation>(opts.ablation, '--ablation', ABLATIONS);
  const meanOver = parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']);
  const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
  const threshold = opts.threshold !== undefined ? parseNumber(opts.threshold, '--threshold') : undefined;
  parseMetric(opts.metric);
  const { partial, resume } = resumeFrom(opts, parseEdgeAcdcCheckpoint);
  const { model, tokenizer } = await loadModelAndTokenizer(opts);
  const task = taskFromOptions(opts, { nCtx: model.config.nCtx, requireEqualLengths: ablation === 'resample' }, tokenizer);
  const metric = metricFor(opts, task);
  checkTaskVocabulary(task, model.vocab, tokenizer);
  const bar = progressBar('prune acdc edges');
  let result;
  try {
    result = await edgeAcdc(model, task, {
      threshold,
      ablation,
      meanOver,
      metric,
      batchSize,
      // The bar counts estimated work (late layers' edges are cheap, early ones dear), so its ETA
      // holds; the label gives the edges.
      onProgress: (done, total, e) => bar.update(done, total, `est. work; ${e.visited}/${e.total} edges visited, ${e.withoutRun} decided without a run`),
      resume,
      resumeSource: partial,
      onResumed: (cp) => process.stderr.write(`resuming from ${partial} (${cp.visited} edges visited, ${cp.steps.length - 1} removed so far)\n`),
      // Written after every batch: decisions are few and a batch can take a while on a large model.
      onCheckpoint: partialWriter(partial),
    });
  } finally {
    bar.stop();
  }
  writeJson(opts.out, result);
  removePartial(partial);
}
