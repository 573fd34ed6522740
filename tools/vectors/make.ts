// Conformance vectors: fixtures/vectors/<name>/. Each vector is made by running the Node host's
// replay (host/replay.ts, the code path behind `sessionlb replay`) on a small input capture while
// a recording proxy sits between the host and the engine module's exports. The proxy writes down
// every export call the host made (arguments and return value), the bytes the host wrote into the
// scratch region and the Maglev tables before each call, the batches of packets it handed to
// process() and the event records it consumed. The host's output captures, per-packet verdicts and
// final counters are the expected results. docs/abi.md "Conformance vectors" describes the files.
//
//   npm run vectors            regenerate every vector into fixtures/vectors
//   tsx tools/vectors/make.ts --out DIR [NAME...]
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, type Config } from '../../host/ctl/config.js';
import { buildRing } from '../../host/ctl/maglev.js';
import { replayFile } from '../../host/replay.js';
import { generateFlows } from '../../host/gen/flows.js';
import { generateRtsp } from '../../host/gen/rtsp.js';
import type { EngineExports } from '../../host/wasm.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const VECTORS_DIR = join(root, 'fixtures', 'vectors');

// ---------------------------------------------------------------------------------------------
// Classic pcap reading and writing (the vectors' inputs are classic pcap only)

export interface PcapRecord {
  tsSec: number;
  tsFrac: number;
  caplen: number;
  wirelen: number;
  data: Uint8Array;
}

export interface Pcap {
  nanos: boolean;
  linktype: number;
  records: PcapRecord[];
}

export function readPcap(buf: Uint8Array): Pcap {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic !== 0xa1b2c3d4 && magic !== 0xa1b23c4d) throw new Error('not a little-endian classic pcap');
  const records: PcapRecord[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const caplen = dv.getUint32(off + 8, true);
    records.push({ tsSec: dv.getUint32(off, true), tsFrac: dv.getUint32(off + 4, true), caplen, wirelen: dv.getUint32(off + 12, true), data: Uint8Array.from(buf.subarray(off + 16, off + 16 + caplen)) });
    off += 16 + caplen;
  }
  return { nanos: magic === 0xa1b23c4d, linktype: dv.getUint32(20, true), records };
}

