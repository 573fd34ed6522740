// RTSP control-stream reassembly (assembly/session/reassembly.ts), driven packet by packet through
// the engine. The observable effect of a SETUP reply is its expectations: afterwards the client's
// RTP and RTCP go to the control connection's backend, although Maglev alone would send them
// elsewhere (the ports are chosen so; see mediaPorts), and `expectations-created` counts two.
import { describe, expect, it } from 'vitest';
import { makeEngine, run, type InFrame, type OutFrame } from './helpers/engine.js';
import { frame } from './ref/packet.js';
import type { Engine } from '../host/engine.js';
import { loadModule, modulePath } from '../host/wasm.js';
import { rng } from './helpers/rng.js';

const VIP = '10.0.0.100';
const SPORT = 6000; // server_port of every SETUP reply here

function config(extra: Record<string, unknown> = {}, flowCapacity = 4096, vip = VIP) {
  const v6 = vip.includes(':');
  return {
    flowCapacity,
    vips: [{
      address: vip, method: 'nat', scheduler: 'maglev', policy: 'session', rtspPorts: [554], ringSize: 4093, ...extra,
      backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: v6 ? `fd00:1::${i}` : `10.0.1.${i}` })),
    }],
  };
}

const enc = (s: string) => new TextEncoder().encode(s);
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A control connection: client end, initial sequence numbers of both sides. */
interface Conn { client: string; cport: number; cisn: number; sisn: number; vip?: string; vlans?: number[] }

const syn = (c: Conn, ts?: number): InFrame => ({
  ts, bytes: frame({ src: c.client, dst: c.vip ?? VIP, proto: 'tcp', sport: c.cport, dport: 554, tcpFlags: 'S', seq: c.cisn, vlans: c.vlans }),
});
const synAck = (c: Conn, ts?: number): InFrame => ({
  ts, bytes: frame({ src: c.vip ?? VIP, dst: c.client, proto: 'tcp', sport: 554, dport: c.cport, tcpFlags: 'SA', seq: c.sisn, ack: c.cisn + 1, vlans: c.vlans }),
});
/** Client -> VIP bytes [from, to) of the client's stream (acknowledging `sacked` server bytes). */
function cseg(c: Conn, stream: Uint8Array, from: number, to: number, o: { sacked?: number; flags?: string; ts?: number } = {}): InFrame {
  return {
    ts: o.ts,
    bytes: frame({
      src: c.client, dst: c.vip ?? VIP, proto: 'tcp', sport: c.cport, dport: 554, tcpFlags: o.flags ?? 'PA',
      seq: c.cisn + 1 + from, ack: c.sisn + 1 + (o.sacked ?? 0), payload: stream.subarray(from, to), vlans: c.vlans,
    }),
  };
}
/** VIP -> client bytes [from, to) of the server's stream. */
function sseg(c: Conn, stream: Uint8Array, from: number, to: number, o: { cacked?: number; flags?: string; ts?: number } = {}): InFrame {
  return {
    ts: o.ts,
    bytes: frame({
      src: c.vip ?? VIP, dst: c.client, proto: 'tcp', sport: 554, dport: c.cport, tcpFlags: o.flags ?? 'PA',
      seq: c.sisn + 1 + from, ack: c.cisn + 1 + (o.cacked ?? 0), payload: stream.subarray(from, to), vlans: c.vlans,
    }),
  };
}
/** [from, to) pieces of a stream of `len` bytes cut at the given offsets. */
function pieces(len: number, cuts: number[]): [number, number][] {
  const pts = [0, ...cuts.filter((x) => x > 0 && x < len).sort((a, b) => a - b), len];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < pts.length; i++) if (pts[i] < pts[i + 1]) out.push([pts[i], pts[i + 1]]);
  return out;
}
/** n roughly equal pieces. */
const evenly = (len: number, n: number) => pieces(len, Array.from({ length: n - 1 }, (_, i) => Math.round(((i + 1) * len) / n)));

const setupRequest = (cseq: number, rtp: number, session?: string) =>
  `SETUP rtsp://${VIP}:554/stream/trackID=${cseq} RTSP/1.0\r\nCSeq: ${cseq}\r\n${session ? `Session: ${session}\r\n` : ''}` +
  `Transport: RTP/AVP;unicast;client_port=${rtp}-${rtp + 1}\r\nUser-Agent: reassembly-test\r\n\r\n`;
const setupReply = (cseq: number, session: string, rtp: number, sport = SPORT) =>
  `RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nSession: ${session};timeout=60\r\n` +
  `Transport: RTP/AVP;unicast;client_port=${rtp}-${rtp + 1};server_port=${sport}-${sport + 1};ssrc=1A2B3C4D\r\n` +
  `Date: Tue, 05 Mar 2024 10:00:00 GMT\r\nServer: reassembly-test\r\n\r\n`;
