/**
 * What a run reads out of the final residual stream, as the caller asks (the model layer itself
 * knows no task): nothing (residual caching), full-vocabulary logits everywhere, or a task metric at
 * each row's metric position.
 *
 * The metric readout works on answer sets: inputs `answer_ids` [B, A] and `answer_weights` [B, A]
 * (zero-weight entries pad rows with fewer answers). Per row, with ℓ the logits at the metric position:
 *  - logit-diff: Σₐ wₐ·ℓ[idₐ] — the caller's weights are +1/|correct| and −1/|incorrect|, so this is
 *    mean logit over the correct set − mean over the incorrect set (one token each: ℓ[c] − ℓ[i]);
 *  - prob-diff: Σₐ wₐ·p[idₐ], p = softmax(ℓ) over the whole vocabulary, weights ±1;
 *  - kl: KL(clean ‖ this run) = Σᵥ p_clean(v)·(log p_clean(v) − log p(v)), from input `clean_logp` [B, V].
 * Only the metric positions are unembedded (one row per prompt), and for logit-diff only the answer rows.
 */
import type { Graph, Value } from '../onnx/graph.ts';

export type MetricName = 'logit-diff' | 'prob-diff' | 'kl';
export const METRIC_NAMES: readonly MetricName[] = ['logit-diff', 'prob-diff', 'kl'];

export type Readout =
  /** No unembedding: for caching residual streams and hooks. */
  | { kind: 'none' }
  /** Full-vocabulary logits at every position: output `logits` [B, T, V]. */
  | { kind: 'logits' }
  /**
   * At each row's metric position (inputs `flat_pos`, `metric_pos`): the answers' logits
   * `answerLogits` [B, A] and the metric [B]; with `logits` also the full logits [B, V]; with
   * `select` the logits of tokens chosen per row (input `select_tokens` [B, K]).
   */
  | { kind: 'metric'; metric: MetricName; logits?: boolean; select?: boolean };

export interface ReadoutValues {
  answerLogits?: Value;
  metric?: Value;
  logits?: Value;
  selected?: Value;
}

/** Logits of chosen token rows of the unembedding: x [B, d], ids [B, K] → [B, K]. */
function logitsOf(g: Graph, x: Value, unembed: Value, ids: Value): Value {
  return g.reduceSum(g.mul(g.unsqueeze(x, [1]), g.gather(unembed, ids)), [-1], false);
}

/**
 * The symbolic batch dimension of a pass whose inputs start with `prefix`: a second pass built into
 * the same graph is another batch, maybe of another size, and sharing a name with the first would
 * let onnxruntime's planner reuse buffers between the two.
 */
export function batchDim(prefix: string): string {
  return prefix ? `${prefix}B` : 'B';
}

/**
 * The metric readout on x [B, d], the final-normed residual at each row's metric position, against
 * the unembedding [V, d]; its inputs' names start with `prefix` (ForwardSpec.feedPrefix).
 */
export function metricReadout(g: Graph, x: Value, unembed: Value, spec: Extract<Readout, { kind: 'metric' }>, prefix = ''): ReadoutValues {
  const V = unembed.shape[0] as number;
  const batch = batchDim(prefix);
  const ids = g.input(`${prefix}answer_ids`, [batch, 'A'], 'int64');
  const weights = g.input(`${prefix}answer_weights`, [batch, 'A']);
  const out: ReadoutValues = { answerLogits: logitsOf(g, x, unembed, ids) };
  const needFull = spec.logits === true || spec.metric !== 'logit-diff';
  const full = needFull ? g.gemmTransB(x, unembed) : undefined;
  if (spec.logits) out.logits = full;
  if (spec.metric === 'logit-diff') {
    out.metric = g.reduceSum(g.mul(out.answerLogits!, weights), [-1], false);
  } else {
    const logp = g.logSoftmax(full!, -1); // [B, V]
    if (spec.metric === 'prob-diff') {
      // Row b's answer a sits at b·V + id in the flattened [B·V] log-probabilities.
      const B = g.slice(g.shapeOf(ids), g.ints([0]), g.ints([1]), [0], [1]);
      const rows = g.range(g.constant([0], [], 'int64'), g.squeeze(B, [0]), g.constant([1], [], 'int64'), batch);
      const flat = g.add(ids, g.unsqueeze(g.mul(rows, g.constant([V], [], 'int64')), [1]));
      const p = g.exp(g.gather(g.reshape(logp, [-1], [`${batch}*V`]), flat)); // [B, A]
      out.metric = g.reduceSum(g.mul(p, weights), [-1], false);
    } else {
      const clean = g.input(`${prefix}clean_logp`, [batch, V]);
      out.metric = g.reduceSum(g.mul(g.exp(clean), g.sub(clean, logp)), [-1], false);
    }
  }
  if (spec.select) out.selected = logitsOf(g, x, unembed, g.input(`${prefix}select_tokens`, [batch, 'K'], 'int64'));
  return out;
}
