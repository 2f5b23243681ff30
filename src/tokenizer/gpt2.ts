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

/**
 * The one token that `text` encodes to. `where` names the source for the error message
 * (e.g. `tasks.jsonl:3: field "correct"`), since a multi-token answer is a user error.
 */
export function singleToken(text: string, where: string): number {
  const ids = encode(text);
  if (ids.length !== 1) {
    const shown = ids.map((id) => JSON.stringify(tokenString(id))).join(', ');
    fail(
      `${where}: ${JSON.stringify(text)} must be exactly one GPT-2 token, but it is ${ids.length}` +
        (ids.length > 0 ? ` (${shown})` : '') +
        (ids.length > 1 && !text.startsWith(' ') ? '; answers usually need a leading space, e.g. " Mary"' : ''),
    );
  }
  return ids[0]!;
}