const optionsReply = (cseq: number) => `RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n`;
function describeReply(cseq: number, sdpBytes: number) {
  let sdp = 'v=0\r\no=- 1 1 IN IP4 10.0.0.100\r\ns=test\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n';
  while (sdp.length < sdpBytes) sdp += `a=x-filler:${'f'.repeat(60)}\r\n`;
  sdp = sdp.slice(0, sdpBytes);
  return `RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nContent-Base: rtsp://${VIP}/stream/\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
}
/** An interleaved frame: '$', channel, length (big-endian), `len` bytes (which include '$', CR, LF). */
function dollar(channel: number, len: number, seed = 1): Uint8Array {
  const f = new Uint8Array(4 + len);
  f[0] = 0x24;
  f[1] = channel;
  f[2] = len >> 8;
  f[3] = len & 255;
  let x = seed;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    f[4 + i] = [0x24, 13, 10, 0x52][x % 7] ?? (x >>> 24); // plenty of '$', CR, LF and 'R' inside
  }
  return f;
}

const udp = (c: Conn, sport: number, dport: number, ts?: number): InFrame => ({
  ts, bytes: frame({ src: c.client, dst: c.vip ?? VIP, proto: 'udp', sport, dport, payload: new Uint8Array(172) }),
});

/**
 * The control connection's backend, and client RTP ports whose RTP and RTCP flows Maglev alone
 * would put on other backends (so only an expectation brings them to the session's backend).
 */
function mediaPorts(c: Conn, count = 1, cfg = config()): { backend: string; ports: number[] } {
  const probe = makeEngine(cfg);
  const backend = run(probe, [syn(c)])[0].backend!;
  const ports: number[] = [];
  for (let p = 5000; ports.length < count; p += 2) {
    const [rtp, rtcp] = run(probe, [udp(c, p, SPORT), udp(c, p + 1, SPORT + 1)]);
    if (rtp.backend !== backend && rtcp.backend !== backend) ports.push(p);
  }
  return { backend, ports };
}

/** The client's RTP and RTCP to the server ports: both reach `backend`. */
function expectMedia(eng: Engine, c: Conn, rtp: number, backend: string, sport = SPORT) {
  const out = run(eng, [udp(c, rtp, sport), udp(c, rtp + 1, sport + 1)]);
  expect(out.map((o) => o.verdict)).toEqual(['backend', 'backend']);
  expect(out.map((o) => o.backend)).toEqual([backend, backend]);
}

/** Every control-connection packet is forwarded (reassembly never holds or drops one). */
function expectForwarded(out: OutFrame[]) {
  for (const o of out) expect(['backend', 'client']).toContain(o.verdict);
}

const conn = (i: number, o: Partial<Conn> = {}): Conn => ({ client: `198.18.${(i >> 8) & 255}.${(i & 255) || 1}`, cport: 40000 + (i % 1000), cisn: 1000 + i * 7919, sisn: 500000 + i * 104729, ...o });

/** The start of a control connection: handshake and the client's SETUP request. */
function opening(c: Conn, request: Uint8Array): InFrame[] {
  return [syn(c), synAck(c), cseg(c, request, 0, request.length)];
}

describe('control-stream reassembly: split, reordered, retransmitted and wrapped replies', () => {
  for (const n of [2, 3, 10]) {
    it(`a SETUP reply split over ${n} segments creates the session and its expectations`, () => {
      const c = conn(n);
      const { backend, ports: [rtp] } = mediaPorts(c);
      const eng = makeEngine(config());
      const req = enc(setupRequest(3, rtp));
      const reply = enc(setupReply(3, `S${n}`, rtp));
      const text = new TextDecoder().decode(reply);
      // Cut inside the status line, inside the Transport line (in "client_port"), and elsewhere.
      const inTransport = text.indexOf('client_port=') + 6;
      const cuts = n === 2 ? [inTransport] : n === 3 ? [7, inTransport] : [...evenly(reply.length, n - 1).map(([, b]) => b), inTransport];
      const segs = pieces(reply.length, cuts);
      expect(segs.length).toBe(n);
      const out = run(eng, [...opening(c, req), ...segs.map(([a, b]) => sseg(c, reply, a, b, { cacked: req.length }))]);
      expectForwarded(out);
      expect(out.every((o) => o.backend === backend)).toBe(true);
      const k = eng.counters();
      expect(k['sessions-started']).toBe(1);
      expect(k['expectations-created']).toBe(2);
      expect(k['rtsp-messages']).toBe(2); // the request and the reply, once each
      expect(k['rtsp-errors']).toBe(0);
      expect(k['rtsp-partial']).toBe(n - 1);
      expectMedia(eng, c, rtp, backend);
    });
  }

  it('segments out of order and duplicated: held, then parsed once', () => {
    const orders = [[1, 0, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [0, 2, 2, 1, 3, 1, 0], [3, 3, 0, 1, 0, 2]];
    orders.forEach((order, t) => {
      const c = conn(100 + t);
      const { backend, ports: [rtp] } = mediaPorts(c);
      const eng = makeEngine(config());
      const req = enc(setupRequest(2, rtp));
      const reply = enc(setupReply(2, `R${t}`, rtp));
      const segs = evenly(reply.length, 4);
      // The client's request acknowledges the handshake: the reply's first byte is known even when
      // its first segment is not the first to arrive.
      const out = run(eng, [...opening(c, req), ...order.map((i) => sseg(c, reply, ...segs[i], { cacked: req.length }))]);
      expectForwarded(out);
      const k = eng.counters();
      expect(k['expectations-created'], `order ${order}`).toBe(2);
      expect(k['expectations-existing']).toBe(0); // the reply was handled once
      expect(k['rtsp-messages']).toBe(2);
      expect(k['rtsp-reasm-held']).toBeGreaterThan(0);
      const dups = order.length - new Set(order).size;
      if (dups) expect(k['rtsp-reasm-retransmits']).toBeGreaterThanOrEqual(1);
      expect(k['rtsp-reasm-dropped']).toBe(0);
      expectMedia(eng, c, rtp, backend);
    });
  });

  it('a retransmission overlapping new data is trimmed to the new bytes', () => {
    const c = conn(200);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const req = enc(setupRequest(4, rtp));
    const reply = enc(setupReply(4, 'OVL', rtp));
    const L = reply.length;
    const spans: [number, number][] = [[0, 40], [20, 90], [0, 90], [85, 150], [140, L - 10], [100, L]];
    const out = run(eng, [...opening(c, req), ...spans.map(([a, b]) => sseg(c, reply, a, b, { cacked: req.length }))]);
    expectForwarded(out);
    const k = eng.counters();
    expect(k['expectations-created']).toBe(2);
    expect(k['expectations-existing']).toBe(0);
    expect(k['rtsp-errors']).toBe(0);
    expect(k['rtsp-reasm-retransmits']).toBe(5);
    expectMedia(eng, c, rtp, backend);
  });

  it('sequence numbers wrapping past 2^32 in the middle of a message (both directions)', () => {
    for (const before of [1, 37, 100]) {
      const c = conn(300 + before, { cisn: 2 ** 32 - 1 - 30, sisn: 2 ** 32 - 1 - before });
      const { backend, ports: [rtp] } = mediaPorts(c);
      const eng = makeEngine(config());
      const request = enc(setupRequest(5, rtp));
      const reply = enc(setupReply(5, `W${before}`, rtp));
      const segs = pieces(reply.length, [before - 10, before, before + 1, before + 50]);
      const out = run(eng, [
        syn(c), synAck(c),
        ...pieces(request.length, [10, 31, 32, 60]).map(([a, b]) => cseg(c, request, a, b)),
        // Out of order across the wrap as well.
        ...[1, 0, 3, 2, 4].filter((i) => i < segs.length).map((i) => sseg(c, reply, ...segs[i], { cacked: request.length })),
      ]);
      expectForwarded(out);
      const k = eng.counters();
      expect(k['rtsp-messages'], `wrap after ${before}`).toBe(2);
      expect(k['expectations-created']).toBe(2);
      expect(k['rtsp-errors']).toBe(0);
      expectMedia(eng, c, rtp, backend);
    }
  });

  it('the server side alone (no request seen): the first reply segment starts the stream', () => {
    const c = conn(350);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const reply = enc(setupReply(1, 'ALONE', rtp));
    run(eng, [syn(c), ...evenly(reply.length, 5).map(([a, b]) => sseg(c, reply, a, b))]);
    expect(eng.counters()['expectations-created']).toBe(2);
    expectMedia(eng, c, rtp, backend);
  });

  it('IPv6 and VLAN-tagged control connections are reassembled too', () => {
    for (const c of [conn(360, { client: '2001:db8::77', vip: 'fd00::100' }), conn(361, { vlans: [42] })]) {
      const cfg = config({}, 4096, c.vip ?? VIP);
      const { backend, ports: [rtp] } = mediaPorts(c, 1, cfg);
      const eng = makeEngine(cfg);
      const req = enc(setupRequest(1, rtp));
      const reply = enc(setupReply(1, 'V6', rtp));
      const segs = evenly(reply.length, 4);
      const out = run(eng, [...opening(c, req), ...[2, 0, 1, 3].map((i) => sseg(c, reply, ...segs[i], { cacked: req.length }))]);
      expectForwarded(out);
      expect(eng.counters()['expectations-created']).toBe(2);
      expectMedia(eng, c, rtp, backend);
    }
  });

  it('with only the RTSP port open, media passes once the reassembled reply made expectations (firewall traversal)', () => {
    const c = conn(370);
    const cfg = config({ ports: [554] });
    const eng = makeEngine(cfg);
    const backend = run(eng, [syn(c)])[0].backend!;
    const before = run(eng, [udp(c, 5000, SPORT)]);
    expect(before[0].verdict).toBe('drop');
    expect(before[0].reason).toBe('no-service');
    const req = enc(setupRequest(1, 5002));
    const reply = enc(setupReply(1, 'FW', 5002));
    run(eng, [synAck(c), cseg(c, req, 0, req.length), ...evenly(reply.length, 6).reverse().map(([a, b]) => sseg(c, reply, a, b, { cacked: req.length }))]);
    expectMedia(eng, c, 5002, backend);
  });
});

describe('control-stream reassembly: several messages, bodies and interleaved frames', () => {
  it('two messages in one segment, and pipelined requests split anywhere', () => {
    const c = conn(400);
    const { backend, ports: [rtp1, rtp2] } = mediaPorts(c, 2);
    const eng = makeEngine(config());
    const reqs = enc(setupRequest(2, rtp1) + setupRequest(3, rtp2, 'TWO') + `PLAY rtsp://${VIP}/stream RTSP/1.0\r\nCSeq: 4\r\nSession: TWO\r\n\r\n`);
    const replies = enc(optionsReply(1) + setupReply(2, 'TWO', rtp1) + setupReply(3, 'TWO', rtp2));
    const out = run(eng, [
      syn(c), synAck(c),
      ...pieces(reqs.length, [5, 150, 151, 300]).map(([a, b]) => cseg(c, reqs, a, b)),
      sseg(c, replies, 0, replies.length - 40, { cacked: reqs.length }), // the options reply and the first SETUP reply, and a bit
      sseg(c, replies, replies.length - 40, replies.length, { cacked: reqs.length }),
    ]);
    expectForwarded(out);
    const k = eng.counters();
    expect(k['rtsp-messages']).toBe(6);
    expect(k['sessions-started']).toBe(1);
    expect(k['expectations-created']).toBe(4);
    expectMedia(eng, c, rtp1, backend);
    expectMedia(eng, c, rtp2, backend);
  });

  it('a DESCRIBE reply with an SDP body followed by a SETUP reply in the same segment', () => {
    for (const sdp of [300, 3000, 20000]) {
      const c = conn(410 + sdp);
      const { backend, ports: [rtp] } = mediaPorts(c);
      const eng = makeEngine(config());
      const req = enc(`DESCRIBE rtsp://${VIP}/stream RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n` + setupRequest(2, rtp));
      const replies = enc(describeReply(1, sdp) + setupReply(2, `D${sdp}`, rtp));
      // One segment when it fits in one; otherwise 1400-byte segments (the body spans many).
      const segs = replies.length <= 1400 ? [[0, replies.length] as [number, number]] : pieces(replies.length, Array.from({ length: Math.ceil(replies.length / 1400) }, (_, i) => (i + 1) * 1400));
      const out = run(eng, [...opening(c, req), ...segs.map(([a, b]) => sseg(c, replies, a, b, { cacked: req.length }))]);
      expectForwarded(out);
      const k = eng.counters();
      expect(k['rtsp-messages'], `sdp ${sdp}`).toBe(4);
      expect(k['rtsp-errors']).toBe(0);
      expect(k['rtsp-reasm-overflow']).toBe(0);
      expect(k['expectations-created']).toBe(2);
      expectMedia(eng, c, rtp, backend);
    }
  });

  it('interleaved $ frames mixed with RTSP messages, split across segments in every way', () => {
    const c = conn(420);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const frames = [dollar(0, 1200, 1), dollar(1, 60, 2), dollar(0, 3000, 3), dollar(1, 0, 4), dollar(0, 9000, 5), dollar(1, 12, 6)];
    const replies = cat(
      enc(optionsReply(1)), frames[0], frames[1], enc(`RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: IL\r\n\r\n`),
      frames[2], frames[3], frames[4], enc(setupReply(3, 'IL', rtp)), frames[5],
    );
    const req = enc(setupRequest(3, rtp, 'IL'));
    // Segment sizes that put boundaries inside frame headers, payloads and messages.
    for (const size of [1, 3, 7, 100, 536, 1400, 65000]) {
      const eng = makeEngine(config());
      const cuts: number[] = [];
      for (let x = size; x < replies.length; x += size) cuts.push(x);
      const segs = pieces(replies.length, cuts);
      const out = run(eng, [...opening(c, req), ...segs.map(([a, b]) => sseg(c, replies, a, b, { cacked: req.length }))]);
      expectForwarded(out);
      const k = eng.counters();
      expect(k['rtsp-interleaved'], `size ${size}`).toBe(6);
      expect(k['rtsp-messages']).toBe(4);
      expect(k['rtsp-errors']).toBe(0);
      expect(k['expectations-created']).toBe(2);
      expectMedia(eng, c, rtp, backend);
    }
    // Reordered (within the hold) as well.
    const eng = makeEngine(config());
    const segs = evenly(replies.length, 40);
    const order = segs.map((_, i) => i);
    for (let i = 0; i + 1 < order.length; i += 3) [order[i], order[i + 1]] = [order[i + 1], order[i]];
    run(eng, [...opening(c, req), ...order.map((i) => sseg(c, replies, ...segs[i], { cacked: req.length }))]);
    const k = eng.counters();
    expect(k['rtsp-interleaved']).toBe(6);
    expect(k['expectations-created']).toBe(2);
    expect(k['rtsp-reasm-dropped']).toBe(0);
  });

  it('a gap the capture missed is given up once the other side acknowledges past it', () => {
    const c = conn(430);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const req1 = enc(`OPTIONS rtsp://${VIP}/stream RTSP/1.0\r\nCSeq: 1\r\n\r\n`);
    const req2 = enc(setupRequest(2, rtp));
    const play = enc(`PLAY rtsp://${VIP}/stream RTSP/1.0\r\nCSeq: 3\r\nSession: GAP\r\n\r\n`);
    const creq = cat(req1, req2, play);
    const r1 = enc(optionsReply(1));
    const replies = cat(r1, enc(setupReply(2, 'GAP', rtp)));
    run(eng, [
      ...opening(c, req1), cseg(c, creq, req1.length, req1.length + req2.length),
      // The options reply is never captured; the SETUP reply after it waits for it.
      sseg(c, replies, r1.length, replies.length, { cacked: req1.length + req2.length }),
    ]);
    expect(eng.counters()['expectations-created']).toBe(0);
    expect(eng.counters()['rtsp-reasm-held']).toBe(1);
    // The client's PLAY acknowledges both replies: the missing bytes passed unseen.
    run(eng, [cseg(c, creq, req1.length + req2.length, creq.length, { sacked: replies.length })]);
    const k = eng.counters();
    expect(k['rtsp-reasm-dropped']).toBe(1);
    expect(k['expectations-created']).toBe(2);
    expectMedia(eng, c, rtp, backend);
  });

  it('a segment cut short by the capture length loses its tail; the next message is found again', () => {
    const c = conn(440);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const req = enc(setupRequest(2, rtp));
    const r1 = enc(setupReply(1, 'CUT', 5100));
    const r2 = enc(setupReply(2, 'CUT', rtp));
    const replies = cat(r1, r2);
    const first = sseg(c, replies, 0, r1.length, { cacked: req.length });
    const cut = { ...first, bytes: first.bytes.slice(0, first.bytes.length - 60), wirelen: first.bytes.length };
    const out = run(eng, [...opening(c, req), cut, sseg(c, replies, r1.length, replies.length, { cacked: req.length })]);
    expectForwarded(out);
    const k = eng.counters();
    expect(k['rtsp-reasm-truncated']).toBe(1);
    expect(k['expectations-created']).toBe(2); // only the second reply's
    expectMedia(eng, c, rtp, backend);
  });

  it('a capture that starts in the middle of a message resynchronises at the next one', () => {
    const c = conn(450);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const replies = enc(setupReply(1, 'MID', 5100) + setupReply(2, 'MID', rtp));
    const from = 30; // inside the first reply's headers
    const out = run(eng, [...pieces(replies.length, [from, 200, 260]).slice(1).map(([a, b]) => sseg(c, replies, a, b, { flags: 'A' }))]);
    expectForwarded(out);
    const k = eng.counters();
    expect(k['rtsp-errors']).toBeGreaterThanOrEqual(1);
    expect(k['expectations-created']).toBe(2);
    expectMedia(eng, c, rtp, backend);
  });
});

