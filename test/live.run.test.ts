// `sessionlb run` on real TAP devices between real network namespaces (root). Oracles are the
// kernel and real programs: the client namespace's kernel answers/asks ARP and receives the echo
// replies, real TCP connections (Node's http server in the backend namespaces, Node's http client
// in the client namespace), the backend's MAC as `ip link` reports it, tshark on the --pcap-tap
// captures.
//
//   client ns slbt-c (10.99.1.10) --veth-- bridge slbt-brc -- TAP slbt-tc [sessionlb] TAP slbt-ts -- bridge slbt-brs --veth-- slbt-b1 (10.99.2.11), slbt-b2 (10.99.2.12)
//   sessionlb owns 10.99.1.1 (client side; the client's default gateway) and 10.99.2.1 (the
//   backends' default gateway); VIP 10.99.100.1:80 NAT. The bridge slbt-brs holds 10.99.2.250 so
//   health checks from this namespace reach the backends.
//   DR, one-armed: client slbt-dc (10.99.3.10) and backend slbt-d1 (10.99.3.21, VIP 10.99.103.1 on
//   lo, arp_ignore) on bridge slbt-brd with TAP slbt-td (sessionlb owns 10.99.3.1).
//
// Names start with slbt- and addresses are in 10.99.0.0/16 (the lab uses slb- and 10.88.0.0/16).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT } from './helpers/cli.js';
import { acquireLiveLock, releaseLiveLock } from './helpers/live-lock.js';
import { bridge, host, must, netnsUnsupported, ns, removeAll, sh, sleep } from './helpers/netns.js';

const DIR = join(ROOT, 'test-output', 'live-run');
const NS = ['slbt-c', 'slbt-b1', 'slbt-b2', 'slbt-dc', 'slbt-d1'];
const LINKS = ['slbt-brc', 'slbt-brs', 'slbt-brd', 'slbt-tc', 'slbt-ts', 'slbt-td', 'slbt-c0', 'slbt-b10', 'slbt-b20', 'slbt-dc0', 'slbt-d10'];
const LB_MAC = '02:00:00:00:00:fe';

const why = netnsUnsupported('slbt-');
if (why) console.warn(`test/live.run.test.ts skipped: ${why}`);

const cleanup = () => removeAll(NS, LINKS);

// The backend's HTTP server: answers with its id in the body and an X-Backend header; keeps
// connections open for a minute so a test can reuse one across a reload.
const SERVER_JS = `
const http = require('http');
const [id, addr, port] = process.argv.slice(1);
const s = http.createServer((req, res) => {
  res.setHeader('X-Backend', id);
  if (req.url === '/big') {
    const b = Buffer.alloc(8 << 20);
    for (let i = 0; i < b.length; i += 4) b.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    return res.end(b);
  }
  if (req.method === 'POST') {
    const h = require('crypto').createHash('sha256');
    req.on('data', (d) => h.update(d));
    return req.on('end', () => res.end(h.digest('hex')));
  }
  res.end(id + ' ' + req.socket.remotePort + '\\n');
});
s.keepAliveTimeout = 60000;
s.listen(Number(port), addr, () => console.log('listening'));
`;

// A client keeping one TCP connection: GET, then GET again on the same socket whenever a line
// arrives on stdin; prints each answer's body (backend id and the client port it saw).
const KEEP_JS = `
const net = require('net');
const [vip, port] = process.argv.slice(1);
const s = net.connect(Number(port), vip);
let buf = '';
s.on('data', (d) => {
  buf += d;
  const m = /\\r\\n\\r\\n([^\\n]*\\n)/.exec(buf);
  if (m) { process.stdout.write('ANSWER ' + m[1]); buf = ''; }
});
s.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(1); });
s.on('close', () => { console.log('CLOSED'); process.exit(0); });
const get = () => s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n');
s.on('connect', get);
process.stdin.on('data', get);
`;

