// Admission on the wire: what a refused new connection or datagram gets back (TCP RST, ICMP port
// unreachable), and a token bucket to rate-limit the ICMP the balancer generates.
import { PROTO_TCP, PROTO_UDP, parseEth, parseIp } from './frame.js';
import { buildPortUnreachable, buildTcpReset, mayReportError } from './icmp.js';

/**
 * A token bucket: `rate` tokens per second, at most `burst` banked (it starts full). The clock is
 * the caller's: `now()` returns milliseconds (any monotonic origin). No timers.
 */
export class RateLimiter {
  readonly rate: number;
  readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  /** Requests refused since construction. */
  refused = 0;

  constructor(rate: number, burst: number, now: () => number) {
    if (!(rate >= 0) || !(burst >= 1)) throw new Error(`RateLimiter: rate must be >= 0 and burst >= 1 (got ${rate}, ${burst})`);
    this.rate = rate;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  /** Takes `cost` tokens if there are that many (returns true), else takes none (false). */
  allow(cost = 1): boolean {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
      this.last = t;
    }
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return true;
    }
    this.refused++;
    return false;
  }

  /** Tokens available now (fractional). */
  available(): number {
    const t = this.now();
    return t > this.last ? Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000) : this.tokens;
  }
}

/** What refuse() did. */
export type RefusalKind = 'tcp-reset' | 'icmp-port-unreachable' | 'rate-limited' | 'silent' | 'none';

export interface RefuseOptions {
  /** Our MAC on the side the frame came in (source of the answer). */
  mac: Uint8Array;
  /** TCP: 'reset' (default) answers with RST|ACK; 'drop' sends nothing. */
  tcp?: 'reset' | 'drop';
  /** UDP: 'icmp' (default) answers with port unreachable; 'drop' sends nothing. */
  udp?: 'icmp' | 'drop';
  /** Limits ICMP generation (a refused datagram past the limit is dropped silently); none = unlimited. */
  icmpLimiter?: RateLimiter;
  /** Limits resets too, if given. */
  rstLimiter?: RateLimiter;
}

/**
 * The answer to a frame whose new connection/session admission refused: a TCP segment gets a
 * reset (buildTcpReset: RST|ACK, seq 0, ack = seq + 1 for a SYN), a UDP datagram ICMP/ICMPv6 port
 * unreachable subject to `icmpLimiter`. `frame` is null when nothing is to be sent (options say
 * drop, rate limited, not TCP/UDP, or a packet no answer may be sent about).
 */
export function refuse(f: Uint8Array, o: RefuseOptions): { kind: RefusalKind; frame: Uint8Array | null } {
  const eth = parseEth(f);
  const ip = eth && parseIp(f, eth.l3, eth.ethertype);
  if (!eth || !ip) return { kind: 'none', frame: null };
  if (ip.proto === PROTO_TCP) {
    if (o.tcp === 'drop') return { kind: 'silent', frame: null };
    const rst = buildTcpReset(f, eth, ip, o.mac);
    if (!rst) return { kind: 'none', frame: null };
    if (o.rstLimiter && !o.rstLimiter.allow()) return { kind: 'rate-limited', frame: null };
    return { kind: 'tcp-reset', frame: rst };
  }
  if (ip.proto === PROTO_UDP) {
    if (o.udp === 'drop') return { kind: 'silent', frame: null };
    // Check first, so a flood of refused datagrams past the limit builds nothing.
    if (!mayReportError(f, ip)) return { kind: 'none', frame: null };
    if (o.icmpLimiter && !o.icmpLimiter.allow()) return { kind: 'rate-limited', frame: null };
    const icmp = buildPortUnreachable(f, eth, ip, o.mac);
    return icmp ? { kind: 'icmp-port-unreachable', frame: icmp } : { kind: 'none', frame: null };
  }
  return { kind: 'none', frame: null };
}
