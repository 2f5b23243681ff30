/**
 * Reverse-mode differentiation of builder graphs. Each operator has one VJP rule that emits more
 * builder nodes, so a gradient is itself a graph that onnxruntime runs. There is no second,
 * hand-derived copy of any model: whatever is built with the builder can be differentiated.
 */
import type { Graph, Node, Shape, Value } from './graph.ts';

type Grads = (Value | null)[];
type VjpRule = (g: Graph, node: Node, dy: Value[]) => Grads;

/**
 * Sum a broadcast gradient back to the shape of the operand it came from. Which axes were
 * broadcast is known statically: a target dim that is literally 1 (or missing) against anything else.
 */
export function unbroadcast(g: Graph, grad: Value, target: Value): Value {
  const lead = grad.rank - target.rank;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    const td = i - lead >= 0 ? target.shape[i - lead] : undefined;
    if (td === undefined || (td === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  let out = grad;
  if (axes.length > 0) out = g.reduceSum(out, axes, true);
  if (lead > 0 || !sameShape(out.shape, target.shape)) out = g.reshapeLike(out, target);
  return out;
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function lastTwoSwapped(x: Value): number[] {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return perm;
}

function matmulVjp(g: Graph, node: Node, [dy]: Value[]): Grads {
  const [a, b] = node.inputs;
  const da = unbroadcast(g, g.matmul(dy, g.transpose(b, lastTwoSwapped(b))), a);
  let db: Value;
  if (b.rank === 2 && a.rank > 2) {
    // A weight shared across the batch: fold batch and rows together, one big GEMM instead of
    // a batched product followed by a reduction.
    const k = a.shape[a.rank - 1] as number;
    const n = dy.shape[dy.rank - 1] as number;
    const a2 = g.reshape(a, [-1, k], ['M', k]);
    const dy2 = g.reshape(dy, [-1, n], ['M', n]);
    db = g.matmul(g.transpose(a2, [1, 0]), dy2);
  } else {
    db = unbroadcast(g, g.matmul(g.transpose(a, lastTwoSwapped(a)), dy), b);
  }
  return [da, db];
}

function softmaxVjp(g: Graph, node: Node, [dy]: Value[]): Grads {
  const y = node.outputs[0];
  const axis = node.attrs.axis.v as number;
  const dot = g.reduceSum(g.mul(dy, y), [axis], true);
  return [g.mul(y, g.sub(dy, dot))];
}

function reduceVjp(mean: boolean): VjpRule {
  return (g, node, [dy]) => {
    const x = node.inputs[0];
    const axes = (g.constants.find((c) => c.value === node.inputs[1])!.data as BigInt64Array).map((a) => a);
    const axesN = Array.from(axes, (a) => Number(a));
    let grad = dy;
    if (node.attrs.keepdims.v === 0) grad = g.unsqueeze(grad, axesN);
    if (mean) {
      const count = axesN.reduce((p, a) => p * (x.shape[a] as number), 1);
      grad = g.div(grad, count);
    }
    return [g.expandLike(grad, x), null];
  };
}

function splitVjp(g: Graph, node: Node, dys: Value[]): Grads {
  const axis = node.attrs.axis.v as number;
  const parts = node.outputs.map((o, i) => dys[i] ?? g.zerosLike(o));
  return [g.concat(parts, axis), null];
}

function gatherVjp(g: Graph, node: Node, [dy]: Value[]): Grads {
  const [data, idx] = node.inputs;
  const axis = node.attrs.axis;
  if (axis && axis.kind === 'int' && axis.v !== 0) throw new Error('Gather: gradients only along axis 0');
  // Repeated indices (a token seen twice) must add up: ScatterND with reduction 'add'.
  return [g.scatterAddRows(g.zerosLike(data), g.unsqueeze(idx, [-1]), dy), null];
}

function whereVjp(g: Graph, node: Node, [dy]: Value[]): Grads {
  const [c, a, b] = node.inputs;
  const zero = g.scalar(0, dy.dtype);
  return [null, unbroadcast(g, g.where(c, dy, zero), a), unbroadcast(g, g.where(c, zero, dy), b)];
}

const RULES: Record<string, VjpRule> = {
  Identity: (_g, _n, [dy]) => [dy],
  Add: (g, n, [dy]) => [unbroadcast(g, dy, n.inputs[0]), unbroadcast(g, dy, n.inputs[1])],
  Sub: (g, n, [dy]) => [unbroadcast(g, dy, n.inputs[0]), unbroadcast(g, g.neg(dy), n.inputs[1])],
  Mul: (g, n, [dy]) => [unbroadcast(g, g.mul(dy, n.inputs[1]), n.inputs[0]), unbroadcast(g, g.mul(dy, n.inputs[0]), n.inputs[1])],
  Div: (g, n, [dy]) => {
    const [a, b] = n.inputs;
    const da = g.div(dy, b);
    return [unbroadcast(g, da, a), unbroadcast(g, g.neg(g.mul(da, g.div(a, b))), b)];
  },
  Neg: (g, _n, [dy]) => [g.neg(dy)],
  Pow: (g, n, [dy]) => {
    const [x, pv] = n.inputs;
    const p = Number(g.constants.find((c) => c.value === pv)!.data[0]);
    // Small integer powers as products: onnxruntime's Pow is several times slower than Mul.
    if (p === 1) return [dy, null];
    if (p === 2) return [g.mul(dy, g.mul(x, 2)), null];
    if (p === 3) return [g.mul(dy, g.mul(g.mul(x, x), 3)), null];
    return [g.mul(dy, g.mul(g.pow(x, p - 1), p)), null];
  },
  Sqrt: (g, n, [dy]) => [g.div(dy, g.mul(n.outputs[0], 2))],
  Tanh: (g, n, [dy]) => {
    const y = n.outputs[0];
    return [g.mul(dy, g.sub(g.scalar(1, y.dtype), g.mul(y, y)))];
  },
  Exp: (g, n, [dy]) => [g.mul(dy, n.outputs[0])],
  Log: (g, n, [dy]) => [g.div(dy, n.inputs[0])],
  Sigmoid: (g, n, [dy]) => {
    const y = n.outputs[0];
    return [g.mul(dy, g.mul(y, g.sub(g.scalar(1, y.dtype), y)))];
  },
  Erf: (g, n, [dy]) => {
    const x = n.inputs[0];
    return [g.mul(dy, g.mul(g.exp(g.neg(g.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  Relu: (g, n, [dy]) => [g.where(g.greater(n.inputs[0], 0), dy, g.scalar(0, dy.dtype))],
  MatMul: matmulVjp,
  Gemm: (g, n, [dy]) => {
    const [a, b] = n.inputs;
    const ta = n.attrs.transA.v as number;
    const tb = n.attrs.transB.v as number;
    const da = ta ? g.gemm(b, dy, tb, 1) : g.gemm(dy, b, 0, 1 - tb);
    const db = tb ? g.gemm(dy, a, 1, ta) : g.gemm(a, dy, 1 - ta, 0);
    return [da, db];
  },
  Softmax: softmaxVjp,
  LogSoftmax: (g, n, [dy]) => {
    const axis = n.attrs.axis.v as number;
    const p = g.exp(n.outputs[0]);
    return [g.sub(dy, g.mul(p, g.reduceSum(dy, [axis], true)))];
  },
  ReduceSum: reduceVjp(false),
  ReduceMean: reduceVjp(true),
  Transpose: (g, n, [dy]) => {
    const perm = n.attrs.perm.v as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy, inv)];
  },
  Reshape: (g, n, [dy]) => [g.reshapeLike(dy, n.inputs[0]), null],
  Unsqueeze: (g, n, [dy]) => [g.reshapeLike(dy, n.inputs[0]), null],
  Squeeze: (g, n, [dy]) => [g.reshapeLike(dy, n.inputs[0]), null],
  Expand: (g, n, [dy]) => [unbroadcast(g, dy, n.inputs[0]), null],
  Split: splitVjp,
  Concat: (g, n, [dy]) => {
    const axis = n.attrs.axis.v as number;
    const sizes = n.inputs.map((x) => x.shape[axis]);
    if (sizes.some((s) => typeof s !== 'number')) throw new Error('Concat VJP needs static sizes');
    return g.split(dy, axis, sizes as number[]);
  },
  Gather: gatherVjp,
  Where: whereVjp,
  Cast: (g, n, [dy]) => [g.cast(dy, n.inputs[0].dtype)],
};

export function hasVjp(op: string): boolean {
  return op in RULES;
}

/**
 * Gradients of `y` with respect to each of `wrt`, as new values in y's graph.
 * `seed` is dL/dy (default: ones, so for a scalar y this is dy/dx). Values that y does not
 * depend on get zeros.
 */
export function gradients(y: Value, wrt: Value[], seed?: Value): Value[] {
  const g = y.graph;
  // Only nodes on a path from some wrt value to y need a VJP; everything else is skipped, so
  // integer bookkeeping (shapes, ranges, masks) never needs differentiating.
  const dependsOnWrt = new Set<Value>(wrt);
  for (const n of g.nodes) {
    if (n.inputs.some((i) => dependsOnWrt.has(i))) for (const o of n.outputs) dependsOnWrt.add(o);
  }
  const grads = new Map<Value, Value>();
  grads.set(y, seed ?? g.expandLike(g.scalar(1, y.dtype), y));
  const accumulate = (v: Value, d: Value): void => {
    const prev = grads.get(v);
    grads.set(v, prev ? g.add(prev, d) : d);
  };
  // The forward nodes are fixed before we append backward nodes to the same list.
  const forward = g.nodes.slice();
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    const dys = node.outputs.map((o) => grads.get(o) ?? null);
    if (dys.every((d) => d === null)) continue;
    if (!node.inputs.some((inp) => dependsOnWrt.has(inp))) continue;
    const custom = g.customVjps.get(node);
    if (custom) {
      const dxs = custom.vjp(dys[0] ?? g.zerosLike(node.outputs[0]));
      custom.inputs.forEach((inp, k) => {
        const dx = dxs[k];
        if (dx && dependsOnWrt.has(inp) && g.isFloat(inp)) accumulate(inp, dx);
      });
      continue;
    }
    const rule = RULES[node.op];
    if (!rule) throw new Error(`no VJP rule for ${node.op}`);
    const filled = node.op === 'Split' ? (dys as Value[]) : dys.map((d, k) => d ?? g.zerosLike(node.outputs[k]));
    const dxs = rule(g, node, filled);
    node.inputs.forEach((inp, k) => {
      const dx = dxs[k];
      if (dx && dependsOnWrt.has(inp) && g.isFloat(inp)) accumulate(inp, dx);
    });
  }
  return wrt.map((w) => grads.get(w) ?? g.zerosLike(w));
}
