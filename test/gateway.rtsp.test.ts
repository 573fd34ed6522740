// `sessionlb gateway` in front of three real GStreamer RTSP servers (lab/rtsp-server.py under the
// system python3) on loopback addresses 127.0.8.2x, with ffmpeg as the player. Oracles: ffmpeg's
// own account (frames received over interleaved TCP, or the 503 it was refused with), and the RTSP
// servers themselves: a GStreamer server answers a request naming a session it does not hold with
// `454 Session Not Found`, so a 200 to a second connection's request proves it reached the backend
// that created the session.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ROOT, freePort, metric, run, sleep, startGateway, startRtsp, type Proc } from './gateway.helpers.js';

const DIR = join(ROOT, 'test-output', `gateway-rtsp-${process.pid}`);
const VIP = '127.0.8.20';
const IDS = ['r1', 'r2', 'r3'];
const ADDR: Record<string, string> = { r1: '127.0.8.21', r2: '127.0.8.22', r3: '127.0.8.23' };

function unsupported(): string | null {
  if (!existsSync('/usr/bin/ffmpeg')) return 'no /usr/bin/ffmpeg';
  if (!existsSync('/usr/bin/python3')) return 'no /usr/bin/python3';
  const r = spawnSync('/usr/bin/python3', ['-c', "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer"]);
  if (r.status !== 0) return 'python3 GstRtspServer missing (gir1.2-gst-rtsp-server-1.0, python3-gst-1.0)';
  return null;
}
const why = unsupported();
if (why) console.warn(`test/gateway.rtsp.test.ts skipped: ${why}`);

let port = 0;
let metricsPort = 0;
const servers: Proc[] = [];
let gw: Proc | null = null;
const url = () => `rtsp://${VIP}:${port}/test`;

/** A raw RTSP conversation on one TCP connection. */
class Conv {
  private buf = '';
  readonly s: Socket;
  private cseq = 0;
  constructor(host: string, p: number) {
    this.s = connect({ host, port: p });
    this.s.on('data', (d) => (this.buf += d.toString('latin1')));
    this.s.on('error', () => {});
  }
  async req(method: string, uri: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string>; body: string; raw: string }> {
    const cseq = String(++this.cseq);
    const start = this.buf.length;
    this.s.write(`${method} ${uri} RTSP/1.0\r\nCSeq: ${cseq}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    for (let i = 0; i < 200; i++) {
      const t = this.buf.slice(start);
      const e = t.indexOf('\r\n\r\n');
      if (e >= 0) {
        const hs: Record<string, string> = {};
        for (const l of t.slice(0, e).split('\r\n').slice(1)) {
          const c = l.indexOf(':');
          hs[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
        }
        const len = Number(hs['content-length'] ?? 0);
        if (t.length >= e + 4 + len) {
          expect(hs.cseq).toBe(cseq);
          return { status: Number(t.slice(9, 12)), headers: hs, body: t.slice(e + 4, e + 4 + len), raw: t };
        }
      }
      await sleep(25);
    }
    throw new Error(`no reply to ${method} (got ${JSON.stringify(this.buf.slice(start))})`);
  }
  close() {
    this.s.destroy();
  }
}

/** OPTIONS, DESCRIBE, SETUP (RTP over UDP to unused client ports) on a new connection: the session id. */
async function openSession(c: Conv, clientPort: number): Promise<string> {
  expect((await c.req('OPTIONS', url())).status).toBe(200);
  const d = await c.req('DESCRIBE', url(), { Accept: 'application/sdp' });
  expect(d.status).toBe(200);
  expect(d.body).toMatch(/^v=0/);
  const s = await c.req('SETUP', `${url()}/stream=0`, { Transport: `RTP/AVP;unicast;client_port=${clientPort}-${clientPort + 1}` });
  expect(s.status).toBe(200);
  const id = s.headers.session.split(';')[0];
  expect(id.length).toBeGreaterThan(4);
  return id;
}

async function metricsText(): Promise<string> {
  return (await run('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${metricsPort}/metrics`])).out;
}

