/**
 * A port of numpy's legacy `np.random.RandomState` on MT19937 (what `np.random.seed` and the
 * module-level `np.random.*` functions use), draw for draw, for the calls the IOI generator makes.
 * Checked against numpy 2.4 outputs in test/task/random.test.ts.
 */
import { MT19937 } from './mt19937.ts';

const MAX_SEED = 4294967295;

/** Smallest all-ones mask covering x (numpy's gen_mask), for x < 2^32. */
function mask32(x: number): number {
  let m = x >>> 0;
  m |= m >>> 1;
  m |= m >>> 2;
  m |= m >>> 4;
  m |= m >>> 8;
  m |= m >>> 16;
  return m >>> 0;
}

function mask64(x: bigint): bigint {
  let m = x;
  for (const s of [1n, 2n, 4n, 8n, 16n, 32n]) m |= m >> s;
  return m;
}

export class NpRandomState {
  private readonly gen = new MT19937();

  constructor(seed = 0) {
    this.seed(seed);
  }

  /**
   * `RandomState.seed(int)`. Unlike CPython, numpy's legacy seeding of an integer is the plain
   * init_genrand recurrence (not init_by_array), and it rejects seeds outside [0, 2^32).
   */
  seed(seed: number): void {
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
      throw new RangeError(`numpy seed must be an integer between 0 and 2**32 - 1, got ${seed}`);
    }
    this.gen.initGenrand(seed);
  }

  private nextUint64(): bigint {
    // numpy's mt19937_next64 is `next32() << 32 | next32()`: the first word drawn is the high one.
    const high = BigInt(this.gen.nextUint32());
    const low = BigInt(this.gen.nextUint32());
    return (high << 32n) | low;
  }

  /**
   * `randint(low, high)` (or `randint(high)`) for the default int64 dtype: a value in [low, high).
   * The legacy generator uses masked rejection sampling: draw, AND with the smallest all-ones mask
   * covering high-1-low, retry while too big. A one-value range consumes no draw at all.
   */
  randint(low: number, high?: number): number {
    if (high === undefined) {
      high = low;
      low = 0;
    }
    // high is exclusive, so high = 2^53 still has every value exactly representable.
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high - 1) || !Number.isSafeInteger(high - 1 - low)) {
      throw new RangeError(`randint: bounds must be safe integers, got (${low}, ${high})`);
    }
    if (low >= high) throw new RangeError(`randint: low >= high (${low}, ${high})`);
    const rng = high - 1 - low;
    if (rng === 0) return low;
    if (rng <= 0xffffffff) {
      if (rng === 0xffffffff) return low + this.gen.nextUint32();
      const mask = mask32(rng);
      let v: number;
      do v = (this.gen.nextUint32() & mask) >>> 0;
      while (v > rng);
      return low + v;
    }
    const brng = BigInt(rng);
    const mask = mask64(brng);
    let v: bigint;
    do v = this.nextUint64() & mask;
    while (v > brng);
    return low + Number(v);
  }

  /** `choice(a)` with replacement and uniform weights: `a[randint(0, len(a))]`. */
  choice<T>(a: readonly T[]): T {
    if (a.length === 0) throw new RangeError('choice: a cannot be empty');
    return a[this.randint(0, a.length)]!;
  }

  /** `choice(n)`: an integer in [0, n). */
  choiceIndex(n: number): number {
    if (n <= 0) throw new RangeError('choice: a must be positive');
    return this.randint(0, n);
  }

  /** `random_sample()`: a double in [0, 1). */
  randomSample(): number {
    return this.gen.nextDouble();
  }

  /** numpy's random_interval(max): masked rejection for a value in [0, max], used by shuffle. */
  private interval(max: number): number {
    if (max === 0) return 0;
    if (max <= 0xffffffff) {
      const mask = mask32(max);
      let v: number;
      do v = (this.gen.nextUint32() & mask) >>> 0;
      while (v > max);
      return v;
    }
    const bmax = BigInt(max);
    const mask = mask64(bmax);
    let v: bigint;
    do v = this.nextUint64() & mask;
    while (v > bmax);
    return Number(v);
  }

  /** `shuffle(x)` in place (legacy: Fisher–Yates from the end with random_interval(i)). */
  shuffle<T>(x: T[]): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.interval(i);
      const t = x[i]!;
      x[i] = x[j]!;
      x[j] = t;
    }
  }

  /** `permutation(n)`. */
  permutation(n: number): number[] {
    const x = Array.from({ length: n }, (_, i) => i);
    this.shuffle(x);
    return x;
  }
}
