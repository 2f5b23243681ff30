/**
 * Loading and saving GPT-2-format model directories (config.json + model.safetensors), full or pruned.
 * See config.ts for the pruned layout and which tensors a pruned layer has.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../util/errors.ts';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { configToJson, parseConfig } from './config.ts';
import { openSafetensors, writeSafetensors, type TensorToWrite, type WriteDtype } from './safetensors.ts';
import type { GPT2Config, GPT2Weights, LayerWeights, LoadedModel, Tensor } from './types.ts';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';

/** Buffers old PyTorch GPT-2 checkpoints carry (causal mask, masked fill value): not weights. */
const IGNORED = /^(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)$/;

/** One tensor the layout calls for: its name in the file (without prefix) and its shape. */
interface Slot {
  name: string;
  shape: number[];
}

/** The tensors a config's layout calls for, in the order they are written, with their shapes. */
export function expectedTensors(cfg: GPT2Config, hasLmHead: boolean): Slot[] {
  const d = cfg.dModel;
  const out: Slot[] = [
    { name: 'wte.weight', shape: [cfg.vocabSize, d] },
    { name: 'wpe.weight', shape: [cfg.nCtx, d] },
  ];
  cfg.layers.forEach((layer, i) => {
    const p = `h.${i}.`;
    const kd = layer.heads.length * cfg.dHead;
    if (layer.heads.length > 0) {
      out.push(
        { name: p + 'ln_1.weight', shape: [d] },
        { name: p + 'ln_1.bias', shape: [d] },
        { name: p + 'attn.c_attn.weight', shape: [d, 3 * kd] },
        { name: p + 'attn.c_attn.bias', shape: [3 * kd] },
        { name: p + 'attn.c_proj.weight', shape: [kd, d] },
      );
    }
    out.push({ name: p + 'attn.c_proj.bias', shape: [d] });
    if (layer.mlp) {
      out.push(
        { name: p + 'ln_2.weight', shape: [d] },
        { name: p + 'ln_2.bias', shape: [d] },
        { name: p + 'mlp.c_fc.weight', shape: [d, cfg.dMlp] },
        { name: p + 'mlp.c_fc.bias', shape: [cfg.dMlp] },
        { name: p + 'mlp.c_proj.weight', shape: [cfg.dMlp, d] },
      );
    }
    out.push({ name: p + 'mlp.c_proj.bias', shape: [d] });
  });
  out.push({ name: 'ln_f.weight', shape: [d] }, { name: 'ln_f.bias', shape: [d] });
  if (hasLmHead) out.push({ name: 'lm_head.weight', shape: [cfg.vocabSize, d] });
  return out;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

function layoutNote(cfg: GPT2Config, name: string): string {
  const m = /^h\.(\d+)\./.exec(name);
  if (!m) return `n_embd ${cfg.dModel}, vocab_size ${cfg.vocabSize}, n_positions ${cfg.nCtx}`;
  const layer = cfg.layers[Number(m[1])]!;
  return `n_embd ${cfg.dModel}, ${layer.heads.length} heads of ${cfg.dHead}, n_inner ${cfg.dMlp}`;
}

/** Read a config.json file into a GPT2Config, with errors naming the file. */
export function readConfigFile(path: string): GPT2Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, path);
}

/**
 * Load a model directory. `name` is the display name (default: the directory as given).
 * Files are opened by their real path: Hugging Face cache snapshots are symlinks into blobs/.
 */
