/**
 * AdamW (Loshchilov & Hutter 2019) over Float32Array parameters, updated in place, with the
 * arithmetic of PyTorch's `torch.optim.AdamW` (non-amsgrad, non-fused):
 *
 *     p ← p · (1 − lr·wd)                        (decoupled decay, only where `decay` is set)
 *     m ← β1·m + (1 − β1)·g
 *     v ← β2·v + (1 − β2)·g²
 *     p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
 *
 * Optional clipping of the global gradient norm first (PyTorch's `clip_grad_norm_`: scale every
 * gradient by clip / (‖g‖ + 1e-6) when ‖g‖ > clip). Moments are Float32Array like the parameters;
 * per-element arithmetic runs in float64 and is rounded once on store, so results do not depend on
 * anything but the inputs.
 */
import { fail } from '../util/errors.ts';
import { EMBEDDING_ROLES, type Role } from '../model/tensors.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Max global gradient norm; 0 or undefined: no clipping. */
  clip?: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clip: 1 };

export interface Param {
  name: string;
  data: Float32Array;
  /** Apply weight decay to this parameter. */
  decay: boolean;
}

export interface StepInfo {
  /** The global gradient norm before clipping. */
  gradNorm: number;
  /** The factor the gradients were scaled by (1 when not clipped). */
  clipScale: number;
}

/**
 * Weight decay by default on the projection matrices only (GPT-2 / nanoGPT practice): not on
 * biases or norm gains, and on the embeddings only when asked.
 */
export function decaysByDefault(role: Role, embeddings = false): boolean {
  if (EMBEDDING_ROLES.has(role)) return embeddings;
  return role.endsWith('.w') && !role.startsWith('norm') && role !== 'final_norm.w';
}

export class AdamW {
  readonly params: Param[];
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** Steps taken so far. */
  t = 0;

  constructor(
    params: Param[],
    readonly options: AdamWOptions = ADAMW_DEFAULTS,
  ) {
    const { beta1, beta2, eps, weightDecay, clip } = options;
    if (!(beta1 >= 0 && beta1 < 1)) fail(`AdamW: beta1 must be in [0, 1), got ${beta1}`);
    if (!(beta2 >= 0 && beta2 < 1)) fail(`AdamW: beta2 must be in [0, 1), got ${beta2}`);
    if (!(eps > 0)) fail(`AdamW: eps must be positive, got ${eps}`);
    if (!(weightDecay >= 0)) fail(`AdamW: weight decay must be >= 0, got ${weightDecay}`);
    if (clip !== undefined && !(clip >= 0)) fail(`AdamW: clip must be >= 0, got ${clip}`);
    this.params = params;
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
  }

  /** One update with learning rate `lr`; `grads[i]` belongs to `params[i]` (any float array of its length). */
  step(grads: ArrayLike<number>[], lr: number): StepInfo {
    if (grads.length !== this.params.length) throw new Error(`AdamW: ${grads.length} gradients for ${this.params.length} parameters`);
    let sq = 0;
    grads.forEach((g, i) => {
      if (g.length !== this.params[i].data.length) {
        throw new Error(`AdamW: gradient of ${this.params[i].name} has ${g.length} values, the parameter ${this.params[i].data.length}`);
      }
      sq += sumSquares(asF32(g));
    });
    const gradNorm = Math.sqrt(sq);
    const { beta1, beta2, eps, weightDecay, clip } = this.options;
    const clipScale = clip && clip > 0 && gradNorm > clip ? clip / (gradNorm + 1e-6) : 1;
    this.t += 1;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    const stepSize = lr / bc1;
    const invSqrtBc2 = 1 / Math.sqrt(bc2);
    this.params.forEach((p, i) => {
      const shrink = p.decay ? 1 - lr * weightDecay : 1;
      adamKernel(p.data, asF32(grads[i]), this.m[i], this.v[i], clipScale, beta1, beta2, stepSize, invSqrtBc2, eps, shrink);
    });
    return { gradNorm, clipScale };
  }
}

function asF32(g: ArrayLike<number>): Float32Array {
  return g instanceof Float32Array ? g : Float32Array.from(g);
}

function sumSquares(g: Float32Array): number {
  let s = 0;
  for (let j = 0; j < g.length; j++) s += g[j] * g[j];
  return s;
}

/** The per-element update, kept monomorphic (Float32Array in, float64 arithmetic) so V8 compiles one tight loop. */
function adamKernel(
  x: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  scale: number,
  beta1: number,
  beta2: number,
  stepSize: number,
  invSqrtBc2: number,
  eps: number,
  shrink: number,
): void {
  const b1c = 1 - beta1;
  const b2c = 1 - beta2;
  const n = x.length;
  for (let j = 0; j < n; j++) {
    const gj = g[j] * scale;
    const mj = beta1 * m[j] + b1c * gj;
    const vj = beta2 * v[j] + b2c * gj * gj;
    m[j] = mj;
    v[j] = vj;
    x[j] = x[j] * shrink - (stepSize * mj) / (Math.sqrt(vj) * invSqrtBc2 + eps);
  }
}

export type Schedule = 'cosine' | 'constant' | 'linear';
export const SCHEDULES: readonly Schedule[] = ['cosine', 'constant', 'linear'];

export interface LrSchedule {
  lr: number;
  /** Steps of linear warmup from lr/warmup to lr. */
  warmup: number;
  /** Total steps (the decay ends at the last one). */
  steps: number;
  schedule: Schedule;
  /** Floor of the decay, as a fraction of lr (default 0.1). */
  minLrRatio?: number;
}

/**
 * Learning rate at `step` (0-based): linear warmup over `warmup` steps (step s uses lr·(s+1)/warmup),
 * then constant, or cosine / linear decay from lr to minLrRatio·lr at the last step.
 */
export function lrAt(step: number, s: LrSchedule): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  if (s.schedule === 'constant') return s.lr;
  const floor = s.lr * (s.minLrRatio ?? 0.1);
  const span = s.steps - s.warmup - 1;
  const frac = span <= 0 ? 1 : Math.min(1, (step - s.warmup) / span);
  const shape = s.schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * frac)) : 1 - frac;
  return floor + (s.lr - floor) * shape;
}
