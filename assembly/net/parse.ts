// Header parsing for one frame: link layer (Ethernet with 802.1Q/QinQ, raw IP, Linux SLL/SLL2, BSD
// null/loop), IPv4 with options, IPv6 with extension headers, fragments, and the L4 ports. Results
// go to module globals (no objects on the hot path). Nothing is read past `caplen`.

export const ET_IPV4: u32 = 0x0800;
export const ET_IPV6: u32 = 0x86dd;
export const ET_VLAN: u32 = 0x8100;
export const ET_QINQ: u32 = 0x88a8;
export const ET_QINQ_OLD: u32 = 0x9100;

export const IPPROTO_ICMP: u32 = 1;
export const IPPROTO_IPIP: u32 = 4;
export const IPPROTO_TCP: u32 = 6;
export const IPPROTO_UDP: u32 = 17;
export const IPPROTO_IPV6: u32 = 41;
export const IPPROTO_GRE: u32 = 47;
export const IPPROTO_ICMPV6: u32 = 58;

// Results of the last parse.
export let pEthertype: u32 = 0;
export let pL3: u32 = 0; // offset of the IP header from the frame start
export let pIsEthernet: bool = false;
export let pFamily: u32 = 0; // 4 | 6
export let pProto: u32 = 0; // upper-layer protocol
export let pL4: u32 = 0; // offset of the L4 header (valid when pHasL4)
export let pHasL4: bool = false; // false for non-first fragments
export let pL3Len: u32 = 0; // IP datagram length from the header (v4 total length, v6 40 + payload)
export let pFragment: bool = false; // any fragment (first or not)
export let pFragFirst: bool = false; // offset 0 with more fragments
export let pFragId: u32 = 0;
export let pFragProto: u32 = 0; // protocol named where the fragment header is (its next header; IPv4: pProto)
export let pRouting: bool = false; // IPv6 routing header with segments left: L4 checksums use its final address
export let pSrc: usize = 0; // address pointers into the frame (4 or 16 bytes)
export let pDst: usize = 0;
export let pAddrLen: u32 = 0;

// Parse status codes.
export const PARSE_OK: i32 = 0;
export const PARSE_NOT_IP: i32 = 1;
export const PARSE_TRUNCATED: i32 = 2;
export const PARSE_LINKTYPE: i32 = 3;
export const PARSE_BAD_IP: i32 = 4;

/**
 * The parsed frame moved by `shift` bytes and its IP datagram changed length by `grow` (an RTSP
 * NAT rewrite, session/rtspnat.ts): offsets from the frame start stay, pointers and lengths follow.
 */
export function parsedMoved(shift: isize, grow: i32): void {
  pSrc = <usize>(<isize>pSrc + shift);
  pDst = <usize>(<isize>pDst + shift);
  pL3Len = <u32>(<i32>pL3Len + grow);
}

@inline export function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

function etFromVersion(p: usize, avail: u32): u32 {
  if (avail < 1) return 0;
  const v = <u32>load<u8>(p) >> 4;
  return v == 4 ? ET_IPV4 : v == 6 ? ET_IPV6 : 0;
}

function etFromAf(af: u32): u32 {
  if (af == 2) return ET_IPV4;
  if (af == 24 || af == 28 || af == 30 || af == 10) return ET_IPV6;
  return 0;
}

/** Finds the L3 offset and ethertype for a frame of pcap link type `link`. */
export function parseL2(data: usize, caplen: u32, link: u32): i32 {
  pIsEthernet = false;
  if (link == 1) {
    if (caplen < 14) return PARSE_TRUNCATED;
    let off: u32 = 12;
    let et = be16(data + 12);
    // 802.1Q / 802.1ad tags, any depth that fits.
    while (et == ET_VLAN || et == ET_QINQ || et == ET_QINQ_OLD) {
      off += 4;
      if (caplen < off + 2) return PARSE_TRUNCATED;
      et = be16(data + off);
    }
    pIsEthernet = true;
    pEthertype = et;
    pL3 = off + 2;
  } else if (link == 101 || link == 12 || link == 14) {
    pL3 = 0;
    pEthertype = etFromVersion(data, caplen);
  } else if (link == 228) {
    pL3 = 0;
    pEthertype = ET_IPV4;
  } else if (link == 229) {
    pL3 = 0;
    pEthertype = ET_IPV6;
  } else if (link == 113) {
    if (caplen < 16) return PARSE_TRUNCATED;
    pL3 = 16;
    pEthertype = be16(data + 14);
  } else if (link == 276) {
    if (caplen < 20) return PARSE_TRUNCATED;
    pL3 = 20;
    pEthertype = be16(data);
  } else if (link == 0) {
    if (caplen < 4) return PARSE_TRUNCATED;
    let af = load<u32>(data); // capturing host's byte order
    if (af > 0xffff) af = bswap<u32>(af);
    pL3 = 4;
    pEthertype = etFromAf(af);
  } else if (link == 108) {
    if (caplen < 4) return PARSE_TRUNCATED;
    pL3 = 4;
    pEthertype = etFromAf(bswap<u32>(load<u32>(data)));
  } else {
    return PARSE_LINKTYPE;
  }
  if (pEthertype != ET_IPV4 && pEthertype != ET_IPV6) return PARSE_NOT_IP;
  return PARSE_OK;
}

