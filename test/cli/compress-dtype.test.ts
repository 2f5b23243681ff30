/**
 * `carve compress --dtype f32|f16|bf16` on the embedded toy-ioi (stored F16): the default keeps the
 * source's dtype without rounding anything, --dtype f32 is the former output byte for byte, an explicit
 * half dtype rounds every tensor (to nearest even) at write time, and a bad value is a user error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelDir, losslessDtypes, saveModelDir } from '../../src/model/load.ts';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, holdsExactly, openSafetensors, type WriteDtype } from '../../src/model/safetensors.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { Engine } from '../../src/onnx/session.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { loadTask } from '../../src/task/load.ts';
import { outputDtype } from '../../src/cli/compress.ts';
import { DEFAULT_BATCH_SIZE } from '../../src/cli/eval.ts';
import { carveHere, isUserError, ROOT } from '../helpers/cli.ts';

let dir = '';
const TOY = join(ROOT, 'models', 'toy-ioi');
// toy-ioi's circuit for 95% of its logit difference: the removed heads and MLPs (L0MLP, L2MLP among
// them) leave folded means in five bias vectors across the three layers.
const KEEP = ['L0H0', 'L0H2', 'L0H3', 'L1H0', 'L1H2', 'L1H3', 'L1MLP', 'L2H2'];
const N = ['--n', '10'];

const out = (name: string) => join(dir, name);
const weightsOf = (d: string) => join(d, 'model.safetensors');
const record = (d: string) => JSON.parse(readFileSync(join(d, 'carve-compress.json'), 'utf8'));

/** Tensor name → stored dtype, from the file's header. */
function headerDtypes(d: string): Map<string, string> {
  const st = openSafetensors(weightsOf(d));
  try {
    return new Map([...st.header].map(([n, info]) => [n, info.dtype]));
  } finally {
    st.close();
  }
}

async function compress(name: string, extra: string[]): Promise<string> {
  const r = await carveHere(['compress', '--keep', out('keep.json'), ...N, ...extra, '--out', out(name)], dir);
  assert.equal(r.code, 0, r.stderr);
  return out(name);
}

async function evalMetric(model: string): Promise<number> {
  const file = out(`eval-${process.hrtime.bigint()}.json`);
  const r = await carveHere(['eval', '--model', model, ...N, '--out', file], dir);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(readFileSync(file, 'utf8')).metric;
}

let f32 = '';
let dflt = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'carve-compress-dtype-'));
  writeFileSync(out('keep.json'), JSON.stringify(KEEP));
  f32 = await compress('f32', ['--dtype', 'f32']);
  dflt = await compress('default', []);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('the dtype written: --dtype wins, else the source\'s when carve writes it, else F32', () => {
  assert.equal(outputDtype(undefined, 'F16'), 'F16');
  assert.equal(outputDtype(undefined, 'BF16'), 'BF16');
  assert.equal(outputDtype(undefined, 'F64'), 'F32');
  assert.equal(outputDtype(undefined, undefined), 'F32');
  assert.equal(outputDtype('bf16', 'F16'), 'BF16');
  assert.equal(outputDtype('f32', 'F16'), 'F32');
});

test('holdsExactly: values the dtype represents, and the first one it would round', () => {
  assert.ok(holdsExactly(Float32Array.of(1, -0.5, 65504, 2 ** -24, 0, NaN, Infinity), 'F16'));
  assert.ok(!holdsExactly(Float32Array.of(1, 1 + 2 ** -11), 'F16'), 'a half ulp of 1');
  assert.ok(!holdsExactly(Float32Array.of(2 ** -26), 'F16'), 'below the smallest subnormal');
  assert.ok(!holdsExactly(Float32Array.of(65536), 'F16'), 'past the largest half');
  assert.ok(holdsExactly(Float32Array.of(1 + 2 ** -7, -(2 ** 127), NaN), 'BF16'));
  assert.ok(!holdsExactly(Float32Array.of(1 + 2 ** -8), 'BF16'));
  assert.ok(holdsExactly(Float32Array.of(Math.PI), 'F32'));
  // Every half value holds; for arbitrary float32 bit patterns the answer is the round trip's.
  assert.ok(holdsExactly(Float32Array.from({ length: 65536 }, (_, h) => f16BitsToF32(h)), 'F16'));
  const bits = new Uint32Array(20000);
  let s = 12345;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Half the patterns with the low 13 bits cleared, so many are representable.
    bits[i] = i % 2 ? s : s & ~0x1fff;
  }
  for (const x of new Float32Array(bits.buffer)) {
    const exact = Number.isNaN(x) || f16BitsToF32(f32ToF16Bits(x)) === x;
    assert.equal(holdsExactly(Float32Array.of(x), 'F16'), exact, `${x}`);
  }
});

test('the loader knows the stored dtype: the one holding most of the weights', () => {
  assert.equal(loadModelDir(TOY).storedDtype, 'F16');
  const toy = loadModelDir(TOY);
  // A BF16 file whose small vectors stay F32 is still a BF16 model.
  const mixed = new Map([...toy.weights].map(([n, t]) => [n, (t.shape.length === 1 ? 'F32' : 'BF16') as WriteDtype]));
  saveModelDir(out('mixed'), toy, mixed);
  assert.deepEqual(new Set(headerDtypes(out('mixed')).values()), new Set(['F32', 'BF16']));
  assert.equal(loadModelDir(out('mixed')).storedDtype, 'BF16');
  saveModelDir(out('all-f32'), toy, 'F32');
  assert.equal(loadModelDir(out('all-f32')).storedDtype, 'F32');
});

