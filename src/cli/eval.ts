/**
 * `carve eval`: how well a model (full or compressed) does the task, how big it is and how fast it
 * runs it: {"model", "task", "n_prompts", "metric_name", "metric", "std", "accuracy", "n_params",
 * "n_params_non_embedding", "ms_per_prompt"}.
 *  - metric, std: mean and standard deviation (Bessel-corrected, as src/task/metrics.ts) over prompts
 *    of the metric at the metric position: `--metric logit-diff` (mean logit of the correct set −
 *    mean logit of the incorrect set; one token each: logit[correct] − logit[incorrect]) or
 *    `prob-diff`; default: the task's own (logit-diff; greater-than: prob-diff). `kl` compares a run
 *    with the clean run of the same model, which eval does not have apart from the model itself;
 *  - accuracy: the share of prompts whose highest-logit answer among correct ∪ incorrect is in the
 *    correct set (one each: logit[correct] > logit[incorrect]);
 *  - ms_per_prompt: a batched forward over all the task's prompts, computing only what the metric
 *    needs, timed after a warm-up run; the median of 5 repetitions, divided by the number of prompts.
 *  - n_neurons: the MLP neurons the model keeps (all layers with an MLP);
 *  - file_bytes: the model directory's config and weights on disk; onnx_bytes, onnx_f16_bytes: the
 *    size of the file `carve export --format onnx` writes for it (float32 / float16 weights),
 *    computed without writing it.
 */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { resolveModel } from '../model/hub.ts';
import { loadModelDir, modelDirBytes } from '../model/load.ts';
import { onnxExportSize } from '../export/onnx.ts';
import { countNeurons } from '../compress/neurons.ts';
import { HookedModel } from '../model/hooked.ts';
import { mean, setAccuracy, std } from '../task/metrics.ts';
import type { Task } from '../task/types.ts';
import { countParams } from '../compress/count.ts';
import { cleanMetrics } from '../discover/scan.ts';
import type { MetricName } from '../model/readout.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { addModelOptions, engineFrom, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addMetricOption, addTaskOptions, metricFor, parseMetric, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { describeToken } from './vocab-options.ts';
import { VocabMap } from '../model/vocab.ts';

export const DEFAULT_BATCH_SIZE = 64;
const TIMING_REPEATS = 5;

export interface EvalResult {
  model: string;
  task: string;
  n_prompts: number;
  metric_name: MetricName;
  metric: number;
  std: number;
  accuracy: number;
  n_params: number;
  n_params_non_embedding: number;
  n_neurons: number;
  ms_per_prompt: number;
  file_bytes: number;
  onnx_bytes: number;
  onnx_f16_bytes: number;
}

/**
 * A token the model cannot read (outside its vocabulary, or not kept by a trimmed one) would fail
 * deep inside a run: say so up front, naming the prompt, the field and the token.
 */
