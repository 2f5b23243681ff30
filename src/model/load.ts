/**
 * Loading and saving model directories (config.json + model.safetensors, or shards listed by
 * model.safetensors.index.json), full or pruned, of every architecture carve reads. Which tensors a
 * directory must hold, and their shapes, come from the architecture's table (tensors.ts): the file is
 * checked against it, tensor by tensor, before anything runs.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fail } from '../util/errors.ts';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.ts';
import { configToJson, parseConfig } from './config.ts';
import { isPlainObject } from './config-fields.ts';
import { archOf } from './arch/index.ts';
import { slotShape, type TensorSlot } from './tensors.ts';
import { openSafetensors, writeSafetensors, holdsExactly, type Dtype, type SafetensorsFile, type TensorInfo, type TensorToWrite, type WriteDtype } from './safetensors.ts';
import { kvHeadsOf, mlpWidth, type LoadedModel, type ModelConfig, type ModelData, type Tensor, type Weights } from './types.ts';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** The tensors of a model directory, in one file or in shards. */
interface WeightFiles {
  /** What error messages call the weights: the single file, or the index. */
  label: string;
  names(): string[];
  info(name: string): TensorInfo | undefined;
  /** The file holding a tensor, for error messages. */
  fileOf(name: string): string;
  read(name: string): Float32Array;
  close(): void;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

function singleFile(path: string): WeightFiles {
  const st = openSafetensors(path);
  return {
    label: st.path,
    names: () => [...st.header.keys()],
    info: (n) => st.header.get(n),
    fileOf: () => st.path,
    read: (n) => st.tensorF32(n),
    close: () => st.close(),
  };
}

/** Shards as Hugging Face lists them: {"weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}}. */
function shardedFiles(dir: string, indexPath: string): WeightFiles {
  const index = readJson(indexPath, 'the shard index');
  if (!isPlainObject(index) || !isPlainObject(index.weight_map)) fail(`${indexPath}: "weight_map" must be an object mapping tensor names to shard files`);
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(index.weight_map)) {
    if (typeof file !== 'string' || file === '' || file !== basename(file) || file === '..' || file === '.') {
      fail(`${indexPath}: "weight_map" entry '${name}' must name a file in the model directory, found ${JSON.stringify(file)}`);
    }
    map.set(name, file);
  }
  const shards = new Map<string, SafetensorsFile>();
  try {
    for (const file of new Set(map.values())) {
      const p = join(dir, file);
      if (!existsSync(p)) fail(`${indexPath}: shard ${file} (listed in "weight_map") is missing from the model directory`);
      shards.set(file, openSafetensors(realpathSync(p)));
    }
    for (const [name, file] of map) {
      if (!shards.get(file)!.has(name)) fail(`${shards.get(file)!.path}: tensor '${name}' is listed in ${INDEX_FILE} but not in this shard`);
    }
  } catch (e) {
    for (const s of shards.values()) s.close();
    throw e;
  }
  const shardOf = (n: string) => shards.get(map.get(n)!)!;
  return {
    label: indexPath,
    names: () => [...map.keys()],
    info: (n) => (map.has(n) ? shardOf(n).header.get(n) : undefined),
    fileOf: (n) => (map.has(n) ? shardOf(n).path : indexPath),
    read: (n) => shardOf(n).tensorF32(n),
    close: () => shards.forEach((s) => s.close()),
  };
}

function openWeights(dir: string): WeightFiles {
  const single = join(dir, WEIGHTS_FILE);
  if (existsSync(single)) return singleFile(realpathSync(single));
  const index = join(dir, INDEX_FILE);
  if (existsSync(index)) return shardedFiles(dir, realpathSync(index));
  const hint = existsSync(join(dir, 'pytorch_model.bin')) ? ' (only pytorch_model.bin is there; carve reads safetensors)' : '';
  fail(`${dir}: no ${WEIGHTS_FILE} or ${INDEX_FILE} in the model directory${hint}`);
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

/** What the config says about a slot's shape, for error messages. */
function layoutNote(cfg: ModelConfig, slot: TensorSlot): string {
  if (slot.layer === undefined) return `hidden size ${cfg.dModel}, vocab_size ${cfg.vocabSize}, ${cfg.nCtx} positions`;
  const l = cfg.layers[slot.layer];
  return `layer ${slot.layer}: hidden size ${cfg.dModel}, ${l.heads.length} query and ${kvHeadsOf(cfg, l).length} key/value heads of ${cfg.dHead}, MLP width ${mlpWidth(cfg, l)}`;
}

/** Read a config.json file, with errors naming the file. */
export function readConfigFile(path: string): ModelConfig {
  return parseConfig(readJson(path, 'config'), path);
}

/**
 * Load a model directory. `name` is the display name (default: the directory as given).
 * Files are opened by their real path: Hugging Face cache snapshots are symlinks into blobs/.
 */
export function loadModelDir(dir: string, name?: string): LoadedModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(`${dir}: no such model directory`);
  const configPath = join(dir, CONFIG_FILE);
  if (!existsSync(configPath)) fail(`${dir}: no ${CONFIG_FILE} in the model directory`);
  const config = readConfigFile(realpathSync(configPath));
  const files = openWeights(dir);
  try {
    const arch = archOf(config);
    const present = new Set(files.names());
    // A name as the table spells it, or as the checkpoint does (e.g. GPT-2's `transformer.` prefix).
    const lookup = (n: string): string | undefined => {
      const found = [n, ...(arch.aliases?.(n) ?? [])].filter((c) => present.has(c));
      if (found.length > 1) fail(`${files.label}: tensor '${n}' appears under several names (${found.join(', ')})`);
      return found[0];
    };
    if (arch.tiedByFile) config.tied = arch.tiedByFile((n) => lookup(n) !== undefined);

    const weights: Weights = new Map();
    const used = new Set<string>();
    // Values read per stored dtype: the dtype holding most of them is the model's (storedDtype).
    const perDtype = new Map<Dtype, number>();
    for (const slot of archOf(config).tensors(config)) {
      const shape = slotShape(config, slot);
      const actual = lookup(slot.name);
      if (actual === undefined) {
        fail(`${files.label}: missing tensor '${slot.name}' (expected shape ${fmt(shape)} from ${CONFIG_FILE}: ${layoutNote(config, slot)})`);
      }
      const info = files.info(actual)!;
      if (!sameShape(info.shape, shape)) {
        fail(`${files.fileOf(actual)}: tensor '${actual}' has shape ${fmt(info.shape)}, expected ${fmt(shape)} (${CONFIG_FILE}: ${layoutNote(config, slot)})`);
      }
      used.add(actual);
      perDtype.set(info.dtype, (perDtype.get(info.dtype) ?? 0) + shape.reduce((a, b) => a * b, 1));
      weights.set(slot.name, { data: files.read(actual), shape });
    }
    for (const n of present) {
      if (used.has(n) || arch.ignored.test(n)) continue;
      // Some tied checkpoints still carry the unembedding; Hugging Face ignores it, and so do we.
      if (config.tied && ['lm_head.weight', 'embed_out.weight'].includes(n)) continue;
      fail(`${files.fileOf(n)}: unexpected tensor '${n}' (not part of the ${config.arch} layout ${CONFIG_FILE} describes: ${config.layers.length} layers${config.pruned ? ', pruned' : ''})`);
    }
    let storedDtype: Dtype | undefined;
    for (const [dt, n] of perDtype) if (storedDtype === undefined || n > perDtype.get(storedDtype)!) storedDtype = dt;
    return { config, weights, source: resolve(dir), name: name ?? dir, ...(storedDtype ? { storedDtype } : {}) };
  } finally {
    files.close();
  }
}

