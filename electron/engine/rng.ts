/**
 * Seedable pseudo-random numbers for data generation, shuffling and weight initialisation.
 *
 * Generator: xoshiro128** (128-bit state, 32-bit output). Seeds (numbers or strings) are hashed into the state,
 * so nearby seeds give unrelated streams. `fork(label)` derives an independent stream from the generator's *seed
 * lineage* and the label (not from its current position), so `new Rng(7).fork('data')` is always the same stream no
 * matter how much the parent has been used. `state()` is plain JSON and `Rng.fromState` resumes exactly.
 */
import { z } from 'zod';

export type Seed = number | string;

const u32 = z.number().int().min(0).max(0xffffffff);

export const RngStateSchema = z.object({
  format: z.literal('composer.rng'),
  version: z.literal(1),
  /** Hash of the seed lineage; forks derive from it. */
  key: z.tuple([u32, u32, u32, u32]),
  /** xoshiro128** state. */
  s: z.tuple([u32, u32, u32, u32]),
  /** Second value of the last Box-Muller pair, not yet returned. */
  spareNormal: z.number().nullable(),
});
export type RngState = z.infer<typeof RngStateSchema>;

export class RngError extends Error {
  override name = 'RngError';
}

/** Writable numeric array the fill helpers accept. */
export type NumericArray = Float32Array | Float64Array | number[];

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: good avalanche, used to expand hashes into state words. */
function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Hash a list of 32-bit words and a string into four 32-bit words (four independently mixed lanes). */
function hash128(words: readonly number[], text: string): [number, number, number, number] {
  let h1 = 0x6a09e667, h2 = 0xbb67ae85, h3 = 0x3c6ef372, h4 = 0xa54ff53a;
  const mix = (v: number): void => {
    h1 = Math.imul(h1 ^ v, 0x85ebca6b); h1 = rotl(h1, 13) ^ h4;
    h2 = Math.imul(h2 ^ v, 0xc2b2ae35); h2 = rotl(h2, 17) ^ h1;
    h3 = Math.imul(h3 ^ v, 0x27d4eb2f); h3 = rotl(h3, 11) ^ h2;
    h4 = Math.imul(h4 ^ v, 0x165667b1); h4 = rotl(h4, 19) ^ h3;
  };
  for (const w of words) mix(w >>> 0);
  mix(0x7f4a7c15 ^ text.length);
  for (let i = 0; i < text.length; i++) mix(text.charCodeAt(i));
  return [splitmix32(h1 ^ h3), splitmix32(h2 ^ h4), splitmix32(h3 ^ h1 ^ 0x1234567), splitmix32(h4 ^ h2 ^ 0x89abcdef)];
}

/** Seed → words: integers keep all 53 bits, strings are tagged so that 1 and '1' differ. */
function seedWords(seed: Seed): { words: number[]; text: string } {
  if (typeof seed === 'string') return { words: [1], text: seed };
  if (!Number.isSafeInteger(seed)) throw new RngError(`seed must be a safe integer or a string, got ${seed}`);
  const neg = seed < 0 ? 1 : 0;
  const mag = Math.abs(seed);
  return { words: [0, neg, mag % TWO_POW_32, Math.floor(mag / TWO_POW_32)], text: '' };
}

/** 32-bit FNV-1a of a string; a cheap stable hash for bucketing (e.g. train/eval splits). */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return splitmix32(h);
}

export class Rng {
  private key: [number, number, number, number];
  /** Int32 lanes keep the hot loop in small integers; exported as unsigned words. */
  private s: Int32Array;
  private spareNormal: number | null = null;

  constructor(seed: Seed = 0) {
    const { words, text } = seedWords(seed);
    this.key = hash128(words, text);
    this.s = Rng.stateFromKey(this.key);
  }

  private static stateFromKey(key: readonly number[]): Int32Array {
    const s = Int32Array.from([
      splitmix32(key[0] ^ 0x243f6a88), splitmix32(key[1] ^ 0x85a308d3),
      splitmix32(key[2] ^ 0x13198a2e), splitmix32(key[3] ^ 0x03707344),
    ]);
    if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // the all-zero state is a fixed point
    return s;
  }

