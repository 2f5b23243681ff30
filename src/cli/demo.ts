/**
 * `carve demo`: the whole pipeline on the embedded toy-ioi model, offline — the task, scans under
 * three replacements, the three pruning orders, a compressed model and its evaluation, and the
 * report — under carve-out/demo/. Each step runs the same command a user would type (in-process),
 * so the demo is also a tour of the CLI, and its outputs reload like any other run's.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fail, isCarveError } from '../util/errors.ts';
import { ortWebDist } from '../export/web.ts';

interface DemoOptions {
  out: string;
  model: string;
  task: string;
  n: string;
  quick?: boolean;
  target: string;
  shipTarget: string;
  threads: string;
  device: string;
}

interface ScanJson {
  metric_name?: string;
  clean_metric: number;
  corrupt_metric: number;
  components: { name: string; head: number | null; score: number }[];
}

export function registerDemoCommand(program: Command, runCommand: (argv: string[]) => Promise<void>): void {
  program
    .command('demo')
    .description('run the whole pipeline on the embedded toy-ioi model and write a report (offline; seconds on 2 cores)')
    .option('--out <dir>', 'where to write everything', 'carve-out/demo')
    .option('--model <dir|hub-id|toy-ioi>', 'the model (the demo is made for toy-ioi)', 'toy-ioi')
    .option('--task <ioi|greater-than>', 'the built-in task to run the pipeline on (greater-than: its metric is prob-diff)', 'ioi')
    .option('--n <count>', 'prompts', '25')
    .option('--target <f>', 'compress to the smallest set keeping at least F x the clean metric', '0.8')
    .option('--ship-target <f>', 'the model to ship (circuit, neurons, task vocabulary) keeps at least F x the clean metric', '0.95')
    .option('--threads <n>', 'intra-op threads (0: one per core)', '0')
    .option('--device <cpu|webgpu|cuda>', 'onnxruntime execution provider', 'cpu')
    .option('--quick', 'a shortened run (8 prompts, 2 ig steps) for tests and a first look', false)
    .action(async (opts: DemoOptions) => {
      const dir = opts.out;
      const n = opts.quick ? '8' : opts.n;
      const common = ['--model', opts.model, '--threads', opts.threads, '--device', opts.device];
      if (opts.task !== 'ioi' && opts.task !== 'greater-than') fail(`--task: the demo runs a built-in task, ioi or greater-than; got ${JSON.stringify(opts.task)}`);
      const task = ['--task', opts.task, '--n', n, '--seed', '1'];
      const started = Date.now();
      const step = async (label: string, argv: string[]) => {
        process.stderr.write(`\n== ${label}: carve ${argv.join(' ')}\n`);
        await runCommand(argv);
      };
      const f = (name: string) => join(dir, name);
      await step('the task', ['task', opts.task, '--model', opts.model, '--n', n, '--seed', '1', '--show', '5', '--out', f('task.jsonl')]);
      for (const [ablation, method] of [
        ['mean', 'exact'],
        ['mean', 'attribution'],
        ['mean', 'ig'],
        ['zero', 'exact'],
        ['resample', 'exact'],
        ['resample', 'attribution'],
      ]) {
        const extra = method === 'ig' ? ['--steps', opts.quick ? '2' : '8'] : [];
        await step(`scan (${ablation}, ${method})`, ['scan', ...common, ...task, '--ablation', ablation, '--method', method, ...extra, '--out', f(`scan-${ablation}-${method}.json`)]);
      }
      for (const order of ['scores', 'greedy', 'acdc']) {
        await step(`prune (${order})`, ['prune', ...common, ...task, '--order', order, '--ablation', 'mean', '--out', f(`prune-${order}.json`)]);
      }
      await step('prune (greedy, resample)', ['prune', ...common, ...task, '--order', 'greedy', '--ablation', 'resample', '--out', f('prune-greedy-resample.json')]);
      await step('compress', ['compress', ...common, ...task, '--ablation', 'mean', '--from', f('prune-greedy.json'), '--target', opts.target, '--out', f('compressed')]);
      await step('evaluate the original', ['eval', ...common, ...task, '--out', f('eval-original.json')]);
      await step('evaluate the compressed model', ['eval', '--model', f('compressed'), '--threads', opts.threads, '--device', opts.device, ...task, '--out', f('eval-compressed.json')]);
      // The model you can ship: the circuit, its MLP neurons pruned, the task's vocabulary, checked
      // on prompts it was not carved on, exported as one ONNX file and as a web page.
      const heldOut = ['--task', opts.task, '--n', opts.quick ? '20' : '100', '--seed', '2'];
      await step('carve a model you can ship', ['compress', ...common, ...task, '--ablation', 'mean', '--from', f('prune-greedy.json'), '--target', opts.shipTarget, '--neurons', '--vocab', 'task', '--out', f('shipped')]);
      await step('evaluate it on held-out prompts', ['eval', '--model', f('shipped'), '--threads', opts.threads, '--device', opts.device, ...heldOut, '--out', f('eval-shipped-heldout.json')]);
      await step('evaluate the original on the same prompts', ['eval', ...common, ...heldOut, '--out', f('eval-original-heldout.json')]);
      await step('export it as one ONNX file', ['export', '--model', f('shipped'), '--format', 'onnx', '--dtype', 'f16', '--out', f('shipped.onnx')]);
      let web = true;
      try {
        ortWebDist();
      } catch (e) {
        if (!isCarveError(e)) throw e;
        web = false;
        process.stderr.write(`\n== export as a web page: skipped (${e.message})\n`);
      }
      if (web) await step('export it as a web page', ['export', '--model', f('shipped'), '--format', 'web', '--dtype', 'f16', ...task, '--out', f('web')]);
      await step('report', ['report', dir]);
      process.stderr.write('\n');
      process.stdout.write(summary(dir, (Date.now() - started) / 1000));
    });
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    fail(`${path}: ${(e as Error).message}`);
  }
}

/** What the demo found, in a few lines a newcomer can read. */
function summary(dir: string, seconds: number): string {
  const scan = readJson<ScanJson>(join(dir, 'scan-mean-exact.json'));
  const original = readJson<{ metric: number; accuracy: number; n_params: number; n_params_non_embedding: number; ms_per_prompt: number; file_bytes?: number; model?: string }>(join(dir, 'eval-original.json'));
  const compressed = readJson<typeof original>(join(dir, 'eval-compressed.json'));
  const record = readJson<{ kept: string[]; removed: string[] }>(join(dir, 'compressed', 'carve-compress.json'));
  const needed = [...scan.components].sort((a, b) => a.score - b.score).filter((c) => c.score < 0).slice(0, 5);
  const pct = (a: number, b: number) => `${(100 * (1 - a / b)).toFixed(0)}%`;
  const metric = scan.metric_name === 'prob-diff' ? 'probability difference' : 'logit difference';
  const lines = [
    `carve demo finished in ${seconds.toFixed(0)} s; everything is in ${dir}/ (open ${join(dir, 'report.html')})`,
    `clean ${metric} ${scan.clean_metric.toFixed(2)}, corrupt ${scan.corrupt_metric.toFixed(2)}`,
    `components the task needs most (mean ablation, exact): ${needed.map((c) => `${c.name} (${c.score.toFixed(2)})`).join(', ')}`,
    `compressed model: kept ${record.kept.length} of ${record.kept.length + record.removed.length} components: ${record.kept.join(', ')}`,
    `  non-embedding parameters ${original.n_params_non_embedding} -> ${compressed.n_params_non_embedding} (-${pct(compressed.n_params_non_embedding, original.n_params_non_embedding)}), all parameters -${pct(compressed.n_params, original.n_params)}`,
    `  ${metric} ${original.metric.toFixed(2)} -> ${compressed.metric.toFixed(2)}, accuracy ${(100 * original.accuracy).toFixed(0)}% -> ${(100 * compressed.accuracy).toFixed(0)}%, ${original.ms_per_prompt.toFixed(2)} -> ${compressed.ms_per_prompt.toFixed(2)} ms per prompt`,
  ];
  return [...lines, ...shipSummary(dir, original)].join('\n') + '\n';
}

