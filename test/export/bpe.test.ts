import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { encode, tokenString } from '../../src/tokenizer/gpt2.ts';
import { webExportTokenizer } from '../../src/export/web.ts';
import { generateIoi } from '../../src/task/ioi.ts';
import { ROOT } from '../helpers/cli.ts';

/** The page's tokenizer script, loaded as a browser would (a classic script defining window.CarveBpe). */
function pageTokenizer() {
  const ctx: Record<string, unknown> = { TextEncoder, TextDecoder };
  vm.runInNewContext(readFileSync(join(ROOT, 'src', 'export', 'web', 'bpe.js'), 'utf8'), ctx);
  const { tokens, specials } = webExportTokenizer();
  return (ctx.CarveBpe as { create: (t: string[], s: Record<string, number>) => { encode: (s: string) => number[]; show: (id: number) => string } }).create(tokens, specials);
}

test("the exported page tokenises exactly as carve does (GPT-2 BPE), on prose, code, IOI prompts and odd text", () => {
  const page = pageTokenizer();
  const texts = [
    readFileSync(join(ROOT, 'README.md'), 'utf8'),
    readFileSync(join(ROOT, 'src', 'model', 'forward.ts'), 'utf8'),
    ...generateIoi({ n: 40, seed: 3, prependBos: true }).pairs.map((p) => p.cleanText!),
    'héllo wörld, naïve café — 日本語のテキスト 😀🎉 emoji',
    "  leading spaces, trailing   \n\n\ttabs\r\nand CRLF   ",
    "I'm sure they'll've said it's 1234567 or 3.14159",
    '<|endoftext|>a<|endoftext|><|endoftext|> b <|endoftext',
    '',
  ];
  let compared = 0;
  for (const t of texts) {
    assert.deepEqual([...page.encode(t)], encode(t), JSON.stringify(t.slice(0, 60)));
    compared += encode(t).length;
  }
  assert.ok(compared > 8000, `${compared} tokens compared`);
  for (const id of [0, 11, 5335, 50256, 447, 39752]) assert.equal(page.show(id), tokenString(id));
});
