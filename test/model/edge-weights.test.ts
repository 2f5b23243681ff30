/**
 * The q/k/v columns the edge engine feeds for live receivers (gatherReceiverColumns, gathered on the
 * host from the stored tensors) against each receiver's own projection as the graph builds it
 * (receiverProjections), on every storage: GPT-2's fused [d, 3·k·dh], Llama's separate grouped-query
 * [n·dh, d] tensors, GPT-NeoX's fused per-head rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/onnx/session.ts';
import { Graph } from '../../src/onnx/graph.ts';
import { HookedModel } from '../../src/model/hooked.ts';
import { tensorTable } from '../../src/model/arch/index.ts';
import { slotShape, type Role } from '../../src/model/tensors.ts';
import { attentionReceivers, gatherReceiverColumns, receiverColumnPlan, receiverProjections, type WeightAccess } from '../../src/model/edges.ts';
import { randomHfModel, writeAndLoad, type HfModelSpec } from '../helpers/hf-random.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });
const tmp = mkdtempSync(join(tmpdir(), 'carve-edge-weights-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const specs: HfModelSpec[] = [
  { arch: 'gpt2', nLayer: 2, nHead: 3, dModel: 12, vocab: 17, seed: 71 },
  { arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: 17, seed: 72 },
  { arch: 'gpt_neox', nLayer: 2, nHead: 2, dModel: 16, vocab: 17, seed: 73, activation: 'gelu_new' },
];

for (const spec of specs) {
  test(`live receivers' q/k/v columns gathered on the host equal their own projections (${spec.arch})`, async () => {
    const model = new HookedModel(writeAndLoad(tmp, spec.arch, randomHfModel(spec)), engine, 'float64');
    const cfg = model.config;
    const d = cfg.dModel;
    const dh = cfg.dHead;
    const slots = tensorTable(cfg);
    const slot = (role: Role, layer?: number) => slots.find((s) => s.role === role && s.layer === layer);
    const i = 1;
    const R = attentionReceivers(cfg, i);
    // From the query, key and value blocks (a key head of Llama's groups, the last value head).
    const receivers = [0, Math.floor(R / 2), R - 1];
    const plan = receiverColumnPlan(cfg, i, slot, receivers);
    assert.ok(plan, 'the columns can be gathered');
    const cols = gatherReceiverColumns(plan, (name) => model.weightFeeds[name].data as Float64Array, d);
    assert.throws(() => receiverColumnPlan(cfg, i, slot, [...receivers].reverse()), /ascending/);

    const g = new Graph('float64');
    const w = (role: Role, layer?: number) => {
      const s = slot(role, layer);
      return s ? g.input(s.name, slotShape(cfg, s)) : undefined;
    };
    const wa: WeightAccess = { w, must: (role, layer) => w(role, layer)!, slot };
    const own = receiverProjections(g, cfg, i, wa);
    g.output(own.w, 'w');
    if (own.b) g.output(own.b, 'b');
    const out = await engine.run(g, model.weightFeeds);
    const W = out.w.data as Float64Array; // [R, d, dh]
    assert.equal(cols.b !== undefined, own.b !== undefined, 'a bias exactly where the projection has one');
    const n = receivers.length * dh;
    assert.deepEqual(cols.w.dims, plan.layout === 'in_out' ? [d, n] : [n, d]);
    receivers.forEach((r, j) => {
      for (let x = 0; x < d; x++) {
        for (let c = 0; c < dh; c++) {
          const got: number = plan.layout === 'in_out' ? cols.w.data[x * n + j * dh + c] : cols.w.data[(j * dh + c) * d + x];
          assert.equal(got, W[(r * d + x) * dh + c], `receiver ${r} input ${x} column ${c}`);
        }
      }
      if (cols.b) for (let c = 0; c < dh; c++) assert.equal(cols.b.data[j * dh + c], (out.b.data as Float64Array)[r * dh + c], `receiver ${r} bias ${c}`);
    });
  });
}
