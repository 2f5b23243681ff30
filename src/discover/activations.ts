/**
 * Running a task's prompts through the model in chunks and collecting hook values into one
 * [N, T_max, width] array per hook (zero beyond each prompt's length), plus means over real tokens.
 */
import type { FloatArray, HookedModel, RunOptions, RunResult } from '../model/hooked.ts';

export interface PromptActivations {
  /** Per hook: [N, tMax, width], row-major, zeros past each prompt's length. */
  values: Map<string, FloatArray>;
  widths: Map<string, number>;
  lengths: number[];
  tMax: number;
}

/**
 * Run prompts (ragged) in chunks of `batchSize` and gather the named hooks. `also` adds run
 * options for a chunk (logits and answers, say) and receives its result, so a caller that needs
 * more than the hooks gets it from the same pass.
 */
export async function collectActivations(
  model: HookedModel,
  prompts: number[][],
  hooks: string[],
  batchSize: number,
  also?: { options: (start: number, end: number) => Partial<RunOptions>; result: (start: number, out: RunResult) => void },
): Promise<PromptActivations> {
  const lengths = prompts.map((p) => p.length);
  const tMax = Math.max(...lengths);
  const values = new Map<string, FloatArray>();
  const widths = new Map<string, number>();
  for (let start = 0; start < prompts.length; start += batchSize) {
    const chunk = prompts.slice(start, start + batchSize);
    const extra = also?.options(start, start + chunk.length) ?? {};
    const out = await model.run({ logits: 'none', ...extra, tokens: chunk, hooks });
    also?.result(start, out);
    const T = out.seqLen;
    for (const h of hooks) {
      const v = out.hooks.get(h)!;
      const width = v.data.length / (chunk.length * T);
      if (!values.has(h)) {
        // float64 models keep float64 activations: the exactness tests rely on it.
        values.set(h, allocLike(model, prompts.length * tMax * width));
        widths.set(h, width);
      }
      const dst = values.get(h)!;
      chunk.forEach((p, b) => {
        dst.set(v.data.subarray(b * T * width, (b * T + p.length) * width), ((start + b) * tMax) * width);
      });
    }
  }
  return { values, widths, lengths, tMax };
}

/** Mean of a hook over every real (non-pad) position of every prompt: [width]. */
export function meanOverTokens(acts: PromptActivations, hook: string): FloatArray {
  const data = acts.values.get(hook)!;
  const width = acts.widths.get(hook)!;
  const sum = new Float64Array(width);
  let count = 0;
  acts.lengths.forEach((len, p) => {
    for (let t = 0; t < len; t++) {
      const off = (p * acts.tMax + t) * width;
      for (let j = 0; j < width; j++) sum[j] += data[off + j];
      count++;
    }
  });
  const out = acts.values.get(hook)! instanceof Float64Array ? new Float64Array(width) : new Float32Array(width);
  sum.forEach((s, j) => (out[j] = s / count));
  return out;
}

/** A zeroed array of the model's float type. */
export function allocLike(model: HookedModel, n: number): FloatArray {
  return model.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}
