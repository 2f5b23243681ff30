/**
 * GPT-2 configuration: Hugging Face `config.json` keys, plus carve's pruned-layout section.
 *
 * ## The `carve` section (format 1): how a pruned model is described
 *
 * A model written by `carve compress` (or `carve train`) is a Hugging Face GPT-2 directory whose
 * config.json carries one extra top-level key:
 *
 *     "carve": {"format": 1,
 *               "layers": [{"source_layer": 3, "heads": [0, 2, 5], "mlp": true}, ...]}
 *
 * - `layers` lists the layers present in the file, in order; `n_layer` equals its length. Tensor names
 *   `h.{i}.*` use the position i in this list (0 .. n_layer−1), while `source_layer` is the layer's index
 *   in the original model, the one component names (`L{source_layer}H{h}`, `L{source_layer}MLP`) use.
 *   Source layers are strictly increasing.
 * - `heads` are the original indices (0 .. n_head−1, strictly increasing) of the heads kept. `n_head`
 *   and `n_embd` stay those of the original model, so d_head = n_embd / n_head still holds; layer i's
 *   `attn.c_attn.weight` is [n_embd, 3·k·d_head] (Q, K and V blocks, each k heads wide, heads in list
 *   order) and `attn.c_proj.weight` is [k·d_head, n_embd], with k = heads.length.
 * - A layer with `heads: []` has no attention block: no `ln_1`, `attn.c_attn` or `attn.c_proj.weight`,
 *   only `h.{i}.attn.c_proj.bias` [n_embd], a constant added to the residual stream where attention
 *   was. In every layer that bias also holds the folded mean outputs of the layer's removed heads.
 * - A layer with `mlp: false` has no `ln_2`, `mlp.c_fc` or `mlp.c_proj.weight`, only
 *   `h.{i}.mlp.c_proj.bias` [n_embd], added where the MLP's output was (the folded mean, or zero).
 * - Without the section, the model is a plain GPT-2: n_layer layers, every head, every MLP, and
 *   source_layer = index.
 * Hugging Face transformers cannot load a pruned model (its shapes differ); carve can.
 */
import { fail } from '../util/errors.ts';
import type { Activation, GPT2Config, LayerLayout } from './types.ts';

export const CARVE_FORMAT = 1;

const ACTIVATIONS: readonly Activation[] = ['gelu_new', 'gelu', 'relu', 'gelu_fast', 'gelu_pytorch_tanh'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intField(obj: Record<string, unknown>, key: string, path: string, min: number): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    fail(`${path}: "${key}" must be an integer >= ${min}, found ${JSON.stringify(v)}`);
  }
  return v;
}

function parseLayout(section: unknown, nHead: number, nLayer: number, path: string): LayerLayout[] {
  const where = `${path}: "carve"`;
  if (!isPlainObject(section)) fail(`${where} must be an object`);
  if (section.format !== CARVE_FORMAT) {
    fail(`${where}.format must be ${CARVE_FORMAT}, found ${JSON.stringify(section.format)} (written by a newer carve?)`);
  }
  const layers = section.layers;
  if (!Array.isArray(layers)) fail(`${where}.layers must be an array`);
  if (layers.length !== nLayer) {
    fail(`${path}: "n_layer" is ${nLayer} but "carve".layers lists ${layers.length} layers`);
  }
  const out: LayerLayout[] = [];
  let prevSource = -1;
  layers.forEach((raw, i) => {
    const at = `${where}.layers[${i}]`;
    if (!isPlainObject(raw)) fail(`${at} must be an object`);
    const src = raw.source_layer;
    if (typeof src !== 'number' || !Number.isSafeInteger(src) || src < 0) {
      fail(`${at}.source_layer must be a non-negative integer, found ${JSON.stringify(src)}`);
    }
    if (src <= prevSource) fail(`${at}.source_layer ${src} must be greater than the previous layer's (${prevSource})`);
    prevSource = src;
    const heads = raw.heads;
    if (!Array.isArray(heads)) fail(`${at}.heads must be an array of head indices`);
    let prevHead = -1;
    for (const h of heads) {
      if (typeof h !== 'number' || !Number.isSafeInteger(h) || h < 0 || h >= nHead) {
        fail(`${at}.heads: ${JSON.stringify(h)} is not a head index in 0..${nHead - 1}`);
      }
      if (h <= prevHead) fail(`${at}.heads must be strictly increasing, found ${JSON.stringify(heads)}`);
      prevHead = h;
    }
    if (typeof raw.mlp !== 'boolean') fail(`${at}.mlp must be true or false, found ${JSON.stringify(raw.mlp)}`);
    out.push({ sourceLayer: src, heads: [...(heads as number[])], mlp: raw.mlp });
  });
  return out;
}

