import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, decaysByDefault, lrAt } from '../../src/train/adamw.ts';
import { initModel, Prng } from '../../src/train/init.ts';
import { tensorTable } from '../../src/model/arch/index.ts';
import { isCarveError } from '../../src/util/errors.ts';

const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('AdamW: two steps on a 3-element vector match the update worked by hand', () => {
  const x = Float32Array.from([1, -2, 0.5]);
  const opt = new AdamW([{ name: 'L0.wQKV', data: x, decay: true }], { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clip: 0 });
  const lr = 0.1;
  // Step 1: m = 0.1 g, v = 0.001 g², bias-corrected m̂ = g, v̂ = g², so the step is lr·g/(|g| + eps).
  const g1 = [0.1, -0.2, 0.3];
  opt.step([Float32Array.from(g1)], lr);
  const p1 = [1 * (1 - 0.001) - 0.1 * (0.1 / (0.1 + 1e-8)), -2 * (1 - 0.001) + 0.1 * (0.2 / (0.2 + 1e-8)), 0.5 * (1 - 0.001) - 0.1 * (0.3 / (0.3 + 1e-8))];
  p1.forEach((v, i) => close(x[i], v));
  close(x[0], 0.89900001);
  // Step 2 with g2: m = 0.9·m1 + 0.1·g2, v = 0.999·v1 + 0.001·g2², m̂ = m/(1 − 0.81), v̂ = v/(1 − 0.998001).
  const g2 = [0.5, 0.0, -0.3];
  opt.step([Float32Array.from(g2)], lr);
  g1.forEach((a, i) => {
    const b = g2[i];
    const m = 0.9 * 0.1 * a + 0.1 * b;
    const v = 0.999 * 0.001 * a * a + 0.001 * b * b;
    const mh = m / (1 - 0.9 ** 2);
    const vh = v / (1 - 0.999 ** 2);
    const expect = p1[i] * (1 - lr * 0.01) - (lr * mh) / (Math.sqrt(vh) + 1e-8);
    close(x[i], expect);
    close(opt.m[0][i], m);
    close(opt.v[0][i], v);
  });
  // Element 0 by hand: m = 0.059, v = 0.00026 (rounded), m̂ = 0.31052631..., v̂ = 0.13016...; x ≈ 0.89810 − 0.08610.
  close(x[0], 0.812, 1e-4);
  assert.equal(opt.t, 2);
});

test('AdamW: gradient-norm clipping scales every gradient by clip / (norm + 1e-6)', () => {
  const a = Float32Array.from([0, 0]);
  const b = Float32Array.from([0]);
  const opt = new AdamW(
    [
      { name: 'a', data: a, decay: false },
      { name: 'b', data: b, decay: false },
    ],
    { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clip: 1 },
  );
  const info = opt.step([Float32Array.from([3, 0]), Float32Array.from([4])], 1e-3);
  close(info.gradNorm, 5);
  close(info.clipScale, 1 / (5 + 1e-6));
  close(opt.m[0][0], 0.1 * 3 * info.clipScale);
  close(opt.m[1][0], 0.1 * 4 * info.clipScale);
  const noClip = opt.step([Float32Array.from([0.3, 0]), Float32Array.from([0.4])], 1e-3);
  assert.equal(noClip.clipScale, 1);
});

test('AdamW: weight decay only on matrices; biases, LayerNorm and embeddings are left alone by default', () => {
  for (const n of ['qkv.w', 'q.w', 'k.w', 'v.w', 'o.w', 'gate.w', 'up.w', 'down.w'] as const) assert.equal(decaysByDefault(n), true, n);
  for (const n of ['qkv.b', 'o.b', 'up.b', 'down.b', 'norm1.w', 'norm1.b', 'norm2.w', 'final_norm.w', 'final_norm.b', 'embed', 'pos_embed', 'unembed'] as const) {
    assert.equal(decaysByDefault(n), false, n);
  }
  assert.equal(decaysByDefault('embed', true), true);
  assert.equal(decaysByDefault('o.b', true), false);

  // With zero gradients, only decay moves a parameter: matrices shrink by (1 − lr·wd), the rest stay bit-identical.
  const model = initModel({ nLayer: 1, nHead: 2, dModel: 8, nCtx: 8, vocabSize: 11 }, 3);
  const roles = new Map(tensorTable(model.config).map((s) => [s.name, s.role]));
  const params = [...model.weights].map(([name, tensor]) => ({ name, data: tensor.data, decay: decaysByDefault(roles.get(name)!) }));
  // Give biases and gains non-trivial values so "unchanged" means something.
  params.forEach((p) => p.data.forEach((_, j) => (p.data[j] += 0.5 + j * 1e-3)));
  const before = params.map((p) => Float32Array.from(p.data));
  const opt = new AdamW(params, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, clip: 1 });
  opt.step(params.map((p) => new Float32Array(p.data.length)), 0.5);
  params.forEach((p, i) => {
    if (p.decay) p.data.forEach((v, j) => close(v, before[i][j] * (1 - 0.05)));
    else assert.deepEqual(p.data, before[i], p.name);
  });
  assert.ok(params.some((p) => p.decay) && params.some((p) => !p.decay));
});

