// tshark as an independent oracle for every forwarding method: replay hand-built captures (TCP and
// UDP flows with correct checksums, plus a few frames that must be passed or dropped) through the
// CLI and check with tshark 4.0 that
// - no output frame has a bad IPv4/TCP/UDP/ICMP checksum or any expert error, outer or inner;
// - the frame counts of DIR/<backend>.pcap and DIR/client.pcap are the report's, and the report
//   accounts for every input packet;
// - NAT frames carry the backend as destination (replies the VIP as source), DR frames are the
//   original IP packets, tunnelled frames decode to the original client->VIP packet (byte for
//   byte) inside an outer header from the tunnel source to the backend;
// - every flow lands on exactly one backend, the one --flows names, its packets in order (tshark's
//   TCP analysis flags nothing: no retransmission, out-of-order or lost segment).
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import {
  accounting,
  buildFlows,
  ethFrame,
  ipBytes,
  macBytes,
  readReport,
  runCli,
  tempDir,
  writeCapture,
  type BuiltFrame,
  type FlowSpec,
  type Report,
} from './helpers/cli.js';
import { badChecksumFrames, expertErrorFrames, frameLayers, gueDecodeAs, tcpAnalysisFrames, type FrameLayers } from './helpers/tshark.js';
import { readPcap } from './helpers/tcprewrite.js';

const LB_MAC = '02:00:00:00:00:fe';
const CLIENT_MAC = '02:00:00:00:aa:01';

type Method = 'nat' | 'dr' | 'ipip' | 'gre' | 'gue';
interface Backend {
  id: string;
  address: string;
  mac: string;
  weight?: number;
}
interface Scenario {
  name: string;
  method: Method;
  scheduler: string;
  vip: string;
  backends: Backend[];
  tunnel?: { source?: string; source6?: string; guePort?: number };
}

const b4 = (n: number, weight?: number): Backend => ({ id: `b${n}`, address: `10.0.1.${n}`, mac: `02:00:00:00:01:0${n}`, weight });
const b6 = (n: number): Backend => ({ id: `b${n}`, address: `fd00:1::${n}`, mac: `02:00:00:00:01:0${n}` });

// Schedulers vary across scenarios; NAT uses hash-based ones (maglev, sh) because its replies are
// built from a first pass's flow->backend map, which must not change when replies are added.
const SCENARIOS: Scenario[] = [
  { name: 'nat ipv4', method: 'nat', scheduler: 'maglev', vip: '10.0.0.100', backends: [b4(1), b4(2), b4(3)] },
  { name: 'dr ipv4', method: 'dr', scheduler: 'rr', vip: '10.0.0.100', backends: [b4(1), b4(2)] },
  { name: 'ipip ipv4-in-ipv4', method: 'ipip', scheduler: 'wrr', vip: '10.0.0.100', backends: [b4(1, 1), b4(2, 3)], tunnel: { source: '10.0.0.1' } },
  { name: 'gre ipv4-in-ipv4', method: 'gre', scheduler: 'lc', vip: '10.0.0.100', backends: [b4(1), b4(2)], tunnel: { source: '10.0.0.1' } },
  { name: 'gue ipv4-in-ipv4 (default port 6080)', method: 'gue', scheduler: 'wlc', vip: '10.0.0.100', backends: [b4(1), b4(2)], tunnel: { source: '10.0.0.1' } },
  { name: 'nat ipv6', method: 'nat', scheduler: 'sh', vip: 'fd00::100', backends: [b6(1), b6(2)] },
  { name: 'ipip ipv6-in-ipv6', method: 'ipip', scheduler: 'p2c', vip: 'fd00::100', backends: [b6(1), b6(2)], tunnel: { source6: 'fd00::1' } },
  { name: 'ipip ipv6-in-ipv4 (proto 41)', method: 'ipip', scheduler: 'maglev', vip: 'fd00::100', backends: [b4(1), b4(2)], tunnel: { source: '10.0.0.1' } },
  { name: 'gre ipv4-in-ipv6', method: 'gre', scheduler: 'rr', vip: '10.0.0.100', backends: [b6(1), b6(2)], tunnel: { source6: 'fd00::1' } },
  { name: 'gue ipv6-in-ipv6 (port 7777)', method: 'gue', scheduler: 'maglev', vip: 'fd00::100', backends: [b6(1), b6(2)], tunnel: { source6: 'fd00::1', guePort: 7777 } },
];

