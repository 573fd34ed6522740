// Internet checksum (RFC 1071) and incremental updates (RFC 1624).
//
// All 16-bit words are loaded little-endian (load<u16>) without swapping: the ones-complement sum
// is byte-order independent as long as data and checksum field are read the same way (RFC 1071
// section 2(B)), so no bswap is needed anywhere in the checksum paths.

/** Folds a 32-bit (or larger, up to 2^48) accumulator into 16 bits. */
@inline export function fold(s: u64): u32 {
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return <u32>s;
}

/** Plain ones-complement sum of [p, p+len) as an unfolded u64 (odd trailing byte padded with zero). */
export function sumBytes(p: usize, len: u32): u64 {
  let s: u64 = 0;
  let i: u32 = 0;
  if (ASC_FEATURE_SIMD) {
    // 64 bytes per step into two accumulators: each 16-byte load is widened pairwise from eight
    // u16 lanes into four u32 lanes. A u32 lane gains at most 2 * 0xffff per load, two loads per
    // accumulator per step, so a block of 8192 steps (512 KiB) cannot overflow before we spill.
    while (i + 64 <= len) {
      let blockEnd = i + (8192 << 6);
      if (blockEnd > len || blockEnd < i) blockEnd = len;
      let a = i32x4.splat(0);
      let b = i32x4.splat(0);
      while (i + 64 <= blockEnd) {
        a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i)));
        b = i32x4.add(b, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 16)));
        a = i32x4.add(a, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 32)));
        b = i32x4.add(b, i32x4.extadd_pairwise_i16x8_u(v128.load(p + i, 48)));
        i += 64;
      }
      // Widen both to u64 lanes before adding so nothing overflows.
      const lo = i64x2.add(i64x2.extend_low_i32x4_u(a), i64x2.extend_low_i32x4_u(b));
      const hi = i64x2.add(i64x2.extend_high_i32x4_u(a), i64x2.extend_high_i32x4_u(b));
      const t = i64x2.add(lo, hi);
      s += <u64>i64x2.extract_lane(t, 0) + <u64>i64x2.extract_lane(t, 1);
    }
  }
  // Scalar path (and tail): 8 bytes at a time into a u64 through two u32 halves.
  while (i + 8 <= len) {
    const w = load<u64>(p + i);
    s += (w & 0xffffffff) + (w >> 32);
    i += 8;
  }
  while (i + 2 <= len) {
    s += <u64>load<u16>(p + i);
    i += 2;
  }
  if (i < len) s += <u64>load<u8>(p + i); // little-endian: odd byte is the low byte
  return s;
}

/** Final checksum value (complemented, 16 bits, as stored with store<u16>). */
@inline export function finish(s: u64): u32 {
  return ~fold(s) & 0xffff;
}

/** Sum of `len` (4 or 16) address bytes, as u64. */
@inline export function sumAddr(p: usize, len: u32): u64 {
  if (len == 4) {
    const w = <u64>load<u32>(p);
    return (w & 0xffff) + (w >> 16);
  }
  const a = load<u64>(p);
  const b = load<u64>(p, 8);
  return (a & 0xffffffff) + (a >> 32) + (b & 0xffffffff) + (b >> 32);
}

/**
 * Difference term for replacing bytes: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'). For several words
 * ~m sums to (0xffff * words - sum(m)) in ones-complement; we return ~sum(m) + sum(m') unfolded.
 */
@inline export function delta(oldSum: u64, newSum: u64): u64 {
  return <u64>(~fold(oldSum) & 0xffff) + newSum;
}

/** Applies a difference term to the checksum field at p (TCP, ICMP, IPv4 header). */
@inline export function adjust(p: usize, d: u64): void {
  const hc = <u64>(~load<u16>(p) & 0xffff);
  store<u16>(p, <u16>~fold(hc + d));
}

/**
 * Same for a UDP checksum: a zero checksum means "none" over IPv4 and stays zero; a computed zero is
 * sent as 0xffff (RFC 768).
 */
@inline export function adjustUdp(p: usize, d: u64): void {
  const c = load<u16>(p);
  if (c == 0) return;
  const hc = <u64>(~c & 0xffff);
  let r = ~fold(hc + d) & 0xffff;
  if (r == 0) r = 0xffff;
  store<u16>(p, <u16>r);
}
