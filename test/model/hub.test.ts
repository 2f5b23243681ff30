import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CarveError } from '../../src/util/errors.ts';
import { resolveModel, hfHubCacheDir, isPlausibleHubId, repoRoot } from '../../src/model/hub.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { makeRandomGpt2 } from '../helpers/random-gpt2.ts';
import { randomHfModel, writeHfModelDir } from '../helpers/hf-random.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-hub-'));
const savedEnv = { ...process.env };
test.after(() => {
  rmSync(tmp, { recursive: true, force: true });
  process.env = savedEnv;
});
test.beforeEach(() => {
  process.env = { ...savedEnv };
  delete process.env.HF_HUB_OFFLINE;
});

const small = { nLayer: 1, nHead: 2, dModel: 8, nCtx: 8, vocabSize: 20, seed: 11 };
const sha = 'a'.repeat(40);

/** A cache entry laid out as huggingface_hub writes it: snapshot files are relative symlinks into blobs/. */
function fakeCacheEntry(cache: string, id: string, withRef = true) {
  const src = makeRandomGpt2(join(tmp, 'src-' + id.replace('/', '_')), small);
  const repo = join(cache, `models--${id.replace('/', '--')}`);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(join(repo, 'snapshots', sha), { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) {
    const bytes = readFileSync(join(src, f));
    const blob = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(repo, 'blobs', blob), bytes);
    symlinkSync(join('..', '..', 'blobs', blob), join(repo, 'snapshots', sha, f));
  }
  if (withRef) {
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), sha);
  }
  return join(repo, 'snapshots', sha);
}

const offlineFetch = (async () => {
  throw new TypeError('fetch failed', { cause: Object.assign(new Error('getaddrinfo ENOTFOUND huggingface.co'), { code: 'ENOTFOUND' }) });
}) as typeof fetch;

function expectError(p: Promise<unknown>, ...patterns: RegExp[]) {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CarveError, `expected CarveError, got ${e}`);
    for (const pat of patterns) assert.match(e.message, pat);
    return true;
  });
}

