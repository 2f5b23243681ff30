/**
 * GPT-2 byte-level BPE. gpt-tokenizer's `gpt2` encoding has exactly GPT-2's ranks (r50k_base),
 * so ids match Hugging Face's `gpt2` tokenizer.
 */
import {
  encode as bpeEncode,
  decode as bpeDecode,
} from 'gpt-tokenizer/encoding/gpt2';
import ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { fail } from '../util/errors.ts';
import type { Tokenizer } from './types.ts';
import { singleToken as singleTokenOf } from './text.ts';

/** `<|endoftext|>`: GPT-2's BOS, EOS and (in TransformerLens) pad token. */
export const BOS_ID = 50256;
export const BOS_TEXT = '<|endoftext|>';
export const VOCAB_SIZE = 50257;

// Hugging Face's GPT-2 tokenizer turns the literal text "<|endoftext|>" into token 50256 wherever it
// appears (it is an added special token, split off before anything else); the reference builds
// BOS-prefixed prompts exactly that way. We split it off ourselves: gpt-tokenizer 4.0's
// `allowedSpecial` finds it only at the very start of the text.
export function encode(text: string): number[] {
  const out: number[] = [];
  text.split(BOS_TEXT).forEach((part, i) => {
    if (i > 0) out.push(BOS_ID);
    if (part !== '') out.push(...bpeEncode(part));
  });
  return out;
}

export function decode(ids: readonly number[]): string {
  return bpeDecode(ids);
}

/**
 * A readable form of one token. Most tokens are whole UTF-8 text and come back as that text
 * (" Mary"); a token holding only part of a multi-byte character cannot be decoded alone, so it is
 * shown as its bytes, e.g. "<0xE2><0x80>", rather than as an empty or replacement string.
 */
export function tokenString(id: number): string {
  if (id === BOS_ID) return BOS_TEXT;
  if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) fail(`token id ${id} is outside the GPT-2 vocabulary (0..${VOCAB_SIZE - 1})`);
  const entry = (ranks as (string | number[])[])[id];
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) return entry.map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
  return decode([id]);
}

/** The one GPT-2 token `text` encodes to, or a CarveError naming `where` (see text.ts singleToken). */
export function singleToken(text: string, where: string): number {
  return singleTokenOf(gpt2Tokenizer, text, where);
}

/** A token for display whatever its id: tokenString, or `<id>` for ids outside GPT-2's vocabulary. */
export function displayToken(id: number): string {
  return Number.isInteger(id) && id >= 0 && id < VOCAB_SIZE ? tokenString(id) : `<${id}>`;
}
/**
 * GPT-2 BPE as a Tokenizer: no BOS from its post-processor (Hugging Face's GPT-2 tokenizer adds
 * none), and a text's tokens do not depend on what precedes it, so a continuation encodes like
 * any text.
 */
export const gpt2Tokenizer: Tokenizer = {
  name: 'gpt2',
  vocabSize: VOCAB_SIZE,
  bos: { id: BOS_ID, text: BOS_TEXT },
  addsBos: false,
  encode,
  encodeContinuation: encode,
  decode,
  tokenText: (id) => decode([id]),
  tokenString,
};
