/**
 * The Llama family (Hugging Face `llama`, `mistral`, `qwen2`): token embedding only (rotary positions
 * in HF's rotate_half layout), RMSNorm, separate q/k/v/o projections stored as torch Linear [out, in],
 * grouped-query attention, SwiGLU MLP (down(act(gate(x)) ⊙ up(x))), untied lm_head unless
 * `tie_word_embeddings`. The three differ only in biases and the sliding window:
 *  - llama: `attention_bias` gives q, k, v and o biases; `mlp_bias` gives gate, up and down biases;
 *  - qwen2: q, k and v biases always, never o or MLP biases; sliding window (when `use_sliding_window`)
 *    in the layers from `max_window_layers` on, or as `layer_types` lists them;
 *  - mistral: no biases; `sliding_window` (null: none) in every layer.
 */
import { fail } from '../../util/errors.ts';
import type { Fields } from '../config-fields.ts';
import type { Activation, ArchName, ModelConfig } from '../types.ts';
import { parseRotary, rotaryToJson } from './rope.ts';
import { buildTable, type Naming } from './table.ts';
import type { Architecture } from './types.ts';

const ACTIVATIONS: readonly Activation[] = ['silu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu'];

const naming: Naming = {
  embed: 'model.embed_tokens.weight',
  finalNorm: { w: 'model.norm.weight' },
  unembed: 'lm_head.weight',
  layerPrefix: (i) => `model.layers.${i}.`,
  layer: {
    'norm1.w': { name: 'input_layernorm.weight', axes: [['d']] },
    'q.w': { name: 'self_attn.q_proj.weight', axes: [['head', 'dh'], ['d']], layout: 'out_in' },
    'q.b': { name: 'self_attn.q_proj.bias', axes: [['head', 'dh']] },
    'k.w': { name: 'self_attn.k_proj.weight', axes: [['kv', 'dh'], ['d']], layout: 'out_in' },
    'k.b': { name: 'self_attn.k_proj.bias', axes: [['kv', 'dh']] },
    'v.w': { name: 'self_attn.v_proj.weight', axes: [['kv', 'dh'], ['d']], layout: 'out_in' },
    'v.b': { name: 'self_attn.v_proj.bias', axes: [['kv', 'dh']] },
    'o.w': { name: 'self_attn.o_proj.weight', axes: [['d'], ['head', 'dh']], layout: 'out_in' },
    'o.b': { name: 'self_attn.o_proj.bias', axes: [['d']] },
    'norm2.w': { name: 'post_attention_layernorm.weight', axes: [['d']] },
    'gate.w': { name: 'mlp.gate_proj.weight', axes: [['mlp'], ['d']], layout: 'out_in' },
    'gate.b': { name: 'mlp.gate_proj.bias', axes: [['mlp']] },
    'up.w': { name: 'mlp.up_proj.weight', axes: [['mlp'], ['d']], layout: 'out_in' },
    'up.b': { name: 'mlp.up_proj.bias', axes: [['mlp']] },
    'down.w': { name: 'mlp.down_proj.weight', axes: [['d'], ['mlp']], layout: 'out_in' },
    'down.b': { name: 'mlp.down_proj.bias', axes: [['d']] },
  },
};

function slidingWindow(f: Fields, arch: ArchName, nLayer: number): ModelConfig['window'] {
  if (arch === 'llama') return null;
  // HF's MistralConfig defaults the window to 4096 when the key is absent; an explicit null means none.
  if (arch === 'mistral' && f.c.sliding_window === undefined) return { size: 4096, layers: new Array(nLayer).fill(true) };
  if (!f.has('sliding_window')) return null;
  const size = f.int('sliding_window', 1);
  if (arch === 'mistral') return { size, layers: new Array(nLayer).fill(true) };
  // qwen2: HF keeps the window only with use_sliding_window, in the layers layer_types marks.
  if (!f.bool('use_sliding_window', false)) return null;
  const types = f.c.layer_types;
  if (Array.isArray(types)) {
    if (types.length !== nLayer || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention')) {
      fail(`${f.path}: "layer_types" must list ${nLayer} entries, each "sliding_attention" or "full_attention"`);
    }
    return { size, layers: types.map((t) => t === 'sliding_attention') };
  }
  const from = f.int('max_window_layers', 0, 28);
  return { size, layers: Array.from({ length: nLayer }, (_, i) => i >= from) };
}

export const llama: Architecture = {
  modelTypes: ['llama', 'mistral', 'qwen2'],
  parse(f, arch) {
    const nLayer = f.int('num_hidden_layers', 0);
    const nHead = f.int('num_attention_heads', 1);
    const dModel = f.int('hidden_size', 1);
    const nKvHead = f.int('num_key_value_heads', 1, nHead);
    if (nHead % nKvHead !== 0) fail(`${f.path}: "num_attention_heads" ${nHead} is not a multiple of "num_key_value_heads" ${nKvHead}`);
    if (!f.has('head_dim') && dModel % nHead !== 0) fail(`${f.path}: "hidden_size" ${dModel} is not divisible by "num_attention_heads" ${nHead}`);
    const dHead = f.int('head_dim', 1, dModel / nHead);
    const attentionBias = arch === 'llama' && f.bool('attention_bias', false);
    const mlpBias = arch === 'llama' && f.bool('mlp_bias', false);
    return {
      arch,
      nLayer,
      nHead,
      nKvHead,
      dModel,
      dHead,
      dMlp: f.int('intermediate_size', 1),
      nCtx: f.int('max_position_embeddings', 1),
      vocabSize: f.int('vocab_size', 1),
      norm: { kind: 'rms', eps: f.positive('rms_norm_eps', 1e-6) },
      positions: parseRotary(f, dHead, ['partial_rotary_factor'], 1, ['rope_theta']),
      mlp: { gated: true, activation: f.choice('hidden_act', ACTIVATIONS, 'silu') },
      bias: { qkv: attentionBias || arch === 'qwen2', o: attentionBias, mlpIn: mlpBias, mlpOut: mlpBias },
      parallelResidual: false,
      tied: f.bool('tie_word_embeddings', false),
      window: slidingWindow(f, arch, nLayer),
    };
  },
  toJson(cfg, out) {
    out.model_type = cfg.arch;
    out.num_hidden_layers = cfg.layers.length;
    out.num_attention_heads = cfg.nHead;
    out.num_key_value_heads = cfg.nKvHead;
    out.hidden_size = cfg.dModel;
    out.head_dim = cfg.dHead;
    out.intermediate_size = cfg.dMlp;
    out.max_position_embeddings = cfg.nCtx;
    out.vocab_size = cfg.vocabSize;
    out.rms_norm_eps = cfg.norm.eps;
    out.hidden_act = cfg.mlp.activation;
    out.tie_word_embeddings = cfg.tied;
    if (cfg.positions.kind !== 'rotary') throw new Error('llama-family configs are rotary');
    rotaryToJson(cfg.positions, out, 'rope_theta', 'partial_rotary_factor', cfg.dHead);
    if (cfg.arch === 'llama') {
      out.attention_bias = cfg.bias.qkv;
      out.mlp_bias = cfg.bias.mlpIn;
    }
  },
  tensors: (cfg) => buildTable(cfg, naming),
  ignored: /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
};
