/**
 * Corrupt IOI prompts the way the reference's `gen_flipped_prompts` does, from a flip string such
 * as "ABC->XYZ, BAB->XYZ": the part before the comma rewrites ABBA prompts, the part after it BABA
 * prompts. Each side maps the letters of the prompt's first three names (left) to new letters
 * (right); a right-hand letter absent on the left gets a fresh random name.
 *
 * Determinism (a deliberate departure, see `flipPrompt`): the reference draws fresh names as
 * `np.random.choice(list(set(NAMES) - set(orig_names)))` for each letter of
 * `set(flip_new) - set(flip_orig)`. Both orders come from Python's per-process string hashing, so
 * its corrupt names differ between Python processes. We fix both orders:
 *   - fresh letters are drawn in order of first appearance in the right-hand side ("XYZ": X, Y, Z);
 *   - the candidates are NAMES in list order with the prompt's first three names removed.
 * Every draw is otherwise the reference's: one legacy-numpy `choice` per fresh letter per prompt,
 * with numpy seeded by seed + the sum of the flip string's character codes.
 */
import { fail } from '../util/errors.ts';
import { NpRandomState } from './random-numpy.ts';
import type { IoiKind } from './types.ts';

export const DEFAULT_FLIP = 'ABC->XYZ, BAB->XYZ';

export interface FlipRule {
  /** Letters naming the prompt's first three names, e.g. ["A", "B", "B"]. */
  orig: string[];
  /** What those three names become, e.g. ["X", "Y", "Z"]. */
  next: string[];
}

export interface ParsedFlip {
  text: string;
  abba: FlipRule;
  baba: FlipRule;
}

export interface FlippedPrompt {
  text: string;
  io: string;
  s: string;
}

/** Python's `str.strip()` on the whitespace that can appear in a flag value. */
const strip = (s: string): string => s.replace(/^\s+|\s+$/g, '');

/**
 * Parse a flip string with the reference's own rules: exactly one comma, and exactly one "->" on
 * each side; letters are any characters (Python iterates code points, so we do too).
 */
export function parseFlip(flip: string, where = '--flip'): ParsedFlip {
  const sides = flip.split(',');
  if (sides.length !== 2) {
    fail(`${where}: expected two rules separated by one comma, like "${DEFAULT_FLIP}" (ABBA rule, then BABA rule), got ${JSON.stringify(flip)}`);
  }
  const rule = (side: string, which: string): FlipRule => {
    const parts = side.split('->').map(strip);
    if (parts.length !== 2) fail(`${where}: the ${which} rule ${JSON.stringify(strip(side))} must have the form "ABB->XYZ"`);
    const orig = Array.from(parts[0]!);
    const next = Array.from(parts[1]!);
    if (next.length === 0) fail(`${where}: the ${which} rule ${JSON.stringify(strip(side))} has nothing after "->"`);
    for (const ch of [...orig, ...next]) {
      if (/\s/.test(ch)) fail(`${where}: the ${which} rule ${JSON.stringify(strip(side))} has a space inside its letters`);
    }
    return { orig, next };
  };
  return { text: flip, abba: rule(sides[0]!, 'first (ABBA)'), baba: rule(sides[1]!, 'second (BABA)') };
}

/** The reference's flip seed: `seed + sum(map(ord, flip))`. */
export function flipSeed(seed: number, flip: string): number {
  let sum = 0;
  for (const ch of flip) sum += ch.codePointAt(0)!;
  return seed + sum;
}

/**
 * One prompt of `gen_flipped_prompts`. `names` is the name list used both to find the prompt's names
 * (whole space-separated words) and to draw fresh ones. Only the first three names change; the final
 * name (the clean IO, the answer) stays, as in the reference.
 */
export function flipPrompt(
  text: string,
  kind: IoiKind,
  flip: ParsedFlip,
  names: readonly string[],
  rng: NpRandomState,
  where = '--flip',
): FlippedPrompt {
  const { orig, next } = kind === 'ABBA' ? flip.abba : flip.baba;
  const nameSet = new Set(names);
  const words = text.split(' ');
  const found: { index: number; name: string }[] = [];
  for (let i = 0; i < words.length && found.length < 3; i++) {
    if (nameSet.has(words[i]!)) found.push({ index: i, name: words[i]! });
  }
  const origNames = found.map((f) => f.name);

  // letter -> name, in the order the reference's dict comprehension inserts them. A repeated letter
  // keeps its last name, as there: "ABA" on an ABBA prompt does not fail, and neither does a BAB rule
  // on an ABBA-shaped prompt that the Andre/Andrew label quirk (see ioi.ts) calls BABA.
  const origKey = new Map<string, string>();
  for (let i = 0; i < Math.min(origNames.length, orig.length); i++) origKey.set(orig[i]!, origNames[i]!);
  if (origKey.size !== new Set(orig).size) {
    fail(`${where}: the rule "${orig.join('')}->${next.join('')}" names more letters than the ${kind} prompt ${JSON.stringify(text)} has names`);
  }

  const replacement = new Map<string, string>();
  for (const [letter, name] of origKey) if (next.includes(letter)) replacement.set(letter, name);
  const origLetters = new Set(orig);
  const fresh: string[] = [];
  for (const letter of next) if (!origLetters.has(letter) && !fresh.includes(letter)) fresh.push(letter);
  const taken = new Set(origNames);
  const candidates = names.filter((n) => !taken.has(n));
  // Fresh letters draw independently, so two of them can get the same name, exactly as in the reference.
  for (const letter of fresh) replacement.set(letter, rng.choice(candidates));
  if (replacement.size !== new Set(next).size) {
    fail(`${where}: the rule "${orig.join('')}->${next.join('')}" uses a letter that is neither kept from the left side nor new`);
  }

  for (let i = 0; i < Math.min(found.length, next.length); i++) words[found[i]!.index] = replacement.get(next[i]!)!;
  const s = replacement.get(next[next.length - 1]!)!;
  // IO: the one non-repeated name among the first two letters; when that is ambiguous the reference
  // falls back to the second letter.
  const count = (l: string) => next.filter((x) => x === l).length;
  const possibleIos = next.slice(0, 2).filter((l) => count(l) === 1).map((l) => replacement.get(l)!);
  // (A one-letter right side always has exactly one candidate, so next[1] exists when it is needed.)
  const io = possibleIos.length === 1 ? possibleIos[0]! : replacement.get(next[1]!)!;
  return { text: words.join(' '), io, s };
}
