import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadRun } from '../../src/report/load-run.ts';
import { taskTableHtml } from '../../src/report/html.ts';
import { CarveError } from '../../src/util/errors.ts';
import { FIXTURE_RUN, emptyDir, freshRun } from './helpers.ts';

test('recognises every kind of output by content and ignores unrelated files', () => {
  const run = loadRun(FIXTURE_RUN);
  assert.deepEqual(run.scans.map((s) => s.file).sort(), ['scan-attribution-zero.json', 'scan-exact-mean.json', 'scan-exact-zero.json', 'scan-ig-mean.json']);
  assert.deepEqual(run.prunes.map((p) => p.order).sort(), ['acdc', 'greedy', 'scores']);
  assert.deepEqual(run.evals.map((e) => e.label).sort(), ['compressed', 'original']);
  assert.equal(run.compressed.length, 1);
  assert.deepEqual(run.compressed[0].layers[1], { sourceLayer: 1, heads: [0, 3], mlp: false });
  assert.equal(run.compressed[0].weightBytes, 4096);
  assert.equal(run.task?.count, 10);
  assert.equal(run.task?.prompts.length, 8);
  assert.equal(run.task?.prompts[0].io, 'Mary');
  // notes.json and README.txt are not outputs; broken.json is reported, not fatal.
  assert.equal(run.warnings.length, 1);
  assert.match(run.warnings[0], /broken\.json/);
});

test('scan values are read as written', () => {
  const run = loadRun(FIXTURE_RUN);
  const scan = run.scans.find((s) => s.file === 'scan-exact-zero.json')!;
  const raw = JSON.parse(readFileSync(join(FIXTURE_RUN, 'scan-exact-zero.json'), 'utf8'));
  assert.equal(scan.components.length, 15);
  assert.deepEqual(scan.components.map((c) => c.score), raw.components.map((c: { score: number }) => c.score));
  assert.equal(scan.components.filter((c) => c.head === null).length, 3);
  assert.equal(scan.cleanMetric, 3.2);
});

test('missing, empty and unreportable run directories are user errors', () => {
  assert.throws(() => loadRun(join(FIXTURE_RUN, 'no-such-dir')), (e) => e instanceof CarveError && /does not exist/.test(e.message));
  const empty = emptyDir('empty');
  assert.throws(() => loadRun(empty), (e) => e instanceof CarveError && /nothing to report/.test(e.message));
  writeFileSync(join(empty, 'notes.json'), '{"a": 1}');
  writeFileSync(join(empty, 'task.jsonl'), '{"clean": "x", "correct": " a", "incorrect": " b"}\n');
  assert.throws(() => loadRun(empty), (e) => e instanceof CarveError && /nothing to report/.test(e.message));
  assert.throws(() => loadRun(join(FIXTURE_RUN, 'task.jsonl')), (e) => e instanceof CarveError && /not a directory/.test(e.message));
});

test('a malformed scan names the file and the field', () => {
  const dir = freshRun('malformed');
  const scan = JSON.parse(readFileSync(join(dir, 'scan-exact-zero.json'), 'utf8'));
  scan.components[4].score = 'high';
  writeFileSync(join(dir, 'scan-exact-zero.json'), JSON.stringify(scan));
  assert.throws(() => loadRun(dir), (e) => e instanceof CarveError && /scan-exact-zero\.json: components\[4\]: field "score"/.test(e.message));
  rmSync(dir, { recursive: true, force: true });
});

test('a malformed task line names the line', () => {
  const dir = freshRun('bad-task');
  writeFileSync(join(dir, 'task.jsonl'), '{"clean": "a", "correct": " x", "incorrect": " y"}\nnot json\n');
  assert.throws(() => loadRun(dir), (e) => e instanceof CarveError && /task\.jsonl: line 2/.test(e.message));
  rmSync(dir, { recursive: true, force: true });
});

test('answer sets and metric_name: the task table shows sets, and the page names the metric the run used', async () => {
  const dir = freshRun('answer-sets');
  writeFileSync(join(dir, 'task.jsonl'), JSON.stringify({ clean: 'The war lasted from the year 1732 to the year 17', correct: ['33', '34', '35', '36'], incorrect: ['31', '32'] }) + '\n');
  const scanFile = join(dir, 'scan-exact-zero.json');
  writeFileSync(scanFile, JSON.stringify({ ...JSON.parse(readFileSync(scanFile, 'utf8')), metric_name: 'prob-diff' }));
  const run = loadRun(dir);
  assert.deepEqual(run.task!.prompts[0]!.correct, ['33', '34', '35', '36']);
  assert.equal(run.scans.find((s) => s.file.endsWith('scan-exact-zero.json'))!.metricName, 'prob-diff');
  const html = taskTableHtml(run);
  assert.match(html, /&quot;33&quot; \u2026 &quot;36&quot;<\/code> \(4\)/);
  assert.match(html, /&quot;31&quot;, &quot;32&quot;/);
  assert.match(html, /The metric is the probability difference/);
  rmSync(dir, { recursive: true, force: true });
});
