/**
 * bench/prune: pruning orders on a GPT-2-small-shaped random model (12 layers × 12 heads + 12 MLPs
 * = 156 components) with 25 IOI prompts (seed 1, mixed), mean ablation:
 *  - the full attribution-guided greedy order (all 156 steps, --verify 4), wall time;
 *  - node-level ACDC (logit difference, default threshold), wall time;
 *  - the exact greedy order, estimated from its first 3 steps: step k evaluates 156 − k + 1
 *    configurations, so the remaining steps are costed at the per-configuration time of steps 2–3
 *    (step 1's configurations start at each component's own layer and are cheaper).
 * Run: npm run bench:prune (set THREADS to pin onnxruntime's intra-op threads; 0 = one per core).
 */
import { HookedModel } from '../src/model/hooked.ts';
import { Engine } from '../src/onnx/session.ts';
import { listComponents } from '../src/discover/components.ts';
import { pruneOrder, type PruneOptions, type PruneResult } from '../src/discover/prune.ts';
import { progressBar } from '../src/util/progress.ts';
import { ioiPrompts, loadGpt2Small } from './gpt2-small.ts';

const THREADS = Number(process.env.THREADS ?? 0);
// PARTS=exact (say) runs only some of the measurements: attribution, acdc, exact.
const PARTS = new Set((process.env.PARTS ?? 'attribution,acdc,exact').split(','));
const fmt = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(2)} h` : s >= 120 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`);

async function main() {
  const model = new HookedModel(loadGpt2Small(), new Engine({ device: 'cpu', threads: THREADS }));
  const task = await ioiPrompts(25);
  const n = listComponents(model.config).length;
  const tokens = task.pairs.map((p) => p.clean.length);
  process.stderr.write(`model ${model.name}: ${n} components; task ${task.name}: ${tokens.length} prompts of ${Math.min(...tokens)}–${Math.max(...tokens)} tokens\n`);

  const timed = async (opts: PruneOptions, label: string): Promise<{ seconds: number; result: PruneResult }> => {
    const bar = progressBar(label);
    let lastLog = 0;
    const t0 = performance.now();
    const result = await pruneOrder(model, task, opts, {
      onProgress: (done, total) => {
        bar.update(done, total, label);
        const now = performance.now();
        if (!process.stderr.isTTY && now - lastLog > 60_000) {
          process.stderr.write(`  ${label}: ${Math.round((100 * done) / total)}% after ${fmt((now - t0) / 1000)}\n`);
          lastLog = now;
        }
      },
    });
    bar.stop();
    return { seconds: (performance.now() - t0) / 1000, result };
  };

  // Attribution-guided greedy, all steps.
  const attr = PARTS.has('attribution') ? await timed({ order: 'greedy', ablation: 'mean', method: 'attribution', verify: 4 }, 'greedy/attribution K=4') : undefined;
  if (attr) process.stderr.write(`greedy/attribution done in ${fmt(attr.seconds)}\n`);

  // ACDC.
  const acdc = PARTS.has('acdc') ? await timed({ order: 'acdc', ablation: 'mean' }, 'acdc') : undefined;
  if (acdc) process.stderr.write(`acdc done in ${fmt(acdc.seconds)}\n`);

  if (!PARTS.has('exact')) {
    if (attr) process.stdout.write(`greedy, attribution-guided (--verify 4), all ${n} steps: ${fmt(attr.seconds)} (${(attr.seconds / n).toFixed(2)} s/step)\n`);
    if (acdc) process.stdout.write(`acdc (logit-diff, T = ${acdc.result.threshold}): ${fmt(acdc.seconds)}, removed ${acdc.result.steps.length - 1}, kept ${acdc.result.kept!.length}\n`);
    return;
  }
  // Exact greedy: the first 3 steps, then stop (by throwing from the checkpoint callback).
  const STEPS = 3;
  const t0 = performance.now();
  let setupEnd = 0;
  const stepEnds: number[] = [];
  const picked: string[] = [];
  await pruneOrder(model, task, { order: 'greedy', ablation: 'mean' }, {
    onProgress: () => {
      if (setupEnd === 0) setupEnd = performance.now();
    },
    onCheckpoint: (cp) => {
      stepEnds.push(performance.now());
      picked.push(cp.steps[cp.steps.length - 1].component!);
      process.stderr.write(`  greedy/exact step ${stepEnds.length}: ${fmt((stepEnds[stepEnds.length - 1] - (stepEnds[stepEnds.length - 2] ?? setupEnd)) / 1000)}\n`);
      if (stepEnds.length >= STEPS) throw new Error('stop');
    },
  }).catch((e: Error) => {
    if (e.message !== 'stop') throw e;
  });
  const setup = (setupEnd - t0) / 1000;
  const stepTimes = stepEnds.map((t, i) => (t - (i === 0 ? setupEnd : stepEnds[i - 1])) / 1000);
  const configs = (k: number) => n - k + 1; // step k (1-based) evaluates this many candidates
  const perConfig = (stepTimes[1] + stepTimes[2]) / (configs(2) + configs(3));
  let rest = 0;
  for (let k = STEPS + 1; k <= n; k++) rest += configs(k) * perConfig;
  const exactEstimate = setup + stepTimes.reduce((s, v) => s + v, 0) + rest;

  const lines = [
    `bench/prune — ${model.name} (12 layers × 12 heads, d_model 768, vocab 50257), ${task.name}, mean ablation, ${n} components, ${THREADS || 'default'} threads`,
    attr ? `  greedy, attribution-guided (--verify 4), all ${n} steps: ${fmt(attr.seconds)} (${(attr.seconds / n).toFixed(2)} s/step)` : '',
    acdc ? `  acdc (logit-diff, T = ${acdc.result.threshold}): ${fmt(acdc.seconds)} — removed ${acdc.result.steps.length - 1}, kept ${acdc.result.kept!.length}` : '',
    `  greedy, exact: setup ${fmt(setup)}, steps 1–3 ${stepTimes.map((s) => fmt(s)).join(', ')} (picked ${picked.join(', ')}); ` +
      `${(perConfig * 1000).toFixed(0)} ms per candidate configuration → estimated ${fmt(exactEstimate)} for all ${n} steps (${(n * (n + 1)) / 2} configurations)`,
  ];
  process.stdout.write(lines.filter((l) => l !== '').join('\n') + '\n');
}

await main();
