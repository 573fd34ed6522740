// Live mode's L2/L3 frame handling (host/live/l2.ts and its modules), checked against independent
// oracles:
// - tshark 4.0 decodes every frame the modules build (pcap written with host/io/pcap-writer.ts),
//   with IPv4/TCP/UDP checksum validation on (ICMP/ICMPv6 always validated): the expected fields
//   and no bad checksum or expert error anywhere, inner quoted headers included;
// - the Linux kernel, in a throwaway network namespace (slbt4-*, 10.99.4.0/24 and link-local
//   addresses only): a veth pair, one end the kernel's (10.99.4.1), the other driven by this test
//   through python3's AF_PACKET socket as the balancer (10.99.4.2). The kernel must resolve the
//   balancer by ARP and ND (ip neigh shows our MAC), get echo replies through its own ping sockets
//   (which check ICMP checksums), have a TCP connect refused by our RST and a connected UDP socket
//   refused by our port unreachable, lower its path MTU on our fragmentation needed, and answer
//   our Neighbours probes. Skipped with a message when namespaces or python3 are unavailable.
// Input frames are built here by hand (and by test/helpers/cli.ts), not by the code under test, and
// are placed at odd offsets inside larger buffers, like views into WebAssembly memory.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PcapWriter } from '../host/io/pcap-writer.js';
import {
  AddressSet,
  L2Responder,
  Neighbours,
  RateLimiter,
  buildAnnouncement,
  classifyL2,
  linkLocalFromMac,
  refuse,
  tooBig,
  type NeighbourEvent,
} from '../host/live/l2.js';
import { TCP_ACK, TCP_FIN, TCP_SYN, ethFrame, inetChecksum, ipBytes, macBytes, tempDir, type PacketSpec } from './helpers/cli.js';
import { badChecksumFrames, expertErrorFrames, records } from './helpers/tshark.js';

const LB_MAC = '02:00:00:00:00:fe';
const CLIENT_MAC = '02:00:00:00:aa:01';
const VIP4 = '10.0.0.100';
const VIP6 = 'fd00::100';
const SELF4 = '10.0.0.1';
const CLIENT4 = '192.0.2.10';
const CLIENT6 = 'fd00:2::10';
const owned = () => new AddressSet([VIP4, VIP6, SELF4]);
const u8 = (mac: string) => Uint8Array.from(macBytes(mac));
const lbMac = u8(LB_MAC);

/** Copies `f` into a larger buffer at an odd offset (filled with 0xcc around it) and returns the view. */
function inMemory(f: Uint8Array, at = 37): Uint8Array {
  const mem = new Uint8Array(f.length + at + 64).fill(0xcc);
  mem.set(f, at);
  return mem.subarray(at, at + f.length);
}

/** Writes frames to DIR/name.pcap and returns the path. */
function pcap(dir: string, name: string, frames: Uint8Array[]): string {
  const path = join(dir, `${name}.pcap`);
  const w = new PcapWriter(path);
  frames.forEach((f, i) => {
    const b = Buffer.from(f.buffer, f.byteOffset, f.length);
    w.write(b, 0, f.length, f.length, 1_700_000_000_000_000_000n + BigInt(i) * 1000n);
  });
  w.close();
  return path;
}

/**
 * Decodes `frames` with tshark: one record per frame; also asserts no bad checksum / expert error.
 * `truncatedQuote` lists frames (1-based) that are ICMP errors quoting a cut TCP segment: tshark
 * 4.0 checks the quoted TCP checksum over the bytes present and calls it bad; for those frames the
 * only error allowed is that inner TCP checksum (the ICMP checksum must be good; the quote itself
 * is compared byte for byte with the original by the test).
 */
function decode(dir: string, name: string, frames: Uint8Array[], fields: string[], truncatedQuote: number[] = []): Record<string, string>[] {
  const path = pcap(dir, name, frames);
  const bad = badChecksumFrames(path);
  expect(bad.filter((b) => !truncatedQuote.includes(b.frame))).toEqual([]);
  for (const b of bad) expect([b.icmp || b.icmpv6, b.tcp, b.udp, b.ip.includes('0')]).toEqual(['1', '0', '', false]);
  const errors = expertErrorFrames(path);
  expect(errors.filter((e) => !truncatedQuote.includes(e.frame))).toEqual([]);
  for (const e of errors) expect(e.messages).toMatch(/^Bad checksum \[should be 0x[0-9a-f]{4}\]$/);
  const rows = records(path, ['frame.number', ...fields]);
  expect(rows.length).toBe(frames.length);
  return rows;
}

function vlanTags(vids: number[]): Buffer {
  const b = Buffer.alloc(vids.length * 4);
  vids.forEach((v, i) => {
    b.writeUInt16BE(i === 0 && vids.length > 1 ? 0x88a8 : 0x8100, i * 4);
    b.writeUInt16BE(v, i * 4 + 2);
  });
  return b;
}

/** An ARP packet in an Ethernet frame, built by hand. */
function arpFrame(o: { op: 1 | 2; sha: string; spa: string; tha?: string; tpa: string; dst?: string; vlans?: number[] }): Uint8Array {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0);
  arp.writeUInt16BE(0x0800, 2);
  arp[4] = 6;
  arp[5] = 4;
  arp.writeUInt16BE(o.op, 6);
  macBytes(o.sha).copy(arp, 8);
  ipBytes(o.spa).copy(arp, 14);
  macBytes(o.tha ?? '00:00:00:00:00:00').copy(arp, 18);
  ipBytes(o.tpa).copy(arp, 24);
  return Buffer.concat([macBytes(o.dst ?? 'ff:ff:ff:ff:ff:ff'), macBytes(o.sha), vlanTags(o.vlans ?? []), Buffer.from([0x08, 0x06]), arp]);
}

/** An NS or NA by hand: ICMPv6 135/136 with an optional link-layer option (type 1 for NS, 2 for NA). */
function ndFrame(o: {
  type: 135 | 136;
  srcMac: string;
  src: string;
  dst: string;
  dstMac: string;
  target: string;
  ll?: string;
  flags?: number;
  hlim?: number;
  corrupt?: boolean;
  vlans?: number[];
}): Uint8Array {
  const icmp = Buffer.alloc(24 + (o.ll ? 8 : 0));
  icmp[0] = o.type;
  icmp[4] = o.flags ?? 0;
  ipBytes(o.target).copy(icmp, 8);
  if (o.ll) {
    icmp[24] = o.type === 135 ? 1 : 2;
    icmp[25] = 1;
    macBytes(o.ll).copy(icmp, 26);
  }
  const pseudo = Buffer.alloc(40);
  ipBytes(o.src).copy(pseudo, 0);
  ipBytes(o.dst).copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo[39] = 58;
  icmp.writeUInt16BE(inetChecksum(pseudo, icmp) ^ (o.corrupt ? 0x0101 : 0), 2);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = 58;
  ip[7] = o.hlim ?? 255;
  ipBytes(o.src).copy(ip, 8);
  ipBytes(o.dst).copy(ip, 24);
  return Buffer.concat([macBytes(o.dstMac), macBytes(o.srcMac), vlanTags(o.vlans ?? []), Buffer.from([0x86, 0xdd]), ip, icmp]);
}

/** ethFrame() with an 802.1Q tag (or none) and our MAC as destination by default. */
function ipFrame(p: PacketSpec): Uint8Array {
  return ethFrame({ srcMac: CLIENT_MAC, dstMac: LB_MAC, ...p });
}

