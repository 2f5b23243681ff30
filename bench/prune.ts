/**
 * bench/prune: pruning orders on a GPT-2-small-shaped random model (12 layers × 12 heads + 12 MLPs
 * = 156 components) with 25 IOI prompts (seed 1, mixed), mean ablation:
 *  - the full attribution-guided greedy order (all 156 steps, --verify 4), wall time;
 *  - node-level ACDC (logit difference, default threshold), wall time;
 *  - the exact greedy order, estimated from its first 3 steps: step k evaluates 156 − k + 1
 *    configurations, so the remaining steps are costed at the per-configuration time of steps 2–3
 *    (step 1's configurations start at each component's own layer and are cheaper);
 *  - greedy by successive halving (--method halving), estimated the same way: the configuration ×
 *    prompt evaluations of every step are known in advance (halvingSchedule depends only on the
 *    counts), the time of one is measured on steps 2–3 after taking off each step's fixed cost (one
 *    pass caching the stream with the removals so far, timed on its own), and all 156 steps are
 *    costed as fixed cost + evaluations × that time. PARTS=halving-full runs all 156 steps instead.
 * Run: npm run bench:prune (set THREADS to pin onnxruntime's intra-op threads; 0 = one per core).
 */
import { HookedModel } from '../src/model/hooked.ts';
import { Engine } from '../src/onnx/session.ts';
import { listComponents } from '../src/discover/components.ts';
import { pruneOrder, type PruneOptions, type PruneResult } from '../src/discover/prune.ts';
import { ExactEvaluator } from '../src/discover/evaluate.ts';
import { computeReplacements } from '../src/discover/replacements.ts';
import { defaultFirst, halvingEvaluations } from '../src/discover/halving.ts';
import { progressBar } from '../src/util/progress.ts';
import { ioiPrompts, loadGpt2Small } from './gpt2-small.ts';

const THREADS = Number(process.env.THREADS ?? 0);
// PARTS=exact (say) runs only some of the measurements: attribution, acdc, exact, halving (halving-full: every step).
const PARTS = new Set((process.env.PARTS ?? 'attribution,acdc,exact,halving').split(','));
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

  /** The first `steps` steps of a greedy run (timed per step), then stop. */
  const firstSteps = async (opts: PruneOptions, steps: number, label: string) => {
    const t0 = performance.now();
    let setupEnd = 0;
    const stepEnds: number[] = [];
    const picked: string[] = [];
    await pruneOrder(model, task, opts, {
      onProgress: () => {
        if (setupEnd === 0) setupEnd = performance.now();
      },
      onCheckpoint: (cp) => {
        stepEnds.push(performance.now());
        picked.push(cp.steps[cp.steps.length - 1].component!);
        process.stderr.write(`  ${label} step ${stepEnds.length}: ${fmt((stepEnds[stepEnds.length - 1] - (stepEnds[stepEnds.length - 2] ?? setupEnd)) / 1000)}\n`);
        if (stepEnds.length >= steps) throw new Error('stop');
      },
    }).catch((e: Error) => {
      if (e.message !== 'stop') throw e;
    });
    return { setup: (setupEnd - t0) / 1000, stepTimes: stepEnds.map((t, i) => (t - (i === 0 ? setupEnd : stepEnds[i - 1])) / 1000), picked };
  };

  let halvingLine = '';
  if (PARTS.has('halving-full')) {
    const full = await timed({ order: 'greedy', ablation: 'mean', method: 'halving' }, 'greedy/halving');
    halvingLine = `  greedy, successive halving, all ${n} steps: ${fmt(full.seconds)} (${full.result.evaluations} evaluations, exact greedy ${full.result.exact_evaluations})`;
  } else if (PARTS.has('halving')) {
    const N = task.pairs.length;
    const first = defaultFirst(N);
    // The fixed cost of a step: caching the stream with the removals so far (one pass over the prompts).
    const ev = await ExactEvaluator.create(model, task, await computeReplacements(model, task, 'mean', 'clean', 64), { batchSize: 64 });
    const comps = listComponents(model.config);
    // Warm up the graphs a grow from layer 3 uses (greedy compiles each once), then time one.
    await ev.setBase([comps[5]]);
    await ev.setBase([comps[5], comps[41]]);
    await ev.setBase([comps[5]]);
    const b0 = performance.now();
    await ev.setBase([comps[5], comps[40]]);
    const fixed = (performance.now() - b0) / 1000;
    const h = await firstSteps({ order: 'greedy', ablation: 'mean', method: 'halving' }, 3, 'greedy/halving');
    const evals = (k: number) => halvingEvaluations(n - k + 1, N, { first }); // step k (1-based)
    const perEval = (h.stepTimes[1] - fixed + h.stepTimes[2] - fixed) / (evals(2) + evals(3));
    let total = h.setup;
    for (let k = 1; k <= n; k++) total += k <= 3 ? h.stepTimes[k - 1] : fixed + evals(k) * perEval;
    let allEvals = 0;
    for (let k = 1; k <= n; k++) allEvals += evals(k);
    halvingLine =
      `  greedy, successive halving (first round ${first} prompts, keep a third a round, 3 finalists): setup ${fmt(h.setup)}, steps 1–3 ${h.stepTimes.map((t) => fmt(t)).join(', ')} (picked ${h.picked.join(', ')}); ` +
      `fixed ${fmt(fixed)} a step + ${(perEval * 1000).toFixed(1)} ms per configuration × prompt → estimated ${fmt(total)} for all ${n} steps ` +
      `(${allEvals} evaluations, ${((n * (n + 1)) / 2) * N} for exact greedy: ${(((n * (n + 1)) / 2) * N / allEvals).toFixed(1)}× fewer)`;
  }
  if (halvingLine) process.stderr.write(halvingLine.trim() + '\n');

  if (!PARTS.has('exact')) {
    if (attr) process.stdout.write(`greedy, attribution-guided (--verify 4), all ${n} steps: ${fmt(attr.seconds)} (${(attr.seconds / n).toFixed(2)} s/step)\n`);
    if (acdc) process.stdout.write(`acdc (logit-diff, T = ${acdc.result.threshold}): ${fmt(acdc.seconds)}, removed ${acdc.result.steps.length - 1}, kept ${acdc.result.kept!.length}\n`);
    if (halvingLine) process.stdout.write(halvingLine.trim() + '\n');
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
    halvingLine,
  ];
  process.stdout.write(lines.filter((l) => l !== '').join('\n') + '\n');
}

await main();
