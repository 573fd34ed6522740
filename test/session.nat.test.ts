// RTSP NAT traversal (assembly/session/rtspnat.ts) on live-NAT-shaped control connections: the
// client talks to the VIP, the backend answers from its own address. A small TCP model of both
// ends drives the engine frame by frame: the client acknowledges (and SACKs) what it received,
// in the numbers it sees; the backend acknowledges what reached it. Checks:
// - the client receives one consistent byte stream: the server's messages with the VIP where the
//   backend's address was (Transport source=/src_addr, rtsp:// URLs, SDP c=/o=, Content-Length),
//   every retransmitted byte equal to the first copy;
// - the backend receives the client's stream unchanged, and acknowledgments in its own numbers;
// - every output frame's checksums verify (test/ref/csum.ts);
// - the independent oracle, tshark 4.0: the frames on the balancer's client side and on its backend
//   side (and the verdict-client / verdict-backend frames alone) have no bad checksum and no TCP
//   analysis flag (or, with a loss downstream of the balancer, the same flags frame by frame on
//   both sides), and its RTSP dissector shows the rewritten Transport.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { makeEngine, run, type OutFrame } from './helpers/engine.js';
import { frame, parseFrame, parseIp } from './ref/packet.js';
import { verifyFrame } from './ref/csum.js';
import { badChecksumFrames, fields, tcpAnalysisFrames } from './helpers/tshark.js';
import { tempDir } from './helpers/cli.js';
import { PcapWriter } from '../host/io/pcap-writer.js';
import { replayFile } from '../host/replay.js';
import { parseConfig } from '../host/ctl/config.js';
import { readPcap } from './helpers/tcprewrite.js';
import type { Engine } from '../host/engine.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder('latin1').decode(b);
const u32 = (x: number) => x >>> 0;
const RTSP_PORT = 554;

interface Wire { bytes: Uint8Array; ts: number; nsec: number }

interface NatConfig {
  vip: string;
  backends: string[];
  method?: string;
  policy?: string;
  extra?: Record<string, unknown>;
}

function natConfig(c: NatConfig) {
  return {
    flowCapacity: 4096,
    vips: [{
      address: c.vip, ports: [RTSP_PORT], method: c.method ?? 'nat', policy: c.policy ?? 'session', rtspPorts: [RTSP_PORT],
      ringSize: 4093, ...c.extra,
      backends: c.backends.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: `02:00:00:00:01:0${i + 1}` })),
    }],
  };
}

/** SACK option: NOP, NOP, kind 5 with the blocks (absolute sequence numbers). */
function sackOption(blocks: [number, number][]): Uint8Array {
  const o = new Uint8Array(4 + 8 * blocks.length);
  o[0] = 1;
  o[1] = 1;
  o[2] = 5;
  o[3] = 2 + 8 * blocks.length;
  const dv = new DataView(o.buffer);
  blocks.forEach(([l, r], i) => {
    dv.setUint32(4 + 8 * i, u32(l));
    dv.setUint32(8 + 8 * i, u32(r));
  });
  return o;
}

/** The SACK blocks of a TCP header (absolute numbers). */
function sackBlocks(bytes: Uint8Array): [number, number][] {
  const ip = parseFrame(bytes).ip!;
  const th = ip.l4Offset;
  const hl = ip.tcp!.headerLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const out: [number, number][] = [];
  for (let o = 20; o < hl;) {
    const kind = bytes[th + o];
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    const len = bytes[th + o + 1];
    if (kind === 5) for (let q = o + 2; q + 8 <= o + len; q += 8) out.push([dv.getUint32(th + q), dv.getUint32(th + q + 4)]);
    o += len;
  }
  return out;
}

const payloadOf = (bytes: Uint8Array) => {
  const ip = parseFrame(bytes).ip!;
  return bytes.subarray(ip.payloadOffset!, ip.payloadOffset! + ip.payloadLength!);
};

/**
 * One control connection through the engine: a client, the VIP, the backend the engine picks.
 * Sequence numbers of the server's stream: `s*` in the backend's numbers, `c*` in the client's.
 */
class Conn {
  readonly eng: Engine;
  readonly vip: string;
  backend = '';
  backendId = '';
  readonly client: string;
  readonly cport: number;
  readonly cisn: number;
  readonly sisn: number;
  /** Frames on the balancer's client side and backend side, in the order they crossed it. */
  readonly clientWire: Wire[] = [];
  readonly backendWire: Wire[] = [];
  readonly clientOut: Wire[] = []; // verdict client only
  readonly backendOut: Wire[] = []; // verdict backend only
  readonly outputs: OutFrame[] = [];
  readonly inputs: Wire[] = []; // what entered the balancer, in order (a capture taken at it)
  private t = 0;
  // client model
  cSnd: number; // next byte of the client's stream
  cRcv = 0; // next expected byte of the server's stream (client numbers)
  readonly cGot: number[] = []; // the server's stream as the client received it, in order
  private cOoo = new Map<number, Uint8Array>(); // out-of-order segments held by the client
  private cFirst = 0; // client number of the server's first byte
  // server model
  sSnd: number; // next byte of the server's stream (backend numbers)
  sRcv: number; // next expected byte of the client's stream
  readonly sSent: number[] = []; // the server's stream as sent
  readonly sGot: number[] = []; // the client's stream as the backend received it
  readonly sAcks: number[] = []; // acknowledgments the backend received
  readonly sSacks: [number, number][][] = []; // SACK blocks the backend received
  readonly cSentStream: number[] = []; // the client's stream as sent
  readonly v6: boolean;

  constructor(eng: Engine, vip: string, o: { client?: string; cport?: number; cisn?: number; sisn?: number; fromVip?: boolean } = {}) {
    this.eng = eng;
    this.backendAddrs = eng.backends.map((b) => b.address);
    this.vip = vip;
    this.v6 = vip.includes(':');
    this.client = o.client ?? (this.v6 ? '2001:db8:c::7' : '198.18.3.3');
    this.cport = o.cport ?? 40000;
    this.cisn = u32(o.cisn ?? 1000);
    this.sisn = u32(o.sisn ?? 500000);
    this.cSnd = u32(this.cisn + 1);
    this.sSnd = u32(this.sisn + 1);
    this.sRcv = u32(this.cisn + 1);
    this.fromVip = o.fromVip ?? false;
  }
  readonly fromVip: boolean; // the server's frames come from the VIP (a capture at the entry point)
  private readonly backendAddrs: string[];

  private tick(): { ts: number; nsec: number } {
    this.t += 1_000_000; // 1 ms apart
    return { ts: 1_700_000_000 + Math.floor(this.t / 1e9), nsec: this.t % 1e9 };
  }

