/**
 * Tests of the test reference itself (test/helpers/naive-hf.ts) and of the random HF checkpoints
 * (test/helpers/hf-random.ts): each checks one Hugging Face semantic against an equivalent model
 * built differently, a hand computation, or the older GPT-2 reference, so a slip in the reference
 * shows up here rather than as a false failure (or a false pass) of carve's own tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors } from '../../src/model/safetensors.ts';
import type { ModelConfig, Weights } from '../../src/model/types.ts';
import { parseConfig } from '../../src/model/config.ts';
import { cloneHfModel, randomHfModel, roundToDtype, writeHfModelDir, type HfModel, type HfModelSpec, type HfTensor } from '../helpers/hf-random.ts';
import { applyRotary, erf, interpretHfConfig, naiveHfForward, ropeInverseFrequencies, type NaiveHfResult } from '../helpers/naive-hf.ts';
import { naiveForward } from '../helpers/naive-gpt2.ts';
import { randn, rng } from '../helpers/gradcheck.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-naive-hf-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const TOKENS = [3, 17, 5, 29, 11, 3, 8, 21];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue; // also equal infinities
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const m = maxDiff(a, b);
  assert.ok(m <= tol, `${what}: max |diff| ${m} > ${tol}`);
}

function differ(a: ArrayLike<number>, b: ArrayLike<number>, min: number, what: string): void {
  const m = maxDiff(a, b);
  assert.ok(m > min, `${what}: expected a difference > ${min}, got ${m}`);
}

const hook = (r: NaiveHfResult, name: string) => {
  const h = r.hooks.get(name);
  assert.ok(h, `hook ${name} missing`);
  return h;
};

const tensor = (m: HfModel, name: string) => {
  const t = m.tensors.get(name);
  assert.ok(t, `tensor ${name} missing`);
  return t;
};

const small = (arch: HfModelSpec['arch'], extra: Partial<HfModelSpec> = {}): HfModelSpec => ({
  arch,
  nLayer: 2,
  nHead: 4,
  dModel: arch === 'gpt_neox' ? 32 : 16,
  vocab: 32,
  seed: 7,
  ...extra,
});

// ---------------------------------------------------------------------------------------------

test('erf matches tabulated values on both sides of the series / continued-fraction switch', () => {
  const table: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [2.4, 0.9993114861033550],
    [2.6, 0.9997639655834707],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
  ];
  for (const [x, want] of table) {
    assert.ok(Math.abs(erf(x) - want) < 1e-14, `erf(${x}) = ${erf(x)}, want ${want}`);
    assert.equal(erf(-x), -erf(x));
  }
  assert.equal(erf(0), 0);
});

test('roundToDtype: IEEE nearest-even for F32, F16 (with subnormals) and BF16', () => {
  assert.equal(roundToDtype(1 / 3, 'F16'), 0.333251953125);
  assert.equal(roundToDtype(1 / 3, 'BF16'), 0.333984375);
  assert.equal(roundToDtype(1 + 2 ** -11, 'F16'), 1); // tie → even mantissa
  assert.equal(roundToDtype(1 + 3 * 2 ** -11, 'F16'), 1 + 2 ** -9);
  assert.equal(roundToDtype(1 + 2 ** -8, 'BF16'), 1);
  assert.equal(roundToDtype(1e-6, 'F16'), 17 * 2 ** -24); // subnormal half
  assert.equal(roundToDtype(-3.5e-8, 'F16'), -(2 ** -24)); // rounds up to the smallest subnormal
  assert.equal(roundToDtype(-2.5e-8, 'F16'), -0); // underflows to zero, keeping its sign
  const r = rng(3);
  for (const v of randn(200, r)) assert.equal(roundToDtype(v, 'F32'), Math.fround(v));
});

test('randomHfModel is deterministic per seed, uses HF tensor names, and every bias is non-zero', () => {
  const a = randomHfModel(small('llama', { attentionBias: true, mlpBias: true }));
  const b = randomHfModel(small('llama', { attentionBias: true, mlpBias: true }));
  const c = randomHfModel(small('llama', { attentionBias: true, mlpBias: true, seed: 8 }));
  assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
  for (const [name, t] of a.tensors) assert.deepEqual(t.data, tensor(b, name).data);
  differ(tensor(a, 'model.layers.0.self_attn.q_proj.weight').data, tensor(c, 'model.layers.0.self_attn.q_proj.weight').data, 0, 'seed');
  for (const name of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) assert.ok(a.tensors.has(`model.layers.1.self_attn.${name}.bias`), name);
  for (const name of ['gate_proj', 'up_proj', 'down_proj']) assert.ok(a.tensors.has(`model.layers.1.mlp.${name}.bias`), name);
  for (const [name, t] of a.tensors) if (name.endsWith('.bias')) assert.ok(t.data.every((v) => v !== 0), name);
  const gain = tensor(a, 'model.norm.weight').data;
  assert.ok(gain.every((g) => Math.abs(g - 1) < 0.5) && gain.some((g) => g !== 1));
  assert.equal(a.tensors.has('lm_head.weight'), true, 'Llama is untied by default');

  const qwen = randomHfModel(small('qwen2'));
  assert.ok(qwen.tensors.has('model.layers.0.self_attn.q_proj.bias'));
  assert.ok(!qwen.tensors.has('model.layers.0.self_attn.o_proj.bias'), 'Qwen2 o_proj has no bias');
  assert.ok(!qwen.tensors.has('model.layers.0.mlp.up_proj.bias'), 'Qwen2 MLP has no bias');
  const mistral = randomHfModel(small('mistral'));
  assert.ok([...mistral.tensors.keys()].every((n) => !n.endsWith('.bias')), 'Mistral has no biases');
  const neox = randomHfModel(small('gpt_neox'));
  assert.deepEqual(tensor(neox, 'gpt_neox.layers.0.attention.query_key_value.weight').shape, [96, 32]);
  assert.ok(neox.tensors.has('embed_out.weight'));
  const gpt2 = randomHfModel(small('gpt2'));
  assert.deepEqual(tensor(gpt2, 'transformer.h.0.attn.c_attn.weight').shape, [16, 48]);
  assert.ok(!gpt2.tensors.has('lm_head.weight'), 'GPT-2 is tied by default');
  assert.equal(gpt2.config.tie_word_embeddings, true);
});

test('every architecture records the TransformerLens hooks with the documented shapes', () => {
  const T = 6;
  for (const arch of ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox'] as const) {
    const spec = small(arch, arch === 'llama' ? { nKvHead: 2 } : {});
    const m = randomHfModel(spec);
    const r = naiveHfForward(m, TOKENS.slice(0, T));
    const d = spec.dModel;
    const H = 4;
    const K = arch === 'llama' ? 2 : 4;
    const dh = d / H;
    const dMlp = arch === 'gpt2' || arch === 'gpt_neox' ? 4 * d : 3 * d;
    const shapes: Record<string, number[]> = {
      hook_embed: [T, d],
      'blocks.1.hook_resid_pre': [T, d],
      'blocks.1.ln1.hook_normalized': [T, d],
      'blocks.1.attn.hook_q': [T, H, dh],
      'blocks.1.attn.hook_k': [T, K, dh],
      'blocks.1.attn.hook_v': [T, K, dh],
      'blocks.1.attn.hook_attn_scores': [H, T, T],
      'blocks.1.attn.hook_pattern': [H, T, T],
      'blocks.1.attn.hook_z': [T, H, dh],
      'blocks.1.attn.hook_result': [T, H, d],
      'blocks.1.hook_attn_out': [T, d],
      'blocks.1.ln2.hook_normalized': [T, d],
      'blocks.1.mlp.hook_pre': [T, dMlp],
      'blocks.1.mlp.hook_post': [T, dMlp],
      'blocks.1.hook_mlp_out': [T, d],
      'blocks.1.hook_resid_post': [T, d],
      'ln_final.hook_normalized': [T, d],
    };
    if (arch === 'gpt2') shapes.hook_pos_embed = [T, d];
    else Object.assign(shapes, { 'blocks.1.attn.hook_rot_q': [T, H, dh], 'blocks.1.attn.hook_rot_k': [T, K, dh] });
    if (arch !== 'gpt_neox') shapes['blocks.1.hook_resid_mid'] = [T, d];
    if (arch !== 'gpt2' && arch !== 'gpt_neox') shapes['blocks.1.mlp.hook_pre_linear'] = [T, dMlp];
    for (const [name, shape] of Object.entries(shapes)) assert.deepEqual(hook(r, name).shape, shape, `${arch} ${name}`);
    assert.equal(r.hooks.has('hook_pos_embed'), arch === 'gpt2', `${arch} hook_pos_embed`);
    assert.equal(r.hooks.has('blocks.0.hook_resid_mid'), arch !== 'gpt_neox', `${arch} resid_mid (parallel residual has none)`);
    assert.equal(r.logits.length, T * 32);
    // Causal softmax rows: sum to one, zero (and -Infinity scores) above the diagonal.
    const p = hook(r, 'blocks.0.attn.hook_pattern').data;
    const s = hook(r, 'blocks.0.attn.hook_attn_scores').data;
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        let sum = 0;
        for (let j = 0; j < T; j++) {
          sum += p[(h * T + i) * T + j];
          if (j > i) {
            assert.equal(p[(h * T + i) * T + j], 0);
            assert.equal(s[(h * T + i) * T + j], -Infinity);
          }
        }
        assert.ok(Math.abs(sum - 1) < 1e-12);
      }
    }
    // Each head's result summed over heads is the attention output minus the output bias.
    const res = hook(r, 'blocks.0.attn.hook_result').data;
    const out = hook(r, 'blocks.0.hook_attn_out').data;
    const biasName = { gpt2: 'transformer.h.0.attn.c_proj.bias', gpt_neox: 'gpt_neox.layers.0.attention.dense.bias' }[arch as string];
    const bias = biasName ? tensor(m, biasName).data : new Float64Array(d);
    const sumHeads = new Float64Array(T * d);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let o = 0; o < d; o++) sumHeads[t * d + o] += res[(t * H + h) * d + o];
    close(sumHeads, out.map((v, i) => v - bias[i % d]), 1e-12, `${arch} hook_result`);
  }
});

// ---------------------------------------------------------------------------------------------
// The GPT-2 path against the older GPT-2 reference (which takes carve's in-memory GPT-2 types).

/** The same model in the form naive-gpt2.ts reads: GPT-2's names without the `transformer.` prefix. */
function toGpt2Types(m: HfModel): { cfg: ModelConfig; w: Weights } {
  const w: Weights = new Map();
  for (const [name, x] of m.tensors) w.set(name.replace(/^transformer\./, ''), { data: Float32Array.from(x.data), shape: x.shape });
  return { cfg: parseConfig(m.config, 'random gpt2'), w };
}

