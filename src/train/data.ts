/**
 * Training and held-out data for task models: IOI prompts from carve's generator (src/task/ioi.ts),
 * or greater-than prompts (src/task/greater-than.ts), tokenised and packed into the feeds of
 * `buildObjective` (objective.ts).
 *
 * ## Seed scheme
 * - Training step s (0-based) draws a fresh batch: `generateIoiPrompts(n, dataSeed + s, promptType)`,
 *   n = the batch size (more when a curriculum restricts templates; the batch is the first matching
 *   prompts). `dataSeed` defaults to 1,000,000 + 1,000,000 · seed, so the training seeds of runs with
 *   different seeds do not overlap for runs under a million steps.
 * - The held-out set is one draw with seed `heldOutSeed` (default 1) and n = heldOutN: exactly the
 *   clean prompts of `--task ioi --seed 1 --n heldOutN` (for the same prompt type), the task carve's
 *   other commands use by default. Training refuses a seed range that contains the held-out seed.
 * Different seeds can still produce the same sentence (the space of names, places, objects and
 * templates is finite); the seeds, not the sentences, are disjoint.
 *
 * Each prompt is the sentence without its final IO name (as in the IOI task); the answer pair is
 * (IO, S): the loss and the metric look at the last token of the prompt.
 *
 * greater-than follows the same scheme: step s draws `--task greater-than --n batch --seed
 * dataSeed + s`, the held-out set is `--task greater-than --n heldOutN --seed heldOutSeed`; the
 * answers are the sets of two-digit year tokens after and up to the start year.
 */
import type * as ort from 'onnxruntime-node';
import { fail } from '../util/errors.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { singleToken } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { generateIoiPrompts, IOI_PROMPT_TYPES } from '../task/ioi.ts';
import { generateGreaterThan } from '../task/greater-than.ts';
import { toOrt } from '../onnx/session.ts';
import type { IoiPromptType } from '../task/types.ts';
import { answerFeeds } from '../model/hooked.ts';

/** The tasks carve can train on. */
export type TrainTask = 'ioi' | 'greater-than';
export const TRAIN_TASKS: readonly TrainTask[] = ['ioi', 'greater-than'];

/** The pad token (right padding); it never reaches the metric position under causal attention. */
export const TRAIN_PAD = 0;
export const DATA_SEED_BASE = 1_000_000;

export interface Example {
  tokens: number[];
  /** The answer sets (IOI: IO and S, one token each). */
  correct: number[];
  incorrect: number[];
  /** IOI's template index (-1 for other tasks). */
  templateIndex: number;
}

/** One phase of a curriculum: until step `until` (exclusive), draw prompts this way. */
export interface CurriculumPhase {
  until: number;
  promptType?: IoiPromptType;
  /** Template indices allowed (into the 15 ABBA or BABA templates; not with 'mixed', whose order is shuffled per seed). */
  templates?: number[];
}

export interface DataSpec {
  /** Default ioi. */
  task?: TrainTask;
  promptType: IoiPromptType;
  /** Phases in order; after the last one, `promptType` with every template. */
  curriculum?: CurriculumPhase[];
  /** Default: dataSeedFor(seed). */
  dataSeed: number;
  heldOutSeed: number;
  heldOutN: number;
  /** Prepend <|endoftext|> to every prompt. */
  prependBos?: boolean;
}

export function dataSeedFor(seed: number): number {
  return DATA_SEED_BASE + DATA_SEED_BASE * seed;
}

