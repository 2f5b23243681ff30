/**
 * bench/scan: on the GPT-2-small-shaped model with 25 IOI prompts, measured in one run:
 *  - carve's exact scan of all 156 components (mean ablation) next to the plain approach users run
 *    today: one full forward pass per component over the 25 prompts, full-vocabulary logits at
 *    every position, no batching of configurations, no prefix caching, no length grouping;
 *  - the attribution scan's time as a multiple of one forward pass (pair logits) over the prompts.
 */
import { Engine } from '../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../src/model/hooked.ts';
import { scan } from '../src/discover/scan.ts';
import { listComponents } from '../src/discover/components.ts';
import { computeReplacements } from '../src/discover/replacements.ts';
import { loadGpt2Small, ioiPrompts, median } from './gpt2-small.ts';

const engine = new Engine({ device: 'cpu', threads: 0 });
const model = new HookedModel(loadGpt2Small(), engine);
const task = await ioiPrompts(25);
const comps = listComponents(model.config, 'all');
const onlyPlain = process.env.ONLY === 'plain';
const onlyCarve = process.env.ONLY === 'carve';

async function plainScan(): Promise<number[]> {
  // What a notebook does: compute the means, then for each component one hooked forward over
  // all prompts with full logits, and read the two answer logits at each prompt's last token.
  const repl = await computeReplacements(model, task, 'mean', 'clean', 25);
  const tokens = task.pairs.map((p) => p.clean);
  const B = tokens.length;
  const V = model.config.vocabSize;
  const scores: number[] = [];
  const metricOf = (logits: Float32Array | Float64Array, T: number) =>
    task.pairs.reduce((s, p, b) => {
      const off = (b * T + p.clean.length - 1) * V;
      return s + logits[off + p.correct[0]!] - logits[off + p.incorrect[0]!];
    }, 0) / B;
  const cleanRun = await model.run({ tokens, logits: 'all' });
  const clean = metricOf(cleanRun.logits!.data, cleanRun.seqLen);
  for (const c of comps) {
    const k = model.config.layers[c.pos].heads.length;
    const iv: Intervention =
      c.head === null
        ? { keep: new Float32Array(B).fill(0), value: { shape: 'const', data: repl.mlp.get(c.pos)!.data } }
        : { keep: Float32Array.from({ length: B * k }, (_, i) => (i % k === c.slot ? 0 : 1)), value: { shape: 'const', data: repl.z.get(c.pos)!.data } };
    const out = await model.run({ tokens, logits: 'all', z: c.head === null ? undefined : new Map([[c.pos, iv]]), mlp: c.head === null ? new Map([[c.pos, iv]]) : undefined });
    scores.push(metricOf(out.logits!.data, out.seqLen) - clean);
  }
  return scores;
}

const time = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now();
  const r = await f();
  return [r, (performance.now() - t0) / 1000];
};

// Warm both paths' sessions once so compile time is not counted against either.
await model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });

const results: Record<string, number> = {};
if (!onlyPlain) {
  const [carve, tCarve] = await time(() => scan(model, task, { ablation: 'mean', method: 'exact', components: 'all', batchSize: 64 }));
  results.carve_exact_s = tCarve;
  const fwd: number[] = [];
  for (let i = 0; i < 5; i++) {
    const [, t] = await time(() => model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs }));
    fwd.push(t);
  }
  await scan(model, task, { ablation: 'mean', method: 'attribution', components: 'all', batchSize: 64 });
  const attrTimes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [, t] = await time(() => scan(model, task, { ablation: 'mean', method: 'attribution', components: 'all', batchSize: 64 }));
    attrTimes.push(t);
  }
  results.forward_s = median(fwd);
  results.attribution_scan_s = median(attrTimes);
  results.attribution_over_forward = results.attribution_scan_s / results.forward_s;
  if (!onlyCarve) {
    const [plain, tPlain] = await time(plainScan);
    results.plain_exact_s = tPlain;
    results.speedup_exact = tPlain / tCarve;
    results.max_score_difference = Math.max(...plain.map((s, i) => Math.abs(s - carve.components[i].score)));
  }
} else {
  const [, tPlain] = await time(plainScan);
  results.plain_exact_s = tPlain;
}
console.log(JSON.stringify(results, null, 2));
await engine.release();