test('the gpt2 arch agrees with test/helpers/naive-gpt2.ts, tied and untied', () => {
  for (const tied of [true, false]) {
    const m = randomHfModel(small('gpt2', { tied, nLayer: 3, dMlp: 24 }));
    const { cfg, w } = toGpt2Types(m);
    const old = naiveForward(cfg, w, [TOKENS]);
    const r = naiveHfForward(m, TOKENS);
    const V = 32;
    const T = TOKENS.length;
    for (let t = 0; t < T; t++) close(r.logits.subarray(t * V, (t + 1) * V), old.logits[0][t], 1e-12, `tied=${tied} logits t=${t}`);
    for (const name of ['blocks.2.attn.hook_z', 'blocks.1.hook_resid_mid', 'blocks.2.hook_mlp_out', 'blocks.2.hook_resid_post']) {
      const mine = hook(r, name).data;
      const theirs = old.hooks.get(name)![0];
      const width = mine.length / T;
      for (let t = 0; t < T; t++) close(mine.subarray(t * width, (t + 1) * width), theirs[t], 1e-12, `${name} t=${t}`);
    }
  }
});

test('gpt2 checkpoints named without the transformer. prefix (the hub gpt2 layout) read the same', () => {
  const m = randomHfModel(small('gpt2'));
  const bare = cloneHfModel(m);
  bare.tensors = new Map([...m.tensors].map(([n, t]) => [n.replace(/^transformer\./, ''), t]));
  assert.deepEqual(naiveHfForward(bare, TOKENS).logits, naiveHfForward(m, TOKENS).logits);
});

