/** The task types every other part of carve consumes. */

export interface PromptPair {
  clean: number[]; // token ids, no padding
  corrupt: number[];
  correct: number; // answer token id
  incorrect: number;
  cleanText?: string;
  corruptText?: string;
}

/**
 * A pair's answer sets, as the model's metric readout takes them (src/model/hooked.ts `Answers`).
 * Today every pair has one token each.
 */
export function answersOf(p: PromptPair): { correct: number[]; incorrect: number[] } {
  return { correct: [p.correct], incorrect: [p.incorrect] };
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
  /** IOI only: per-prompt names and positions (keys like IO, S1, S2, end ... in token indices of the clean prompt). */
  ioi?: IoiInfo[];
}

export type IoiPromptType = 'mixed' | 'ABBA' | 'BABA';

export interface IoiOptions {
  n: number;
  seed: number;
  promptType: IoiPromptType;
  flip: string;
  prependBos: boolean;
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
