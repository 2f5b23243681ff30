/**
 * Exact evaluation of edge ablations, many configurations at once: the task metric, per prompt, with
 * a given set of edges ablated together (SPEC "Edges"). As for components (evaluate.ts):
 *  - the clean run is cached once: the residual stream before every layer (and after the last),
 *    every head's hook_z and every MLP's output, and the embeddings;
 *  - a configuration starts at the first layer one of its receivers sits in, from the cached stream;
 *    the senders before that layer enter as per-prompt deltas (replacement − clean), shared by all
 *    of a prompt's rows;
 *  - configurations share runs along the batch axis, prompt-major (rows = U prompts × C
 *    configurations), with per-row masks; prompts are ordered by length;
 *  - only the metric is read out (the last layer at the metric position);
 *  - heads and MLPs that every configuration of a run cuts off from every receiver are dead: their
 *    inputs are not routed, their q/k/v not projected, their MLPs not computed (inertFor).
 */
import type { FloatArray, HookedModel, HostValue, RunResult } from '../model/hooked.ts';
import type { EdgeSpec } from '../model/edges.ts';
import { attentionReceivers, gatherReceiverColumns, mlpReceiverSenders, receiverColumnPlan, sendersBefore } from '../model/edges.ts';
import { tensorTable } from '../model/arch/index.ts';
import type { MetricName } from '../model/readout.ts';
import type { Task } from '../task/types.ts';
import { logSoftmax } from '../task/metrics.ts';
import { buildEdgeGraph, receiverNodes, senderEdgeRanges, type Edge, type EdgeGraph } from './edge-graph.ts';
import { promptEmbeddings, type EdgeReplacements } from './edge-replacements.ts';
import { allocLike, collectActivations } from './activations.ts';
import { componentHooks } from './replacements.ts';

/**
 * A set of ablated edges (indices into the edge graph), each fully ablated unless `amount` says
 * how much, on top of an optional shared `base` set (ACDC's removals so far): many configurations
 * that share a large base are cheap to lay out.
 */
export interface EdgeAblation {
  edges: readonly number[];
  amount?: readonly number[];
  base?: EdgeBase;
}

/** A set of fully ablated edges laid out once as per-receiver-layer mask rows (see EdgeEvaluator.base). */
export interface EdgeBase {
  edges: readonly number[];
  /** Earliest receiver layer position (L for logits only, +∞ for none). */
  minPos: number;
  /** Per layer position: dense [attention receivers × senders before the layer] rows, and which receivers have any. */
  att: Map<number, { rows: Float64Array; active: number[] }>;
  mlp: Map<number, Float64Array>;
  logits?: Float64Array;
}

/**
 * What routing one attention receiver costs beside its mix, in mixed sender columns (a column is
 * d multiply-adds a position): its own projection (d_head columns' worth) and its norm and copies
 * (~8). Used only to choose how a layer is laid out (EdgeSpec.fromAblated), never for results.
 */
const receiverCost = (cfg: HookedModel['config']): number => cfg.dHead + 8;

export interface EdgeEvaluateOptions {
  batchSize: number;
  metric?: MetricName;
}

export class EdgeEvaluator {
  readonly graph: EdgeGraph;
  /** Per prompt: the clean metric (0 for kl). */
  clean!: Float64Array;
  private cleanLogP: Float64Array[] = [];
  /** Cached clean hook_resid_pre per layer position, and the final residual stream last: [N, tMax, d]. */
  private resid: FloatArray[] = [];
  private z = new Map<number, FloatArray>();
  private mlp = new Map<number, FloatArray>();
  private embed!: FloatArray;
  private tMax = 0;
  private lengths: number[] = [];
  private order: number[] = [];
  /** Per spec (shared selection): how many receivers each attention layer routes, and the fromAblated layers' selections (for all of the spec's configurations). */
  private plans = new WeakMap<EdgeSpec, { routed: Map<number, number>; cut: Map<number, number[]>; inert: Uint8Array }>();
  /** Per receiver, the components its input feeds; per sender, its outgoing edges' range (edge-graph.ts). */
  private readonly nodes: number[][];
  private readonly outEdges: Int32Array;
  /** Per layer position, the canonical index of each attention receiver (in attIndex order), and of its MLP's (−1 for none). */
  private readonly attReceiver: number[][];
  private readonly mlpReceiver: number[];
  /** Per base: how many of each sender's outgoing edges it ablates, and its edges as a set. */
  private readonly baseCounts = new WeakMap<EdgeBase, { counts: Int32Array; edges: Set<number> }>();
  /** Per layer position, the live receivers' q/k/v columns last fed (EdgeSpec.liveReceivers): runs of one spec reuse them. */
  private readonly liveColumns = new Map<number, { key: string; weights: object; feeds: Record<string, HostValue> }>();

