import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { gradCheck } from '../helpers/gradcheck.ts';
import type { Graph, Value } from '../../src/onnx/graph.ts';
import { activation, layerNorm, rmsNorm } from '../../src/model/blocks.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const TOL = 1e-6;

const positive = (_i: number, n: number, r: () => number) => Float64Array.from({ length: n }, () => 0.5 + r());

const cases: { name: string; shapes: number[][]; build: (g: Graph, x: Value[]) => Value; init?: typeof positive }[] = [
  { name: 'Add (broadcast rows)', shapes: [[2, 3, 4], [4]], build: (g, [a, b]) => g.add(a, b) },
  { name: 'Add (broadcast middle)', shapes: [[2, 3, 4], [2, 1, 4]], build: (g, [a, b]) => g.add(a, b) },
  { name: 'Sub (broadcast)', shapes: [[3, 4], [3, 1]], build: (g, [a, b]) => g.sub(a, b) },
  { name: 'Mul (broadcast)', shapes: [[2, 3], [1, 3]], build: (g, [a, b]) => g.mul(a, b) },
  { name: 'Div', shapes: [[2, 3], [2, 3]], build: (g, [a, b]) => g.div(a, b), init: positive },
  { name: 'Pow 3', shapes: [[5]], build: (g, [a]) => g.pow(a, 3) },
  { name: 'Pow 2', shapes: [[5]], build: (g, [a]) => g.pow(a, 2) },
  { name: 'Pow 1', shapes: [[5]], build: (g, [a]) => g.pow(a, 1) },
  { name: 'layerNorm block (closed-form VJP, weights too)', shapes: [[2, 3, 5], [5], [5]], build: (g, [x, w, b]) => layerNorm(g, x, w, b, 1e-5) },
  { name: 'rmsNorm block (closed-form VJP)', shapes: [[2, 3, 5], [5]], build: (g, [x, w]) => rmsNorm(g, x, w, 1e-6) },
  { name: 'tanh GELU block (closed-form VJP)', shapes: [[2, 7]], build: (g, [x]) => activation(g, g.mul(x, 3), 'gelu_new') },
  {
    name: 'custom VJP whose inner value is also used outside it',
    shapes: [[6]],
    build: (g, [x]) => {
      const t = g.tanh(x);
      const y = g.customGradient(g.mul(t, 3), [x], (dy) => [g.mul(dy, g.mul(g.sub(g.scalar(1, x.dtype), g.mul(t, t)), 3))]);
      return g.add(y, g.mul(t, t));
    },
  },
  { name: 'Pow -0.5', shapes: [[5]], build: (g, [a]) => g.pow(a, -0.5), init: positive },
  { name: 'Neg', shapes: [[4]], build: (g, [a]) => g.neg(a) },
  { name: 'Sqrt', shapes: [[6]], build: (g, [a]) => g.sqrt(a), init: positive },
  { name: 'Tanh', shapes: [[6]], build: (g, [a]) => g.tanh(a) },
  { name: 'Exp', shapes: [[6]], build: (g, [a]) => g.exp(a) },
  { name: 'Log', shapes: [[6]], build: (g, [a]) => g.log(a), init: positive },
  { name: 'Sigmoid', shapes: [[6]], build: (g, [a]) => g.sigmoid(a) },
  { name: 'Relu', shapes: [[8]], build: (g, [a]) => g.relu(a) },
  { name: 'MatMul 2D', shapes: [[3, 4], [4, 2]], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul batched x weight', shapes: [[2, 3, 4], [4, 5]], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul batched x batched', shapes: [[2, 2, 3, 4], [2, 2, 4, 3]], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'MatMul broadcast batch', shapes: [[2, 3, 4], [1, 4, 2]], build: (g, [a, b]) => g.matmul(a, b) },
  { name: 'Gemm', shapes: [[3, 4], [4, 2]], build: (g, [a, b]) => g.gemm(a, b) },
  { name: 'Gemm transB', shapes: [[3, 4], [5, 4]], build: (g, [a, b]) => g.gemmTransB(a, b) },
  { name: 'Gemm transA', shapes: [[4, 3], [4, 2]], build: (g, [a, b]) => g.gemm(a, b, 1, 0) },
  { name: 'Gemm transA transB', shapes: [[4, 3], [2, 4]], build: (g, [a, b]) => g.gemm(a, b, 1, 1) },
  { name: 'Softmax last', shapes: [[2, 5]], build: (g, [a]) => g.softmax(a, -1) },
  { name: 'LogSoftmax', shapes: [[3, 5]], build: (g, [a]) => g.logSoftmax(a, -1) },
  { name: 'Softmax axis 1', shapes: [[2, 3, 2]], build: (g, [a]) => g.softmax(a, 1) },
  { name: 'ReduceSum keepdims', shapes: [[2, 3, 4]], build: (g, [a]) => g.reduceSum(a, [1], true) },
  { name: 'ReduceSum no keepdims', shapes: [[2, 3, 4]], build: (g, [a]) => g.reduceSum(a, [0, 2], false) },
  { name: 'ReduceMean', shapes: [[2, 3, 4]], build: (g, [a]) => g.reduceMean(a, [-1], true) },
  { name: 'Transpose', shapes: [[2, 3, 4]], build: (g, [a]) => g.transpose(a, [2, 0, 1]) },
  { name: 'Reshape', shapes: [[2, 6]], build: (g, [a]) => g.reshape(a, [3, -1], [3, 4]) },
  { name: 'Unsqueeze/Squeeze', shapes: [[2, 3]], build: (g, [a]) => g.mul(g.unsqueeze(a, [1]), g.squeeze(g.unsqueeze(a, [0]), [0])) },
  { name: 'Expand', shapes: [[1, 3]], build: (g, [a]) => g.expand(a, g.ints([4, 3]), [4, 3]) },
  { name: 'Split', shapes: [[2, 7]], build: (g, [a]) => { const [p, , r] = g.split(a, 1, [2, 3, 2]); return g.mul(p, r); } },
  { name: 'Concat', shapes: [[2, 2], [2, 3]], build: (g, [a, b]) => g.concat([a, g.tanh(b)], 1) },
  { name: 'Gather (repeated rows)', shapes: [[5, 3]], build: (g, [a]) => g.gather(a, g.constant([1, 3, 1, 0], [4], 'int64')) },
  { name: 'Where', shapes: [[2, 3], [3]], build: (g, [a, b]) => g.where(g.constant([1, 0, 1, 0, 0, 1], [2, 3], 'bool'), a, b) },
  { name: 'Identity', shapes: [[3]], build: (g, [a]) => g.identity(a) },
  {
    name: 'LayerNorm composite',
    shapes: [[2, 3, 5], [5], [5]],
    build: (g, [x, w, b]) => {
      const mu = g.reduceMean(x, [-1]);
      const xc = g.sub(x, mu);
      const v = g.reduceMean(g.pow(xc, 2), [-1]);
      return g.add(g.mul(g.div(xc, g.sqrt(g.add(v, 1e-5))), w), b);
    },
  },
  {
    name: 'shared input used twice (accumulation)',
    shapes: [[3, 3]],
    build: (g, [a]) => g.add(g.matmul(a, a), g.mul(a, a)),
  },
];

