/**
 * The benchmark models by name: random weights in the exact shapes of GPT-2 small and SmolLM2-135M
 * (a Llama: RMSNorm, rotary, SwiGLU, 9 query heads on 3 key/value heads), written once under the
 * OS temp dir. `BENCH_MODELS=gpt2,smollm` (default both) picks which a benchmark runs.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir, saveModelDir } from '../src/model/load.ts';
import type { LoadedModel, ModelConfig } from '../src/model/types.ts';
import type { Task } from '../src/task/types.ts';
import { kvHeadsOf } from '../src/model/types.ts';
import { gpt2SmallInMemory, smollmInMemory } from './gpt2-small.ts';

export type BenchModelName = 'gpt2' | 'smollm';

export const BENCH_MODELS: Record<BenchModelName, { label: string; make: typeof gpt2SmallInMemory }> = {
  gpt2: { label: 'random GPT-2-small shape (12 layers, 12 heads, d 768, vocab 50257)', make: gpt2SmallInMemory },
  smollm: { label: 'random SmolLM2-135M shape (Llama: 30 layers, 9 query / 3 key-value heads, d 576, MLP 1536, vocab 49152)', make: smollmInMemory },
};

export function benchModelNames(): BenchModelName[] {
  const names = (process.env.BENCH_MODELS ?? 'gpt2,smollm').split(',').map((s) => s.trim()) as BenchModelName[];
  for (const n of names) if (!(n in BENCH_MODELS)) throw new Error(`BENCH_MODELS: unknown model ${n} (gpt2, smollm)`);
  return names;
}

export function benchModelDir(name: BenchModelName): string {
  const dir = join(tmpdir(), `carve-bench-${name}`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    process.stderr.write(`writing the ${name} bench model to ${dir} ...\n`);
    saveModelDir(dir, BENCH_MODELS[name].make());
  }
  return dir;
}

export function loadBenchModel(name: BenchModelName): LoadedModel {
  return loadModelDir(benchModelDir(name), `random-${name}`);
}

/**
 * Multiply-add FLOPs (2 per multiply-add) of the layers' matrix products for `rows` tokens in
 * prompts of length T: q, k, v, o projections (grouped-query k/v are narrower), the MLP (3
 * matrices when gated), and the attention products QKᵀ and PV. The unembedding is not counted.
 */
export function layerFlops(cfg: ModelConfig, B: number, T: number): number {
  const rows = B * T;
  const d = cfg.dModel;
  const dh = cfg.dHead;
  let f = 0;
  for (const l of cfg.layers) {
    const H = l.heads.length;
    const K = kvHeadsOf(cfg, l).length;
    f += 2 * rows * d * (H * dh + 2 * K * dh + H * dh);
    if (l.mlp) f += 2 * rows * d * cfg.dMlp * (cfg.mlp.gated ? 3 : 2);
    f += 2 * 2 * B * T * T * H * dh;
  }
  return f;
}

/** A task's token ids (GPT-2's, for the IOI prompts) folded into a vocabulary of V: the random bench models only need ids inside theirs. */
export function taskInVocabulary(task: Task, V: number): Task {
  const fold = (ts: number[]) => ts.map((t) => t % V);
  return { ...task, pairs: task.pairs.map((p) => ({ ...p, clean: fold(p.clean), corrupt: fold(p.corrupt), correct: fold(p.correct), incorrect: fold(p.incorrect) })) };
}