export function writePcap(p: Pcap): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(24);
  h.writeUInt32LE(p.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(262144, 16);
  h.writeUInt32LE(p.linktype, 20);
  parts.push(h);
  for (const r of p.records) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(r.tsSec, 0);
    rh.writeUInt32LE(r.tsFrac, 4);
    rh.writeUInt32LE(r.caplen, 8);
    rh.writeUInt32LE(r.wirelen, 12);
    parts.push(rh, Buffer.from(r.data.subarray(0, r.caplen)));
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The recording proxy

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Ranges of bytes that differ between `a` and `b` (gaps shorter than 16 bytes are merged). */
function diffRanges(a: Uint8Array, b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  while (i < a.length) {
    if (a[i] === b[i]) {
      i++;
      continue;
    }
    let end = i + 1;
    for (let j = end; j < a.length && j < end + 16; j++) if (a[j] !== b[j]) end = j + 1;
    // extend while further differences follow within 16 bytes
    for (;;) {
      let next = -1;
      for (let j = end; j < a.length && j < end + 16; j++) if (a[j] !== b[j]) { next = j; break; }
      if (next < 0) break;
      end = next + 1;
    }
    out.push([i, end]);
    i = end;
  }
  return out;
}

class Recorder {
  lines: string[] = [];
  packets: string[] = [];
  events: string[] = [];
  raw: EngineExports | null = null;
  proxy: EngineExports | null = null;
  private mem: Uint8Array | null = null;
  private scratchShadow: Uint8Array | null = null;
  private ringShadow: Uint8Array | null = null;
  private tail = 0;
  private next = 0; // next input packet
  lastTs = 0;

  constructor(readonly input: Pcap) {}

  wrap(ex: EngineExports): EngineExports {
    if (this.proxy) throw new Error('one engine instance per vector');
    this.raw = ex;
    // The exports object is frozen, so the recorder hands out a plain object of wrappers.
    const wrapped: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(ex)) {
      if (typeof v !== 'function') {
        wrapped[name] = v;
        continue;
      }
      const f = v as (...a: unknown[]) => unknown;
      wrapped[name] = (...args: unknown[]) => {
        this.before(name, args);
        const r = f(...args);
        this.after(name, args, r);
        return r;
      };
    }
    this.proxy = wrapped as unknown as EngineExports;
    return this.proxy;
  }

  private view(): Uint8Array {
    const buf = this.raw!.memory.buffer;
    if (!this.mem || this.mem.buffer !== buf) this.mem = new Uint8Array(buf);
    return this.mem;
  }

  private region(name: 'scratch' | 'ring'): Uint8Array {
    const ex = this.raw!;
    const m = this.view();
    if (name === 'scratch') return m.subarray(ex.scratch_ptr(), ex.scratch_ptr() + ex.scratch_size());
    const ringBytes = this.ringEntries * 2;
    return m.subarray(ex.ring_ptr(), ex.ring_ptr() + ringBytes);
  }

  private ringEntries = 0;

  /** Host-side effects since the last call: memory writes and consumed events. */
  sync(): void {
    if (!this.scratchShadow) return;
    const ex = this.raw!;
    for (const [name, shadow] of [['scratch', this.scratchShadow], ['ring', this.ringShadow!]] as const) {
      const now = this.region(name);
      for (const [a, b] of diffRanges(shadow, now)) {
        this.lines.push(`write ${name} ${a} ${hex(now.subarray(a, b))}`);
        shadow.set(now.subarray(a, b), a);
      }
    }
    const m = this.view();
    const dv = new DataView(m.buffer);
    const hp = ex.event_head_ptr();
    const head = dv.getUint32(hp, true);
    const tail = dv.getUint32(hp + 4, true);
    if (tail !== this.tail) {
      if (tail !== head) throw new Error('the host consumed part of the event ring; the vector format says "all"');
      const cap = ex.event_capacity();
      for (let t = this.tail; t !== tail; t = (t + 1) >>> 0) {
        const p = ex.events_ptr() + (t & (cap - 1)) * 64;
        this.events.push(hex(m.subarray(p, p + 64)));
      }
      this.lines.push('events');
      this.tail = tail;
    }
  }

  private before(name: string, args: unknown[]): void {
    this.sync();
    if (name !== 'process') return;
    const n = args[0] as number;
    const ex = this.raw!;
    const m = this.view();
    const dv = new DataView(m.buffer);
    const d = ex.desc_ptr();
    for (let i = 0; i < n; i++) {
      const p = d + 32 * i;
      const r = this.input.records[this.next + i];
      if (!r) throw new Error('process() called with more packets than the input has');
      const data = dv.getUint32(p, true);
      const ok = dv.getUint32(p + 4, true) === r.caplen && dv.getUint32(p + 8, true) === r.wirelen && dv.getUint16(p + 12, true) === 0 &&
        dv.getUint16(p + 14, true) === this.input.linktype && dv.getUint32(p + 16, true) === r.tsSec &&
        dv.getUint32(p + 20, true) === (this.input.nanos ? r.tsFrac : r.tsFrac * 1000) &&
        Buffer.compare(Buffer.from(m.subarray(data, data + r.caplen)), Buffer.from(r.data)) === 0;
      if (!ok) throw new Error(`descriptor ${i} of a batch is not input packet ${this.next + i}: the vector format needs packets in file order`);
      this.lastTs = r.tsSec;
    }
    this.next += n;
    this.lines.push(`batch ${n}`);
  }

  private after(name: string, args: unknown[], r: unknown): void {
    const ex = this.raw!;
    if (name === 'process') {
      const dv = new DataView(this.view().buffer);
      const d = ex.desc_ptr();
      if (r !== args[0]) throw new Error('process() did not return n');
      for (let i = 0; i < (args[0] as number); i++) {
        const p = d + 32 * i;
        this.packets.push(`${dv.getUint8(p + 24)} ${dv.getUint8(p + 25)} ${dv.getUint16(p + 26, true)} ${dv.getUint32(p + 28, true)}`);
      }
      return;
    }
    const a = args.map((x) => (typeof x === 'bigint' ? BigInt.asUintN(64, x).toString() : String((x as number) >>> 0)));
    const ret = typeof r === 'number' ? ` = ${r >>> 0}` : '';
    this.lines.push(`call ${name}${a.length ? ' ' + a.join(' ') : ''}${ret}`);
    if (name === 'init') {
      this.ringEntries = args[3] as number;
      this.scratchShadow = this.region('scratch').slice();
      this.ringShadow = this.region('ring').slice();
    }
  }

  /** Final state as the harnesses print it (docs/abi.md "Conformance vectors"). */
  state(): string {
    const ex = this.raw!;
    const dv = new DataView(this.view().buffer);
    const u64s = (p: number, n: number) => Array.from({ length: n }, (_, i) => dv.getBigUint64(p + 8 * i, true).toString()).join(' ');
    const out = [`counters ${u64s(ex.counters_ptr(), 64)}`, `drops ${u64s(ex.drops_ptr(), 32)}`, `passes ${u64s(ex.passes_ptr(), 16)}`];
    for (let k = 0; k < this.backendCount; k++) out.push(`backend ${k} ${u64s(ex.backend_stats_ptr() + 64 * k, 8)}`);
    out.push(`flow_count ${ex.flow_count()}`, `session_count ${ex.session_count()}`);
    return out.join('\n') + '\n';
  }

  backendCount = 0;
}

