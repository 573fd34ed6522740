// Small builders for test frames (Ethernet, 802.1Q/QinQ, IPv4 with options, IPv6 with extension
// headers, TCP, UDP, ICMP, ICMPv6) with correct checksums, and a small parser to inspect frames
// the engine emits. Builders return fresh Uint8Arrays; nothing here is tuned for speed.
import { fixFrame, internetChecksum } from './csum.js';

// ---------------------------------------------------------------------------------------------
// Addresses

/** Parses an IPv4 dotted quad (4 bytes) or an IPv6 address (16 bytes). Throws on bad input. */
export function parseIp(s: string): Uint8Array {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

export function parseIPv4(s: string): Uint8Array {
  const parts = s.split('.');
  if (parts.length !== 4) throw new Error(`bad IPv4 address: ${s}`);
  const out = new Uint8Array(4);
  parts.forEach((p, i) => {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`bad IPv4 address: ${s}`);
    out[i] = Number(p);
  });
  return out;
}

export function parseIPv6(s: string): Uint8Array {
  const bad = () => new Error(`bad IPv6 address: ${s}`);
  const halves = s.split('::');
  if (halves.length > 2) throw bad();
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    const groups = part.split(':');
    groups.forEach((g, i) => {
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad();
        out.push(parseInt(g, 16));
      }
    });
    return out;
  };
  const head = words(halves[0]);
  const tail = halves.length === 2 ? words(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) throw bad();
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Formats 4 bytes as dotted quad, 16 bytes as RFC 5952 IPv6 text. */
export function formatIp(b: Uint8Array, off = 0, len: 4 | 16 = b.length - off === 4 ? 4 : 16): string {
  if (len === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`bad MAC: ${s}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array, off = 0): string {
  return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

// ---------------------------------------------------------------------------------------------
// Builders

const EMPTY = new Uint8Array(0);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  put16(b, o, v >>> 16);
  put16(b, o + 2, v & 0xffff);
}

function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;
export const ETH_VLAN = 0x8100;
export const ETH_QINQ = 0x88a8;

export interface VlanTag {
  vid: number;
  pcp?: number;
  dei?: boolean;
  /** TPID; default 0x8100 for the innermost tag, 0x88a8 for outer tags. */
  tpid?: number;
}

/** Ethernet II header (+ payload). `vlans` lists tags outermost first. */
export function ethernet(o: {
  dst: string;
  src: string;
  type: number;
  vlans?: (number | VlanTag)[];
  payload?: Uint8Array;
}): Uint8Array {
  const tags = (o.vlans ?? []).map((t) => (typeof t === 'number' ? { vid: t } : t));
  const h = new Uint8Array(14 + 4 * tags.length);
  h.set(parseMac(o.dst), 0);
  h.set(parseMac(o.src), 6);
  tags.forEach((t, i) => {
    const tpid = t.tpid ?? (i === tags.length - 1 ? ETH_VLAN : ETH_QINQ);
    put16(h, 12 + 4 * i, tpid);
    put16(h, 14 + 4 * i, ((t.pcp ?? 0) << 13) | (t.dei ? 0x1000 : 0) | (t.vid & 0xfff));
  });
  put16(h, 12 + 4 * tags.length, o.type);
  return concat(h, o.payload ?? EMPTY);
}

export const IPPROTO = { icmp: 1, ipip: 4, tcp: 6, udp: 17, ipv6: 41, gre: 47, icmpv6: 58 } as const;

export interface Ipv4Options {
  src: string;
  dst: string;
  proto: number;
  payload?: Uint8Array;
  ttl?: number; // default 64
  id?: number; // default 0
  /** 3-bit flags field: 2 = DF, 1 = MF. Default 0. */
  flags?: number;
  /** Fragment offset in 8-byte units, as on the wire. Default 0. */
  fragOffset?: number;
  tos?: number;
  /** Raw option bytes; padded with zeros (End of Options) to a multiple of 4. */
  options?: Uint8Array;
  /** Override the computed header checksum (e.g. to build a bad one). */
  checksum?: number;
  /** Override the total length field. */
  totalLength?: number;
}

export function ipv4(o: Ipv4Options): Uint8Array {
  const optLen = o.options ? (o.options.length + 3) & ~3 : 0;
  const hl = 20 + optLen;
  const payload = o.payload ?? EMPTY;
  const h = new Uint8Array(hl);
  h[0] = 0x40 | (hl / 4);
  h[1] = o.tos ?? 0;
  put16(h, 2, o.totalLength ?? hl + payload.length);
  put16(h, 4, o.id ?? 0);
  put16(h, 6, ((o.flags ?? 0) << 13) | ((o.fragOffset ?? 0) & 0x1fff));
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  h.set(parseIPv4(o.src), 12);
  h.set(parseIPv4(o.dst), 16);
  if (o.options) h.set(o.options, 20);
  put16(h, 10, o.checksum ?? internetChecksum(h));
  return concat(h, payload);
}

/** An IPv6 extension header. `data` is the body after the next-header and length bytes (it is
 *  zero-padded to make the header a multiple of 8 bytes, or 4 for AH). For a fragment header
 *  (type 44) give fragOffset (8-byte units) / more / id instead. */
export interface Ipv6Ext {
  type: number;
  data?: Uint8Array;
  fragOffset?: number;
  more?: boolean;
  id?: number;
}

/** A routing extension header: type 0 or 2 (addresses after 4 reserved bytes) or 4 (SRH;
 *  `addresses` is the segment list, Segment List[0] = the final destination). */
export function routingExt(routingType: number, segmentsLeft: number, addresses: string[]): Ipv6Ext {
  const head = new Uint8Array(6);
  head[0] = routingType;
  head[1] = segmentsLeft;
  if (routingType === 4) head[2] = addresses.length - 1; // last entry
  return { type: 43, data: concat(head, ...addresses.map(parseIPv6)) };
}

export interface Ipv6Options {
  src: string;
  dst: string;
  /** Upper-layer protocol (after any extension headers). */
  nextHeader: number;
  payload?: Uint8Array;
  extHeaders?: Ipv6Ext[];
  hopLimit?: number; // default 64
  trafficClass?: number;
  flowLabel?: number;
  payloadLength?: number; // override
}

export function ipv6(o: Ipv6Options): Uint8Array {
  const exts = o.extHeaders ?? [];
  const extBytes = exts.map((e, i) => {
    const next = i + 1 < exts.length ? exts[i + 1].type : o.nextHeader;
    if (e.type === 44) {
      const f = new Uint8Array(8);
      f[0] = next;
      put16(f, 2, ((e.fragOffset ?? 0) << 3) | (e.more ? 1 : 0));
      put32(f, 4, e.id ?? 0);
      return f;
    }
    const data = e.data ?? EMPTY;
    const unit = e.type === 51 ? 4 : 8;
    const len = Math.max(unit === 4 ? 12 : 8, Math.ceil((data.length + 2) / unit) * unit);
    const x = new Uint8Array(len);
    x[0] = next;
    x[1] = unit === 4 ? len / 4 - 2 : len / 8 - 1;
    x.set(data, 2);
    return x;
  });
  const body = concat(...extBytes, o.payload ?? EMPTY);
  const h = new Uint8Array(40);
  const tc = o.trafficClass ?? 0;
  put32(h, 0, ((6 << 28) | (tc << 20) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0);
  put16(h, 4, o.payloadLength ?? body.length);
  h[6] = exts.length ? exts[0].type : o.nextHeader;
  h[7] = o.hopLimit ?? 64;
  h.set(parseIPv6(o.src), 8);
  h.set(parseIPv6(o.dst), 24);
  return concat(h, body);
}

/** Ones-complement sum of the pseudo-header (addresses + protocol + length), uncomplemented. */
export function pseudoHeaderSum(src: string, dst: string, proto: number, length: number): number {
  const s = parseIp(src);
  const d = parseIp(dst);
  let sum = proto + (length & 0xffff) + Math.floor(length / 0x10000);
  for (let i = 0; i < s.length; i += 2) sum += get16(s, i) + get16(d, i);
  return sum;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

/** TCP flags from a number or letters ("S", "SA", "PA", "FA", "R"): F S R P A U E C. */
export function tcpFlags(f: number | string): number {
  if (typeof f === 'number') return f;
  const bits: Record<string, number> = { F: 1, S: 2, R: 4, P: 8, A: 16, U: 32, E: 64, C: 128 };
  let v = 0;
  for (const ch of f.toUpperCase()) {
    if (!(ch in bits)) throw new Error(`bad TCP flag letter ${ch}`);
    v |= bits[ch];
  }
  return v;
}

interface L4Common {
  payload?: Uint8Array;
  /** IP addresses for the pseudo-header; without them the checksum is left 0. */
  src?: string;
  dst?: string;
  /** Override the computed checksum. */
  checksum?: number;
}

function finishL4(seg: Uint8Array, at: number, proto: number, o: L4Common): Uint8Array {
  if (o.checksum !== undefined) put16(seg, at, o.checksum);
  else if (o.src !== undefined && o.dst !== undefined) {
    let c = internetChecksum(seg, 0, seg.length, pseudoHeaderSum(o.src, o.dst, proto, seg.length));
    if (c === 0 && proto === 17) c = 0xffff;
    put16(seg, at, c);
  }
  return seg;
}

export function tcp(
  o: L4Common & {
    sport: number;
    dport: number;
    seq?: number;
    ack?: number;
    flags?: number | string; // default ACK
    window?: number; // default 65535
    urgent?: number;
    /** Raw option bytes; padded with zeros to a multiple of 4. */
    options?: Uint8Array;
  },
): Uint8Array {
  const optLen = o.options ? (o.options.length + 3) & ~3 : 0;
  const hl = 20 + optLen;
  const payload = o.payload ?? EMPTY;
  const seg = new Uint8Array(hl + payload.length);
  put16(seg, 0, o.sport);
  put16(seg, 2, o.dport);
  put32(seg, 4, (o.seq ?? 0) >>> 0);
  put32(seg, 8, (o.ack ?? 0) >>> 0);
  put16(seg, 12, ((hl / 4) << 12) | tcpFlags(o.flags ?? TCP_ACK));
  put16(seg, 14, o.window ?? 65535);
  put16(seg, 18, o.urgent ?? 0);
  if (o.options) seg.set(o.options, 20);
  seg.set(payload, hl);
  return finishL4(seg, 16, 6, o);
}

export function udp(o: L4Common & { sport: number; dport: number; length?: number }): Uint8Array {
  const payload = o.payload ?? EMPTY;
  const seg = new Uint8Array(8 + payload.length);
  put16(seg, 0, o.sport);
  put16(seg, 2, o.dport);
  put16(seg, 4, o.length ?? seg.length);
  seg.set(payload, 8);
  return finishL4(seg, 6, 17, o);
}

interface IcmpOptions {
  type: number;
  code?: number;
  id?: number;
  seq?: number;
  payload?: Uint8Array;
  checksum?: number;
}

/** ICMPv4 message; for echo (types 8/0) `id`/`seq` fill the rest-of-header word. */
export function icmp(o: IcmpOptions): Uint8Array {
  const seg = icmpBody(o);
  put16(seg, 2, o.checksum ?? internetChecksum(seg));
  return seg;
}

/** ICMPv6 message; the checksum needs the IPv6 addresses (pseudo-header). */
export function icmpv6(o: IcmpOptions & { src: string; dst: string }): Uint8Array {
  return finishL4(icmpBody(o), 2, 58, o);
}

function icmpBody(o: IcmpOptions): Uint8Array {
  const payload = o.payload ?? EMPTY;
  const seg = new Uint8Array(8 + payload.length);
  seg[0] = o.type;
  seg[1] = o.code ?? 0;
  put16(seg, 4, o.id ?? 0);
  put16(seg, 6, o.seq ?? 0);
  seg.set(payload, 8);
  return seg;
}

export interface FrameOptions {
  src: string; // IP source (family decides IPv4/IPv6)
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number;
  sport?: number;
  dport?: number;
  payload?: Uint8Array;
  srcMac?: string; // default 02:00:00:00:aa:01
  dstMac?: string; // default 02:00:00:00:00:fe
  vlans?: (number | VlanTag)[];
  // IP
  ttl?: number;
  id?: number;
  ipFlags?: number;
  fragOffset?: number;
  ipOptions?: Uint8Array;
  extHeaders?: Ipv6Ext[];
  // TCP
  seq?: number;
  ack?: number;
  tcpFlags?: number | string;
  window?: number;
  tcpOptions?: Uint8Array;
  // ICMP (id/seq come from sport/seq when not given)
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  /** Pad the frame with zeros to the 60-byte Ethernet minimum. */
  pad?: boolean;
}

/** Ethernet + IPv4/IPv6 + TCP/UDP/ICMP(v6)/raw with correct checksums. */
export function frame(o: FrameOptions): Uint8Array {
  const v6 = o.src.includes(':');
  const proto = typeof o.proto === 'number' ? o.proto : IPPROTO[o.proto];
  const addrs = { src: o.src, dst: o.dst };
  let l4: Uint8Array;
  if (proto === 6) {
    l4 = tcp({
      ...addrs,
      sport: o.sport ?? 40000,
      dport: o.dport ?? 80,
      seq: o.seq,
      ack: o.ack,
      flags: o.tcpFlags,
      window: o.window,
      options: o.tcpOptions,
      payload: o.payload,
    });
  } else if (proto === 17) {
    l4 = udp({ ...addrs, sport: o.sport ?? 40000, dport: o.dport ?? 53, payload: o.payload });
  } else if (proto === 1 || proto === 58) {
    const m = {
      type: o.icmpType ?? (proto === 1 ? 8 : 128),
      code: o.icmpCode,
      id: o.icmpId ?? o.sport ?? 1,
      seq: o.seq ?? 1,
      payload: o.payload,
    };
    l4 = proto === 1 ? icmp(m) : icmpv6({ ...m, ...addrs });
  } else {
    l4 = o.payload ?? EMPTY;
  }
  const ip = v6
    ? ipv6({ ...addrs, nextHeader: proto, payload: l4, hopLimit: o.ttl, extHeaders: o.extHeaders })
    : ipv4({
        ...addrs,
        proto,
        payload: l4,
        ttl: o.ttl,
        id: o.id,
        flags: o.ipFlags,
        fragOffset: o.fragOffset,
        options: o.ipOptions,
      });
  let f = ethernet({
    dst: o.dstMac ?? '02:00:00:00:00:fe',
    src: o.srcMac ?? '02:00:00:00:aa:01',
    type: v6 ? ETH_IPV6 : ETH_IPV4,
    vlans: o.vlans,
    payload: ip,
  });
  // A routing header with segments left changes the pseudo-header destination.
  if (o.extHeaders?.some((e) => e.type === 43)) fixFrame(f);
  if (o.pad && f.length < 60) f = concat(f, new Uint8Array(60 - f.length));
  return f;
}

// ---------------------------------------------------------------------------------------------
// Parser

export interface ParsedIp {
  family: 4 | 6;
  offset: number; // IP header offset
  headerLength: number; // IPv4: IHL*4; IPv6: 40 + extension headers
  totalLength: number; // from the length field(s)
  src: string;
  dst: string;
  proto: number; // upper-layer protocol (after IPv6 extension headers)
  ttl: number; // TTL or hop limit
  tos: number; // TOS / traffic class
  id: number; // IPv4 id, or IPv6 fragment-header id (0 without one)
  fragOffset: number; // 8-byte units
  moreFragments: boolean;
  dontFragment: boolean;
  l4Offset: number;
  sport?: number;
  dport?: number;
  tcp?: { seq: number; ack: number; flags: number; window: number; headerLength: number };
  icmp?: { type: number; code: number; id: number; seq: number };
  payloadOffset?: number; // L4 payload offset (after TCP/UDP/ICMP header)
  payloadLength?: number;
  /** Inner packet of IPIP / 6in4 / 4in6 / IP-in-GRE. */
  inner?: ParsedIp;
  truncated: boolean;
}

export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  vlans: number[]; // VLAN ids, outermost first
  etherType: number;
  l3Offset: number;
  ip: ParsedIp | null;
}

export function parseFrame(b: Uint8Array): ParsedFrame {
  if (b.length < 14) throw new Error('frame shorter than an Ethernet header');
  let o = 12;
  const vlans: number[] = [];
  let type = get16(b, o);
  while ((type === ETH_VLAN || type === ETH_QINQ || type === 0x9100) && o + 6 <= b.length) {
    vlans.push(get16(b, o + 2) & 0xfff);
    o += 4;
    type = get16(b, o);
  }
  o += 2;
  const ip = type === ETH_IPV4 || type === ETH_IPV6 ? parseIpPacket(b, o) : null;
  return { dstMac: formatMac(b, 0), srcMac: formatMac(b, 6), vlans, etherType: type, l3Offset: o, ip };
}

/** Parses the IP packet at `o` (version from its first nibble). */
export function parseIpPacket(b: Uint8Array, o: number): ParsedIp | null {
  if (o >= b.length) return null;
  const ver = b[o] >> 4;
  let r: ParsedIp;
  if (ver === 4) {
    if (o + 20 > b.length) return null;
    const hl = (b[o] & 15) * 4;
    const ff = get16(b, o + 6);
    r = {
      family: 4,
      offset: o,
      headerLength: hl,
      totalLength: get16(b, o + 2),
      src: formatIp(b, o + 12, 4),
      dst: formatIp(b, o + 16, 4),
      proto: b[o + 9],
      ttl: b[o + 8],
      tos: b[o + 1],
      id: get16(b, o + 4),
      fragOffset: ff & 0x1fff,
      moreFragments: (ff & 0x2000) !== 0,
      dontFragment: (ff & 0x4000) !== 0,
      l4Offset: o + hl,
      truncated: false,
    };
  } else if (ver === 6) {
    if (o + 40 > b.length) return null;
    r = {
      family: 6,
      offset: o,
      headerLength: 40,
      totalLength: 40 + get16(b, o + 4),
      src: formatIp(b, o + 8, 16),
      dst: formatIp(b, o + 24, 16),
      proto: b[o + 6],
      ttl: b[o + 7],
      tos: (get16(b, o) >> 4) & 0xff,
      id: 0,
      fragOffset: 0,
      moreFragments: false,
      dontFragment: false,
      l4Offset: o + 40,
      truncated: false,
    };
    let p = o + 40;
    for (;;) {
      const nh = r.proto;
      if (p + 8 > b.length) break;
      if (nh === 44) {
        const fo = get16(b, p + 2);
        r.fragOffset = fo >> 3;
        r.moreFragments = (fo & 1) !== 0;
        r.id = get32(b, p + 4);
        r.proto = b[p];
        p += 8;
      } else if (nh === 0 || nh === 43 || nh === 60 || nh === 51) {
        r.proto = b[p];
        p += nh === 51 ? (b[p + 1] + 2) * 4 : (b[p + 1] + 1) * 8;
      } else break;
    }
    r.l4Offset = p;
    r.headerLength = p - o;
  } else return null;
  const end = o + r.totalLength;
  r.truncated = end > b.length;
  const l4 = r.l4Offset;
  if (r.fragOffset !== 0) return r;
  const have = (n: number) => l4 + n <= b.length;
  const setPayload = (hl: number) => {
    r.payloadOffset = l4 + hl;
    r.payloadLength = Math.max(0, Math.min(end, b.length) - (l4 + hl));
  };
  if ((r.proto === 6 || r.proto === 17) && have(r.proto === 6 ? 20 : 8)) {
    r.sport = get16(b, l4);
    r.dport = get16(b, l4 + 2);
    if (r.proto === 6) {
      const hl = (b[l4 + 12] >> 4) * 4;
      r.tcp = { seq: get32(b, l4 + 4), ack: get32(b, l4 + 8), flags: b[l4 + 13], window: get16(b, l4 + 14), headerLength: hl };
      setPayload(hl);
    } else setPayload(8);
  } else if ((r.proto === 1 || r.proto === 58) && have(8)) {
    r.icmp = { type: b[l4], code: b[l4 + 1], id: get16(b, l4 + 4), seq: get16(b, l4 + 6) };
    setPayload(8);
  } else if (r.proto === 4 || r.proto === 41) {
    r.inner = parseIpPacket(b, l4) ?? undefined;
  } else if (r.proto === 47 && have(4)) {
    const flags = get16(b, l4);
    const ptype = get16(b, l4 + 2);
    const gl = 4 + (flags & 0x8000 ? 4 : 0) + (flags & 0x2000 ? 4 : 0) + (flags & 0x1000 ? 4 : 0);
    if (ptype === ETH_IPV4 || ptype === ETH_IPV6) r.inner = parseIpPacket(b, l4 + gl) ?? undefined;
  }
  return r;
}
