/**
 * Every architecture carve reads, checked from outside: random checkpoints in Hugging Face's own
 * layout (test/helpers/hf-random.ts) are written as model directories, loaded by carve, and run
 * through carve's one forward; logits, every TransformerLens hook, exact and attribution scores and
 * compressed models are compared with the naive float64 implementation written from the HF modeling
 * files (test/helpers/naive-hf.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import type { LoadedModel } from '../../src/model/types.ts';
import { scan } from '../../src/discover/scan.ts';
import { listComponents } from '../../src/discover/components.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { countParams } from '../../src/compress/count.ts';
import type { Task } from '../../src/task/types.ts';
import { randomHfModel, writeAndLoad, writeHfModelDir, type HfModel, type HfModelSpec } from '../helpers/hf-random.ts';
import { interpretHfConfig, naiveHfForward, type NaiveHfOptions } from '../helpers/naive-hf.ts';
import { randomTask } from '../helpers/random-task.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'carve-arch-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const VOCAB = 32;
/** Two rows of different lengths, so right-padding is exercised too. */
const ROWS = [
  [3, 17, 5, 29, 11, 3, 8, 21],
  [9, 1, 30, 4, 12],
];

interface Case {
  label: string;
  spec: HfModelSpec;
  write?: { dtype?: 'F32' | 'F16' | 'BF16'; shards?: number };
}

const base = (arch: HfModelSpec['arch'], extra: Partial<HfModelSpec> = {}): HfModelSpec => ({
  arch,
  nLayer: 2,
  nHead: 4,
  dModel: arch === 'gpt_neox' ? 32 : 16,
  vocab: VOCAB,
  seed: 11,
  ...extra,
});

const CASES: Case[] = [
  { label: 'gpt2 tied', spec: base('gpt2') },
  { label: 'gpt2 untied', spec: base('gpt2', { tied: false, seed: 12 }) },
  { label: 'llama GQA (2 query heads per key/value head), untied', spec: base('llama', { nKvHead: 2 }) },
  { label: 'llama attention_bias + mlp_bias, head_dim ≠ d/H, tied', spec: base('llama', { attentionBias: true, mlpBias: true, headDim: 6, tied: true, seed: 13 }) },
  {
    label: 'llama 3 rope scaling',
    spec: base('llama', { nKvHead: 1, ropeTheta: 500000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 4 }, seed: 14 }),
  },
  { label: 'mistral sliding window 3', spec: base('mistral', { nKvHead: 2, slidingWindow: 3, seed: 15 }) },
  { label: 'qwen2 q/k/v biases, window from layer 1', spec: base('qwen2', { nKvHead: 2, slidingWindow: 3, useSlidingWindow: true, maxWindowLayers: 1, seed: 16 }) },
  { label: 'gpt_neox parallel residual, partial rotary', spec: base('gpt_neox', { rotaryPct: 0.5, seed: 17 }) },
  { label: 'gpt_neox sequential residual, no attention bias', spec: base('gpt_neox', { parallelResidual: false, attentionBias: false, seed: 18 }) },
  { label: 'llama F16, sharded', spec: base('llama', { nKvHead: 2, dtype: 'F16', seed: 19 }), write: { shards: 3 } },
  { label: 'qwen2 BF16, sharded', spec: base('qwen2', { nKvHead: 2, dtype: 'BF16', seed: 20 }), write: { shards: 2 } },
  { label: 'gpt_neox F16', spec: base('gpt_neox', { dtype: 'F16', seed: 21 }) },
];

let dirCount = 0;
function load(m: HfModel, write: Case['write'] = {}): LoadedModel {
  return writeAndLoad(tmp, `m${dirCount++}`, m, write);
}

/** Max |a − b| over entries where the reference is finite, relative to max(1, max |ref|). */
function relDiff(got: ArrayLike<number>, ref: ArrayLike<number>, idx: Iterable<[number, number]>): number {
  let m = 0;
  let scale = 1;
  for (const [, j] of idx) if (Number.isFinite(ref[j])) scale = Math.max(scale, Math.abs(ref[j]));
  for (const [i, j] of idx) if (Number.isFinite(ref[j])) m = Math.max(m, Math.abs(got[i] - ref[j]));
  return m / scale;
}

/**
 * Index pairs (carve's flat index, naive's flat index) for row b of a hook. carve's hooks are
 * [B, T, ...] (attention scores and patterns [B, H, T, T]); the naive ones are one prompt's
 * [len, ...] ([H, len, len]). Only real tokens, and for patterns only the causal region, compare:
 * beyond it the two may use different masking constants.
 */
