// sessionlb live, NAT, in the lab (docs/lab.md): real clients (curl, wrk, ffmpeg) in client
// namespaces, real servers (nginx, GStreamer's RTSP server) in three backend namespaces, sessionlb
// on two TAP devices in between (`sessionlb lab up --method nat`). Checked with independent
// oracles: each nginx's X-Backend header, ffmpeg's own account of what it received (frames, "RTP:
// missed N packets"), tcpdump captures taken inside the backends' namespaces and read with tshark,
// `ss` in the backends, and sessionlb's JSON log for state changes.
//   - HTTP: every request answered, spread over three backends; backends see the client address
//   - RTSP over UDP from two clients (one behind the NAT box): media received, every packet of a
//     client's session (control and RTP/RTCP) in exactly one backend's capture
//   - RTSP interleaved over TCP; ping to the VIP from behind the NAT box answered
//   - SIGHUP reload (b2 re-weighted) under wrk load and a playing RTSP session: no socket error,
//     no non-2xx, no RTP loss; new connections follow the new weights
//   - one backend's servers killed: marked down within 2 s (log and metrics), new requests and
//     sessions go elsewhere, keep-alive HTTP connections on the other backends never move or break,
//     sessions on the other backends play to the end with no RTP loss
//   - admission (VIP limit 2 sessions): the third RTSP connection is reset at once (curl sees the
//     connection refused), HTTP still answered, the two admitted sessions play on without loss
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSummary } from '../host/lab/lab.js';
import {
  countBy,
  httpBackends,
  labDown,
  labUnsupported,
  labUp,
  nsRun,
  nsPids,
  nonZero,
  nsRunAsync,
  readLabLog,
  ROOT,
  rtspClient,
  rtspSessionsWithCaptures,
  runCli,
  sleep,
  testPrefix,
} from './helpers/lab.js';

const PREFIX = testPrefix('n');
const VIP = '10.88.0.100';
const RTSP_URL = `rtsp://${VIP}:8554/test`;
const why = labUnsupported({ tap: true });
if (why) console.warn(`lab.live tests skipped: ${why}`);

const OUT = join(ROOT, 'test-output', 'lab', PREFIX.slice(0, -1));

/** Which backend holds an established RTSP control connection from `from` (the address it sees), or null. */
function rtspBackendOf(lab: LabSummary, from: string): string[] {
  const on: string[] = [];
  for (const b of lab.backends) {
    const r = nsRun(b.ns, ['ss', '-Htn', 'state', 'established', '( sport = :8554 )']);
    if (r.stdout.includes(` ${from}:`)) on.push(b.id);
  }
  return on;
}

interface LogLine {
  ts: string;
  msg: string;
  [k: string]: unknown;
}
function logLines(lab: LabSummary): LogLine[] {
  return readLabLog(lab)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return { ts: '', msg: '' };
      }
    });
}