/** Small deterministic generator. */

/** Counters that must hold whatever came in. */
function expectConsistent(eng: Engine) {
  const k = eng.counters();
  expect(k['rx-packets']).toBe(k['tx-backend'] + k['tx-client'] + k['passed'] + k['dropped']);
  for (const [name, v] of Object.entries(k)) {
    expect(Number.isSafeInteger(v), name).toBe(true);
    expect(v, name).toBeGreaterThanOrEqual(0);
  }
  expect(k['expectations-created']).toBeLessThanOrEqual(2 * k['rtsp-messages']);
}

describe('control-stream reassembly: random streams, segmentations and mild reordering', () => {
  it('every message and frame is seen exactly once, whatever the cuts, swaps, duplicates and overlaps', () => {
    const r = rng(2024);
    for (let trial = 0; trial < 60; trial++) {
      const parts: Uint8Array[] = [];
      let messages = 0, frames = 0, setups = 0;
      const n = 3 + Math.floor(r() * 12);
      for (let i = 0; i < n; i++) {
        const kind = r();
        if (kind < 0.3) {
          parts.push(enc(setupReply(i + 1, `P${trial}`, 20000 + 2 * ((trial * 20 + i) % 20000))));
          messages++;
          setups++;
        } else if (kind < 0.45) {
          parts.push(enc(optionsReply(i + 1)));
          messages++;
        } else if (kind < 0.6) {
          parts.push(enc(describeReply(i + 1, Math.floor(r() * 6000))));
          messages++;
        } else {
          parts.push(dollar(Math.floor(r() * 4), Math.floor(r() * (r() < 0.2 ? 20000 : 1500)), trial * 100 + i));
          frames++;
        }
        if (r() < 0.2) parts.push(enc('\r\n'));
      }
      const stream = cat(...parts);
      const wrap = r() < 0.3;
      const c = conn(2000 + trial, { sisn: wrap ? 2 ** 32 - 1 - Math.floor(r() * stream.length) : Math.floor(r() * 2 ** 32) });
      const cuts: number[] = [];
      for (let x = 0; x < stream.length; ) cuts.push((x += 1 + Math.floor(r() * (r() < 0.3 ? 40 : 1460))));
      const segs = pieces(stream.length, cuts);
      const order: [number, number][] = [];
      for (let i = 0; i < segs.length; i++) {
        // Swap with the next one now and then (a reordering the hold absorbs).
        if (i + 1 < segs.length && r() < 0.25) {
          order.push(segs[i + 1], segs[i]);
          i++;
        } else order.push(segs[i]);
        if (r() < 0.1) order.push(segs[Math.floor(r() * (i + 1))]); // a duplicate of something seen
        if (r() < 0.05) { // a retransmission overlapping the next bytes
          const [a, b] = order[order.length - 1];
          order.push([Math.max(0, a - 20), Math.min(stream.length, b + 30)]);
        }
      }
      const eng = makeEngine(config({}, 65536));
      const req = enc(`OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n`);
      const out = run(eng, [...opening(c, req), ...order.map(([a, b]) => sseg(c, stream, a, b, { cacked: req.length }))]);
      expectForwarded(out);
      const k = eng.counters();
      const why = `trial ${trial}, ${stream.length} bytes in ${segs.length} segments`;
      expect(k['rtsp-messages'], why).toBe(messages + 1);
      expect(k['rtsp-interleaved'], why).toBe(frames);
      expect(k['rtsp-errors'], why).toBe(0);
      expect(k['expectations-created'], why).toBe(2 * setups);
      expect(k['rtsp-reasm-dropped'] + k['rtsp-reasm-overflow'] + k['rtsp-reasm-buffers-full'], why).toBe(0);
    }
  });
  it('heavier reordering: exact whenever nothing had to be given up, never more than the stream holds', () => {
    const r = rng(77);
    let exact = 0;
    for (let trial = 0; trial < 80; trial++) {
      const parts: Uint8Array[] = [];
      let messages = 0, frames = 0;
      for (let i = 0; i < 8; i++) {
        if (r() < 0.5) {
          parts.push(enc(i % 2 ? setupReply(i + 1, `H${trial}`, 20000 + 2 * ((trial * 8 + i) % 20000)) : describeReply(i + 1, Math.floor(r() * 3000))));
          messages++;
        } else {
          parts.push(dollar(1, Math.floor(r() * 2500), trial * 10 + i));
          frames++;
        }
      }
      const stream = cat(...parts);
      const c = conn(2500 + trial);
      const cuts: number[] = [];
      for (let x = 0; x < stream.length; ) cuts.push((x += 1 + Math.floor(r() * 1460)));
      const segs = pieces(stream.length, cuts);
      // Shuffle within windows of up to 5 segments.
      const order: [number, number][] = [];
      for (let i = 0; i < segs.length; ) {
        const w = segs.slice(i, i + 1 + Math.floor(r() * 5));
        for (let j = w.length - 1; j > 0; j--) {
          const x = Math.floor(r() * (j + 1));
          [w[j], w[x]] = [w[x], w[j]];
        }
        order.push(...w);
        i += w.length;
      }
      const eng = makeEngine(config({}, 65536));
      const req = enc('OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n');
      const out = run(eng, [...opening(c, req), ...order.map(([a, b]) => sseg(c, stream, a, b))]);
      expectForwarded(out);
      const k = eng.counters();
      expect(k['rtsp-messages']).toBeLessThanOrEqual(messages + 1);
      expect(k['rtsp-interleaved']).toBeLessThanOrEqual(frames);
      if (k['rtsp-reasm-dropped'] + k['rtsp-reasm-overflow'] + k['rtsp-reasm-buffers-full'] === 0) {
        expect(k['rtsp-messages'], `trial ${trial}`).toBe(messages + 1);
        expect(k['rtsp-interleaved'], `trial ${trial}`).toBe(frames);
        expect(k['rtsp-errors'], `trial ${trial}`).toBe(0);
        exact++;
      }
      expectConsistent(eng);
    }
    expect(exact).toBeGreaterThan(20);
  });
});

