import { ProtoWriter } from './protobuf.ts';
import type { ConstantData, DType, Graph, Node, Value } from './graph.ts';

/** ONNX TensorProto.DataType codes. */
const DTYPE_CODE: Record<DType, number> = { float32: 1, int64: 7, bool: 9, float64: 11 };

export const OPSET = 18;
const IR_VERSION = 8;

function writeTensor(w: ProtoWriter, name: string, dtype: DType, dims: number[], raw: Uint8Array): void {
  w.packedInts(1, dims);
  w.int(2, DTYPE_CODE[dtype]);
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
export function serializeGraph(graph: Graph): { bytes: Uint8Array; inputNames: string[] } {
  const nodes = liveNodes(graph);
  const used = new Set<Value>();
  for (const n of nodes) for (const i of n.inputs) used.add(i);
  for (const o of graph.outputs) used.add(o.value);
  const inputs = graph.inputs.filter((v) => used.has(v));
  const w = new ProtoWriter();
  w.int(1, IR_VERSION);
  w.string(2, 'carve');
  w.message(7, (g) => {
    nodes.forEach((n, i) => g.message(1, (nw) => writeNode(nw, n, i)));
    g.string(2, 'carve_graph');
    for (const c of graph.constants) {
      if (!used.has(c.value)) continue;
      g.message(5, (t) => writeTensor(t, c.value.name, c.value.dtype, c.value.shape as number[], rawBytes(c)));
    }
    for (const v of inputs) g.message(11, (vi) => writeValueInfo(vi, v, v.name));
    for (const o of graph.outputs) g.message(12, (vi) => writeValueInfo(vi, o.value, o.name));
  });
  w.message(8, (op) => {
    op.string(1, '');
    op.int(2, OPSET);
  });
  return { bytes: w.finish(), inputNames: inputs.map((v) => v.name) };
}