describe.skipIf(!!why)('sessionlb live NAT in the lab', () => {
  let lab: LabSummary;
  beforeAll(() => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    labDown(PREFIX);
    lab = labUp(['--method', 'nat', '--prefix', PREFIX]);
  });
  afterAll(() => {
    labDown(PREFIX);
    rmSync(OUT, { recursive: true, force: true });
  });

  it('runs sessionlb in the lb namespace on its two TAPs', () => {
    expect(lab.sessionlb).not.toBeNull();
    expect(lab.sessionlb!.ns).toBe(`${PREFIX}lb`);
    const running = logLines(lab).find((l) => l.msg === 'sessionlb running');
    expect(running, readLabLog(lab)).toBeTruthy();
    expect(JSON.stringify(running)).toMatch(/tap-front.*tap-srv/);
    // --json names the metrics port; the endpoint answers inside the lb namespace.
    const m = nsRun(lab.sessionlb!.ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]);
    expect(m.stdout).toMatch(/^sessionlb_backend_up\{vip="10\.88\.0\.100",backend="b1"\} 1$/m);
  });

  it('HTTP: every request answered, spread over the three backends; backends see client addresses', async () => {
    const all: string[] = [];
    for (const c of lab.clients.slice(0, 3)) {
      const { backends, failures } = await httpBackends(c.ns, `http://${VIP}/`, 40);
      expect(failures, c.id).toEqual([]);
      expect(backends.length).toBe(40);
      all.push(...backends);
    }
    const by = countBy(all);
    // Maglev on the 5-tuple over fresh source ports: each of 120 lands on a backend with p = 1/3
    // (mean 40, sd 5.2); 20 is 3.9 sd below.
    for (const b of lab.backends) expect(by[b.id] ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(20);
    for (const c of lab.clients) {
      const r = nsRun(c.ns, ['curl', '-s', '-m', '3', `http://${VIP}/whoami`]);
      expect(r.stdout.trim(), c.id).toBe(c.seenAs);
    }
  });

  it('RTSP over UDP: the clients receive media, and each session is whole on one backend (backend captures, tshark)', async () => {
    const clients = [lab.clients[0], lab.clients[2]]; // c1, and c3 behind the NAT box
    const views = await rtspSessionsWithCaptures(lab, clients, RTSP_URL, 3, OUT);
    for (const v of views) {
      const r = v.result;
      expect(r.code, `${v.client}: ${r.stderr.slice(-600)}`).toBe(0);
      expect(r.frames, v.client).toBeGreaterThanOrEqual(50); // 3 s of 25 fps
      expect(r.missed, v.client).toBe(0);
      // Every packet of the session, control and media, both directions, in one backend's capture.
      expect(nonZero(v.all), `${v.client}: ${JSON.stringify(v)}`.slice(0, 800)).toEqual([v.holder]);
      expect(v.setups, v.client).toBeGreaterThanOrEqual(1);
      expect(v.udpToClient[v.holder!], v.client).toBeGreaterThanOrEqual(50); // RTP (+ RTCP SR)
      expect(v.udpFromClient[v.holder!], v.client).toBeGreaterThanOrEqual(1); // NAT punch, RTCP RR
      expect(v.serverPorts.length).toBeGreaterThanOrEqual(2);
      for (const p of v.rtpSourcePorts) expect(v.serverPorts, `RTP from port ${p}`).toContain(p);
    }
  });

  it('RTSP interleaved over TCP and ping to the VIP (sessionlb answers echo for its VIPs)', async () => {
    const [tcp, ping] = await Promise.all([
      rtspClient(lab.clients[1].ns, RTSP_URL, 2, 'tcp'),
      nsRunAsync(lab.clients[3].ns, ['timeout', '8', 'hping3', '-1', '-c', '3', '-i', 'u200000', VIP], { timeoutMs: 10_000 }),
    ]);
    expect(tcp.code, tcp.stderr.slice(-600)).toBe(0);
    expect(tcp.frames).toBeGreaterThanOrEqual(30);
    // hping3 ICMP echo: three replies from the VIP (the NAT box forwards them to c4).
    expect((ping.stdout.match(new RegExp(`ip=${VIP.replace(/\./g, '\\.')} .*icmp_seq=`, 'g')) ?? []).length, ping.stdout + ping.stderr).toBe(3);
  });

  it('SIGHUP reload under load (b2 re-weighted 1 -> 4): no established flow lost, new flows follow the weights', async () => {
    const cfgFile = lab.sessionlb!.config;
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    const wrk = nsRunAsync(lab.clients[1].ns, ['timeout', '30', 'wrk', '-t', '1', '-c', '16', '-d', '6s', `http://${VIP}/`], { timeoutMs: 40_000 });
    const rtsp = rtspClient(lab.clients[0].ns, RTSP_URL, 6);
    await sleep(2500);
    cfg.vips[0].backends[1].weight = 4;
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    process.kill(lab.sessionlb!.pid, 'SIGHUP');
    const [w, r] = await Promise.all([wrk, rtsp]);
    const reloaded = logLines(lab).filter((l) => l.msg === 'config reloaded');
    expect(reloaded.length, readLabLog(lab).slice(-2000)).toBe(1);
    expect(reloaded[0].changed).toEqual(['b2']);
    expect(w.stdout).toMatch(/Requests\/sec/);
    expect(w.stdout, w.stdout).not.toMatch(/Socket errors/);
    expect(w.stdout).not.toMatch(/Non-2xx/);
    expect(Number(w.stdout.match(/(\d+) requests in/)![1])).toBeGreaterThan(1000);
    expect(r.code, r.stderr.slice(-600)).toBe(0);
    expect(r.frames).toBeGreaterThanOrEqual(125);
    expect(r.missed).toBe(0);
    // Weights 1:4:1 -> b2 takes about 2/3 of new connections (Maglev), before it took about 1/3.
    const { backends, failures } = await httpBackends(lab.clients[0].ns, `http://${VIP}/`, 60);
    expect(failures).toEqual([]);
    const by = countBy(backends);
    expect(by.b2 ?? 0, JSON.stringify(by)).toBeGreaterThanOrEqual(30);
    // Back to equal weights for the next test (a second reload).
    cfg.vips[0].backends[1].weight = 1;
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    process.kill(lab.sessionlb!.pid, 'SIGHUP');
    const t0 = Date.now();
    while (logLines(lab).filter((l) => l.msg === 'config reloaded').length < 2 && Date.now() - t0 < 5000) await sleep(50);
    expect(logLines(lab).filter((l) => l.msg === 'config reloaded').length).toBe(2);
  });

  it('a backend dies: marked down within 2 s, new requests and sessions go elsewhere, flows and sessions on the others never move or lose a packet', async () => {
    // Four sessions for 9 s, from four clients (two of them share the NAT address).
    const sessions = lab.clients.map((c) => rtspClient(c.ns, RTSP_URL, 9));
    // Nine keep-alive HTTP connections, one request every 200 ms for 9 s each (one curl, one
    // connection, 45 requests): the ones on healthy backends must never move or break.
    const N_REQ = 45;
    const keepers = Array.from({ length: 9 }, (_, k) => {
      const c = lab.clients[k % 3];
      const args = ['curl', '-s', '--rate', '5/s', '--connect-timeout', '1', '-m', '2', '-w', '%{http_code} %header{x-backend} %{num_connects}\\n'];
      for (let i = 0; i < N_REQ; i++) args.push('-o', '/dev/null', `http://${VIP}/`);
      return nsRunAsync(c.ns, args, { timeoutMs: 60_000 });
    });
    await sleep(2500);
    const placed = lab.clients.map((c) => rtspBackendOf(lab, c.seenAs));
    const busy = [...new Set(placed.flat())];
    // The victim must leave at least one session whose placement is unambiguous (a client with an
    // address of its own: c3 and c4 share the NAT box's, so theirs merge) on another backend.
    // Prefer a backend that holds sessions too, else an idle one.
    const singles = [...new Set(placed.filter((p) => p.length === 1).map((p) => p[0]))];
    const keep = singles[singles.length - 1];
    const victim = busy.find((b) => b !== keep) ?? lab.backends.find((b) => b.id !== keep)!.id;
    const vb = lab.backends.find((b) => b.id === victim)!;
    const before = logLines(lab).length;
    const t0 = Date.now();
    // Kill every server in the victim's namespace (nginx, the RTSP server, iperf3).
    for (const p of nsPids(vb.ns)) process.kill(p, 'SIGKILL');
    let downAt = 0;
    while (Date.now() - t0 < 5000) {
      const l = logLines(lab).slice(before).find((x) => x.msg === 'backend state' && x.backend === victim && x.to === 'down');
      if (l) {
        downAt = Date.parse(l.ts);
        break;
      }
      await sleep(50);
    }
    expect(downAt, `no "backend state ... down" for ${victim} in the log`).toBeGreaterThan(0);
    expect(downAt - t0).toBeLessThanOrEqual(2000);
    // The metrics endpoint (127.0.0.1 inside the lb namespace) agrees.
    const metrics = nsRun(lab.sessionlb!.ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]).stdout;
    expect(metrics).toMatch(new RegExp(`^sessionlb_backend_up\\{vip="${VIP}",backend="${victim}"\\} 0$`, 'm'));
    for (const b of lab.backends.filter((x) => x.id !== victim)) expect(metrics).toMatch(new RegExp(`^sessionlb_backend_up\\{vip="${VIP}",backend="${b.id}"\\} 1$`, 'm'));
    const { backends, failures } = await httpBackends(lab.clients[0].ns, `http://${VIP}/`, 30);
    expect(failures).toEqual([]);
    expect(backends).not.toContain(victim);
    const late = await rtspClient(lab.clients[1].ns, RTSP_URL, 2);
    expect(late.code, late.stderr.slice(-600)).toBe(0);
    expect(late.frames).toBeGreaterThanOrEqual(30);
    const done = await Promise.all(sessions);
    const kept = (await Promise.all(keepers)).map((r) => r.stdout.trim().split('\n').map((l) => l.split(' ')));
    let healthy = 0;
    for (const lines of kept) {
      const first = lines[0]?.[1];
      if (!first || first === victim) continue;
      healthy++;
      // Every answer from the same backend over the one connection opened first (num_connects 0 after it).
      expect(lines.length).toBe(N_REQ);
      expect(lines.filter((l) => l[0] !== '200' || l[1] !== first), `${first}: ${lines.map((l) => l.join(' ')).join(', ')}`).toEqual([]);
      expect(lines.slice(1).filter((l) => l[2] !== '0').length, 'reconnects on a healthy backend').toBe(0);
    }
    expect(healthy, JSON.stringify(kept.map((l) => l[0]))).toBeGreaterThanOrEqual(1);
    lab.clients.forEach((c, i) => {
      if (placed[i].length !== 1 || placed[i][0] === victim) return;
      const r = done[i];
      expect(r.code, `${c.id} on ${placed[i][0]}: ${r.stderr.slice(-600)}`).toBe(0);
      expect(r.frames, c.id).toBeGreaterThanOrEqual(200); // 9 s of 25 fps, less startup
      expect(r.missed, c.id).toBe(0);
    });
    expect(placed.some((p) => p.length === 1 && p[0] !== victim), `sessions: ${JSON.stringify(placed)}`).toBe(true);
    // lab status notices: the victim's servers are gone, everything else (sessionlb included) runs.
    const st = JSON.parse(runCli(['lab', 'status', '--json', '--prefix', PREFIX]).stdout);
    expect(st.up).toBe(false);
    const dead = st.processes.filter((p: { alive: boolean }) => !p.alive);
    expect(dead.map((p: { backend: string }) => p.backend).sort()).toEqual([victim, victim, victim]);
  });
});

