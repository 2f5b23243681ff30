/**
 * Pruning checkpoints (`carve prune --out FILE` writes FILE.partial.json; `--resume` continues from
 * it): their format, and every check that a checkpoint is well formed and belongs to this run, in
 * one place. `parseCheckpoint` checks the shape of what was read; `checkResume` checks that it was
 * made for this model, task and options and that every order-specific field is consistent.
 */
import { failOption, fail } from '../util/errors.ts';
import type { Component } from './components.ts';
import type { ConstantsFile } from './optimal.ts';
import type { PruneStep, ResolvedPruneOptions } from './prune.ts';

export const CHECKPOINT_FORMAT = 'carve-prune-partial';

export interface PruneCheckpoint {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  fingerprint: string;
  model: string;
  task: string;
  options: ResolvedPruneOptions;
  steps: PruneStep[];
  /** scores: the order, once computed; optimize: the mask ranking. */
  ranking?: string[];
  /** acdc: components visited so far (in visiting order), and the decision metric's current value. */
  visited?: number;
  current?: number;
  /** optimize: the phase under way (verify: the exact pass along the ranking; refine: swaps), and refinement passes done. */
  phase?: 'verify' | 'refine';
  refined?: number;
  /** greedy + halving: configuration × prompt evaluations so far. */
  evaluations?: number;
  /** optimal ablation: the constants in use (learned at the start), so a resumed run uses the same. */
  constants?: ConstantsFile;
}

