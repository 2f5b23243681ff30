import type { Task } from '../../src/task/types.ts';
import { rng } from './gradcheck.ts';

/**
 * Prompts of unequal lengths; each corrupt prompt keeps its clean prompt's length (for resample).
 * Answers: one random token each, or with `sets` = [c, i] disjoint random sets of c and i tokens.
 */
export function randomTask(n: number, vocab: number, seed: number, lengths = [5, 8, 6, 9, 7], sets?: [number, number]): Task {
  const r = rng(seed);
  const tok = () => Math.floor(r() * vocab);
  return {
    name: 'random',
    pairs: Array.from({ length: n }, (_, i) => {
      const len = lengths[i % lengths.length];
      const clean = Array.from({ length: len }, tok);
      const corrupt = clean.map((t, j) => (j % 2 === 0 ? tok() : t));
      if (!sets) return { clean, corrupt, correct: [tok()], incorrect: [tok()] };
      // A random permutation's first c + i tokens: disjoint sets of distinct tokens.
      const perm = Array.from({ length: vocab }, (_, k) => k);
      for (let k = vocab - 1; k > 0; k--) {
        const j = Math.floor(r() * (k + 1));
        [perm[k], perm[j]] = [perm[j]!, perm[k]!];
      }
      return { clean, corrupt, correct: perm.slice(0, sets[0]), incorrect: perm.slice(sets[0], sets[0] + sets[1]) };
    }),
  };
}
