/**
 * The greater-than task of Hanna, Liu & Variengien 2023, "How does GPT-2 compute greater-than?"
 * (code: github.com/hannamw/gpt2-greater-than, `dataset.py` and `utils.py`):
 *
 *   clean    "The {noun} lasted from the year {XX}{YY} to the year {XX}"
 *   corrupt  "The {noun} lasted from the year {XX}01 to the year {XX}"
 *   correct  the two-digit year tokens greater than YY ("YY+1" … "99")
 *   incorrect those less than or equal to YY ("00" … "YY")
 *
 * How it follows the original:
 *  - nouns: the 120 nouns of the original's `cache/potential_nouns.txt`, as carried by ACDC's port
 *    (`acdc/greaterthan/utils.py`); each is one GPT-2 token with its leading space. For another
 *    tokenizer the nouns that are not one token are dropped (deterministically, in list order), as IOI
 *    does with names, and the task's notes say so.
 *  - years: `get_valid_years(tokenizer, 1000, 1900)` of the circuit-discovery script — years whose
 *    " XXYY" tokenises as [" XX", "YY"], minus the first and the last valid year of each century. carve
 *    also needs " XX01" to tokenise that way (the corrupt prompt must keep the clean prompt's length
 *    for resample ablation); for GPT-2 that leaves centuries 11–18 (" 1001" is " 100" + "1").
 *  - draws: as `YearDataset(..., balanced=True)` with Python's `random` (src/task/random-python.ts,
 *    seeded with --seed): the nouns by `random.choices`, then per prompt a year drawn by
 *    `random.randrange` from the valid years ending in that prompt's YY. The original cycles YY through
 *    2, 3, …, 98 (so its first 25 prompts all have YY ≤ 26); carve spreads prompt i's YY evenly over
 *    the same range, YY = the ⌊i·97/n⌋-th of 2…98, so any n covers it (the same counts for n = 97k).
 *  - BOS: the original's main dataset (`eos=True`) starts each sentence with "<|endoftext|> " — BOS,
 *    then the sentence with a leading space; `--prepend-bos` gives exactly that.
 *  - metric: the probability difference (SPEC `prob-diff`), the original's `prob_diff`, is the task's
 *    default.
 *
 * The two-digit year endings "00"–"99" must each be one token: a tokenizer that splits digits
 * (Llama, Mistral, Qwen2) cannot express the answers, and gets one clear error.
 */
import { fail } from '../util/errors.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { isSingleToken, tokenizerLabel, wantsBos } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { PyRandom } from './random-python.ts';
import type { PromptPair, Task } from './types.ts';

export const GREATER_THAN_NOUNS: readonly string[] = [
  'abduction', 'accord', 'affair', 'agreement', 'appraisal', 'assaults', 'assessment', 'attack',
  'attempts', 'campaign', 'captivity', 'case', 'challenge', 'chaos', 'clash', 'collaboration',
  'coma', 'competition', 'confrontation', 'consequence', 'conspiracy', 'construction', 'consultation', 'contact',
  'contract', 'convention', 'cooperation', 'custody', 'deal', 'decline', 'decrease', 'demonstrations',
  'development', 'disagreement', 'disorder', 'dispute', 'domination', 'dynasty', 'effect', 'effort',
  'employment', 'endeavor', 'engagement', 'epidemic', 'evaluation', 'exchange', 'existence', 'expansion',
  'expedition', 'experiments', 'fall', 'fame', 'flights', 'friendship', 'growth', 'hardship',
  'hostility', 'illness', 'impact', 'imprisonment', 'improvement', 'incarceration', 'increase', 'insurgency',
  'invasion', 'investigation', 'journey', 'kingdom', 'marriage', 'modernization', 'negotiation', 'notoriety',
  'obstruction', 'operation', 'order', 'outbreak', 'outcome', 'overhaul', 'patrols', 'pilgrimage',
  'plague', 'plan', 'practice', 'process', 'program', 'progress', 'project', 'pursuit',
  'quest', 'raids', 'reforms', 'reign', 'relationship', 'retaliation', 'riot', 'rise',
  'rivalry', 'romance', 'rule', 'sanctions', 'shift', 'siege', 'slump', 'stature',
  'stint', 'strikes', 'study', 'test', 'testing', 'tests', 'therapy', 'tour',
  'tradition', 'treaty', 'trial', 'trip', 'unemployment', 'voyage', 'warfare', 'work',
];

