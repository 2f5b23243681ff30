import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../../src/model/hooked.ts';
import { randomModel, type RandomModelSpec } from '../helpers/random-model.ts';
import { naiveForward } from '../helpers/naive-gpt2.ts';
import { rng } from '../helpers/gradcheck.ts';
import { pairAnswers } from '../helpers/answers.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

function randomTokens(n: number, lengths: number[], vocab: number, seed: number): number[][] {
  const r = rng(seed);
  return lengths.slice(0, n).map((len) => Array.from({ length: len }, () => Math.floor(r() * vocab)));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const shapes: (RandomModelSpec & { label: string })[] = [
  { label: '2 layers, 2 heads, d 16', nLayer: 2, nHead: 2, dModel: 16, seed: 1 },
  { label: '3 layers, 4 heads, d 32', nLayer: 3, nHead: 4, dModel: 32, seed: 2 },
  { label: '2 layers, 4 heads, d 64, lm_head', nLayer: 2, nHead: 4, dModel: 64, seed: 3, lmHead: true },
  {
    label: 'pruned layout',
    nLayer: 3,
    nHead: 4,
    dModel: 32,
    seed: 4,
    layers: [
      { sourceLayer: 0, heads: [0, 3], mlp: false },
      { sourceLayer: 1, heads: [], mlp: true },
      { sourceLayer: 3, heads: [1], mlp: true },
    ],
  },
];

for (const spec of shapes) {
  for (const dtype of ['float32', 'float64'] as const) {
    test(`${spec.label} (${dtype}): logits and hooks match the naive float64 reference`, async () => {
      const m = randomModel(spec);
      const model = new HookedModel(m, engine, dtype);
      const toks = randomTokens(3, [7, 4, 9], m.config.vocabSize, spec.seed ?? 0);
      const ref = naiveForward(m.config, m.weights, toks);
      const hooks = m.config.layers.flatMap((l) => [`blocks.${l.sourceLayer}.hook_resid_pre`, `blocks.${l.sourceLayer}.hook_mlp_out`]);
      const zHooks = m.config.layers.filter((l) => l.heads.length > 0).map((l) => `blocks.${l.sourceLayer}.attn.hook_z`);
      const out = await model.run({ tokens: toks, logits: 'all', hooks: [...hooks, ...zHooks] });
      const V = m.config.vocabSize;
      const T = out.seqLen;
      assert.equal(T, 9);
      const tol = dtype === 'float64' ? 1e-9 : 1e-4;
      toks.forEach((row, b) => {
        row.forEach((_, t) => {
          const got = out.logits!.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
          assert.ok(maxAbsDiff(got, ref.logits[b][t]) < tol, `logits b${b} t${t} ${maxAbsDiff(got, ref.logits[b][t])}`);
          for (const h of [...hooks, ...zHooks]) {
            const hv = out.hooks.get(h)!;
            const width = hv.data.length / (toks.length * T);
            const gotH = hv.data.subarray((b * T + t) * width, (b * T + t + 1) * width);
            assert.ok(maxAbsDiff(gotH, ref.hooks.get(h)![b][t]) < tol, `${h} b${b} t${t}`);
          }
        });
      });
    });
  }
}

test('interventions (zero, constant, per-row, per-row-different) match the naive reference', async () => {
  const m = randomModel({ nLayer: 3, nHead: 4, dModel: 32, seed: 11 });
  const toks = randomTokens(4, [6, 8, 5, 8], m.config.vocabSize, 5);
  const B = toks.length;
  const T = 8;
  const k = 4;
  const dh = 8;
  const d = 32;
  const r = rng(99);
  for (const dtype of ['float32', 'float64'] as const) {
    const model = new HookedModel(m, engine, dtype);
    // Layer 1: rows 0 and 2 replace heads 1 and 3 with a constant vector; row 1 replaces head 0; row 3 keeps all.
    const keepZ = new Float32Array(B * k).fill(1);
    keepZ[0 * k + 1] = 0;
    keepZ[0 * k + 3] = 0;
    keepZ[2 * k + 1] = 0;
    keepZ[2 * k + 3] = 0;
    keepZ[1 * k + 0] = 0;
    const constZ = Float32Array.from({ length: k * dh }, () => r() - 0.5);
    // Layer 2 MLP: per-row, per-position values on rows 1 and 3.
    const keepM = Float32Array.from([1, 0, 1, 0]);
    const rowM = Float32Array.from({ length: B * T * d }, () => r() - 0.5);
    // Layer 0 heads: zero ablation of head 2 on every row.
    const keep0 = new Float32Array(B * k).fill(1);
    for (let b = 0; b < B; b++) keep0[b * k + 2] = 0;
    const z = new Map<number, Intervention>([
      [1, { keep: keepZ, value: { shape: 'const', data: constZ } }],
      [0, { keep: keep0, value: { shape: 'const', data: new Float32Array(k * dh) } }],
    ]);
    const mlp = new Map<number, Intervention>([[2, { keep: keepM, value: { shape: 'row', data: rowM } }]]);
    const out = await model.run({ tokens: toks, logits: 'all', z, mlp });
    const ref = naiveForward(m.config, m.weights, toks, {
      z: new Map([
        [1, (b: number, _t: number, h: number) => (keepZ[b * k + h] === 0 ? Float64Array.from(constZ.subarray(h * dh, (h + 1) * dh)) : undefined)],
        [0, (_b: number, _t: number, h: number) => (h === 2 ? new Float64Array(dh) : undefined)],
      ]),
      mlp: new Map([[2, (b: number, t: number) => (keepM[b] === 0 ? Float64Array.from(rowM.subarray((b * T + t) * d, (b * T + t + 1) * d)) : undefined)]]),
    });
    const V = m.config.vocabSize;
    toks.forEach((row, b) =>
      row.forEach((_, t) => {
        const got = out.logits!.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
        assert.ok(maxAbsDiff(got, ref.logits[b][t]) < (dtype === 'float64' ? 1e-9 : 1e-4), `${dtype} b${b} t${t}`);
      }),
    );
  }
});

test('a run started from a cached residual stream equals the full run; pair and chosen-token logits equal full logits', async () => {
  const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, seed: 21 });
  const model = new HookedModel(m, engine, 'float64');
  const toks = randomTokens(3, [5, 7, 6], m.config.vocabSize, 9);
  const answers = pairAnswers([[1, 2], [3, 4], [5, 5]]);
  const full = await model.run({ tokens: toks, logits: 'all', hooks: ['blocks.2.hook_resid_pre'], answers });
  const pair = await model.run({ tokens: toks, logits: 'answers', answers });
  const resid = full.hooks.get('blocks.2.hook_resid_pre')!;
  const fromCache = await model.run({ resid, startLayer: 2, lengths: toks.map((t) => t.length), logits: 'answers', answers });
  // Logits of chosen tokens at chosen positions (not the last token).
  const positions = [2, 6, 0];
  const selectTokens = [
    [7, 1, 0],
    [2, 2, 9],
    [4, 3, 8],
  ];
  const chosen = await model.run({ tokens: toks, logits: 'answers', answers, positions, selectTokens });
  assert.deepEqual(chosen.selected!.dims, [3, 3]);
  const V = m.config.vocabSize;
  const T = full.seqLen;
  toks.forEach((row, b) => {
    const t = row.length - 1;
    const l = full.logits!.data;
    const expected = l[(b * T + t) * V + answers[b].correct[0]] - l[(b * T + t) * V + answers[b].incorrect[0]];
    assert.ok(Math.abs(pair.metric![b] - expected) < 1e-9);
    assert.ok(Math.abs(fromCache.metric![b] - expected) < 1e-9);
    selectTokens[b].forEach((tok, j) => {
      assert.ok(Math.abs(chosen.selected!.data[b * 3 + j] - l[(b * T + positions[b]) * V + tok]) < 1e-9, `selected b${b} k${j}`);
    });
  });
});