/** Clears the DF bit of an IPv4 frame (untagged) and fixes the header checksum. */
function withoutDf(f: Uint8Array): Uint8Array {
  const b = Buffer.from(f);
  b.writeUInt16BE(0, 14 + 6);
  b.writeUInt16BE(0, 14 + 10);
  b.writeUInt16BE(inetChecksum(b.subarray(14, 34)), 14 + 10);
  return b;
}

let dir: string;
beforeAll(() => {
  dir = tempDir('live-l2');
});

describe('ARP', () => {
  it('answers requests for owned addresses (untagged, 802.1Q, QinQ) and ignores the rest', () => {
    const r = new L2Responder({ mac: LB_MAC, owned: owned() });
    const asks = [
      arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: VIP4 }),
      arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: SELF4, vlans: [42] }),
      arpFrame({ op: 1, sha: '02:00:00:00:aa:02', spa: '10.0.0.6', tpa: VIP4, vlans: [100, 7] }),
      arpFrame({ op: 1, sha: CLIENT_MAC, spa: '0.0.0.0', tpa: VIP4 }), // RFC 5227 probe: answered too
    ];
    const replies = asks.map((f, i) => {
      const res = r.handle(inMemory(f, 3 + i * 10));
      expect(res.kind).toBe('arp-request');
      expect(res.forUs).toBe(true);
      expect(res.reply).not.toBeNull();
      return res.reply!;
    });
    // Not ours, a reply, a malformed one: no answer.
    expect(r.handle(inMemory(arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: '10.0.0.99' }))).reply).toBeNull();
    expect(r.handle(inMemory(arpFrame({ op: 2, sha: CLIENT_MAC, spa: '10.0.0.5', tha: LB_MAC, tpa: VIP4, dst: LB_MAC }))).reply).toBeNull();
    const bad = Buffer.from(arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: VIP4 }));
    bad[14 + 5] = 16; // protocol address length 16
    expect(r.handle(inMemory(bad)).kind).toBe('other');
    expect(r.handle(inMemory(arpFrame({ op: 1, sha: LB_MAC, spa: VIP4, tpa: VIP4 }))).reply).toBeNull(); // our own announcement looped back
    expect(r.counts.arpReplies).toBe(4);

    // Tags are kept byte for byte (802.1ad outer + 802.1Q inner in the third).
    replies.forEach((f, i) => expect(Buffer.from(f.subarray(12, f.length - 30))).toEqual(Buffer.from(asks[i].subarray(12, asks[i].length - 30))));
    const rows = decode(dir, 'arp-replies', replies, [
      'eth.src', 'eth.dst', 'vlan.id', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4', 'ieee8021ad.id',
    ]);
    expect(rows.map((x) => x['ieee8021ad.id'])).toEqual(['', '', '100', '']);
    expect(rows.map((x) => [x['eth.src'], x['eth.dst'], x['vlan.id'], x['arp.opcode'], x['arp.src.hw_mac'], x['arp.src.proto_ipv4'], x['arp.dst.hw_mac'], x['arp.dst.proto_ipv4']])).toEqual([
      [LB_MAC, CLIENT_MAC, '', '2', LB_MAC, VIP4, CLIENT_MAC, '10.0.0.5'],
      [LB_MAC, CLIENT_MAC, '42', '2', LB_MAC, SELF4, CLIENT_MAC, '10.0.0.5'],
      [LB_MAC, '02:00:00:00:aa:02', '7', '2', LB_MAC, VIP4, '02:00:00:00:aa:02', '10.0.0.6'],
      [LB_MAC, CLIENT_MAC, '', '2', LB_MAC, VIP4, CLIENT_MAC, '0.0.0.0'],
    ]);
  });

  it('gratuitous ARP and unsolicited NA announce a VIP', () => {
    const frames = [buildAnnouncement(LB_MAC, VIP4), buildAnnouncement(LB_MAC, VIP4, { op: 'reply', vlan: [5] }), buildAnnouncement(LB_MAC, VIP6)];
    const rows = decode(dir, 'announce', frames, [
      'eth.src', 'eth.dst', 'vlan.id', 'arp.opcode', 'arp.isgratuitous', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.proto_ipv4',
      'ipv6.src', 'ipv6.dst', 'ipv6.hlim', 'icmpv6.type', 'icmpv6.nd.na.flag.s', 'icmpv6.nd.na.flag.o', 'icmpv6.nd.na.target_address', 'icmpv6.opt.linkaddr',
    ]);
    expect(rows[0]).toMatchObject({ 'eth.src': LB_MAC, 'eth.dst': 'ff:ff:ff:ff:ff:ff', 'arp.opcode': '1', 'arp.isgratuitous': '1', 'arp.src.hw_mac': LB_MAC, 'arp.src.proto_ipv4': VIP4, 'arp.dst.proto_ipv4': VIP4 });
    expect(rows[1]).toMatchObject({ 'vlan.id': '5', 'arp.opcode': '2', 'arp.isgratuitous': '1', 'arp.src.proto_ipv4': VIP4 });
    expect(rows[2]).toMatchObject({
      'eth.dst': '33:33:00:00:00:01', 'ipv6.src': VIP6, 'ipv6.dst': 'ff02::1', 'ipv6.hlim': '255', 'icmpv6.type': '136',
      'icmpv6.nd.na.flag.s': '0', 'icmpv6.nd.na.flag.o': '1', 'icmpv6.nd.na.target_address': VIP6, 'icmpv6.opt.linkaddr': LB_MAC,
    });
  });
});

describe('IPv6 neighbour discovery', () => {
  it('answers solicitations for owned addresses with a solicited NA; ignores invalid ones', () => {
    const r = new L2Responder({ mac: LB_MAC, owned: owned() });
    const ns = (o: Partial<Parameters<typeof ndFrame>[0]> = {}) =>
      ndFrame({ type: 135, srcMac: CLIENT_MAC, src: CLIENT6, dst: 'ff02::1:ff00:100', dstMac: '33:33:ff:00:01:00', target: VIP6, ll: CLIENT_MAC, ...o });
    const good = [ns(), ns({ vlans: [300] }), ns({ src: '::', ll: undefined }), ns({ dst: VIP6, dstMac: LB_MAC })];
    const replies = good.map((f) => {
      const res = r.handle(inMemory(f, 11));
      expect([res.kind, res.forUs]).toEqual(['ns', true]);
      return res.reply!;
    });
    // Invalid (RFC 4861 7.1.1) or not ours: no answer.
    expect(r.handle(inMemory(ns({ hlim: 64 }))).reply).toBeNull();
    expect(r.handle(inMemory(ns({ corrupt: true }))).reply).toBeNull();
    expect(r.handle(inMemory(ns({ src: '::' })))).toMatchObject({ kind: 'other', reply: null }); // :: with a source LL option
    expect(r.handle(inMemory(ns({ target: 'fd00::99' })))).toMatchObject({ kind: 'ns', forUs: false, reply: null });
    const rows = decode(dir, 'na-replies', replies, [
      'eth.src', 'eth.dst', 'vlan.id', 'ipv6.src', 'ipv6.dst', 'ipv6.hlim', 'icmpv6.type', 'icmpv6.code', 'icmpv6.nd.na.flag.r', 'icmpv6.nd.na.flag.s',
      'icmpv6.nd.na.flag.o', 'icmpv6.nd.na.target_address', 'icmpv6.opt.type', 'icmpv6.opt.linkaddr', 'icmpv6.checksum.status',
    ]);
    const solicited = { 'eth.src': LB_MAC, 'eth.dst': CLIENT_MAC, 'ipv6.src': VIP6, 'ipv6.dst': CLIENT6, 'ipv6.hlim': '255', 'icmpv6.type': '136', 'icmpv6.code': '0',
      'icmpv6.nd.na.flag.r': '0', 'icmpv6.nd.na.flag.s': '1', 'icmpv6.nd.na.flag.o': '1', 'icmpv6.nd.na.target_address': VIP6, 'icmpv6.opt.type': '2',
      'icmpv6.opt.linkaddr': LB_MAC, 'icmpv6.checksum.status': '1' };
    expect(rows[0]).toMatchObject({ ...solicited, 'vlan.id': '' });
    expect(rows[1]).toMatchObject({ ...solicited, 'vlan.id': '300' });
    // DAD: answered to all-nodes, S clear.
    expect(rows[2]).toMatchObject({ ...solicited, 'eth.dst': '33:33:00:00:00:01', 'ipv6.dst': 'ff02::1', 'icmpv6.nd.na.flag.s': '0' });
    expect(rows[3]).toMatchObject(solicited);
  });
});

