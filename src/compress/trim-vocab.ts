/**
 * Trimming a model's vocabulary and context (SPEC "Vocabulary and export"): keep only the embedding
 * and unembedding rows of chosen tokens, and only the first N rows of a learned position table.
 * Works on any architecture through the tensor table: every tensor with a `vocab` axis (the token
 * embedding, an untied unembedding) loses the other rows, every tensor with a `ctx` axis (GPT-2's
 * position table) is cut to N rows. Nothing else changes, so the logits of kept tokens are exactly
 * the untrimmed model's (the same rows times the same final residual stream).
 *
 * Rows are kept in ascending original id, and the config records the original id of each row
 * (`vocab`), so the model maps tokens itself (src/model/vocab.ts). Trimming a trimmed model again
 * composes the maps: `vocab` always lists ids of the original tokenizer.
 */
import { fail } from '../util/errors.ts';
import { tensorTable } from '../model/arch/index.ts';
import { sliceTensor } from '../model/slice.ts';
import type { ModelConfig, ModelData, Weights } from '../model/types.ts';
import { VocabMap } from '../model/vocab.ts';

export interface TrimSpec {
  /** Original token ids to keep (any order, duplicates ignored); undefined: keep the vocabulary. */
  keep?: Iterable<number>;
  /** New context length (≤ the model's); undefined: unchanged. */
  maxLen?: number;
}

/** A new model keeping only `spec.keep`'s token rows and `spec.maxLen` positions; the input is not modified. */
export function trimModel(model: ModelData, spec: TrimSpec): ModelData {
  const cfg = model.config;
  const vocab = VocabMap.of(cfg);
  let originals: number[] | undefined;
  let localRows: number[] | undefined;
  if (spec.keep !== undefined) {
    originals = [...new Set(spec.keep)].sort((a, b) => a - b);
    if (originals.length === 0) fail('the vocabulary to keep is empty');
    localRows = originals.map((id) => {
      const l = vocab.local(id);
      if (l === undefined) fail(`cannot keep ${vocab.missing(id)}`);
      return l;
    });
  }
  const maxLen = spec.maxLen ?? cfg.nCtx;
  if (!Number.isSafeInteger(maxLen) || maxLen < 1) fail(`the context length must be a positive integer, got ${maxLen}`);
  if (maxLen > cfg.nCtx) fail(`cannot extend the context from ${cfg.nCtx} to ${maxLen} positions`);

  const config: ModelConfig = {
    ...cfg,
    vocabSize: localRows ? localRows.length : cfg.vocabSize,
    nCtx: maxLen,
    pruned: true,
    raw: { ...cfg.raw },
    ...(originals ? { vocab: originals } : {}),
  };
  const positions = Array.from({ length: maxLen }, (_, i) => i);
  const weights: Weights = new Map();
  const outSlots = tensorTable(config);
  for (const slot of tensorTable(cfg)) {
    const t = model.weights.get(slot.name);
    if (!t) throw new Error(`trimModel: tensor ${slot.name} is missing`);
    const touched = slot.axes.some((a) => a.includes('vocab') || a.includes('ctx'));
    weights.set(slot.name, touched ? sliceTensor(cfg, slot, t, { ...(localRows ? { vocab: localRows } : {}), ctx: positions }) : t);
  }
  if (outSlots.length !== weights.size || outSlots.some((s) => !weights.has(s.name))) throw new Error('trimModel: tensor table mismatch');
  return { config, weights };
}