// ---------------------------------------------------------------------------------------------
// Attention: GQA, rotary, sliding windows

test('GQA with K kv heads equals MHA whose k/v heads are the kv heads repeated (query head h reads kv head h // (H/K))', () => {
  const spec = small('llama', { nHead: 4, nKvHead: 2, attentionBias: true });
  const gqa = randomHfModel(spec);
  const mha = cloneHfModel(gqa);
  const wrong = cloneHfModel(gqa);
  mha.config.num_key_value_heads = 4;
  wrong.config.num_key_value_heads = 4;
  const dh = 4;
  const d = 16;
  for (let l = 0; l < spec.nLayer; l++) {
    for (const proj of ['k_proj', 'v_proj']) {
      const w = tensor(gqa, `model.layers.${l}.self_attn.${proj}.weight`).data;
      const b = tensor(gqa, `model.layers.${l}.self_attn.${proj}.bias`).data;
      const build = (kvOf: (h: number) => number) => {
        const W = new Float64Array(4 * dh * d);
        const B = new Float64Array(4 * dh);
        for (let h = 0; h < 4; h++) {
          W.set(w.subarray(kvOf(h) * dh * d, (kvOf(h) + 1) * dh * d), h * dh * d);
          B.set(b.subarray(kvOf(h) * dh, (kvOf(h) + 1) * dh), h * dh);
        }
        const pair: [HfTensor, HfTensor] = [{ shape: [4 * dh, d], data: W }, { shape: [4 * dh], data: B }];
        return pair;
      };
      const [W, B] = build((h) => Math.floor(h / 2)); // HF repeat_kv: [kv0, kv0, kv1, kv1]
      mha.tensors.set(`model.layers.${l}.self_attn.${proj}.weight`, W);
      mha.tensors.set(`model.layers.${l}.self_attn.${proj}.bias`, B);
      const [W2, B2] = build((h) => h % 2); // the interleaving HF does NOT use
      wrong.tensors.set(`model.layers.${l}.self_attn.${proj}.weight`, W2);
      wrong.tensors.set(`model.layers.${l}.self_attn.${proj}.bias`, B2);
    }
  }
  const a = naiveHfForward(gqa, TOKENS);
  const b = naiveHfForward(mha, TOKENS);
  close(a.logits, b.logits, 1e-12, 'GQA vs repeated MHA');
  close(hook(a, 'blocks.1.attn.hook_z').data, hook(b, 'blocks.1.attn.hook_z').data, 1e-12, 'hook_z');
  differ(a.logits, naiveHfForward(wrong, TOKENS).logits, 1e-3, 'GQA vs interleaved kv heads');
});

test('rotary: identity at position 0, HF rotate_half pairing (i with i + half), scores depend on position difference only', () => {
  const m = randomHfModel(small('llama', { ropeTheta: 100 }));
  const r = naiveHfForward(m, TOKENS);
  const q = hook(r, 'blocks.0.attn.hook_q').data;
  const rq = hook(r, 'blocks.0.attn.hook_rot_q').data;
  const H = 4;
  const dh = 4;
  assert.deepEqual(rq.subarray(0, H * dh), q.subarray(0, H * dh), 'position 0 is not rotated');
  // Position 2, written out by hand from HF's apply_rotary_pos_emb: q·cos + rotate_half(q)·sin with
  // cos/sin = cat(freqs, freqs) and rotate_half(x) = cat(−x2, x1); theta 100, dim 4 → freqs 1, 0.1.
  const pos = 2;
  const f = [1, 0.1];
  for (let h = 0; h < H; h++) {
    const x = q.subarray((pos * H + h) * dh, (pos * H + h + 1) * dh);
    const want = [
      x[0] * Math.cos(pos * f[0]) - x[2] * Math.sin(pos * f[0]),
      x[1] * Math.cos(pos * f[1]) - x[3] * Math.sin(pos * f[1]),
      x[2] * Math.cos(pos * f[0]) + x[0] * Math.sin(pos * f[0]),
      x[3] * Math.cos(pos * f[1]) + x[1] * Math.sin(pos * f[1]),
    ];
    close(rq.subarray((pos * H + h) * dh, (pos * H + h + 1) * dh), want, 1e-15, `head ${h}`);
  }
  // q_m · k_n depends on m − n only.
  const inv = ropeInverseFrequencies(m.config);
  const [qa, ka] = [randn(4, rng(1)), randn(4, rng(2))];
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
  const base = dot(applyRotary(qa, 5, inv), applyRotary(ka, 2, inv));
  for (const shift of [1, 4, 11]) assert.ok(Math.abs(dot(applyRotary(qa, 5 + shift, inv), applyRotary(ka, 2 + shift, inv)) - base) < 1e-12);

  // In the model: layer 0 has no positional input besides rotary, so for a repeating prompt the
  // score of (i, j) is the same as that of (i + 2, j + 2).
  for (const arch of ['llama', 'gpt_neox'] as const) {
    const mm = randomHfModel(small(arch));
    const rep = [4, 9, 4, 9, 4, 9, 4];
    const T = rep.length;
    const s = hook(naiveHfForward(mm, rep), 'blocks.0.attn.hook_attn_scores').data;
    for (let h = 0; h < 4; h++) {
      for (let i = 0; i + 2 < T; i++) {
        for (let j = 0; j <= i; j++) assert.ok(Math.abs(s[(h * T + i) * T + j] - s[(h * T + i + 2) * T + j + 2]) < 1e-12, `${arch} h${h} (${i},${j})`);
      }
    }
  }
});

