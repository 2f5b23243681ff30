/**
 * `carve task ioi|greater-than|FILE.jsonl [options] [--model M] --out FILE.jsonl`: write a task and
 * show its first prompts. With --model, text is tokenised by that model's tokenizer (its
 * tokenizer.json, else GPT-2 BPE); without, by GPT-2 BPE.
 */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { writeJsonlTask, taskToJsonl } from '../task/jsonl.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { resolveModel } from '../model/hub.ts';
import type { Task } from '../task/types.ts';
import { addIoiOptions, taskFromOptions, type TaskCliOptions } from './task-options.ts';

const ANSI = {
  reset: '\x1b[0m',
  bold: '\x1b[1m',
  dim: '\x1b[2m',
  green: '\x1b[32m',
  red: '\x1b[31m',
  yellow: '\x1b[33m',
  magenta: '\x1b[35m',
};

/** Colour only for a person at a terminal; NO_COLOR (https://no-color.org) turns it off there too. */
export function useColor(stream: NodeJS.WriteStream = process.stderr): boolean {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return false;
  return stream.isTTY === true;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Colour whole-word occurrences of names. Whole words, because "Andre" must not light up inside
 * "Andrew". Later entries win where a name appears twice (a flip can give S and IO the same name).
 */
export function highlightNames(text: string, marks: { name: string; color: string }[], color: boolean): string {
  const byName = new Map<string, string>();
  for (const m of marks) if (m.name) byName.set(m.name, m.color);
  if (!color || byName.size === 0) return text;
  const names = [...byName.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(${names.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
  return text.replace(re, (m) => `${ANSI.bold}${byName.get(m)}${m}${ANSI.reset}`);
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padLeft = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** An answer set as text: `" Mary"`, or for a set its size and range, `{"33" … "99"} (67)`. */
function showSet(ids: number[], tok: Tokenizer): string {
  const t = (id: number) => JSON.stringify(tok.tokenText(id));
  if (ids.length === 1) return t(ids[0]!);
  if (ids.length <= 4) return `{${ids.map(t).join(', ')}}`;
  return `{${t(ids[0]!)} … ${t(ids[ids.length - 1]!)}} (${ids.length})`;
}

/**
 * A table of the first `rows` prompts: for IOI, the kind, template index, IO and S, then the clean
 * prompt (IO green, S red) and under it the corrupt one (its new names yellow and magenta). The answer
 * is shown after "→" since the prompt itself stops before it.
 */
export function formatTaskTable(task: Task, rows: number, color: boolean, tok: Tokenizer = gpt2Tokenizer): string {
  const decode = (ids: number[]) => tok.decode(ids);
  const dim = (s: string) => (color ? `${ANSI.dim}${s}${ANSI.reset}` : s);
  const shown = task.pairs.slice(0, rows);
  const out: string[] = [];
  out.push(`${task.name}: ${task.pairs.length} prompt pairs${shown.length < task.pairs.length ? `, the first ${shown.length} shown` : ''}`);
  if (task.ioi) {
    const nameWidth = Math.max(2, ...task.ioi.slice(0, rows).flatMap((x) => [x.io.length, x.s.length]));
    out.push(dim(`${padLeft('#', 3)}  kind  tpl  ${pad('IO', nameWidth)}  ${pad('S', nameWidth)}  clean prompt / corrupt prompt → answer`));
    shown.forEach((p, i) => {
      const x = task.ioi![i]!;
      const clean = p.cleanText ?? decode(p.clean);
      const corrupt = p.corruptText ?? decode(p.corrupt);
      const lead = `${padLeft(String(i), 3)}  ${x.kind}  ${padLeft(String(x.templateIndex), 3)}  ${pad(x.io, nameWidth)}  ${pad(x.s, nameWidth)}  `;
      const cleanMarks = [
        { name: x.s, color: ANSI.red },
        { name: x.io, color: ANSI.green },
      ];
      const corruptMarks = [
        { name: x.corruptS ?? '', color: ANSI.magenta },
        { name: x.corruptIo ?? '', color: ANSI.yellow },
      ];
      const answer = highlightNames(x.io, cleanMarks, color);
      out.push(`${lead}${highlightNames(clean, cleanMarks, color)} → ${answer}`);
      out.push(`${' '.repeat(lead.length)}${dim(highlightNames(corrupt, corruptMarks, color))}`);
    });
  } else {
    shown.forEach((p, i) => {
      const answer = `${showSet(p.correct, tok)} vs ${showSet(p.incorrect, tok)}`;
      out.push(`${padLeft(String(i), 3)}  ${p.cleanText ?? decode(p.clean)} → ${answer}`);
      out.push(`${' '.repeat(5)}${dim(p.corruptText ?? decode(p.corrupt))}`);
    });
  }
  return out.join('\n') + '\n';
}

interface TaskCommandOptions extends TaskCliOptions {
  out?: string;
  show?: string;
  model?: string;
}

export function registerTaskCommand(program: Command): void {
  const cmd = program
    .command('task')
    .description('write a task as JSONL (text and token fields, plus IOI names and positions) and show its first prompts on stderr')
    .argument('[task]', '"ioi" or "greater-than" for a built-in generator, or a JSONL file to check and rewrite', 'ioi');
  addIoiOptions(cmd)
    .option('--model <dir|hub-id|toy-ioi>', "tokenise for this model (its tokenizer.json, else GPT-2 BPE); default: GPT-2 BPE")
    .option('--out <file>', 'where to write the JSONL (default: stdout)')
    .option('--show <k>', 'how many prompts to show on stderr', '10')
    .action(async (taskArg: string, opts: TaskCommandOptions) => {
      const show = Number(opts.show);
      if (!/^\d+$/.test(String(opts.show).trim()) || !Number.isSafeInteger(show)) fail(`--show: expected a non-negative integer, got ${JSON.stringify(opts.show)}`);
      const tokenizer = opts.model !== undefined ? loadTokenizer((await resolveModel(opts.model)).dir) : gpt2Tokenizer;
      const task = taskFromOptions({ ...opts, task: taskArg }, {}, tokenizer);
      if (opts.out) writeJsonlTask(opts.out, task, tokenizer);
      else process.stdout.write(taskToJsonl(task, tokenizer));
      if (show > 0) process.stderr.write(formatTaskTable(task, show, useColor(process.stderr), tokenizer));
      if (opts.out) process.stderr.write(`wrote ${task.pairs.length} prompt pairs to ${opts.out}\n`);
    });
}
