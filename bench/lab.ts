// `npm run bench:lab`: live forwarding in the lab (host/lab), the Linux kernel (nftables DNAT the
// kube-proxy way, `lab up --method kernel`) next to sessionlb on its TAP devices (NAT, and DR),
// same topology, same clients and servers, one run. Each method gets a fresh lab; each figure is
// one short, bounded measurement (default 5 s) from client c1:
//   iperf3 TCP      one stream to the bulk VIP, receiver's bits/s
//   iperf3 UDP      1400-byte datagrams, unlimited rate, receiver's bits/s and loss
//   small UDP       64-byte datagrams, unlimited rate, datagrams/s that reached the server
//   HTTP            wrk, 1 thread, 32 connections to the service VIP (nginx, keep-alive),
//                   requests/s and latency p50/p90/p99
// Writes bench/out/lab.json and the section between <!-- lab:begin --> and <!-- lab:end --> of
// bench/RESULTS.md (bench/run.ts keeps that section). Options: --methods kernel,nat,dr,splice
// --seconds N --out FILE. The machine is shared: compare the ratios, not the absolute numbers.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { labDown, labUp } from '../host/lab/lab.js';
import { nsRun, run } from '../host/lab/proc.js';
import { IPERF_PORT, VIP, VIP_BULK, type LabMethod } from '../host/lab/topology.js';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const argv = process.argv.slice(2);
const opt = (name: string, def: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const methods = opt('--methods', 'kernel,nat,dr,splice').split(',') as LabMethod[];
const seconds = Number(opt('--seconds', '5'));
const outFile = opt('--out', join(root, 'bench', 'RESULTS.md'));
const PREFIX = 'slbb-';
const TARGET = 0.3;

function log(s: string) {
  process.stderr.write(s + '\n');
}

export interface LabFigures {
  method: LabMethod;
  tcpGbps: number | null;
  udpMbps: number | null;
  udpLossPct: number | null;
  smallUdpKpps: number | null;
  smallUdpLossPct: number | null;
  httpRps: number | null;
  p50ms: number | null;
  p90ms: number | null;
  p99ms: number | null;
  /** Bytes sessionlb counted towards the bulk VIP's backends during the TCP test / bytes iperf3 received (nat, dr): shows the traffic went through it. */
  viaSessionlb: number | null;
  /** CPU seconds (user + system) the sessionlb process used per 10,000 wrk requests. */
  cpuPer10k: number | null;
  errors: string[];
}

/** utime + stime of a process in seconds (/proc/PID/stat, clock ticks of 1/100 s), or null. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15 of proc(5), counted from after the name
  } catch {
    return null;
  }
}

/** Sum of sessionlb_backend_bytes_total for one VIP, read from the metrics endpoint inside the lb namespace. */
function sessionlbBytes(lbNs: string, port: number, vip: string): number | null {
  const r = nsRun(lbNs, ['curl', '-s', '-m', '2', `http://127.0.0.1:${port}/metrics`]);
  if (r.code !== 0) return null;
  let sum = 0;
  for (const m of r.stdout.matchAll(/^sessionlb_backend_bytes_total\{vip="([^"]+)"[^}]*\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/gm)) if (m[1] === vip) sum += Number(m[2]);
  return sum;
}

function iperf(ns: string, args: string[]): { json: any; err: string | null } {
  const r = nsRun(ns, ['timeout', String(seconds + 15), 'iperf3', '-c', VIP_BULK, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', ...args], { timeoutMs: (seconds + 20) * 1000 });
  try {
    const json = JSON.parse(r.stdout);
    if (json.error) return { json: null, err: `iperf3 ${args.join(' ')}: ${json.error}` };
    return { json, err: null };
  } catch {
    return { json: null, err: `iperf3 ${args.join(' ')}: exit ${r.code} ${r.stderr.trim().slice(0, 200)}` };
  }
}

/** wrk's latency line "  99%    6.16ms" in milliseconds. */
function wrkPercentile(out: string, p: number): number | null {
  const m = out.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm'));
  if (!m) return null;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function measure(method: LabMethod, client: string, lb: { ns: string; port: number; pid: number } | null): LabFigures {
  const f: LabFigures = { method, tcpGbps: null, udpMbps: null, udpLossPct: null, smallUdpKpps: null, smallUdpLossPct: null, httpRps: null, p50ms: null, p90ms: null, p99ms: null, viaSessionlb: null, cpuPer10k: null, errors: [] };
  log(`  ${method}: iperf3 TCP`);
  const b0 = lb ? sessionlbBytes(lb.ns, lb.port, VIP_BULK) : null;
  const tcp = iperf(client, []);
  const b1 = lb ? sessionlbBytes(lb.ns, lb.port, VIP_BULK) : null;
  if (tcp.json) {
    f.tcpGbps = tcp.json.end.sum_received.bits_per_second / 1e9;
    if (b0 !== null && b1 !== null) f.viaSessionlb = (b1 - b0) / tcp.json.end.sum_received.bytes;
  } else f.errors.push(tcp.err!);
  log(`  ${method}: iperf3 UDP 1400 B`);
  const udp = iperf(client, ['-u', '-b', '0', '-l', '1400']);
  if (udp.json) {
    const s = udp.json.end.sum_received ?? udp.json.end.sum;
    f.udpMbps = s.bits_per_second / 1e6;
    f.udpLossPct = s.lost_percent;
  } else f.errors.push(udp.err!);
  log(`  ${method}: iperf3 UDP 64 B`);
  const small = iperf(client, ['-u', '-b', '0', '-l', '64']);
  if (small.json) {
    const s = small.json.end.sum_received ?? small.json.end.sum;
    f.smallUdpKpps = (s.packets - s.lost_packets) / s.seconds / 1e3;
    f.smallUdpLossPct = s.lost_percent;
  } else f.errors.push(small.err!);
  log(`  ${method}: wrk`);
  const c0 = lb ? cpuSeconds(lb.pid) : null;
  const w = nsRun(client, ['timeout', String(seconds + 15), 'wrk', '-t', '1', '-c', '32', '-d', `${seconds}s`, '--latency', `http://${VIP}/`], { timeoutMs: (seconds + 20) * 1000 });
  const rps = w.stdout.match(/Requests\/sec:\s+([\d.]+)/);
  if (rps) {
    f.httpRps = Number(rps[1]);
    f.p50ms = wrkPercentile(w.stdout, 50);
    f.p90ms = wrkPercentile(w.stdout, 90);
    f.p99ms = wrkPercentile(w.stdout, 99);
    const total = w.stdout.match(/(\d+) requests in/);
    const c1 = lb ? cpuSeconds(lb.pid) : null;
    if (total && c0 !== null && c1 !== null) f.cpuPer10k = ((c1 - c0) / Number(total[1])) * 1e4;
    const sock = w.stdout.match(/Socket errors:.*$/m);
    if (sock) f.errors.push(`wrk: ${sock[0]}`);
    const non2xx = w.stdout.match(/Non-2xx or 3xx responses:\s+(\d+)/);
    if (non2xx) f.errors.push(`wrk: ${non2xx[0]}`);
  } else f.errors.push(`wrk: exit ${w.code} ${w.stderr.trim().slice(0, 200)}`);
  return f;
}

function machine(): string {
  const c = cpus();
  const ver = (argv0: string[], re = /./) => (run(argv0).stdout + run(argv0).stderr).split('\n').find((l) => re.test(l))?.trim() ?? '?';
  return [
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${c[0]?.model ?? 'unknown'}, ${c.length} cores; memory ${(totalmem() / 2 ** 30).toFixed(1)} GiB; kernel ${release()}`,
    `- Node ${process.version}; ${ver(['iperf3', '--version'], /iperf/)}; ${ver(['wrk', '--version'], /wrk/)}; ${ver(['nft', '--version'], /nftables/)}; ${ver(['nginx', '-v'], /nginx/)}`,
    `- load average when starting: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  ].join('\n');
}

const fmt = (x: number | null, d = 2) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));

function ratio(a: number | null, b: number | null, lowerIsBetter = false): string {
  if (a === null || b === null || a === 0 || b === 0) return 'n/a';
  const r = lowerIsBetter ? b / a : a / b;
  return `${r.toFixed(2)}x${r >= TARGET ? '' : ' (below 0.3x)'}`;
}

function section(results: LabFigures[], machineText: string): string {
  const k = results.find((r) => r.method === 'kernel') ?? null;
  const L: string[] = ['<!-- lab:begin -->', '## Live: the lab, kernel nftables vs sessionlb', ''];
  L.push(`Produced by \`npm run bench:lab\` (bench/lab.ts): one fresh lab per method (\`sessionlb lab up --method M\`, docs/lab.md), client slb-c1 through router slb-rtr to the VIPs, ${seconds} s per figure. kernel = the lb namespace's kernel doing nftables DNAT the kube-proxy way (numgen random / jhash into per-backend DNAT chains, conntrack); nat, dr = sessionlb on two TAP devices with the live section's defaults (offload on: TCP super-frames up to 64 KiB cross the TAPs whole); splice = the HTTP VIP spliced by the engine (docs/splice.md; offload off, as splicing needs), so its HTTP and latency columns measure splicing while its iperf3 columns are the bulk VIP, which stays NAT. Target: sessionlb at least ${TARGET}x the kernel.`, '');
  L.push(machineText, '');
  L.push('| method | iperf3 TCP Gbit/s | iperf3 UDP 1400 B Mbit/s (loss %) | UDP 64 B kpps received (loss %) | HTTP req/s (wrk 32 conn) | p50 ms | p90 ms | p99 ms | sessionlb CPU s / 10k req |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    L.push(`| ${r.method} | ${fmt(r.tcpGbps, 3)} | ${fmt(r.udpMbps, 1)} (${fmt(r.udpLossPct, 1)}) | ${fmt(r.smallUdpKpps, 1)} (${fmt(r.smallUdpLossPct, 1)}) | ${fmt(r.httpRps, 0)} | ${fmt(r.p50ms, 3)} | ${fmt(r.p90ms, 3)} | ${fmt(r.p99ms, 3)} | ${r.method === 'kernel' ? '-' : fmt(r.cpuPer10k, 3)} |`);
  }
  if (k) {
    L.push('', '| ratio to kernel | TCP | UDP 1400 B | UDP 64 B pps | HTTP req/s | p99 latency (kernel/sessionlb) |', '|---|---|---|---|---|---|');
    for (const r of results.filter((x) => x.method !== 'kernel')) {
      L.push(`| ${r.method} | ${ratio(r.tcpGbps, k.tcpGbps)} | ${ratio(r.udpMbps, k.udpMbps)} | ${ratio(r.smallUdpKpps, k.smallUdpKpps)} | ${ratio(r.httpRps, k.httpRps)} | ${ratio(r.p99ms, k.p99ms, true)} |`);
    }
  }
  const via = results.filter((r) => r.viaSessionlb !== null).map((r) => `${r.method} ${r.viaSessionlb!.toFixed(2)}`);
  if (via.length) L.push('', `Through sessionlb: bytes its metrics counted towards the bulk VIP's backends during the TCP test, divided by the bytes iperf3 received (headers included, so a little above 1): ${via.join(', ')}.`);
  const errs = results.flatMap((r) => r.errors.map((e) => `- ${r.method}: ${e}`));
  if (errs.length) L.push('', 'Errors during the run:', '', ...errs);
  L.push('', 'sessionlb CPU: user + system seconds of the sessionlb process (/proc) during the wrk run, per 10,000 requests; it excludes the kernel work its TAP reads and writes cause elsewhere (bridge, veth, the peers\' stacks). The kernel method has no process to measure.');
  L.push('', 'UDP at unlimited rate measures what reaches the server; loss is the sender\'s excess over what the path carried.');
  L.push('<!-- lab:end -->', '');
  return L.join('\n');
}

async function main() {
  const machineText = machine();
  const results: LabFigures[] = [];
  for (const m of methods) {
    log(`lab up --method ${m}`);
    await labDown({ prefix: PREFIX });
    try {
      const st = await labUp({ method: m, prefix: PREFIX });
      results.push(measure(m, st.topology.clients[0].ns, st.sessionlb ? { ns: st.sessionlb.ns, port: st.sessionlb.metricsPort, pid: st.sessionlb.pid } : null));
    } catch (e) {
      results.push({ method: m, tcpGbps: null, udpMbps: null, udpLossPct: null, smallUdpKpps: null, smallUdpLossPct: null, httpRps: null, p50ms: null, p90ms: null, p99ms: null, viaSessionlb: null, cpuPer10k: null, errors: [`lab up failed: ${(e as Error).message.split('\n')[0]}`] });
    } finally {
      await labDown({ prefix: PREFIX });
    }
    log(`  ${JSON.stringify(results[results.length - 1])}`);
  }
  mkdirSync(join(root, 'bench', 'out'), { recursive: true });
  writeFileSync(join(root, 'bench', 'out', 'lab.json'), JSON.stringify({ seconds, results }, null, 2) + '\n');
  const text = section(results, machineText);
  const old = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '# Benchmark results\n';
  const re = /<!-- lab:begin -->[\s\S]*<!-- lab:end -->\n?/;
  writeFileSync(outFile, re.test(old) ? old.replace(re, text) : `${old.replace(/\n*$/, '\n\n')}${text}`);
  log(`wrote ${outFile}`);
  process.stdout.write(text);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