test('default on toy-ioi (F16): F16 weights, half the F32 file, and nothing rounded: the F32 output\'s values and metric exactly', async () => {
  const rec = record(dflt);
  assert.equal(rec.dtype, 'F16');
  const dtypes = headerDtypes(dflt);
  const kept32 = [...dtypes].filter(([, d]) => d !== 'F16').map(([n]) => n);
  assert.deepEqual([...kept32].sort(), [...rec.f32_tensors].sort(), 'the record lists the tensors left in F32');
  assert.ok(kept32.every((n) => dtypes.get(n) === 'F32'));
  // Only the bias vectors carve folded means into (every layer's attention output; the removed MLPs'
  // output biases); every matrix, and the kept L1MLP's own bias, is F16.
  assert.deepEqual([...kept32].sort(), ['h.0.attn.c_proj.bias', 'h.0.mlp.c_proj.bias', 'h.1.attn.c_proj.bias', 'h.2.attn.c_proj.bias', 'h.2.mlp.c_proj.bias']);

  const a = loadModelDir(dflt);
  const b = loadModelDir(f32);
  assert.equal(a.storedDtype, 'F16', 'a compressed F16 model compresses again to F16');
  for (const [n, t] of b.weights) {
    assert.deepEqual(a.weights.get(n)!.data, t.data, `${n}: the same values as the F32 output`);
    assert.equal(holdsExactly(t.data, 'F16'), dtypes.get(n) === 'F16', `${n} stays F32 exactly when F16 would round it`);
  }
  const ratio = statSync(weightsOf(dflt)).size / statSync(weightsOf(f32)).size;
  assert.ok(ratio > 0.49 && ratio < 0.51, `F16 / F32 file size ${ratio}`);
  // Smaller than the model it was carved from (which it was not when written as F32).
  assert.ok(statSync(weightsOf(dflt)).size < statSync(weightsOf(TOY)).size);
  assert.ok(statSync(weightsOf(f32)).size > statSync(weightsOf(TOY)).size);

  const [m16, m32] = [await evalMetric(dflt), await evalMetric(f32)];
  assert.equal(m16, m32);
  assert.ok(Math.abs(m16 - rec.metric) < 1e-4, `eval ${m16} vs recorded ${rec.metric} (SPEC: to 1e-4)`);
});

test('--dtype f32: F32 throughout, byte for byte the file compress wrote before --dtype existed, so the same metric', async () => {
  assert.equal(record(f32).dtype, 'F32');
  assert.equal(record(f32).f32_tensors, undefined);
  assert.deepEqual(new Set(headerDtypes(f32).values()), new Set(['F32']));
  // The former path: mean replacements over the clean prompts, pruned, saved as F32.
  const toy = loadModelDir(TOY);
  const task = loadTask({ task: 'ioi', n: 10, seed: 1 }, { nCtx: toy.config.nCtx });
  const repl = await computeReplacements(new HookedModel(toy, new Engine({ device: 'cpu', threads: 0 })), task, 'mean', 'clean', DEFAULT_BATCH_SIZE);
  saveModelDir(out('before'), pruneModel(toy, new Set(KEEP), repl, 'mean'), 'F32');
  assert.ok(readFileSync(weightsOf(f32)).equals(readFileSync(weightsOf(out('before')))), 'model.safetensors differs from the former F32 output');
  assert.equal(await evalMetric(f32), await evalMetric(out('before')));
});

test('--dtype f16 / bf16 round every tensor once, at write time, from the F32 values; the f16 metric stays within 1e-3 of the F32 one', async () => {
  const [h, bf] = [await compress('f16', ['--dtype', 'f16']), await compress('bf16', ['--dtype', 'bf16'])];
  assert.deepEqual(new Set(headerDtypes(h).values()), new Set(['F16']));
  assert.deepEqual(new Set(headerDtypes(bf).values()), new Set(['BF16']));
  assert.equal(record(h).f32_tensors, undefined);
  const ref = loadModelDir(f32);
  const half = loadModelDir(h);
  const brain = loadModelDir(bf);
  let rounded = 0;
  for (const [n, t] of ref.weights) {
    const want16 = t.data.map((x) => f16BitsToF32(f32ToF16Bits(x)));
    const wantBf = t.data.map((x) => bf16BitsToF32(f32ToBf16Bits(x)));
    assert.deepEqual(half.weights.get(n)!.data, want16, `${n} as F16`);
    assert.deepEqual(brain.weights.get(n)!.data, wantBf, `${n} as BF16`);
    if (!holdsExactly(t.data, 'F16')) rounded++;
  }
  assert.equal(rounded, 5, 'the five folded biases were rounded');
  // Tolerance: toy-ioi's kept weights are F16 already, so only the five folded bias vectors change, each
  // value by at most half an F16 ulp (2^-11 ≈ 4.9e-4 of itself). 1e-3 of the metric is twice that
  // relative error; measured here ~2e-6 of it (and up to ~1.5e-5 on other toy-ioi carvings).
  const [m16, m32] = [await evalMetric(h), await evalMetric(f32)];
  assert.ok(Math.abs(m16 - m32) <= 1e-3 * Math.abs(m32), `f16 ${m16} vs f32 ${m32}`);
});

test('a bad --dtype: one error line, exit 2, no output directory', async () => {
  for (const bad of ['f64', 'F16', 'half', '']) {
    const target = out(`bad-${bad || 'empty'}`);
    const r = await carveHere(['compress', '--keep', out('keep.json'), ...N, '--dtype', bad, '--out', target], dir);
    assert.ok(isUserError(r), `--dtype ${JSON.stringify(bad)}: ${JSON.stringify(r)}`);
    assert.match(r.stderr, /--dtype: expected one of f32, f16, bf16/);
    assert.ok(!existsSync(target), 'no output directory');
  }
});
