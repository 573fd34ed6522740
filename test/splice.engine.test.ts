// TCP splicing with delayed binding (assembly/splice/, docs/splice.md), driven through the Node
// Engine with scripted TCP peers written here: a client talking to the VIP and backends answering
// the engine's own connections. Checks the SYN cookie handshake (valid, forged, expired; a SYN
// flood keeps no state), the buffered request and the backend SYN it triggers, the replay, the
// splice phase both ways (seq/ack/SACK/timestamps translated, windows rescaled) with ISNs just below
// 2^32 so every space wraps, teardown, timers, content-based backend choice (URL rule, RTSP
// Session of a live session), and both builds byte for byte. Oracles: the reference checksum
// verifier (test/ref/csum.ts) on every frame, and tshark on pcaps of each side (no bad checksum,
// no tcp.analysis flag).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Engine, type SpliceExports, type SpliceFrame } from '../host/engine.js';
import { parseConfig, addressBytes } from '../host/ctl/config.js';
import { loadModule } from '../host/wasm.js';
import { frame, parseFrame } from './ref/packet.js';
import { verifyFrame } from './ref/csum.js';
import { badChecksumFrames, tcpAnalysisFrames, fields } from './helpers/tshark.js';
import { tempDir } from './helpers/cli.js';
import { PcapWriter } from '../host/io/pcap-writer.js';
import { rng } from './helpers/rng.js';

const VIP = '10.1.0.1';
const CLIENT = '10.0.0.2';
const BACKENDS = ['10.2.0.11', '10.2.0.12'];
const CLIENT_MAC = '02:00:00:00:aa:01';
const LB_MAC = '02:00:00:00:00:fe';
const u32 = (x: number) => x >>> 0;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder('latin1').decode(b);

const F = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 };

function makeEngine(module?: WebAssembly.Module, scheduler = 1 /* rr */): Engine {
  const cfg = parseConfig({
    flowCapacity: 4096,
    vips: [{
      address: VIP, ports: [80, 554], method: 'nat', scheduler: 'rr', policy: 'session', rtspPorts: [554],
      backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: `02:00:00:00:01:0${i + 1}` })),
    }],
  });
  const eng = new Engine(cfg, module ? { module } : {});
  const ex = eng.ex as unknown as SpliceExports & Engine['ex'];
  const s = ex.scratch_ptr();
  eng.mem.fill(0, s, s + 48);
  eng.mem.set(addressBytes(VIP), s);
  // method 5 = splice (docs/abi.md config_vip)
  expect(ex.config_vip(0, 4, 5, scheduler, 1, 0, 2, 0, cfg.vips[0].ringSize, 6080)).toBe(0);
  eng.mem.fill(0, s, s + 8192);
  for (const p of [80, 554]) eng.mem[s + (p >> 3)] |= 1 << (p & 7);
  ex.config_vip_ports(0, 0);
  expect(ex.config_commit(1, 2)).toBe(0);
  eng.mem.fill(0, s, s + 16);
  expect(ex.config_splice(0)).toBe(0);
  return eng;
}

const sx = (e: Engine) => e.ex as unknown as SpliceExports;

interface Opts { mss?: number; ws?: number; sackOk?: boolean; ts?: [number, number]; sack?: [number, number][] }

function optBytes(o: Opts): Uint8Array {
  const b: number[] = [];
  if (o.mss !== undefined) b.push(2, 4, o.mss >> 8, o.mss & 255);
  if (o.sackOk) b.push(4, 2);
  if (o.ts) {
    b.push(8, 10);
    for (const v of o.ts) b.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  }
  if (o.ws !== undefined) b.push(1, 3, 3, o.ws);
  if (o.sack?.length) {
    b.push(1, 1, 5, 2 + 8 * o.sack.length);
    for (const [l, r] of o.sack) for (const v of [l, r]) b.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  }
  while (b.length % 4) b.push(0);
  return new Uint8Array(b);
}

interface Tcp {
  src: string; dst: string; sport: number; dport: number; seq: number; ack: number; flags: number; win: number;
  opts: Opts; payload: Uint8Array; srcMac: string; dstMac: string;
}

function parseTcp(f: Uint8Array): Tcp {
  const p = parseFrame(f);
  const ip = p.ip!;
  expect(ip.proto).toBe(6);
  const t = ip.tcp!;
  const o: Opts = {};
  const l4 = ip.l4Offset;
  for (let i = l4 + 20; i < l4 + t.headerLength;) {
    const k = f[i];
    if (k === 0) break;
    if (k === 1) { i++; continue; }
    const len = f[i + 1];
    const v32 = (x: number) => u32((f[x] << 24) | (f[x + 1] << 16) | (f[x + 2] << 8) | f[x + 3]);
    if (k === 2) o.mss = (f[i + 2] << 8) | f[i + 3];
    if (k === 3) o.ws = f[i + 2];
    if (k === 4) o.sackOk = true;
    if (k === 8) o.ts = [v32(i + 2), v32(i + 6)];
    if (k === 5) { o.sack = []; for (let x = i + 2; x < i + len; x += 8) o.sack.push([v32(x), v32(x + 4)]); }
    i += len;
  }
  const pay = f.slice(ip.payloadOffset!, ip.offset + ip.totalLength);
  return { src: ip.src, dst: ip.dst, sport: ip.sport!, dport: ip.dport!, seq: t.seq, ack: t.ack, flags: t.flags, win: t.window, opts: o, payload: pay, srcMac: p.srcMac, dstMac: p.dstMac };
}

function seg(s: { src: string; dst: string; sport: number; dport: number; seq: number; ack?: number; flags: number; win?: number; opts?: Opts; payload?: Uint8Array; srcMac?: string }): Uint8Array {
  return frame({
    src: s.src, dst: s.dst, proto: 'tcp', sport: s.sport, dport: s.dport, seq: u32(s.seq), ack: u32(s.ack ?? 0), tcpFlags: s.flags,
    window: s.win ?? 65535, tcpOptions: s.opts ? optBytes(s.opts) : undefined, payload: s.payload, srcMac: s.srcMac ?? CLIENT_MAC, dstMac: LB_MAC,
  });
}

