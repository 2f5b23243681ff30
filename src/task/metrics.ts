/**
 * Task metrics as pure functions over plain arrays. A "row" is one prompt's logits (or
 * log-probabilities) over the vocabulary at its metric position. Answers are sets (SPEC "Answer
 * sets and metrics"); the model computes the same metrics inside its graph (src/model/readout.ts).
 */

export type Row = ArrayLike<number>;

export interface Answer {
  correct: readonly number[];
  incorrect: readonly number[];
}

const meanAt = (row: Row, ids: readonly number[]) => ids.reduce((s, id) => s + row[id]!, 0) / ids.length;

/** Mean logit over the correct set − mean logit over the incorrect set (one each: logit[c] − logit[i]). */
export function logitDiff(row: Row, answer: Answer): number {
  return meanAt(row, answer.correct) - meanAt(row, answer.incorrect);
}

/** Σ p(correct set) − Σ p(incorrect set), softmax over the whole row, in float64. */
export function probDiff(row: Row, answer: Answer): number {
  const lse = logSumExp(row);
  const mass = (ids: readonly number[]) => ids.reduce((s, id) => s + Math.exp(row[id]! - lse), 0);
  return mass(answer.correct) - mass(answer.incorrect);
}

/**
 * Whether a prompt is answered correctly: the highest logit among correct ∪ incorrect belongs to the
 * correct set (ties count as wrong). `answerLogits` holds the correct set's logits, then the
 * incorrect set's; with one answer each this is logit[correct] > logit[incorrect].
 */
export function answeredCorrectly(answerLogits: ArrayLike<number>, nCorrect: number): boolean {
  let bestC = -Infinity;
  let bestI = -Infinity;
  for (let j = 0; j < answerLogits.length; j++) {
    if (j < nCorrect) bestC = Math.max(bestC, answerLogits[j]!);
    else bestI = Math.max(bestI, answerLogits[j]!);
  }
  return bestC > bestI;
}

/** Share of prompts answered correctly (see answeredCorrectly), from each prompt's answer logits. */
export function setAccuracy(answerLogits: readonly ArrayLike<number>[], answers: readonly Answer[]): number {
  if (answerLogits.length !== answers.length) throw new RangeError(`setAccuracy: ${answerLogits.length} rows for ${answers.length} prompts`);
  if (answers.length === 0) return NaN;
  return answerLogits.filter((l, i) => answeredCorrectly(l, answers[i]!.correct.length)).length / answers.length;
}

/** Per-prompt logit differences. */
export function logitDiffs(rows: readonly Row[], answers: readonly Answer[]): Float64Array {
  if (rows.length !== answers.length) throw new RangeError(`logitDiffs: ${rows.length} rows for ${answers.length} prompts`);
  return Float64Array.from(rows, (row, i) => logitDiff(row, answers[i]!));
}

export function mean(xs: ArrayLike<number>): number {
  if (xs.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i]!;
  return sum / xs.length;
}

/**
 * Standard deviation with Bessel's correction (divide by n − 1), the convention of `torch.std`'s
 * default, so our numbers line up with TransformerLens-based notebooks. torch gives NaN for a single
 * value; we return 0 there, because the value ends up in JSON, where NaN cannot be written.
 */
export function std(xs: ArrayLike<number>): number {
  const n = xs.length;
  if (n === 0) return NaN;
  if (n === 1) return 0;
  const m = mean(xs);
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - m) ** 2;
  return Math.sqrt(ss / (n - 1));
}

export interface Summary {
  mean: number;
  std: number;
  n: number;
}

export function summarize(xs: ArrayLike<number>): Summary {
  return { mean: mean(xs), std: std(xs), n: xs.length };
}

/** Share of prompts whose logit difference is positive, i.e. logit[correct] > logit[incorrect]. Ties count as wrong. */
export function accuracy(diffs: ArrayLike<number>): number {
  if (diffs.length === 0) return NaN;
  let right = 0;
  for (let i = 0; i < diffs.length; i++) if (diffs[i]! > 0) right++;
  return right / diffs.length;
}

/**
 * (metric − corrupt) / (clean − corrupt): 1 at the clean model's level, 0 at the corrupt run's.
 * NaN when clean and corrupt are equal, where the ratio means nothing.
 */
export function normalizedMetric(metric: number, clean: number, corrupt: number): number {
  const span = clean - corrupt;
  return span === 0 ? NaN : (metric - corrupt) / span;
}

/** The same, element by element (per prompt). */
export function normalizedMetrics(metrics: ArrayLike<number>, clean: ArrayLike<number>, corrupt: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: metrics.length }, (_, i) => normalizedMetric(metrics[i]!, clean[i]!, corrupt[i]!));
}

/** log Σ exp(x), shifted by the maximum so that large logits do not overflow to Infinity. */
export function logSumExp(row: Row): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  if (max === -Infinity || !Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/** log-softmax of one row, computed in float64 whatever the input's precision. */
export function logSoftmax(row: Row): Float64Array {
  const lse = logSumExp(row);
  return Float64Array.from({ length: row.length }, (_, i) => row[i]! - lse);
}

/** log-softmax of each row of a row-major [rows × cols] matrix. */
export function logSoftmaxRows(data: ArrayLike<number>, cols: number): Float64Array[] {
  if (cols <= 0 || data.length % cols !== 0) throw new RangeError(`logSoftmaxRows: ${data.length} values do not form rows of ${cols}`);
  const out: Float64Array[] = [];
  for (let r = 0; r < data.length / cols; r++) {
    const row = 'subarray' in data ? (data as Float32Array | Float64Array).subarray(r * cols, (r + 1) * cols) : Array.prototype.slice.call(data, r * cols, (r + 1) * cols);
    out.push(logSoftmax(row as Row));
  }
  return out;
}

/**
 * KL(P ‖ Q) = Σ p (log p − log q), from both distributions' log-probabilities. P is the clean run.
 * Terms with p = 0 contribute 0 (the limit of p log p), even where q is 0 too.
 */
export function klDivergence(logP: Row, logQ: Row): number {
  if (logP.length !== logQ.length) throw new RangeError(`klDivergence: ${logP.length} vs ${logQ.length} entries`);
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const lp = logP[i]!;
    if (lp === -Infinity) continue;
    kl += Math.exp(lp) * (lp - logQ[i]!);
  }
  // Rounding can leave a tiny negative number when P = Q.
  return Math.max(0, kl);
}

/** KL of the distribution given by `logits` from the clean run's log-probabilities. */
export function klFromClean(cleanLogProbs: Row, logits: Row): number {
  return klDivergence(cleanLogProbs, logSoftmax(logits));
}

/** Per-prompt KL divergences from the clean run. */
export function klDivergences(cleanLogProbs: readonly Row[], logits: readonly Row[]): Float64Array {
  if (cleanLogProbs.length !== logits.length) throw new RangeError(`klDivergences: ${cleanLogProbs.length} vs ${logits.length} rows`);
  return Float64Array.from(logits, (row, i) => klFromClean(cleanLogProbs[i]!, row));
}

export interface PromptMetrics {
  logitDiffs: Float64Array;
  logitDiff: Summary;
  accuracy: number;
}

/** The per-prompt logit differences with their mean, std and accuracy. */
export function taskMetrics(rows: readonly Row[], answers: readonly Answer[]): PromptMetrics {
  const diffs = logitDiffs(rows, answers);
  return { logitDiffs: diffs, logitDiff: summarize(diffs), accuracy: accuracy(diffs) };
}
