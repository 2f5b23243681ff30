/** The `carve` command line: one subcommand per file in this folder. */
import { Command, CommanderError } from 'commander';
import { flagOf, isCarveError, OptionError } from '../util/errors.ts';
import { registerRunCommand } from './run.ts';
import { registerTaskCommand } from './task.ts';
import { registerReportCommand } from './report.ts';
import { registerTrainCommand } from './train.ts';
import { registerCompressCommand } from './compress.ts';
import { registerEvalCommand } from './eval.ts';
import { registerScanCommand } from './scan.ts';
import { registerPruneCommand } from './prune.ts';
import { registerDemoCommand } from './demo.ts';
import { registerExploreCommand } from './explore.ts';
import { registerExportCommand } from './export.ts';
import { registerFaithfulnessCommand } from './faithfulness.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('carve')
    .description('Score, prune and carve transformer components for a task; write the smaller model.')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      // Commander's own errors (unknown flag, missing argument) become our one-line format.
      outputError: (str, write) => write(`carve: error: ${str.replace(/^error:\s*/i, '').trim()}\n`),
    });
  registerRunCommand(program);
  registerTaskCommand(program);
  registerScanCommand(program);
  registerPruneCommand(program);
  registerReportCommand(program);
  registerTrainCommand(program);
  registerCompressCommand(program);
  registerEvalCommand(program);
  registerExploreCommand(program);
  registerExportCommand(program);
  registerFaithfulnessCommand(program);
  // The demo runs the other commands in-process, each on a fresh program (commander keeps option state).
  registerDemoCommand(program, async (argv) => {
    await buildProgram().parseAsync(argv, { from: 'user' });
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; usage errors were already printed as `carve: error: ...`.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isCarveError(e)) {
      // Library errors name options by key; here they are flags.
      const message = e instanceof OptionError ? e.render(flagOf) : e.message;
      process.stderr.write(`carve: error: ${message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}
