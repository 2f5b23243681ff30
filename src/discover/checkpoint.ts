/**
 * Checkpoints of long runs (`--out FILE` writes FILE.partial.json; `--resume` continues from it).
 * Every format shares a header — format, version, the run's fingerprint (model, task, resolved
 * options; fingerprint.ts) and its options in the clear — read by `parseCheckpointHeader` and
 * matched against the run by `checkSameRun`, so every resumable run refuses a foreign checkpoint
 * with the same messages. The rest of this file is pruning's format: `parseCheckpoint` checks the
 * shape of what was read; `checkResume` checks that it was made for this model, task and options
 * and that every order-specific field is consistent. The edge runs' formats are in
 * edge-checkpoint.ts.
 */
import { failOption, fail } from '../util/errors.ts';
import type { Component } from './components.ts';
import type { ConstantsFile } from './optimal.ts';
import type { PruneStep, ResolvedPruneOptions } from './prune.ts';

export const CHECKPOINT_FORMAT = 'carve-prune-partial';

/** What every checkpoint holds besides its run's own state. */
export interface CheckpointHeader<F extends string, O> {
  format: F;
  version: 1;
  /** runFingerprint(model, task, options). */
  fingerprint: string;
  model: string;
  task: string;
  /** The run's resolved options (those that change its result), for messages naming what differs. */
  options: O;
}

/** The hooks of a run that checkpoints and resumes (the CLI ties them to FILE.partial.json). */
export interface ResumeHooks<CP> {
  /** Called with all the state needed to continue, whenever a unit of work is done. */
  onCheckpoint?: (cp: CP) => void | Promise<void>;
  /** Continue from this checkpoint (it must belong to this run: checkSameRun). */
  resume?: CP;
  /** Where the checkpoint came from, for error messages. */
  resumeSource?: string;
  /** Called once the checkpoint to resume from has been checked and accepted. */
  onResumed?: (cp: CP) => void;
}

/**
 * Parse a checkpoint's text and check the header (`where`: the file, for messages; `what`: the
 * format for people, e.g. "carve prune partial result"). The run's own fields are the caller's.
 */
export function parseCheckpointHeader(text: string, where: string, format: string, what: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    fail(`${where}: cannot read the partial result: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(`${where}: expected a JSON object`);
  const cp = o as Record<string, unknown>;
  if (cp.format !== format) fail(`${where}: not a ${what} ("format" is not "${format}")`);
  if (cp.version !== 1) fail(`${where}: unsupported version ${JSON.stringify(cp.version)} (expected 1)`);
  if (typeof cp.fingerprint !== 'string') fail(`${where}: "fingerprint" must be a string`);
  if (typeof cp.options !== 'object' || cp.options === null || Array.isArray(cp.options)) fail(`${where}: "options" must be an object`);
  return cp;
}

/**
 * Check that a checkpoint belongs to this run: its format, then the same resolved options (every
 * difference named, as `{resume}` for the CLI's flag), then the same model and task (fingerprint).
 */
export function checkSameRun<O extends object>(cp: Partial<CheckpointHeader<string, O>>, format: string, what: string, fingerprint: string, opts: O, where: string): void {
  if (cp.format !== format || cp.version !== 1) fail(`${where}: not a ${what} (format ${JSON.stringify(cp.format)}, version ${JSON.stringify(cp.version)})`);
  const was = (cp.options ?? {}) as Record<string, unknown>;
  const now = opts as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(now), ...Object.keys(was)])];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const differs = keys.filter((k) => !same(was[k], now[k]));
  if (differs.length > 0) {
    const show = (o: Record<string, unknown>, k: string) => (o[k] === undefined ? 'unset' : JSON.stringify(o[k]));
    failOption(`${where}: made with other options (${differs.map((k) => `${k}: ${show(was, k)} there, ${show(now, k)} now`).join('; ')}); run without {resume} to start over`);
  }
  if (cp.fingerprint !== fingerprint) failOption(`${where}: made for a different model or task (fingerprint mismatch); run without {resume} to start over`);
}

export interface PruneCheckpoint extends CheckpointHeader<typeof CHECKPOINT_FORMAT, ResolvedPruneOptions> {
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

/**
 * Check the shape of a checkpoint's `steps` (pruning's and ACDC over edges' alike): a non-empty
 * array whose step i has `removed` = i, the removed item under `field` (null at step 0, else a
 * string — `noun` in messages), and numeric `metric` and `std`.
 */
export function checkSteps(steps: unknown, field: string, noun: string, where: string): void {
  if (!Array.isArray(steps) || steps.length === 0) fail(`${where}: "steps" must be a non-empty array`);
  steps.forEach((s: unknown, i: number) => {
    if (typeof s !== 'object' || s === null) fail(`${where}: steps[${i}] must be an object`);
    const st = s as Record<string, unknown>;
    if (st.removed !== i) fail(`${where}: steps[${i}].removed must be ${i}`);
    if (i === 0 ? st[field] !== null : typeof st[field] !== 'string') fail(`${where}: steps[${i}].${field} must be ${i === 0 ? 'null' : noun}`);
    if (typeof st.metric !== 'number' || typeof st.std !== 'number') fail(`${where}: steps[${i}] needs numeric "metric" and "std"`);
  });
}

/** Parse a checkpoint's text and check its shape (`where`: the file, for messages). */
export function parseCheckpoint(text: string, where: string): PruneCheckpoint {
  const cp = parseCheckpointHeader(text, where, CHECKPOINT_FORMAT, 'carve prune partial result');
  checkSteps(cp.steps, 'component', 'a component name', where);
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
  checkSameRun(cp, CHECKPOINT_FORMAT, 'carve prune checkpoint', fingerprint, opts, where);
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
