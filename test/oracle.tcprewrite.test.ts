// Differential oracle: a single-backend NAT replay of client->VIP packets must equal what
// tcprewrite 4.4.3 makes of the same capture with `--dstipmap=VIP:BACKEND --fixcsum`: the same
// frames, in the same order, with the same timestamps (as values), wire lengths, IP and L4
// headers and payloads, byte for byte.
//
// Intended differences, each handled explicitly below:
// 1. MAC addresses. sessionlb sends a frame to the backend's MAC from the balancer's MAC;
//    tcprewrite keeps MACs unless told, so it is given `--enet-dmac=BACKEND_MAC
//    --enet-smac=LB_MAC` (without a tcpprep cache every packet takes the first MAC of each list).
//    For IPv6 frames tcprewrite 4.4.3 ignores those and writes 33:33:<low 32 bits of the IPv6
//    destination> / 33:33:<... of the source>: it mistakes every IPv6 packet for multicast
//    (appneta/tcpreplay PR #793, fixed in 4.4.4). So for IPv6 frames the MACs are checked against
//    the config on sessionlb's side only and blanked on both sides before the comparison.
// 2. Timestamps: sessionlb writes nanosecond pcaps, tcprewrite keeps the input's microseconds.
//    Timestamps are compared as values, never as file bytes.
// 3. A UDP checksum that comes out as 0 after the rewrite: RFC 768 says to send it as 0xffff
//    (0 means "no checksum"); tcprewrite --fixcsum writes 0x0000, silently dropping the
//    checksum. sessionlb must send 0xffff; the comparison expects that where tcprewrite has 0.
// Not differences (checked by the frames below, so a change in either tool shows up):
// - a UDP datagram sent without a checksum (0) stays without one in both;
// - IPv4 options are carried unchanged and the header checksum covers them in both;
// - neither tool decrements the TTL / hop limit;
// - fragments: both rewrite the destination of every fragment; both update the UDP checksum in
//   the first fragment correctly for the whole datagram (tcprewrite did not recompute it over the
//   fragment alone: checked with tshark's reassembly).
// - ICMP is outside the differential: the VIP serves TCP and UDP only, and tcprewrite warns
//   "Unable to checksum ICMP with insufficient L4 data" on echo requests (leaving the ICMPv4
//   checksum, which has no pseudo-header, valid).
import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  accounting,
  buildFlows,
  ethFrame,
  inetChecksum,
  ipBytes,
  ipPacket,
  readReport,
  runCli,
  tempDir,
  writeCapture,
  type FlowSpec,
  type PacketSpec,
} from './helpers/cli.js';
import { firstDifference, readPcap, tcprewrite, type PcapFile } from './helpers/tcprewrite.js';
import { badChecksumFrames } from './helpers/tshark.js';
import { PcapWriter } from '../host/io/pcap-writer.js';

const LB_MAC = '02:00:00:00:00:fe';
const CLIENT_MAC = '02:00:00:00:aa:01';
const V4 = { vip: '10.0.0.100', backend: '10.0.1.1', mac: '02:00:00:00:01:01', id: 'b4' };
const V6 = { vip: 'fd00::100', backend: 'fd00:1::1', mac: '02:00:00:00:01:02', id: 'b6' };

const config = {
  mac: LB_MAC,
  flowCapacity: 65536,
  vips: [V4, V6].map((v) => ({
    address: v.vip,
    ports: [80],
    protocols: ['tcp', 'udp'],
    method: 'nat',
    scheduler: 'maglev',
    backends: [{ id: v.id, address: v.backend, mac: v.mac, weight: 1 }],
  })),
};

const req = (x: Partial<PacketSpec> & Pick<PacketSpec, 'src' | 'dst' | 'proto'>): Buffer =>
  ethFrame({ sport: 45000, dport: 80, srcMac: CLIENT_MAC, dstMac: LB_MAC, ...x });

/** A UDP datagram to V4.vip whose checksum after NAT to V4.backend computes to 0 (sent as 0xffff). */
function udpZeroAfterNat(): Buffer {
  for (let k = 0; k < 65536; k++) {
    const payload = Buffer.alloc(8);
    payload.writeUInt16BE(k, 0);
    const spec = { src: '192.168.200.1', proto: 'udp', sport: 45001, dport: 80, payload } as const;
    if (ipPacket({ ...spec, dst: V4.backend }).readUInt16BE(26) === 0xffff) return req({ ...spec, dst: V4.vip });
  }
  throw new Error('no payload gives a zero checksum');
}

