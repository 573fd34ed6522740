// ICMP/ICMPv6 messages the balancer sends, and the TCP reset of a refused connection: echo replies
// for owned addresses, errors quoting an offending packet (fragmentation needed / packet too big,
// port unreachable) with the RFC 1122 / RFC 1812 / RFC 4443 rules on when not to send one, and
// RST|ACK for a refused SYN (RFC 9293 3.10.7.1). Every builder returns a new frame addressed to the
// offending frame's Ethernet source from `mac`, keeping its VLAN tags, with all checksums set.
import { isIPv4 } from 'node:net';
import {
  ETH_IPV4,
  ETH_IPV6,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  be16,
  be32,
  bytesEqual,
  ethReply,
  finish,
  ipv4Number,
  ipv4Special,
  ipv6Bytes,
  isMulticastMac,
  pseudoSum,
  put16,
  put32,
  sumBytes,
  writeIpv4Header,
  writeIpv6Header,
  type EthInfo,
  type IpInfo,
} from './frame.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_CODE_PORT_UNREACH = 3;
export const ICMP_CODE_FRAG_NEEDED = 4;
export const ICMP6_DEST_UNREACH = 1;
export const ICMP6_PACKET_TOO_BIG = 2;
export const ICMP6_CODE_PORT_UNREACH = 4;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;

/** RFC 1812 4.3.2.3: an ICMPv4 error is at most 576 bytes of IP. */
export const ICMP4_ERROR_MAX = 576;
/** RFC 4443 2.4(c): an ICMPv6 error is at most the minimum IPv6 MTU. */
export const ICMP6_ERROR_MAX = 1280;
/** TTL / hop limit of what the balancer originates. */
export const DEFAULT_TTL = 64;

const UNSPECIFIED6 = new Uint8Array(16);

/** ICMPv4 types that are errors (no error is ever sent about one of these, RFC 1122 3.2.2). */
const ICMP4_ERRORS = new Set([3, 4, 5, 11, 12]);

const validIcmp4 = (f: Uint8Array, ip: IpInfo): boolean => finish(sumBytes(f, ip.l4, ip.end)) === 0;
const validIcmp6 = (f: Uint8Array, ip: IpInfo): boolean =>
  finish(pseudoSum(f, ip.srcOff, ip.dstOff, 16, PROTO_ICMPV6, ip.end - ip.l4) + sumBytes(f, ip.l4, ip.end)) === 0;

/**
 * True if the frame's IP packet is an ICMP echo request (IPv4 type 8 / ICMPv6 type 128, code 0,
 * valid checksum, whole and unfragmented). Does not look at the destination.
 */
export function isEchoRequest(f: Uint8Array, ip: IpInfo): boolean {
  if (ip.truncated || ip.fragment || ip.end - ip.l4 < 8) return false;
  if (ip.version === 4) return ip.proto === PROTO_ICMP && f[ip.l4] === ICMP_ECHO_REQUEST && f[ip.l4 + 1] === 0 && validIcmp4(f, ip);
  return ip.proto === PROTO_ICMPV6 && f[ip.l4] === ICMP6_ECHO_REQUEST && f[ip.l4 + 1] === 0 && validIcmp6(f, ip);
}

/**
 * The echo reply to echo request `req` (isEchoRequest() true; its destination an owned unicast
 * address, which the caller checks): from that destination to the request's source, TTL/hop limit
 * 64, same identifier, sequence and data; IPv4 options and IPv6 extension headers are not echoed.
 * null if the request's source cannot be answered (0/8, 127/8, multicast, broadcast; IPv6 :: or
 * multicast) or its destination is IPv6 multicast.
 */
