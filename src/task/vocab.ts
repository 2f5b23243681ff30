/**
 * The tokens a task can produce and its longest prompt: what `carve compress --vocab task` keeps.
 *
 *  - The built-in IOI generator: every token of every template (ABBA and BABA, all of them, whatever
 *    the prompt type) filled with every name, place and object, plus BOS — so prompts of any seed,
 *    size, prompt type, flip and --prepend-bos run on the trimmed model. Corrupt prompts are
 *    templates with other names in the name slots, so they are covered too.
 *  - A task file: the tokens that occur in its prompts and answers.
 *
 * Enumerating every filling is out of the question (109³ names per template), and not needed: a
 * tokenizer that first splits text into words (GPT-2's pre-tokenizer; any tokenizer whose splits
 * fall at the spaces around the slots) makes each slot's tokens depend only on that slot's value and
 * the template text next to it. So each slot is filled with every value in turn, the others with
 * their first value, and the tokens and lengths are combined slot by slot. The test checks the
 * result against generated prompts of many seeds and every prompt type and flip.
 */
import type { PromptPair } from './types.ts';
import { ABBA_TEMPLATES, BABA_TEMPLATES, NAMES, OBJECTS, PLACES } from './ioi-data.ts';

export interface TaskVocabulary {
  /** Original token ids, ascending. */
  tokens: number[];
  /** The longest prompt (clean or corrupt) the task can produce, in tokens. */
  maxLen: number;
}

export type Encode = (text: string) => number[];

const SLOT_VALUES: Record<string, readonly string[]> = { '[A]': NAMES, '[B]': NAMES, '[PLACE]': PLACES, '[OBJECT]': OBJECTS };
const SLOT = /\[(?:A|B|PLACE|OBJECT)\]/g;

/** A template as literal text between slots. */
function splitTemplate(template: string): { text: string[]; slots: string[] } {
  const text: string[] = [];
  const slots: string[] = [];
  let last = 0;
  for (const m of template.matchAll(SLOT)) {
    text.push(template.slice(last, m.index));
    slots.push(m[0]);
    last = m.index! + m[0].length;
  }
  text.push(template.slice(last));
  return { text, slots };
}

function fill(parts: { text: string[]; slots: string[] }, values: string[]): string {
  let out = parts.text[0];
  values.forEach((v, i) => (out += v + parts.text[i + 1]));
  return out;
}

/**
 * IOI's vocabulary under a tokenizer. `bos` is the tokenizer's BOS id (the generator's
 * --prepend-bos token), counted in the longest prompt as well.
 */
export function ioiVocabulary(encode: Encode, bos: number): TaskVocabulary {
  const tokens = new Set<number>([bos]);
  let maxLen = 0;
  for (const template of [...BABA_TEMPLATES, ...ABBA_TEMPLATES]) {
    const parts = splitTemplate(template);
    const defaults = parts.slots.map((s) => SLOT_VALUES[s][0]);
    const base = encode(fill(parts, defaults));
    base.forEach((t) => tokens.add(t));
    let longest = base.length;
    parts.slots.forEach((slot, i) => {
      let grow = 0;
      for (const v of SLOT_VALUES[slot]) {
        const values = [...defaults];
        values[i] = v;
        const ids = encode(fill(parts, values));
        ids.forEach((t) => tokens.add(t));
        grow = Math.max(grow, ids.length - base.length);
      }
      longest += grow;
    });
    // The prompt is the sentence without its final name (one token), after an optional BOS.
    maxLen = Math.max(maxLen, longest - 1 + 1);
  }
  return { tokens: [...tokens].sort((a, b) => a - b), maxLen };
}

/**
 * Texts that between them hold every word IOI's generator can write: each template (ABBA and BABA)
 * with each slot filled by every value in turn and the other slots by their first value. Under a
 * tokenizer that splits text into words first, these cover every prompt of any seed (see above);
 * a task vocabulary built from them (src/tokenizer/word-vocab.ts) encodes every IOI prompt in words.
 */
export function ioiTexts(): string[] {
  const out: string[] = [];
  for (const template of [...BABA_TEMPLATES, ...ABBA_TEMPLATES]) {
    const parts = splitTemplate(template);
    const defaults = parts.slots.map((s) => SLOT_VALUES[s][0]);
    out.push(fill(parts, defaults));
    parts.slots.forEach((slot, i) => {
      for (const v of SLOT_VALUES[slot]) {
        const values = [...defaults];
        values[i] = v;
        out.push(fill(parts, values));
      }
    });
  }
  return out;
}

/** The tokens that occur in a task's prompt pairs (prompts and answers) and its longest prompt. */
export function pairsVocabulary(pairs: readonly PromptPair[]): TaskVocabulary {
  const tokens = new Set<number>();
  let maxLen = 0;
  for (const p of pairs) {
    for (const t of [...p.clean, ...p.corrupt, ...p.correct, ...p.incorrect]) tokens.add(t);
    maxLen = Math.max(maxLen, p.clean.length, p.corrupt.length);
  }
  return { tokens: [...tokens].sort((a, b) => a - b), maxLen };
}