/** Parses the IP header at data+pL3 and the fragment information. */
export function parseL3(data: usize, caplen: u32): i32 {
  const l3 = pL3;
  const p = data + l3;
  const avail = caplen - l3;
  pFragment = false;
  pFragFirst = false;
  pFragId = 0;
  pRouting = false;
  if (pEthertype == ET_IPV4) {
    if (avail < 20) return PARSE_TRUNCATED;
    const vihl = <u32>load<u8>(p);
    if ((vihl >> 4) != 4) return PARSE_BAD_IP;
    const ihl = (vihl & 15) << 2;
    if (ihl < 20) return PARSE_BAD_IP;
    if (avail < ihl) return PARSE_TRUNCATED;
    const total = be16(p + 2);
    if (total < ihl) return PARSE_BAD_IP;
    pFamily = 4;
    pProto = <u32>load<u8>(p + 9);
    pL3Len = total;
    pSrc = p + 12;
    pDst = p + 16;
    pAddrLen = 4;
    const frag = be16(p + 6);
    const offset = frag & 0x1fff;
    const more = (frag & 0x2000) != 0;
    if (offset != 0 || more) {
      pFragment = true;
      pFragFirst = offset == 0;
      pFragId = be16(p + 4);
    }
    pFragProto = pProto;
    pL4 = l3 + ihl;
    pHasL4 = offset == 0;
    return PARSE_OK;
  }
  // IPv6 and its extension headers (RFC 8200 section 4).
  if (avail < 40) return PARSE_TRUNCATED;
  if ((<u32>load<u8>(p) >> 4) != 6) return PARSE_BAD_IP;
  const plen = be16(p + 4);
  if (plen == 0) return PARSE_BAD_IP; // jumbograms are not balanced
  pFamily = 6;
  pL3Len = 40 + plen;
  pSrc = p + 8;
  pDst = p + 24;
  pAddrLen = 16;
  let nh = <u32>load<u8>(p + 6);
  let off: u32 = 40;
  pHasL4 = true;
  for (let n = 0; n < 8; n++) {
    if (nh == 0 || nh == 43 || nh == 60) {
      if (avail < off + 2) return PARSE_TRUNCATED;
      // Routing header with segments left: the transport checksum covers the final destination.
      if (nh == 43 && avail >= off + 4 && load<u8>(p + off + 3) != 0) pRouting = true;
      const len = (<u32>load<u8>(p + off + 1) + 1) << 3;
      nh = <u32>load<u8>(p + off);
      off += len;
    } else if (nh == 51) {
      if (avail < off + 2) return PARSE_TRUNCATED;
      const len = (<u32>load<u8>(p + off + 1) + 2) << 2;
      nh = <u32>load<u8>(p + off);
      off += len;
    } else if (nh == 44) {
      if (avail < off + 8) return PARSE_TRUNCATED;
      const fo = be16(p + off + 2);
      const offset = fo >> 3;
      const more = (fo & 1) != 0;
      nh = <u32>load<u8>(p + off);
      pFragProto = nh;
      pFragment = true;
      pFragFirst = offset == 0;
      pFragId = bswap<u32>(load<u32>(p + off + 4));
      off += 8;
      if (offset != 0) {
        pHasL4 = false;
        break;
      }
      if (!more) pFragment = false; // an atomic fragment (RFC 6946) is a whole packet
    } else break;
    if (off > pL3Len) return PARSE_BAD_IP;
  }
  pProto = nh;
  pL4 = l3 + off;
  return PARSE_OK;
}