describe('ICMP echo', () => {
  it('replies to echo requests to owned addresses (IPv4 and ICMPv6, tagged or not) and only those', () => {
    const r = new L2Responder({ mac: LB_MAC, owned: owned() });
    const payload = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz!');
    const asks = [
      ipFrame({ src: CLIENT4, dst: VIP4, proto: 'icmp', sport: 0x1234, dport: 7, payload }),
      ipFrame({ src: CLIENT4, dst: SELF4, proto: 'icmp', sport: 1, dport: 2, payload: payload.subarray(0, 5), vlan: 9 }),
      ipFrame({ src: CLIENT6, dst: VIP6, proto: 'icmp', sport: 0x4321, dport: 9, payload }),
    ];
    const replies = asks.map((f) => {
      const res = r.handle(inMemory(f, 5));
      expect([res.kind, res.forUs]).toEqual(['echo-request', true]);
      return res.reply!;
    });
    expect(r.handle(inMemory(ipFrame({ src: CLIENT4, dst: '10.0.0.77', proto: 'icmp' })))).toMatchObject({ kind: 'other', reply: null });
    expect(r.handle(inMemory(ipFrame({ src: CLIENT4, dst: VIP4, proto: 'icmp', dstMac: '02:00:00:00:00:99' }))).reply).toBeNull(); // not sent to our MAC
    const corrupt = Buffer.from(asks[0]);
    corrupt[34 + 8] ^= 0xff; // payload changed, checksum not
    expect(r.handle(inMemory(corrupt)).reply).toBeNull();
    expect(new L2Responder({ mac: LB_MAC, owned: owned(), echo: false }).handle(asks[0]).reply).toBeNull();

    const rows = decode(dir, 'echo-replies', replies, [
      'eth.src', 'eth.dst', 'vlan.id', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'icmp.type', 'icmp.code', 'icmp.ident', 'icmp.seq', 'icmpv6.type', 'icmpv6.echo.identifier',
      'icmpv6.echo.sequence_number', 'data.data', 'icmp.checksum.status', 'icmpv6.checksum.status',
    ]);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    expect(rows[0]).toMatchObject({ 'eth.src': LB_MAC, 'eth.dst': CLIENT_MAC, 'ip.src': VIP4, 'ip.dst': CLIENT4, 'icmp.type': '0', 'icmp.code': '0', 'icmp.ident': '4660', 'icmp.seq': '7', 'data.data': hex(payload), 'icmp.checksum.status': '1' });
    expect(rows[1]).toMatchObject({ 'vlan.id': '9', 'ip.src': SELF4, 'ip.dst': CLIENT4, 'icmp.type': '0', 'data.data': hex(payload.subarray(0, 5)) });
    expect(rows[2]).toMatchObject({ 'ipv6.src': VIP6, 'ipv6.dst': CLIENT6, 'icmpv6.type': '129', 'icmpv6.echo.identifier': '0x4321', 'icmpv6.echo.sequence_number': '9', 'data.data': hex(payload), 'icmpv6.checksum.status': '1' });
  });

  it('rate-limits echo replies when given a limiter', () => {
    let now = 0;
    const r = new L2Responder({ mac: LB_MAC, owned: owned(), echoLimiter: new RateLimiter(1, 2, () => now) });
    const ask = ipFrame({ src: CLIENT4, dst: VIP4, proto: 'icmp' });
    expect([1, 2, 3].map(() => r.handle(ask).reply !== null)).toEqual([true, true, false]);
    now = 1000;
    expect([1, 2].map(() => r.handle(ask).reply !== null)).toEqual([true, false]);
    expect(r.counts).toMatchObject({ echoReplies: 3, echoLimited: 2 });
  });
});

