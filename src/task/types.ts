/** The task types every other part of carve consumes. */

import type { MetricName } from '../model/readout.ts';

/**
 * One prompt pair. `correct` and `incorrect` are answer sets (one token each for IOI; years for
 * greater-than), disjoint and non-empty; the pair is what the model's metric readout takes
 * (src/model/hooked.ts `Answers`).
 */
export interface PromptPair {
  clean: number[]; // token ids, no padding
  corrupt: number[];
  correct: number[];
  incorrect: number[];
  cleanText?: string;
  corruptText?: string;
}

export type IoiKind = 'ABBA' | 'BABA';

/** Per-prompt IOI bookkeeping. Positions are token indices into the clean prompt (BOS included). */
export interface IoiInfo {
  io: string;
  s: string;
  templateIndex: number;
  kind: IoiKind;
  positions: Record<string, number>;
  /** The reference's full sentence, final IO name included. */
  text?: string;
  /** The flipped sentence (final name still the clean IO) and its own IO/S per the reference. */
  corruptFullText?: string;
  corruptIo?: string;
  corruptS?: string;
  place?: string;
  object?: string;
}

export interface Task {
  name: string; // e.g. "ioi(n=25,seed=1,mixed)" or the jsonl path
  pairs: PromptPair[];
  /** The metric commands use when `--metric` is not given (greater-than: prob-diff); default logit-diff. */
  defaultMetric?: MetricName;
  /** Things the user should know about how the task was made (e.g. IOI names dropped for this tokenizer); the CLI prints them. */
  notes?: string[];
  /** IOI only: per-prompt names and positions (keys like IO, S1, S2, end ... in token indices of the clean prompt). */
  ioi?: IoiInfo[];
}

export type IoiPromptType = 'mixed' | 'ABBA' | 'BABA';

export interface IoiOptions {
  n: number;
  seed: number;
  promptType: IoiPromptType;
  flip: string;
  /** Start every prompt with BOS; undefined: as the tokenizer's post-processor does. */
  prependBos?: boolean;
}

export interface IoiTask extends Task {
  ioi: IoiInfo[];
  options: IoiOptions;
}

/** Limits a consumer puts on a task: its model's context, and resample ablation's equal lengths. */
export interface TaskLimits {
  nCtx?: number;
  requireEqualLengths?: boolean;
}
