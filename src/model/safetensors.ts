/**
 * Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON header
 * mapping tensor names to {dtype, shape, data_offsets}, then the raw tensor bytes.
 *
 * The header comes from files users download or hand us, so it is treated as hostile: every field is
 * checked, with sizes computed in BigInt, before anything proportional to a claimed size is allocated.
 * Tensors are read one at a time straight into their float32 arrays, so a checkpoint costs its float32
 * size in memory and no more, whatever its dtype.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { fail, CarveError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

/** Element width in bits of every dtype the safetensors format defines (sub-byte floats included). */
const DTYPE_BITS = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  I64: 64,
  U64: 64,
  F64: 64,
  C64: 64,
} as const;

export type Dtype = keyof typeof DTYPE_BITS;
/** The dtypes carve converts to float32. */
export type FloatDtype = 'F32' | 'F16' | 'BF16' | 'F64';
/** The dtypes carve writes. */
export type WriteDtype = 'F32' | 'F16' | 'BF16';

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** Offset of the tensor's first byte from the start of the data section (after the header). */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  path: string;
  /** Tensor name → where and what it is; insertion order is data order. */
  header: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Absolute file offset of the data section: add a tensor's byteOffset to find it in the file. */
  dataStart: number;
  has(name: string): boolean;
  /**
   * The tensor as a fresh float32 array, read from the file on demand: the file is never held in
   * memory whole, so loading costs the float32 weights and one bounded conversion buffer.
   */
  tensorF32(name: string): Float32Array;
  /** Release the file descriptor (reads after this fail). */
  close(): void;
}

/** Headers beyond this are not model checkpoints; refusing them bounds what a hostile file can make us parse. */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN_HOST = endianness() === 'LE';

