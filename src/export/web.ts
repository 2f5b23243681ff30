/**
 * `carve export --format web`: a static directory that runs the model in a browser, offline, from
 * file:// or any static server: type a prompt, see the next-token prediction and the probabilities
 * of the task's answers.
 *
 *   index.html, page.js, bpe.js   the page (src/export/web/), plain scripts
 *   carve-data.js                 metadata: vocabulary map, context, answers, an example prompt
 *   tokenizer.js                  GPT-2's BPE tokens, so the page tokenises exactly as carve does
 *   model.onnx                    the model (as `carve export --format onnx` writes it)
 *   model.js                      the same bytes, base64, for pages opened from file://
 *   ort.wasm.min.js, ort-wasm-glue.js, ort-wasm.js
 *                                 onnxruntime-web's WASM build: its script, its loader module (as
 *                                 text) and its WebAssembly binary (base64)
 *
 * Browsers refuse fetch() and module imports from file:// pages, so binaries travel as base64 in
 * classic scripts and the WASM loader is imported from a blob URL (page.js). onnxruntime-web is
 * an npm package; its dist files are copied from node_modules.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ranks from 'gpt-tokenizer/bpeRanks/r50k_base';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { ModelData } from '../model/types.ts';
import { BOS_ID, BOS_TEXT } from '../tokenizer/gpt2.ts';
import { exportOnnx, onnxMeta, type OnnxExportOptions } from './onnx.ts';

/** The onnxruntime-web version the page is built and tested with. */
export const ORT_WEB_VERSION = '1.30.0';
/** A browser tab holds the base64 model in one string; V8 caps strings at ~512 M characters. */
const MAX_WEB_MODEL_BYTES = 256 * 1024 * 1024;
const ASSETS = join(dirname(fileURLToPath(import.meta.url)), 'web');
const PAGE_FILES = ['index.html', 'page.js', 'bpe.js'];
/** Every file the export writes (the output directory may be replaced only if it holds nothing else). */
export const WEB_FILES = [...PAGE_FILES, 'carve-data.js', 'tokenizer.js', 'model.onnx', 'model.js', 'ort.wasm.min.js', 'ort-wasm-glue.js', 'ort-wasm.js'];

export interface WebExportOptions extends OnnxExportOptions {
  /** Page title: the model's name. */
  name: string;
  /** One line under the title. */
  about: string;
  /** The prompt the page opens with. */
  example: string;
  /** Original ids of the task's answer tokens, whose probabilities the page lists. */
  answers: number[];
}

/** onnxruntime-web's dist folder, or a user error saying how to get it. */
export function ortWebDist(): string {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('onnxruntime-web');
  } catch {
    fail(`carve export --format web needs the npm package onnxruntime-web (version ${ORT_WEB_VERSION}), which is not installed: npm install onnxruntime-web@${ORT_WEB_VERSION}`);
  }
  const dist = dirname(main);
  for (const f of ['ort.wasm.min.js', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) {
    if (!existsSync(join(dist, f))) fail(`${dist}: onnxruntime-web has no ${f}; carve's page needs onnxruntime-web ${ORT_WEB_VERSION}`);
  }
  return dist;
}

/**
 * What the page's tokenizer (web/bpe.js) reads: GPT-2's tokens as byte strings (one char per byte,
 * index = token id) and the special tokens carve allows in text.
 */
export function webExportTokenizer(): { tokens: string[]; specials: Record<string, number> } {
  const tokens = (ranks as (string | number[])[]).map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8').toString('latin1') : String.fromCharCode(...e)));
  return { tokens, specials: { [BOS_TEXT]: BOS_ID } };
}

const script = (name: string, value: unknown) => `window.${name} = ${JSON.stringify(value)};\n`;

/** A model's own tokenizer files (tokenizer.json, tokenizer_config.json), as text. */
export interface TokenizerFiles {
  json: string;
  config?: string;
  /** The BOS id a prompt starts with (the tokenizer's post-processor adds it), or null for none. */
  bos: number | null;
}

/**
 * @huggingface/tokenizers' browser build, as text: a page whose model brings a tokenizer.json
 * tokenises with the same library carve does (imported through a blob URL, as file:// pages cannot
 * import modules from disk).
 */
function hfTokenizersLibrary(): string {
  const main = createRequire(import.meta.url).resolve('@huggingface/tokenizers');
  return readFileSync(join(dirname(main), 'tokenizers.min.mjs'), 'utf8');
}

/** The files of the page, by name (written by the caller, atomically, into one directory). */
export function webExportFiles(
  model: ModelData,
  opts: WebExportOptions,
  tokenString: (id: number) => string,
  tokenizerFiles?: TokenizerFiles,
): Map<string, string | Uint8Array> {
  const dist = ortWebDist();
  const onnx = exportOnnx(model, opts);
  if (onnx.length > MAX_WEB_MODEL_BYTES) {
    fail(`the model's ONNX file is ${(onnx.length / 2 ** 20).toFixed(0)} MB; a web page can hold at most ${MAX_WEB_MODEL_BYTES / 2 ** 20} MB (compress it, or export with --dtype f16)`);
  }
  const meta = onnxMeta(model, opts, tokenString);
  const files = new Map<string, string | Uint8Array>();
  for (const f of PAGE_FILES) files.set(f, readFileSync(join(ASSETS, f)));
  if (tokenizerFiles) {
    // The page tokenises with the model's tokenizer.json: BOS as its post-processor says, as `carve run` does.
    files.set('carve-data.js', script('CARVE', { ...meta, name: opts.name, about: opts.about, example: opts.example, answers: opts.answers, specials: {} }));
    const config = tokenizerFiles.config !== undefined ? JSON.parse(tokenizerFiles.config) : {};
    files.set('tokenizer.js', script('CARVE_HF', { json: JSON.parse(tokenizerFiles.json), config, bos: tokenizerFiles.bos, lib: hfTokenizersLibrary() }));
  } else {
    const tokenizer = webExportTokenizer();
    files.set('carve-data.js', script('CARVE', { ...meta, name: opts.name, about: opts.about, example: opts.example, answers: opts.answers, specials: tokenizer.specials }));
    files.set('tokenizer.js', script('CARVE_BPE', { tokens: tokenizer.tokens }));
  }
  files.set('model.onnx', onnx);
  files.set('model.js', script('CARVE_MODEL', Buffer.from(onnx).toString('base64')));
  files.set('ort.wasm.min.js', readFileSync(join(dist, 'ort.wasm.min.js')));
  files.set('ort-wasm-glue.js', script('ORT_GLUE', readFileSync(join(dist, 'ort-wasm-simd-threaded.mjs'), 'utf8')));
  files.set('ort-wasm.js', script('ORT_WASM', readFileSync(join(dist, 'ort-wasm-simd-threaded.wasm')).toString('base64')));
  return files;
}

/** Write a file set into `dir` (each file atomically; the caller makes the directory itself atomic). */
export function writeFiles(dir: string, files: Map<string, string | Uint8Array>): void {
  for (const [name, data] of files) writeFileAtomic(join(dir, name), data);
}
