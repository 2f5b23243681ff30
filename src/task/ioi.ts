/**
 * The IOI task generator, reproducing the Python reference `ioi_dataset.py` (ARENA / ACDC lineage):
 * for the same seed, N and prompt type, the same clean prompts (text, IO, S, template index, ABBA or
 * BABA label) as `IOIDataset(prompt_type, N, seed=seed)`, and the same token positions as its
 * `word_idx`.
 *
 * How the reference draws, which this file follows step by step:
 *   - `IOIDataset.__init__` calls `random.seed(seed)` then `np.random.seed(seed)`. Generation uses only
 *     Python's `random`; numpy's generator is seeded but unused until flipping reseeds it.
 *   - 'mixed' takes BABA_TEMPLATES[:7] + ABBA_TEMPLATES[:7] (nb_templates = 15, 15 // 2 = 7) and
 *     `random.shuffle`s them; 'ABBA' / 'BABA' take all 15 of their list, unshuffled.
 *   - per prompt (`gen_prompt_uniform`): `random.choice(templates)`; TEMPLATE_IDX is that template's
 *     index in the (shuffled) list; then three `random.choice(NAMES)` at a time until the three differ
 *     (the third name is drawn even though only ABC prompts use it); then `random.choice` of a place,
 *     then of an object. [A] is IO, [B] is S.
 *   - the ABBA/BABA label compares `text.index(IO)` with `text.index(S)`: substring positions, not
 *     word positions (see `labelKind`).
 *
 * Other tokenizers: every name must be one token where it follows a word (" Mary"), since it is
 * both an answer and a position. The generator keeps the names of NAMES that are (in list order)
 * and draws from that list, so prompts stay deterministic for a seed; with GPT-2 every name is one
 * token and nothing changes. The task's name and notes say how many names were kept.
 */
import { fail } from '../util/errors.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { isSingleToken, singleToken, tokenizerLabel, wantsBos } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { ABBA_TEMPLATES, BABA_TEMPLATES, NAMES, OBJECTS, PLACES } from './ioi-data.ts';
import { DEFAULT_FLIP, flipPrompt, flipSeed, parseFlip, type FlippedPrompt } from './flip.ts';
import { PyRandom } from './random-python.ts';
import { NpRandomState } from './random-numpy.ts';
import type { IoiInfo, IoiKind, IoiOptions, IoiPromptType, IoiTask, PromptPair } from './types.ts';

export const IOI_PROMPT_TYPES: readonly IoiPromptType[] = ['mixed', 'ABBA', 'BABA'];
export const IOI_DEFAULTS: IoiOptions = { n: 25, seed: 1, promptType: 'mixed', flip: DEFAULT_FLIP };

/** numpy's legacy seeding only takes [0, 2^32); the reference seeds numpy with seed and the flip seed. */
const MAX_NUMPY_SEED = 4294967295;

/** A clean prompt as `gen_prompt_uniform` returns it, plus the reference's ABBA/BABA label. */
export interface IoiPrompt {
  text: string;
  io: string;
  s: string;
  templateIndex: number;
  place: string;
  object: string;
  kind: IoiKind;
}

/** The template list `IOIDataset` uses for a prompt type (after its shuffle, for 'mixed'). */
export function ioiTemplates(promptType: IoiPromptType, rng: PyRandom): string[] {
  const nbTemplates = BABA_TEMPLATES.length;
  switch (promptType) {
    case 'ABBA':
      return ABBA_TEMPLATES.slice(0, nbTemplates);
    case 'BABA':
      return BABA_TEMPLATES.slice(0, nbTemplates);
    case 'mixed': {
      const half = Math.floor(nbTemplates / 2);
      const templates = [...BABA_TEMPLATES.slice(0, half), ...ABBA_TEMPLATES.slice(0, half)];
      rng.shuffle(templates);
      return templates;
    }
  }
}

/**
 * The reference's label: ABBA when the IO's first occurrence comes before the S's first occurrence,
 * as substrings of the whole sentence. Because "Andre" is a prefix of "Andrew", an ABBA prompt with
 * IO = Andrew and S = Andre ("Then, Andrew and Andre ...") is labelled BABA; we keep that, since the
 * label also picks which flip rule applies.
 */
export function labelKind(text: string, io: string, s: string): IoiKind {
  return text.indexOf(io) < text.indexOf(s) ? 'ABBA' : 'BABA';
}

/** `str.replace(old, new)` in Python replaces every occurrence. */
const replaceAll = (s: string, from: string, to: string): string => s.split(from).join(to);

