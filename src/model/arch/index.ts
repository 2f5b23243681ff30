/** The architectures carve reads, and the lookup by Hugging Face `model_type`. */
import type { ModelConfig } from '../types.ts';
import type { TensorSlot } from '../tensors.ts';
import { gpt2 } from './gpt2.ts';
import { llama } from './llama.ts';
import { gptNeox } from './gpt-neox.ts';
import type { Architecture } from './types.ts';

export const ARCHITECTURES: readonly Architecture[] = [gpt2, llama, gptNeox];

export function architectureOf(modelType: unknown): Architecture | undefined {
  return ARCHITECTURES.find((a) => (a.modelTypes as readonly unknown[]).includes(modelType));
}

export function archOf(cfg: ModelConfig): Architecture {
  const a = architectureOf(cfg.arch);
  if (!a) throw new Error(`no architecture for ${cfg.arch}`);
  return a;
}

/** The tensors a config calls for, in file order (see tensors.ts). */
export function tensorTable(cfg: ModelConfig): TensorSlot[] {
  return archOf(cfg).tensors(cfg);
}
