/**
 * Model configuration: Hugging Face `config.json` keys for every architecture carve reads (chosen by
 * `model_type`; see arch/), plus carve's pruned-layout section.
 *
 * ## The `carve` section (format 1): how a pruned model is described
 *
 * A model written by `carve compress` (or `carve train`) is a Hugging Face model directory whose
 * config.json carries one extra top-level key:
 *
 *     "carve": {"format": 1,
 *               "layers": [{"source_layer": 3, "heads": [0, 2, 5], "mlp": true}, ...],
 *               "residual_biases": true}
 *
 * - `layers` lists the layers present in the file, in order; the layer count (`n_layer`,
 *   `num_hidden_layers`) equals its length. Tensor names use the position i in this list, while
 *   `source_layer` is the layer's index in the original model, the one component names
 *   (`L{source_layer}H{h}`, `L{source_layer}MLP`) use. Source layers are strictly increasing.
 * - `heads` are the original indices (0 .. n_head−1, strictly increasing) of the query heads kept.
 *   Head counts and widths stay those of the original model; the attention tensors hold only the kept
 *   heads' slices, in list order, and only the key/value heads some kept query head reads (with
 *   grouped-query attention, query head h reads key/value head h // (n_head / n_kv_head)).
 * - A layer with `heads: []` has no attention block (no norm, no q/k/v/o weights), only its output
 *   projection's bias: a constant added to the residual stream where attention was. In every layer
 *   that bias also holds the folded outputs of the layer's removed heads.
 * - `neurons` (optional, with `mlp: true`): the original indices of the MLP's hidden units kept
 *   (strictly increasing, 0 .. dMlp−1); the MLP tensors hold only their rows/columns, in list order,
 *   and the output bias also holds the removed neurons' folded mean contributions. Absent: all.
 * - A layer with `mlp: false` has no MLP weights and no norm before it, only the MLP's output bias,
 *   added where the MLP's output was (the folded mean, or zero).
 * - `residual_biases: true`: the attention and MLP output biases exist in every layer even where the
 *   architecture has none (Llama, Mistral): carve added them, zero-initialised, to hold folded means.
 * - `vocab` (optional): the model keeps only some of its tokenizer's tokens (`carve compress
 *   --vocab task`); it lists the original id of each embedding (and unembedding) row, in row order,
 *   and `vocab_size` is its length. Text and token ids given to the model are original ids, mapped
 *   through this list (src/model/vocab.ts); the position table may also be shorter than the
 *   original's (`n_positions` / `max_position_embeddings` say how long).
 * - Without the section, the model is the plain architecture: every head, every MLP, and
 *   source_layer = index.
 * Hugging Face transformers cannot load a pruned model (its shapes differ); carve can.
 */
import { fail } from '../util/errors.ts';
import { Fields, isPlainObject, type Json } from './config-fields.ts';
import { archOf, architectureOf, ARCHITECTURES } from './arch/index.ts';
import type { ArchName, LayerLayout, ModelConfig } from './types.ts';
import { checkVocabList } from './vocab.ts';

export const CARVE_FORMAT = 1;

function parseNeurons(raw: unknown, dMlp: number, at: string): number[] {
  if (!Array.isArray(raw) || raw.length === 0) fail(`${at} must be a non-empty array of neuron indices`);
  let prev = -1;
  for (const n of raw) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n >= dMlp) fail(`${at}: ${JSON.stringify(n)} is not a neuron index in 0..${dMlp - 1}`);
    if (n <= prev) fail(`${at} must be strictly increasing`);
    prev = n;
  }
  return [...(raw as number[])];
}

function parseLayout(section: Json, nHead: number, nLayer: number, dMlp: number, path: string): LayerLayout[] {
  const where = `${path}: "carve"`;
  const layers = section.layers;
  if (!Array.isArray(layers)) fail(`${where}.layers must be an array`);
  if (layers.length !== nLayer) {
    fail(`${path}: the layer count is ${nLayer} but "carve".layers lists ${layers.length} layers`);
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
    const layer: LayerLayout = { sourceLayer: src, heads: [...(heads as number[])], mlp: raw.mlp };
    if (raw.neurons !== undefined) {
      if (!raw.mlp) fail(`${at}.neurons: a layer without its MLP has no neurons to list`);
      layer.neurons = parseNeurons(raw.neurons, dMlp, `${at}.neurons`);
    }
    out.push(layer);
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
    (l, i) => l.sourceLayer === i && l.mlp && l.neurons === undefined && l.heads.length === nHead && l.heads.every((h, j) => h === j),
  );
}

/** Parse a Hugging Face config.json object of any supported architecture; `path` names the file in errors. */
export function parseConfig(json: unknown, path: string): ModelConfig {
  if (!isPlainObject(json)) fail(`${path}: config must be a JSON object`);
  const modelType = json.model_type ?? 'gpt2';
  const arch = architectureOf(modelType);
  if (!arch) {
    const known = ARCHITECTURES.flatMap((a) => a.modelTypes).join(', ');
    fail(`${path}: "model_type" is ${JSON.stringify(modelType)}; carve reads ${known}`);
  }
  const f = new Fields(json, path);
  const parsed = arch.parse(f, modelType as ArchName);

  let layers: LayerLayout[];
  let residualBiases = false;
  let vocab: number[] | undefined;
  const section = json.carve;
  const hasCarve = section !== undefined;
  if (hasCarve) {
    const where = `${path}: "carve"`;
    if (!isPlainObject(section)) fail(`${where} must be an object`);
    if (section.format !== CARVE_FORMAT) {
      fail(`${where}.format must be ${CARVE_FORMAT}, found ${JSON.stringify(section.format)} (written by a newer carve?)`);
    }
    layers = parseLayout(section, parsed.nHead, parsed.nLayer, parsed.dMlp, path);
    if (section.residual_biases !== undefined) {
      if (typeof section.residual_biases !== 'boolean') fail(`${where}.residual_biases must be true or false`);
      residualBiases = section.residual_biases;
      if (residualBiases) parsed.bias = { ...parsed.bias, o: true, mlpOut: true };
    }
    if (section.vocab !== undefined) vocab = checkVocabList(section.vocab, parsed.vocabSize, `${where}.vocab`);
  } else {
    layers = fullLayout(parsed.nLayer, parsed.nHead);
  }
  return { ...parsed, layers, residualBiases, pruned: hasCarve, raw: { ...json }, ...(vocab ? { vocab } : {}) };
}

function configToJsonBare(cfg: ModelConfig): Json {
  const out: Json = { ...cfg.raw };
  archOf(cfg).toJson(cfg, out);
  return out;
}

/**
 * The config.json object for a config: the raw keys kept, the architecture's keys rewritten from the
 * fields, and the `carve` section present exactly when the layout is not the full one (or was marked pruned).
 */
export function configToJson(cfg: ModelConfig): Json {
  const out = configToJsonBare(cfg);
  const residualBiases = cfg.residualBiases;
  if (cfg.pruned || residualBiases || cfg.vocab !== undefined || !isFullLayout(cfg.layers, cfg.nHead)) {
    out.carve = {
      format: CARVE_FORMAT,
      layers: cfg.layers.map((l) => ({ source_layer: l.sourceLayer, heads: [...l.heads], mlp: l.mlp, ...(l.neurons ? { neurons: [...l.neurons] } : {}) })),
      ...(residualBiases ? { residual_biases: true } : {}),
      ...(cfg.vocab !== undefined ? { vocab: [...cfg.vocab] } : {}),
    };
  } else {
    delete out.carve;
  }
  return out;
}