  /** Runs one frame through the engine. */
  private pass(bytes: Uint8Array, fromClient: boolean, wirelen?: number): OutFrame {
    const at = this.tick();
    const out = run(this.eng, [{ bytes, ts: at.ts, nsec: at.nsec, wirelen }])[0];
    this.outputs.push(out);
    this.inputs.push({ bytes, ...at });
    const w = { bytes: out.bytes, ...at };
    if (fromClient) {
      this.clientWire.push({ bytes, ...at });
      this.backendWire.push(w);
      if (out.verdict === 'backend') this.backendOut.push(w);
    } else {
      this.backendWire.push({ bytes, ...at });
      this.clientWire.push(w);
      if (out.verdict === 'client') this.clientOut.push(w);
    }
    return out;
  }

  private cFrame(o: { flags: string; seq?: number; ack?: number; payload?: Uint8Array; sack?: [number, number][] }) {
    return frame({
      src: this.client, dst: this.vip, proto: 'tcp', sport: this.cport, dport: RTSP_PORT, tcpFlags: o.flags,
      seq: o.seq ?? this.cSnd, ack: o.ack ?? this.cRcv, payload: o.payload, tcpOptions: o.sack?.length ? sackOption(o.sack) : undefined,
    });
  }

  private sFrame(o: { flags: string; seq: number; ack?: number; payload?: Uint8Array }) {
    return frame({
      src: this.fromVip ? this.vip : this.backend, dst: this.client, proto: 'tcp', sport: RTSP_PORT, dport: this.cport,
      tcpFlags: o.flags, seq: o.seq, ack: o.ack ?? this.sRcv, payload: o.payload,
    });
  }

  /** The three-way handshake; learns the backend. */
  open(): void {
    const syn = this.pass(this.cFrame({ flags: 'S', seq: this.cisn, ack: 0 }), true);
    expect(syn.verdict).toBe('backend');
    this.backendId = syn.backend!;
    this.backend = this.backendAddrs[syn.egress];
    const sa = this.pass(this.sFrame({ flags: 'SA', seq: this.sisn }), false);
    expect(sa.verdict).toBe('client');
    const ip = parseFrame(sa.bytes).ip!;
    expect(ip.src).toBe(this.vip);
    this.cFirst = u32(ip.tcp!.seq + 1);
    this.cRcv = this.cFirst;
    this.clientAck();
  }

  /** The client acknowledges what it has, with SACK blocks for what it holds beyond. */
  clientAck(o: { sack?: boolean } = {}): OutFrame {
    return this.deliverToServer(this.pass(this.cFrame({ flags: 'A', sack: o.sack === false ? [] : this.sacks() }), true));
  }

  /** Held ranges, adjacent ones merged, the highest first (at most 3 blocks). */
  private sacks(): [number, number][] {
    const r = [...this.cOoo.entries()].map(([s, p]) => [u32(s - this.cRcv), u32(s - this.cRcv) + p.length]).sort((a, b) => a[0] - b[0]);
    const merged: number[][] = [];
    for (const x of r) {
      const last = merged.at(-1);
      if (last && x[0] <= last[1]) last[1] = Math.max(last[1], x[1]);
      else merged.push([...x]);
    }
    return merged.reverse().slice(0, 3).map(([a, b]) => [u32(this.cRcv + a), u32(this.cRcv + b)]);
  }

  /** The client sends text, cut at the given offsets; `resend` re-sends [from, to) of its stream. */
  clientSend(text: string, cuts: number[] = []): void {
    const b = enc(text);
    this.cSentStream.push(...b);
    for (const [from, to] of pieces(b.length, cuts)) {
      this.deliverToServer(this.pass(this.cFrame({ flags: 'PA', payload: b.subarray(from, to), sack: this.sacks() }), true));
      this.cSnd = u32(this.cSnd + to - from);
    }
  }

  clientResend(from: number, to: number): void {
    const seq = u32(this.cisn + 1 + from);
    const p = new Uint8Array(this.cSentStream.slice(from, to));
    this.deliverToServer(this.pass(this.cFrame({ flags: 'PA', seq, payload: p }), true));
  }

  private deliverToServer(out: OutFrame): OutFrame {
    expect(out.verdict).toBe('backend');
    const outer = parseFrame(out.bytes).ip!;
    const ip = outer.inner ?? outer; // tunnels: the client's packet inside
    expect([this.backend, this.vip]).toContain(ip.dst); // NAT: the backend; DR and tunnels: the VIP
    expect(ip.src).toBe(this.client);
    const t = ip.tcp!;
    if (t.flags & 16) this.sAcks.push(t.ack);
    if (!outer.inner) this.sSacks.push(sackBlocks(out.bytes));
    const p = out.bytes.subarray(ip.payloadOffset!, ip.payloadOffset! + ip.payloadLength!);
    if (p.length) {
      const off = u32(t.seq - this.sRcv);
      if (off === 0) {
        this.sGot.push(...p);
        this.sRcv = u32(this.sRcv + p.length);
      } else if (off > 0x80000000) {
        // a retransmission: bytes the backend has must be the same
        const start = this.sGot.length - (u32(this.sRcv - t.seq));
        for (let i = 0; i < p.length && start + i < this.sGot.length; i++) expect(p[i]).toBe(this.sGot[start + i]);
      }
    }
    return out;
  }

  /**
   * The server sends text (cut into segments at the given offsets). `lose`: indices of segments
   * lost between the balancer and the client; `order`: the order segments reach the balancer.
   * Returns the client-side frames.
   */
  serverSend(text: string | Uint8Array, o: { cuts?: number[]; lose?: number[]; order?: number[]; fin?: boolean } = {}): OutFrame[] {
    const b = typeof text === 'string' ? enc(text) : text;
    const base = this.sSnd;
    const at = this.sSent.length;
    this.sSent.push(...b);
    const segs = pieces(b.length, o.cuts ?? []);
    const order = o.order ?? segs.map((_, i) => i);
    const outs: OutFrame[] = [];
    for (const i of order) {
      const [from, to] = segs[i];
      const out = this.serverSegment(u32(base + from), this.sSent.slice(at + from, at + to), o.fin && i === segs.length - 1 ? 'FPA' : 'PA', o.lose?.includes(i));
      outs.push(out);
    }
    this.sSnd = u32(base + b.length + (o.fin ? 1 : 0));
    return outs;
  }

  /** Re-sends bytes [from, to) of the server's stream (offsets from its first byte). */
  serverResend(from: number, to: number): OutFrame {
    return this.serverSegment(u32(this.sisn + 1 + from), this.sSent.slice(from, to), 'PA', false);
  }

  /** A segment of the server's payload (or a pure ACK with no bytes). */
  serverSegment(seq: number, bytes: number[] | Uint8Array, flags = 'PA', lost = false): OutFrame {
    const out = this.pass(this.sFrame({ flags, seq, payload: new Uint8Array(bytes) }), false);
    expect(out.verdict).toBe('client');
    const ip = parseFrame(out.bytes).ip!;
    expect(ip.src).toBe(this.vip);
    expect(ip.dst).toBe(this.client);
    if (!lost) this.clientReceive(ip.tcp!.seq, payloadOf(out.bytes));
    return out;
  }

