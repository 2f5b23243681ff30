import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeReport } from '../../src/report/index.ts';
import { highlightNames, escapeHtml, scopeSvgIds } from '../../src/report/html.ts';
import { CarveError } from '../../src/util/errors.ts';
import { OUT_ROOT, emptyDir, freshRun } from './helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

test('escaping helpers', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(
    highlightNames('When Mary and John met, John gave <b>Mary</b> a drink', [{ name: 'Mary', cls: 'io' }, { name: ' John', cls: 's' }]),
    'When <mark class="io">Mary</mark> and <mark class="s">John</mark> met, <mark class="s">John</mark> gave &lt;b&gt;<mark class="io">Mary</mark>&lt;/b&gt; a drink',
  );
  // A name is a whole word: "Ann" must not light up inside "Anna".
  assert.equal(highlightNames('Anna and Ann', [{ name: 'Ann', cls: 'io' }]), 'Anna and <mark class="io">Ann</mark>');
  // A hostile name is escaped inside its <mark> too.
  assert.equal(highlightNames('hi <i>', [{ name: '<i>', cls: 's' }]), 'hi <mark class="s">&lt;i&gt;</mark>');
  assert.equal(scopeSvgIds('<g id="clip0"><path clip-path="url(#clip0)" fill="url(#other)"/></g>', 'f1-'), '<g id="f1-clip0"><path clip-path="url(#f1-clip0)" fill="url(#other)"/></g>');
});

test('writeReport writes the page and every figure as SVG and PNG; user text is escaped', async () => {
  const dir = freshRun('report');
  const result = await writeReport(dir);
  assert.equal(result.html, join(dir, 'report.html'));
  // 9 figures from the run's files and 4 attention patterns (toy-ioi, which the scans name, is in the repo).
  assert.equal(result.figures.length, 26);
  for (const f of result.figures) assert.ok(existsSync(f), f);
  assert.deepEqual(readdirSync(join(dir, 'figures')).sort(), result.figures.map((f) => f.slice(join(dir, 'figures').length + 1)).sort());

  const html = readFileSync(result.html, 'utf8');
  // The prompt with a script in it shows as text; the only script is the page's own.
  assert.ok(html.includes('drink to &lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.equal((html.match(/<script>/g) ?? []).length, 1);
  assert.ok(!/<script[^>]*\ssrc=|<link[^>]*\shref=|@import|url\(["']?https?:/i.test(html), 'no external resources');
  assert.equal((html.match(/<svg /g) ?? []).length, 13, 'every figure inlined');
  assert.match(html, /<section id="attention">/);
  assert.ok(html.includes('<mark class="io">Mary</mark>'));
  assert.match(html, /model <b>toy-ioi<\/b>/);

  // A second report with fewer inputs leaves no stale figures behind.
  for (const f of readdirSync(dir)) if (f.startsWith('scan-ig')) writeFileSync(join(dir, f), '{}');
  const again = await writeReport(dir);
  assert.equal(again.figures.length, 22, "its heatmap and its scatter are gone");
  assert.equal(readdirSync(join(dir, "figures")).length, 22);
});

test('writeReport on an empty directory is a user error and writes nothing', async () => {
  const dir = emptyDir('report-empty');
  await assert.rejects(writeReport(dir), CarveError);
  assert.deepEqual(readdirSync(dir), []);
});

test('report.html renders in headless Chromium with every figure and no errors', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not found: install it with "apt-get install -y chromium" to run this test`);
    return;
  }
  const dir = freshRun('report-browser');
  const result = await writeReport(dir);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    const external: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => { errors.push(`dialog: ${d.message()}`); void d.dismiss(); });
    page.on('request', (r) => { if (!r.url().startsWith('file:')) external.push(r.url()); });
    await page.goto(pathToFileURL(result.html).href, { waitUntil: 'load' });

    const sizes = await page.$$eval('figure .fig > svg', (svgs) =>
      svgs.map((s) => ({ w: s.getBoundingClientRect().width, h: s.getBoundingClientRect().height, marks: s.querySelectorAll('[role="graphics-symbol"]').length })),
    );
    assert.equal(sizes.length, 13);
    for (const s of sizes) {
      assert.ok(s.w > 50 && s.h > 50, `figure has a size: ${JSON.stringify(s)}`);
      assert.ok(s.marks > 0, 'figure has marks');
    }
    const firstPrompt = await page.textContent('#task tbody tr td.prompt');
    assert.ok(firstPrompt?.includes('<script>alert(1)</script>'), 'the hostile prompt shows as text');

    // Hover values: moving over a heatmap cell shows its score.
    const cell = page.locator('#scores svg [aria-roledescription="rect mark"]').first();
    await cell.hover({ position: { x: 3, y: 3 }, timeout: 5000 });
    const tip = await page.textContent('#tip');
    assert.match(tip ?? '', /^L0H0: score /);
    assert.equal(await page.isVisible('#tip'), true);

    await page.mouse.move(0, 0);
    await page.screenshot({ path: join(OUT_ROOT, 'report.png'), fullPage: true });
    assert.deepEqual(errors, []);
    assert.deepEqual(external, []);
  } finally {
    await browser.close();
  }
});