test('GPT-NeoX partial rotary: only the first int(head_size·rotary_pct) dims rotate, with frequencies from that width', () => {
  const m = randomHfModel(small('gpt_neox', { rotaryPct: 0.5, ropeTheta: 10000 })); // head 8, rotary 4
  const inv = ropeInverseFrequencies(m.config);
  assert.equal(inv.length, 2);
  assert.equal(inv[0], 1);
  assert.ok(Math.abs(inv[1] - 0.01) < 1e-18, `10000^(-2/4) = 0.01, got ${inv[1]}`); // not 10000^(-2/8) = 0.1
  const r = naiveHfForward(m, TOKENS);
  const q = hook(r, 'blocks.1.attn.hook_q').data;
  const rq = hook(r, 'blocks.1.attn.hook_rot_q').data;
  const k = hook(r, 'blocks.1.attn.hook_k').data;
  const rk = hook(r, 'blocks.1.attn.hook_rot_k').data;
  for (let t = 1; t < TOKENS.length; t++) {
    for (let h = 0; h < 4; h++) {
      const o = (t * 4 + h) * 8;
      assert.deepEqual(rq.subarray(o + 4, o + 8), q.subarray(o + 4, o + 8), 'pass-through dims of q');
      assert.deepEqual(rk.subarray(o + 4, o + 8), k.subarray(o + 4, o + 8), 'pass-through dims of k');
      assert.notDeepEqual(rq.subarray(o, o + 4), q.subarray(o, o + 4));
    }
  }
  // Pythia's own default is rotary_pct 0.25.
  const dflt = randomHfModel(small('gpt_neox'));
  assert.equal(dflt.config.rotary_pct, 0.25);
  assert.equal(ropeInverseFrequencies(dflt.config).length, 1);
});

test('Llama head_dim different from hidden / heads sets the projections and the rotary width', () => {
  const m = randomHfModel(small('llama', { headDim: 8, nKvHead: 2 }));
  assert.equal(m.config.head_dim, 8);
  assert.deepEqual(tensor(m, 'model.layers.0.self_attn.q_proj.weight').shape, [32, 16]);
  assert.deepEqual(tensor(m, 'model.layers.0.self_attn.k_proj.weight').shape, [16, 16]);
  assert.deepEqual(tensor(m, 'model.layers.0.self_attn.o_proj.weight').shape, [16, 32]);
  const inv = ropeInverseFrequencies(m.config);
  assert.equal(inv.length, 4);
  assert.ok(Math.abs(inv[1] - 10000 ** -0.25) < 1e-18);
  const r = naiveHfForward(m, TOKENS);
  assert.deepEqual(hook(r, 'blocks.0.attn.hook_z').shape, [8, 4, 8]);
  assert.ok(r.logits.every(Number.isFinite));
  // LlamaAttention.scaling = head_dim ** -0.5: the score of query head 3 (kv head 1) at (5, 2).
  const rq = hook(r, 'blocks.1.attn.hook_rot_q').data;
  const rk = hook(r, 'blocks.1.attn.hook_rot_k').data;
  let dot = 0;
  for (let e = 0; e < 8; e++) dot += rq[(5 * 4 + 3) * 8 + e] * rk[(2 * 2 + 1) * 8 + e];
  const T = TOKENS.length;
  assert.ok(Math.abs(hook(r, 'blocks.1.attn.hook_attn_scores').data[(3 * T + 5) * T + 2] - dot / Math.sqrt(8)) < 1e-13);
});

test('llama3 rope scaling: inverse frequencies by hand; factor 1 is the unscaled model; v5 rope_parameters read the same', () => {
  // theta 10000, head_dim 16: f_i = 10000^(-i/8), wavelength 2π/f_i ≈ 6.3, 19.9, 62.8, 198.7, ...
  // original_max 64, low 1, high 4 → keep below 16, divide above 64, blend 16..64 (i = 1, 2).
  const scaling = { rope_type: 'llama3' as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const spec = small('llama', { nHead: 1, ropeScaling: scaling }); // head_dim 16
  const m = randomHfModel(spec);
  const inv = ropeInverseFrequencies(m.config);
  const f = Array.from({ length: 8 }, (_, i) => 10000 ** (-i / 8));
  const blend = (fi: number) => {
    const s = (64 / ((2 * Math.PI) / fi) - 1) / 3;
    return ((1 - s) * fi) / 8 + s * fi;
  };
  const want = [f[0], blend(f[1]), blend(f[2]), f[3] / 8, f[4] / 8, f[5] / 8, f[6] / 8, f[7] / 8];
  close(inv, want, 1e-17, 'llama3 inverse frequencies');
  assert.ok(inv[1] < f[1] && inv[1] > f[1] / 8 && inv[2] < f[2] && inv[2] > f[2] / 8, 'blended ones lie between');

  const plain = randomHfModel({ ...spec, ropeScaling: undefined });
  const unit = randomHfModel({ ...spec, ropeScaling: { ...scaling, factor: 1 } });
  close(naiveHfForward(unit, TOKENS).logits, naiveHfForward(plain, TOKENS).logits, 1e-12, 'factor 1');
  differ(naiveHfForward(m, TOKENS).logits, naiveHfForward(plain, TOKENS).logits, 1e-4, 'factor 8 changes the model');

  const v5 = randomHfModel({ ...spec, configStyle: 'v5' });
  assert.deepEqual(v5.config.rope_parameters, { ...scaling, rope_theta: 10000 });
  assert.ok(!('rope_scaling' in v5.config) && !('rope_theta' in v5.config));
  assert.deepEqual(ropeInverseFrequencies(v5.config), inv);
  const neox = randomHfModel(small('gpt_neox', { rotaryPct: 0.5, ropeTheta: 500 }));
  const neoxV5 = randomHfModel(small('gpt_neox', { rotaryPct: 0.5, ropeTheta: 500, configStyle: 'v5' }));
  assert.deepEqual(neoxV5.config.rope_parameters, { rope_type: 'default', rope_theta: 500, partial_rotary_factor: 0.5 });
  assert.deepEqual(naiveHfForward(neoxV5, TOKENS).logits, naiveHfForward(neox, TOKENS).logits);
});

test('sliding window: Mistral masks i − j ≥ window in every layer; a window ≥ T equals none', () => {
  const m = randomHfModel(small('mistral', { slidingWindow: 3 }));
  const r = naiveHfForward(m, TOKENS);
  const T = TOKENS.length;
  for (const l of [0, 1]) {
    const p = hook(r, `blocks.${l}.attn.hook_pattern`).data;
    const s = hook(r, `blocks.${l}.attn.hook_attn_scores`).data;
    for (let h = 0; h < 4; h++) {
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          const visible = j <= i && i - j < 3;
          const at = (h * T + i) * T + j;
          assert.equal(p[at] > 0, visible, `L${l} h${h} (${i},${j})`);
          assert.equal(s[at] === -Infinity, !visible);
        }
      }
    }
  }
  const wide = naiveHfForward(randomHfModel(small('mistral', { slidingWindow: T })), TOKENS);
  const none = naiveHfForward(randomHfModel(small('mistral', { slidingWindow: null })), TOKENS);
  assert.equal(randomHfModel(small('mistral', { slidingWindow: null })).config.sliding_window, null);
  // MistralConfig's default when the key is absent is 4096 (too wide to see at T ≤ 8, so read the config).
  const noKey = { ...m.config };
  delete noKey.sliding_window;
  assert.deepEqual(interpretHfConfig(noKey).window, [4096, 4096]);
  assert.deepEqual(interpretHfConfig({ ...m.config, sliding_window: null }).window, [null, null]);
  close(wide.logits, none.logits, 0, 'window T');
  differ(r.logits, none.logits, 1e-4, 'window 3 changes the model');
});