/** The centuries the original samples from (years 1000–1899). */
export const GREATER_THAN_CENTURIES: readonly number[] = [10, 11, 12, 13, 14, 15, 16, 17, 18];
/** Start years end in 02–98 (SPEC); the corrupt prompt's year ends in 01. */
export const FIRST_YY = 2;
export const LAST_YY = 98;
export const CORRUPT_YY = 1;

export interface GreaterThanOptions {
  n: number;
  seed: number;
  /** Start every prompt with BOS; undefined: as the tokenizer's post-processor does. */
  prependBos?: boolean;
}

export const GREATER_THAN_DEFAULTS = { n: 25, seed: 1 } as const;

/** Per-prompt record: the noun and the start year. */
export interface GreaterThanInfo {
  noun: string;
  year: number;
}

export interface GreaterThanTask extends Task {
  greaterThan: GreaterThanInfo[];
}

const two = (yy: number) => String(yy).padStart(2, '0');
const sentence = (noun: string, century: number, yy: number) => `The ${noun} lasted from the year ${century}${two(yy)} to the year ${century}`;

/** What a tokenizer allows: the token of each two-digit ending, the usable nouns and the valid years. */
export interface GreaterThanVocabulary {
  /** yearTokens[yy]: the token of "00".."99" where it follows " XX". */
  yearTokens: number[];
  centuryTokens: Map<number, number>;
  nouns: string[];
  /** Valid start years (YY 02–98 after dropping each century's first and last), ascending. */
  years: number[];
}

export function greaterThanVocabulary(tok: Tokenizer): GreaterThanVocabulary {
  const label = tokenizerLabel(tok);
  const yearTokens: number[] = [];
  for (let yy = 0; yy < 100; yy++) {
    const ids = tok.encodeContinuation(two(yy));
    if (ids.length !== 1) {
      fail(
        `--task greater-than: ${label} splits the two-digit year ending "${two(yy)}" into ${ids.length} tokens ` +
          `(${ids.map((id) => JSON.stringify(tok.tokenString(id))).join(', ')}); the task's answers are the endings "00"–"99" as single tokens, ` +
          'as GPT-2 writes years (" 17" + "32"), so tokenizers that split digits (Llama, Mistral, Qwen2) cannot run it',
      );
    }
    yearTokens.push(ids[0]!);
  }
  const centuryTokens = new Map<number, number>();
  const years: number[] = [];
  for (const century of GREATER_THAN_CENTURIES) {
    const cIds = tok.encodeContinuation(' ' + century);
    if (cIds.length !== 1) continue;
    const c = cIds[0]!;
    const splits = (yy: number) => {
      const ids = tok.encodeContinuation(` ${century}${two(yy)}`);
      return ids.length === 2 && ids[0] === c && ids[1] === yearTokens[yy];
    };
    if (!splits(CORRUPT_YY)) continue;
    const valid: number[] = [];
    for (let yy = 0; yy < 100; yy++) if (splits(yy)) valid.push(yy);
    // As get_valid_years: each century's first and last valid year are left out.
    for (const yy of valid.slice(1, -1)) if (yy >= FIRST_YY && yy <= LAST_YY) years.push(century * 100 + yy);
    centuryTokens.set(century, c);
  }
  if (years.length === 0) fail(`--task greater-than: no year from 1000 to 1899 tokenises as [" XX", "YY"] for ${label}`);
  const nouns = GREATER_THAN_NOUNS.filter((n) => isSingleToken(tok, ' ' + n));
  if (nouns.length === 0) fail(`--task greater-than: none of the task's nouns is one token for ${label}`);
  return { yearTokens, centuryTokens, nouns, years };
}

