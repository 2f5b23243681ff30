import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerTaskCommand, formatTaskTable, highlightNames } from '../../src/cli/task.ts';
import { addTaskOptions, ioiOptionsFrom, taskFromOptions } from '../../src/cli/task-options.ts';
import { generateIoi } from '../../src/task/ioi.ts';
import { CarveError } from '../../src/util/errors.ts';

const ANSI_RE = /\x1b\[[0-9;]*m/;

function program(): Command {
  const p = new Command('carve').exitOverride();
  registerTaskCommand(p);
  return p;
}

/** Run with stdout/stderr captured. */
async function run(args: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  try {
    await program().parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return { stdout, stderr };
}

test('addTaskOptions: defaults give the seed-1, N-25 mixed IOI task', () => {
  const cmd = addTaskOptions(new Command('x').exitOverride());
  cmd.parse([], { from: 'user' });
  const opts = cmd.opts();
  assert.equal(opts.task, 'ioi');
  // BOS unset: the tokenizer's post-processor decides (GPT-2: no BOS).
  assert.deepEqual(ioiOptionsFrom(opts), { n: 25, seed: 1, promptType: 'mixed', flip: 'ABC->XYZ, BAB->XYZ', prependBos: undefined });
  const task = taskFromOptions(opts, { nCtx: 1024, requireEqualLengths: true });
  assert.equal(task.name, 'ioi(n=25,seed=1,mixed)');
  assert.equal(task.pairs.length, 25);

  const cmd2 = addTaskOptions(new Command('x').exitOverride());
  cmd2.parse(['--n', '4', '--seed', '9', '--prompt-type', 'BABA', '--prepend-bos', '--flip', 'ABB->XYZ, BAB->XYZ'], { from: 'user' });
  assert.deepEqual(ioiOptionsFrom(cmd2.opts()), { n: 4, seed: 9, promptType: 'BABA', flip: 'ABB->XYZ, BAB->XYZ', prependBos: true });
  const cmd3 = addTaskOptions(new Command('x').exitOverride());
  cmd3.parse(['--no-prepend-bos'], { from: 'user' });
  assert.equal(ioiOptionsFrom(cmd3.opts()).prependBos, false);
});

test('unknown option values are CarveErrors naming the flag', () => {
  const cases: [object, RegExp][] = [
    [{ promptType: 'foo' }, /^--prompt-type: .*"foo"/],
    [{ n: '-3' }, /^--n: .*"-3"/],
    [{ n: 'ten' }, /^--n: /],
    [{ n: '2.5' }, /^--n: /],
    [{ seed: '-1' }, /^--seed: /],
    [{ seed: '1e3' }, /^--seed: /],
    [{ flip: 'ABC->XYZ' }, /^--flip: /],
    [{ task: '' }, /^--task: /],
  ];
  for (const [opts, re] of cases) {
    assert.throws(() => taskFromOptions(opts), (e: unknown) => e instanceof CarveError && re.test(e.message), JSON.stringify(opts));
  }
  // Commander hands "-3" to --n as its value, so the error is ours, not commander's.
  const cmd = addTaskOptions(new Command('x').exitOverride());
  cmd.parse(['--n', '-3'], { from: 'user' });
  assert.throws(() => taskFromOptions(cmd.opts()), CarveError);
});

test('`carve task ioi --out FILE` writes the JSONL atomically and a plain table to a piped stderr', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-cli-task-'));
  try {
    const path = join(dir, 'ioi.jsonl');
    const { stdout, stderr } = await run(['task', 'ioi', '--n', '12', '--out', path]);
    assert.equal(stdout, '');
    assert.deepEqual(readdirSync(dir), ['ioi.jsonl']);
    const rows = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 12);
    assert.equal(rows[0].clean, 'When Victoria and Jane got a snack at the store, Jane decided to give it to');
    assert.equal(rows[0].correct_token, 12313);
    assert.ok(!ANSI_RE.test(stderr), 'no colour when stderr is not a terminal');
    assert.match(stderr, /ioi\(n=12,seed=1,mixed\): 12 prompt pairs, the first 10 shown/);
    assert.match(stderr, /  0  ABBA    0  Victoria  Jane      When Victoria and Jane got a snack/);
    assert.equal(stderr.split('\n').filter((l) => /^\s+\d+  (ABBA|BABA)/.test(l)).length, 10);

    // A JSONL task can be read back through the same command (to stdout when --out is absent).
    const again = await run(['task', path, '--show', '0']);
    assert.equal(again.stderr, '');
    assert.equal(again.stdout.trimEnd().split('\n').length, 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad value leaves no output file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-cli-task-'));
  try {
    await assert.rejects(run(['task', 'ioi', '--prompt-type', 'foo', '--out', join(dir, 'x.jsonl')]), CarveError);
    await assert.rejects(run(['task', 'ioi', '--show', 'many', '--out', join(dir, 'x.jsonl')]), CarveError);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('table highlighting: ANSI colour on IO and S when asked, whole words only', () => {
  const task = generateIoi({ n: 3, seed: 1 });
  const coloured = formatTaskTable(task, 2, true);
  assert.match(coloured, /\x1b\[1m\x1b\[32mVictoria\x1b\[0m/, 'IO in green');
  assert.match(coloured, /\x1b\[1m\x1b\[31mJane\x1b\[0m/, 'S in red');
  assert.equal(formatTaskTable(task, 2, false).match(ANSI_RE), null);
  const marks = [{ name: 'Andre', color: '<c>' }];
  assert.equal(highlightNames('Andrew and Andre.', marks, true), 'Andrew and \x1b[1m<c>Andre\x1b[0m.');
  assert.equal(highlightNames('Andrew and Andre.', marks, false), 'Andrew and Andre.');
});
