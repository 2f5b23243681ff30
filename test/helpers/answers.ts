import type { Answers } from '../../src/model/hooked.ts';

/** One correct and one incorrect token per row, as the metric readout takes them. */
export function pairAnswers(pairs: [number, number][]): Answers[] {
  return pairs.map(([c, i]) => ({ correct: [c], incorrect: [i] }));
}
