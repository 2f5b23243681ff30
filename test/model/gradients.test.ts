import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../../src/model/hooked.ts';
import { randomModel } from '../helpers/random-model.ts';
import { rng } from '../helpers/gradcheck.ts';
import { pairAnswers } from '../helpers/answers.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

test('metric gradient at hook_z, hook_mlp_out and hook_resid_pre of a whole GPT-2 matches finite differences (float64)', async () => {
  const m = randomModel({ nLayer: 3, nHead: 2, dModel: 16, vocabSize: 40, seed: 31 });
  const model = new HookedModel(m, engine, 'float64');
  const toks = [
    [3, 9, 12, 5, 7, 1],
    [8, 2, 2, 30],
    [11, 4, 39, 0, 17],
  ];
  const answers = pairAnswers([[4, 9], [2, 30], [17, 1]]);
  const B = toks.length;
  const rowWeights = [0.5, 1, 2];
  const hooks = ['blocks.0.attn.hook_z', 'blocks.1.attn.hook_z', 'blocks.2.hook_mlp_out', 'blocks.0.hook_mlp_out', 'blocks.1.hook_resid_pre', 'blocks.2.hook_resid_pre'];
  const base = await model.run({ tokens: toks, logits: 'answers', answers, hooks, gradients: hooks, rowWeights });
  const T = base.seqLen;
  const objective = (metric: Float64Array | Float32Array) => Array.from(metric).reduce((s, v, b) => s + v * rowWeights[b], 0);
  const r = rng(5);
  const h = 1e-6;
  for (const name of hooks) {
    const clean = base.hooks.get(name)!;
    const grad = base.grads.get(name)!;
    assert.deepEqual(grad.dims, clean.dims);
    const layer = Number(name.split('.')[1]);
    const evalAt = async (vals: Float64Array) => {
      if (name.endsWith('hook_resid_pre')) {
        const out = await model.run({ resid: { data: vals, dims: clean.dims }, startLayer: layer, lengths: toks.map((t) => t.length), logits: 'answers', answers });
        return objective(out.metric!);
      }
      const isZ = name.endsWith('hook_z');
      const k = m.config.nHead;
      const iv: Intervention = { keep: new Float64Array(isZ ? B * k : B), value: { shape: 'row', data: vals } };
      const out = await model.run({
        tokens: toks,
        logits: 'answers',
        answers,
        z: isZ ? new Map([[layer, iv]]) : undefined,
        mlp: isZ ? undefined : new Map([[layer, iv]]),
      });
      return objective(out.metric!);
    };
    let scale = 1e-3;
    for (const v of grad.data) scale = Math.max(scale, Math.abs(v));
    // Check elements at real (non-pad) positions, chosen at random, plus the largest gradient.
    const width = clean.data.length / (B * T);
    const picks: number[] = [];
    let argmax = 0;
    grad.data.forEach((v, i) => (Math.abs(v) > Math.abs(grad.data[argmax]) ? (argmax = i) : 0));
    picks.push(argmax);
    while (picks.length < 12) {
      const b = Math.floor(r() * B);
      const t = Math.floor(r() * toks[b].length);
      picks.push((b * T + t) * width + Math.floor(r() * width));
    }
    for (const i of picks) {
      const vals = Float64Array.from(clean.data);
      vals[i] += h;
      const fp = await evalAt(vals);
      vals[i] -= 2 * h;
      const fm = await evalAt(vals);
      const numeric = (fp - fm) / (2 * h);
      const rel = Math.abs(numeric - grad.data[i]) / scale;
      assert.ok(rel < 1e-6, `${name}[${i}]: analytic ${grad.data[i]} numeric ${numeric} (rel ${rel})`);
    }
    // Pad positions cannot influence the metric (causal attention, right padding).
    toks.forEach((row, b) => {
      for (let t = row.length; t < T; t++) for (let j = 0; j < width; j++) assert.equal(grad.data[(b * T + t) * width + j], 0);
    });
  }
});

