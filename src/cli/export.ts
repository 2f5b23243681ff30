/**
 * `carve export --model DIR --format onnx|web --out PATH [--dtype f32|f16] [--max-len N]`:
 *  - onnx: one self-contained ONNX file (weights inside) that any onnxruntime runs without carve,
 *    and `PATH.json` beside it (src/export/onnx.ts says what is in both);
 *  - web: a static directory whose index.html runs the model in a browser, offline
 *    (src/export/web.ts). The task options choose the example prompt and the answers it lists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { resolveModel } from '../model/hub.ts';
import { loadModelDir } from '../model/load.ts';
import { VocabMap } from '../model/vocab.ts';
import { countParams } from '../compress/count.ts';
import { listComponents } from '../discover/components.ts';
import { loadTokenizer, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE } from '../tokenizer/load.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { NAMES } from '../task/ioi-data.ts';
import type { Task } from '../task/types.ts';
import { EXPORT_DTYPES, exportOnnx, onnxMeta, type ExportDtype } from '../export/onnx.ts';
import { WEB_FILES, webExportFiles, writeFiles, type TokenizerFiles } from '../export/web.ts';
import { addModelOptions, parseChoice, parsePositiveInt, type EngineCliOptions } from './common.ts';
import { addTaskOptions, taskFromOptions, type TaskCliOptions } from './task-options.ts';

interface ExportCliOptions extends EngineCliOptions, TaskCliOptions {
  format?: string;
  dtype: string;
  maxLen?: string;
}

/** The task's answer tokens: for IOI every name (the generator's answers), for a file the answers it lists. */
function taskAnswers(taskArg: string, task: Task, tokenizer: Tokenizer): number[] {
  if (taskArg.trim() === 'ioi') return NAMES.map((n) => tokenizer.encodeContinuation(' ' + n)).filter((ids) => ids.length === 1).map((ids) => ids[0]!);
  const ids = new Set<number>();
  for (const p of task.pairs) {
    for (const t of [...p.correct, ...p.incorrect]) ids.add(t);
  }
  return [...ids];
}

function checkWebOut(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) fail(`--out ${out}: exists and is not a directory`);
  const ours = new Set(WEB_FILES);
  const foreign = readdirSync(out).filter((f) => !ours.has(f));
  if (foreign.length > 0) fail(`--out ${out}: the directory exists and holds other files (${foreign.slice(0, 3).join(', ')}); choose a new directory`);
}

export function registerExportCommand(program: Command): void {
  const cmd = program
    .command('export')
    .description('write the model as one ONNX file, or as a web page that runs it offline')
    .option('--format <onnx|web>', 'onnx: one self-contained .onnx file; web: a static page (index.html) with the model and onnxruntime-web')
    .option('--dtype <f32|f16>', 'storage precision of the weights (computation stays float32)', 'f32')
    .option('--max-len <n>', 'longest sequence the exported model takes (default: the model\'s context)')
    .option('--out <path>', 'the .onnx file (format onnx) or the directory (format web) to write');
  addTaskOptions(addModelOptions(cmd)).action(async (opts: ExportCliOptions) => {
    const format = parseChoice(opts.format, '--format', ['onnx', 'web'] as const);
    const dtype = parseChoice(opts.dtype, '--dtype', EXPORT_DTYPES) as ExportDtype;
    const maxLen = opts.maxLen !== undefined ? parsePositiveInt(opts.maxLen, '--max-len') : undefined;
    if (!opts.out) fail(`--out: give the ${format === 'onnx' ? '.onnx file' : 'directory'} to write`);
    const out = opts.out;
    if (format === 'onnx' && existsSync(out) && statSync(out).isDirectory()) fail(`--out ${out}: is a directory, expected a file name like model.onnx`);
    if (format === 'web') checkWebOut(out);

    const { dir, name } = await resolveModel(opts.model ?? 'toy-ioi');
    const model = loadModelDir(dir, name);
    const tokenizer = loadTokenizer(dir);
    if (maxLen !== undefined && maxLen > model.config.nCtx) fail(`--max-len ${maxLen}: longer than the model's context of ${model.config.nCtx}`);
    const exportOpts = { dtype, maxLen };
    const vocab = VocabMap.of(model.config);

    if (format === 'onnx') {
      const bytes = exportOnnx(model, exportOpts);
      const meta = onnxMeta(model, exportOpts, (id) => tokenizer.tokenString(id));
      writeFileAtomic(out, bytes);
      writeFileAtomic(`${out}.json`, JSON.stringify(meta, null, 2) + '\n');
      process.stderr.write(`carve export: wrote ${out} (${(bytes.length / 1024).toFixed(1)} KiB, ${dtype}) and ${basename(out)}.json\n`);
      return;
    }

    const task = taskFromOptions(opts, { nCtx: model.config.nCtx }, tokenizer);
    const answers = taskAnswers(opts.task ?? 'ioi', task, tokenizer).filter((id) => vocab.has(id));
    const first = task.pairs[0];
    const example = first.cleanText ?? tokenizer.decode(first.clean);
    const counts = countParams(model);
    const about =
      `${counts.n_params.toLocaleString('en-US')} parameters; ${listComponents(model.config).length} components; ` +
      `${vocab.size.toLocaleString('en-US')} tokens${vocab.trimmed ? ' (the task\'s vocabulary)' : ''}; context ${model.config.nCtx}`;
    const tokenizerFiles: TokenizerFiles | undefined = existsSync(join(dir, TOKENIZER_FILE))
      ? {
          json: readFileSync(join(dir, TOKENIZER_FILE), 'utf8'),
          config: existsSync(join(dir, TOKENIZER_CONFIG_FILE)) ? readFileSync(join(dir, TOKENIZER_CONFIG_FILE), 'utf8') : undefined,
          bos: tokenizer.addsBos && tokenizer.bos ? tokenizer.bos.id : null,
        }
      : undefined;
    const files = webExportFiles(model, { ...exportOpts, name, about, example, answers }, (id) => tokenizer.tokenString(id), tokenizerFiles);
    writeDirAtomic(out, (tmp) => writeFiles(tmp, files));
    const total = [...files.values()].reduce((s, f) => s + f.length, 0);
    process.stderr.write(`carve export: wrote ${out}/index.html (${files.size} files, ${(total / 2 ** 20).toFixed(1)} MiB; the model ${((files.get('model.onnx')!.length) / 1024).toFixed(1)} KiB); open it in a browser\n`);
  });
}
