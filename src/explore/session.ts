/**
 * The explore server's one adapter to carve's model, task and evaluator: everything the page can ask
 * for goes through an ExploreSession, so a change in the task layer (answer sets, metrics) is made
 * here and nowhere else in src/explore.
 *
 * What it caches, so a click answers within a second:
 *  - one ExactEvaluator per ablation (the clean residual stream before every layer, the replacement
 *    values — means or corrupt activations — and the clean metric), built on first use;
 *  - every evaluated set of removed components (an LRU of per-prompt metrics);
 *  - attention patterns by (prompt, layer, removed set).
 * Requests that arrive while the model is busy are batched: every pending set of one ablation goes
 * into the same ExactEvaluator.evaluate call (one onnxruntime run per start layer and chunk).
 * Model work is serialised (onnxruntime blocks the event loop anyway, and the evaluators share the model).
 *
 * Every user-facing check throws a CarveError (the server turns it into HTTP 400).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { HookedModel } from '../model/hooked.ts';
import type { Engine } from '../onnx/session.ts';
import type { LoadedModel } from '../model/types.ts';
import type { MetricName } from '../model/readout.ts';
import { CONFIG_FILE, WEIGHTS_FILE, keptDtype, losslessDtypes, saveModelDir } from '../model/load.ts';
import { layerPatterns } from '../model/attention.ts';
import { gpt2Tokenizer } from '../tokenizer/gpt2.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { accuracy, mean, std } from '../task/metrics.ts';
import { checkPair } from '../task/jsonl.ts';
import type { Task } from '../task/types.ts';
import { canonicalOrder, findComponent, listComponents, type Component } from '../discover/components.ts';
import { ABLATIONS, computeReplacements, removalInterventions, type Ablation, type MeanOver, type Replacements } from '../discover/replacements.ts';
import { ExactEvaluator } from '../discover/evaluate.ts';
import { scan } from '../discover/scan.ts';
import { pruneModel } from '../compress/prune-model.ts';
import { countParams } from '../compress/count.ts';
import type { PruneData, RunData, ScanData } from '../report/load-run.ts';

export type ExploreMetric = MetricName;

export interface SessionOptions {
  /** The task metric (default logit-diff). */
  metric?: ExploreMetric;
  /** Rows per onnxruntime run. */
  batchSize?: number;
  meanOver?: MeanOver;
  /** The only directory the session writes into (keep files, compressed models); none: no writing. */
  outDir?: string;
  /** A run directory's scans and pruning curves, to show beside the live model. */
  run?: RunData;
  /** Evaluated sets kept in memory. */
  cacheSize?: number;
  /** The model's tokenizer, for showing tokens (default GPT-2's). */
  tokenizer?: Tokenizer;
}

export interface EvaluateResult {
  metric: number;
  std: number;
  /** Share of prompts whose metric is > 0 (correct beats incorrect); null for KL, where it means nothing. */
  accuracy: number | null;
  per_prompt: number[];
  removed: string[];
  ablation: Ablation;
  metric_name: ExploreMetric;
}

export interface PromptMark {
  /** Token index in the clean prompt. */
  pos: number;
  /** io: the correct answer's name or token; s: the incorrect one's (IOI's subject); end: the metric position. */
  kind: 'io' | 's' | 'end';
  label: string;
}

export interface PromptView {
  index: number;
  tokens: string[];
  correct: string;
  incorrect: string;
  marks: PromptMark[];
}

export interface LayerView {
  layer: number;
  heads: number[];
  mlp: boolean;
}

export interface SessionInfo {
  model: string;
  task: string;
  n_prompts: number;
  metric_name: ExploreMetric;
  n_heads: number;
  layers: LayerView[];
  components: string[];
  ablations: readonly Ablation[];
  /** Whether save and compress can write (the server was given an output directory). */
  can_write: boolean;
  out_dir: string | null;
  run_dir: string | null;
}

export interface ScanView {
  id: string;
  label: string;
  ablation: string;
  method: string;
  components: { name: string; score: number; std: number | null }[];
}

/** Names the page may give a keep file or a model directory: one plain path segment. */
const OUTPUT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** carve compress's record file, so a directory written here reads like one written by the CLI. */
const COMPRESS_RECORD = 'carve-compress.json';



class Lru<V> {
  private map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.map.delete(key);
    this.map.set(key, v);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
  }
}