  private constructor(
    readonly model: HookedModel,
    readonly task: Task,
    readonly repl: EdgeReplacements,
    readonly metric: MetricName,
    readonly batchSize: number,
  ) {
    this.graph = buildEdgeGraph(model.config);
    this.nodes = receiverNodes(model.config, this.graph);
    this.outEdges = senderEdgeRanges(this.graph);
    this.attReceiver = model.config.layers.map(() => []);
    this.mlpReceiver = model.config.layers.map(() => -1);
    for (const r of this.graph.receivers) {
      if (r.attIndex >= 0) this.attReceiver[r.pos][r.attIndex] = r.index;
      else if (r.kind === 'mlp') this.mlpReceiver[r.pos] = r.index;
    }
  }

  /**
   * What no row's metric depends on (edge-acdc.ts has the same argument for single edges): the
   * senders whose every outgoing edge every configuration fully ablates (`dead`: nothing reads
   * their output) and the receivers that feed only such senders (`inert`: their inputs change
   * nothing). Inert receivers are left out of the routing, reading whatever their layer's shared
   * path gives, and the dead senders' deltas still cancel their outputs in every receiver that
   * reads them, since each of those has that edge ablated.
   */
  private inertFor(configs: EdgeAblation[]): { inert: Uint8Array; dead: Uint8Array } {
    const S = this.graph.senders.length;
    const dead = new Uint8Array(S).fill(1);
    const counts = new Int32Array(S);
    for (const c of configs) {
      const b = c.base ? this.countsOf(c.base) : undefined;
      if (b) counts.set(b.counts);
      else counts.fill(0);
      // A configuration's own edges are written after its base's (the last amount of an edge wins).
      const own = new Map<number, number>();
      c.edges.forEach((e, k) => own.set(e, c.amount?.[k] ?? 1));
      for (const [e, amount] of own) {
        const inBase = b?.edges.has(e) ?? false;
        const s = this.graph.edges[e].sender.index;
        if (amount === 1 && !inBase) counts[s]++;
        else if (amount !== 1 && inBase) counts[s]--;
      }
      for (let s = 0; s < S; s++) if (counts[s] !== this.outEdges[s + 1] - this.outEdges[s]) dead[s] = 0;
    }
    dead[0] = 0; // the input is no receiver's component
    const inert = Uint8Array.from(this.nodes, (ns) => (ns.length > 0 && ns.every((n) => dead[n] === 1) ? 1 : 0));
    return { inert, dead };
  }

  private countsOf(base: EdgeBase): { counts: Int32Array; edges: Set<number> } {
    let c = this.baseCounts.get(base);
    if (!c) {
      const edges = new Set(base.edges);
      const counts = new Int32Array(this.graph.senders.length);
      for (const e of edges) counts[this.graph.edges[e].sender.index]++;
      this.baseCounts.set(base, (c = { counts, edges }));
    }
    return c;
  }

  static async create(model: HookedModel, task: Task, repl: EdgeReplacements, opts: EdgeEvaluateOptions): Promise<EdgeEvaluator> {
    const ev = new EdgeEvaluator(model, task, repl, opts.metric ?? 'logit-diff', Math.max(1, opts.batchSize));
    await ev.prepare();
    return ev;
  }

  private async prepare(): Promise<void> {
    const { model, task } = this;
    const cfg = model.config;
    const L = cfg.layers.length;
    const prompts = task.pairs.map((p) => p.clean);
    const residHooks = cfg.layers.map((_, pos) => model.hookName(pos, 'hook_resid_pre'));
    if (L > 0) residHooks.push(model.hookName(L - 1, 'hook_resid_post'));
    const { z, mlp } = componentHooks(model);
    const hooks = [...residHooks, ...z.values(), ...mlp.values()];
    this.clean = new Float64Array(prompts.length);
    const acts = await collectActivations(model, prompts, hooks, this.batchSize, {
      options: (s, e) => ({ logits: this.metric === 'kl' ? 'last' : 'answers', metric: this.metric === 'kl' ? 'logit-diff' : this.metric, answers: task.pairs.slice(s, e) }),
      result: (s, out) => {
        const B = out.metric!.length;
        for (let b = 0; b < B; b++) this.clean[s + b] = this.metric === 'kl' ? 0 : out.metric![b];
        if (this.metric === 'kl') {
          const V = cfg.vocabSize;
          for (let b = 0; b < B; b++) this.cleanLogP.push(logSoftmax(out.logits!.data.subarray(b * V, (b + 1) * V)));
        }
      },
    });
    this.resid = residHooks.map((h) => acts.values.get(h)!);
    for (const [pos, h] of z) this.z.set(pos, acts.values.get(h)!);
    for (const [pos, h] of mlp) this.mlp.set(pos, acts.values.get(h)!);
    this.tMax = acts.tMax;
    this.lengths = acts.lengths;
    this.embed = promptEmbeddings(model, prompts, this.tMax);
    this.order = prompts.map((_, i) => i).sort((a, b) => this.lengths[a] - this.lengths[b] || a - b);
  }

