/**
 * A Hugging Face `tokenizer.json` (with `tokenizer_config.json` beside it when present), through
 * `@huggingface/tokenizers` — a pure TypeScript implementation of the `tokenizers` format.
 *
 * What carve derives from it, rather than reading one field per tokenizer family:
 *  - addsBos: the post-processor's own behaviour, found by encoding a probe text with and without
 *    special tokens — a TemplateProcessing "$A" preceded by "<s>" (Llama) adds BOS, GPT-2's and
 *    Pythia's ByteLevel post-processor does not;
 *  - bos: the token the post-processor adds; otherwise tokenizer_config.json's `bos_token`; otherwise
 *    an added token spelled like a common BOS ("<|endoftext|>", "<s>", "<|begin_of_text|>", "<bos>");
 *  - continuations: the tokens a text gets after other text are those of ANCHOR + text minus those of
 *    ANCHOR alone. A newline anchors: no tokenizer merges it with a following word, and SentencePiece
 *    tokenizers then mark the word as mid-text ("▁Mary", not "▁▁Mary").
 */
import { readFileSync } from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail } from '../util/errors.ts';
import type { BosToken, Tokenizer } from './types.ts';

const ANCHOR = '\n';
const BOS_SPELLINGS = ['<|endoftext|>', '<s>', '<|begin_of_text|>', '<bos>', '<|im_start|>'];

/** tokenizer_config.json writes special tokens as strings or as {"content": ...} objects. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`${path}: the ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(`${path}: the ${what} must be a JSON object`);
  return json as Record<string, unknown>;
}

export class TokenizerJson implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bos: BosToken | null;
  readonly addsBos: boolean;
  private readonly hf: HfTokenizer;
  private readonly anchorIds: number[];
  private readonly specialIds: Set<number>;

  /** `path` names the file in messages; `json` and `config` are its parsed contents. */
  constructor(path: string, json: Record<string, unknown>, config: Record<string, unknown> = {}) {
    this.name = path;
    const model = json.model;
    if (typeof model !== 'object' || model === null) fail(`${path}: field "model": missing (a tokenizer.json describes its model: BPE, WordPiece, Unigram ...)`);
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added)) fail(`${path}: field "added_tokens": expected a list`);
    try {
      this.hf = new HfTokenizer({ ...json, added_tokens: added }, config);
    } catch (e) {
      fail(`${path}: not a tokenizer.json that carve can read (${(e as Error).message.split('\n')[0]})`);
    }
    const vocab = this.hf.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    if (max < 0) fail(`${path}: field "model": the vocabulary is empty`);
    this.vocabSize = max + 1;
    this.specialIds = new Set((added as { id?: unknown; special?: unknown }[]).filter((t) => t.special === true && typeof t.id === 'number').map((t) => t.id as number));

    // What the post-processor adds in front of a text: the BOS it uses, if any.
    const probe = 'a';
    const plain = this.run(probe, false);
    const full = this.run(probe, true);
    // Whatever comes before the probe's own tokens (an EOS after them does not matter here).
    let at = -1;
    for (let k = 0; k + plain.length <= full.length && at < 0; k++) if (plain.every((id, i) => full[k + i] === id)) at = k;
    const lead = at > 0 ? full.slice(0, at) : [];
    this.addsBos = lead.length === 1;
    const bosFromConfig = tokenContent(config.bos_token);
    let bos: BosToken | null = null;
    if (this.addsBos) bos = { id: lead[0]!, text: this.hf.id_to_token(lead[0]!) ?? String(lead[0]) };
    else {
      for (const text of [bosFromConfig, ...BOS_SPELLINGS]) {
        if (text === undefined) continue;
        const id = this.hf.token_to_id(text);
        if (id !== undefined) {
          bos = { id, text };
          break;
        }
      }
    }
    this.bos = bos;
    this.anchorIds = this.run(ANCHOR, false);
  }

  private run(text: string, special: boolean): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: special }).ids;
    const bad = ids.findIndex((id: unknown) => !Number.isInteger(id));
    if (bad >= 0) fail(`${this.name}: cannot encode ${JSON.stringify(text)}: a piece of it has no token and the tokenizer has no unknown token`);
    return ids;
  }

  encode(text: string): number[] {
    return text === '' ? [] : this.run(text, false);
  }

  encodeContinuation(text: string): number[] {
    if (text === '') return [];
    const ids = this.run(ANCHOR + text, false);
    const a = this.anchorIds;
    if (ids.length >= a.length && a.every((id, i) => ids[i] === id)) return ids.slice(a.length);
    return this.encode(text);
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    this.checkIds(ids);
    return this.hf.decode([...ids], { clean_up_tokenization_spaces: false });
  }

  tokenText(id: number): string {
    this.checkIds([id]);
    if (this.specialIds.has(id)) return this.hf.id_to_token(id) ?? '';
    // Decoders drop the marked start of a text's first token ("▁Mary" → "Mary"); after the anchor it is kept.
    const a = this.anchorIds;
    if (a.length > 0) {
      const base = this.decode(a);
      const both = this.decode([...a, id]);
      if (both.startsWith(base)) return both.slice(base.length);
    }
    return this.decode([id]);
  }

  tokenString(id: number): string {
    const text = this.tokenText(id);
    // Part of a multi-byte character decodes to U+FFFD; the raw token ("<0xE2>", "âĢ") says more.
    return text.includes('\uFFFD') ? (this.hf.id_to_token(id) ?? text) : text;
  }

  private checkIds(ids: readonly number[]): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.hf.id_to_token(id) === undefined) {
        fail(`token id ${id} is not in the vocabulary of ${this.name}`);
      }
    }
  }
}

/** Read DIR/tokenizer.json (and DIR/tokenizer_config.json when present). */
export function readTokenizerJson(tokenizerPath: string, configPath?: string): TokenizerJson {
  const json = readJson(tokenizerPath, 'tokenizer file');
  const config = configPath ? readJson(configPath, 'tokenizer config') : {};
  return new TokenizerJson(tokenizerPath, json, config);
}
