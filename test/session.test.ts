// Session awareness on real RTSP captures (../shared/fixtures/rtsp: GStreamer, VLC and ffmpeg
// servers and clients). Oracles: tshark's own RTP/RTCP-to-SETUP association (rtp.setup-frame,
// heuristics off) computed here, and the truth files derived from tshark. Session-aware replay
// must put every media flow on the backend of its session's control connection; flow-level
// balancing must visibly fail that on the multi-flow captures; client persistence keeps them whole.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseConfig } from '../host/ctl/config.js';
import { replayFile, type FlowRecord } from '../host/replay.js';
import { ROOT } from './helpers/cli.js';
import { makeEngine, run as runFrames } from './helpers/engine.js';
import { frame, parseFrame } from './ref/packet.js';
import { verifyFrame } from './ref/csum.js';

const DIR = resolve(ROOT, '..', 'shared', 'fixtures', 'rtsp');
const CAPTURES = ['a_single_udp', 'b_concurrent_udp', 'c_interleaved_tcp', 'd_vlc_server', 'e_record_udp'];
const VIP = '10.77.0.1';

function config(policy: string, extra: Record<string, unknown> = {}) {
  return parseConfig({
    flowCapacity: 65536,
    vips: [{
      address: VIP, method: 'nat', scheduler: 'maglev', policy, rtspPorts: [8554], ...extra,
      backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}` })),
    }],
  });
}

interface Tuple { proto: string; src: string; sport: number; dst: string; dport: number }
interface TruthSession { session: string; client_ip: string; control_tcp: { five_tuple: Tuple }[]; media_udp: { five_tuple: Tuple }[] }

/** The flow-table key of a 5-tuple: client first (the end that is not the VIP). */
function keyOf(t: Tuple): string {
  return t.src === VIP ? `${t.proto} ${t.dst}:${t.dport} ${t.src}:${t.sport}` : `${t.proto} ${t.src}:${t.sport} ${t.dst}:${t.dport}`;
}
const flowKey = (f: FlowRecord) => `${f.proto} ${f.clientIp}:${f.clientPort} ${f.vip}:${f.vipPort}`;

async function run(name: string, policy: string) {
  const { report, flows } = await replayFile(join(DIR, `${name}.pcap`), config(policy), { outDir: null, collectFlows: true });
  const byKey = new Map(flows!.map((f) => [flowKey(f), f]));
  return { report, flows: flows!, byKey };
}

function truth(name: string): TruthSession[] {
  return JSON.parse(readFileSync(join(DIR, `${name}.truth.json`), 'utf8')).sessions;
}

/** Sessions (by the truth) whose flows did not all reach one backend. */
function split(sessions: TruthSession[], byKey: Map<string, FlowRecord>): string[] {
  return sessions.filter((s) => {
    const backends = new Set([...s.control_tcp, ...s.media_udp].map((f) => byKey.get(keyOf(f.five_tuple))?.backend));
    return backends.size !== 1 || backends.has(undefined);
  }).map((s) => s.session);
}

describe('session-aware replay of real RTSP captures', () => {
  for (const name of CAPTURES) {
    it(`${name}: every control and media flow of a session reaches the session's backend`, async () => {
      const { report, byKey } = await run(name, 'session');
      const sessions = truth(name);
      expect(split(sessions, byKey)).toEqual([]);
      for (const s of sessions) {
        const control = byKey.get(keyOf(s.control_tcp[0].five_tuple))!;
        // Flows carry their session's id in the --flows CSV column.
        expect(control.session).toBe(s.session);
        for (const m of s.media_udp) expect(byKey.get(keyOf(m.five_tuple))!.session, keyOf(m.five_tuple)).toBe(s.session);
      }
      expect(report.sessions.started).toBe(sessions.length);
      expect(report.sessions.integrity).toBe(1);
      const media = sessions.reduce((n, s) => n + s.media_udp.length, 0);
      // Every UDP media flow (both directions of a pair share one flow) was expected before it started.
      expect(report.sessions.expectations.matched).toBe(new Set(sessions.flatMap((s) => s.media_udp.map((m) => keyOf(m.five_tuple)))).size);
      if (media > 0) expect(report.sessions.expectations.matched).toBeGreaterThan(0);
    });
  }

  it('every RTP/RTCP packet tshark links to a SETUP goes to that session\'s backend (b_concurrent_udp, d_vlc_server)', async () => {
    for (const name of ['b_concurrent_udp', 'd_vlc_server']) {
      const pcap = join(DIR, `${name}.pcap`);
      const tshark = (filter: string, fields: string[]) =>
        execFileSync('tshark', ['-r', pcap, '-n', '-o', 'rtp.heuristic_rtp:FALSE', '-Y', filter, '-T', 'fields', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', maxBuffer: 64 << 20 })
          .trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
      // SETUP reply frame -> session id.
      const replySession = new Map(tshark('rtsp.response && rtsp.session', ['frame.number', 'rtsp.session']).map(([f, s]) => [f, s.split(';')[0]]));
      const { byKey } = await run(name, 'session');
      const sessionBackend = new Map<string, string>();
      for (const f of byKey.values()) if (f.proto === 'tcp' && f.session) sessionBackend.set(f.session, f.backend);
      let checked = 0;
      for (const [src, sport, dst, dport, rtpSetup, rtcpSetup] of tshark('(rtp || rtcp) && udp && !icmp', ['ip.src', 'udp.srcport', 'ip.dst', 'udp.dstport', 'rtp.setup-frame', 'rtcp.setup-frame'])) {
        const setup = rtpSetup || rtcpSetup;
        if (!setup) continue;
        const session = replySession.get(setup.split(',')[0]);
        expect(session, `setup frame ${setup}`).toBeDefined();
        const flow = byKey.get(keyOf({ proto: 'udp', src, sport: Number(sport), dst, dport: Number(dport) }));
        expect(flow?.backend, `${src}:${sport} -> ${dst}:${dport}`).toBe(sessionBackend.get(session!));
        checked++;
      }
      expect(checked).toBeGreaterThan(500);
    }
  });

  it('flow-level balancing splits the multi-flow sessions; client persistence keeps them whole', async () => {
    const sessions = truth('b_concurrent_udp');
    const flow = await run('b_concurrent_udp', 'flow');
    expect(split(sessions, flow.byKey).length).toBeGreaterThanOrEqual(3); // of 6: visibly broken
    const client = await run('b_concurrent_udp', 'client');
    expect(split(sessions, client.byKey)).toEqual([]);
  });

  it('firewall traversal: with only the RTSP port open, media flows pass only as expectations', async () => {
    const cfg = config('session', { ports: [8554] });
    const { report, flows } = await replayFile(join(DIR, 'b_concurrent_udp.pcap'), cfg, { outDir: null, collectFlows: true });
    expect(report.dropped['no-service']).toBe(0);
    const udp = flows!.filter((f) => f.proto === 'udp');
    expect(udp.length).toBe(24);
    expect(udp.every((f) => f.session !== '')).toBe(true);
    // The same VIP without session awareness balances no media at all: clients' packets are
    // dropped (no-service), the server's are not the cluster's (passed not-vip).
    const plain = await replayFile(join(DIR, 'b_concurrent_udp.pcap'), config('flow', { ports: [8554] }), { outDir: null, collectFlows: true });
    expect(plain.flows!.filter((f) => f.proto === 'udp')).toEqual([]);
    expect(plain.report.dropped['no-service'] + plain.report.passedBy['not-vip']).toBeGreaterThan(3000);
  });

  it('admission control: a VIP limit of 2 sessions refuses the other control connections, never cuts admitted ones', async () => {
    const { report, flows } = await replayFile(join(DIR, 'b_concurrent_udp.pcap'), config('session', { maxSessions: 2 }), { outDir: null, collectFlows: true });
    expect(report.sessions.refused).toBeGreaterThan(0);
    expect(report.dropped.admission).toBeGreaterThan(0);
    // Admitted sessions are whole and complete.
    expect(report.sessions.completed).toBeGreaterThanOrEqual(2);
    expect(report.sessions.integrity).toBe(1);
    const admitted = new Set(flows!.filter((f) => f.proto === 'tcp' && f.session).map((f) => f.session));
    expect(admitted.size).toBe(report.sessions.started);
  });

  it('per-backend limits move new sessions to backends with room', async () => {
    const cfg = parseConfig({
      flowCapacity: 65536,
      vips: [{
        address: VIP, method: 'nat', policy: 'session', rtspPorts: [8554],
        backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}`, maxSessions: i })),
      }],
    });
    const sessionsPerBackend = async (c: typeof cfg) => {
      const { report, flows } = await replayFile(join(DIR, 'b_concurrent_udp.pcap'), c, { outDir: null, collectFlows: true });
      const per: Record<string, number> = { b1: 0, b2: 0, b3: 0 };
      for (const f of flows!) if (f.proto === 'tcp' && f.session) per[f.backend]++;
      return { report, per };
    };
    const limited = await sessionsPerBackend(cfg);
    expect(limited.report.sessions.started).toBe(6);
    expect(limited.report.sessions.refused).toBe(0);
    // 6 overlapping sessions and room for 1 + 2 + 3: each backend filled to its limit.
    expect(limited.per).toEqual({ b1: 1, b2: 2, b3: 3 });
    // Without the limits the scheduler alone does not spread them so (so the limits did it).
    const free = await sessionsPerBackend({ ...cfg, vips: cfg.vips.map((v) => ({ ...v, backends: v.backends.map((b) => ({ ...b, maxSessions: 0 })) })) });
    expect(free.per).not.toEqual({ b1: 1, b2: 2, b3: 3 });
  });
});

describe('client+session affinity and session rate (synthetic control connections)', () => {
  const cfg = (extra: Record<string, unknown> = {}) => ({
    flowCapacity: 4096,
    vips: [{
      address: '10.0.0.100', method: 'nat', policy: 'session', rtspPorts: [554], ringSize: 4093, ...extra,
      backends: [1, 2, 3, 4, 5].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}` })),
    }],
  });
  const text = (s: string) => new TextEncoder().encode(s);
  /** A control connection's SYN, and the server's SETUP reply naming `session`. */
  function setup(client: string, port: number, session: string) {
    return [
      { bytes: frame({ src: client, dst: '10.0.0.100', proto: 'tcp', sport: port, dport: 554, tcpFlags: 'S', seq: 1 }) },
      { bytes: frame({ src: '10.0.0.100', dst: client, proto: 'tcp', sport: 554, dport: port, tcpFlags: 'PA', seq: 100, ack: 2,
        payload: text(`RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: ${session};timeout=60\r\nTransport: RTP/AVP;unicast;client_port=${port + 1000}-${port + 1001};server_port=6000-6001\r\n\r\n`) }) },
    ];
  }

  it('without clientAffinity (the default), new control connections are balanced by the scheduler', () => {
    const client = '198.18.7.99';
    const eng = makeEngine(cfg());
    runFrames(eng, setup(client, 40000, 'S0'));
    const more = runFrames(eng, Array.from({ length: 20 }, (_, i) => ({ bytes: frame({ src: client, dst: '10.0.0.100', proto: 'tcp', sport: 41000 + i, dport: 554, tcpFlags: 'S', seq: 1 }) })));
    expect(new Set(more.map((o) => o.backend)).size).toBeGreaterThan(1);
  });

  it('with clientAffinity, a new control connection from a client with an active session reaches its backend', () => {
    let differs = 0;
    for (let c = 1; c <= 20; c++) {
      const client = `198.18.7.${c}`;
      const eng = makeEngine(cfg({ clientAffinity: true }));
      const first = runFrames(eng, setup(client, 40000, `S${c}`));
      const backend = first[0].backend;
      expect(eng.counters()['sessions-started']).toBe(1);
      // Ten more connections from the same client: all on the session's backend.
      const more = runFrames(eng, Array.from({ length: 10 }, (_, i) => ({ bytes: frame({ src: client, dst: '10.0.0.100', proto: 'tcp', sport: 41000 + i, dport: 554, tcpFlags: 'S', seq: 1 }) })));
      for (const o of more) expect(o.backend).toBe(backend);
      // Without the session, Maglev spreads the same connections.
      const fresh = makeEngine(cfg());
      const spread = runFrames(fresh, Array.from({ length: 10 }, (_, i) => ({ bytes: frame({ src: client, dst: '10.0.0.100', proto: 'tcp', sport: 41000 + i, dport: 554, tcpFlags: 'S', seq: 1 }) })));
      if (spread.some((o) => o.backend !== backend)) differs++;
    }
    expect(differs).toBeGreaterThan(10); // so the affinity is what kept them together
  });

  it('sessionRate: new control connections beyond the rate are refused, on packet time', () => {
    const eng = makeEngine(cfg({ sessionRate: 2 }));
    // 10 new clients in the same second: a burst of 2 is admitted.
    const burst = runFrames(eng, Array.from({ length: 10 }, (_, i) => ({ ts: 1000, bytes: frame({ src: `198.18.8.${i + 1}`, dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 554, tcpFlags: 'S', seq: 1 }) })));
    expect(burst.filter((o) => o.verdict === 'backend').length).toBe(2);
    expect(burst.filter((o) => o.verdict === 'drop' && o.reason === 'admission').length).toBe(8);
    // Two seconds later, the bucket holds two seconds' worth again (capped at the one-second burst).
    const later = runFrames(eng, Array.from({ length: 5 }, (_, i) => ({ ts: 1003, bytes: frame({ src: `198.18.9.${i + 1}`, dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 554, tcpFlags: 'S', seq: 1 }) })));
    expect(later.filter((o) => o.verdict === 'backend').length).toBe(2);
    // Packets of admitted connections are never refused.
    const again = runFrames(eng, [{ ts: 1003, bytes: frame({ src: '198.18.8.1', dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 554, tcpFlags: 'A', seq: 2 }) }]);
    expect(again[0].verdict).toBe('backend');
    expect(eng.counters()['sessions-refused']).toBe(11);
  });
});