  serverAck(): OutFrame {
    return this.serverSegment(this.sSnd, [], 'A');
  }

  private clientReceive(seq: number, p: Uint8Array): void {
    if (!p.length) return;
    const off = u32(seq - this.cRcv);
    if (off > 0x80000000) {
      // Old bytes: every one must equal the copy the client has.
      const start = this.cGot.length - u32(this.cRcv - seq);
      for (let i = 0; i < p.length; i++) {
        if (start + i < this.cGot.length) expect(p[i], `retransmitted byte ${start + i}`).toBe(this.cGot[start + i]);
      }
      const fresh = p.subarray(Math.min(p.length, u32(this.cRcv - seq)));
      if (fresh.length) this.clientReceive(this.cRcv, fresh);
      return;
    }
    if (off > 0) {
      const held = this.cOoo.get(seq);
      if (held) expect([...held]).toEqual([...p].slice(0, held.length));
      this.cOoo.set(seq, p.slice());
      return;
    }
    this.cGot.push(...p);
    this.cRcv = u32(this.cRcv + p.length);
    // Held segments that became in order.
    for (let again = true; again;) {
      again = false;
      for (const [s, q] of this.cOoo) {
        const d = u32(s - this.cRcv);
        if (d === 0 || d > 0x80000000) {
          this.cOoo.delete(s);
          const skip = d === 0 ? 0 : u32(this.cRcv - s);
          const start = this.cGot.length - skip;
          for (let i = 0; i < Math.min(skip, q.length); i++) expect(q[i]).toBe(this.cGot[start + i]);
          if (q.length > skip) {
            this.cGot.push(...q.subarray(skip));
            this.cRcv = u32(this.cRcv + q.length - skip);
          }
          again = true;
          break;
        }
      }
    }
  }

  /** The server's stream as the client has it. */
  clientText(): string {
    return dec(new Uint8Array(this.cGot));
  }

  close(): void {
    const fin = this.pass(this.cFrame({ flags: 'FA' }), true);
    this.deliverToServer(fin);
    this.cSnd = u32(this.cSnd + 1);
    this.sRcv = u32(this.sRcv + 1);
    this.serverSegment(this.sSnd, [], 'FA');
    this.sSnd = u32(this.sSnd + 1);
    this.cRcv = u32(this.cRcv + 1);
    this.clientAck();
  }

  /** Writes the captures; returns their paths. */
  write(dir: string): Record<'clientWire' | 'backendWire' | 'clientOut' | 'backendOut' | 'inputs', string> {
    const out = {} as Record<'clientWire' | 'backendWire' | 'clientOut' | 'backendOut' | 'inputs', string>;
    for (const name of ['clientWire', 'backendWire', 'clientOut', 'backendOut', 'inputs'] as const) {
      const path = join(dir, `${name}.pcap`);
      const w = new PcapWriter(path, { nanos: true });
      for (const f of this[name]) {
        const b = Buffer.from(f.bytes);
        w.writeRecord(b, 0, b.length, b.length, f.ts, f.nsec);
      }
      w.close();
      out[name] = path;
    }
    return out;
  }
}

/** [from, to) pieces of `len` bytes cut at the offsets (an empty text is one empty piece: none). */
function pieces(len: number, cuts: number[]): [number, number][] {
  const pts = [0, ...cuts.filter((x) => x > 0 && x < len).sort((a, b) => a - b), len];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < pts.length; i++) if (pts[i] < pts[i + 1]) out.push([pts[i], pts[i + 1]]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages, with the server's address as a parameter: the backend sends them with its own, the
// client must read them with the VIP's.

const hostOf = (a: string) => (a.includes(':') ? `[${a}]` : a);
const ipv = (a: string) => (a.includes(':') ? 'IP6' : 'IP4');

const req = {
  options: (n: number, vip: string) => `OPTIONS rtsp://${hostOf(vip)}:554/stream RTSP/1.0\r\nCSeq: ${n}\r\nUser-Agent: nat-test\r\n\r\n`,
  describe: (n: number, vip: string) => `DESCRIBE rtsp://${hostOf(vip)}:554/stream RTSP/1.0\r\nCSeq: ${n}\r\nAccept: application/sdp\r\n\r\n`,
  setup: (n: number, vip: string, track: number, rtp: number, session?: string) =>
    `SETUP rtsp://${hostOf(vip)}:554/stream/trackID=${track} RTSP/1.0\r\nCSeq: ${n}\r\n${session ? `Session: ${session}\r\n` : ''}` +
    `Transport: RTP/AVP;unicast;client_port=${rtp}-${rtp + 1}\r\n\r\n`,
  play: (n: number, vip: string, session: string) => `PLAY rtsp://${hostOf(vip)}:554/stream RTSP/1.0\r\nCSeq: ${n}\r\nSession: ${session}\r\nRange: npt=0.000-\r\n\r\n`,
  getParameter: (n: number, vip: string, session: string) => `GET_PARAMETER rtsp://${hostOf(vip)}:554/stream RTSP/1.0\r\nCSeq: ${n}\r\nSession: ${session}\r\n\r\n`,
  teardown: (n: number, vip: string, session: string) => `TEARDOWN rtsp://${hostOf(vip)}:554/stream RTSP/1.0\r\nCSeq: ${n}\r\nSession: ${session}\r\n\r\n`,
};

const rep = {
  options: (n: number) => `RTSP/1.0 200 OK\r\nCSeq: ${n}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n`,
  describe: (n: number, a: string) => {
    const sdp = `v=0\r\no=- 1234 1 IN ${ipv(a)} ${a}\r\ns=Stream\r\nc=IN ${ipv(a)} ${a}\r\nt=0 0\r\na=control:rtsp://${hostOf(a)}:554/stream/\r\n` +
      'm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:trackID=1\r\n';
    return `RTSP/1.0 200 OK\r\nCSeq: ${n}\r\nContent-Base: rtsp://${hostOf(a)}:554/stream/\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
  },
  setup: (n: number, a: string, session: string, rtp: number, sport: number) =>
    `RTSP/1.0 200 OK\r\nCSeq: ${n}\r\nSession: ${session};timeout=60\r\n` +
    `Transport: RTP/AVP;unicast;destination=198.18.3.3;source=${a};client_port=${rtp}-${rtp + 1};server_port=${sport}-${sport + 1};ssrc=1A2B3C4D\r\n` +
    'Date: Tue, 05 Mar 2024 10:00:00 GMT\r\n\r\n',
  play: (n: number, a: string, session: string) =>
    `RTSP/1.0 200 OK\r\nCSeq: ${n}\r\nSession: ${session}\r\nRange: npt=0.000-\r\n` +
    `RTP-Info: url=rtsp://${hostOf(a)}:554/stream/trackID=0;seq=1;rtptime=0,url=rtsp://${hostOf(a)}:554/stream/trackID=1;seq=1;rtptime=0\r\n\r\n`,
  ok: (n: number, session: string) => `RTSP/1.0 200 OK\r\nCSeq: ${n}\r\nSession: ${session}\r\n\r\n`,
  setup2: (n: number, a: string, session: string, rtp: number, sport: number) =>
    `RTSP/2.0 200 OK\r\nCSeq: ${n}\r\nSession: ${session};timeout=60\r\n` +
    `Transport: RTP/AVP;unicast;dest_addr=":${rtp}"/":${rtp + 1}";src_addr="${hostOf(a)}:${sport}"/"${hostOf(a)}:${sport + 1}"\r\n\r\n`,
};

const counters = (eng: Engine) => {
  const c = eng.counters();
  return Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith('rtsp-nat') || k === 'seqadj-adjusted'));
};

