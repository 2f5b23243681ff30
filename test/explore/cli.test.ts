/**
 * `carve explore` as a user starts it: the URL as stderr's first line, 127.0.0.1 by default, a run
 * directory's model, task, scans and curves, Ctrl-C to stop, and bad flags as one error line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURE_RUN } from '../report/helpers.ts';
import { main } from '../../src/cli/main.ts';
import { call, REPO } from './helpers.ts';

/** Start `carve explore ARGS`, resolve with the first stderr line once it is there. */
function start(args: string[]) {
  const child = spawn(process.execPath, [join(REPO, 'bin', 'carve.js'), 'explore', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      stderr += c;
      const nl = stderr.indexOf('\n');
      if (nl >= 0) resolve(stderr.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`carve explore exited with ${code} before printing its URL: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, firstLine, exited, stderr: () => stderr };
}

test('carve explore RUN_DIR: the URL first on stderr, on 127.0.0.1, with the run\'s model, task, scans and curves; Ctrl-C stops it', async () => {
  const run = start([FIXTURE_RUN, '--port', '0']);
  try {
    const line = await run.firstLine;
    const m = /^carve explore: http:\/\/127\.0\.0\.1:(\d+)\/$/.exec(line);
    assert.ok(m, line);
    const port = Number(m[1]);
    const info = await call(port, { path: '/api/info' });
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json.model, 'toy-ioi', 'the model the run\'s scans name');
    assert.equal(info.json.task, join(FIXTURE_RUN, 'task.jsonl'), 'the run\'s own task');
    assert.equal(info.json.can_write, false);
    assert.equal(((await call(port, { path: '/api/scans' })).json.scans as unknown[]).length, 4);
    assert.equal(((await call(port, { path: '/api/curves' })).json.curves as unknown[]).length, 3);
    const prompts = (await call(port, { path: '/api/prompts' })).json.prompts as { tokens: string[] }[];
    assert.ok(prompts[0].tokens.join('').includes('<script>'), 'prompt text comes as data (the page sets it as text)');
    const ev = await call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json' }, body: '{"removed": ["L2H1"]}' });
    assert.equal(ev.status, 200, ev.text);
    // The run's task pairs prompts of different lengths: resample ablation is a 400 saying so.
    const rs = await call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json' }, body: '{"removed": ["L2H1"], "ablation": "resample"}' });
    assert.equal(rs.status, 400);
    assert.match(rs.json.error ?? '', /resample ablation needs the corrupt prompt to have the clean prompt's length/);
    assert.equal((await call(port, { path: '/api/components' })).status, 200);
  } finally {
    run.child.kill('SIGINT');
  }
  assert.equal(await run.exited, 0, run.stderr());
  assert.match(run.stderr(), /warning: broken\.json/);
});

test('carve explore: bad flags are one error line and exit 2', async () => {
  for (const [args, message] of [
    [['--port', 'eighty'], /--port: expected a non-negative integer/],
    [['--port', '70000'], /--port: expected a port from 0 to 65535/],
    [['--metric', 'accuracy'], /--metric: expected one of logit-diff, prob-diff, kl/],
    [['/no/such/run'], /run directory \/no\/such\/run does not exist/],
  ] as [string[], RegExp][]) {
    // In-process (main as bin/carve.js calls it): a process per case would cost seconds each.
    const written: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => (written.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      await main(['node', 'carve', 'explore', ...args]);
    } finally {
      process.stderr.write = original;
    }
    const err = written.join('');
    assert.equal(process.exitCode, 2, `${args.join(' ')}: ${err}`);
    process.exitCode = 0;
    assert.match(err, message);
    assert.equal(err.trim().split('\n').length, 1, err);
    assert.match(err, /^carve: error: /);
  }
});
