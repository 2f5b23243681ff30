/**
 * A typed builder for ONNX graphs. Every tensor value carries its dtype and a shape whose dims are
 * numbers or symbolic names ('B', 'T'), so one compiled graph serves every batch size and prompt
 * length, while reverse-mode differentiation still knows statically which axes were broadcast.
 *
 * The builder offers only the operators carve needs, each with shape inference and (in autodiff.ts)
 * a VJP rule. The model's forward pass is written once against this builder.
 */

export type DType = 'float32' | 'float64' | 'int64' | 'bool';
export type Dim = number | string;
export type Shape = Dim[];

export type AttrValue =
  | { kind: 'int'; v: number }
  | { kind: 'float'; v: number }
  | { kind: 'ints'; v: number[] }
  | { kind: 'string'; v: string };

export interface Node {
  op: string;
  inputs: Value[];
  outputs: Value[];
  attrs: Record<string, AttrValue>;
}

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that produced it; undefined for graph inputs and constants. */
    readonly producer?: Node,
    public name: string = `v${id}`,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
}

export interface ConstantData {
  value: Value;
  data: Float32Array | Float64Array | BigInt64Array | Uint8Array;
}

export const int = (v: number): AttrValue => ({ kind: 'int', v });
export const float = (v: number): AttrValue => ({ kind: 'float', v });
export const ints = (v: number[]): AttrValue => ({ kind: 'ints', v });
export const str = (v: string): AttrValue => ({ kind: 'string', v });

function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float64';
}

