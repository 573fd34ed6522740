// Byte-level helpers shared by the live L2/L3 modules (arp.ts, nd.ts, icmp.ts, neighbours.ts):
// Ethernet parsing with 802.1Q/802.1ad tags, address conversions, RFC 1071 checksums, and the
// Ethernet header of a reply. No I/O; every function works on any Uint8Array view (frames are
// usually subarrays of WebAssembly memory, so nothing here assumes byteOffset 0 or uses
// frame.buffer directly).

import { isIPv4, isIPv6 } from 'node:net';

export const ETH_ARP = 0x0806;
export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
/** TPIDs accepted as VLAN tags: 802.1Q, 802.1ad (QinQ outer), and the old 0x9100 QinQ. */
export const VLAN_TPIDS: ReadonlySet<number> = new Set([0x8100, 0x88a8, 0x9100]);
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** A MAC address: 6 bytes, or a string "aa:bb:cc:dd:ee:ff" (also '-' separated) where accepted. */
export type MacLike = Uint8Array | string;

export const be16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const be32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Parses "aa:bb:cc:dd:ee:ff" (or '-' separated) into 6 bytes; a Uint8Array is copied. Throws if malformed. */
export function macBytes(m: MacLike): Uint8Array {
  if (typeof m !== 'string') {
    if (m.length !== 6) throw new Error(`MAC address must be 6 bytes, got ${m.length}`);
    return Uint8Array.from(m);
  }
  const parts = m.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC address "${m}"`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** "aa:bb:cc:dd:ee:ff" (lower case) of the 6 bytes at `o`. */
export function macString(b: Uint8Array, o = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += (i ? ':' : '') + b[o + i].toString(16).padStart(2, '0');
  return s;
}

export const isMulticastMac = (b: Uint8Array, o: number): boolean => (b[o] & 1) === 1;

/** IPv4 dotted quad -> unsigned 32-bit number. Throws if malformed. */
export function ipv4Number(a: string): number {
  if (!isIPv4(a)) throw new Error(`bad IPv4 address "${a}"`);
  return a.split('.').reduce((n, p) => ((n << 8) | Number(p)) >>> 0, 0);
}

export function ipv4String(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** IPv6 text (any RFC 4291 form, including an embedded IPv4 tail; a %zone is ignored) -> 16 bytes. */
export function ipv6Bytes(a: string): Uint8Array {
  const addr = a.split('%')[0];
  if (!isIPv6(addr)) throw new Error(`bad IPv6 address "${a}"`);
  let text = addr;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const n = ipv4Number(tail[1]);
    text = text.slice(0, tail.index) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest === undefined ? [] : rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill('0'), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => put16(out, i * 2, parseInt(g, 16)));
  return out;
}

/** RFC 5952 canonical text of the 16 bytes at `o` (lower case, longest zero run as "::"). */
export function ipv6String(b: Uint8Array, o = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(be16(b, o + i * 2));
  let bestAt = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Canonical text of an IP address (IPv4 dotted quad or RFC 5952 IPv6); throws if not an address. */
export function canonicalIp(a: string): string {
  if (isIPv4(a)) return ipv4String(ipv4Number(a));
  return ipv6String(ipv6Bytes(a));
}

export const bytesEqual = (a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean => {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
};

/** Ones-complement sum (RFC 1071) of b[start, end) added to `sum`, unfolded (fold() it). */
export function sumBytes(b: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8;
  return sum;
}

/** Folds a partial sum to 16 bits. */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value (complement of the folded sum). */
export const finish = (s: number): number => ~fold(s) & 0xffff;

/**
 * Pseudo-header partial sum for TCP/UDP/ICMPv6: IPv4 (12 bytes, RFC 793) when the addresses are 4
 * bytes long, IPv6 (40 bytes, RFC 8200 8.1) when 16.
 */
export function pseudoSum(b: Uint8Array, srcOff: number, dstOff: number, addrLen: 4 | 16, proto: number, len: number): number {
  let s = sumBytes(b, srcOff, srcOff + addrLen);
  s = sumBytes(b, dstOff, dstOff + addrLen, s);
  return s + proto + (len >>> 16) + (len & 0xffff);
}

/** The Ethernet (and VLAN tag) layer of a frame. */
export interface EthInfo {
  /** Offset of the first VLAN tag (always 12). */
  tagsStart: number;
  /** Offset of the innermost EtherType (12 untagged, 16 with one tag, ...). */
  typeOff: number;
  /** Innermost EtherType. */
  ethertype: number;
  /** Offset of the L3 header (typeOff + 2). */
  l3: number;
  /** Number of VLAN tags (0, 1, 2, ...). */
  tags: number;
}

/** Parses the Ethernet header and any VLAN tags; null if the frame is too short. At most 4 tags. */
export function parseEth(f: Uint8Array): EthInfo | null {
  if (f.length < 14) return null;
  let o = 12;
  let tags = 0;
  let t = be16(f, o);
  while (VLAN_TPIDS.has(t)) {
    if (tags === 4 || f.length < o + 6) return null;
    o += 4;
    tags++;
    t = be16(f, o);
  }
  return { tagsStart: 12, typeOff: o, ethertype: t, l3: o + 2, tags };
}

/**
 * A reply frame of `l3Len` bytes after the Ethernet header: destination `dst` (6 bytes at dstOff
 * of dstBuf), source `src`, the VLAN tags of `tagsFrom` (bytes 12..typeOff, kept as they were),
 * EtherType `ethertype`. Returns the frame and the offset where its L3 header starts.
 */
export function ethReply(
  dstBuf: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  tagsFrom: Uint8Array | null,
  eth: EthInfo | null,
  ethertype: number,
  l3Len: number,
): { frame: Uint8Array; l3: number } {
  const tagBytes = tagsFrom && eth ? eth.typeOff - 12 : 0;
  const l3 = 14 + tagBytes;
  const frame = new Uint8Array(l3 + l3Len);
  frame.set(dstBuf.subarray(dstOff, dstOff + 6), 0);
  frame.set(src.subarray(0, 6), 6);
  if (tagBytes && tagsFrom) frame.set(tagsFrom.subarray(12, 12 + tagBytes), 12);
  put16(frame, 12 + tagBytes, ethertype);
  return { frame, l3 };
}

/** Raw VLAN tag bytes (TPID + TCI, 4 per tag) for outgoing frames from a list of VLAN ids (outermost first; all 802.1Q). */
export function vlanTagBytes(vids: readonly number[] | undefined): Uint8Array {
  const out = new Uint8Array((vids?.length ?? 0) * 4);
  vids?.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v > 4095) throw new Error(`bad VLAN id ${v}`);
    put16(out, i * 4, 0x8100);
    put16(out, i * 4 + 2, v);
  });
  return out;
}

/** A new frame: dst, src, raw tag bytes, EtherType, then `l3Len` zero bytes; returns it and the L3 offset. */
export function ethFrame(dst: Uint8Array, src: Uint8Array, tagBytes: Uint8Array, ethertype: number, l3Len: number): { frame: Uint8Array; l3: number } {
  const l3 = 14 + tagBytes.length;
  const frame = new Uint8Array(l3 + l3Len);
  frame.set(dst.subarray(0, 6), 0);
  frame.set(src.subarray(0, 6), 6);
  frame.set(tagBytes, 12);
  put16(frame, 12 + tagBytes.length, ethertype);
  return { frame, l3 };
}

/** Writes a 20-byte IPv4 header (no options) at `o` with its checksum. */
export function writeIpv4Header(f: Uint8Array, o: number, totalLen: number, proto: number, ttl: number, src: Uint8Array | number, dst: Uint8Array | number, id = 0, df = false): void {
  f[o] = 0x45;
  f[o + 1] = 0;
  put16(f, o + 2, totalLen);
  put16(f, o + 4, id);
  put16(f, o + 6, df ? 0x4000 : 0);
  f[o + 8] = ttl;
  f[o + 9] = proto;
  put16(f, o + 10, 0);
  if (typeof src === 'number') put32(f, o + 12, src);
  else f.set(src.subarray(0, 4), o + 12);
  if (typeof dst === 'number') put32(f, o + 16, dst);
  else f.set(dst.subarray(0, 4), o + 16);
  put16(f, o + 10, finish(sumBytes(f, o, o + 20)));
}

/** Writes a 40-byte IPv6 header at `o`. */
export function writeIpv6Header(f: Uint8Array, o: number, payloadLen: number, next: number, hopLimit: number, src: Uint8Array, dst: Uint8Array): void {
  put32(f, o, 0x60000000);
  put16(f, o + 4, payloadLen);
  f[o + 6] = next;
  f[o + 7] = hopLimit;
  f.set(src.subarray(0, 16), o + 8);
  f.set(dst.subarray(0, 16), o + 24);
}

/** The L3/L4 layout of an IP packet inside a frame. */
export interface IpInfo {
  version: 4 | 6;
  /** Offset of the IP header in the frame. */
  l3: number;
  /** Offset of the source / destination address in the frame (4 or 16 bytes). */
  srcOff: number;
  dstOff: number;
  addrLen: 4 | 16;
  /** Upper-layer protocol (after IPv6 extension headers); -1 if not found (e.g. ESP, truncated chain). */
  proto: number;
  /** Offset of the upper-layer header. */
  l4: number;
  /** End of the IP packet in the frame (header length field; clipped to the frame). */
  end: number;
  /** True if the IP packet claims more bytes than the frame holds. */
  truncated: boolean;
  /** IPv4 MF or offset != 0 / IPv6 fragment header present. */
  fragment: boolean;
  /** A fragment with a non-zero offset (no upper-layer header in it). */
  laterFragment: boolean;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl: number;
}

/** Parses the IPv4/IPv6 header at `l3` (walking IPv6 extension headers); null if not a sane IP header. */
export function parseIp(f: Uint8Array, l3: number, ethertype: number): IpInfo | null {
  if (ethertype === ETH_IPV4) {
    if (f.length < l3 + 20 || f[l3] >> 4 !== 4) return null;
    const ihl = (f[l3] & 15) * 4;
    const total = be16(f, l3 + 2);
    if (ihl < 20 || total < ihl || f.length < l3 + ihl) return null;
    const fragField = be16(f, l3 + 6);
    const offset = fragField & 0x1fff;
    const mf = (fragField & 0x2000) !== 0;
    return {
      version: 4,
      l3,
      srcOff: l3 + 12,
      dstOff: l3 + 16,
      addrLen: 4,
      proto: f[l3 + 9],
      l4: l3 + ihl,
      end: Math.min(f.length, l3 + total),
      truncated: f.length < l3 + total,
      fragment: mf || offset !== 0,
      laterFragment: offset !== 0,
      ttl: f[l3 + 8],
    };
  }
  if (ethertype === ETH_IPV6) {
    if (f.length < l3 + 40 || f[l3] >> 4 !== 6) return null;
    const total = 40 + be16(f, l3 + 4);
    const end = Math.min(f.length, l3 + total);
    let next = f[l3 + 6];
    let o = l3 + 40;
    let fragment = false;
    let later = false;
    for (let n = 0; n < 8; n++) {
      if (next === 0 || next === 43 || next === 60) {
        if (o + 8 > end) return { ...v6(f, l3, end, total), proto: -1, l4: o, fragment, laterFragment: later };
        const len = (f[o + 1] + 1) * 8;
        next = f[o];
        o += len;
      } else if (next === 44) {
        if (o + 8 > end) return { ...v6(f, l3, end, total), proto: -1, l4: o, fragment, laterFragment: later };
        fragment = true;
        later = (be16(f, o + 2) & 0xfff8) !== 0;
        next = f[o];
        o += 8;
      } else break;
    }
    if (next === 0 || next === 43 || next === 60 || next === 44) next = -1;
    return { ...v6(f, l3, end, total), proto: next, l4: o, fragment, laterFragment: later };
  }
  return null;
}

function v6(f: Uint8Array, l3: number, end: number, total: number) {
  return { version: 6 as const, l3, srcOff: l3 + 8, dstOff: l3 + 24, addrLen: 16 as const, end, truncated: f.length < l3 + total, ttl: f[l3 + 7] };
}

/** True if the IPv4 address (number) is unusable as an ICMP error destination or reply source (0/8, 127/8, multicast, broadcast). */
export function ipv4Special(n: number): boolean {
  const a = n >>> 24;
  return a === 0 || a === 127 || a >= 224;
}

/** The solicited-node multicast address ff02::1:ffXX:XXXX of the 16-byte address at `o`. */
export function solicitedNode(b: Uint8Array, o = 0): Uint8Array {
  const out = new Uint8Array(16);
  out[0] = 0xff;
  out[1] = 0x02;
  out[11] = 0x01;
  out[12] = 0xff;
  out[13] = b[o + 13];
  out[14] = b[o + 14];
  out[15] = b[o + 15];
  return out;
}

/** The Ethernet multicast MAC 33:33:xx:xx:xx:xx of the IPv6 multicast address at `o` (RFC 2464 7). */
export function ipv6MulticastMac(b: Uint8Array, o = 0): Uint8Array {
  return Uint8Array.of(0x33, 0x33, b[o + 12], b[o + 13], b[o + 14], b[o + 15]);
}
