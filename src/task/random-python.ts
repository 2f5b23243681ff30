/**
 * A port of CPython 3's `random.Random` (the parts the IOI generator touches), draw for draw.
 * Checked against CPython 3.11 outputs in test/task/random.test.ts.
 *
 * Integers are JS numbers, so arguments must stay below 2^53; the IOI code never comes close.
 */
import { MT19937, bitLength } from './mt19937.ts';

const TWO_32 = 4294967296;

export class PyRandom {
  private readonly gen = new MT19937();

  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /**
   * `random.seed(int)`: CPython takes |seed|, cuts it into 32-bit words, least significant first
   * (one zero word for 0), and runs init_by_array on them. Only integer seeds are supported:
   * str/bytes seeds go through SHA-512 in CPython and nothing here needs them.
   */
  seed(seed: number | bigint): void {
    let n: bigint;
    if (typeof seed === 'bigint') n = seed;
    else {
      if (!Number.isSafeInteger(seed)) throw new RangeError(`PyRandom.seed: ${seed} is not a safe integer`);
      n = BigInt(seed);
    }
    if (n < 0n) n = -n;
    const key: number[] = [];
    while (n > 0n) {
      key.push(Number(n & 0xffffffffn));
      n >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.gen.initByArray(key);
  }

  /** `random.random()`. */
  random(): number {
    return this.gen.nextDouble();
  }

  /**
   * `getrandbits(k)` for 0 <= k <= 53. CPython fills 32-bit words from the least significant end
   * and drops the surplus low bits of the last (most significant) word by shifting it right.
   */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 53) throw new RangeError(`getrandbits: k=${k} outside 0..53`);
    if (k === 0) return 0;
    if (k <= 32) return this.gen.nextUint32() >>> (32 - k);
    const low = this.gen.nextUint32();
    const high = this.gen.nextUint32() >>> (64 - k);
    return high * TWO_32 + low;
  }

  /**
   * `_randbelow_with_getrandbits(n)`: draw bit_length(n) bits and reject until below n. Note it
   * uses n.bit_length(), not (n-1).bit_length(), so a power of two n wastes half its draws —
   * that waste changes the stream and must be kept.
   */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`randbelow: n=${n} must be a positive integer`);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `randrange(stop)` / `randrange(start, stop)` with step 1. */
  randrange(start: number, stop?: number): number {
    if (stop === undefined) return this.randbelow(start);
    const width = stop - start;
    if (width <= 0) throw new RangeError(`randrange: empty range (${start}, ${stop})`);
    return start + this.randbelow(width);
  }

  /** `randint(a, b)`, both ends included. */
  randint(a: number, b: number): number {
    return this.randrange(a, b + 1);
  }

  /** `choice(seq)`. */
  choice<T>(seq: readonly T[]): T {
    if (seq.length === 0) throw new RangeError('choice: empty sequence');
    return seq[this.randbelow(seq.length)]!;
  }

  /** `shuffle(x)` in place: Fisher–Yates from the end, j = randbelow(i + 1). */
  shuffle<T>(x: T[]): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i]!;
      x[i] = x[j]!;
      x[j] = t;
    }
  }
}
