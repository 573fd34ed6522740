// Keyed flow hash over the 40-byte flow key (docs/abi.md "Flow key and hash"): a murmur3-x64-style
// mix of five u64 words with a 128-bit key, then the murmur3 fmix64 finalizer. Five multiplies per
// word and no table lookups, so it costs a few nanoseconds and is the same in every runtime.

let k0: u64 = 0x736c625f6b657930; // "slb_key0" until the host sets a key
let k1: u64 = 0x736c625f6b657931;

export function setHashKey(a: u64, b: u64): void {
  k0 = a;
  k1 = b;
}

@inline function mixWord(h: u64, w: u64): u64 {
  w *= 0x87c37b91114253d5;
  w = rotl<u64>(w, 31);
  w *= 0x4cf5ad432745937f;
  h ^= w;
  return rotl<u64>(h, 27) * 5 + 0x52dce729;
}

@inline function fmix64(h: u64): u64 {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53;
  h ^= h >> 33;
  return h;
}

/** Hash of the 40-byte key at p. */
export function flowHash(p: usize): u32 {
  let h: u64 = k0 ^ (<u64>40 * 0x9e3779b97f4a7c15);
  h = mixWord(h, load<u64>(p));
  h = mixWord(h, load<u64>(p, 8));
  h = mixWord(h, load<u64>(p, 16));
  h = mixWord(h, load<u64>(p, 24));
  h = mixWord(h, load<u64>(p, 32));
  return <u32>fmix64(h ^ k1);
}

/** Hash words given directly (used by the symmetric variant after it has ordered the endpoints). */
function hashWords(a0: u64, a1: u64, b0: u64, b1: u64, w4: u64): u32 {
  let h: u64 = k0 ^ (<u64>40 * 0x9e3779b97f4a7c15);
  h = mixWord(h, a0);
  h = mixWord(h, a1);
  h = mixWord(h, b0);
  h = mixWord(h, b1);
  h = mixWord(h, w4);
  return <u32>fmix64(h ^ k1);
}

/**
 * Symmetric variant: both directions of a flow hash alike (for sharding flows over workers).
 * The endpoint that compares smaller (address bytes in order, then the port as big-endian u16)
 * goes first.
 */
export function flowHashSym(p: usize): u32 {
  const a0 = load<u64>(p), a1 = load<u64>(p, 8);
  const b0 = load<u64>(p, 16), b1 = load<u64>(p, 24);
  const pa = load<u16>(p, 32), pb = load<u16>(p, 34);
  const rest = load<u32>(p, 36);
  // Compare byte-wise = compare big-endian values.
  const ah = bswap<u64>(a0), al = bswap<u64>(a1), bh = bswap<u64>(b0), bl = bswap<u64>(b1);
  let swap = false;
  if (ah != bh) swap = bh < ah;
  else if (al != bl) swap = bl < al;
  else swap = bswap<u16>(pb) < bswap<u16>(pa);
  if (swap) {
    return hashWords(b0, b1, a0, a1, <u64>pb | (<u64>pa << 16) | (<u64>rest << 32));
  }
  return hashWords(a0, a1, b0, b1, <u64>pa | (<u64>pb << 16) | (<u64>rest << 32));
}
