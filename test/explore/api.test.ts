/**
 * The explore server's JSON API on toy-ioi: every endpoint against carve's library computing the same
 * thing directly, the bad requests (400 with a message, and the server goes on), the Host and Origin
 * checks, the body limit, and that nothing is served or written outside what it may.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { ExactEvaluator } from '../../src/discover/evaluate.ts';
import { computeReplacements, type Ablation } from '../../src/discover/replacements.ts';
import { findComponent, listComponents } from '../../src/discover/components.ts';
import { cleanMetrics } from '../../src/discover/scan.ts';
import { parseKeepFile } from '../../src/cli/compress.ts';
import { mean, std } from '../../src/task/metrics.ts';
import { loadRun } from '../../src/report/load-run.ts';
import type { ExploreServer } from '../../src/explore/server.ts';
import type { ExploreSession } from '../../src/explore/session.ts';
import { FIXTURE_RUN } from '../report/helpers.ts';
import { call, engine, freshDir, postJson, serve, toySession, TOY_DIR, type Reply } from './helpers.ts';

const N = 8;
let session: ExploreSession;
let server: ExploreServer;
let port: number;
let outDir: string;

before(async () => {
  outDir = freshDir('api-out');
  session = toySession(N, { outDir, run: loadRun(FIXTURE_RUN), batchSize: 16 });
  server = await serve(session);
  port = server.port;
});
after(async () => {
  await server.close();
});

/** The exact evaluator run directly, for the configurations the server was asked about. */
async function direct(ablation: Ablation, sets: string[][]): Promise<Float64Array[]> {
  const model = new HookedModel(loadModelDir(TOY_DIR, 'toy-ioi'), engine);
  const repl = await computeReplacements(model, session.task, ablation, 'clean', 16);
  const ev = await ExactEvaluator.create(model, session.task, repl, { batchSize: 16 });
  return ev.evaluate(sets.map((s) => s.map((n) => findComponent(model.config, n, 'test'))));
}

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

async function stillAnswers(): Promise<void> {
  const r = await call(port, { path: '/api/components' });
  assert.equal(r.status, 200, 'the server goes on answering');
}

test('GET /api/components: every component name, the clean metric and the metric name', async () => {
  const r = await call(port, { path: '/api/components' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.components, listComponents(session.model.config).map((c) => c.name));
  assert.equal((r.json.components as string[]).length, 15);
  assert.equal(r.json.metric_name, 'logit-diff');
  const clean = (await cleanMetrics(session.model, session.task, 16)).metrics;
  close(r.json.clean_metric as number, mean(clean), 1e-4, 'clean metric');
  assert.match(String(r.headers['content-type']), /^application\/json/);
});

test('POST /api/evaluate equals the exact evaluator run directly, for each ablation', async () => {
  const sets = [[], ['L2H1'], ['L0H0', 'L1MLP'], ['L1H3', 'L2H1', 'L2MLP', 'L0H2']];
  for (const ablation of ['mean', 'zero', 'resample'] as const) {
    const want = await direct(ablation, sets);
    for (const [i, removed] of sets.entries()) {
      const r = await postJson(port, '/api/evaluate', { removed, ablation });
      assert.equal(r.status, 200, r.text);
      const per = r.json.per_prompt as number[];
      assert.equal(per.length, N);
      per.forEach((v, p) => close(v, want[i][p], 1e-5, `${ablation} ${removed.join('+')} prompt ${p}`));
      close(r.json.metric as number, mean(want[i]), 1e-5, 'mean');
      close(r.json.std as number, std(want[i]), 1e-5, 'std');
      assert.equal(r.json.accuracy, want[i].filter((v) => v > 0).length / N);
      assert.deepEqual(r.json.removed, removed.length === 4 ? ['L0H2', 'L1H3', 'L2H1', 'L2MLP'] : removed, 'canonical order');
    }
  }
  // Removing the heads the task needs most changes the metric: the comparison above is not vacuous.
  const [clean, cut] = await direct('mean', [[], ['L1H3', 'L2H1', 'L2MLP', 'L0H2']]);
  assert.ok(Math.abs(mean(clean) - mean(cut)) > 0.1);
});

test('20 concurrent evaluate requests are all answered, each with its own set', async () => {
  const names = listComponents(session.model.config).map((c) => c.name);
  // Sets no request above asked for (so none is answered from the cache), two ablations mixed.
  let seed = 12345;
  const coin = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) < 0.4;
  const sets: string[][] = [];
  while (sets.length < 20) {
    const s = names.filter(() => coin());
    if (s.length > 0 && !sets.some((t) => t.join() === s.join())) sets.push(s);
  }
  const ablations: Ablation[] = sets.map((_, i) => (i % 2 === 0 ? 'mean' : 'zero'));
  const replies = await Promise.all(sets.map((removed, i) => postJson(port, '/api/evaluate', { removed, ablation: ablations[i] })));
  const wantMean = await direct('mean', sets);
  const wantZero = await direct('zero', sets);
  replies.forEach((r, i) => {
    assert.equal(r.status, 200, r.text);
    const want = (ablations[i] === 'mean' ? wantMean : wantZero)[i];
    (r.json.per_prompt as number[]).forEach((v, p) => close(v, want[p], 1e-5, `request ${i} prompt ${p}`));
    assert.equal(r.json.ablation, ablations[i]);
  });
  assert.ok(new Set(replies.map((r) => (r.json.metric as number).toFixed(6))).size >= 18, 'different sets, different metrics');
});

