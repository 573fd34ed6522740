// Live mode's L2/L3 citizenship and admission on the wire, as pure functions over Ethernet frames
// (no I/O, no timers; the loop passes clocks and send functions). The pieces live in:
//   frame.ts      parsing (Ethernet + 802.1Q/802.1ad tags, IPv4/IPv6 + extension headers), checksums, addresses
//   addresses.ts  AddressSet: owned addresses with lookups from frame bytes
//   arp.ts        ARP parse/reply/request/gratuitous
//   nd.ts         IPv6 NS/NA parse/solicited NA/NS/unsolicited NA
//   icmp.ts       echo replies, ICMP/ICMPv6 errors (too big, port unreachable), TCP RST for a refused SYN
//   admission.ts  RateLimiter (token bucket), refuse() (RST or rate-limited port unreachable)
//   neighbours.ts Neighbours: ARP/ND cache with retries, refresh, expiry, static entries, events
// and this file: the classifier, the per-interface L2Responder, announcements, and re-exports.
//
// API (everything takes a full Ethernet frame as a Uint8Array, any byteOffset, VLAN tags allowed
// and kept on replies; replies are new arrays from our MAC to the asker's MAC, checksums set):
//
//   new AddressSet(addrs?: Iterable<string>)              .add/.delete/.has(text) .has4(u32) .hasAt(buf, off, 4|16) .list()
//   classifyL2(frame, owned: AddressSet): L2Classification
//       kind: 'arp-request' | 'arp-reply' | 'ns' | 'na' | 'echo-request' | 'other'; forUs: target/destination owned
//   new L2Responder({ mac, owned, neighbours?, echo?, echoLimiter?, router? })   .counts { arpReplies, naReplies, echoReplies, echoLimited }
//       .handle(frame): { kind, forUs, reply: Uint8Array | null }   feeds ARP/NS/NA to neighbours.observe(),
//            answers ARP requests / NS for owned addresses, echo requests to owned addresses sent to our MAC;
//            frames from our own MAC are ignored
//       .announce(address, opts?): Uint8Array   gratuitous ARP (IPv4) / unsolicited NA (IPv6) for a VIP coming up
//   buildAnnouncement(mac, address, { vlan?, op?, router? }): Uint8Array
//   new Neighbours({ mac, now, send, source4?, source6?, vlan?, retries?, retryIntervalMs?, reachableMs?,
//                    staleMs?, failedHoldMs?, owned?, onEvent? })
//       .lookup(ip): Uint8Array | undefined (wants + resolves)   .peek(ip)   .resolve(ip)   .addStatic(ip, mac)
//       .observe(frame): boolean   .tick()   .entries()   .delete(ip)   .unwant(ip)   .probesSent
//       onEvent({ type: 'resolved'|'changed'|'failed'|'expired', address, mac, previous, via, at })
//   linkLocalFromMac(mac): string
//   refuse(frame, { mac, tcp?: 'reset'|'drop', udp?: 'icmp'|'drop', icmpLimiter?, rstLimiter? })
//       : { kind: 'tcp-reset'|'icmp-port-unreachable'|'rate-limited'|'silent'|'none', frame: Uint8Array | null }
//   tooBig(frame, mtu, from: string | Uint8Array | { v4?, v6? }, mac): Uint8Array | null   ICMP 3/4 (IPv4, DF set) or ICMPv6 2
//   new RateLimiter(ratePerSecond, burst, nowMs: () => number)   .allow(cost = 1): boolean   .available()
//   lower level (layers from parseEth/parseIp): buildArpReply, buildArpRequest, buildGratuitousArp, buildNaReply,
//       buildNs, buildUnsolicitedNa, buildEchoReply, buildTooBig, buildPortUnreachable, buildTcpReset,
//       buildIcmp4Error, buildIcmp6Error, mayReportError, isEchoRequest, parseArp, parseNd
import { isIPv4 } from 'node:net';
import { AddressSet } from './addresses.js';
import { ARP_REQUEST, buildArpReply, buildGratuitousArp, parseArp, type ArpInfo } from './arp.js';
import { RateLimiter } from './admission.js';
import { ETH_ARP, ETH_IPV4, ETH_IPV6, bytesEqual, ipv4Number, ipv6Bytes, macBytes, parseEth, parseIp, type EthInfo, type IpInfo, type MacLike } from './frame.js';
import { buildEchoReply, buildTooBig, isEchoRequest, type AddressLike } from './icmp.js';
import { ND_NS, buildNaReply, buildUnsolicitedNa, parseNd, type NdInfo } from './nd.js';
import type { Neighbours } from './neighbours.js';

