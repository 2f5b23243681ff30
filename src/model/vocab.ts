/**
 * A model's vocabulary as ids: either the original tokenizer's ids (every model carve loads from a
 * checkpoint), or a trimmed subset (`carve compress --vocab task`), whose embedding rows are stored
 * in "local" order and whose config records `"vocab": [original id of each local id]` (config.ts).
 *
 * Everything outside the model speaks original ids — tokenizers, task files, `--tokens`, JSON
 * outputs — and the model's graphs speak local ids. This map is the one place where the two meet:
 * HookedModel maps every token it is given, and callers that read logits by column map columns back.
 * For an untrimmed model both directions are the identity.
 */
import { fail } from '../util/errors.ts';
import type { ModelConfig } from './types.ts';

export class VocabMap {
  private readonly toLocalIndex: Map<number, number> | undefined;

  private constructor(
    /** Local ids: the model's embedding rows and logit columns. */
    readonly size: number,
    /** original[local] for a trimmed vocabulary; undefined: local ids are the original ones. */
    private readonly originals: readonly number[] | undefined,
  ) {
    if (originals) this.toLocalIndex = new Map(originals.map((id, i) => [id, i]));
  }

  static of(cfg: Pick<ModelConfig, 'vocabSize' | 'vocab'>): VocabMap {
    return new VocabMap(cfg.vocabSize, cfg.vocab);
  }

  /** True when the model keeps only some of its tokenizer's tokens. */
  get trimmed(): boolean {
    return this.originals !== undefined;
  }

  /** The original ids the model can read and predict, in local order. */
  originalIds(): number[] {
    return this.originals ? [...this.originals] : Array.from({ length: this.size }, (_, i) => i);
  }

  has(original: number): boolean {
    if (this.toLocalIndex) return this.toLocalIndex.has(original);
    return Number.isSafeInteger(original) && original >= 0 && original < this.size;
  }

  /** The local id of an original id, or undefined when the model does not keep it. */
  local(original: number): number | undefined {
    if (this.toLocalIndex) return this.toLocalIndex.get(original);
    return this.has(original) ? original : undefined;
  }

  /** The original id of a local id (a logit column, an embedding row). */
  original(local: number): number {
    if (!Number.isSafeInteger(local) || local < 0 || local >= this.size) throw new Error(`local token id ${local} out of range 0..${this.size - 1}`);
    return this.originals ? this.originals[local] : local;
  }

  /** Why `original` cannot be read, as the end of an error message naming the token. */
  missing(original: number, shown?: string): string {
    const name = `token ${original}${shown === undefined ? '' : ` (${JSON.stringify(shown)})`}`;
    if (this.trimmed) {
      return `${name} is not in the model's vocabulary: it keeps only the ${this.size} tokens its task can produce (carve compress --vocab task; add tokens with --vocab-extra)`;
    }
    return `${name} is outside the model's vocabulary of ${this.size}`;
  }

  /**
   * Original ids → local ids. A token the model does not keep is a user error naming it;
   * `describe` turns an id into readable text for that message (the tokenizer's view of it).
   */
  toLocal(ids: readonly number[], describe?: (id: number) => string | undefined): number[] {
    if (!this.toLocalIndex) {
      for (const id of ids) if (!this.has(id)) fail(this.missing(id, safeDescribe(describe, id)));
      return ids as number[];
    }
    return ids.map((id) => {
      const l = this.toLocalIndex!.get(id);
      if (l === undefined) fail(this.missing(id, safeDescribe(describe, id)));
      return l;
    });
  }
}

function safeDescribe(describe: ((id: number) => string | undefined) | undefined, id: number): string | undefined {
  if (!describe) return undefined;
  try {
    return describe(id);
  } catch {
    return undefined;
  }
}

/** Check a config's `"vocab"` list: distinct non-negative integers, one per embedding row. */
export function checkVocabList(list: unknown, vocabSize: number, where: string): number[] {
  if (!Array.isArray(list)) fail(`${where} must be an array of original token ids`);
  if (list.length !== vocabSize) fail(`${where} lists ${list.length} token ids but "vocab_size" is ${vocabSize}`);
  const seen = new Set<number>();
  list.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) fail(`${where}[${i}] must be a non-negative integer token id, found ${JSON.stringify(id)}`);
    if (seen.has(id)) fail(`${where}[${i}]: token id ${id} is listed twice`);
    seen.add(id);
  });
  return [...(list as number[])];
}
