/**
 * What a removed component's output is replaced with (SPEC "Replacement"):
 *  - zero: 0;
 *  - mean: its mean output over every real position of the prompts named by --mean-over, on the
 *    unablated model (one vector per component);
 *  - resample: its output on the paired corrupt prompt at the same position.
 * Values are kept per layer at the hook points the graphs intervene on (hook_z, hook_mlp_out):
 * replacing hook_z of a head replaces exactly its output z_h·W_O[h], since that map is linear.
 */
import type { FloatArray, HookedModel, Intervention } from '../model/hooked.ts';
import type { Component } from './components.ts';
import type { Task } from '../task/types.ts';
import { allocLike, collectActivations, meanOverTokens } from './activations.ts';

/** optimal: one learned constant per component (src/discover/optimal.ts; `replacementsFor` makes any of them). */
export type Ablation = 'zero' | 'mean' | 'resample' | 'optimal';
export const ABLATIONS: readonly Ablation[] = ['zero', 'mean', 'resample', 'optimal'];
export type MeanOver = 'clean' | 'corrupt';

export interface LayerValues {
  /** const: [width]; row: [N, tMax, width] per prompt (tMax as in Replacements). */
  data: FloatArray;
  shape: 'const' | 'row';
}

export interface Replacements {
  ablation: Ablation;
  meanOver: MeanOver;
  /** By layer position: replacement for hook_z (width k·d_head) and hook_mlp_out (width d_model). */
  z: Map<number, LayerValues>;
  mlp: Map<number, LayerValues>;
  /** Row length of 'row' values. */
  tMax: number;
}

export function zHook(model: HookedModel, pos: number): string {
  return model.hookName(pos, 'attn.hook_z');
}
export function mlpHook(model: HookedModel, pos: number): string {
  return model.hookName(pos, 'hook_mlp_out');
}

/** Hook names of every component output (hook_z of layers with heads, hook_mlp_out of layers with MLPs). */
export function componentHooks(model: HookedModel): { z: Map<number, string>; mlp: Map<number, string> } {
  const z = new Map<number, string>();
  const mlp = new Map<number, string>();
  model.config.layers.forEach((l, pos) => {
    if (l.heads.length > 0) z.set(pos, zHook(model, pos));
    if (l.mlp) mlp.set(pos, mlpHook(model, pos));
  });
  return { z, mlp };
}

export async function computeReplacements(
  model: HookedModel,
  task: Task,
  ablation: Ablation,
  meanOver: MeanOver = 'clean',
  batchSize = 32,
): Promise<Replacements> {
  if (ablation === 'optimal') throw new Error('optimal constants are learned: use replacementsFor (src/discover/optimal.ts)');
  const { z, mlp } = componentHooks(model);
  const out: Replacements = { ablation, meanOver, z: new Map(), mlp: new Map(), tMax: Math.max(...task.pairs.map((p) => p.clean.length)) };
  const dh = model.config.dHead;
  const d = model.config.dModel;
  if (ablation === 'zero') {
    for (const [pos] of z) out.z.set(pos, { shape: 'const', data: allocLike(model, model.config.layers[pos].heads.length * dh) });
    for (const [pos] of mlp) out.mlp.set(pos, { shape: 'const', data: allocLike(model, d) });
    return out;
  }
  const hooks = [...z.values(), ...mlp.values()];
  if (ablation === 'mean') {
    const prompts = task.pairs.map((p) => (meanOver === 'clean' ? p.clean : p.corrupt));
    const acts = await collectActivations(model, prompts, hooks, batchSize);
    for (const [pos, h] of z) out.z.set(pos, { shape: 'const', data: meanOverTokens(acts, h) });
    for (const [pos, h] of mlp) out.mlp.set(pos, { shape: 'const', data: meanOverTokens(acts, h) });
    return out;
  }
  // Resample: corrupt prompts have the clean prompts' lengths (checked when the task was loaded).
  const acts = await collectActivations(model, task.pairs.map((p) => p.corrupt), hooks, batchSize);
  out.tMax = acts.tMax;
  for (const [pos, h] of z) out.z.set(pos, { shape: 'row', data: acts.values.get(h)! });
  for (const [pos, h] of mlp) out.mlp.set(pos, { shape: 'row', data: acts.values.get(h)! });
  return out;
}

/** One run's row: the prompt it reads and the components it has replaced. */
export interface RemovalRow {
  prompt: number;
  removed: Component[];
}

/**
 * The interventions that replace, on each row, the components that row removes, at the given
 * layer positions (hook_z at `zLayers`, hook_mlp_out at `mlpLayers`). Per-prompt values are
 * gathered into [rows, T, width]; `lengths` are the prompts' lengths.
 */
export function removalInterventions(
  model: HookedModel,
  repl: Replacements,
  rows: RemovalRow[],
  T: number,
  lengths: number[],
  zLayers: number[],
  mlpLayers: number[],
): { z: Map<number, Intervention>; mlp: Map<number, Intervention> } {
  const R = rows.length;
  const rowValues = (all: FloatArray, width: number): FloatArray => {
    const out = allocLike(model, R * T * width);
    rows.forEach((r, b) => {
      const len = Math.min(T, lengths[r.prompt]);
      out.set(all.subarray(r.prompt * repl.tMax * width, (r.prompt * repl.tMax + len) * width), b * T * width);
    });
    return out;
  };
  const value = (v: LayerValues, width: number): Intervention['value'] => ({ shape: v.shape, data: v.shape === 'const' ? v.data : rowValues(v.data, width) });
  const z = new Map<number, Intervention>();
  for (const pos of zLayers) {
    const k = model.config.layers[pos].heads.length;
    const keep = new Float32Array(R * k).fill(1);
    rows.forEach((r, b) => {
      for (const c of r.removed) if (c.pos === pos && c.head !== null) keep[b * k + c.slot] = 0;
    });
    z.set(pos, { keep, value: value(repl.z.get(pos)!, k * model.config.dHead) });
  }
  const mlp = new Map<number, Intervention>();
  for (const pos of mlpLayers) {
    const keep = new Float32Array(R).fill(1);
    rows.forEach((r, b) => {
      for (const c of r.removed) if (c.pos === pos && c.head === null) keep[b] = 0;
    });
    mlp.set(pos, { keep, value: value(repl.mlp.get(pos)!, model.config.dModel) });
  }
  return { z, mlp };
}