export function buildEchoReply(req: Uint8Array, eth: EthInfo, ip: IpInfo, mac: Uint8Array): Uint8Array | null {
  const dataLen = ip.end - ip.l4;
  if (ip.version === 4) {
    if (ipv4Special(be32(req, ip.srcOff)) || ipv4Special(be32(req, ip.dstOff))) return null;
    const { frame, l3 } = ethReply(req, 6, mac, req, eth, ETH_IPV4, 20 + dataLen);
    writeIpv4Header(frame, l3, 20 + dataLen, PROTO_ICMP, DEFAULT_TTL, req.subarray(ip.dstOff, ip.dstOff + 4), req.subarray(ip.srcOff, ip.srcOff + 4));
    const p = l3 + 20;
    frame.set(req.subarray(ip.l4, ip.end), p);
    frame[p] = ICMP_ECHO_REPLY;
    put16(frame, p + 2, 0);
    put16(frame, p + 2, finish(sumBytes(frame, p, p + dataLen)));
    return frame;
  }
  if (req[ip.srcOff] === 0xff || req[ip.dstOff] === 0xff || bytesEqual(req, ip.srcOff, UNSPECIFIED6, 0, 16)) return null;
  const { frame, l3 } = ethReply(req, 6, mac, req, eth, ETH_IPV6, 40 + dataLen);
  writeIpv6Header(frame, l3, dataLen, PROTO_ICMPV6, DEFAULT_TTL, req.subarray(ip.dstOff, ip.dstOff + 16), req.subarray(ip.srcOff, ip.srcOff + 16));
  const p = l3 + 40;
  frame.set(req.subarray(ip.l4, ip.end), p);
  frame[p] = ICMP6_ECHO_REPLY;
  put16(frame, p + 2, 0);
  put16(frame, p + 2, finish(pseudoSum(frame, l3 + 8, l3 + 24, 16, PROTO_ICMPV6, dataLen) + sumBytes(frame, p, p + dataLen)));
  return frame;
}

/**
 * Whether an ICMP error may be sent about this packet (RFC 1122 3.2.2, RFC 1812 4.3.2.7, RFC 4443
 * 2.4(e)): not about an ICMP error, not about a later fragment, not to a link-layer multicast or
 * broadcast frame's sender unless `allowMulticast` (ICMPv6 packet too big may answer multicast),
 * not to an invalid source (IPv4 0/8, 127/8, class D/E, 255.255.255.255; IPv6 :: or multicast).
 */
export function mayReportError(f: Uint8Array, ip: IpInfo, allowMulticast = false): boolean {
  if (ip.laterFragment) return false;
  if (!allowMulticast && isMulticastMac(f, 0)) return false;
  if (ip.version === 4) {
    if (ipv4Special(be32(f, ip.srcOff))) return false;
    if (!allowMulticast && be32(f, ip.dstOff) >>> 28 >= 14) return false;
    if (ip.proto === PROTO_ICMP && (ip.end - ip.l4 < 1 || ICMP4_ERRORS.has(f[ip.l4]))) return false;
    return true;
  }
  if (f[ip.srcOff] === 0xff || bytesEqual(f, ip.srcOff, UNSPECIFIED6, 0, 16)) return false;
  if (!allowMulticast && f[ip.dstOff] === 0xff) return false;
  if (ip.proto === PROTO_ICMPV6 && (ip.end - ip.l4 < 1 || f[ip.l4] < 128)) return false;
  if (ip.proto < 0) return false; // extension header chain not understood: cannot tell
  return true;
}

/** An address argument: IPv4/IPv6 text, or its 4/16 bytes. */
export type AddressLike = string | Uint8Array;

function addr4(a: AddressLike): Uint8Array {
  if (typeof a !== 'string') {
    if (a.length !== 4) throw new Error('IPv4 address must be 4 bytes');
    return a;
  }
  const out = new Uint8Array(4);
  put32(out, 0, ipv4Number(a));
  return out;
}

function addr6(a: AddressLike): Uint8Array {
  if (typeof a !== 'string') {
    if (a.length !== 16) throw new Error('IPv6 address must be 16 bytes');
    return a;
  }
  if (isIPv4(a)) throw new Error(`"${a}" is not an IPv6 address`);
  return ipv6Bytes(a);
}

