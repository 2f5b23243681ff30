/**
 * SPEC "Edges" computed the slow, literal way, in float64, one prompt at a time: every sender's
 * output is kept on its own, and every receiver's input is built as the sum over the senders it
 * reads — each sender's output in this run, or (where the edge is ablated) its replacement — plus
 * the biases no sender owns (each attention block's output bias). Every receiver then runs on its
 * own input: a head's query from its own normed q input, its key/value head's keys and values
 * from their own inputs, the MLP from its input, the unembedding from the logits' input.
 *
 * Written from the definition with the naive HF reference's building blocks (naive-hf.ts); it
 * shares nothing with src/. Receiver names are SPEC's (`L1H0<q>`, `L2MLP`, `logits`, and with
 * grouped-query attention `L1KV0<k>` for key/value head 0).
 */
import type { HfModel } from './hf-random.ts';
import { activate, applyRotary, conv1d, interpretHfConfig, layerNorm, linear, rmsNorm, tensorNames } from './naive-hf.ts';

export interface NaiveEdgeOptions {
  /** Ablated edges `SENDER->RECEIVER` → how much (1 = fully replaced). */
  ablated?: Map<string, number>;
  /** A sender's replacement output at position t ([d], a head's being z_repl · W_O[h]), for receiver `receiver`. */
  replacement?: (sender: string, t: number, receiver: string) => Float64Array;
}

export interface NaiveEdgeResult {
  /** [T, V] */
  logits: Float64Array;
  /** Each sender's output at every position (a head's without the output bias). */
  senders: Map<string, Float64Array[]>;
}