/** The clean prompts of `IOIDataset(prompt_type, N, seed)`, drawing names from `names` (default: the reference's list). */
export function generateIoiPrompts(n: number, seed: number, promptType: IoiPromptType, names: readonly string[] = NAMES): IoiPrompt[] {
  const rng = new PyRandom(seed);
  const templates = ioiTemplates(promptType, rng);
  const prompts: IoiPrompt[] = [];
  for (let k = 0; k < n; k++) {
    const template = rng.choice(templates);
    const templateIndex = templates.indexOf(template);
    let io = '';
    let s = '';
    let third = '';
    while (new Set([io, s, third]).size < 3) {
      io = rng.choice(names);
      s = rng.choice(names);
      third = rng.choice(names);
    }
    const place = rng.choice(PLACES);
    const object = rng.choice(OBJECTS);
    const filled = replaceAll(replaceAll(template, '[PLACE]', place), '[OBJECT]', object);
    const text = replaceAll(replaceAll(filled, '[A]', io), '[B]', s);
    prompts.push({ text, io, s, templateIndex, place, object, kind: labelKind(text, io, s) });
  }
  return prompts;
}

/** The corrupt prompts of `IOIDataset.gen_flipped_prompts(flip)`, in our fixed name order (see flip.ts). */
export function flipIoiPrompts(prompts: readonly IoiPrompt[], seed: number, flip: string, names: readonly string[] = NAMES): FlippedPrompt[] {
  const parsed = parseFlip(flip);
  const fseed = flipSeed(seed, flip);
  if (fseed > MAX_NUMPY_SEED) fail(`--seed: ${seed} plus the flip string's character codes exceeds numpy's seed limit 2**32 - 1`);
  const rng = new NpRandomState(fseed);
  return prompts.map((p) => flipPrompt(p.text, p.kind, parsed, names, rng));
}

/**
 * The names of NAMES that are one token after a word for this tokenizer, in list order. The
 * prompts need three different names.
 */
export function ioiNames(tok: Tokenizer): string[] {
  const kept = NAMES.filter((n) => isSingleToken(tok, ' ' + n));
  if (kept.length < 3) fail(`ioi: only ${kept.length} of the ${NAMES.length} IOI names are one token for ${tokenizerLabel(tok)} (with a leading space); the task needs at least 3`);
  return kept;
}

/**
 * The reference's `word_idx` for one prompt, as token indices into the clean prompt.
 *   IO, S1: first occurrence of " IO" / " S" in the sentence without its final word; S2: last " S".
 *   end: the last token of the clean prompt (the reference finds it from the padding of the
 *        BOS-prefixed, padded batch, which comes to the same index).
 *   starts: 0, even with BOS (as in the reference).
 *   punct: the last "." token if the sentence has a '.', else the last ','; computed by the
 *        reference on the sentence tokenized WITHOUT BOS, so with --prepend-bos it is one less than
 *        the token it meant. Kept as is, like the rest.
 *   IO-1, IO+1, S1-1, S1+1 follow from IO and S1.
 */
export function ioiPositions(
  p: IoiPrompt,
  ioTok: number,
  sTok: number,
  fullTokens: readonly number[],
  prependBos: boolean,
  tok: Tokenizer = gpt2Tokenizer,
): Record<string, number> {
  const bos = prependBos ? 1 : 0;
  const withoutLast = tok.encode(p.text.split(' ').slice(0, -1).join(' '));
  const io = withoutLast.indexOf(ioTok);
  const s1 = withoutLast.indexOf(sTok);
  const s2 = withoutLast.lastIndexOf(sTok);
  if (io < 0 || s1 < 0) fail(`ioi: ${tokenizerLabel(tok)} does not give the names of ${JSON.stringify(p.text)} their own tokens inside the sentence`);
  const positions: Record<string, number> = {
    IO: io + bos,
    'IO-1': io + bos - 1,
    'IO+1': io + bos + 1,
    S1: s1 + bos,
    'S1-1': s1 + bos - 1,
    'S1+1': s1 + bos + 1,
    S2: s2 + bos,
    end: fullTokens.length + bos - 2,
    starts: 0,
  };
  let punct: number | undefined;
  for (const mark of [',', '.']) {
    if (!p.text.includes(mark)) continue;
    const ids = tok.encodeContinuation(mark); // GPT-2: ',' is 11, '.' is 13
    if (ids.length !== 1) continue;
    const first = fullTokens.indexOf(ids[0]!);
    if (first < 0) continue; // the reference would raise here; no IOI template gets this far
    punct = fullTokens.lastIndexOf(ids[0]!);
  }
  if (punct !== undefined) positions.punct = punct;
  return positions;
}