// Ping through the client namespace's kernel: a raw ICMP socket, echo request, wait for the reply.
const PING_PY = `
import socket, struct, sys, time, os
dst = sys.argv[1]; n = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(1.0)
def csum(b):
    if len(b) % 2: b += b'\\0'
    x = sum(struct.unpack('!%dH' % (len(b) // 2), b)); x = (x >> 16) + (x & 0xffff); x += x >> 16
    return ~x & 0xffff
ok = 0; ident = os.getpid() & 0xffff
for seq in range(n):
    body = b'sessionlb-live-test'
    hdr = struct.pack('!BBHHH', 8, 0, 0, ident, seq); pkt = struct.pack('!BBHHH', 8, 0, csum(hdr + body), ident, seq) + body
    s.sendto(pkt, (dst, 0)); t = time.time()
    while time.time() - t < 1.0:
        try: data, a = s.recvfrom(2048)
        except socket.timeout: break
        ihl = (data[0] & 15) * 4
        if a[0] == dst and data[ihl] == 0 and struct.unpack('!HH', data[ihl+4:ihl+8]) == (ident, seq) and data[ihl+8:] == body:
            ok += 1; break
print(ok)
`;

// A minimal RTSP server: every request gets 200 with its CSeq; SETUP also a Session and a
// Transport (so the engine starts a session).
const RTSP_JS = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
net.createServer((c) => {
  let buf = '';
  c.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\r\\n\\r\\n')) >= 0) {
      const msg = buf.slice(0, i); buf = buf.slice(i + 4);
      const cseq = (/CSeq:\\s*(\\d+)/i.exec(msg) || [])[1] || '0';
      let extra = '';
      if (msg.startsWith('SETUP')) extra = 'Session: 4711abcd;timeout=60\\r\\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001\\r\\n';
      c.write('RTSP/1.0 200 OK\\r\\nCSeq: ' + cseq + '\\r\\n' + extra + '\\r\\n');
    }
  });
  c.on('error', () => {});
}).listen(Number(port), addr, () => console.log('listening'));
`;

// The client: SETUP on a first connection (a session starts), then a second connection (refused
// while the first session is active), then OPTIONS again on the first.
const RTSP_CLIENT_JS = `
const net = require('net');
const [vip, port] = process.argv.slice(1);
const ask = (s, req) => new Promise((res) => { s.once('data', (d) => res(String(d).split('\\r\\n')[0])); s.write(req); });
const open = () => new Promise((res) => { const s = net.connect(Number(port), vip); s.once('connect', () => res(s)); s.once('error', (e) => res(e.code)); });
(async () => {
  const a = await open();
  console.log('first: ' + await ask(a, 'SETUP rtsp://' + vip + '/s/track1 RTSP/1.0\\r\\nCSeq: 1\\r\\nTransport: RTP/AVP;unicast;client_port=5000-5001\\r\\n\\r\\n'));
  await new Promise((r) => setTimeout(r, 200));
  const b = await open();
  console.log('second: ' + (typeof b === 'string' ? b : 'connected'));
  if (typeof b !== 'string') b.destroy();
  console.log('first again: ' + await ask(a, 'OPTIONS rtsp://' + vip + '/s RTSP/1.0\\r\\nCSeq: 2\\r\\nSession: 4711abcd\\r\\n\\r\\n'));
  a.destroy();
})();
`;

interface Lb {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  waitLog: (re: RegExp, ms?: number) => Promise<string>;
  stop: () => Promise<{ code: number | null; final: Record<string, unknown> }>;
}

function startLb(config: object, name: string, extra: string[] = []): Lb {
  const cfg = join(DIR, `${name}.json`);
  writeFileSync(cfg, JSON.stringify(config, null, 2));
  const proc = spawn(process.execPath, [CLI, 'run', '--config', cfg, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const waitLog = async (re: RegExp, ms = 10_000) => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const line = err.split('\n').find((l) => re.test(l));
      if (line) return line;
      if (proc.exitCode !== null) throw new Error(`sessionlb exited (${proc.exitCode}):\n${err}`);
      await sleep(50);
    }
    throw new Error(`no log line matching ${re} within ${ms} ms:\n${err}`);
  };
  const stop = () => new Promise<{ code: number | null; final: Record<string, unknown> }>((resolve) => {
    if (proc.exitCode !== null) return resolve({ code: proc.exitCode, final: {} });
    // 'close', not 'exit': on a loaded machine the final counters can still be in the stdout
    // pipe when the process has exited.
    proc.once('close', (code) => resolve({ code, final: out.trim() ? JSON.parse(out) : {} }));
    proc.kill('SIGTERM');
  });
  return { proc, out: () => out, err: () => err, waitLog, stop };
}

function startServer(n: string, id: string, addr: string): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', n, process.execPath, '-e', SERVER_JS, id, addr, '80'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return p;
}

async function waitListening(p: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('backend server did not start')), 10_000);
    p.stdout!.on('data', (d) => {
      if (String(d).includes('listening')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

/** n GETs from namespace `n`, one connection each; returns the backend id of each answer. */
function gets(n: string, url: string, count: number): string[] {
  const js = `
