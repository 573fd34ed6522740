// IPv6 Neighbor Discovery (RFC 4861) on Ethernet: neighbour solicitations and advertisements,
// parsing (with the RFC 4861 7.1 validity checks), solicited advertisements for owned addresses,
// solicitations (multicast to the solicited-node group, or unicast refresh probes) and unsolicited
// advertisements for an address coming up.
import {
  ETH_IPV6,
  PROTO_ICMPV6,
  be16,
  bytesEqual,
  ethFrame,
  ethReply,
  finish,
  ipv6MulticastMac,
  macBytes,
  pseudoSum,
  put16,
  solicitedNode,
  sumBytes,
  vlanTagBytes,
  writeIpv6Header,
  type EthInfo,
  type IpInfo,
  type MacLike,
} from './frame.js';

export const ND_NS = 135;
export const ND_NA = 136;
export const OPT_SOURCE_LL = 1;
export const OPT_TARGET_LL = 2;
/** NA flags (byte 4 of the ICMPv6 message). */
export const NA_ROUTER = 0x80;
export const NA_SOLICITED = 0x40;
export const NA_OVERRIDE = 0x20;

const ALL_NODES = Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const UNSPECIFIED = new Uint8Array(16);

/** A neighbour solicitation or advertisement inside a frame (offsets into the frame). */
export interface NdInfo {
  type: 135 | 136;
  /** Offset of the ICMPv6 header. */
  icmp: number;
  /** Offset of the 16-byte target address. */
  targetOff: number;
  /** Offset of the link-layer address in the source (NS) or target (NA) link-layer address option; -1 if absent. */
  llOff: number;
  /** NA flags byte (R 0x80, S 0x40, O 0x20); 0 for NS. */
  flags: number;
  /** The source address is :: (duplicate address detection). */
  fromUnspecified: boolean;
}

/** True if the 16 bytes at `o` are an IPv6 multicast address (ff00::/8). */
export const isIpv6Multicast = (b: Uint8Array, o: number): boolean => b[o] === 0xff;

/**
 * Parses an NS or NA with the RFC 4861 7.1.1/7.1.2 checks: hop limit 255, ICMPv6 checksum valid,
 * code 0, length >= 24, target not multicast, every option's length non-zero, no source
 * link-layer option when the source is unspecified, and (NA) S clear when sent to multicast.
 * `ip` must be the frame's parsed IPv6 layer (parseIp). null if not a valid NS/NA.
 */
export function parseNd(f: Uint8Array, ip: IpInfo): NdInfo | null {
  if (ip.version !== 6 || ip.proto !== PROTO_ICMPV6 || ip.truncated || ip.fragment) return null;
  const o = ip.l4;
  const len = ip.end - o;
  if (len < 24) return null;
  const type = f[o];
  if (type !== ND_NS && type !== ND_NA) return null;
  if (ip.ttl !== 255 || f[o + 1] !== 0) return null;
  if (fold16(pseudoSum(f, ip.srcOff, ip.dstOff, 16, PROTO_ICMPV6, len) + sumBytes(f, o, ip.end)) !== 0xffff) return null;
  if (isIpv6Multicast(f, o + 8)) return null;
  const fromUnspecified = bytesEqual(f, ip.srcOff, UNSPECIFIED, 0, 16);
  const flags = type === ND_NA ? f[o + 4] : 0;
  if (type === ND_NA && (flags & NA_SOLICITED) && isIpv6Multicast(f, ip.dstOff)) return null;
  let llOff = -1;
  const want = type === ND_NS ? OPT_SOURCE_LL : OPT_TARGET_LL;
  for (let p = o + 24; p < ip.end; ) {
    if (p + 2 > ip.end) return null;
    const optLen = f[p + 1] * 8;
    if (optLen === 0 || p + optLen > ip.end) return null;
    if (f[p] === want && optLen >= 8 && llOff < 0) llOff = p + 2;
    p += optLen;
  }
  if (type === ND_NS && fromUnspecified && llOff >= 0) return null;
  return { type, icmp: o, targetOff: o + 8, llOff, flags, fromUnspecified };
}