describe('fragmentation needed / packet too big', () => {
  it('quotes the offending packet within RFC 1812 / RFC 4443 limits, from the given address', () => {
    const big4 = ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40001, dport: 80, payload: Buffer.alloc(1460, 0x61), tcpFlags: TCP_ACK });
    const small4 = ipFrame({ src: CLIENT4, dst: VIP4, proto: 'udp', sport: 40002, dport: 40404, payload: Buffer.alloc(10, 1), vlan: 12 });
    const big6 = ipFrame({ src: CLIENT6, dst: VIP6, proto: 'udp', sport: 40003, dport: 5004, payload: Buffer.alloc(1452, 0x62) });
    const out = [
      tooBig(inMemory(big4), 1400, SELF4, lbMac),
      tooBig(inMemory(small4), 1300, VIP4, lbMac),
      tooBig(inMemory(big6), 1400, 'fd00::1', lbMac),
      tooBig(inMemory(big6), 1000, 'fd00::1', lbMac), // below the IPv6 minimum: 1280 is sent
    ];
    expect(out.every((f) => f !== null)).toBe(true);
    expect(tooBig(withoutDf(big4), 1400, SELF4, lbMac)).toBeNull(); // may be fragmented instead
    const frames = out as Uint8Array[];
    // Sizes: IPv4 error capped at 576 bytes of IP; small packet quoted whole; IPv6 capped at 1280.
    expect(frames.map((f) => f.length)).toEqual([14 + 576, 18 + 20 + 8 + 20 + 8 + 10, 14 + 1280, 14 + 1280]);
    const rows = decode(dir, 'too-big', frames, [
      'eth.src', 'eth.dst', 'vlan.id', 'ip.src', 'ip.dst', 'ip.len', 'icmp.type', 'icmp.code', 'icmp.mtu', 'ipv6.src', 'ipv6.dst', 'ipv6.plen', 'icmpv6.type', 'icmpv6.code', 'icmpv6.mtu',
      'tcp.srcport', 'udp.srcport', 'udp.dstport', 'icmp.checksum.status', 'icmpv6.checksum.status',
    ], [1]);
    // The quotes are the original packets' first bytes, byte for byte; the originals are clean.
    const quoted = (f: Uint8Array, l3: number, hdr: number, n: number) => Buffer.from(f.subarray(l3 + hdr + 8, l3 + hdr + 8 + n));
    expect(quoted(frames[0], 14, 20, 548)).toEqual(Buffer.from(big4.subarray(14, 14 + 548)));
    expect(quoted(frames[1], 18, 20, 38)).toEqual(Buffer.from(small4.subarray(18)));
    expect(quoted(frames[2], 14, 40, 1232)).toEqual(Buffer.from(big6.subarray(14, 14 + 1232)));
    decode(dir, 'too-big-originals', [big4, small4, big6], ['frame.number']);
    expect(rows[0]).toMatchObject({ 'eth.src': LB_MAC, 'eth.dst': CLIENT_MAC, 'ip.src': `${SELF4},${CLIENT4}`, 'ip.dst': `${CLIENT4},${VIP4}`, 'ip.len': '576,1500', 'icmp.type': '3', 'icmp.code': '4', 'icmp.mtu': '1400', 'tcp.srcport': '40001', 'icmp.checksum.status': '1' });
    expect(rows[1]).toMatchObject({ 'vlan.id': '12', 'ip.src': `${VIP4},${CLIENT4}`, 'icmp.mtu': '1300', 'udp.srcport': '40002', 'udp.dstport': '40404', 'icmp.checksum.status': '1' });
    expect(rows[2]).toMatchObject({ 'ipv6.src': `fd00::1,${CLIENT6}`, 'ipv6.dst': `${CLIENT6},${VIP6}`, 'ipv6.plen': '1240,1460', 'icmpv6.type': '2', 'icmpv6.code': '0', 'icmpv6.mtu': '1400', 'udp.srcport': '40003', 'icmpv6.checksum.status': '1' });
    expect(rows[3]).toMatchObject({ 'icmpv6.mtu': '1280' });
  });

  it('sends no error about an ICMP error, a later fragment, a broadcast, or an unusable source', () => {
    const ok = ipFrame({ src: CLIENT4, dst: VIP4, proto: 'udp', payload: Buffer.alloc(100) });
    expect(tooBig(ok, 1400, SELF4, lbMac)).not.toBeNull();
    const err = Buffer.from(tooBig(ok, 1400, SELF4, lbMac)!); // an ICMP error itself, sent "to us"
    err.set(macBytes(LB_MAC), 0);
    expect(tooBig(err, 576, SELF4, lbMac)).toBeNull();
    const later = Buffer.from(ok);
    later.writeUInt16BE(0x4000 | 10, 14 + 6); // DF + offset 80
    later.writeUInt16BE(0, 14 + 10);
    later.writeUInt16BE(inetChecksum(later.subarray(14, 34)), 14 + 10);
    expect(tooBig(later, 1400, SELF4, lbMac)).toBeNull();
    expect(tooBig(ipFrame({ src: CLIENT4, dst: VIP4, proto: 'udp', dstMac: 'ff:ff:ff:ff:ff:ff' }), 1400, SELF4, lbMac)).toBeNull();
    expect(tooBig(ipFrame({ src: '127.0.0.1', dst: VIP4, proto: 'udp' }), 1400, SELF4, lbMac)).toBeNull();
    expect(tooBig(ipFrame({ src: CLIENT4, dst: '224.0.0.5', proto: 'udp' }), 1400, SELF4, lbMac)).toBeNull();
    expect(tooBig(ipFrame({ src: '::', dst: VIP6, proto: 'udp' }), 1400, 'fd00::1', lbMac)).toBeNull();
    // One source per family: the packet's family picks; none for it, no error; a wrong single one throws.
    expect(tooBig(ok, 1400, { v6: 'fd00::1' }, lbMac)).toBeNull();
    expect(tooBig(ok, 1400, { v4: SELF4 }, lbMac)).not.toBeNull();
    expect(() => tooBig(ok, 1400, 'fd00::1', lbMac)).toThrow(/IPv4/);
    // IPv6 packet too big may answer a multicast destination (RFC 4443 2.4(e.3)); port unreachable may not.
    const mcast6 = ipFrame({ src: CLIENT6, dst: 'ff0e::1', proto: 'udp', payload: Buffer.alloc(1400) });
    expect(tooBig(mcast6, 1280, 'fd00::1', lbMac)).not.toBeNull();
    expect(refuse(mcast6, { mac: lbMac }).frame).toBeNull();
  });
});

describe('admission on the wire', () => {
  it('refuses a TCP SYN with RST|ACK (seq 0, ack = seq + 1 + data) and other segments with RST (seq = their ack)', () => {
    const cases: { f: Uint8Array; seq: number; ack: number; flags: string }[] = [
      { f: ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40010, dport: 80, seq: 1000, tcpFlags: TCP_SYN }), seq: 0, ack: 1001, flags: 'RA' },
      { f: ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40011, dport: 80, seq: 0xffffffff, tcpFlags: TCP_SYN, vlan: 77 }), seq: 0, ack: 0, flags: 'RA' }, // wraps
      { f: ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40012, dport: 80, seq: 5000, tcpFlags: TCP_SYN | TCP_FIN, payload: Buffer.alloc(10, 1) }), seq: 0, ack: 5012, flags: 'RA' }, // TFO-style data + FIN
      { f: ipFrame({ src: CLIENT6, dst: VIP6, proto: 'tcp', sport: 40013, dport: 554, seq: 77, tcpFlags: TCP_SYN }), seq: 0, ack: 78, flags: 'RA' },
      { f: ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', sport: 40014, dport: 80, seq: 9, ack: 123456, tcpFlags: TCP_ACK }), seq: 123456, ack: 0, flags: 'R' },
    ];
    const out = cases.map((c) => {
      const r = refuse(inMemory(c.f, 13), { mac: lbMac });
      expect(r.kind).toBe('tcp-reset');
      return r.frame!;
    });
    const rows = decode(dir, 'rst', out, [
      'eth.src', 'eth.dst', 'vlan.id', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.flags.reset', 'tcp.flags.ack', 'tcp.flags.syn',
      'tcp.window_size_value', 'tcp.len', 'tcp.checksum.status',
    ]);
    rows.forEach((x, i) => {
      const c = cases[i];
      expect(x).toMatchObject({ 'eth.src': LB_MAC, 'eth.dst': CLIENT_MAC, 'tcp.seq_raw': String(c.seq), 'tcp.flags.reset': '1', 'tcp.flags.ack': c.flags === 'RA' ? '1' : '0', 'tcp.flags.syn': '0', 'tcp.len': '0', 'tcp.checksum.status': '1' });
      if (c.flags === 'RA') expect(x['tcp.ack_raw']).toBe(String(c.ack));
    });
    expect(rows.map((x) => [x['ip.src'] || x['ipv6.src'], x['ip.dst'] || x['ipv6.dst'], x['tcp.srcport'], x['tcp.dstport'], x['vlan.id']])).toEqual([
      [VIP4, CLIENT4, '80', '40010', ''], [VIP4, CLIENT4, '80', '40011', '77'], [VIP4, CLIENT4, '80', '40012', ''], [VIP6, CLIENT6, '554', '40013', ''], [VIP4, CLIENT4, '80', '40014', ''],
    ]);
    // A RST is never answered; 'drop' sends nothing.
    expect(refuse(ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', tcpFlags: 0x04 }), { mac: lbMac })).toEqual({ kind: 'none', frame: null });
    expect(refuse(cases[0].f, { mac: lbMac, tcp: 'drop' })).toEqual({ kind: 'silent', frame: null });
  });

  it('refuses UDP with port unreachable (ICMP 3/3, ICMPv6 1/4) quoting the datagram, rate-limited by a token bucket', () => {
    let now = 0;
    const limiter = new RateLimiter(10, 3, () => now);
    const u4 = ipFrame({ src: CLIENT4, dst: VIP4, proto: 'udp', sport: 40020, dport: 5004, payload: Buffer.alloc(40, 7) });
    const u6 = ipFrame({ src: CLIENT6, dst: VIP6, proto: 'udp', sport: 40021, dport: 5005, payload: Buffer.alloc(40, 7), vlan: 3 });
    const got = [u4, u6, u4, u4, u4].map((f) => refuse(inMemory(f, 1), { mac: lbMac, icmpLimiter: limiter }));
    expect(got.map((g) => g.kind)).toEqual(['icmp-port-unreachable', 'icmp-port-unreachable', 'icmp-port-unreachable', 'rate-limited', 'rate-limited']);
    now = 100; // 10/s: one token back
    expect(refuse(u4, { mac: lbMac, icmpLimiter: limiter }).kind).toBe('icmp-port-unreachable');
    expect(refuse(u4, { mac: lbMac, icmpLimiter: limiter }).kind).toBe('rate-limited');
    expect(limiter.refused).toBe(3);
    expect(refuse(u4, { mac: lbMac, udp: 'drop' }).kind).toBe('silent');
    const rows = decode(dir, 'port-unreachable', got.slice(0, 2).map((g) => g.frame!), [
      'eth.dst', 'vlan.id', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst', 'icmp.type', 'icmp.code', 'icmpv6.type', 'icmpv6.code', 'udp.srcport', 'udp.dstport', 'udp.length',
      'icmp.checksum.status', 'icmpv6.checksum.status',
    ]);
    expect(rows[0]).toMatchObject({ 'eth.dst': CLIENT_MAC, 'ip.src': `${VIP4},${CLIENT4}`, 'ip.dst': `${CLIENT4},${VIP4}`, 'icmp.type': '3', 'icmp.code': '3', 'udp.srcport': '40020', 'udp.dstport': '5004', 'udp.length': '48', 'icmp.checksum.status': '1' });
    expect(rows[1]).toMatchObject({ 'vlan.id': '3', 'ipv6.src': `${VIP6},${CLIENT6}`, 'ipv6.dst': `${CLIENT6},${VIP6}`, 'icmpv6.type': '1', 'icmpv6.code': '4', 'udp.dstport': '5005', 'icmpv6.checksum.status': '1' });
  });

  it('RateLimiter: burst, refill at rate, never above burst', () => {
    let now = 1000;
    const l = new RateLimiter(100, 5, () => now);
    expect(Array.from({ length: 7 }, () => l.allow())).toEqual([true, true, true, true, true, false, false]);
    now += 25; // 2.5 tokens
    expect([l.allow(), l.allow(), l.allow()]).toEqual([true, true, false]);
    now += 60_000;
    expect(l.available()).toBe(5);
    expect(l.allow(5)).toBe(true);
    expect(l.allow()).toBe(false);
    expect(() => new RateLimiter(1, 0, () => 0)).toThrow();
  });
});