const http = require('http');
(async () => {
  const out = [];
  for (let i = 0; i < ${count}; i++) {
    out.push(await new Promise((res) => {
      const r = http.get(${JSON.stringify(url)}, { agent: false, timeout: 3000 }, (m) => { let b = ''; m.on('data', (d) => b += d); m.on('end', () => res(m.headers['x-backend'] + '|' + b.split(' ')[0])); });
      r.on('timeout', () => { r.destroy(); res('timeout'); }); r.on('error', (e) => res('error:' + e.code));
    }));
  }
  console.log(JSON.stringify(out));
})();`;
  const r = sh(ns(n, process.execPath, '-e', js), { timeout: 60_000 });
  if (r.code !== 0) throw new Error(`client failed: ${r.err}`);
  return (JSON.parse(r.out) as string[]).map((x) => {
    const [hdr, body] = x.split('|');
    return hdr === body ? hdr : x;
  });
}

const ping = (n: string, dst: string, count = 3) => Number(must(ns(n, 'python3', '-c', PING_PY, dst, String(count))).trim());
const macOf = (n: string) => must(['ip', '-n', n, '-o', 'link', 'show', 'eth0']).match(/link\/ether ([0-9a-f:]{17})/)![1];

const natConfig = (backends: object[]) => ({
  flowCapacity: 4096,
  vips: [{
    address: '10.99.100.1', ports: [80], protocols: ['tcp'], method: 'nat',
    healthCheck: { type: 'http', path: '/', interval: 0.3, timeout: 0.25, rise: 1, fall: 2 },
    backends,
  }],
  live: {
    interfaces: [
      { name: 'slbt-tc', role: 'client', addresses: ['10.99.1.1'] },
      { name: 'slbt-ts', role: 'server', addresses: ['10.99.2.1'], mtu: 1400 },
    ],
    neighbor: { retryMs: 300 },
    backendSlack: 2,
    metrics: { address: '127.0.0.1', port: 0 },
    offload: false as boolean, // the plain path here; the offload test and the others use the default (on)
  },
});

describe.skipIf(why !== null)('sessionlb run on TAP devices (netns)', () => {
  const servers: ChildProcess[] = [];
  let lb: Lb | null = null;

  beforeAll(async () => {
    await acquireLiveLock();
    cleanup();
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    bridge('slbt-brc', 'slbt-tc');
    bridge('slbt-brs', 'slbt-ts');
    host('slbt-c', 'slbt-c0', 'slbt-brc', '10.99.1.10', '10.99.1.1');
    host('slbt-b1', 'slbt-b10', 'slbt-brs', '10.99.2.11', '10.99.2.1');
    host('slbt-b2', 'slbt-b20', 'slbt-brs', '10.99.2.12', '10.99.2.1');
    must(['ip', 'addr', 'add', '10.99.2.250/24', 'dev', 'slbt-brs']);
  });

  // A failed test must not leave its sessionlb holding the TAP devices for the next one.
  afterEach(async () => {
    if (lb) await lb.stop();
    lb = null;
  });

  afterAll(async () => {
    if (lb) await lb.stop();
    for (const s of servers) s.kill('SIGKILL');
    cleanup();
    releaseLiveLock();
  });

  it('NAT: answers ARP and ping, resolves backend MACs, carries real TCP; reload keeps an open connection; health down re-steers', async () => {
    const s1 = startServer('slbt-b1', 'b1', '10.99.2.11');
    servers.push(s1);
    await waitListening(s1);
    lb = startLb(natConfig([{ id: 'b1', address: '10.99.2.11' }]), 'nat', ['--pcap-tap', join(DIR, 'pcap')]);
    await lb.waitLog(/"backend state".*"b1".*"to":"active"/);

    // ARP: the client's kernel resolved its gateway (sessionlb's 10.99.1.1) to the balancer's MAC;
    // the backend MAC sessionlb resolved is the backend's real one.
    expect(ping('slbt-c', '10.99.1.1')).toBe(3);
    expect(ping('slbt-c', '10.99.100.1')).toBe(3);
    expect(must(['ip', '-n', 'slbt-c', 'neigh', 'show', '10.99.1.1'])).toContain(LB_MAC);
    const resolved = await lb.waitLog(/"backend MAC resolved".*"b1"/);
    expect(JSON.parse(resolved).mac).toBe(macOf('slbt-b1'));
    // The backends' gateway is sessionlb too.
    expect(ping('slbt-b1', '10.99.2.1')).toBe(3);

    // Real TCP through NAT.
    expect(gets('slbt-c', 'http://10.99.100.1/', 5)).toEqual(['b1', 'b1', 'b1', 'b1', 'b1']);

    // A connection that stays open across a reload which adds b2.
    const keep = spawn('ip', ['netns', 'exec', 'slbt-c', process.execPath, '-e', KEEP_JS, '10.99.100.1', '80'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let kout = '';
    keep.stdout!.on('data', (d) => (kout += d));
    const waitAnswers = async (n: number) => {
      const t0 = Date.now();
      while ((kout.match(/^ANSWER /gm) ?? []).length < n && Date.now() - t0 < 5000) await sleep(25);
      return kout.split('\n').filter((l) => l.startsWith('ANSWER '));
    };
    expect((await waitAnswers(1))[0]).toMatch(/^ANSWER b1 \d+$/);

    const s2 = startServer('slbt-b2', 'b2', '10.99.2.12');
    servers.push(s2);
    await waitListening(s2);
    writeFileSync(join(DIR, 'nat.json'), JSON.stringify(natConfig([{ id: 'b1', address: '10.99.2.11' }, { id: 'b2', address: '10.99.2.12', weight: 2 }]), null, 2));
    lb.proc.kill('SIGHUP');
    await lb.waitLog(/"config reloaded".*"added":\["b2"\]/);
    await lb.waitLog(/"backend state".*"b2".*"to":"active"/);
    keep.stdin!.write('again\n');
    const answers = await waitAnswers(2);
    expect(answers[1]).toBe(answers[0]); // same backend, same client port: the same connection
    // New connections now reach b2 as well (weight 2 of 3).
    const after = gets('slbt-c', 'http://10.99.100.1/', 24);
    expect(after.every((x) => x === 'b1' || x === 'b2')).toBe(true);
    expect(after.filter((x) => x === 'b2').length).toBeGreaterThan(4);

    // A reload that needs a restart is refused and changes nothing.
    const bad = natConfig([{ id: 'b1', address: '10.99.2.11' }, { id: 'b2', address: '10.99.2.12', weight: 2 }]);
    (bad.live.interfaces[1] as { mtu: number }).mtu = 1300;
    writeFileSync(join(DIR, 'nat.json'), JSON.stringify(bad, null, 2));
    lb.proc.kill('SIGHUP');
    await lb.waitLog(/"msg":"reload rejected/);

    // b2's server stops: its health check fails, the engine marks it down, new connections all go
    // to b1, and the kept connection (b1) still answers.
    s2.kill('SIGKILL');
    const t0 = Date.now();
    await lb.waitLog(/"backend state".*"b2".*"to":"down"/, 5000);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(gets('slbt-c', 'http://10.99.100.1/', 10)).toEqual(Array(10).fill('b1'));
    keep.stdin!.write('again\n');
    const last = await waitAnswers(3);
    expect(last[2]).toBe(last[0]);

    // A reload that removes b2 and re-weights b1: b1's connection is untouched.
    writeFileSync(join(DIR, 'nat.json'), JSON.stringify(natConfig([{ id: 'b1', address: '10.99.2.11', weight: 3 }]), null, 2));
    lb.proc.kill('SIGHUP');
    await lb.waitLog(/"config reloaded".*"removed":\["b2"\],"changed":\["b1"\]/);
    keep.stdin!.write('again\n');
    expect((await waitAnswers(4))[3]).toBe(last[0]);
    keep.kill();

    // Frames longer than the server side's MTU (1400) get ICMP fragmentation needed: the client
    // kernel records the path MTU.
    const big = sh(ns('slbt-c', 'python3', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.settimeout(3); s.connect(('10.99.100.1', 80))
s.sendall(b'GET / HTTP/1.1\\r\\nHost: v\\r\\nX-Pad: ' + b'x' * 3000 + b'\\r\\n\\r\\n')
print(s.recv(100).split(b'\\r\\n')[0].decode())
`), { timeout: 15_000 });
    expect(big.out.trim()).toBe('HTTP/1.1 200 OK');
    expect(must(['ip', '-n', 'slbt-c', 'route', 'get', '10.99.100.1'])).toMatch(/mtu 1400/);

    // Prometheus metrics on localhost: per-backend packets and health, drops, batch sizes.
    const url = JSON.parse(await lb.waitLog(/"metrics listening"/)).url as string;
    const text = await (await fetch(url)).text();
    const metric = (re: RegExp) => Number(text.match(re)?.[1] ?? NaN);
    expect(metric(/^sessionlb_backend_packets_total\{[^}]*backend="b1"[^}]*\} (\d+)/m)).toBeGreaterThan(10);
    expect(text).not.toMatch(/backend="b2"/); // removed
    expect(metric(/^sessionlb_backend_up\{[^}]*backend="b1"[^}]*\} (\d+)/m)).toBe(1);
    expect(metric(/^sessionlb_batch_size_count (\d+)/m)).toBeGreaterThan(10);
    expect(metric(/^sessionlb_config_reloads_total (\d+)/m)).toBe(2);
    expect(metric(/^sessionlb_config_reload_failures_total (\d+)/m)).toBe(1);

    const { code, final } = await lb.stop();
    lb = null;
    expect(code).toBe(0);
    const f = final as { counters: Record<string, number>; slowPath: Record<string, number>; backends: { id: string; flows: number }[] };
    expect(f.counters['nat-rewrites']).toBeGreaterThan(0);
    expect(f.slowPath['arp-replies']).toBeGreaterThan(0);
    expect(f.slowPath['echo-replies']).toBeGreaterThanOrEqual(9);
    expect(f.slowPath['too-big-sent']).toBeGreaterThan(0);
    expect(f.backends.map((b) => b.id)).toEqual(['b1']);

    // The mirror: tshark reads both captures; the client side shows HTTP replies from the VIP,
    // the server side requests to the backends' addresses.
    const tshark = (file: string, filter: string) => must(['tshark', '-r', join(DIR, 'pcap', file), '-Y', filter, '-T', 'fields', '-e', 'ip.src', '-e', 'ip.dst']).trim().split('\n').filter(Boolean);
    const cliReplies = tshark('slbt-tc.pcap', 'http.response');
    expect(cliReplies.length).toBeGreaterThan(10);
    expect(cliReplies.every((l) => l.startsWith('10.99.100.1\t'))).toBe(true);
    const srvRequests = tshark('slbt-ts.pcap', 'http.request');
    expect(new Set(srvRequests.map((l) => l.split('\t')[1]))).toEqual(new Set(['10.99.2.11', '10.99.2.12']));
  });

  it('draining (config state, applied by SIGHUP): the open connection keeps its backend, new connections go elsewhere', async () => {
    const s2 = startServer('slbt-b2', 'b2', '10.99.2.12');
    servers.push(s2);
    await waitListening(s2);
    const both = (drain: string | null) => natConfig([
      { id: 'b1', address: '10.99.2.11', ...(drain === 'b1' ? { state: 'draining' } : {}) },
      { id: 'b2', address: '10.99.2.12', ...(drain === 'b2' ? { state: 'draining' } : {}) },
    ]);
    const c = both(null);
    lb = startLb({ ...c, live: { ...c.live, metrics: undefined } }, 'drain');
    await lb.waitLog(/"backend state".*"b1".*"to":"active"/);
    await lb.waitLog(/"backend state".*"b2".*"to":"active"/);
    const keep = spawn('ip', ['netns', 'exec', 'slbt-c', process.execPath, '-e', KEEP_JS, '10.99.100.1', '80'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let kout = '';
    keep.stdout!.on('data', (d) => (kout += d));
    const answers = async (n: number) => {
      const t0 = Date.now();
      while ((kout.match(/^ANSWER /gm) ?? []).length < n && Date.now() - t0 < 5000) await sleep(25);
      return kout.split('\n').filter((l) => l.startsWith('ANSWER '));
    };
    const first = (await answers(1))[0];
    const owner = first.split(' ')[1];
    const other = owner === 'b1' ? 'b2' : 'b1';
    const d = both(owner);
    writeFileSync(join(DIR, 'drain.json'), JSON.stringify({ ...d, live: { ...d.live, metrics: undefined } }, null, 2));
    lb.proc.kill('SIGHUP');
    await lb.waitLog(new RegExp(`"backend state".*"${owner}".*"to":"draining"`));
    expect(gets('slbt-c', 'http://10.99.100.1/', 10)).toEqual(Array(10).fill(other));
    keep.stdin!.write('again\n');
    expect((await answers(2))[1]).toBe(first);
    keep.kill();
  });

  it('offload (IFF_VNET_HDR, TSO super-frames): 8 MiB each way through NAT arrive intact; the server side MTU still holds', async () => {
    const c = natConfig([{ id: 'b1', address: '10.99.2.11' }]);
    lb = startLb({ ...c, live: { ...c.live, offload: true, metrics: undefined } }, 'offload');
    await lb.waitLog(/"backend state".*"b1".*"to":"active"/);
    const js = `
const http = require('http'), crypto = require('crypto');
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const big = Buffer.alloc(8 << 20);
for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
const up = crypto.randomBytes(8 << 20);
http.get('http://10.99.100.1/big', (m) => {
  const parts = []; m.on('data', (d) => parts.push(d));
  m.on('end', () => {
    const got = Buffer.concat(parts);
    const r = http.request('http://10.99.100.1/sum', { method: 'POST' }, (m2) => {
      let b = ''; m2.on('data', (d) => b += d);
      m2.on('end', () => console.log(JSON.stringify({ down: got.length === big.length && sha(got) === sha(big), up: b === sha(up) })));
    });
    r.end(up);
  });
});`;
    const r = sh(ns('slbt-c', process.execPath, '-e', js), { timeout: 60_000 });
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toEqual({ down: true, up: true });
    // Path MTU: forget what the first test taught the client, then send a segment too big for
    // the server side (1400) with DF: the super-frame's segments are too big, ICMP says so.
    must(['ip', '-n', 'slbt-c', 'route', 'flush', 'cache']);
    const big = sh(ns('slbt-c', 'python3', '-c', `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)
s.settimeout(3); s.connect(('10.99.100.1', 80))
s.sendall(b'POST /sum HTTP/1.1\\r\\nHost: v\\r\\nContent-Length: 30000\\r\\n\\r\\n' + b'x' * 30000)
print(s.recv(100).split(b'\\r\\n')[0].decode())
`), { timeout: 15_000 });
    expect(big.out.trim()).toBe('HTTP/1.1 200 OK');
    expect(must(['ip', '-n', 'slbt-c', 'route', 'get', '10.99.100.1'])).toMatch(/mtu 1400/);
    const { final } = await lb.stop();
    lb = null;
    const f = final as { slowPath: Record<string, number>; interfaces: { name: string; rxBytes: number; rxPackets: number }[] };
    expect(f.slowPath['too-big-sent']).toBeGreaterThan(0);
    // Super-frames: far fewer frames than 1500-byte packets for the bytes carried.
    const cli = f.interfaces.find((i) => i.name === 'slbt-tc')!;
    expect(cli.rxBytes / cli.rxPackets).toBeGreaterThan(3000);
  });

  it('admission on the wire: with the VIP\'s session limit reached, a new RTSP control connection is refused by a RST; the admitted session keeps working', async () => {
    const rtsp = spawn('ip', ['netns', 'exec', 'slbt-b1', process.execPath, '-e', RTSP_JS, '10.99.2.11', '554'], { stdio: ['ignore', 'pipe', 'inherit'] });
    servers.push(rtsp);
    await waitListening(rtsp);
    lb = startLb({
      flowCapacity: 4096,
      vips: [{
        address: '10.99.100.2', ports: [554], protocols: ['tcp', 'udp'], method: 'nat', policy: 'session', maxSessions: 1,
        backends: [{ id: 'b1', address: '10.99.2.11' }],
      }],
      live: {
        interfaces: [
          { name: 'slbt-tc', role: 'client', addresses: ['10.99.1.1'] },
          { name: 'slbt-ts', role: 'server', addresses: ['10.99.2.1'] },
        ],
        // The client itself as the "gateway": replies go to the MAC sessionlb resolves for it.
        gateway: { address: '10.99.1.10' },
        neighbor: { retryMs: 300 },
      },
    }, 'admission');
    await lb.waitLog(/"backend state".*"b1".*"to":"active"/);
    expect(JSON.parse(await lb.waitLog(/"gateway resolved"/)).mac).toBe(macOf('slbt-c'));
    const r = sh(ns('slbt-c', process.execPath, '-e', RTSP_CLIENT_JS, '10.99.100.2', '554'), { timeout: 20_000 });
    expect(r.err).toBe('');
    expect(r.out.trim().split('\n')).toEqual([
      'first: RTSP/1.0 200 OK',
      'second: ECONNREFUSED',
      'first again: RTSP/1.0 200 OK',
    ]);
    const { final } = await lb.stop();
    lb = null;
    const f = final as { drops: Record<string, number>; slowPath: Record<string, number>; counters: Record<string, number> };
    expect(f.counters['sessions-started']).toBe(1);
    expect(f.drops.admission).toBeGreaterThanOrEqual(1);
    expect(f.slowPath['admission-rst']).toBeGreaterThanOrEqual(1);
  });

  it("IPv6 NAT: neighbour discovery both ways (the client's kernel learns our MAC, we learn the backend's), real TCP", async () => {
    must(['ip', '-n', 'slbt-c', 'addr', 'add', 'fd99:1::10/64', 'dev', 'eth0', 'nodad']);
    must(['ip', '-n', 'slbt-c', 'route', 'add', 'default', 'via', 'fd99:1::1']);
    must(['ip', '-n', 'slbt-b1', 'addr', 'add', 'fd99:2::11/64', 'dev', 'eth0', 'nodad']);
    must(['ip', '-n', 'slbt-b1', 'route', 'add', 'default', 'via', 'fd99:2::1']);
    const s6 = startServer('slbt-b1', 'b1v6', 'fd99:2::11');
    servers.push(s6);
    await waitListening(s6);
    lb = startLb({
      flowCapacity: 4096,
      vips: [{ address: 'fd99:100::1', ports: [80], protocols: ['tcp'], method: 'nat', backends: [{ id: 'b1v6', address: 'fd99:2::11' }] }],
      live: {
        interfaces: [
          { name: 'slbt-tc', role: 'client', addresses: ['fd99:1::1'] },
          { name: 'slbt-ts', role: 'server', addresses: ['fd99:2::1'] },
        ],
        neighbor: { retryMs: 300 },
      },
    }, 'nat6');
    const resolved = await lb.waitLog(/"backend MAC resolved".*"b1v6"/);
    expect(JSON.parse(resolved).mac).toBe(macOf('slbt-b1'));
    await lb.waitLog(/"backend state".*"b1v6".*"to":"active"/);
    expect(gets('slbt-c', 'http://[fd99:100::1]/', 4)).toEqual(Array(4).fill('b1v6'));
    expect(must(['ip', '-n', 'slbt-c', '-6', 'neigh', 'show', 'fd99:1::1'])).toContain(LB_MAC);
    const { final } = await lb.stop();
    lb = null;
    const f = final as { slowPath: Record<string, number>; counters: Record<string, number> };
    expect(f.slowPath['nd-replies']).toBeGreaterThan(0);
    expect(f.counters['nat-rewrites']).toBeGreaterThan(10);
  });

  it('DR, one-armed: the backend answers the client directly; the balancer only sees the client side', async () => {
    bridge('slbt-brd', 'slbt-td');
    host('slbt-dc', 'slbt-dc0', 'slbt-brd', '10.99.3.10', '10.99.3.1');
    host('slbt-d1', 'slbt-d10', 'slbt-brd', '10.99.3.21', '10.99.3.254');
    // The VIP on the backend's loopback, never announced or answered for by the backend.
    must(['ip', '-n', 'slbt-d1', 'addr', 'add', '10.99.103.1/32', 'dev', 'lo']);
    must(ns('slbt-d1', 'sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2'));
    const d1 = startServer('slbt-d1', 'd1', '0.0.0.0');
    servers.push(d1);
    await waitListening(d1);
    lb = startLb({
      flowCapacity: 4096,
      vips: [{ address: '10.99.103.1', ports: [80], protocols: ['tcp'], method: 'dr', backends: [{ id: 'd1', address: '10.99.3.21' }] }],
      live: { interfaces: [{ name: 'slbt-td', role: 'both', addresses: ['10.99.3.1'] }], neighbor: { retryMs: 300 } },
    }, 'dr');
    await lb.waitLog(/"backend state".*"d1".*"to":"active"/);
    expect(gets('slbt-dc', 'http://10.99.103.1/', 5)).toEqual(Array(5).fill('d1'));
    const { code, final } = await lb.stop();
    lb = null;
    expect(code).toBe(0);
    const f = final as { counters: Record<string, number> };
    expect(f.counters['tx-backend']).toBeGreaterThan(5);
    // One-way: the replies went from the backend to the client, not through the balancer.
    expect(f.counters['tx-client']).toBe(0);
  });
});