test('sets asked for while the model is busy share one evaluate call, and the cache answers repeats', async () => {
  const names = listComponents(session.model.config).map((c) => c.name);
  const sets = names.map((n, i) => [n, names[(i + 5) % names.length]]);
  const calls = session.stats.evaluateCalls;
  const got = await Promise.all(sets.map((s) => session.evaluate(s, 'zero')));
  assert.equal(session.stats.evaluateCalls - calls, 1, 'one batched call');
  const want = await direct('zero', sets);
  got.forEach((r, i) => r.per_prompt.forEach((v, p) => close(v, want[i][p], 1e-5, `set ${i} prompt ${p}`)));
  const hits = session.stats.cacheHits;
  await session.evaluate([...sets[3]].reverse(), 'zero');
  assert.equal(session.stats.evaluateCalls - calls, 1, 'a repeat (in any order) is not evaluated again');
  assert.equal(session.stats.cacheHits, hits + 1);
});

test('GET /api/attention: the head pattern of a prompt, tokens on the axes; removals in earlier layers change later patterns', async () => {
  const prompt = 3;
  const tokens = session.task.pairs[prompt].clean;
  const r = await call(port, { path: `/api/attention?prompt=${prompt}&layer=2&head=1` });
  assert.equal(r.status, 200, r.text);
  const pattern = r.json.pattern as number[][];
  assert.equal((r.json.tokens as string[]).length, tokens.length);
  assert.equal((r.json.tokens as string[])[1], session.prompts()[prompt].tokens[1]);
  assert.equal(pattern.length, tokens.length);
  // Against one full forward asking for every layer's pattern (the server stops after the layer).
  const model = session.model;
  const full = await model.run({ tokens: [tokens], hooks: [model.hookName(2, 'attn.hook_pattern')], logits: 'none' });
  const v = full.hooks.get(model.hookName(2, 'attn.hook_pattern'))!;
  const T = tokens.length;
  pattern.forEach((row, q) => {
    assert.equal(row.length, T);
    close(row.reduce((a, b) => a + b, 0), 1, 1e-5, `row ${q} sums to 1`);
    row.forEach((w, k) => {
      if (k > q) assert.equal(w, 0, 'causal');
      close(w, v.data[(1 * T + q) * T + k], 1e-6, `q${q} k${k}`);
    });
  });
  // With L0H1 and L1MLP removed: layer 2's pattern moves, layer 0's cannot.
  const moved = await call(port, { path: `/api/attention?prompt=${prompt}&layer=2&head=1&removed=L0H1,L1MLP&ablation=zero` });
  assert.equal(moved.status, 200, moved.text);
  const diff = Math.max(...(moved.json.pattern as number[][]).flatMap((row, q) => row.map((w, k) => Math.abs(w - pattern[q][k]))));
  assert.ok(diff > 1e-4, `removals upstream change the pattern (${diff})`);
  const l0 = await call(port, { path: `/api/attention?prompt=${prompt}&layer=0&head=1` });
  const l0r = await call(port, { path: `/api/attention?prompt=${prompt}&layer=0&head=1&removed=L0H1,L1MLP&ablation=zero` });
  assert.deepEqual(l0r.json.pattern, l0.json.pattern);
});

