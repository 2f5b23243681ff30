/**
 * Fingerprints that tie saved state to what it was computed from: a checkpoint or a constants file
 * belongs to one model (layout and weights, as run) and one task (its prompt pairs).
 */
import { createHash } from 'node:crypto';
import type { FloatArray, HookedModel } from '../model/hooked.ts';
import type { Task } from '../task/types.ts';

/** sha256 over the model's layout and weights (as run: in its dtype). */
export function modelFingerprint(model: HookedModel): string {
  const h = createHash('sha256');
  const c = model.config;
  h.update(JSON.stringify({ dtype: model.dtype, config: { ...c, raw: undefined } }));
  const feeds = model.weightFeeds;
  for (const name of Object.keys(feeds).sort()) {
    const t = feeds[name];
    const data = t.data as FloatArray;
    h.update(`${name}:${t.dims.join('x')}:`);
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest('hex');
}

/** sha256 over the prompt pairs (tokens and answers). */
export function taskFingerprint(task: Task): string {
  const h = createHash('sha256');
  for (const p of task.pairs) h.update(JSON.stringify([p.clean, p.corrupt, p.correct, p.incorrect]));
  return h.digest('hex');
}

/**
 * sha256 tying a run's saved state to the model, the task and the run's resolved options (every
 * option that changes its result): what a checkpoint must match to be resumed.
 */
export function runFingerprint(model: HookedModel, task: Task, options: unknown): string {
  return jsonFingerprint({ v: 1, model: modelFingerprint(model), task: taskFingerprint(task), options });
}

/** sha256 of any JSON value (options, constants). */
export function jsonFingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}
