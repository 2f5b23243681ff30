import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import { trimModel } from '../../src/compress/trim-vocab.ts';
import { pruneNeurons } from '../../src/compress/neurons.ts';
import { ioiVocabulary } from '../../src/task/vocab.ts';
import { BOS_ID, encode } from '../../src/tokenizer/gpt2.ts';
import { onnxExportSize, exportOnnx } from '../../src/export/onnx.ts';
import { randomHfModel, writeHfModelDir } from '../helpers/hf-random.ts';
import { carveHere, isUserError, ROOT, type CliResult } from '../helpers/cli.ts';

let dir = '';
let trimmed = '';
let llama = '';
let carvedNeurons = '';
const PROMPT = 'When Mary and John went to the store, John gave a drink to';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'carve-export-'));
  // toy-ioi with the IOI vocabulary: a trimmed GPT-2 (learned positions, tied unembedding).
  const v = ioiVocabulary(encode, BOS_ID);
  trimmed = join(dir, 'toy-trimmed');
  const toy = trimModel(loadModelDir(join(ROOT, 'models', 'toy-ioi')), { keep: v.tokens, maxLen: v.maxLen });
  saveModelDir(trimmed, toy);
  // ... and with MLP neurons cut (every third neuron of layer 1 and all of layer 2's, values folded).
  carvedNeurons = join(dir, 'toy-neurons');
  const third = Array.from({ length: 256 }, (_, i) => i).filter((i) => i % 3 === 0).map((neuron) => ({ neuron, value: 0.01 * (neuron % 7) }));
  saveModelDir(carvedNeurons, pruneNeurons(toy, new Map([[1, third], [2, Array.from({ length: 256 }, (_, neuron) => ({ neuron, value: 0.02 }))]])));
  // A rotary, grouped-query, untied model; the prompt's GPT-2 ids are all below 6000.
  llama = join(dir, 'llama');
  writeHfModelDir(llama, randomHfModel({ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 32, vocab: 6000, maxPos: 64, seed: 11, scale: 0.2 }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

interface Meta {
  vocab: number[] | null;
  tokens: string[] | null;
  n_vocab: number;
  max_len: number;
  components: string[];
}

/** Logits of the ONNX file, run by onnxruntime-node alone: [rows][position][vocab]. */
async function runOnnx(file: string, rows: number[][]): Promise<Float32Array[][]> {
  const session = await ort.InferenceSession.create(file);
  assert.deepEqual([...session.inputNames].sort(), ['attention_mask', 'input_ids']);
  assert.deepEqual([...session.outputNames], ['logits']);
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T);
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) => r.forEach((t, j) => ((ids[b * T + j] = BigInt(t)), (mask[b * T + j] = 1n))));
  const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [rows.length, T]), attention_mask: new ort.Tensor('int64', mask, [rows.length, T]) });
  const [B, TT, V] = out.logits.dims as number[];
  assert.equal(B, rows.length);
  assert.equal(TT, T);
  const data = out.logits.data as Float32Array;
  return rows.map((r, b) => r.map((_, t) => data.subarray((b * T + t) * V, (b * T + t + 1) * V)));
}

async function checkAgainstRun(model: string, label: string, dtype: 'f32' | 'f16' = 'f32', tol = 1e-4): Promise<void> {
  const file = join(dir, `${label}.onnx`);
  const exp = await carveHere(['export', '--model', model, '--format', 'onnx', '--dtype', dtype, '--out', file]);
  assert.equal(exp.code, 0, exp.stderr);
  const run = await carveHere(['run', '--model', model, '--prompt', PROMPT, '--top', '8', '--out', `${file}.run.json`]);
  assert.equal(run.code, 0, run.stderr);
  const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as Meta;
  const pred = JSON.parse(readFileSync(`${file}.run.json`, 'utf8')) as { tokens: number[]; top: { id: number; logit: number }[] };
  const local = (id: number) => (meta.vocab ? meta.vocab.indexOf(id) : id);
  const original = (l: number) => (meta.vocab ? meta.vocab[l] : l);
  // A second, shorter prompt in the batch, right-padded: the mask hides its padding.
  const short = pred.tokens.slice(0, 5);
  const [full, padded] = await runOnnx(file, [pred.tokens.map(local), short.map(local)]);
  const last = full[full.length - 1];
  const order = Array.from(last.keys()).sort((a, b) => last[b] - last[a] || original(a) - original(b)).slice(0, 8);
  assert.deepEqual(order.map(original), pred.top.map((t) => t.id), `${label}: top tokens`);
  pred.top.forEach((t, i) => assert.ok(Math.abs(last[order[i]] - t.logit) <= tol, `${label}: logit of ${t.id} ${last[order[i]]} vs ${t.logit}`));
  const [alone] = await runOnnx(file, [short.map(local)]);
  let worst = 0;
  alone.forEach((row, t) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - padded[t][j])))));
  assert.ok(worst < 1e-4, `${label}: padding changed real positions by ${worst}`);
  assert.equal(meta.n_vocab, last.length);
}