describe('classifier', () => {
  it('tells ARP request/reply, NS/NA, echo to an owned address and other apart, at any byte offset', () => {
    const o = owned();
    const kinds = (f: Uint8Array) => {
      const c = classifyL2(inMemory(f, 29), o);
      return [c.kind, c.forUs];
    };
    expect(kinds(arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: VIP4, vlans: [1] }))).toEqual(['arp-request', true]);
    expect(kinds(arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: '10.0.0.9' }))).toEqual(['arp-request', false]);
    expect(kinds(arpFrame({ op: 2, sha: CLIENT_MAC, spa: '10.0.0.5', tha: LB_MAC, tpa: SELF4 }))).toEqual(['arp-reply', true]);
    expect(kinds(ndFrame({ type: 135, srcMac: CLIENT_MAC, src: CLIENT6, dst: 'ff02::1:ff00:100', dstMac: '33:33:ff:00:01:00', target: VIP6, ll: CLIENT_MAC }))).toEqual(['ns', true]);
    expect(kinds(ndFrame({ type: 136, srcMac: CLIENT_MAC, src: CLIENT6, dst: 'fe80::1', dstMac: LB_MAC, target: CLIENT6, ll: CLIENT_MAC, flags: 0x60 }))).toEqual(['na', false]);
    expect(kinds(ipFrame({ src: CLIENT4, dst: VIP4, proto: 'icmp', vlan: 4 }))).toEqual(['echo-request', true]);
    expect(kinds(ipFrame({ src: CLIENT6, dst: VIP6, proto: 'icmp' }))).toEqual(['echo-request', true]);
    expect(kinds(ipFrame({ src: CLIENT6, dst: 'fd00::5', proto: 'icmp' }))).toEqual(['other', false]);
    expect(kinds(ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp' }))).toEqual(['other', false]);
    expect(kinds(new Uint8Array(10))).toEqual(['other', false]);
  });
});

describe('hostile input', () => {
  it('never throws on truncated, bit-flipped or random frames, and what it answers stays well formed', async () => {
    const { rng } = await import('./helpers/rng.js');
    const rand = rng(4);
    const o = owned();
    const seeds: Uint8Array[] = [
      arpFrame({ op: 1, sha: CLIENT_MAC, spa: '10.0.0.5', tpa: VIP4, vlans: [3] }),
      ndFrame({ type: 135, srcMac: CLIENT_MAC, src: CLIENT6, dst: 'ff02::1:ff00:100', dstMac: '33:33:ff:00:01:00', target: VIP6, ll: CLIENT_MAC }),
      ndFrame({ type: 136, srcMac: CLIENT_MAC, src: CLIENT6, dst: 'fe80::1', dstMac: LB_MAC, target: CLIENT6, ll: CLIENT_MAC, flags: 0x60 }),
      ipFrame({ src: CLIENT4, dst: VIP4, proto: 'icmp', payload: Buffer.alloc(20, 1) }),
      ipFrame({ src: CLIENT6, dst: VIP6, proto: 'icmp', payload: Buffer.alloc(20, 1) }),
      ipFrame({ src: CLIENT4, dst: VIP4, proto: 'tcp', tcpFlags: TCP_SYN, ipOptions: Uint8Array.of(1, 1, 1, 0) }),
      ipFrame({ src: CLIENT6, dst: VIP6, proto: 'udp', payload: Buffer.alloc(30, 2), vlan: 8 }),
    ];
    const replies: Uint8Array[] = [];
    const n = new Neighbours({ mac: LB_MAC, now: () => 0, send: () => {}, owned: o });
    const r = new L2Responder({ mac: LB_MAC, owned: o, neighbours: n });
    const tryAll = (f: Uint8Array) => {
      const v = inMemory(f, 1 + (f.length % 13));
      const got = [r.handle(v).reply, refuse(v, { mac: lbMac }).frame, tooBig(v, 1280, { v4: SELF4, v6: VIP6 }, lbMac)];
      for (const g of got) if (g && replies.length < 400 && (rand() < 0.05 || g.length < 60)) replies.push(g);
    };
    let count = 0;
    for (const s of seeds) {
      for (let len = 0; len <= s.length; len++, count++) tryAll(s.subarray(0, len));
      for (let i = 0; i < 300; i++, count++) {
        const m = Uint8Array.from(s);
        for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) m[Math.floor(rand() * m.length)] ^= 1 << Math.floor(rand() * 8);
        tryAll(m);
      }
    }
    for (let i = 0; i < 2000; i++, count++) {
      const f = new Uint8Array(Math.floor(rand() * 120));
      for (let k = 0; k < f.length; k++) f[k] = rand() * 256;
      if (f.length > 14 && rand() < 0.5) f.set([[0x08, 0x06], [0x08, 0x00], [0x86, 0xdd]][Math.floor(rand() * 3)], 12);
      tryAll(f);
    }
    expect(count).toBeGreaterThan(4000);
    expect(replies.length).toBeGreaterThan(10);
    // Replies built from damaged input are still well-formed frames (header checksums right).
    // Quotes of damaged packets may carry whatever the damage left, so only outer layers count here.
    const path = pcap(dir, 'fuzz-replies', replies);
    const rows = records(path, ['frame.number', 'ip.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status', 'tcp.checksum.status', 'frame.protocols']);
    for (const x of rows) {
      const first = (v: string) => v.split(',')[0];
      if (x['ip.checksum.status']) expect(first(x['ip.checksum.status'])).toBe('1');
      if (x['icmp.checksum.status']) expect(first(x['icmp.checksum.status'])).toBe('1');
      if (x['icmpv6.checksum.status']) expect(first(x['icmpv6.checksum.status'])).toBe('1');
      if (x['frame.protocols'].match(/^eth:(vlan:)*ip(v6)?:tcp$/)) expect(x['tcp.checksum.status']).toBe('1');
    }
  });
});

