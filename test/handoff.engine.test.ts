// TCP handoff's front end in the engine (method 6, docs/handoff.md): the splice's SYN cookie
// handshake and held request, then a HANDOFF message for the chosen backend's agent instead of a
// backend connection; the agent's DONE turns the connection into one-way forwarding (MACs only, as
// DR), a failure or no answer in time resets the client. The message is decoded here from the
// protocol's tables (docs/handoff.md), independently of the host and the agent.
import { describe, expect, it } from 'vitest';
import { Engine, type SpliceExports, type SpliceFrame } from '../host/engine.js';
import { parseConfig } from '../host/ctl/config.js';
import { frame } from './ref/packet.js';
import { verifyFrame } from './ref/csum.js';
import { loadModule } from '../host/wasm.js';
import { join } from 'node:path';

const VIP = '10.1.0.1';
const CLIENT = '10.0.0.2';
const BACKENDS = ['10.2.0.11', '10.2.0.12', '10.2.0.13'];
const bmac = (j: number) => `02:00:00:00:01:0${j + 1}`;
const CLIENT_MAC = '02:00:00:00:aa:01';
const u32 = (x: number) => x >>> 0;
const enc = (s: string) => new TextEncoder().encode(s);
const F = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 };

function engine(extra: Record<string, unknown> = {}): Engine {
  return new Engine(parseConfig({
    flowCapacity: 4096,
    vips: [{
      address: VIP, ports: [80], method: 'handoff', scheduler: 'rr', ...extra,
      backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: bmac(i) })),
    }],
  }));
}
const sx = (e: Engine) => e.ex as unknown as SpliceExports;

function tcpOpts(o: { mss?: number; ws?: number; sackOk?: boolean; ts?: [number, number] }): Uint8Array {
  const b: number[] = [];
  if (o.mss) b.push(2, 4, o.mss >> 8, o.mss & 255);
  if (o.sackOk) b.push(4, 2);
  if (o.ts) b.push(8, 10, ...[o.ts[0], o.ts[1]].flatMap((v) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]));
  if (o.ws !== undefined) b.push(1, 3, 3, o.ws);
  while (b.length % 4) b.push(1);
  return new Uint8Array(b);
}

function seg(sport: number, seq: number, ack: number, flags: number, o: { win?: number; opts?: Parameters<typeof tcpOpts>[0]; payload?: Uint8Array } = {}): Uint8Array {
  return frame({
    src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 80, seq: u32(seq), ack: u32(ack), tcpFlags: flags, window: o.win ?? 502,
    tcpOptions: o.opts ? tcpOpts(o.opts) : undefined, payload: o.payload, srcMac: CLIENT_MAC, dstMac: '02:00:00:00:00:fe',
  });
}

