import type { Command } from 'commander';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description('turn a run directory (scan, prune, compress and eval outputs) into report.html with SVG and PNG figures')
    .argument('<RUN_DIR>', 'directory holding the JSON outputs of scan, prune and eval, a task.jsonl and compressed models')
    .option('--model <dir|hub-id|toy-ioi>', 'the model to draw attention patterns with (default: the one the scans name, if it is on this machine)')
    .action(async (runDir: string, opts: { model?: string }) => {
      // The figure libraries take seconds to load: only this command pays for them.
      const { writeReport } = await import('../report/index.ts');
      const result = await writeReport(runDir, { model: opts.model });
      for (const w of result.warnings) process.stderr.write(`carve: warning: ${w}\n`);
      process.stderr.write(`wrote ${result.html} (${result.figures.length / 2} figures in ${result.figures.length > 0 ? result.figures[0].replace(/\/[^/]*$/, '') : 'none'})\n`);
    });
}
