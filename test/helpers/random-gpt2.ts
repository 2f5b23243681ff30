/**
 * Tiny deterministic GPT-2 checkpoints in Hugging Face format, for tests that need a real model
 * directory without shipping or downloading one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite, type WriteDtype } from '../../src/model/safetensors.ts';
import { rng } from './gradcheck.ts';

export interface RandomGpt2Options {
  nLayer: number;
  nHead: number;
  dModel: number;
  nCtx: number;
  vocabSize: number;
  seed: number;
  /** Name tensors `transformer.h.0...` as GPT2LMHeadModel state dicts do (default false). */
  prefix?: boolean;
  dtype?: WriteDtype;
  /** Add an untied `lm_head.weight` (default false: tied to wte). */
  lmHead?: boolean;
  /** MLP width (default 4 · dModel). */
  nInner?: number;
  /** Also write the `h.{i}.attn.bias` / `masked_bias` buffers old checkpoints carry (default false). */
  maskBuffers?: boolean;
}

/** mulberry32, the tests' one seeded PRNG. */
export const makeRng = rng;

/**
 * Write `dir/config.json` and `dir/model.safetensors` with seeded weights: matrices and biases
 * ~N(0, 0.02²), layer-norm gains ~1 ± 0.1. Returns the directory.
 */
export function makeRandomGpt2(dir: string, o: RandomGpt2Options): string {
  const rng = makeRng(o.seed);
  const gauss = (n: number, std: number, mean = 0): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      // Box–Muller gives two normals per pair of uniforms.
      const r = Math.sqrt(-2 * Math.log(1 - rng())) * std;
      const th = 2 * Math.PI * rng();
      out[i] = mean + r * Math.cos(th);
      if (i + 1 < n) out[i + 1] = mean + r * Math.sin(th);
    }
    return out;
  };
  const d = o.dModel;
  const dMlp = o.nInner ?? 4 * d;
  const dtype = o.dtype ?? 'F32';
  const pre = o.prefix ? 'transformer.' : '';
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], data: Float32Array) => tensors.push({ name: pre + name, dtype, shape, data });
  const n = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const weight = (name: string, shape: number[]) => add(name, shape, gauss(n(shape), 0.02));
  const gain = (name: string) => add(name, [d], gauss(d, 0.1, 1));

  weight('wte.weight', [o.vocabSize, d]);
  weight('wpe.weight', [o.nCtx, d]);
  for (let i = 0; i < o.nLayer; i++) {
    const p = `h.${i}.`;
    gain(p + 'ln_1.weight');
    weight(p + 'ln_1.bias', [d]);
    weight(p + 'attn.c_attn.weight', [d, 3 * d]);
    weight(p + 'attn.c_attn.bias', [3 * d]);
    weight(p + 'attn.c_proj.weight', [d, d]);
    weight(p + 'attn.c_proj.bias', [d]);
    gain(p + 'ln_2.weight');
    weight(p + 'ln_2.bias', [d]);
    weight(p + 'mlp.c_fc.weight', [d, dMlp]);
    weight(p + 'mlp.c_fc.bias', [dMlp]);
    weight(p + 'mlp.c_proj.weight', [dMlp, d]);
    weight(p + 'mlp.c_proj.bias', [d]);
    if (o.maskBuffers) {
      const mask = new Float32Array(o.nCtx * o.nCtx);
      for (let r = 0; r < o.nCtx; r++) for (let c = 0; c <= r; c++) mask[r * o.nCtx + c] = 1;
      add(p + 'attn.bias', [1, 1, o.nCtx, o.nCtx], mask);
      add(p + 'attn.masked_bias', [], new Float32Array([-1e4]));
    }
  }
  gain('ln_f.weight');
  weight('ln_f.bias', [d]);
  if (o.lmHead) tensors.push({ name: 'lm_head.weight', dtype, shape: [o.vocabSize, d], data: gauss(o.vocabSize * d, 0.02) });

  mkdirSync(dir, { recursive: true });
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_layer: o.nLayer,
    n_head: o.nHead,
    n_embd: d,
    n_positions: o.nCtx,
    n_ctx: o.nCtx,
    vocab_size: o.vocabSize,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    n_inner: o.nInner ?? null,
    bos_token_id: 50256,
    eos_token_id: 50256,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}
