// TCP handoff in the lab (`sessionlb lab up --method handoff`, docs/handoff.md): sessionlb answers
// the client's handshake with a SYN cookie, holds the HTTP or RTSP request, picks the backend, and
// sends a HANDOFF to that backend's agent, which recreates the connection with TCP_REPAIR and hands
// it to its HTTP server process, or (RTSP) to the GStreamer RTSP server through a Unix socket; the
// backend answers the client directly with the VIP as source. Real curl and
// wrk clients (one behind the NAT box), real kernels at both ends. Oracles: the server's X-Backend
// and /whoami, tcpdump on the router's two legs (answers never cross the front LAN), tshark on the
// client's capture (no bad checksum, no tcp.analysis flag, no second handshake), sessionlb's and the
// agents' own counters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSummary } from '../host/lab/lab.js';
import { Capture, countBy, httpBackends, labDirOf, labDown, labUnsupported, labUp, nsRun, nsRunAsync, ROOT, rtspClient, sleep, tsharkFields, testPrefix } from './helpers/lab.js';

const PREFIX = testPrefix('h');
const VIP = '10.88.0.100';
const why = labUnsupported({ tap: true });
if (why) console.warn(`lab.handoff tests skipped: ${why}`);
const OUT = join(ROOT, 'test-output', 'lab', PREFIX.slice(0, -1));