function checkOptions(opts: IoiOptions): void {
  if (!Number.isInteger(opts.n) || opts.n < 1) fail(`--n: expected a positive integer, got ${opts.n}`);
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > MAX_NUMPY_SEED) {
    fail(`--seed: expected an integer from 0 to 4294967295 (the reference seeds numpy with it), got ${opts.seed}`);
  }
  if (!IOI_PROMPT_TYPES.includes(opts.promptType)) {
    fail(`--prompt-type: expected one of ${IOI_PROMPT_TYPES.join(', ')}, got ${JSON.stringify(opts.promptType)}`);
  }
}

function ioiName(o: IoiOptions, nNames: number): string {
  let name = `ioi(n=${o.n},seed=${o.seed},${o.promptType}`;
  if (o.flip !== DEFAULT_FLIP) name += `,flip=${o.flip}`;
  if (o.prependBos) name += ',bos';
  if (nNames !== NAMES.length) name += `,names=${nNames}/${NAMES.length}`;
  return name + ')';
}

/** Drop the sentence's final " IO": the model sees everything before the answer. */
function withoutAnswer(text: string, io: string): string {
  const suffix = ' ' + io;
  if (!text.endsWith(suffix)) throw new Error(`IOI: ${JSON.stringify(text)} does not end with ${JSON.stringify(suffix)}`);
  return text.slice(0, text.length - suffix.length);
}

/**
 * The IOI task. Clean prompt: the reference's sentence minus its final IO token (the reference feeds
 * the whole sentence and reads the logits at `end`, which is the same under causal attention).
 * Corrupt prompt: the flipped sentence, truncated the same way. The answer is the clean IO and the
 * foil the clean S, for both runs, as in the reference. BOS starts every prompt when
 * `prependBos` says so, or, left undefined, when the tokenizer's post-processor adds one.
 */
export function generateIoi(options: Partial<IoiOptions> = {}, tok: Tokenizer = gpt2Tokenizer): IoiTask {
  const given: IoiOptions = { ...IOI_DEFAULTS, ...options };
  checkOptions(given);
  const opts: IoiOptions = { ...given, prependBos: wantsBos(tok, options.prependBos) };
  const names = ioiNames(tok);
  const prompts = generateIoiPrompts(opts.n, opts.seed, opts.promptType, names);
  const flipped = flipIoiPrompts(prompts, opts.seed, opts.flip, names);
  const bosTok = opts.prependBos ? tok.bos! : undefined;
  const bosText = bosTok ? bosTok.text : '';
  const bos = bosTok ? [bosTok.id] : [];
  const pairs: PromptPair[] = [];
  const ioi: IoiInfo[] = [];
  prompts.forEach((p, i) => {
    const f = flipped[i]!;
    const ioTok = singleToken(tok, ' ' + p.io, `IOI name ${p.io}`);
    const sTok = singleToken(tok, ' ' + p.s, `IOI name ${p.s}`);
    const full = tok.encode(p.text);
    const corruptFull = tok.encode(f.text);
    if (full[full.length - 1] !== ioTok || corruptFull[corruptFull.length - 1] !== ioTok) {
      fail(`ioi: ${tokenizerLabel(tok)} does not end ${JSON.stringify(p.text)} with the token of " ${p.io}" alone, so the prompt cannot stop just before the answer`);
    }
    pairs.push({
      clean: [...bos, ...full.slice(0, -1)],
      corrupt: [...bos, ...corruptFull.slice(0, -1)],
      correct: [ioTok],
      incorrect: [sTok],
      cleanText: bosText + withoutAnswer(p.text, p.io),
      corruptText: bosText + withoutAnswer(f.text, p.io),
    });
    ioi.push({
      io: p.io,
      s: p.s,
      templateIndex: p.templateIndex,
      kind: p.kind,
      positions: ioiPositions(p, ioTok, sTok, full, opts.prependBos!, tok),
      text: p.text,
      corruptFullText: f.text,
      corruptIo: f.io,
      corruptS: f.s,
      place: p.place,
      object: p.object,
    });
  });
  const notes =
    names.length < NAMES.length
      ? [`ioi: ${names.length} of the ${NAMES.length} names are one token for ${tokenizerLabel(tok)}; prompts draw from those (dropped: ${NAMES.filter((n) => !names.includes(n)).join(', ')})`]
      : undefined;
  return { name: ioiName(opts, names.length), pairs, ioi, options: opts, ...(notes ? { notes } : {}) };
}
