/**
 * What an architecture file provides: how to read its Hugging Face config fields, how to write them
 * back, and its table of tensors. The forward pass is shared (forward.ts); it reads each tensor by its
 * role, so an architecture is described by data, not by a second copy of the model.
 */
import type { Fields, Json } from '../config-fields.ts';
import type { TensorSlot } from '../tensors.ts';
import type { ArchName, ModelConfig } from '../types.ts';

/** The config fields an architecture's parser fills in (the layout and bookkeeping are shared). */
export type ArchConfig = Omit<ModelConfig, 'layers' | 'pruned' | 'raw' | 'residualBiases'>;

export interface Architecture {
  /** Hugging Face `model_type` values this file reads. */
  modelTypes: readonly ArchName[];
  parse(f: Fields, modelType: ArchName): ArchConfig;
  /** Write the config's fields under their Hugging Face names into `out` (raw keys already copied). */
  toJson(cfg: ModelConfig, out: Json): void;
  /** Every tensor the config calls for, in file order. */
  tensors(cfg: ModelConfig): TensorSlot[];
  /** Other names a checkpoint may use for a tensor (GPT-2 state dicts carry a `transformer.` prefix). */
  aliases?(name: string): string[];
  /** Buffers some checkpoints carry that are not weights (causal masks, rotary frequency caches). */
  ignored: RegExp;
  /** When the file decides tying (GPT-2: tied unless lm_head.weight is present). */
  tiedByFile?(has: (name: string) => boolean): boolean;
}
