/**
 * The explore page in headless Chromium (Debian's, driven by playwright-core, as test/report does),
 * on toy-ioi with a real run directory made here: click a head away and the metric the page shows is
 * what `carve eval` gives on the model compressed without that head; open attention views; pick a
 * pruning step from a curve; no console errors, no request leaves the server.
 * The harness leaves a screenshot in .test-out/explore/explore.png, and writes docs/explore.png (the
 * README's picture) when that is missing or CARVE_UPDATE_SCREENSHOTS=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { HookedModel } from '../../src/model/hooked.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { cleanMetrics, scan } from '../../src/discover/scan.ts';
import { mean } from '../../src/task/metrics.ts';
import { pruneOrder } from '../../src/discover/prune.ts';
import { computeReplacements } from '../../src/discover/replacements.ts';
import { canonicalOrder, findComponent, listComponents } from '../../src/discover/components.ts';
import { pruneModel } from '../../src/compress/prune-model.ts';
import { evaluateModel } from '../../src/cli/eval.ts';
import { loadRun } from '../../src/report/load-run.ts';
import { engine, freshDir, OUT_ROOT, REPO, serve, toySession, TOY_DIR } from './helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const N = 25;

test('explore page: remove a head, the metric equals carve eval of the model without it; attention views; curves', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not found: install it with "apt-get install -y chromium" to run this test`);
    return;
  }
  // A real run directory: an exact and an attribution scan, two pruning orders.
  const runDir = freshDir('browser-run');
  const outDir = freshDir('browser-out');
  const session0 = toySession(N);
  const { model, task } = session0;
  const exact = await scan(model, task, { ablation: 'mean', method: 'exact', components: 'all' });
  writeFileSync(join(runDir, 'scan-exact-mean.json'), JSON.stringify(exact));
  writeFileSync(join(runDir, 'scan-attribution-mean.json'), JSON.stringify(await scan(model, task, { ablation: 'mean', method: 'attribution', components: 'all' })));
  const greedy = await pruneOrder(model, task, { order: 'greedy', ablation: 'mean' });
  writeFileSync(join(runDir, 'prune-greedy-mean.json'), JSON.stringify(greedy));
  writeFileSync(join(runDir, 'prune-scores-mean.json'), JSON.stringify(await pruneOrder(model, task, { order: 'scores', ablation: 'mean' })));

  // Relative, as a user would type it (the page shows it).
  const session = toySession(N, { outDir: relative(process.cwd(), outDir), run: loadRun(runDir) });
  const server = await serve(session);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1480, height: 1000 } });
    const errors: string[] = [];
    const foreign: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => {
      if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    await page.goto(server.url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });

    // The grid: every component, coloured by the run's exact scan.
    assert.equal(await page.locator('button.cell').count(), listComponents(model.config).length);
    assert.equal(await page.inputValue('#scan-select'), 'run:scan-exact-mean.json');

    // Click the head the task needs most (by the exact scan): the metric moves to carve eval's.
    const head = exact.components.filter((c) => c.head !== null).sort((a, b) => a.score - b.score)[0].name;
    const started = Date.now();
    await page.click(`button.cell[data-name="${head}"]`);
    await page.waitForSelector(`#metric[data-removed="${head}"]`, { timeout: 10_000 });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `the metric updated in ${elapsed} ms`);
    assert.equal(await page.getAttribute(`button.cell[data-name="${head}"]`, 'aria-pressed'), 'true');
    const shown = Number(await page.getAttribute('#metric', 'data-value'));
    const shownText = (await page.textContent('#metric')) ?? '';

    const loaded = loadModelDir(TOY_DIR, 'toy-ioi');
    const repl = await computeReplacements(new HookedModel(loaded, engine), task, 'mean');
    const keep = new Set(listComponents(loaded.config).map((c) => c.name).filter((n) => n !== head));
    const evaluated = await evaluateModel(new HookedModel(pruneModel(loaded, keep, repl, 'mean'), engine), task, { batchSize: 64, repeats: 0 });
    assert.ok(Math.abs(shown - evaluated.metric) < 1e-3, `page ${shown} vs carve eval ${evaluated.metric}`);
    assert.equal(shownText.split(' ')[0].replace('\u2212', '-'), evaluated.metric.toFixed(4), 'the displayed digits');
    assert.equal(await page.textContent('#accuracy'), `${(100 * evaluated.accuracy).toFixed(1)}%`);
    assert.ok(Math.abs(evaluated.metric - exact.clean_metric) > 0.5, 'removing it matters');
    assert.equal(await page.locator('#bars g.bar').count(), N, 'one bar per prompt');

    // Attention: by the selects, then by alt-clicking a head; then another prompt.
    await page.selectOption('#att-layer', '1');
    await page.selectOption('#att-head', '2');
    await page.waitForSelector('#attention[data-layer="1"][data-head="2"] svg');
    const T0 = task.pairs[0].clean.length;
    assert.equal(await page.locator('#attention .att-cell').count(), T0 * T0);
    assert.equal(await page.locator('#attention .query-label').count(), T0, 'tokens on the axes');
    const m = /^L(\d+)H(\d+)$/.exec(head)!;
    await page.click(`button.cell[data-name="${head}"]`, { modifiers: ['Alt'] });
    await page.waitForSelector(`#attention[data-layer="${m[1]}"][data-head="${m[2]}"] svg`);
    assert.equal(await page.getAttribute(`button.cell[data-name="${head}"]`, 'aria-pressed'), 'true', 'alt-click does not toggle');
    await page.click('#prompts li[data-index="4"]');
    await page.waitForSelector(`#attention[data-prompt="4"][data-layer="${m[1]}"] svg`);
    const T4 = task.pairs[4].clean.length;
    assert.equal(await page.locator('#attention .att-cell').count(), T4 * T4);
    const firstKey = await page.locator('#attention .key-label').first().textContent();
    assert.equal(firstKey, session.prompts()[4].tokens[0]);

    // A pruning curve's point sets the removed set to that step: the page's metric is the step's.
    const k = 4;
    // Points of different curves can sit on top of each other: click this one itself.
    await page.locator(`#curves circle.curve-point[data-series="0"][data-x="${k}"]`).dispatchEvent('click');
    const names = canonicalOrder(model.config, greedy.steps.slice(1, k + 1).map((s) => findComponent(model.config, s.component!, 'test'))).map((c) => c.name);
    await page.waitForSelector(`#metric[data-removed="${names.join(',')}"]`);
    const stepMetric = Number(await page.getAttribute('#metric', 'data-value'));
    assert.ok(Math.abs(stepMetric - greedy.steps[k].metric) < 1e-4, `curve step ${greedy.steps[k].metric} vs page ${stepMetric}`);
    assert.equal(await page.locator('button.cell.removed').count(), k);
    assert.match((await page.textContent('#status')) ?? '', /first 4 components of prune-greedy-mean\.json/);

    // Back to one removed head for the picture, with its attention beside it.
    await page.click('#restore-all');
    await page.waitForSelector('#metric[data-removed=""]');
    await page.click(`button.cell[data-name="${head}"]`);
    await page.waitForSelector(`#metric[data-removed="${head}"]`);
    await page.click('#prompts li[data-index="0"]');
    await page.waitForSelector(`#attention[data-prompt="0"][data-layer="${m[1]}"] svg`);

    // The buttons write the keep file and the compressed model under --out-dir.
    await page.click('#save-keep');
    await page.waitForSelector('#status.ok');
    const kept = JSON.parse(readFileSync(join(outDir, 'keep.json'), 'utf8')) as string[];
    assert.deepEqual(kept, [...keep]);
    await page.click('#compress');
    await page.waitForFunction(() => /wrote .*compressed/.test(document.getElementById('status')?.textContent ?? ''));
    const small = new HookedModel(loadModelDir(join(outDir, 'compressed')), engine);
    assert.ok(Math.abs(mean((await cleanMetrics(small, task, 64)).metrics) - evaluated.metric) < 1e-5, 'the written model is the one evaluated');
    await page.mouse.move(0, 0);
    mkdirSync(OUT_ROOT, { recursive: true });
    const shot = join(OUT_ROOT, 'explore.png');
    await page.screenshot({ path: shot, fullPage: false });
    const docs = join(REPO, 'docs', 'explore.png');
    if (!existsSync(docs) || process.env.CARVE_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(join(REPO, 'docs'), { recursive: true });
      copyFileSync(shot, docs);
    }

    assert.deepEqual(errors, []);
    assert.deepEqual(foreign, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