describe('Neighbours (ARP + ND cache)', () => {
  const KMAC = '02:00:00:00:0b:01';
  const KMAC2 = '02:00:00:00:0b:02';

  function setup(extra: Partial<ConstructorParameters<typeof Neighbours>[0]> = {}) {
    let now = 0;
    const sent: Uint8Array[] = [];
    const events: NeighbourEvent[] = [];
    const n = new Neighbours({
      mac: LB_MAC, now: () => now, send: (f) => sent.push(f), source4: SELF4, source6: 'fd00::1', owned: owned(),
      onEvent: (e) => events.push(e), vlan: [20], ...extra,
    });
    return { n, sent, events, at: (t: number) => { now = t; n.tick(); } };
  }

  it('resolves IPv4 by ARP with retries, fails, retries later, learns the reply, refreshes by unicast, sees MAC changes', () => {
    const { n, sent, events, at } = setup();
    expect(n.lookup('10.0.0.50')).toBeUndefined();
    expect(sent.length).toBe(1);
    at(500);
    expect(sent.length).toBe(1); // not yet
    at(1000);
    at(2000);
    expect(sent.length).toBe(3);
    at(3000);
    expect(events.map((e) => [e.type, e.address])).toEqual([['failed', '10.0.0.50']]);
    expect(n.entries()[0].state).toBe('failed');
    at(7999);
    expect(sent.length).toBe(3); // failedHoldMs 5000
    at(8000);
    expect(sent.length).toBe(4);
    // The answer (unicast to us) resolves it.
    expect(n.observe(inMemory(arpFrame({ op: 2, sha: KMAC, spa: '10.0.0.50', tha: LB_MAC, tpa: SELF4, dst: LB_MAC })))).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'resolved', address: '10.0.0.50', mac: KMAC, via: 'arp' });
    expect(n.lookup('10.0.0.50')).toEqual(u8(KMAC));
    // After reachableMs it is probed by unicast (still usable meanwhile), confirmed by the answer.
    at(8000 + 30000);
    expect(sent.length).toBe(5);
    expect(n.peek('10.0.0.50')).toEqual(u8(KMAC));
    n.observe(arpFrame({ op: 2, sha: KMAC, spa: '10.0.0.50', tha: LB_MAC, tpa: SELF4, dst: LB_MAC }));
    expect(n.entries()[0].state).toBe('reachable');
    // A gratuitous ARP from a new MAC changes it.
    n.observe(arpFrame({ op: 1, sha: KMAC2, spa: '10.0.0.50', tpa: '10.0.0.50' }));
    expect(events.at(-1)).toMatchObject({ type: 'changed', mac: KMAC2, previous: KMAC });
    // A refresh round nobody answers fails the entry.
    at(100_000);
    at(101_000);
    at(102_000);
    at(103_000);
    expect(events.at(-1)).toMatchObject({ type: 'failed', address: '10.0.0.50', previous: KMAC2 });
    expect(n.peek('10.0.0.50')).toBeUndefined();

    const rows = decode(dir, 'neigh-arp', sent, ['eth.src', 'eth.dst', 'vlan.id', 'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4']);
    for (const x of rows) expect(x).toMatchObject({ 'eth.src': LB_MAC, 'vlan.id': '20', 'arp.opcode': '1', 'arp.src.hw_mac': LB_MAC, 'arp.src.proto_ipv4': SELF4, 'arp.dst.proto_ipv4': '10.0.0.50' });
    expect(rows.map((x) => x['eth.dst'])).toEqual([
      ...Array(4).fill('ff:ff:ff:ff:ff:ff'), KMAC, KMAC2, KMAC2, KMAC2,
    ]);
  });

  it('learns from ARP requests for owned addresses, updates but does not create from others, expires unwanted entries', () => {
    const { n, events, at } = setup();
    expect(n.observe(arpFrame({ op: 1, sha: KMAC, spa: '10.0.0.60', tpa: '10.0.0.61' }))).toBe(false); // not for us: no entry
    expect(n.observe(arpFrame({ op: 1, sha: KMAC, spa: '0.0.0.0', tpa: VIP4 }))).toBe(false); // probe
    expect(n.observe(arpFrame({ op: 1, sha: KMAC, spa: VIP4, tpa: VIP4 }))).toBe(false); // someone claims our VIP: not a neighbour
    expect(n.observe(arpFrame({ op: 1, sha: KMAC, spa: '10.0.0.60', tpa: VIP4 }))).toBe(true);
    expect(n.peek('10.0.0.60')).toEqual(u8(KMAC));
    expect(n.observe(arpFrame({ op: 1, sha: KMAC2, spa: '10.0.0.60', tpa: '10.0.0.99' }))).toBe(true); // existing: updated
    expect(events.map((e) => e.type)).toEqual(['resolved', 'changed']);
    at(30_000);
    expect(n.entries()[0].state).toBe('stale');
    at(90_000);
    expect(n.size).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'expired', address: '10.0.0.60', previous: KMAC2, mac: null });
  });

  it('static entries are used as given and never probed or overridden', () => {
    const { n, sent, events, at } = setup();
    n.addStatic('10.0.0.70', KMAC);
    n.addStatic('fd00::70', KMAC);
    expect(n.lookup('10.0.0.70')).toEqual(u8(KMAC));
    n.observe(arpFrame({ op: 1, sha: KMAC2, spa: '10.0.0.70', tpa: VIP4 }));
    at(1e6);
    expect(n.lookup('fd00:0::70')).toEqual(u8(KMAC));
    expect(n.peek('10.0.0.70')).toEqual(u8(KMAC));
    expect(sent.length).toBe(0);
    expect(events.map((e) => [e.type, e.via])).toEqual([['resolved', 'static'], ['resolved', 'static']]);
  });

  it('resolves IPv6 by NS to the solicited-node group and learns from the NA; honours the override flag', () => {
    const { n, sent, events, at } = setup({ vlan: undefined });
    expect(n.lookup('fd00::abcd:50')).toBeUndefined();
    at(1000);
    // NA without S/O from a different target: nothing; the real answer resolves.
    n.observe(ndFrame({ type: 136, srcMac: KMAC, src: 'fd00::abcd:50', dst: 'fd00::1', dstMac: LB_MAC, target: 'fd00::abcd:50', ll: KMAC, flags: 0x60 }));
    expect(events.at(-1)).toMatchObject({ type: 'resolved', address: 'fd00::abcd:50', mac: KMAC, via: 'nd' });
    // An NA without O from another MAC does not replace it; with O it does.
    n.observe(ndFrame({ type: 136, srcMac: KMAC2, src: 'fd00::abcd:50', dst: 'ff02::1', dstMac: '33:33:00:00:00:01', target: 'fd00::abcd:50', ll: KMAC2, flags: 0 }));
    expect(n.peek('fd00::abcd:50')).toEqual(u8(KMAC));
    n.observe(ndFrame({ type: 136, srcMac: KMAC2, src: 'fd00::abcd:50', dst: 'ff02::1', dstMac: '33:33:00:00:00:01', target: 'fd00::abcd:50', ll: KMAC2, flags: 0x20 }));
    expect(events.at(-1)).toMatchObject({ type: 'changed', mac: KMAC2, previous: KMAC });
    // An NS for an owned address from a new neighbour creates its entry (RFC 4861 7.2.3).
    n.observe(ndFrame({ type: 135, srcMac: KMAC, src: 'fd00::77', dst: 'ff02::1:ff00:100', dstMac: '33:33:ff:00:01:00', target: VIP6, ll: KMAC }));
    expect(n.peek('fd00::77')).toEqual(u8(KMAC));
    at(1000 + 30_000); // refresh probe: unicast NS to the neighbour
    expect(sent.length).toBe(3);
    const rows = decode(dir, 'neigh-nd', sent, ['eth.src', 'eth.dst', 'ipv6.src', 'ipv6.dst', 'ipv6.hlim', 'icmpv6.type', 'icmpv6.nd.ns.target_address', 'icmpv6.opt.type', 'icmpv6.opt.linkaddr', 'icmpv6.checksum.status']);
    const ns = { 'eth.src': LB_MAC, 'ipv6.src': 'fd00::1', 'ipv6.hlim': '255', 'icmpv6.type': '135', 'icmpv6.nd.ns.target_address': 'fd00::abcd:50', 'icmpv6.opt.type': '1', 'icmpv6.opt.linkaddr': LB_MAC, 'icmpv6.checksum.status': '1' };
    expect(rows[0]).toMatchObject({ ...ns, 'eth.dst': '33:33:ff:cd:00:50', 'ipv6.dst': 'ff02::1:ffcd:50' });
    expect(rows[1]).toMatchObject({ ...ns, 'eth.dst': '33:33:ff:cd:00:50' });
    expect(rows[2]).toMatchObject({ ...ns, 'eth.dst': KMAC2, 'ipv6.dst': 'fd00::abcd:50' });
  });

  it('defaults its IPv6 source to the EUI-64 link-local of its MAC', () => {
    expect(linkLocalFromMac('02:00:00:00:00:fe')).toBe('fe80::ff:fe00:fe');
    expect(linkLocalFromMac('52:54:00:12:34:56')).toBe('fe80::5054:ff:fe12:3456');
    const sent: Uint8Array[] = [];
    new Neighbours({ mac: LB_MAC, now: () => 0, send: (f) => sent.push(f) }).lookup('fe80::1');
    const rows = decode(dir, 'neigh-ll', sent, ['ipv6.src', 'ipv6.dst']);
    expect(rows[0]).toMatchObject({ 'ipv6.src': 'fe80::ff:fe00:fe', 'ipv6.dst': 'ff02::1:ff00:1' });
  });
});