function fold16(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** Writes an NS/NA message (24 bytes + one 8-byte link-layer option) at `o` with its checksum. */
function writeNd(f: Uint8Array, ip6: number, o: number, type: number, flags: number, target: Uint8Array, targetOff: number, optType: number, mac: Uint8Array): void {
  f[o] = type;
  f[o + 1] = 0;
  put16(f, o + 2, 0);
  f[o + 4] = flags;
  f.set(target.subarray(targetOff, targetOff + 16), o + 8);
  f[o + 24] = optType;
  f[o + 25] = 1;
  f.set(mac.subarray(0, 6), o + 26);
  const len = 32;
  put16(f, o + 2, finish(pseudoSum(f, ip6 + 8, ip6 + 24, 16, PROTO_ICMPV6, len) + sumBytes(f, o, o + len)));
}

/**
 * The solicited neighbour advertisement answering solicitation `ns` (frame `req`, layers `eth`,
 * `ip`) from `mac`: source address = the target (an owned address, which the caller checks),
 * destination = the solicitation's source with S and O set, or all-nodes ff02::1 with only O set
 * when the solicitation came from :: (DAD, RFC 4861 7.2.4); hop limit 255; target link-layer
 * address option = `mac`; Ethernet destination = the asker's Ethernet source (33:33:00:00:00:01
 * for the DAD case); VLAN tags kept. `router` sets the R flag (default false).
 */
export function buildNaReply(req: Uint8Array, eth: EthInfo, ip: IpInfo, ns: NdInfo, mac: Uint8Array, router = false): Uint8Array {
  const dad = ns.fromUnspecified;
  const dstIp = dad ? ALL_NODES : req.subarray(ip.srcOff, ip.srcOff + 16);
  const dstMac = dad ? ipv6MulticastMac(ALL_NODES) : req.subarray(6, 12);
  const { frame, l3 } = ethReply(dstMac, 0, mac, req, eth, ETH_IPV6, 40 + 32);
  writeIpv6Header(frame, l3, 32, PROTO_ICMPV6, 255, req.subarray(ns.targetOff, ns.targetOff + 16), dstIp);
  const flags = (router ? NA_ROUTER : 0) | (dad ? 0 : NA_SOLICITED) | NA_OVERRIDE;
  writeNd(frame, l3, l3 + 40, ND_NA, flags, req, ns.targetOff, OPT_TARGET_LL, mac);
  return frame;
}

export interface NsOptions {
  /** Our MAC (Ethernet source and source link-layer address option). */
  mac: MacLike;
  /** Our IPv6 address on that side (source of the solicitation); :: for DAD (then no option is sent). */
  source: Uint8Array;
  /** The address to resolve. */
  target: Uint8Array;
  /** Unicast refresh probe: send to this MAC and to the target address itself instead of its solicited-node group. */
  dstMac?: MacLike;
  vlan?: readonly number[];
}

/**
 * A neighbour solicitation for `target`: to the solicited-node multicast group ff02::1:ffXX:XXXX
 * (Ethernet 33:33:ff:XX:XX:XX) with a source link-layer address option, or unicast to the target
 * (refresh probe, RFC 4861 7.3.3 PROBE) when `dstMac` is given. Hop limit 255.
 */
export function buildNs(o: NsOptions): Uint8Array {
  const mac = macBytes(o.mac);
  const unicast = o.dstMac !== undefined;
  const dstIp = unicast ? o.target : solicitedNode(o.target);
  const dstMac = unicast ? macBytes(o.dstMac!) : ipv6MulticastMac(dstIp);
  const dad = bytesEqual(o.source, 0, UNSPECIFIED, 0, 16);
  const icmpLen = dad ? 24 : 32;
  const { frame, l3 } = ethFrame(dstMac, mac, vlanTagBytes(o.vlan), ETH_IPV6, 40 + icmpLen);
  writeIpv6Header(frame, l3, icmpLen, PROTO_ICMPV6, 255, o.source, dstIp);
  const p = l3 + 40;
  if (dad) {
    frame[p] = ND_NS;
    frame.set(o.target.subarray(0, 16), p + 8);
    put16(frame, p + 2, finish(pseudoSum(frame, l3 + 8, l3 + 24, 16, PROTO_ICMPV6, 24) + sumBytes(frame, p, p + 24)));
  } else writeNd(frame, l3, p, ND_NS, 0, o.target, 0, OPT_SOURCE_LL, mac);
  return frame;
}

/**
 * An unsolicited neighbour advertisement for `address` at `mac` (RFC 4861 7.2.6): source =
 * `address`, destination all-nodes ff02::1 (Ethernet 33:33:00:00:00:01), O set, S clear, target
 * link-layer address option, hop limit 255.
 */
export function buildUnsolicitedNa(mac: MacLike, address: Uint8Array, opts: { router?: boolean; vlan?: readonly number[] } = {}): Uint8Array {
  const m = macBytes(mac);
  const { frame, l3 } = ethFrame(ipv6MulticastMac(ALL_NODES), m, vlanTagBytes(opts.vlan), ETH_IPV6, 40 + 32);
  writeIpv6Header(frame, l3, 32, PROTO_ICMPV6, 255, address, ALL_NODES);
  writeNd(frame, l3, l3 + 40, ND_NA, (opts.router ? NA_ROUTER : 0) | NA_OVERRIDE, address, 0, OPT_TARGET_LL, m);
  return frame;
}

export { ALL_NODES };