/**
 * A whole RTSP conversation: OPTIONS, DESCRIBE (SDP), two SETUPs (the second reply split over
 * three segments, one cut inside its Transport line), PLAY, `keepalives` GET_PARAMETERs, an
 * RTSP 2.0 SETUP with src_addr, TEARDOWN. Returns the server's text with `addr` as its address.
 */
function conversation(c: Conn, keepalives = 20, o: { splitSetup?: (text: string) => number[] } = {}): (addr: string) => string {
  const session = 'NAT7431';
  const texts: ((a: string) => string)[] = [];
  const exchange = (request: string, reply: (a: string) => string, sendOpts: Parameters<Conn['serverSend']>[1] = {}) => {
    c.clientSend(request);
    c.serverAck();
    texts.push(reply);
    c.serverSend(reply(c.backend), sendOpts);
    c.clientAck();
  };
  exchange(req.options(1, c.vip), () => rep.options(1));
  exchange(req.describe(2, c.vip), (a) => rep.describe(2, a));
  exchange(req.setup(3, c.vip, 0, 5000), (a) => rep.setup(3, a, session, 5000, 7000));
  const second = rep.setup(4, c.backend, session, 5002, 7002);
  const cut1 = second.indexOf('source=') + `source=${c.backend};`.length + 5; // inside the Transport line, after the address
  exchange(req.setup(4, c.vip, 1, 5002, session), (a) => rep.setup(4, a, session, 5002, 7002), { cuts: o.splitSetup ? o.splitSetup(second) : [30, cut1] });
  exchange(req.play(5, c.vip, session), (a) => rep.play(5, a, session));
  for (let i = 0; i < keepalives; i++) exchange(req.getParameter(6 + i, c.vip, session), () => rep.ok(6 + i, session));
  exchange(req.setup(6 + keepalives, c.vip, 2, 5004, session), (a) => rep.setup2(6 + keepalives, a, session, 5004, 7004));
  exchange(req.teardown(7 + keepalives, c.vip, session), () => rep.ok(7 + keepalives, session));
  return (addr: string) => texts.map((t) => t(addr)).join('');
}

const dirs: string[] = [];
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function scratch(name: string): string {
  const d = tempDir(`session-nat-${name}`);
  dirs.push(d);
  return d;
}

/** Every output frame's checksums verify. */
function expectChecksums(c: Conn) {
  for (const o of c.outputs) expect(verifyFrame(o.bytes).problems, `frame ${c.outputs.indexOf(o)}`).toEqual([]);
}

/** tshark: no bad checksum and no TCP analysis flag anywhere; the RTSP replies' Transport. */
function expectTsharkClean(c: Conn, name: string) {
  const p = c.write(scratch(name));
  for (const path of [p.clientWire, p.backendWire, p.clientOut, p.backendOut]) {
    expect(badChecksumFrames(path), path).toEqual([]);
    expect(tcpAnalysisFrames(path), path).toEqual([]);
  }
  return p;
}

describe('RTSP NAT traversal: the client reads the VIP where the backend wrote its address', () => {
  const VIP = '10.0.0.100';
  const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];

  it('headroom_needed covers the growth for NAT + session VIPs only', () => {
    expect(makeEngine(natConfig({ vip: VIP, backends: BACKENDS })).ex.headroom_needed()).toBe(254);
    expect(makeEngine(natConfig({ vip: VIP, backends: BACKENDS, policy: 'flow' })).ex.headroom_needed()).toBe(14);
    expect(makeEngine(natConfig({ vip: VIP, backends: BACKENDS, method: 'dr' })).ex.headroom_needed()).toBe(14);
  });

  it('a whole conversation: the client sees a consistent stream naming the VIP; tshark agrees', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    const c = new Conn(eng, VIP);
    c.open();
    const text = conversation(c);
    c.close();
    // The backend wrote its address everywhere; the client reads the VIP's.
    expect(c.clientText()).toBe(text(VIP));
    expect(dec(new Uint8Array(c.sSent))).toBe(text(c.backend));
    expect(c.clientText()).not.toContain(c.backend);
    // The client's stream reaches the backend unchanged, and its acks in the backend's numbers.
    expect(c.sGot).toEqual(c.cSentStream);
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    const acks = c.sAcks.map((a) => u32(a - c.sisn));
    for (let i = 1; i < acks.length; i++) expect(acks[i]).toBeGreaterThanOrEqual(acks[i - 1]);
    expectChecksums(c);
    // Offsets accumulate: each reply with addresses grew the stream (2 bytes per address).
    const grown = text(VIP).length - text(c.backend).length;
    expect(grown).toBe(2 * (4 + 1 + 1 + 2 + 2)); // DESCRIBE 4, SETUP 1 + 1, PLAY 2, RTSP 2.0 SETUP 2
    const last = c.outputs.filter((o) => o.verdict === 'client').at(-1)!;
    expect(u32(parseFrame(last.bytes).ip!.tcp!.seq - c.sisn)).toBe(u32(c.sSnd - 1 - c.sisn + grown));
    const n = counters(eng);
    expect(n['rtsp-nat-rewrites']).toBe(10 + 1); // addresses + the DESCRIBE reply's Content-Length
    expect(n['rtsp-nat-missed']).toBe(0);
    expect(n['rtsp-nat-bytes-added']).toBe(grown + (String(rep.describe(2, VIP).length).length - String(rep.describe(2, c.backend).length).length));
    expect(n['rtsp-nat-bytes-removed']).toBe(0);
    expect(n['seqadj-adjusted']).toBeGreaterThan(40);
    const p = expectTsharkClean(c, 'conversation');
    // tshark's RTSP dissector reads the rewritten Transport, Content-Base and SDP on the client side.
    const transports = fields(p.clientWire, ['rtsp.transport'], { filter: 'rtsp.response && rtsp.transport' }).map((r) => r[0]);
    expect(transports.length).toBe(3);
    expect(transports[0]).toContain(`source=${VIP};`);
    expect(transports[1]).toContain(`source=${VIP};`);
    expect(transports[2]).toContain(`src_addr="${VIP}:7004"/"${VIP}:7005"`);
    for (const t of transports) expect(t).not.toContain(c.backend);
    const sdp = fields(p.clientWire, ['sdp.connection_info.address', 'sdp.owner.address'], { filter: 'sdp' });
    expect(sdp).toEqual([[VIP, VIP]]);
    const onBackendSide = fields(p.backendWire, ['rtsp.transport'], { filter: 'rtsp.response && rtsp.transport' }).map((r) => r[0]);
    expect(onBackendSide.map((t) => t.includes(c.backend))).toEqual([true, true, true]);
    // Every reply is a whole RTSP response to tshark on both sides.
    expect(fields(p.clientWire, ['rtsp.status'], { filter: 'rtsp.response' }).length).toBe(fields(p.backendWire, ['rtsp.status'], { filter: 'rtsp.response' }).length);
  });
});

