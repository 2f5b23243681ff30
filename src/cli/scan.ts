/**
 * `carve scan`: the score of every component (or, with --level edges, every edge), exact or by
 * attribution, under a replacement. The exact edge scan, hours on GPT-2 small, checkpoints to
 * FILE.partial.json with --out FILE (at most every 30 s) and continues from it with --resume.
 * Component scans and the gradient edge scans take minutes at most and do not checkpoint.
 */
import type { Command } from 'commander';
import { addModelOptions, loadModelAndTokenizer, parseChoice, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addMetricOption, addTaskOptions, metricFor, parseMetric, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { checkTaskVocabulary } from './eval.ts';
import { scan, SCAN_METHODS, type ScanMethod } from '../discover/scan.ts';
import { ABLATIONS, type Ablation, type MeanOver } from '../discover/replacements.ts';
import { COMPONENT_KINDS, type ComponentKind } from '../discover/components.ts';
import { progressBar } from '../util/progress.ts';
import { fail } from '../util/errors.ts';
import { scanEdges } from '../discover/edge-scan.ts';
import { DEFAULT_IG_STEPS, IG_PATHS, type IgPath } from '../discover/edge-attribution.ts';
import { parseEdgeScanCheckpoint } from '../discover/edge-checkpoint.ts';
import { partialWriter, removePartial, resumeFrom } from './resume.ts';

export type ScanLevel = 'components' | 'edges';
export const SCAN_LEVELS: readonly ScanLevel[] = ['components', 'edges'];
/** An exact edge scan projected to take longer than this asks for --yes. */
export const EXACT_EDGES_CONFIRM_SECONDS = 30 * 60;
/** The exact edge scan writes its partial result at most this often (it holds every score so far). */
export const EDGE_SCAN_CHECKPOINT_SECONDS = 30;

/** A duration for people: 42 s, 12.5 min, 3.1 h. */
export function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
import { addConstantsOptions, optimalStepsFrom, readConstants, saveConstants, searchSeedFrom, type SearchCliOptions } from './search-options.ts';

export interface ScanCliOptions extends EngineCliOptions, TaskCliOptions, SearchCliOptions {
  ablation: string;
  method: string;
  components: string;
  meanOver: string;
  steps?: string;
  igPath?: string;
  batchSize: string;
  level: string;
  yes?: boolean;
  resume?: boolean;
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
    .option('--level <components|edges>', 'score components, or every edge between them (SPEC "Edges")', 'components')
    .option('--steps <K>', `ig: interpolation points along each path (default 8; edges: ${DEFAULT_IG_STEPS})`)
    .option('--ig-path <inputs|activations>', 'edge ig: interpolate the input embeddings (MIB\'s EAP-IG-inputs) or each layer\'s activations in turn (EAP-IG-activations)')
    .option('--yes', 'exact edge scans: run even when projected to take more than 30 minutes', false)
    .option('--resume', 'exact edge scans: continue from FILE.partial.json of an interrupted run with the same model, task and options', false)
    .option('--out <file>', 'write the JSON here (default: stdout); exact edge scans save partial results to FILE.partial.json');
  addAblationOptions(cmd);
  addMetricOption(cmd);
  addConstantsOptions(cmd);
  addTaskOptions(cmd);
  addModelOptions(cmd).action(async (opts: ScanCliOptions) => {
    const ablation = parseChoice<Ablation>(opts.ablation, '--ablation', ABLATIONS);
    const method = parseChoice<ScanMethod>(opts.method, '--method', SCAN_METHODS);
    const components = parseChoice<ComponentKind>(opts.components, '--components', COMPONENT_KINDS);
    const meanOver = parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']);
    const level = parseChoice<ScanLevel>(opts.level, '--level', SCAN_LEVELS);
    const steps = parsePositiveInt(opts.steps ?? String(level === 'edges' ? DEFAULT_IG_STEPS : 8), '--steps');
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    if (opts.igPath !== undefined && (level !== 'edges' || method !== 'ig')) fail('--ig-path applies only to --level edges --method ig');
    const igPath = opts.igPath === undefined ? undefined : parseChoice<IgPath>(opts.igPath, '--ig-path', IG_PATHS);
    const seed = searchSeedFrom(opts);
    const optimalSteps = optimalStepsFrom(opts);
    if (ablation !== 'optimal' && (opts.constants !== undefined || optimalSteps !== undefined)) fail(`${opts.constants !== undefined ? '--constants' : '--optimal-steps'} applies only to --ablation optimal`);
    const constants = readConstants(opts.constants);
    parseMetric(opts.metric);
    if (opts.resume && (level !== 'edges' || method !== 'exact')) {
      fail('--resume: only the exact edge scan (--level edges --method exact) is long enough to checkpoint; this scan takes minutes at most, run it again');
    }
    const { partial, resume } = level === 'edges' && method === 'exact' ? resumeFrom(opts, parseEdgeScanCheckpoint) : {};
    const { model, tokenizer } = await loadModelAndTokenizer(opts);
    const task = taskFromOptions(opts, { nCtx: model.config.nCtx, requireEqualLengths: ablation === 'resample' }, tokenizer);
    const metric = metricFor(opts, task);
    checkTaskVocabulary(task, model.vocab, tokenizer);
    if (level === 'edges') {
      const bar = progressBar(`scan edges ${method}/${ablation}`);
      try {
        const result = await scanEdges(model, task, {
          ablation,
          method,
          meanOver,
          steps,
          igPath,
          batchSize,
          metric,
          onProgress: (done, total, label) => bar.update(done, total, label),
          onEstimate: (seconds, edges) => {
            const which = resume ? `the remaining ${edges}` : `${edges}`;
            process.stderr.write(`exact scan of ${which} edges × ${task.pairs.length} prompts: about ${formatDuration(seconds)}\n`);
            if (seconds > EXACT_EDGES_CONFIRM_SECONDS && !opts.yes) {
              fail(`the exact scan of ${which} edges would take about ${formatDuration(seconds)}; add --yes to run it anyway (or use --method attribution or ig)`);
            }
          },
          resume,
          resumeSource: partial,
          onResumed: (cp) => process.stderr.write(`resuming from ${partial} (${cp.scored.length} edges scored so far)\n`),
          onCheckpoint: partialWriter(partial, EDGE_SCAN_CHECKPOINT_SECONDS),
        });
        bar.stop();
        writeJson(opts.out, result);
        removePartial(partial);
      } finally {
        bar.stop();
      }
      return;
    }
    const bar = progressBar(`scan ${method}/${ablation}`);
    const result = await scan(model, task, {
      ablation,
      method,
      components,
      metric,
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