test('GET /api/prompts marks the IOI names at the task\'s token positions', async () => {
  const r = await call(port, { path: '/api/prompts' });
  const prompts = r.json.prompts as { tokens: string[]; marks: { pos: number; kind: string; label: string }[]; correct: string }[];
  assert.equal(prompts.length, N);
  prompts.forEach((p, i) => {
    const info = session.task.ioi![i];
    assert.equal(p.tokens.length, session.task.pairs[i].clean.length);
    const at = (label: string) => p.marks.find((m) => m.label === label)!;
    assert.equal(at('IO').pos, info.positions.IO);
    assert.equal(at('S1').pos, info.positions.S1);
    assert.equal(at('S2').pos, info.positions.S2);
    assert.equal(p.tokens[at('IO').pos].trim(), info.io);
    assert.equal(p.correct.trim(), info.io);
    assert.equal(at('metric position').pos, p.tokens.length - 1);
  });
});

test('scans and curves: the run directory\'s, and exact scores computed here', async () => {
  const scans = (await call(port, { path: '/api/scans' })).json.scans as { id: string; method: string; components: { name: string; score: number }[] }[];
  assert.equal(scans.length, 4, 'the fixture run has four scans');
  const curves = (await call(port, { path: '/api/curves' })).json.curves as { order: string; steps: unknown[] }[];
  assert.deepEqual(curves.map((c) => c.order).sort(), ['acdc', 'greedy', 'scores']);

  const r = await postJson(port, '/api/scan', { ablation: 'zero', method: 'exact' });
  assert.equal(r.status, 200, r.text);
  const names = listComponents(session.model.config).map((c) => c.name);
  const want = await direct('zero', [[], ...names.map((n) => [n])]);
  const got = r.json.components as { name: string; score: number }[];
  got.forEach((c, i) => close(c.score, mean(want[i + 1]) - mean(want[0]), 1e-5, c.name));
  const after = (await call(port, { path: '/api/scans' })).json.scans as { id: string }[];
  assert.equal(after.length, 5);
  assert.equal((await postJson(port, '/api/scan', { ablation: 'zero', method: 'nonsense' })).status, 400);
});

