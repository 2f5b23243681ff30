/**
 * The report's attention figures: the attention patterns of the few heads that matter most (largest
 * |score| in the run's first exact scan, else its first scan) on the first prompt of the run's task.
 *
 * A run directory holds results, not the model, so the model is found the way the scans name it:
 * `--model` when given, else the scans' "model" field if it is at hand without a download (a
 * directory, the embedded toy-ioi, or a Hugging Face cache snapshot). When it is not, or the run has
 * no task file, the figures are skipped with a warning and the rest of the report is unchanged.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../onnx/session.ts';
import { HookedModel } from '../model/hooked.ts';
import { loadModelDir } from '../model/load.ts';
import { layerPatterns } from '../model/attention.ts';
import { embeddedModels, findCachedSnapshot, hfHubCacheDir, isPlausibleHubId, resolveModel, type ResolvedModel } from '../model/hub.ts';
import { loadJsonlTask } from '../task/jsonl.ts';
import { displayToken } from '../tokenizer/gpt2.ts';
import { isCarveError } from '../util/errors.ts';
import type { RunData, ScanData } from './load-run.ts';

/** How many heads get a figure. */
export const ATTENTION_HEADS = 4;

export interface HeadAttention {
  /** Component name, e.g. L2H1. */
  name: string;
  layer: number;
  head: number;
  score: number;
  /** The scan the score comes from, and the task file the prompt comes from (relative to the run). */
  scanFile: string;
  taskFile: string;
  tokens: string[];
  /** [query][key] attention weights; zero where the key comes after the query. */
  pattern: number[][];
}

export interface AttentionOptions {
  /** The model to run (overrides the scans' "model" field). */
  model?: string;
}

const METHOD_RANK: Record<string, number> = { exact: 0, attribution: 1, ig: 2 };

/** The scan whose scores pick the heads: an exact one first, mean ablation before others. */
export function rankingScan(scans: ScanData[]): ScanData | null {
  const sorted = [...scans].sort(
    (a, b) => (METHOD_RANK[a.method] ?? 9) - (METHOD_RANK[b.method] ?? 9) || Number(b.ablation === 'mean') - Number(a.ablation === 'mean') || a.file.localeCompare(b.file),
  );
  return sorted[0] ?? null;
}

/** The heads with the largest |score| (ties: layer order), at most `count`. */
export function topHeads(scan: ScanData, count = ATTENTION_HEADS): ScanData['components'] {
  return scan.components
    .filter((c) => c.head !== null)
    .map((c, i) => ({ c, i }))
    .sort((a, b) => Math.abs(b.c.score) - Math.abs(a.c.score) || a.i - b.i)
    .slice(0, count)
    .map((x) => x.c);
}

/** A model named in a run, if it is on this machine (never downloads). */
function localModel(spec: string, runDir: string): ResolvedModel | null {
  for (const dir of [spec, join(runDir, spec)]) {
    if (existsSync(join(dir, 'config.json')) && statSync(dir).isDirectory()) return { dir, name: spec };
  }
  if (isPlausibleHubId(spec)) {
    const cached = findCachedSnapshot(hfHubCacheDir(), spec);
    if (cached) return { dir: cached, name: spec };
  }
  return null;
}

export async function reportAttention(run: RunData, opts: AttentionOptions = {}): Promise<{ heads: HeadAttention[]; warnings: string[] }> {
  const skip = (why: string) => ({ heads: [], warnings: [`attention patterns skipped: ${why}`] });
  const scan = rankingScan(run.scans);
  if (!scan) return { heads: [], warnings: [] };
  const picked = topHeads(scan);
  if (picked.length === 0) return { heads: [], warnings: [] };
  if (!run.task) return skip('the run directory has no task file (task.jsonl) to take the first prompt from');
  const spec = opts.model ?? scan.model;
  if (!spec) return skip(`${scan.file} names no model; pass --model`);

  let resolved: ResolvedModel | null;
  // Embedded models (models/toy-*) resolve without the network, like a directory.
  if (opts.model !== undefined || embeddedModels().includes(spec)) resolved = await resolveModel(spec);
  else resolved = localModel(spec, run.dir);
  if (!resolved) return skip(`model ${JSON.stringify(spec)} (named in ${scan.file}) is not on this machine; pass --model`);

  try {
    const loaded = loadModelDir(resolved.dir, resolved.name);
    const task = loadJsonlTask(join(run.dir, run.task.file), { nCtx: loaded.config.nCtx });
    const tokens = task.pairs[0].clean;
    const bad = tokens.find((t) => t >= loaded.config.vocabSize);
    if (bad !== undefined) return skip(`the first prompt's token ${bad} is outside ${resolved.name}'s vocabulary`);
    const model = new HookedModel(loaded, new Engine());
    const byLayer = new Map<number, Awaited<ReturnType<typeof layerPatterns>>>();
    const heads: HeadAttention[] = [];
    for (const c of picked) {
      const pos = loaded.config.layers.findIndex((l) => l.sourceLayer === c.layer);
      if (pos < 0 || !loaded.config.layers[pos].heads.includes(c.head!)) return skip(`${resolved.name} has no head ${c.name} (is it the model ${scan.file} was made with?)`);
      if (!byLayer.has(pos)) byLayer.set(pos, await layerPatterns(model, tokens, pos));
      const got = byLayer.get(pos)!;
      const flat = got.patterns[got.heads.indexOf(c.head!)];
      const T = tokens.length;
      heads.push({
        name: c.name,
        layer: c.layer,
        head: c.head!,
        score: c.score,
        scanFile: scan.file,
        taskFile: run.task.file,
        tokens: tokens.map(displayToken),
        pattern: Array.from({ length: T }, (_, q) => Array.from(flat.subarray(q * T, (q + 1) * T))),
      });
    }
    return { heads, warnings: [] };
  } catch (e) {
    if (isCarveError(e)) return skip(e.message);
    throw e;
  }
}