/** The layout of an unpruned model: every head and MLP of every layer. */
export function fullLayout(nLayer: number, nHead: number): LayerLayout[] {
  return Array.from({ length: nLayer }, (_, l) => ({
    sourceLayer: l,
    heads: Array.from({ length: nHead }, (_, h) => h),
    mlp: true,
  }));
}

export function isFullLayout(layers: LayerLayout[], nHead: number): boolean {
  return layers.every(
    (l, i) => l.sourceLayer === i && l.mlp && l.heads.length === nHead && l.heads.every((h, j) => h === j),
  );
}

/** Parse a Hugging Face GPT-2 config.json object; `path` names the file in error messages. */
export function parseConfig(json: unknown, path: string): GPT2Config {
  if (!isPlainObject(json)) fail(`${path}: config must be a JSON object`);
  const c = json;
  if (c.model_type !== undefined && c.model_type !== 'gpt2') {
    fail(`${path}: "model_type" is ${JSON.stringify(c.model_type)}; carve reads GPT-2 models ("gpt2") only`);
  }
  // These HF options change the attention arithmetic; refusing them beats silently wrong numbers.
  if (c.scale_attn_weights === false) fail(`${path}: "scale_attn_weights": false is not supported`);
  if (c.scale_attn_by_inverse_layer_idx === true) fail(`${path}: "scale_attn_by_inverse_layer_idx": true is not supported`);

  const nLayer = intField(c, 'n_layer', path, 0);
  const nHead = intField(c, 'n_head', path, 1);
  const dModel = intField(c, 'n_embd', path, 1);
  if (dModel % nHead !== 0) fail(`${path}: "n_embd" ${dModel} is not divisible by "n_head" ${nHead}`);
  const nCtx = c.n_positions !== undefined ? intField(c, 'n_positions', path, 1) : intField(c, 'n_ctx', path, 1);
  const vocabSize = intField(c, 'vocab_size', path, 1);

  let eps = 1e-5;
  if (c.layer_norm_epsilon !== undefined) {
    const e = c.layer_norm_epsilon;
    if (typeof e !== 'number' || !Number.isFinite(e) || e <= 0) {
      fail(`${path}: "layer_norm_epsilon" must be a positive number, found ${JSON.stringify(e)}`);
    }
    eps = e;
  }
  let activation: Activation = 'gelu_new';
  if (c.activation_function !== undefined) {
    const a = c.activation_function;
    if (typeof a !== 'string' || !(ACTIVATIONS as readonly string[]).includes(a)) {
      fail(`${path}: "activation_function" ${JSON.stringify(a)} is not supported (use one of ${ACTIVATIONS.join(', ')})`);
    }
    activation = a as Activation;
  }
  const dMlp = c.n_inner === undefined || c.n_inner === null ? 4 * dModel : intField(c, 'n_inner', path, 1);

  const hasCarve = c.carve !== undefined;
  const layers = hasCarve ? parseLayout(c.carve, nHead, nLayer, path) : fullLayout(nLayer, nHead);
  return {
    nLayer,
    nHead,
    dModel,
    dHead: dModel / nHead,
    dMlp,
    nCtx,
    vocabSize,
    eps,
    activation,
    layers,
    pruned: hasCarve,
    raw: { ...c },
  };
}

/**
 * The config.json object for a config: the raw keys kept, the GPT-2 keys rewritten from the fields,
 * and the `carve` section present exactly when the layout is not the full one (or was marked pruned).
 */
export function configToJson(cfg: GPT2Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg.raw };
  if (out.model_type === undefined) out.model_type = 'gpt2';
  out.n_layer = cfg.layers.length;
  out.n_head = cfg.nHead;
  out.n_embd = cfg.dModel;
  out.n_positions = cfg.nCtx;
  // Older GPT-2 configs carry n_ctx next to n_positions; keep the two in agreement.
  if (out.n_ctx !== undefined) out.n_ctx = cfg.nCtx;
  out.vocab_size = cfg.vocabSize;
  out.layer_norm_epsilon = cfg.eps;
  out.activation_function = cfg.activation;
  out.n_inner = cfg.dMlp === 4 * cfg.dModel ? null : cfg.dMlp;
  if (cfg.pruned || !isFullLayout(cfg.layers, cfg.nHead)) {
    out.carve = {
      format: CARVE_FORMAT,
      layers: cfg.layers.map((l) => ({ source_layer: l.sourceLayer, heads: [...l.heads], mlp: l.mlp })),
    };
  } else {
    delete out.carve;
  }
  return out;
}