/** The engine plus the two wires around it, recorded for tshark. */
class Harness {
  t = 1000; // seconds
  ms = 0;
  clientWire: { f: Uint8Array; t: number }[] = [];
  backendWire: { f: Uint8Array; t: number }[] = [];
  out: SpliceFrame[] = [];
  constructor(readonly eng: Engine) {}
  /** One frame in; returns its result and records the frames each side sees. */
  send(f: Uint8Array, fromClient: boolean) {
    this.ms += 3;
    const ts = this.t + this.ms / 1000;
    (fromClient ? this.clientWire : this.backendWire).push({ f, t: ts });
    const [r] = this.eng.processBatch([{ data: f, tsSec: this.t + Math.floor(this.ms / 1000), tsNsec: (this.ms % 1000) * 1e6 }]);
    if (r.verdict === 'client' || r.verdict === 'backend') {
      const chk = verifyFrame(r.frame);
      expect(chk.problems, `checksums of ${r.verdict} frame`).toEqual([]);
      (r.verdict === 'client' ? this.clientWire : this.backendWire).push({ f: r.frame, t: ts + 0.0001 });
    }
    this.out = this.eng.drainSplice();
    for (const o of this.out) {
      expect(verifyFrame(o.frame).problems).toEqual([]);
      (o.side === 'client' ? this.clientWire : this.backendWire).push({ f: o.frame, t: ts + 0.0002 });
    }
    return r;
  }
  nowMs(): number {
    return u32(this.t * 1000 + this.ms);
  }
  pcaps(dir: string): [string, string] {
    const write = (name: string, frames: { f: Uint8Array; t: number }[]) => {
      const p = join(dir, name);
      const w = new PcapWriter(p);
      for (const { f, t } of frames) {
        const b = Buffer.from(f);
        w.writeRecord(b, 0, b.length, b.length, Math.floor(t), Math.round((t % 1) * 1e6) * 1000);
      }
      w.close();
      return p;
    };
    return [write('client.pcap', this.clientWire), write('backend.pcap', this.backendWire)];
  }
}

function stats(eng: Engine): number[] {
  const p = sx(eng).splice_stats_ptr();
  return Array.from({ length: 16 }, (_, i) => Number(eng.dv.getBigUint64(p + 8 * i, true)));
}

/** A full spliced HTTP exchange; returns what the test checks. */
function httpExchange(h: Harness, o: { cIsn: number; bIsn: number; cport: number; request: string; clientTs?: boolean; backendTs?: boolean; backendWs?: number; backendSack?: boolean }) {
  const C = { src: CLIENT, dst: VIP, sport: o.cport, dport: 80 };
  let cTs = 77000;
  const ts = (ecr: number): [number, number] | undefined => (o.clientTs === false ? undefined : [cTs += 7, ecr]);
  // 1. SYN -> SYN-ACK with the cookie, in place.
  let r = h.send(seg({ ...C, seq: o.cIsn, flags: F.SYN, win: 64240, opts: { mss: 1460, sackOk: true, ts: ts(0), ws: 7 } }), true);
  expect(r.verdict).toBe('client');
  const sa = parseTcp(r.frame);
  expect(sa).toMatchObject({ src: VIP, dst: CLIENT, sport: 80, dport: o.cport, ack: u32(o.cIsn + 1), flags: F.SYN | F.ACK, dstMac: CLIENT_MAC, srcMac: LB_MAC });
  expect(sa.opts.mss).toBe(1460);
  expect(sa.opts.ws).toBe(7);
  expect(sa.opts.sackOk).toBe(true);
  if (o.clientTs !== false) expect(sa.opts.ts![1]).toBe(cTs);
  const ourIsn = sa.seq;
  let lastTsFromLb = sa.opts.ts?.[0] ?? 0;
  // 2. The handshake's ACK: consumed, one splice entry.
  r = h.send(seg({ ...C, seq: o.cIsn + 1, ack: ourIsn + 1, flags: F.ACK, win: 502, opts: { ts: ts(lastTsFromLb) } }), true);
  expect(r.verdict).toBe('drop');
  expect(r.reason).toBe('splice');
  // 3. The request in two segments: each acknowledged by the engine; the second completes it.
  const req = enc(o.request);
  const cut = 10;
  const parts = [req.slice(0, cut), req.slice(cut)];
  let off = 0;
  for (const [i, part] of parts.entries()) {
    r = h.send(seg({ ...C, seq: o.cIsn + 1 + off, ack: ourIsn + 1, flags: F.ACK | F.PSH, win: 502, opts: { ts: ts(lastTsFromLb) }, payload: part }), true);
    off += part.length;
    expect(r.verdict).toBe('client');
    const a = parseTcp(r.frame);
    expect(a).toMatchObject({ seq: u32(ourIsn + 1), ack: u32(o.cIsn + 1 + off), flags: F.ACK });
    expect(a.payload.length).toBe(0);
    if (a.opts.ts) {
      expect(a.opts.ts[1]).toBe(cTs);
      lastTsFromLb = a.opts.ts[0];
    }
    if (i === 0) expect(h.out).toEqual([]);
  }
  // 4. The backend SYN, queued: our local port, the client's ISN, the client's options.
  expect(h.out.length).toBe(1);
  expect(h.out[0].side).toBe('backend');
  const j = h.out[0].backendIndex;
  const syn = parseTcp(h.out[0].frame);
  expect(syn).toMatchObject({ src: VIP, dst: BACKENDS[j], dport: 80, flags: F.SYN, dstMac: `02:00:00:00:01:0${j + 1}` });
  // Our own ISN towards the backend (a clock), and our timestamps on our clock.
  const lIsn = syn.seq;
  let tsToB = syn.opts.ts?.[0] ?? 0;
  const clientTsOf = new Map<number, number>(); // our TSval towards the backend -> the client's TSval it stands for
  if (syn.opts.ts) clientTsOf.set(tsToB, cTs);
  expect(syn.sport).toBeGreaterThanOrEqual(32768);
  expect(syn.opts).toMatchObject({ mss: 1460, ws: 7, sackOk: true });
  const B = { src: BACKENDS[j], dst: VIP, sport: 80, dport: syn.sport, srcMac: `02:00:00:00:01:0${j + 1}` };
  let bTs = 5_000_000;
  // The backend echoes the latest TSval it got from us (the argument is ignored: kept for the call sites).
  const bts = (_ecr?: number): [number, number] | undefined => (o.backendTs === false || !syn.opts.ts ? undefined : [bTs += 3, tsToB]);
  // 5. Backend SYN-ACK: consumed; the request replayed with the backend's numbers.
  r = h.send(seg({ ...B, seq: o.bIsn, ack: lIsn + 1, flags: F.SYN | F.ACK, win: 65160, opts: { mss: 1400, sackOk: o.backendSack !== false, ts: bts(syn.opts.ts?.[0] ?? 0), ws: o.backendWs ?? 5 } }), false);
  expect(r.verdict).toBe('drop');
  expect(h.out.length).toBe(1);
  const rep = parseTcp(h.out[0].frame);
  expect(rep).toMatchObject({ src: VIP, dst: BACKENDS[j], sport: syn.sport, dport: 80, seq: u32(lIsn + 1), ack: u32(o.bIsn + 1) });
  if (rep.opts.ts) tsToB = rep.opts.ts[0];
  expect(dec(rep.payload)).toBe(o.request);
  // 6. Backend acknowledges the replay (consumed), then answers in three segments.
  r = h.send(seg({ ...B, seq: o.bIsn + 1, ack: lIsn + 1 + req.length, flags: F.ACK, win: 2000, opts: { ts: bts(rep.opts.ts?.[0] ?? 0) } }), false);
  expect(r.verdict).toBe('drop');
  const body = 'x'.repeat(1000);
  const resp = enc(`HTTP/1.1 200 OK\r\nContent-Length: ${3 * 1000}\r\n\r\n` + body + body + body);
  const segs = [resp.slice(0, 1300), resp.slice(1300, 2600), resp.slice(2600)];
  let bOff = 0;
  const got: Uint8Array[] = [];
  const delta = u32(ourIsn - o.bIsn);
  const clientSeen: Tcp[] = [];
  for (const p of segs) {
    r = h.send(seg({ ...B, seq: o.bIsn + 1 + bOff, ack: lIsn + 1 + req.length, flags: F.ACK | F.PSH, win: 2000, opts: { ts: bts(cTs) }, payload: p }), false);
    expect(r.verdict).toBe('client');
    const c = parseTcp(r.frame);
    clientSeen.push(c);
    expect(c).toMatchObject({ src: VIP, dst: CLIENT, sport: 80, dport: o.cport, seq: u32(ourIsn + 1 + bOff), ack: u32(o.cIsn + 1 + req.length), dstMac: CLIENT_MAC, srcMac: LB_MAC });
    expect(u32(c.seq - (o.bIsn + 1 + bOff))).toBe(delta);
    // Window: 2000 << backend shift, re-expressed in our shift 7 towards the client.
    const bws = o.backendWs ?? 5;
    expect(c.win).toBe(Math.min(65535, Math.floor((2000 * 2 ** bws) / 128)));
    if (c.opts.ts) {
      expect(c.opts.ts[0]).toBeGreaterThanOrEqual(lastTsFromLb);
      lastTsFromLb = c.opts.ts[0];
      // The backend's echo of our TSval reaches the client as the client's own TSval.
      if (syn.opts.ts && o.backendTs !== false) expect(c.opts.ts[1]).toBe(clientTsOf.get(tsToB) ?? u32(tsToB - (syn.opts.ts[0] - clientTsOf.get(syn.opts.ts[0])!)));
    }
    got.push(c.payload);
    bOff += p.length;
  }
  expect(dec(Buffer.concat(got))).toBe(dec(resp));
  // 7. Client ACKs the first segment, SACKs the third (as if the second were lost, then ACKs all).
  const s1 = u32(ourIsn + 1 + 1300), s3 = u32(ourIsn + 1 + 2600), sEnd = u32(ourIsn + 1 + resp.length);
  r = h.send(seg({ ...C, seq: o.cIsn + 1 + req.length, ack: sEnd, flags: F.ACK, win: 1000, opts: { ts: ts(lastTsFromLb) } }), true);
  expect(r.verdict).toBe('backend');
  let b = parseTcp(r.frame);
  expect(b).toMatchObject({ src: VIP, dst: BACKENDS[j], sport: syn.sport, dport: 80, seq: u32(lIsn + 1 + req.length), ack: u32(o.bIsn + 1 + resp.length) });
  // Window 1000 at the client's shift 7; the backend agreed to shift 7 too: unchanged.
  expect(b.win).toBe(1000);
  if (b.opts.ts) {
    expect(b.opts.ts[1]).toBe(bTs);
    // The client's TSval on our clock: the same offset as in our SYN.
    expect(u32(b.opts.ts[0] - syn.opts.ts![0])).toBe(u32(cTs - clientTsOf.get(syn.opts.ts![0])!));
    tsToB = b.opts.ts[0];
  }
  void s1; void s3;
  // 8. The client sends a second request; the backend SACK-acknowledges across the numbers.
  const req2 = enc('GET /next HTTP/1.1\r\nHost: a\r\n\r\n');
  r = h.send(seg({ ...C, seq: o.cIsn + 1 + req.length, ack: sEnd, flags: F.ACK | F.PSH, win: 1000, opts: { ts: ts(lastTsFromLb) }, payload: req2 }), true);
  expect(r.verdict).toBe('backend');
  b = parseTcp(r.frame);
  expect(dec(b.payload)).toBe(dec(req2));
  expect(b.seq).toBe(u32(lIsn + 1 + req.length));
  if (b.opts.ts) tsToB = b.opts.ts[0];
  return { C, B, j, ourIsn, lIsn, delta, req, req2, resp, ts, bts, get cTs() { return cTs; }, get lastTsFromLb() { return lastTsFromLb; }, set lastTsFromLb(v: number) { lastTsFromLb = v; } };
}

