/**
 * The tokenizer a model is trained with: GPT-2's BPE (the full 50,257-token vocabulary), or a task
 * vocabulary — every word the task's generator can write is one token (src/tokenizer/word-vocab.ts),
 * a few hundred tokens in all, so a small model's embedding stays small. The task tokenizer is
 * saved as the model's tokenizer.json, so every command reads the model's text through it.
 */
import { fail } from '../util/errors.ts';
import { BOS_TEXT, gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { TokenizerJson } from '../tokenizer/hf.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { wordVocabTokenizer } from '../tokenizer/word-vocab.ts';
import { ioiTexts } from '../task/vocab.ts';
import type { TrainTask } from './data.ts';

export type TrainTokenizer = 'gpt2' | 'task';
export const TRAIN_TOKENIZERS: readonly TrainTokenizer[] = ['gpt2', 'task'];

export interface TrainingTokenizer {
  tokenizer: Tokenizer;
  /** The tokenizer.json to save beside the weights (task vocabularies only). */
  json?: Record<string, unknown>;
}

/**
 * The tokenizer for a recipe. A task vocabulary's post-processor adds BOS exactly when the recipe
 * trains with BOS, so the saved model's own tokenizer gives prompts the shape it was trained on.
 */
export function trainingTokenizer(kind: TrainTokenizer, task: TrainTask, prependBos: boolean): TrainingTokenizer {
  if (kind === 'gpt2') return { tokenizer: gpt2Tokenizer };
  if (task !== 'ioi') {
    // Greater-than's answers are the two-digit halves of a year that GPT-2's BPE writes as " 17" + "32";
    // a vocabulary of whole words would make each year one token.
    fail(`tokenizer: a task vocabulary is available for the ioi task only (greater-than needs GPT-2's BPE, which splits years into two tokens)`);
  }
  const json = wordVocabTokenizer(ioiTexts(), { bos: BOS_TEXT, addBos: prependBos });
  return { tokenizer: new TokenizerJson('tokenizer.json (task vocabulary)', json), json };
}
