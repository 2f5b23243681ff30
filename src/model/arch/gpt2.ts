/**
 * GPT-2 (Hugging Face `gpt2`): learned positions, pre-LayerNorm, Conv1D weights stored [in, out],
 * one fused c_attn whose columns are the Q, K and V blocks, every projection biased, unembedding tied
 * to wte unless the file has its own lm_head.weight (SPEC "Models").
 */
import { fail } from '../../util/errors.ts';
import type { Fields } from '../config-fields.ts';
import type { Activation } from '../types.ts';
import { buildTable, type Naming } from './table.ts';
import type { Architecture } from './types.ts';

export const GPT2_ACTIVATIONS: readonly Activation[] = ['gelu_new', 'gelu', 'relu', 'gelu_fast', 'gelu_pytorch_tanh'];

const naming: Naming = {
  embed: 'wte.weight',
  posEmbed: 'wpe.weight',
  finalNorm: { w: 'ln_f.weight', b: 'ln_f.bias' },
  unembed: 'lm_head.weight',
  layerPrefix: (i) => `h.${i}.`,
  layer: {
    'norm1.w': { name: 'ln_1.weight', axes: [['d']] },
    'norm1.b': { name: 'ln_1.bias', axes: [['d']] },
    'qkv.w': { name: 'attn.c_attn.weight', axes: [['d'], [3, 'head', 'dh']], layout: 'in_out' },
    'qkv.b': { name: 'attn.c_attn.bias', axes: [[3, 'head', 'dh']] },
    'o.w': { name: 'attn.c_proj.weight', axes: [['head', 'dh'], ['d']], layout: 'in_out' },
    'o.b': { name: 'attn.c_proj.bias', axes: [['d']] },
    'norm2.w': { name: 'ln_2.weight', axes: [['d']] },
    'norm2.b': { name: 'ln_2.bias', axes: [['d']] },
    'up.w': { name: 'mlp.c_fc.weight', axes: [['d'], ['mlp']], layout: 'in_out' },
    'up.b': { name: 'mlp.c_fc.bias', axes: [['mlp']] },
    'down.w': { name: 'mlp.c_proj.weight', axes: [['mlp'], ['d']], layout: 'in_out' },
    'down.b': { name: 'mlp.c_proj.bias', axes: [['d']] },
  },
};

export const gpt2: Architecture = {
  modelTypes: ['gpt2'],
  parse(f: Fields) {
    const c = f.c;
    // These HF options change the attention arithmetic; refusing them beats silently wrong numbers.
    if (c.scale_attn_weights === false) fail(`${f.path}: "scale_attn_weights": false is not supported`);
    if (c.scale_attn_by_inverse_layer_idx === true) fail(`${f.path}: "scale_attn_by_inverse_layer_idx": true is not supported`);
    const nLayer = f.int('n_layer', 0);
    const nHead = f.int('n_head', 1);
    const dModel = f.int('n_embd', 1);
    if (dModel % nHead !== 0) fail(`${f.path}: "n_embd" ${dModel} is not divisible by "n_head" ${nHead}`);
    const nCtx = f.has('n_positions') ? f.int('n_positions', 1) : f.int('n_ctx', 1);
    return {
      arch: 'gpt2',
      nLayer,
      nHead,
      nKvHead: nHead,
      dModel,
      dHead: dModel / nHead,
      dMlp: f.has('n_inner') ? f.int('n_inner', 1) : 4 * dModel,
      nCtx,
      vocabSize: f.int('vocab_size', 1),
      norm: { kind: 'layer', eps: f.positive('layer_norm_epsilon', 1e-5) },
      positions: { kind: 'learned' },
      mlp: { gated: false, activation: f.choice('activation_function', GPT2_ACTIVATIONS, 'gelu_new') },
      bias: { qkv: true, o: true, mlpIn: true, mlpOut: true },
      parallelResidual: false,
      // Decided by the file (tiedByFile); a config alone means the usual tied GPT-2.
      tied: true,
      window: null,
    };
  },
  toJson(cfg, out) {
    if (out.model_type === undefined) out.model_type = 'gpt2';
    out.n_layer = cfg.layers.length;
    out.n_head = cfg.nHead;
    out.n_embd = cfg.dModel;
    out.n_positions = cfg.nCtx;
    // Older GPT-2 configs carry n_ctx next to n_positions; keep the two in agreement.
    if (out.n_ctx !== undefined) out.n_ctx = cfg.nCtx;
    out.vocab_size = cfg.vocabSize;
    out.layer_norm_epsilon = cfg.norm.eps;
    out.activation_function = cfg.mlp.activation;
    out.n_inner = cfg.dMlp === 4 * cfg.dModel ? null : cfg.dMlp;
    out.tie_word_embeddings = cfg.tied;
  },
  tensors: (cfg) => buildTable(cfg, naming),
  aliases: (name) => [`transformer.${name}`],
  // Old PyTorch GPT-2 checkpoints carry the causal mask and its fill value as buffers.
  ignored: /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/,
  tiedByFile: (has) => !has('lm_head.weight'),
};