  /** Lay a set of edges out once, for configurations that all contain it. */
  base(edges: readonly number[]): EdgeBase {
    const cfg = this.model.config;
    const out: EdgeBase = { edges: [...edges], minPos: Infinity, att: new Map(), mlp: new Map() };
    for (const e of edges) {
      const { sender, receiver: r } = this.graph.edges[e];
      out.minPos = Math.min(out.minPos, r.pos);
      if (r.kind === 'logits') {
        (out.logits ??= new Float64Array(sendersBefore(cfg, cfg.layers.length)))[sender.index] = 1;
      } else if (r.kind === 'mlp') {
        let m = out.mlp.get(r.pos);
        if (!m) out.mlp.set(r.pos, (m = new Float64Array(mlpReceiverSenders(cfg, r.pos))));
        m[sender.index] = 1;
      } else {
        const S = sendersBefore(cfg, r.pos);
        let a = out.att.get(r.pos);
        if (!a) out.att.set(r.pos, (a = { rows: new Float64Array(attentionReceivers(cfg, r.pos) * S), active: [] }));
        if (!a.active.includes(r.attIndex)) a.active.push(r.attIndex);
        a.rows[r.attIndex * S + sender.index] = 1;
      }
    }
    for (const a of out.att.values()) a.active.sort((x, y) => x - y);
    return out;
  }

  /** Per prompt, the clean next-token log-probabilities (kl metric only). */
  get cleanLogProbs(): Float64Array[] {
    return this.cleanLogP;
  }

  /**
   * The metric of each configuration, per prompt. `onChunk` hears about every onnxruntime run:
   * its start layer, its rows, how long it took and how its graph routes the edges.
   */
  async evaluate(
    configs: EdgeAblation[],
    onProgress?: (done: number, total: number) => void,
    onChunk?: (info: { start: number; rows: number; seconds: number; spec: EdgeSpec }) => void,
  ): Promise<Float64Array[]> {
    const N = this.task.pairs.length;
    const L = this.model.config.layers.length;
    const results = configs.map(() => new Float64Array(N));
    const groups = new Map<number, number[]>();
    configs.forEach((c, i) => {
      if (c.edges.length === 0 && (c.base?.edges.length ?? 0) === 0) {
        results[i] = Float64Array.from(this.clean);
        return;
      }
      let start = Math.min(L, c.base?.minPos ?? L);
      for (const e of c.edges) start = Math.min(start, this.graph.edges[e].receiver.pos);
      if (!groups.has(start)) groups.set(start, []);
      groups.get(start)!.push(i);
    });
    const total = [...groups.values()].reduce((s, ids) => s + ids.length * N, 0);
    let done = 0;
    for (const [start, ids] of [...groups.entries()].sort((a, b) => a[0] - b[0])) {
      const spec = this.specFor(start, ids.map((i) => configs[i]));
      // Rectangular chunks: U prompts × C configurations. A shared selection routes the receivers
      // it selects through every row ([rows, receivers, T, d] per layer): keep that under ~64 MB.
      const cfg = this.model.config;
      const routed = this.plans.get(spec)?.routed;
      const maxAtt = routed ? Math.max(0, ...routed.values()) : 0;
      const perRow = maxAtt * this.tMax * cfg.dModel * (this.model.dtype === 'float64' ? 8 : 4);
      const rows = perRow > 0 ? Math.max(1, Math.min(this.batchSize, Math.floor((64 * 2 ** 20) / perRow))) : this.batchSize;
      const C = Math.min(ids.length, rows);
      const U = Math.max(1, Math.floor(rows / C));
      for (let ps = 0; ps < N; ps += U) {
        const prompts = this.order.slice(ps, ps + U);
        for (let cs = 0; cs < ids.length; cs += C) {
          const chunk = ids.slice(cs, cs + C);
          const t0 = performance.now();
          const values = await this.runChunk(start, spec, prompts, chunk.map((i) => configs[i]));
          onChunk?.({ start, rows: values.length, seconds: (performance.now() - t0) / 1000, spec });
          prompts.forEach((p, u) => chunk.forEach((ci, c) => (results[ci][p] = values[u * chunk.length + c])));
          done += prompts.length * chunk.length;
          onProgress?.(done, total);
        }
      }
    }
    return results;
  }

