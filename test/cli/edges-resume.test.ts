/**
 * `--out FILE --resume` for the long edge runs on the command line, on the embedded toy-ioi model
 * (262 edges): `carve scan --level edges --method exact` and `carve prune --order acdc --level
 * edges`. A partial file as an interrupted run leaves it (made through the library with the CLI's
 * model and task) is continued to the uninterrupted output, byte for byte, and then removed; bad
 * uses are one `carve: error:` line, exit 2, no output, the partial file kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertUserError, carveHere as carve, type CliResult } from '../helpers/cli.ts';
import { interruptedAfter } from '../helpers/resume.ts';
import { loadModelAndTokenizer } from '../../src/cli/common.ts';
import { taskFromOptions } from '../../src/cli/task-options.ts';
import { partialPath, partialWriter } from '../../src/cli/resume.ts';
import { scanEdges } from '../../src/discover/edge-scan.ts';
import { edgeAcdc } from '../../src/discover/edge-acdc.ts';
import type { EdgeAcdcCheckpoint, EdgeScanCheckpoint } from '../../src/discover/edge-checkpoint.ts';

const dir = mkdtempSync(join(tmpdir(), 'carve-edges-resume-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const common = ['--n', '8', '--ablation', 'resample'];
const SCAN = ['scan', '--level', 'edges', '--method', 'exact', ...common];
const ACDC = ['prune', '--order', 'acdc', '--level', 'edges', '--threshold', '0.1', ...common];

/** The model and task the commands above run on, as the CLI builds them. */
async function cliModelAndTask() {
  const { model, tokenizer } = await loadModelAndTokenizer({});
  const task = taskFromOptions({ n: 8 }, { nCtx: model.config.nCtx, requireEqualLengths: true }, tokenizer);
  return { model, task };
}

const userError = assertUserError;

async function ok(args: string[]): Promise<CliResult> {
  const r = await carve(args);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

test('carve scan --level edges --method exact --resume continues an interrupted scan to the same bytes', async () => {
  const full = join(dir, 'scan-full.json');
  await ok([...SCAN, '--out', full]);
  const { model, task } = await cliModelAndTask();
  // Blocks of 128 edges: the partial after the first of three.
  const cp = await interruptedAfter<EdgeScanCheckpoint>((hooks) => scanEdges(model, task, { ablation: 'resample', method: 'exact', ...hooks }), 1);
  assert.equal(cp.scored.length, 128);
  const out = join(dir, 'scan-resumed.json');
  writeFileSync(partialPath(out), JSON.stringify(cp));
  const r = await ok([...SCAN, '--out', out, '--resume']);
  assert.match(r.stderr, /resuming from .*scan-resumed\.json\.partial\.json \(128 edges scored so far\)/);
  assert.match(r.stderr, /exact scan of the remaining 134 edges × 8 prompts: about/);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(full, 'utf8'));
  assert.ok(!existsSync(partialPath(out)), 'the partial file is removed once the output is written');

  // Bad partial files: refused before any work, the file kept.
  const bad = join(dir, 'scan-bad.json');
  const partial = partialPath(bad);
  writeFileSync(partial, JSON.stringify(cp));
  userError(await carve([...SCAN, '--metric', 'kl', '--out', bad, '--resume']), /scan-bad\.json\.partial\.json: made with other options \(metric: "logit-diff" there, "kl" now\); run without --resume to start over/, bad);
  userError(await carve([...SCAN, '--n', '7', '--out', bad, '--resume']), /made for a different model or task \(fingerprint mismatch\)/, bad);
  writeFileSync(partial, JSON.stringify({ ...cp, scored: cp.scored.slice(0, 100) }));
  userError(await carve([...SCAN, '--out', bad, '--resume']), /100 edges scored: expected whole blocks of 128/, bad);
  writeFileSync(partial, '{"format": "carve-edge-scan-partial", "scored": [');
  userError(await carve([...SCAN, '--out', bad, '--resume']), /scan-bad\.json\.partial\.json: cannot read the partial result/, bad);
  writeFileSync(partial, JSON.stringify({ ...cp, format: 'carve-prune-partial' }));
  userError(await carve([...SCAN, '--out', bad, '--resume']), /not a carve exact edge scan partial result/, bad);
  assert.ok(existsSync(partial), 'a refused partial file is kept');
  // Without --resume the stale partial file is replaced, then removed.
  await ok([...SCAN, '--out', bad]);
  assert.ok(existsSync(bad) && !existsSync(partial));
});

test('carve prune --order acdc --level edges --resume continues interrupted decisions to the same bytes', async () => {
  const full = join(dir, 'acdc-full.json');
  await ok([...ACDC, '--out', full]);
  const { model, task } = await cliModelAndTask();
  const cp = await interruptedAfter<EdgeAcdcCheckpoint>((hooks) => edgeAcdc(model, task, { ablation: 'resample', threshold: 0.1, ...hooks }), 5);
  const out = join(dir, 'acdc-resumed.json');
  writeFileSync(partialPath(out), JSON.stringify(cp));
  const r = await ok([...ACDC, '--out', out, '--resume']);
  assert.match(r.stderr, new RegExp(`resuming from .*acdc-resumed\\.json\\.partial\\.json \\(${cp.visited} edges visited, ${cp.steps.length - 1} removed so far\\)`));
  assert.equal(readFileSync(out, 'utf8'), readFileSync(full, 'utf8'));
  assert.ok(!existsSync(partialPath(out)));

  const bad = join(dir, 'acdc-bad.json');
  writeFileSync(partialPath(bad), JSON.stringify(cp));
  userError(await carve([...ACDC, '--threshold', '0.2', '--out', bad, '--resume']), /acdc-bad\.json\.partial\.json: made with other options \(threshold: 0\.1 there, 0\.2 now\)/, bad);
  writeFileSync(partialPath(bad), JSON.stringify({ ...cp, visited: 'many' }));
  userError(await carve([...ACDC, '--out', bad, '--resume']), /"visited" must be a non-negative integer/, bad);
});

test('--resume without --out, or on a scan that does not checkpoint, is one error line; with no partial file the run starts over', async () => {
  const out = join(dir, 'never.json');
  userError(await carve([...SCAN, '--resume']), /--resume needs --out FILE: the partial result lives in FILE\.partial\.json/, out);
  userError(await carve([...ACDC, '--resume']), /--resume needs --out FILE/, out);
  userError(await carve(['scan', ...common, '--out', out, '--resume']), /--resume: only the exact edge scan \(--level edges --method exact\)/, out);
  userError(await carve(['scan', '--level', 'edges', '--method', 'attribution', ...common, '--out', out, '--resume']), /--resume: only the exact edge scan/, out);

  const fresh = join(dir, 'acdc-fresh.json');
  const r = await ok([...ACDC, '--out', fresh, '--resume']);
  assert.match(r.stderr, /carve: no .*acdc-fresh\.json\.partial\.json to resume from; starting from the beginning/);
  assert.equal(readFileSync(fresh, 'utf8'), readFileSync(join(dir, 'acdc-full.json'), 'utf8'));
});

test('the partial writer writes atomically, and with an interval at most that often', () => {
  const path = join(dir, 'w', 'x.partial.json');
  const every = partialWriter<object>(path)!;
  every({ a: 1 });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 1 });
  every({ a: 2 });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2 });
  const seldom = partialWriter<object>(path, 3600)!;
  seldom({ a: 3 });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2 }, 'not due yet');
  assert.deepEqual(readdirSync(join(dir, 'w')), ['x.partial.json'], 'no temporary file left');
  assert.equal(partialWriter(undefined), undefined);
});