test('sliding window: Qwen2 applies it from layer max_window_layers on, only with use_sliding_window, or per layer_types', () => {
  const T = TOKENS.length;
  const farVisible = (r: NaiveHfResult, l: number) => hook(r, `blocks.${l}.attn.hook_pattern`).data[(0 * T + (T - 1)) * T + 0] > 0;
  const on = randomHfModel(small('qwen2', { nLayer: 3, slidingWindow: 2, maxWindowLayers: 1 }));
  assert.equal(on.config.use_sliding_window, true);
  const r = naiveHfForward(on, TOKENS);
  assert.deepEqual([0, 1, 2].map((l) => farVisible(r, l)), [true, false, false]);

  // Qwen2 checkpoints carry a sliding_window even when use_sliding_window is false: it must be ignored.
  const off = randomHfModel(small('qwen2', { nLayer: 3, slidingWindow: 2, maxWindowLayers: 1, useSlidingWindow: false }));
  assert.equal(off.config.sliding_window, 2);
  const ro = naiveHfForward(off, TOKENS);
  assert.deepEqual([0, 1, 2].map((l) => farVisible(ro, l)), [true, true, true]);
  close(ro.logits, naiveHfForward(randomHfModel(small('qwen2', { nLayer: 3 })), TOKENS).logits, 0, 'no window');

  const typed = cloneHfModel(on);
  typed.config.layer_types = ['sliding_attention', 'full_attention', 'sliding_attention'];
  const rt = naiveHfForward(typed, TOKENS);
  assert.deepEqual([0, 1, 2].map((l) => farVisible(rt, l)), [false, true, false]);
});

// ---------------------------------------------------------------------------------------------
// Architecture details

test('Qwen2 is Llama plus q/k/v biases: with those biases zeroed it equals the bias-free Llama', () => {
  const qwen = randomHfModel(small('qwen2', { nKvHead: 2 }));
  const llama = randomHfModel(small('llama', { nKvHead: 2 }));
  assert.equal(qwen.config.rms_norm_eps, llama.config.rms_norm_eps);
  for (const name of llama.tensors.keys()) llama.tensors.set(name, tensor(qwen, name));
  const zeroed = cloneHfModel(qwen);
  for (const [name, t] of zeroed.tensors) if (name.endsWith('.bias')) t.data.fill(0);
  close(naiveHfForward(zeroed, TOKENS).logits, naiveHfForward(llama, TOKENS).logits, 1e-12, 'qwen2 without biases vs llama');
  differ(naiveHfForward(qwen, TOKENS).logits, naiveHfForward(llama, TOKENS).logits, 1e-4, 'the q/k/v biases matter');
});