  /** Which receivers the graph for these configurations must route. */
  private specFor(start: number, configs: EdgeAblation[]): EdgeSpec {
    const cfg = this.model.config;
    const L = cfg.layers.length;
    const att = new Set<number>();
    const mlp = new Set<number>();
    let logits = false;
    const { inert, dead } = this.inertFor(configs);
    const bases = new Set(configs.flatMap((c) => (c.base ? [c.base] : [])));
    for (const b of bases) {
      for (const [i, a] of b.att) if (a.active.some((x) => !inert[this.attReceiver[i][x]])) att.add(i);
      for (const i of b.mlp.keys()) if (!inert[this.mlpReceiver[i]]) mlp.add(i);
      if (b.logits) logits = true;
    }
    for (const c of configs) {
      for (const e of c.edges) {
        const r = this.graph.edges[e].receiver;
        if (inert[r.index]) continue;
        if (r.kind === 'logits') logits = true;
        else if (r.kind === 'mlp') mlp.add(r.pos);
        else att.add(r.pos);
      }
    }
    const sort = (s: Set<number>) => [...s].sort((a, b) => a - b);
    const shape = this.repl.comp.ablation === 'resample' ? 'row' : 'const';
    // Configurations that each ablate into at most two attention receivers of a layer (single-edge
    // scans) select receivers per row; the rest share one selection.
    const fewPerRow = bases.size === 0 && configs.every((c) => {
      const perLayer = new Map<number, Set<number>>();
      for (const e of c.edges) {
        const r = this.graph.edges[e].receiver;
        if (r.attIndex < 0) continue;
        if (!perLayer.has(r.pos)) perLayer.set(r.pos, new Set());
        perLayer.get(r.pos)!.add(r.attIndex);
      }
      return [...perLayer.values()].every((set) => set.size <= 2);
    });
    const spec: EdgeSpec = { att: sort(att), mlp: sort(mlp), logits, replacement: shape, select: fewPerRow ? 'row' : 'shared' };
    // Layers after the start whose masks agree in every row on the senders before the start (one
    // base, no configuration's own edge from such a sender into the layer) mix those senders once
    // per prompt; they need some in-run sender too.
    if (!fewPerRow) {
      const pre = sendersBefore(cfg, start);
      const oneBase = new Set(configs.map((c) => c.base)).size === 1;
      const sharedPre = (oneBase ? spec.att : []).filter(
        (i) =>
          i > start &&
          sendersBefore(cfg, i) > pre &&
          configs.every((c) => c.edges.every((e) => {
            const { sender, receiver } = this.graph.edges[e];
            return receiver.pos !== i || receiver.attIndex < 0 || sender.index >= pre;
          })),
      );
      if (sharedPre.length > 0) spec.sharedPre = sharedPre;
      // Layers where the configurations together reach every attention receiver route all of them,
      // without the shared projection.
      const active = new Map(spec.att.map((i) => [i, this.activeReceivers(i, configs, inert).size]));
      const every = spec.att.filter((i) => active.get(i) === attentionReceivers(cfg, i));
      if (every.length > 0) spec.everyReceiver = every;
      // Layers after the start cheaper to measure from the fully ablated stream
      // (EdgeSpec.fromAblated). Not the start layer: the graph depends on the senders it mixes,
      // and ACDC's batches change those at the layer they decide with every removal (a compile
      // each batch), while the layers after it keep one layout for the whole layer.
      const fromAblated: { layer: number; senders: number[] }[] = [];
      const cut = new Map<number, number[]>();
      for (const i of spec.att.filter((l) => l > start)) {
        const plan = this.cutPlan(i, configs, inert);
        const R = attentionReceivers(cfg, i);
        const S = sendersBefore(cfg, i);
        const A = active.get(i)!;
        const W = spec.sharedPre?.includes(i) ? S - pre : S;
        const P = receiverCost(cfg);
        const viaResid = A * (W + P) + (every.includes(i) ? 0 : R * P);
        const viaAblated = plan.receivers.length * (plan.senders.length + P) + R * P;
        if (viaAblated < viaResid) {
          fromAblated.push({ layer: i, senders: plan.senders });
          cut.set(i, plan.receivers);
        }
      }
      // What each layer routes through every row: sizes the batches (evaluate).
      const routed = new Map(spec.att.map((i) => [i, cut.get(i)?.length ?? (every.includes(i) ? attentionReceivers(cfg, i) : Math.max(1, active.get(i)!))]));
      this.plans.set(spec, { routed, cut, inert });
      if (fromAblated.length > 0) {
        spec.fromAblated = fromAblated;
        const taken = new Set(fromAblated.map((f) => f.layer));
        const rest = (xs: number[] | undefined) => xs?.filter((i) => !taken.has(i));
        spec.sharedPre = rest(spec.sharedPre);
        spec.everyReceiver = rest(spec.everyReceiver);
        if (spec.sharedPre?.length === 0) delete spec.sharedPre;
        if (spec.everyReceiver?.length === 0) delete spec.everyReceiver;
      }
    }
    // MLPs after the start (not a last layer, which runs at the metric positions only) cheaper to
    // read from the fully ablated stream: mixing all their senders reads every delta, while the
    // stream is a running sum shared by the whole graph.
    const mlpFromAblated: { layer: number; senders: number[] }[] = [];
    for (const i of spec.mlp.filter((l) => l > start && l < L - 1)) {
      const S = mlpReceiverSenders(cfg, i);
      const open = this.notCut(S, configs, (c, out) => this.mlpMask(i, c, out));
      const senders = [...open.keys()].filter((s) => open[s]);
      if (senders.length + 2 < S) mlpFromAblated.push({ layer: i, senders });
    }
    if (mlpFromAblated.length > 0) spec.mlpFromAblated = mlpFromAblated;
    // MLPs nothing reads (every outgoing edge ablated in every row) are not computed.
    const skip = cfg.layers.flatMap((l, i) => (i >= start && l.mlp && dead[this.graph.senderStart[i] + l.heads.length] ? [i] : []));
    if (skip.length > 0) spec.skipMlp = skip;
    // Layers whose shared path would project inert receivers (dead heads) project the others only.
    const live: { layer: number; receivers: number[] }[] = [];
    for (let i = start; i < L; i++) {
      const R = attentionReceivers(cfg, i);
      if (R === 0 || spec.everyReceiver?.includes(i)) continue;
      const receivers = Array.from({ length: R }, (_, a) => a).filter((a) => !inert[this.attReceiver[i][a]]);
      if (receivers.length < R) live.push({ layer: i, receivers: receivers.length > 0 ? receivers : [0] });
    }
    if (live.length > 0) spec.liveReceivers = live;
    return spec;
  }