describe('RTSP NAT traversal: losses, retransmissions, SACK, reordering', () => {
  const VIP = '10.0.0.100';
  const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];

  it('a rewritten segment lost after the balancer: SACK blocks go back to the backend\'s numbers, its retransmission is rewritten again', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    const c = new Conn(eng, VIP);
    c.open();
    const session = 'LOSS1';
    c.clientSend(req.setup(1, VIP, 0, 5000));
    c.serverAck();
    const setup = rep.setup(1, c.backend, session, 5000, 7000);
    const sStart = u32(c.sSnd - c.sisn - 1); // stream offset of the reply
    // The SETUP reply (one segment, rewritten) is lost on the way to the client ...
    c.serverSend(setup, { lose: [0] });
    // ... the next two replies arrive: the client holds them and SACKs them.
    c.clientSend(req.getParameter(2, VIP, session));
    c.serverSend(rep.ok(2, session));
    c.clientSend(req.getParameter(3, VIP, session));
    const third = rep.play(3, c.backend, session); // rewritten too (two URLs)
    c.serverSend(third);
    c.clientAck();
    // The backend sees SACK edges in its own numbers: the two replies after the lost one.
    const afterLost = u32(c.sisn + 1 + sStart + setup.length);
    expect(c.sSacks.at(-1)).toEqual([[afterLost, c.sSnd]]);
    expect(c.sAcks.at(-1)).toBe(u32(c.sisn + 1 + sStart));
    // The backend retransmits the reply, and the two after it coalesced into one segment.
    c.serverResend(sStart, sStart + setup.length);
    c.serverResend(sStart + setup.length, u32(c.sSnd - c.sisn - 1));
    c.clientAck();
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    expect(c.sSacks.at(-1)).toEqual([]);
    // A spurious retransmission of everything from the first reply on, and of the client's last request.
    c.serverResend(sStart, u32(c.sSnd - c.sisn - 1));
    c.clientResend(c.cSentStream.length - req.getParameter(3, VIP, session).length, c.cSentStream.length);
    c.clientSend(req.teardown(4, VIP, session));
    c.serverSend(rep.ok(4, session));
    c.clientAck();
    c.close();
    const expected = (a: string) => rep.setup(1, a, session, 5000, 7000) + rep.ok(2, session) + rep.play(3, a, session) + rep.ok(4, session);
    expect(dec(new Uint8Array(c.sSent))).toBe(expected(c.backend));
    expect(c.clientText()).toBe(expected(VIP));
    expect(c.sGot).toEqual(c.cSentStream);
    expectChecksums(c);
    const n = counters(eng);
    expect(n['rtsp-nat-rewrites']).toBe(3);
    expect(n['rtsp-nat-reapplied']).toBe(1 + 2 + 3); // the reply; the coalesced pair's PLAY; all three again
    expect(n['rtsp-nat-missed']).toBe(0);
    // tshark: both sides of the balancer show the same TCP events, frame by frame (the loss, the
    // duplicate ACKs and retransmissions), and no bad checksum.
    const p = c.write(scratch('loss'));
    for (const path of [p.clientWire, p.backendWire, p.clientOut, p.backendOut]) expect(badChecksumFrames(path), path).toEqual([]);
    const clientSide = tcpAnalysisFrames(p.clientWire);
    const backendSide = tcpAnalysisFrames(p.backendWire);
    expect(clientSide.map((f) => [f.frame, f.flags])).toEqual(backendSide.map((f) => [f.frame, f.flags]));
    const kinds = new Set(clientSide.flatMap((f) => f.flags.split(',')));
    for (const k of kinds) expect(k).toMatch(/retransmission|Duplicate ACK|Previous segment|out-of-order|ACKed segment|Spurious/i);
    expect(clientSide.some((f) => /retransmission/i.test(f.flags))).toBe(true);
  });

  it('segments reaching the balancer out of order: an edit behind bytes already forwarded is left, the stream stays consistent', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    const c = new Conn(eng, VIP);
    c.open();
    const session = 'OOO1';
    c.clientSend(req.setup(1, VIP, 0, 5000));
    const a = rep.setup(1, c.backend, session, 5000, 7000);
    // The reply's second half (no address) reaches the balancer first.
    c.serverSend(a, { cuts: [a.indexOf('client_port')], order: [1, 0] });
    c.clientAck();
    c.clientSend(req.play(2, VIP, session));
    c.serverSend(rep.play(2, c.backend, session)); // later replies are rewritten again
    c.clientAck();
    c.close();
    expect(c.clientText()).toBe(a + rep.play(2, VIP, session));
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    expectChecksums(c);
    expect(counters(eng)['rtsp-nat-missed']).toBe(1);
    expect(counters(eng)['rtsp-nat-rewrites']).toBe(2);
  });

  it('a reply cut inside the address: that address stays (counted), the rest of the stream is rewritten', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    const c = new Conn(eng, VIP);
    c.open();
    const session = 'CUT1';
    c.clientSend(req.setup(1, VIP, 0, 5000));
    const a = rep.setup(1, c.backend, session, 5000, 7000);
    c.serverSend(a, { cuts: [a.indexOf('source=') + 10] });
    c.clientAck();
    c.clientSend(req.play(2, VIP, session));
    c.serverSend(rep.play(2, c.backend, session), { cuts: [20, 60] });
    c.clientAck();
    c.close();
    expect(c.clientText()).toBe(a + rep.play(2, VIP, session));
    expectChecksums(c);
    expect(counters(eng)['rtsp-nat-missed']).toBe(1);
    expectTsharkClean(c, 'cut');
  });

  it('sequence numbers wrap around 2^32 in both directions across several rewrites', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    // The server's stream passes 2^32 after the DESCRIBE reply (~500 bytes in); the client's early too.
    const c = new Conn(eng, VIP, { cisn: 0xffffff80, sisn: 0xfffffe00 });
    c.open();
    const text = conversation(c, 10);
    c.close();
    expect(u32(c.sSnd - c.sisn)).toBeGreaterThan(0x200); // crossed
    expect(c.clientText()).toBe(text(VIP));
    expect(c.sGot).toEqual(c.cSentStream);
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    expectChecksums(c);
    expect(counters(eng)['rtsp-nat-missed']).toBe(0);
    expectTsharkClean(c, 'wrap');
  });
});

