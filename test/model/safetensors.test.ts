import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CarveError } from '../../src/util/errors.ts';
import {
  openSafetensors,
  writeSafetensors,
  encodeSafetensors,
  f32ToF16Bits,
  f16BitsToF32,
  f32ToBf16Bits,
  bf16BitsToF32,
} from '../../src/model/safetensors.ts';

const tmp = mkdtempSync(join(tmpdir(), 'carve-st-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;

/** A file from a header (object or raw text), data bytes, and optionally a lying length field. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
  const path = join(tmp, `f${counter++}.safetensors`);
  writeFileSync(path, Buffer.concat([len, h, data]));
  return path;
}

function assertRejects(path: string, pattern?: RegExp): void {
  assert.throws(
    () => openSafetensors(path).tensorF32('t'),
    (e: unknown) => {
      assert.ok(e instanceof CarveError, `expected CarveError, got ${e}`);
      assert.ok(e.message.includes(path), `message should name the file: ${e.message}`);
      if (pattern) assert.match(e.message, pattern);
      return true;
    },
  );
}

const okEntry = { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] };

test('a well-formed hand-built file reads', () => {
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  const f = openSafetensors(rawFile({ t: okEntry, __metadata__: { format: 'pt' } }, data));
  assert.deepEqual([...f.tensorF32('t')], [1, 2, 3, 4]);
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.deepEqual(f.header.get('t'), { dtype: 'F32', shape: [2, 2], byteOffset: 0, byteLength: 16 });
});

test('hostile and truncated files throw CarveError naming the file', () => {
  const data16 = new Uint8Array(16);
  const good = rawFile({ t: okEntry }, data16);
  const bytes = readFileSync(good);
  const cut = (n: number) => {
    const p = join(tmp, `cut${counter++}.safetensors`);
    writeFileSync(p, bytes.subarray(0, n));
    return p;
  };
  assertRejects(cut(0), /shorter than/);
  assertRejects(cut(5), /shorter than/);
  assertRejects(cut(12), /past the end of the file/); // cut inside the header
  assertRejects(cut(bytes.length - 3), /past the end of the data|truncated/); // cut inside the data
  assertRejects(rawFile({ t: okEntry }, data16, 2n ** 60n), /past the end of the file/);
  assertRejects(rawFile({ t: okEntry }, data16, 2n ** 64n - 1n), /past the end of the file/);
  assertRejects(rawFile({ t: okEntry }, data16, 1000n), /past the end of the file/);
  assertRejects(rawFile('{"t": {"dtype": "F32",', data16), /not valid JSON/);
  assertRejects(rawFile('[1, 2, 3]', data16), /not a JSON object/);
  assertRejects(rawFile('"just a string"', data16), /not a JSON object/);
  assertRejects(rawFile('null', data16), /not a JSON object/);
  {
    // Invalid UTF-8 in the header.
    const h = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    const p = join(tmp, `utf${counter++}.safetensors`);
    writeFileSync(p, Buffer.concat([len, h]));
    assertRejects(p, /UTF-8/);
  }
  assertRejects(rawFile({ t: { ...okEntry, data_offsets: [0, 32] } }, data16), /past the end of the data/);
  assertRejects(rawFile({ t: { ...okEntry, data_offsets: [8, 4] } }, data16), /begin after/);
  assertRejects(rawFile({ t: { ...okEntry, data_offsets: [0] } }, data16), /data_offsets/);
  assertRejects(rawFile({ t: { ...okEntry, data_offsets: [0, 16.5] } }, data16), /data_offsets/);
  assertRejects(rawFile({ t: { ...okEntry, data_offsets: [-4, 12] } }, data16), /data_offsets/);
  assertRejects(
    rawFile({ t: okEntry, u: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, new Uint8Array(24)),
    /overlaps/,
  );
  assertRejects(rawFile({ t: { ...okEntry, shape: [3, 2] } }, data16), /needs 24 bytes/);
  assertRejects(rawFile({ t: { ...okEntry, dtype: 'F16' } }, data16), /needs 8 bytes/);
  assertRejects(rawFile({ t: { ...okEntry, dtype: 'Q4_K' } }, data16), /unknown dtype/);
  assertRejects(rawFile({ t: { ...okEntry, dtype: 7 } }, data16), /unknown dtype/);
  assertRejects(rawFile({ t: { ...okEntry, shape: [-2, -2] } }, data16), /non-negative integer/);
  assertRejects(rawFile({ t: { ...okEntry, shape: [2.5, 2] } }, data16), /non-negative integer/);
  assertRejects(rawFile({ t: { ...okEntry, shape: '2x2' } }, data16), /shape/);
  assertRejects(rawFile({ t: 'nope' }, data16), /not an object/);
  // A shape whose element count overflows doubles must not pass by wrapping around.
  assertRejects(rawFile({ t: { ...okEntry, shape: [2 ** 52, 2 ** 52, 0.5 * 2 ** 2] } }, data16), /needs/);
  assertRejects(rawFile({ t: { ...okEntry, shape: [9007199254740991, 9007199254740991] } }, data16), /needs/);
  assertRejects(rawFile({ t: okEntry, __metadata__: { format: 3 } }, data16), /__metadata__/);
  assertRejects(rawFile({ t: okEntry, __metadata__: [] }, data16), /__metadata__/);
  // Readable header, but not as float.
  assertRejects(rawFile({ t: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, data16), /cannot read as float/);
  // A missing tensor is reported with the file too.
  assertRejects(rawFile({ u: okEntry }, data16), /no tensor 't'/);
  // Nothing left behind.
  assert.ok(readdirSync(tmp).every((n) => !n.endsWith('.tmp')));
});

test('an unopenable path is a CarveError too', () => {
  assertRejects(join(tmp, 'does-not-exist.safetensors'), /cannot open/);
  assertRejects(tmp, /not a regular file/);
});

test('F32 round trip is bit-exact, and aligned F32 reads are views on the file buffer', () => {
  const a = new Float32Array([0, -0, 1.5, -2.25, 3.4e38, 1e-45, Infinity, -Infinity, NaN, Math.fround(Math.PI)]);
  const b = new Float32Array(37).map((_, i) => Math.fround(Math.sin(i) * 1e3));
  const path = join(tmp, 'rt32.safetensors');
  writeSafetensors(path, [
    { name: 'a', dtype: 'F32', shape: [2, 5], data: a },
    { name: 'b', dtype: 'F32', shape: [37], data: b },
    { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
  ], { note: 'hi' });
  const bytes = readFileSync(path);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  assert.equal(headerLen % 8, 0);
  const f = openSafetensors(path);
  assert.deepEqual(f.metadata, { note: 'hi' });
  const ra = f.tensorF32('a');
  const rb = f.tensorF32('b');
  assert.deepEqual(new Uint32Array(ra.buffer, ra.byteOffset, ra.length), new Uint32Array(a.buffer));
  assert.deepEqual(new Uint32Array(rb.buffer, rb.byteOffset, rb.length), new Uint32Array(b.buffer));
  assert.equal(f.tensorF32('empty').length, 0);
  // Each tensor is its own array, read on demand: nothing holds the whole file.
  assert.notEqual(ra.buffer, rb.buffer);
  assert.equal(ra.buffer.byteLength, 4 * a.length);
  f.close();
  assert.deepEqual([...f.header.get('b')!.shape], [37]);
  assert.equal(f.header.get('b')!.byteOffset, 40);
});

test('unaligned F32 data is read exactly', () => {
  // A header of length 9 puts the data at file offset 17: not 4-aligned.
  const data = new Uint8Array(new Float32Array([1.25, -7, 42]).buffer);
  const header = JSON.stringify({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } });
  const padded = header + ' '.repeat((9 - (header.length % 8) + 8) % 8);
  assert.equal((8 + padded.length) % 4, 1);
  const f = openSafetensors(rawFile(padded, data));
  const t = f.tensorF32('t');
  assert.deepEqual([...t], [1.25, -7, 42]);
});

test('F16 conversion: every half value survives half → float → half', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToF32(h);
    // JS numbers quiet signalling NaNs, so only NaN-ness survives for those.
    if (Number.isNaN(x)) assert.ok((f32ToF16Bits(x) & 0x7fff) > 0x7c00);
    else assert.equal(f32ToF16Bits(x), h, `half 0x${h.toString(16)}`);
  }
});

test('F16 rounding is to nearest, ties to even', () => {
  const one = 0x3c00;
  assert.equal(f32ToF16Bits(1 + 2 ** -11), one); // tie, even stays
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), one + 2); // tie, odd rounds up
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), one + 1); // just above the tie
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds up to infinity
  assert.equal(f32ToF16Bits(1e10), 0x7c00);
  assert.equal(f32ToF16Bits(-1e10), 0xfc00);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // exact tie with zero: even
  assert.equal(f32ToF16Bits(2 ** -25 * 1.5), 0x0001);
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 subnormal units: even
  assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -26), 0x0400); // rounds up into the normals
  assert.equal(f32ToF16Bits(1e-30), 0);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
});

test('BF16 conversion round-trips representable values and rounds to nearest even', () => {
  for (let b = 0; b < 65536; b++) {
    const x = bf16BitsToF32(b);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(x))));
    else assert.equal(f32ToBf16Bits(x), b, `bf16 0x${b.toString(16)}`);
  }
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie → even
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  assert.equal(f32ToBf16Bits(3.4e38), 0x7f80); // past the largest bf16: infinity
});

test('F16 and BF16 files round-trip representable values exactly, and F64 reads', () => {
  const vals = new Float32Array([0, 1, -2, 0.5, 0.125, 1024, -65504, 2 ** -24, 3.140625]);
  const path = join(tmp, 'rt16.safetensors');
  writeSafetensors(path, [
    { name: 'h', dtype: 'F16', shape: [9], data: vals },
    { name: 'b', dtype: 'BF16', shape: [3, 3], data: vals.map((v) => bf16BitsToF32(f32ToBf16Bits(v))) },
  ]);
  const f = openSafetensors(path);
  assert.equal(f.header.get('h')!.dtype, 'F16');
  assert.equal(f.header.get('h')!.byteLength, 18);
  assert.deepEqual([...f.tensorF32('h')], [...vals]);
  assert.deepEqual([...f.tensorF32('b')], [...vals.map((v) => bf16BitsToF32(f32ToBf16Bits(v)))]);

  const f64 = new Float64Array([1.5, -3, 1e300]);
  const p64 = rawFile({ t: { dtype: 'F64', shape: [3], data_offsets: [0, 24] } }, new Uint8Array(f64.buffer));
  assert.deepEqual([...openSafetensors(p64).tensorF32('t')], [1.5, -3, Infinity]);
});

test('the writer rejects inconsistent input', () => {
  assert.throws(() => encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }]), CarveError);
  assert.throws(
    () =>
      encodeSafetensors([
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
        { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) },
      ]),
    CarveError,
  );
  assert.throws(() => encodeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [0], data: new Float32Array(0) }]), CarveError);
});
