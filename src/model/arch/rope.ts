/**
 * Rotary position settings from a Hugging Face config, for every rotary architecture. HF has spelled
 * them several ways over the years: `rope_theta` (Llama family), `rotary_emb_base` (older GPT-NeoX),
 * and a `rope_parameters` object (newer transformers); scaling under `rope_scaling` with `rope_type`
 * or the older `type`. The fraction of each head that rotates is `partial_rotary_factor`, or GPT-NeoX's
 * `rotary_pct`; HF rotates int(head_dim · fraction) dimensions.
 */
import { fail } from '../../util/errors.ts';
import { isPlainObject, type Fields, type Json } from '../config-fields.ts';
import type { RotaryPositions } from '../types.ts';

function num(obj: Json, key: string, where: string, fallback?: number): number {
  const v = obj[key];
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${where}.${key} must be a positive number, found ${JSON.stringify(v)}`);
  return v;
}

export function parseRotary(f: Fields, dHead: number, fractionKeys: string[], defaultFraction: number, thetaKeys: string[]): RotaryPositions {
  const params = isPlainObject(f.c.rope_parameters) ? f.c.rope_parameters : undefined;
  const thetaKey = f.firstOf(thetaKeys);
  const theta = thetaKey ? f.positive(thetaKey) : params?.rope_theta !== undefined ? num(params, 'rope_theta', `${f.path}: "rope_parameters"`) : 10000;
  const fractionKey = f.firstOf(fractionKeys);
  const fraction = fractionKey ? f.positive(fractionKey) : params?.partial_rotary_factor !== undefined ? num(params, 'partial_rotary_factor', `${f.path}: "rope_parameters"`) : defaultFraction;
  if (fraction > 1) fail(`${f.path}: "${fractionKey ?? 'partial_rotary_factor'}" must be at most 1, found ${fraction}`);
  const dims = Math.floor(dHead * fraction);
  if (dims < 2 || dims % 2 !== 0) fail(`${f.path}: rotary covers ${dims} of ${dHead} head dimensions; carve needs an even number >= 2`);
  const out: RotaryPositions = { kind: 'rotary', dims, theta };

  const scalingKey = f.has('rope_scaling') ? 'rope_scaling' : params && (params.rope_type ?? 'default') !== 'default' ? 'rope_parameters' : undefined;
  if (scalingKey) {
    const s = f.c[scalingKey];
    const where = `${f.path}: "${scalingKey}"`;
    if (!isPlainObject(s)) fail(`${where} must be an object`);
    const type = s.rope_type ?? s.type;
    if (type === 'llama3') {
      out.scaling = {
        type: 'llama3',
        factor: num(s, 'factor', where),
        lowFreqFactor: num(s, 'low_freq_factor', where),
        highFreqFactor: num(s, 'high_freq_factor', where),
        originalMaxPositions: num(s, 'original_max_position_embeddings', where),
      };
      if (out.scaling.highFreqFactor <= out.scaling.lowFreqFactor) fail(`${where}: high_freq_factor must exceed low_freq_factor`);
    } else if (type === 'linear') {
      out.scaling = { type: 'linear', factor: num(s, 'factor', where) };
    } else if (type !== 'default') {
      fail(`${where}: rope type ${JSON.stringify(type)} is not supported (carve reads default, linear and llama3)`);
    }
  }
  return out;
}

/**
 * Inverse frequencies of the rotated pairs, as HF's rope initialisers compute them (in float64 here):
 * θ^(−2i/dims), then Llama 3's band-wise rescaling (long wavelengths divided by `factor`, short ones
 * kept, a smooth blend between) when configured.
 */
export function inverseFrequencies(rope: RotaryPositions): Float64Array {
  const half = rope.dims / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / rope.theta ** ((2 * i) / rope.dims));
  const s = rope.scaling;
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) {
        inv[i] = inv[i] / s.factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  } else if (s?.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= s.factor;
  }
  return inv;
}

/** cos and sin of position × inverse frequency, [T, dims/2] each, positions 0..T−1. */
export function rotaryTables(rope: RotaryPositions, T: number): { cos: Float64Array; sin: Float64Array } {
  const inv = inverseFrequencies(rope);
  const half = inv.length;
  const cos = new Float64Array(T * half);
  const sin = new Float64Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = t * inv[i];
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

export function rotaryToJson(rope: RotaryPositions, out: Json, thetaKey: string, fractionKey: string, dHead: number): void {
  out[thetaKey] = rope.theta;
  if (rope.dims !== dHead || out[fractionKey] !== undefined) out[fractionKey] = rope.dims / dHead;
}