export function naiveEdgeForward(model: HfModel, tokens: number[], opts: NaiveEdgeOptions = {}): NaiveEdgeResult {
  const a = interpretHfConfig(model.config);
  const { d, nHead: H, nKvHead: K, dHead: dh, dMlp, vocab: V } = a;
  const T = tokens.length;
  const group = H / K;
  const gqa = K < H;
  const names = tensorNames(a.modelType);
  const get = (name: string): Float64Array => {
    const t = model.tensors.get(name) ?? (name.startsWith('transformer.') ? model.tensors.get(name.slice('transformer.'.length)) : undefined);
    if (!t) throw new Error(`naive-edges: tensor ${name} missing`);
    return t.data;
  };
  const ablated = opts.ablated ?? new Map<string, number>();
  const senders = new Map<string, Float64Array[]>();
  const order: string[] = [];
  const constant: Float64Array[] = Array.from({ length: T }, () => new Float64Array(d));

  const addSender = (name: string, out: Float64Array[]) => {
    senders.set(name, out);
    order.push(name);
  };
  /** The input of receiver `r`, which reads the first `n` senders (in creation order). */
  const inputOf = (r: string, n: number): Float64Array[] =>
    Array.from({ length: T }, (_, t) => {
      const x = Float64Array.from(constant[t]);
      for (let s = 0; s < n; s++) {
        const name = order[s];
        const out = senders.get(name)![t];
        const amount = ablated.get(`${name}->${r}`) ?? 0;
        const repl = amount !== 0 ? opts.replacement!(name, t, r) : undefined;
        for (let j = 0; j < d; j++) x[j] += repl ? out[j] + amount * (repl[j] - out[j]) : out[j];
      }
      return x;
    });

  // The input sender: token embeddings, plus learned positions.
  const wte = get(names.embed);
  const wpe = a.positions === 'learned' ? get('transformer.wpe.weight') : undefined;
  addSender(
    'input',
    tokens.map((tok, t) => {
      const e = wte.slice(tok * d, (tok + 1) * d);
      if (wpe) for (let j = 0; j < d; j++) e[j] += wpe[t * d + j];
      return e;
    }),
  );

  const norm = (x: Float64Array, g: string, b: string | null) => (a.norm === 'layer' ? layerNorm(x, get(g), get(b!), a.eps) : rmsNorm(x, get(g), a.eps));

  for (let l = 0; l < a.nLayer; l++) {
    const n = names.layer(l);
    const before = order.length;
    /** q, k, v ([H·dh], [K·dh], [K·dh]) of one normed input. */
    const qkv = (x: Float64Array): [Float64Array, Float64Array, Float64Array] => {
      if (a.modelType === 'gpt2') {
        const y = conv1d(x, get(n.qkv!), 3 * d, get(n.qkvBias!));
        return [y.slice(0, d), y.slice(d, 2 * d), y.slice(2 * d)];
      }
      if (a.modelType === 'gpt_neox') {
        const y = linear(x, get(n.qkv!), 3 * d, a.qkvBias ? get(n.qkvBias!) : undefined);
        const parts = [new Float64Array(H * dh), new Float64Array(H * dh), new Float64Array(H * dh)];
        for (let h = 0; h < H; h++) for (let p = 0; p < 3; p++) for (let e = 0; e < dh; e++) parts[p][h * dh + e] = y[h * 3 * dh + p * dh + e];
        return parts as [Float64Array, Float64Array, Float64Array];
      }
      return [
        linear(x, get(n.q!), H * dh, a.qkvBias ? get(n.qBias!) : undefined),
        linear(x, get(n.k!), K * dh, a.qkvBias ? get(n.kBias!) : undefined),
        linear(x, get(n.v!), K * dh, a.qkvBias ? get(n.vBias!) : undefined),
      ];
    };
    // Each receiver's own input, normed and projected; keep only its own slice.
    const q: Float64Array[][] = [];
    const k: Float64Array[][] = [];
    const v: Float64Array[][] = [];
    for (let h = 0; h < H; h++) q.push(inputOf(`L${l}H${h}<q>`, before).map((x) => qkv(norm(x, n.ln1g, n.ln1b))[0].slice(h * dh, (h + 1) * dh)));
    for (let j = 0; j < K; j++) {
      const kName = gqa ? `L${l}KV${j}` : `L${l}H${j}`;
      k.push(inputOf(`${kName}<k>`, before).map((x) => qkv(norm(x, n.ln1g, n.ln1b))[1].slice(j * dh, (j + 1) * dh)));
      v.push(inputOf(`${kName}<v>`, before).map((x) => qkv(norm(x, n.ln1g, n.ln1b))[2].slice(j * dh, (j + 1) * dh)));
    }
    const window = a.window[l];
    const Wo = get(n.o);
    const wo = a.modelType === 'gpt2' ? (i: number, o: number) => Wo[i * d + o] : (i: number, o: number) => Wo[o * H * dh + i];
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / group);
      const qr = q[h].map((x, t) => (a.positions === 'rotary' ? applyRotary(x, t, a.invFreq) : x));
      const kr = k[kv].map((x, t) => (a.positions === 'rotary' ? applyRotary(x, t, a.invFreq) : x));
      const out: Float64Array[] = [];
      for (let i = 0; i < T; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (window !== null && i - j >= window) continue;
          let s = 0;
          for (let e = 0; e < dh; e++) s += qr[i][e] * kr[j][e];
          scores.push(s * a.scoreScale[l]);
        }
        const first = window !== null ? Math.max(0, i - window + 1) : 0;
        const max = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - max));
        const sum = p.reduce((x, y) => x + y, 0);
        const z = new Float64Array(dh);
        p.forEach((pj, idx) => {
          for (let e = 0; e < dh; e++) z[e] += (pj / sum) * v[kv][first + idx][e];
        });
        const o = new Float64Array(d);
        for (let c = 0; c < d; c++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += z[e] * wo(h * dh + e, c);
          o[c] = s;
        }
        out.push(o);
      }
      addSender(`L${l}H${h}`, out);
    }
    // The attention output bias belongs to no sender.
    if (a.oBias) {
      const bo = get(n.oBias!);
      for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) constant[t][j] += bo[j];
    }
    // The MLP reads its own layer's heads unless the residual is parallel (then the o bias is not yet in its stream).
    const mlpSenders = a.parallelResidual ? before : order.length;
    const mlpIn = inputOf(`L${l}MLP`, mlpSenders);
    if (a.parallelResidual && a.oBias) {
      const bo = get(n.oBias!);
      for (const x of mlpIn) for (let j = 0; j < d; j++) x[j] -= bo[j];
    }
    const mlpOut = mlpIn.map((xin) => {
      const x = norm(xin, n.ln2g, n.ln2b);
      if (a.modelType === 'gpt2') return conv1d(conv1d(x, get(n.mlpIn), dMlp, get(n.mlpInBias!)).map((u) => activate(a.activation, u)), get(n.mlpOut), d, get(n.mlpOutBias!));
      if (!a.gated) return linear(linear(x, get(n.mlpIn), dMlp, get(n.mlpInBias!)).map((u) => activate(a.activation, u)), get(n.mlpOut), d, get(n.mlpOutBias!));
      const gate = linear(x, get(n.mlpIn), dMlp, a.mlpBias ? get(n.mlpInBias!) : undefined);
      const up = linear(x, get(n.mlpUp!), dMlp, a.mlpBias ? get(n.mlpUpBias!) : undefined);
      return linear(gate.map((u, i) => activate(a.activation, u) * up[i]), get(n.mlpOut), d, a.mlpBias ? get(n.mlpOutBias!) : undefined);
    });
    addSender(`L${l}MLP`, mlpOut);
  }

  const xf = inputOf('logits', order.length);
  const U = a.tied ? wte : get(names.unembed);
  const logits = new Float64Array(T * V);
  xf.forEach((x, t) => {
    const y = norm(x, names.lnfG, names.lnfB);
    for (let tok = 0; tok < V; tok++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += y[i] * U[tok * d + i];
      logits[t * V + tok] = s;
    }
  });
  return { logits, senders };
}
