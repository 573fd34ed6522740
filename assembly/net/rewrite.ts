// Packet rewrites for the forwarding methods: NAT address rewriting with incremental checksums
// (RFC 1624), the Ethernet header every forwarded frame leaves with, and tunnel encapsulation
// (IPIP RFC 2003, IPv6 counterparts RFC 2473, GRE RFC 2784, GUE variant 1 = IP directly in UDP, as
// Katran does). Encapsulation moves the frame start back into the headroom: no payload moves.
import { sumAddr, delta, adjust, adjustUdp, sumBytes, finish, fold } from './csum';
import {
  pIsEthernet, pL3, pFamily, pProto, pL4, pHasL4, pL3Len, pEthertype, pRouting, pDst,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE, ET_IPV4, ET_IPV6, be16,
} from './parse';
import { lbMacHi, lbMacLo, storeMac } from '../lb/config';
import { copy16 } from '../mem';

/** Copies `len` (4|16) address bytes from src over dst; returns the checksum difference term. */
export function replaceAddr(dst: usize, src: usize, len: u32): u64 {
  const before = sumAddr(dst, len);
  if (len == 4) store<u32>(dst, load<u32>(src));
  else {
    store<u64>(dst, load<u64>(src));
    store<u64>(dst, load<u64>(src, 8), 8);
  }
  return delta(before, sumAddr(dst, len));
}

/**
 * Applies a pseudo-header difference to the transport checksum of the parsed packet (TCP, UDP,
 * ICMPv6 carry a pseudo-header; ICMPv4 does not). Non-first fragments carry no L4 header: the first
 * fragment's checksum already covers the whole datagram. A checksum field past the captured bytes
 * cannot be fixed and is left alone (the bytes are not in the capture either).
 */
export function fixL4(data: usize, caplen: u32, d: u64): void {
  if (!pHasL4) return;
  const l4 = data + pL4;
  if (pProto == IPPROTO_TCP) {
    if (pL4 + 18 <= caplen) adjust(l4 + 16, d);
  } else if (pProto == IPPROTO_UDP) {
    if (pL4 + 8 <= caplen) adjustUdp(l4 + 6, d);
  } else if (pProto == IPPROTO_ICMPV6) {
    if (pL4 + 4 <= caplen) adjust(l4 + 2, d);
  }
}

/** NAT: rewrites the IP address at `field` (pSrc or pDst) to the 16-byte (mapped) address at `to`. */
export function natRewrite(data: usize, caplen: u32, field: usize, to: usize): void {
  const len: u32 = pFamily == 4 ? 4 : 16;
  const d = replaceAddr(field, pFamily == 4 ? to + 12 : to, len);
  if (pFamily == 4) adjust(data + pL3 + 10, d);
  // With an active IPv6 routing header the transport checksum covers the final destination
  // (RFC 8200 8.1), which a destination rewrite does not change.
  if (!(pRouting && field == pDst)) fixL4(data, caplen, d);
}

/**
 * Gives the frame an Ethernet header and room for `extra` bytes of outer headers between it and the
 * current L3 header. Ethernet input keeps its VLAN tags (the L2 header is moved back by `extra`);
 * other link types get a plain 14-byte header. The destination MAC is set when setDst, the source
 * is always the balancer's MAC, and the innermost ethertype becomes `ethertype`.
 * Updates the descriptor's data, caplen and wirelen; returns the new L3 address.
 */
export function emitL2(
  desc: usize, data: usize, extra: u32, setDst: bool, dstMac: usize, dstHi: u32, dstLo: u32, ethertype: u32,
): usize {
  let l2len: u32;
  let start: usize;
  if (pIsEthernet) {
    l2len = pL3;
    start = data - extra;
    if (extra) memory.copy(start, data, l2len);
  } else {
    l2len = 14;
    start = data + pL3 - extra - 14;
  }
  if (setDst) {
    if (dstMac) {
      store<u32>(start, load<u32>(dstMac));
      store<u16>(start + 4, load<u16>(dstMac + 4));
    } else storeMac(start, dstHi, dstLo);
  }
  storeMac(start + 6, lbMacHi, lbMacLo);
  store<u16>(start + l2len - 2, bswap<u16>(<u16>ethertype));
  // New lengths: L2 header + extra + (old bytes from L3 on).
  const grow = <i64>l2len + <i64>extra - <i64>pL3;
  store<u32>(desc, <u32>start);
  store<u32>(desc, <u32>(<i64>load<u32>(desc, 4) + grow), 4);
  store<u32>(desc, <u32>(<i64>load<u32>(desc, 8) + grow), 8);
  return start + l2len;
}