export * from './addresses.js';
export * from './admission.js';
export * from './arp.js';
export * from './frame.js';
export * from './icmp.js';
export * from './nd.js';
export * from './neighbours.js';

export type L2Kind = 'arp-request' | 'arp-reply' | 'ns' | 'na' | 'echo-request' | 'other';

/** What a frame is, for the L2/L3 handling; layers are set when parsed. */
export interface L2Classification {
  kind: L2Kind;
  /**
   * arp-request: the requested address is owned; arp-reply: the sender address is not owned (a
   * reply worth learning); ns: the target is owned; na: always false; echo-request: always true
   * (an echo to a non-owned address is 'other'); other: false.
   */
  forUs: boolean;
  eth: EthInfo | null;
  ip: IpInfo | null;
  arp: ArpInfo | null;
  nd: NdInfo | null;
}

const OTHER: L2Classification = Object.freeze({ kind: 'other', forUs: false, eth: null, ip: null, arp: null, nd: null }) as L2Classification;

/**
 * Classifies a frame the engine passed or dropped: ARP request/reply, IPv6 NS/NA (valid per RFC
 * 4861 7.1), ICMP/ICMPv6 echo request to an owned address (valid checksum), or other. Cheap for
 * 'other' IPv4/IPv6 traffic (an EtherType and protocol check, no allocation beyond the layer records).
 */
export function classifyL2(f: Uint8Array, owned: AddressSet): L2Classification {
  // Untagged IPv4/IPv6 that is not ICMP: out before any allocation (the common pass/drop case).
  if (f.length >= 54) {
    const t = (f[12] << 8) | f[13];
    if (t === ETH_IPV4 && f[23] !== 1) return OTHER;
    if (t === ETH_IPV6 && f[20] !== 58 && f[20] !== 0 && f[20] !== 60) return OTHER;
  }
  const eth = parseEth(f);
  if (!eth) return OTHER;
  if (eth.ethertype === ETH_ARP) {
    const arp = parseArp(f, eth);
    if (!arp) return OTHER;
    if (arp.op === ARP_REQUEST) return { kind: 'arp-request', forUs: owned.has4(arp.tpa), eth, ip: null, arp, nd: null };
    return { kind: 'arp-reply', forUs: !owned.has4(arp.spa), eth, ip: null, arp, nd: null };
  }
  if (eth.ethertype !== ETH_IPV4 && eth.ethertype !== ETH_IPV6) return OTHER;
  // Fast exit before parsing: only ICMP (1) / ICMPv6 (58, possibly after extension headers) matter.
  if (eth.ethertype === ETH_IPV4 && (f.length < eth.l3 + 20 || f[eth.l3 + 9] !== 1)) return OTHER;
  if (eth.ethertype === ETH_IPV6 && (f.length < eth.l3 + 40 || (f[eth.l3 + 6] !== 58 && f[eth.l3 + 6] !== 0 && f[eth.l3 + 6] !== 60))) return OTHER;
  const ip = parseIp(f, eth.l3, eth.ethertype);
  if (!ip) return OTHER;
  if (ip.version === 6 && ip.proto === 58 && ip.end - ip.l4 >= 1 && (f[ip.l4] === 135 || f[ip.l4] === 136)) {
    const nd = parseNd(f, ip);
    if (!nd) return OTHER;
    if (nd.type === ND_NS) return { kind: 'ns', forUs: owned.hasAt(f, nd.targetOff, 16), eth, ip, arp: null, nd };
    return { kind: 'na', forUs: false, eth, ip, arp: null, nd };
  }
  if (isEchoRequest(f, ip) && owned.hasAt(f, ip.dstOff, ip.addrLen)) return { kind: 'echo-request', forUs: true, eth, ip, arp: null, nd: null };
  return OTHER;
}

export interface L2ResponderOptions {
  /** Our MAC on this interface. */
  mac: MacLike;
  /** Addresses answered for (ARP, NS, echo): the VIPs and our own addresses on this side. Shared, so later add/delete take effect. */
  owned: AddressSet;
  /** Neighbour cache fed with every ARP/NS/NA frame seen. */
  neighbours?: Neighbours;
  /** Answer echo requests (default true). */
  echo?: boolean;
  /** Rate limit for echo replies (none = unlimited). */
  echoLimiter?: RateLimiter;
  /** Set the R (router) flag in our NAs (default false). */
  router?: boolean;
}

