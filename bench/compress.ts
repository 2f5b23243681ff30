/**
 * bench/compress: how much faster a compressed model runs the task. A GPT-2-small-shaped model
 * (12 layers, 12 heads, d 768, vocab 50257, n_ctx 1024) with random weights, built in memory; half
 * its heads (in every layer, the heads h with h + layer odd) and half its MLPs (odd layers) removed
 * under mean ablation. The forward over 25 IOI prompts of ~20 tokens (pair logits only) is timed for
 * the full and the compressed model, alternating, and the ratio of the medians printed (and the
 * median of the per-repetition ratios, which resists drifting machine load). The
 * compressed model's metric is checked against the full model with the same components ablated.
 *
 *     npm run bench:compress            (REPS=15 by default)
 */
import { Engine } from '../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../src/model/hooked.ts';
import { computeReplacements } from '../src/discover/replacements.ts';
import { listComponents } from '../src/discover/components.ts';
import { pruneModel } from '../src/compress/prune-model.ts';
import { countParams } from '../src/compress/count.ts';
import { ioiPrompts, median, gpt2SmallInMemory } from './gpt2-small.ts';

const REPS = Number(process.env.REPS ?? 15);

async function main() {
  const engine = new Engine({ device: 'cpu', threads: 0 });
  const full = gpt2SmallInMemory();
  const task = await ioiPrompts(25);
  const tokens = task.pairs.map((p) => p.clean);
  const answers = task.pairs;
  const fullModel = new HookedModel(full, engine);

  const removed = new Set(
    listComponents(full.config)
      .filter((c) => (c.head === null ? c.layer % 2 === 1 : (c.head + c.layer) % 2 === 1))
      .map((c) => c.name),
  );
  const keep = new Set(listComponents(full.config).map((c) => c.name).filter((n) => !removed.has(n)));
  const repl = await computeReplacements(fullModel, task, 'mean', 'clean', 25);
  const pruned = pruneModel(full, keep, repl, 'mean');
  const prunedModel = new HookedModel({ ...pruned, name: 'compressed' }, engine);

  // Correctness: the compressed model equals the full model with those components mean-ablated.
  const z = new Map<number, Intervention>();
  const mlp = new Map<number, Intervention>();
  const B = tokens.length;
  for (const c of listComponents(full.config)) {
    if (!removed.has(c.name)) continue;
    if (c.head !== null) {
      if (!z.has(c.pos)) z.set(c.pos, { keep: new Float32Array(B * 12).fill(1), value: { shape: 'const', data: repl.z.get(c.pos)!.data } });
      for (let b = 0; b < B; b++) z.get(c.pos)!.keep[b * 12 + c.slot] = 0;
    } else {
      mlp.set(c.pos, { keep: new Float32Array(B), value: { shape: 'const', data: repl.mlp.get(c.pos)!.data } });
    }
  }
  const ablated = await fullModel.run({ tokens, logits: 'answers', answers, z, mlp });
  const fullRun = () => fullModel.run({ tokens, logits: 'answers', answers });
  const prunedRun = () => prunedModel.run({ tokens, logits: 'answers', answers });
  const check = await prunedRun();
  let maxDiff = 0;
  for (let b = 0; b < B; b++) maxDiff = Math.max(maxDiff, Math.abs(check.metric![b] - ablated.metric![b]));

  await fullRun();
  const tFull: number[] = [];
  const tPruned: number[] = [];
  for (let r = 0; r < REPS; r++) {
    // Alternate which goes first, so drift in machine load hits both alike.
    const order: [number[], () => Promise<unknown>][] = r % 2 ? [[tPruned, prunedRun], [tFull, fullRun]] : [[tFull, fullRun], [tPruned, prunedRun]];
    for (const [times, fn] of order) {
      const t0 = performance.now();
      await fn();
      times.push(performance.now() - t0);
    }
  }
  const before = countParams(full);
  const after = countParams(pruned);
  const ratio = median(tPruned) / median(tFull);
  // Each repetition's two runs are adjacent in time: the median of their ratios resists load drift.
  const pairRatio = median(tPruned.map((t, i) => t / tFull[i]));
  const out = {
    model: 'random GPT-2-small shape (12 layers, 12 heads, d 768, vocab 50257), in memory',
    removed: `${[...removed].filter((n) => !n.endsWith('MLP')).length} of 144 heads, ${[...removed].filter((n) => n.endsWith('MLP')).length} of 12 MLPs (mean ablation folded)`,
    prompts: B,
    tokens_per_prompt: Math.max(...tokens.map((t) => t.length)),
    reps: REPS,
    full_ms_median: median(tFull),
    compressed_ms_median: median(tPruned),
    time_ratio: ratio,
    time_ratio_paired_median: pairRatio,
    n_params_non_embedding: { full: before.n_params_non_embedding, compressed: after.n_params_non_embedding, ratio: after.n_params_non_embedding / before.n_params_non_embedding },
    max_metric_diff_vs_ablated_full: maxDiff,
  };
  console.log(JSON.stringify(out, null, 2));
  console.log(
    `compressed/full forward time: ${ratio.toFixed(3)} (${out.compressed_ms_median.toFixed(1)} ms vs ${out.full_ms_median.toFixed(1)} ms, medians of ${REPS}; ` +
      `median of paired ratios ${pairRatio.toFixed(3)}); ` +
      `non-embedding parameters ${(100 * out.n_params_non_embedding.ratio).toFixed(1)}% of the full model's; metric matches the ablated full model to ${maxDiff.toExponential(1)}`,
  );
  await engine.release();
}

await main();
