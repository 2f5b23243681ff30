/**
 * bench/compress: how much smaller and faster compressed models are. A GPT-2-small-shaped model
 * (12 layers, 12 heads, d 768, vocab 50257, n_ctx 1024) with random weights, built in memory, and
 * three compressions of it, each on top of the previous one:
 *   1. components: half its heads (in every layer, the heads h with h + layer odd) and half its MLPs
 *      (odd layers) removed under mean ablation;
 *   2. neurons: half the neurons of every remaining MLP (the odd ones) removed, means folded;
 *   3. vocabulary: only 2,000 tokens kept (the IOI task's tokens and the lowest other ids) and the
 *      context cut to the task's longest prompt.
 * Every model runs the same 25 IOI prompts of ~20 tokens two ways: the task metric (the answer
 * pair's logits only) and a next-token prediction (full-vocabulary logits at the last position,
 * as `carve run` computes). Runs alternate between the models, REPS times; the medians are printed
 * as fractions of the full model's, next to parameter counts. The most compressed model's metric
 * is checked against the full model with the same components and neurons ablated.
 *
 *     npm run bench:compress            (REPS=15 by default)
 */
import { Engine } from '../src/onnx/session.ts';
import { HookedModel, type Intervention, type NeuronIntervention } from '../src/model/hooked.ts';
import { computeReplacements } from '../src/discover/replacements.ts';
import { listComponents } from '../src/discover/components.ts';
import { pruneModel } from '../src/compress/prune-model.ts';
import { neuronValues, pruneNeurons, type RemovedNeuron } from '../src/compress/neurons.ts';
import { trimModel } from '../src/compress/trim-vocab.ts';
import { countParams } from '../src/compress/count.ts';
import { ioiVocabulary } from '../src/task/vocab.ts';
import { BOS_ID, encode } from '../src/tokenizer/gpt2.ts';
import type { ModelData } from '../src/model/types.ts';
import { ioiPrompts, median, gpt2SmallInMemory } from './gpt2-small.ts';

const REPS = Number(process.env.REPS ?? 15);
const VOCAB = 2000;