function checkOptions(o: GreaterThanOptions): void {
  if (!Number.isInteger(o.n) || o.n < 1) fail(`--n: expected a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 4294967295) fail(`--seed: expected an integer from 0 to 4294967295, got ${o.seed}`);
}

/** The prompts' nouns and start years for a seed (no tokenizer involved beyond the word lists). */
export function drawGreaterThan(n: number, seed: number, nouns: readonly string[], years: readonly number[]): GreaterThanInfo[] {
  const rng = new PyRandom(seed);
  // random.choices(nouns, k=n): floor(random() * len) per draw.
  const drawn = Array.from({ length: n }, () => nouns[Math.floor(rng.random() * nouns.length)]!);
  const byYy = new Map<number, number[]>();
  for (const y of years) {
    const yy = y % 100;
    if (!byYy.has(yy)) byYy.set(yy, []);
    byYy.get(yy)!.push(y);
  }
  const yys = [...byYy.keys()].sort((a, b) => a - b);
  return drawn.map((noun, i) => {
    const pool = byYy.get(yys[Math.floor((i * yys.length) / n)]!)!;
    return { noun, year: pool[rng.randrange(pool.length)]! };
  });
}

export function generateGreaterThan(options: Partial<GreaterThanOptions> = {}, tok: Tokenizer = gpt2Tokenizer): GreaterThanTask {
  const opts: GreaterThanOptions = { ...GREATER_THAN_DEFAULTS, ...options };
  checkOptions(opts);
  const bos = wantsBos(tok, options.prependBos) ? tok.bos! : undefined;
  const vocab = greaterThanVocabulary(tok);
  const info = drawGreaterThan(opts.n, opts.seed, vocab.nouns, vocab.years);
  const label = tokenizerLabel(tok);
  const pairs: PromptPair[] = info.map(({ noun, year }) => {
    const century = Math.floor(year / 100);
    const yy = year % 100;
    const prompt = (y: number) => {
      // With BOS, as the original's eos=True: "<|endoftext|> The ...".
      const text = sentence(noun, century, y);
      const ids = bos ? [bos.id, ...tok.encode(' ' + text)] : tok.encode(text);
      return { text: bos ? `${bos.text} ${text}` : text, ids };
    };
    const clean = prompt(yy);
    const corrupt = prompt(CORRUPT_YY);
    const ct = vocab.centuryTokens.get(century)!;
    const at = (ids: number[], y: number) => ids.findIndex((t, i) => t === ct && ids[i + 1] === vocab.yearTokens[y]);
    if (clean.ids.at(-1) !== ct || at(clean.ids, yy) < 0 || corrupt.ids.length !== clean.ids.length || at(corrupt.ids, CORRUPT_YY) < 0) {
      fail(`--task greater-than: ${label} does not tokenise ${JSON.stringify(clean.text)} as the task needs (the years as [" ${century}", "${two(yy)}"], the prompt ending in " ${century}")`);
    }
    const correct: number[] = [];
    const incorrect: number[] = [];
    for (let y = 0; y < 100; y++) (y > yy ? correct : incorrect).push(vocab.yearTokens[y]!);
    return { clean: clean.ids, corrupt: corrupt.ids, correct, incorrect, cleanText: clean.text, corruptText: corrupt.text };
  });
  const notes: string[] = [];
  if (vocab.nouns.length < GREATER_THAN_NOUNS.length) {
    notes.push(`greater-than: ${vocab.nouns.length} of the ${GREATER_THAN_NOUNS.length} nouns are one token for ${label}; prompts draw from those`);
  }
  let name = `greater-than(n=${opts.n},seed=${opts.seed}`;
  if (bos) name += ',bos';
  if (vocab.nouns.length < GREATER_THAN_NOUNS.length) name += `,nouns=${vocab.nouns.length}/${GREATER_THAN_NOUNS.length}`;
  return { name: name + ')', pairs, defaultMetric: 'prob-diff', greaterThan: info, ...(notes.length ? { notes } : {}) };
}

/**
 * Every token greater-than prompts can hold under a tokenizer, and the longest prompt: each noun in
 * the first valid year's sentence, each valid year (both the clean year and the corrupt XX01) in the
 * first noun's, the BOS forms, and all hundred two-digit endings (the answer sets). The sentence's
 * words are independent of each other under a word-splitting tokenizer, so this covers every seed.
 */
export function greaterThanTaskVocabulary(tok: Tokenizer): { tokens: number[]; maxLen: number } {
  const vocab = greaterThanVocabulary(tok);
  const tokens = new Set<number>(vocab.yearTokens);
  let maxLen = 0;
  const add = (text: string) => {
    for (const ids of [tok.encode(text), ...(tok.bos ? [[tok.bos.id, ...tok.encode(' ' + text)]] : [])]) {
      ids.forEach((t) => tokens.add(t));
      maxLen = Math.max(maxLen, ids.length);
    }
  };
  const first = vocab.years[0]!;
  for (const noun of vocab.nouns) add(sentence(noun, Math.floor(first / 100), first % 100));
  for (const year of vocab.years) {
    const century = Math.floor(year / 100);
    add(sentence(vocab.nouns[0]!, century, year % 100));
    add(sentence(vocab.nouns[0]!, century, CORRUPT_YY));
  }
  return { tokens: [...tokens].sort((a, b) => a - b), maxLen };
}
