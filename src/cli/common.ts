/** Options and plumbing every model-running command shares: model, device, threads, output. */
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { Engine, DEVICES, type Device } from '../onnx/session.ts';
import { resolveModel } from '../model/hub.ts';
import { loadModelDir } from '../model/load.ts';
import { HookedModel } from '../model/hooked.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import type { Tokenizer } from '../tokenizer/types.ts';

export interface EngineCliOptions {
  model?: string;
  device?: string;
  threads?: string;
  out?: string;
}

export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('--model <dir|hub-id|toy-ioi>', 'a model directory (Hugging Face layout), a Hugging Face hub id, or the embedded toy-ioi', 'toy-ioi')
    .option('--device <cpu|webgpu|cuda>', 'onnxruntime execution provider', 'cpu')
    .option('--threads <n>', 'intra-op threads (0: one per core)', '0');
}

export function engineFrom(opts: EngineCliOptions): Engine {
  const device = (opts.device ?? 'cpu') as Device;
  if (!DEVICES.includes(device)) fail(`--device: expected one of ${DEVICES.join(', ')}, got ${JSON.stringify(opts.device)}`);
  const threads = parseNonNegativeInt(opts.threads ?? '0', '--threads');
  return new Engine({ device, threads });
}

export function parseNonNegativeInt(value: string, flag: string): number {
  const t = String(value).trim();
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(Number(t))) fail(`${flag}: expected a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(t);
}

export function parsePositiveInt(value: string, flag: string): number {
  const n = parseNonNegativeInt(value, flag);
  if (n === 0) fail(`${flag}: expected a positive integer, got 0`);
  return n;
}

export function parseNumber(value: string, flag: string): number {
  const n = Number(String(value).trim());
  if (String(value).trim() === '' || !Number.isFinite(n)) fail(`${flag}: expected a number, got ${JSON.stringify(value)}`);
  return n;
}

export function parseChoice<T extends string>(value: string | undefined, flag: string, choices: readonly T[]): T {
  if (value === undefined || !(choices as readonly string[]).includes(value)) {
    fail(`${flag}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Resolve, load and wrap the model named by --model, on the engine named by --device/--threads. */
export async function loadHookedModel(opts: EngineCliOptions): Promise<HookedModel> {
  return (await loadModelAndTokenizer(opts)).model;
}

/** The model named by --model and its tokenizer (the directory's tokenizer.json, else GPT-2 BPE). */
export async function loadModelAndTokenizer(opts: EngineCliOptions): Promise<{ model: HookedModel; tokenizer: Tokenizer; dir: string; name: string }> {
  const engine = engineFrom(opts);
  const { dir, name } = await resolveModel(opts.model ?? 'toy-ioi');
  const tokenizer = loadTokenizer(dir);
  const loaded = loadModelDir(dir, name);
  return { model: new HookedModel(loaded, engine), tokenizer, dir, name };
}

/** JSON to --out (atomically) or stdout. */
export function writeJson(out: string | undefined, value: unknown): void {
  const text = JSON.stringify(value, null, 2) + '\n';
  if (out) {
    writeFileAtomic(out, text);
    process.stderr.write(`wrote ${out}\n`);
  } else {
    process.stdout.write(text);
  }
}
