/**
 * Turning a `--model` argument into a model directory: a directory as is, an embedded model by name
 * (`toy-ioi`, `toy-ioi-llama`, ... shipped under models/ in the repo), or a Hugging Face hub id found
 * in (or downloaded into) the standard Hugging Face cache, so models fetched by Python tools are
 * reused and ours are visible to them. Sharded checkpoints (model.safetensors.index.json) and the
 * tokenizer files come along.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE } from './load.ts';
import { TOKENIZER_FILES } from '../tokenizer/load.ts';

/** The default `--model`. */
export const TOY_MODEL = 'toy-ioi';
/** Names of the models shipped in the repository: a directory under models/ with this pattern. */
const EMBEDDED_NAME = /^toy-[a-z0-9-]+$/;
/** Files fetched beside the weights when the repository has them (the tokenizer, chiefly). */
const OPTIONAL_FILES = [...new Set([...TOKENIZER_FILES, 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'])];

/** The shard files an index names, or undefined when the index is unreadable. */
function shardsOf(indexPath: string): string[] | undefined {
  try {
    const map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, unknown> }).weight_map;
    if (!map || typeof map !== 'object') return undefined;
    const files = [...new Set(Object.values(map))];
    return files.every((f) => typeof f === 'string' && !f.includes('..') && !f.startsWith('/')) ? (files as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `dir` holds a config and complete weights (one file, or an index and every shard it names). */
function hasModelFiles(dir: string): boolean {
  if (!existsSync(join(dir, CONFIG_FILE))) return false;
  if (existsSync(join(dir, WEIGHTS_FILE))) return true;
  const shards = existsSync(join(dir, INDEX_FILE)) ? shardsOf(join(dir, INDEX_FILE)) : undefined;
  return shards !== undefined && shards.every((f) => existsSync(join(dir, f)));
}

export interface ResolvedModel {
  /** A directory holding config.json and model.safetensors (possibly symlinks: open their real paths). */
  dir: string;
  /** Display name: the hub id, 'toy-ioi', or the directory as given. */
  name: string;
}

export interface ResolveOptions {
  /** Replaces the global fetch for hub requests (tests serve a fake hub through it). */
  fetch?: typeof fetch;
  hubUrl?: string;
  /** Progress messages; default: stderr, since stdout may carry JSON. */
  log?: (message: string) => void;
}

/** The repository root: this file lives in <root>/src/model/. */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The cache directory, by the precedence huggingface_hub itself uses. */
export function hfHubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  if (env.HF_HOME) return join(env.HF_HOME, 'hub');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface', 'hub');
}

const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/** Whether `spec` could be a hub model id (`name` or `org/name`), rather than a mistyped path. */
export function isPlausibleHubId(spec: string): boolean {
  const parts = spec.split('/');
  if (parts.length > 2) return false;
  return parts.every((p) => NAME_PART.test(p) && !p.includes('--') && !p.includes('..') && !p.endsWith('.'));
}

/** The snapshot directory of `id` in `cacheDir` that holds both model files, or undefined. */
export function findCachedSnapshot(cacheDir: string, id: string): string | undefined {
  const repoDir = join(cacheDir, `models--${id.split('/').join('--')}`);
  const complete = hasModelFiles;
  const refPath = join(repoDir, 'refs', 'main');
  if (existsSync(refPath)) {
    const hash = readFileSync(refPath, 'utf8').trim();
    if (/^[0-9a-zA-Z._-]+$/.test(hash)) {
      const snap = join(repoDir, 'snapshots', hash);
      if (complete(snap)) return realpathSync(snap);
    }
  }
  // Without refs/main (a download pinned to a commit), take the newest complete snapshot.
  const snapsDir = join(repoDir, 'snapshots');
  if (!existsSync(snapsDir)) return undefined;
  const snaps = readdirSync(snapsDir)
    .map((s) => join(snapsDir, s))
    .filter((s) => statSync(s).isDirectory() && complete(s))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return snaps.length > 0 ? realpathSync(snaps[0]!) : undefined;
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${e.message}: ${code && !cause.message.includes(code) ? `${code} ` : ''}${cause.message}`;
  }
  return e.message;
}

/** Download the model files of `id` into the cache, pinned to one commit so they share a snapshot. */
async function download(cacheDir: string, id: string, opts: ResolveOptions): Promise<string> {
  const hub = await import('@huggingface/hub');
  const token = process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN || undefined;
  const common = { fetch: opts.fetch, hubUrl: opts.hubUrl, ...(token ? { accessToken: token } : {}) };
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  // The library logs to console.debug/info, i.e. stdout, where carve's JSON output goes.
  const saved = { debug: console.debug, info: console.info };
  console.debug = console.info = (...args: unknown[]) => process.stderr.write(args.map(String).join(' ') + '\n');
  try {
    const info = await hub.modelInfo({ name: id, revision: 'main', additionalFields: ['sha'], ...common });
    const sha = (info as { sha?: unknown }).sha;
    if (typeof sha !== 'string' || !/^[0-9a-f]{40}$/.test(sha)) throw new Error(`the hub gave no commit hash for ${id}`);
    // What the repository holds decides the files: one weights file or an index and its shards.
    const present = new Set<string>();
    for await (const f of hub.listFiles({ repo: { type: 'model', name: id }, revision: sha, ...common })) if (f.type === 'file') present.add(f.path);
    if (!present.has(CONFIG_FILE)) throw new Error(`the repository has no ${CONFIG_FILE}`);
    const files = [CONFIG_FILE];
    let shards: string[] = [];
    if (present.has(WEIGHTS_FILE)) files.push(WEIGHTS_FILE);
    else if (present.has(INDEX_FILE)) files.push(INDEX_FILE);
    else throw new Error(`the repository has neither ${WEIGHTS_FILE} nor ${INDEX_FILE} (carve reads safetensors only)`);
    files.push(...OPTIONAL_FILES.filter((f) => present.has(f)));
    let snapshotDir = '';
    const fetchFile = async (path: string) => {
      log(`carve: downloading ${id}/${path} into ${cacheDir}`);
      snapshotDir = dirname(await hub.downloadFileToCacheDir({ repo: { type: 'model', name: id }, path, revision: sha, cacheDir, ...common }));
    };
    for (const path of files) await fetchFile(path);
    if (files.includes(INDEX_FILE)) {
      shards = shardsOf(join(snapshotDir, INDEX_FILE)) ?? [];
      if (shards.length === 0) throw new Error(`${INDEX_FILE} of ${id} names no shards`);
      for (const path of shards) {
        if (!present.has(path)) throw new Error(`${INDEX_FILE} names ${path}, which the repository does not have`);
        await fetchFile(path);
      }
    }
    // The library does not record the branch; huggingface_hub does, and our offline lookup reads it.
    writeFileAtomic(join(cacheDir, `models--${id.split('/').join('--')}`, 'refs', 'main'), sha);
    return realpathSync(snapshotDir);
  } finally {
    console.debug = saved.debug;
    console.info = saved.info;
  }
}

/** The models shipped under models/ in the repository. */
export function embeddedModels(): string[] {
  const root = join(repoRoot(), 'models');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => EMBEDDED_NAME.test(n) && hasModelFiles(join(root, n)))
    .sort();
}

/** Resolve a `--model` argument to a directory with config.json and model.safetensors. */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  if (existsSync(spec)) {
    if (!statSync(spec).isDirectory()) fail(`${spec}: not a model directory (it is a file; pass the directory holding ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
    return { dir: resolve(spec), name: spec };
  }
  if (EMBEDDED_NAME.test(spec)) {
    const dir = join(repoRoot(), 'models', spec);
    if (!hasModelFiles(dir)) {
      const known = embeddedModels();
      fail(`${dir}: no embedded model '${spec}' (${CONFIG_FILE} and weights expected there; embedded: ${known.length > 0 ? known.join(', ') : 'none'})`);
    }
    return { dir, name: spec };
  }
  if (!isPlausibleHubId(spec)) fail(`${spec}: no such model directory (and not a Hugging Face model id)`);

  const cacheDir = hfHubCacheDir();
  const cached = findCachedSnapshot(cacheDir, spec);
  if (cached) return { dir: cached, name: spec };

  let reason: string;
  if (process.env.HF_HUB_OFFLINE && !['0', 'false', ''].includes(process.env.HF_HUB_OFFLINE.toLowerCase())) {
    reason = 'HF_HUB_OFFLINE is set';
  } else {
    try {
      return { dir: await download(cacheDir, spec, opts), name: spec };
    } catch (e) {
      reason = describeError(e);
    }
  }
  fail(
    `model '${spec}' is not in the Hugging Face cache at ${cacheDir} and could not be downloaded (${reason}); ` +
      `copy it there or pass a directory`,
  );
}
