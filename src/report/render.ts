/**
 * Vega-Lite spec -> SVG (vega's headless View, no DOM, no browser) -> PNG (resvg, no browser).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import type { VlSpec } from './specs.ts';

export async function renderSvg(spec: VlSpec): Promise<string> {
  // The casts stand in for vega-lite's TopLevelSpec union, which our plain-object specs cannot name.
  const compiled = compile(spec as unknown as Parameters<typeof compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return addTooltipTitles(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/**
 * Vega's SVG string renderer writes a mark's `description` as aria-label but does not emit the
 * `<title>` that browsers show on hover, so we add one. The label is already attribute-escaped by
 * vega, and that escaping is also valid as element text, so it is copied unchanged.
 */
export function addTooltipTitles(svg: string): string {
  return svg.replace(/<(path|text|rect|circle|line)(\s[^>]*?)(\/?)>/g, (tag: string, name: string, attrs: string, selfClosing: string) => {
    const label = /\saria-label="([^"]*)"/.exec(attrs);
    if (!label || !/\srole="graphics-symbol"/.test(attrs)) return tag;
    const title = `<title>${label[1]}</title>`;
    return selfClosing ? `<${name}${attrs}>${title}</${name}>` : `${tag}${title}`;
  });
}

export interface FontChoice {
  family: string;
  files: string[];
}

/** Families in order of preference, each with the file names Debian and most distributions use. */
const KNOWN_FONTS: { family: string; files: string[] }[] = [
  { family: 'DejaVu Sans', files: ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'] },
  { family: 'Liberation Sans', files: ['LiberationSans-Regular.ttf', 'LiberationSans-Bold.ttf'] },
  { family: 'Noto Sans', files: ['NotoSans-Regular.ttf', 'NotoSans-Bold.ttf'] },
  { family: 'FreeSans', files: ['FreeSans.ttf', 'FreeSansBold.ttf'] },
  { family: 'Arial', files: ['Arial.ttf', 'arial.ttf', 'Arial Bold.ttf', 'arialbd.ttf'] },
  { family: 'Helvetica', files: ['Helvetica.ttc'] },
];

const FONT_DIRS = ['/usr/share/fonts', '/usr/local/share/fonts', '/Library/Fonts', '/System/Library/Fonts', 'C:\\Windows\\Fonts'];

function findFiles(dir: string, names: Set<string>, depth: number, out: Map<string, string>): void {
  if (depth > 4 || !existsSync(dir)) return;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.isDirectory()) findFiles(join(dir, e.name), names, depth + 1, out);
    else if (names.has(e.name) && !out.has(e.name)) out.set(e.name, join(dir, e.name));
  }
}

let fontCache: FontChoice | null | undefined;

/**
 * resvg draws no text without a font, and its idea of "sans-serif" (Arial) is often missing on Linux.
 * Loading one known family explicitly is fast and predictable; fontconfig is the fallback for other
 * systems. With no font at all the PNGs still render, without text.
 */
export function findFont(): FontChoice | null {
  if (fontCache !== undefined) return fontCache;
  const names = new Set(KNOWN_FONTS.flatMap((f) => f.files));
  const found = new Map<string, string>();
  const home = process.env.HOME;
  for (const dir of [...FONT_DIRS, ...(home ? [join(home, '.fonts'), join(home, '.local/share/fonts')] : [])]) findFiles(dir, names, 0, found);
  for (const f of KNOWN_FONTS) {
    const files = f.files.filter((n) => found.has(n)).map((n) => found.get(n) as string);
    if (files.length > 0) return (fontCache = { family: f.family, files });
  }
  try {
    const out = execFileSync('fc-match', ['-f', '%{family[0]}\n%{file}', 'sans-serif'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    const [family, file] = out.split('\n');
    if (family && file && existsSync(file)) return (fontCache = { family, files: [file] });
  } catch {
    // No fontconfig: fall through to rendering without text.
  }
  return (fontCache = null);
}

export function pngOptions(scale = 2): ResvgRenderOptions {
  const font = findFont();
  return {
    fitTo: { mode: 'zoom', value: scale },
    font: font
      ? { loadSystemFonts: false, fontFiles: font.files, defaultFontFamily: font.family, sansSerifFamily: font.family }
      : { loadSystemFonts: true },
  };
}

/** Our specs name several families (for browsers); resvg should use the one we loaded. */
function forResvg(svg: string, family: string | null): string {
  if (family === null) return svg;
  return svg.replace(/font-family="[^"]*"/g, `font-family="${family.replace(/[^A-Za-z0-9 _-]/g, '')}"`);
}

export function svgToPng(svg: string, scale = 2): Buffer {
  const font = findFont();
  return new Resvg(forResvg(svg, font?.family ?? null), pngOptions(scale)).render().asPng();
}