function hookPairs(name: string, carveDims: number[], naiveShape: number[], b: number, len: number): [number, number][] {
  const out: [number, number][] = [];
  const T = carveDims[1];
  if (name.endsWith('hook_attn_scores') || name.endsWith('hook_pattern')) {
    const [H, , Tc] = carveDims.slice(1);
    const Tp = carveDims[3];
    for (let h = 0; h < H; h++)
      for (let i = 0; i < len; i++)
        for (let j = 0; j <= i; j++) out.push([((b * H + h) * Tc + i) * Tp + j, (h * len + i) * len + j]);
    return out;
  }
  const inner = naiveShape.slice(1).reduce((p, d) => p * d, 1);
  // hook_pos_embed is the same for every row: carve keeps it [T, d], without the batch axis.
  if (carveDims.length === naiveShape.length) {
    for (let t = 0; t < len; t++) for (let e = 0; e < inner; e++) out.push([t * inner + e, t * inner + e]);
    return out;
  }
  for (let t = 0; t < len; t++) for (let e = 0; e < inner; e++) out.push([(b * T + t) * inner + e, t * inner + e]);
  return out;
}

for (const c of CASES) {
  test(`${c.label}: logits and every hook equal the naive HF float64 forward (≤1e-9 float64, ≤1e-4 float32)`, async () => {
    const m = randomHfModel(c.spec);
    const loaded = load(m, c.write);
    const refs = ROWS.map((r) => naiveHfForward(m, r));
    // hook_result (per-head output in d_model) is a TransformerLens option carve does not compute.
    const names = [...refs[0].hooks.keys()].filter((n) => !n.endsWith('attn.hook_result'));
    for (const dtype of ['float64', 'float32'] as const) {
      const tol = dtype === 'float64' ? 1e-9 : 1e-4;
      const model = new HookedModel(loaded, engine, dtype);
      const got = await model.run({ tokens: ROWS, logits: 'all', hooks: names });
      const T = got.seqLen;
      const V = VOCAB;
      ROWS.forEach((row, b) => {
        const pairs: [number, number][] = [];
        for (let t = 0; t < row.length; t++) for (let v = 0; v < V; v++) pairs.push([(b * T + t) * V + v, t * V + v]);
        const e = relDiff(got.logits!.data, refs[b].logits, pairs);
        assert.ok(e <= tol, `${c.label} ${dtype} row ${b} logits: ${e}`);
        for (const n of names) {
          const h = got.hooks.get(n);
          assert.ok(h, `${c.label}: carve has no hook ${n}`);
          const ref = refs[b].hooks.get(n)!;
          const he = relDiff(h.data, ref.data, hookPairs(n, h.dims, ref.shape, b, row.length));
          assert.ok(he <= tol, `${c.label} ${dtype} row ${b} ${n}: ${he}`);
        }
      });
    }
  });
}

test('a window wider than the prompt changes nothing, a narrow one does (Mistral and Qwen2)', async () => {
  for (const arch of ['mistral', 'qwen2'] as const) {
    const qwen = arch === 'qwen2' ? { useSlidingWindow: true, maxWindowLayers: 0 } : {};
    const windowed = randomHfModel(base(arch, { nKvHead: 2, slidingWindow: 2, ...qwen, seed: 30 }));
    const wide = randomHfModel(base(arch, { nKvHead: 2, slidingWindow: 64, ...qwen, seed: 30 }));
    const none = randomHfModel(base(arch, { nKvHead: 2, slidingWindow: null, seed: 30 }));
    const run = async (m: HfModel) => (await new HookedModel(load(m), engine, 'float64').run({ tokens: [ROWS[0]], logits: 'all' })).logits!.data;
    const [a, b, n] = [await run(windowed), await run(wide), await run(none)];
    let dWide = 0;
    let dNarrow = 0;
    for (let i = 0; i < n.length; i++) {
      dWide = Math.max(dWide, Math.abs(b[i] - n[i]));
      dNarrow = Math.max(dNarrow, Math.abs(a[i] - n[i]));
    }
    assert.ok(dWide < 1e-12, `${arch}: wide window differs by ${dWide}`);
    assert.ok(dNarrow > 1e-3, `${arch}: a window of 2 should change the logits (${dNarrow})`);
  }
});

