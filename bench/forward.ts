/**
 * bench/forward: achieved GFLOP/s of a GPT-2-small-shaped forward pass (no unembedding) on 25
 * prompts of ~20 tokens, next to the MatMul GFLOP/s onnxruntime reaches on this machine in the
 * same run, and resident memory after loading the model (as a multiple of its file size).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Graph } from '../src/onnx/graph.ts';
import { Engine, toOrt } from '../src/onnx/session.ts';
import { HookedModel } from '../src/model/hooked.ts';
import { ensureGpt2Small, loadGpt2Small, median, GPT2_SMALL } from './gpt2-small.ts';

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

async function main() {
  const dir = ensureGpt2Small();
  const rssOut = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./load-rss.ts', import.meta.url)), dir], { encoding: 'utf8' });
  const rss = JSON.parse(rssOut);
  const engine = new Engine({ device: 'cpu', threads: 0 });
  const model = new HookedModel(loadGpt2Small(), engine);
  const { loadTask } = await import('../src/task/load.ts');
  const task = loadTask({ task: 'ioi', n: 25, seed: 1, promptType: 'mixed', flip: 'ABC->XYZ, BAB->XYZ', prependBos: false });
  const prompts = task.pairs.map((p) => p.clean);
  const T = Math.max(...prompts.map((p) => p.length));
  const tokens = prompts.map((p) => [...p, ...new Array(T - p.length).fill(0)]);
  const d = GPT2_SMALL.n_embd;
  const L = GPT2_SMALL.n_layer;
  const rows = tokens.length * T;
  // FLOPs of the matrix products (2 per multiply-add): QKV, O, MLP in and out, plus QKᵀ and PV.
  const flops = L * (2 * rows * d * (3 * d + d + 8 * d) + 2 * 2 * tokens.length * T * T * d);
  const last = `blocks.${L - 1}.hook_resid_post`;
  const forward = () => model.run({ tokens, hooks: [last], logits: 'none' });
  await forward();
  // Interleave forward and MatMul measurements so machine noise hits both alike.
  const fTimes: number[] = [];
  const peaks: number[] = [];
  for (let i = 0; i < 3; i++) {
    for (let r = 0; r < REPS; r++) {
      const t0 = performance.now();
      await forward();
      fTimes.push(performance.now() - t0);
    }
    peaks.push(Math.max(await matmulPeak(engine, rows, d, 4 * d), await matmulPeak(engine, rows, 4 * d, d), await matmulPeak(engine, 1024, 1024, 1024)));
  }
  const fwdRate = flops / (median(fTimes) / 1000) / 1e9;
  const peak = Math.max(...peaks);
  const out = {
    model: 'random GPT-2-small shape (12 layers, 12 heads, d 768, vocab 50257)',
    prompts: tokens.length,
    tokens_per_prompt: T,
    forward_gflop: flops / 1e9,
    forward_ms_median: median(fTimes),
    forward_gflops: fwdRate,
    matmul_peak_gflops: peak,
    ratio_to_matmul_peak: fwdRate / peak,
    rss_after_load_mb: rss.rssAfter / 2 ** 20,
    file_mb: rss.fileSize / 2 ** 20,
    rss_over_file: rss.rssAfter / rss.fileSize,
  };
  console.log(JSON.stringify(out, null, 2));
  console.log(`forward: ${fwdRate.toFixed(1)} GFLOP/s = ${(100 * out.ratio_to_matmul_peak).toFixed(0)}% of onnxruntime's MatMul peak (${peak.toFixed(1)} GFLOP/s); RSS after load ${out.rss_after_load_mb.toFixed(0)} MB = ${out.rss_over_file.toFixed(2)} x file size`);
  await engine.release();
}

await main();
