import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerReportCommand } from '../../src/cli/report.ts';
import { freshRun } from '../report/helpers.ts';

test('`carve report RUN_DIR` writes report.html and names it on stderr', async () => {
  const dir = freshRun('cli');
  const program = new Command('carve').exitOverride();
  registerReportCommand(program);
  const written: string[] = [];
  const original = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'carve', 'report', dir]);
  } finally {
    process.stderr.write = original;
  }
  assert.ok(existsSync(join(dir, 'report.html')));
  const out = written.join('');
  assert.ok(out.includes(join(dir, 'report.html')), out);
  assert.match(out, /warning: broken\.json/);
});
