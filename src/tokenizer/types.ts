/**
 * What carve needs from a tokenizer. Two implementations: GPT-2 BPE (gpt2.ts, for models without a
 * tokenizer.json) and a Hugging Face `tokenizer.json` (hf.ts). load.ts picks one for a model directory.
 *
 * BOS is never added by `encode`: whether a prompt starts with BOS is the task's decision (see
 * `wantsBos` in text.ts), made from `addsBos` — what the tokenizer's own post-processor does — unless
 * the user says otherwise.
 */

export interface BosToken {
  id: number;
  /** Its text, e.g. "<|endoftext|>" or "<s>". */
  text: string;
}

export interface Tokenizer {
  /** "gpt2", or the tokenizer.json path: for messages and task records. */
  readonly name: string;
  /** One more than the highest token id (added tokens included). */
  readonly vocabSize: number;
  /** The beginning-of-sequence token, when the tokenizer has one. */
  readonly bos: BosToken | null;
  /** Whether the tokenizer's post-processor starts every text with BOS (Llama: yes; GPT-2, Pythia: no). */
  readonly addsBos: boolean;
  /** Text to ids, no special tokens added (special-token text in the input, like "<|endoftext|>", still maps to its id). */
  encode(text: string): number[];
  /**
   * The ids `text` gets where it follows other text — an answer after its prompt. Differs from
   * `encode` for SentencePiece-style tokenizers, where a text's start is marked ("▁▁Mary" alone,
   * "▁Mary" after a word).
   */
  encodeContinuation(text: string): number[];
  /** Ids to text. */
  decode(ids: readonly number[]): string;
  /** The text one token adds where it follows other text (" Mary"), for writing answers as text. */
  tokenText(id: number): string;
  /** A readable form of one token: its text, or its bytes ("<0xE2><0x80>") where it is part of a character. */
  tokenString(id: number): string;
}