describe('splice: sequence arithmetic across 2^32', () => {
  const eng = makeEngine();
  const seq = (op: number, a: number, b: number) => u32(sx(eng).splice_seq(op, a, b));
  it('adds, subtracts and compares as serial numbers', () => {
    expect(seq(0, 0xfffffff0, 0x20)).toBe(0x10);
    expect(seq(1, 0x10, 0xfffffff0)).toBe(0x20);
    expect(seq(1, 0xfffffff0, 0x10)).toBe(0xffffffe0);
    expect(seq(2, 0xfffffff0, 0x10)).toBe(1); // before, across the wrap
    expect(seq(2, 0x10, 0xfffffff0)).toBe(0);
    expect(seq(3, 0x10, 0x10)).toBe(1);
    expect(seq(2, 0x10, 0x10)).toBe(0);
    expect(seq(2, 0, 0x7fffffff)).toBe(1);
    expect(seq(2, 0x7fffffff, 0)).toBe(0);
    // Translating by an offset and back is the identity everywhere, including near the wrap.
    for (const x of [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) {
      for (const off of [0, 5, 0x80000000, 0xfffffffb]) {
        const t = seq(0, x, off);
        expect(seq(1, t, off)).toBe(x);
      }
    }
  });
});

describe('splice: handshake with SYN cookies', () => {
  it('forged and expired cookies are refused with an RST; a SYN flood keeps no state', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 41000, dport: 80 };
    let r = h.send(seg({ ...C, seq: 1000, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    // Forged: wrong ISN.
    r = h.send(seg({ ...C, seq: 1001, ack: isn + 2, flags: F.ACK }), true);
    expect(r.verdict).toBe('client');
    expect(parseTcp(r.frame)).toMatchObject({ flags: F.RST, seq: u32(isn + 2), src: VIP, dst: CLIENT });
    // Wrong client sequence (the cookie covers the client's ISN).
    r = h.send(seg({ ...C, seq: 1501, ack: isn + 1, flags: F.ACK }), true);
    expect(parseTcp(r.frame).flags).toBe(F.RST);
    // Expired: the same ACK 200 s later.
    h.t += 200;
    r = h.send(seg({ ...C, seq: 1001, ack: isn + 1, flags: F.ACK }), true);
    expect(parseTcp(r.frame).flags).toBe(F.RST);
    expect(sx(eng).splice_count()).toBe(0);
    // Valid within its lifetime (a fresh SYN, its ACK 60 s later).
    r = h.send(seg({ ...C, seq: 5000, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn2 = parseTcp(r.frame).seq;
    h.t += 60;
    r = h.send(seg({ ...C, seq: 5001, ack: isn2 + 1, flags: F.ACK }), true);
    expect(r.reason).toBe('splice');
    expect(sx(eng).splice_count()).toBe(1);
    const st = stats(eng);
    expect(st[1]).toBe(1); // valid
    expect(st[2]).toBe(3); // invalid
    // SYN flood: 10k SYNs from many sources, every one answered, no flow and no splice entry made.
    const flows = eng.ex.flow_count();
    const frames = [];
    for (let i = 0; i < 10000; i++) {
      frames.push({ data: seg({ src: `10.9.${(i >> 8) & 255}.${i & 255}`, dst: VIP, sport: 1024 + (i % 60000), dport: 80, seq: i * 7919, flags: F.SYN, opts: { mss: 1400, ws: 8, sackOk: true } }), tsSec: h.t });
    }
    const res = eng.processBatch(frames);
    expect(res.filter((x) => x.verdict === 'client').length).toBe(10000);
    expect(res.every((x) => parseTcp(x.frame).flags === (F.SYN | F.ACK))).toBe(true);
    expect(eng.ex.flow_count()).toBe(flows);
    expect(flows).toBe(0);
    expect(sx(eng).splice_count()).toBe(1);
  });
});

describe('splice: a whole connection', () => {
  for (const [name, cIsn, bIsn] of [['ISNs just below 2^32', 0xffffffe0, 0xfffffff8], ['plain ISNs', 12345, 0x40000000]] as const) {
    it(`HTTP request buffered, backend chosen, replayed, spliced both ways, torn down (${name}); tshark finds nothing`, () => {
      const eng = makeEngine();
      const h = new Harness(eng);
      const x = httpExchange(h, { cIsn, bIsn, cport: 42000, request: 'GET /index.html HTTP/1.1\r\nHost: vip\r\nUser-Agent: t\r\n\r\n' });
      // Backend answers the second request and SACKs: the client's numbers are also ours towards the
      // backend, so SACK blocks in client->backend segments are the ones shifted.
      const resp2 = enc('HTTP/1.1 204 No Content\r\n\r\n');
      const bSeq = bIsn + 1 + x.resp.length;
      let r = h.send(seg({ ...x.B, seq: bSeq, ack: x.lIsn + 1 + x.req.length + x.req2.length, flags: F.ACK | F.PSH, win: 2000, opts: { ts: x.bts(x.cTs) }, payload: resp2 }), false);
      expect(r.verdict).toBe('client');
      let c = parseTcp(r.frame);
      expect(c.seq).toBe(u32(bSeq + x.delta));
      if (c.opts.ts) x.lastTsFromLb = c.opts.ts[0];
      // Client: a duplicate ACK with a SACK block for a range of the backend's stream.
      const sl = u32(x.ourIsn + 1 + 100), sr = u32(x.ourIsn + 1 + 200);
      r = h.send(seg({ ...x.C, seq: cIsn + 1 + x.req.length + x.req2.length, ack: u32(c.seq + resp2.length), flags: F.ACK, win: 1000, opts: { ts: x.ts(x.lastTsFromLb), sack: [[sl, sr]] } }), true);
      expect(r.verdict).toBe('backend');
      const b = parseTcp(r.frame);
      expect(b.opts.sack).toEqual([[u32(bIsn + 1 + 100), u32(bIsn + 1 + 200)]]);
      expect(b.ack).toBe(u32(bSeq + resp2.length));
      // FIN from the client, FIN-ACK from the backend, last ACK: closed after the close timeout.
      const cEnd = cIsn + 1 + x.req.length + x.req2.length;
      const bEnd = bSeq + resp2.length;
      r = h.send(seg({ ...x.C, seq: cEnd, ack: u32(x.ourIsn + 1 + x.resp.length + resp2.length), flags: F.FIN | F.ACK, win: 1000, opts: { ts: x.ts(x.lastTsFromLb) } }), true);
      expect(r.verdict).toBe('backend');
      expect(parseTcp(r.frame).flags).toBe(F.FIN | F.ACK);
      const lEnd = u32(x.lIsn + 1 + x.req.length + x.req2.length);
      r = h.send(seg({ ...x.B, seq: bEnd, ack: lEnd + 1, flags: F.FIN | F.ACK, win: 2000, opts: { ts: x.bts(x.cTs) } }), false);
      expect(r.verdict).toBe('client');
      c = parseTcp(r.frame);
      expect(c).toMatchObject({ flags: F.FIN | F.ACK, seq: u32(bEnd + x.delta), ack: u32(cEnd + 1) });
      if (c.opts.ts) x.lastTsFromLb = c.opts.ts[0];
      expect(sx(eng).splice_count()).toBe(1); // both FINs seen, the backend's not yet acknowledged
      r = h.send(seg({ ...x.C, seq: cEnd + 1, ack: u32(c.seq + 1), flags: F.ACK, win: 1000, opts: { ts: x.ts(x.lastTsFromLb) } }), true);
      expect(r.verdict).toBe('backend');
      expect(parseTcp(r.frame).ack).toBe(u32(bEnd + 1));
      // Both FINs acknowledged: the connection is gone at once (the end hosts keep their TIME_WAIT).
      expect(sx(eng).splice_count()).toBe(0);
      expect(eng.ex.flow_count()).toBe(0);
      // tshark: no bad checksum and no TCP analysis flag on either side; one TCP stream per side.
      const dir = tempDir(`splice-${name}`);
      const [cp, bp] = h.pcaps(dir);
      for (const p of [cp, bp]) {
        expect(badChecksumFrames(p)).toEqual([]);
        expect(tcpAnalysisFrames(p)).toEqual([]);
        expect(new Set(fields(p, ['tcp.stream']).map((row) => row[0])).size).toBe(1);
      }
      // tshark's relative sequence numbers on the client side: the response bytes run 1..N with no gap.
      const rel = fields(cp, ['tcp.srcport', 'tcp.seq', 'tcp.len'], { filter: 'tcp.srcport == 80 && tcp.len > 0' });
      let next = 1;
      for (const [, s, l] of rel) {
        expect(Number(s)).toBe(next);
        next += Number(l);
      }
      expect(next - 1).toBe(x.resp.length + resp2.length);
    });
  }

  it('without timestamps or SACK on the backend: the options are stripped, data still flows', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const x = httpExchange(h, { cIsn: 0xfffffffe, bIsn: 7, cport: 42001, request: 'GET / HTTP/1.0\r\n\r\n', backendTs: false, backendSack: false, backendWs: 2 });
    const sl = u32(x.ourIsn + 1 + 10), sr = u32(x.ourIsn + 1 + 20);
    const r = h.send(seg({ ...x.C, seq: 0xfffffffe + 1 + x.req.length + x.req2.length, ack: u32(x.ourIsn + 1 + x.resp.length), flags: F.ACK, win: 3, opts: { ts: x.ts(x.lastTsFromLb), sack: [[sl, sr]] } }), true);
    const b = parseTcp(r.frame);
    expect(b.opts.ts).toBeUndefined();
    expect(b.opts.sack).toBeUndefined();
    expect(b.win).toBe(3); // the backend agreed to scaling: it applies the shift we offered, the client's own
    // FINs both ways, the last ACK lost: removed by the timer 2 s later.
    const cEnd = u32(0xfffffffe + 1 + x.req.length + x.req2.length);
    h.send(seg({ ...x.C, seq: cEnd, ack: u32(x.ourIsn + 1 + x.resp.length), flags: F.FIN | F.ACK }), true);
    h.send(seg({ ...x.B, seq: 7 + 1 + x.resp.length, ack: u32(x.lIsn + 1 + x.req.length + x.req2.length + 1), flags: F.FIN | F.ACK }), false);
    expect(sx(eng).splice_count()).toBe(1);
    expect(sx(eng).splice_tick(h.nowMs() + 1000)).toBe(0);
    expect(sx(eng).splice_tick(h.nowMs() + 2500)).toBe(1);
    expect(sx(eng).splice_count()).toBe(0);
  });
});

describe('splice: timers and failures', () => {
  it('backend SYN retransmitted with backoff, then the client is reset', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 43000, dport: 80 };
    let r = h.send(seg({ ...C, seq: 1, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 2, ack: isn + 1, flags: F.ACK }), true);
    r = h.send(seg({ ...C, seq: 2, ack: isn + 1, flags: F.ACK, payload: enc('GET / HTTP/1.1\r\n\r\n') }), true);
    expect(h.out.length).toBe(1);
    const t0 = h.nowMs();
    const ex = sx(eng);
    let t = t0;
    const sent: number[] = [];
    for (let step = 0; step < 70; step++) {
      t += 500;
      ex.splice_tick(t);
      for (const o of eng.drainSplice()) {
        if (o.side === 'backend') {
          expect(parseTcp(o.frame).flags).toBe(F.SYN);
          sent.push(t - t0);
        } else {
          const rst = parseTcp(o.frame);
          expect(rst).toMatchObject({ flags: F.RST | F.ACK, src: VIP, dst: CLIENT, dport: 43000, seq: u32(isn + 1) });
          sent.push(-(t - t0));
        }
      }
    }
    // Retransmissions at 1 s, then +2, +4, +8 s; reset at +16 s.
    expect(sent).toEqual([1000, 3000, 7000, 15000, -31000]);
    expect(ex.splice_count()).toBe(0);
  });

  it('a backend RST to our SYN resets the client; an incomplete request is bound after the inspect delay', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 43001, dport: 80 };
    let r = h.send(seg({ ...C, seq: 1, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 2, ack: isn + 1, flags: F.ACK }), true);
    h.send(seg({ ...C, seq: 2, ack: isn + 1, flags: F.ACK, payload: enc('GET / HTTP/1.1\r\n\r\n') }), true);
    const syn = parseTcp(h.out[0].frame);
    r = h.send(seg({ src: syn.dst, dst: VIP, sport: 80, dport: syn.sport, seq: 0, ack: syn.seq + 1, flags: F.RST | F.ACK, srcMac: '02:00:00:00:01:01' }), false);
    expect(r.verdict).toBe('client');
    expect(parseTcp(r.frame)).toMatchObject({ flags: F.RST | F.ACK, dst: CLIENT, dport: 43001 });
    expect(sx(eng).splice_count()).toBe(0);
    // Half a request, then silence: bound after the inspect delay (1 s) with what arrived.
    const C2 = { ...C, sport: 43002 };
    r = h.send(seg({ ...C2, seq: 1, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn2 = parseTcp(r.frame).seq;
    h.send(seg({ ...C2, seq: 2, ack: isn2 + 1, flags: F.ACK, payload: enc('GET / HT') }), true);
    expect(sx(eng).splice_count()).toBe(1);
    sx(eng).splice_tick(h.nowMs() + 500);
    expect(eng.drainSplice()).toEqual([]);
    sx(eng).splice_tick(h.nowMs() + 1100);
    const out = eng.drainSplice();
    expect(out.length).toBe(1);
    expect(parseTcp(out[0].frame)).toMatchObject({ flags: F.SYN, dport: 80 });
  });

  it('server speaks first: a client that sends nothing is joined after the inspect delay, the banner reaches it', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 43003, dport: 80 };
    let r = h.send(seg({ ...C, seq: 7000, flags: F.SYN, opts: { mss: 1460, ts: [10, 0] } }), true);
    const isn = parseTcp(r.frame).seq;
    const tsLb = parseTcp(r.frame).opts.ts![0];
    h.send(seg({ ...C, seq: 7001, ack: isn + 1, flags: F.ACK, opts: { ts: [11, tsLb] } }), true);
    sx(eng).splice_tick(h.nowMs() + 1001);
    const [synF] = eng.drainSplice();
    const syn = parseTcp(synF.frame);
    const B = { src: syn.dst, dst: VIP, sport: 80, dport: syn.sport, srcMac: `02:00:00:00:01:0${synF.backendIndex + 1}` };
    const l1 = u32(syn.seq + 1);
    r = h.send(seg({ ...B, seq: 40, ack: l1, flags: F.SYN | F.ACK, opts: { mss: 1460, ts: [900, syn.opts.ts![0]] } }), false);
    expect(r.reason).toBe('splice');
    expect(h.out.length).toBe(1);
    expect(parseTcp(h.out[0].frame)).toMatchObject({ flags: F.ACK, seq: l1, ack: 41 });
    expect(parseTcp(h.out[0].frame).payload.length).toBe(0);
    // Lost ACK: the backend's SYN-ACK again gets it again.
    h.send(seg({ ...B, seq: 40, ack: l1, flags: F.SYN | F.ACK, opts: { mss: 1460, ts: [903, syn.opts.ts![0]] } }), false);
    expect(h.out.length).toBe(1);
    // The banner.
    r = h.send(seg({ ...B, seq: 41, ack: l1, flags: F.ACK | F.PSH, opts: { ts: [905, syn.opts.ts![0]] }, payload: enc('220 ready\r\n') }), false);
    expect(r.verdict).toBe('client');
    const c = parseTcp(r.frame);
    expect(c).toMatchObject({ seq: u32(isn + 1), ack: 7001, dport: 43003 });
    expect(c.opts.ts![1]).toBe(11); // the backend's echo of our TSval is the client's own again
    expect(dec(c.payload)).toBe('220 ready\r\n');
    expect(c.opts.ts![0]).toBeGreaterThanOrEqual(tsLb);
    // No retransmission of anything later: the connection is joined.
    sx(eng).splice_tick(h.nowMs() + 20000);
    expect(eng.drainSplice()).toEqual([]);
    expect(sx(eng).splice_count()).toBe(1);
  });
});

describe('splice: edges of the held request', () => {
  function handshake(h: Harness, sport: number) {
    const C = { src: CLIENT, dst: VIP, sport, dport: 80 };
    const r = h.send(seg({ ...C, seq: 1000, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 1001, ack: isn + 1, flags: F.ACK }), true);
    return { C, isn };
  }

  it('a body right behind the head is held and replayed with it; a FIN meanwhile waits for the splice', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const { C, isn } = handshake(h, 47000);
    const head = 'POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n';
    let r = h.send(seg({ ...C, seq: 1001, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc(head) }), true);
    expect(h.out.length).toBe(1); // head complete: backend SYN
    const syn = parseTcp(h.out[0].frame);
    const j = h.out[0].backendIndex;
    r = h.send(seg({ ...C, seq: 1001 + head.length, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc('hello=world') }), true);
    expect(parseTcp(r.frame).ack).toBe(1001 + head.length + 11);
    // Half-close while the backend connection opens: not acknowledged, not reset.
    r = h.send(seg({ ...C, seq: 1001 + head.length + 11, ack: isn + 1, flags: F.ACK | F.FIN }), true);
    expect(r.verdict).toBe('drop');
    expect(sx(eng).splice_count()).toBe(1);
    const B = { src: syn.dst, dst: VIP, sport: 80, dport: syn.sport, srcMac: `02:00:00:00:01:0${j + 1}` };
    h.send(seg({ ...B, seq: 500, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 } }), false);
    expect(h.out.map((o) => dec(parseTcp(o.frame).payload)).join('')).toBe(head + 'hello=world');
    // The client's FIN again: now spliced through to the backend.
    r = h.send(seg({ ...C, seq: 1001 + head.length + 11, ack: isn + 1, flags: F.ACK | F.FIN }), true);
    expect(r.verdict).toBe('backend');
    expect(parseTcp(r.frame)).toMatchObject({ flags: F.ACK | F.FIN, seq: u32(syn.seq + 1 + head.length + 11), ack: 501 });
  });

  it('a backend answering a connection we no longer hold gets an RST', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const { C, isn } = handshake(h, 47200);
    h.send(seg({ ...C, seq: 1001, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc('GET / HTTP/1.1\r\n\r\n') }), true);
    const syn = parseTcp(h.out[0].frame);
    const j = h.out[0].backendIndex;
    // The client gives up before the backend answers.
    h.send(seg({ ...C, seq: 1001 + 18, ack: isn + 1, flags: F.RST }), true);
    expect(sx(eng).splice_count()).toBe(0);
    const r = h.send(seg({ src: BACKENDS[j], dst: VIP, sport: 80, dport: syn.sport, seq: 5, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 }, srcMac: `02:00:00:00:01:0${j + 1}` }), false);
    expect(r.verdict).toBe('backend');
    expect(parseTcp(r.frame)).toMatchObject({ flags: F.RST, src: VIP, dst: BACKENDS[j], sport: syn.sport, dport: 80, seq: u32(syn.seq + 1), dstMac: `02:00:00:00:01:0${j + 1}` });
    // Not from a backend: no answer.
    const r2 = h.send(seg({ src: '10.9.9.9', dst: VIP, sport: 80, dport: syn.sport, seq: 5, ack: 9, flags: F.ACK }), true);
    expect(r2.verdict).toBe('client'); // a client-side ACK for nothing: the cookie check's RST
    expect(parseTcp(r2.frame).dst).toBe('10.9.9.9');
  });

  it('a new SYN on the ports of a closing connection starts over; inside a live one it is dropped', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const x = httpExchange(h, { cIsn: 300, bIsn: 900, cport: 47100, request: 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' });
    // A SYN on the same ports while spliced: absorbed, the connection stays.
    let r = h.send(seg({ ...x.C, seq: 99999, flags: F.SYN, opts: { mss: 1460 } }), true);
    expect(r.verdict).toBe('drop');
    expect(sx(eng).splice_count()).toBe(1);
    // Both FINs: closing. A SYN now gets a fresh SYN-ACK and the old connection is gone.
    const cEnd = 300 + 1 + x.req.length + x.req2.length;
    h.send(seg({ ...x.C, seq: cEnd, ack: u32(x.ourIsn + 1 + x.resp.length), flags: F.FIN | F.ACK }), true);
    h.send(seg({ ...x.B, seq: 900 + 1 + x.resp.length, ack: u32(x.lIsn + 1 + x.req.length + x.req2.length + 1), flags: F.FIN | F.ACK }), false);
    r = h.send(seg({ ...x.C, seq: 555555, flags: F.SYN, opts: { mss: 1460 } }), true);
    expect(r.verdict).toBe('client');
    expect(parseTcp(r.frame)).toMatchObject({ flags: F.SYN | F.ACK, ack: 555556 });
    expect(sx(eng).splice_count()).toBe(0);
  });
});

