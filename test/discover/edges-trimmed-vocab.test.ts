/**
 * Edge scans of a model whose vocabulary was trimmed (`carve compress --vocab`, shipped models):
 * task token ids stay the tokenizer's, and every edge method must read the model's own, renumbered
 * embedding rows and logit columns. The logit difference only reads the answers' columns, so every
 * score equals the untrimmed model's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { trimModel } from '../../src/compress/trim-vocab.ts';
import { scanEdges, type EdgeScanOptions } from '../../src/discover/edge-scan.ts';
import type { Task } from '../../src/task/types.ts';
import { randomHfModel, writeAndLoad } from '../helpers/hf-random.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'carve-edges-trim-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('every edge scan of a vocabulary-trimmed model equals the untrimmed model\'s', async () => {
  const loaded = writeAndLoad(tmp, 'm', randomHfModel({ arch: 'gpt2', nLayer: 2, nHead: 2, dModel: 8, vocab: 40, seed: 71 }));
  // Task tokens 17..39: the trimmed model keeps them as rows 0..22, so a missed renumbering reads the wrong rows.
  const base = randomTask(3, 23, 72, [5, 6, 5]);
  const shift = (ids: number[]) => ids.map((t) => t + 17);
  const task: Task = { ...base, pairs: base.pairs.map((p) => ({ clean: shift(p.clean), corrupt: shift(p.corrupt), correct: shift(p.correct), incorrect: shift(p.incorrect) })) };
  const full = new HookedModel(loaded, engine, 'float64');
  const trimmed = new HookedModel(trimModel(loaded, { keep: Array.from({ length: 23 }, (_, i) => i + 17) }), engine, 'float64');
  assert.equal(trimmed.config.vocabSize, 23);
  const runs: (Omit<EdgeScanOptions, 'ablation'> & { ablation: EdgeScanOptions['ablation'] })[] = [
    { method: 'exact', ablation: 'resample' },
    { method: 'exact', ablation: 'mean' },
    { method: 'attribution', ablation: 'resample' },
    { method: 'ig', ablation: 'mean', steps: 2 },
    { method: 'ig', ablation: 'resample', steps: 2, igPath: 'activations' },
  ];
  for (const opts of runs) {
    const a = await scanEdges(full, task, { ...opts, batchSize: 16 });
    const b = await scanEdges(trimmed, task, { ...opts, batchSize: 16 });
    const label = `${opts.method}${opts.igPath ? `/${opts.igPath}` : ''} ${opts.ablation}`;
    assert.ok(Math.abs(a.clean_metric - b.clean_metric) < 1e-9, `${label}: clean metric`);
    let largest = 0;
    a.edges.forEach((e, i) => {
      largest = Math.max(largest, Math.abs(e.score));
      assert.ok(Number.isFinite(b.edges[i].score) && Math.abs(b.edges[i].score - e.score) < 1e-9 * (1 + Math.abs(e.score)), `${label} ${e.name}: ${b.edges[i].score} vs ${e.score}`);
    });
    assert.ok(largest > 1e-3, `${label}: the scores are not all ~0`);
  }
});