describe('RTSP NAT traversal: shrinking, IPv6, replies from the VIP, the growth budget', () => {
  it('a backend address longer than the VIP\'s: the stream shrinks', () => {
    const VIP = '10.0.0.1';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['172.16.100.201', '172.16.100.202', '172.16.100.203'] }));
    const c = new Conn(eng, VIP);
    c.open();
    const text = conversation(c, 10);
    c.close();
    expect(c.clientText()).toBe(text(VIP));
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    expectChecksums(c);
    const n = counters(eng);
    expect(n['rtsp-nat-bytes-added']).toBe(0);
    expect(n['rtsp-nat-bytes-removed']).toBe(text(c.backend).length - text(VIP).length + 0);
    expect(n['rtsp-nat-missed']).toBe(0);
    const p = expectTsharkClean(c, 'shrink');
    const t = fields(p.clientWire, ['rtsp.transport'], { filter: 'rtsp.response && rtsp.transport' }).map((r) => r[0]);
    expect(t[0]).toContain(`source=${VIP};`);
  });

  it('IPv6: source=, src_addr="[v6]:port", URLs in brackets and SDP IN IP6 name the VIP', () => {
    const VIP = '2001:db8::100';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['fd00:1::1', 'fd00:1::2', 'fd00:1::3'] }));
    const c = new Conn(eng, VIP);
    c.open();
    const text = conversation(c, 5);
    c.close();
    expect(c.clientText()).toBe(text(VIP));
    expect(c.clientText()).toContain(`src_addr="[${VIP}]:7004"`);
    expect(c.clientText()).toContain(`rtsp://[${VIP}]:554/stream/`);
    expectChecksums(c);
    expect(counters(eng)['rtsp-nat-missed']).toBe(0);
    expectTsharkClean(c, 'ipv6');
  });

  it('replies from the VIP (a capture taken at the entry point) are rewritten the same way', () => {
    const VIP = '10.0.0.100';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['10.0.1.1', '10.0.1.2', '10.0.1.3'] }));
    const c = new Conn(eng, VIP, { fromVip: true });
    c.open();
    const text = conversation(c, 5);
    c.close();
    expect(c.clientText()).toBe(text(VIP));
    expectChecksums(c);
    expectTsharkClean(c, 'from-vip');
  });

  it('the growth budget: a message that would grow a frame by more than 240 bytes keeps its text; neighbours in the arena are intact', () => {
    const VIP = '2001:db8:1234:5678:9abc:def0:1234:5678'; // 38 characters
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['fd00::1', 'fd00::2', 'fd00::3'] }));
    const c = new Conn(eng, VIP);
    c.open();
    const urls = (a: string, n: number) => Array.from({ length: n }, (_, i) => `url=rtsp://[${a}]/t${i}`).join(',');
    const play = (cseq: number, a: string, n: number) => `RTSP/1.0 200 OK\r\nCSeq: ${cseq}\r\nSession: B\r\nRTP-Info: ${urls(a, n)}\r\n\r\n`;
    c.clientSend(req.play(1, VIP, 'B'));
    c.serverSend(play(1, c.backend, 7)); // 7 x 31 = 217 bytes: rewritten
    c.clientSend(req.play(2, VIP, 'B'));
    c.serverSend(play(2, c.backend, 8)); // 8 x 31 = 248 bytes: kept
    c.clientAck();
    expect(c.clientText()).toBe(play(1, VIP, 7) + play(2, c.backend, 8));
    expect(counters(eng)['rtsp-nat-missed']).toBe(8);
    // In one batch, between two other frames: the one that grows by 217 bytes leaves them intact.
    const s = c.sSnd;
    const text = play(3, c.backend, 7);
    const mk = (seq: number, payload: Uint8Array) => ({ bytes: frame({ src: c.backend, dst: c.client, proto: 'tcp', sport: 554, dport: c.cport, tcpFlags: 'PA', seq, ack: c.sRcv, payload }) });
    const filler = enc('RTSP/1.0 200 OK\r\nCSeq: 9\r\nSession: B\r\n\r\n');
    const outs = run(eng, [mk(s, filler), mk(u32(s + filler.length), enc(text)), mk(u32(s + filler.length + text.length), filler)]);
    expect(dec(payloadOf(outs[0].bytes))).toBe(dec(filler));
    expect(dec(payloadOf(outs[1].bytes))).toBe(play(3, VIP, 7));
    expect(dec(payloadOf(outs[2].bytes))).toBe(dec(filler));
    for (const o of outs) expect(verifyFrame(o.bytes).problems).toEqual([]);
    const seqs = outs.map((o) => parseFrame(o.bytes).ip!.tcp!.seq);
    expect(u32(seqs[2] - seqs[1])).toBe(play(3, VIP, 7).length);
  });

  it('raw-IP input (no Ethernet header): the frame grows by the rewrite and the Ethernet header it gets', () => {
    const VIP = '10.0.0.100';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['10.0.1.1', '10.0.1.2', '10.0.1.3'] }));
    const client = '198.18.3.3';
    const syn = run(eng, [{ bytes: frame({ src: client, dst: VIP, proto: 'tcp', sport: 40000, dport: 554, tcpFlags: 'S', seq: 1 }) }])[0];
    const b = eng.backends[syn.egress].address;
    const text = rep.setup(1, b, 'RAW', 5000, 7000);
    const eth = frame({ src: b, dst: client, proto: 'tcp', sport: 554, dport: 40000, tcpFlags: 'PA', seq: 101, ack: 2, payload: enc(text) });
    const out = run(eng, [{ bytes: eth.subarray(14), link: 101 }])[0];
    expect(out.verdict).toBe('client');
    expect(out.bytes.length).toBe(eth.length + 2);
    expect(dec(payloadOf(out.bytes))).toBe(rep.setup(1, VIP, 'RAW', 5000, 7000));
    expect(verifyFrame(out.bytes).problems).toEqual([]);
  });

  it('a segment the capture cut short is not rewritten, and its sequence number still translated', () => {
    const VIP = '10.0.0.100';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['10.0.1.1', '10.0.1.2', '10.0.1.3'] }));
    const c = new Conn(eng, VIP);
    c.open();
    c.clientSend(req.setup(1, VIP, 0, 5000));
    c.serverSend(rep.setup(1, c.backend, 'T', 5000, 7000)); // +2
    c.clientAck();
    const text = rep.play(2, c.backend, 'T');
    const f = frame({ src: c.backend, dst: c.client, proto: 'tcp', sport: 554, dport: c.cport, tcpFlags: 'PA', seq: c.sSnd, ack: c.sRcv, payload: enc(text) });
    const out = run(eng, [{ bytes: f.subarray(0, f.length - 10), wirelen: f.length }])[0];
    expect(out.verdict).toBe('client');
    expect(out.bytes.length).toBe(f.length - 10);
    expect(parseFrame(out.bytes).ip!.tcp!.seq).toBe(u32(c.sSnd + 2));
    expect(dec(payloadOf(out.bytes))).toBe(text.slice(0, text.length - 10));
    expect(counters(eng)['rtsp-nat-rewrites']).toBe(1);
  });
});