/**
 * An ICMPv4 error of `type`/`code` with bytes 4..7 = `rest` (e.g. next-hop MTU for type 3 code 4),
 * quoting the offending IPv4 packet up to a 576-byte error, from `from` to the packet's source.
 * null when mayReportError() says no.
 */
export function buildIcmp4Error(f: Uint8Array, eth: EthInfo, ip: IpInfo, type: number, code: number, rest: number, from: AddressLike, mac: Uint8Array): Uint8Array | null {
  if (ip.version !== 4 || !mayReportError(f, ip)) return null;
  const quote = Math.min(ip.end - ip.l3, ICMP4_ERROR_MAX - 28);
  const total = 28 + quote;
  const { frame, l3 } = ethReply(f, 6, mac, f, eth, ETH_IPV4, total);
  writeIpv4Header(frame, l3, total, PROTO_ICMP, DEFAULT_TTL, addr4(from), f.subarray(ip.srcOff, ip.srcOff + 4));
  const p = l3 + 20;
  frame[p] = type;
  frame[p + 1] = code;
  put32(frame, p + 4, rest);
  frame.set(f.subarray(ip.l3, ip.l3 + quote), p + 8);
  put16(frame, p + 2, finish(sumBytes(frame, p, p + 8 + quote)));
  return frame;
}

/**
 * An ICMPv6 error of `type`/`code` with bytes 4..7 = `rest` (the MTU for packet too big), quoting
 * the offending IPv6 packet up to a 1280-byte error, from `from` to the packet's source, hop limit
 * 64. null when mayReportError() says no (packet too big may answer a multicast destination).
 */
export function buildIcmp6Error(f: Uint8Array, eth: EthInfo, ip: IpInfo, type: number, code: number, rest: number, from: AddressLike, mac: Uint8Array): Uint8Array | null {
  if (ip.version !== 6 || !mayReportError(f, ip, type === ICMP6_PACKET_TOO_BIG)) return null;
  const quote = Math.min(ip.end - ip.l3, ICMP6_ERROR_MAX - 48);
  const len = 8 + quote;
  const { frame, l3 } = ethReply(f, 6, mac, f, eth, ETH_IPV6, 40 + len);
  writeIpv6Header(frame, l3, len, PROTO_ICMPV6, DEFAULT_TTL, addr6(from), f.subarray(ip.srcOff, ip.srcOff + 16));
  const p = l3 + 40;
  frame[p] = type;
  frame[p + 1] = code;
  put32(frame, p + 4, rest);
  frame.set(f.subarray(ip.l3, ip.l3 + quote), p + 8);
  put16(frame, p + 2, finish(pseudoSum(frame, l3 + 8, l3 + 24, 16, PROTO_ICMPV6, len) + sumBytes(frame, p, p + len)));
  return frame;
}

/**
 * "Too big for the next hop": ICMPv4 type 3 code 4 with the next-hop MTU (RFC 1191) or ICMPv6
 * type 2 with the MTU (RFC 4443 3.2), quoting the packet, from `from` (an address the balancer
 * owns on the side the packet came in, or the VIP) to the packet's source. IPv4 only when DF is
 * set (otherwise the packet may be fragmented: null). null also when mayReportError() says no.
 */
export function buildTooBig(f: Uint8Array, eth: EthInfo, ip: IpInfo, mtu: number, from: AddressLike, mac: Uint8Array): Uint8Array | null {
  if (ip.version === 4) {
    if ((be16(f, ip.l3 + 6) & 0x4000) === 0) return null;
    return buildIcmp4Error(f, eth, ip, ICMP_DEST_UNREACH, ICMP_CODE_FRAG_NEEDED, mtu & 0xffff, from, mac);
  }
  return buildIcmp6Error(f, eth, ip, ICMP6_PACKET_TOO_BIG, 0, Math.max(mtu, 1280) >>> 0, from, mac);
}

/**
 * Port unreachable for a refused UDP datagram: ICMPv4 type 3 code 3 / ICMPv6 type 1 code 4, from
 * the datagram's destination (the VIP) to its source, quoting it. null when mayReportError() says no.
 */
