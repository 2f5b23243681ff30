/** `carve run`: the model's next-token prediction after a prompt. */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { promptTokens, wantsBos } from '../tokenizer/text.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { logSumExp } from '../task/metrics.ts';
import { addModelOptions, loadModelAndTokenizer, parsePositiveInt, writeJson, type EngineCliOptions } from './common.ts';
import { addTaskOptions } from './task-options.ts';
import { describeToken } from './vocab-options.ts';
import type { HookedModel } from '../model/hooked.ts';

export interface Prediction {
  tokens: number[];
  top: { id: number; token: string; logit: number; prob: number }[];
}

/**
 * The top-K next tokens after `tokens` (original ids). A model with a trimmed vocabulary reads and
 * predicts only its kept tokens; ids in the result are original ids all the same, and
 * probabilities are over the tokens the model has.
 */
export async function predictNext(model: HookedModel, tokens: number[], top: number, tokenizer: Tokenizer = gpt2Tokenizer): Promise<Prediction> {
  if (tokens.length === 0) fail('the prompt is empty');
  if (tokens.length > model.config.nCtx) fail(`the prompt has ${tokens.length} tokens, more than the model's context of ${model.config.nCtx}`);
  model.vocab.toLocal(tokens, (id) => describeToken(id, tokenizer));
  const out = await model.run({ tokens: [tokens], logits: 'last' });
  const logits = out.logits!.data;
  const lse = logSumExp(logits);
  // Ties go to the lower original id, whatever the local order.
  const order = Array.from(logits.keys(), (l) => ({ l, id: model.vocab.original(l) }))
    .sort((a, b) => logits[b.l] - logits[a.l] || a.id - b.id)
    .slice(0, top);
  return {
    tokens,
    top: order.map(({ l, id }) => ({ id, token: id < tokenizer.vocabSize ? tokenizer.tokenString(id) : `<${id}>`, logit: logits[l], prob: Math.exp(logits[l] - lse) })),
  };
}

export function parseTokenList(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) fail(`--tokens: expected comma-separated token ids like 464,3290,318, got ${JSON.stringify(text)}`);
  return parts.map(Number);
}

interface RunCliOptions extends EngineCliOptions {
  prependBos?: boolean;
  prompt?: string;
  tokens?: string;
  top: string;
  json?: boolean;
}

export function registerRunCommand(program: Command): void {
  // Every command takes the task options (SPEC); run uses only --prepend-bos / --no-prepend-bos (for --prompt).
  addTaskOptions(addModelOptions(
    program
      .command('run')
      .description("the model's next-token prediction after a prompt")
      .option('--prompt <text>', 'the prompt text')
      .option('--tokens <ids>', 'the prompt as comma-separated token ids')
      .option('--top <k>', 'how many predictions to list', '10')
      .option('--json', 'print JSON (the default when --out is given or stdout is not a terminal)')
      .option('--out <file>', 'write the JSON here'),
  )).action(async (opts: RunCliOptions) => {
    if ((opts.prompt === undefined) === (opts.tokens === undefined)) fail('give exactly one of --prompt TEXT or --tokens IDS');
    const top = parsePositiveInt(opts.top, '--top');
    const given = opts.tokens !== undefined ? parseTokenList(opts.tokens) : undefined;
    const { model, tokenizer } = await loadModelAndTokenizer(opts);
    // Text goes through the model's tokenizer, with BOS as its post-processor (or --prepend-bos) says.
    const tokens = given ?? promptTokens(tokenizer, opts.prompt!, wantsBos(tokenizer, opts.prependBos));
    const pred = await predictNext(model, tokens, top, tokenizer);
    if (opts.json || opts.out || !process.stdout.isTTY) {
      writeJson(opts.out, pred);
    } else {
      process.stdout.write(`${tokens.length} tokens; next-token prediction:\n`);
      for (const p of pred.top) {
        process.stdout.write(`  ${JSON.stringify(p.token).padEnd(18)} id ${String(p.id).padStart(5)}  logit ${p.logit.toFixed(3).padStart(8)}  p ${p.prob.toFixed(4)}\n`);
      }
    }
  });
}