test('training objective: weight gradients match finite differences (float64; gpt2 tied and untied, llama GQA, gpt_neox)', async () => {
  const { buildObjective } = await import('../../src/train/objective.ts');
  const { toOrt } = await import('../../src/onnx/session.ts');
  const { answerFeeds, rotaryFeeds } = await import('../../src/model/hooked.ts');
  const { randomHfModel, writeHfModelDir } = await import('../helpers/hf-random.ts');
  const { loadModelDir } = await import('../../src/model/load.ts');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'carve-grad-'));
  const hf = (spec: Parameters<typeof randomHfModel>[0]) => {
    const d = join(dir, spec.arch);
    writeHfModelDir(d, randomHfModel(spec));
    return loadModelDir(d);
  };
  const models = [
    randomModel({ nLayer: 2, nHead: 2, dModel: 8, vocabSize: 20, nCtx: 8, seed: 41, lmHead: false }),
    randomModel({ nLayer: 2, nHead: 2, dModel: 8, vocabSize: 20, nCtx: 8, seed: 41, lmHead: true }),
    // RMSNorm, rotary, SwiGLU and grouped-query attention (2 query heads per key/value head).
    hf({ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 8, vocab: 20, maxPos: 8, seed: 42, scale: 0.5 }),
    // Fused per-head QKV, partial rotary, parallel residual, exact-erf gelu (float64 erf).
    hf({ arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 8, vocab: 20, maxPos: 8, seed: 43, rotaryPct: 0.5, scale: 0.5 }),
  ];
  test.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const m of models) {
    const lmHead = !m.config.tied;
    const obj = buildObjective(m.config, 'float64', { ceWeight: 1, hingeWeight: 0.5, margin: 100 });
    const toks = [
      [3, 9, 12, 5],
      [8, 2, 2],
    ];
    const answers = [
      [4, 9],
      [2, 19],
    ];
    const B = 2;
    const T = 4;
    const V = 20;
    const named = [...m.weights].map(([name, tensor]) => ({ name, tensor }));
    const values = new Map(named.map((n) => [n.name, Float64Array.from(n.tensor.data)]));
    const feeds = () => {
      const f: Record<string, ReturnType<typeof toOrt>> = {};
      for (const n of named) f[n.name] = toOrt({ data: values.get(n.name)!, dims: n.tensor.shape }, 'float64');
      const tk = new BigInt64Array(B * T);
      toks.forEach((row, b) => row.forEach((t, j) => (tk[b * T + j] = BigInt(t))));
      f.tokens = toOrt({ data: tk, dims: [B, T] }, 'int64');
      f.flat_pos = toOrt({ data: BigInt64Array.from(toks.map((r, b) => BigInt(b * T + r.length - 1))), dims: [B] }, 'int64');
      f.metric_pos = toOrt({ data: BigInt64Array.from(toks.map((r) => BigInt(r.length - 1))), dims: [B] }, 'int64');
      const af = answerFeeds(answers.map(([c, i]) => ({ correct: [c], incorrect: [i] })), 'logit-diff');
      f.answer_ids = toOrt({ data: af.ids, dims: [B, af.A] }, 'int64');
      f.answer_weights = toOrt({ data: af.weights, dims: [B, af.A] }, 'float64');
      f.target_flat = toOrt({ data: BigInt64Array.from(answers.map((a, b) => BigInt(b * V + a[0]))), dims: [B] }, 'int64');
      f.row_scale = toOrt({ data: Float64Array.from([0.5, 0.5]), dims: [B] }, 'float64');
      if (m.config.positions.kind === 'rotary') Object.assign(f, rotaryFeeds(m.config, T, 'float64'));
      return f;
    };
    const base = await engine.run(obj.graph, feeds());
    const r = rng(3);
    const h = 1e-6;
    assert.ok(!lmHead === !obj.weightNames.some((n) => n === 'lm_head.weight' || n === 'embed_out.weight'), m.config.arch);
    for (const name of obj.weightNames) {
      const grad = base[`grad:${name}`].data as Float64Array;
      const v = values.get(name)!;
      assert.equal(grad.length, v.length, name);
      let scale = 1e-3;
      for (const x of grad) scale = Math.max(scale, Math.abs(x));
      let argmax = 0;
      grad.forEach((x, i) => (Math.abs(x) > Math.abs(grad[argmax]) ? (argmax = i) : 0));
      for (const i of [argmax, ...Array.from({ length: 4 }, () => Math.floor(r() * v.length))]) {
        const orig = v[i];
        v[i] = orig + h;
        const fp = (await engine.run(obj.graph, feeds())).loss.data[0] as number;
        v[i] = orig - h;
        const fm = (await engine.run(obj.graph, feeds())).loss.data[0] as number;
        v[i] = orig;
        const numeric = (fp - fm) / (2 * h);
        assert.ok(Math.abs(numeric - grad[i]) / scale < 1e-6, `${name}[${i}] analytic ${grad[i]} numeric ${numeric}`);
      }
    }
  }
});
