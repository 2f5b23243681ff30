/**
 * bench/load-rss: resident memory after loading a model and binding its weights to an onnxruntime
 * model, as a multiple of the model's size in float32 — for the SmolLM2-135M-shaped model stored as
 * one F32 file, as sharded F16 and as sharded BF16 (the conversion must not hold a second copy).
 * Each measurement runs in a fresh child process.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelDir } from '../src/model/load.ts';
import { HookedModel } from '../src/model/hooked.ts';
import { Engine } from '../src/onnx/session.ts';
import { configToJson } from '../src/model/config.ts';
import { writeSafetensors, type WriteDtype } from '../src/model/safetensors.ts';
import { countParams } from '../src/compress/count.ts';
import { smollmInMemory } from './gpt2-small.ts';

if (process.argv[2] === '--child') {
  const dir = process.argv[3];
  const before = process.memoryUsage().rss;
  const model = new HookedModel(loadModelDir(dir, 'bench'), new Engine());
  globalThis.gc?.();
  const after = process.memoryUsage().rss;
  process.stdout.write(JSON.stringify({ rssBefore: before, rssAfter: after, params: countParams(model).n_params }) + '\n');
  process.exit(0);
}

/** Write the model as HF shards of about `shardBytes` each, with model.safetensors.index.json. */
function writeSharded(dir: string, dtype: WriteDtype, shardBytes: number): void {
  if (existsSync(join(dir, 'config.json'))) return;
  mkdirSync(dir, { recursive: true });
  const m = smollmInMemory();
  const bytes = dtype === 'F32' ? 4 : 2;
  const shards: { name: string; dtype: WriteDtype; shape: number[]; data: Float32Array }[][] = [[]];
  let size = 0;
  for (const [name, t] of m.weights) {
    if (size > 0 && size + t.data.length * bytes > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push({ name, dtype, shape: t.shape, data: t.data as Float32Array });
    size += t.data.length * bytes;
  }
  const map: Record<string, string> = {};
  shards.forEach((s, i) => {
    const file = shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    writeSafetensors(join(dir, file), s);
    for (const t of s) map[t.name] = file;
  });
  if (shards.length > 1) writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configToJson(m.config)));
}

const variants: [string, WriteDtype, number][] = [
  ['F32, one file', 'F32', Infinity],
  ['F16, 4 shards', 'F16', 80e6],
  ['BF16, 4 shards', 'BF16', 80e6],
];
const rows = [];
for (const [label, dtype, shard] of variants) {
  const dir = join(tmpdir(), `carve-bench-rss-${dtype}-${Number.isFinite(shard) ? 'sharded' : 'single'}`);
  writeSharded(dir, dtype, shard);
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir], { encoding: 'utf8' }));
  const f32 = out.params * 4;
  const row = { storage: label, f32_mb: f32 / 2 ** 20, rss_after_load_mb: out.rssAfter / 2 ** 20, rss_over_f32: out.rssAfter / f32 };
  rows.push(row);
  console.error(`${label}: RSS after load ${row.rss_after_load_mb.toFixed(0)} MB = ${row.rss_over_f32.toFixed(2)} x the F32 size (${row.f32_mb.toFixed(0)} MB)`);
}
console.log(JSON.stringify({ model: 'random SmolLM2-135M shape', rows }, null, 2));
