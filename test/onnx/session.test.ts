import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as ort from 'onnxruntime-node';
import { Engine } from '../../src/onnx/session.ts';
import { Graph } from '../../src/onnx/graph.ts';

test('an engine with profilePrefix leaves one onnxruntime profile per session on release, with its runs and nodes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-profile-'));
  try {
    const engine = new Engine({ device: 'cpu', threads: 1, profilePrefix: join(dir, 'p') });
    const g = new Graph('float32');
    g.output(g.matmul(g.input('a', [2, 3]), g.input('b', [3, 4])), 'y');
    const feeds = { a: new ort.Tensor('float32', new Float32Array(6).fill(1), [2, 3]), b: new ort.Tensor('float32', new Float32Array(12).fill(2), [3, 4]) };
    const out = await engine.run(g, feeds);
    assert.deepEqual(Array.from(out.y.data as Float32Array), new Array(8).fill(6));
    await engine.run(g, feeds);
    await engine.release();
    const files = readdirSync(dir).filter((f) => f.startsWith('p') && f.endsWith('.json'));
    assert.equal(files.length, 1, `profiles: ${files}`);
    const events = JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as { cat?: string; name: string; args?: { op_name?: string } }[];
    assert.equal(events.filter((e) => e.cat === 'Session' && e.name === 'model_run').length, 2);
    assert.ok(events.some((e) => e.cat === 'Node' && e.args?.op_name === 'MatMul'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an engine without profilePrefix writes no profile', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'carve-noprofile-'));
  const cwd = process.cwd();
  try {
    process.chdir(dir);
    const engine = new Engine({ device: 'cpu', threads: 1 });
    const g = new Graph('float32');
    g.output(g.add(g.input('a', [2]), g.input('a', [2])), 'y');
    await engine.run(g, { a: new ort.Tensor('float32', Float32Array.from([1, 2]), [2]) });
    await engine.release();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});