test('bad requests are HTTP 400 with a message, and the server goes on', async () => {
  const cases: [string, Promise<Reply>, RegExp][] = [
    ['bad JSON', call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json' }, body: '{"removed": [' }), /not valid JSON/],
    ['not an object', postJson(port, '/api/evaluate', ['L0H0']), /JSON object/],
    ['removed not a list', postJson(port, '/api/evaluate', { removed: 'L0H0' }), /array of component names/],
    ['a number among the names', postJson(port, '/api/evaluate', { removed: ['L0H0', 7] }), /\[1\] must be a component name/],
    ['unknown component', postJson(port, '/api/evaluate', { removed: ['L7H0'] }), /no component L7H0/],
    ['not a component name', postJson(port, '/api/evaluate', { removed: ['head 3'] }), /not a component name/],
    ['unknown ablation', postJson(port, '/api/evaluate', { removed: [], ablation: 'blur' }), /ablation: expected one of zero, mean, resample/],
    ['prompt out of range', call(port, { path: `/api/attention?prompt=${N}&layer=0&head=0` }), /prompt: expected an index from 0 to 7/],
    ['layer out of range', call(port, { path: '/api/attention?prompt=0&layer=3&head=0' }), /no layer 3/],
    ['head out of range', call(port, { path: '/api/attention?prompt=0&layer=0&head=4' }), /layer 0 has no head 4/],
    ['negative index', call(port, { path: '/api/attention?prompt=-1&layer=0&head=0' }), /"prompt" must be a non-negative integer/],
    ['not a number', call(port, { path: '/api/attention?prompt=0&layer=x&head=0' }), /"layer" must be a non-negative integer/],
    ['missing parameter', call(port, { path: '/api/attention?prompt=0&layer=0' }), /"head" is missing/],
    ['unknown removal in attention', call(port, { path: '/api/attention?prompt=0&layer=2&head=0&removed=L0H9' }), /no component L0H9/],
  ];
  for (const [what, pending, message] of cases) {
    const r = await pending;
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.match(r.json.error ?? '', message, what);
  }
  await stillAnswers();
  assert.equal((await call(port, { path: '/api/evaluate' })).status, 405);
  assert.equal((await call(port, { path: '/api/nothing' })).status, 404);
});

test('a foreign Host header is refused (403); the served host and localhost are answered', async () => {
  for (const host of ['evil.example', `evil.example:${port}`, '127.0.0.1:1', '', `127.0.0.1.evil.example:${port}`]) {
    const r = await call(port, { path: '/api/components', headers: { Host: host } });
    assert.equal(r.status, 403, `Host ${JSON.stringify(host)}`);
    assert.match(r.json.error ?? '', /not the served host/);
  }
  assert.equal((await call(port, { path: '/', headers: { Host: 'rebind.example' } })).status, 403, 'the page too');
  assert.equal((await call(port, { path: '/api/components', headers: { Host: `localhost:${port}` } })).status, 200);
  assert.equal((await call(port, { path: '/api/components', headers: { Host: `LOCALHOST:${port}` } })).status, 200);
});

test('POSTs from another origin or not as JSON are refused', async () => {
  const foreign = await postJson(port, '/api/keep', { removed: [], name: 'x.json' }, { Origin: 'http://evil.example' });
  assert.equal(foreign.status, 403);
  const form = await call(port, { method: 'POST', path: '/api/keep', headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ removed: [], name: 'x.json' }) });
  assert.equal(form.status, 415);
  assert.ok(!existsSync(join(outDir, 'x.json')));
  const same = await postJson(port, '/api/evaluate', { removed: [] }, { Origin: `http://127.0.0.1:${port}` });
  assert.equal(same.status, 200);
});

test('bodies over 1 MB are refused, declared or streamed, and the server goes on', async () => {
  const big = JSON.stringify({ removed: Array.from({ length: 200_000 }, () => 'L0H0') });
  assert.ok(big.length > 1024 * 1024);
  const declared = await call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json' }, body: big });
  assert.equal(declared.status, 413);
  assert.match(declared.json.error ?? '', /over the limit of 1048576 bytes/);
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const streamed = await call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunks: Array.from({ length: 20 }, () => chunk) });
  assert.equal(streamed.status, 413);
  await stillAnswers();
  // Just under the limit is read (and then judged on its content).
  const under = JSON.stringify({ removed: ['L0H0'], pad: 'x'.repeat(1024 * 1024 - 100) });
  const ok = await call(port, { method: 'POST', path: '/api/evaluate', headers: { 'Content-Type': 'application/json' }, body: under });
  assert.equal(ok.status, 200, ok.text);
});