/** NumPy-style broadcasting of two static/symbolic shapes. Unequal symbolic dims are refused. */
export function broadcastShapes(a: Shape, b: Shape): Shape {
  const n = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < n; i++) {
    const da = i - (n - a.length) >= 0 ? a[i - (n - a.length)] : 1;
    const db = i - (n - b.length) >= 0 ? b[i - (n - b.length)] : 1;
    if (da === db) out.push(da);
    else if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else throw new Error(`cannot broadcast shapes [${a}] and [${b}]`);
  }
  return out;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: { value: Value; name: string }[] = [];
  readonly constants: ConstantData[] = [];
  /**
   * Composites with their own vector–Jacobian product (see `customGradient`), keyed by the node
   * that produces the composite's output.
   */
  readonly customVjps = new Map<Node, { inputs: Value[]; vjp: (dy: Value) => (Value | null)[] }>();
  private nextId = 0;
  private constCache = new Map<string, Value>();
  private usedNames = new Set<string>();

  /** dtype of the floating-point computation (float64 for finite-difference tests). */
  /**
   * `differentiated`: the graph will carry its own backward pass. Its forward intermediates then
   * feed the backward, so onnxruntime cannot fuse norms and GELU into single kernels anyway, and
   * small integer powers are better built as products (Pow runs several times slower than Mul);
   * graphs without gradients keep Pow, the form onnxruntime's fusions recognise. It is read as
   * nodes are built, so a part of a differentiated graph that no gradient passes through (a second
   * forward pass feeding only outputs) can be built with it off, and fused.
   */
  constructor(
    readonly floatType: 'float32' | 'float64' = 'float32',
    readonly options: { differentiated?: boolean } = {},
  ) {}

  private newValue(dtype: DType, shape: Shape, producer?: Node, name?: string): Value {
    const v = new Value(this, this.nextId++, dtype, shape, producer);
    if (name !== undefined) this.claimName(v, name);
    return v;
  }

  private claimName(v: Value, name: string): void {
    if (this.usedNames.has(name)) throw new Error(`duplicate value name ${name}`);
    this.usedNames.add(name);
    v.name = name;
  }

  /**
   * A graph input. Inputs are identified by name: asking again for one that exists (same dtype and
   * rank) returns it, so two forward passes built into one graph share their weights and feeds.
   */
  input(name: string, shape: Shape, dtype: DType = this.floatType): Value {
    const existing = this.inputs.find((i) => i.name === name);
    if (existing) {
      if (existing.dtype !== dtype || existing.rank !== shape.length) throw new Error(`input ${name} declared twice with different types`);
      return existing;
    }
    const v = this.newValue(dtype, shape, undefined, name);
    this.inputs.push(v);
    return v;
  }

  /**
   * Declare that `output` was computed from `inputs` by the nodes just built, and give the
   * gradients of those inputs from the output's gradient. Reverse-mode differentiation then uses
   * this rule instead of differentiating those nodes one by one (a norm or GELU written out in a
   * dozen elementwise operators has a VJP of a few), while other uses of the composite's inner
   * values are still differentiated as usual.
   */
  customGradient(output: Value, inputs: Value[], vjp: (dy: Value) => (Value | null)[]): Value {
    if (!output.producer) throw new Error('customGradient: the output must be computed by a node');
    this.customVjps.set(output.producer, { inputs, vjp });
    return output;
  }

  /** Mark a value as a graph output under `name` (an Identity keeps names independent of producers). */
  output(value: Value, name: string): Value {
    const out = this.node('Identity', [value], {}, [{ dtype: value.dtype, shape: value.shape }])[0];
    this.claimName(out, name);
    this.outputs.push({ value: out, name });
    return out;
  }

  hasOutput(name: string): boolean {
    return this.outputs.some((o) => o.name === name);
  }

  /** A constant tensor, stored as an initializer. Small scalars are deduplicated. */
  constant(data: number[] | Float32Array | Float64Array, shape: Shape, dtype: DType = this.floatType): Value {
    const n = shape.reduce<number>((p, d) => p * (d as number), 1);
    if (data.length !== n) throw new Error(`constant data has ${data.length} values, shape needs ${n}`);
    const key = n <= 16 ? `${dtype}|${shape.join(',')}|${Array.from(data).join(',')}` : undefined;
    if (key !== undefined && this.constCache.has(key)) return this.constCache.get(key)!;
    const v = this.newValue(dtype, shape);
    let arr: ConstantData['data'];
    switch (dtype) {
      case 'float32':
        arr = Float32Array.from(data);
        break;
      case 'float64':
        arr = Float64Array.from(data);
        break;
      case 'int64':
        arr = BigInt64Array.from(Array.from(data, (x) => BigInt(x)));
        break;
      case 'bool':
        arr = Uint8Array.from(data);
        break;
    }
    this.constants.push({ value: v, data: arr });
    if (key !== undefined) this.constCache.set(key, v);
    return v;
  }

  scalar(x: number, dtype: DType = this.floatType): Value {
    return this.constant([x], [], dtype);
  }

  ints(xs: number[]): Value {
    return this.constant(xs, [xs.length], 'int64');
  }

  /** Low-level node creation; prefer the typed helpers below. */
  node(op: string, inputs: Value[], attrs: Record<string, AttrValue>, outs: { dtype: DType; shape: Shape }[]): Value[] {
    for (const i of inputs) if (i.graph !== this) throw new Error(`${op}: input from another graph`);
    const node: Node = { op, inputs, outputs: [], attrs };
    node.outputs = outs.map((o) => this.newValue(o.dtype, o.shape, node));
    this.nodes.push(node);
    return node.outputs;
  }

  private unary(op: string, x: Value): Value {
    return this.node(op, [x], {}, [{ dtype: x.dtype, shape: x.shape }])[0];
  }

  private binary(op: string, a: Value, b: Value): Value {
    if (a.dtype !== b.dtype) throw new Error(`${op}: dtype mismatch ${a.dtype} vs ${b.dtype}`);
    return this.node(op, [a, b], {}, [{ dtype: a.dtype, shape: broadcastShapes(a.shape, b.shape) }])[0];
  }

  private lift(x: Value | number, like: Value): Value {
    return typeof x === 'number' ? this.scalar(x, like.dtype) : x;
  }

  add(a: Value, b: Value | number): Value {
    return this.binary('Add', a, this.lift(b, a));
  }
  sub(a: Value, b: Value | number): Value {
    return this.binary('Sub', a, this.lift(b, a));
  }
  mul(a: Value, b: Value | number): Value {
    return this.binary('Mul', a, this.lift(b, a));
  }
  div(a: Value, b: Value | number): Value {
    return this.binary('Div', a, this.lift(b, a));
  }
  /** x ** p for a constant exponent p (the only form whose VJP we need). */
  pow(x: Value, p: number): Value {
    if (this.options.differentiated && p === 2) return this.mul(x, x);
    if (this.options.differentiated && p === 3) return this.mul(this.mul(x, x), x);
    return this.node('Pow', [x, this.scalar(p, x.dtype)], {}, [{ dtype: x.dtype, shape: x.shape }])[0];
  }
  neg(x: Value): Value {
    return this.unary('Neg', x);
  }
  sqrt(x: Value): Value {
    return this.unary('Sqrt', x);
  }
  tanh(x: Value): Value {
    return this.unary('Tanh', x);
  }
  exp(x: Value): Value {
    return this.unary('Exp', x);
  }
  log(x: Value): Value {
    return this.unary('Log', x);
  }
  erf(x: Value): Value {
    return x.dtype === 'float64' ? this.erf64(x) : this.unary('Erf', x);
  }

  /**
   * erf in float64 from elementary ops, because onnxruntime's CPU Erf kernel is float32 only (and a
   * float32 round trip would cost float64 runs their 1e-9 agreement). |x| < 2: the Maclaurin series,
   * 30 terms in Horner form (error < 1e-16 there); |x| ≥ 2: 1 − erfc with erfc from its continued
   * fraction exp(−x²)/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …)))), 40 levels (error < 1e-15 at x = 2,
   * less beyond). Each branch sees a harmless value where the other is chosen, so neither produces a
   * NaN that Where's gradient would carry. Built from differentiable ops, so gradients follow.
   */
  private erf64(x: Value): Value {
    const big = this.or(this.greater(x, 2), this.greater(this.neg(x), 2));
    const positive = this.greater(x, 0);
    const zero = this.scalar(0, 'float64');
    // Series branch: x where |x| < 2, else 0.
    const xs = this.where(big, zero, x);
    const x2 = this.mul(xs, xs);
    const TERMS = 30;
    let fact = 1;
    const coef: number[] = [];
    for (let n = 0; n <= TERMS; n++) {
      if (n > 0) fact *= n;
      coef.push(((n % 2 === 0 ? 1 : -1) * 2) / Math.sqrt(Math.PI) / ((2 * n + 1) * fact));
    }
    let poly = this.scalar(coef[TERMS], 'float64');
    for (let n = TERMS - 1; n >= 0; n--) poly = this.add(this.mul(poly, x2), coef[n]);
    const series = this.mul(xs, poly);
    // Continued-fraction branch: |x| where |x| ≥ 2, else 2.
    const ax = this.where(positive, x, this.neg(x));
    const xc = this.where(big, ax, this.scalar(2, 'float64'));
    let t = xc;
    for (let k = 40; k >= 1; k--) t = this.add(xc, this.div(this.scalar(k / 2, 'float64'), t));
    const erfc = this.div(this.mul(this.exp(this.neg(this.mul(xc, xc))), 1 / Math.sqrt(Math.PI)), t);
    const tail = this.where(positive, this.sub(this.scalar(1, 'float64'), erfc), this.sub(erfc, 1));
    return this.where(big, tail, series);
  }
  relu(x: Value): Value {
    return this.unary('Relu', x);
  }
  sigmoid(x: Value): Value {
    return this.unary('Sigmoid', x);
  }
  identity(x: Value): Value {
    return this.unary('Identity', x);
  }

  greater(a: Value, b: Value | number): Value {
    const bb = this.lift(b, a);
    return this.node('Greater', [a, bb], {}, [{ dtype: 'bool', shape: broadcastShapes(a.shape, bb.shape) }])[0];
  }

  or(a: Value, b: Value): Value {
    if (a.dtype !== 'bool' || b.dtype !== 'bool') throw new Error('Or: operands must be bool');
    return this.node('Or', [a, b], {}, [{ dtype: 'bool', shape: broadcastShapes(a.shape, b.shape) }])[0];
  }

  cast(x: Value, to: DType): Value {
    const code = { float32: 1, float64: 11, int64: 7, bool: 9 }[to];
    return this.node('Cast', [x], { to: int(code) }, [{ dtype: to, shape: x.shape }])[0];
  }

  matmul(a: Value, b: Value): Value {
    if (a.rank < 2 || b.rank < 2) throw new Error('MatMul: operands must have rank >= 2');
    const ka = a.shape[a.rank - 1];
    const kb = b.shape[b.rank - 2];
    if (ka !== kb) throw new Error(`MatMul: inner dims differ: [${a.shape}] x [${b.shape}]`);
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.node('MatMul', [a, b], {}, [
      { dtype: a.dtype, shape: [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]] },
    ])[0];
  }

  /** General matrix product of 2-D operands with optional transposes (onnx Gemm, no C term). */
  gemm(a: Value, b: Value, transA = 0, transB = 0): Value {
    if (a.rank !== 2 || b.rank !== 2) throw new Error('Gemm: operands must be 2-D');
    const [m, ka] = transA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
    const [kb, n] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
    if (ka !== kb) throw new Error(`Gemm: inner dims differ: ${ka} vs ${kb}`);
    return this.node('Gemm', [a, b], { transA: int(transA), transB: int(transB) }, [{ dtype: a.dtype, shape: [m, n] }])[0];
  }

  /** a @ bᵀ without materialising the transpose (logits against an [vocab, d] embedding). */
  gemmTransB(a: Value, b: Value): Value {
    return this.gemm(a, b, 0, 1);
  }

  private reduce(op: string, x: Value, axes: number[], keepdims: boolean): Value {
    const ax = axes.map((a) => normAxis(a, x.rank));
    const shape: Shape = [];
    x.shape.forEach((d, i) => {
      if (!ax.includes(i)) shape.push(d);
      else if (keepdims) shape.push(1);
    });
    return this.node(op, [x, this.ints(ax)], { keepdims: int(keepdims ? 1 : 0) }, [{ dtype: x.dtype, shape }])[0];
  }
  reduceSum(x: Value, axes: number[], keepdims = true): Value {
    return this.reduce('ReduceSum', x, axes, keepdims);
  }
  reduceMean(x: Value, axes: number[], keepdims = true): Value {
    for (const a of axes) {
      if (typeof x.shape[normAxis(a, x.rank)] !== 'number') throw new Error('ReduceMean over a symbolic axis');
    }
    return this.reduce('ReduceMean', x, axes, keepdims);
  }

  logSoftmax(x: Value, axis = -1): Value {
    return this.node('LogSoftmax', [x], { axis: int(normAxis(axis, x.rank)) }, [{ dtype: x.dtype, shape: x.shape }])[0];
  }

  softmax(x: Value, axis = -1): Value {
    return this.node('Softmax', [x], { axis: int(normAxis(axis, x.rank)) }, [{ dtype: x.dtype, shape: x.shape }])[0];
  }

  transpose(x: Value, perm: number[]): Value {
    if (perm.length !== x.rank) throw new Error('Transpose: perm rank mismatch');
    return this.node('Transpose', [x], { perm: ints(perm) }, [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }])[0];
  }

  /**
   * Reshape to a shape given with ONNX conventions (0 copies the input dim, -1 is inferred), with
   * `result` the shape to record (symbolic dims allowed) since 0/-1 cannot be resolved statically.
   */
  reshape(x: Value, target: number[], result: Shape): Value {
    return this.node('Reshape', [x, this.ints(target)], {}, [{ dtype: x.dtype, shape: result }])[0];
  }

  /** Reshape to the runtime shape of `like` (used by VJPs to undo reshapes and broadcasts). */
  reshapeLike(x: Value, like: Value): Value {
    return this.node('Reshape', [x, this.shapeOf(like)], {}, [{ dtype: x.dtype, shape: like.shape }])[0];
  }

  /** Reshape to a runtime shape value (int64 [rank]); `result` records the static/symbolic shape. */
  reshapeTo(x: Value, shapeValue: Value, result: Shape): Value {
    return this.node('Reshape', [x, shapeValue], {}, [{ dtype: x.dtype, shape: result }])[0];
  }

  shapeOf(x: Value): Value {
    return this.node('Shape', [x], {}, [{ dtype: 'int64', shape: [x.rank] }])[0];
  }

  expand(x: Value, shapeValue: Value, result: Shape): Value {
    return this.node('Expand', [x, shapeValue], {}, [{ dtype: x.dtype, shape: result }])[0];
  }

  /** Broadcast x to the runtime shape of `like`. */
  expandLike(x: Value, like: Value): Value {
    return this.expand(x, this.shapeOf(like), like.shape);
  }

  unsqueeze(x: Value, axes: number[]): Value {
    const rank = x.rank + axes.length;
    const ax = axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q);
    const shape: Shape = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(ax.includes(i) ? 1 : x.shape[j++]);
    return this.node('Unsqueeze', [x, this.ints(ax)], {}, [{ dtype: x.dtype, shape }])[0];
  }

  squeeze(x: Value, axes: number[]): Value {
    const ax = axes.map((a) => normAxis(a, x.rank));
    for (const a of ax) if (x.shape[a] !== 1) throw new Error(`Squeeze: axis ${a} is not 1`);
    return this.node('Squeeze', [x, this.ints(ax)], {}, [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !ax.includes(i)) }])[0];
  }

  concat(xs: Value[], axis: number): Value {
    const a = normAxis(axis, xs[0].rank);
    const shape = [...xs[0].shape];
    let total: Dim = 0;
    for (const x of xs) {
      const d = x.shape[a];
      total = typeof total === 'number' && typeof d === 'number' ? total + d : `${total}+${d}`;
    }
    shape[a] = total;
    return this.node('Concat', xs, { axis: int(a) }, [{ dtype: xs[0].dtype, shape }])[0];
  }

  /** Split along a static axis into pieces of the given static sizes. */
  split(x: Value, axis: number, sizes: number[]): Value[] {
    const a = normAxis(axis, x.rank);
    if (typeof x.shape[a] === 'number' && sizes.reduce((p, q) => p + q, 0) !== x.shape[a]) {
      throw new Error(`Split: sizes ${sizes} do not add up to ${x.shape[a]}`);
    }
    return this.node(
      'Split',
      [x, this.ints(sizes)],
      { axis: int(a) },
      sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? s : d)) })),
    );
  }

  /** Slice with runtime bounds (int64 values); `result` records the output's shape. */
  slice(x: Value, starts: Value, ends: Value, axes: number[], result: Shape): Value {
    return this.node('Slice', [x, starts, ends, this.ints(axes)], {}, [{ dtype: x.dtype, shape: result }])[0];
  }

  /** Gather along axis 0 (embedding lookups, choosing rows). */
  gather(data: Value, indices: Value, axis = 0): Value {
    if (indices.dtype !== 'int64') throw new Error('Gather: indices must be int64');
    return this.node('Gather', [data, indices], { axis: int(axis) }, [
      { dtype: data.dtype, shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)] },
    ])[0];
  }

  /** out = copy of data with rows `indices` (int64 [..., 1]) incremented by updates. */
  scatterAddRows(data: Value, indices: Value, updates: Value): Value {
    return this.node('ScatterND', [data, indices, updates], { reduction: str('add') }, [{ dtype: data.dtype, shape: data.shape }])[0];
  }

  zerosLike(x: Value): Value {
    return this.constantOfShape(this.shapeOf(x), x.shape, x.dtype);
  }

  constantOfShape(shapeValue: Value, result: Shape, dtype: DType, fill = 0): Value {
    // ConstantOfShape's value attribute is a one-element tensor; we encode it at serialisation.
    return this.node('ConstantOfShape', [shapeValue], { value: { kind: 'float', v: fill } }, [{ dtype, shape: result }])[0];
  }

  where(cond: Value, a: Value, b: Value): Value {
    if (cond.dtype !== 'bool') throw new Error('Where: condition must be bool');
    const shape = broadcastShapes(cond.shape, broadcastShapes(a.shape, b.shape));
    return this.node('Where', [cond, a, b], {}, [{ dtype: a.dtype, shape }])[0];
  }

  /** Range with a runtime length; `dim` names that length symbolically (e.g. 'T'). */
  range(start: Value, limit: Value, delta: Value, dim: Dim): Value {
    return this.node('Range', [start, limit, delta], {}, [{ dtype: start.dtype, shape: [dim] }])[0];
  }

  isFloat(v: Value): boolean {
    return isFloat(v.dtype);
  }
}