test('cache directory precedence', () => {
  assert.equal(hfHubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
  assert.equal(hfHubCacheDir({ HF_HOME: '/b' }), '/b/hub');
  assert.equal(hfHubCacheDir({ HOME: '/h', XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
  assert.match(hfHubCacheDir({}), /\.cache\/huggingface\/hub$/);
});

test('hub id plausibility', () => {
  for (const ok of ['gpt2', 'openai-community/gpt2', 'distilgpt2', 'gpt2-medium', 'EleutherAI/gpt-neo-125m', 'a.b_c']) {
    assert.ok(isPlausibleHubId(ok), ok);
  }
  for (const bad of ['./missing-dir', 'foo/bar/baz', '../x', '/abs/path', '~/m', 'a--b', 'a/', '', 'x y', 'a..b']) {
    assert.ok(!isPlausibleHubId(bad), bad);
  }
});

test('directories, missing paths and files', async () => {
  const dir = makeRandomGpt2(join(tmp, 'local'), small);
  assert.deepEqual(await resolveModel(dir), { dir, name: dir });
  await expectError(resolveModel('./missing-dir'), /no such model directory/, /\.\/missing-dir/);
  await expectError(resolveModel('foo/bar/baz'), /no such model directory/);
  await expectError(resolveModel(join(dir, 'config.json')), /not a model directory/);
});

test('toy-ioi resolves into the repository, or says the embedded model is missing', async () => {
  const where = join(repoRoot(), 'models', 'toy-ioi');
  assert.ok(existsSync(join(repoRoot(), 'package.json')));
  if (existsSync(join(where, 'model.safetensors'))) {
    assert.deepEqual(await resolveModel('toy-ioi'), { dir: where, name: 'toy-ioi' });
  } else {
    await expectError(resolveModel('toy-ioi'), /embedded model 'toy-ioi' is missing/, /models\/toy-ioi/);
  }
});

test('a hub id is found in the cache offline, through symlinks, and loads', async () => {
  const cache = join(tmp, 'cache1');
  const snap = fakeCacheEntry(cache, 'openai-community/gpt2');
  process.env.HF_HUB_CACHE = cache;
  let fetched = false;
  const r = await resolveModel('openai-community/gpt2', { fetch: (async () => { fetched = true; throw new Error('no'); }) as typeof fetch });
  assert.equal(fetched, false);
  assert.equal(r.name, 'openai-community/gpt2');
  assert.equal(r.dir, realpathSync(snap));
  assert.ok(lstatSync(join(r.dir, 'model.safetensors')).isSymbolicLink());
  const m = loadModelDir(r.dir, r.name);
  assert.equal(m.name, 'openai-community/gpt2');
  assert.equal(m.config.nHead, 2);

  // HF_HOME/hub is used when HF_HUB_CACHE is not set; a snapshot without refs/main is still found.
  const home = join(tmp, 'home');
  fakeCacheEntry(join(home, 'hub'), 'gpt2', false);
  delete process.env.HF_HUB_CACHE;
  process.env.HF_HOME = home;
  const r2 = await resolveModel('gpt2', { fetch: offlineFetch });
  assert.equal(r2.dir, realpathSync(join(home, 'hub', 'models--gpt2', 'snapshots', sha)));
});

test('offline and not cached: one clear CarveError', async () => {
  const cache = join(tmp, 'empty-cache');
  process.env.HF_HUB_CACHE = cache;
  await expectError(
    resolveModel('distilgpt2', { fetch: offlineFetch, log: () => {} }),
    /model 'distilgpt2' is not in the Hugging Face cache at .*empty-cache and could not be downloaded/,
    /ENOTFOUND/,
    /copy it there or pass a directory/,
  );
  process.env.HF_HUB_OFFLINE = '1';
  await expectError(resolveModel('gpt2-medium', { fetch: offlineFetch }), /HF_HUB_OFFLINE/);
  // A broken (dangling) snapshot is not taken for a model.
  const snap = fakeCacheEntry(cache, 'gpt2');
  rmSync(join(cache, 'models--gpt2', 'blobs'), { recursive: true });
  assert.ok(lstatSync(join(snap, 'config.json')).isSymbolicLink());
  await expectError(resolveModel('gpt2', { fetch: offlineFetch }), /not in the Hugging Face cache/);
});

/** A fake hub serving the given repositories (id → files) at one commit each, as the hub's API does. */
function fakeHub(repos: Record<string, Record<string, Buffer>>, commit: string, calls: string[]): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    calls.push(`${init?.method ?? 'GET'} ${url.pathname}`);
    const json = (v: unknown) => new Response(JSON.stringify(v), { headers: { 'content-type': 'application/json' } });
    const info = (files: Record<string, Buffer>, p: string) => ({ type: 'file', path: p, size: files[p]!.length, oid: createHash('sha1').update(files[p]!).digest('hex') });
    for (const [id, files] of Object.entries(repos)) {
      if (url.pathname === `/api/models/${id}/revision/main`) return json({ _id: 'x', id, sha: commit, private: false, lastModified: '2024-01-01T00:00:00Z' });
      if (url.pathname === `/api/models/${id}/tree/${commit}`) return json(Object.keys(files).map((p) => info(files, p)));
      if (url.pathname === `/api/models/${id}/paths-info/${commit}`) {
        const { paths } = JSON.parse(String(init!.body)) as { paths: string[] };
        return json(paths.filter((p) => files[p]).map((p) => info(files, p)));
      }
      const m = new RegExp(`^/${id}/resolve/([0-9a-f]{40})/(.+)$`).exec(url.pathname);
      if (m && m[1] === commit && files[m[2]!]) {
        const body = files[m[2]!]!;
        const range = new Headers(init?.headers).get('range');
        const etag = `"${createHash('sha256').update(body).digest('hex')}"`;
        if (range) {
          const [a, b] = range.replace('bytes=', '').split('-').map(Number) as [number, number];
          return new Response(new Uint8Array(body.subarray(a, b + 1)), {
            status: 206,
            headers: { 'content-range': `bytes ${a}-${b}/${body.length}`, etag, 'content-length': String(b + 1 - a) },
          });
        }
        return new Response(new Uint8Array(body), { headers: { etag, 'content-length': String(body.length) } });
      }
    }
    return new Response('not found', { status: 404 });
  }) as typeof fetch;
}

test('download into the cache from a (fake) hub, then offline reuse', async () => {
  const cache = join(tmp, 'dl-cache');
  process.env.HF_HUB_CACHE = cache;
  const src = makeRandomGpt2(join(tmp, 'hub-src'), small);
  const files: Record<string, Buffer> = {
    'config.json': readFileSync(join(src, 'config.json')),
    'model.safetensors': readFileSync(join(src, 'model.safetensors')),
    'README.md': Buffer.from('not fetched'),
    // The tokenizer comes along when the repository has one (tokenizer_config.json: it has not).
    'tokenizer.json': Buffer.from(JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } })),
  };
  const commit = 'b'.repeat(40);
  const hub = 'https://fake-hub.test';
  const calls: string[] = [];
  const fakeFetch = fakeHub({ 'tiny/gpt2': files }, commit, calls);

  const logs: string[] = [];
  const r = await resolveModel('tiny/gpt2', { fetch: fakeFetch, hubUrl: hub, log: (s) => logs.push(s) });
  assert.equal(r.dir, realpathSync(join(cache, 'models--tiny--gpt2', 'snapshots', commit)));
  assert.equal(readFileSync(join(cache, 'models--tiny--gpt2', 'refs', 'main'), 'utf8'), commit);
  assert.ok(lstatSync(join(r.dir, 'model.safetensors')).isSymbolicLink());
  assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), files['model.safetensors']);
  assert.equal(logs.length, 3);
  assert.ok(!existsSync(join(r.dir, 'README.md')));
  assert.deepEqual(readFileSync(join(r.dir, 'tokenizer.json')), files['tokenizer.json']);
  assert.ok(!existsSync(join(r.dir, 'tokenizer_config.json')));
  assert.equal(loadModelDir(r.dir).config.vocabSize, 20);

  // Second time: straight from the cache, no network.
  const n = calls.length;
  const again = await resolveModel('tiny/gpt2', { fetch: offlineFetch, hubUrl: hub });
  assert.equal(again.dir, r.dir);
  assert.equal(calls.length, n);

  // A repository the hub does not know is reported with the hub's reason.
  await expectError(resolveModel('tiny/other', { fetch: fakeFetch, hubUrl: hub, log: () => {} }), /'tiny\/other' is not in the Hugging Face cache/);
});

