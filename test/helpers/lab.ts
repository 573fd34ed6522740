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
    this.pid = startDetached(ns, ['tcpdump', '-i', iface, '-s', '0', '-U', '--immediate-mode', '-n', '-w', file, filter], `${file}.log`);
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
  async stop(): Promise<void> {
    try {
      process.kill(this.pid, 'SIGINT');
    } catch {
      /* gone */
    }
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && alive(this.pid)) await sleep(25);
    await stopPids([this.pid], 100);
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