/** Runs fn with every new WebAssembly.Instance's exports wrapped by the recorder. */
async function recording<T>(rec: Recorder, fn: () => Promise<T>): Promise<T> {
  const Real = WebAssembly.Instance;
  class Recording extends Real {
    private wrapped: unknown = null;
    override get exports(): WebAssembly.Exports {
      if (!this.wrapped) this.wrapped = rec.wrap(super.exports as unknown as EngineExports);
      return this.wrapped as WebAssembly.Exports;
    }
  }
  Object.defineProperty(WebAssembly, 'Instance', { value: Recording, configurable: true, writable: true });
  try {
    return await fn();
  } finally {
    Object.defineProperty(WebAssembly, 'Instance', { value: Real, configurable: true, writable: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The vectors

interface Change {
  afterBatch: number; // 1 = between the first and the second batch
  backend: string;
  state: 'active' | 'draining' | 'down';
}

interface VectorSpec {
  name: string;
  about: string;
  config: unknown;
  input: (tmp: string) => Buffer;
  changes?: Change[];
}

const MAC = '02:00:00:00:00:fe';
const b = (id: string, address: string, weight = 1) => ({ id, address, weight });

function flows(tmp: string, o: Partial<Parameters<typeof generateFlows>[0]>): Buffer {
  const out = join(tmp, 'flows.pcap');
  generateFlows({ out, packets: 200, flows: 16, seed: 7, vips: ['10.0.0.100'], clients: 12, rate: 20, concurrent: 6, payload: [8, 96], ...o });
  return readFileSync(out);
}

/** Hand-made bad and odd frames between valid ones: every drop and pass reason the parser has. */
function malformed(tmp: string): Buffer {
  const base = readPcap(flows(tmp, { packets: 60, flows: 6, udpShare: 0.5, seed: 11 }));
  const recs = base.records;
  const out: PcapRecord[] = [];
  const firstV4 = recs.find((r) => r.data[12] === 0x08 && r.data[13] === 0x00 && r.data[30] === 10 && r.data[33] === 100)!;
  const tcpIdx = recs.findIndex((r) => r.data[23] === 6 && r.data[30] === 10 && r.data[33] === 100);
  const tcp = recs[tcpIdx];
  const udp = recs.find((r) => r.data[23] === 17 && r.data[33] === 100)!;
  const clone = (r: PcapRecord, f: (d: Uint8Array) => Uint8Array | void, caplen?: number): PcapRecord => {
    const d = Uint8Array.from(r.data);
    const nd = f(d) ?? d;
    const c = caplen ?? nd.length;
    return { ...r, data: Uint8Array.from(nd.subarray(0, c)), caplen: c, wirelen: Math.max(r.wirelen, nd.length) };
  };
  const bad: PcapRecord[] = [
    clone(tcp, () => {}, 20), // truncated inside the IPv4 header
    clone(tcp, () => {}, 40), // truncated inside TCP
    clone(tcp, () => {}, 1), // one byte
    clone(tcp, (d) => void (d[14] = 0x75)), // IP version 7
    clone(tcp, (d) => void (d[14] = 0x43)), // IHL 3
    clone(tcp, (d) => void (d[16] = 0, d[17] = 10)), // total length below the header
    clone(tcp, (d) => void (d[46] = 0x20)), // TCP data offset 2
    clone(tcp, (d) => void (d[36] = 0x00, d[37] = 81)), // port not configured
    clone(udp, (d) => void (d[36] = 0x1f, d[37] = 0x90)), // UDP port 8080 not configured
    clone(tcp, (d) => void (d[12] = 0x08, d[13] = 0x06)), // ARP ethertype
    clone(tcp, (d) => void (d[33] = 99)), // not a VIP
    clone(tcp, (d) => void (d[20] = 0x20, d[21] = 0x10)), // a later fragment (MF, offset 16*8) with no first
    clone(tcp, (d) => {
      // ICMP echo request to the VIP
      d[23] = 1;
      d.fill(0, 34);
      d[34] = 8;
      return d.subarray(0, 34 + 16);
    }),
    clone(tcp, (d) => {
      // 802.1Q tag in front of a valid packet
      const n = new Uint8Array(d.length + 4);
      n.set(d.subarray(0, 12));
      n.set([0x81, 0x00, 0x00, 0x64], 12);
      n.set(d.subarray(12), 16);
      return n;
    }),
    clone(tcp, (d) => {
      // QinQ: 802.1ad then 802.1Q
      const n = new Uint8Array(d.length + 8);
      n.set(d.subarray(0, 12));
      n.set([0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14], 12);
      n.set(d.subarray(20 - 8), 20);
      return n;
    }),
    clone(firstV4, (d) => void (d[12] = 0x86, d[13] = 0xdd, d[14] = 0x60)), // IPv6 ethertype over IPv4 bytes
    clone(tcp, (d) => void (d[12] = 0x86, d[13] = 0xdd, d.fill(0x60, 14, 15)), 30), // IPv6 cut short
  ];
  // Interleave: the bad frames go after the valid ones at regular steps, with the valid ones' times.
  let k = 0;
  recs.forEach((r, i) => {
    out.push(r);
    if (i >= tcpIdx && k < bad.length && i % 3 === 0) out.push({ ...bad[k++], tsSec: r.tsSec, tsFrac: r.tsFrac });
  });
  while (k < bad.length) out.push({ ...bad[k++], tsSec: recs[recs.length - 1].tsSec, tsFrac: recs[recs.length - 1].tsFrac });
  return writePcap({ ...base, records: out });
}

export const SPECS: VectorSpec[] = [
  {
    name: 'nat',
    about: 'IPv4 VIP, NAT, weighted round robin over three backends (1:2:3), TCP and UDP with replies',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', scheduler: 'wrr', ringSize: 251,
      backends: [b('n1', '10.0.1.1', 1), b('n2', '10.0.1.2', 2), b('n3', '10.0.1.3', 3)] }] },
    input: (t) => flows(t, {}),
  },
  {
    name: 'dr',
    about: 'IPv4 VIP on two ports, direct routing (MAC rewrite only), round robin',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [80, 443], method: 'dr', scheduler: 'rr', ringSize: 251,
      backends: [b('d1', '10.0.1.1'), b('d2', '10.0.1.2')] }] },
    input: (t) => flows(t, { ports: [80, 443], seed: 8 }),
  },
  {
    name: 'ipip',
    about: 'IP-in-IP: an IPv4 VIP with IPv4 and IPv6 backends and an IPv6 VIP with IPv6 backends, source hashing',
    config: { mac: MAC, flowCapacity: 1024, vips: [
      { address: '10.0.0.100', ports: [80], method: 'ipip', scheduler: 'sh', ringSize: 251, tunnel: { source: '10.0.9.1', source6: 'fd00:9::1' },
        backends: [b('i1', '10.0.1.1'), b('i2', 'fd00:1::2')] },
      { address: '2001:db8::100', ports: [80], method: 'ipip', scheduler: 'sh', ringSize: 251,
        backends: [b('i3', 'fd00:1::3'), b('i4', 'fd00:1::4')] }] },
    input: (t) => flows(t, { vips: ['10.0.0.100', '2001:db8::100'], seed: 9 }),
  },
  {
    name: 'gre',
    about: 'GRE (RFC 2784) to IPv4 backends, power of two choices',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [80], method: 'gre', scheduler: 'p2c', ringSize: 251,
      backends: [b('g1', '10.0.1.1'), b('g2', '10.0.1.2'), b('g3', '10.0.1.3')] }] },
    input: (t) => flows(t, { seed: 10 }),
  },
  {
    name: 'gue',
    about: 'GUE (UDP port 6081) from an IPv6 VIP to IPv4 and IPv6 backends, weighted least connections',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '2001:db8::100', ports: [80], method: 'gue', scheduler: 'wlc', ringSize: 251,
      tunnel: { source: '10.0.9.1', guePort: 6081 }, backends: [b('u1', '10.0.1.1', 2), b('u2', 'fd00:1::2', 1)] }] },
    input: (t) => flows(t, { vips: ['2001:db8::100'], seed: 12 }),
  },
  {
    name: 'ipv6-nat',
    about: 'IPv6 VIP, NAT to IPv6 backends, least connections',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '2001:db8::100', ports: [80], method: 'nat', scheduler: 'lc', ringSize: 251,
      backends: [b('v1', 'fd00:1::1'), b('v2', 'fd00:1::2'), b('v3', 'fd00:1::3')] }] },
    input: (t) => flows(t, { vips: ['2001:db8::100'], seed: 13 }),
  },
  {
    name: 'maglev-change',
    about: 'Maglev (table size 251), NAT; between the first and second batch backend m2 goes down: set_backend_state and the table rewritten without it',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', scheduler: 'maglev', ringSize: 251,
      backends: [b('m1', '10.0.1.1'), b('m2', '10.0.1.2'), b('m3', '10.0.1.3'), b('m4', '10.0.1.4')] }] },
    input: (t) => flows(t, { packets: 400, flows: 30, concurrent: 20, rate: 40, seed: 14 }),
    changes: [{ afterBatch: 1, backend: 'm2', state: 'down' }],
  },
  {
    name: 'rtsp-session',
    about: 'RTSP sessions (sessionlb generate rtsp) on a NAT VIP with policy session: expectations for RTP/RTCP, RTSP NAT traversal rewriting',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [554], method: 'nat', scheduler: 'maglev', ringSize: 251, policy: 'session',
      backends: [b('r1', '10.0.1.1'), b('r2', '10.0.1.2'), b('r3', '10.0.1.3')] }] },
    input: (t) => {
      const out = join(t, 'rtsp.pcap');
      generateRtsp({ out, sessions: 4, seed: 3, vip: '10.0.0.100', natShare: 0.5, natAddresses: 1, arrivalRate: 4, duration: [1, 2], rtpRate: 10, tracks: [1, 2], interleavedShare: 0.25 });
      return readFileSync(out);
    },
  },
  {
    name: 'rtsp-nat',
    about: 'RTSP NAT traversal: the server messages of the capture name backend 10.0.1.100 (same text length as the VIP) in Transport source=, URLs and SDP; the engine gives the client the VIP\'s address',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [554], method: 'nat', scheduler: 'rr', ringSize: 251, policy: 'session',
      backends: [b('t1', '10.0.1.100'), b('t2', '10.0.1.200')] }] },
    input: (t) => {
      const out = join(t, 'rtsp.pcap');
      generateRtsp({ out, sessions: 3, seed: 5, vip: '10.0.0.100', natShare: 0, arrivalRate: 3, duration: [1, 1], rtpRate: 5, tracks: [1, 2], interleavedShare: 0 });
      const p = readPcap(readFileSync(out));
      // As a backend behind the balancer would write them: its own address in what it sends.
      const from = Buffer.from('10.0.0.100');
      const to = Buffer.from('10.0.1.100');
      for (const r of p.records) {
        const d = r.data;
        if (d[12] !== 0x08 || d[13] !== 0x00 || d[23] !== 6) continue;
        if (Buffer.from(d.subarray(26, 30)).toString('hex') !== '0a000064' || ((d[34] << 8) | d[35]) !== 554) continue;
        const payload = 14 + (d[14] & 15) * 4 + (d[14 + (d[14] & 15) * 4 + 12] >> 4) * 4;
        const buf = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
        for (let i = buf.indexOf(from, payload); i >= 0; i = buf.indexOf(from, i + from.length)) to.copy(buf, i);
      }
      return writePcap(p);
    },
  },
  {
    name: 'malformed',
    about: 'truncated frames, bad IP version and header length, bad TCP offset, unconfigured ports, ARP, not a VIP, orphan fragment, ICMP to the VIP, VLAN and QinQ tags, between valid NAT flows',
    config: { mac: MAC, flowCapacity: 1024, vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', scheduler: 'maglev', ringSize: 251,
      backends: [b('x1', '10.0.1.1'), b('x2', '10.0.1.2')] }] },
    input: malformed,
  },
];