async function main() {
  const engine = new Engine({ device: 'cpu', threads: 0 });
  const full = gpt2SmallInMemory();
  const cfg = full.config;
  const task = await ioiPrompts(25);
  const tokens = task.pairs.map((p) => p.clean);
  const answers = task.pairs;
  const fullModel = new HookedModel(full, engine);

  // 1. Components.
  const removed = listComponents(cfg).filter((c) => (c.head === null ? c.layer % 2 === 1 : (c.head + c.layer) % 2 === 1));
  const removedNames = new Set(removed.map((c) => c.name));
  const keep = new Set(listComponents(cfg).map((c) => c.name).filter((n) => !removedNames.has(n)));
  const repl = await computeReplacements(fullModel, task, 'mean', 'clean', 25);
  const components = pruneModel(full, keep, repl, 'mean');
  // 2. Neurons: the odd half of every remaining MLP.
  const nv = await neuronValues(fullModel, task, 'mean', 'clean', 25);
  const bySource = new Map<number, RemovedNeuron[]>();
  for (const [pos, values] of nv.values) {
    if (removedNames.has(`L${cfg.layers[pos].sourceLayer}MLP`)) continue;
    const gone: RemovedNeuron[] = [];
    for (let n = 1; n < cfg.dMlp; n += 2) gone.push({ neuron: n, value: values[n] });
    bySource.set(cfg.layers[pos].sourceLayer, gone);
  }
  const neurons = pruneNeurons(components, bySource);
  // 3. Vocabulary: the task's tokens, topped up to VOCAB with the lowest other ids; context to the longest prompt.
  const tv = ioiVocabulary(encode, BOS_ID);
  const kept = new Set(tv.tokens);
  for (let id = 0; kept.size < VOCAB; id++) kept.add(id);
  const vocab = trimModel(neurons, { keep: kept, maxLen: tv.maxLen });

  const variants: { name: string; data: ModelData; model: HookedModel }[] = [
    { name: 'full', data: full, model: fullModel },
    { name: 'half the heads and MLPs', data: components, model: new HookedModel({ ...components, name: 'components' }, engine) },
    { name: '+ half the remaining neurons', data: neurons, model: new HookedModel({ ...neurons, name: 'neurons' }, engine) },
    { name: `+ a task vocabulary of ${VOCAB.toLocaleString('en-US')} tokens`, data: vocab, model: new HookedModel({ ...vocab, name: 'vocab' }, engine) },
  ];

  // Correctness: the smallest model equals the full model with the same components and neurons ablated.
  const B = tokens.length;
  const z = new Map<number, Intervention>();
  const mlp = new Map<number, Intervention>();
  for (const c of removed) {
    if (c.head !== null) {
      if (!z.has(c.pos)) z.set(c.pos, { keep: new Float32Array(B * cfg.nHead).fill(1), value: { shape: 'const', data: repl.z.get(c.pos)!.data } });
      for (let b = 0; b < B; b++) z.get(c.pos)!.keep[b * cfg.nHead + c.slot] = 0;
    } else {
      mlp.set(c.pos, { keep: new Float32Array(B), value: { shape: 'const', data: repl.mlp.get(c.pos)!.data } });
    }
  }
  const nIv = new Map<number, NeuronIntervention>();
  for (const [source, gone] of bySource) {
    const keepMask = new Float32Array(B * cfg.dMlp).fill(1);
    for (let b = 0; b < B; b++) for (const g of gone) keepMask[b * cfg.dMlp + g.neuron] = 0;
    nIv.set(source, { keep: keepMask, value: nv.values.get(source)! });
  }
  const ablated = await fullModel.run({ tokens, logits: 'answers', answers, z, mlp, neurons: nIv });
  const check = await variants[3].model.run({ tokens, logits: 'answers', answers });
  let maxDiff = 0;
  for (let b = 0; b < B; b++) maxDiff = Math.max(maxDiff, Math.abs(check.metric![b] - ablated.metric![b]));

  const runs = {
    metric: (m: HookedModel) => m.run({ tokens, logits: 'answers', answers }),
    next: (m: HookedModel) => m.run({ tokens, logits: 'last' }),
  };
  const times = new Map<string, number[]>();
  for (const kind of Object.keys(runs) as (keyof typeof runs)[]) {
    for (const v of variants) {
      await runs[kind](v.model); // compile and warm up
      times.set(`${kind}|${v.name}`, []);
    }
    for (let r = 0; r < REPS; r++) {
      // Rotate which model goes first, so drift in machine load hits all alike.
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + r) % variants.length];
        const t0 = performance.now();
        await runs[kind](v.model);
        times.get(`${kind}|${v.name}`)!.push(performance.now() - t0);
      }
    }
  }
  const base = countParams(full);
  const fullMetric = median(times.get(`metric|full`)!);
  const fullNext = median(times.get(`next|full`)!);
  const rows = variants.map((v) => {
    const c = countParams(v.data);
    return {
      model: v.name,
      n_params: c.n_params,
      params_fraction: c.n_params / base.n_params,
      n_params_non_embedding: c.n_params_non_embedding,
      non_embedding_fraction: c.n_params_non_embedding / base.n_params_non_embedding,
      metric_forward_ms: median(times.get(`metric|${v.name}`)!),
      metric_forward_fraction: median(times.get(`metric|${v.name}`)!) / fullMetric,
      next_token_forward_ms: median(times.get(`next|${v.name}`)!),
      next_token_forward_fraction: median(times.get(`next|${v.name}`)!) / fullNext,
    };
  });
  console.log(
    JSON.stringify(
      {
        model: 'random GPT-2-small shape (12 layers, 12 heads, d 768, vocab 50257), in memory',
        prompts: B,
        tokens_per_prompt: Math.max(...tokens.map((t) => t.length)),
        reps: REPS,
        rows,
        max_metric_diff_vs_ablated_full: maxDiff,
      },
      null,
      2,
    ),
  );
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log('\nmodel                                       params   non-emb   metric fwd  next-token fwd');
  for (const r of rows) {
    console.log(`${r.model.padEnd(42)} ${pct(r.params_fraction).padStart(7)} ${pct(r.non_embedding_fraction).padStart(9)} ${pct(r.metric_forward_fraction).padStart(11)} ${pct(r.next_token_forward_fraction).padStart(15)}`);
  }
  console.log(`(fractions of the full model's; medians of ${REPS} alternating runs; the smallest model's metric matches the ablated full model to ${maxDiff.toExponential(1)})`);
  await engine.release();
}

await main();
