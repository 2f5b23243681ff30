import * as ort from 'onnxruntime-node';
import { createHash } from 'node:crypto';
import { fail } from '../util/errors.ts';
import type { DType, Graph } from './graph.ts';
import { serializeGraph } from './serialize.ts';

export type Device = 'cpu' | 'webgpu' | 'cuda';
export const DEVICES: Device[] = ['cpu', 'webgpu', 'cuda'];

export interface EngineOptions {
  device: Device;
  /** Intra-op threads; 0 lets onnxruntime choose (one per core). */
  threads: number;
  /**
   * Profile every session: onnxruntime writes its per-node times to `<prefix>_<date>.json` when the
   * engine is released (bench/profile-summary.ts reads them). For benchmark work.
   */
  profilePrefix?: string;
}

export type HostArray = Float32Array | Float64Array | BigInt64Array | Uint8Array;
export interface HostTensor {
  data: HostArray;
  dims: number[];
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = { float32: 'float32', float64: 'float64', int64: 'int64', bool: 'bool' };

export function toOrt(t: HostTensor, dtype: DType): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[dtype], t.data as never, t.dims);
}

export interface CompiledGraph {
  session: ort.InferenceSession;
  inputNames: string[];
  outputNames: string[];
}

/**
 * Compiles graphs into onnxruntime sessions, cached by the serialised graph's hash: the same
 * structure (whatever batch size or prompt length) reuses one session.
 */
// onnxruntime's global logger prints provider-loading failures before we can report them cleanly.
ort.env.logLevel = 'fatal';

export class Engine {
  private cache = new Map<string, Promise<CompiledGraph>>();
  private keys = new WeakMap<CompiledGraph, string>();
  private checked = false;

  constructor(readonly options: EngineOptions = { device: 'cpu', threads: 0 }) {}

  private sessionOptions(floatType: 'float32' | 'float64'): ort.InferenceSession.SessionOptions {
    const ep: ort.InferenceSession.ExecutionProviderConfig =
      this.options.device === 'cpu' ? 'cpu' : this.options.device === 'cuda' ? 'cuda' : 'webgpu';
    const opts: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      // Extended fusions (LayerNorm, Gelu ...) compute in reduced precision even for double
      // tensors (measured: 2e-8 errors); float64 graphs exist for exactness, so they skip them.
      graphOptimizationLevel: floatType === 'float64' ? 'basic' : 'all',
      // Fatal only: provider-loading failures are reported once, as our own error line.
      logSeverityLevel: 4,
      // Several sessions run one after another; spinning threads of idle sessions steal the cores.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      // The memory pattern replaces the arena's blocks after a graph's first run with one planned
      // block, which is fresh memory again: on the 2-core CI machines first-touching memory costs
      // ~3 s per GiB, so the edge-attribution graph's second run took as long as its first (8 s
      // against 2.3 s from the third on) and resident memory grew 1.5×. Without it the arena's
      // blocks are reused from the second run; steady-state times are the same (measured on the
      // forward and the attribution graphs).
      enableMemPattern: false,
    };
    if (this.options.profilePrefix) {
      opts.enableProfiling = true;
      opts.profileFilePrefix = this.options.profilePrefix;
    }
    if (this.options.threads > 0) opts.intraOpNumThreads = this.options.threads;
    return opts;
  }

  async compile(graph: Graph): Promise<CompiledGraph> {
    const { bytes, inputNames } = serializeGraph(graph);
    const key = createHash('sha1').update(bytes).digest('hex');
    let entry = this.cache.get(key);
    if (!entry) {
      entry = this.create(bytes, inputNames, graph.outputs.map((o) => o.name), graph.floatType);
      this.cache.set(key, entry);
      entry.then((c) => this.keys.set(c, key)).catch(() => this.cache.delete(key));
    }
    return entry;
  }

  /**
   * Release one compiled graph's session (and its memory: onnxruntime keeps each session's arena
   * at the largest batch it has run) for work that will not run it again; compiling the same graph
   * later builds a new one.
   */
  async releaseCompiled(compiled: CompiledGraph): Promise<void> {
    const key = this.keys.get(compiled);
    if (key === undefined) return;
    this.keys.delete(compiled);
    this.cache.delete(key);
    await compiled.session.release();
  }

  private async create(
    bytes: Uint8Array,
    inputNames: string[],
    outputNames: string[],
    floatType: 'float32' | 'float64',
  ): Promise<CompiledGraph> {
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, this.sessionOptions(floatType));
    } catch (e) {
      const msg = (e as Error).message ?? String(e);
      if (!this.checked && this.options.device !== 'cpu') {
        fail(`--device ${this.options.device} is not available on this machine (${msg.split('\n')[0]}); use --device cpu`);
      }
      throw e;
    }
    this.checked = true;
    return { session, inputNames, outputNames };
  }

  /** Compile (cached) and run; feeds are by input name, extra feeds the graph does not use are ignored. */
  async run(graph: Graph, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return runCompiled(await this.compile(graph), feeds);
  }

  get cachedSessions(): number {
    return this.cache.size;
  }

  async release(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    for (const p of all) {
      try {
        // Releasing a profiled session writes its profile.
        await (await p).session.release();
      } catch {
        // A session that failed to build has nothing to release.
      }
    }
  }
}

/** Run a compiled graph with the feeds it needs (by input name); extra feeds are ignored. */
export async function runCompiled(compiled: CompiledGraph, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const used: Record<string, ort.Tensor> = {};
  for (const name of compiled.inputNames) {
    const t = feeds[name];
    if (!t) throw new Error(`missing feed for graph input ${name}`);
    used[name] = t;
  }
  return compiled.session.run(used, compiled.outputNames);
}