describe.skipIf(!!why)('sessionlb live NAT in the lab: admission', () => {
  let lab: LabSummary;
  beforeAll(() => {
    labDown(PREFIX);
    lab = labUp(['--method', 'nat', '--prefix', PREFIX, '--max-sessions', '2']);
  });
  afterAll(() => labDown(PREFIX));

  it('VIP limit 2: the third RTSP connection is reset at once, HTTP still answered, the admitted sessions play on', async () => {
    const admitted = [lab.clients[0], lab.clients[1]].map((c) => rtspClient(c.ns, RTSP_URL, 7));
    await sleep(2500);
    const t0 = Date.now();
    const refused = nsRun(lab.clients[2].ns, ['curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', `${RTSP_URL}`]);
    const ms = Date.now() - t0;
    // curl exit 7: could not connect (RST to the SYN); not a timeout (28).
    expect(refused.code, refused.stderr).toBe(7);
    expect(ms).toBeLessThan(1500);
    const third = await rtspClient(lab.clients[3].ns, RTSP_URL, 2);
    expect(third.code).not.toBe(0);
    expect(third.stderr).toMatch(/Connection refused|reset/i);
    const http = await httpBackends(lab.clients[2].ns, `http://${VIP}/`, 10);
    expect(http.failures).toEqual([]);
    // sessionlb counts the refusals: dropped with reason admission (and answered with a RST).
    const metrics = nsRun(lab.sessionlb!.ns, ['curl', '-s', '-m', '2', `http://127.0.0.1:${lab.sessionlb!.metricsPort}/metrics`]).stdout;
    const adm = metrics.match(/^sessionlb_drops_total\{reason="admission"\} (\d+)$/m);
    expect(adm, metrics.slice(0, 400)).not.toBeNull();
    expect(Number(adm![1])).toBeGreaterThanOrEqual(2);
    const done = await Promise.all(admitted);
    for (const r of done) {
      expect(r.code, r.stderr.slice(-600)).toBe(0);
      expect(r.frames).toBeGreaterThanOrEqual(150);
      expect(r.missed).toBe(0);
    }
  });
});