interface Tcp { seq: number; ack: number; flags: number; win: number; ts?: [number, number]; payloadLen: number; dstMac: string; src: string; dst: string }
function parseTcp(f: Uint8Array): Tcp {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const ihl = (f[14] & 15) * 4;
  const t = 14 + ihl;
  const hl = (f[t + 12] >> 4) * 4;
  let ts: [number, number] | undefined;
  for (let o = t + 20; o < t + hl;) {
    const k = f[o];
    if (k === 0) break;
    if (k === 1) { o++; continue; }
    if (k === 8) ts = [dv.getUint32(o + 2), dv.getUint32(o + 6)];
    o += f[o + 1];
  }
  const mac = [...f.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return {
    seq: dv.getUint32(t + 4), ack: dv.getUint32(t + 8), flags: f[t + 13], win: dv.getUint16(t + 14), ts,
    payloadLen: dv.getUint16(16) - ihl - hl, dstMac: mac, src: [...f.subarray(26, 30)].join('.'), dst: [...f.subarray(30, 34)].join('.'),
  };
}

/** HANDOFF decoded from docs/handoff.md's table. */
function decodeHandoff(m: Uint8Array) {
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const ip = (o: number) => [...m.subarray(o, o + 4)].join('.');
  return {
    version: m[0], type: m[1], length: dv.getUint16(2), id: dv.getUint32(4), flags: m[8], sndWscale: m[9], rcvWscale: m[10], reserved: m[11],
    mss: dv.getUint16(12), n: dv.getUint16(14), client: ip(16), vip: ip(20), cport: dv.getUint16(24), vport: dv.getUint16(26),
    sndNxt: dv.getUint32(28), rcvNxt: dv.getUint32(32), sndWnd: dv.getUint32(36), rcvWnd: dv.getUint32(40), tsval: dv.getUint32(44), tsRecent: dv.getUint32(48),
    data: new TextDecoder().decode(m.subarray(52)),
  };
}

class Peer {
  t = 5000;
  ms = 0;
  out: SpliceFrame[] = [];
  constructor(readonly eng: Engine) {}
  send(f: Uint8Array) {
    this.ms += 2;
    const [r] = this.eng.processBatch([{ data: f, tsSec: this.t + Math.floor(this.ms / 1000), tsNsec: (this.ms % 1000) * 1e6 }]);
    if (r.verdict === 'client' || r.verdict === 'backend') expect(verifyFrame(r.frame).problems).toEqual([]);
    this.out = this.eng.drainSplice();
    return r;
  }
  now(): number {
    return u32(this.t * 1000 + this.ms);
  }
  tick(ms: number): SpliceFrame[] {
    this.ms += ms;
    sx(this.eng).splice_tick(this.now());
    return this.eng.drainSplice();
  }
  done(id: number, status: number): { rc: number; out: SpliceFrame[] } {
    const rc = sx(this.eng).splice_handoff_done(id, status, this.now());
    return { rc, out: this.eng.drainSplice() };
  }
}

const stats = (e: Engine) => {
  const p = sx(e).splice_stats_ptr();
  return Array.from({ length: 24 }, (_, i) => Number(e.dv.getBigUint64(p + 8 * i, true)));
};

/** Handshake plus a request in two segments; returns what the HANDOFF said. */
function openAndRequest(p: Peer, cport: number, cIsn: number, request: string, opts = true) {
  let cTs = 900_000;
  const syn = p.send(seg(cport, cIsn, 0, F.SYN, { win: 64240, opts: opts ? { mss: 1460, sackOk: true, ts: [cTs, 0], ws: 7 } : { mss: 1400 } }));
  expect(syn.verdict).toBe('client');
  const sa = parseTcp(syn.frame);
  expect(sa.flags).toBe(F.SYN | F.ACK);
  const isn = sa.seq;
  let lastTs = sa.ts?.[0] ?? 0;
  const ts = () => (opts ? { ts: [(cTs += 5), lastTs] as [number, number] } : undefined);
  expect(p.send(seg(cport, cIsn + 1, isn + 1, F.ACK, { opts: ts() })).reason).toBe('splice');
  const req = enc(request);
  const cut = 7;
  let r = p.send(seg(cport, cIsn + 1, isn + 1, F.ACK | F.PSH, { opts: ts(), payload: req.slice(0, cut) }));
  expect(p.out).toEqual([]);
  lastTs = parseTcp(r.frame).ts?.[0] ?? 0;
  r = p.send(seg(cport, cIsn + 1 + cut, isn + 1, F.ACK | F.PSH, { win: 600, opts: ts(), payload: req.slice(cut) }));
  // Our ACK of the whole request, in place.
  expect(r.verdict).toBe('client');
  const ack = parseTcp(r.frame);
  expect(ack).toMatchObject({ seq: u32(isn + 1), ack: u32(cIsn + 1 + req.length), flags: F.ACK });
  expect(p.out.length).toBe(1);
  expect(p.out[0].side).toBe('handoff');
  return { isn, cTs, ack, msg: decodeHandoff(p.out[0].frame), j: p.out[0].backendIndex, req };
}

describe('handoff: the HANDOFF message', () => {
  it('says what the backend socket must continue: sequence numbers, options, windows, TSval; carries the held request', () => {
    const eng = engine();
    const p = new Peer(eng);
    const cIsn = 0xfffffff0; // the client's numbers wrap inside the request
    const request = 'GET /index.html HTTP/1.1\r\nHost: vip\r\nUser-Agent: t\r\n\r\n';
    const { isn, cTs, ack, msg, j } = openAndRequest(p, 41000, cIsn, request);
    expect(msg).toMatchObject({
      version: 1, type: 1, length: 52 + request.length, flags: 1 | 2 | 4, sndWscale: 7, rcvWscale: 7, reserved: 0, mss: 1460,
      n: request.length, client: CLIENT, vip: VIP, cport: 41000, vport: 80,
      sndNxt: u32(isn + 1), rcvNxt: u32(cIsn + 1), sndWnd: 600 * 128, tsRecent: cTs, data: request,
    });
    // The window we advertised is what the backend must honour: our last ACK's, in bytes.
    expect(msg.rcvWnd).toBe(ack.win * 128);
    // The backend's TSval continues ours (never behind the last the client saw).
    expect(msg.tsval).toBeGreaterThanOrEqual(ack.ts![0]);
    expect(msg.id & 0xffff).toBeLessThan(sx(eng).splice_capacity());
    expect(BACKENDS[j]).toBeDefined();
    expect(stats(eng)[16]).toBe(1); // handoffs
  });

  it('without options: flags 0, no shifts, no timestamps; the client\'s MSS class', () => {
    const p = new Peer(engine());
    const { msg, isn } = openAndRequest(p, 41001, 1000, 'GET / HTTP/1.0\r\n\r\n', false);
    expect(msg).toMatchObject({ flags: 0, sndWscale: 0, rcvWscale: 0, mss: 1220, tsval: 0, tsRecent: 0, sndNxt: u32(isn + 1), rcvNxt: 1001, sndWnd: 600 });
  });

  it('URL rules of the VIP pick the backend, as for splice', () => {
    const p = new Peer(engine({ splice: { rules: [{ prefix: '/video/', backend: 'b3' }] } }));
    for (let i = 0; i < 3; i++) expect(openAndRequest(p, 41100 + i, 5000, 'GET /video/a.mp4 HTTP/1.1\r\nHost: x\r\n\r\n').j).toBe(2);
    expect(() => parseConfig({ vips: [{ address: VIP, method: 'handoff', splice: { source: 'client' }, backends: [{ id: 'a', address: BACKENDS[0] }] }] })).toThrow(/nothing for method "handoff"/);
    expect(() => parseConfig({ vips: [{ address: VIP, method: 'nat', handoff: {}, backends: [{ id: 'a', address: BACKENDS[0] }] }] })).toThrow(/only for method "handoff"/);
    expect(() => parseConfig({ vips: [{ address: VIP, method: 'handoff', backends: [{ id: 'a', address: BACKENDS[0], agent: 'x' }] }] })).toThrow(/ADDRESS:PORT/);
    const c = parseConfig({ vips: [{ address: VIP, method: 'handoff', handoff: { agentPort: 7000 }, backends: [{ id: 'a', address: BACKENDS[0], agent: '10.9.9.9:7001' }] }] });
    expect(c.vips[0].handoff!.agentPort).toBe(7000);
    expect(c.vips[0].backends[0].agent).toEqual({ address: '10.9.9.9', port: 7001 });
  });
});

describe('handoff: after the agent answers', () => {
  it('DONE ok: client segments go to the backend one-way, unchanged but for the MACs; FIN, then the entry goes', () => {
    const eng = engine();
    const p = new Peer(eng);
    const { isn, msg, j, req } = openAndRequest(p, 42000, 77, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    // While waiting for DONE, client segments are dropped (it retransmits them).
    const early = seg(42000, 78 + req.length, isn + 1, F.ACK | F.PSH, { opts: { ts: [1, 2] }, payload: enc('more') });
    expect(p.send(early).reason).toBe('splice');
    expect(stats(eng)[20]).toBe(1); // handoff-held
    expect(p.done(msg.id ^ 0x10000, 0).rc).toBe(1); // not that message's id
    expect(p.done(msg.id, 0)).toEqual({ rc: 0, out: [] });
    expect(p.done(msg.id, 0).rc).toBe(1); // answered already
    expect(stats(eng)[17]).toBe(1);
    for (const f of [early, seg(42000, 78 + req.length + 4, isn + 1 + 500, F.ACK, { win: 900 }), seg(42000, 78 + req.length + 4, isn + 1 + 900, F.FIN | F.ACK)]) {
      const r = p.send(f);
      expect(r.verdict).toBe('backend');
      expect(r.backendIndex).toBe(j);
      expect(parseTcp(r.frame).dstMac).toBe(bmac(j));
      // IP and TCP bytes exactly as the client sent them (the backend owns the VIP, its socket our numbers).
      expect(Buffer.from(r.frame.subarray(14)).equals(Buffer.from(f.subarray(14)))).toBe(true);
    }
    expect(sx(eng).splice_count()).toBe(1);
    // After the client's FIN the entry stays for the last ACK (2 s without a segment), then goes.
    expect(p.tick(1000)).toEqual([]);
    expect(sx(eng).splice_count()).toBe(1);
    expect(p.tick(1500)).toEqual([]);
    expect(sx(eng).splice_count()).toBe(0);
    expect(stats(eng)[21]).toBe(3); // handed-forwarded
  });

  it('before DONE: a segment acknowledging the backend\'s bytes proves its socket exists and is forwarded; others are dropped', () => {
    const eng = engine();
    const p = new Peer(eng);
    const { isn, msg, req, j } = openAndRequest(p, 42050, 300, 'GET / HTTP/1.1\r\n\r\n');
    // A retransmission of the request (acks only our SYN-ACK): dropped.
    expect(p.send(seg(42050, 301, isn + 1, F.ACK | F.PSH, { payload: req })).reason).toBe('splice');
    // The server answered before its agent's DONE reached us: the client's ACK and FIN go through.
    for (const f of [seg(42050, 301 + req.length, isn + 1 + 100, F.ACK), seg(42050, 301 + req.length, isn + 1 + 100, F.FIN | F.ACK)]) {
      const r = p.send(f);
      expect(r.verdict).toBe('backend');
      expect(r.backendIndex).toBe(j);
    }
    expect(p.done(msg.id, 0).rc).toBe(0);
    expect(p.send(seg(42050, 302 + req.length, isn + 1 + 101, F.ACK)).verdict).toBe('backend');
  });

  it('a SYN inside a handed-off connection is not forwarded; after the client\'s FIN it starts a new one; an RST ends the entry at once', () => {
    const eng = engine();
    const p = new Peer(eng);
    const first = openAndRequest(p, 42099, 5, 'GET / HTTP/1.1\r\n\r\n');
    p.done(first.msg.id, 0);
    expect(p.send(seg(42099, 5, 0, F.SYN, { opts: { mss: 1460 } })).verdict).toBe('drop');
    expect(p.send(seg(42099, 6 + first.req.length, first.isn + 1, F.FIN | F.ACK)).verdict).toBe('backend');
    const again = p.send(seg(42099, 90000, 0, F.SYN, { opts: { mss: 1460 } }));
    expect(again.verdict).toBe('client');
    expect(parseTcp(again.frame).flags).toBe(F.SYN | F.ACK);
    expect(sx(eng).splice_count()).toBe(0);
    const { isn, msg, req } = openAndRequest(p, 42100, 5, 'GET / HTTP/1.1\r\n\r\n');
    p.done(msg.id, 0);
    const r = p.send(seg(42100, 6 + req.length, isn + 1, F.RST | F.ACK));
    expect(r.verdict).toBe('backend');
    expect(sx(eng).splice_count()).toBe(0);
  });

  it('a client reset while the HANDOFF waits: the entry goes, counted as abandoned; the late DONE finds nothing', () => {
    const eng = engine();
    const p = new Peer(eng);
    const { isn, msg, req } = openAndRequest(p, 42150, 50, 'GET / HTTP/1.1\r\n\r\n');
    expect(p.send(seg(42150, 51 + req.length, isn + 1, F.RST | F.ACK)).reason).toBe('splice');
    expect(sx(eng).splice_count()).toBe(0);
    expect(stats(eng)[23]).toBe(1);
    expect(p.done(msg.id, 0).rc).toBe(1);
    // Acknowledging the backend's bytes, the RST goes to the backend too (its socket exists).
    const b = openAndRequest(p, 42151, 50, 'GET / HTTP/1.1\r\n\r\n');
    expect(p.send(seg(42151, 51 + b.req.length, b.isn + 50, F.RST | F.ACK)).verdict).toBe('backend');
    expect(stats(eng)[23]).toBe(2);
    expect(sx(eng).splice_count()).toBe(0);
  });

  it('DONE with an error status: the client is reset (our numbers), the entry is gone', () => {
    const eng = engine();
    const p = new Peer(eng);
    const cIsn = 123456;
    const { isn, msg, req } = openAndRequest(p, 42200, cIsn, 'GET / HTTP/1.1\r\n\r\n');
    const { rc, out } = p.done(msg.id, 2);
    expect(rc).toBe(0);
    expect(out.length).toBe(1);
    expect(out[0].side).toBe('client');
    expect(verifyFrame(out[0].frame).problems).toEqual([]);
    expect(parseTcp(out[0].frame)).toMatchObject({ src: VIP, dst: CLIENT, seq: u32(isn + 1), ack: u32(cIsn + 1 + req.length), flags: F.RST | F.ACK });
    expect(sx(eng).splice_count()).toBe(0);
    expect(stats(eng)[18]).toBe(1);
  });

  it('no DONE within 3 s: the client is reset by the timer', () => {
    const eng = engine();
    const p = new Peer(eng);
    const { msg } = openAndRequest(p, 42300, 9, 'GET / HTTP/1.1\r\n\r\n');
    expect(p.tick(2900)).toEqual([]);
    const out = p.tick(200);
    expect(out.map((o) => o.side)).toEqual(['client']);
    expect(parseTcp(out[0].frame).flags).toBe(F.RST | F.ACK);
    expect(stats(eng)[19]).toBe(1);
    expect(p.done(msg.id, 0).rc).toBe(1); // too late
  });

  it('an ACK matching no connection and no cookie is dropped, not reset (the backend may hold it)', () => {
    const eng = engine();
    const p = new Peer(eng);
    const r = p.send(seg(42400, 1000, 2000, F.ACK, { payload: enc('x') }));
    expect(r.verdict).toBe('drop');
    expect(p.out).toEqual([]);
    expect(stats(eng)[22]).toBe(1);
  });
});

describe('handoff: RTSP sessions learned from the client\'s requests', () => {
  it('a Session named by a request on a handed-off connection pins later connections carrying it to that backend; TEARDOWN ends it', () => {
    const eng = new Engine(parseConfig({
      flowCapacity: 4096,
      vips: [{ address: VIP, ports: [554], method: 'handoff', scheduler: 'rr', policy: 'session', rtspPorts: [554], backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: bmac(i) })) }],
    }));
    const p = new Peer(eng);
    const rtsp = (sport: number, isn: number, req: string) => {
      const syn = p.send(frame({ src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 554, seq: isn, tcpFlags: F.SYN, tcpOptions: tcpOpts({ mss: 1460 }), srcMac: CLIENT_MAC, dstMac: '02:00:00:00:00:fe' }));
      const our = parseTcp(syn.frame).seq;
      const mk = (seq: number, ack: number, flags: number, payload?: Uint8Array) => frame({ src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 554, seq: u32(seq), ack: u32(ack), tcpFlags: flags, window: 500, payload, srcMac: CLIENT_MAC, dstMac: '02:00:00:00:00:fe' });
      p.send(mk(isn + 1, our + 1, F.ACK));
      p.send(mk(isn + 1, our + 1, F.ACK | F.PSH, enc(req)));
      expect(p.out.map((o) => o.side)).toEqual(['handoff']);
      return { our, j: p.out[0].backendIndex, id: decodeHandoff(p.out[0].frame).id, mk, next: isn + 1 + req.length };
    };
    const a = rtsp(44000, 100, 'OPTIONS rtsp://10.1.0.1/test RTSP/1.0\r\nCSeq: 1\r\n\r\n');
    expect(p.done(a.id, 0).rc).toBe(0);
    expect(eng.ex.session_count()).toBe(0);
    // The server's SETUP reply went to the client directly; the client's PLAY names the session.
    const play = 'PLAY rtsp://10.1.0.1/test RTSP/1.0\r\nCSeq: 4\r\nSession: 7F3A21C9\r\n\r\n';
    expect(p.send(a.mk(a.next, a.our + 600, F.ACK | F.PSH, enc(play))).verdict).toBe('backend');
    expect(eng.ex.session_count()).toBe(1);
    // Five new connections whose first request carries that Session: all to a's backend (rr would rotate).
    for (let k = 0; k < 5; k++) {
      const b = rtsp(44100 + k, 5000 + k, `GET_PARAMETER rtsp://10.1.0.1/test RTSP/1.0\r\nCSeq: ${10 + k}\r\nSession: 7F3A21C9\r\n\r\n`);
      expect(b.j).toBe(a.j);
      p.done(b.id, 0);
    }
    expect(stats(eng)[14]).toBe(5); // session-matched
    // An unknown Session: the scheduler decides (more than one backend over three).
    const seen = new Set<number>();
    for (let k = 0; k < 3; k++) seen.add(rtsp(44200 + k, 7000 + k, `GET_PARAMETER rtsp://10.1.0.1/test RTSP/1.0\r\nCSeq: 1\r\nSession: NOPE${k}\r\n\r\n`).j);
    expect(seen.size).toBeGreaterThan(1);
    const mine = () => eng.snapshotSessions().find((x) => x.id === '7F3A21C9')!;
    expect(mine()).toMatchObject({ state: 'active', backendId: `b${a.j + 1}`, client: CLIENT, vip: VIP });
    // TEARDOWN on the first connection ends the session (closing, then ended after the grace period).
    p.send(a.mk(a.next + play.length, a.our + 900, F.ACK | F.PSH, enc('TEARDOWN rtsp://10.1.0.1/test RTSP/1.0\r\nCSeq: 5\r\nSession: 7F3A21C9\r\n\r\n')));
    expect(mine()).toMatchObject({ state: 'closing', closeReason: 'teardown' });
  });
});

