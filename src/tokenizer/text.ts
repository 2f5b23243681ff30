/** Text to task tokens with any Tokenizer: single-token answers and the BOS decision. */
import { fail } from '../util/errors.ts';
import type { Tokenizer } from './types.ts';

/** "GPT-2" or "tokenizer.json": how messages name a tokenizer's tokens. */
export function tokenizerLabel(tok: Tokenizer): string {
  return tok.name === 'gpt2' ? 'GPT-2' : tok.name;
}

/**
 * The one token `text` becomes where it follows a prompt (an answer). `where` names the source for
 * the error message (e.g. `tasks.jsonl:3: field "correct[1]"`): a multi-token answer is a user error.
 */
export function singleToken(tok: Tokenizer, text: string, where: string): number {
  const ids = tok.encodeContinuation(text);
  if (ids.length !== 1) {
    const shown = ids.map((id) => JSON.stringify(tok.tokenString(id))).join(', ');
    const what = tok.name === 'gpt2' ? 'one GPT-2 token' : `one token for ${tok.name}`;
    fail(
      `${where}: ${JSON.stringify(text)} must be exactly ${what}, but it is ${ids.length}` +
        (ids.length > 0 ? ` (${shown})` : '') +
        (ids.length > 1 && !text.startsWith(' ') ? '; answers usually need a leading space, e.g. " Mary"' : ''),
    );
  }
  return ids[0]!;
}

/** Whether `text` is one token where it follows other text. */
export function isSingleToken(tok: Tokenizer, text: string): boolean {
  return tok.encodeContinuation(text).length === 1;
}

/**
 * Whether prompts start with BOS: as the user says (`prependBos` true or false), else as the
 * tokenizer's own post-processor does. Asking for BOS from a tokenizer without one is a user error.
 */
export function wantsBos(tok: Tokenizer, prependBos: boolean | undefined): boolean {
  const want = prependBos ?? tok.addsBos;
  if (want && !tok.bos) fail(`--prepend-bos: ${tokenizerLabel(tok)} has no BOS token`);
  return want;
}

/** A prompt's tokens: BOS (unless the text already starts with it) and the text. */
export function promptTokens(tok: Tokenizer, text: string, bos: boolean): number[] {
  const ids = tok.encode(text);
  if (bos && tok.bos && ids[0] !== tok.bos.id) return [tok.bos.id, ...ids];
  return ids;
}
