/**
 * A GPT-2-small-shaped model with random weights (12 layers, 12 heads, d_model 768, vocabulary
 * 50257, n_ctx 1024), written once in Hugging Face format under the OS temp dir and reused, so
 * benchmarks measure loading from a real safetensors file as users would.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { saveModelDir, loadModelDir } from '../src/model/load.ts';
import { parseConfig } from '../src/model/config.ts';
import type { GPT2Config, GPT2Weights, Tensor, LoadedModel } from '../src/model/types.ts';

export const GPT2_SMALL = { n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 };

function fill(shape: number[], seed: number, scale: number, mean = 0): Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    // xorshift32: fast, deterministic; uniform in [-√3, √3)·scale has std = scale.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = mean + ((s / 4294967296) * 2 - 1) * 1.7320508 * scale;
  }
  return { data, shape };
}

export function gpt2SmallDir(): string {
  return join(tmpdir(), 'carve-bench-gpt2-small');
}

/** The model in memory (deterministic random weights), without touching the disk. */
export function gpt2SmallInMemory(): { config: GPT2Config; weights: GPT2Weights; name: string } {
  const c = GPT2_SMALL;
  const config = parseConfig({ model_type: 'gpt2', ...c, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' }, 'bench');
  const d = c.n_embd;
  let seed = 1;
  const t = (shape: number[], scale = 0.02, mean = 0) => fill(shape, seed++ * 2654435761, scale, mean);
  const weights: GPT2Weights = {
    wte: t([c.vocab_size, d]),
    wpe: t([c.n_positions, d], 0.01),
    lnf: { g: t([d], 0.05, 1), b: t([d], 0.01) },
    layers: config.layers.map(() => ({
      ln1: { g: t([d], 0.05, 1), b: t([d], 0.01) },
      attn: { wQKV: t([d, 3 * d]), bQKV: t([3 * d], 0.01), wO: t([d, d]) },
      bO: t([d], 0.01),
      ln2: { g: t([d], 0.05, 1), b: t([d], 0.01) },
      mlp: { wIn: t([d, 4 * d]), bIn: t([4 * d], 0.01), wOut: t([4 * d, d]) },
      bMlpOut: t([d], 0.01),
    })),
  };
  return { config, weights, name: 'random-gpt2-small' };
}

/** Written once under the OS temp dir, then reused. */
export function ensureGpt2Small(): string {
  const dir = gpt2SmallDir();
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  process.stderr.write(`writing a random GPT-2-small-shaped model to ${dir} ...\n`);
  saveModelDir(dir, gpt2SmallInMemory());
  return dir;
}

export function loadGpt2Small(): LoadedModel {
  return loadModelDir(ensureGpt2Small(), 'random-gpt2-small');
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** 25 IOI prompts (seed 1, mixed) as token lists, the workload the issues measure. */
export async function ioiPrompts(n = 25) {
  const { loadTask } = await import('../src/task/load.ts');
  return loadTask({ task: 'ioi', n, seed: 1, promptType: 'mixed', flip: 'ABC->XYZ, BAB->XYZ', prependBos: false });
}