/** The shipped model's figures: its share of toy-ioi's parameters and file size, and how it does on held-out prompts. */
function shipSummary(dir: string, original: { n_params: number; file_bytes?: number; model?: string }): string[] {
  const who = original.model ?? 'the original';
  const shipped = readJson<{ metric: number; accuracy: number; n_params: number; n_neurons?: number; n_prompts: number; task: string; metric_name?: string }>(join(dir, 'eval-shipped-heldout.json'));
  const base = readJson<{ metric: number; accuracy: number }>(join(dir, 'eval-original-heldout.json'));
  const rec = readJson<{ kept: string[]; vocab: { n_tokens_after: number }; neurons?: { n_after: number; n_before: number } }>(join(dir, 'shipped', 'carve-compress.json'));
  const onnx = statSync(join(dir, 'shipped.onnx')).size;
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(2)}%`;
  const fileBytes = original.file_bytes ?? 0;
  return [
    `model you can ship (${join(dir, 'shipped')}): ${rec.kept.length} components, ${rec.neurons?.n_after ?? '?'} of ${rec.neurons?.n_before ?? '?'} MLP neurons, ${rec.vocab.n_tokens_after} tokens`,
    `  ${shipped.n_params.toLocaleString('en-US')} parameters = ${pct(shipped.n_params, original.n_params)} of ${who}'s ${original.n_params.toLocaleString('en-US')}; ` +
      `ONNX file (f16) ${(onnx / 1000).toFixed(1)} kB = ${fileBytes > 0 ? pct(onnx, fileBytes) : '?'} of ${who}'s ${(fileBytes / 1e6).toFixed(2)} MB`,
    `  held-out prompts (${shipped.task}): ${shipped.metric_name === 'prob-diff' ? 'probability difference' : 'logit difference'} ${shipped.metric.toFixed(2)} = ${pct(shipped.metric, base.metric)} of the original's ${base.metric.toFixed(2)}, ` +
      `accuracy ${(100 * shipped.accuracy).toFixed(1)}% (original ${(100 * base.accuracy).toFixed(1)}%)`,
    existsSync(join(dir, 'web', 'index.html')) ? `  in a browser, offline: open ${join(dir, 'web', 'index.html')}` : '  web page: not exported (see the skipped step above)',
  ];
}