test('a Llama layer by hand: RMSNorm gain, scaled GQA scores, softmax, z, SwiGLU (silu(gate)·up), final norm and logits', () => {
  const m = randomHfModel(small('llama', { nLayer: 1, nKvHead: 2, eps: 0.01, mlpBias: true }));
  const toks = TOKENS.slice(0, 5);
  const T = toks.length;
  const d = 16;
  const dh = 4;
  const r = naiveHfForward(m, toks);
  const W = (n: string) => tensor(m, `model.layers.0.${n}`).data;
  const rms = (x: ArrayLike<number>, g: Float64Array) => {
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[i] * x[i];
    return Array.from({ length: d }, (_, i) => (g[i] * x[i]) / Math.sqrt(ms / d + 0.01));
  };
  const emb = tensor(m, 'model.embed_tokens.weight').data;
  const x0 = toks.map((tok) => emb.subarray(tok * d, (tok + 1) * d));
  const ln1 = x0.map((x) => rms(x, W('input_layernorm.weight')));
  close(hook(r, 'blocks.0.ln1.hook_normalized').data, ln1.flat(), 1e-14, 'RMSNorm output = weight · x / rms');
  // Scores from the hook's rotated q/k, by hand: q_h · k_{h // 2} / √dh.
  const rq = hook(r, 'blocks.0.attn.hook_rot_q').data;
  const rk = hook(r, 'blocks.0.attn.hook_rot_k').data;
  const v = hook(r, 'blocks.0.attn.hook_v').data;
  const s = hook(r, 'blocks.0.attn.hook_attn_scores').data;
  const p = hook(r, 'blocks.0.attn.hook_pattern').data;
  const z = hook(r, 'blocks.0.attn.hook_z').data;
  for (let h = 0; h < 4; h++) {
    const kv = h >> 1;
    for (let i = 0; i < T; i++) {
      const row = Array.from({ length: i + 1 }, (_, j) => {
        let dot = 0;
        for (let e = 0; e < dh; e++) dot += rq[(i * 4 + h) * dh + e] * rk[(j * 2 + kv) * dh + e];
        return dot / 2;
      });
      const denom = row.reduce((acc, x) => acc + Math.exp(x), 0);
      for (let j = 0; j <= i; j++) {
        assert.ok(Math.abs(s[(h * T + i) * T + j] - row[j]) < 1e-13, `score h${h} (${i},${j})`);
        assert.ok(Math.abs(p[(h * T + i) * T + j] - Math.exp(row[j]) / denom) < 1e-13, `pattern h${h} (${i},${j})`);
      }
      for (let e = 0; e < dh; e++) {
        let want = 0;
        for (let j = 0; j <= i; j++) want += (Math.exp(row[j]) / denom) * v[(j * 2 + kv) * dh + e];
        assert.ok(Math.abs(z[(i * 4 + h) * dh + e] - want) < 1e-13, `z h${h} t${i} e${e}`);
      }
    }
  }
  // MLP on resid_mid, by hand.
  const mid = hook(r, 'blocks.0.hook_resid_mid').data;
  const lin = (Wm: Float64Array, bm: Float64Array, x: number[], nOut: number) =>
    Array.from({ length: nOut }, (_, o) => x.reduce((acc, xi, i) => acc + Wm[o * x.length + i] * xi, bm[o]));
  const silu = (x: number) => x / (1 + Math.exp(-x));
  const mlpOut: number[] = [];
  for (let t = 0; t < T; t++) {
    const x = rms(mid.subarray(t * d, (t + 1) * d), W('post_attention_layernorm.weight'));
    const gate = lin(W('mlp.gate_proj.weight'), W('mlp.gate_proj.bias'), x, 48);
    const up = lin(W('mlp.up_proj.weight'), W('mlp.up_proj.bias'), x, 48);
    mlpOut.push(...lin(W('mlp.down_proj.weight'), W('mlp.down_proj.bias'), gate.map((g, i) => silu(g) * up[i]), d));
  }
  close(hook(r, 'blocks.0.hook_mlp_out').data, mlpOut, 1e-13, 'SwiGLU MLP');
  // Final RMSNorm and the untied lm_head.
  const post = hook(r, 'blocks.0.hook_resid_post').data;
  const U = tensor(m, 'lm_head.weight').data;
  const logits: number[] = [];
  for (let t = 0; t < T; t++) {
    const x = rms(post.subarray(t * d, (t + 1) * d), tensor(m, 'model.norm.weight').data);
    for (let tok = 0; tok < 32; tok++) logits.push(x.reduce((acc, xi, i) => acc + xi * U[tok * d + i], 0));
  }
  close(r.logits, logits, 1e-13, 'logits');
});

test('Llama attention_bias adds the o_proj bias to the attention output; mlp_bias the down_proj bias to the MLP output', () => {
  const m = randomHfModel(small('llama', { attentionBias: true, mlpBias: true }));
  const noO = cloneHfModel(m);
  tensor(noO, 'model.layers.0.self_attn.o_proj.bias').data.fill(0);
  const noDown = cloneHfModel(m);
  tensor(noDown, 'model.layers.0.mlp.down_proj.bias').data.fill(0);
  const r = naiveHfForward(m, TOKENS);
  const bo = tensor(m, 'model.layers.0.self_attn.o_proj.bias').data;
  const bd = tensor(m, 'model.layers.0.mlp.down_proj.bias').data;
  const a0 = hook(naiveHfForward(noO, TOKENS), 'blocks.0.hook_attn_out').data;
  close(hook(r, 'blocks.0.hook_attn_out').data.map((v, i) => v - bo[i % 16]), a0, 1e-13, 'o_proj bias');
  const m0 = hook(naiveHfForward(noDown, TOKENS), 'blocks.0.hook_mlp_out').data;
  close(hook(r, 'blocks.0.hook_mlp_out').data.map((v, i) => v - bd[i % 16]), m0, 1e-13, 'down_proj bias');
  // And without the flags the tensors do not exist (HF builds those Linears with bias=False).
  const plain = randomHfModel(small('llama'));
  assert.ok(!plain.tensors.has('model.layers.0.self_attn.o_proj.bias') && !plain.tensors.has('model.layers.0.mlp.up_proj.bias'));
});

test('GPT-NeoX query_key_value rows are grouped per head [q_h, k_h, v_h]', () => {
  const m = randomHfModel(small('gpt_neox'));
  const r = naiveHfForward(m, TOKENS);
  const x = hook(r, 'blocks.0.ln1.hook_normalized').data;
  const W = tensor(m, 'gpt_neox.layers.0.attention.query_key_value.weight').data;
  const b = tensor(m, 'gpt_neox.layers.0.attention.query_key_value.bias').data;
  const d = 32;
  const dh = 8;
  const row = (rIdx: number, t: number) => {
    let s = b[rIdx];
    for (let i = 0; i < d; i++) s += W[rIdx * d + i] * x[t * d + i];
    return s;
  };
  for (const [name, offset] of [['hook_q', 0], ['hook_k', dh], ['hook_v', 2 * dh]] as const) {
    const got = hook(r, `blocks.0.attn.${name}`).data;
    for (let t = 0; t < TOKENS.length; t++) {
      for (let h = 0; h < 4; h++) {
        for (let e = 0; e < dh; e++) assert.ok(Math.abs(got[(t * 4 + h) * dh + e] - row(h * 3 * dh + offset + e, t)) < 1e-12, `${name} t${t} h${h} e${e}`);
      }
    }
  }
});

