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
}

export interface ObjectiveGraph {
  graph: Graph;
  /** Names of the weight inputs, each with an output `grad:<name>`. */
  weightNames: string[];
}

/**
 * Inputs: tokens [B, T], flat_pos [B] (b·T + metric position), metric_pos [B], answer_ids and
 * answer_weights [B, A] (readout.ts), rope_cos/rope_sin for rotary models, target_flat [B]
 * (b·V + correct token), row_scale [B] (1/B for a plain mean). Outputs: loss, metric [B], grads.
 */
export function buildObjective(cfg: ModelConfig, dtype: 'float32' | 'float64', opts: ObjectiveOptions): ObjectiveGraph {
  const g = new Graph(dtype);
  const fv = buildForward(g, cfg, { startLayer: 0, readout: { kind: 'metric', metric: 'logit-diff', logits: opts.ceWeight > 0 } });
  const rowScale = g.input('row_scale', ['B']);
  const metric = fv.metric!;
  g.output(metric, 'metric');
  const terms: Value[] = [];
  if (opts.ceWeight > 0) {
    const logp = g.reshape(g.logSoftmax(fv.logits!, -1), [-1], ['BV']);
    const target = g.input('target_flat', ['B'], 'int64');
    const nll = g.neg(g.gather(logp, target));
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