  static fromState(state: unknown): Rng {
    const r = new Rng(0);
    r.restore(state);
    return r;
  }

  /** An independent stream determined by this generator's seed lineage and `label`. */
  fork(label: Seed): Rng {
    const { words, text } = seedWords(label);
    const child = new Rng(0);
    child.key = hash128([...this.key, ...words], text);
    child.s = Rng.stateFromKey(child.key);
    return child;
  }

  /** JSON-serialisable snapshot; `restore` continues the stream exactly from here. */
  state(): RngState {
    return { format: 'composer.rng', version: 1, key: [...this.key], s: [this.s[0] >>> 0, this.s[1] >>> 0, this.s[2] >>> 0, this.s[3] >>> 0], spareNormal: this.spareNormal };
  }

  restore(state: unknown): void {
    const parsed = RngStateSchema.safeParse(state);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RngError(`invalid RNG state at '${issue?.path.join('.') ?? ''}': ${issue?.message ?? 'unknown error'}`);
    }
    const st = parsed.data;
    if ((st.s[0] | st.s[1] | st.s[2] | st.s[3]) === 0) throw new RngError('invalid RNG state: all-zero generator state');
    this.key = [...st.key];
    this.s = Int32Array.from(st.s);
    this.spareNormal = st.spareNormal;
  }

  /** Next raw 32-bit unsigned integer (xoshiro128**). */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / TWO_POW_53;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Uniform integer in [0, n), unbiased; n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new RngError(`int(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n); // reject the incomplete top bucket
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RngError('pick() from an empty array');
    return items[this.int(items.length)];
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  // ---- weight initialisers (PyTorch semantics) -----------------------------------------------------------

  /** arr[i] ~ N(mean, std²). */
  fillNormal<A extends NumericArray>(arr: A, std: number, mean = 0): A {
    for (let i = 0; i < arr.length; i++) arr[i] = mean + std * this.normal();
    return arr;
  }

  /** arr[i] ~ U[lo, hi). */
  fillUniform<A extends NumericArray>(arr: A, lo: number, hi: number): A {
    if (!(hi >= lo)) throw new RngError(`fillUniform: need lo ≤ hi, got [${lo}, ${hi}]`);
    for (let i = 0; i < arr.length; i++) arr[i] = lo + (hi - lo) * this.uniform();
    return arr;
  }

  /**
   * torch.nn.init.kaiming_uniform_(w, a, mode='fan_in', nonlinearity='leaky_relu'):
   * gain = √(2 / (1 + a²)), bound = gain · √(3 / fan_in). With a = √5 (the nn.Linear / nn.Conv default) the
   * bound is 1/√fan_in, the same bound nn.Linear uses for its bias.
   */
  kaimingUniform<A extends NumericArray>(arr: A, fanIn: number, a = Math.sqrt(5)): A {
    if (!(fanIn > 0)) throw new RngError(`kaimingUniform: fan_in must be positive, got ${fanIn}`);
    const bound = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fanIn);
    return this.fillUniform(arr, -bound, bound);
  }

  /**
   * torch.nn.init.trunc_normal_(w, mean, std, a, b): N(mean, std²) restricted to [a, b]. As in PyTorch, a and b are
   * absolute bounds (not multiples of std), by default [-2, 2]. Sampled by rejection.
   */
  truncNormal<A extends NumericArray>(arr: A, std: number, mean = 0, a = -2, b = 2): A {
    if (!(b > a)) throw new RngError(`truncNormal: need a < b, got [${a}, ${b}]`);
    if (!(std > 0)) {
      if (std === 0 && mean >= a && mean <= b) return this.fillUniform(arr, mean, mean);
      throw new RngError(`truncNormal: std must be positive, got ${std}`);
    }
    const maxTries = 1_000_000;
    for (let i = 0; i < arr.length; i++) {
      let tries = 0;
      for (;;) {
        const v = mean + std * this.normal();
        if (v >= a && v <= b) {
          arr[i] = v;
          break;
        }
        if (++tries >= maxTries) {
          throw new RngError(`truncNormal: [${a}, ${b}] holds almost none of N(${mean}, ${std}²); check the bounds`);
        }
      }
    }
    return arr;
  }
}