export function loadModelDir(dir: string, name?: string): LoadedModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`${dir}: no such model directory`);
  const configPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!existsSync(configPath)) fail(`${dir}: no ${CONFIG_FILE} in the model directory`);
  if (!existsSync(weightsPath)) {
    const hint = existsSync(join(dir, 'pytorch_model.bin')) ? ' (only pytorch_model.bin is there; carve reads safetensors)' : '';
    fail(`${dir}: no ${WEIGHTS_FILE} in the model directory${hint}`);
  }
  const config = readConfigFile(realpathSync(configPath));
  const st = openSafetensors(realpathSync(weightsPath));
  const file = st.path;

  // Accept names with or without the `transformer.` prefix that GPT2LMHeadModel state dicts carry.
  const used = new Set<string>();
  const lookup = (n: string): string | undefined => {
    const bare = st.has(n);
    const prefixed = st.has('transformer.' + n);
    if (bare && prefixed) fail(`${file}: tensor '${n}' appears both with and without the 'transformer.' prefix`);
    return bare ? n : prefixed ? 'transformer.' + n : undefined;
  };

  const hasLmHead = lookup('lm_head.weight') !== undefined;
  const tensors = new Map<string, Tensor>();
  for (const slot of expectedTensors(config, hasLmHead)) {
    const actual = lookup(slot.name);
    if (actual === undefined) {
      fail(`${file}: missing tensor '${slot.name}' (expected shape ${fmt(slot.shape)} from ${CONFIG_FILE}: ${layoutNote(config, slot.name)})`);
    }
    const info = st.header.get(actual)!;
    if (!sameShape(info.shape, slot.shape)) {
      fail(`${file}: tensor '${actual}' has shape ${fmt(info.shape)}, expected ${fmt(slot.shape)} (${CONFIG_FILE}: ${layoutNote(config, slot.name)})`);
    }
    used.add(actual);
    tensors.set(slot.name, { data: st.tensorF32(actual), shape: slot.shape });
  }
  for (const n of st.header.keys()) {
    if (used.has(n) || IGNORED.test(n)) continue;
    fail(`${file}: unexpected tensor '${n}' (not part of the GPT-2 layout ${CONFIG_FILE} describes: ${config.layers.length} layers${config.pruned ? ', pruned' : ''})`);
  }

  const t = (n: string) => tensors.get(n)!;
  const opt = (n: string) => tensors.get(n);
  const layers: LayerWeights[] = config.layers.map((layer, i) => {
    const p = `h.${i}.`;
    const lw: LayerWeights = { bO: t(p + 'attn.c_proj.bias'), bMlpOut: t(p + 'mlp.c_proj.bias') };
    if (layer.heads.length > 0) {
      lw.ln1 = { g: t(p + 'ln_1.weight'), b: t(p + 'ln_1.bias') };
      lw.attn = { wQKV: t(p + 'attn.c_attn.weight'), bQKV: t(p + 'attn.c_attn.bias'), wO: t(p + 'attn.c_proj.weight') };
    }
    if (layer.mlp) {
      lw.ln2 = { g: t(p + 'ln_2.weight'), b: t(p + 'ln_2.bias') };
      lw.mlp = { wIn: t(p + 'mlp.c_fc.weight'), bIn: t(p + 'mlp.c_fc.bias'), wOut: t(p + 'mlp.c_proj.weight') };
    }
    return lw;
  });
  const weights: GPT2Weights = {
    wte: t('wte.weight'),
    wpe: t('wpe.weight'),
    layers,
    lnf: { g: t('ln_f.weight'), b: t('ln_f.bias') },
  };
  const lm = opt('lm_head.weight');
  if (lm) weights.lmHead = lm;
  return { config, weights, source: resolve(dir), name: name ?? dir };
}

/** Map the weights onto the tensor names the layout calls for; a missing or misshapen tensor is an error. */
function weightsToTensors(dir: string, config: GPT2Config, w: GPT2Weights, dtype: WriteDtype): TensorToWrite[] {
  if (w.layers.length !== config.layers.length) {
    fail(`${dir}: the weights have ${w.layers.length} layers but the config lists ${config.layers.length}`);
  }
  const byName = new Map<string, Tensor | undefined>([
    ['wte.weight', w.wte],
    ['wpe.weight', w.wpe],
    ['ln_f.weight', w.lnf.g],
    ['ln_f.bias', w.lnf.b],
    ['lm_head.weight', w.lmHead],
  ]);
  w.layers.forEach((l, i) => {
    const p = `h.${i}.`;
    byName.set(p + 'ln_1.weight', l.ln1?.g);
    byName.set(p + 'ln_1.bias', l.ln1?.b);
    byName.set(p + 'attn.c_attn.weight', l.attn?.wQKV);
    byName.set(p + 'attn.c_attn.bias', l.attn?.bQKV);
    byName.set(p + 'attn.c_proj.weight', l.attn?.wO);
    byName.set(p + 'attn.c_proj.bias', l.bO);
    byName.set(p + 'ln_2.weight', l.ln2?.g);
    byName.set(p + 'ln_2.bias', l.ln2?.b);
    byName.set(p + 'mlp.c_fc.weight', l.mlp?.wIn);
    byName.set(p + 'mlp.c_fc.bias', l.mlp?.bIn);
    byName.set(p + 'mlp.c_proj.weight', l.mlp?.wOut);
    byName.set(p + 'mlp.c_proj.bias', l.bMlpOut);
  });
  return expectedTensors(config, w.lmHead !== undefined).map((slot) => {
    const tensor = byName.get(slot.name);
    if (!tensor) fail(`${dir}: cannot save: tensor '${slot.name}' is missing from the weights`);
    const n = slot.shape.reduce((a, b) => a * b, 1);
    if (!sameShape(tensor.shape, slot.shape) || tensor.data.length !== n) {
      fail(`${dir}: cannot save: tensor '${slot.name}' has shape ${fmt(tensor.shape)} (${tensor.data.length} values), expected ${fmt(slot.shape)}`);
    }
    return { name: slot.name, dtype, shape: slot.shape, data: tensor.data };
  });
}

/**
 * Write a model directory atomically: config.json (with the `carve` section for pruned layouts) and
 * model.safetensors holding exactly the tensors the layout calls for, without the `transformer.` prefix.
 */
export function saveModelDir(
  dir: string,
  model: { config: GPT2Config; weights: GPT2Weights },
  dtype: WriteDtype = 'F32',
): void {
  const tensors = weightsToTensors(dir, model.config, model.weights, dtype);
  const configJson = JSON.stringify(configToJson(model.config), null, 2) + '\n';
  writeDirAtomic(dir, (tmp) => {
    writeFileAtomic(join(tmp, CONFIG_FILE), configJson);
    // transformers refuses safetensors files without format metadata.
    writeSafetensors(join(tmp, WEIGHTS_FILE), tensors, { format: 'pt' });
  });
}