describe('splice: content-based backend choice', () => {
  function openAndRequest(h: Harness, sport: number, dport: number, text: string): SpliceFrame {
    const C = { src: CLIENT, dst: VIP, sport, dport };
    const r = h.send(seg({ ...C, seq: 100, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK }), true);
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc(text) }), true);
    expect(h.out.length).toBe(1);
    return h.out[0];
  }

  it('URL prefix rules pick the backend; other URLs go to the scheduler', () => {
    const eng = makeEngine();
    const ex = sx(eng);
    const s = eng.ex.scratch_ptr();
    eng.mem.set(enc('/static/'), s);
    expect(ex.config_splice_rule(0, 0, 1, 8)).toBe(0);
    const h = new Harness(eng);
    for (let i = 0; i < 4; i++) expect(openAndRequest(h, 44000 + i, 80, `GET /static/a${i}.css HTTP/1.1\r\nHost: x\r\n\r\n`).backendIndex).toBe(1);
    const others = new Set<number>();
    for (let i = 0; i < 4; i++) others.add(openAndRequest(h, 44100 + i, 80, `GET /app/${i} HTTP/1.1\r\nHost: x\r\n\r\n`).backendIndex);
    expect([...others].sort()).toEqual([0, 1]); // round robin over both
    expect(stats(eng)[13]).toBe(4);
  });

  it('from the JSON config: method "splice", rules by backend id, a source address of its own, the MSS', () => {
    const cfg = parseConfig({
      flowCapacity: 4096,
      vips: [{
        address: VIP, ports: [80], method: 'splice', scheduler: 'rr',
        splice: { rules: [{ prefix: '/img/', backend: 'b2' }], source: '10.2.0.1', mss: 1400 },
        backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: `02:00:00:00:01:0${i + 1}` })),
      }],
    });
    const eng = new Engine(cfg);
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 48000, dport: 80 };
    let r = h.send(seg({ ...C, seq: 10, flags: F.SYN, opts: { mss: 1460 } }), true);
    expect(parseTcp(r.frame).opts.mss).toBe(1400);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 11, ack: isn + 1, flags: F.ACK }), true);
    h.send(seg({ ...C, seq: 11, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc('GET /img/a.png HTTP/1.1\r\nHost: x\r\n\r\n') }), true);
    expect(h.out.length).toBe(1);
    expect(h.out[0].backendIndex).toBe(1);
    const syn = parseTcp(h.out[0].frame);
    expect(syn).toMatchObject({ src: '10.2.0.1', dst: BACKENDS[1] });
    // The backend answers our own address (not a VIP): still the splice's.
    r = h.send(seg({ src: BACKENDS[1], dst: '10.2.0.1', sport: 80, dport: syn.sport, seq: 70, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 }, srcMac: '02:00:00:00:01:02' }), false);
    expect(r.reason).toBe('splice');
    expect(h.out.length).toBe(1);
    expect(parseTcp(h.out[0].frame)).toMatchObject({ src: '10.2.0.1', dst: BACKENDS[1], seq: u32(syn.seq + 1), ack: 71 });
    expect(() => parseConfig({ vips: [{ address: VIP, method: 'nat', splice: {}, backends: [{ id: 'a', address: BACKENDS[0] }] }] })).toThrow(/only for methods "splice" and "handoff"/);
    expect(() => parseConfig({ vips: [{ address: VIP, method: 'splice', splice: { rules: [{ prefix: '/x', backend: 'zz' }] }, backends: [{ id: 'a', address: BACKENDS[0] }] }] })).toThrow(/not a backend/);
    expect(() => parseConfig({ vips: [{ address: 'fd00::1', method: 'splice', backends: [{ id: 'a', address: 'fd00::2' }] }] })).toThrow(/IPv4/);
  });

  it('RTSP: a second connection carrying an existing Session id lands on that session\'s backend', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    // Connection 1: SETUP, answered by its backend with a Session header (creates the session).
    const C = { src: CLIENT, dst: VIP, sport: 45000, dport: 554 };
    let r = h.send(seg({ ...C, seq: 100, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK }), true);
    const setup = 'SETUP rtsp://10.1.0.1/cam/track1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n';
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc(setup) }), true);
    const syn = parseTcp(h.out[0].frame);
    const j = h.out[0].backendIndex;
    const B = { src: BACKENDS[j], dst: VIP, sport: 554, dport: syn.sport, srcMac: `02:00:00:00:01:0${j + 1}` };
    h.send(seg({ ...B, seq: 9000, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 } }), false);
    expect(h.out.length).toBe(1);
    const reply = 'RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 4F2A9C;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n';
    r = h.send(seg({ ...B, seq: 9001, ack: syn.seq + 1 + setup.length, flags: F.ACK | F.PSH, payload: enc(reply) }), false);
    expect(r.verdict).toBe('client');
    expect(dec(parseTcp(r.frame).payload)).toBe(reply);
    expect(eng.ex.session_count()).toBe(1);
    // Interleaved media ($ frames) keeps flowing through the splice.
    const media = new Uint8Array([0x24, 0, 0, 4, 0x80, 0x60, 0, 1]);
    r = h.send(seg({ ...B, seq: 9001 + reply.length, ack: syn.seq + 1 + setup.length, flags: F.ACK, payload: media }), false);
    expect(r.verdict).toBe('client');
    expect(Array.from(parseTcp(r.frame).payload)).toEqual(Array.from(media));
    // Connections 2..5 with that Session: all on backend j, though the scheduler alternates.
    for (let i = 0; i < 4; i++) {
      const o = openAndRequest(h, 45100 + i, 554, `PLAY rtsp://10.1.0.1/cam RTSP/1.0\r\nCSeq: ${4 + i}\r\nSession: 4F2A9C\r\n\r\n`);
      expect(o.backendIndex).toBe(j);
    }
    expect(stats(eng)[14]).toBe(4);
    // An unknown Session id: the scheduler decides (both backends over four tries).
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) seen.add(openAndRequest(h, 45200 + i, 554, `PLAY rtsp://10.1.0.1/cam RTSP/1.0\r\nCSeq: 1\r\nSession: DEAD${i}\r\n\r\n`).backendIndex);
    expect(seen.size).toBe(2);
  });
});

