// The neighbour cache of one interface (one side): IPv4 by ARP, IPv6 by Neighbor Discovery, with
// retries, refresh, expiry and static entries. No timers and no I/O: the caller passes `now()`
// (milliseconds) and `send(frame)`, feeds every ARP/NS/NA frame it sees to observe(), and calls
// tick() regularly (every 100-500 ms is plenty; the intervals below are the resolution).
//
// States, after Linux's NUD machine, simplified:
//   incomplete  resolving: broadcast ARP / multicast NS sent `retries` times, `retryIntervalMs` apart
//   reachable   MAC confirmed within `reachableMs`
//   stale       not confirmed for `reachableMs`, still used; an entry nobody asked for is removed
//               `staleMs` later ('expired' event)
//   probe       a wanted stale entry being confirmed by unicast ARP / NS (`retries` times); still used
//   failed      no answer; unusable; a wanted entry starts resolving again `failedHoldMs` later
//   static      from the config (addStatic): never probed, never changed by what is seen
// "Wanted" entries are those the caller asked for (resolve(), lookup()); entries only learned from
// traffic are kept while they are fresh and dropped when they go stale for long.
import { isIPv4 } from 'node:net';
import { buildArpRequest, parseArp, ARP_REPLY } from './arp.js';
import { AddressSet } from './addresses.js';
import { ETH_ARP, ETH_IPV6, canonicalIp, ipv4Number, ipv4String, ipv6Bytes, ipv6String, macBytes, macString, parseEth, parseIp, bytesEqual, type MacLike } from './frame.js';
import { buildNs, parseNd, ND_NA, ND_NS, NA_OVERRIDE, NA_SOLICITED } from './nd.js';

export type NeighbourState = 'incomplete' | 'reachable' | 'stale' | 'probe' | 'failed' | 'static';

/** What happened to a neighbour. */
export interface NeighbourEvent {
  /** resolved: first MAC (or again after failure); changed: a different MAC; failed: no answer; expired: an unwanted entry dropped. */
  type: 'resolved' | 'changed' | 'failed' | 'expired';
  /** Canonical address text. */
  address: string;
  /** The MAC now ("aa:bb:..."), null for failed/expired. */
  mac: string | null;
  /** The MAC before (changed, failed, expired), else null. */
  previous: string | null;
  /** How it was learned: 'arp', 'nd', or 'static'; for failed/expired the protocol that was probing. */
  via: 'arp' | 'nd' | 'static';
  /** The caller's clock at the event. */
  at: number;
}

/** A snapshot of one entry (entries()). */
export interface NeighbourEntry {
  address: string;
  mac: string | null;
  state: NeighbourState;
  wanted: boolean;
  /** Last confirmation time (caller's clock), -1 if never. */
  confirmed: number;
  /** Probes sent in the current resolution/probe round. */
  probes: number;
}

export interface NeighboursOptions {
  /** Our MAC on this interface. */
  mac: MacLike;
  /** The caller's clock in milliseconds (monotonic). */
  now: () => number;
  /** Sends a frame out of this interface. */
  send: (frame: Uint8Array) => void;
  /** Our IPv4 address on this side: ARP sender address. Default 0.0.0.0 (an RFC 5227 probe, which Linux answers too). */
  source4?: string;
  /** Our IPv6 address on this side: source of solicitations. Default the EUI-64 link-local of `mac` (linkLocalFromMac; add it to the owned addresses so NS for it are answered). */
  source6?: string;
  /** VLAN ids to tag probes with (outermost first). */
  vlan?: readonly number[];
  /** Probes per resolution or refresh round (default 3, like Linux's mcast_solicit/ucast_solicit). */
  retries?: number;
  /** Time between probes (default 1000 ms, Linux's retrans_time). */
  retryIntervalMs?: number;
  /** How long a confirmation holds (default 30000 ms, Linux's base_reachable_time). */
  reachableMs?: number;
  /** How long an unwanted stale entry is kept (default 60000 ms, Linux's gc_stale_time). */
  staleMs?: number;
  /** After a failure, how long before a wanted entry is resolved again (default 5000 ms). */
  failedHoldMs?: number;
  /** Our addresses (VIPs and own addresses): ARP requests and NS for them create entries for the asker. */
  owned?: AddressSet;
  /** Called on every resolved/changed/failed/expired. */
  onEvent?: (e: NeighbourEvent) => void;
}