function metrics(lab: LabSummary): Record<string, number> {
  const r = nsRun(lab.sessionlb!.ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]);
  const out: Record<string, number> = {};
  for (const m of r.stdout.matchAll(/^sessionlb_splice_events_total\{event="([^"]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

describe.skipIf(!!why)('sessionlb live TCP handoff in the lab', () => {
  let lab: LabSummary;
  beforeAll(() => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    labDown(PREFIX);
    lab = labUp(['--method', 'handoff', '--prefix', PREFIX]);
  });
  afterAll(() => {
    labDown(PREFIX);
    rmSync(OUT, { recursive: true, force: true });
  });

  it('HTTP: every request answered by a handed-off connection, spread over three backends, client addresses kept', async () => {
    const before = metrics(lab);
    const all: string[] = [];
    for (const c of lab.clients.slice(0, 3)) {
      const { backends, failures } = await httpBackends(c.ns, `http://${VIP}/`, 30);
      expect(failures, c.id).toEqual([]);
      expect(backends.length).toBe(30);
      all.push(...backends);
    }
    const by = countBy(all);
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(10);
    // The backends' sockets are the clients' own connections: they see the real client (or its NAT box).
    for (const c of lab.clients) expect(nsRun(c.ns, ['curl', '-s', '-m', '3', `http://${VIP}/whoami`]).stdout.trim(), c.id).toBe(c.seenAs);
    const after = metrics(lab);
    const n = 90 + lab.clients.length;
    expect(after.handoffs - (before.handoffs ?? 0)).toBe(n);
    expect(after['handoffs-done'] - (before['handoffs-done'] ?? 0)).toBe(n);
    expect(after['handoffs-failed'] ?? 0).toBe(before['handoffs-failed'] ?? 0);
  });

  it('keep-alive: later requests on a handed-off connection reach the same backend, forwarded one-way', () => {
    const url = `http://${VIP}/`;
    const r = nsRun(lab.clients[1].ns, ['curl', '-s', '-m', '5', '-D', '-', '-o', '/dev/null', url, '-o', '/dev/null', url, '-o', '/dev/null', url, '-o', '/dev/null', url]);
    const ids = [...r.stdout.matchAll(/^x-backend:\s*(\S+)/gim)].map((m) => m[1]);
    expect(ids.length, r.stdout).toBe(4);
    expect(new Set(ids).size).toBe(1);
  });

  it('one-way: answers come from the backends through the router\'s server leg; the front LAN carries only sessionlb\'s handshake and ACKs; the client sees one clean handshake per connection (tshark)', async () => {
    const front = new Capture(`${PREFIX}rtr`, 'front', join(OUT, 'rtr-front.pcap'), 'tcp port 80');
    const srv = new Capture(`${PREFIX}rtr`, 'srv', join(OUT, 'rtr-srv.pcap'), 'tcp port 80');
    const client = new Capture(lab.clients[0].ns, 'eth0', join(OUT, 'c1.pcap'), 'tcp port 80');
    await Promise.all([front.ready(), srv.ready(), client.ready()]);
    const { backends, failures } = await httpBackends(lab.clients[0].ns, `http://${VIP}/`, 20);
    expect(await Promise.all([front.stop(), srv.stop(), client.stop()]), 'tcpdump dropped packets').toEqual([0, 0, 0]);
    expect(failures).toEqual([]);
    expect(backends.length).toBe(20);
    const fromVip = (f: string, extra = '') => tsharkFields(f, `ip.src == ${VIP} && tcp.srcport == 80${extra}`, ['tcp.stream', 'tcp.flags']);
    // sessionlb's own segments on the front leg: one SYN-ACK per connection and the ACK of the request, no data.
    expect(fromVip(front.file, ' && tcp.len > 0')).toEqual([]);
    expect(fromVip(front.file, ' && tcp.flags.syn == 1').length).toBe(20);
    // Every answer came from a backend on the server leg, for every connection; nothing to the VIP there.
    const answers = fromVip(srv.file, ' && tcp.len > 0');
    expect(new Set(answers.map((x) => x[0])).size).toBe(20);
    expect(fromVip(srv.file, ' && tcp.flags.syn == 1')).toEqual([]);
    expect(tsharkFields(srv.file, `ip.dst == ${VIP}`, ['frame.number'])).toEqual([]);
    // The client's view: one handshake per connection, no bad checksum, no retransmission, duplicate ACK or out-of-order.
    expect(tsharkFields(client.file, 'tcp.flags.syn == 1 && tcp.flags.ack == 0', ['tcp.stream']).length).toBe(20);
    expect(tsharkFields(client.file, 'tcp.checksum.status == 0 || ip.checksum.status == 0', ['frame.number'])).toEqual([]);
    const flagged = tsharkFields(client.file, 'tcp.analysis.flags && !tcp.analysis.window_update', ['frame.number', '_ws.expert.message']);
    expect(flagged, JSON.stringify(flagged.slice(0, 5))).toEqual([]);
  });

  it('a client reusing its port while the backend still holds the old connection in TIME_WAIT is served (the agent replaces it, as the kernel would for a SYN)', () => {
    const c = lab.clients[0];
    // Three connections from local port 47123, each asking Connection: close and reading to the
    // server's FIN before closing: the server closes first, so its side of each waits in TIME_WAIT
    // (and the client's does not, so the port can be bound again at once).
    const py = [
      'import socket, sys, time',
      'for k in range(3):',
      '    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", 47123)); s.settimeout(5)',
      // The client's own side waits in LAST_ACK until the backend's last ACK: until then the port is busy here.
      '    for t in range(40):',
      '        try:',
      `            s.connect(("${VIP}", 80)); break`,
      '        except OSError as e:',
      '            if e.errno != 99 or t == 39: raise',
      '            time.sleep(0.05)',
      '    s.sendall(b"GET / HTTP/1.1\\r\\nHost: v\\r\\nConnection: close\\r\\n\\r\\n")',
      '    d = b""',
      '    while True:',
      '        b = s.recv(4096)',
      '        if not b: break',
      '        d += b',
      '    s.close(); print(d.decode().split("\\r\\n")[0], [l.split(": ")[1] for l in d.decode().split("\\r\\n") if l.lower().startswith("x-backend")])',
    ].join('\n');
    const r = nsRun(c.ns, ['/usr/bin/python3', '-c', py]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length, r.stdout).toBe(3);
    const ids = lines.map((l) => {
      expect(l).toMatch(/^HTTP\/1\.1 200/);
      return /\['(\S+)'\]/.exec(l)![1];
    });
    // The same 5-tuple: the same backend each time (Maglev), where the previous connection sits in TIME_WAIT.
    expect(new Set(ids).size).toBe(1);
    const b = lab.backends.find((x) => x.id === ids[0])!;
    const tw = nsRun(b.ns, ['ss', '-Htn', 'state', 'time-wait', 'dst', `${c.address}:47123`]).stdout.trim().split('\n').filter((l) => l);
    expect(tw.length).toBe(1); // the last one's; the two before were replaced
  });

  it('RTSP handed off to the real GStreamer server (transfer_connection): ffmpeg over TCP and over UDP receives media, which never crosses the front LAN', async () => {
    const front = new Capture(`${PREFIX}rtr`, 'front', join(OUT, 'rtsp-front.pcap'), 'tcp port 8554 or udp');
    const srv = new Capture(`${PREFIX}rtr`, 'srv', join(OUT, 'rtsp-srv.pcap'), 'tcp port 8554 or udp');
    await Promise.all([front.ready(), srv.ready()]);
    const before = metrics(lab);
    const [tcp, udp] = await Promise.all([
      rtspClient(lab.clients[0].ns, `rtsp://${VIP}:8554/test`, 3, 'tcp'),
      rtspClient(lab.clients[1].ns, `rtsp://${VIP}:8554/test`, 3, 'udp'),
    ]);
    expect(await Promise.all([front.stop(), srv.stop()]), 'tcpdump dropped packets').toEqual([0, 0]);
    for (const r of [tcp, udp]) {
      expect(r.code, r.stderr.slice(-600)).toBe(0);
      expect(r.frames).toBeGreaterThanOrEqual(50);
      expect(r.missed).toBe(0);
    }
    // Each control connection was handed off (an RTSP client opens one).
    expect(metrics(lab)['handoffs-done'] - before['handoffs-done']).toBeGreaterThanOrEqual(2);
    // From the VIP on the front leg: sessionlb's SYN-ACKs and ACKs only, no RTSP response, no media.
    expect(tsharkFields(front.file, `ip.src == ${VIP} && (tcp.len > 0 || udp)`, ['frame.number'])).toEqual([]);
    // On the server leg: the RTSP responses (and interleaved media) to c1, the UDP media to c2.
    expect(tsharkFields(srv.file, `ip.src == ${VIP} && ip.dst == ${lab.clients[0].address} && tcp.len > 0`, ['frame.number']).length).toBeGreaterThanOrEqual(50);
    expect(tsharkFields(srv.file, `ip.src == ${VIP} && ip.dst == ${lab.clients[1].address} && udp`, ['frame.number']).length).toBeGreaterThanOrEqual(50);
  });

  it('RTSP session awareness through handoff: later connections carrying a session\'s id reach its backend (GStreamer\'s own session table is the oracle)', () => {
    // A client sets up and plays a session, then opens six new connections whose first request
    // carries that Session. sessionlb never sees the server's responses (one-way), so it learned the
    // session from the client's PLAY on the handed-off connection. The RTSP servers answer a
    // GET_PARAMETER for a session they do not hold with 454: asked directly, only one backend knows it.
    const file = join(OUT, 'rtsp-session.py');
    writeFileSync(file, RTSP_SESSION_PY);
    const r = nsRun(lab.clients[0].ns, ['/usr/bin/python3', file, VIP, lab.backends.map((b) => b.address).join(',')], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const v = JSON.parse(r.stdout) as { sid: string; play: string; viaVip: string[]; direct: Record<string, string> };
    expect(v.play).toBe('RTSP/1.0 200 OK');
    const holders = Object.entries(v.direct).filter(([, line]) => line === 'RTSP/1.0 200 OK').map(([a]) => a);
    expect(holders.length, JSON.stringify(v.direct)).toBe(1);
    for (const [a, line] of Object.entries(v.direct)) if (a !== holders[0]) expect(line).toBe('RTSP/1.0 454 Session Not Found');
    expect(v.viaVip).toEqual(Array(6).fill('RTSP/1.0 200 OK'));
    expect(metrics(lab)['session-matched']).toBeGreaterThanOrEqual(6);
  });

  it('wrk with keep-alive and with a new connection per request: no error; the agents account for every handoff', async () => {
    const keep = await nsRunAsync(lab.clients[0].ns, ['timeout', '20', 'wrk', '-t1', '-c16', '-d3s', `http://${VIP}/`], { timeoutMs: 25_000 });
    expect(keep.stdout, keep.stderr).toMatch(/Requests\/sec/);
    expect(keep.stdout).not.toMatch(/Socket errors|Non-2xx/);
    const close = await nsRunAsync(lab.clients[1].ns, ['timeout', '20', 'wrk', '-t1', '-c16', '-d3s', '-H', 'Connection: close', `http://${VIP}/`], { timeoutMs: 25_000 });
    expect(close.stdout, close.stderr).toMatch(/Requests\/sec/);
    // A client reusing a local port whose old connection the backend still holds in TIME_WAIT is
    // served as the kernel would serve its SYN (docs/handoff.md): no failed handoff, no reset.
    expect(close.stdout).not.toMatch(/Socket errors|Non-2xx/);
    // wrk stops with connections mid-handoff: their DONEs land a moment later.
    let m = metrics(lab);
    const settled = (x: Record<string, number>) => (x['handoffs-done'] ?? 0) + (x['handoffs-failed'] ?? 0) + (x['handoff-timeouts'] ?? 0) + (x['handoff-abandoned'] ?? 0);
    for (let k = 0; k < 30 && m.handoffs !== settled(m); k++) {
      await sleep(100);
      m = metrics(lab);
    }
    expect(m['handoffs-failed'] ?? 0).toBe(0);
    expect(m['handoff-timeouts'] ?? 0).toBe(0);
    // Every HANDOFF answered: done, or given up by the client itself (wrk resets what is open when it stops).
    expect(m.handoffs).toBe(settled(m));
    expect(m['handoff-abandoned'] ?? 0).toBeLessThanOrEqual(32);
  });

  it('an agent that dies: its backend is marked down by the health check, new connections go to the others', async () => {
    const dir = labDirOf(lab);
    const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { processes: { role: string; backend?: string; pid: number }[] };
    const agent = st.processes.find((p) => p.role === 'agent' && p.backend === 'b2')!;
    process.kill(agent.pid, 'SIGKILL');
    // The TCP check on the agent's port fails twice at 0.5 s: down within about 1.3 s.
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = nsRun(lab.sessionlb!.ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]);
      if (/^sessionlb_backend_up\{vip="10\.88\.0\.100",backend="b2"\} 0$/m.test(r.stdout)) break;
      expect(Date.now(), 'b2 still up').toBeLessThan(deadline);
      await sleep(100);
    }
    const { backends, failures } = await httpBackends(lab.clients[2].ns, `http://${VIP}/`, 30);
    expect(failures).toEqual([]);
    expect(backends.length).toBe(30);
    expect(backends).not.toContain('b2');
  });
});

