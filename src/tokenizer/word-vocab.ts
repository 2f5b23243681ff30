/**
 * A small, real Hugging Face `tokenizer.json` whose vocabulary is the words of a task: GPT-2's
 * byte-level pre-tokenizer splits text into words (" Mary", " went", ","), and every word that the
 * given texts contain is one token. Any other text still encodes, byte by byte, because the 256
 * byte symbols are in the vocabulary too. It is a BPE model with no merges and `ignore_merges`
 * (whole-word lookup first, as Llama 3's tokenizer does), so both the Python `tokenizers` library and
 * @huggingface/tokenizers read it. carve's small task models use it to keep their embedding small.
 */
import * as hfTokenizers from '@huggingface/tokenizers';

// The package's type declarations use extensionless relative imports, which TypeScript's NodeNext
// resolution does not follow; this is the one class used here, typed by hand.
const { ByteLevelPreTokenizer } = hfTokenizers as unknown as {
  ByteLevelPreTokenizer: new (config: object) => { pre_tokenize_text(text: string): string[] };
};

/** GPT-2's reversible byte → printable character map (bytes that print as themselves keep their character). */
export function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : next++));
  return out;
}

export interface WordVocabOptions {
  /** The special token at id 0 (BOS/EOS). */
  bos: string;
  /** Whether the post-processor prepends BOS to every encoded text (as Llama tokenizers do). */
  addBos: boolean;
}

const PRE_TOKENIZER = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** The byte-level words of `text`, as the tokenizer's pre-tokenizer produces them. */
export function preTokenize(text: string): string[] {
  return new ByteLevelPreTokenizer(PRE_TOKENIZER).pre_tokenize_text(text);
}

/**
 * The tokenizer.json object: id 0 is `bos`, ids 1..256 the byte symbols in byte order, then every
 * word of `texts` in order of first appearance (so the same texts give the same ids).
 */
export function wordVocabTokenizer(texts: Iterable<string>, opts: WordVocabOptions): Record<string, unknown> {
  const vocab = new Map<string, number>([[opts.bos, 0]]);
  for (const s of byteSymbols()) vocab.set(s, vocab.size);
  for (const text of texts) for (const w of preTokenize(text)) if (!vocab.has(w)) vocab.set(w, vocab.size);
  const special = { [opts.bos]: { id: opts.bos, ids: [0], tokens: [opts.bos] } };
  const bosPiece = { SpecialToken: { id: opts.bos, type_id: 0 } };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: opts.bos, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: opts.addBos
      ? {
          type: 'TemplateProcessing',
          single: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [bosPiece, { Sequence: { id: 'A', type_id: 0 } }, bosPiece, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: special,
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab: Object.fromEntries(vocab),
      merges: [],
    },
  };
}
