/** `carve scan`: the score of every component, exact or by attribution, under a replacement. */
import type { Command } from 'commander';
import { addModelOptions, loadHookedModel, parseChoice, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addTaskOptions, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { scan, SCAN_METHODS, type ScanMethod } from '../discover/scan.ts';
import { ABLATIONS, type Ablation, type MeanOver } from '../discover/replacements.ts';
import { COMPONENT_KINDS, type ComponentKind } from '../discover/components.ts';
import { progressBar } from '../util/progress.ts';
import { fail } from '../util/errors.ts';
import { addConstantsOptions, optimalStepsFrom, readConstants, saveConstants, searchSeedFrom, type SearchCliOptions } from './search-options.ts';

export interface ScanCliOptions extends EngineCliOptions, TaskCliOptions, SearchCliOptions {
  ablation: string;
  method: string;
  components: string;
  meanOver: string;
  steps: string;
  batchSize: string;
}

/** Options shared by commands that replace components: ablation, mean-over, batch size. */
export function addAblationOptions(cmd: Command): Command {
  return cmd
    .option('--ablation <zero|mean|resample|optimal>', 'what a removed component is replaced with (optimal: a learned constant)', 'mean')
    .option('--mean-over <clean|corrupt>', 'mean ablation: average over the clean or the corrupt prompts', 'clean')
    .option('--batch-size <rows>', 'rows (prompts × configurations) per onnxruntime run; caps memory', '64');
}

export function registerScanCommand(program: Command): void {
  const cmd = program
    .command('scan')
    .description('score every attention head and MLP: mean change of the metric when its output is replaced')
    .option('--method <exact|attribution|ig>', 'exact patching, attribution patching (gradients), or integrated gradients', 'exact')
    .option('--components <heads|mlps|all>', 'which components to score', 'all')
    .option('--steps <K>', 'ig: interpolation points along each path', '8')
    .option('--out <file>', 'write the JSON here (default: stdout)');
  addAblationOptions(cmd);
  addConstantsOptions(cmd);
  addTaskOptions(cmd);
  addModelOptions(cmd).action(async (opts: ScanCliOptions) => {
    const ablation = parseChoice<Ablation>(opts.ablation, '--ablation', ABLATIONS);
    const method = parseChoice<ScanMethod>(opts.method, '--method', SCAN_METHODS);
    const components = parseChoice<ComponentKind>(opts.components, '--components', COMPONENT_KINDS);
    const meanOver = parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']);
    const steps = parsePositiveInt(opts.steps, '--steps');
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const seed = searchSeedFrom(opts);
    const optimalSteps = optimalStepsFrom(opts);
    if (ablation !== 'optimal' && (opts.constants !== undefined || optimalSteps !== undefined)) fail(`${opts.constants !== undefined ? '--constants' : '--optimal-steps'} applies only to --ablation optimal`);
    const constants = readConstants(opts.constants);
    const model = await loadHookedModel(opts);
    const task = taskFromOptions(opts, { nCtx: model.config.nCtx, requireEqualLengths: ablation === 'resample' });
    const bar = progressBar(`scan ${method}/${ablation}`);
    const result = await scan(model, task, {
      ablation,
      method,
      components,
      meanOver,
      steps,
      batchSize,
      onProgress: (done, total, label) => bar.update(done, total, label),
      constants,
      seed,
      optimalSteps,
    });
    bar.stop();
    if (result.constants && typeof result.constants === 'object') result.constants = saveConstants(opts.out, result.constants);
    writeJson(opts.out, result);
  });
}
