/**
 * Checkpoints of the two long edge runs (`--out FILE` writes FILE.partial.json, `--resume`
 * continues from it): the exact edge scan (edge-scan.ts) and ACDC over edges (edge-acdc.ts). The
 * header and its match against the run are checkpoint.ts's, shared with pruning; here are each
 * run's own fields. `parse*` checks the shape of what was read; `check*Resume` checks that it
 * belongs to this run and is consistent with the edge graph, and returns the state to continue from.
 */
import { fail } from '../util/errors.ts';
import { checkSameRun, checkSteps, parseCheckpointHeader, type CheckpointHeader } from './checkpoint.ts';
import type { EdgeScanRunOptions } from './edge-scan.ts';
import type { EdgeAcdcRunOptions, EdgeAcdcStep } from './edge-acdc.ts';

export const EDGE_SCAN_FORMAT = 'carve-edge-scan-partial';
export const EDGE_ACDC_FORMAT = 'carve-edge-acdc-partial';
const SCAN_WHAT = 'carve exact edge scan partial result';
const ACDC_WHAT = 'carve edge ACDC partial result';

/** One scored edge; null stands for NaN, as JSON writes it (and as the final output would). */
export interface ScoredEdge {
  name: string;
  score: number | null;
  std: number | null;
}

export interface EdgeScanCheckpoint extends CheckpointHeader<typeof EDGE_SCAN_FORMAT, EdgeScanRunOptions> {
  /** The edges scored so far, whole blocks in the scan's work order (exactScanOrder). */
  scored: ScoredEdge[];
}

export interface EdgeAcdcCheckpoint extends CheckpointHeader<typeof EDGE_ACDC_FORMAT, EdgeAcdcRunOptions> {
  /** Edges decided so far, in ACDC's visiting order (acdcEdgeOrder). */
  visited: number;
  /** The width the next speculative batch starts with (it changes `evaluations`, not decisions). */
  width: number;
  /** Model evaluations made so far (rows of prompts). */
  evaluations: number;
  /** Step 0 (nothing removed), then every removal so far; the current metric is the last step's. */
  steps: EdgeAcdcStep[];
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isScore = (v: unknown) => v === null || typeof v === 'number';

export function parseEdgeScanCheckpoint(text: string, where: string): EdgeScanCheckpoint {
  const cp = parseCheckpointHeader(text, where, EDGE_SCAN_FORMAT, SCAN_WHAT);
  if (!Array.isArray(cp.scored)) fail(`${where}: "scored" must be an array`);
  cp.scored.forEach((s: unknown, i: number) => {
    const e = s as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || typeof e.name !== 'string' || !isScore(e.score) || !isScore(e.std)) {
      fail(`${where}: scored[${i}] must be {"name", "score", "std"} with numeric score and std`);
    }
  });
  return cp as unknown as EdgeScanCheckpoint;
}

/**
 * Check an exact-scan checkpoint against this run (`work`: edge names in the scan's work order) and
 * return the scores done: whole blocks, or every edge, naming the edges the work order starts with.
 */
export function checkEdgeScanResume(cp: EdgeScanCheckpoint, fingerprint: string, opts: EdgeScanRunOptions, work: readonly string[], where: string): ScoredEdge[] {
  checkSameRun(cp, EDGE_SCAN_FORMAT, SCAN_WHAT, fingerprint, opts, where);
  const done = cp.scored.length;
  if (done > work.length || (done % opts.block !== 0 && done !== work.length)) {
    fail(`${where}: ${done} edges scored: expected whole blocks of ${opts.block} (or all ${work.length})`);
  }
  cp.scored.forEach((s, i) => {
    if (s.name !== work[i]) fail(`${where}: scored[${i}] is ${JSON.stringify(s.name)}, expected ${JSON.stringify(work[i])} (the scan's order)`);
  });
  return cp.scored.map((s) => ({ ...s }));
}

export function parseEdgeAcdcCheckpoint(text: string, where: string): EdgeAcdcCheckpoint {
  const cp = parseCheckpointHeader(text, where, EDGE_ACDC_FORMAT, ACDC_WHAT);
  if (!isCount(cp.visited)) fail(`${where}: "visited" must be a non-negative integer`);
  if (!isCount(cp.width) || cp.width < 1) fail(`${where}: "width" must be a positive integer`);
  if (!isCount(cp.evaluations)) fail(`${where}: "evaluations" must be a non-negative integer`);
  checkSteps(cp.steps, 'edge', 'an edge name', where);
  return cp as unknown as EdgeAcdcCheckpoint;
}

/** What an ACDC checkpoint resumes from: the removed edges as positions in the visiting order. */
export interface EdgeAcdcState {
  visited: number;
  width: number;
  evaluations: number;
  steps: EdgeAcdcStep[];
  /** Visiting-order positions of steps 1.., increasing. */
  removedAt: number[];
}

/**
 * Check an ACDC checkpoint against this run (`order`: edge names in ACDC's visiting order): every
 * removed edge is one already visited, each once, in visiting order; the width within the run's.
 */
export function checkEdgeAcdcResume(cp: EdgeAcdcCheckpoint, fingerprint: string, opts: EdgeAcdcRunOptions, order: readonly string[], where: string): EdgeAcdcState {
  checkSameRun(cp, EDGE_ACDC_FORMAT, ACDC_WHAT, fingerprint, opts, where);
  if (cp.visited > order.length) fail(`${where}: "visited" must be at most ${order.length} (the model's edges)`);
  if (cp.width > opts.width) fail(`${where}: "width" must be at most ${opts.width}`);
  const position = new Map(order.map((name, i) => [name, i]));
  const removedAt: number[] = [];
  cp.steps.slice(1).forEach((s, k) => {
    const at = position.get(s.edge as string);
    if (at === undefined) fail(`${where}: steps[${k + 1}].edge ${JSON.stringify(s.edge)} is not an edge of the model`);
    if (at >= cp.visited) fail(`${where}: steps[${k + 1}].edge ${JSON.stringify(s.edge)} is not among the ${cp.visited} edges visited`);
    if (k > 0 && at <= removedAt[k - 1]) fail(`${where}: steps[${k + 1}].edge ${JSON.stringify(s.edge)} is out of ACDC's visiting order (or removed twice)`);
    removedAt.push(at);
  });
  return { visited: cp.visited, width: cp.width, evaluations: cp.evaluations, steps: cp.steps.map((s) => ({ ...s })), removedAt };
}