describe('splice: RTSP with UDP media', () => {
  it('the SETUP reply\'s ports become expectations on the session\'s backend: RTP and RTCP pass as NAT', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 45500, dport: 554 };
    let r = h.send(seg({ ...C, seq: 100, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK }), true);
    const setup = 'SETUP rtsp://10.1.0.1/cam/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n';
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc(setup) }), true);
    const syn = parseTcp(h.out[0].frame);
    const j = h.out[0].backendIndex;
    const B = { src: BACKENDS[j], dst: VIP, sport: 554, dport: syn.sport, srcMac: `02:00:00:00:01:0${j + 1}` };
    h.send(seg({ ...B, seq: 1, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 } }), false);
    const reply = 'RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: UDP77;timeout=30\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971\r\n\r\n';
    r = h.send(seg({ ...B, seq: 2, ack: syn.seq + 1 + setup.length, flags: F.ACK | F.PSH, payload: enc(reply) }), false);
    expect(r.verdict).toBe('client');
    expect(eng.ex.session_count()).toBe(1);
    const flowsBefore = eng.ex.flow_count();
    expect(flowsBefore).toBe(2); // the two expectations
    // RTP from the backend to the client: leaves with the VIP as source.
    const rtp = frame({ src: BACKENDS[j], dst: CLIENT, proto: 'udp', sport: 6970, dport: 5000, payload: new Uint8Array(40).fill(0x80), srcMac: `02:00:00:00:01:0${j + 1}`, dstMac: LB_MAC });
    const [a] = eng.processBatch([{ data: rtp, tsSec: h.t }]);
    expect(a.verdict).toBe('client');
    const pa = parseFrame(a.frame).ip!;
    expect([pa.src, pa.dst, pa.sport, pa.dport]).toEqual([VIP, CLIENT, 6970, 5000]);
    expect(verifyFrame(a.frame).problems).toEqual([]);
    // RTCP from the client to the VIP: to the session's backend.
    const rtcp = frame({ src: CLIENT, dst: VIP, proto: 'udp', sport: 5001, dport: 6971, payload: new Uint8Array(32).fill(0x81) });
    const [b] = eng.processBatch([{ data: rtcp, tsSec: h.t }]);
    expect(b.verdict).toBe('backend');
    expect(b.backendIndex).toBe(j);
    expect(parseFrame(b.frame).ip!.dst).toBe(BACKENDS[j]);
    expect(verifyFrame(b.frame).problems).toEqual([]);
    // UDP to a port no session expects: refused as before.
    const [c] = eng.processBatch([{ data: frame({ src: CLIENT, dst: VIP, proto: 'udp', sport: 5003, dport: 7000 }), tsSec: h.t }]);
    expect(c.verdict).toBe('drop');
  });
});

