/**
 * The edge commands end to end: `carve scan --level edges`, `carve faithfulness` (and its MIB
 * output), `carve prune --order acdc --level edges`, and their bad inputs (one `carve: error:`
 * line, exit 2, no output file).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';
import { parseFractions, readScanScores, scoresInOrder } from '../../src/cli/faithfulness.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { isCarveError } from '../../src/util/errors.ts';
import { assertUserError, carve } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-edges-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const modelDir = makeRandomGpt2(join(dir, 'model'), { nLayer: 2, nHead: 2, dModel: 16, nCtx: 32, vocabSize: 50257, seed: 5 });
const common = ['--model', modelDir, '--n', '4'];

async function userError(args: string[], pattern: RegExp, out?: string) {
  assertUserError(await carve(args), pattern, out);
}

const edgeScan = join(dir, 'edges.json');
const compScan = join(dir, 'components.json');

test('carve scan --level edges writes every edge with its sender, receiver, score and std', async () => {
  const r = await carve(['scan', ...common, '--level', 'edges', '--method', 'exact', '--ablation', 'resample', '--out', edgeScan]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /exact scan of 46 edges × 4 prompts: about/);
  const s = JSON.parse(readFileSync(edgeScan, 'utf8'));
  assert.equal(s.level, 'edges');
  assert.equal(s.n_edges, 46);
  assert.equal(s.edges.length, 46);
  for (const k of ['model', 'task', 'ablation', 'method', 'n_prompts', 'clean_metric', 'clean_std', 'corrupt_metric']) assert.ok(k in s, k);
  assert.deepEqual(s.edges[0], { ...s.edges[0], name: 'input->L0H0<q>', sender: 'input', receiver: 'L0H0<q>' });
  for (const e of s.edges) assert.ok(Number.isFinite(e.score) && Number.isFinite(e.std) && e.name === `${e.sender}->${e.receiver}`);
  const ig = await carve(['scan', ...common, '--level', 'edges', '--method', 'ig', '--ablation', 'resample']);
  assert.equal(ig.code, 0, ig.stderr);
  const o = JSON.parse(ig.stdout);
  assert.equal(o.steps, 5);
  assert.equal(o.ig_path, 'inputs');
  const act = await carve(['scan', ...common, '--level', 'edges', '--method', 'ig', '--ig-path', 'activations', '--steps', '2', '--ablation', 'resample']);
  assert.equal(act.code, 0, act.stderr);
  const a = JSON.parse(act.stdout);
  assert.equal(a.ig_path, 'activations');
  assert.equal(a.steps, 2);
  assert.equal(a.n_edges, 46);
  assert.ok(a.edges.every((e: { score: number }) => Number.isFinite(e.score)));
  assert.ok(a.edges.some((e: { score: number }, i: number) => Math.abs(e.score - o.edges[i].score) > 1e-6), 'activations are not the inputs path');
  const actScan = join(dir, 'edges-ig-act.json');
  writeFileSync(actScan, act.stdout);
  const f = await carve(['faithfulness', ...common, '--scores', actScan, '--fractions', '0,0.5,1']);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(JSON.parse(f.stdout).scores_method, 'ig (activations)');
  assert.equal((await carve(['scan', ...common, '--out', compScan])).code, 0);
});

test('edge scans with --metric kl: EAP-IG (its points lie off the clean run), not EAP', async () => {
  const r = await carve(['scan', ...common, '--level', 'edges', '--method', 'ig', '--steps', '2', '--metric', 'kl', '--ablation', 'resample']);
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.metric_name, 'kl');
  // This random model's next-token distributions are near uniform: KL values are ~1e-6 (float32).
  assert.ok(Math.abs(o.clean_metric) < 1e-5 && o.corrupt_metric > Math.abs(o.clean_metric), 'the clean run diverges from itself by ~0, the corrupt one more');
  assert.ok(o.edges.every((e: { score: number }) => Number.isFinite(e.score)) && o.edges.some((e: { score: number }) => e.score !== 0));
  await userError(['scan', ...common, '--level', 'edges', '--method', 'attribution', '--metric', 'kl'], /--metric kl: the attribution method needs a gradient/);
});

test('carve scan --ig-path: only for edge ig scans, inputs or activations', async () => {
  await userError(['scan', ...common, '--level', 'edges', '--method', 'ig', '--ig-path', 'sideways'], /--ig-path/);
  await userError(['scan', ...common, '--level', 'edges', '--method', 'attribution', '--ig-path', 'activations'], /--ig-path applies only to --level edges --method ig/);
  await userError(['scan', ...common, '--method', 'ig', '--ig-path', 'inputs'], /--ig-path applies only/);
});

test('carve faithfulness: the curve, CPR and CMD for edge and component scans; MIB format', async () => {
  const out = join(dir, 'faith.json');
  const mib = join(dir, 'mib.json');
  const r = await carve(['faithfulness', ...common, '--scores', edgeScan, '--fractions', '0,0.1,0.5,1', '--mib', mib, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(f.points.map((p: { fraction: number }) => p.fraction), [0, 0.1, 0.5, 1]);
  assert.deepEqual(f.points.map((p: { n_edges: number }) => p.n_edges), [0, 4, 23, 46]);
  assert.equal(f.points[0].faithfulness, 0);
  assert.ok(Math.abs(f.points[3].faithfulness - 1) < 1e-9);
  assert.ok(Number.isFinite(f.cpr) && Number.isFinite(f.cmd));
  assert.equal(f.ablation, 'resample');
  const m = JSON.parse(readFileSync(mib, 'utf8'));
  assert.deepEqual(m.cfg, { n_layers: 2, n_heads: 2, parallel_attn_mlp: false, d_model: 16 });
  assert.equal(Object.keys(m.edges).length, 46);
  assert.ok('input->a0.h1<k>' in m.edges && 'a1.h0->logits' in m.edges && 'a0.h0->m0' in m.edges);
  assert.deepEqual(Object.keys(m.nodes), ['input', 'a0.h0', 'a0.h1', 'm0', 'a1.h0', 'a1.h1', 'm1', 'logits']);
  // MIB's sign: loss(ablated) − loss(clean) with loss = −logit difference, the negated carve score.
  const scan = JSON.parse(readFileSync(edgeScan, 'utf8'));
  const e0 = scan.edges.find((e: { name: string }) => e.name === 'L0H0->L1H1<q>');
  assert.ok(Math.abs(e0.score) > 0);
  assert.equal(m.edges['a0.h0->a1.h1<q>'].score, -e0.score);
  const c = await carve(['faithfulness', ...common, '--scores', compScan, '--fractions', '0,0.5,1']);
  assert.equal(c.code, 0, c.stderr);
  const cf = JSON.parse(c.stdout);
  assert.equal(cf.level, 'components');
  assert.deepEqual(cf.points.map((p: { n_components: number }) => p.n_components), [0, 3, 6]);
});

test('carve faithfulness: bad input is one error line, exit 2, no output', async () => {
  const out = join(dir, 'never.json');
  const args = (extra: string[]) => ['faithfulness', ...common, '--out', out, ...extra];
  await userError(args(['--scores', edgeScan, '--fractions', '0,0.5,1.5']), /--fractions: fraction 1\.5 is outside \[0, 1\]/, out);
  await userError(args(['--scores', edgeScan, '--fractions', '0,0.5,0.2,1']), /--fractions: fractions must increase \(0\.5 then 0\.2\)/, out);
  await userError(args(['--scores', compScan, '--level', 'edges']), /components\.json: a component scan, not --level edges/, out);
  const bad = join(dir, 'bad-edge.json');
  const s = JSON.parse(readFileSync(edgeScan, 'utf8'));
  s.edges[5].name = 'L1H0->L0H0<q>';
  writeFileSync(bad, JSON.stringify(s));
  await userError(args(['--scores', bad]), /bad-edge\.json: edges\[5\]\.name: the model has no edge L1H0->L0H0<q>/, out);
});

test('faithfulness inputs are checked (in process)', () => {
  const err = (f: () => unknown, pattern: RegExp) => assert.throws(f, (e) => isCarveError(e) && pattern.test((e as Error).message));
  err(() => parseFractions('0,-0.1,1', '--fractions'), /fraction -0\.1 is outside \[0, 1\]/);
  err(() => parseFractions('0,half,1', '--fractions'), /"half" is not a number/);
  err(() => parseFractions('0.5', '--fractions'), /at least two fractions/);
  err(() => parseFractions('0,0.5,0.5', '--fractions'), /must increase/);
  assert.deepEqual(parseFractions('0, 0.25,1', '--fractions'), [0, 0.25, 1]);
  err(() => readScanScores(join(dir, 'missing.json')), /missing\.json: cannot read the scan/);
  const cfg = loadModelDir(modelDir).config;
  const scan = readScanScores(edgeScan);
  assert.equal(scan.level, 'edges');
  err(() => scoresInOrder(cfg, { ...scan, entries: scan.entries.slice(1) }, 'x.json'), /x\.json: lists 45 of the model's 46 edges/);
  err(() => scoresInOrder(cfg, { ...scan, entries: [...scan.entries.slice(1), scan.entries[2]] }, 'x.json'), /x\.json: edges\[45\]: input->L0H0<k> is listed twice/);
  err(() => scoresInOrder(cfg, { ...scan, entries: [{ name: 'L0H1 to logits', score: 0 }, ...scan.entries.slice(1)] }, 'x.json'), /not an edge name/);
  const comp = readScanScores(compScan);
  assert.equal(comp.level, 'components');
  err(() => scoresInOrder(cfg, { ...comp, entries: [{ name: 'L7H0', score: 1 }, ...comp.entries.slice(1)] }, 'c.json'), /c\.json: components\[0\]\.name: the model has no component L7H0/);
});

test('carve prune --order acdc --level edges; other orders are refused on edges', async () => {
  const out = join(dir, 'acdc.json');
  const r = await carve(['prune', ...common, '--order', 'acdc', '--level', 'edges', '--threshold', '0.05', '--ablation', 'resample', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(o.level, 'edges');
  assert.equal(o.n_kept + o.steps.length - 1, 46);
  assert.equal(o.steps[0].edge, null);
  await userError(['prune', ...common, '--order', 'greedy', '--level', 'edges', '--out', join(dir, 'no.json')], /--level edges: only --order acdc/, join(dir, 'no.json'));
});