  /**
   * Measured from the fully ablated stream, layer position i's attention receivers that some row
   * does not ablate from every sender (they need their own input) and the senders of which one of
   * them has an edge not fully ablated.
   */
  private cutPlan(i: number, configs: EdgeAblation[], inert: Uint8Array): { receivers: number[]; senders: number[] } {
    const cfg = this.model.config;
    const R = attentionReceivers(cfg, i);
    const S = sendersBefore(cfg, i);
    const open = this.notCut(R * S, configs, (c, out) => this.attentionMask(i, c, out));
    const receivers: number[] = [];
    const senders = new Uint8Array(S);
    for (let a = 0; a < R; a++) {
      if (inert[this.attReceiver[i][a]]) continue;
      let any = false;
      for (let s = 0; s < S; s++) {
        if (open[a * S + s]) {
          any = true;
          senders[s] = 1;
        }
      }
      if (any) receivers.push(a);
    }
    return { receivers, senders: [...senders.keys()].filter((s) => senders[s]) };
  }

  /** 1 where some configuration's mask (`width` entries, written by `maskOf`) is not 1: an edge not fully ablated. */
  private notCut(width: number, configs: EdgeAblation[], maskOf: (c: EdgeAblation, out: Float64Array) => void): Uint8Array {
    const open = new Uint8Array(width);
    const m = new Float64Array(width);
    for (const c of configs) {
      maskOf(c, m);
      for (let j = 0; j < width; j++) if (m[j] !== 1) open[j] = 1;
    }
    return open;
  }

  private async runChunk(start: number, spec: EdgeSpec, prompts: number[], configs: EdgeAblation[]): Promise<Float64Array> {
    const { model } = this;
    const d = model.config.dModel;
    const C = configs.length;
    const B = prompts.length * C;
    const T = Math.max(...prompts.map((p) => this.lengths[p]));
    const rows = Array.from({ length: B }, (_, b) => prompts[Math.floor(b / C)]);
    const resid = allocLike(model, B * T * d);
    rows.forEach((p, b) => resid.set(this.resid[start].subarray(p * this.tMax * d, (p * this.tMax + T) * d), b * T * d));
    const out: RunResult = await model.run({
      resid: { data: resid, dims: [B, T, d] },
      startLayer: start,
      lengths: rows.map((p) => this.lengths[p]),
      logits: 'answers',
      metric: this.metric,
      answers: rows.map((p) => this.task.pairs[p]),
      cleanLogProbs: this.metric === 'kl' ? rows.map((p) => this.cleanLogP[p]) : undefined,
      edges: { spec, feeds: this.edgeFeeds(start, spec, prompts, configs) },
    });
    return Float64Array.from(out.metric!);
  }

  /** edge_live_w.{i} and edge_live_b.{i}: the live receivers' columns of layer position i's q/k/v projection, gathered once per set. */
  private liveColumnFeeds(i: number, receivers: number[]): Record<string, HostValue> {
    const key = receivers.join();
    const weights = this.model.weightFeeds; // rebound by setWeights: a new object
    const cached = this.liveColumns.get(i);
    if (cached?.key === key && cached.weights === weights) return cached.feeds;
    const cfg = this.model.config;
    const slots = tensorTable(cfg);
    const plan = receiverColumnPlan(cfg, i, (role, layer) => slots.find((s) => s.role === role && s.layer === layer), receivers);
    const feeds: Record<string, HostValue> = {};
    if (plan) {
      const cols = gatherReceiverColumns(plan, (name) => weights[name].data as FloatArray, cfg.dModel);
      feeds[`edge_live_w.${i}`] = cols.w;
      if (cols.b) feeds[`edge_live_b.${i}`] = cols.b;
    }
    this.liveColumns.set(i, { key, weights, feeds });
    return feeds;
  }

