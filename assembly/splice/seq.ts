// TCP sequence-number arithmetic (RFC 793 / RFC 1982 serial numbers, mod 2^32). Splicing joins two
// connections whose initial sequence numbers differ: every sequence number, acknowledgment and SACK
// edge crossing the splice is shifted by a fixed offset, which wraps around 2^32 like the numbers.

/** a + b mod 2^32. */
@inline export function seqAdd(a: u32, b: u32): u32 {
  return a + b;
}

/** a - b mod 2^32 (the offset that maps b onto a). */
@inline export function seqSub(a: u32, b: u32): u32 {
  return a - b;
}

/** a before b in sequence space (a < b, serial-number comparison). */
@inline export function seqLt(a: u32, b: u32): bool {
  return <i32>(a - b) < 0;
}

/** a at or before b. */
@inline export function seqLeq(a: u32, b: u32): bool {
  return <i32>(a - b) <= 0;
}

/** Maps a sequence number of one side's space into the other's: x + offset mod 2^32. */
@inline export function seqMap(x: u32, offset: u32): u32 {
  return x + offset;
}

/** The inverse mapping: x - offset mod 2^32. */
@inline export function seqUnmap(x: u32, offset: u32): u32 {
  return x - offset;
}