// ---------------------------------------------------------------------------------------------
// Scores: carve's exact and attribution scans against one naive forward per component.

function taskOf(seed: number): Task {
  return randomTask(4, VOCAB, seed, [6, 8, 5, 7]);
}

/** The naive model's logit difference at each prompt's last token, with interventions from `iv(b)`. */
function naiveMetrics(m: HfModel, task: Task, iv: (b: number, len: number) => NaiveHfOptions = () => ({})): number[] {
  return task.pairs.map((p, b) => {
    const r = naiveHfForward(m, p.clean, iv(b, p.clean.length));
    const t = p.clean.length - 1;
    return r.logits[t * VOCAB + p.correct[0]] - r.logits[t * VOCAB + p.incorrect[0]];
  });
}

interface NaiveComp {
  name: string;
  layer: number;
  head: number | null;
}

/** Mean of a hook over every token of every clean prompt, per head (hook_z) or whole (hook_mlp_out). */
function naiveMeans(m: HfModel, task: Task) {
  const a = interpretHfConfig(m.config);
  const z = new Map<number, Float64Array>(); // layer → [H·dh]
  const mlp = new Map<number, Float64Array>(); // layer → [d]
  let n = 0;
  for (const p of task.pairs) {
    const r = naiveHfForward(m, p.clean);
    for (let l = 0; l < a.nLayer; l++) {
      const zs = r.hooks.get(`blocks.${l}.attn.hook_z`)!.data;
      const ms = r.hooks.get(`blocks.${l}.hook_mlp_out`)!.data;
      const za = z.get(l) ?? new Float64Array(a.nHead * a.dHead);
      const ma = mlp.get(l) ?? new Float64Array(a.d);
      for (let t = 0; t < p.clean.length; t++) {
        for (let j = 0; j < za.length; j++) za[j] += zs[t * za.length + j];
        for (let j = 0; j < a.d; j++) ma[j] += ms[t * a.d + j];
      }
      z.set(l, za);
      mlp.set(l, ma);
    }
    n += p.clean.length;
  }
  for (const v of [...z.values(), ...mlp.values()]) for (let j = 0; j < v.length; j++) v[j] /= n;
  return { z, mlp };
}

/** Interventions replacing the given components by `value(c)`, on a prompt of `len` tokens (every position). */
function replaceAll(m: HfModel, comps: NaiveComp[], value: (c: NaiveComp, t: number) => Float64Array, len: number): NaiveHfOptions {
  const a = interpretHfConfig(m.config);
  const z = new Map<number, Map<number, Float64Array>>();
  const mlpOut = new Map<number, Float64Array>();
  for (const c of comps) {
    const w = c.head === null ? a.d : a.dHead;
    const all = new Float64Array(len * w);
    for (let t = 0; t < len; t++) all.set(value(c, t), t * w);
    if (c.head === null) mlpOut.set(c.layer, all);
    else {
      const heads = z.get(c.layer) ?? new Map<number, Float64Array>();
      heads.set(c.head, all);
      z.set(c.layer, heads);
    }
  }
  return { z, mlpOut };
}

const SCORE_CASES: Case[] = [
  { label: 'llama GQA', spec: base('llama', { nKvHead: 2, seed: 40 }) },
  { label: 'qwen2', spec: base('qwen2', { nKvHead: 2, seed: 41 }) },
  { label: 'gpt_neox parallel', spec: base('gpt_neox', { seed: 42 }) },
];

