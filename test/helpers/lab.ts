// Helpers for the lab's end-to-end tests (test/lab.*.test.ts): can this machine host the lab,
// the CLI as a user runs it, HTTP requests from a client namespace, captures in a namespace.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, runCli } from './cli.js';
import { nsPids, nsRun, nsRunAsync, run, sleep, startDetached, stopPids, alive } from '../../host/lab/proc.js';
import type { LabSummary } from '../../host/lab/lab.js';

export { CLI, ROOT, runCli };

/**
 * Why the lab cannot run here (the kernel or the container lacks a feature), or null. Missing
 * programs are not a reason to skip: CI installs them (.ci/run), so their absence is a failure.
 */
export function labUnsupported(opts: { tap?: boolean } = {}): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'the lab needs root (network namespaces)';
  const probe = `slbprobe${process.pid}`;
  const r = run(['ip', 'netns', 'add', probe]);
  if (r.code !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  try {
    const br = run(['ip', '-n', probe, 'link', 'add', 'br0', 'type', 'bridge']);
    if (br.code !== 0) return `no bridge support in this kernel: ${br.stderr.trim()}`;
    const ve = run(['ip', '-n', probe, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    if (ve.code !== 0) return `no veth support in this kernel: ${ve.stderr.trim()}`;
    const nf = run(['ip', 'netns', 'exec', probe, 'nft', 'add table ip probe']);
    if (nf.code !== 0 && /Operation not supported|No such file/.test(nf.stderr)) return `no nftables in this kernel: ${nf.stderr.trim()}`;
    if (opts.tap) {
      if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun (TUN/TAP) in this kernel or container';
      const tp = run(['ip', '-n', probe, 'tuntap', 'add', 'dev', 't0', 'mode', 'tap']);
      if (tp.code !== 0) return `cannot create a TAP device: ${tp.stderr.trim()}`;
    }
  } finally {
    run(['ip', 'netns', 'del', probe]);
  }
  return null;
}

/**
 * A namespace prefix of this test process's own (`t<tag><pid>-`), so two runs of the suite at once
 * (or two test files) never touch each other's labs. Labs left by test processes that no longer
 * exist (a crashed run) are removed first.
 */
export function testPrefix(tag: string): string {
  const seen = new Set<string>();
  for (const line of run(['ip', 'netns', 'list']).stdout.split('\n')) {
    const m = line.match(/^(t[a-z](\d+)-)/);
    if (m && !seen.has(m[1]) && !alive(Number(m[2]))) {
      seen.add(m[1]);
      labDown(m[1]);
    }
  }
  return `t${tag}${process.pid}-`;
}

export function labUp(args: string[]): LabSummary {
  const r = runCli(['lab', 'up', '--json', ...args], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`lab up ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as LabSummary;
}

export function labDown(prefix: string): void {
  runCli(['lab', 'down', '--prefix', prefix], { timeoutMs: 60_000 });
}

/** n HTTP GETs from namespace ns to url, each on a new connection; the X-Backend of each answer ('' if none). */
export async function httpBackends(ns: string, url: string, n: number, opts: { parallel?: number } = {}): Promise<{ backends: string[]; failures: string[] }> {
  const parallel = opts.parallel ?? 1;
  const per = Math.ceil(n / parallel);
  const results = await Promise.all(
    Array.from({ length: parallel }, (_, k) => {
      const count = Math.min(per, n - k * per);
      if (count <= 0) return Promise.resolve(null);
      // One curl process, `count` URLs; `Connection: close` makes each its own TCP connection.
      const args = ['curl', '-s', '--connect-timeout', '1', '-m', '2', '-H', 'Connection: close', '-w', '%{http_code} %header{x-backend}\\n'];
      for (let i = 0; i < count; i++) args.push('-o', '/dev/null', url);
      return nsRunAsync(ns, args, { timeoutMs: 30_000 });
    }),
  );
  const backends: string[] = [];
  const failures: string[] = [];
  for (const r of results) {
    if (!r) continue;
    for (const line of r.stdout.split('\n').filter((l) => l)) {
      const [code, id] = line.trim().split(/\s+/);
      if (code === '200' && id) backends.push(id);
      else failures.push(line);
    }
    if (r.code !== 0) failures.push(`curl exit ${r.code}: ${r.stderr.trim()}`);
  }
  return { backends, failures };
}

export function countBy<T extends string>(xs: T[]): Record<string, number> {
  const o: Record<string, number> = {};
  for (const x of xs) o[x] = (o[x] ?? 0) + 1;
  return o;
}

/** A tcpdump running in a namespace, writing FILE; stop() ends it and waits until the file is complete. */
export class Capture {
  readonly pid: number;
  constructor(readonly ns: string, readonly iface: string, readonly file: string, filter: string) {
    this.pid = startDetached(ns, ['tcpdump', '-i', iface, '-s', '0', '-B', '8192', '-U', '--immediate-mode', '-n', '-w', file, filter], `${file}.log`);
  }
  /** Waits until tcpdump says it is listening. */
  async ready(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (existsSync(`${this.file}.log`) && /listening on/.test(readFileSync(`${this.file}.log`, 'utf8'))) return;
      if (!alive(this.pid)) throw new Error(`tcpdump in ${this.ns} exited: ${readFileSync(`${this.file}.log`, 'utf8')}`);
      await sleep(25);
    }
    throw new Error(`tcpdump in ${this.ns} not listening after ${timeoutMs} ms`);
  }
  /**
   * Stops tcpdump a second after the traffic (so it has read everything queued; a capture stopped at
   * once loses its end) and returns how many packets the kernel dropped for it (its own count).
   */
  async stop(settleMs = 1000): Promise<number> {
    await sleep(settleMs);
    try {
      process.kill(this.pid, 'SIGINT');
    } catch {
      /* gone */
    }
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && alive(this.pid)) await sleep(25);
    await stopPids([this.pid], 100);
    const m = readFileSync(`${this.file}.log`, 'utf8').match(/(\d+) packets? dropped by kernel/);
    return m ? Number(m[1]) : -1;
  }
}

/** tshark fields of every packet of a capture matching a display filter, one array per packet. */
export function tsharkFields(file: string, filter: string, fields: string[]): string[][] {
  const args = ['tshark', '-n', '-r', file, '-o', 'rtp.heuristic_rtp:TRUE', '-T', 'fields', '-E', 'separator=|'];
  if (filter) args.push('-Y', filter);
  for (const f of fields) args.push('-e', f);
  const r = run(args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l)
    .map((l) => l.split('|'));
}

/** Runs a real RTSP client (ffmpeg) in ns for `seconds` of media; resolves with its outcome. */
export async function rtspClient(ns: string, url: string, seconds: number, transport: 'udp' | 'tcp' = 'udp'): Promise<{ code: number; frames: number; missed: number; stderr: string; ms: number }> {
  const r = await nsRunAsync(
    ns,
    ['timeout', '-s', 'INT', String(seconds + 15), 'ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'info', '-rtsp_transport', transport, '-i', url, '-t', String(seconds), '-map', '0', '-c', 'copy', '-f', 'null', '-'],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const frames = [...r.stderr.matchAll(/frame=\s*(\d+)/g)].map((m) => Number(m[1]));
  const missed = [...r.stderr.matchAll(/RTP: missed (\d+) packets/g)].reduce((a, m) => a + Number(m[1]), 0);
  return { code: r.code, frames: frames.length ? frames[frames.length - 1] : 0, missed, stderr: r.stderr, ms: r.ms };
}

export function labDirOf(s: LabSummary): string {
  return s.dir;
}

export function readLabLog(s: LabSummary): string {
  const f = s.sessionlb?.log ?? join(s.dir, 'sessionlb.log');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
}

export { nsPids, nsRun, nsRunAsync, run, sleep, alive };
export const CLI_PATH = CLI;

/** What each backend's capture holds of one client's RTSP session. */
export interface SessionView {
  client: string;
  result: Awaited<ReturnType<typeof rtspClient>>;
  /** Packets to or from the client's address (as the backends see it), per backend id. */
  all: Record<string, number>;
  control: Record<string, number>; // TCP port 8554
  udpToClient: Record<string, number>;
  udpFromClient: Record<string, number>;
  /** The backend holding the control connection (null if none or several). */
  holder: string | null;
  setups: number; // the client's SETUP requests in the holder's capture
  /** Source ports of UDP from the holder to the client, and the server ports its SETUP replies announced. */
  rtpSourcePorts: string[];
  serverPorts: string[];
}

/**
 * Plays one RTSP-over-UDP session per client at once (ffmpeg, `seconds` of media) while tcpdump
 * captures every backend's eth0, then reads the captures with tshark: per backend, the client's
 * packets (all, control, UDP each way), the SETUPs, the server ports the SETUP replies announced.
 * The caller asserts on the views.
 */
export async function rtspSessionsWithCaptures(lab: LabSummary, clients: LabSummary['clients'], url: string, seconds: number, dir: string): Promise<SessionView[]> {
  const caps = lab.backends.map((b) => new Capture(b.ns, 'eth0', join(dir, `rtsp-${b.id}.pcap`), 'tcp port 8554 or udp'));
  await Promise.all(caps.map((c) => c.ready()));
  const results = await Promise.all(clients.map((c) => rtspClient(c.ns, url, seconds)));
  const dropped = await Promise.all(caps.map((c) => c.stop()));
  if (dropped.some((d) => d !== 0)) throw new Error(`tcpdump lost packets (dropped by kernel per backend: ${dropped.join(', ')}); the captures cannot be judged`);
  // One tshark pass per capture; the per-client figures are computed from its rows.
  interface Pkt { src: string; dst: string; tcp: boolean; udp: boolean; sport: string; method: string; transport: string }
  const pkts: Pkt[][] = caps.map((cap) =>
    tsharkFields(cap.file, 'ip', ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'rtsp.method', 'rtsp.transport']).map((f) => ({
      src: f[0], dst: f[1], tcp: f[2] !== '', udp: f[4] !== '', sport: f[2] || f[4], method: f[5] ?? '', transport: f[6] ?? '',
    })),
  );
  return clients.map((c, i) => {
    const a = c.seenAs;
    const count = (pred: (p: Pkt) => boolean) => {
      const o: Record<string, number> = {};
      lab.backends.forEach((b, k) => (o[b.id] = pkts[k].filter(pred).length));
      return o;
    };
    const mine = (p: Pkt) => p.src === a || p.dst === a;
    const control = count((p) => mine(p) && p.tcp);
    const holders = lab.backends.filter((b) => control[b.id] > 0);
    const v: SessionView = {
      client: c.id, result: results[i], all: count(mine), control,
      udpToClient: count((p) => p.udp && p.dst === a), udpFromClient: count((p) => p.udp && p.src === a),
      holder: holders.length === 1 ? holders[0].id : null, setups: 0, rtpSourcePorts: [], serverPorts: [],
    };
    if (!v.holder) return v;
    const hp = pkts[lab.backends.findIndex((b) => b.id === v.holder)];
    v.setups = hp.filter((p) => p.src === a && p.method.split(',').includes('SETUP')).length;
    v.rtpSourcePorts = [...new Set(hp.filter((p) => p.udp && p.dst === a).map((p) => p.sport))];
    const replies = hp.filter((p) => p.dst === a && p.transport).map((p) => p.transport);
    v.serverPorts = [...new Set(replies.flatMap((t) => [...t.matchAll(/server_port=(\d+)-(\d+)/g)].flatMap((m) => [m[1], m[2]])))];
    return v;
  });
}

/** Backends with a non-zero count. */
export function nonZero(o: Record<string, number>): string[] {
  return Object.keys(o).filter((k) => o[k] > 0);
}