/** Makes one vector into `dir` (created; its previous content removed). */
export async function makeVector(spec: VectorSpec, dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'expected'), { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'slb-vec-'));
  try {
    const inputBytes = spec.input(tmp);
    writeFileSync(join(dir, 'input.pcap'), inputBytes);
    const config: Config = parseConfig(spec.config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(spec.config, null, 2) + '\n');
    const input = readPcap(inputBytes);
    const rec = new Recorder(input);
    const ids = config.vips.flatMap((v) => v.backends.map((x) => x.id));
    rec.backendCount = ids.length;
    let batches = 0;
    const outDir = join(tmp, 'out');
    await recording(rec, () => replayFile(join(dir, 'input.pcap'), config, {
      outDir,
      progressEvery: 1,
      onProgress: () => {
        batches++;
        for (const c of spec.changes ?? []) {
          if (c.afterBatch !== batches) continue;
          // What Engine.setBackendState does: the VIP's Maglev table without the backend, then the engine call.
          const ex = rec.proxy!;
          const vi = config.vips.findIndex((v) => v.backends.some((x) => x.id === c.backend));
          const v = config.vips[vi];
          const be = v.backends.find((x) => x.id === c.backend)!;
          be.state = c.state;
          const ringOff = config.vips.slice(0, vi).reduce((s, x) => s + x.ringSize, 0);
          const table = buildRing(v.backends.map((x) => ({ name: x.id, weight: x.state === 'active' ? x.weight : 0 })), v.ringSize);
          const ring = new Uint16Array(ex.memory.buffer, ex.ring_ptr() + 2 * ringOff, v.ringSize);
          for (let i = 0; i < table.length; i++) ring[i] = table[i] < 0 ? 0xffff : table[i];
          const first = config.vips.slice(0, vi).reduce((s, x) => s + x.backends.length, 0);
          ex.set_backend_state(first + v.backends.indexOf(be), ['active', 'draining', 'down'].indexOf(c.state), rec.lastTs);
        }
      },
    }));
    rec.sync();
    rec.lines.push('end');
    if ((spec.changes ?? []).some((c) => c.afterBatch >= batches)) throw new Error(`${spec.name}: a backend change after the last batch`);
    const header = [
      `# sessionlb conformance vector "${spec.name}" (docs/abi.md "Conformance vectors")`,
      `# ${spec.about}`,
      `# input.pcap: ${input.records.length} packets, linktype ${input.linktype}; backends by global index: ${ids.join(' ')}`,
    ];
    writeFileSync(join(dir, 'calls.txt'), [...header, ...rec.lines].join('\n') + '\n');
    ids.forEach((id, k) => renameSync(join(outDir, `${id}.pcap`), join(dir, 'expected', `backend-${k}.pcap`)));
    renameSync(join(outDir, 'client.pcap'), join(dir, 'expected', 'client.pcap'));
    writeFileSync(join(dir, 'expected', 'packets.txt'), rec.packets.join('\n') + '\n');
    writeFileSync(join(dir, 'expected', 'events.txt'), rec.events.length ? rec.events.join('\n') + '\n' : '');
    writeFileSync(join(dir, 'expected', 'state.txt'), rec.state());
    if (rec.packets.length !== input.records.length) throw new Error(`${spec.name}: ${rec.packets.length} of ${input.records.length} packets processed`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Every file of a vector directory, relative paths sorted. */
export function vectorFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, c) => a.name.localeCompare(c.name))) {
      if (e.isDirectory()) walk(join(d, e.name), rel + e.name + '/');
      else out.push(rel + e.name);
    }
  };
  walk(dir, '');
  return out;
}

async function main() {
  const argv = process.argv.slice(2);
  const oi = argv.indexOf('--out');
  const outRoot = oi >= 0 ? resolve(argv[oi + 1]) : VECTORS_DIR;
  const names = argv.filter((_, i) => oi < 0 || (i !== oi && i !== oi + 1));
  for (const spec of SPECS) {
    if (names.length && !names.includes(spec.name)) continue;
    await makeVector(spec, join(outRoot, spec.name));
    process.stderr.write(`vector ${spec.name}: ${join(outRoot, spec.name)}\n`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exit(1);
  });
}
