// Reference (deliberately plain, BigInt) implementation of the engine's keyed flow hash, written
// from the specification in docs/abi.md:
//
//   Flow key (40 bytes): 0..15 client address (IPv4 as ::ffff:a.b.c.d), 16..31 VIP address,
//   32..33 client port (network order), 34..35 VIP port (network order), 36 IP protocol, 37..39 0.
//   h = k0 ^ (0x28 * 0x9E3779B97F4A7C15)                      (all arithmetic mod 2^64)
//   for each LE u64 word w of the key:
//     w *= 0x87C37B91114253D5; w = rotl64(w, 31); w *= 0x4CF5AD432745937F
//     h ^= w; h = rotl64(h, 27) * 5 + 0x52DCE729
//   h ^= k1
//   h ^= h >> 33; h *= 0xFF51AFD7ED558CCD; h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53; h ^= h >> 33
//   flow_hash = low 32 bits of h
//   Symmetric variant: put the smaller endpoint (address bytes, then port as big-endian u16)
//   first, then hash.
import { parseIp } from './packet.js';

const MASK64 = (1n << 64n) - 1n;
const C1 = 0x87c37b91114253d5n;
const C2 = 0x4cf5ad432745937fn;
const GOLDEN = 0x9e3779b97f4a7c15n;
const F1 = 0xff51afd7ed558ccdn;
const F2 = 0xc4ceb9fe1a85ec53n;

export const KEY_BYTES = 40;

function rotl64(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK64;
}

function readU64LE(b: Uint8Array, o: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[o + i]);
  return v;
}

/** The keyed flow hash of a 40-byte flow key (reads key[0..40)). */
export function flowHashRef(key: Uint8Array, k0: bigint, k1: bigint): number {
  if (key.length < KEY_BYTES) throw new RangeError(`flow key must be ${KEY_BYTES} bytes`);
  let h = (k0 & MASK64) ^ ((0x28n * GOLDEN) & MASK64);
  for (let i = 0; i < 5; i++) {
    let w = readU64LE(key, i * 8);
    w = (w * C1) & MASK64;
    w = rotl64(w, 31n);
    w = (w * C2) & MASK64;
    h ^= w;
    h = (rotl64(h, 27n) * 5n + 0x52dce729n) & MASK64;
  }
  h ^= k1 & MASK64;
  h ^= h >> 33n;
  h = (h * F1) & MASK64;
  h ^= h >> 33n;
  h = (h * F2) & MASK64;
  h ^= h >> 33n;
  return Number(h & 0xffffffffn);
}

/** Returns a copy of the key with the smaller endpoint first (the symmetric form). */
export function symmetricKey(key: Uint8Array): Uint8Array {
  const k = key.slice(0, KEY_BYTES);
  let cmp = 0;
  for (let i = 0; i < 16 && cmp === 0; i++) cmp = k[i] - k[16 + i];
  if (cmp === 0) cmp = ((k[32] << 8) | k[33]) - ((k[34] << 8) | k[35]);
  if (cmp > 0) {
    for (let i = 0; i < 16; i++) [k[i], k[16 + i]] = [k[16 + i], k[i]];
    [k[32], k[34]] = [k[34], k[32]];
    [k[33], k[35]] = [k[35], k[33]];
  }
  return k;
}

/** The symmetric variant: both directions of a flow get the same value. */
export function flowHashSymRef(key: Uint8Array, k0: bigint, k1: bigint): number {
  return flowHashRef(symmetricKey(key), k0, k1);
}

export interface KeySpec {
  src: string; // client address, IPv4 dotted or IPv6
  dst: string; // VIP address
  sport: number; // client port (ICMP: identifier)
  dport: number; // VIP port
  proto: number | 'tcp' | 'udp' | 'icmp' | 'icmpv6';
}

const PROTOS = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 } as const;

/** Builds the 40-byte flow key. IPv4 addresses become ::ffff:a.b.c.d. */
export function makeKey(spec: KeySpec): Uint8Array {
  const k = new Uint8Array(KEY_BYTES);
  k.set(mapped(spec.src), 0);
  k.set(mapped(spec.dst), 16);
  k[32] = (spec.sport >> 8) & 0xff;
  k[33] = spec.sport & 0xff;
  k[34] = (spec.dport >> 8) & 0xff;
  k[35] = spec.dport & 0xff;
  k[36] = typeof spec.proto === 'number' ? spec.proto : PROTOS[spec.proto];
  return k;
}

/** 16-byte form of an address: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
export function mapped(addr: string): Uint8Array {
  const a = parseIp(addr);
  if (a.length === 16) return a;
  const m = new Uint8Array(16);
  m[10] = 0xff;
  m[11] = 0xff;
  m.set(a, 12);
  return m;
}