/** Length of the outer headers a tunnel method adds for an outer IPv4 (4) or IPv6 (6) header. */
export function encapLength(method: u32, outerFamily: u32): u32 {
  const ip: u32 = outerFamily == 4 ? 20 : 40;
  if (method == 3) return ip + 4; // GRE
  if (method == 4) return ip + 8; // GUE
  return ip; // IPIP
}

/**
 * Writes the outer headers at `o` in front of the inner IP packet at o + len. `method` 2 IPIP,
 * 3 GRE, 4 GUE; src/dst are 16-byte (mapped for IPv4) addresses; `h` the flow hash (entropy for the
 * GUE source port and the IPv6 flow label, so receivers' RSS spreads flows, as Katran does).
 */
/** Outer IPv4 IDs for datagrams that may be fragmented: one per packet, never per flow
 * (RFC 6864 section 4.1); deterministic because it only counts packets. */
let outerId: u32 = 0;

export function writeEncap(
  o: usize, method: u32, outerFamily: u32, src: usize, dst: usize, h: u32, guePort: u32, innerCap: u32,
): void {
  const hlen = encapLength(method, outerFamily);
  const ipLen: u32 = outerFamily == 4 ? 20 : 40;
  const inner = o + hlen;
  const innerLen = pL3Len;
  const innerV6 = pFamily == 6;
  let tos: u32;
  let df = true;
  if (innerV6) tos = ((<u32>load<u8>(inner) & 15) << 4) | (<u32>load<u8>(inner + 1) >> 4);
  else {
    tos = <u32>load<u8>(inner + 1);
    df = (be16(inner + 6) & 0x4000) != 0;
  }
  let proto: u32;
  if (method == 3) proto = IPPROTO_GRE;
  else if (method == 4) proto = IPPROTO_UDP;
  else proto = innerV6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
  const afterIp = hlen - ipLen + innerLen; // bytes following the outer IP header
  if (outerFamily == 4) {
    store<u16>(o, bswap<u16>(<u16>(0x4500 | tos)));
    store<u16>(o + 2, bswap<u16>(<u16>(ipLen + afterIp)));
    // RFC 6864: the ID only matters when the datagram may be fragmented.
    if (!df) outerId = (outerId + 1) & 0xffff;
    store<u16>(o + 4, df ? 0 : bswap<u16>(<u16>outerId));
    store<u16>(o + 6, df ? bswap<u16>(0x4000) : 0);
    store<u8>(o + 8, 64);
    store<u8>(o + 9, <u8>proto);
    store<u16>(o + 10, 0);
    store<u32>(o + 12, load<u32>(src + 12));
    store<u32>(o + 16, load<u32>(dst + 12));
    store<u16>(o + 10, <u16>finish(sumBytes(o, 20)));
  } else {
    store<u32>(o, bswap<u32>(0x60000000 | (tos << 20) | (h & 0xfffff)));
    store<u16>(o + 4, bswap<u16>(<u16>afterIp));
    store<u8>(o + 6, <u8>proto);
    store<u8>(o + 7, 64);
    copy16(o + 8, src);
    copy16(o + 24, dst);
  }
  const t = o + ipLen;
  if (method == 3) {
    store<u16>(t, 0); // no checksum, key or sequence number; version 0
    store<u16>(t + 2, bswap<u16>(<u16>(innerV6 ? ET_IPV6 : ET_IPV4)));
  } else if (method == 4) {
    store<u16>(t, bswap<u16>(<u16>(0xc000 | (h & 0x3fff)))); // source port 49152..65535
    store<u16>(t + 2, bswap<u16>(<u16>guePort));
    store<u16>(t + 4, bswap<u16>(<u16>(8 + innerLen)));
    store<u16>(t + 6, 0);
    // IPv4: zero = no checksum (RFC 768). IPv6 requires one (RFC 8200) unless the tunnel opts out
    // (RFC 6935); we compute it whenever the whole inner packet is present.
    if (outerFamily == 6 && innerCap >= innerLen) {
      let s = sumBytes(o + 8, 32) + <u64>bswap<u16>(<u16>(8 + innerLen)) + <u64>bswap<u16>(<u16>IPPROTO_UDP);
      s += sumBytes(t, 8 + innerLen);
      let c = finish(s);
      if (c == 0) c = 0xffff;
      store<u16>(t + 6, <u16>c);
    }
  }
}

export { fold, pEthertype };