describe('only NAT + session rewrites payloads', () => {
  const VIP = '10.0.0.100';
  const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
  for (const [method, policy, fromVip] of [['nat', 'flow', false], ['nat', 'client', false], ['dr', 'session', true], ['ipip', 'session', true], ['gre', 'flow', true]] as const) {
    it(`${method} + ${policy}: payloads and sequence numbers pass unchanged`, () => {
      const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS, method, policy }));
      const c = new Conn(eng, VIP, { fromVip });
      c.open();
      const text = conversation(c, 3);
      c.close();
      expect(c.clientText()).toBe(text(c.backend));
      expect(c.sGot).toEqual(c.cSentStream);
      expect(c.sAcks.at(-1)).toBe(c.sSnd);
      expect(Object.values(counters(eng)).every((v) => v === 0)).toBe(true);
      // The client side gets the server's frames byte for byte from IP on (apart from the NAT source).
      for (let i = 0; i < c.clientWire.length; i++) {
        const o = c.outputs[i];
        if (o.verdict !== 'client') continue;
        expect(payloadOf(o.bytes).length).toBe(payloadOf(c.backendWire[i].bytes).length);
        expect(parseFrame(o.bytes).ip!.tcp!.seq).toBe(parseFrame(c.backendWire[i].bytes).ip!.tcp!.seq);
      }
    });
  }
});

describe('media of a rewritten session', () => {
  it('RTP from the backend leaves with the VIP as source; the client\'s RTCP on an unlisted port reaches the backend', () => {
    const VIP = '10.0.0.100';
    const eng = makeEngine(natConfig({ vip: VIP, backends: ['10.0.1.1', '10.0.1.2', '10.0.1.3'] }));
    const c = new Conn(eng, VIP);
    c.open();
    c.clientSend(req.setup(1, VIP, 0, 5000));
    c.serverSend(rep.setup(1, c.backend, 'M', 5000, 7000));
    c.clientAck();
    expect(c.clientText()).toContain(`source=${VIP};`);
    const out = run(eng, [
      { bytes: frame({ src: c.backend, dst: c.client, proto: 'udp', sport: 7000, dport: 5000, payload: new Uint8Array(160) }) },
      { bytes: frame({ src: c.client, dst: VIP, proto: 'udp', sport: 5001, dport: 7001, payload: new Uint8Array(40) }) },
    ]);
    expect(out.map((o) => o.verdict)).toEqual(['client', 'backend']);
    expect(parseFrame(out[0].bytes).ip!.src).toBe(VIP);
    expect(parseFrame(out[1].bytes).ip!.dst).toBe(c.backend);
    expect(out.every((o) => o.backend === c.backendId)).toBe(true);
    for (const o of out) expect(verifyFrame(o.bytes).problems).toEqual([]);
  });
});

describe('RTSP NAT traversal: state and hosts', () => {
  const VIP = '10.0.0.100';
  const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];

  it('the offsets survive thousands of other control connections coming and going (slots full meanwhile)', () => {
    const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }));
    const c = new Conn(eng, VIP, { cport: 39999 });
    c.open();
    c.clientSend(req.setup(1, VIP, 0, 5000));
    c.serverSend(rep.setup(1, c.backend, 'KEEP', 5000, 7000));
    c.clientAck();
    // 3000 other connections, each a SYN and a request: more than the reassembly has slots (512).
    const others = Array.from({ length: 3000 }, (_, i) => {
      const client = `198.19.${i >> 8}.${i & 255}`;
      const payload = enc(req.options(1, VIP));
      return [
        { bytes: frame({ src: client, dst: VIP, proto: 'tcp', sport: 30000 + (i % 1000), dport: 554, tcpFlags: 'S', seq: 7 }) },
        { bytes: frame({ src: client, dst: VIP, proto: 'tcp', sport: 30000 + (i % 1000), dport: 554, tcpFlags: 'PA', seq: 8, ack: 1, payload }) },
      ];
    }).flat();
    run(eng, others);
    expect(eng.counters()['rtsp-reasm-slots-full']).toBeGreaterThan(0);
    c.clientSend(req.play(2, VIP, 'KEEP'));
    c.serverSend(rep.play(2, c.backend, 'KEEP'));
    c.clientAck();
    c.close();
    expect(c.clientText()).toBe(rep.setup(1, VIP, 'KEEP', 5000, 7000) + rep.play(2, VIP, 'KEEP'));
    expect(c.sAcks.at(-1)).toBe(c.sSnd);
    expectChecksums(c);
  });

  it('both builds (SIMD and not) produce the same frames', () => {
    const outs = [true, false].map((simd) => {
      const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }), { simd });
      const c = new Conn(eng, VIP, { sisn: 0xfffffff0 });
      c.open();
      conversation(c, 3);
      c.close();
      return c.outputs.map((o) => Buffer.from(o.bytes).toString('hex'));
    });
    expect(outs[0]).toEqual(outs[1]);
  });

  it('replayed from a capture by the host (frames get the arena\'s headroom): the same client frames', async () => {
    const cfg = natConfig({ vip: VIP, backends: BACKENDS });
    const eng = makeEngine(cfg);
    const c = new Conn(eng, VIP);
    c.open();
    conversation(c, 5);
    c.close();
    const dir = scratch('replay');
    const p = c.write(dir);
    const { report } = await replayFile(p.inputs, parseConfig(cfg), { outDir: join(dir, 'out') });
    expect(report.counters['rtsp-nat-rewrites']).toBe(eng.counters()['rtsp-nat-rewrites']);
    const replayed = readPcap(join(dir, 'out', 'client.pcap')).frames.map((r) => Buffer.from(r.data).toString('hex'));
    expect(replayed).toEqual(c.clientOut.map((w) => Buffer.from(w.bytes).toString('hex')));
    expect(badChecksumFrames(join(dir, 'out', 'client.pcap'))).toEqual([]);
    const t = fields(join(dir, 'out', 'client.pcap'), ['rtsp.transport'], { filter: 'rtsp.response && rtsp.transport' }).map((r) => r[0]);
    expect(t[0]).toContain(`source=${VIP};`);
  });
});