  /**
   * The edge inputs (edges.ts) of a run from layer position `start` over rows = prompts × configs
   * (prompt-major), padded to the longest of the prompts. Public for benchmarks that run the graph
   * their own way.
   */
  edgeFeeds(start: number, spec: EdgeSpec, prompts: number[], configs: EdgeAblation[]): Record<string, HostValue | { data: BigInt64Array; dims: number[] }> {
    const { model, repl } = this;
    const cfg = model.config;
    const L = cfg.layers.length;
    const d = cfg.dModel;
    const dh = cfg.dHead;
    const U = prompts.length;
    const C = configs.length;
    const B = U * C;
    const T = Math.max(...prompts.map((p) => this.lengths[p]));
    const tMax = this.tMax;
    const rowPrompt = (b: number) => prompts[Math.floor(b / C)];

    /** replacement − clean per prompt [U, T, width]; `r` const [width] or row [N, repl.tMax, width]. */
    const delta = (r: { shape: 'const' | 'row'; data: FloatArray }, clean: FloatArray, width: number): FloatArray => {
      const out = allocLike(model, U * T * width);
      prompts.forEach((p, u) => {
        for (let t = 0; t < T; t++) {
          const o = (u * T + t) * width;
          const co = (p * tMax + t) * width;
          const ro = (p * repl.comp.tMax + t) * width;
          for (let j = 0; j < width; j++) out[o + j] = (r.shape === 'const' ? r.data[j] : t < repl.comp.tMax ? r.data[ro + j] : 0) - clean[co + j];
        }
      });
      return out;
    };
    const feeds: Record<string, HostValue | { data: BigInt64Array; dims: number[] }> = {};
    feeds.edge_pre_input = { data: delta(repl.input, this.embed, d), dims: [U, T, d] };
    for (let j = 0; j < start; j++) {
      const k = cfg.layers[j].heads.length;
      if (k > 0) feeds[`edge_pre_z.${j}`] = { data: delta(repl.comp.z.get(j)!, this.z.get(j)!, k * dh), dims: [U, T, k, dh] };
      if (cfg.layers[j].mlp) feeds[`edge_pre_mlp.${j}`] = { data: delta(repl.comp.mlp.get(j)!, this.mlp.get(j)!, d), dims: [U, T, d] };
    }
    // In-run senders' replacements, up to the last layer some receiver reads from.
    const lastRead = spec.logits ? L - 1 : Math.max(-1, ...spec.att.map((i) => i - 1), ...spec.mlp);
    for (let j = start; j <= lastRead; j++) {
      const k = cfg.layers[j].heads.length;
      const zr = repl.comp.z.get(j);
      if (k > 0 && zr) {
        feeds[`edge_z_repl.${j}`] = zr.shape === 'const' ? { data: zr.data, dims: [1, 1, k, dh] } : { data: this.rowsOf(zr.data, k * dh, prompts, C, T), dims: [B, T, k, dh] };
      }
      const mr = repl.comp.mlp.get(j);
      if (cfg.layers[j].mlp && mr) {
        feeds[`edge_mlp_repl.${j}`] = mr.shape === 'const' ? { data: mr.data, dims: [1, 1, d] } : { data: this.rowsOf(mr.data, d, prompts, C, T), dims: [B, T, d] };
      }
    }
    for (const { layer, receivers } of spec.liveReceivers ?? []) if (layer >= start) Object.assign(feeds, this.liveColumnFeeds(layer, receivers));
    let inert: Uint8Array | undefined;
    const inertOf = () => (inert ??= this.plans.get(spec)?.inert ?? this.inertFor(configs).inert);
    // Masks: each configuration's rows (its base's, then its own edges), repeated for its U prompts.
    const perConfig = configs.map((c) => c.edges.map((e, i) => [this.graph.edges[e], c.amount?.[i] ?? 1] as const));
    const fill = (mask: Float64Array, perRow: number, write: (c: number, row: Float64Array) => void) => {
      const row = new Float64Array(perRow);
      configs.forEach((_, c) => {
        row.fill(0);
        write(c, row);
        for (let u = 0; u < U; u++) mask.set(row, (u * C + c) * perRow);
      });
    };
    for (const i of spec.att) {
      if (spec.select === 'row') {
        this.rowSelection(i, perConfig, U, feeds);
        continue;
      }
      const fa = spec.fromAblated?.find((f) => f.layer === i);
      if (fa) {
        if (fa.senders.length > 0) this.cutSelection(spec, i, fa.senders, configs, U, feeds, inertOf());
        continue;
      }
      const S = sendersBefore(cfg, i);
      const every = spec.everyReceiver?.includes(i) ?? false;
      const active = every ? new Set(Array.from({ length: attentionReceivers(cfg, i) }, (_, a) => a)) : this.activeReceivers(i, configs, inertOf());
      const sel = active.size > 0 ? [...active].sort((a, b) => a - b) : [0];
      if (sel.some((a) => a >= attentionReceivers(cfg, i))) throw new Error('edge receiver outside its layer');
      const A = sel.length;
      const slotOf = new Map(sel.map((a, k) => [a, k]));
      // With the senders before the start shared by every row (spec.sharedPre), the rows hold only
      // the columns from `from` on; the shared columns come from the one base.
      const from = spec.sharedPre?.includes(i) ? sendersBefore(cfg, start) : 0;
      const W = S - from;
      const mask = new Float64Array(B * A * W);
      fill(mask, A * W, (c, row) => {
        // Inert receivers (not selected) are left out.
        const b = configs[c].base?.att.get(i);
        if (b) for (const a of b.active) if (slotOf.has(a)) row.set(b.rows.subarray(a * S + from, (a + 1) * S), slotOf.get(a)! * W);
        for (const [edge, amount] of perConfig[c]) if (edge.receiver.pos === i && slotOf.has(edge.receiver.attIndex)) row[slotOf.get(edge.receiver.attIndex)! * W + edge.sender.index - from] = amount;
      });
      if (!every) feeds[`edge_att_sel.${i}`] = { data: BigInt64Array.from(sel, (a) => BigInt(a)), dims: [A] };
      feeds[`edge_att_mask.${i}`] = { data: mask, dims: [B, A, W] };
      if (from > 0) {
        const shared = new Float64Array(A * from);
        const b = configs[0].base?.att.get(i);
        if (b) for (const a of b.active) if (slotOf.has(a)) shared.set(b.rows.subarray(a * S, a * S + from), slotOf.get(a)! * from);
        feeds[`edge_att_mask_pre.${i}`] = { data: shared, dims: [A, from] };
      }
    }
    for (const i of spec.mlp) {
      const S = mlpReceiverSenders(cfg, i);
      const fa = spec.mlpFromAblated?.find((f) => f.layer === i);
      if (fa && fa.senders.length === 0) continue;
      const W = fa ? fa.senders.length : S;
      const inCols = new Uint8Array(S);
      for (const s of fa?.senders ?? []) inCols[s] = 1;
      const full = new Float64Array(S);
      const mask = new Float64Array(B * W);
      fill(mask, W, (c, row) => {
        this.mlpMask(i, configs[c], full);
        if (!fa) return row.set(full);
        // Measured from the fully ablated stream: m − 1 for the listed senders, 1 everywhere else.
        if (full.some((m, s) => m !== 1 && !inCols[s])) throw new Error(`layer position ${i}: an MLP edge not fully ablated outside the senders its layout mixes`);
        fa.senders.forEach((s, w) => (row[w] = full[s] - 1));
      });
      feeds[`edge_mlp_mask.${i}`] = { data: mask, dims: [B, 1, W] };
    }
    if (spec.logits) {
      const S = sendersBefore(cfg, L);
      const mask = new Float64Array(B * S);
      fill(mask, S, (c, row) => {
        const b = configs[c].base?.logits;
        if (b) row.set(b);
        for (const [edge, amount] of perConfig[c]) if (edge.receiver.kind === 'logits') row[edge.sender.index] = amount;
      });
      feeds.edge_logits_mask = { data: mask, dims: [B, 1, S] };
    }
    return feeds;
  }

