// A set of IPv4 and IPv6 addresses with lookups straight from frame bytes (no string building for
// IPv4; a 32-character key for IPv6). Used for "addresses the balancer owns" (VIPs and its own
// addresses on a side).
import { isIPv4 } from 'node:net';
import { be32, canonicalIp, ipv4Number, ipv4String, ipv6Bytes, ipv6String } from './frame.js';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Hex key of the 16 bytes at `o` (the IPv6 set's key). */
function key6(b: Uint8Array, o: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += HEX[b[o + i]];
  return s;
}

export class AddressSet {
  private readonly v4 = new Set<number>();
  private readonly v6 = new Set<string>();

  /** `addresses`: IPv4 or IPv6 text (IPv6 in any form; a %zone is ignored). */
  constructor(addresses: Iterable<string> = []) {
    for (const a of addresses) this.add(a);
  }

  /** Adds an address; throws on text that is not an IP address. */
  add(address: string): this {
    if (isIPv4(address)) this.v4.add(ipv4Number(address));
    else this.v6.add(key6(ipv6Bytes(address), 0));
    return this;
  }

  delete(address: string): boolean {
    if (isIPv4(address)) return this.v4.delete(ipv4Number(address));
    return this.v6.delete(key6(ipv6Bytes(address), 0));
  }

  has(address: string): boolean {
    if (isIPv4(address)) return this.v4.has(ipv4Number(address));
    try {
      return this.v6.has(key6(ipv6Bytes(address), 0));
    } catch {
      return false;
    }
  }

  /** IPv4 address as an unsigned 32-bit number. */
  has4(n: number): boolean {
    return this.v4.has(n >>> 0);
  }

  /** The address of `len` (4 or 16) bytes at `o` in `b`. */
  hasAt(b: Uint8Array, o: number, len: 4 | 16): boolean {
    return len === 4 ? this.v4.has(be32(b, o)) : this.v6.has(key6(b, o));
  }

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  /** Canonical text of every address (IPv4 first). */
  list(): string[] {
    const out = [...this.v4].map(ipv4String);
    for (const k of this.v6) out.push(ipv6String(Uint8Array.from(k.match(/../g)!.map((h) => parseInt(h, 16)))));
    return out;
  }

  /** Canonical text (for callers keying maps by address). */
  static canonical(address: string): string {
    return canonicalIp(address);
  }
}
