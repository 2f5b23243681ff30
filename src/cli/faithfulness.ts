/**
 * `carve faithfulness --scores SCAN.json`: the MIB faithfulness curve of a scan's ranking (edges or
 * components), its CPR and CMD; optionally the scores in MIB's circuit-track format (--mib FILE).
 * `--variant mib` evaluates as MIB's circuit track itself does (src/discover/mib-faithfulness.ts).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { addModelOptions, loadModelAndTokenizer, parseChoice, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addMetricOption, addTaskOptions, metricFor, parseMetric, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { checkTaskVocabulary } from './eval.ts';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { progressBar } from '../util/progress.ts';
import { ABLATIONS, type Ablation, type MeanOver } from '../discover/replacements.ts';
import { buildEdgeGraph, findEdge } from '../discover/edge-graph.ts';
import { findComponent, listComponents } from '../discover/components.ts';
import { checkFractions, DEFAULT_FRACTIONS, FAITHFULNESS_VARIANTS, faithfulness, type FaithfulnessLevel, type FaithfulnessVariant } from '../discover/faithfulness.ts';
import { helpfulSign, MIB_PERCENTAGES } from '../discover/mib-faithfulness.ts';
import { scanMethodLabel } from '../discover/method-label.ts';
import { METRIC_NAMES, type MetricName } from '../model/readout.ts';
import { toMib } from '../discover/mib.ts';
import type { ModelConfig } from '../model/types.ts';

export interface FaithfulnessCliOptions extends EngineCliOptions, TaskCliOptions {
  scores?: string;
  fractions?: string;
  variant: string;
  level?: string;
  ablation?: string;
  meanOver?: string;
  batchSize: string;
  mib?: string;
}

/** A scan file as faithfulness needs it: its level, ablation and one score per name. */
export interface ScanScores {
  level: FaithfulnessLevel;
  ablation?: Ablation;
  meanOver?: MeanOver;
  method?: string;
  /** The metric the scores measure a change in (what sign a helpful edge has). */
  metric?: MetricName;
  entries: { name: string; score: number }[];
}