for (const c of cases) {
  test(`VJP ${c.name} matches central finite differences`, async () => {
    const r = await gradCheck(engine, c.build, c.shapes, { init: c.init });
    assert.ok(r.maxRelError < TOL, `max relative error ${r.maxRelError}`);
  });
}

test('gradient of an input the output does not use is zero', async () => {
  const r = await gradCheck(engine, (g, [a]) => g.tanh(a), [[3], [2]]);
  assert.deepEqual(Array.from(r.analytic[1]), [0, 0]);
});

test('VJP Erf matches central finite differences (float32: onnxruntime has no float64 Erf kernel)', async () => {
  // Inputs of order 1 and h = 1e-2: truncation error about h^2/6 times erf's third derivative
  // (~2e-5), float32 rounding about 1e-5.
  const r = await gradCheck(engine, (g, [a]) => g.erf(a), [[6]], { dtype: 'float32', h: 1e-2 });
  assert.ok(r.maxRelError < 1e-3, `max relative error ${r.maxRelError}`);
});

test('VJP Cast (float64 -> float32 -> float64) passes gradients through', async () => {
  // The round trip through float32 rounds values at ~1e-7 relative, so a wide step keeps that noise small.
  const r = await gradCheck(engine, (g, [a]) => g.mul(g.cast(g.cast(g.tanh(a), 'float32'), 'float64'), a), [[5]], { h: 1e-2 });
  assert.ok(r.maxRelError < 1e-3, `max relative error ${r.maxRelError}`);
});