function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** JSON numbers arrive as doubles; only exact non-negative integers are acceptable sizes and offsets. */
function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readExactly(fd: number, buf: Uint8Array, position: number, path: string, what: string): void {
  let done = 0;
  while (done < buf.length) {
    let n: number;
    try {
      // One call reads at most 1 GiB: Node refuses longer reads.
      n = readSync(fd, buf, done, Math.min(buf.length - done, 1 << 30), position + done);
    } catch (e) {
      fail(`${path}: cannot read the ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (n === 0) fail(`${path}: truncated safetensors file (ended while reading the ${what})`);
    done += n;
  }
}

/** Check one header entry; returns its validated info. `dataSize` bounds the offsets. */
function checkEntry(path: string, name: string, raw: unknown, dataSize: number): TensorInfo {
  const where = `${path}: tensor '${name}'`;
  if (!isPlainObject(raw)) fail(`${where}: header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (!isDtype(dtype)) fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape)) fail(`${where}: shape is not an array`);
  for (const d of shape) {
    if (!isIndex(d)) fail(`${where}: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) {
    fail(`${where}: data_offsets must be two non-negative integers, found ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] begin after they end`);
  if (end > dataSize) {
    fail(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes; file truncated?)`);
  }
  // BigInt: a product of plausible-looking dimensions can exceed 2^53 and wrap silently as a double.
  let bits = BigInt(DTYPE_BITS[dtype]);
  for (const d of shape as number[]) bits *= BigInt(d);
  if (bits % 8n !== 0n) fail(`${where}: shape ${JSON.stringify(shape)} of ${dtype} is not a whole number of bytes`);
  const expected = bits / 8n;
  if (expected !== BigInt(end - begin)) {
    fail(`${where}: shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  }
  return { dtype, shape: [...(shape as number[])], byteOffset: begin, byteLength: end - begin };
}

/** Parse and validate a header; exported for tests and for readers that only need the index. */
export function parseHeader(path: string, headerBytes: Uint8Array, dataSize: number): {
  header: Map<string, TensorInfo>;
  metadata: Record<string, string>;
} {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(`${path}: safetensors header is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`${path}: safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) fail(`${path}: safetensors header is not a JSON object`);

  const metadata: Record<string, string> = {};
  const entries: [string, TensorInfo][] = [];
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) fail(`${path}: safetensors __metadata__ is not an object`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') fail(`${path}: safetensors __metadata__ value '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push([name, checkEntry(path, name, raw, dataSize)]);
  }

  entries.sort((a, b) => a[1].byteOffset - b[1].byteOffset || a[1].byteLength - b[1].byteLength);
  let prevEnd = 0;
  let prevName = '';
  for (const [name, info] of entries) {
    if (info.byteLength === 0) continue;
    if (info.byteOffset < prevEnd) {
      fail(`${path}: tensor '${name}' overlaps tensor '${prevName}' in the data section`);
    }
    prevEnd = info.byteOffset + info.byteLength;
    prevName = name;
  }
  return { header: new Map(entries), metadata };
}

/** Bytes converted per read for F16/BF16/F64 tensors: bounds the scratch memory of a load. */
const CHUNK_BYTES = 16 << 20;

/** Open a safetensors file: validate its header; tensors are read later, one at a time. */
export function openSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    fail(`${path}: cannot open safetensors file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let dataStart: number;
  let parsed: ReturnType<typeof parseHeader>;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) fail(`${path}: not a safetensors file (not a regular file)`);
    const size = stat.size;
    if (size < 8) fail(`${path}: not a safetensors file (${size} bytes, shorter than the 8-byte header length)`);
    const lenBytes = Buffer.alloc(8);
    readExactly(fd, lenBytes, 0, path, 'header length');
    const headerLen = lenBytes.readBigUInt64LE(0);
    if (headerLen > BigInt(size - 8)) {
      fail(`${path}: safetensors header length ${headerLen} runs past the end of the file (${size} bytes; truncated or not safetensors)`);
    }
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      fail(`${path}: safetensors header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const n = Number(headerLen);
    dataStart = 8 + n;
    const headerBytes = Buffer.alloc(n);
    readExactly(fd, headerBytes, 8, path, 'header');
    parsed = parseHeader(path, headerBytes, size - dataStart);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const { header, metadata } = parsed;
  let open = true;

  const info = (name: string): TensorInfo => {
    const t = header.get(name);
    if (!t) fail(`${path}: no tensor '${name}' in the file`);
    return t;
  };
  const tensorF32 = (name: string): Float32Array => {
    if (!open) throw new Error(`${path}: read after close`);
    const t = info(name);
    const width = DTYPE_BITS[t.dtype] / 8;
    const count = t.byteLength / width;
    const at = dataStart + t.byteOffset;
    const out = new Float32Array(count);
    if (t.dtype === 'F32' && LITTLE_ENDIAN_HOST) {
      // Straight into the result's memory: no intermediate copy.
      readExactly(fd, new Uint8Array(out.buffer), at, path, `tensor '${name}'`);
      return out;
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') {
      fail(`${path}: tensor '${name}' has dtype ${t.dtype}, which carve cannot read as float (use F32, F16, BF16 or F64)`);
    }
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / width));
    const scratch = Buffer.allocUnsafe(Math.min(count, perChunk) * width);
    for (let start = 0; start < count; start += perChunk) {
      const n = Math.min(perChunk, count - start);
      const bytes = scratch.subarray(0, n * width);
      readExactly(fd, bytes, at + start * width, path, `tensor '${name}'`);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      const dst = out.subarray(start, start + n);
      switch (t.dtype) {
        case 'F16':
          f16Into(dv, dst);
          break;
        case 'BF16':
          bf16Into(dv, dst);
          break;
        case 'F32':
          for (let i = 0; i < n; i++) dst[i] = dv.getFloat32(4 * i, true);
          break;
        default:
          for (let i = 0; i < n; i++) dst[i] = dv.getFloat64(8 * i, true);
      }
    }
    return out;
  };
  return {
    path,
    header,
    metadata,
    dataStart,
    has: (name) => header.has(name),
    tensorF32,
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions

let f16Table: Float32Array | undefined;

/** All 65536 half values as float32, built once: a lookup beats bit arithmetic per element. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  const asFloat = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    } else if (exp === 0) {
      // Subnormal halves are normal floats; mant·2^-24 is exact in float32.
      asFloat[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else {
      bits[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  f16Table = asFloat;
  return asFloat;
}

function f16Into(src: DataView, out: Float32Array): void {
  const table = halfTable();
  for (let i = 0; i < out.length; i++) out[i] = table[src.getUint16(2 * i, true)]!;
}

function bf16Into(src: DataView, out: Float32Array): void {
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) outBits[i] = src.getUint16(2 * i, true) << 16;
}

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);

/** float32 → IEEE half, round to nearest even; overflow becomes infinity, NaN stays NaN. */
export function f32ToF16Bits(x: number): number {
  scratchF[0] = x;
  const u = scratchU[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) {
    // Keep the top payload bits so a half NaN survives a float32 round trip unchanged.
    return sign | 0x7c00 | (mant ? (mant >>> 13) || 0x200 : 0);
  }
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): value = m·2^-24 with m = mant_with_implicit_bit >> (14 - e).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rem > half || (rem === half && (m & 1))) m++;
    return sign | m;
  }
  let out = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  if (rem > 0x1000 || (rem === 0x1000 && (out & 1))) out++;
  return out;
}