  /** The attention receivers of layer position i, not inert, that some configuration (its base or its own edges) ablates into. */
  private activeReceivers(i: number, configs: EdgeAblation[], inert: Uint8Array): Set<number> {
    const active = new Set<number>();
    for (const c of configs) {
      for (const a of c.base?.att.get(i)?.active ?? []) active.add(a);
      for (const e of c.edges) {
        const r = this.graph.edges[e].receiver;
        if (r.pos === i && r.attIndex >= 0) active.add(r.attIndex);
      }
    }
    for (const a of active) if (inert[this.attReceiver[i][a]]) active.delete(a);
    return active;
  }

  /** A configuration's mask row for layer position i's MLP receiver, [senders it reads], written into `out`. */
  private mlpMask(i: number, c: EdgeAblation, out: Float64Array): void {
    out.fill(0);
    const b = c.base?.mlp.get(i);
    if (b) out.set(b);
    c.edges.forEach((e, k) => {
      const { sender, receiver } = this.graph.edges[e];
      if (receiver.kind === 'mlp' && receiver.pos === i) out[sender.index] = c.amount?.[k] ?? 1;
    });
  }

  /** A configuration's mask rows for every attention receiver of layer position i, [R × senders before i], written into `out`. */
  private attentionMask(i: number, c: EdgeAblation, out: Float64Array): void {
    const S = sendersBefore(this.model.config, i);
    out.fill(0);
    const b = c.base?.att.get(i);
    if (b) out.set(b.rows);
    c.edges.forEach((e, k) => {
      const { sender, receiver } = this.graph.edges[e];
      if (receiver.pos === i && receiver.attIndex >= 0) out[receiver.attIndex * S + sender.index] = c.amount?.[k] ?? 1;
    });
  }

