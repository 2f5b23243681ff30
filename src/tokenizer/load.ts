/**
 * The tokenizer of a model directory: its `tokenizer.json` when it has one (SPEC "Architectures"),
 * GPT-2 BPE otherwise. Read once per directory.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gpt2Tokenizer } from './gpt2.ts';
import { readTokenizerJson } from './hf.ts';
import type { Tokenizer } from './types.ts';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
/** Files that travel with a model's weights when carve writes a new model directory (compress). */
export const TOKENIZER_FILES = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, 'special_tokens_map.json'];

const cache = new Map<string, Tokenizer>();

export function loadTokenizer(modelDir: string): Tokenizer {
  const path = join(modelDir, TOKENIZER_FILE);
  if (!existsSync(path)) return gpt2Tokenizer;
  const configPath = join(modelDir, TOKENIZER_CONFIG_FILE);
  const hasConfig = existsSync(configPath);
  const stamp = (p: string) => {
    const st = statSync(p);
    return `${p}|${st.mtimeMs}|${st.size}`;
  };
  const key = stamp(path) + (hasConfig ? '|' + stamp(configPath) : '');
  let t = cache.get(key);
  if (!t) {
    t = readTokenizerJson(path, hasConfig ? configPath : undefined);
    cache.set(key, t);
  }
  return t;
}