/** The result of L2Responder.handle(). */
export interface L2Result {
  kind: L2Kind;
  forUs: boolean;
  /** The frame to send back out of the interface the frame came in on, or null. */
  reply: Uint8Array | null;
}

/** Answers ARP, NS and echo for the owned addresses of one interface and feeds its neighbour cache. */
export class L2Responder {
  readonly mac: Uint8Array;
  readonly owned: AddressSet;
  readonly neighbours?: Neighbours;
  private readonly echo: boolean;
  private readonly echoLimiter?: RateLimiter;
  private readonly router: boolean;
  /** Replies built, by kind. */
  readonly counts = { arpReplies: 0, naReplies: 0, echoReplies: 0, echoLimited: 0 };

  constructor(o: L2ResponderOptions) {
    this.mac = macBytes(o.mac);
    this.owned = o.owned;
    this.neighbours = o.neighbours;
    this.echo = o.echo ?? true;
    this.echoLimiter = o.echoLimiter;
    this.router = o.router ?? false;
  }

  /** Classifies `frame`, learns from it, and builds the reply it calls for (if any). Frames from our own MAC are ignored. */
  handle(f: Uint8Array): L2Result {
    const c = classifyL2(f, this.owned);
    if (c.kind === 'other') return { kind: 'other', forUs: false, reply: null };
    // Our own frames (looped back by a bridge or a capture): never answered or learned from.
    if (bytesEqual(f, 6, this.mac, 0, 6)) return { kind: c.kind, forUs: c.forUs, reply: null };
    if (c.kind !== 'echo-request') this.neighbours?.observe(f);
    let reply: Uint8Array | null = null;
    if (c.kind === 'arp-request' && c.forUs && c.eth && c.arp) {
      reply = buildArpReply(f, c.eth, c.arp, this.mac);
      this.counts.arpReplies++;
    } else if (c.kind === 'ns' && c.forUs && c.eth && c.ip && c.nd) {
      reply = buildNaReply(f, c.eth, c.ip, c.nd, this.mac, this.router);
      this.counts.naReplies++;
    } else if (c.kind === 'echo-request' && this.echo && c.eth && c.ip && bytesEqual(f, 0, this.mac, 0, 6)) {
      if (this.echoLimiter && !this.echoLimiter.allow()) this.counts.echoLimited++;
      else {
        reply = buildEchoReply(f, c.eth, c.ip, this.mac);
        if (reply) this.counts.echoReplies++;
      }
    }
    return { kind: c.kind, forUs: c.forUs, reply };
  }

  /** Announcement for `address` (owned, coming up) from this interface: see buildAnnouncement. */
  announce(address: string, opts: { vlan?: readonly number[]; op?: 'request' | 'reply' } = {}): Uint8Array {
    return buildAnnouncement(this.mac, address, { ...opts, router: this.router });
  }
}

/**
 * Gratuitous ARP (IPv4; an RFC 5227 announcement, op request unless `op: 'reply'`) or unsolicited
 * NA to all-nodes with O set (IPv6) telling the link that `address` is at `mac`. Linux and
 * keepalived send a few (e.g. 3, a second apart, or `garp_master_repeat`); the caller repeats it.
 */
export function buildAnnouncement(mac: MacLike, address: string, opts: { vlan?: readonly number[]; op?: 'request' | 'reply'; router?: boolean } = {}): Uint8Array {
  if (isIPv4(address)) return buildGratuitousArp(mac, ipv4Number(address), opts);
  return buildUnsolicitedNa(mac, ipv6Bytes(address), opts);
}

/** Source addresses per family for errors the balancer originates (its own address on a side). */
export interface FamilyAddresses {
  v4?: AddressLike;
  v6?: AddressLike;
}

/**
 * "Too big" for the frame's IP packet: ICMP fragmentation needed with next-hop `mtu` (IPv4, only
 * when DF is set) or ICMPv6 packet too big (IPv6), quoting it, from `from` to its source. `from`
 * is one address (it must be of the packet's family: throws otherwise) or one per family (null
 * when the packet's family has none). null if the frame is not IP or no error may be sent about it.
 */
export function tooBig(f: Uint8Array, mtu: number, from: AddressLike | FamilyAddresses, mac: Uint8Array): Uint8Array | null {
  const eth = parseEth(f);
  const ip = eth && parseIp(f, eth.l3, eth.ethertype);
  if (!eth || !ip) return null;
  const src = typeof from === 'string' || from instanceof Uint8Array ? from : ip.version === 4 ? from.v4 : from.v6;
  if (src === undefined) return null;
  return buildTooBig(f, eth, ip, mtu, src, mac);
}
