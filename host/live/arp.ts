// ARP (RFC 826) for Ethernet/IPv4: parsing, replies to requests for owned addresses, requests
// (broadcast or unicast refresh probes) and gratuitous announcements (RFC 5227 section 3).
import { ETH_ARP, ETH_IPV4, be16, be32, ethFrame, ethReply, macBytes, put16, put32, vlanTagBytes, type EthInfo, type MacLike } from './frame.js';

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_LEN = 28;

const BROADCAST = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const ZERO_MAC = new Uint8Array(6);

/** An Ethernet/IPv4 ARP packet inside a frame (offsets into the frame; addresses as numbers). */
export interface ArpInfo {
  /** 1 request, 2 reply (other opcodes are not returned). */
  op: 1 | 2;
  /** Offset of the ARP header in the frame. */
  off: number;
  /** Offsets of the sender / target hardware addresses (6 bytes each). */
  shaOff: number;
  thaOff: number;
  /** Sender / target protocol addresses (unsigned 32-bit). */
  spa: number;
  tpa: number;
}

/**
 * Parses the ARP packet of a frame whose Ethernet layer is `eth`: Ethernet hardware type, IPv4
 * protocol type, 6/4 address lengths, opcode 1 or 2. null for anything else.
 */
export function parseArp(f: Uint8Array, eth: EthInfo): ArpInfo | null {
  if (eth.ethertype !== ETH_ARP) return null;
  const o = eth.l3;
  if (f.length < o + ARP_LEN) return null;
  if (be16(f, o) !== 1 || be16(f, o + 2) !== ETH_IPV4 || f[o + 4] !== 6 || f[o + 5] !== 4) return null;
  const op = be16(f, o + 6);
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return null;
  return { op, off: o, shaOff: o + 8, spa: be32(f, o + 14), thaOff: o + 18, tpa: be32(f, o + 24) };
}

function writeArp(f: Uint8Array, o: number, op: number, sha: Uint8Array, shaOff: number, spa: number, tha: Uint8Array, thaOff: number, tpa: number): void {
  put16(f, o, 1);
  put16(f, o + 2, ETH_IPV4);
  f[o + 4] = 6;
  f[o + 5] = 4;
  put16(f, o + 6, op);
  f.set(sha.subarray(shaOff, shaOff + 6), o + 8);
  put32(f, o + 14, spa);
  f.set(tha.subarray(thaOff, thaOff + 6), o + 18);
  put32(f, o + 24, tpa);
}

/**
 * The ARP reply to request `req` (parsed as `arp`, Ethernet layer `eth`) from `mac`: sender =
 * (mac, the requested address), target = the asker (its sender hardware and protocol address),
 * Ethernet destination = the asker's Ethernet source, VLAN tags kept. The caller checks that the
 * requested address (arp.tpa) is one it owns.
 */
export function buildArpReply(req: Uint8Array, eth: EthInfo, arp: ArpInfo, mac: Uint8Array): Uint8Array {
  const { frame, l3 } = ethReply(req, 6, mac, req, eth, ETH_ARP, ARP_LEN);
  writeArp(frame, l3, ARP_REPLY, mac, 0, arp.tpa, req, arp.shaOff, arp.spa);
  return frame;
}

export interface ArpRequestOptions {
  /** Our MAC (Ethernet source and sender hardware address). */
  mac: MacLike;
  /** Sender protocol address (our IPv4 on that side; 0.0.0.0 as an RFC 5227 probe). */
  senderIp: number;
  /** The address to resolve. */
  targetIp: number;
  /** Unicast destination MAC (a refresh probe to a known neighbour); broadcast if absent. */
  dstMac?: MacLike;
  /** VLAN ids to tag the frame with (outermost first). */
  vlan?: readonly number[];
}

/** An ARP request (broadcast, or unicast to `dstMac` as a refresh probe). */
export function buildArpRequest(o: ArpRequestOptions): Uint8Array {
  const mac = macBytes(o.mac);
  const dst = o.dstMac === undefined ? BROADCAST : macBytes(o.dstMac);
  const { frame, l3 } = ethFrame(dst, mac, vlanTagBytes(o.vlan), ETH_ARP, ARP_LEN);
  writeArp(frame, l3, ARP_REQUEST, mac, 0, o.senderIp, ZERO_MAC, 0, o.targetIp);
  return frame;
}

/**
 * A gratuitous ARP for `ip` at `mac` (an RFC 5227 "ARP announcement"): broadcast, sender and target
 * protocol address both `ip`, target hardware address zero. `op` 'request' (default, what RFC 5227
 * and Linux `arping -U` send) or 'reply' (`arping -A`; some old stacks only listen to those).
 */
export function buildGratuitousArp(mac: MacLike, ip: number, opts: { op?: 'request' | 'reply'; vlan?: readonly number[] } = {}): Uint8Array {
  const m = macBytes(mac);
  const { frame, l3 } = ethFrame(BROADCAST, m, vlanTagBytes(opts.vlan), ETH_ARP, ARP_LEN);
  const op = opts.op === 'reply' ? ARP_REPLY : ARP_REQUEST;
  writeArp(frame, l3, op, m, 0, ip, op === ARP_REPLY ? m : ZERO_MAC, 0, ip);
  return frame;
}
