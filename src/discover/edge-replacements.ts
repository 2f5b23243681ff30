/**
 * What an ablated edge carries instead of its sender's output (SPEC "Edges"): the sender's
 * replacement, as for components — heads and MLPs take the component replacements of
 * replacements.ts, and the `input` sender (token + position embeddings) takes zero, the mean
 * embedding over every real token of the --mean-over prompts, or the corrupt prompt's embedding.
 */
import type { FloatArray, HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';
import type { MetricName } from '../model/readout.ts';
import { tensorTable } from '../model/arch/index.ts';
import { componentHooks, computeReplacements, type Ablation, type LayerValues, type MeanOver, type Replacements } from './replacements.ts';
import { allocLike, collectActivations } from './activations.ts';

export interface EdgeReplacements {
  ablation: Ablation;
  meanOver: MeanOver;
  /** Heads (hook_z) and MLPs (hook_mlp_out), by layer position. */
  comp: Replacements;
  /** The input sender: const [d] or row [N, tMax, d] (tMax = comp.tMax). */
  input: LayerValues;
  /**
   * Resample only: the heads' and MLPs' replacements are not here (comp's maps are empty) but are
   * computed by the attribution run that uses them (see `resampleInRun`).
   */
  sendersInRun?: true;
}

/**
 * Resample replacements for edge attribution without a separate corrupt pass: the attribution graph
 * runs the corrupt prompts itself — EAP as a second forward pass through the same weights, EAP-IG-
 * inputs in its first step (k = 0), which feeds the corrupt embeddings — so the heads' and MLPs'
 * corrupt outputs never leave it. Only the input sender's corrupt embeddings are computed here.
 */
export function resampleInRun(model: HookedModel, task: Task, meanOver: MeanOver = 'clean'): EdgeReplacements {
  const corrupt = task.pairs.map((p) => p.corrupt);
  const tMax = Math.max(...corrupt.map((p) => p.length));
  const comp: Replacements = { ablation: 'resample', meanOver, z: new Map(), mlp: new Map(), tMax };
  return { ablation: 'resample', meanOver, comp, input: { shape: 'row', data: promptEmbeddings(model, corrupt, tMax) }, sendersInRun: true };
}

/**
 * Token (+ learned position) embeddings of a prompt: [len, d], read straight from the weights —
 * at the model's own rows, which a trimmed vocabulary renumbers (`model.vocab`).
 */
export function embeddingsOf(model: HookedModel, tokens: number[]): FloatArray {
  const cfg = model.config;
  const d = cfg.dModel;
  const slots = tensorTable(cfg);
  const table = (role: string) => {
    const s = slots.find((x) => x.role === role);
    return s ? (model.weightFeeds[s.name].data as FloatArray) : undefined;
  };
  const tok = table('embed')!;
  const pos = cfg.positions.kind === 'learned' ? table('pos_embed') : undefined;
  const out = allocLike(model, tokens.length * d);
  model.vocab.toLocal(tokens).forEach((id, t) => {
    for (let j = 0; j < d; j++) out[t * d + j] = tok[id * d + j] + (pos ? pos[t * d + j] : 0);
  });
  return out;
}

/** Embeddings of every prompt laid out [N, tMax, d], zero past each prompt's length. */
export function promptEmbeddings(model: HookedModel, prompts: number[][], tMax: number): FloatArray {
  const d = model.config.dModel;
  const out = allocLike(model, prompts.length * tMax * d);
  prompts.forEach((p, i) => out.set(embeddingsOf(model, p), i * tMax * d));
  return out;
}

/**
 * The replacements for every sender. Under resample ablation the one pass over the corrupt prompts
 * that gives the values also gives the corrupt prompts' metric (`corruptMetric`), which scans report.
 */
export async function computeEdgeReplacements(
  model: HookedModel,
  task: Task,
  ablation: Ablation,
  meanOver: MeanOver = 'clean',
  batchSize = 32,
  metric: MetricName = 'logit-diff',
): Promise<EdgeReplacements & { corruptMetric?: Float64Array }> {
  const d = model.config.dModel;
  if (ablation === 'resample' && metric !== 'kl') {
    const { z, mlp } = componentHooks(model);
    const corruptMetric = new Float64Array(task.pairs.length);
    const acts = await collectActivations(model, task.pairs.map((p) => p.corrupt), [...z.values(), ...mlp.values()], batchSize, {
      options: (s, e) => ({ logits: 'answers', metric, answers: task.pairs.slice(s, e) }),
      result: (s, out) => out.metric!.forEach((m, b) => (corruptMetric[s + b] = m)),
    });
    const comp: Replacements = { ablation, meanOver, z: new Map(), mlp: new Map(), tMax: acts.tMax };
    for (const [pos, h] of z) comp.z.set(pos, { shape: 'row', data: acts.values.get(h)! });
    for (const [pos, h] of mlp) comp.mlp.set(pos, { shape: 'row', data: acts.values.get(h)! });
    const input: LayerValues = { shape: 'row', data: promptEmbeddings(model, task.pairs.map((p) => p.corrupt), acts.tMax) };
    return { ablation, meanOver, comp, input, corruptMetric };
  }
  const comp = await computeReplacements(model, task, ablation, meanOver, batchSize);
  let input: LayerValues;
  if (ablation === 'zero') {
    input = { shape: 'const', data: allocLike(model, d) };
  } else if (ablation === 'mean') {
    const sum = new Float64Array(d);
    let count = 0;
    for (const p of task.pairs) {
      const e = embeddingsOf(model, meanOver === 'clean' ? p.clean : p.corrupt);
      for (let i = 0; i < e.length; i++) sum[i % d] += e[i];
      count += e.length / d;
    }
    const data = allocLike(model, d);
    sum.forEach((s, j) => (data[j] = s / count));
    input = { shape: 'const', data };
  } else {
    input = { shape: 'row', data: promptEmbeddings(model, task.pairs.map((p) => p.corrupt), comp.tMax) };
  }
  return { ablation, meanOver, comp, input };
}