describe('control-stream reassembly: hostile input stays bounded', () => {
  it('a 1 MB header block without a line end, in 1400-byte segments: overflow, then the stream resynchronises', () => {
    const c = conn(500);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const junk = enc(`SETUP rtsp://${VIP}/x RTSP/1.0\r\nX-Junk: ` + 'a'.repeat(1 << 20));
    const req = enc(setupRequest(2, rtp));
    const stream = cat(junk, req);
    const frames = [syn(c), synAck(c), ...pieces(junk.length, Array.from({ length: Math.floor(junk.length / 1400) }, (_, i) => (i + 1) * 1400)).map(([a, b]) => cseg(c, stream, a, b))];
    const out = run(eng, frames);
    expectForwarded(out);
    let k = eng.counters();
    expect(k['rtsp-reasm-overflow']).toBe(1);
    expect(k['rtsp-messages']).toBe(0);
    // A request that starts a segment is found again; the server's reply is unaffected.
    const reply = enc(setupReply(2, 'BIG', rtp));
    run(eng, [cseg(c, stream, junk.length, stream.length), ...evenly(reply.length, 3).map(([a, b]) => sseg(c, reply, a, b, { cacked: stream.length }))]);
    k = eng.counters();
    expect(k['rtsp-messages']).toBe(2);
    expect(k['expectations-created']).toBe(2);
    expectMedia(eng, c, rtp, backend);
    expectConsistent(eng);
  });

  it('a header block longer than the 4096-byte buffer, sent in pieces, is counted as overflow', () => {
    const c = conn(505);
    const eng = makeEngine(config());
    const big = enc(`RTSP/1.0 200 OK\r\nCSeq: 1\r\n${Array.from({ length: 50 }, (_, i) => `X-H${i}: ${'v'.repeat(90)}\r\n`).join('')}\r\n`);
    expect(big.length).toBeGreaterThan(4096);
    expect(big.length).toBeLessThan(8192);
    run(eng, [syn(c), synAck(c), ...evenly(big.length, 8).map(([a, b]) => sseg(c, big, a, b))]);
    const k = eng.counters();
    expect(k['rtsp-reasm-overflow']).toBe(1);
    expect(k['rtsp-messages']).toBe(0);
    // In one segment the tokenizer takes it whole (up to its 8192-byte limit): no buffer needed.
    const eng2 = makeEngine(config());
    run(eng2, [syn(c), synAck(c), sseg(c, big, 0, big.length)]);
    expect(eng2.counters()['rtsp-messages']).toBe(1);
    expect(eng2.counters()['rtsp-reasm-overflow']).toBe(0);
  });

  it('10,000 SETUP requests (and replies) on one connection, split across segments', () => {
    const c = conn(510);
    const eng = makeEngine(config({}, 65536));
    const N = 10_000;
    const reqs = enc(Array.from({ length: N }, (_, i) => setupRequest(i + 1, 5000 + 2 * (i % 1000), i % 2 ? 'S10K' : undefined)).join(''));
    const reps = enc(Array.from({ length: N }, (_, i) => setupReply(i + 1, 'S10K', 5000 + 2 * (i % 1000))).join(''));
    const r = rng(7);
    const segsOf = (len: number) => {
      const cuts: number[] = [];
      for (let x = 0; x < len; ) cuts.push((x += 1 + Math.floor(r() * 2800)));
      return pieces(len, cuts);
    };
    const frames: InFrame[] = [syn(c), synAck(c)];
    const cs = segsOf(reqs.length), ss = segsOf(reps.length);
    for (let i = 0; i < Math.max(cs.length, ss.length); i++) {
      if (i < cs.length) frames.push(cseg(c, reqs, ...cs[i]));
      if (i < ss.length) frames.push(sseg(c, reps, ...ss[i]));
    }
    const out = run(eng, frames);
    expectForwarded(out);
    const k = eng.counters();
    expect(k['rtsp-messages']).toBe(2 * N);
    expect(k['rtsp-errors']).toBe(0);
    expect(k['rtsp-reasm-overflow']).toBe(0);
    expect(k['sessions-started']).toBe(1);
    // 1000 distinct port pairs of one session: 2000 expectations, the rest existed already.
    expect(k['expectations-created']).toBe(2000);
    expect(k['expectations-created'] + k['expectations-existing']).toBe(2 * N);
    expectConsistent(eng);
  });

  it('out-of-order segments beyond the hold: the oldest gap is given up, counted, and the stream recovers', () => {
    const c = conn(520);
    const { backend, ports: [rtp] } = mediaPorts(c);
    const eng = makeEngine(config());
    const req = enc(setupRequest(9, rtp));
    const lost = enc(setupReply(8, 'HOLD', 5100));
    const next = enc(setupReply(9, 'HOLD', rtp));
    const replies = cat(lost, next);
    const segs = evenly(lost.length, 12);
    const frames = [...opening(c, req), sseg(c, replies, ...segs[0], { cacked: req.length })];
    for (const i of [2, 4, 6, 8]) frames.push(sseg(c, replies, ...segs[i], { cacked: req.length }));
    run(eng, frames);
    let k = eng.counters();
    expect(k['rtsp-reasm-held']).toBe(4);
    expect(k['rtsp-reasm-dropped']).toBe(0);
    // A fifth range does not fit: the gap before the first held one is given up.
    run(eng, [sseg(c, replies, ...segs[10], { cacked: req.length })]);
    k = eng.counters();
    expect(k['rtsp-reasm-dropped']).toBe(1);
    // The late segments are now old; the first reply is lost, the next one is parsed.
    run(eng, [...[1, 3, 5, 7, 9, 11].map((i) => sseg(c, replies, ...segs[i], { cacked: req.length })), sseg(c, replies, lost.length, replies.length, { cacked: req.length })]);
    k = eng.counters();
    expect(k['rtsp-reasm-retransmits']).toBeGreaterThanOrEqual(1);
    expect(k['expectations-created']).toBe(2);
    expectMedia(eng, c, rtp, backend);
    expectConsistent(eng);
  });

  it('random payloads, sequence numbers and flags on many connections: no trap, counters consistent', () => {
    for (const simd of [true, false]) {
      const eng = makeEngine(config(), { module: loadModule(modulePath(simd)) });
      const r = rng(11);
      const conns = Array.from({ length: 24 }, (_, i) => conn(600 + i));
      const frames: InFrame[] = conns.flatMap((c) => [syn(c), synAck(c)]);
      const alphabet = enc('$\r\n RTSP/1.0 200 OK SETUP PLAY Session: Transport: client_port=server_port=;-0123456789abcdefXYZ');
      for (let n = 0; n < 6000; n++) {
        const c = conns[Math.floor(r() * conns.length)];
        const len = Math.floor(r() * (r() < 0.1 ? 5000 : 1500));
        const payload = new Uint8Array(len);
        const textual = r() < 0.5;
        for (let i = 0; i < len; i++) payload[i] = textual ? alphabet[Math.floor(r() * alphabet.length)] : Math.floor(r() * 256);
        const seqMode = r();
        const off = seqMode < 0.6 ? Math.floor(r() * 20000) : Math.floor(r() * 2 ** 32);
        const flags = ['PA', 'A', 'PA', 'FPA', 'SA', 'RA', 'PA'][Math.floor(r() * 7)];
        const fromClient = r() < 0.5;
        frames.push({
          bytes: frame({
            src: fromClient ? c.client : VIP, dst: fromClient ? VIP : c.client, proto: 'tcp',
            sport: fromClient ? c.cport : 554, dport: fromClient ? 554 : c.cport, tcpFlags: flags,
            seq: (fromClient ? c.cisn : c.sisn) + off, ack: Math.floor(r() * 2 ** 32), payload,
          }),
        });
      }
      const out = run(eng, frames);
      expect(out.length).toBe(frames.length);
      expectConsistent(eng);
      const k = eng.counters();
      expect(k['rtsp-reasm-slots-full']).toBe(0);
      // Still working afterwards: a fresh connection's split reply.
      const c = conn(700);
      const { backend, ports: [rtp] } = mediaPorts(c);
      const req = enc(setupRequest(1, rtp));
      const reply = enc(setupReply(1, 'AFTER', rtp));
      const before = k['expectations-created'];
      run(eng, [...opening(c, req), ...evenly(reply.length, 3).map(([a, b]) => sseg(c, reply, a, b, { cacked: req.length }))]);
      expect(eng.counters()['expectations-created']).toBe(before + 2);
      expectMedia(eng, c, rtp, backend);
    }
  });

  it('both builds (SIMD and not) agree byte for byte on a hostile mix', () => {
    const results = [true, false].map((simd) => {
      const eng = makeEngine(config(), { module: loadModule(modulePath(simd)) });
      const r = rng(99);
      const frames: InFrame[] = [];
      for (let i = 0; i < 40; i++) {
        const c = conn(800 + i);
        const reply = cat(enc(setupReply(1, `M${i}`, 5000 + 2 * i)), dollar(0, 700, i), enc(setupReply(2, `M${i}`, 6000 + 2 * i)));
        const segs = evenly(reply.length, 2 + (i % 7));
        const order = segs.map((_, x) => x).sort(() => r() - 0.5);
        frames.push(syn(c), synAck(c), ...order.map((x) => sseg(c, reply, ...segs[x])));
      }
      const out = run(eng, frames);
      return { counters: eng.counters(), bytes: out.map((o) => Buffer.from(o.bytes).toString('hex')).join(',') };
    });
    expect(results[1].counters).toEqual(results[0].counters);
    expect(results[1].bytes).toBe(results[0].bytes);
  });
});

