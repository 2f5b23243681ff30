import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import { trimModel } from '../../src/compress/trim-vocab.ts';
import { countParams } from '../../src/compress/count.ts';
import { CarveError } from '../../src/util/errors.ts';
import { ioiVocabulary } from '../../src/task/vocab.ts';
import { generateIoi } from '../../src/task/ioi.ts';
import { BOS_ID, encode } from '../../src/tokenizer/gpt2.ts';
import type { ModelData } from '../../src/model/types.ts';
import { randomHfModel, writeHfModelDir, type HfModelSpec } from '../helpers/hf-random.ts';
import { rng } from '../helpers/gradcheck.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const TOY = join(import.meta.dirname, '..', '..', 'models', 'toy-ioi');

/** Full logits of both models at every real position: trimmed column j must equal untrimmed column original(j). */
async function compareLogits(full: ModelData, trimmed: ModelData, prompts: number[][], label: string, tol = 1e-5): Promise<number> {
  const a = new HookedModel(full, engine);
  const b = new HookedModel(trimmed, engine);
  const ra = await a.run({ tokens: prompts, logits: 'all' });
  const rb = await b.run({ tokens: prompts, logits: 'all' });
  const V = full.config.vocabSize;
  const K = trimmed.config.vocabSize;
  const T = ra.seqLen;
  let worst = 0;
  prompts.forEach((p, r) => {
    for (let t = 0; t < p.length; t++) {
      for (let j = 0; j < K; j++) {
        const orig = b.vocab.original(j);
        const d = Math.abs(rb.logits!.data[(r * T + t) * K + j] - ra.logits!.data[(r * T + t) * V + orig]);
        worst = Math.max(worst, d);
      }
    }
  });
  assert.ok(worst <= tol, `${label}: kept logits differ by ${worst}`);
  return worst;
}

test('toy-ioi trimmed to the IOI vocabulary: same logits for kept tokens, far fewer parameters, loads back', async () => {
  const full = loadModelDir(TOY, 'toy-ioi');
  const v = ioiVocabulary(encode, BOS_ID);
  const trimmed = trimModel(full, { keep: v.tokens, maxLen: v.maxLen });
  assert.equal(trimmed.config.vocabSize, v.tokens.length);
  assert.equal(trimmed.config.nCtx, v.maxLen);
  assert.deepEqual(trimmed.config.vocab, v.tokens);
  // Exactly the dropped rows: (50257 − kept) embedding rows and (64 − maxLen) position rows of 64.
  const saved = countParams(full).n_params - countParams(trimmed).n_params;
  assert.equal(saved, (50257 - v.tokens.length) * 64 + (64 - v.maxLen) * 64);
  assert.equal(countParams(trimmed).n_params_non_embedding, countParams(full).n_params_non_embedding);

  const task = generateIoi({ n: 6, seed: 9, prependBos: true });
  await compareLogits(full, trimmed, task.pairs.flatMap((p) => [p.clean, p.corrupt]), 'toy-ioi');

  const dir = mkdtempSync(join(tmpdir(), 'carve-trim-'));
  try {
    saveModelDir(join(dir, 'm'), trimmed);
    const cfgJson = JSON.parse(readFileSync(join(dir, 'm', 'config.json'), 'utf8'));
    assert.equal(cfgJson.vocab_size, v.tokens.length);
    assert.equal(cfgJson.n_positions, v.maxLen);
    assert.deepEqual(cfgJson.carve.vocab, v.tokens);
    const back = loadModelDir(join(dir, 'm'));
    assert.deepEqual(back.config.vocab, v.tokens);
    await compareLogits(full, back, [task.pairs[0].clean], 'toy-ioi reloaded');

    // Metric readouts take original ids too.
    const hooked = new HookedModel(back, engine);
    const ref = await new HookedModel(full, engine).run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
    const got = await hooked.run({ tokens: task.pairs.map((p) => p.clean), logits: 'answers', answers: task.pairs });
    for (let i = 0; i < ref.metric!.length; i++) assert.ok(Math.abs(ref.metric![i] - got.metric![i]) < 1e-5);

    // A token the trimmed model does not keep is a user error naming it.
    const zorro = encode(' Zorro');
    await assert.rejects(hooked.run({ tokens: [[...task.pairs[0].clean, ...zorro]], logits: 'last' }), (e: unknown) => e instanceof CarveError && e.message.includes(`token ${zorro[0]}`));
    // Trimming again composes: ids stay the tokenizer's.
    const names = encode(' Mary John');
    const again = trimModel(back, { keep: [...names, ...task.pairs[0].clean] });
    assert.deepEqual(again.config.vocab, [...new Set([...names, ...task.pairs[0].clean])].sort((a, b) => a - b));
    await compareLogits(full, again, [task.pairs[0].clean], 'trimmed twice');
    assert.throws(() => trimModel(back, { keep: zorro }), CarveError);
    assert.throws(() => trimModel(back, { maxLen: v.maxLen + 1 }), CarveError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const small = (arch: HfModelSpec['arch'], extra: Partial<HfModelSpec> = {}): HfModelSpec => ({ arch, nLayer: 2, nHead: 4, dModel: 32, vocab: 97, maxPos: 24, seed: 5, ...extra });

for (const [label, spec] of [
  ['llama, untied lm_head', small('llama', { nKvHead: 2 })],
  ['llama, tied', small('llama', { tied: true })],
  ['gpt_neox (embed_out)', small('gpt_neox')],
  ['gpt2 with its own lm_head', small('gpt2', { tied: false })],
] as [string, HfModelSpec][]) {
  test(`trimming ${label}: kept tokens' logits equal the untrimmed model's`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'carve-trim-hf-'));
    try {
      writeHfModelDir(dir, randomHfModel(spec));
      const full = loadModelDir(dir);
      assert.equal(full.config.tied, spec.tied ?? spec.arch === 'gpt2');
      const r = rng(3);
      const keep = Array.from({ length: 30 }, () => Math.floor(r() * 97));
      const trimmed = trimModel(full, { keep, maxLen: 12 });
      const kept = [...new Set(keep)].sort((a, b) => a - b);
      assert.deepEqual(trimmed.config.vocab, kept);
      // Every vocab-axis tensor lost its rows: the embedding, and the unembedding when untied.
      const rows = [...trimmed.weights.values()].filter((t) => t.shape[0] === kept.length).length;
      assert.equal(rows, full.config.tied ? 1 : 2);
      const prompts = [0, 1, 2].map((i) => Array.from({ length: 8 + i }, () => kept[Math.floor(r() * kept.length)]));
      await compareLogits(full, trimmed, prompts, label);
      saveModelDir(join(dir, 'trimmed'), trimmed);
      await compareLogits(full, loadModelDir(join(dir, 'trimmed')), prompts, `${label} reloaded`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