describe('NAT mode, live shape: replies and media come from the backend address', () => {
  it('the backend\'s SETUP reply creates the session; its RTP on an unlisted port leaves with the VIP as source', () => {
    const eng = makeEngine({
      flowCapacity: 4096,
      vips: [{ address: '10.0.0.100', ports: [554], method: 'nat', policy: 'session', rtspPorts: [554], ringSize: 4093,
        backends: [1, 2, 3].map((i) => ({ id: `b${i}`, address: `10.0.1.${i}` })) }],
    });
    const client = '198.18.3.3';
    const syn = runFrames(eng, [{ bytes: frame({ src: client, dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 554, tcpFlags: 'S', seq: 1 }) }])[0];
    expect(syn.verdict).toBe('backend');
    const backendAddr = `10.0.1.${syn.backend!.slice(1)}`;
    const reply = new TextEncoder().encode('RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: ABC;timeout=60\r\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001\r\n\r\n');
    const out = runFrames(eng, [
      { bytes: frame({ src: backendAddr, dst: client, proto: 'tcp', sport: 554, dport: 40000, tcpFlags: 'PA', seq: 9, ack: 2, payload: reply }) },
      { bytes: frame({ src: backendAddr, dst: client, proto: 'udp', sport: 7000, dport: 5000, payload: new Uint8Array(160) }) },
      { bytes: frame({ src: backendAddr, dst: client, proto: 'udp', sport: 7001, dport: 5001, payload: new Uint8Array(40) }) },
      { bytes: frame({ src: client, dst: '10.0.0.100', proto: 'udp', sport: 5001, dport: 7001, payload: new Uint8Array(32) }) },
    ]);
    expect(out.map((o) => o.verdict)).toEqual(['client', 'client', 'client', 'backend']);
    expect(out.every((o) => o.backend === syn.backend)).toBe(true);
    for (const o of out.slice(0, 3)) {
      const p = parseFrame(o.bytes);
      expect(p.ip!.src).toBe('10.0.0.100'); // media from the backend leaves with the VIP as source
      expect(verifyFrame(o.bytes).problems).toEqual([]);
    }
    expect(parseFrame(out[3].bytes).ip!.dst).toBe(backendAddr);
    expect(eng.counters()['expectations-matched']).toBe(2);
    // A media packet of no session on an unlisted port is refused.
    const stray = runFrames(eng, [{ bytes: frame({ src: client, dst: '10.0.0.100', proto: 'udp', sport: 5009, dport: 7009, payload: new Uint8Array(8) }) }])[0];
    expect(stray.verdict).toBe('drop');
    expect(stray.reason).toBe('no-service');
  });
});