interface Entry {
  address: string;
  v6: boolean;
  bytes: Uint8Array; // 4 or 16
  mac: Uint8Array | null;
  state: NeighbourState;
  wanted: boolean;
  confirmed: number;
  probes: number;
  nextAt: number; // next probe / timeout (incomplete, probe)
  failedAt: number;
}

/** The EUI-64 link-local address (fe80::/64, RFC 4291 appendix A) of a MAC, as text. */
export function linkLocalFromMac(mac: MacLike): string {
  const m = macBytes(mac);
  const b = new Uint8Array(16);
  b[0] = 0xfe;
  b[1] = 0x80;
  b[8] = m[0] ^ 0x02;
  b[9] = m[1];
  b[10] = m[2];
  b[11] = 0xff;
  b[12] = 0xfe;
  b[13] = m[3];
  b[14] = m[4];
  b[15] = m[5];
  return ipv6String(b);
}

export class Neighbours {
  readonly mac: Uint8Array;
  private readonly now: () => number;
  private readonly send: (frame: Uint8Array) => void;
  private readonly source4: number;
  private readonly source6: Uint8Array;
  private readonly vlan?: readonly number[];
  readonly retries: number;
  readonly retryIntervalMs: number;
  readonly reachableMs: number;
  readonly staleMs: number;
  readonly failedHoldMs: number;
  private readonly owned?: AddressSet;
  private readonly onEvent?: (e: NeighbourEvent) => void;
  private readonly map = new Map<string, Entry>();
  /** Probes sent (ARP requests + NS). */
  probesSent = 0;

  constructor(o: NeighboursOptions) {
    this.mac = macBytes(o.mac);
    this.now = o.now;
    this.send = o.send;
    this.source4 = o.source4 ? ipv4Number(o.source4) : 0;
    this.source6 = ipv6Bytes(o.source6 ?? linkLocalFromMac(this.mac));
    this.vlan = o.vlan;
    this.retries = o.retries ?? 3;
    this.retryIntervalMs = o.retryIntervalMs ?? 1000;
    this.reachableMs = o.reachableMs ?? 30000;
    this.staleMs = o.staleMs ?? 60000;
    this.failedHoldMs = o.failedHoldMs ?? 5000;
    this.owned = o.owned;
    this.onEvent = o.onEvent;
  }

  /** The usable MAC of `address` (reachable, stale, probe or static), without side effects. */
  peek(address: string): Uint8Array | undefined {
    const e = this.map.get(address) ?? this.map.get(canonicalIp(address));
    return e && e.mac && e.state !== 'failed' && e.state !== 'incomplete' ? e.mac : undefined;
  }

  /**
   * The usable MAC of `address`, or undefined while it resolves. Marks it wanted and starts
   * resolving it if unknown (or failed longer than failedHoldMs ago). The returned array is the
   * cache's own: do not modify it.
   */
  lookup(address: string): Uint8Array | undefined {
    this.want(address);
    return this.peek(address);
  }

  /** Marks `address` wanted (kept fresh) and starts resolving it if it has no usable MAC. Idempotent. */
  resolve(address: string): NeighbourEntry {
    return snapshot(this.want(address));
  }

  private want(address: string): Entry {
    let e = this.map.get(address); // canonical text: no parsing
    const key = e ? address : canonicalIp(address);
    e ??= this.map.get(key);
    const now = this.now();
    if (!e) {
      const v6 = !isIPv4(key);
      e = { address: key, v6, bytes: v6 ? ipv6Bytes(key) : u32(ipv4Number(key)), mac: null, state: 'incomplete', wanted: true, confirmed: -1, probes: 0, nextAt: now, failedAt: -1 };
      this.map.set(key, e);
      this.probe(e, false, now);
    } else {
      e.wanted = true;
      if (e.state === 'failed' && now - e.failedAt >= this.failedHoldMs) this.startResolving(e, now);
    }
    return e;
  }

