/**
 * `carve export --format onnx`: one self-contained ONNX file of a model (full, pruned or trimmed), runnable by
 * any onnxruntime without carve (SPEC "Vocabulary and export").
 *
 *   inputs   input_ids       int64 [batch, seq]  the model's own token ids (a trimmed model: local ids,
 *                                                 see the `vocab` list of the metadata)
 *            attention_mask  int64 [batch, seq]  1 for real tokens, 0 for padding (pad on the right)
 *   output   logits          float [batch, seq, n_vocab]
 *
 * The graph is the one forward of src/model/forward.ts (no second copy of the model), with the
 * weights stored as initializers (optionally as float16, widened once by a Cast) and, for rotary
 * models, the cos/sin tables as constants for `max_len` positions. Beside the file goes
 * `FILE.onnx.json`, the metadata a consumer needs to tokenise for it.
 */
import { Graph } from '../onnx/graph.ts';
import { serializeGraph, serializedSize, type Initializer, type SerializeOptions } from '../onnx/serialize.ts';
import { buildForward } from '../model/forward.ts';
import { f32ToF16Bits } from '../model/safetensors.ts';
import type { ModelConfig, ModelData } from '../model/types.ts';
import { VocabMap } from '../model/vocab.ts';
import { listComponents } from '../discover/components.ts';

export type ExportDtype = 'f32' | 'f16';
export const EXPORT_DTYPES: readonly ExportDtype[] = ['f32', 'f16'];

export interface OnnxExportOptions {
  dtype: ExportDtype;
  /** Longest sequence the file accepts; default the model's context. Rotary tables are built for this many positions. */
  maxLen?: number;
}

/** `FILE.onnx.json`. */
export interface OnnxMeta {
  format: 1;
  model_type: string;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  /** The original (tokenizer) id of each local id; null when the model has its tokenizer's whole vocabulary. */
  vocab: number[] | null;
  /** The token string of each local id (GPT-2 BPE), null when the vocabulary is the tokenizer's whole. */
  tokens: string[] | null;
  n_vocab: number;
  max_len: number;
  dtype: ExportDtype;
  /** The components the model keeps, by their names in the original model. */
  components: string[];
}

export function exportMaxLen(cfg: ModelConfig, opts: Pick<OnnxExportOptions, 'maxLen'>): number {
  return Math.min(cfg.nCtx, opts.maxLen ?? cfg.nCtx);
}

/** The forward graph with the export's inputs and output (weights are still inputs here). */
export function exportGraph(cfg: ModelConfig, maxLen: number): Graph {
  const g = new Graph('float32');
  const fv = buildForward(g, cfg, {
    startLayer: 0,
    readout: { kind: 'logits' },
    attentionMask: true,
    ropeConstants: cfg.positions.kind === 'rotary' ? maxLen : undefined,
  });
  // The forward's token input is called `tokens`; exported models use Hugging Face's name.
  const tokens = g.inputs.find((v) => v.name === 'tokens');
  if (!tokens) throw new Error('exportGraph: the forward has no tokens input');
  tokens.name = 'input_ids';
  g.output(fv.logits!, 'logits');
  return g;
}

/** Every weight as an initializer, in float32 or float16. */
export function exportInitializers(model: ModelData, dtype: ExportDtype): Map<string, Initializer> {
  const out = new Map<string, Initializer>();
  for (const [name, t] of model.weights) {
    let raw: Uint8Array;
    if (dtype === 'f32') {
      raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else {
      const half = new Uint16Array(t.data.length);
      for (let i = 0; i < t.data.length; i++) half[i] = f32ToF16Bits(t.data[i]);
      raw = new Uint8Array(half.buffer);
    }
    out.set(name, { dims: [...t.shape], dtype: dtype === 'f32' ? 'float32' : 'float16', raw });
  }
  return out;
}

function serializeOptions(model: ModelData, opts: OnnxExportOptions): { graph: Graph; so: SerializeOptions } {
  const graph = exportGraph(model.config, exportMaxLen(model.config, opts));
  return { graph, so: { initializers: exportInitializers(model, opts.dtype) } };
}

/** The ONNX file's bytes. */
export function exportOnnx(model: ModelData, opts: OnnxExportOptions): Uint8Array {
  const { graph, so } = serializeOptions(model, opts);
  const { bytes, inputNames } = serializeGraph(graph, so);
  const expected = ['input_ids', 'attention_mask'];
  if (inputNames.length !== expected.length || !expected.every((n) => inputNames.includes(n))) {
    throw new Error(`exportOnnx: the graph still needs inputs ${inputNames.join(', ')}`);
  }
  return bytes;
}

/** The size of `exportOnnx`'s file, without assembling it. */
export function onnxExportSize(model: ModelData, opts: OnnxExportOptions): number {
  const { graph, so } = serializeOptions(model, opts);
  return serializedSize(graph, so);
}

export function onnxMeta(model: ModelData, opts: OnnxExportOptions, tokenString: ((id: number) => string) | null): OnnxMeta {
  const cfg = model.config;
  const vocab = VocabMap.of(cfg);
  return {
    format: 1,
    model_type: cfg.arch,
    inputs: {
      input_ids: 'int64 [batch, seq]: token ids of the model' + (vocab.trimmed ? ' (local ids: input_ids = vocab.indexOf(tokenizer id))' : ''),
      attention_mask: 'int64 [batch, seq]: 1 for tokens, 0 for right padding',
    },
    outputs: { logits: `float32 [batch, seq, ${cfg.vocabSize}]: next-token logits at every position` + (vocab.trimmed ? ' (column j is token vocab[j])' : '') },
    vocab: vocab.trimmed ? vocab.originalIds() : null,
    tokens: vocab.trimmed && tokenString ? vocab.originalIds().map(tokenString) : null,
    n_vocab: cfg.vocabSize,
    max_len: exportMaxLen(cfg, opts),
    dtype: opts.dtype,
    components: listComponents(cfg).map((c) => c.name),
  };
}