export function buildPortUnreachable(f: Uint8Array, eth: EthInfo, ip: IpInfo, mac: Uint8Array): Uint8Array | null {
  const from = f.slice(ip.dstOff, ip.dstOff + ip.addrLen);
  if (ip.version === 4) return buildIcmp4Error(f, eth, ip, ICMP_DEST_UNREACH, ICMP_CODE_PORT_UNREACH, 0, from, mac);
  return buildIcmp6Error(f, eth, ip, ICMP6_DEST_UNREACH, ICMP6_CODE_PORT_UNREACH, 0, from, mac);
}

/**
 * The reset refusing TCP segment `f` (RFC 9293 3.10.7.1), from its destination (the VIP) to its
 * source, ports swapped, no options, window 0: for a segment without ACK (a SYN), RST|ACK with
 * seq 0 and ack = seq + payload length + 1 for SYN (+1 for FIN); for a segment with ACK, RST with
 * seq = its ack. null for a RST (never answered), a truncated header, a later fragment, or an
 * unanswerable source/destination (as for ICMP errors).
 */
export function buildTcpReset(f: Uint8Array, eth: EthInfo, ip: IpInfo, mac: Uint8Array): Uint8Array | null {
  if (ip.proto !== PROTO_TCP || ip.laterFragment || ip.l4 + 20 > f.length || isMulticastMac(f, 0)) return null;
  const t = ip.l4;
  const flags = f[t + 13];
  if (flags & 0x04) return null;
  const dataOff = (f[t + 12] >> 4) * 4;
  if (dataOff < 20) return null;
  if (ip.version === 4) {
    if (ipv4Special(be32(f, ip.srcOff)) || ipv4Special(be32(f, ip.dstOff))) return null;
  } else if (f[ip.srcOff] === 0xff || f[ip.dstOff] === 0xff || bytesEqual(f, ip.srcOff, UNSPECIFIED6, 0, 16)) return null;
  // Payload length from the IP length (the frame may be cut, the segment's length is what counts).
  const ipTotal = ip.version === 4 ? be16(f, ip.l3 + 2) : 40 + be16(f, ip.l3 + 4);
  const payload = Math.max(0, ip.l3 + ipTotal - t - dataOff);
  let seq = 0;
  let ack = 0;
  let outFlags = 0x04;
  if (flags & 0x10) seq = be32(f, t + 8);
  else {
    ack = (be32(f, t + 4) + payload + (flags & 0x02 ? 1 : 0) + (flags & 0x01 ? 1 : 0)) >>> 0;
    outFlags |= 0x10;
  }
  const hdr = ip.version === 4 ? 20 : 40;
  const { frame, l3 } = ethReply(f, 6, mac, f, eth, ip.version === 4 ? ETH_IPV4 : ETH_IPV6, hdr + 20);
  const src = f.subarray(ip.dstOff, ip.dstOff + ip.addrLen);
  const dst = f.subarray(ip.srcOff, ip.srcOff + ip.addrLen);
  if (ip.version === 4) writeIpv4Header(frame, l3, 40, PROTO_TCP, DEFAULT_TTL, src, dst, 0, true);
  else writeIpv6Header(frame, l3, 20, PROTO_TCP, DEFAULT_TTL, src, dst);
  const p = l3 + hdr;
  put16(frame, p, be16(f, t + 2));
  put16(frame, p + 2, be16(f, t));
  put32(frame, p + 4, seq);
  put32(frame, p + 8, ack);
  frame[p + 12] = 5 << 4;
  frame[p + 13] = outFlags;
  const s = ip.version === 4 ? 12 : 8;
  const d = ip.version === 4 ? 16 : 24;
  put16(frame, p + 16, finish(pseudoSum(frame, l3 + s, l3 + d, ip.addrLen, PROTO_TCP, 20) + sumBytes(frame, p, p + 20)));
  return frame;
}