describe('RTSP NAT traversal: hostile control streams', () => {
  it('random segments full of backend addresses, cuts, retransmissions, SACK, RST, truncation and raw IP: no trap, frames stay in their space, checksums hold', () => {
    const VIP = '10.0.0.100';
    const BACKENDS = ['10.0.1.1', '10.0.1.2', '10.0.1.3'];
    for (const simd of [true, false]) {
      const eng = makeEngine(natConfig({ vip: VIP, backends: BACKENDS }), { simd });
      let x = 12345;
      const rnd = (n: number) => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return (x >>> 8) % n;
      };
      const pick = <T>(a: T[]) => a[rnd(a.length)];
      const words = (b: string) => [
        'RTSP/1.0 200 OK\r\n', 'CSeq: 7\r\n', 'Session: F;timeout=60\r\n', '\r\n', '\r\n',
        `Transport: RTP/AVP;unicast;source=${b};client_port=5000-5001;server_port=7000-7001\r\n`,
        `Transport: RTP/AVP;unicast;src_addr="${b}:7000"/"${b}:7001";dest_addr=":5000"\r\n`,
        `Content-Base: rtsp://${b}:554/x/\r\n`, `RTP-Info: url=rtsp://${b}/a;seq=1,url=rtsp://${b}/b\r\n`,
        'Content-Length: 40\r\n', 'Content-Length: 4000\r\n', `v=0\r\nc=IN IP4 ${b}\r\no=- 1 1 IN IP4 ${b}\r\n`,
        `a=control:rtsp://${b}/t\r\n`, '$\x00\x00\x10', 'junk;;,,"\\', b, `source=${b}`, 'RTSP/1.0 ', 'Transport: ',
      ];
      const conns = Array.from({ length: 12 }, (_, i) => ({ client: `198.18.5.${i + 1}`, cport: 41000 + i, cseq: 1000 * i, sseq: u32(0xfffff000 + 7777 * i), backend: '', sent: 0 }));
      const { mem, dv, descPtr, arenaPtr, arenaEnd, headroom } = eng;
      let frames = 0;
      for (let round = 0; round < 60; round++) {
        const batch: { bytes: Uint8Array; link: number; wirelen: number; input: Uint8Array }[] = [];
        for (let k = 0; k < 40; k++) {
          const c = pick(conns);
          let f: Uint8Array;
          if (!c.backend || rnd(20) === 0) {
            f = frame({ src: c.client, dst: VIP, proto: 'tcp', sport: c.cport, dport: 554, tcpFlags: 'S', seq: c.cseq });
          } else if (rnd(3) === 0) {
            const sack: [number, number][] = Array.from({ length: rnd(4) }, () => [u32(c.sseq + rnd(3000)), u32(c.sseq + rnd(3000))]);
            f = frame({ src: c.client, dst: VIP, proto: 'tcp', sport: c.cport, dport: 554, tcpFlags: pick(['A', 'PA', 'R', 'FA']), seq: u32(c.cseq + 1),
              ack: u32(c.sseq + rnd(4000)), tcpOptions: sack.length ? sackOption(sack) : undefined, payload: rnd(2) ? enc('GET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 1\r\n\r\n') : undefined });
          } else {
            let text = '';
            const n = 1 + rnd(12);
            if (rnd(3)) {
              // A well-formed reply with a few address-bearing headers.
              text = 'RTSP/1.0 200 OK\r\nCSeq: 7\r\n';
              for (let i = 0; i < n; i++) text += pick(words(pick([c.backend, c.backend, '10.0.1.9', VIP])).slice(5, 9));
              text += '\r\n';
            } else for (let i = 0; i < n; i++) text += pick(words(pick([c.backend, c.backend, '10.0.1.9', VIP])));
            const back = rnd(4) === 0 ? rnd(Math.max(1, c.sent)) : 0; // a retransmission or overlap now and then
            const seq = u32(c.sseq + 1 + c.sent - back);
            f = frame({ src: rnd(8) ? c.backend : VIP, dst: c.client, proto: 'tcp', sport: 554, dport: c.cport, tcpFlags: pick(['PA', 'PA', 'A', 'FPA', 'RA']), seq, ack: u32(c.cseq + 1), payload: enc(text) });
            c.sent += text.length - back > 0 ? text.length - back : 0;
          }
          const raw = rnd(10) === 0;
          const input = raw ? f.subarray(14) : f;
          const cut = rnd(10) === 0 ? rnd(input.length) : input.length;
          batch.push({ bytes: input.subarray(0, Math.max(cut, 1)), link: raw ? 101 : 1, wirelen: input.length, input });
        }
        // Place the batch like the host does, with a canary pattern everywhere else.
        mem.fill(0xa5, arenaPtr, arenaPtr + 64 * 4096);
        let cursor = arenaPtr;
        const placed: { data: number; len: number; intact: boolean }[] = [];
        batch.forEach((b, i) => {
          const data = (cursor + headroom + 7) & ~7;
          mem.set(b.bytes, data);
          const d = descPtr + i * 32;
          dv.setUint32(d, data, true);
          dv.setUint32(d + 4, b.bytes.length, true);
          dv.setUint32(d + 8, b.wirelen, true);
          dv.setUint16(d + 12, 0, true);
          dv.setUint16(d + 14, b.link, true);
          dv.setUint32(d + 16, 1_700_000_000 + round, true);
          dv.setUint32(d + 20, 0, true);
          placed.push({ data, len: b.bytes.length, intact: b.bytes.length === b.wirelen });
          cursor = data + b.bytes.length;
        });
        expect(cursor).toBeLessThan(arenaEnd);
        expect(() => eng.process(batch.length)).not.toThrow();
        frames += batch.length;
        batch.forEach((b, i) => {
          const d = descPtr + i * 32;
          const verdict = mem[d + 24];
          const data = dv.getUint32(d, true), caplen = dv.getUint32(d + 4, true);
          const p = placed[i];
          if (verdict !== 1 && verdict !== 2) return;
          // The frame's end never moves, and it grows in front by at most headroom_needed().
          expect(data + caplen).toBe(p.data + p.len);
          expect(data).toBeGreaterThanOrEqual(p.data - eng.ex.headroom_needed());
          const out = mem.slice(data, data + caplen);
          if (p.intact && b.link === 1) expect(verifyFrame(out).problems).toEqual([]);
          // Learn the backend from the SYN's verdict.
          const ip = parseFrame(b.link === 1 ? b.input : new Uint8Array([...new Uint8Array(14).fill(0), ...b.input])).ip;
          if (verdict === 1 && ip?.tcp && (ip.tcp.flags & 2)) {
            const c = conns.find((q) => q.client === ip.src)!;
            c.backend = eng.backends[dv.getUint16(d + 26, true)].address;
          }
        });
        // Nothing was written after a frame's end: the canary between frames is intact there.
        for (let i = 0; i + 1 < placed.length; i++) {
          const end = placed[i].data + placed[i].len;
          const nextStart = Math.min(dv.getUint32(descPtr + (i + 1) * 32, true), placed[i + 1].data);
          for (let q = end; q < nextStart; q++) if (mem[q] !== 0xa5) throw new Error(`byte ${q - end} after frame ${i} changed`);
        }
      }
      expect(frames).toBe(60 * 40);
      const n = counters(eng);
      expect(n['rtsp-nat-rewrites']).toBeGreaterThan(100);
      expect(n['rtsp-nat-reapplied'] + n['rtsp-nat-missed']).toBeGreaterThan(0);
      expect(n['seqadj-adjusted']).toBeGreaterThan(20);
    }
  });
});