describe('splice: transparent source (splice.source "client")', () => {
  it('backends see the client\'s address; their RTSP media to the client matches the session\'s expectations', () => {
    const eng = makeEngine();
    const ex = eng.ex as unknown as SpliceExports & Engine['ex'];
    const s = ex.scratch_ptr();
    // 16 bytes of 0xff: transparent (docs/abi.md config_splice); anything else not an IPv4 address: refused.
    eng.mem.fill(0xff, s, s + 16);
    expect(ex.config_splice(0)).toBe(0);
    eng.mem.fill(0xff, s, s + 15);
    eng.mem[s + 15] = 0;
    expect(ex.config_splice(0)).toBe(2);
    eng.mem.fill(0xff, s, s + 16);
    expect(ex.config_splice(0)).toBe(0);
    const h = new Harness(eng);
    const C = { src: CLIENT, dst: VIP, sport: 45600, dport: 554 };
    let r = h.send(seg({ ...C, seq: 100, flags: F.SYN, opts: { mss: 1460 } }), true);
    const isn = parseTcp(r.frame).seq;
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK }), true);
    const setup = 'SETUP rtsp://10.1.0.1/cam/track1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n';
    h.send(seg({ ...C, seq: 101, ack: isn + 1, flags: F.ACK | F.PSH, payload: enc(setup) }), true);
    const syn = parseTcp(h.out[0].frame);
    const j = h.out[0].backendIndex;
    // The backend SYN comes from the client's address (our local port still names the entry).
    expect(syn).toMatchObject({ src: CLIENT, dst: BACKENDS[j], dport: 554, flags: F.SYN });
    expect(syn.sport).toBeGreaterThanOrEqual(32768);
    const B = { src: BACKENDS[j], dst: CLIENT, sport: 554, dport: syn.sport, srcMac: `02:00:00:00:01:0${j + 1}` };
    // A segment of the backend to the client on an entry's port that is not that entry's: not the splice's, not NAT's.
    r = h.send(seg({ ...B, dport: syn.sport + 1, seq: 1, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 } }), false);
    expect(r.verdict).not.toBe('client');
    expect(h.out.length).toBe(0);
    r = h.send(seg({ ...B, seq: 1, ack: syn.seq + 1, flags: F.SYN | F.ACK, opts: { mss: 1460 } }), false);
    expect(r.reason).toBe('splice');
    expect(h.out.length).toBe(1);
    const rep = parseTcp(h.out[0].frame);
    expect(rep).toMatchObject({ src: CLIENT, dst: BACKENDS[j], sport: syn.sport, seq: u32(syn.seq + 1), ack: 2 });
    expect(dec(rep.payload)).toBe(setup);
    const reply = 'RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: TR88;timeout=30\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971\r\n\r\n';
    r = h.send(seg({ ...B, seq: 2, ack: syn.seq + 1 + setup.length, flags: F.ACK | F.PSH, payload: enc(reply) }), false);
    expect(r.verdict).toBe('client');
    const toC = parseTcp(r.frame);
    expect(toC).toMatchObject({ src: VIP, dst: CLIENT, sport: 554, dport: 45600, seq: u32(isn + 1) });
    expect(verifyFrame(r.frame).problems).toEqual([]);
    expect(eng.ex.session_count()).toBe(1);
    // The server sends RTP where its RTSP peer is: the client's address, the client_port.
    const rtp = frame({ src: BACKENDS[j], dst: CLIENT, proto: 'udp', sport: 6970, dport: 5000, payload: new Uint8Array(40).fill(0x80), srcMac: `02:00:00:00:01:0${j + 1}`, dstMac: LB_MAC });
    const [a] = eng.processBatch([{ data: rtp, tsSec: h.t }]);
    expect(a.verdict).toBe('client');
    const pa = parseFrame(a.frame).ip!;
    expect([pa.src, pa.dst, pa.sport, pa.dport]).toEqual([VIP, CLIENT, 6970, 5000]);
    expect(verifyFrame(a.frame).problems).toEqual([]);
    // The client's data through the splice reaches the backend from the client's address.
    r = h.send(seg({ ...C, seq: 101 + setup.length, ack: isn + 1 + reply.length, flags: F.ACK }), true);
    expect(r.verdict).toBe('backend');
    expect(parseTcp(r.frame)).toMatchObject({ src: CLIENT, dst: BACKENDS[j], sport: syn.sport, dport: 554 });
    expect(verifyFrame(r.frame).problems).toEqual([]);
    // From the JSON config: source "client".
    expect(parseConfig({ vips: [{ address: VIP, method: 'splice', splice: { source: 'client' }, backends: [{ id: 'a', address: BACKENDS[0] }] }] }).vips[0].splice!.source).toBe('client');
  });
});

