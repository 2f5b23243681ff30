/**
 * The model blocks the Llama-family and GPT-NeoX architectures added, differentiated by carve's
 * autodiff and checked against central finite differences (float64): RMSNorm, rotary embedding,
 * SiLU, the gated MLP, exact-erf gelu (float64 erf built from elementary ops) and grouped-query
 * attention's key/value gather.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { Graph } from '../../src/onnx/graph.ts';
import { toOrt } from '../../src/onnx/session.ts';
import { activation, attend, rmsNorm, rotate } from '../../src/model/blocks.ts';
import { gradCheck } from '../helpers/gradcheck.ts';
import { erf } from '../helpers/naive-hf.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const TOL = 1e-6;

test('float64 erf equals the reference erf to 1e-14 across both branches, and is odd', async () => {
  const xs = Float64Array.from({ length: 241 }, (_, i) => -6 + i * 0.05);
  const g = new Graph('float64');
  const x = g.input('x', [xs.length]);
  g.output(g.erf(x), 'y');
  const y = (await engine.run(g, { x: toOrt({ data: xs, dims: [xs.length] }, 'float64') })).y.data as Float64Array;
  let worst = 0;
  xs.forEach((v, i) => (worst = Math.max(worst, Math.abs(y[i] - erf(v)))));
  assert.ok(worst < 1e-14, `max |erf − reference| ${worst}`);
  // Tabulated values (Abramowitz & Stegun table 7.1) at the branch switch and either side.
  const table: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1.9, 0.9927904292352575],
    [2, 0.9953222650189527],
    [2.1, 0.997020533343667],
    [3, 0.9999779095030014],
  ];
  const g2 = new Graph('float64');
  const x2 = g2.input('x', [table.length * 2]);
  g2.output(g2.erf(x2), 'y');
  const feed = Float64Array.from(table.flatMap(([v]) => [v, -v]));
  const y2 = (await engine.run(g2, { x: toOrt({ data: feed, dims: [feed.length] }, 'float64') })).y.data as Float64Array;
  table.forEach(([, want], i) => {
    assert.ok(Math.abs(y2[2 * i] - want) < 1e-15, `erf(${table[i][0]})`);
    assert.equal(y2[2 * i + 1], -y2[2 * i]);
  });
});

test('float64 erf and exact gelu: gradients pass finite differences on both sides of the branch switch', async () => {
  const init = (_i: number, n: number, r: () => number) => Float64Array.from({ length: n }, () => (r() - 0.5) * 7);
  const e = await gradCheck(engine, (g, [a]) => g.erf(a), [[24]], { init });
  assert.ok(e.maxRelError < TOL, `erf: ${e.maxRelError}`);
  const gelu = await gradCheck(engine, (g, [a]) => activation(g, a, 'gelu'), [[24]], { init });
  assert.ok(gelu.maxRelError < TOL, `gelu: ${gelu.maxRelError}`);
});

test('RMSNorm: value by hand and gradients (input and gain)', async () => {
  const r = await gradCheck(engine, (g, [x, w]) => rmsNorm(g, x, w, 1e-6), [[2, 3, 5], [5]]);
  assert.ok(r.maxRelError < TOL, `${r.maxRelError}`);
  const g = new Graph('float64');
  const x = g.input('x', [1, 3]);
  g.output(rmsNorm(g, x, g.constant([1, 2, 3], [3]), 0), 'y');
  const y = (await engine.run(g, { x: toOrt({ data: Float64Array.from([1, 2, 2]), dims: [1, 3] }, 'float64') })).y.data as Float64Array;
  const rms = Math.sqrt((1 + 4 + 4) / 3);
  assert.deepEqual(Array.from(y).map((v) => +v.toFixed(12)), [1 / rms, 4 / rms, 6 / rms].map((v) => +v.toFixed(12)));
});

test('SiLU and the gated MLP silu(x·Wg)·(x·Wu): gradients', async () => {
  const s = await gradCheck(engine, (g, [a]) => activation(g, a, 'silu'), [[10]]);
  assert.ok(s.maxRelError < TOL, `silu: ${s.maxRelError}`);
  const m = await gradCheck(engine, (g, [x, wg, wu]) => g.mul(activation(g, g.matmul(x, wg), 'silu'), g.matmul(x, wu)), [[2, 3, 4], [4, 6], [4, 6]]);
  assert.ok(m.maxRelError < TOL, `gated: ${m.maxRelError}`);
});

test('rotary (rotate_half on the first 2·half dims, full and partial): gradients wrt x, and a rotation keeps norms', async () => {
  for (const [dh, half] of [[4, 2], [6, 2]] as const) {
    const T = 3;
    const theta = Array.from({ length: T * half }, (_, i) => 0.3 * (i + 1));
    const cos = theta.map(Math.cos);
    const sin = theta.map(Math.sin);
    const r = await gradCheck(engine, (g, [x]) => rotate(g, x, g.constant(cos, [1, T, 1, half]), g.constant(sin, [1, T, 1, half]), half), [[2, T, 2, dh]]);
    assert.ok(r.maxRelError < TOL, `dh ${dh}: ${r.maxRelError}`);
    const g = new Graph('float64');
    const x = g.input('x', [1, T, 1, dh]);
    g.output(rotate(g, x, g.constant(cos, [1, T, 1, half]), g.constant(sin, [1, T, 1, half]), half), 'y');
    const xs = Float64Array.from({ length: T * dh }, (_, i) => Math.sin(i + 1));
    const y = (await engine.run(g, { x: toOrt({ data: xs, dims: [1, T, 1, dh] }, 'float64') })).y.data as Float64Array;
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        const a = xs[t * dh + i];
        const b = xs[t * dh + half + i];
        assert.ok(Math.abs(y[t * dh + i] ** 2 + y[t * dh + half + i] ** 2 - a * a - b * b) < 1e-12);
      }
      for (let i = 2 * half; i < dh; i++) assert.equal(y[t * dh + i], xs[t * dh + i], 'dims past 2·half pass through');
    }
  }
});

test('grouped-query attention (4 query heads on 2 key/value heads): gradients wrt q, k and v', async () => {
  const T = 3;
  const mask = Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? -1e9 : 0));
  const r = await gradCheck(engine, (g, [q, k, v]) => attend(g, q, k, v, [0, 0, 1, 1], g.constant(mask, [1, 1, T, T])).z, [[2, T, 4, 3], [2, T, 2, 3], [2, T, 2, 3]]);
  assert.ok(r.maxRelError < TOL, `${r.maxRelError}`);
});
