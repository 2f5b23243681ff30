/**
 * bench/ab: this working tree against another commit, side by side in one process. On the shared
 * 2-core machines single bench runs swing by ±20%, so effects of 10–30% only show when both codes
 * run in the same process, round after round, alternating (the load hits both alike) — the best
 * round of each side is its least disturbed one. Both trees' code is imported: the other from a
 * git worktree of AB_REF (made on first use in the OS temp directory, sharing this node_modules).
 * Each side builds the same random GPT-2-small-shape model and prompts with its own code.
 *
 *     AB_REF=HEAD~3 npm run bench:ab                  # ACDC-shaped batches at layers 0, 4, 8
 *     AB_REF=main AB_PROBE=eap npm run bench:ab       # EAP over every edge
 *
 * AB_PROBE: acdc (AB_LAYERS, default 0,4,8; AB_BASE=circuit|uniform; AB_MLPS, MLPs in the circuit),
 * eap, ig (5 steps), iga (EAP-IG-activations, 5 steps, 5 prompts). AB_ROUNDS: timed rounds per side (default 3). The other commit must have the
 * modules used here (the edge evaluator, scanEdges, bench/models.ts, bench/gpt2-small.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildEdgeGraph } from '../src/discover/edge-graph.ts';
import { acdcEdgeOrder, DEFAULT_ACDC_WIDTH } from '../src/discover/edge-acdc.ts';
import { BENCH_MODELS } from './models.ts';
import { acdcBases, acdcBatch } from './acdc-bases.ts';

const here = resolve(import.meta.dirname, '..');
const ref = process.env.AB_REF;
if (!ref) throw new Error('AB_REF: the commit to compare this tree with (e.g. HEAD~1, main)');
const sha = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: here, encoding: 'utf8' }).trim();
const other = join(tmpdir(), `carve-ab-${sha.slice(0, 12)}`);
if (!existsSync(other)) {
  execFileSync('git', ['worktree', 'add', '--detach', other, sha], { cwd: here, stdio: 'ignore' });
  symlinkSync(join(here, 'node_modules'), join(other, 'node_modules'));
}
const probe = process.env.AB_PROBE ?? 'acdc';
const rounds = Number(process.env.AB_ROUNDS ?? 3);

/** One side's run of the probe (returns seconds per unit), prepared (compiled, warm) by a first call. */
type Run = (unit: string) => Promise<number>;

async function side(root: string): Promise<{ units: string[]; run: Run }> {
  const load = (path: string) => import(pathToFileURL(join(root, path)).href);
  const { Engine } = await load('src/onnx/session.ts');
  const { HookedModel } = await load('src/model/hooked.ts');
  const { BENCH_MODELS: models, taskInVocabulary } = await load('bench/models.ts');
  const { ioiPrompts } = await load('bench/gpt2-small.ts');
  const model = new HookedModel(models.gpt2.make(), new Engine({ device: 'cpu', threads: 0 }));
  const task = taskInVocabulary(await ioiPrompts(25), model.config.vocabSize);
  const time = async (f: () => Promise<unknown>) => {
    const t0 = performance.now();
    await f();
    return (performance.now() - t0) / 1000;
  };
  if (probe === 'eap' || probe === 'ig' || probe === 'iga') {
    const { scanEdges } = await load('src/discover/edge-scan.ts');
    // EAP-IG-activations on 5 prompts (125 pinned rows each), as bench/edges' ONLY=iga.
    const on = probe === 'iga' ? { ...task, pairs: task.pairs.slice(0, 5) } : task;
    const opts = probe === 'eap' ? { method: 'attribution' } : probe === 'ig' ? { method: 'ig' } : { method: 'ig', igPath: 'activations', batchSize: 64 };
    const run = () => scanEdges(model, on, { ablation: 'resample', batchSize: 25, ...opts });
    return { units: [probe], run: () => time(run) };
  }
  const { computeEdgeReplacements } = await load('src/discover/edge-replacements.ts');
  const { EdgeEvaluator } = await load('src/discover/edge-evaluate.ts');
  const ev = await EdgeEvaluator.create(model, task, await computeEdgeReplacements(model, task, 'resample', 'clean', 25), { batchSize: 64 });
  // The batches come from this tree's bench code (same graph, same edge indices on both sides).
  const graph = buildEdgeGraph(model.config);
  const bases = acdcBases(graph, acdcEdgeOrder(graph), { heads: 28, mlps: Number(process.env.AB_MLPS ?? Infinity), edges: 1000 });
  const layers = (process.env.AB_LAYERS ?? '0,4,8').split(',').map(Number);
  const configs = new Map<string, unknown[]>();
  for (const l of layers) {
    const batch = acdcBatch(graph, bases, (process.env.AB_BASE ?? 'circuit') as 'circuit' | 'uniform', l, DEFAULT_ACDC_WIDTH);
    const base = ev.base(batch.baseEdges);
    configs.set(`acdc layer ${l}`, batch.prefixes.map((edges) => ({ edges, base })));
  }
  return {
    units: [...configs.keys()],
    run: async (unit) => {
      const c = configs.get(unit)!;
      return (await time(() => ev.evaluate(c))) / (c.length * task.pairs.length); // per row
    },
  };
}

const sides = { this: await side(here), ref: await side(other) };
process.stderr.write(`${BENCH_MODELS.gpt2.label}; this tree against ${ref} (${sha.slice(0, 12)}), ${rounds} rounds\n`);
const results: Record<string, { this_s: number; ref_s: number; ref_over_this: number }> = {};
for (const unit of sides.this.units) {
  const times = { this: [] as number[], ref: [] as number[] };
  for (const s of ['this', 'ref'] as const) await sides[s].run(unit); // compile, grow the arenas
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 === 0 ? (['this', 'ref'] as const) : (['ref', 'this'] as const)) times[s].push(await sides[s].run(unit));
  }
  const best = { this: Math.min(...times.this), ref: Math.min(...times.ref) };
  results[unit] = { this_s: best.this, ref_s: best.ref, ref_over_this: best.ref / best.this };
  process.stderr.write(`${unit}: this ${best.this.toPrecision(3)} s, ref ${best.ref.toPrecision(3)} s${probe === 'acdc' ? ' a row' : ''}; ref/this ${(best.ref / best.this).toFixed(2)}×\n`);
}
console.log(JSON.stringify(results, null, 2));
