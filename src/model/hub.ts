/**
 * Turning a `--model` argument into a model directory: a directory as is, `toy-ioi` (shipped in the
 * repo), or a Hugging Face hub id found in (or downloaded into) the standard Hugging Face cache, so
 * models fetched by Python tools are reused and ours are visible to them.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { CONFIG_FILE, WEIGHTS_FILE } from './load.ts';
import { TOKENIZER_FILES } from '../tokenizer/load.ts';

export const TOY_MODEL = 'toy-ioi';
const MODEL_FILES = [CONFIG_FILE, WEIGHTS_FILE];

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
  const complete = (snap: string) => MODEL_FILES.every((f) => existsSync(join(snap, f)));
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
    // The tokenizer files are fetched too when the repository has them (SPEC: text goes through
    // tokenizer.json when the model has one); a repository without them keeps GPT-2 BPE.
    const optional = (await hub.pathsInfo({ repo: { type: 'model', name: id }, paths: TOKENIZER_FILES, revision: sha, ...common }))
      .filter((p) => p.type === 'file')
      .map((p) => p.path);
    let snapshotFile = '';
    for (const path of [...MODEL_FILES, ...TOKENIZER_FILES.filter((f) => optional.includes(f))]) {
      log(`carve: downloading ${id}/${path} into ${cacheDir}`);
      snapshotFile = await hub.downloadFileToCacheDir({ repo: { type: 'model', name: id }, path, revision: sha, cacheDir, ...common });
    }
    // The library does not record the branch; huggingface_hub does, and our offline lookup reads it.
    writeFileAtomic(join(cacheDir, `models--${id.split('/').join('--')}`, 'refs', 'main'), sha);
    return realpathSync(dirname(snapshotFile));
  } finally {
    console.debug = saved.debug;
    console.info = saved.info;
  }
}

/** Resolve a `--model` argument to a directory with config.json and model.safetensors. */
export async function resolveModel(spec: string, opts: ResolveOptions = {}): Promise<ResolvedModel> {
  if (existsSync(spec)) {
    if (!statSync(spec).isDirectory()) fail(`${spec}: not a model directory (it is a file; pass the directory holding ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
    return { dir: resolve(spec), name: spec };
  }
  if (spec === TOY_MODEL) {
    const dir = join(repoRoot(), 'models', TOY_MODEL);
    if (!existsSync(join(dir, CONFIG_FILE)) || !existsSync(join(dir, WEIGHTS_FILE))) {
      fail(`${dir}: the embedded model '${TOY_MODEL}' is missing (${CONFIG_FILE} and ${WEIGHTS_FILE} expected there)`);
    }
    return { dir, name: TOY_MODEL };
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
