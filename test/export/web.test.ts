import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadModelDir, saveModelDir } from '../../src/model/load.ts';
import { trimModel } from '../../src/compress/trim-vocab.ts';
import { ioiVocabulary } from '../../src/task/vocab.ts';
import { BOS_ID, encode } from '../../src/tokenizer/gpt2.ts';
import { ORT_WEB_VERSION, WEB_FILES } from '../../src/export/web.ts';
import { carveHere, ROOT } from '../helpers/cli.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function ortWebInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('onnxruntime-web');
    return true;
  } catch {
    return false;
  }
}

/** Skips the test (saying why) when Chromium or onnxruntime-web is missing. */
function cannotRun(t: { skip: (message: string) => void }): boolean {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not found: install it with "apt-get install -y chromium" to run this test`);
    return true;
  }
  if (!ortWebInstalled()) {
    t.skip(`the npm package onnxruntime-web is not installed (npm install onnxruntime-web@${ORT_WEB_VERSION}): the page cannot be exported`);
    return true;
  }
  return false;
}

test("the exported web page runs offline in headless Chromium and predicts carve run's top token", async (t) => {
  if (cannotRun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'carve-web-'));
  try {
    const v = ioiVocabulary(encode, BOS_ID);
    const model = join(dir, 'model');
    saveModelDir(model, trimModel(loadModelDir(join(ROOT, 'models', 'toy-ioi')), { keep: v.tokens, maxLen: v.maxLen }));
    const web = join(dir, 'web');
    const exp = await carveHere(['export', '--model', model, '--format', 'web', '--dtype', 'f16', '--n', '3', '--seed', '5', '--out', web]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.deepEqual(readdirSync(web).sort(), [...WEB_FILES].sort());

    const prompts = ['Then, Alice and Kevin were working at the school. Kevin decided to give a ring to', '<|endoftext|>After the lunch, Sarah and Jack went to the house. Jack gave a snack to'];
    const expected: { id: number; prob: number }[] = [];
    for (const [i, p] of prompts.entries()) {
      const out = join(dir, `run-${i}.json`);
      const r = await carveHere(['run', '--model', model, '--prompt', p, '--top', '1', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      expected.push(JSON.parse(readFileSync(out, 'utf8')).top[0]);
    }

    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const external: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('request', (r) => { if (!/^(file|blob|data):/.test(r.url())) external.push(r.url()); });
      await page.goto(pathToFileURL(join(web, 'index.html')).href);
      // The page predicts after its example prompt as soon as the model is loaded.
      await page.waitForFunction(() => document.body.dataset.runs === '1' || document.body.dataset.state === 'error', null, { timeout: 120_000 });
      assert.equal(await page.getAttribute('body', 'data-state'), 'ready', (await page.textContent('#status')) ?? '');
      for (const [i, p] of prompts.entries()) {
        await page.fill('#prompt', p);
        await page.click('#run');
        await page.waitForFunction((n) => document.body.dataset.runs === String(n), i + 2, { timeout: 30_000 });
        assert.equal(Number(await page.getAttribute('#top-token', 'data-id')), expected[i].id, `prompt ${i}`);
        const shown = Number(((await page.textContent('#top-prob')) ?? '').replace('%', '')) / 100;
        assert.ok(Math.abs(shown - expected[i].prob) < 0.002, `prompt ${i}: p ${shown} vs ${expected[i].prob}`);
        // The task's answers are listed with their probabilities, the most likely first.
        const answers = await page.$$eval('#answers tbody tr', (rows) => rows.map((r) => Number(r.children[1].textContent)));
        assert.equal(answers[0], expected[i].id);
      }
      // A token outside the kept vocabulary is named, and no prediction stays on screen.
      await page.fill('#prompt', 'When Mary and John went to Gandalf');
      await page.click('#run');
      await page.waitForFunction(() => document.body.dataset.state === 'error', null, { timeout: 10_000 });
      assert.match((await page.textContent('#status')) ?? '', /token \d+ \(" Gand"\) is not in the model's vocabulary/);
      assert.equal(await page.textContent('#top-token'), '');
      assert.deepEqual(errors, []);
      assert.deepEqual(external, [], 'the page fetches nothing from the network');
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a model with its own tokenizer.json (toy-ioi-llama): the page tokenises through it and predicts carve run's top token", async (t) => {
  if (cannotRun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'carve-web-hf-'));
  try {
    const web = join(dir, 'web');
    const exp = await carveHere(['export', '--model', 'toy-ioi-llama', '--format', 'web', '--n', '2', '--seed', '5', '--out', web]);
    assert.equal(exp.code, 0, exp.stderr);
    const prompts = ['Then, Alice and Kevin were working at the school. Kevin decided to give a ring to', '<|endoftext|>After the lunch, Sarah and Jack went to the house. Jack gave a snack to'];
    const expected: { id: number; prob: number }[] = [];
    for (const [i, p] of prompts.entries()) {
      const out = join(dir, `run-${i}.json`);
      const r = await carveHere(['run', '--model', 'toy-ioi-llama', '--prompt', p, '--top', '1', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      expected.push(JSON.parse(readFileSync(out, 'utf8')).top[0]);
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      await page.goto(pathToFileURL(join(web, 'index.html')).href);
      await page.waitForFunction(() => document.body.dataset.runs === '1' || document.body.dataset.state === 'error', null, { timeout: 120_000 });
      assert.equal(await page.getAttribute('body', 'data-state'), 'ready', (await page.textContent('#status')) ?? '');
      for (const [i, p] of prompts.entries()) {
        await page.fill('#prompt', p);
        await page.click('#run');
        await page.waitForFunction((n) => document.body.dataset.runs === String(n), i + 2, { timeout: 30_000 });
        assert.equal(Number(await page.getAttribute('#top-token', 'data-id')), expected[i].id, `prompt ${i}`);
        const shown = Number(((await page.textContent('#top-prob')) ?? '').replace('%', '')) / 100;
        assert.ok(Math.abs(shown - expected[i].prob) < 0.002, `prompt ${i}: p ${shown} vs ${expected[i].prob}`);
        // The prompt's chips start with BOS, once, as the tokenizer's post-processor says.
        const chips = await page.$$eval('#tokens .chip', (els) => els.map((e) => e.getAttribute('title')));
        assert.equal(chips[0], 'token 0');
        assert.notEqual(chips[1], 'token 0');
      }
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
