/**
 * `carve explore [RUN_DIR] [model and task options] [--host 127.0.0.1] [--port P] [--out-dir DIR]`:
 * serve the interactive page and its JSON API (src/explore). The first line on stderr is
 * `carve explore: http://HOST:PORT/`; it serves until interrupted.
 *
 * With RUN_DIR, its scans colour the grid and its pruning curves are drawn; unless --model or --task
 * say otherwise, the model is the one its scans name and the task is its task.jsonl.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { resolveModel } from '../model/hub.ts';
import { loadModelDir } from '../model/load.ts';
import { METRIC_NAMES, type MetricName } from '../model/readout.ts';
import type { MeanOver } from '../discover/replacements.ts';
import { loadRun, type RunData } from '../report/load-run.ts';
import { ExploreSession } from '../explore/session.ts';
import { startExploreServer } from '../explore/server.ts';
import { addModelOptions, engineFrom, parseChoice, parseNonNegativeInt, parsePositiveInt, type EngineCliOptions } from './common.ts';
import { addTaskOptions, taskFromOptions, type TaskCliOptions } from './task-options.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { VocabMap } from '../model/vocab.ts';
import { checkTaskVocabulary, DEFAULT_BATCH_SIZE } from './eval.ts';

export const DEFAULT_PORT = 8765;

interface ExploreCliOptions extends EngineCliOptions, TaskCliOptions {
  host: string;
  port: string;
  outDir?: string;
  metric: string;
  meanOver: string;
  batchSize: string;
}

/** The model a run directory's scans agree on, when they name one. */
function runModel(run: RunData): string | undefined {
  const names = new Set(run.scans.map((s) => s.model).filter((m): m is string => m !== null));
  return names.size === 1 ? [...names][0] : undefined;
}

export function registerExploreCommand(program: Command): void {
  const cmd = program
    .command('explore')
    .description('serve an interactive page: remove components and watch the exact metric, see attention patterns, save or compress the set')
    .argument('[RUN_DIR]', 'a run directory (scan and prune outputs, task.jsonl) whose scores and curves to show')
    .option('--host <addr>', 'address to serve on (anything but loopback exposes the model to your network)', '127.0.0.1')
    .option('--port <n>', 'port to serve on (0: any free port)', String(DEFAULT_PORT))
    .option('--out-dir <dir>', 'where the page may write keep files and compressed models (nothing is written without it)')
    .option('--metric <logit-diff|prob-diff|kl>', 'the task metric', 'logit-diff')
    .option('--mean-over <clean|corrupt>', 'mean ablation: average over the clean or the corrupt prompts', 'clean')
    .option('--batch-size <rows>', 'rows (prompts × configurations) per onnxruntime run', String(DEFAULT_BATCH_SIZE));
  addTaskOptions(addModelOptions(cmd)).action(async (runDir: string | undefined, opts: ExploreCliOptions, self: Command) => {
    const port = parseNonNegativeInt(opts.port, '--port');
    if (port > 65535) fail(`--port: expected a port from 0 to 65535, got ${opts.port}`);
    const host = opts.host.trim();
    if (host === '') fail('--host: expected an address, got an empty value');
    const metric = parseChoice<MetricName>(opts.metric, '--metric', METRIC_NAMES);
    const meanOver = parseChoice<MeanOver>(opts.meanOver, '--mean-over', ['clean', 'corrupt']);
    const batchSize = parsePositiveInt(opts.batchSize, '--batch-size');
    const run = runDir !== undefined ? loadRun(runDir) : undefined;

    // A run directory supplies the model and task it was made with, unless the flags name others.
    const given = (name: string) => self.getOptionValueSource(name) !== 'default' && self.getOptionValueSource(name) !== undefined;
    const modelSpec = !given('model') && run ? (runModel(run) ?? opts.model ?? 'toy-ioi') : (opts.model ?? 'toy-ioi');
    const taskOpts = { ...opts };
    if (!given('task') && runDir !== undefined && existsSync(join(runDir, 'task.jsonl'))) taskOpts.task = join(runDir, 'task.jsonl');

    // Messages from loading (a hub download) wait until the URL line, which SPEC puts first.
    const later: string[] = [];
    const engine = engineFrom(opts);
    const { dir, name } = await resolveModel(modelSpec, { log: (m) => later.push(m) });
    const loaded = loadModelDir(dir, name);
    const tokenizer = loadTokenizer(dir);
    const task = taskFromOptions(taskOpts, { nCtx: loaded.config.nCtx }, tokenizer);
    checkTaskVocabulary(task, VocabMap.of(loaded.config), tokenizer);
    const session = new ExploreSession(loaded, task, engine, { metric, meanOver, batchSize, outDir: opts.outDir, run, tokenizer });

    const served = await startExploreServer(session, { host, port });
    process.stderr.write(`carve explore: ${served.url}\n`);
    for (const m of later) process.stderr.write(m.endsWith('\n') ? m : m + '\n');
    for (const w of run?.warnings ?? []) process.stderr.write(`carve: warning: ${w}\n`);
    process.stderr.write(`  model ${name}, task ${task.name} (${task.pairs.length} prompts), metric ${metric}${opts.outDir ? `; writes only under ${session.outDir}` : '; read-only (no --out-dir)'}\n`);
    if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') {
      process.stderr.write(`carve explore: warning: serving on ${host}: anyone who reaches this address can run the model${opts.outDir ? ' and write into ' + opts.outDir : ''}\n`);
    }
    // Warm the evaluator of the default ablation while the user opens the page.
    session.evaluate([], 'mean').catch((e) => process.stderr.write(`carve explore: ${(e as Error).message}\n`));

    await new Promise<void>((resolveStop) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void served.close().then(resolveStop);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  });
}