// ---------------------------------------------------------------------------------------------
// The Linux kernel as the other end of the wire.

const NS = `slbt4-l2-${process.pid}`;
const K_IF = 'k0'; // the kernel's end: 10.99.4.1/24 + its link-local
const B_IF = 'b0'; // ours, driven through AF_PACKET; no addresses, IPv6 off
const B_MAC = '02:00:00:99:04:02';
const B_MAC2 = '02:00:00:99:04:03';
const B_IP4 = '10.99.4.2';
const B_LL = 'fe80::99:4:2';
const K_IP4 = '10.99.4.1';
const run = promisify(execFile);

// The wire: prints every frame arriving on the interface as a hex line, sends every hex line it reads.
const WIRE_PY = `
import socket, sys, threading, binascii
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
def rx():
    while True:
        data, addr = s.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        sys.stdout.write(binascii.hexlify(data).decode() + "\\n")
        sys.stdout.flush()
threading.Thread(target=rx, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    line = line.strip()
    if line:
        s.send(binascii.unhexlify(line))
`;

// Kernel-side clients; each prints one result line.
const CLIENT_PY = `
import socket, sys, time
what, host = sys.argv[1], sys.argv[2]
v6 = ':' in host
fam = socket.AF_INET6 if v6 else socket.AF_INET
def addr(port):
    return socket.getaddrinfo(host, port, fam, socket.SOCK_DGRAM)[0][4]
if what == 'ping':
    s = socket.socket(fam, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    s.settimeout(3)
    s.sendto((b'\\x80' if v6 else b'\\x08') + b'\\x00\\x00\\x00\\x00\\x00\\x00\\x07' + b'sessionlb-ping-data', addr(0))
    data = s.recv(2048)
    print('reply', data[0], data[7], data[8:].decode())
elif what == 'tcp':
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    t = time.time()
    try:
        s.connect(addr(80)); print('connected')
    except ConnectionRefusedError:
        print('refused %.3f' % (time.time() - t))
    except socket.timeout:
        print('timeout')
elif what == 'udp':
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect(addr(9))
    s.send(b'hello')
    try:
        s.recv(100); print('answered')
    except ConnectionRefusedError:
        print('refused')
    except socket.timeout:
        print('timeout')
elif what == 'pmtu':
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
    else:
        s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
    s.connect(addr(7))
    before = s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14)
    s.send(b'x' * 1400)
    time.sleep(0.3)
    try:
        s.send(b'x' * 1400)
    except OSError as e:
        pass
    after = s.getsockopt(socket.IPPROTO_IPV6, 24) if v6 else s.getsockopt(socket.IPPROTO_IP, 14)
    print('mtu', before, after)
`;