  /** A static entry (config): always usable, never probed or changed by traffic. */
  addStatic(address: string, mac: MacLike): void {
    const key = canonicalIp(address);
    const m = macBytes(mac);
    const old = this.map.get(key);
    const v6 = !isIPv4(key);
    const e: Entry = { address: key, v6, bytes: v6 ? ipv6Bytes(key) : u32(ipv4Number(key)), mac: m, state: 'static', wanted: true, confirmed: this.now(), probes: 0, nextAt: 0, failedAt: -1 };
    this.map.set(key, e);
    if (!old || !old.mac || old.state === 'failed' || old.state === 'incomplete') this.emit('resolved', e, null, 'static');
    else if (!bytesEqual(old.mac, 0, m, 0, 6)) this.emit('changed', e, old.mac, 'static');
  }

  /** Removes an entry (static or not); true if there was one. No event. */
  delete(address: string): boolean {
    return this.map.delete(canonicalIp(address));
  }

  /** Stops keeping `address` fresh (it will age out like a learned entry). */
  unwant(address: string): void {
    const e = this.map.get(canonicalIp(address));
    if (e && e.state !== 'static') e.wanted = false;
  }

  /** Snapshot of every entry (for metrics and `status`). */
  entries(): NeighbourEntry[] {
    return [...this.map.values()].map(snapshot);
  }

  get size(): number {
    return this.map.size;
  }

  /**
   * Learns from an ARP request/reply or IPv6 NS/NA frame (any other frame: ignored, returns
   * false). Updates an existing entry from any of them; creates one from a reply/NA answering our
   * resolution, from an ARP request or NS addressed to one of the `owned` addresses (the asker
   * will talk to us, RFC 826 / RFC 4861 7.2.3), never from a probe with an empty sender.
   * Returns true if the frame changed or confirmed an entry.
   */
  observe(f: Uint8Array): boolean {
    const eth = parseEth(f);
    if (!eth) return false;
    if (eth.ethertype === ETH_ARP) {
      const arp = parseArp(f, eth);
      if (!arp || arp.spa === 0 || this.owned?.has4(arp.spa)) return false;
      if (f[arp.shaOff] & 1) return false; // a multicast sender hardware address is never learned
      const key = ipv4String(arp.spa);
      const forUs = arp.op === ARP_REPLY ? bytesEqual(f, arp.thaOff, this.mac, 0, 6) || bytesEqual(f, 0, this.mac, 0, 6) : this.owned?.has4(arp.tpa) ?? false;
      // A reply confirms; a request only shows the sender is alive with that MAC: count it as a confirmation too (Linux does).
      return this.learn(key, false, f.subarray(arp.shaOff, arp.shaOff + 6), forUs, true, 'arp');
    }
    if (eth.ethertype === ETH_IPV6) {
      const ip = parseIp(f, eth.l3, eth.ethertype);
      if (!ip) return false;
      const nd = parseNd(f, ip);
      if (!nd || nd.llOff < 0) return false;
      if (nd.type === ND_NS) {
        if (nd.fromUnspecified || this.owned?.hasAt(f, ip.srcOff, 16)) return false;
        const key = ipv6String(f, ip.srcOff);
        const forUs = this.owned?.hasAt(f, nd.targetOff, 16) ?? false;
        // RFC 4861 7.2.3: an NS makes or updates the entry (STALE), it does not confirm reachability.
        return this.learn(key, true, f.subarray(nd.llOff, nd.llOff + 6), forUs, false, 'nd');
      }
      if (nd.type === ND_NA) {
        if (this.owned?.hasAt(f, nd.targetOff, 16)) return false;
        const key = ipv6String(f, nd.targetOff);
        const e = this.map.get(key);
        const ll = f.subarray(nd.llOff, nd.llOff + 6);
        // RFC 4861 7.2.5: without O, a known entry keeps its MAC (a different one only makes it stale).
        if (e && e.mac && e.state !== 'incomplete' && e.state !== 'failed' && !(nd.flags & NA_OVERRIDE) && !bytesEqual(e.mac, 0, ll, 0, 6)) {
          if (e.state === 'reachable') e.state = 'stale';
          return false;
        }
        return this.learn(key, true, ll, e !== undefined, (nd.flags & NA_SOLICITED) !== 0, 'nd');
      }
    }
    return false;
  }

