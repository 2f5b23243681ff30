/**
 * bench/forward: achieved GFLOP/s of a forward pass (no unembedding) on 25 prompts of ~20 tokens,
 * for each bench model (bench/models.ts: GPT-2 small's and SmolLM2-135M's shapes), next to the
 * MatMul GFLOP/s onnxruntime reaches on this machine in the same run (interleaved, so machine noise
 * hits both alike).
 */
import { Graph } from '../src/onnx/graph.ts';
import { Engine, toOrt } from '../src/onnx/session.ts';
import { HookedModel } from '../src/model/hooked.ts';
import { ioiPrompts, median } from './gpt2-small.ts';
import { BENCH_MODELS, benchModelNames, layerFlops, loadBenchModel } from './models.ts';

const REPS = Number(process.env.REPS ?? 7);

async function matmulPeak(engine: Engine, m: number, k: number, n: number): Promise<number> {
  const g = new Graph('float32');
  const a = g.input('a', [m, k]);
  const b = g.input('b', [k, n]);
  g.output(g.matmul(a, b), 'c');
  const feeds = {
    a: toOrt({ data: new Float32Array(m * k).fill(0.01), dims: [m, k] }, 'float32'),
    b: toOrt({ data: new Float32Array(k * n).fill(0.02), dims: [k, n] }, 'float32'),
  };
  await engine.run(g, feeds);
  const times: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await engine.run(g, feeds);
    times.push(performance.now() - t0);
  }
  return (2 * m * k * n) / (median(times) / 1000) / 1e9;
}

const engine = new Engine({ device: 'cpu', threads: 0 });
const task = await ioiPrompts(25);
const results: Record<string, unknown>[] = [];
for (const name of benchModelNames()) {
  const model = new HookedModel(loadBenchModel(name), engine);
  const cfg = model.config;
  // GPT-2 token ids; the random models only need ids inside their vocabulary.
  const prompts = task.pairs.map((p) => p.clean.map((t) => t % cfg.vocabSize));
  const T = Math.max(...prompts.map((p) => p.length));
  const tokens = prompts.map((p) => [...p, ...new Array(T - p.length).fill(0)]);
  const rows = tokens.length * T;
  const flops = layerFlops(cfg, tokens.length, T);
  const last = `blocks.${cfg.nLayer - 1}.hook_resid_post`;
  const forward = () => model.run({ tokens, hooks: [last], logits: 'none' });
  await forward();
  const fTimes: number[] = [];
  const peaks: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let r = 0; r < REPS; r++) {
      const t0 = performance.now();
      await forward();
      fTimes.push(performance.now() - t0);
    }
    const d = cfg.dModel;
    peaks.push(Math.max(await matmulPeak(engine, rows, d, cfg.dMlp), await matmulPeak(engine, rows, cfg.dMlp, d), await matmulPeak(engine, 1024, 1024, 1024)));
  }
  const fwdRate = flops / (median(fTimes) / 1000) / 1e9;
  const peak = Math.max(...peaks);
  const out = {
    model: BENCH_MODELS[name].label,
    prompts: tokens.length,
    tokens_per_prompt: T,
    forward_gflop: flops / 1e9,
    forward_ms_median: median(fTimes),
    forward_gflops: fwdRate,
    matmul_peak_gflops: peak,
    ratio_to_matmul_peak: fwdRate / peak,
  };
  results.push(out);
  console.error(`${name}: forward ${fwdRate.toFixed(1)} GFLOP/s = ${(100 * out.ratio_to_matmul_peak).toFixed(0)}% of onnxruntime's MatMul peak (${peak.toFixed(1)} GFLOP/s)`);
}
console.log(JSON.stringify(results, null, 2));
await engine.release();