/** Splits an IPv4 packet in two fragments, the first carrying `firstBytes` (multiple of 8) of payload. */
function fragments(ip: Buffer, firstBytes: number): Buffer[] {
  const ihl = (ip[0] & 0x0f) * 4;
  const parts = [ip.subarray(ihl, ihl + firstBytes), ip.subarray(ihl + firstBytes)];
  return parts.map((data, i) => {
    const h = Buffer.from(ip.subarray(0, ihl));
    h.writeUInt16BE(ihl + data.length, 2);
    h.writeUInt16BE((i === 0 ? 0x2000 : 0) | (i === 0 ? 0 : firstBytes / 8), 6); // MF on the first
    h.writeUInt16BE(0, 10);
    h.writeUInt16BE(inetChecksum(h), 10);
    return Buffer.concat([Buffer.from('0200000000fe02000000aa010800', 'hex'), h, data]);
  });
}

/** Client->VIP frames only: flows of both families plus the edge cases listed at the top. */
function handBuiltCapture(path: string): number {
  const flows: FlowSpec[] = Array.from({ length: 16 }, (_, i) => ({
    proto: i % 4 === 3 ? 'udp' : 'tcp',
    client: i % 2 ? `2001:db8:7::${i + 1}` : `192.168.50.${i + 1}`,
    clientPort: 41000 + i,
    vip: i % 2 ? V6.vip : V4.vip,
    vipPort: 80,
    requestBytes: 1 + 83 * i, // odd and even payload lengths
  }));
  const frames = buildFlows(flows, { clientMac: CLIENT_MAC, lbMac: LB_MAC }).map((f) => f.data);
  const fragged = ipPacket({ src: '192.168.60.1', dst: V4.vip, proto: 'udp', sport: 45002, dport: 80, payload: Buffer.alloc(600, 0x5a), ipId: 777 });
  frames.push(
    req({ src: '192.168.60.2', dst: V4.vip, proto: 'udp', sport: 45003, payload: 'no checksum', udpZeroChecksum: true }),
    udpZeroAfterNat(),
    req({ src: '192.168.60.3', dst: V4.vip, proto: 'tcp', sport: 45004, ipOptions: Buffer.from([0x94, 0x04, 0x00, 0x00]) }), // Router Alert
    req({ src: '192.168.60.4', dst: V4.vip, proto: 'udp', sport: 45005, payload: 'ttl 1', ttl: 1 }),
    req({ src: '2001:db8:7::99', dst: V6.vip, proto: 'udp', sport: 45006, payload: 'hop limit 1', ttl: 1 }),
    ...fragments(fragged, 304),
  );
  writeCapture(path, frames);
  return frames.length;
}

/** Copies the frames of `input` whose IPv4/IPv6 destination is one of `vips` to `output`. */
function onlyToVips(input: string, output: string, vips: string[]): number {
  const want = new Set(vips.map((v) => ipBytes(v).toString('hex')));
  const src = readPcap(input);
  const w = new PcapWriter(output, { nanos: false, linktype: src.linktype });
  let n = 0;
  for (const f of src.frames) {
    const type = f.data.readUInt16BE(12);
    const dst = type === 0x0800 ? f.data.subarray(30, 34) : type === 0x86dd ? f.data.subarray(38, 54) : null;
    if (dst && want.has(dst.toString('hex'))) {
      w.write(f.data, 0, f.caplen, f.wirelen, f.tsNs);
      n++;
    }
  }
  w.close();
  return n;
}

/** The L4 checksum offset within the frame for an untagged IPv4 UDP frame, else -1. */
function udp4ChecksumOffset(d: Buffer): number {
  if (d.readUInt16BE(12) !== 0x0800 || d[23] !== 17) return -1;
  if ((d.readUInt16BE(20) & 0x1fff) !== 0) return -1; // not a first fragment / whole datagram
  return 14 + (d[14] & 0x0f) * 4 + 6;
}

/**
 * Replays `input` through sessionlb (single-backend NAT) and tcprewrite, and returns both outputs
 * plus the input, after checking sessionlb forwarded every packet.
 */