function configFor(s: Scenario) {
  return {
    mac: LB_MAC,
    flowCapacity: 4096,
    vips: [
      {
        address: s.vip,
        ports: [80],
        protocols: ['tcp', 'udp'],
        method: s.method,
        scheduler: s.scheduler,
        ...(s.tunnel ? { tunnel: s.tunnel } : {}),
        backends: s.backends.map((b) => ({ id: b.id, address: b.address, mac: b.mac, weight: b.weight ?? 1 })),
      },
    ],
  };
}

/** 12 flows to VIP:80 (8 TCP, 4 UDP) from distinct clients of the VIP's family. */
function flowsFor(vip: string): FlowSpec[] {
  return Array.from({ length: 12 }, (_, i) => ({
    proto: i % 3 === 2 ? 'udp' : 'tcp',
    client: isIPv6(vip) ? `2001:db8:${i + 1}::${(i * 37 + 5).toString(16)}` : `192.168.${10 + i}.${7 + 13 * i}`,
    clientPort: 40000 + 7 * i,
    vip,
    vipPort: 80,
    requestBytes: 40 + 61 * i,
    responseBytes: 200 + 97 * i,
  }));
}

/** Frames that no backend and no client may receive: they are passed or dropped. */
function straysFor(vip: string): Buffer[] {
  const arp = Buffer.concat([
    Buffer.from('ffffffffffff', 'hex'),
    macBytes(CLIENT_MAC),
    Buffer.from('0806' + '0001' + '0800' + '06' + '04' + '0001', 'hex'), // ARP request, Ethernet/IPv4
    macBytes(CLIENT_MAC),
    ipBytes('192.168.10.7'),
    Buffer.alloc(6),
    ipBytes('10.0.0.100'),
  ]);
  const other = isIPv6(vip) ? 'fd00::200' : '10.0.0.200';
  const client = isIPv6(vip) ? '2001:db8:99::1' : '192.168.99.1';
  return [
    arp,
    ethFrame({ src: client, dst: other, proto: 'udp', sport: 5353, dport: 53, payload: 'not for a VIP', srcMac: CLIENT_MAC, dstMac: LB_MAC }),
    ethFrame({ src: client, dst: vip, proto: 'tcp', sport: 41000, dport: 443, srcMac: CLIENT_MAC, dstMac: LB_MAC }), // port not served
  ];
}

const norm = (a: string) => ipBytes(a).toString('hex');
const sameAddr = (a: string | undefined, b: string) => a !== undefined && norm(a) === norm(b);

