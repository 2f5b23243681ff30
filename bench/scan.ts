/**
 * bench/scan: for each bench model (bench/models.ts) with 25 IOI prompts, measured in one run:
 *  - carve's exact scan of every component (mean ablation) next to the plain approach users run
 *    today: one full forward pass per component over the 25 prompts, full-vocabulary logits at
 *    every position, no batching of configurations, no prefix caching, no length grouping;
 *  - the attribution scan's time as a multiple of one forward pass (pair logits) over the prompts.
 * On the SmolLM2 shape the plain loop runs on an evenly spaced sample of PLAIN_SAMPLE components
 * (default 30 of 300) and its full time is that sample's mean per component times the count; the
 * sampled scores are still compared with carve's.
 */
import { Engine } from '../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../src/model/hooked.ts';
import { scan } from '../src/discover/scan.ts';
import { listComponents, type Component } from '../src/discover/components.ts';
import { computeReplacements } from '../src/discover/replacements.ts';
import type { Task } from '../src/task/types.ts';
import { ioiPrompts, median } from './gpt2-small.ts';
import { BENCH_MODELS, benchModelNames, loadBenchModel, taskInVocabulary } from './models.ts';

const engine = new Engine({ device: 'cpu', threads: 0 });
const ioi = await ioiPrompts(25);

async function plainScan(model: HookedModel, task: Task, comps: Component[]): Promise<number[]> {
  // What a notebook does: compute the means, then for each component one hooked forward over
  // all prompts with full logits, and read the two answer logits at each prompt's last token.
  const repl = await computeReplacements(model, task, 'mean', 'clean', 25);
  const tokens = task.pairs.map((p) => p.clean);
  const B = tokens.length;
  const V = model.config.vocabSize;
  const metricOf = (logits: Float32Array | Float64Array, T: number) =>
    task.pairs.reduce((s, p, b) => {
      const off = (b * T + p.clean.length - 1) * V;
      return s + logits[off + p.correct[0]!] - logits[off + p.incorrect[0]!];
    }, 0) / B;
  const cleanRun = await model.run({ tokens, logits: 'all' });
  const clean = metricOf(cleanRun.logits!.data, cleanRun.seqLen);
  const scores: number[] = [];
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

const all: Record<string, unknown>[] = [];
for (const name of benchModelNames()) {
  const model = new HookedModel(loadBenchModel(name), engine);
  const V = model.config.vocabSize;
  const task = taskInVocabulary(ioi, V);
  const comps = listComponents(model.config, 'all');
  const forwardRun = () => model.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
  await forwardRun(); // compile once, for neither side to pay
  const r: Record<string, unknown> = { model: BENCH_MODELS[name].label, components: comps.length };
  const [carve, tCarve] = await time(() => scan(model, task, { ablation: 'mean', method: 'exact', components: 'all', batchSize: 64 }));
  r.carve_exact_s = tCarve;
  const fwd: number[] = [];
  for (let i = 0; i < 5; i++) fwd.push((await time(forwardRun))[1]);
  await scan(model, task, { ablation: 'mean', method: 'attribution', components: 'all', batchSize: 64 });
  const attr: number[] = [];
  for (let i = 0; i < 3; i++) attr.push((await time(() => scan(model, task, { ablation: 'mean', method: 'attribution', components: 'all', batchSize: 64 })))[1]);
  r.forward_s = median(fwd);
  r.attribution_scan_s = median(attr);
  r.attribution_over_forward = median(attr) / median(fwd);
  const sampleSize = name === 'gpt2' ? comps.length : Math.min(comps.length, Number(process.env.PLAIN_SAMPLE ?? 30));
  const picks = Array.from({ length: sampleSize }, (_, i) => Math.floor((i * comps.length) / sampleSize));
  const [plain, tPlain] = await time(() => plainScan(model, task, picks.map((i) => comps[i])));
  r.plain_components_run = sampleSize;
  r.plain_exact_s = (tPlain * comps.length) / sampleSize;
  r.plain_exact_extrapolated = sampleSize < comps.length;
  r.speedup_exact = (r.plain_exact_s as number) / tCarve;
  r.max_score_difference = Math.max(...plain.map((s, i) => Math.abs(s - carve.components[picks[i]].score)));
  all.push(r);
  console.error(`${name}: exact scan ${tCarve.toFixed(1)} s vs plain ${(r.plain_exact_s as number).toFixed(1)} s${sampleSize < comps.length ? ` (from ${sampleSize} of ${comps.length} components)` : ''}: ${(r.speedup_exact as number).toFixed(1)}x; attribution ${(r.attribution_over_forward as number).toFixed(1)}x one forward`);
}
console.log(JSON.stringify(all, null, 2));
await engine.release();
