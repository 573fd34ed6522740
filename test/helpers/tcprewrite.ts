// Differential-oracle helpers: run tcprewrite 4.4.x (the reference for a plain destination-NAT
// rewrite), read classic pcap files, and compare two captures frame by frame, reporting the first
// difference with a hex excerpt of both frames around it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const TCPREWRITE = '/usr/bin/tcprewrite';

/** tcprewrite's pseudo-NAT map syntax: `A/32:B/32` for IPv4, `[A/128]:[B/128]` for IPv6. */
export function ipMapArg(from: string, to: string): string {
  return from.includes(':') ? `[${from}/128]:[${to}/128]` : `${from}/32:${to}/32`;
}

export interface TcprewriteOptions {
  dstipmap?: [from: string, to: string][];
  srcipmap?: [from: string, to: string][];
  fixcsum?: boolean; // default true
  enetDmac?: string;
  enetSmac?: string;
}

/**
 * Runs `tcprewrite --dstipmap=VIP/32:BACKEND/32 [--srcipmap=...] --fixcsum [--enet-dmac=M]
 * [--enet-smac=M] -i IN -o OUT` and returns its stderr (warnings such as "Unable to checksum ICMP
 * with insufficient L4 data" land there; they are not errors). Throws if it exits non-zero.
 * Without a tcpprep cache file every packet counts as "primary", so the first MAC of
 * --enet-dmac/--enet-smac applies to all of them.
 */