interface Pending {
  removed: Component[];
  key: string;
  resolve: (v: Float64Array) => void;
  reject: (e: unknown) => void;
}

export class ExploreSession {
  readonly model: HookedModel;
  readonly metric: ExploreMetric;
  private readonly tokenizer: Tokenizer;
  readonly batchSize: number;
  readonly meanOver: MeanOver;
  readonly outDir: string | null;
  /** The output directory as the user wrote it, for display. */
  private readonly outDirAsGiven: string | null;
  readonly run: RunData | null;
  private readonly comps: Component[];
  private evaluators = new Map<Ablation, Promise<{ ev: ExactEvaluator; repl: Replacements }>>();
  private results: Lru<Float64Array>;
  private inflight = new Map<string, Promise<Float64Array>>();
  private pending = new Map<Ablation, Pending[]>();
  private patterns = new Lru<{ heads: number[]; patterns: Float64Array[] }>(256);
  private computedScans: ScanView[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  /** How many evaluate calls served how many sets (batching at work). */
  readonly stats = { evaluateCalls: 0, evaluatedSets: 0, cacheHits: 0 };

  constructor(
    readonly loaded: LoadedModel,
    readonly task: Task,
    engine: Engine,
    opts: SessionOptions = {},
  ) {
    this.metric = opts.metric ?? 'logit-diff';
    this.tokenizer = opts.tokenizer ?? gpt2Tokenizer;
    this.model = new HookedModel(loaded, engine);
    this.batchSize = Math.max(1, opts.batchSize ?? 64);
    this.meanOver = opts.meanOver ?? 'clean';
    this.outDir = opts.outDir === undefined ? null : resolve(opts.outDir);
    this.outDirAsGiven = opts.outDir ?? null;
    this.run = opts.run ?? null;
    this.results = new Lru(opts.cacheSize ?? 4096);
    this.comps = listComponents(this.model.config);
  }

  // ------------------------------------------------------------ what the page shows

  info(): SessionInfo {
    const cfg = this.model.config;
    return {
      model: this.loaded.name,
      task: this.task.name,
      n_prompts: this.task.pairs.length,
      metric_name: this.metric,
      n_heads: cfg.nHead,
      layers: cfg.layers.map((l) => ({ layer: l.sourceLayer, heads: [...l.heads], mlp: l.mlp })),
      components: this.comps.map((c) => c.name),
      ablations: ABLATIONS,
      can_write: this.outDir !== null,
      out_dir: this.outDirAsGiven,
      run_dir: this.run?.dir ?? null,
    };
  }

  /** SPEC's GET /api/components. */
  async components(): Promise<{ components: string[]; clean_metric: number; metric_name: ExploreMetric }> {
    const { ev } = await this.evaluator('mean');
    return { components: this.comps.map((c) => c.name), clean_metric: mean(this.cleanOf(ev)), metric_name: this.metric };
  }

  prompts(): PromptView[] {
    return this.task.pairs.map((p, i) => {
      const marks: PromptMark[] = [];
      const ioi = this.task.ioi?.[i];
      if (ioi) {
        for (const [key, kind] of [['IO', 'io'], ['S1', 's'], ['S2', 's']] as const) {
          const pos = ioi.positions[key];
          if (pos !== undefined && pos >= 0 && pos < p.clean.length) marks.push({ pos, kind, label: key });
        }
      } else {
        p.clean.forEach((t, pos) => {
          if (p.correct.includes(t)) marks.push({ pos, kind: 'io', label: 'correct' });
          else if (p.incorrect.includes(t)) marks.push({ pos, kind: 's', label: 'incorrect' });
        });
      }
      marks.push({ pos: p.clean.length - 1, kind: 'end', label: 'metric position' });
      const set = (ids: number[]) => ids.map((id) => this.tokenText(id)).join(' | ');
      return { index: i, tokens: p.clean.map((id) => this.tokenText(id)), correct: set(p.correct), incorrect: set(p.incorrect), marks };
    });
  }

  /** A token as the page shows it: the model tokenizer's readable form, or `<id>` outside its vocabulary. */
  private tokenText(id: number): string {
    return Number.isInteger(id) && id >= 0 && id < this.tokenizer.vocabSize ? this.tokenizer.tokenString(id) : `<${id}>`;
  }

  scans(): ScanView[] {
    const fromRun = (this.run?.scans ?? []).map(
      (s: ScanData): ScanView => ({
        id: `run:${s.file}`,
        label: `${s.file} (${s.method}, ${s.ablation})`,
        ablation: s.ablation,
        method: s.method,
        components: s.components.map((c) => ({ name: c.name, score: c.score, std: c.std })),
      }),
    );
    return [...fromRun, ...this.computedScans];
  }

  curves(): PruneData[] {
    return this.run?.prunes ?? [];
  }

  // ------------------------------------------------------------ evaluation

  /** Exact metric with `removed` replaced under `ablation`: what `carve eval` gives on that set compressed. */
  async evaluate(removed: readonly string[], ablation: string): Promise<EvaluateResult> {
    const abl = this.checkAblation(ablation);
    const comps = this.lookup(removed);
    const perPrompt = await this.metricsOf(comps, abl);
    return {
      metric: mean(perPrompt),
      std: std(perPrompt),
      accuracy: this.metric === 'kl' ? null : accuracy(perPrompt),
      per_prompt: Array.from(perPrompt),
      removed: comps.map((c) => c.name),
      ablation: abl,
      metric_name: this.metric,
    };
  }

  /** Exact single-component scores (metric with c replaced − clean metric), or attribution scores. */
  async computeScan(ablation: string, method: string): Promise<ScanView> {
    const abl = this.checkAblation(ablation);
    if (method !== 'exact' && method !== 'attribution') fail(`method: expected "exact" or "attribution", got ${JSON.stringify(method)}`);
    let view: ScanView;
    if (method === 'exact') {
      const { ev } = await this.evaluator(abl);
      const clean = this.cleanOf(ev);
      const per = await Promise.all(this.comps.map((c) => this.metricsOf([c], abl)));
      view = {
        id: `computed:exact:${abl}`,
        label: `exact scores, ${abl} ablation (computed here)`,
        ablation: abl,
        method,
        components: this.comps.map((c, i) => {
          const d = per[i].map((v, p) => v - clean[p]);
          return { name: c.name, score: mean(d), std: std(d) };
        }),
      };
    } else {
      const r = await this.exclusive(() => scan(this.model, this.task, { ablation: abl, method: 'attribution', components: 'all', meanOver: this.meanOver, batchSize: this.batchSize, metric: this.metric }));
      view = {
        id: `computed:attribution:${abl}`,
        label: `attribution scores, ${abl} ablation (computed here)`,
        ablation: abl,
        method,
        components: r.components.map((c) => ({ name: c.name, score: c.score, std: c.std })),
      };
    }
    this.computedScans = [...this.computedScans.filter((s) => s.id !== view.id), view];
    return view;
  }

  // ------------------------------------------------------------ attention

  /**
   * The attention pattern of head `head` of layer `layer` (original indices) on prompt `prompt`,
   * optionally with components removed (only those in earlier layers can change it).
   */
  async attention(prompt: number, layer: number, head: number, removed: readonly string[] = [], ablation = 'mean'): Promise<{ tokens: string[]; pattern: number[][]; prompt: number; layer: number; head: number }> {
    const N = this.task.pairs.length;
    if (!Number.isInteger(prompt) || prompt < 0 || prompt >= N) fail(`prompt: expected an index from 0 to ${N - 1}, got ${prompt}`);
    const pos = this.model.config.layers.findIndex((l) => l.sourceLayer === layer);
    if (!Number.isInteger(layer) || pos < 0) fail(`layer: the model has no layer ${layer} (layers: ${this.model.config.layers.map((l) => l.sourceLayer).join(', ')})`);
    const heads = this.model.config.layers[pos].heads;
    if (!Number.isInteger(head) || !heads.includes(head)) {
      fail(`head: layer ${layer} has no head ${head} (${heads.length === 0 ? 'it has no heads left' : `heads: ${heads.join(', ')}`})`);
    }
    const abl = this.checkAblation(ablation);
    // Only removals before this layer change its pattern.
    const earlier = this.lookup(removed).filter((c) => c.pos < pos);
    const key = `${prompt}|${pos}|${earlier.length === 0 ? '' : abl}|${earlier.map((c) => c.name).join(',')}`;
    let got = this.patterns.get(key);
    if (!got) {
      // Outside the exclusive job: building an evaluator is itself one.
      const repl = earlier.length > 0 ? (await this.evaluator(abl)).repl : null;
      got = await this.exclusive(async () => {
        let interventions = {};
        if (repl) {
          const lengths = this.task.pairs.map((p) => p.clean.length);
          const layersOf = (mlp: boolean) => [...new Set(earlier.filter((c) => (c.head === null) === mlp).map((c) => c.pos))];
          interventions = removalInterventions(this.model, repl, [{ prompt, removed: earlier }], lengths[prompt], lengths, layersOf(false), layersOf(true));
        }
        return layerPatterns(this.model, this.task.pairs[prompt].clean, pos, interventions);
      });
      this.patterns.set(key, got);
    }
    const T = this.task.pairs[prompt].clean.length;
    const flat = got.patterns[got.heads.indexOf(head)];
    const pattern = Array.from({ length: T }, (_, q) => Array.from(flat.subarray(q * T, (q + 1) * T)));
    return { tokens: this.task.pairs[prompt].clean.map((id) => this.tokenText(id)), pattern, prompt, layer, head };
  }

  // ------------------------------------------------------------ writing

  /** Write the kept components (every component not removed) as a keep file: a JSON array of names. */
  saveKeep(removed: readonly string[], name: string): { path: string; kept: string[] } {
    const path = this.outputPath(name);
    if (existsSync(path) && statSync(path).isDirectory()) fail(`${name}: is a directory in ${this.outDir}; choose another name`);
    const removedSet = new Set(this.lookup(removed).map((c) => c.name));
    const kept = this.comps.filter((c) => !removedSet.has(c.name)).map((c) => c.name);
    writeFileAtomic(path, JSON.stringify(kept, null, 0) + '\n');
    return { path: this.shownPath(name), kept };
  }

  /** Write a compressed model directory holding the kept components (as `carve compress --keep`). */
  async compress(removed: readonly string[], ablation: string, name: string): Promise<{ path: string; kept: string[]; metric: number; std: number; n_params_before: number; n_params_after: number }> {
    if (ablation !== 'zero' && ablation !== 'mean') fail(`ablation: a compressed model folds zero or mean ablation into its biases, not ${JSON.stringify(ablation)}`);
    const path = this.outputPath(name);
    if (existsSync(path)) {
      if (!statSync(path).isDirectory()) fail(`${name}: exists in ${this.outDir} and is not a directory`);
      const ours = new Set([CONFIG_FILE, WEIGHTS_FILE, COMPRESS_RECORD]);
      const foreign = readdirSync(path).filter((f) => !ours.has(f));
      if (foreign.length > 0) fail(`${name}: the directory exists and holds other files (${foreign.slice(0, 3).join(', ')}); choose a new name`);
    }
    const comps = this.lookup(removed);
    const result = await this.evaluate(comps.map((c) => c.name), ablation);
    const { ev, repl } = await this.evaluator(ablation);
    const removedSet = new Set(comps.map((c) => c.name));
    const kept = this.comps.filter((c) => !removedSet.has(c.name)).map((c) => c.name);
    const pruned = pruneModel(this.loaded, new Set(kept), repl, ablation);
    const before = countParams(this.loaded);
    const after = countParams(pruned);
    const clean = this.cleanOf(ev);
    const record = {
      format: 1,
      source_model: this.loaded.name,
      source_dir: this.loaded.source,
      task: this.task.name,
      n_prompts: this.task.pairs.length,
      ablation,
      ...(ablation === 'mean' ? { mean_over: this.meanOver } : {}),
      selection: { by: 'explore' },
      kept,
      removed: canonicalOrder(this.model.config, comps).map((c) => c.name),
      metric_name: this.metric,
      clean_metric: mean(clean),
      clean_std: std(clean),
      metric: result.metric,
      std: result.std,
      n_params_before: before.n_params,
      n_params_after: after.n_params,
      n_params_non_embedding_before: before.n_params_non_embedding,
      n_params_non_embedding_after: after.n_params_non_embedding,
      layers: pruned.config.layers.map((l) => ({ source_layer: l.sourceLayer, heads: l.heads, mlp: l.mlp })),
    };
    // As `carve compress` writes by default: the source's dtype wherever a tensor holds it exactly.
    saveModelDir(path, pruned, losslessDtypes(pruned, keptDtype(this.loaded.storedDtype)), { [COMPRESS_RECORD]: JSON.stringify(record, null, 2) + '\n' });
    return { path: this.shownPath(name), kept, metric: result.metric, std: result.std, n_params_before: before.n_params, n_params_after: after.n_params };
  }

  // ------------------------------------------------------------ internals

  /** Component names checked against the model, deduplicated, in canonical order. */
  lookup(names: readonly string[]): Component[] {
    const seen = new Map<string, Component>();
    names.forEach((n, i) => {
      if (typeof n !== 'string') fail(`removed[${i}]: expected a component name, got ${JSON.stringify(n)}`);
      const c = findComponent(this.model.config, n, `removed[${i}]`);
      seen.set(c.name, c);
    });
    return canonicalOrder(this.model.config, [...seen.values()]);
  }

  private checkAblation(a: string): Ablation {
    if (!(ABLATIONS as readonly string[]).includes(a)) fail(`ablation: expected one of ${ABLATIONS.join(', ')}, got ${JSON.stringify(a)}`);
    if (a === 'resample') {
      // Resample ablation reads the corrupt prompt at the clean prompt's positions.
      this.task.pairs.forEach((p, i) => checkPair(p, `${this.task.name} prompt ${i}`, { requireEqualLengths: true }));
    }
    return a as Ablation;
  }

  private outputPath(name: string): string {
    if (this.outDir === null) fail('nothing can be written: start `carve explore` with --out-dir DIR to save keep files and compressed models');
    if (typeof name !== 'string' || !OUTPUT_NAME.test(name) || name.includes('..')) {
      fail(`name: expected a plain file name (letters, digits, ".", "_", "-"; no "/" or ".."), got ${JSON.stringify(name)}`);
    }
    return join(this.outDir, name);
  }

  /** An output path as the user would write it: under --out-dir as given. */
  private shownPath(name: string): string {
    return join(this.outDirAsGiven ?? '', name);
  }

  /** The clean per-prompt metric (0 for KL, which is measured from the clean run). */
  private cleanOf(ev: ExactEvaluator): Float64Array {
    return this.metric === 'kl' ? new Float64Array(this.task.pairs.length) : ev.clean;
  }

  /** Run model work one job at a time. */
  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.chain.then(job);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private evaluator(ablation: Ablation): Promise<{ ev: ExactEvaluator; repl: Replacements }> {
    let e = this.evaluators.get(ablation);
    if (!e) {
      e = this.exclusive(async () => {
        const repl = await computeReplacements(this.model, this.task, ablation, this.meanOver, this.batchSize);
        const ev = await ExactEvaluator.create(this.model, this.task, repl, { batchSize: this.batchSize, metric: this.metric });
        return { ev, repl };
      });
      this.evaluators.set(ablation, e);
      e.catch(() => this.evaluators.delete(ablation));
    }
    return e;
  }

  /** Per-prompt metric of one removed set: from the cache, joining an identical request, or batched with others. */
  private metricsOf(removed: Component[], ablation: Ablation): Promise<Float64Array> {
    const key = `${ablation}|${removed.map((c) => c.name).join(',')}`;
    const hit = this.results.get(key);
    if (hit) {
      this.stats.cacheHits++;
      return Promise.resolve(hit);
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const p = new Promise<Float64Array>((resolve, reject) => {
      const queue = this.pending.get(ablation) ?? [];
      queue.push({ removed, key, resolve, reject });
      if (queue.length === 1) {
        this.pending.set(ablation, queue);
        // Every set queued for this ablation until the model is free goes into one evaluate call.
        void this.evaluator(ablation)
          .then(({ ev }) => this.exclusive(() => this.flush(ablation, ev)))
          .catch((e) => this.failPending(ablation, e));
      }
    });
    this.inflight.set(key, p);
    p.then(
      (v) => {
        this.results.set(key, v);
        this.inflight.delete(key);
      },
      () => this.inflight.delete(key),
    );
    return p;
  }

  private async flush(ablation: Ablation, ev: ExactEvaluator): Promise<void> {
    const batch = this.pending.get(ablation) ?? [];
    this.pending.delete(ablation);
    if (batch.length === 0) return;
    try {
      this.stats.evaluateCalls++;
      this.stats.evaluatedSets += batch.length;
      const out = await ev.evaluate(batch.map((b) => b.removed));
      batch.forEach((b, i) => b.resolve(out[i]));
    } catch (e) {
      batch.forEach((b) => b.reject(e));
    }
  }

  private failPending(ablation: Ablation, e: unknown): void {
    const batch = this.pending.get(ablation) ?? [];
    this.pending.delete(ablation);
    batch.forEach((b) => b.reject(e));
  }
}
