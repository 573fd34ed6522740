// tshark 4.0 as a checksum and dissection oracle for the pcaps the CLI writes.
//
// Every run turns checksum validation on (tshark leaves IPv4/TCP/UDP validation off by default):
//   -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE
// ICMP and ICMPv6 checksums are always validated. The `*.checksum.status` fields (tshark -G fields)
// are FT_UINT8 with value strings 0 "Bad", 1 "Good", 2 "Unverified", 3 "Not present" (UDP over
// IPv4 with checksum 0), 4 "Illegal" (UDP over IPv6 with checksum 0, RFC 8200 8.1).
//
// Tunnels (checked by hand-built frames against tshark 4.0.17):
// - IPIP (ip.proto 4), IPv6-in-IPv4 (41), IPv6-in-IPv6 (ipv6.nxt 41), IPv4-in-IPv6 (4) and GRE
//   (47, 4-byte RFC 2784 header, protocol 0x0800/0x86dd) are decoded without any option.
// - GUE variant 1 (UDP carrying a bare IP packet) has no dissector in tshark 4.0 (no "gue" in
//   `tshark -G protocols`). `-d udp.port==6080,ip` decodes it: the "ip" dissector looks at the
//   version nibble and hands IPv6 to the ipv6 dissector, so one rule covers both inner families.
// Inner headers are dissected and their checksums validated like outer ones, so a field such as
// ip.src appears twice in a tunnelled frame: `-T fields` prints "outer,inner" (-E occurrence=a).
import { execFileSync } from 'node:child_process';