describe('splice: both builds give identical bytes', () => {
  it('SIMD and nosimd engines produce the same frames and queue', () => {
    const run = (module: WebAssembly.Module) => {
      const eng = makeEngine(module);
      const h = new Harness(eng);
      httpExchange(h, { cIsn: 0xfffffff0, bIsn: 0xffffff00, cport: 46000, request: 'GET /both HTTP/1.1\r\nHost: b\r\n\r\n' });
      return Buffer.concat([...h.clientWire, ...h.backendWire].map((w) => Buffer.from(w.f))).toString('hex');
    };
    const a = run(loadModule(join(process.cwd(), 'build/sessionlb.wasm')));
    const b = run(loadModule(join(process.cwd(), 'build/sessionlb-nosimd.wasm')));
    expect(a.length).toBeGreaterThan(1000);
    expect(a).toBe(b);
  });
});

describe('splice: hostile input', () => {
  it('random segments to the VIP and to our local ports never trap, and every frame is accounted for', () => {
    const eng = makeEngine();
    const h = new Harness(eng);
    // A few real connections, so the backend side has entries to hit.
    for (let i = 0; i < 3; i++) httpExchange(h, { cIsn: 0xfffffff0 - i, bIsn: 0xffffff00 + i, cport: 49000 + i, request: 'GET / HTTP/1.1\r\nHost: a\r\n\r\n' });
    const r = rng(5);
    const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)];
    const frames = [];
    const damaged = new Set<number>();
    for (let n = 0; n < 20000; n++) {
      const toVip = r() < 0.5;
      const opts: Opts = {};
      if (r() < 0.5) opts.mss = Math.floor(r() * 65536);
      if (r() < 0.5) opts.ws = Math.floor(r() * 256);
      if (r() < 0.3) opts.sackOk = true;
      if (r() < 0.5) opts.ts = [Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32)];
      if (r() < 0.3) opts.sack = [[Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32)]];
      let f = seg({
        src: toVip ? pick([CLIENT, '10.5.5.5']) : pick(BACKENDS), dst: VIP, sport: toVip ? pick([49000, 49001, 49002, 1234]) : pick([80, 554, 81]),
        dport: toVip ? pick([80, 554]) : 32768 + Math.floor(r() * 8), seq: Math.floor(r() * 2 ** 32), ack: Math.floor(r() * 2 ** 32),
        flags: Math.floor(r() * 64), win: Math.floor(r() * 65536), opts, payload: r() < 0.5 ? new Uint8Array(Math.floor(r() * 300)).map(() => Math.floor(r() * 256)) : undefined,
      });
      // Damage: truncation, a wrong data offset, garbage option bytes.
      const d = r();
      if (d < 0.3) damaged.add(n);
      if (d < 0.1) f = f.slice(0, 14 + 20 + Math.floor(r() * 30));
      else if (d < 0.2) f[14 + 20 + 12] = Math.floor(r() * 256);
      else if (d < 0.3 && f.length > 60) for (let k = 54; k < Math.min(f.length, 74); k++) f[k] = Math.floor(r() * 256);
      frames.push({ data: f, tsSec: 2000 + Math.floor(n / 1000) });
    }
    const before = eng.counters();
    const res = eng.processBatch(frames);
    expect(res.length).toBe(frames.length);
    for (let t = 0; t < 5; t++) sx(eng).splice_tick(2_100_000 + t * 60_000);
    eng.drainSplice();
    const c = eng.counters();
    const d = (k: string) => c[k] - before[k];
    expect(d('rx-packets')).toBe(frames.length);
    expect(d('tx-backend') + d('tx-client') + d('passed') + d('dropped')).toBe(frames.length);
    // What is forwarded or answered from an intact input carries valid checksums.
    let checked = 0;
    res.forEach((x, i) => {
      if ((x.verdict === 'client' || x.verdict === 'backend') && !damaged.has(i)) {
        expect(verifyFrame(x.frame).problems).toEqual([]);
        checked++;
      }
    });
    expect(checked).toBeGreaterThan(1000);
    expect(sx(eng).splice_count()).toBeLessThanOrEqual(sx(eng).splice_capacity());
  });
});
