// The RTSP workload generator (host/gen/rtsp.ts, `sessionlb generate rtsp`): determinism, counts
// (file, summary and ground truth agree packet for packet), checksums (test/ref/csum.ts), the
// RTSP dialogue, RTP/RTCP headers, NAT sharing and overlap, and tshark 4.0 as an independent
// oracle: nothing malformed, no TCP analysis flag, every request and reply dissected, the
// server's RTP linked to its session's SETUP (rtp.setup-frame, as for the real captures in
// ../shared/fixtures/rtsp), and the ground truth agreeing with what tshark extracts.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGenerate } from '../host/cli/generate.js';
import { generateRtsp, type RtspGenOptions, type RtspGenSummary } from '../host/gen/rtsp.js';
import { TSHARK, fields } from './helpers/tshark.js';
import { verifyFrame } from './ref/csum.js';
import { parseFrame, parseIp, type ParsedIp } from './ref/packet.js';
import { captureOutput } from './helpers/capture-output.js';

const dir = mkdtempSync(join(tmpdir(), 'sessionlb-rtsp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Reading what was written

interface Rec {
  tsUs: number;
  data: Uint8Array;
  ip: ParsedIp;
}

function readPcap(file: string): { magic: number; major: number; minor: number; linktype: number; records: Rec[] } {
  const b = readFileSync(file);
  const records: Rec[] = [];
  for (let o = 24; o < b.length; ) {
    const caplen = b.readUInt32LE(o + 8);
    expect(b.readUInt32LE(o + 12)).toBe(caplen);
    const data = new Uint8Array(b.buffer, b.byteOffset + o + 16, caplen);
    records.push({ tsUs: b.readUInt32LE(o) * 1e6 + b.readUInt32LE(o + 4), data, ip: parseFrame(data).ip! });
    o += 16 + caplen;
  }
  return { magic: b.readUInt32LE(0), major: b.readUInt16LE(4), minor: b.readUInt16LE(6), linktype: b.readUInt32LE(20), records };
}

interface FiveTuple {
  proto: 'tcp' | 'udp';
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

interface TruthTrack {
  track: number;
  media: 'video' | 'audio' | 'metadata';
  payload_type: number;
  clock_rate: number;
  ssrc: string;
  first_seq: number;
  first_rtptime: number;
  rtp_packets: number;
  client_port?: [number, number];
  server_port?: [number, number];
  interleaved?: [number, number];
}

interface TruthSession {
  index: number;
  session: string;
  client_ip: string;
  server_ip: string;
  nat: boolean;
  interleaved: boolean;
  user_agent: string;
  url: string;
  start_s: number;
  end_s: number;
  play_s: number;
  teardown_s: number;
  requests_by_method: Record<string, number>;
  tracks: TruthTrack[];
  setups: { url: string; transport_request: string; transport_reply: string }[];
  control_tcp: { five_tuple: FiveTuple; packets: number }[];
  media_udp: { five_tuple: FiveTuple; kind: 'rtp' | 'rtcp'; direction: 'server_to_client' | 'client_to_server'; track: number; packets: number }[];
  packets: { control_tcp: number; media_udp: number; total: number };
}

interface Truth {
  generator: string;
  pcap: string;
  server_ip: string;
  rtsp_port: number;
  nat_addresses: string[];
  sessions: TruthSession[];
  summary: Record<string, number>;
}

const key = (t: FiveTuple) => `${t.proto} ${t.src} ${t.sport} ${t.dst} ${t.dport}`;
const frameKey = (ip: ParsedIp) => `${ip.proto === 6 ? 'tcp' : 'udp'} ${ip.src} ${ip.sport} ${ip.dst} ${ip.dport}`;
const payloadOf = (r: Rec) => r.data.subarray(r.ip.payloadOffset!, r.ip.payloadOffset! + r.ip.payloadLength!);
const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

interface Generated {
  opts: RtspGenOptions;
  summary: RtspGenSummary;
  truth: Truth;
  pcap: ReturnType<typeof readPcap>;
}

let n = 0;
function gen(o: Partial<RtspGenOptions>): Generated {
  const opts: RtspGenOptions = { out: join(dir, `r${n}.pcap`), truth: join(dir, `r${n}.json`), sessions: 40, seed: 1, vip: '10.0.0.100', ...o };
  n++;
  const summary = generateRtsp(opts);
  return { opts, summary, truth: JSON.parse(readFileSync(opts.truth!, 'utf8')), pcap: readPcap(opts.out) };
}

// The main sample: IPv4, NAT users, interleaved sessions, 1..3 tracks, hex and decimal ids.
const A_OPTS: Partial<RtspGenOptions> = {
  sessions: 40,
  seed: 7,
  arrivalRate: 20,
  duration: [1, 3],
  natShare: 0.3,
  natAddresses: 3,
  interleavedShare: 0.2,
  sessionIds: 'mixed',
};
let A: Generated;
let B: Generated; // IPv6 VIP, other port, keep-alives
beforeAll(() => {
  A = gen(A_OPTS);
  B = gen({ sessions: 8, seed: 3, vip: '2001:db8::100', port: 8554, arrivalRate: 2, duration: [46, 50], rtpRate: 4, natShare: 0.5, natAddresses: 1, interleavedShare: 0.25 });
});

/** Splits a compound RTCP packet into its packet types; throws if the lengths do not add up. */
function rtcpTypes(p: Uint8Array): number[] {
  const types: number[] = [];
  let o = 0;
  while (o < p.length) {
    if (p[o] >> 6 !== 2) throw new Error(`RTCP version ${p[o] >> 6}`);
    types.push(p[o + 1]);
    o += 4 * (be16(p, o + 2) + 1);
  }
  if (o !== p.length) throw new Error(`RTCP lengths add up to ${o}, not ${p.length}`);
  return types;
}

/** The media packets of a session: UDP datagrams, or `$` frames of its RTSP connection. */
interface MediaPacket {
  fromClient: boolean;
  rtcp: boolean;
  track: number;
  bytes: Uint8Array;
}

function mediaOf(g: Generated): Map<string, MediaPacket[]> {
  const bySession = new Map<string, MediaPacket[]>();
  const flows = new Map<string, { sid: string; track: number; kind: string; fromClient: boolean }>();
  const ctl = new Map<string, TruthSession>();
  for (const s of g.truth.sessions) {
    bySession.set(s.session, []);
    for (const m of s.media_udp) flows.set(key(m.five_tuple), { sid: s.session, track: m.track, kind: m.kind, fromClient: m.direction === 'client_to_server' });
    const c = s.control_tcp[0].five_tuple;
    ctl.set(key(c), s);
    ctl.set(key({ ...c, src: c.dst, sport: c.dport, dst: c.src, dport: c.sport }), s);
  }
  for (const r of g.pcap.records) {
    const k = frameKey(r.ip);
    const f = flows.get(k);
    if (f) {
      bySession.get(f.sid)!.push({ fromClient: f.fromClient, rtcp: f.kind === 'rtcp', track: f.track, bytes: payloadOf(r) });
      continue;
    }
    const s = ctl.get(k);
    const p = payloadOf(r);
    if (s && s.interleaved && p.length > 0 && p[0] === 0x24) {
      const ch = p[1];
      expect(be16(p, 2)).toBe(p.length - 4);
      bySession.get(s.session)!.push({ fromClient: r.ip.dst === g.truth.server_ip, rtcp: (ch & 1) === 1, track: ch >> 1, bytes: p.subarray(4) });
    }
  }
  return bySession;
}

// ---------------------------------------------------------------------------------------------

describe('generateRtsp', () => {
  it('same options and seed, same bytes; another seed, other bytes', () => {
    const again = gen(A_OPTS);
    expect(readFileSync(again.opts.out).equals(readFileSync(A.opts.out))).toBe(true);
    const strip = (t: Truth) => ({ ...t, pcap: '' });
    expect(strip(again.truth)).toEqual(strip(A.truth));
    const other = gen({ ...A_OPTS, seed: 8 });
    expect(readFileSync(other.opts.out).equals(readFileSync(A.opts.out))).toBe(false);
    // without a truth file the capture is the same
    const bare = join(dir, 'bare.pcap');
    generateRtsp({ ...A.opts, out: bare, truth: undefined });
    expect(readFileSync(bare).equals(readFileSync(A.opts.out))).toBe(true);
  });

  it('counts: the file, the summary and the ground truth agree packet for packet', () => {
    for (const g of [A, B]) {
      const { summary: sum, truth, pcap } = g;
      const N = g.opts.sessions;
      expect(pcap.records.length).toBe(sum.packets);
      expect(truth.sessions.map((s) => s.index)).toEqual([...Array(N).keys()]);
      expect(sum.natSessions).toBe(Math.round(N * g.opts.natShare!));
      expect(truth.sessions.filter((s) => s.nat).length).toBe(sum.natSessions);
      expect(sum.interleavedSessions).toBe(Math.round(N * g.opts.interleavedShare!));
      expect(truth.sessions.filter((s) => s.interleaved).length).toBe(sum.interleavedSessions);
      expect(truth.sessions.reduce((a, s) => a + s.tracks.length, 0)).toBe(sum.tracks);
      expect(new Set(truth.sessions.map((s) => s.session)).size).toBe(N);
      expect(truth.summary.packets).toBe(sum.packets);
      // every packet belongs to exactly one 5-tuple of the truth, with the counts it says
      const count = new Map<string, number>();
      for (const r of pcap.records) count.set(frameKey(r.ip), (count.get(frameKey(r.ip)) ?? 0) + 1);
      const listed = new Map<string, number>();
      let total = 0;
      for (const s of truth.sessions) {
        const c = s.control_tcp[0];
        const ct = c.five_tuple;
        listed.set(key(ct), (count.get(key(ct)) ?? 0) + (count.get(key({ ...ct, src: ct.dst, sport: ct.dport, dst: ct.src, dport: ct.sport })) ?? 0));
        expect(listed.get(key(ct)), `control of ${s.session}`).toBe(c.packets);
        for (const m of s.media_udp) {
          expect(count.get(key(m.five_tuple)) ?? 0, key(m.five_tuple)).toBe(m.packets);
          expect(listed.has(key(m.five_tuple))).toBe(false);
          listed.set(key(m.five_tuple), m.packets);
        }
        expect(s.packets.total).toBe(s.packets.control_tcp + s.packets.media_udp);
        total += s.packets.total;
      }
      expect(total).toBe(sum.packets);
      // RTP: every server packet, plus one NAT punch per UDP track
      const rtp = truth.sessions.reduce((a, s) => a + s.tracks.reduce((b, t) => b + t.rtp_packets + (s.interleaved ? 0 : 1), 0), 0);
      expect(rtp).toBe(sum.rtpPackets);
    }
  });

  it('every frame: Ethernet, correct IPv4/TCP/UDP checksums, timestamps in order', () => {
    for (const g of [A, B]) {
      const { magic, major, minor, linktype, records } = g.pcap;
      expect([magic, major, minor, linktype]).toEqual([0xa1b2c3d4, 2, 4, 1]);
      let last = 0;
      for (const r of records) {
        const c = verifyFrame(r.data);
        expect(c.problems).toEqual([]);
        expect(c.l4Ok).toBe(true);
        expect(c.ipOk).toBe(g === A ? true : null);
        expect(r.ip.family).toBe(g === A ? 4 : 6);
        expect(r.tsUs).toBeGreaterThanOrEqual(last);
        last = r.tsUs;
        expect(r.data.length).toBeLessThanOrEqual(1514);
      }
      expect(records[0].tsUs).toBe(1_700_000_000 * 1e6);
      expect(last / 1e6).toBeCloseTo(g.summary.lastTs, 6);
    }
  });

  it('clients: a few NAT addresses carry many users (distinct ports), the others mostly one session each', () => {
    const { truth } = A;
    const byAddr = new Map<string, TruthSession[]>();
    for (const s of truth.sessions) byAddr.set(s.client_ip, [...(byAddr.get(s.client_ip) ?? []), s]);
    expect(truth.nat_addresses).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.3']);
    // with fewer clients than sessions, each client has several sessions, in turn
    const few = gen({ ...A_OPTS, natShare: 0, clients: 5, sessions: 20 }).truth.sessions;
    expect(new Set(few.map((s) => s.client_ip)).size).toBe(5);
    expect(few.slice(5).map((s) => s.client_ip)).toEqual(few.slice(0, 15).map((s) => s.client_ip));
    for (const s of truth.sessions) {
      if (s.nat) expect(truth.nat_addresses).toContain(s.client_ip);
      else {
        const b = parseIp(s.client_ip);
        expect(b[0] === 198 && (b[1] === 18 || b[1] === 19)).toBe(true);
      }
    }
    const natCounts = truth.nat_addresses.map((a) => byAddr.get(a)?.length ?? 0);
    expect(natCounts.reduce((a, b) => a + b)).toBe(12);
    expect(Math.max(...natCounts)).toBeGreaterThanOrEqual(4);
    const direct = [...byAddr.entries()].filter(([a]) => !truth.nat_addresses.includes(a));
    expect(direct.length).toBe(28); // by default one address per non-NAT session
    // no address reuses a TCP source port or an RTP/RTCP port pair
    for (const [, ss] of byAddr) {
      const tcp = ss.map((s) => s.control_tcp[0].five_tuple.sport);
      expect(new Set(tcp).size).toBe(tcp.length);
      const udp = ss.flatMap((s) => s.tracks.filter((t) => t.client_port).map((t) => t.client_port![0]));
      expect(new Set(udp).size).toBe(udp.length);
    }
    for (const s of truth.sessions)
      for (const t of s.tracks) {
        if (s.interleaved) expect(t.interleaved).toEqual([2 * t.track, 2 * t.track + 1]);
        else {
          expect(t.client_port![0] % 2).toBe(0);
          expect(t.client_port![1]).toBe(t.client_port![0] + 1);
          expect(t.server_port![0] % 2).toBe(0);
          expect(t.server_port![1]).toBe(t.server_port![0] + 1);
        }
      }
  });

  it('sessions overlap: the summary peak is the truth peak', () => {
    for (const g of [A, B]) {
      const ev = g.truth.sessions.flatMap((s) => [
        [s.start_s, 1],
        [s.end_s, -1],
      ]);
      ev.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      let live = 0;
      let peak = 0;
      for (const [, d] of ev) peak = Math.max(peak, (live += d));
      expect(peak).toBe(g.summary.peakLive);
    }
    expect(A.summary.peakLive).toBeGreaterThanOrEqual(10);
  });

  it('RTSP dialogue: methods in order, CSeq, transports, session ids, SDP length', () => {
    for (const g of [A, B]) {
      const byConn = new Map<string, { fromClient: boolean; text: string }[]>();
      const owner = new Map<string, TruthSession>();
      for (const s of g.truth.sessions) owner.set(key(s.control_tcp[0].five_tuple), s);
      for (const r of g.pcap.records) {
        if (r.ip.proto !== 6) continue;
        const fromClient = r.ip.dport === g.truth.rtsp_port;
        const k = fromClient ? frameKey(r.ip) : `tcp ${r.ip.dst} ${r.ip.dport} ${r.ip.src} ${r.ip.sport}`;
        const p = payloadOf(r);
        if (p.length === 0 || p[0] === 0x24) continue;
        byConn.set(k, [...(byConn.get(k) ?? []), { fromClient, text: Buffer.from(p).toString('latin1') }]);
      }
      expect(byConn.size).toBe(g.opts.sessions);
      for (const [k, msgs] of byConn) {
        const s = owner.get(k)!;
        expect(msgs.length % 2).toBe(0);
        const methods: string[] = [];
        for (let i = 0; i < msgs.length; i += 2) {
          const [req, rep] = [msgs[i], msgs[i + 1]];
          expect(req.fromClient && !rep.fromClient).toBe(true);
          const [head, ...lines] = req.text.split('\r\n');
          const m = /^([A-Z_]+) (rtsp:\/\/\S+) RTSP\/1\.0$/.exec(head)!;
          expect(m).not.toBeNull();
          methods.push(m[1]);
          const hdr = (text: string, name: string) => new RegExp(`\r\n${name}: ([^\r]*)\r\n`).exec(text)?.[1];
          const cseq = i / 2 + 1;
          expect(hdr(req.text, 'CSeq')).toBe(String(cseq));
          expect(req.text.endsWith('\r\n\r\n')).toBe(true);
          expect(lines).toContain(`User-Agent: ${s.user_agent}`);
          expect(rep.text.startsWith('RTSP/1.0 200 OK\r\n')).toBe(true);
          expect(hdr(rep.text, 'CSeq')).toBe(String(cseq));
          const setupNo = methods.filter((x) => x === 'SETUP').length - 1;
          if (m[1] === 'DESCRIBE') {
            const [h, body] = rep.text.split('\r\n\r\n');
            expect(Number(hdr(h + '\r\n', 'Content-Length'))).toBe(body.length);
            expect(body).toMatch(/^v=0\r\n/);
            expect(body.match(/^m=/gm)!.length).toBe(s.tracks.length);
          }
          if (m[1] === 'SETUP') {
            const setup = s.setups[setupNo];
            expect(m[2]).toBe(setup.url);
            expect(hdr(req.text, 'Transport')).toBe(setup.transport_request);
            expect(hdr(rep.text, 'Transport')).toBe(setup.transport_reply);
            if (!s.interleaved) expect(setup.transport_request).toMatch(/^RTP\/AVP(\/UDP)?;unicast;client_port=\d*[02468]-\d+$/);
            expect(setup.transport_reply).toMatch(s.interleaved ? /;interleaved=\d+-\d+;ssrc=[0-9A-F]{8};/ : /;client_port=\d+-\d+;server_port=\d*[02468]-\d+;ssrc=[0-9A-F]{8};/);
            expect(hdr(req.text, 'Session')).toBe(setupNo === 0 ? undefined : s.session);
          } else if (m[1] !== 'OPTIONS' && m[1] !== 'DESCRIBE') expect(hdr(req.text, 'Session')).toBe(s.session);
          if (methods.includes('SETUP')) expect(hdr(rep.text, 'Session')).toBe(`${s.session};timeout=60`);
          if (m[1] === 'PLAY') {
            const info = s.tracks.map((t) => `url=${s.url}/stream=${t.track};seq=${t.first_seq};rtptime=${t.first_rtptime}`).join(', ');
            expect(hdr(rep.text, 'RTP-Info')).toBe(info);
          }
        }
        const keepalives = methods.filter((x) => x === 'GET_PARAMETER').length;
        expect(methods).toEqual(['OPTIONS', 'DESCRIBE', ...s.tracks.map(() => 'SETUP'), 'PLAY', ...Array(keepalives).fill('GET_PARAMETER'), 'TEARDOWN']);
        if (g === B) expect(keepalives).toBe(1); // 46..50 s sessions: one keep-alive after 30 s
        const count: Record<string, number> = {};
        for (const x of methods) count[x] = (count[x] ?? 0) + 1;
        expect(count).toEqual(s.requests_by_method);
        expect(s.session).toMatch(/^([0-9a-f]{16}|\d{1,10})$/);
      }
    }
    const styles = new Set(A.truth.sessions.map((s) => (/^\d+$/.test(s.session) ? 'decimal' : 'hex')));
    expect(styles).toEqual(new Set(['decimal', 'hex']));
  });

  it('RTP and RTCP: version 2, payload types, SSRCs, consecutive sequence numbers, timestamps, SR/RR/BYE', () => {
    for (const g of [A, B]) {
      const media = mediaOf(g);
      for (const s of g.truth.sessions) {
        const pk = media.get(s.session)!;
        for (const t of s.tracks) {
          const rtp = pk.filter((p) => p.track === t.track && !p.rtcp && !p.fromClient);
          expect(rtp.length).toBe(t.rtp_packets);
          let seq = t.first_seq;
          let ts = t.first_rtptime;
          rtp.forEach((p, i) => {
            const b = p.bytes;
            expect(b[0]).toBe(0x80); // V=2, no padding, extension or CSRC
            expect(b[1] & 0x7f).toBe(t.payload_type);
            expect(be16(b, 2)).toBe(seq);
            const pts = be32(b, 4);
            if (i === 0) expect(pts).toBe(t.first_rtptime);
            expect((pts - ts) >>> 0).toBeLessThan(2 ** 31); // never goes back
            ts = pts;
            expect(be32(b, 8).toString(16).toUpperCase().padStart(8, '0')).toBe(t.ssrc);
            expect(b.length).toBeGreaterThan(12);
            seq = (seq + 1) & 0xffff;
          });
          // rate: rtpRate packets per second per track, for the time between PLAY and TEARDOWN
          const expected = g.opts.rtpRate ?? 50;
          const secs = s.teardown_s - s.play_s;
          expect(rtp.length).toBeGreaterThanOrEqual(Math.floor(expected * secs * 0.9) - 2);
          expect(rtp.length).toBeLessThanOrEqual(Math.ceil(expected * secs * 1.1) + 2);
          // video: the marker bit ends each frame (the packets of a frame share a timestamp)
          if (t.media === 'video')
            for (let i = 0; i + 1 < rtp.length; i++) expect(rtp[i].bytes[1] >> 7).toBe(be32(rtp[i].bytes, 4) === be32(rtp[i + 1].bytes, 4) ? 0 : 1);
          const sr = pk.filter((p) => p.track === t.track && p.rtcp && !p.fromClient).map((p) => rtcpTypes(p.bytes));
          expect(sr.length).toBeGreaterThanOrEqual(1);
          for (const x of sr.slice(0, -1)) expect(x).toEqual([200, 202]);
          expect(sr.at(-1)).toEqual([200, 202, 203]); // the last one says goodbye
          const fromClient = pk.filter((p) => p.track === t.track && p.fromClient);
          if (!s.interleaved) {
            // the NAT punch first: an empty RTP packet and an empty receiver report
            expect(Array.from(fromClient[0].bytes)).toEqual([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            expect(Array.from(fromClient[1].bytes)).toEqual([0x80, 201, 0, 1, 0, 0, 0, 0]);
          }
          for (const p of fromClient.slice(s.interleaved ? 0 : 2)) {
            expect(p.rtcp).toBe(true);
            expect(rtcpTypes(p.bytes)).toEqual([201, 202]);
            expect(p.bytes[0] & 31).toBe(1); // one report block, about the server's SSRC
            expect(be32(p.bytes, 8).toString(16).toUpperCase().padStart(8, '0')).toBe(t.ssrc);
          }
        }
      }
    }
  });

  it('validates its options', () => {
    const base = { out: join(dir, 'bad.pcap'), sessions: 10, seed: 1, vip: '10.0.0.100' };
    const bad: [Partial<RtspGenOptions>, string][] = [
      [{ sessions: 0 }, 'sessions'],
      [{ vip: 'nope' }, 'vip'],
      [{ natShare: 1.5 }, 'natShare'],
      [{ duration: [5, 2] }, 'duration'],
      [{ tracks: [0, 2] }, 'tracks'],
      [{ rtpRate: 0 }, 'rtpRate'],
      [{ truth: base.out }, 'truth'],
    ];
    for (const [o, option] of bad) expect(() => generateRtsp({ ...base, ...o }), option).toThrow(expect.objectContaining({ option }));
    expect(existsSync(base.out)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!existsSync(TSHARK))('tshark 4.0 on the generated captures', () => {
  const RTP_OFF = { decodeAs: ['-o', 'rtp.heuristic_rtp:FALSE'] };

  it('no bad checksum (all really checked), no TCP analysis flag, nothing malformed, no warning', () => {
    for (const g of [A, B]) {
      const bad = fields(g.opts.out, ['frame.number', '_ws.col.Info'], {
        ...RTP_OFF,
        filter:
          'ip.checksum.status=="Bad" || tcp.checksum.status=="Bad" || udp.checksum.status=="Bad" || udp.checksum.status=="Illegal" || tcp.analysis.flags || _ws.malformed || _ws.expert.severity >= "Warning"',
      });
      expect(bad).toEqual([]);
      const statuses = fields(g.opts.out, ['ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status'], RTP_OFF);
      expect(statuses.length).toBe(g.summary.packets);
      expect(new Set(statuses.flat().filter(Boolean))).toEqual(new Set(['1']));
    }
  });

  it('every request and reply dissected: methods, status codes, session ids and transports as in the truth', () => {
    for (const g of [A, B]) {
      const rows = fields(g.opts.out, ['frame.number', 'tcp.stream', 'rtsp.method', 'rtsp.status', 'rtsp.session', 'rtsp.transport'], { ...RTP_OFF, filter: 'rtsp.request || rtsp.response' });
      const want: Record<string, number> = {};
      for (const s of g.truth.sessions) for (const [m, c] of Object.entries(s.requests_by_method)) want[m] = (want[m] ?? 0) + c;
      const got: Record<string, number> = {};
      for (const r of rows) if (r[2]) got[r[2]] = (got[r[2]] ?? 0) + 1;
      expect(got).toEqual(want);
      const replies = rows.filter((r) => r[3] !== '');
      expect(replies.length).toBe(rows.length - replies.length);
      expect(new Set(replies.map((r) => r[3]))).toEqual(new Set(['200']));
      // per connection: session id and SETUP transports, in order
      const byStream = new Map<string, string[][]>();
      for (const r of rows) byStream.set(r[1], [...(byStream.get(r[1]) ?? []), r]);
      expect(byStream.size).toBe(g.opts.sessions);
      const seen = new Set<string>();
      const truthBySid = new Map(g.truth.sessions.map((s) => [s.session, s]));
      for (const [, rs] of byStream) {
        const sids = new Set(rs.map((r) => r[4].split(';')[0]).filter(Boolean));
        expect(sids.size).toBe(1);
        const sid = [...sids][0];
        seen.add(sid);
        const s = truthBySid.get(sid)!;
        expect(s).toBeDefined();
        const transports = rs.filter((r) => r[5] !== '').map((r) => r[5]);
        expect(transports).toEqual(s.setups.flatMap((x) => [x.transport_request, x.transport_reply]));
        expect(rs.filter((r) => r[4].includes(';')).every((r) => r[4] === `${sid};timeout=60`)).toBe(true);
      }
      expect(seen).toEqual(new Set(truthBySid.keys()));
    }
  });

  it("the server's RTP and RTCP linked to the session's SETUP reply (rtp.setup-frame), matching the truth's media 5-tuples", () => {
    for (const g of [A, B]) {
      const v6 = g === B;
      const ip = v6 ? 'ipv6' : 'ip';
      const rows = fields(
        g.opts.out,
        ['frame.number', `${ip}.src`, 'udp.srcport', `${ip}.dst`, 'udp.dstport', 'rtp.setup-frame', 'rtcp.setup-frame', 'rtsp.session', 'rtsp.transport', 'rtsp.channel', 'rtp.ssrc', 'rtp.p_type'],
        { ...RTP_OFF, filter: 'udp || rtsp.response || rtsp.channel' },
      );
      // SETUP reply frame -> session id
      const setupOf = new Map<string, string>();
      for (const r of rows) if (r[8].includes('server_port=')) setupOf.set(r[0], r[7].split(';')[0]);
      const flows = new Map<string, { sid: string; kind: string; direction: string; packets: number }>();
      for (const s of g.truth.sessions) for (const m of s.media_udp) flows.set(key(m.five_tuple), { sid: s.session, kind: m.kind, direction: m.direction, packets: m.packets });
      const linked = new Map<string, number>();
      let interleavedRtp = 0;
      for (const r of rows) {
        if (r[9] !== '') {
          if (r[10] !== '') interleavedRtp++;
          continue;
        }
        if (r[1] === '' || r[2] === '') continue;
        const k = `udp ${r[1]} ${r[2]} ${r[3]} ${r[4]}`;
        const f = flows.get(k);
        expect(f, k).toBeDefined();
        if (f!.direction === 'client_to_server') continue; // tshark links packets sent to the client's ports
        const setup = (f!.kind === 'rtp' ? r[5] : r[6]).split(',')[0]; // RTCP: one per packet of the compound
        expect(setup, `frame ${r[0]} (${f!.kind}) has no setup-frame`).not.toBe('');
        expect(setupOf.get(setup), `frame ${r[0]}`).toBe(f!.sid);
        if (f!.kind === 'rtp') expect(r[10]).not.toBe('');
        linked.set(k, (linked.get(k) ?? 0) + 1);
      }
      // every server-to-client flow of every UDP session, with all its packets
      const s2c = [...flows.entries()].filter(([, f]) => f.direction === 'server_to_client');
      expect(s2c.length).toBeGreaterThan(0);
      for (const [k, f] of s2c) expect(linked.get(k) ?? 0, k).toBe(f.packets);
      const udpSessions = g.truth.sessions.filter((s) => !s.interleaved);
      expect(new Set([...setupOf.values()])).toEqual(new Set(udpSessions.map((s) => s.session)));
      // interleaved RTP: every packet of the truth, dissected as RTP inside the RTSP connection
      const ilRtp = g.truth.sessions.filter((s) => s.interleaved).reduce((a, s) => a + s.tracks.reduce((b, t) => b + t.rtp_packets, 0), 0);
      expect(ilRtp).toBeGreaterThan(0);
      expect(interleavedRtp).toBe(ilRtp);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('sessionlb generate rtsp (CLI)', () => {
  const run = (args: string[]) => captureOutput(() => runGenerate(args));

  it('lists the kind and prints its help', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^ {2}rtsp {6}RTSP streaming sessions/m);
    const r = await run(['rtsp', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--sessions', '--seed', '--vip', '--port', '--nat-share', '--nat-addresses', '--arrival-rate', '--duration', '--rtp-rate', '--tracks', '--interleaved-share', '--truth'])
      expect(r.out).toContain(flag);
  });

  it('names the flag of a bad value (exit 2) and writes nothing', async () => {
    const out = join(dir, 'cli-bad.pcap');
    const cases: [string[], RegExp][] = [
      [[], /--out/],
      [['--out', out, '--sessions', 'many'], /--sessions/],
      [['--out', out, '--sessions', '0'], /--sessions/],
      [['--out', out, '--seed', '-1'], /--seed/],
      [['--out', out, '--vip', '10.0.0.300'], /--vip/],
      [['--out', out, '--port', '70000'], /--port/],
      [['--out', out, '--clients', '0'], /--clients/],
      [['--out', out, '--nat-share', '1.5'], /--nat-share/],
      [['--out', out, '--nat-addresses', '0'], /--nat-addresses/],
      [['--out', out, '--arrival-rate', '0'], /--arrival-rate/],
      [['--out', out, '--duration', '10-5'], /--duration/],
      [['--out', out, '--duration', 'long'], /--duration/],
      [['--out', out, '--rtp-rate', '0'], /--rtp-rate/],
      [['--out', out, '--tracks', '1-4'], /--tracks/],
      [['--out', out, '--interleaved-share', '-0.1'], /--interleaved-share/],
      [['--out', out, '--session-ids', 'uuid'], /--session-ids/],
      [['--out', out, '--truth', out], /--truth/],
      [['--out', out, '--no-such-flag'], /--no-such-flag/],
      [['--out', out, 'stray'], /stray/],
    ];
    for (const [args, re] of cases) {
      const r = await run(['rtsp', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(re);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('writes the capture and the truth, with a one-line summary; exit 1 when it cannot write', async () => {
    const out = join(dir, 'cli-ok.pcap');
    const truth = join(dir, 'cli-ok.json');
    const args = ['rtsp', '--out', out, '--truth', truth, '--sessions', '12', '--seed', '5', '--vip', '10.1.2.3', '--port', '8554', '--duration', '1-2', '--rtp-rate', '20', '--tracks', '2', '--nat-share', '0.5', '--nat-addresses', '2', '--interleaved-share', '0.25', '--arrival-rate', '10', '--session-ids', 'decimal'];
    const r = await run(args);
    expect(r.code).toBe(0);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/wrote \d+ packets, 12 rtsp sessions \(6 behind NAT, 3 interleaved, 24 tracks/);
    const t = JSON.parse(readFileSync(truth, 'utf8')) as Truth;
    expect(t.sessions).toHaveLength(12);
    expect(t.sessions.every((s) => /^\d+$/.test(s.session) && s.tracks.length === 2 && s.control_tcp[0].five_tuple.dport === 8554)).toBe(true);
    expect(readPcap(out).records.length).toBe(t.summary.packets);
    const again = join(dir, 'cli-again.pcap');
    expect((await run(args.map((a) => (a === out ? again : a === truth ? join(dir, 'cli-again.json') : a)))).code).toBe(0);
    expect(readFileSync(again).equals(readFileSync(out))).toBe(true);
    const r2 = await run(['rtsp', '--out', join(dir, 'missing-dir', 'x.pcap'), '--sessions', '2']);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/cannot write .*missing-dir/);
    const r3 = await run(['rtsp', '--out', join(dir, 'x.pcap'), '--truth', join(dir, 'missing-dir', 'x.json'), '--sessions', '2']);
    expect(r3.code).toBe(1);
    expect(r3.err).toMatch(/cannot write .*missing-dir\/x\.json/);
    expect(existsSync(join(dir, 'x.pcap'))).toBe(false);
  });
});
