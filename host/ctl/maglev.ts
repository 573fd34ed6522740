// Maglev consistent hashing (Eisenbud et al., NSDI 2016), built by the host and written into the
// engine as a table of backend indices (Katran programHashRing style). Weighted as in Katran's
// MaglevHashV2: each round a backend adds its weight to a running total and claims a slot only
// when the total reaches the largest weight, so ratios like 1:2:3 hold.

export const DEFAULT_RING_SIZE = 65537;

export const SEED_OFFSET = 0x4d414731; // "MAG1"
export const SEED_SKIP = 0x4d414732; // "MAG2"

function fnv1a(bytes: Uint8Array, h: number): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}

/**
 * The backend-name hash behind the Maglev permutations: FNV-1a 32 (basis 0x811c9dc5) over the four
 * little-endian bytes of `seed` and then the UTF-8 name, finished with murmur3's fmix32.
 * offset = nameHash(id, SEED_OFFSET) mod M, skip = nameHash(id, SEED_SKIP) mod (M - 1) + 1.
 */
export function nameHash(name: string, seed: number): number {
  let h = fnv1a(new Uint8Array([seed & 0xff, (seed >>> 8) & 0xff, (seed >>> 16) & 0xff, seed >>> 24]), 0x811c9dc5);
  h = fnv1a(Buffer.from(name, 'utf8'), h);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

export interface RingMember {
  name: string; // stable identity: the backend id
  weight: number; // 0 = not in the ring
}

/**
 * Returns a table of `size` entries, each the index (into `members`) of the backend owning that
 * slot, or -1 everywhere when no member has weight > 0. `size` must be prime.
 */
export function buildRing(members: RingMember[], size: number): Int32Array {
  if (!isPrime(size)) throw new RangeError(`Maglev table size ${size} is not prime`);
  const table = new Int32Array(size).fill(-1);
  const live = members.map((m, i) => ({ i, w: m.weight, name: m.name })).filter((m) => m.w > 0);
  if (live.length === 0) return table;
  const n = live.length;
  const pos = new Float64Array(n); // current permutation position (offset + j*skip mod size)
  const skip = new Float64Array(n);
  const total = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    pos[k] = nameHash(live[k].name, SEED_OFFSET) % size;
    skip[k] = (nameHash(live[k].name, SEED_SKIP) % (size - 1)) + 1;
  }
  const maxW = Math.max(...live.map((m) => m.w));
  let filled = 0;
  while (filled < size) {
    for (let k = 0; k < n && filled < size; k++) {
      total[k] += live[k].w;
      if (total[k] < maxW) continue;
      total[k] -= maxW;
      let c = pos[k];
      while (table[c] >= 0) c = (c + skip[k]) % size;
      table[c] = live[k].i;
      pos[k] = (c + skip[k]) % size;
      filled++;
    }
  }
  return table;
}
