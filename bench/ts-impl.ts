// Fast plain-TypeScript versions of the engine's Internet checksum and keyed flow hash, written
// the way one would optimize them in JavaScript, as the competitor for the WASM data plane in
// benchmarks. Results are identical to the BigInt references in test/ref/ (tested there).
//
// Checksum: the aligned middle of the range is summed as little-endian u32 words through a
// cached Uint32Array view of the underlying ArrayBuffer (RFC 1071 byte-order independence: the
// folded sum of byte-swapped words is the byte-swapped sum), with 16-bit halves accumulated in
// int32 and folded every 8K words. Head and tail bytes are added individually.
//
// Hash: 64-bit arithmetic on (hi, lo) int32 pairs; 64x64 multiplies by constants use Math.imul
// for the low halves and a 16-bit-split multiply-high; key words are read with a DataView.

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// Cached per Uint8Array: a Uint32Array over its whole ArrayBuffer, and its byteOffset.
let cachedArray: Uint8Array | null = null;
let cachedWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
let cachedBase = 0;

function wordsOf(bytes: Uint8Array): Uint32Array {
  if (bytes !== cachedArray) {
    cachedArray = bytes;
    cachedWords = new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
    cachedBase = bytes.byteOffset;
  }
  return cachedWords;
}

/** Uncomplemented 16-bit ones-complement sum of bytes[start, end) (odd tail padded with 0). */
export function onesSumFast(bytes: Uint8Array, start: number, end: number): number {
  let sum = 0;
  const len = end - start;
  if (len < 32 || !LITTLE_ENDIAN) {
    let i = start;
    for (; i + 1 < end; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
    if (i < end) sum += bytes[i] << 8;
  } else {
    const words = wordsOf(bytes);
    const base = cachedBase;
    // Bytes before the first 4-aligned absolute address.
    let i = start;
    const alignedStart = start + ((4 - ((base + start) & 3)) & 3);
    for (; i < alignedStart; i++) sum += (i - start) & 1 ? bytes[i] : bytes[i] << 8;
    const nWords = ((end - alignedStart) >>> 2);
    let w = (base + alignedStart) >>> 2;
    const wEnd = w + nWords;
    // Sum the u32 words as 16-bit halves; fold every 8192 words to stay within int32.
    let s = 0;
    while (w < wEnd) {
      const stop = Math.min(wEnd, w + 8192);
      let lo = 0;
      let hi = 0;
      for (; w + 3 < stop; w += 4) {
        const a = words[w];
        const b = words[w + 1];
        const c = words[w + 2];
        const d = words[w + 3];
        lo += (a & 0xffff) + (b & 0xffff) + (c & 0xffff) + (d & 0xffff);
        hi += (a >>> 16) + (b >>> 16) + (c >>> 16) + (d >>> 16);
      }
      for (; w < stop; w++) {
        const a = words[w];
        lo += a & 0xffff;
        hi += a >>> 16;
      }
      s += lo + hi;
      s = (s & 0xffff) + (s >>> 16);
    }
    s = (s & 0xffff) + (s >>> 16);
    s = (s & 0xffff) + (s >>> 16);
    // LE words put the even-position (high) bytes in the low byte: swap back unless the aligned
    // region starts at an odd distance from `start`.
    if (((alignedStart - start) & 1) === 0) s = ((s & 0xff) << 8) | (s >>> 8);
    sum += s;
    i = alignedStart + nWords * 4;
    for (; i < end; i++) sum += (i - start) & 1 ? bytes[i] : bytes[i] << 8;
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Internet checksum (folded and complemented) of bytes[start, end), like the engine's `csum`. */
export function internetChecksumFast(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return ~onesSumFast(bytes, start, end) & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// Flow hash

// high 32 bits of the unsigned 64-bit product a*b (a, b as uint32)
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const lo = a0 * b0;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const mid = (lo >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + (mid >>> 16)) | 0;
}

const C1_HI = 0x87c37b91 | 0;
const C1_LO = 0x114253d5 | 0;
const C2_HI = 0x4cf5ad43 | 0;
const C2_LO = 0x2745937f | 0;
const F1_HI = 0xff51afd7 | 0;
const F1_LO = 0xed558ccd | 0;
const F2_HI = 0xc4ceb9fe | 0;
const F2_LO = 0x1a85ec53 | 0;
// 0x28 * 0x9E3779B97F4A7C15 mod 2^64
const SEED_MUL = (0x28n * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;

// Key words are read with a DataView, faster than assembling bytes. The view is cached per
// Uint8Array (checking identity is cheaper than reading .buffer / .byteOffset on every call).
let cachedKeyArray: Uint8Array | null = null;
let cachedDv: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));

function viewOf(key: Uint8Array): DataView {
  if (key !== cachedKeyArray) {
    cachedKeyArray = key;
    cachedDv = new DataView(key.buffer, key.byteOffset, key.byteLength);
  }
  return cachedDv;
}

// The whole hash with every intermediate in a local (int32) variable: keeping the state in
// object fields was 2-3x slower in V8. `swap` = hash the key with its two endpoints exchanged.
export function hashKey(dv: DataView, o: number, swap: boolean, hHi: number, hLo: number, k1Hi: number, k1Lo: number): number {
  for (let k = 0; k < 5; k++) {
    let wLo: number;
    let wHi: number;
    if (!swap) {
      wLo = dv.getInt32(o + 8 * k, true);
      wHi = dv.getInt32(o + 8 * k + 4, true);
    } else if (k < 4) {
      const p = o + ((8 * k + 16) & 31); // words 2, 3, 0, 1
      wLo = dv.getInt32(p, true);
      wHi = dv.getInt32(p + 4, true);
    } else {
      // word 4 with the ports exchanged (bytes 34, 35, 32, 33), then protocol and zeros
      wLo = dv.getUint16(o + 34, true) | (dv.getUint16(o + 32, true) << 16);
      wHi = dv.getInt32(o + 36, true);
    }
    // w *= C1
    let lo = Math.imul(wLo, C1_LO);
    let hi = (mulhi(wLo, C1_LO) + Math.imul(wHi, C1_LO) + Math.imul(wLo, C1_HI)) | 0;
    // w = rotl64(w, 31)
    const rLo = (lo << 31) | (hi >>> 1);
    const rHi = (hi << 31) | (lo >>> 1);
    // w *= C2
    lo = Math.imul(rLo, C2_LO);
    hi = (mulhi(rLo, C2_LO) + Math.imul(rHi, C2_LO) + Math.imul(rLo, C2_HI)) | 0;
    // h ^= w; h = rotl64(h, 27) * 5 + 0x52DCE729
    const xLo = hLo ^ lo;
    const xHi = hHi ^ hi;
    const yLo = (xLo << 27) | (xHi >>> 5);
    const yHi = (xHi << 27) | (xLo >>> 5);
    const t = (yLo >>> 0) * 5 + 0x52dce729; // < 2^35, exact in a double
    const tLo = t >>> 0;
    hLo = tLo | 0;
    hHi = (Math.imul(yHi, 5) + (t - tLo) / 4294967296) | 0;
  }
  // h ^= k1; fmix64
  let lo = hLo ^ k1Lo;
  let hi = hHi ^ k1Hi;
  lo ^= hi >>> 1; // h ^= h >> 33
  let nLo = Math.imul(lo, F1_LO);
  hi = (mulhi(lo, F1_LO) + Math.imul(hi, F1_LO) + Math.imul(lo, F1_HI)) | 0;
  lo = nLo ^ (hi >>> 1);
  nLo = Math.imul(lo, F2_LO);
  hi = (mulhi(lo, F2_LO) + Math.imul(hi, F2_LO) + Math.imul(lo, F2_HI)) | 0;
  lo = nLo ^ (hi >>> 1);
  return lo >>> 0;
}

/**
 * The engine's keyed flow hash (docs/abi.md), without BigInt. Construct once per key; `hash`
 * and `hashSym` read a 40-byte flow key at `key[off .. off+40)`.
 */
export class FlowHasher {
  private readonly h0Hi: number;
  private readonly h0Lo: number;
  private readonly k1Hi: number;
  private readonly k1Lo: number;

  constructor(k0: bigint, k1: bigint) {
    const h0 = (k0 ^ SEED_MUL) & 0xffffffffffffffffn;
    this.h0Hi = Number(h0 >> 32n) | 0;
    this.h0Lo = Number(h0 & 0xffffffffn) | 0;
    this.k1Hi = Number((k1 >> 32n) & 0xffffffffn) | 0;
    this.k1Lo = Number(k1 & 0xffffffffn) | 0;
  }

  /** flow_hash of the 40-byte key at key[off..]. */
  hash(key: Uint8Array, off = 0): number {
    return hashKey(viewOf(key), off, false, this.h0Hi, this.h0Lo, this.k1Hi, this.k1Lo);
  }

  /** flow_hash_sym: the hash of the key with the smaller endpoint first. */
  hashSym(key: Uint8Array, off = 0): number {
    let cmp = 0;
    for (let i = 0; i < 16; i++) {
      cmp = key[off + i] - key[off + 16 + i];
      if (cmp !== 0) break;
    }
    if (cmp === 0) cmp = ((key[off + 32] << 8) | key[off + 33]) - ((key[off + 34] << 8) | key[off + 35]);
    return hashKey(viewOf(key), off, cmp > 0, this.h0Hi, this.h0Lo, this.k1Hi, this.k1Lo);
  }
}
