/**
 * A small Hugging Face tokenizer.json made in the tests: a SentencePiece-style BPE (Metaspace "▁"
 * marks a word start) over single characters, with merges that make whole words of `words`
 * ("▁Mary"), and a TemplateProcessing post-processor that puts "<s>" (id 1) before every text, as
 * Llama's does. `digitPairs` adds the two-digit tokens "00"–"99" (GPT-2 style years); without it
 * digits stay single, as Llama's tokenizer splits them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TinyTokenizerOptions {
  words: string[];
  /** Prefix every text with <s> (default true). */
  addBos?: boolean;
  digitPairs?: boolean;
}

const CHARS = ['▁', ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'-'];

export function tinyTokenizerJson(o: TinyTokenizerOptions): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  CHARS.forEach(add);
  const merges: [string, string][] = [];
  const merge = (a: string, b: string) => {
    if (!(a + b in vocab)) {
      merges.push([a, b]);
      add(a + b);
    }
  };
  // Left to right, so "▁Mary" is built as ((("▁" "M") "a") "r") "y".
  for (const w of o.words) {
    let cur = '▁';
    for (const ch of w) {
      merge(cur, ch);
      cur += ch;
    }
  }
  if (o.digitPairs) {
    for (let i = 0; i < 100; i++) {
      const s = String(i).padStart(2, '0');
      merge(s[0]!, s[1]!);
    }
    for (let c = 10; c < 20; c++) merge('▁', String(c));
  }
  const bos = o.addBos ?? true;
  return {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
    post_processor: bos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
        }
      : null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`), ignore_merges: false },
  };
}

/** Write tokenizer.json into `dir` (created if needed); returns the directory. */
export function writeTinyTokenizer(dir: string, o: TinyTokenizerOptions): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson(o)));
  return dir;
}