export function readScanScores(path: string): ScanScores {
  let o: unknown;
  try {
    o = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`${path}: cannot read the scan: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(`${path}: expected a JSON object (a carve scan)`);
  const s = o as Record<string, unknown>;
  if (s.level !== undefined && s.level !== 'edges' && s.level !== 'components') fail(`${path}: "level" must be "edges" or "components", got ${JSON.stringify(s.level)}`);
  const level: FaithfulnessLevel = s.level === 'edges' ? 'edges' : 'components';
  const key = level === 'edges' ? 'edges' : 'components';
  const list = s[key];
  if (!Array.isArray(list) || list.length === 0) fail(`${path}: "${key}" must be a non-empty array (a ${level === 'edges' ? 'carve scan --level edges' : 'carve scan'} file)`);
  const entries = list.map((e: unknown, i: number) => {
    const x = e as Record<string, unknown>;
    if (typeof e !== 'object' || e === null) fail(`${path}: ${key}[${i}] must be an object`);
    if (typeof x.name !== 'string') fail(`${path}: ${key}[${i}].name must be a string`);
    if (typeof x.score !== 'number' || !Number.isFinite(x.score)) fail(`${path}: ${key}[${i}].score must be a finite number`);
    return { name: x.name, score: x.score };
  });
  const out: ScanScores = { level, entries };
  if (s.ablation !== undefined) {
    if (!ABLATIONS.includes(s.ablation as Ablation)) fail(`${path}: "ablation" must be one of ${ABLATIONS.join(', ')}`);
    out.ablation = s.ablation as Ablation;
  }
  if (s.mean_over === 'clean' || s.mean_over === 'corrupt') out.meanOver = s.mean_over;
  if (typeof s.method === 'string') out.method = scanMethodLabel(s.method, s.ig_path);
  if (s.metric_name !== undefined) {
    if (!METRIC_NAMES.includes(s.metric_name as MetricName)) fail(`${path}: "metric_name" must be one of ${METRIC_NAMES.join(', ')}, got ${JSON.stringify(s.metric_name)}`);
    out.metric = s.metric_name as MetricName;
  }
  return out;
}

/** The scores in the model's canonical order; every edge (or component) exactly once. */
export function scoresInOrder(cfg: ModelConfig, scan: ScanScores, path: string): number[] {
  const key = scan.level === 'edges' ? 'edges' : 'components';
  const index = new Map<string, number>();
  let count: number;
  if (scan.level === 'edges') {
    const graph = buildEdgeGraph(cfg);
    count = graph.edges.length;
    scan.entries.forEach((e, i) => index.set(e.name, findEdge(graph, e.name, `${path}: ${key}[${i}].name`).index));
  } else {
    const comps = listComponents(cfg, 'all');
    count = comps.length;
    const pos = new Map(comps.map((c, i) => [c.name, i]));
    scan.entries.forEach((e, i) => index.set(e.name, pos.get(findComponent(cfg, e.name, `${path}: ${key}[${i}].name`).name)!));
  }
  const scores = new Array<number>(count).fill(NaN);
  scan.entries.forEach((e, i) => {
    const at = index.get(e.name)!;
    if (!Number.isNaN(scores[at])) fail(`${path}: ${key}[${i}]: ${e.name} is listed twice`);
    scores[at] = e.score;
  });
  const listed = scan.entries.length;
  if (listed !== count) fail(`${path}: lists ${listed} of the model's ${count} ${key}; faithfulness needs a score for every one`);
  return scores;
}

export function parseFractions(text: string, flag: string): number[] {
  const parts = String(text).split(',').map((p) => p.trim());
  const out = parts.map((p) => {
    const n = Number(p);
    if (p === '' || !Number.isFinite(n)) fail(`${flag}: ${JSON.stringify(p)} is not a number (expected a comma-separated list like 0,0.01,0.1,1)`);
    return n;
  });
  checkFractions(out, flag);
  return out;
}

export function registerFaithfulnessCommand(program: Command): void {
  const cmd = program
    .command('faithfulness')
    .description("MIB's faithfulness curve of a scan's ranking: keep the top fraction by |score|, ablate the rest; CPR and CMD")
    .option('--scores <SCAN.json>', 'a carve scan (edges or components) whose scores rank what to keep')
    .option('--variant <nominal|mib>', "nominal: top |score| over the given fractions; mib: MIB's own evaluation (signed and |score| rankings, dead edges pruned)", 'nominal')
    .option('--fractions <list>', `fractions kept, increasing, in [0, 1] (default: ${DEFAULT_FRACTIONS.join(',')}; --variant mib: MIB's ${MIB_PERCENTAGES.join(',')})`)
    .option('--level <edges|components>', "the scan's level, checked against the file (default: the file's)")
    .option('--ablation <zero|mean|resample>', "what ablated edges carry (default: the scan's ablation)")
    .option('--mean-over <clean|corrupt>', "mean ablation: the prompts the mean is over (default: the scan's)")
    .option('--batch-size <rows>', 'rows (prompts × configurations) per onnxruntime run; caps memory', '64')
    .option('--mib <FILE.json>', "also write the scan's scores in MIB's circuit-track submission format")
    .option('--out <file>', 'write the JSON here (default: stdout)');
  addTaskOptions(cmd);
  addMetricOption(cmd);
  addModelOptions(cmd).action(async (opts: FaithfulnessCliOptions) => {
    parseMetric(opts.metric);
    if (!opts.scores) fail('--scores SCAN.json is required');
    const variant = parseChoice<FaithfulnessVariant>(opts.variant, '--variant', FAITHFULNESS_VARIANTS);
    const fractions = opts.fractions !== undefined ? parseFractions(opts.fractions, '--fractions') : [...(variant === 'mib' ? MIB_PERCENTAGES : DEFAULT_FRACTIONS)];
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const scan = readScanScores(opts.scores);
    if (opts.level !== undefined) {
      const want = parseChoice<FaithfulnessLevel>(opts.level, '--level', ['edges', 'components']);
      if (want !== scan.level) fail(`${opts.scores}: ${scan.level === 'edges' ? 'an edge' : 'a component'} scan, not --level ${want}`);
    }
    const ablation = opts.ablation !== undefined ? parseChoice<Ablation>(opts.ablation, '--ablation', ABLATIONS) : (scan.ablation ?? 'mean');
    const meanOver = opts.meanOver !== undefined ? parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']) : (scan.meanOver ?? 'clean');
    const { model, tokenizer } = await loadModelAndTokenizer(opts);
    const scores = scoresInOrder(model.config, scan, opts.scores);
    const task = taskFromOptions(opts, { nCtx: model.config.nCtx, requireEqualLengths: ablation === 'resample' }, tokenizer);
    const metric = metricFor(opts, task);
    const mib = opts.mib ? toMib(model.config, scan.level, scores, helpfulSign(scan.metric ?? metric)) : undefined;
    checkTaskVocabulary(task, model.vocab, tokenizer);
    const bar = progressBar(`faithfulness ${scan.level}`);
    let result;
    try {
      result = await faithfulness(model, task, {
        level: scan.level,
        scores,
        fractions,
        ablation,
        meanOver,
        batchSize,
        scoresMethod: scan.method,
        scoresMetric: scan.metric,
        variant,
        metric,
        onProgress: (done, total) => bar.update(done, total),
      });
    } finally {
      bar.stop();
    }
    if (mib && opts.mib) {
      writeFileAtomic(opts.mib, JSON.stringify(mib) + '\n');
      process.stderr.write(`wrote ${opts.mib}\n`);
    }
    writeJson(opts.out, { ...result, scores_file: opts.scores });
  });
}
