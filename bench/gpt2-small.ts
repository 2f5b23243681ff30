/**
 * Benchmark models with random weights: a GPT-2-small shape (12 layers, 12 heads, d_model 768,
 * vocabulary 50257, n_ctx 1024) and a Llama shape (SmolLM2-135M's: 30 layers, d_model 576, 9 query
 * and 3 key/value heads, MLP 1536, vocabulary 49152). The GPT-2 one is written once in Hugging Face
 * format under the OS temp dir and reused, so benchmarks measure loading from a real safetensors file.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { saveModelDir, loadModelDir } from '../src/model/load.ts';
import { parseConfig } from '../src/model/config.ts';
import { tensorTable } from '../src/model/arch/index.ts';
import { slotShape } from '../src/model/tensors.ts';
import type { Tensor, LoadedModel, ModelData, Weights } from '../src/model/types.ts';

export const GPT2_SMALL = { model_type: 'gpt2', n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
export const SMOLLM2_135M = {
  model_type: 'llama',
  num_hidden_layers: 30,
  hidden_size: 576,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  intermediate_size: 1536,
  vocab_size: 49152,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  hidden_act: 'silu',
  tie_word_embeddings: true,
};

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

/** A model of any architecture from its HF config, with deterministic random weights by role. */
export function randomBenchModel(hfConfig: Record<string, unknown>, name: string): ModelData & { name: string } {
  const config = parseConfig(hfConfig, name);
  const weights: Weights = new Map();
  let seed = 1;
  for (const slot of tensorTable(config)) {
    const shape = slotShape(config, slot);
    const norm = /norm/.test(slot.role);
    const bias = slot.role.endsWith('.b');
    const scale = norm ? 0.05 : bias ? 0.01 : slot.role === 'pos_embed' ? 0.01 : 0.02;
    weights.set(slot.name, fill(shape, seed++ * 2654435761, norm && slot.role.endsWith('.b') ? 0.01 : scale, norm && slot.role.endsWith('.w') ? 1 : 0));
  }
  return { config, weights, name };
}

export function gpt2SmallDir(): string {
  return join(tmpdir(), 'carve-bench-gpt2-small');
}

/** The model in memory (deterministic random weights), without touching the disk. */
export function gpt2SmallInMemory(): ModelData & { name: string } {
  return randomBenchModel(GPT2_SMALL, 'random-gpt2-small');
}

/** SmolLM2-135M's shape with random weights, in memory. */
export function smollmInMemory(): ModelData & { name: string } {
  return randomBenchModel(SMOLLM2_135M, 'random-smollm2-135m');
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