/** Parse a checkpoint's text and check its shape (`where`: the file, for messages). */
export function parseCheckpoint(text: string, where: string): PruneCheckpoint {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    fail(`${where}: cannot read the partial result: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(`${where}: expected a JSON object`);
  const cp = o as Record<string, unknown>;
  if (cp.format !== CHECKPOINT_FORMAT) fail(`${where}: not a carve prune partial result ("format" is not "${CHECKPOINT_FORMAT}")`);
  if (cp.version !== 1) fail(`${where}: unsupported version ${JSON.stringify(cp.version)} (expected 1)`);
  if (typeof cp.fingerprint !== 'string') fail(`${where}: "fingerprint" must be a string`);
  if (typeof cp.options !== 'object' || cp.options === null) fail(`${where}: "options" must be an object`);
  if (!Array.isArray(cp.steps) || cp.steps.length === 0) fail(`${where}: "steps" must be a non-empty array`);
  cp.steps.forEach((s: unknown, i: number) => {
    if (typeof s !== 'object' || s === null) fail(`${where}: steps[${i}] must be an object`);
    const st = s as Record<string, unknown>;
    if (st.removed !== i) fail(`${where}: steps[${i}].removed must be ${i}`);
    if (i === 0 ? st.component !== null : typeof st.component !== 'string') fail(`${where}: steps[${i}].component must be ${i === 0 ? 'null' : 'a component name'}`);
    if (typeof st.metric !== 'number' || typeof st.std !== 'number') fail(`${where}: steps[${i}] needs numeric "metric" and "std"`);
  });
  if (cp.ranking !== undefined && (!Array.isArray(cp.ranking) || cp.ranking.some((n) => typeof n !== 'string'))) fail(`${where}: "ranking" must be an array of component names`);
  if (cp.phase !== undefined && cp.phase !== 'verify' && cp.phase !== 'refine') fail(`${where}: "phase" must be "verify" or "refine"`);
  if (cp.constants !== undefined && (typeof cp.constants !== 'object' || cp.constants === null)) fail(`${where}: "constants" must be an object`);
  return cp as unknown as PruneCheckpoint;
}

/** What a checked checkpoint resumes from, in components. */
export interface ResumeState {
  steps: PruneStep[];
  /** The components of steps 1.. in order. */
  removed: Component[];
  ranking?: Component[];
  visited?: number;
  current?: number;
  phase?: 'verify' | 'refine';
  refined?: number;
  evaluations?: number;
}

/**
 * Check that a checkpoint belongs to this run (options, fingerprint) and is consistent (steps name
 * distinct components being pruned; order-specific fields in range), and return its state.
 */
export function checkResume(cp: PruneCheckpoint, fingerprint: string, opts: ResolvedPruneOptions, byName: Map<string, Component>, where: string): ResumeState {
  if (cp.format !== CHECKPOINT_FORMAT || cp.version !== 1) fail(`${where}: not a carve prune checkpoint (format ${JSON.stringify(cp.format)}, version ${JSON.stringify(cp.version)})`);
  const keys = [...new Set([...Object.keys(opts), ...Object.keys(cp.options ?? {})])] as (keyof ResolvedPruneOptions)[];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const differs = keys.filter((k) => !same(cp.options?.[k], opts[k]));
  if (differs.length > 0) {
    const show = (o: ResolvedPruneOptions | undefined, k: keyof ResolvedPruneOptions) => (o?.[k] === undefined ? 'unset' : JSON.stringify(o[k]));
    failOption(`${where}: made with other options (${differs.map((k) => `${k}: ${show(cp.options, k)} there, ${show(opts, k)} now`).join('; ')}); run without {resume} to start over`);
  }
  if (cp.fingerprint !== fingerprint) failOption(`${where}: made for a different model or task (fingerprint mismatch); run without {resume} to start over`);
  if (!Array.isArray(cp.steps) || cp.steps.length === 0) fail(`${where}: "steps" must be a non-empty array`);
  const n = byName.size;
  const seen = new Set<string>();
  cp.steps.forEach((s, i) => {
    if (s.removed !== i) fail(`${where}: steps[${i}].removed must be ${i}`);
    if (i === 0) return;
    if (seen.has(s.component as string)) fail(`${where}: steps[${i}].component ${JSON.stringify(s.component)} is removed twice`);
    seen.add(s.component as string);
    if (!byName.has(s.component as string)) fail(`${where}: steps[${i}].component ${JSON.stringify(s.component)} is not a component being pruned`);
  });
  const state: ResumeState = { steps: cp.steps.map((s) => ({ ...s })), removed: cp.steps.slice(1).map((s) => byName.get(s.component!)!) };
  if (cp.ranking !== undefined) {
    state.ranking = cp.ranking.map((name) => {
      const c = byName.get(name);
      if (!c) fail(`${where}: ranking names ${JSON.stringify(name)}, not a component being pruned`);
      return c;
    });
    if (state.ranking.length !== n || new Set(state.ranking).size !== n) fail(`${where}: the ranking must list every component once`);
  }
  if (opts.order === 'acdc') {
    if (!Number.isSafeInteger(cp.visited) || cp.visited! < state.removed.length || cp.visited! > n) fail(`${where}: "visited" must be an integer from ${state.removed.length} to ${n}`);
    if (typeof cp.current !== 'number' || !Number.isFinite(cp.current)) fail(`${where}: "current" must be a finite number`);
    state.visited = cp.visited;
    state.current = cp.current;
  }
  if (opts.order === 'optimize') {
    if (!state.ranking) fail(`${where}: an optimize checkpoint needs the mask "ranking"`);
    state.phase = cp.phase ?? 'verify';
    if (state.phase === 'refine') {
      if (state.removed.length !== n) fail(`${where}: refinement starts from a complete order (${n} steps)`);
      if (!Number.isSafeInteger(cp.refined) || cp.refined! < 0 || cp.refined! > (opts.refine ?? 0)) fail(`${where}: "refined" must be an integer from 0 to ${opts.refine ?? 0}`);
      state.refined = cp.refined;
    }
  }
  if (opts.method === 'halving') {
    if (!Number.isSafeInteger(cp.evaluations) || cp.evaluations! < 0) fail(`${where}: "evaluations" must be a non-negative integer`);
    state.evaluations = cp.evaluations;
  }
  if (opts.ablation === 'optimal' && !cp.constants) fail(`${where}: an optimal-ablation checkpoint must hold its "constants"`);
  return state;
}
