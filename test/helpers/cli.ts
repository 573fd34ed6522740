// Test helpers for driving the sessionlb CLI as a user would: run `node dist/host/cli/main.js`,
// make scratch directories under test-output/ (gitignored), read report.json and check its
// accounting invariant, and build small input captures (Ethernet/IPv4/IPv6, TCP/UDP/ICMP, with
// correct checksums) so the oracle tests do not depend on any particular generator.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapWriter } from '../../host/io/pcap-writer.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The CLI under test; SESSIONLB_CLI points the tests at another build (e.g. a mutated copy). */
export const CLI = process.env.SESSIONLB_CLI ? resolve(process.env.SESSIONLB_CLI) : join(ROOT, 'dist', 'host', 'cli', 'main.js');

export interface CliResult {
  code: number; // exit status; -1 if killed by a signal
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node dist/host/cli/main.js ...args` synchronously from the repository root. */
export function runCli(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): CliResult {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: performance.now() - t0 };
}

/** Same as runCli but without blocking the event loop, so several replays can run at once. */
export function runCliAsync(args: string[], opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? -1, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/**
 * An empty directory test-output/<name> (gitignored), emptied first if a previous run left it;
 * left behind afterwards for inspection. Names must be unique across test files.
 */
export function tempDir(name: string): string {
  const dir = join(ROOT, 'test-output', name.replace(/[^\w.-]+/g, '_'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---------------------------------------------------------------------------------------------
// report.json

export interface Report {
  input: { packets: number; bytes: number; linktypes: Record<string, number>; truncated: boolean; errors: unknown[] };
  backends: Record<string, { packets: number; bytes: number; flows: number; replyPackets: number; replyBytes: number }>;
  client: { packets: number; bytes: number };
  passed: number;
  passedBy: Record<string, number>;
  dropped: Record<string, number>;
  fairness: Record<string, { jain: number; maxMean: number }>;
  packetsPerSecond: number;
}

export function readReport(outDir: string): Report {
  return JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as Report;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/** The terms of the accounting invariant: input.packets == backends + client + passed + dropped. */
export function accounting(r: Report) {
  const backends = Object.values(r.backends).reduce((a, b) => a + b.packets, 0);
  const dropped = sum(r.dropped);
  return { input: r.input.packets, backends, client: r.client.packets, passed: r.passed, dropped, total: backends + r.client.packets + r.passed + dropped };
}

// ---------------------------------------------------------------------------------------------
// Building input captures. Every checksum is computed here in plain TypeScript (RFC 1071), so a
// frame that tshark calls bad in an output was broken by the engine, not by the test.

export type Proto = 'tcp' | 'udp' | 'icmp';

export interface PacketSpec {
  src: string; // IPv4 or IPv6 address; both ends must be the same family
  dst: string;
  proto: Proto;
  sport?: number; // tcp/udp; ICMP echo identifier
  dport?: number; // tcp/udp; ICMP echo sequence
  payload?: Uint8Array | string;
  tcpFlags?: number; // default ACK|PSH when there is a payload, SYN otherwise
  seq?: number;
  ack?: number;
  ttl?: number;
  ipId?: number;
  ipOptions?: Uint8Array; // IPv4 only, a multiple of 4 bytes
  udpZeroChecksum?: boolean; // IPv4 UDP sent without a checksum (legal, RFC 768)
  srcMac?: string;
  dstMac?: string;
  vlan?: number; // 802.1Q tag
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function ipBytes(addr: string): Buffer {
  if (isIPv4(addr)) return Buffer.from(addr.split('.').map(Number));
  if (!isIPv6(addr)) throw new Error(`not an IP address: ${addr}`);
  let [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** Ones-complement sum of `parts` (RFC 1071), folded and complemented. */
export function inetChecksum(...parts: Uint8Array[]): number {
  let s = 0;
  for (const p of parts) {
    for (let i = 0; i + 1 < p.length; i += 2) s += (p[i] << 8) | p[i + 1];
    if (p.length & 1) s += p[p.length - 1] << 8;
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** An IPv4 or IPv6 packet (no link header) as described by `p`. */
export function ipPacket(p: PacketSpec): Buffer {
  const v6 = isIPv6(p.src);
  if (v6 !== isIPv6(p.dst)) throw new Error('mixed address families');
  const src = ipBytes(p.src);
  const dst = ipBytes(p.dst);
  const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : Buffer.from(p.payload ?? []);
  const protoNum = p.proto === 'tcp' ? 6 : p.proto === 'udp' ? 17 : v6 ? 58 : 1;
  let l4: Buffer;
  if (p.proto === 'tcp') {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(p.sport ?? 40000, 0);
    l4.writeUInt16BE(p.dport ?? 80, 2);
    l4.writeUInt32BE((p.seq ?? 1000) >>> 0, 4);
    l4.writeUInt32BE((p.ack ?? 0) >>> 0, 8);
    l4[12] = 5 << 4;
    l4[13] = p.tcpFlags ?? (payload.length ? TCP_ACK | TCP_PSH : TCP_SYN);
    l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
  } else if (p.proto === 'udp') {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(p.sport ?? 40000, 0);
    l4.writeUInt16BE(p.dport ?? 80, 2);
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  } else {
    l4 = Buffer.alloc(8 + payload.length);
    l4[0] = v6 ? 128 : 8; // echo request
    l4.writeUInt16BE(p.sport ?? 1, 4);
    l4.writeUInt16BE(p.dport ?? 1, 6);
    payload.copy(l4, 8);
  }
  const csumOff = p.proto === 'tcp' ? 16 : p.proto === 'udp' ? 6 : 2;
  const pseudo = Buffer.alloc(v6 ? 40 : 12);
  if (v6) {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(l4.length, 32);
    pseudo[39] = protoNum;
  } else {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = protoNum;
    pseudo.writeUInt16BE(l4.length, 10);
  }
  if (!(p.proto === 'udp' && p.udpZeroChecksum && !v6)) {
    // ICMPv4 has no pseudo-header; ICMPv6 does.
    let c = p.proto === 'icmp' && !v6 ? inetChecksum(l4) : inetChecksum(pseudo, l4);
    if (c === 0 && p.proto === 'udp') c = 0xffff; // RFC 768: a computed 0 is sent as all ones
    l4.writeUInt16BE(c, csumOff);
  }
  if (v6) {
    const h = Buffer.alloc(40);
    h.writeUInt32BE(0x60000000, 0);
    h.writeUInt16BE(l4.length, 4);
    h[6] = protoNum;
    h[7] = p.ttl ?? 64;
    src.copy(h, 8);
    dst.copy(h, 24);
    return Buffer.concat([h, l4]);
  }
  const opts = Buffer.from(p.ipOptions ?? []);
  if (opts.length % 4) throw new Error('IPv4 options must be a multiple of 4 bytes');
  const h = Buffer.alloc(20 + opts.length);
  h[0] = 0x40 | (h.length >> 2);
  h.writeUInt16BE(h.length + l4.length, 2);
  h.writeUInt16BE(p.ipId ?? 1, 4);
  h.writeUInt16BE(0x4000, 6); // DF
  h[8] = p.ttl ?? 64;
  h[9] = protoNum;
  src.copy(h, 12);
  dst.copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, l4]);
}

/** An Ethernet frame carrying ipPacket(p). */
export function ethFrame(p: PacketSpec): Buffer {
  const ip = ipPacket(p);
  const etherType = isIPv6(p.src) ? 0x86dd : 0x0800;
  const tag = p.vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, (p.vlan >> 8) & 0x0f, p.vlan & 0xff]);
  const type = Buffer.alloc(2);
  type.writeUInt16BE(etherType);
  return Buffer.concat([
    macBytes(p.dstMac ?? '02:00:00:00:00:fe'),
    macBytes(p.srcMac ?? '02:00:00:00:aa:01'),
    tag,
    type,
    ip,
  ]);
}

/** Writes a classic pcap (microsecond timestamps) of `frames`, `stepUs` apart from `startS`. */
export function writeCapture(
  path: string,
  frames: Buffer[],
  opts: { linktype?: number; startS?: number; stepUs?: number; nanos?: boolean } = {},
): string {
  const w = new PcapWriter(path, { linktype: opts.linktype ?? 1, nanos: opts.nanos ?? false });
  const start = BigInt(opts.startS ?? 1_700_000_000) * 1_000_000_000n;
  const step = BigInt(opts.stepUs ?? 1000) * 1000n;
  frames.forEach((f, i) => w.write(f, 0, f.length, f.length, start + BigInt(i) * step));
  w.close();
  return path;
}

// ---------------------------------------------------------------------------------------------
// Whole flows: TCP (handshake, one request, one response, FIN in both directions) and UDP
// (request/response pairs), interleaved round-robin, with sequence numbers that tshark's TCP
// analysis accepts.

export interface FlowSpec {
  proto: 'tcp' | 'udp';
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  requestBytes?: number; // payload of the request (default 100)
  responseBytes?: number; // payload of the response (default 300)
  exchanges?: number; // UDP request/response pairs (default 2)
}

export interface BuiltFrame {
  flow: number; // index into the FlowSpec array
  dir: 'request' | 'reply';
  data: Buffer;
}

export interface BuildOptions {
  clientMac?: string; // source MAC of requests (default 02:00:00:00:aa:01)
  lbMac?: string; // destination MAC of everything (default 02:00:00:00:00:fe)
  /** Include the server's packets. `replyFrom` picks their source (default: the VIP itself). */
  replies?: boolean;
  replyFrom?: (flow: number) => { address: string; mac: string };
}

function fill(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x20 + ((i * 7 + seed) % 95);
  return b;
}

/** The frames of `flows`, in capture order (flow events interleaved round-robin). */
export function buildFlows(flows: FlowSpec[], o: BuildOptions = {}): BuiltFrame[] {
  const clientMac = o.clientMac ?? '02:00:00:00:aa:01';
  const lbMac = o.lbMac ?? '02:00:00:00:00:fe';
  const perFlow = flows.map((f, i) => {
    const from = o.replyFrom?.(i) ?? { address: f.vip, mac: '02:00:00:00:bb:01' };
    const req = (x: Partial<PacketSpec>): BuiltFrame => ({
      flow: i,
      dir: 'request',
      data: ethFrame({ src: f.client, dst: f.vip, proto: f.proto, sport: f.clientPort, dport: f.vipPort, srcMac: clientMac, dstMac: lbMac, ipId: 1 + i, ...x }),
    });
    const rep = (x: Partial<PacketSpec>): BuiltFrame => ({
      flow: i,
      dir: 'reply',
      data: ethFrame({ src: from.address, dst: f.client, proto: f.proto, sport: f.vipPort, dport: f.clientPort, srcMac: from.mac, dstMac: lbMac, ipId: 30000 + i, ...x }),
    });
    const q = fill(f.requestBytes ?? 100, i);
    const r = fill(f.responseBytes ?? 300, i + 1);
    const out: BuiltFrame[] = [];
    if (f.proto === 'tcp') {
      const c = (1000 * (i + 1)) >>> 0;
      const s = (500000 + 17 * i) >>> 0;
      out.push(req({ tcpFlags: TCP_SYN, seq: c }));
      out.push(rep({ tcpFlags: TCP_SYN | TCP_ACK, seq: s, ack: c + 1 }));
      out.push(req({ tcpFlags: TCP_ACK, seq: c + 1, ack: s + 1 }));
      out.push(req({ tcpFlags: TCP_PSH | TCP_ACK, seq: c + 1, ack: s + 1, payload: q }));
      out.push(rep({ tcpFlags: TCP_PSH | TCP_ACK, seq: s + 1, ack: c + 1 + q.length, payload: r }));
      out.push(req({ tcpFlags: TCP_FIN | TCP_ACK, seq: c + 1 + q.length, ack: s + 1 + r.length }));
      out.push(rep({ tcpFlags: TCP_FIN | TCP_ACK, seq: s + 1 + r.length, ack: c + 2 + q.length }));
      out.push(req({ tcpFlags: TCP_ACK, seq: c + 2 + q.length, ack: s + 2 + r.length }));
    } else {
      for (let k = 0; k < (f.exchanges ?? 2); k++) {
        out.push(req({ payload: q }));
        out.push(rep({ payload: r }));
      }
    }
    return out.filter((x) => o.replies || x.dir === 'request');
  });
  const frames: BuiltFrame[] = [];
  for (let step = 0; frames.length < perFlow.reduce((a, l) => a + l.length, 0); step++)
    for (const l of perFlow) if (step < l.length) frames.push(l[step]);
  return frames;
}