test('GPT-NeoX use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)), by hand; sequential otherwise', () => {
  const m = randomHfModel(small('gpt_neox'));
  const r = naiveHfForward(m, TOKENS);
  const T = TOKENS.length;
  const d = 32;
  const dMlp = 128;
  const p = 'gpt_neox.layers.1.';
  const g = tensor(m, p + 'post_attention_layernorm.weight').data;
  const bb = tensor(m, p + 'post_attention_layernorm.bias').data;
  const W1 = tensor(m, p + 'mlp.dense_h_to_4h.weight').data;
  const b1 = tensor(m, p + 'mlp.dense_h_to_4h.bias').data;
  const W2 = tensor(m, p + 'mlp.dense_4h_to_h.weight').data;
  const b2 = tensor(m, p + 'mlp.dense_4h_to_h.bias').data;
  const pre = hook(r, 'blocks.1.hook_resid_pre').data;
  const attn = hook(r, 'blocks.1.hook_attn_out').data;
  const post = hook(r, 'blocks.1.hook_resid_post').data;
  for (let t = 0; t < T; t++) {
    const x = pre.subarray(t * d, (t + 1) * d);
    const mu = x.reduce((s, v) => s + v, 0) / d;
    const sd = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / d + 1e-5);
    const ln = x.map((v, i) => ((v - mu) / sd) * g[i] + bb[i]);
    const h = new Float64Array(dMlp);
    for (let j = 0; j < dMlp; j++) {
      let s = b1[j];
      for (let i = 0; i < d; i++) s += W1[j * d + i] * ln[i];
      h[j] = 0.5 * s * (1 + erf(s / Math.SQRT2)); // hidden_act "gelu": exact
    }
    for (let o = 0; o < d; o++) {
      let s = b2[o];
      for (let j = 0; j < dMlp; j++) s += W2[o * dMlp + j] * h[j];
      assert.ok(Math.abs(hook(r, 'blocks.1.hook_mlp_out').data[t * d + o] - s) < 1e-12, `mlp_out t${t} o${o}`);
      assert.ok(Math.abs(post[t * d + o] - (x[o] + attn[t * d + o] + s)) < 1e-12, `resid_post t${t} o${o}`);
    }
  }
  const seq = randomHfModel(small('gpt_neox', { parallelResidual: false }));
  const rs = naiveHfForward(seq, TOKENS);
  const mid = hook(rs, 'blocks.1.hook_resid_mid').data;
  close(mid, hook(rs, 'blocks.1.hook_resid_pre').data.map((v, i) => v + hook(rs, 'blocks.1.hook_attn_out').data[i]), 1e-15, 'resid_mid');
  close(hook(rs, 'blocks.1.hook_resid_post').data, mid.map((v, i) => v + hook(rs, 'blocks.1.hook_mlp_out').data[i]), 1e-15, 'sequential post');
  differ(rs.logits, r.logits, 1e-4, 'parallel vs sequential');
  // attention_bias false (written explicitly): no query_key_value / dense biases, and still runs.
  const nb = randomHfModel(small('gpt_neox', { attentionBias: false }));
  assert.equal(nb.config.attention_bias, false);
  assert.ok(!nb.tensors.has('gpt_neox.layers.0.attention.dense.bias') && nb.tensors.has('gpt_neox.layers.0.mlp.dense_4h_to_h.bias'));
  assert.ok(naiveHfForward(nb, TOKENS).logits.every(Number.isFinite));
});

test('tied vs untied: a tied checkpoint has no unembedding tensor; untied with a copy of the embedding equals tied', () => {
  for (const [arch, unembed, embed] of [
    ['llama', 'lm_head.weight', 'model.embed_tokens.weight'],
    ['gpt_neox', 'embed_out.weight', 'gpt_neox.embed_in.weight'],
    ['gpt2', 'lm_head.weight', 'transformer.wte.weight'],
  ] as const) {
    const tied = randomHfModel(small(arch, { tied: true }));
    const untied = randomHfModel(small(arch, { tied: false }));
    assert.equal(tied.tensors.has(unembed), false, `${arch} tied`);
    assert.equal(untied.tensors.has(unembed), true, `${arch} untied`);
    assert.equal(tied.config.tie_word_embeddings, true);
    assert.equal(untied.config.tie_word_embeddings, false);
    differ(naiveHfForward(untied, TOKENS).logits, naiveHfForward(tied, TOKENS).logits, 1e-4, `${arch} own lm_head`);
    const copy = cloneHfModel(untied);
    copy.tensors.set(unembed, { ...tensor(untied, embed) });
    close(naiveHfForward(copy, TOKENS).logits, naiveHfForward(tied, TOKENS).logits, 0, `${arch} copy of the embedding`);
    // HF ties lm_head to the embedding when tie_word_embeddings is true, whatever the file holds.
    const stale = cloneHfModel(untied);
    stale.config.tie_word_embeddings = true;
    close(naiveHfForward(stale, TOKENS).logits, naiveHfForward(tied, TOKENS).logits, 0, `${arch} tied ignores a stored lm_head`);
  }
});

// ---------------------------------------------------------------------------------------------
// Interventions

