import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CarveError } from '../../src/util/errors.ts';
import { parseConfig, configToJson } from '../../src/model/config.ts';

const gpt2 = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  embd_pdrop: 0.1,
  eos_token_id: 50256,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  resid_pdrop: 0.1,
  summary_activation: null,
  vocab_size: 50257,
};

test('the real GPT-2 small config parses', () => {
  const c = parseConfig(gpt2, 'config.json');
  assert.equal(c.nLayer, 12);
  assert.equal(c.nHead, 12);
  assert.equal(c.dModel, 768);
  assert.equal(c.dHead, 64);
  assert.equal(c.dMlp, 3072);
  assert.equal(c.nCtx, 1024);
  assert.equal(c.vocabSize, 50257);
  assert.equal(c.norm.eps, 1e-5);
  assert.equal(c.mlp.activation, 'gelu_new');
  assert.equal(c.pruned, false);
  assert.equal(c.layers.length, 12);
  assert.deepEqual(c.layers[5], { sourceLayer: 5, heads: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], mlp: true });
  assert.equal(c.raw.initializer_range, 0.02);
  // Unpruned: no carve section, HF keys and unknown keys kept.
  const j = configToJson(c);
  assert.equal(j.carve, undefined);
  assert.equal(j.n_layer, 12);
  assert.equal(j.n_inner, null);
  assert.equal(j.resid_pdrop, 0.1);
  assert.deepEqual({ ...parseConfig(j, 'x'), raw: null }, { ...c, raw: null });
});

test('defaults: eps, activation, n_inner, n_ctx fallback', () => {
  const c = parseConfig({ n_layer: 2, n_head: 4, n_embd: 32, n_ctx: 64, vocab_size: 100, n_inner: null }, 'c.json');
  assert.equal(c.norm.eps, 1e-5);
  assert.equal(c.mlp.activation, 'gelu_new');
  assert.equal(c.dMlp, 128);
  assert.equal(c.nCtx, 64);
  const d = parseConfig({ n_layer: 2, n_head: 4, n_embd: 32, n_positions: 64, vocab_size: 100, n_inner: 50, activation_function: 'relu' }, 'c.json');
  assert.equal(d.dMlp, 50);
  assert.equal(d.mlp.activation, 'relu');
  assert.equal(configToJson(d).n_inner, 50);
});

test('the carve section gives a pruned layout that round-trips', () => {
  const json = {
    ...gpt2,
    n_layer: 3,
    carve: {
      format: 1,
      layers: [
        { source_layer: 0, heads: [0, 2, 5], mlp: true },
        { source_layer: 3, heads: [], mlp: true },
        { source_layer: 9, heads: [11], mlp: false },
      ],
    },
  };
  const c = parseConfig(json, 'p/config.json');
  assert.equal(c.pruned, true);
  assert.equal(c.nLayer, 3);
  assert.deepEqual(c.layers, [
    { sourceLayer: 0, heads: [0, 2, 5], mlp: true },
    { sourceLayer: 3, heads: [], mlp: true },
    { sourceLayer: 9, heads: [11], mlp: false },
  ]);
  const j = configToJson(c);
  assert.deepEqual(j.carve, json.carve);
  assert.equal(j.n_layer, 3);
  assert.deepEqual(parseConfig(j, 'again').layers, c.layers);

  // A config object built in code with a reduced layout gets a carve section even if not marked pruned.
  const full = parseConfig(gpt2, 'config.json');
  const cut = { ...full, layers: full.layers.slice(0, 2).map((l) => ({ ...l, mlp: false })) };
  const cj = configToJson(cut);
  assert.equal(cj.n_layer, 2);
  assert.equal((cj.carve as { layers: unknown[] }).layers.length, 2);
});

test('bad configs are CarveErrors naming the file and the key', () => {
  const bad: [unknown, RegExp][] = [
    [[], /JSON object/],
    [null, /JSON object/],
    [{ ...gpt2, n_layer: '12' }, /"n_layer"/],
    [{ ...gpt2, n_head: 0 }, /"n_head"/],
    [{ ...gpt2, n_embd: 770 }, /not divisible/],
    [{ ...gpt2, n_embd: 76.8 }, /"n_embd"/],
    [{ ...gpt2, n_positions: undefined, n_ctx: undefined }, /"n_ctx"/],
    [{ ...gpt2, vocab_size: -1 }, /"vocab_size"/],
    [{ ...gpt2, layer_norm_epsilon: 'small' }, /layer_norm_epsilon/],
    [{ ...gpt2, activation_function: 'swish' }, /activation_function/],
    [{ ...gpt2, n_inner: 0 }, /"n_inner"/],
    [{ ...gpt2, model_type: 'bert' }, /"model_type" is "bert"; carve reads gpt2, llama, mistral, qwen2, gpt_neox/],
    [{ ...gpt2, model_type: 'llama' }, /"num_hidden_layers"/],
    [{ ...gpt2, scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx/],
    [{ ...gpt2, carve: [] }, /"carve" must be an object/],
    [{ ...gpt2, carve: { format: 2, layers: [] } }, /format must be 1/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [] } }, /lists 0 layers/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: 0, heads: [12], mlp: true }] } }, /heads: 12/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: 0, heads: [2, 1], mlp: true }] } }, /strictly increasing/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: 0, heads: [1, 1], mlp: true }] } }, /strictly increasing/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: -1, heads: [], mlp: true }] } }, /source_layer/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: 0, heads: [], mlp: 'yes' }] } }, /mlp/],
    [{ ...gpt2, n_layer: 1, carve: { format: 1, layers: [{ source_layer: 0, mlp: true }] } }, /heads/],
    [
      { ...gpt2, n_layer: 2, carve: { format: 1, layers: [{ source_layer: 3, heads: [], mlp: true }, { source_layer: 3, heads: [], mlp: true }] } },
      /greater than the previous/,
    ],
  ];
  for (const [json, pattern] of bad) {
    assert.throws(
      () => parseConfig(json, '/models/m/config.json'),
      (e: unknown) => e instanceof CarveError && e.message.startsWith('/models/m/config.json') && pattern.test(e.message),
      `${JSON.stringify(json)?.slice(0, 200)} should fail with ${pattern}`,
    );
  }
});