for (const c of SCORE_CASES) {
  test(`${c.label}: exact and attribution scores (zero and mean) equal naive float64 patching`, async () => {
    const m = randomHfModel(c.spec);
    const a = interpretHfConfig(m.config);
    const loaded = load(m);
    const model = new HookedModel(loaded, engine, 'float64');
    const task = taskOf(7);
    const clean = naiveMetrics(m, task);
    const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
    const comps: NaiveComp[] = listComponents(loaded.config, 'all').map((x) => ({ name: x.name, layer: x.layer, head: x.head }));
    const means = naiveMeans(m, task);
    for (const ablation of ['zero', 'mean'] as const) {
      const repl = (cc: NaiveComp): Float64Array => {
        const w = cc.head === null ? a.d : a.dHead;
        if (ablation === 'zero') return new Float64Array(w);
        return cc.head === null ? means.mlp.get(cc.layer)! : means.z.get(cc.layer)!.slice(cc.head * a.dHead, (cc.head + 1) * a.dHead);
      };
      const exact = await scan(model, task, { ablation, method: 'exact', components: 'all', batchSize: 5 });
      const attr = await scan(model, task, { ablation, method: 'attribution', components: 'all', batchSize: 3 });
      assert.ok(Math.abs(exact.clean_metric - mean(clean)) < 1e-9);
      comps.forEach((cc, i) => {
        const ablated = naiveMetrics(m, task, (_b, len) => replaceAll(m, [cc], () => repl(cc), len));
        const ref = mean(ablated.map((v, k) => v - clean[k]));
        assert.equal(exact.components[i].name, cc.name);
        assert.ok(Math.abs(exact.components[i].score - ref) < 1e-8, `${c.label} ${ablation} exact ${cc.name}: ${exact.components[i].score} vs ${ref}`);
        // Attribution: the central difference of the metric along (replacement − clean activation).
        const eps = 1e-5;
        const along = (e: number) =>
          naiveMetrics(m, task, (b, len) => {
            const act = naiveHfForward(m, task.pairs[b].clean).hooks.get(cc.head === null ? `blocks.${cc.layer}.hook_mlp_out` : `blocks.${cc.layer}.attn.hook_z`)!.data;
            const r = repl(cc);
            return replaceAll(
              m,
              [cc],
              (_c, t) => {
                const w = r.length;
                const off = cc.head === null ? t * a.d : (t * a.nHead + cc.head) * a.dHead;
                return Float64Array.from(r, (rv, j) => act[off + j] + e * (rv - act[off + j]));
              },
              len,
            );
          });
        const plus = along(eps);
        const minus = along(-eps);
        const refAttr = mean(plus.map((v, k) => (v - minus[k]) / (2 * eps)));
        assert.ok(Math.abs(attr.components[i].score - refAttr) < 1e-6, `${c.label} ${ablation} attribution ${cc.name}: ${attr.components[i].score} vs ${refAttr}`);
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Compression: the carved model equals the original with the same components ablated.

const COMPRESS_CASES: { label: string; spec: HfModelSpec; removed: string[]; kvExpected?: number[] }[] = [
  // L0H0 and L0H1 share key/value head 0: it goes; L1H2 alone leaves both of layer 1's key/value heads.
  { label: 'llama GQA, no biases', spec: base('llama', { nKvHead: 2, nLayer: 3, seed: 50 }), removed: ['L0H0', 'L0H1', 'L1H2', 'L1MLP', 'L2H0', 'L2H1', 'L2H2', 'L2H3'], kvExpected: [1, 2, 0] },
  { label: 'llama with biases, tied', spec: base('llama', { attentionBias: true, mlpBias: true, tied: true, seed: 51 }), removed: ['L0H3', 'L0MLP', 'L1H1'] },
  { label: 'gpt_neox parallel', spec: base('gpt_neox', { nLayer: 3, seed: 52 }), removed: ['L0H1', 'L1H0', 'L1H1', 'L1H2', 'L1H3', 'L1MLP', 'L2MLP'] },
  { label: 'gpt_neox one head', spec: base('gpt_neox', { nLayer: 1, seed: 52 }), removed: ['L0H1'] },
  { label: 'gpt_neox one mlp', spec: base('gpt_neox', { nLayer: 1, seed: 52 }), removed: ['L0MLP'] },
  { label: 'gpt_neox sequential, no attention bias', spec: base('gpt_neox', { parallelResidual: false, attentionBias: false, seed: 53 }), removed: ['L0H0', 'L0MLP', 'L1H2'] },
];

for (const c of COMPRESS_CASES) {
  test(`compressed ${c.label} equals the original with the same components mean-ablated (≤1e-4), and survives save/load`, async () => {
    const m = randomHfModel(c.spec);
    const a = interpretHfConfig(m.config);
    const loaded = load(m);
    const task = taskOf(9);
    const model = new HookedModel(loaded, engine, 'float64');
    const repl = await computeReplacements(model, task, 'mean');
    const removed = new Set(c.removed);
    const keep = new Set(listComponents(loaded.config, 'all').map((x) => x.name).filter((n) => !removed.has(n)));
    const pruned = pruneModel(loaded, keep, repl, 'mean');
    // The naive original with the removed components replaced by carve's means (hook_z per head, MLP out).
    const comps: NaiveComp[] = listComponents(loaded.config, 'all').filter((x) => removed.has(x.name));
    const value = (cc: NaiveComp): Float64Array => {
      if (cc.head === null) return Float64Array.from(repl.mlp.get(cc.layer)!.data);
      return Float64Array.from(repl.z.get(cc.layer)!.data.subarray(cc.head * a.dHead, (cc.head + 1) * a.dHead));
    };
    const prompts = task.pairs.map((p) => p.clean);
    const dir = join(tmp, `pruned${dirCount++}`);
    saveModelDir(dir, pruned, 'F32');
    const reloaded = loadModelDir(dir);
    assert.deepEqual(reloaded.config.layers, pruned.config.layers);
    for (const which of [pruned, reloaded]) {
      const got = await new HookedModel(which, engine, 'float64').run({ tokens: prompts, logits: 'all' });
      const T = got.seqLen;
      prompts.forEach((p, b) => {
        const ref = naiveHfForward(m, p, replaceAll(m, comps, (cc) => value(cc), p.length));
        const pairs: [number, number][] = [];
        for (let t = 0; t < p.length; t++) for (let v = 0; v < VOCAB; v++) pairs.push([(b * T + t) * VOCAB + v, t * VOCAB + v]);
        const e = relDiff(got.logits!.data, ref.logits, pairs);
        assert.ok(e <= 1e-4, `${c.label} row ${b}: ${e}`);
      });
    }
    assert.ok(countParams(pruned).n_params < countParams(loaded).n_params, 'the carved model is smaller');
    if (c.kvExpected) {
      // k_proj keeps one [dh, d] block per key/value head still read by a kept query head.
      c.kvExpected.forEach((kv, l) => {
        const k = pruned.weights.get(`model.layers.${l}.self_attn.k_proj.weight`);
        if (!k) return assert.equal(kv, 0);
        assert.deepEqual(k.shape, [kv * a.dHead, a.d], `layer ${l} key/value heads`);
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Bad model directories: one `carve: error:` line naming the file and the field, exit code 2.

test('bad HF model directories: one carve: error: line naming the file and field, exit 2', () => {
  const m = randomHfModel(base('llama', { nKvHead: 2, seed: 60 }));
  const fresh = (name: string, shards = 1) => {
    const dir = join(tmp, name);
    writeHfModelDir(dir, m, { shards });
    return dir;
  };
  const carve = (dir: string) => spawnSync(process.execPath, ['bin/carve.js', 'run', '--model', dir, '--tokens', '1,2,3'], { encoding: 'utf8' });
  const expectError = (dir: string, ...patterns: RegExp[]) => {
    const r = carve(dir);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^carve: error: /);
    for (const p of patterns) assert.match(lines[0], p);
  };
  const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
    const path = join(dir, 'config.json');
    const c = JSON.parse(readFileSync(path, 'utf8'));
    edit(c);
    writeFileSync(path, JSON.stringify(c));
  };

  const unsupported = fresh('bad-type');
  editConfig(unsupported, (c) => (c.model_type = 'falcon'));
  expectError(unsupported, /config\.json/, /model_type/, /falcon/);

  const shape = fresh('bad-shape');
  editConfig(shape, (c) => (c.intermediate_size = 40));
  expectError(shape, /model\.safetensors/, /mlp\.gate_proj\.weight/, /expected \[40, 16\]/);

  const kv = fresh('bad-kv');
  editConfig(kv, (c) => (c.num_key_value_heads = 3));
  expectError(kv, /config\.json/, /num_key_value_heads/);

  const missing = join(tmp, 'bad-missing');
  const fewer = randomHfModel(base('llama', { nKvHead: 2, seed: 60 }));
  fewer.tensors.delete('model.layers.1.self_attn.o_proj.weight');
  writeHfModelDir(missing, fewer);
  expectError(missing, /model\.safetensors/, /missing tensor 'model\.layers\.1\.self_attn\.o_proj\.weight'/);

  const noShard = fresh('bad-no-shard', 3);
  rmSync(join(noShard, 'model-00002-of-00003.safetensors'));
  expectError(noShard, /model-00002-of-00003\.safetensors/);

  const broken = fresh('bad-broken-shard', 3);
  const shard = join(broken, 'model-00003-of-00003.safetensors');
  writeFileSync(shard, readFileSync(shard).subarray(0, 40));
  expectError(broken, /model-00003-of-00003\.safetensors/);

  const index = fresh('bad-index', 2);
  writeFileSync(join(index, 'model.safetensors.index.json'), '{"weight_map": ');
  expectError(index, /model\.safetensors\.index\.json/);
});
