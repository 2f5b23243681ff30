/**
 * `carve eval`: how well a model (full or compressed) does the task, how big it is and how fast it
 * runs it: {"model", "task", "n_prompts", "metric", "std", "accuracy", "n_params",
 * "n_params_non_embedding", "ms_per_prompt"}.
 *  - metric, std: mean and standard deviation (Bessel-corrected, as src/task/metrics.ts) over prompts
 *    of logit[correct] − logit[incorrect] at the metric position;
 *  - accuracy: the share of prompts with logit[correct] > logit[incorrect];
 *  - ms_per_prompt: a batched forward over all the task's prompts, computing only the answer pair's
 *    logits, timed after a warm-up run; the median of 5 repetitions, divided by the number of prompts;
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
import { accuracy, mean, std } from '../task/metrics.ts';
import type { Task } from '../task/types.ts';
import { countParams } from '../compress/count.ts';
import { cleanMetrics } from '../discover/scan.ts';
import { addModelOptions, engineFrom, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addTaskOptions, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { describeToken } from './vocab-options.ts';
import { VocabMap } from '../model/vocab.ts';

export const DEFAULT_BATCH_SIZE = 64;
const TIMING_REPEATS = 5;

export interface EvalResult {
  model: string;
  task: string;
  n_prompts: number;
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
export function checkTaskVocabulary(task: Task, vocab: VocabMap): void {
  task.pairs.forEach((p, i) => {
    const fields: [string, number[]][] = [['clean', p.clean], ['corrupt', p.corrupt], ['correct', [p.correct]], ['incorrect', [p.incorrect]]];
    for (const [field, ids] of fields) {
      for (const t of ids) {
        if (!vocab.has(t)) fail(`${task.name} prompt ${i}: field "${field}": ${vocab.missing(t, vocab.trimmed ? describeToken(t) : undefined)}`);
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
  opts: { batchSize: number; repeats?: number },
): Promise<Pick<EvalResult, 'metric' | 'std' | 'accuracy' | 'ms_per_prompt'> & { metrics: Float64Array }> {
  // This first pass also warms up: the graph is compiled and the session's buffers allocated.
  const metrics = await cleanMetrics(model, task, opts.batchSize);
  const times: number[] = [];
  for (let i = 0; i < (opts.repeats ?? TIMING_REPEATS); i++) {
    const t0 = process.hrtime.bigint();
    await cleanMetrics(model, task, opts.batchSize);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { metrics, metric: mean(metrics), std: std(metrics), accuracy: accuracy(metrics), ms_per_prompt: median(times) / task.pairs.length };
}

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
    ['metric', `${r.metric.toFixed(4)} ± ${r.std.toFixed(4)} (logit difference, mean ± std)`],
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
  addTaskOptions(addModelOptions(cmd)).action(async (opts: EvalCliOptions) => {
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const engine = engineFrom(opts);
    const { dir, name } = await resolveModel(opts.model ?? 'toy-ioi');
    const loaded = loadModelDir(dir, name);
    const task = taskFromOptions(opts, { nCtx: loaded.config.nCtx });
    checkTaskVocabulary(task, VocabMap.of(loaded.config));
    const model = new HookedModel(loaded, engine);
    const r = await evaluateModel(model, task, { batchSize });
    const counts = countParams(loaded);
    const result: EvalResult = {
      model: name,
      task: task.name,
      n_prompts: task.pairs.length,
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