function ffmpeg(u: string, seconds: number) {
  return run('timeout', ['-s', 'INT', String(seconds + 15), '/usr/bin/ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'info', '-rtsp_transport', 'tcp', '-i', u, '-t', String(seconds), '-map', '0', '-c', 'copy', '-f', 'null', '-'], (seconds + 20) * 1000);
}

describe.skipIf(why !== null)('sessionlb gateway: RTSP', () => {
  beforeAll(async () => {
    rmSync(DIR, { recursive: true, force: true });
    port = await freePort('127.0.8.1');
    metricsPort = await freePort('127.0.0.1');
    for (const id of IDS) servers.push(await startRtsp(id, ADDR[id], port));
    gw = await startGateway(DIR, {
      vips: [{
        address: VIP, ports: [port], rtspPorts: [port], protocols: ['tcp'], scheduler: 'rr',
        // 1 s: a check slowed by a loaded machine (the RTSP servers encode video) must not mark a
        // healthy backend down in the middle of the session tests.
        healthCheck: { type: 'rtsp', path: '/test', interval: 1, timeout: 1 },
        backends: IDS.map((id) => ({ id, address: ADDR[id] })),
      }],
      gateway: { metrics: { port: metricsPort }, logLevel: 'debug' },
    }, [{ address: VIP, port }]);
  });

  afterAll(async () => {
    await gw?.stop();
    for (const s of servers) await s.stop();
    rmSync(DIR, { recursive: true, force: true });
  });

  it('ffmpeg plays a stream through the gateway over interleaved TCP; SETUP and TEARDOWN are tracked', async () => {
    const before = await metricsText();
    const created0 = metric(before, 'sessionlb_gateway_sessions_created_total') ?? 0;
    const ended0 = metric(before, 'sessionlb_gateway_sessions_ended_total') ?? 0;
    const r = await ffmpeg(url(), 3);
    expect(r.code, r.err.slice(-1500)).toBe(0);
    const frames = [...r.err.matchAll(/frame=\s*(\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(0, ...frames)).toBeGreaterThanOrEqual(40); // 25 fps for 3 s
    expect(r.err).toMatch(/Video: h264/);
    // The gateway sees the TEARDOWN's reply after ffmpeg has exited: wait for it (3 s at most).
    let m = await metricsText();
    for (let i = 0; i < 30 && metric(m, 'sessionlb_gateway_sessions_ended_total') !== ended0 + 1; i++) {
      await sleep(100);
      m = await metricsText();
    }
    expect(metric(m, 'sessionlb_gateway_sessions_created_total')).toBe(created0 + 1);
    // ffmpeg sends TEARDOWN at the end (the gateway saw it and its 200 reply across interleaved media).
    expect(metric(m, 'sessionlb_gateway_sessions_ended_total')).toBe(ended0 + 1);
    expect(metric(m, 'sessionlb_gateway_sessions', { vip: VIP })).toBe(0);
  });

  it('a second connection carrying a live Session id lands on that session\'s backend', async () => {
    for (let k = 0; k < 3; k++) {
      // TEARDOWN from a second connection: the session's backend answers 200 and the gateway's
      // table forgets the session.
      const a = new Conv(VIP, port);
      const id = await openSession(a, 41000 + 2 * k);
      const t = new Conv(VIP, port);
      const td = await t.req('TEARDOWN', url(), { Session: id });
      expect(td.status, td.raw).toBe(200);
      t.close();
      a.close();
      const a2 = new Conv(VIP, port);
      const id2 = await openSession(a2, 43000 + 2 * k);
      // Control: only one of the three servers knows the session (the others say 454).
      const direct = await Promise.all(IDS.map(async (b) => {
        const c = new Conv(ADDR[b], port);
        const r = await c.req('GET_PARAMETER', url(), { Session: id2 });
        c.close();
        return r.status;
      }));
      expect(direct.filter((s) => s === 200).length).toBe(1);
      expect(direct.filter((s) => s === 454).length).toBe(2);
      // Through the gateway, on new connections (round robin alone would rotate them): always 200.
      for (let j = 0; j < 3; j++) {
        const b = new Conv(VIP, port);
        const r = await b.req('GET_PARAMETER', url(), { Session: id2 });
        expect(r.status, `session ${id2}, connection ${j}: ${r.raw}`).toBe(200);
        b.close();
      }
      // The session outlives its first connection (GStreamer keeps it; so does the gateway).
      a2.close();
      await sleep(100);
      const b = new Conv(VIP, port);
      const r = await b.req('GET_PARAMETER', url(), { Session: id2 });
      expect(r.status, r.raw).toBe(200);
      b.close();
    }
    const m = await metricsText();
    expect(metric(m, 'sessionlb_gateway_choices_total', { reason: 'session' })).toBeGreaterThanOrEqual(15); // 3 x (TEARDOWN + 4 GET_PARAMETER)
    // The three torn down are gone; the three left open (no TEARDOWN) stay for their timeout.
    expect(metric(m, 'sessionlb_gateway_sessions', { vip: VIP })).toBe(3);
  });

  it('refuses with RTSP/1.0 503 and the request\'s CSeq at the connection limit (ffmpeg sees the 503)', async () => {
    const p2 = await freePort('127.0.8.1');
    const own = await Promise.all(IDS.map((id) => startRtsp(`${id}b`, ADDR[id], p2)));
    const g2 = await startGateway(DIR, {
      vips: [{ address: VIP, ports: [p2], rtspPorts: [p2], protocols: ['tcp'], scheduler: 'rr', backends: IDS.map((id) => ({ id, address: ADDR[id] })) }],
      gateway: { maxConnections: 1 },
    }, [{ address: VIP, port: p2 }]);
    try {
      await sleep(100);
      const held = new Conv(VIP, p2);
      expect((await held.req('OPTIONS', `rtsp://${VIP}:${p2}/test`)).status).toBe(200);
      const raw = await new Promise<string>((res) => {
        const s = connect({ host: VIP, port: p2 });
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('close', () => res(out));
        s.write(`DESCRIBE rtsp://${VIP}:${p2}/test RTSP/1.0\r\nCSeq: 7\r\nAccept: application/sdp\r\n\r\n`);
      });
      expect(raw).toMatch(/^RTSP\/1\.0 503 Service Unavailable\r\n/);
      expect(raw).toMatch(/\r\nCSeq: 7\r\n/);
      const f = await ffmpeg(`rtsp://${VIP}:${p2}/test`, 1);
      expect(f.code).not.toBe(0);
      expect(f.err).toMatch(/503 Service Unavailable/);
      held.close();
      await sleep(200);
      const again = new Conv(VIP, p2);
      expect((await again.req('OPTIONS', `rtsp://${VIP}:${p2}/test`)).status).toBe(200);
      again.close();
    } finally {
      await g2.stop();
      for (const s of own) await s.stop();
    }
  });

  it('session admission: over the VIP\'s maxSessions a new-session SETUP gets 503 from the gateway, the playing session is untouched', async () => {
    const p2 = await freePort('127.0.8.1');
    const own = await Promise.all(IDS.map((id) => startRtsp(`${id}s`, ADDR[id], p2)));
    const g2 = await startGateway(DIR, {
      vips: [{ address: VIP, ports: [p2], rtspPorts: [p2], protocols: ['tcp'], scheduler: 'rr', maxSessions: 1, backends: IDS.map((id) => ({ id, address: ADDR[id] })) }],
      gateway: { logLevel: 'debug' },
    }, [{ address: VIP, port: p2 }]);
    const u = `rtsp://${VIP}:${p2}/test`;
    try {
      const playing = ffmpeg(u, 4);
      await sleep(1500);
      const c = new Conv(VIP, p2);
      expect((await c.req('OPTIONS', u)).status).toBe(200);
      expect((await c.req('DESCRIBE', u, { Accept: 'application/sdp' })).status).toBe(200);
      const su = await c.req('SETUP', `${u}/stream=0`, { Transport: 'RTP/AVP;unicast;client_port=44000-44001' });
      expect(su.status).toBe(503);
      expect(su.headers.server).toBe('sessionlb-gateway');
      expect(su.headers.cseq).toBe('3');
      // The connection stays usable: the next request reaches the server again.
      const o = await c.req('OPTIONS', u);
      expect(o.status).toBe(200);
      expect(o.headers.server).toMatch(/GStreamer/);
      c.close();
      const refused = await ffmpeg(u, 1);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toMatch(/503 Service Unavailable/);
      const r = await playing;
      expect(r.code, r.err.slice(-1500)).toBe(0);
      const frames = [...r.err.matchAll(/frame=\s*(\d+)/g)].map((m) => Number(m[1]));
      expect(Math.max(0, ...frames)).toBeGreaterThanOrEqual(80); // 25 fps for 4 s, nothing cut
      // Its TEARDOWN frees the slot (the gateway sees the server's reply to it; on a loaded machine
      // that can come a while after ffmpeg has exited).
      for (let i = 0; i < 200 && !g2.err().includes('"rtsp session ended"'); i++) await sleep(25);
      expect(g2.err()).toContain('"rtsp session ended"');
      const d = new Conv(VIP, p2);
      await d.req('DESCRIBE', u, { Accept: 'application/sdp' });
      const ok = await d.req('SETUP', `${u}/stream=0`, { Transport: 'RTP/AVP;unicast;client_port=44002-44003' });
      expect(ok.status, ok.raw).toBe(200);
      d.close();
    } finally {
      await g2.stop();
      for (const s of own) await s.stop();
    }
    expect(JSON.parse(g2.out()).stats.refused.sessions).toBe(2);
  });

  it('a session whose backend died falls back to the scheduler (the others answer 454)', async () => {
    const a = new Conv(VIP, port);
    const id = await openSession(a, 42000);
    a.close();
    // Find the owner by asking each server directly, then stop it.
    let idx = -1;
    for (let i = 0; i < IDS.length; i++) {
      const c = new Conv(ADDR[IDS[i]], port);
      if ((await c.req('GET_PARAMETER', url(), { Session: id })).status === 200) idx = i;
      c.close();
    }
    expect(idx).toBeGreaterThanOrEqual(0);
    await servers[idx].stop();
    // Health (RTSP OPTIONS, interval 1 s, fall 2; a stopped server refuses at once) marks it down within about 2 s.
    let m = '';
    for (let i = 0; i < 60; i++) {
      m = await metricsText();
      if (metric(m, 'sessionlb_gateway_backend_up', { backend: IDS[idx] }) === 0) break;
      await sleep(100);
    }
    expect(metric(m, 'sessionlb_gateway_backend_up', { backend: IDS[idx] })).toBe(0);
    const b = new Conv(VIP, port);
    const r = await b.req('GET_PARAMETER', url(), { Session: id });
    expect(r.status).toBe(454); // a live server that never had the session
    b.close();
    expect(gw!.err()).toMatch(/"msg":"backend down"/);
  });
});