test('only the page\'s own assets are served', async () => {
  const page = await call(port, { path: '/' });
  assert.equal(page.status, 200);
  assert.match(page.text, /<title>carve explore<\/title>/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
  for (const asset of ['/app.js', '/charts.js', '/style.css', '/index.html']) assert.equal((await call(port, { path: asset })).status, 200, asset);
  for (const path of ['/../package.json', '/%2e%2e/package.json', '/assets/app.js', '/server.ts', '/src/explore/server.ts', '/..%2f..%2fpackage.json', '//etc/passwd', '/app.js/../../session.ts']) {
    const r = await call(port, { path });
    assert.equal(r.status, 404, path);
    assert.ok(!r.text.includes('"name": "carve"') && !r.text.includes('ExploreSession'), path);
  }
});

test('POST /api/keep writes a keep file carve compress reads, only inside the output directory', async () => {
  const r = await postJson(port, '/api/keep', { removed: ['L2H1', 'L0MLP'], name: 'keep.json' });
  assert.equal(r.status, 200, r.text);
  const path = join(outDir, 'keep.json');
  assert.equal(r.json.path, path);
  const names = parseKeepFile(path, readFileSync(path, 'utf8')).map((n) => n.name);
  assert.equal(names.length, 13);
  assert.ok(!names.includes('L2H1') && !names.includes('L0MLP') && names.includes('L2H0'));
  const before = readdirSync(join(outDir, '..'));
  for (const name of ['../escape.json', '/tmp/escape.json', '..', 'a/b.json', '', '.hidden']) {
    const bad = await postJson(port, '/api/keep', { removed: [], name });
    assert.equal(bad.status, 400, `name ${JSON.stringify(name)}`);
    assert.match(bad.json.error ?? '', /plain file name/);
  }
  assert.deepEqual(readdirSync(join(outDir, '..')), before, 'nothing written beside the output directory');
  assert.ok(!existsSync('/tmp/escape.json'));
});

test('POST /api/compress writes a model whose `carve eval` metric is the one the page shows', async () => {
  const removed = ['L2H1', 'L1MLP', 'L0H3'];
  const shown = await postJson(port, '/api/evaluate', { removed, ablation: 'mean' });
  const r = await postJson(port, '/api/compress', { removed, ablation: 'mean', name: 'small' });
  assert.equal(r.status, 200, r.text);
  const dir = join(outDir, 'small');
  assert.deepEqual(readdirSync(dir).sort(), ['carve-compress.json', 'config.json', 'model.safetensors']);
  const loaded = loadModelDir(dir);
  assert.equal(loaded.storedDtype, 'F16', 'written in the source model\'s dtype, as carve compress does');
  const small = new HookedModel(loaded, engine);
  assert.equal(listComponents(small.config).length, 12);
  const metric = mean((await cleanMetrics(small, session.task, 16)).metrics);
  close(metric, shown.json.metric as number, 1e-3, 'eval of the compressed model vs the page');
  close(r.json.metric as number, shown.json.metric as number, 1e-9, 'compress reports the same metric');
  assert.ok((r.json.n_params_after as number) < (r.json.n_params_before as number));

  assert.equal((await postJson(port, '/api/compress', { removed, ablation: 'resample', name: 'r' })).status, 400);
  mkdirSync(join(outDir, 'notes'), { recursive: true });
  writeFileSync(join(outDir, 'notes', 'mine.txt'), 'keep me');
  const clash = await postJson(port, '/api/compress', { removed, ablation: 'mean', name: 'notes' });
  assert.equal(clash.status, 400);
  assert.match(clash.json.error ?? '', /holds other files/);
  assert.equal(readFileSync(join(outDir, 'notes', 'mine.txt'), 'utf8'), 'keep me');
});

test('without an output directory nothing can be written', async () => {
  const ro = toySession(2);
  const s = await serve(ro);
  try {
    const r = await postJson(s.port, '/api/keep', { removed: [], name: 'keep.json' });
    assert.equal(r.status, 400);
    assert.match(r.json.error ?? '', /--out-dir/);
    assert.equal((await postJson(s.port, '/api/compress', { removed: [], ablation: 'mean', name: 'm' })).status, 400);
    assert.equal((await call(s.port, { path: '/api/info' })).json.can_write, false);
  } finally {
    await s.close();
  }
});