  /**
   * Layer position i measured from the fully ablated stream: the receivers some row does not cut
   * from everything, and their masks less 1 over the given senders' columns.
   */
  private cutSelection(spec: EdgeSpec, i: number, cols: number[], configs: EdgeAblation[], U: number, feeds: Record<string, HostValue | { data: BigInt64Array; dims: number[] }>, inert: Uint8Array): void {
    const cfg = this.model.config;
    const S = sendersBefore(cfg, i);
    const sel = this.plans.get(spec)?.cut.get(i) ?? this.cutPlan(i, configs, inert).receivers;
    const A = sel.length;
    const slotOf = new Map(sel.map((a, k) => [a, k]));
    const W = cols.length;
    const C = configs.length;
    const mask = new Float64Array(U * C * A * W);
    const R = attentionReceivers(cfg, i);
    const full = new Float64Array(R * S); // every receiver's mask row in this configuration
    const inCols = new Uint8Array(S);
    for (const s of cols) inCols[s] = 1;
    configs.forEach((c, ci) => {
      this.attentionMask(i, c, full);
      // What the stream leaves out must be fully ablated: receivers not selected, columns not mixed.
      for (let a = 0; a < R; a++) {
        if (inert[this.attReceiver[i][a]]) continue;
        const mixed = slotOf.has(a);
        for (let s = 0; s < S; s++) {
          if (full[a * S + s] !== 1 && !(mixed && inCols[s])) throw new Error(`layer position ${i}: an edge not fully ablated outside what the fully ablated stream's layout mixes`);
        }
      }
      const row = new Float64Array(A * W);
      sel.forEach((a, k) => cols.forEach((s, w) => (row[k * W + w] = full[a * S + s] - 1)));
      for (let u = 0; u < U; u++) mask.set(row, (u * C + ci) * A * W);
    });
    feeds[`edge_att_sel.${i}`] = { data: BigInt64Array.from(sel, (a) => BigInt(a)), dims: [A] };
    feeds[`edge_att_mask.${i}`] = { data: mask, dims: [U * C, A, W] };
  }

  /**
   * Per-row receiver selection for layer position i: each row's own receivers (padding rows of the
   * one-hot are zero), and its mask rows for them.
   */
  private rowSelection(i: number, perConfig: (readonly (readonly [Edge, number])[])[], U: number, feeds: Record<string, HostValue | { data: BigInt64Array; dims: number[] }>): void {
    const cfg = this.model.config;
    const S = sendersBefore(cfg, i);
    const R = attentionReceivers(cfg, i);
    const C = perConfig.length;
    const B = U * C;
    const lists = perConfig.map((list) => [...new Set(list.filter(([e]) => e.receiver.pos === i && e.receiver.attIndex >= 0).map(([e]) => e.receiver.attIndex))].sort((a, b) => a - b));
    const A = Math.max(1, ...lists.map((l) => l.length));
    const sel = new BigInt64Array(B * A);
    const onehot = new Float64Array(B * A * R);
    const mask = new Float64Array(B * A * S);
    perConfig.forEach((list, c) => {
      const mine = lists[c];
      for (let u = 0; u < U; u++) {
        const b = u * C + c;
        mine.forEach((a, k) => {
          sel[b * A + k] = BigInt(a);
          onehot[(b * A + k) * R + a] = 1;
        });
        for (const [e, amount] of list) {
          if (e.receiver.pos !== i || e.receiver.attIndex < 0) continue;
          mask[(b * A + mine.indexOf(e.receiver.attIndex)) * S + e.sender.index] = amount;
        }
      }
    });
    feeds[`edge_att_sel.${i}`] = { data: sel, dims: [B, A] };
    feeds[`edge_att_onehot.${i}`] = { data: onehot, dims: [B, A, R] };
    feeds[`edge_att_mask.${i}`] = { data: mask, dims: [B, A, S] };
  }

  /** Per-row copies of a per-prompt [N, repl.tMax, width] replacement. */
  private rowsOf(src: FloatArray, width: number, prompts: number[], C: number, T: number): FloatArray {
    const out = allocLike(this.model, prompts.length * C * T * width);
    const tm = this.repl.comp.tMax;
    prompts.forEach((p, u) => {
      const len = Math.min(T, tm);
      const row = src.subarray(p * tm * width, (p * tm + len) * width);
      for (let c = 0; c < C; c++) out.set(row, (u * C + c) * T * width);
    });
    return out;
  }
}
