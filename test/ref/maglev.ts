// Reference (deliberately straightforward) Maglev lookup-table population, after Eisenbud et al.,
// "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016, with the weighted
// round of Katran's MaglevHashV2.
//
// For backend i with name n_i and table size M (must be prime):
//   offset_i = h1(n_i) mod M
//   skip_i   = h2(n_i) mod (M - 1) + 1
//   permutation_i[j] = (offset_i + j * skip_i) mod M
// Population: repeat rounds over the backends in index order; in each round, backend i adds its
// weight to a running total and, if the total has reached the largest weight, subtracts the
// largest weight and claims the next slot of its permutation that is still empty. Stop when all
// M slots are taken. With equal weights this is exactly the paper's algorithm.
//
// h1 and h2 are the same 32-bit string hash with two seeds:
//   strHash32(s, seed): FNV-1a 32 (offset basis 0x811C9DC5, prime 0x01000193) over the four
//   bytes of `seed` (little-endian) followed by the UTF-8 bytes of `s`, then the MurmurHash3
//   32-bit finalizer (fmix32).
//   h1(s) = strHash32(s, MAGLEV_SEED_OFFSET), h2(s) = strHash32(s, MAGLEV_SEED_SKIP).

export const MAGLEV_SEED_OFFSET = 0x4d414731; // "MAG1"
export const MAGLEV_SEED_SKIP = 0x4d414732; // "MAG2"

/** FNV-1a 32 of the bytes, starting from `h` (default: the FNV offset basis). */
export function fnv1a32(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

/** MurmurHash3's 32-bit finalizer. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function strHash32(s: string, seed: number): number {
  const seedBytes = new Uint8Array([seed & 0xff, (seed >>> 8) & 0xff, (seed >>> 16) & 0xff, (seed >>> 24) & 0xff]);
  return fmix32(fnv1a32(new TextEncoder().encode(s), fnv1a32(seedBytes)));
}

export const h1 = (name: string): number => strHash32(name, MAGLEV_SEED_OFFSET);
export const h2 = (name: string): number => strHash32(name, MAGLEV_SEED_SKIP);

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** The first `count` entries of backend `name`'s preference list. */
export function maglevPermutation(name: string, M: number, count = M): number[] {
  const offset = h1(name) % M;
  const skip = (h2(name) % (M - 1)) + 1;
  const out: number[] = [];
  for (let j = 0; j < count; j++) out.push((offset + j * skip) % M);
  return out;
}

export interface MaglevBackend {
  name: string;
  /** Relative weight (default 1); 0 = gets no slots. */
  weight?: number;
}

/**
 * Builds the lookup table: entry = index into `backends`. All entries are -1 only when there
 * are no backends or every weight is 0. M must be prime.
 */
export function maglevTable(backends: MaglevBackend[], M: number): Int32Array {
  if (!isPrime(M)) throw new RangeError(`Maglev table size must be prime, got ${M}`);
  const table = new Int32Array(M).fill(-1);
  const weights = backends.map((b) => b.weight ?? 1);
  for (const w of weights) if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`bad weight ${w}`);
  const maxW = Math.max(0, ...weights);
  if (backends.length === 0 || maxW === 0) return table;

  const offset = backends.map((b) => h1(b.name) % M);
  const skip = backends.map((b) => (h2(b.name) % (M - 1)) + 1);
  const next = backends.map(() => 0); // j: next preference to try
  const total = backends.map(() => 0);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < backends.length; i++) {
      total[i] += weights[i];
      if (total[i] < maxW) continue;
      total[i] -= maxW;
      let slot = (offset[i] + next[i] * skip[i]) % M;
      while (table[slot] >= 0) {
        next[i]++;
        slot = (offset[i] + next[i] * skip[i]) % M;
      }
      table[slot] = i;
      next[i]++;
      if (++filled === M) return table;
    }
  }
}