describe('control-stream reassembly: state is bounded and freed', () => {
  it('many connections over time, far beyond the slot count: state freed as flows close', () => {
    // flowCapacity 4096: 256 slots. 1500 connections, 100 at a time; each leaves bytes pending
    // (a reply cut in two), then ends; packet time moves on and the host's expiry sweep closes them.
    const eng = makeEngine(config());
    const t0 = 1_700_000_000;
    let created = 0;
    for (let batch = 0; batch < 15; batch++) {
      const ts = t0 + batch * 200;
      const frames: InFrame[] = [];
      for (let i = 0; i < 100; i++) {
        const c = conn(1000 + batch * 100 + i, { cport: 20000 + batch * 100 + i });
        const req = enc(setupRequest(1, 30000 + 2 * i));
        const reply = enc(setupReply(1, `T${batch}-${i}`, 30000 + 2 * i));
        frames.push(
          syn(c, ts), synAck(c, ts), cseg(c, req, 0, req.length, { ts }),
          sseg(c, reply, 0, 100, { cacked: req.length, ts }), sseg(c, reply, 100, reply.length, { cacked: req.length, ts }),
          cseg(c, req, req.length, req.length, { flags: 'FA', sacked: reply.length, ts }),
        );
      }
      expectForwarded(run(eng, frames));
      created += 200;
      expect(eng.counters()['expectations-created']).toBe(created);
      eng.ex.expire(ts + 150, 1 << 20);
    }
    const k = eng.counters();
    expect(k['rtsp-reasm-slots-full']).toBe(0);
    expect(k['rtsp-reasm-buffers-full']).toBe(0);
    expect(k['sessions-started']).toBe(1500);
    expectConsistent(eng);
  });

  it('expired but unswept connections leave stale slots that new connections take over', () => {
    const eng = makeEngine(config({}, 4096));
    const t0 = 1_700_000_000;
    let created = 0;
    for (let batch = 0; batch < 8; batch++) {
      const ts = t0 + batch * 1000; // past the established timeout (900 s): the old flows are stale
      const frames: InFrame[] = [];
      for (let i = 0; i < 200; i++) {
        const c = conn(5000 + batch * 200 + i, { cport: 10000 + batch * 200 + i });
        const reply = enc(setupReply(1, `U${i}`, 30000 + 2 * i)); // 200 sessions, taken up again
        frames.push(syn(c, ts), synAck(c, ts), ...evenly(reply.length, 2).map(([a, b]) => sseg(c, reply, a, b, { ts })));
      }
      run(eng, frames);
      created += 400;
    }
    const k = eng.counters();
    expect(k['expectations-created']).toBe(created);
    expect(k['rtsp-reasm-slots-full']).toBe(0);
  });

  it('a new connection on the same ports (new ISN) starts afresh: closeFlow released the old state', () => {
    const eng = makeEngine(config());
    const base = conn(900);
    const { backend, ports: [rtp] } = mediaPorts(base);
    let created = 0;
    for (let round = 0; round < 5; round++) {
      // Each new connection's ISN lies before the previous one's: stale state would call its bytes old.
      const c = { ...base, cisn: 900000 - round * 50000, sisn: 7000000 - round * 50000 };
      const req = enc(setupRequest(1, rtp));
      const reply = enc(setupReply(1, `P${round}`, rtp));
      const out = run(eng, [
        ...opening(c, req), ...evenly(reply.length, 3).map(([a, b]) => sseg(c, reply, a, b, { cacked: req.length })),
        cseg(c, req, req.length, req.length, { flags: 'FA', sacked: reply.length }),
        sseg(c, reply, reply.length, reply.length, { flags: 'FA', cacked: req.length + 1 }),
      ]);
      expectForwarded(out);
      created += round === 0 ? 2 : 0; // later rounds find the expectations existing
      expect(eng.counters()['sessions-started']).toBe(round + 1);
      expect(eng.counters()['rtsp-messages']).toBe(2 * (round + 1));
    }
    expect(eng.counters()['flows-reused']).toBe(4);
    expect(eng.counters()['rtsp-reasm-retransmits']).toBe(0);
    expectMedia(eng, base, rtp, backend);
  });

  it('more live connections than slots: the rest are inspected segment by segment (counted)', () => {
    // flowCapacity 4096: 512 slots.
    const eng = makeEngine(config());
    const frames: InFrame[] = [];
    for (let i = 0; i < 700; i++) {
      const c = conn(3000 + i, { cport: 30000 + i });
      const reply = enc(setupReply(1, `L${i}`, 40000 + 2 * (i % 500)));
      frames.push(syn(c), synAck(c), sseg(c, reply, 0, reply.length)); // whole replies: parsed either way
    }
    expectForwarded(run(eng, frames));
    const k = eng.counters();
    expect(k['rtsp-reasm-slots-full']).toBeGreaterThan(0);
    expect(k['rtsp-reasm-slots-full']).toBeLessThanOrEqual(700 - 400);
    expect(k['rtsp-messages']).toBe(700);
    expect(k['expectations-created']).toBe(1400);
  });

  it('more directions with pending bytes than buffers: each one without a buffer loses just its message', () => {
    // 512 slots, 128 buffers: 200 connections each leave half a reply pending.
    const eng = makeEngine(config());
    const replies = Array.from({ length: 200 }, (_, i) => enc(setupReply(1, `B${i}`, 40000 + 2 * i)));
    const conns = Array.from({ length: 200 }, (_, i) => conn(4000 + i, { cport: 31000 + i }));
    run(eng, conns.flatMap((c, i) => [syn(c), synAck(c), sseg(c, replies[i], 0, 120)]));
    const full = eng.counters()['rtsp-reasm-buffers-full'];
    expect(eng.counters()['rtsp-reasm-slots-full']).toBe(0);
    expect(full).toBe(200 - 128);
    run(eng, conns.map((c, i) => sseg(c, replies[i], 120, replies[i].length)));
    const k = eng.counters();
    expect(k['expectations-created']).toBe(2 * (200 - full));
    // The buffers came back: a second reply split in two works for every connection now.
    const again = conns.map((_, i) => enc(setupReply(2, `B${i}`, 50000 + 2 * i)));
    const streams = conns.map((_, i) => cat(replies[i], again[i]));
    for (const group of [conns.slice(0, 100), conns.slice(100)]) {
      const ix = (c: Conn) => conns.indexOf(c);
      run(eng, group.map((c) => sseg(c, streams[ix(c)], replies[ix(c)].length, replies[ix(c)].length + 100)));
      run(eng, group.map((c) => sseg(c, streams[ix(c)], replies[ix(c)].length + 100, streams[ix(c)].length)));
    }
    expect(eng.counters()['rtsp-reasm-buffers-full']).toBe(full);
    expect(eng.counters()['expectations-created']).toBe(2 * (200 - full) + 400);
  });
});