test('lr schedule: linear warmup, then cosine (or linear) down to the floor, or constant', () => {
  const s = { lr: 1e-3, warmup: 10, steps: 110, schedule: 'cosine' as const, minLrRatio: 0.1 };
  close(lrAt(0, s), 1e-4);
  close(lrAt(9, s), 1e-3);
  close(lrAt(10, s), 1e-3);
  close(lrAt(60, s), 1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI * 0.5 * (100 / 99))), 1e-9);
  close(lrAt(109, s), 1e-4);
  close(lrAt(109, { ...s, schedule: 'linear' }), 1e-4);
  close(lrAt(59, { ...s, schedule: 'linear' }), 1e-4 + 0.9e-3 * (1 - 49 / 99));
  close(lrAt(100, { ...s, schedule: 'constant' }), 1e-3);
  close(lrAt(5, { ...s, warmup: 0 }), 1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos((Math.PI * 5) / 109)));
});

test('initModel: GPT-2 scheme, seeded and stable, attention-only layers, per-tensor streams', () => {
  const spec = { nLayer: 2, nHead: 4, dModel: 64, nCtx: 64, vocabSize: 2000, attnOnly: [false, true] };
  const a = initModel(spec, 7);
  const b = initModel(spec, 7);
  const c = initModel(spec, 8);
  const A = (n: string) => a.weights.get(n)!;
  assert.deepEqual(A('wte.weight').data, b.weights.get('wte.weight')!.data);
  assert.notDeepEqual(A('wte.weight').data, c.weights.get('wte.weight')!.data);
  const std = (t: Float32Array) => {
    let s = 0;
    let q = 0;
    for (const v of t) {
      s += v;
      q += v * v;
    }
    return Math.sqrt(q / t.length - (s / t.length) ** 2);
  };
  close(std(A('wte.weight').data), 0.02, 0.02);
  close(std(A('h.0.attn.c_attn.weight').data), 0.02, 0.05);
  close(std(A('h.0.attn.c_proj.weight').data), 0.02 / Math.sqrt(4), 0.05);
  close(std(A('h.0.mlp.c_proj.weight').data), 0.02 / Math.sqrt(4), 0.05);
  assert.ok(A('h.0.ln_1.weight').data.every((v) => v === 1));
  assert.ok(A('h.0.attn.c_attn.bias').data.every((v) => v === 0));
  // Layer 1 is attention-only: no MLP tensors, a zero MLP output bias; the layout says so.
  assert.equal(a.weights.has('h.1.mlp.c_fc.weight'), false);
  assert.equal(a.weights.has('h.1.ln_2.weight'), false);
  assert.ok(A('h.1.mlp.c_proj.bias').data.every((v) => v === 0));
  assert.deepEqual(a.config.layers.map((l) => l.mlp), [true, false]);
  assert.equal(a.config.pruned, true);
  assert.equal(a.weights.has('lm_head.weight'), false);
  // Streams are per tensor: dropping layer 1's MLP does not change layer 0's draws.
  const full = initModel({ ...spec, attnOnly: false }, 7);
  assert.deepEqual(full.weights.get('h.0.attn.c_attn.weight')!.data, A('h.0.attn.c_attn.weight').data);
  // Bit-stable across versions and machines: pinned values (a changed PRNG changes every trained model).
  const r = new Prng(7, 'x');
  assert.deepEqual([r.normal(), r.normal(), r.uniform()], [1.1517506925534613, 0.7655902677651486, 0.94480500944452]);
  const pinned = initModel({ nLayer: 1, nHead: 2, dModel: 8, nCtx: 8, vocabSize: 11 }, 0);
  assert.deepEqual(Array.from(pinned.weights.get('wte.weight')!.data.slice(0, 3)), [0.009275555610656738, -0.006519219372421503, 0.021511996164917946]);
  // Bad specs are user errors.
  assert.throws(() => initModel({ ...spec, dModel: 30 }, 1), isCarveError);
  assert.throws(() => initModel({ ...spec, attnOnly: [true], mlpOnly: false }, 1), isCarveError);
  assert.throws(() => initModel({ ...spec, attnOnly: true, mlpOnly: true }, 1), isCarveError);
  const noAttn = initModel({ ...spec, attnOnly: false, mlpOnly: [true, false] }, 1);
  assert.equal(noAttn.weights.has('h.0.attn.c_attn.weight'), false);
  assert.deepEqual(noAttn.config.layers[0].heads, []);
});