export function tcprewrite(input: string, output: string, o: TcprewriteOptions): string {
  const args: string[] = [];
  if (o.dstipmap?.length) args.push(`--dstipmap=${o.dstipmap.map(([a, b]) => ipMapArg(a, b)).join(',')}`);
  if (o.srcipmap?.length) args.push(`--srcipmap=${o.srcipmap.map(([a, b]) => ipMapArg(a, b)).join(',')}`);
  if (o.fixcsum ?? true) args.push('--fixcsum');
  if (o.enetDmac) args.push(`--enet-dmac=${o.enetDmac}`);
  if (o.enetSmac) args.push(`--enet-smac=${o.enetSmac}`);
  args.push('-i', input, '-o', output);
  const r = spawnSync(TCPREWRITE, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tcprewrite ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return r.stderr;
}

// ---------------------------------------------------------------------------------------------
// Classic pcap reading (both byte orders, microsecond and nanosecond magic).

export interface PcapFrame {
  index: number; // 0-based
  tsNs: bigint; // timestamp as a value, independent of the file's precision
  caplen: number;
  wirelen: number;
  data: Buffer;
}

export interface PcapFile {
  linktype: number;
  nanos: boolean;
  snaplen: number;
  frames: PcapFrame[];
}

export function readPcap(path: string): PcapFile {
  const b = readFileSync(path);
  if (b.length < 24) throw new Error(`${path}: too short for a pcap header`);
  const magicLE = b.readUInt32LE(0);
  let le: boolean;
  let nanos: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) (le = true), (nanos = magicLE === 0xa1b23c4d);
  else if (b.readUInt32BE(0) === 0xa1b2c3d4 || b.readUInt32BE(0) === 0xa1b23c4d) (le = false), (nanos = b.readUInt32BE(0) === 0xa1b23c4d);
  else throw new Error(`${path}: not a classic pcap (magic ${b.subarray(0, 4).toString('hex')})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const frames: PcapFrame[] = [];
  let off = 24;
  while (off + 16 <= b.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const caplen = u32(off + 8);
    const wirelen = u32(off + 12);
    if (off + 16 + caplen > b.length) throw new Error(`${path}: record ${frames.length} truncated`);
    frames.push({
      index: frames.length,
      tsNs: BigInt(sec) * 1_000_000_000n + BigInt(frac) * (nanos ? 1n : 1000n),
      caplen,
      wirelen,
      data: b.subarray(off + 16, off + 16 + caplen),
    });
    off += 16 + caplen;
  }
  if (off !== b.length) throw new Error(`${path}: ${b.length - off} trailing bytes`);
  return { linktype: u32(20), nanos, snaplen: u32(16), frames };
}

// ---------------------------------------------------------------------------------------------
// Frame comparison.

export interface FrameDiff {
  index: number; // frame index (0-based); -1 for a frame-count difference
  what: 'count' | 'timestamp' | 'wirelen' | 'length' | 'bytes';
  offset?: number; // first differing byte within the frame
  layer?: string; // where that byte is, e.g. "ipv4+10 (checksum)"
  summary: string; // human-readable, with hex excerpts
}

export interface CompareOptions {
  /** Compare timestamps as values (default true). Precision differences are not differences. */
  timestamps?: boolean;
  /** Transform each frame before comparing (e.g. blank out a field both sides may differ in). */
  normalize?: (data: Buffer, side: 'a' | 'b', index: number) => Buffer;
}

/** The first difference between two captures (frame count, timestamps, wire length, bytes), or null. */
export function firstDifference(a: PcapFile | string, b: PcapFile | string, opts: CompareOptions = {}): FrameDiff | null {
  const fa = typeof a === 'string' ? readPcap(a) : a;
  const fb = typeof b === 'string' ? readPcap(b) : b;
  const n = Math.min(fa.frames.length, fb.frames.length);
  for (let i = 0; i < n; i++) {
    const x = fa.frames[i];
    const y = fb.frames[i];
    if ((opts.timestamps ?? true) && x.tsNs !== y.tsNs)
      return { index: i, what: 'timestamp', summary: `frame ${i + 1}: timestamp ${x.tsNs} ns != ${y.tsNs} ns` };
    if (x.wirelen !== y.wirelen) return { index: i, what: 'wirelen', summary: `frame ${i + 1}: wire length ${x.wirelen} != ${y.wirelen}` };
    const dx = opts.normalize ? opts.normalize(Buffer.from(x.data), 'a', i) : x.data;
    const dy = opts.normalize ? opts.normalize(Buffer.from(y.data), 'b', i) : y.data;
    const d = bytesDiff(dx, dy);
    if (d !== null) {
      const layer = describeOffset(dx, d);
      const what = d >= Math.min(dx.length, dy.length) ? 'length' : 'bytes';
      return {
        index: i,
        what,
        offset: d,
        layer,
        summary:
          `frame ${i + 1}: ${what === 'length' ? `length ${dx.length} != ${dy.length}` : `byte ${d} differs`} (${layer})\n` +
          `  a: ${hexAround(dx, d)}\n  b: ${hexAround(dy, d)}`,
      };
    }
  }
  if (fa.frames.length !== fb.frames.length)
    return { index: -1, what: 'count', summary: `frame count ${fa.frames.length} != ${fb.frames.length}` };
  return null;
}

function bytesDiff(x: Buffer, y: Buffer): number | null {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? null : n;
}

/** 32 bytes of hex around `off`, 16-byte aligned, with the differing byte in brackets. */
export function hexAround(d: Buffer, off: number): string {
  const start = Math.max(0, (off & ~15) - 16);
  const parts: string[] = [];
  for (let i = start; i < Math.min(d.length, start + 32); i++) {
    const h = d[i].toString(16).padStart(2, '0');
    parts.push(i === off ? `[${h}]` : h);
  }
  return `${start.toString(16).padStart(4, '0')}: ${parts.join(' ')}${off >= d.length ? ' [end]' : ''}`;
}

const IPV4_FIELDS: [number, string][] = [
  [0, 'version/ihl'], [1, 'tos'], [2, 'total length'], [4, 'id'], [6, 'flags/fragment'], [8, 'ttl'],
  [9, 'protocol'], [10, 'checksum'], [12, 'source'], [16, 'destination'], [20, 'options'],
];
const IPV6_FIELDS: [number, string][] = [
  [0, 'version/class/label'], [4, 'payload length'], [6, 'next header'], [7, 'hop limit'], [8, 'source'], [24, 'destination'],
];
const L4_FIELDS: Record<number, [number, string][]> = {
  6: [[0, 'source port'], [2, 'destination port'], [4, 'seq'], [8, 'ack'], [12, 'offset/flags'], [14, 'window'], [16, 'checksum'], [18, 'urgent'], [20, 'options/payload']],
  17: [[0, 'source port'], [2, 'destination port'], [4, 'length'], [6, 'checksum'], [8, 'payload']],
  1: [[0, 'type'], [1, 'code'], [2, 'checksum'], [4, 'rest']],
  58: [[0, 'type'], [1, 'code'], [2, 'checksum'], [4, 'rest']],
};
const field = (table: [number, string][], rel: number) => table.filter(([o]) => o <= rel).pop()?.[1] ?? '?';

/** Names the header field of an Ethernet(/802.1Q)/IPv4|IPv6/TCP|UDP|ICMP frame at byte `off`. */
export function describeOffset(d: Buffer, off: number): string {
  if (off < 6) return `eth+${off} (destination MAC)`;
  if (off < 12) return `eth+${off} (source MAC)`;
  let l3 = 14;
  let type = d.length >= 14 ? d.readUInt16BE(12) : 0;
  while ((type === 0x8100 || type === 0x88a8) && d.length >= l3 + 4) {
    type = d.readUInt16BE(l3 + 2);
    l3 += 4;
  }
  if (off < l3) return `eth+${off} (type/VLAN)`;
  const rel = off - l3;
  let l4: number;
  let proto: number;
  if (type === 0x0800 && d.length > l3) {
    l4 = l3 + (d[l3] & 0x0f) * 4;
    proto = d[l3 + 9];
    if (off < l4) return `ipv4+${rel} (${field(IPV4_FIELDS, rel)})`;
  } else if (type === 0x86dd && d.length >= l3 + 40) {
    l4 = l3 + 40;
    proto = d[l3 + 6];
    if (off < l4) return `ipv6+${rel} (${field(IPV6_FIELDS, rel)})`;
  } else return `l3+${rel} (ethertype 0x${type.toString(16)})`;
  const name = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' }[proto] ?? `proto${proto}`;
  const t = L4_FIELDS[proto];
  return `${name}+${off - l4}${t ? ` (${field(t, off - l4)})` : ''}`;
}