export function checkTaskVocabulary(task: Task, vocab: VocabMap, tokenizer?: Tokenizer): void {
  task.pairs.forEach((p, i) => {
    const fields: [string, number[]][] = [['clean', p.clean], ['corrupt', p.corrupt], ['correct', p.correct], ['incorrect', p.incorrect]];
    for (const [field, ids] of fields) {
      for (const t of ids) {
        if (!vocab.has(t)) fail(`${task.name} prompt ${i}: field "${field}": ${vocab.missing(t, vocab.trimmed ? describeToken(t, tokenizer) : undefined)}`);
      }
    }
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Metric, accuracy and timing of `model` on `task` (parameter counts are the caller's: they need the weights). */
export async function evaluateModel(
  model: HookedModel,
  task: Task,
  opts: { batchSize: number; repeats?: number; metric?: Exclude<MetricName, 'kl'> },
): Promise<Pick<EvalResult, 'metric' | 'std' | 'accuracy' | 'ms_per_prompt'> & { metrics: Float64Array }> {
  const metric = { name: opts.metric ?? 'logit-diff' } as const;
  // This first pass also warms up: the graph is compiled and the session's buffers allocated.
  const { metrics, answerLogits } = await cleanMetrics(model, task, opts.batchSize, metric);
  const times: number[] = [];
  for (let i = 0; i < (opts.repeats ?? TIMING_REPEATS); i++) {
    const t0 = process.hrtime.bigint();
    await cleanMetrics(model, task, opts.batchSize, metric);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { metrics, metric: mean(metrics), std: std(metrics), accuracy: setAccuracy(answerLogits, task.pairs), ms_per_prompt: median(times) / task.pairs.length };
}

/** eval's metric: kl needs a clean run of another model to compare with, which eval does not have. */
export function evalMetric(metric: MetricName): Exclude<MetricName, 'kl'> {
  if (metric === 'kl') {
    fail('--metric kl: carve eval measures one model on its own, and a model\'s KL divergence from its own clean run is 0; use logit-diff or prob-diff (scan, prune and compress take kl)');
  }
  return metric;
}

const METRIC_LABEL: Record<MetricName, string> = {
  'logit-diff': 'logit difference',
  'prob-diff': 'probability difference',
  kl: 'KL divergence from the clean run',
};

interface EvalCliOptions extends EngineCliOptions, TaskCliOptions {
  json?: boolean;
  batchSize: string;
}

/** A byte count for people: 6.7 MB, 98.2 kB, 512 B (decimal units, as file managers show). */
export function bytes(x: number): string {
  if (x >= 1e9) return `${(x / 1e9).toFixed(2)} GB`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(1)} MB`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} kB`;
  return `${x} B`;
}

export function formatEvalTable(r: EvalResult): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const rows: [string, string][] = [
    ['model', r.model],
    ['task', `${r.task} (${r.n_prompts} prompts)`],
    ['metric', `${r.metric.toFixed(4)} ± ${r.std.toFixed(4)} (${METRIC_LABEL[r.metric_name]}, mean ± std)`],
    ['accuracy', `${(100 * r.accuracy).toFixed(1)}%`],
    ['parameters', n(r.n_params)],
    ['non-embedding', n(r.n_params_non_embedding)],
    ['MLP neurons', n(r.n_neurons)],
    ['file size', bytes(r.file_bytes)],
    ['ONNX export', `${bytes(r.onnx_bytes)} (f16: ${bytes(r.onnx_f16_bytes)})`],
    ['ms per prompt', r.ms_per_prompt.toFixed(3)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}

export function registerEvalCommand(program: Command): void {
  const cmd = program
    .command('eval')
    .description('metric, accuracy, parameter counts and speed of a model (full or compressed) on a task')
    .option('--json', 'print JSON (the default when --out is given or stdout is not a terminal)')
    .option('--out <file>', 'write the JSON here')
    .option('--batch-size <n>', 'prompts per onnxruntime run', String(DEFAULT_BATCH_SIZE));
  addMetricOption(addTaskOptions(addModelOptions(cmd))).action(async (opts: EvalCliOptions) => {
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const given = parseMetric(opts.metric);
    if (given) evalMetric(given);
    const engine = engineFrom(opts);
    const { dir, name } = await resolveModel(opts.model ?? 'toy-ioi');
    const tokenizer = loadTokenizer(dir);
    const loaded = loadModelDir(dir, name);
    const task = taskFromOptions(opts, { nCtx: loaded.config.nCtx }, tokenizer);
    const metric = evalMetric(metricFor(opts, task));
    checkTaskVocabulary(task, VocabMap.of(loaded.config), tokenizer);
    const model = new HookedModel(loaded, engine);
    const r = await evaluateModel(model, task, { batchSize, metric });
    const counts = countParams(loaded);
    const result: EvalResult = {
      model: name,
      task: task.name,
      n_prompts: task.pairs.length,
      metric_name: metric,
      metric: r.metric,
      std: r.std,
      accuracy: r.accuracy,
      n_params: counts.n_params,
      n_params_non_embedding: counts.n_params_non_embedding,
      n_neurons: countNeurons(loaded.config).kept,
      ms_per_prompt: r.ms_per_prompt,
      file_bytes: modelDirBytes(dir),
      onnx_bytes: onnxExportSize(loaded, { dtype: 'f32' }),
      onnx_f16_bytes: onnxExportSize(loaded, { dtype: 'f16' }),
    };
    if (opts.json || opts.out || !process.stdout.isTTY) writeJson(opts.out, result);
    else process.stdout.write(formatEvalTable(result));
  });
}
