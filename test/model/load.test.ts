import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CarveError } from '../../src/util/errors.ts';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import { openSafetensors, writeSafetensors, f32ToF16Bits, f16BitsToF32 } from '../../src/model/safetensors.ts';
import type { ModelConfig, Tensor, Weights } from '../../src/model/types.ts';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-load-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const small = { nLayer: 2, nHead: 4, dModel: 16, nCtx: 12, vocabSize: 50, seed: 7 };

const bits = (t: Float32Array) => new Uint32Array(t.buffer, t.byteOffset, t.length);
function sameTensor(a: Tensor, b: Tensor, what: string) {
  assert.deepEqual(a.shape, b.shape, `${what} shape`);
  assert.deepEqual(bits(a.data), bits(b.data), `${what} data`);
}

function expectError(fn: () => unknown, ...patterns: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CarveError, `expected CarveError, got ${e}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** Rewrite a model file with some tensors dropped, renamed or replaced. */
function editTensors(dir: string, edit: (name: string, data: Float32Array, shape: number[]) => [string, Float32Array, number[]] | null) {
  const path = join(dir, 'model.safetensors');
  const f = openSafetensors(path);
  const out = [];
  for (const [name, info] of f.header) {
    const r = edit(name, f.tensorF32(name).slice(), info.shape);
    if (r) out.push({ name: r[0], dtype: 'F32' as const, shape: r[2], data: r[1] });
  }
  writeSafetensors(path, out);
}

test('a random GPT-2 loads, with and without the transformer. prefix, to the same weights', () => {
  const plain = loadModelDir(makeRandomGpt2(join(tmp, 'plain'), small));
  const pre = loadModelDir(makeRandomGpt2(join(tmp, 'pre'), { ...small, prefix: true, maskBuffers: true }), 'pre-model');
  assert.equal(plain.config.nLayer, 2);
  assert.equal(plain.config.dHead, 4);
  assert.equal(plain.name, join(tmp, 'plain'));
  assert.equal(pre.name, 'pre-model');
  assert.equal(plain.source, join(tmp, 'plain'));
  const f = openSafetensors(join(tmp, 'pre', 'model.safetensors'));
  assert.ok(f.has('transformer.h.0.attn.bias'));
  // Loaded weights carry the table's names (no prefix), whatever the file used.
  assert.deepEqual([...pre.weights.keys()], [...plain.weights.keys()]);
  for (const [name, t] of plain.weights) sameTensor(t, pre.weights.get(name)!, name);
  const W = (n: string) => plain.weights.get(n)!;
  assert.deepEqual(W('wte.weight').shape, [50, 16]);
  assert.deepEqual(W('h.1.attn.c_attn.weight').shape, [16, 48]);
  assert.deepEqual(W('h.1.mlp.c_fc.weight').shape, [16, 64]);
  assert.equal(plain.weights.has('lm_head.weight'), false);
  assert.equal(plain.config.tied, true);
  // Layer-norm gains sit near 1, weights near 0.
  const g = W('h.0.ln_1.weight').data;
  assert.ok(g.every((x) => x > 0.5 && x < 1.5));
  const w = W('wte.weight').data;
  const rms = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
  assert.ok(rms > 0.01 && rms < 0.04, `rms ${rms}`);
});

test('the helper is deterministic, fast at the real vocabulary, and writes F16/BF16 and lm_head', () => {
  const t0 = performance.now();
  const big = makeRandomGpt2(join(tmp, 'big'), { nLayer: 3, nHead: 4, dModel: 64, nCtx: 64, vocabSize: 50257, seed: 3 });
  const again = makeRandomGpt2(join(tmp, 'big2'), { nLayer: 3, nHead: 4, dModel: 64, nCtx: 64, vocabSize: 50257, seed: 3 });
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < 5000, `two 50257-vocab models took ${elapsed} ms`);
  assert.deepEqual(readFileSync(join(big, 'model.safetensors')), readFileSync(join(again, 'model.safetensors')));
  const m = loadModelDir(big);
  assert.equal(m.config.vocabSize, 50257);
  // Each tensor is its own float32 array, exactly its size: nothing else of the file stays in memory.
  for (const t of m.weights.values()) assert.equal(t.data.buffer.byteLength, 4 * t.data.length);

  const h = loadModelDir(makeRandomGpt2(join(tmp, 'half'), { ...small, dtype: 'F16', lmHead: true }));
  const b = loadModelDir(makeRandomGpt2(join(tmp, 'bf'), { ...small, dtype: 'BF16' }));
  const full = loadModelDir(join(tmp, 'plain'));
  assert.deepEqual(h.weights.get('lm_head.weight')!.shape, [50, 16]);
  assert.equal(h.config.tied, false);
  // Same seed: the F16 file holds the F32 weights rounded to half.
  const want = full.weights.get('wte.weight')!.data.map((x) => f16BitsToF32(f32ToF16Bits(x)));
  assert.deepEqual(bits(h.weights.get('wte.weight')!.data), bits(want));
  assert.ok(Math.abs(b.weights.get('wte.weight')!.data[5]! - full.weights.get('wte.weight')!.data[5]!) < 1e-3);
});

test('shape mismatches name the tensor, the expected and the found shape', () => {
  const dir = makeRandomGpt2(join(tmp, 'mis'), small);
  const cfgPath = join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));

  writeFileSync(cfgPath, JSON.stringify({ ...cfg, n_positions: 32, n_ctx: 32 }));
  expectError(() => loadModelDir(dir), /model\.safetensors/, /'wpe\.weight'/, /\[12, 16\]/, /expected \[32, 16\]/);

  writeFileSync(cfgPath, JSON.stringify({ ...cfg, n_inner: 48 }));
  expectError(() => loadModelDir(dir), /'h\.0\.mlp\.c_fc\.weight' has shape \[16, 64\], expected \[16, 48\]/);

  writeFileSync(cfgPath, JSON.stringify({ ...cfg, vocab_size: 51 }));
  expectError(() => loadModelDir(dir), /'wte\.weight' has shape \[50, 16\], expected \[51, 16\]/);

  // Fewer layers in the config than in the file.
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, n_layer: 1 }));
  expectError(() => loadModelDir(dir), /unexpected tensor 'h\.1\./);

  // More layers in the config than in the file.
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, n_layer: 3 }));
  expectError(() => loadModelDir(dir), /missing tensor 'h\.2\.ln_1\.weight'/);

  writeFileSync(cfgPath, '{"n_layer": 2,');
  expectError(() => loadModelDir(dir), /config\.json: not valid JSON/);

  writeFileSync(cfgPath, JSON.stringify(cfg));
  editTensors(dir, (n, d, s) => (n === 'h.1.attn.c_proj.weight' ? null : [n, d, s]));
  expectError(() => loadModelDir(dir), /missing tensor 'h\.1\.attn\.c_proj\.weight' \(expected shape \[16, 16\]/);

  const dir2 = makeRandomGpt2(join(tmp, 'mis2'), small);
  editTensors(dir2, (n, d, s) => (n === 'ln_f.bias' ? [n, d.subarray(0, 8), [8]] : [n, d, s]));
  expectError(() => loadModelDir(dir2), /'ln_f\.bias' has shape \[8\], expected \[16\]/);

  const dir3 = makeRandomGpt2(join(tmp, 'mis3'), small);
  editTensors(dir3, (n, d, s) => [n === 'wte.weight' ? 'transformer.wte.weight' : n, d, s]);
  assert.equal(loadModelDir(dir3).weights.get('wte.weight')!.shape[0], 50); // mixed prefixes are fine
  const f = openSafetensors(join(dir3, 'model.safetensors'));
  writeSafetensors(join(dir3, 'model.safetensors'), [
    ...[...f.header.keys()].map((n) => ({ name: n, dtype: 'F32' as const, shape: f.header.get(n)!.shape, data: f.tensorF32(n).slice() })),
    { name: 'wte.weight', dtype: 'F32', shape: [50, 16], data: new Float32Array(800) },
  ]);
  expectError(() => loadModelDir(dir3), /under several names \(wte\.weight, transformer\.wte\.weight\)/);

  expectError(() => loadModelDir(join(tmp, 'nope')), /no such model directory/);
  const empty = join(tmp, 'empty');
  makeRandomGpt2(empty, small);
  rmSync(join(empty, 'model.safetensors'));
  expectError(() => loadModelDir(empty), /no model\.safetensors or model\.safetensors\.index\.json/);
});

/** Keep heads `keep[l]` of each layer and drop MLPs where `mlp[l]` is false, as compress will (GPT-2 names). */
function prune(cfg: ModelConfig, w: Weights, keep: number[][], mlp: boolean[], layerIdx: number[]) {
  const dH = cfg.dHead;
  const d = cfg.dModel;
  const weights: Weights = new Map();
  const copy = (from: string, to = from) => weights.set(to, w.get(from)!);
  copy('wte.weight');
  copy('wpe.weight');
  const layout = layerIdx.map((src, j) => {
    const heads = keep[j]!;
    const k = heads.length;
    const S = (n: string) => w.get(`h.${src}.${n}`)!;
    const p = `h.${j}.`;
    if (k > 0) {
      const qkv = new Float32Array(d * 3 * k * dH);
      const bqkv = new Float32Array(3 * k * dH);
      const wo = new Float32Array(k * dH * d);
      for (let part = 0; part < 3; part++) {
        heads.forEach((h, hi) => {
          for (let c = 0; c < dH; c++) {
            const from = part * d + h * dH + c;
            const to = part * k * dH + hi * dH + c;
            for (let r = 0; r < d; r++) qkv[r * 3 * k * dH + to] = S('attn.c_attn.weight').data[r * 3 * d + from]!;
            bqkv[to] = S('attn.c_attn.bias').data[from]!;
          }
        });
      }
      heads.forEach((h, hi) => wo.set(S('attn.c_proj.weight').data.subarray(h * dH * d, (h + 1) * dH * d), hi * dH * d));
      copy(`h.${src}.ln_1.weight`, p + 'ln_1.weight');
      copy(`h.${src}.ln_1.bias`, p + 'ln_1.bias');
      weights.set(p + 'attn.c_attn.weight', { data: qkv, shape: [d, 3 * k * dH] });
      weights.set(p + 'attn.c_attn.bias', { data: bqkv, shape: [3 * k * dH] });
      weights.set(p + 'attn.c_proj.weight', { data: wo, shape: [k * dH, d] });
    }
    copy(`h.${src}.attn.c_proj.bias`, p + 'attn.c_proj.bias');
    if (mlp[j]) for (const n of ['ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight']) copy(`h.${src}.${n}`, p + n);
    copy(`h.${src}.mlp.c_proj.bias`, p + 'mlp.c_proj.bias');
    return { sourceLayer: src, heads, mlp: mlp[j]! };
  });
  for (const n of ['ln_f.weight', 'ln_f.bias', 'lm_head.weight']) if (w.has(n)) copy(n);
  const config: ModelConfig = { ...cfg, nLayer: layout.length, layers: layout, pruned: true };
  return { config, weights };
}

test('pruned layouts save and reload bit for bit, with only the tensors that exist', () => {
  const full = loadModelDir(makeRandomGpt2(join(tmp, 'src3'), { ...small, nLayer: 3, lmHead: true }));
  const pruned = prune(full.config, full.weights, [[0, 2], [], [3]], [false, true, false], [0, 1, 2]);
  const out = join(tmp, 'pruned');
  saveModelDir(out, pruned);
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors']);
  assert.ok(!readdirSync(tmp).some((n) => n.endsWith('.tmp') || n.endsWith('.old')));

  const cfgJson = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(cfgJson.n_layer, 3);
  assert.deepEqual(cfgJson.carve, {
    format: 1,
    layers: [
      { source_layer: 0, heads: [0, 2], mlp: false },
      { source_layer: 1, heads: [], mlp: true },
      { source_layer: 2, heads: [3], mlp: false },
    ],
  });
  const f = openSafetensors(join(out, 'model.safetensors'));
  assert.equal(f.metadata.format, 'pt');
  const names = new Set(f.header.keys());
  assert.ok(!names.has('h.1.ln_1.weight') && !names.has('h.1.attn.c_attn.weight') && !names.has('h.1.attn.c_proj.weight'));
  assert.ok(names.has('h.1.attn.c_proj.bias'));
  assert.ok(!names.has('h.0.ln_2.weight') && !names.has('h.0.mlp.c_fc.weight') && !names.has('h.0.mlp.c_proj.weight'));
  assert.ok(names.has('h.0.mlp.c_proj.bias') && names.has('h.2.mlp.c_proj.bias'));
  assert.deepEqual(f.header.get('h.0.attn.c_attn.weight')!.shape, [16, 24]);
  assert.deepEqual(f.header.get('h.2.attn.c_proj.weight')!.shape, [4, 16]);
  assert.ok(names.has('lm_head.weight'));

  const back = loadModelDir(out);
  assert.equal(back.config.pruned, true);
  assert.deepEqual(back.config.layers, pruned.config.layers);
  assert.deepEqual([...back.weights.keys()].sort(), [...pruned.weights.keys()].sort());
  for (const [name, t] of pruned.weights) sameTensor(t, back.weights.get(name)!, name);

  // Saving over an existing directory replaces it; a whole layer can go too.
  const fewer = prune(full.config, full.weights, [[1], [0, 1, 2, 3]], [true, false], [0, 2]);
  saveModelDir(out, fewer, 'F16');
  const back2 = loadModelDir(out);
  assert.deepEqual(back2.config.layers.map((l) => l.sourceLayer), [0, 2]);
  assert.equal(openSafetensors(join(out, 'model.safetensors')).header.get('wte.weight')!.dtype, 'F16');

  // The unpruned model round-trips with no carve section.
  const plainOut = join(tmp, 'resaved');
  saveModelDir(plainOut, full);
  assert.equal(JSON.parse(readFileSync(join(plainOut, 'config.json'), 'utf8')).carve, undefined);
  const again = loadModelDir(plainOut);
  assert.equal(again.config.pruned, false);
  sameTensor(again.weights.get('h.2.mlp.c_fc.weight')!, full.weights.get('h.2.mlp.c_fc.weight')!, 'c_fc');

  // Inconsistent weights are refused before anything is written.
  const broken = { config: pruned.config, weights: new Map([...pruned.weights].filter(([n]) => !n.startsWith('h.2.'))) };
  expectError(() => saveModelDir(join(tmp, 'broken'), broken), /tensor 'h\.2\.[a-z_.0-9]+' is missing/);
  const broken2 = { config: pruned.config, weights: new Map(pruned.weights) };
  broken2.weights.set('h.1.attn.c_proj.bias', { data: new Float32Array(3), shape: [3] });
  expectError(() => saveModelDir(join(tmp, 'broken'), broken2), /h\.1\.attn\.c_proj\.bias/);
  assert.ok(!existsSync(join(tmp, 'broken')));
});