test('the exported ONNX of a trimmed toy-ioi, run by onnxruntime-node alone, equals carve run', async () => {
  await checkAgainstRun(trimmed, 'toy-trimmed');
  const meta = JSON.parse(readFileSync(join(dir, 'toy-trimmed.onnx.json'), 'utf8')) as Meta;
  const cfg = loadModelDir(trimmed).config;
  assert.deepEqual(meta.vocab, cfg.vocab);
  assert.equal(meta.tokens![meta.vocab!.indexOf(5335)], ' Mary');
  assert.equal(meta.max_len, cfg.nCtx);
  assert.equal(meta.components.length, 15);
  // --dtype f16 stores half the bytes; the toy model's weights are F16 already, so nothing is lost.
  await checkAgainstRun(trimmed, 'toy-trimmed-f16', 'f16');
  const f32 = statSync(join(dir, 'toy-trimmed.onnx')).size;
  const f16 = statSync(join(dir, 'toy-trimmed-f16.onnx')).size;
  assert.ok(f16 < 0.55 * f32, `f16 ${f16} vs f32 ${f32}`);
  // The size eval reports is the size of the file.
  assert.equal(onnxExportSize(loadModelDir(trimmed), { dtype: 'f32' }), f32);
  assert.equal(onnxExportSize(loadModelDir(trimmed), { dtype: 'f16' }), f16);
});

test('the exported ONNX of a neuron-pruned model equals carve run', async () => {
  const cfg = loadModelDir(carvedNeurons).config;
  assert.equal(cfg.layers[1].neurons!.length, 256 - 86);
  assert.equal(cfg.layers[2].mlp, false);
  await checkAgainstRun(carvedNeurons, 'toy-neurons');
});

test('the exported ONNX of a rotary GQA model (Llama layout, untied) equals carve run', async () => {
  await checkAgainstRun(llama, 'llama');
  const meta = JSON.parse(readFileSync(join(dir, 'llama.onnx.json'), 'utf8')) as Meta;
  assert.equal(meta.vocab, null);
  assert.equal(meta.max_len, 64);
  // Rotary tables are constants for max_len positions: a longer sequence is refused by the graph.
  const bytes = exportOnnx(loadModelDir(llama), { dtype: 'f32', maxLen: 16 });
  const file = join(dir, 'llama16.onnx');
  writeFileSync(file, bytes);
  await assert.rejects(runOnnx(file, [Array.from({ length: 20 }, (_, i) => i + 1)]));
  assert.equal((await runOnnx(file, [Array.from({ length: 16 }, (_, i) => i + 1)]))[0].length, 16);
});

test('export of a directory that is not a model, or bad flags: one error line, exit 2, no file', async () => {
  const notModel = join(dir, 'not-a-model');
  mkdirSync(notModel);
  writeFileSync(join(notModel, 'notes.txt'), 'hello');
  const out = join(dir, 'nothing.onnx');
  const cases = [
    ['export', '--model', notModel, '--format', 'onnx', '--out', out],
    ['export', '--model', join(dir, 'missing'), '--format', 'onnx', '--out', out],
    ['export', '--model', trimmed, '--format', 'pdf', '--out', out],
    ['export', '--model', trimmed, '--format', 'onnx', '--dtype', 'f8', '--out', out],
    ['export', '--model', trimmed, '--format', 'onnx', '--max-len', '999', '--out', out],
    ['export', '--model', trimmed, '--format', 'web', '--out', notModel],
  ];
  const results: CliResult[] = [];
  for (const c of cases) results.push(await carveHere(c));
  results.forEach((r, i) => assert.ok(isUserError(r), `${cases[i].join(' ')}:\n${r.stderr}`));
  assert.match(results[0].stderr, /not-a-model: no config\.json in the model directory/);
  assert.ok(!existsSync(out) && !existsSync(`${out}.json`));
  assert.deepEqual(readFileSync(join(notModel, 'notes.txt'), 'utf8'), 'hello');
});
