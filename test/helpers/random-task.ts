import type { Task } from '../../src/task/types.ts';
import { rng } from './gradcheck.ts';

/** Prompts of unequal lengths; each corrupt prompt keeps its clean prompt's length (for resample). */
export function randomTask(n: number, vocab: number, seed: number, lengths = [5, 8, 6, 9, 7]): Task {
  const r = rng(seed);
  const tok = () => Math.floor(r() * vocab);
  return {
    name: 'random',
    pairs: Array.from({ length: n }, (_, i) => {
      const len = lengths[i % lengths.length];
      const clean = Array.from({ length: len }, tok);
      const corrupt = clean.map((t, j) => (j % 2 === 0 ? tok() : t));
      return { clean, corrupt, correct: tok(), incorrect: tok() };
    }),
  };
}