  /**
   * Runs the timers: retransmits probes, fails resolutions with no answer, starts refresh probes
   * for wanted entries whose confirmation is older than reachableMs, drops unwanted stale entries
   * and restarts wanted failed ones after failedHoldMs. Call it regularly.
   */
  tick(): void {
    const now = this.now();
    for (const [key, e] of this.map) {
      switch (e.state) {
        case 'incomplete':
        case 'probe':
          if (now >= e.nextAt) {
            if (e.probes < this.retries) this.probe(e, e.state === 'probe', now);
            else {
              const prev = e.mac;
              e.state = 'failed';
              e.failedAt = now;
              e.mac = null;
              e.probes = 0;
              this.emit('failed', e, prev, e.v6 ? 'nd' : 'arp');
              if (!e.wanted) this.map.delete(key);
            }
          }
          break;
        case 'reachable':
          if (now - e.confirmed >= this.reachableMs) {
            if (e.wanted) {
              e.state = 'probe';
              e.probes = 0;
              this.probe(e, true, now);
            } else e.state = 'stale';
          }
          break;
        case 'stale':
          if (e.wanted) {
            e.state = 'probe';
            e.probes = 0;
            this.probe(e, true, now);
          } else if (now - e.confirmed >= this.reachableMs + this.staleMs) {
            this.map.delete(key);
            this.emit('expired', e, e.mac, e.v6 ? 'nd' : 'arp', null);
          }
          break;
        case 'failed':
          if (e.wanted && now - e.failedAt >= this.failedHoldMs) this.startResolving(e, now);
          break;
        case 'static':
          break;
      }
    }
  }

  private startResolving(e: Entry, now: number): void {
    e.state = 'incomplete';
    e.probes = 0;
    e.mac = null;
    this.probe(e, false, now);
  }

  /** Sends one probe (unicast to the known MAC when `unicast`) and schedules the next. */
  private probe(e: Entry, unicast: boolean, now: number): void {
    const dstMac = unicast && e.mac ? e.mac : undefined;
    const frame = e.v6
      ? buildNs({ mac: this.mac, source: this.source6, target: e.bytes, dstMac, vlan: this.vlan })
      : buildArpRequest({ mac: this.mac, senderIp: this.source4, targetIp: ipv4Number(e.address), dstMac, vlan: this.vlan });
    e.probes++;
    e.nextAt = now + this.retryIntervalMs;
    this.probesSent++;
    this.send(frame);
  }

  private learn(key: string, v6: boolean, mac: Uint8Array, mayCreate: boolean, confirms: boolean, via: 'arp' | 'nd'): boolean {
    if (bytesEqual(mac, 0, this.mac, 0, 6)) return false; // our own frames looped back
    let e = this.map.get(key);
    const now = this.now();
    if (!e) {
      if (!mayCreate) return false;
      e = { address: key, v6, bytes: v6 ? ipv6Bytes(key) : u32(ipv4Number(key)), mac: null, state: 'incomplete', wanted: false, confirmed: -1, probes: 0, nextAt: 0, failedAt: -1 };
      this.map.set(key, e);
    }
    if (e.state === 'static') return false;
    const prev = e.mac && e.state !== 'failed' && e.state !== 'incomplete' ? e.mac : null;
    const changed = prev !== null && !bytesEqual(prev, 0, mac, 0, 6);
    e.mac = Uint8Array.from(mac);
    e.probes = 0;
    if (confirms || e.state === 'incomplete' || e.state === 'failed') {
      // An answer to our resolution is a confirmation even without the S flag (e.g. a gratuitous NA racing it).
      e.state = confirms || e.state === 'incomplete' ? 'reachable' : 'stale';
      e.confirmed = now;
    } else if (changed) e.state = 'stale';
    if (prev === null) this.emit('resolved', e, null, via);
    else if (changed) this.emit('changed', e, prev, via);
    return true;
  }

  private emit(type: NeighbourEvent['type'], e: Entry, previous: Uint8Array | null, via: NeighbourEvent['via'], mac: Uint8Array | null = e.mac): void {
    this.onEvent?.({ type, address: e.address, mac: mac ? macString(mac) : null, previous: previous ? macString(previous) : null, via, at: this.now() });
  }
}

function u32(n: number): Uint8Array {
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function snapshot(e: Entry): NeighbourEntry {
  return { address: e.address, mac: e.mac ? macString(e.mac) : null, state: e.state, wanted: e.wanted, confirmed: e.confirmed, probes: e.probes };
}
