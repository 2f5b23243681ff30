import { ProtoWriter } from './protobuf.ts';
import type { ConstantData, DType, Graph, Node, Value } from './graph.ts';

/** ONNX TensorProto.DataType codes. */
const DTYPE_CODE: Record<DType, number> = { float32: 1, int64: 7, bool: 9, float64: 11 };
const FLOAT16_CODE = 10;

/**
 * Weights stored inside the model file (ONNX initializers) instead of fed as inputs: a graph input
 * of that name becomes an initializer. `float16` data (raw IEEE half bits) is stored as is and cast
 * to float32 by a Cast node at the top of the graph, halving the file for a float32 computation.
 */
export interface Initializer {
  dims: number[];
  dtype: 'float32' | 'float16';
  /** Little-endian raw bytes: 4 per value for float32, 2 for float16. */
  raw: Uint8Array;
}

export interface SerializeOptions {
  initializers?: Map<string, Initializer>;
}

export const OPSET = 18;
const IR_VERSION = 8;

function writeTensor(w: ProtoWriter, name: string, dtype: DType | 'float16', dims: number[], raw: Uint8Array): void {
  w.packedInts(1, dims);
  w.int(2, dtype === 'float16' ? FLOAT16_CODE : DTYPE_CODE[dtype]);
  w.string(8, name);
  w.bytes(9, raw);
}

function rawBytes(c: ConstantData): Uint8Array {
  return new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength);
}

function writeValueInfo(w: ProtoWriter, v: Value, name: string): void {
  w.string(1, name);
  w.message(2, (type) =>
    type.message(1, (tt) => {
      tt.int(1, DTYPE_CODE[v.dtype]);
      tt.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    }),
  );
}

function fillTensorBytes(dtype: DType, fill: number): Uint8Array {
  switch (dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.of(fill).buffer);
    case 'float64':
      return new Uint8Array(Float64Array.of(fill).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.of(BigInt(fill)).buffer);
    case 'bool':
      return Uint8Array.of(fill ? 1 : 0);
  }
}

function writeNode(w: ProtoWriter, node: Node, index: number): void {
  for (const i of node.inputs) w.string(1, i.name);
  for (const o of node.outputs) w.string(2, o.name);
  w.string(3, `n${index}_${node.op}`);
  w.string(4, node.op);
  for (const [name, a] of Object.entries(node.attrs)) {
    w.message(5, (aw) => {
      aw.string(1, name);
      if (node.op === 'ConstantOfShape' && name === 'value') {
        const dtype = node.outputs[0].dtype;
        aw.message(5, (t) => writeTensor(t, 'value', dtype, [1], fillTensorBytes(dtype, a.v as number)));
        aw.int(20, 4);
        return;
      }
      switch (a.kind) {
        case 'int':
          aw.int(3, a.v);
          aw.int(20, 2);
          break;
        case 'float':
          aw.float(2, a.v);
          aw.int(20, 1);
          break;
        case 'ints':
          aw.packedInts(8, a.v);
          aw.int(20, 7);
          break;
        case 'string':
          aw.string(4, a.v);
          aw.int(20, 3);
          break;
      }
    });
  }
}

/** Nodes needed to compute the graph's outputs, in topological (creation) order. */
export function liveNodes(graph: Graph): Node[] {
  const needed = new Set<Value>(graph.outputs.map((o) => o.value));
  const live: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (n.outputs.some((o) => needed.has(o))) {
      live.push(n);
      for (const inp of n.inputs) needed.add(inp);
    }
  }
  return live.reverse();
}

/**
 * Serialise to an ONNX ModelProto. Dead nodes, unused inputs and unused constants are dropped,
 * so callers may build more than a particular run needs. Returns the bytes and the names of the
 * inputs the serialised graph still requires.
 */
export function serializeGraph(graph: Graph, opts: SerializeOptions = {}): { bytes: Uint8Array; inputNames: string[] } {
  const { writer, inputNames } = writeModel(graph, opts);
  return { bytes: writer.finish(), inputNames };
}

/** The size in bytes of `serializeGraph`'s output, without assembling it. */
export function serializedSize(graph: Graph, opts: SerializeOptions = {}): number {
  return writeModel(graph, opts).writer.byteLength;
}

function writeModel(graph: Graph, opts: SerializeOptions): { writer: ProtoWriter; inputNames: string[] } {
  const nodes = liveNodes(graph);
  const used = new Set<Value>();
  for (const n of nodes) for (const i of n.inputs) used.add(i);
  for (const o of graph.outputs) used.add(o.value);
  const inits = opts.initializers ?? new Map<string, Initializer>();
  const live = graph.inputs.filter((v) => used.has(v));
  const inputs = live.filter((v) => !inits.has(v.name));
  const stored = live.filter((v) => inits.has(v.name));
  for (const v of stored) {
    const init = inits.get(v.name)!;
    if (init.dims.length !== v.shape.length || init.dims.some((d, i) => typeof v.shape[i] === 'number' && v.shape[i] !== d)) {
      throw new Error(`initializer ${v.name}: dims [${init.dims}] do not fit the input's shape [${v.shape}]`);
    }
  }
  const w = new ProtoWriter();
  w.int(1, IR_VERSION);
  w.string(2, 'carve');
  w.message(7, (g) => {
    // Half-precision weights are widened once, before anything reads them.
    for (const v of stored) {
      if (inits.get(v.name)!.dtype !== 'float16') continue;
      g.message(1, (nw) => {
        nw.string(1, `${v.name}.f16`);
        nw.string(2, v.name);
        nw.string(3, `cast_${v.name}`);
        nw.string(4, 'Cast');
        nw.message(5, (aw) => {
          aw.string(1, 'to');
          aw.int(3, DTYPE_CODE.float32);
          aw.int(20, 2);
        });
      });
    }
    nodes.forEach((n, i) => g.message(1, (nw) => writeNode(nw, n, i)));
    g.string(2, 'carve_graph');
    for (const c of graph.constants) {
      if (!used.has(c.value)) continue;
      g.message(5, (t) => writeTensor(t, c.value.name, c.value.dtype, c.value.shape as number[], rawBytes(c)));
    }
    for (const v of stored) {
      const init = inits.get(v.name)!;
      const name = init.dtype === 'float16' ? `${v.name}.f16` : v.name;
      g.message(5, (t) => writeTensor(t, name, init.dtype, init.dims, init.raw));
    }
    for (const v of inputs) g.message(11, (vi) => writeValueInfo(vi, v, v.name));
    for (const o of graph.outputs) g.message(12, (vi) => writeValueInfo(vi, o.value, o.name));
  });
  w.message(8, (op) => {
    op.string(1, '');
    op.int(2, OPSET);
  });
  return { writer: w, inputNames: inputs.map((v) => v.name) };
}