describe('handoff: hostile input and both builds', () => {
  it('random and damaged segments to a handoff VIP, with connections waiting and handed off, never trap; every frame is accounted for; SIMD and nosimd agree byte for byte', () => {
    const run = (module?: WebAssembly.Module) => {
      const eng = module ? new Engine(parseConfig({
        flowCapacity: 4096,
        vips: [{ address: VIP, ports: [80], method: 'handoff', scheduler: 'rr', backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: bmac(i) })) }],
      }), { module }) : engine();
      const p = new Peer(eng);
      // Six real connections: three handed off, three waiting for DONE.
      const open = [0, 1, 2, 3, 4, 5].map((k) => openAndRequest(p, 43000 + k, 0xfffffff0 - k, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
      for (const o of open.slice(0, 3)) p.done(o.msg.id, 0);
      let x = 7;
      const r = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
      const frames: { data: Uint8Array; tsSec: number }[] = [];
      const damaged = new Set<number>();
      for (let n = 0; n < 10000; n++) {
        const k = Math.floor(r() * 7);
        const o = k < 6 ? open[k] : null;
        const opts = r() < 0.5 ? { mss: Math.floor(r() * 65536), ws: Math.floor(r() * 256), sackOk: r() < 0.5, ts: [Math.floor(r() * 2 ** 32), Math.floor(r() * 2 ** 32)] as [number, number] } : undefined;
        let f = seg(o ? 43000 + k : 1000 + Math.floor(r() * 60000), o && r() < 0.5 ? o.isn : Math.floor(r() * 2 ** 32), o && r() < 0.5 ? o.isn + 1 + Math.floor(r() * 3) : Math.floor(r() * 2 ** 32),
          Math.floor(r() * 64), { win: Math.floor(r() * 65536), opts, payload: r() < 0.4 ? new Uint8Array(Math.floor(r() * 200)).map(() => Math.floor(r() * 256)) : undefined });
        const dmg = r();
        if (dmg < 0.3) damaged.add(n);
        if (dmg < 0.1) f = f.slice(0, 14 + 20 + Math.floor(r() * 30));
        else if (dmg < 0.2) f[14 + 20 + 12] = Math.floor(r() * 256);
        else if (dmg < 0.3 && f.length > 60) for (let q = 54; q < Math.min(f.length, 74); q++) f[q] = Math.floor(r() * 256);
        frames.push({ data: f, tsSec: 6000 + Math.floor(n / 2000) });
      }
      const before = eng.counters();
      const res = eng.processBatch(frames);
      const out = eng.drainSplice();
      for (const o of open.slice(3)) p.done(o.msg.id, 2);
      for (let t = 0; t < 4; t++) sx(eng).splice_tick(6_100_000 + t * 60_000);
      const after = eng.drainSplice();
      const c = eng.counters();
      const d = (key: string) => c[key] - before[key];
      expect(d('rx-packets')).toBe(frames.length);
      expect(d('tx-backend') + d('tx-client') + d('passed') + d('dropped')).toBe(frames.length);
      let checked = 0;
      res.forEach((y, i) => {
        if ((y.verdict === 'client' || y.verdict === 'backend') && !damaged.has(i)) {
          expect(verifyFrame(y.frame).problems).toEqual([]);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(200);
      expect(sx(eng).splice_count()).toBeLessThanOrEqual(sx(eng).splice_capacity());
      return Buffer.concat([...res.map((y) => Buffer.from(y.frame)), ...[...out, ...after].map((o) => Buffer.from(o.frame))]).toString('hex');
    };
    const a = run(loadModule(join(process.cwd(), 'build/sessionlb.wasm')));
    const b = run(loadModule(join(process.cwd(), 'build/sessionlb-nosimd.wasm')));
    expect(a.length).toBeGreaterThan(100_000);
    expect(a).toBe(b);
  });
});