test('a sharded checkpoint downloads its index, every shard and the tokenizer files; an incomplete snapshot is not used', async () => {
  const cache = join(tmp, 'dl-cache-sharded');
  process.env.HF_HUB_CACHE = cache;
  const srcDir = join(tmp, 'hub-src-llama');
  const model = randomHfModel({ arch: 'llama', nLayer: 2, nHead: 4, nKvHead: 2, dModel: 16, vocab: 32, seed: 5 });
  const written = writeHfModelDir(srcDir, model, { shards: 3 });
  writeFileSync(join(srcDir, 'tokenizer.json'), '{"version": "1.0"}');
  const files: Record<string, Buffer> = {};
  for (const f of [...written, 'tokenizer.json']) files[f] = readFileSync(join(srcDir, f));
  const commit = 'c'.repeat(40);
  const calls: string[] = [];
  const logs: string[] = [];
  const r = await resolveModel('tiny/llama', { fetch: fakeHub({ 'tiny/llama': files }, commit, calls), hubUrl: 'https://fake-hub.test', log: (s) => logs.push(s) });
  for (const f of Object.keys(files)) assert.deepEqual(readFileSync(join(r.dir, f)), files[f], f);
  assert.equal(logs.length, Object.keys(files).length);
  assert.equal(loadModelDir(r.dir).config.arch, 'llama');
  // A shard missing from the snapshot: the snapshot is incomplete, so offline it is not found.
  rmSync(join(r.dir, 'model-00002-of-00003.safetensors'));
  process.env.HF_HUB_OFFLINE = '1';
  await expectError(resolveModel('tiny/llama'), /not in the Hugging Face cache/, /HF_HUB_OFFLINE/);
});