// The RTSP client of the session-awareness test (python3, plain sockets): prints one JSON line.
const RTSP_SESSION_PY = String.raw`import socket, sys, re, json
vip, backends = sys.argv[1], sys.argv[2].split(',')
def ask(s, req):
    s.sendall(req.encode())
    d = b''
    while b'\r\n\r\n' not in d:
        b = s.recv(65536)
        if not b: break
        d += b
    return d.partition(b'\r\n\r\n')[0].decode()
url = f"rtsp://{vip}:8554/test"
s = socket.create_connection((vip, 8554), timeout=5)
ask(s, f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n")
ask(s, f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n")
r = ask(s, f"SETUP {url}/stream=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
sid = re.search(r'Session: ([^;\r]+)', r).group(1)
play = ask(s, f"PLAY {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {sid}\r\n\r\n").split('\r\n')[0]
def again(addr, k):
    t = socket.create_connection((addr, 8554), timeout=5)
    line = ask(t, f"GET_PARAMETER {url} RTSP/1.0\r\nCSeq: {10+k}\r\nSession: {sid}\r\n\r\n").split('\r\n')[0]
    t.close()
    return line
print(json.dumps({"sid": sid, "play": play, "viaVip": [again(vip, k) for k in range(6)], "direct": {b: again(b, 20) for b in backends}}))
`;