interface FlowRow {
  proto: string;
  client: string;
  clientPort: number;
  backend: string;
  packets: number;
}
function readFlowsCsv(path: string): FlowRow[] {
  const [header, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
  expect(header).toBe('proto,client_ip,client_port,vip,vip_port,backend,packets,bytes,session');
  return lines.map((l) => {
    const [proto, client, clientPort, , , backend, packets] = l.split(',');
    return { proto, client: norm(client), clientPort: Number(clientPort), backend, packets: Number(packets) };
  });
}

interface Run {
  dir: string;
  report: Report;
  flows: FlowSpec[];
  frames: BuiltFrame[]; // the flow frames of the replayed capture (strays excluded)
  strays: number;
  csv: FlowRow[];
  firstPassCsv?: FlowRow[];
}

function replay(s: Scenario): Run {
  const dir = tempDir(`oracle-tshark-${s.name}`);
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify(configFor(s), null, 2));
  const flows = flowsFor(s.vip);
  const strays = straysFor(s.vip);
  const run = (name: string, frames: BuiltFrame[]) => {
    const input = writeCapture(join(dir, `${name}.in.pcap`), [...frames.map((f) => f.data), ...strays]);
    const out = join(dir, name);
    const r = runCli(['replay', input, '--config', config, '--out', out, '--flows', join(out, 'flows.csv'), '--quiet']);
    expect(r.code, `replay ${input} failed:\n${r.stderr}`).toBe(0);
    return { out, report: readReport(out), csv: readFlowsCsv(join(out, 'flows.csv')) };
  };
  const requests = buildFlows(flows, { clientMac: CLIENT_MAC, lbMac: LB_MAC });
  if (s.method !== 'nat') {
    const r = run('replay', requests);
    return { dir: r.out, report: r.report, flows, frames: requests, strays: strays.length, csv: r.csv };
  }
  // NAT: backends answer from their own address, so the replies depend on the backend each flow
  // got. First pass: requests only, to learn the flow->backend map; second pass: both directions.
  const first = run('requests', requests);
  const backendOf = (i: number) => {
    const row = first.csv.find((r) => r.client === norm(flows[i].client) && r.clientPort === flows[i].clientPort);
    const b = s.backends.find((x) => x.id === row?.backend);
    if (!b) throw new Error(`first pass: no backend for flow ${i} in flows.csv`);
    return { address: b.address, mac: b.mac };
  };
  const both = buildFlows(flows, { clientMac: CLIENT_MAC, lbMac: LB_MAC, replies: true, replyFrom: backendOf });
  const r = run('replay', both);
  return { dir: r.out, report: r.report, flows, frames: both, strays: strays.length, csv: r.csv, firstPassCsv: first.csv };
}

/** Innermost IP and transport layers of a dissected frame. */
function innermost(f: FrameLayers) {
  const ips = f.layers.filter((l) => l.proto === 'ip' || l.proto === 'ipv6');
  const l4 = [...f.layers].reverse().find((l) => l.proto === 'tcp' || l.proto === 'udp');
  return { ip: ips[ips.length - 1], l4, outer: ips[0], depth: ips.length };
}

/** Offset of the inner IP packet in a tunnelled Ethernet frame written by sessionlb. */
function innerOffset(frame: Buffer, method: Method): number {
  let off = 14;
  const v = frame[off] >> 4;
  off += v === 4 ? (frame[off] & 0x0f) * 4 : 40;
  if (method === 'gre') off += 4; // RFC 2784 header without checksum, key or sequence
  if (method === 'gue') off += 8; // UDP header; GUE variant 1 has no GUE header
  return off;
}