/** float32 → bfloat16, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  scratchF[0] = x;
  const u = scratchU[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToF32(h: number): number {
  return halfTable()[h & 0xffff]!;
}

export function bf16BitsToF32(b: number): number {
  scratchU[0] = (b & 0xffff) << 16;
  return scratchF[0]!;
}

/**
 * Whether writing `data` as `dtype` keeps every value exactly (NaNs count as kept): the weights of an
 * F16 checkpoint do, float32 values computed from them (folded biases) mostly do not.
 */
export function holdsExactly(data: Float32Array, dtype: WriteDtype): boolean {
  if (dtype === 'F32') return true;
  if (dtype === 'BF16') {
    // bfloat16 is float32's top half: exact when the low 16 bits are zero.
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i]! & 0xffff) !== 0 && !Number.isNaN(data[i])) return false;
    }
    return true;
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < bits.length; i++) {
    // The common case, a normal half: exponent in range, the 13 mantissa bits half lacks all zero.
    const exp = (bits[i]! >>> 23) & 0xff;
    if (exp >= 113 && exp <= 142 && (bits[i]! & 0x1fff) === 0) continue;
    const x = data[i]!;
    if (f16BitsToF32(f32ToF16Bits(x)) !== x && !Number.isNaN(x)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  name: string;
  dtype: WriteDtype;
  shape: number[];
  data: Float32Array;
}

const WRITE_BYTES: Record<WriteDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Serialise tensors (data in the given order) into safetensors bytes. */
export function encodeSafetensors(
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
  label = 'safetensors',
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name === '') throw new CarveError(`${label}: invalid tensor name '${t.name}'`);
    if (seen.has(t.name)) throw new CarveError(`${label}: tensor '${t.name}' given twice`);
    seen.add(t.name);
    if (!(t.dtype in WRITE_BYTES)) throw new CarveError(`${label}: tensor '${t.name}': cannot write dtype ${t.dtype}`);
    let count = 1;
    for (const d of t.shape) {
      if (!isIndex(d)) throw new CarveError(`${label}: tensor '${t.name}' has a bad shape ${JSON.stringify(t.shape)}`);
      count *= d;
    }
    if (count !== t.data.length) {
      throw new CarveError(`${label}: tensor '${t.name}' has shape ${JSON.stringify(t.shape)} but ${t.data.length} values`);
    }
    const len = count * WRITE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Padding to 8 keeps every F32 tensor 4-aligned in the file (and in our reader's buffer) when
  // the tensors before it are too, so reads need no copy.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);

  const out = Buffer.allocUnsafeSlow(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  const dv = new DataView(out.buffer, out.byteOffset, out.length);
  for (const t of tensors) {
    const n = t.data.length;
    if (t.dtype === 'F32') {
      if (LITTLE_ENDIAN_HOST) {
        out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, 4 * n), pos);
      } else {
        for (let i = 0; i < n; i++) dv.setFloat32(pos + 4 * i, t.data[i]!, true);
      }
      pos += 4 * n;
    } else {
      const conv = t.dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < n; i++) dv.setUint16(pos + 2 * i, conv(t.data[i]!), true);
      pos += 2 * n;
    }
  }
  return out;
}

/** Write a safetensors file atomically (readers see the old file or the whole new one). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}
