/**
 * The training objective for task models, as a graph: the forward pass of forward.ts, a loss on
 * the answer at each prompt's metric position, and the gradient of that loss with respect to every
 * weight, all from the same builder (no hand-written backward pass).
 */
import { Graph, type Value } from '../onnx/graph.ts';
import { gradients } from '../onnx/autodiff.ts';
import { buildForward } from '../model/forward.ts';
import type { ModelConfig } from '../model/types.ts';

export interface ObjectiveOptions {
  /** Weight of the cross-entropy of the correct token over the full vocabulary (mean over rows). */
  ceWeight: number;
  /** Weight of a hinge on the logit difference: mean over rows of relu(margin − (logit[correct] − logit[incorrect])). */
  hingeWeight: number;
  margin: number;
  /**
   * Answer sets (greater-than): the cross-entropy is against the uniform distribution over the
   * correct set, −(1/|C|) Σ_{c∈C} log p(c) — as if the text went on with any later year, which is
   * what a model sees in natural text — from inputs correct_ids and correct_mask [B, C] (padding:
   * mask 0); the hinge is on the set logit difference (mean over the correct set − mean over the
   * incorrect set). The set's total probability, −log Σ p(c), would not do: always answering "99"
   * satisfies it for every start year. Off: one correct token (target_flat).
   */
  sets?: boolean;
}

export interface ObjectiveGraph {
  graph: Graph;
  /** Names of the weight inputs, each with an output `grad:<name>`. */
  weightNames: string[];
}

/**
 * Inputs: tokens [B, T], flat_pos [B] (b·T + metric position), metric_pos [B], answer_ids and
 * answer_weights [B, A] (readout.ts), rope_cos/rope_sin for rotary models, target_flat [B]
 * (b·V + correct token) or with `sets` correct_ids and correct_mask [B, C], row_scale [B] (1/B for a plain mean).
 * Outputs: loss, metric [B], answer_logits [B, A], grads.
 */
export function buildObjective(cfg: ModelConfig, dtype: 'float32' | 'float64', opts: ObjectiveOptions): ObjectiveGraph {
  const g = new Graph(dtype);
  const fv = buildForward(g, cfg, { startLayer: 0, readout: { kind: 'metric', metric: 'logit-diff', logits: opts.ceWeight > 0 } });
  const rowScale = g.input('row_scale', ['B']);
  const metric = fv.metric!;
  g.output(metric, 'metric');
  if (opts.sets) g.output(fv.answerLogits!, 'answer_logits');
  const terms: Value[] = [];
  if (opts.ceWeight > 0) {
    const logp = g.reshape(g.logSoftmax(fv.logits!, -1), [-1], ['BV']);
    let nll: Value;
    if (opts.sets) {
      // Row b's answer a sits at b·V + id in the flattened log-probabilities.
      const V = cfg.vocabSize;
      const ids = g.input('correct_ids', ['B', 'C'], 'int64');
      const B = g.slice(g.shapeOf(ids), g.ints([0]), g.ints([1]), [0], [1]);
      const rows = g.range(g.constant([0], [], 'int64'), g.squeeze(B, [0]), g.constant([1], [], 'int64'), 'B');
      const flat = g.add(ids, g.unsqueeze(g.mul(rows, g.constant([V], [], 'int64')), [1]));
      const lp = g.gather(logp, flat); // [B, C]
      const mask = g.input('correct_mask', ['B', 'C']);
      nll = g.neg(g.div(g.reduceSum(g.mul(lp, mask), [-1], false), g.reduceSum(mask, [-1], false)));
    } else {
      const target = g.input('target_flat', ['B'], 'int64');
      nll = g.neg(g.gather(logp, target));
    }
    g.output(nll, 'nll');
    terms.push(g.mul(g.reduceSum(g.mul(nll, rowScale), [0], false), opts.ceWeight));
  }
  if (opts.hingeWeight > 0) {
    const hinge = g.relu(g.sub(g.scalar(opts.margin), metric));
    terms.push(g.mul(g.reduceSum(g.mul(hinge, rowScale), [0], false), opts.hingeWeight));
  }
  if (terms.length === 0) throw new Error('the objective needs a cross-entropy or a hinge term');
  const loss = terms.reduce((a, b) => g.add(a, b));
  g.output(loss, 'loss');
  const names = [...fv.weights.keys()];
  gradients(loss, names.map((n) => fv.weights.get(n)!)).forEach((d, i) => g.output(d, `grad:${names[i]}`));
  return { graph: g, weightNames: names };
}