describe.each(SCENARIOS)('tshark oracle: $name', (s) => {
  let run: Run;
  const tunnel = s.method === 'ipip' || s.method === 'gre' || s.method === 'gue';
  const decodeAs = s.method === 'gue' ? gueDecodeAs(s.tunnel?.guePort ?? 6080) : [];
  const pcap = (id: string) => join(run.dir, `${id}.pcap`);
  const outputs = () => [...s.backends.map((b) => b.id), 'client'];
  const dissected = new Map<string, FrameLayers[]>(); // one tshark run per output file
  const layers = (id: string) => {
    if (!dissected.has(id)) dissected.set(id, frameLayers(pcap(id), { decodeAs: id === 'client' ? [] : decodeAs }));
    return dissected.get(id)!;
  };

  beforeAll(() => {
    run = replay(s);
  });

  it('accounts for every input packet: requests to backends, replies to clients, the rest passed or dropped', () => {
    const a = accounting(run.report);
    const requests = run.frames.filter((f) => f.dir === 'request').length;
    const replies = run.frames.filter((f) => f.dir === 'reply').length;
    expect(a.input).toBe(run.frames.length + run.strays);
    expect(a.total).toBe(a.input);
    expect(a.backends).toBe(requests);
    expect(a.client).toBe(replies);
    expect(a.passed + a.dropped).toBe(run.strays);
    expect(run.report.input.linktypes).toEqual({ '1': a.input });
    expect(run.report.input.truncated).toBe(false);
    // Every flow's data reaches a backend; with NAT, every reply passes back through the balancer.
    const flowsTotal = Object.values(run.report.backends).reduce((x, b) => x + b.flows, 0);
    expect(flowsTotal).toBe(run.flows.length);
    if (s.method === 'nat') expect(Object.values(run.report.backends).reduce((x, b) => x + b.replyPackets, 0)).toBe(replies);
  });

  it('output frame counts match the report (tshark and a plain pcap reader agree)', () => {
    for (const id of outputs()) {
      const expected = id === 'client' ? run.report.client.packets : run.report.backends[id].packets;
      const file = readPcap(pcap(id));
      expect(file.linktype, `${id}.pcap link type`).toBe(1);
      expect(file.frames.length, `${id}.pcap frames`).toBe(expected);
      expect(layers(id).length, `${id}.pcap frames (tshark)`).toBe(expected);
    }
  });

  it('tshark finds no bad checksum and no expert error in any output, outer or inner', () => {
    for (const id of outputs()) {
      expect(badChecksumFrames(pcap(id), { decodeAs }), `${id}.pcap`).toEqual([]);
      expect(expertErrorFrames(pcap(id), { decodeAs }), `${id}.pcap`).toEqual([]);
    }
  });

  it('backend frames carry the right addresses (and tunnels the original packet inside)', () => {
    const byClient = new Map(run.flows.map((f, i) => [`${norm(f.client)}:${f.clientPort}`, i]));
    for (const b of s.backends) {
      const frames = layers(b.id);
      const raw = readPcap(pcap(b.id)).frames;
      // the requests of this backend's flows, in capture order
      const seen = new Set<number>();
      frames.forEach((f, k) => {
        const where = `${b.id}.pcap frame ${f.frame}: ${f.layers.map((l) => `${l.proto}(${l.src ?? ''}>${l.dst ?? ''})`).join(' ')}`;
        expect(f.ethDst, where).toBe(b.mac);
        expect(f.ethSrc, where).toBe(LB_MAC);
        const { ip, l4, outer, depth } = innermost(f);
        const flow = byClient.get(`${norm(ip.src!)}:${l4?.src}`);
        expect(flow, `${where}: not one of the test's flows`).toBeDefined();
        seen.add(flow!);
        expect(l4?.proto, where).toBe(run.flows[flow!].proto);
        expect(l4?.dst, where).toBe('80');
        if (s.method === 'nat') {
          expect(depth, where).toBe(1);
          expect(sameAddr(ip.dst, b.address), `${where}: destination should be the backend`).toBe(true);
        } else if (s.method === 'dr') {
          expect(depth, where).toBe(1);
          expect(sameAddr(ip.dst, s.vip), `${where}: destination should stay the VIP`).toBe(true);
        } else {
          expect(depth, where).toBe(2);
          const outerV6 = isIPv6(b.address);
          expect(outer.proto, where).toBe(outerV6 ? 'ipv6' : 'ip');
          expect(sameAddr(outer.dst, b.address), `${where}: outer destination should be the backend`).toBe(true);
          const source = outerV6 ? (s.tunnel?.source6 ?? s.vip) : (s.tunnel?.source ?? s.vip);
          expect(sameAddr(outer.src, source), `${where}: outer source should be the tunnel source`).toBe(true);
          expect(sameAddr(ip.src, run.flows[flow!].client), where).toBe(true);
          expect(sameAddr(ip.dst, s.vip), `${where}: inner destination should be the VIP`).toBe(true);
          const innerV6 = isIPv6(s.vip);
          if (s.method === 'ipip') expect(outer.nxt, where).toBe(innerV6 ? '41' : '4');
          if (s.method === 'gre') {
            expect(outer.nxt, where).toBe('47');
            expect(f.layers[1].proto, where).toBe('gre');
          }
          if (s.method === 'gue') {
            expect(outer.nxt, where).toBe('17');
            expect(f.layers[1].proto, where).toBe('udp');
            expect(f.layers[1].dst, where).toBe(String(s.tunnel?.guePort ?? 6080));
          }
        }
        if (s.method !== 'nat') {
          // DR and tunnels must not touch the client's IP packet at all.
          const original = run.frames.filter((x) => x.flow === flow && x.dir === 'request');
          const nth = frames.slice(0, k).filter((g) => byClient.get(`${norm(innermost(g).ip.src!)}:${innermost(g).l4?.src}`) === flow).length;
          const start = tunnel ? innerOffset(raw[k].data, s.method) : 14;
          expect(raw[k].data.subarray(start).toString('hex'), `${where}: inner packet differs from the input's`).toBe(
            original[nth].data.subarray(14).toString('hex'),
          );
        }
      });
      // the report's per-backend flow count is the number of distinct flows in its pcap
      expect(seen.size, `${b.id}: distinct flows`).toBe(run.report.backends[b.id].flows);
    }
  });

  it('each flow goes to exactly one backend, the one --flows names, with all its packets in order', () => {
    const files = new Map<number, Set<string>>();
    const counts = new Map<number, number>();
    const byClient = new Map(run.flows.map((f, i) => [`${norm(f.client)}:${f.clientPort}`, i]));
    for (const b of s.backends) {
      for (const f of layers(b.id)) {
        const { ip, l4 } = innermost(f);
        const flow = byClient.get(`${norm(ip.src!)}:${l4?.src}`)!;
        if (!files.has(flow)) files.set(flow, new Set());
        files.get(flow)!.add(b.id);
        counts.set(flow, (counts.get(flow) ?? 0) + 1);
      }
      // Input flows are clean, so any TCP analysis flag (retransmission, out-of-order, previous
      // segment not captured, ...) means the balancer reordered, duplicated or split a flow.
      expect(tcpAnalysisFrames(pcap(b.id), { decodeAs }), `${b.id}.pcap`).toEqual([]);
    }
    expect(tcpAnalysisFrames(pcap('client'), { decodeAs: [] }), 'client.pcap').toEqual([]);
    expect(run.csv.length).toBe(run.flows.length);
    run.flows.forEach((f, i) => {
      expect([...(files.get(i) ?? [])], `flow ${i} (${f.client}:${f.clientPort}) backends`).toHaveLength(1);
      expect(counts.get(i), `flow ${i} packets`).toBe(run.frames.filter((x) => x.flow === i && x.dir === 'request').length);
      const row = run.csv.find((r) => r.client === norm(f.client) && r.clientPort === f.clientPort);
      expect(row?.backend, `flows.csv row for flow ${i}`).toBe([...files.get(i)!][0]);
      expect(row?.proto).toBe(f.proto);
      if (run.firstPassCsv) {
        const first = run.firstPassCsv.find((r) => r.client === norm(f.client) && r.clientPort === f.clientPort);
        expect(first?.backend, `flow ${i}: backend changed between the requests-only and the full replay`).toBe(row?.backend);
      }
    });
  });

  it.runIf(s.method === 'nat')('NAT replies reach the client from the VIP', () => {
    const byClient = new Map(run.flows.map((f, i) => [`${norm(f.client)}:${f.clientPort}`, i]));
    expect(layers('client').length).toBe(run.frames.filter((f) => f.dir === 'reply').length);
    for (const f of layers('client')) {
      const where = `client.pcap frame ${f.frame}`;
      const { ip, l4, depth } = innermost(f);
      expect(depth, where).toBe(1);
      expect(f.ethSrc, where).toBe(LB_MAC);
      expect(sameAddr(ip.src, s.vip), `${where}: source should be the VIP, is ${ip.src}`).toBe(true);
      expect(l4?.src, where).toBe('80');
      expect(byClient.has(`${norm(ip.dst!)}:${l4?.dst}`), `${where}: destination is not a test client`).toBe(true);
    }
  });
});
