/**
 * The report's attention patterns: which heads (largest |score| in the exact scan), that the patterns
 * are the model's own on the task's first prompt, the figure's shape, and that a model not at hand
 * only skips these figures with a warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { encode, displayToken } from '../../src/tokenizer/gpt2.ts';
import { loadRun } from '../../src/report/load-run.ts';
import { reportAttention, topHeads } from '../../src/report/attention.ts';
import { attentionData, attentionSpec } from '../../src/report/specs.ts';
import { renderSvg } from '../../src/report/render.ts';
import { writeReport } from '../../src/report/index.ts';
import { FIXTURE_RUN, emptyDir } from './helpers.ts';

const TOY = join(import.meta.dirname ?? '', '..', '..', 'models', 'toy-ioi');

test('the heads with the largest |score| in the exact mean scan, with the model\'s own patterns on the first prompt', async () => {
  const run = loadRun(FIXTURE_RUN);
  const { heads, warnings } = await reportAttention(run);
  assert.deepEqual(warnings, []);
  // Independently: the fixture file's heads by |score|.
  const scan = JSON.parse(readFileSync(join(FIXTURE_RUN, 'scan-exact-mean.json'), 'utf8')) as { components: { name: string; head: number | null; score: number }[] };
  const expected = scan.components.filter((c) => c.head !== null).sort((a, b) => Math.abs(b.score) - Math.abs(a.score)).slice(0, 4).map((c) => c.name);
  assert.deepEqual(heads.map((h) => h.name), expected);
  assert.ok(heads.every((h) => h.scanFile === 'scan-exact-mean.json' && h.taskFile === 'task.jsonl'));

  const first = JSON.parse(readFileSync(join(FIXTURE_RUN, 'task.jsonl'), 'utf8').split('\n')[0]) as { clean: string };
  const tokens = encode(first.clean);
  const model = new HookedModel(loadModelDir(TOY, 'toy-ioi'), new Engine({ device: 'cpu', threads: 1 }));
  const T = tokens.length;
  for (const h of heads) {
    assert.deepEqual(h.tokens, tokens.map(displayToken));
    const hook = model.hookName(h.layer, 'attn.hook_pattern');
    const full = await model.run({ tokens: [tokens], hooks: [hook], logits: 'none' });
    const v = full.hooks.get(hook)!.data;
    h.pattern.forEach((row, q) => {
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      row.forEach((w, k) => assert.ok(Math.abs(w - v[(h.head * T + q) * T + k]) < 1e-6, `${h.name} q${q} k${k}`));
    });
  }
});

test('attention figure: one cell per query and visible key, labels unique where tokens repeat', async () => {
  const run = loadRun(FIXTURE_RUN);
  const { heads } = await reportAttention(run);
  const a = heads[0];
  const T = a.tokens.length;
  const { cells, labels } = attentionData(a);
  assert.equal(cells.length, (T * (T + 1)) / 2);
  assert.equal(new Set(labels).size, T, 'unique labels');
  assert.ok(a.tokens.filter((t) => t === ' John').length >= 2, 'the fixture prompt repeats a name');
  const svg = await renderSvg(attentionSpec(a));
  assert.equal((svg.match(/aria-roledescription="rect mark"/g) ?? []).length, cells.length);
  assert.ok(!svg.includes('<script>'), 'a hostile prompt is escaped in the figure');
  assert.equal(topHeads(run.scans[0], 2).length, 2);
});

test('a model that is not at hand skips the attention figures with a warning; --model brings them back', async () => {
  // A small run (one scan and the task) keeps the rendering short.
  const dir = emptyDir('attention-missing-model');
  const scan = JSON.parse(readFileSync(join(FIXTURE_RUN, 'scan-exact-mean.json'), 'utf8'));
  scan.model = 'someone/not-downloaded-model';
  writeFileSync(join(dir, 'scan-exact-mean.json'), JSON.stringify(scan));
  copyFileSync(join(FIXTURE_RUN, 'task.jsonl'), join(dir, 'task.jsonl'));
  const without = await writeReport(dir);
  assert.ok(without.warnings.some((w) => /attention patterns skipped: model "someone\/not-downloaded-model".*pass --model/.test(w)), without.warnings.join('; '));
  assert.deepEqual(without.figures.map((f) => f.replace(/^.*\//, '')).sort(), ['heatmap-scan-exact-mean.png', 'heatmap-scan-exact-mean.svg']);
  assert.ok(!readFileSync(without.html, 'utf8').includes('<section id="attention">'));

  const withModel = await reportAttention(loadRun(dir), { model: TOY });
  assert.deepEqual(withModel.warnings, []);
  assert.equal(withModel.heads.length, 4);
  // No task file: skipped, said so.
  const noTask = await reportAttention({ ...loadRun(dir), task: null });
  assert.match(noTask.warnings[0], /no task file/);
});