test('interventions: clean hook_z / MLP outputs change nothing; zero hook_z equals zeroed output-projection columns', () => {
  const cases: [HfModelSpec, (m: HfModel, l: number, h: number) => void][] = [
    [
      small('llama', { attentionBias: true, nKvHead: 2 }),
      (m, l, h) => {
        const W = tensor(m, `model.layers.${l}.self_attn.o_proj.weight`).data; // [d, H·dh]
        for (let o = 0; o < 16; o++) for (let e = 0; e < 4; e++) W[o * 16 + h * 4 + e] = 0;
      },
    ],
    [
      small('gpt_neox'),
      (m, l, h) => {
        const W = tensor(m, `gpt_neox.layers.${l}.attention.dense.weight`).data; // [d, d]
        for (let o = 0; o < 32; o++) for (let e = 0; e < 8; e++) W[o * 32 + h * 8 + e] = 0;
      },
    ],
    [
      small('gpt2'),
      (m, l, h) => {
        const W = tensor(m, `transformer.h.${l}.attn.c_proj.weight`).data; // Conv1D [H·dh, d]
        for (let e = 0; e < 4; e++) for (let o = 0; o < 16; o++) W[(h * 4 + e) * 16 + o] = 0;
      },
    ],
  ];
  const T = TOKENS.length;
  for (const [spec, zeroColumns] of cases) {
    const m = randomHfModel(spec);
    const dh = spec.dModel / spec.nHead;
    const clean = naiveHfForward(m, TOKENS);
    const z0 = hook(clean, 'blocks.0.attn.hook_z').data;
    const headZ = (h: number) => {
      const out = new Float64Array(T * dh);
      for (let t = 0; t < T; t++) out.set(z0.subarray((t * 4 + h) * dh, (t * 4 + h + 1) * dh), t * dh);
      return out;
    };
    const same = naiveHfForward(m, TOKENS, {
      z: new Map([[0, new Map([0, 1, 2, 3].map((h) => [h, headZ(h)]))]]),
      mlpOut: new Map([[1, hook(clean, 'blocks.1.hook_mlp_out').data]]),
    });
    assert.deepEqual(same.logits, clean.logits, `${spec.arch} clean replacement`);

    const ablated = naiveHfForward(m, TOKENS, { z: new Map([[0, new Map([[2, new Float64Array(T * dh)]])]]) });
    const cut = cloneHfModel(m);
    zeroColumns(cut, 0, 2);
    close(ablated.logits, naiveHfForward(cut, TOKENS).logits, 1e-12, `${spec.arch} zero z vs zero columns`);
    differ(ablated.logits, clean.logits, 1e-4, `${spec.arch} ablation matters`);
    const zAfter = hook(ablated, 'blocks.0.attn.hook_z').data;
    for (let t = 0; t < T; t++) assert.ok(zAfter.subarray((t * 4 + 2) * dh, (t * 4 + 3) * dh).every((v) => v === 0), 'hook_z records the replacement');
  }
});

test('interventions: a zero MLP output equals zeroed down_proj weight and bias', () => {
  const m = randomHfModel(small('llama', { mlpBias: true }));
  const T = TOKENS.length;
  const ablated = naiveHfForward(m, TOKENS, { mlpOut: new Map([[0, new Float64Array(T * 16)]]) });
  const cut = cloneHfModel(m);
  tensor(cut, 'model.layers.0.mlp.down_proj.weight').data.fill(0);
  tensor(cut, 'model.layers.0.mlp.down_proj.bias').data.fill(0);
  close(ablated.logits, naiveHfForward(cut, TOKENS).logits, 1e-12, 'zero MLP');
  differ(ablated.logits, naiveHfForward(m, TOKENS).logits, 1e-4, 'MLP ablation matters');
  assert.throws(() => naiveHfForward(m, TOKENS, { mlpOut: new Map([[0, new Float64Array(3)]]) }), /expected 128/);
});

// ---------------------------------------------------------------------------------------------
// Writing model directories

test('writeHfModelDir: single file and HF shards (F32, F16, BF16) read back exactly as the in-memory tensors', () => {
  const cases: { spec: HfModelSpec; shards?: number; as?: 'F32' }[] = [
    { spec: small('llama', { attentionBias: true, nKvHead: 2 }) },
    { spec: small('gpt_neox', { dtype: 'F16' }), shards: 3 },
    { spec: small('qwen2', { dtype: 'BF16', tied: true }) },
    { spec: small('gpt2', { dtype: 'BF16' }), shards: 2 },
    { spec: small('mistral', { dtype: 'F16' }), as: 'F32' },
  ];
  cases.forEach(({ spec, shards, as }, k) => {
    const m = randomHfModel(spec);
    const dir = join(tmp, `dir${k}`);
    const files = writeHfModelDir(dir, m, { shards, dtype: as });
    const dtype = as ?? spec.dtype ?? 'F32';
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(config.model_type, spec.arch);
    assert.equal(config.torch_dtype, { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]);
    assert.deepEqual({ ...config, torch_dtype: undefined }, { ...m.config, torch_dtype: undefined });
    const where = new Map<string, string>();
    if (shards && shards > 1) {
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
      assert.deepEqual(Object.keys(index).sort(), ['metadata', 'weight_map']);
      const pad = (i: number) => String(i).padStart(5, '0');
      const shardFiles = Array.from({ length: shards }, (_, i) => `model-${pad(i + 1)}-of-${pad(shards)}.safetensors`);
      assert.deepEqual(files, ['config.json', ...shardFiles, 'model.safetensors.index.json']);
      assert.deepEqual(new Set(Object.values(index.weight_map)), new Set(shardFiles), 'every shard holds something');
      assert.deepEqual(Object.keys(index.weight_map).sort(), [...m.tensors.keys()].sort());
      let bytes = 0;
      for (const t of m.tensors.values()) bytes += t.data.length * (dtype === 'F32' ? 4 : 2);
      assert.equal(index.metadata.total_size, bytes);
      for (const [name, file] of Object.entries(index.weight_map)) where.set(name, file as string);
      assert.ok(!existsSync(join(dir, 'model.safetensors')));
    } else {
      assert.deepEqual(files, ['config.json', 'model.safetensors']);
      for (const name of m.tensors.keys()) where.set(name, 'model.safetensors');
    }
    const opened = new Map<string, ReturnType<typeof openSafetensors>>();
    for (const [name, t] of m.tensors) {
      const file = where.get(name)!;
      if (!opened.has(file)) opened.set(file, openSafetensors(join(dir, file)));
      const st = opened.get(file)!;
      assert.equal(st.metadata.format, 'pt');
      assert.equal(st.header.get(name)!.dtype, dtype, name);
      assert.deepEqual(st.header.get(name)!.shape, t.shape, name);
      assert.deepEqual(Float64Array.from(st.tensorF32(name)), t.data, `${name} round trip`);
    }
    assert.equal([...opened.values()].reduce((n, st) => n + st.header.size, 0), m.tensors.size, 'no extra tensors');
  });
  // An F32 model cannot be written as F16 without changing it: refuse rather than write a different model.
  assert.throws(() => writeHfModelDir(join(tmp, 'lossy'), randomHfModel(small('llama')), { dtype: 'F16' }), /not exact in F16/);
});