export const TSHARK = '/usr/bin/tshark';
export const CHECKSUM_PREFS = ['-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];

/** `-d` rule making tshark decode the payload of UDP port `port` (GUE variant 1) as IPv4/IPv6. */
export function gueDecodeAs(port = 6080): string[] {
  return ['-d', `udp.port==${port},ip`];
}

export interface TsharkOptions {
  filter?: string; // display filter (-Y)
  decodeAs?: string[]; // extra arguments, e.g. gueDecodeAs()
}

/** Runs tshark on `pcap` with checksum validation on; returns stdout. Throws on a non-zero exit. */
export function tshark(pcap: string, args: string[], o: TsharkOptions = {}): string {
  const all = ['-n', '-r', pcap, ...CHECKSUM_PREFS, ...(o.decodeAs ?? []), ...(o.filter ? ['-Y', o.filter] : []), ...args];
  try {
    return execFileSync(TSHARK, all, { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { status?: number; stderr?: string };
    throw new Error(`tshark ${all.join(' ')} failed (exit ${err.status}): ${err.stderr}`);
  }
}

/**
 * `-T fields` extraction: one row per frame (that passes the filter), one string per field. A field
 * present several times in a frame (tunnels) is "a,b" in dissection order (outer first).
 */
export function fields(pcap: string, names: string[], o: TsharkOptions = {}): string[][] {
  const out = tshark(pcap, ['-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,', ...names.flatMap((n) => ['-e', n])], o);
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/** Like fields() but each row is an object keyed by field name. */
export function records(pcap: string, names: string[], o: TsharkOptions = {}): Record<string, string>[] {
  return fields(pcap, names, o).map((row) => Object.fromEntries(names.map((n, i) => [n, row[i] ?? ''])));
}

/** Number of frames tshark reads from `pcap` (or that pass `o.filter`). */
export function frameCount(pcap: string, o: TsharkOptions = {}): number {
  return fields(pcap, ['frame.number'], o).length;
}

/**
 * Display filter matching a frame with any bad checksum, at any depth: IPv4 header, TCP, UDP,
 * ICMP, ICMPv6, GRE (when present); a zero UDP checksum over IPv6 ("Illegal"); and a TCP checksum
 * of 0xffff (tcp.checksum.ffff: a correctly computed TCP checksum is never 0xffff, RFC 1624 §3).
 */
export const BAD_CHECKSUM_FILTER = [
  'ip.checksum.status == "Bad"',
  'tcp.checksum.status == "Bad"',
  'udp.checksum.status == "Bad"',
  'udp.checksum.status == "Illegal"',
  'icmp.checksum.status == "Bad"',
  'icmpv6.checksum.status == "Bad"',
  'gre.checksum.status == "Bad"',
  'tcp.checksum.ffff',
].join(' || ');

export interface BadChecksumFrame {
  frame: number;
  ip: string; // ip.checksum.status values, "outer,inner" for tunnels (0 = Bad)
  tcp: string;
  udp: string;
  icmp: string;
  icmpv6: string;
  info: string;
}

/** Frames of `pcap` with a bad checksum anywhere (empty if all are good or unverifiable). */
export function badChecksumFrames(pcap: string, o: Omit<TsharkOptions, 'filter'> = {}): BadChecksumFrame[] {
  return fields(
    pcap,
    ['frame.number', 'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status', '_ws.col.Info'],
    { ...o, filter: BAD_CHECKSUM_FILTER },
  ).map(([frame, ip, tcp, udp, icmp, icmpv6, info]) => ({ frame: Number(frame), ip, tcp, udp, icmp, icmpv6, info }));
}

/** Frames with TCP analysis flags (retransmission, out-of-order, lost segment, ...), with tshark's messages. */
export function tcpAnalysisFrames(pcap: string, o: Omit<TsharkOptions, 'filter'> = {}): { frame: number; flags: string; info: string }[] {
  return fields(pcap, ['frame.number', '_ws.expert.message', '_ws.col.Info'], { ...o, filter: 'tcp.analysis.flags' }).map(
    ([frame, flags, info]) => ({ frame: Number(frame), flags, info }),
  );
}

/** Splits a multi-occurrence field value ("outer,inner") into its parts. */
export function occurrences(v: string): string[] {
  return v === '' ? [] : v.split(',');
}

/** Frames with an expert-info error (bad checksums, malformed or inconsistent lengths, ...). */
export function expertErrorFrames(pcap: string, o: Omit<TsharkOptions, 'filter'> = {}): { frame: number; messages: string }[] {
  return fields(pcap, ['frame.number', '_ws.expert.message'], { ...o, filter: '_ws.expert.severity == "Error" || _ws.malformed' }).map(
    ([frame, messages]) => ({ frame: Number(frame), messages }),
  );
}

export interface Layer {
  proto: 'ip' | 'ipv6' | 'tcp' | 'udp' | 'gre' | 'icmp' | 'icmpv6';
  src?: string; // addresses (ip, ipv6) or ports (tcp, udp)
  dst?: string;
  nxt?: string; // ip.proto / ipv6.nxt
}

export interface FrameLayers {
  frame: number;
  ethSrc: string;
  ethDst: string;
  layers: Layer[]; // outermost first, as tshark dissected them
}

/**
 * The IP/transport layers of every frame, outermost first, e.g. for GUE over IPv4:
 * ip(10.0.0.1 -> 10.0.1.1) udp(…->6080) ip(client -> VIP) tcp(40000 -> 80). Built by walking
 * frame.protocols and consuming one occurrence of the matching field per layer.
 */
export function frameLayers(pcap: string, o: TsharkOptions = {}): FrameLayers[] {
  const names = [
    'frame.number', 'eth.src', 'eth.dst', 'frame.protocols',
    'ip.src', 'ip.dst', 'ip.proto', 'ipv6.src', 'ipv6.dst', 'ipv6.nxt',
    'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport',
  ];
  return records(pcap, names, o).map((r) => {
    const take: Record<string, string[]> = Object.fromEntries(names.map((n) => [n, occurrences(r[n])]));
    const layers: Layer[] = [];
    const protos = r['frame.protocols'].split(':');
    protos.forEach((p, i) => {
      // With `-d udp.port==N,ip`, an IPv6 payload shows as "udp:ip:ipv6": the ip dissector only
      // handed the packet on and has no fields of its own (unlike 6in4, "ip:ipv6" after eth).
      if (p === 'ip' && protos[i - 1] === 'udp' && protos[i + 1] === 'ipv6') return;
      if (p === 'ip') layers.push({ proto: 'ip', src: take['ip.src'].shift(), dst: take['ip.dst'].shift(), nxt: take['ip.proto'].shift() });
      else if (p === 'ipv6') layers.push({ proto: 'ipv6', src: take['ipv6.src'].shift(), dst: take['ipv6.dst'].shift(), nxt: take['ipv6.nxt'].shift() });
      else if (p === 'tcp') layers.push({ proto: 'tcp', src: take['tcp.srcport'].shift(), dst: take['tcp.dstport'].shift() });
      else if (p === 'udp') layers.push({ proto: 'udp', src: take['udp.srcport'].shift(), dst: take['udp.dstport'].shift() });
      else if (p === 'gre' || p === 'icmp' || p === 'icmpv6') layers.push({ proto: p });
    });
    return { frame: Number(r['frame.number']), ethSrc: r['eth.src'], ethDst: r['eth.dst'], layers };
  });
}