/** Validate a curriculum (user input from a recipe file). */
export function checkCurriculum(c: unknown, steps: number): CurriculumPhase[] {
  if (c === undefined || c === null) return [];
  if (!Array.isArray(c)) fail(`curriculum: expected a list of phases like {"until": 500, "promptType": "ABBA", "templates": [0]}`);
  let prev = 0;
  return c.map((raw, i) => {
    const at = `curriculum[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${at}: expected an object`);
    const ph = raw as Record<string, unknown>;
    for (const k of Object.keys(ph)) if (!['until', 'promptType', 'templates'].includes(k)) fail(`${at}: unknown field ${JSON.stringify(k)}`);
    if (typeof ph.until !== 'number' || !Number.isSafeInteger(ph.until) || ph.until <= prev) {
      fail(`${at}.until: expected an integer step greater than ${prev}, got ${JSON.stringify(ph.until)}`);
    }
    prev = ph.until;
    if (ph.promptType !== undefined && !IOI_PROMPT_TYPES.includes(ph.promptType as IoiPromptType)) {
      fail(`${at}.promptType: expected one of ${IOI_PROMPT_TYPES.join(', ')}, got ${JSON.stringify(ph.promptType)}`);
    }
    if (ph.templates !== undefined) {
      const t = ph.templates;
      if (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 14)) {
        fail(`${at}.templates: expected a non-empty list of template indices 0..14, got ${JSON.stringify(t)}`);
      }
      if ((ph.promptType ?? 'mixed') === 'mixed') fail(`${at}.templates: needs "promptType" ABBA or BABA (the mixed list is shuffled per seed)`);
    }
    void steps;
    return { until: ph.until, promptType: ph.promptType as IoiPromptType | undefined, templates: ph.templates as number[] | undefined };
  });
}

/** Prompt type and template filter in force at `step`. */
export function phaseAt(spec: DataSpec, step: number): { promptType: IoiPromptType; templates?: number[] } {
  for (const ph of spec.curriculum ?? []) {
    if (step < ph.until) return { promptType: ph.promptType ?? spec.promptType, templates: ph.templates };
  }
  return { promptType: spec.promptType };
}

const tokenCache = new Map<Tokenizer, Map<string, number>>();
function nameToken(tok: Tokenizer, name: string): number {
  if (!tokenCache.has(tok)) tokenCache.set(tok, new Map());
  const cache = tokenCache.get(tok)!;
  let t = cache.get(name);
  if (t === undefined) {
    t = singleToken(tok, ' ' + name, `IOI name ${name}`);
    cache.set(name, t);
  }
  return t;
}

/** `n` IOI examples from one generator seed, optionally restricted to some templates. */
export function ioiExamples(n: number, seed: number, promptType: IoiPromptType, templates?: number[], prependBos = false, tok: Tokenizer = gpt2Tokenizer): Example[] {
  const allowed = templates ? new Set(templates) : undefined;
  // A longer draw with the same seed extends a shorter one, so filtering stays deterministic.
  let draw = allowed ? Math.ceil((n * 15) / allowed.size) + 8 : n;
  let prompts = generateIoiPrompts(draw, seed, promptType);
  if (allowed) {
    for (;;) {
      const kept = prompts.filter((p) => allowed.has(p.templateIndex));
      if (kept.length >= n) {
        prompts = kept.slice(0, n);
        break;
      }
      draw *= 2;
      prompts = generateIoiPrompts(draw, seed, promptType);
    }
  }
  if (prependBos && !tok.bos) fail(`prependBos: ${tok.name} has no BOS token`);
  return prompts.map((p) => {
    const full = tok.encode(p.text);
    const io = nameToken(tok, p.io);
    if (full[full.length - 1] !== io) throw new Error(`IOI: ${JSON.stringify(p.text)} does not end with its IO token`);
    return {
      tokens: prependBos ? [tok.bos!.id, ...full.slice(0, -1)] : full.slice(0, -1),
      correct: [io],
      incorrect: [nameToken(tok, p.s)],
      templateIndex: p.templateIndex,
    };
  });
}

/** `n` greater-than examples: the clean prompts of `--task greater-than --n n --seed seed`. */
export function greaterThanExamples(n: number, seed: number, prependBos = false, tok: Tokenizer = gpt2Tokenizer): Example[] {
  return generateGreaterThan({ n, seed, prependBos }, tok).pairs.map((p) => ({ tokens: p.clean, correct: p.correct, incorrect: p.incorrect, templateIndex: -1 }));
}

/** The training batch of step `step`. */
export function trainBatch(spec: DataSpec, step: number, batch: number, tok: Tokenizer = gpt2Tokenizer): Example[] {
  if (spec.task === 'greater-than') return greaterThanExamples(batch, spec.dataSeed + step, spec.prependBos, tok);
  const { promptType, templates } = phaseAt(spec, step);
  return ioiExamples(batch, spec.dataSeed + step, promptType, templates, spec.prependBos, tok);
}