function sh(args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
const nsx = (args: string[]) => sh(['ip', 'netns', 'exec', NS, ...args]);

describe('against the Linux kernel (veth in a network namespace, AF_PACKET via python3)', () => {
  let skip = '';
  let wire: ChildProcessWithoutNullStreams | null = null;
  let kernelMac = '';
  let kernelLL = '';
  let mac = B_MAC;
  const log: string[] = [];
  const events: NeighbourEvent[] = [];
  const ownedK = new AddressSet([B_IP4, B_LL]);
  let responder: L2Responder;
  let neigh: Neighbours;
  const sendFrame = (f: Uint8Array) => wire?.stdin.write(Buffer.from(f).toString('hex') + '\n');

  function onFrame(f: Uint8Array): void {
    const res = responder.handle(inMemory(f, 7));
    log.push(res.kind);
    if (res.reply) return void sendFrame(res.reply);
    if (res.kind !== 'other') return;
    const c = Buffer.from(f);
    const v4 = c.readUInt16BE(12) === 0x0800;
    const v6 = c.readUInt16BE(12) === 0x86dd;
    if (!(v4 && ownedK.hasAt(f, 30, 4)) && !(v6 && ownedK.hasAt(f, 38, 16))) return;
    const proto = v4 ? c[23] : c[20];
    const l4 = v4 ? 14 + (c[14] & 15) * 4 : 54;
    const dport = c.readUInt16BE(l4 + 2);
    const m = u8(mac);
    if (proto === 6 && dport === 80) sendFrame(refuse(f, { mac: m }).frame!);
    else if (proto === 17 && dport === 9) sendFrame(refuse(f, { mac: m }).frame!);
    else if (proto === 17 && dport === 7) sendFrame(tooBig(f, v4 ? 1300 : 1280, v4 ? B_IP4 : B_LL, m)!);
  }

  beforeAll(async () => {
    if (process.getuid?.() !== 0) return void (skip = 'not root');
    if (spawnSync('python3', ['-c', 'import socket; socket.AF_PACKET']).status !== 0) return void (skip = 'python3 with AF_PACKET not available');
    // Leftovers of a crashed run of this file.
    for (const l of sh(['ip', 'netns', 'list']).split('\n')) {
      const name = l.split(' ')[0];
      if (name.startsWith('slbt4-l2-')) spawnSync('ip', ['netns', 'del', name]);
    }
    if (spawnSync('ip', ['netns', 'add', NS]).status !== 0) return void (skip = 'cannot create a network namespace');
    nsx(['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv4.ping_group_range=0 2147483647']);
    if (spawnSync('ip', ['netns', 'exec', NS, 'ip', 'link', 'add', K_IF, 'type', 'veth', 'peer', 'name', B_IF]).status !== 0) {
      spawnSync('ip', ['netns', 'del', NS]);
      return void (skip = 'the kernel has no veth');
    }
    nsx(['sysctl', '-qw', `net.ipv6.conf.${B_IF}.disable_ipv6=1`]);
    nsx(['ip', 'link', 'set', B_IF, 'address', B_MAC]);
    nsx(['ip', 'addr', 'add', `${K_IP4}/24`, 'dev', K_IF]);
    nsx(['ip', 'link', 'set', B_IF, 'up']);
    nsx(['ip', 'link', 'set', K_IF, 'up']);
    nsx(['ip', 'link', 'set', 'lo', 'up']);
    const link = JSON.parse(nsx(['ip', '-j', 'link', 'show', K_IF]))[0];
    kernelMac = link.address;
    kernelLL = linkLocalFromMac(kernelMac);
    const t0 = performance.now();
    neigh = new Neighbours({ mac: B_MAC, now: () => performance.now() - t0, send: sendFrame, source4: B_IP4, source6: B_LL, owned: ownedK, onEvent: (e) => events.push(e), retryIntervalMs: 300 });
    responder = new L2Responder({ mac: B_MAC, owned: ownedK, neighbours: neigh });
    wire = spawn('ip', ['netns', 'exec', NS, 'python3', '-u', '-c', WIRE_PY, B_IF], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    await new Promise<void>((ready, fail) => {
      wire!.on('error', fail);
      wire!.stderr.setEncoding('utf8').on('data', (d: string) => log.push(`wire stderr: ${d}`));
      wire!.stdout.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'ready') ready();
          else onFrame(Uint8Array.from(Buffer.from(line, 'hex')));
        }
      });
      setTimeout(() => fail(new Error('wire did not start')), 5000);
    });
  });

  afterAll(() => {
    if (wire && wire.pid && wire.exitCode === null) wire.kill('SIGTERM');
    if (!skip) spawnSync('ip', ['netns', 'del', NS]);
  });

  const client = async (what: string, host: string) => (await run('ip', ['netns', 'exec', NS, 'python3', '-c', CLIENT_PY, what, host], { timeout: 10_000 })).stdout.trim();
  const neighOf = (addr: string) => JSON.parse(nsx(['ip', '-j', addr.includes(':') ? '-6' : '-4', 'neigh', 'show', addr, 'dev', K_IF]))[0] ?? {};

  it('the kernel resolves the balancer by ARP and gets echo replies (its ping socket checks the ICMP checksum)', async (ctx) => {
    if (skip) return ctx.skip(skip);
    expect(await client('ping', B_IP4)).toBe('reply 0 7 sessionlb-ping-data');
    expect(neighOf(B_IP4)).toMatchObject({ dst: B_IP4, lladdr: B_MAC });
    expect(['REACHABLE', 'DELAY', 'STALE']).toContain(neighOf(B_IP4).state[0]);
    expect(log).toContain('arp-request');
    expect(log).toContain('echo-request');
    // Its ARP request targeted an owned address: the cache learned the kernel from it.
    expect(neigh.peek(K_IP4)).toEqual(u8(kernelMac));
  });

  it('the kernel resolves the balancer by ND (our NA) and gets ICMPv6 echo replies', async (ctx) => {
    if (skip) return ctx.skip(skip);
    expect(await client('ping', `${B_LL}%${K_IF}`)).toBe('reply 129 7 sessionlb-ping-data');
    expect(neighOf(B_LL)).toMatchObject({ dst: B_LL, lladdr: B_MAC });
    expect(log).toContain('ns');
  });

  it('a refused TCP connect gets our RST (ECONNREFUSED at once), a refused UDP datagram our port unreachable', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const tcp = await client('tcp', B_IP4);
    expect(tcp).toMatch(/^refused /);
    expect(Number(tcp.split(' ')[1])).toBeLessThan(1);
    expect(await client('udp', B_IP4)).toBe('refused');
    expect((await client('tcp', `${B_LL}%${K_IF}`))).toMatch(/^refused /);
    expect(await client('udp', `${B_LL}%${K_IF}`)).toBe('refused');
  });

  it('the kernel lowers its path MTU on our fragmentation needed / packet too big', async (ctx) => {
    if (skip) return ctx.skip(skip);
    expect(await client('pmtu', B_IP4)).toBe('mtu 1500 1300');
    expect(await client('pmtu', `${B_LL}%${K_IF}`)).toBe('mtu 1500 1280');
  });

  it('our Neighbours resolves the kernel by ARP and ND (the kernel answers our request and solicitation)', async (ctx) => {
    if (skip) return ctx.skip(skip);
    neigh.delete(K_IP4);
    neigh.delete(kernelLL);
    events.length = 0;
    const probes = neigh.probesSent;
    expect(neigh.lookup(K_IP4)).toBeUndefined();
    expect(neigh.lookup(kernelLL)).toBeUndefined();
    for (let i = 0; i < 40 && !(neigh.peek(K_IP4) && neigh.peek(kernelLL)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      neigh.tick();
    }
    expect(neigh.peek(K_IP4)).toEqual(u8(kernelMac));
    expect(neigh.peek(kernelLL)).toEqual(u8(kernelMac));
    expect(events.filter((e) => e.type === 'resolved').map((e) => [e.address, e.mac, e.via]).sort()).toEqual([
      [K_IP4, kernelMac, 'arp'], [kernelLL, kernelMac, 'nd'],
    ].sort());
    expect(neigh.probesSent - probes).toBeGreaterThanOrEqual(2);
    expect(neigh.entries().find((e) => e.address === K_IP4)?.state).toBe('reachable');
  });

  it('the kernel takes a gratuitous ARP and an unsolicited NA for a new MAC', async (ctx) => {
    if (skip) return ctx.skip(skip);
    // Past Linux's 1 s ARP locktime since the last update of the entry.
    await new Promise((r) => setTimeout(r, 1100));
    mac = B_MAC2;
    sendFrame(buildAnnouncement(B_MAC2, B_IP4));
    sendFrame(buildAnnouncement(B_MAC2, B_LL));
    let n4: { lladdr?: string } = {};
    let n6: { lladdr?: string } = {};
    for (let i = 0; i < 40; i++) {
      n4 = neighOf(B_IP4);
      n6 = neighOf(B_LL);
      if (n4.lladdr === B_MAC2 && n6.lladdr === B_MAC2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect([n4.lladdr, n6.lladdr]).toEqual([B_MAC2, B_MAC2]);
  });
});