/**
 * Bytes on disk of what carve reads from a model directory: config.json and the weights (the one
 * safetensors file, or the shard index and every shard it lists). Symlinks (the Hugging Face cache) count their targets.
 */
export function modelDirBytes(dir: string): number {
  const size = (f: string) => statSync(join(dir, f)).size;
  let total = size(CONFIG_FILE);
  if (existsSync(join(dir, WEIGHTS_FILE))) return total + size(WEIGHTS_FILE);
  total += size(INDEX_FILE);
  const index = readJson(join(dir, INDEX_FILE), 'the shard index') as { weight_map: Record<string, string> };
  for (const shard of new Set(Object.values(index.weight_map))) total += size(shard);
  return total;
}

/**
 * How saveModelDir stores the weights: one dtype for every tensor (values rounded to it), or a dtype
 * per tensor name (losslessDtypes).
 */
export type SaveDtype = WriteDtype | ReadonlyMap<string, WriteDtype>;

/**
 * `preferred` for every tensor it holds exactly, F32 for the others: a file that rounds nothing. For
 * a model carved from an F16 checkpoint that is F16 for all but the few bias vectors carve computed.
 */
/** A carved model's dtype when none is asked for: its source's, when carve writes it (F16, BF16, F32), else F32. */
export function keptDtype(stored: Dtype | undefined): WriteDtype {
  return stored === 'F16' || stored === 'BF16' || stored === 'F32' ? stored : 'F32';
}

export function losslessDtypes(model: ModelData, preferred: WriteDtype): Map<string, WriteDtype> {
  const out = new Map<string, WriteDtype>();
  for (const [name, t] of model.weights) out.set(name, holdsExactly(t.data, preferred) ? preferred : 'F32');
  return out;
}

/** The tensors to write for a model, in table order; a missing or misshapen tensor is an error. */
function tensorsToWrite(dir: string, model: ModelData, dtype: SaveDtype): TensorToWrite[] {
  return archOf(model.config).tensors(model.config).map((slot) => {
    const shape = slotShape(model.config, slot);
    const t: Tensor | undefined = model.weights.get(slot.name);
    if (!t) fail(`${dir}: cannot save: tensor '${slot.name}' is missing from the weights`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!sameShape(t.shape, shape) || t.data.length !== n) {
      fail(`${dir}: cannot save: tensor '${slot.name}' has shape ${fmt(t.shape)} (${t.data.length} values), expected ${fmt(shape)}`);
    }
    return { name: slot.name, dtype: typeof dtype === 'string' ? dtype : (dtype.get(slot.name) ?? 'F32'), shape, data: t.data };
  });
}

/**
 * Write a model directory atomically: config.json (with the `carve` section for pruned layouts) and
 * model.safetensors holding exactly the tensors the table calls for, under their table names.
 */
export function saveModelDir(dir: string, model: ModelData, dtype: SaveDtype = 'F32', extraFiles: Record<string, string | Uint8Array> = {}): void {
  const tensors = tensorsToWrite(dir, model, dtype);
  const configJson = JSON.stringify(configToJson(model.config), null, 2) + '\n';
  writeDirAtomic(dir, (tmp) => {
    writeFileAtomic(join(tmp, CONFIG_FILE), configJson);
    // transformers refuses safetensors files without format metadata.
    writeSafetensors(join(tmp, WEIGHTS_FILE), tensors, { format: 'pt' });
    for (const [file, content] of Object.entries(extraFiles)) writeFileAtomic(join(tmp, file), content);
  });
}