/** The held-out set (see the seed scheme above). */
export function heldOut(spec: DataSpec, tok: Tokenizer = gpt2Tokenizer): Example[] {
  if (spec.task === 'greater-than') return greaterThanExamples(spec.heldOutN, spec.heldOutSeed, spec.prependBos, tok);
  return ioiExamples(spec.heldOutN, spec.heldOutSeed, spec.promptType, undefined, spec.prependBos, tok);
}

/** Refuse a training seed range that contains the held-out seed. */
export function checkSeeds(spec: DataSpec, steps: number): void {
  if (!Number.isSafeInteger(spec.dataSeed) || spec.dataSeed < 0) fail(`dataSeed: expected a non-negative integer, got ${spec.dataSeed}`);
  if (!Number.isSafeInteger(spec.heldOutSeed) || spec.heldOutSeed < 0) fail(`heldOutSeed: expected a non-negative integer, got ${spec.heldOutSeed}`);
  if (spec.heldOutSeed >= spec.dataSeed && spec.heldOutSeed < spec.dataSeed + steps) {
    fail(`the training seeds ${spec.dataSeed}..${spec.dataSeed + steps - 1} include the held-out seed ${spec.heldOutSeed}; change dataSeed or heldOutSeed`);
  }
}

/**
 * Feeds for buildObjective (float32): tokens, flat_pos, metric_pos, answer_ids/answer_weights
 * (logit-diff weights: the hinge is on the set logit difference), row_scale, and for the
 * cross-entropy either target_flat (one correct token per example) or, with `sets`, correct_ids
 * and correct_mask [B, C] (each row's correct set, padded with mask 0).
 */
export function objectiveFeeds(examples: Example[], vocabSize: number, nCtx: number, sets = false): Record<string, ort.Tensor> {
  const B = examples.length;
  let T = 0;
  for (const e of examples) T = Math.max(T, e.tokens.length);
  if (T > nCtx) fail(`a training prompt has ${T} tokens, more than the model's context of ${nCtx}`);
  if (!sets && examples.some((e) => e.correct.length !== 1)) throw new Error('objectiveFeeds: answer sets need sets = true');
  const tokens = new BigInt64Array(B * T).fill(BigInt(TRAIN_PAD));
  const flatPos = new BigInt64Array(B);
  const metricPos = new BigInt64Array(B);
  const target = new BigInt64Array(B);
  examples.forEach((e, b) => {
    e.tokens.forEach((t, j) => (tokens[b * T + j] = BigInt(t)));
    flatPos[b] = BigInt(b * T + e.tokens.length - 1);
    metricPos[b] = BigInt(e.tokens.length - 1);
    target[b] = BigInt(b * vocabSize + e.correct[0]!);
  });
  const answers = answerFeeds(examples, 'logit-diff');
  const ce: Record<string, ort.Tensor> = {};
  if (sets) {
    const C = Math.max(...examples.map((e) => e.correct.length));
    const ids = new BigInt64Array(B * C);
    const mask = new Float32Array(B * C);
    examples.forEach((e, b) => e.correct.forEach((id, j) => ((ids[b * C + j] = BigInt(id)), (mask[b * C + j] = 1))));
    ce.correct_ids = toOrt({ data: ids, dims: [B, C] }, 'int64');
    ce.correct_mask = toOrt({ data: mask, dims: [B, C] }, 'float32');
  } else ce.target_flat = toOrt({ data: target, dims: [B] }, 'int64');
  return {
    tokens: toOrt({ data: tokens, dims: [B, T] }, 'int64'),
    flat_pos: toOrt({ data: flatPos, dims: [B] }, 'int64'),
    metric_pos: toOrt({ data: metricPos, dims: [B] }, 'int64'),
    answer_ids: toOrt({ data: answers.ids, dims: [B, answers.A] }, 'int64'),
    answer_weights: toOrt({ data: Float32Array.from(answers.weights), dims: [B, answers.A] }, 'float32'),
    ...ce,
    row_scale: toOrt({ data: new Float32Array(B).fill(1 / B), dims: [B] }, 'float32'),
  };
}