function bothTools(name: string, makeInput: (path: string) => number) {
  const dir = tempDir(`oracle-tcprewrite-${name}`);
  const input = join(dir, 'in.pcap');
  const n = makeInput(input);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const r = runCli(['replay', input, '--config', join(dir, 'config.json'), '--out', join(dir, 'out'), '--quiet']);
  expect(r.code, r.stderr).toBe(0);
  const report = readReport(join(dir, 'out'));
  const a = accounting(report);
  expect(a.input).toBe(n);
  expect(a.total).toBe(n);
  const ref = join(dir, 'tcprewrite.pcap');
  // One run for both families: the MAC options only matter for IPv4 (see difference 1).
  tcprewrite(input, ref, {
    dstipmap: [
      [V4.vip, V4.backend],
      [V6.vip, V6.backend],
    ],
    fixcsum: true,
    enetDmac: V4.mac,
    enetSmac: LB_MAC,
  });
  return { dir, report, input: readPcap(input), ref: readPcap(ref), b4: join(dir, 'out', `${V4.id}.pcap`), b6: join(dir, 'out', `${V6.id}.pcap`) };
}

const isV6 = (d: Buffer) => d.readUInt16BE(12) === 0x86dd;
/** The frames of one address family, in file order (renumbered from 0). */
function family(f: PcapFile, v6: boolean): PcapFile {
  return { ...f, frames: f.frames.filter((x) => isV6(x.data) === v6).map((x, index) => ({ ...x, index })) };
}

function compare(t: ReturnType<typeof bothTools>) {
  // Every client->VIP packet is forwarded: nothing passed, dropped or sent to the client side.
  expect(t.report.client.packets).toBe(0);
  for (const [v, file] of [
    [V4, t.b4],
    [V6, t.b6],
  ] as const) {
    const v6 = v === V6;
    const lb = readPcap(file);
    const input = family(t.input, v6);
    const ref = family(t.ref, v6);
    expect(lb.frames.length, `frames forwarded to ${v.id}`).toBe(input.frames.length);
    // MACs: sessionlb's are checked against the config here.
    for (const f of lb.frames) {
      expect(f.data.subarray(0, 6).toString('hex'), `${v.id} frame ${f.index + 1}: destination MAC`).toBe(v.mac.replaceAll(':', ''));
      expect(f.data.subarray(6, 12).toString('hex'), `${v.id} frame ${f.index + 1}: source MAC`).toBe(LB_MAC.replaceAll(':', ''));
    }
    const diff = firstDifference(lb, ref, {
      timestamps: true, // as values (difference 2)
      normalize: (d, side, i) => {
        if (v6) d.fill(0, 0, 12); // difference 1: tcprewrite 4.4.3 writes 33:33:... MACs on IPv6 frames
        const o = udp4ChecksumOffset(d);
        // difference 3: a computed 0 is sent as 0xffff by sessionlb, as 0 by tcprewrite
        if (side === 'b' && o > 0 && d.readUInt16BE(o) === 0 && input.frames[i].data.readUInt16BE(o) !== 0) d.writeUInt16BE(0xffff, o);
        return d;
      },
    });
    expect(diff?.summary ?? null, `${v.id}.pcap differs from tcprewrite's output (a = sessionlb, b = tcprewrite)`).toBeNull();
    expect(badChecksumFrames(file), `bad checksums in ${v.id}.pcap`).toEqual([]);
  }
}

describe('tcprewrite oracle: single-backend NAT of client->VIP packets', () => {
  let hand: ReturnType<typeof bothTools>;
  beforeAll(() => {
    hand = bothTools('hand-built', handBuiltCapture);
  });

  it('hand-built flows and edge cases (IPv4 and IPv6) equal tcprewrite byte for byte', () => {
    compare(hand);
  });

  it('the zero-after-NAT UDP checksum is 0xffff, the no-checksum datagram stays without one', () => {
      const lb = readPcap(hand.b4).frames;
    const bySourcePort = (port: number) => lb.filter((f) => udp4ChecksumOffset(f.data) === 40 && f.data.readUInt16BE(34) === port);
    expect(bySourcePort(45001).map((f) => f.data.readUInt16BE(40))).toEqual([0xffff]);
    expect(bySourcePort(45003).map((f) => f.data.readUInt16BE(40))).toEqual([0]);
  });

  it('a generated capture (sessionlb generate flows), replies filtered out, equals tcprewrite', () => {
    const t = bothTools('generated', (path) => {
      const all = join(path, '..', 'generated-all.pcap');
      const g = runCli(['generate', 'flows', '--out', all, '--packets', '6000', '--flows', '300', '--seed', '7', '--vip', V4.vip, '--vip', V6.vip]);
      expect(g.code, `generate failed: ${g.stderr}`).toBe(0);
      const n = onlyToVips(all, path, [V4.vip, V6.vip]);
      expect(n).toBeGreaterThan(2000);
      return n;
    });
    compare(t);
  });
});
