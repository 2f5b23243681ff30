/**
 * GPT-NeoX (Hugging Face `gpt_neox`, the Pythia models): rotary on the first int(head_size ·
 * rotary_pct) dimensions of each head, LayerNorm, one fused query_key_value Linear whose output rows
 * are grouped per head ([q_h, k_h, v_h] for each head h, not [Q | K | V]), parallel residual
 * (x + attn(ln1(x)) + mlp(ln2(x))) unless `use_parallel_residual` is false, exact-erf gelu, biases
 * on attention (`attention_bias`, default true) and always on the MLP, untied `embed_out`.
 */
import { fail } from '../../util/errors.ts';
import type { Activation } from '../types.ts';
import { parseRotary, rotaryToJson } from './rope.ts';
import { buildTable, type Naming } from './table.ts';
import type { Architecture } from './types.ts';

const ACTIVATIONS: readonly Activation[] = ['gelu', 'gelu_new', 'gelu_fast', 'gelu_pytorch_tanh', 'relu', 'silu'];

const naming: Naming = {
  embed: 'gpt_neox.embed_in.weight',
  finalNorm: { w: 'gpt_neox.final_layer_norm.weight', b: 'gpt_neox.final_layer_norm.bias' },
  unembed: 'embed_out.weight',
  layerPrefix: (i) => `gpt_neox.layers.${i}.`,
  layer: {
    'norm1.w': { name: 'input_layernorm.weight', axes: [['d']] },
    'norm1.b': { name: 'input_layernorm.bias', axes: [['d']] },
    'norm2.w': { name: 'post_attention_layernorm.weight', axes: [['d']] },
    'norm2.b': { name: 'post_attention_layernorm.bias', axes: [['d']] },
    'qkv.w': { name: 'attention.query_key_value.weight', axes: [['head', 3, 'dh'], ['d']], layout: 'out_in' },
    'qkv.b': { name: 'attention.query_key_value.bias', axes: [['head', 3, 'dh']] },
    'o.w': { name: 'attention.dense.weight', axes: [['d'], ['head', 'dh']], layout: 'out_in' },
    'o.b': { name: 'attention.dense.bias', axes: [['d']] },
    'up.w': { name: 'mlp.dense_h_to_4h.weight', axes: [['mlp'], ['d']], layout: 'out_in' },
    'up.b': { name: 'mlp.dense_h_to_4h.bias', axes: [['mlp']] },
    'down.w': { name: 'mlp.dense_4h_to_h.weight', axes: [['d'], ['mlp']], layout: 'out_in' },
    'down.b': { name: 'mlp.dense_4h_to_h.bias', axes: [['d']] },
  },
};

export const gptNeox: Architecture = {
  modelTypes: ['gpt_neox'],
  parse(f) {
    const nLayer = f.int('num_hidden_layers', 0);
    const nHead = f.int('num_attention_heads', 1);
    const dModel = f.int('hidden_size', 1);
    if (dModel % nHead !== 0) fail(`${f.path}: "hidden_size" ${dModel} is not divisible by "num_attention_heads" ${nHead}`);
    const dHead = dModel / nHead;
    const attentionBias = f.bool('attention_bias', true);
    return {
      arch: 'gpt_neox',
      nLayer,
      nHead,
      nKvHead: nHead,
      dModel,
      dHead,
      dMlp: f.int('intermediate_size', 1),
      nCtx: f.int('max_position_embeddings', 1),
      vocabSize: f.int('vocab_size', 1),
      norm: { kind: 'layer', eps: f.positive('layer_norm_eps', 1e-5) },
      positions: parseRotary(f, dHead, ['rotary_pct', 'partial_rotary_factor'], 0.25, ['rotary_emb_base', 'rope_theta']),
      mlp: { gated: false, activation: f.choice('hidden_act', ACTIVATIONS, 'gelu') },
      bias: { qkv: attentionBias, o: attentionBias, mlpIn: true, mlpOut: true },
      parallelResidual: f.bool('use_parallel_residual', true),
      tied: f.bool('tie_word_embeddings', false),
      window: null,
    };
  },
  toJson(cfg, out) {
    out.model_type = 'gpt_neox';
    out.num_hidden_layers = cfg.layers.length;
    out.num_attention_heads = cfg.nHead;
    out.hidden_size = cfg.dModel;
    out.intermediate_size = cfg.dMlp;
    out.max_position_embeddings = cfg.nCtx;
    out.vocab_size = cfg.vocabSize;
    out.layer_norm_eps = cfg.norm.eps;
    out.hidden_act = cfg.mlp.activation;
    out.use_parallel_residual = cfg.parallelResidual;
    out.attention_bias = cfg.bias.qkv;
    out.tie_word_embeddings = cfg.tied;
    if (cfg.positions.kind !== 'rotary') throw new Error('gpt_neox configs are rotary');
    const thetaKey = out.rotary_emb_base !== undefined || out.rope_theta === undefined ? 'rotary_emb_base' : 'rope_theta';
    const fractionKey = out.partial_rotary_factor !== undefined ? 'partial_rotary_factor' : 'rotary_pct';
    out[fractionKey] = cfg.positions.dims / cfg.dHead;
    rotaryToJson(cfg.positions, out, thetaKey, fractionKey, cfg.dHead);
  },
  tensors: (cfg) => buildTable(cfg, naming),
  ignored: /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/,
};
