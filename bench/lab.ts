// `npm run bench:lab`: the application-level comparison in the lab (host/lab), one run, same
// topology, same clients and servers: the Linux kernel (nftables DNAT the kube-proxy way,
// `lab up --method kernel`) as the reference, sessionlb's NAT, DR and splice methods, TCP handoff
// when the lab has that method, and the TCP gateway (a user-space proxy). Each method gets a fresh
// lab; every figure is one short, bounded measurement from client c1:
//   HTTP keep-alive     wrk -t1 -c32 to the service VIP (nginx): requests/s, latency p50/p99
//   HTTP new conn       the same with `Connection: close`: one TCP connection per request
//   balancer CPU        user + system seconds of the balancer process (sessionlb, or the gateway)
//                       and its children, from /proc/PID/stat around each wrk run, per 10k requests
//   layer 4 (bulk VIP)  where the method carries it: iperf3 TCP (one stream), iperf3 UDP 1400 B
//                       and 64 B at unlimited rate (kernel, nat, dr; TCP only for the gateway)
// Writes bench/out/lab.json and the section between <!-- lab:begin --> and <!-- lab:end --> of
// bench/RESULTS.md (or --out FILE). `--help` for the options. The machine is shared: compare the
// ratios, not the absolute numbers.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { labDown, labUp, type LabState } from '../host/lab/lab.js';
import { nsRun, run } from '../host/lab/proc.js';
import { HTTP_PORT, IPERF_PORT, METHODS, VIP, VIP_BULK, checkPrefix, type LabMethod } from '../host/lab/topology.js';

/** What the bench measures for one `lab up --method`: one row of the tables. */
interface MethodSpec {
  method: string;
  label: string;
  /** 'process': the balancer is state.sessionlb.pid (sessionlb run, or sessionlb gateway); 'kernel': no process to measure. */
  balancer: 'process' | 'kernel';
  /** Which iperf3 tests run against the bulk VIP ('none' when that VIP is just NAT again, as for splice). */
  bulk: 'tcp+udp' | 'tcp' | 'none';
  /** One sentence for the section's legend. */
  what: string;
}

// The rows, in table order. Adding a lab method is one line here; a method the lab does not have
// (host/lab/topology.ts METHODS) is skipped when --methods is not given.
const SPECS: MethodSpec[] = [
  { method: 'kernel', label: 'kernel nftables DNAT (reference)', balancer: 'kernel', bulk: 'tcp+udp', what: "the lb namespace's kernel doing nftables DNAT the kube-proxy way (numgen random / jhash into per-backend DNAT chains, conntrack); its cost is softirq time in the namespace, which cannot be attributed to a process" },
  { method: 'nat', label: 'sessionlb nat', balancer: 'process', bulk: 'tcp+udp', what: 'sessionlb on two TAP devices, NAT (offload on: TCP super-frames up to 64 KiB cross the TAPs whole)' },
  { method: 'dr', label: 'sessionlb dr', balancer: 'process', bulk: 'tcp+udp', what: 'sessionlb, direct return (the backends answer the client past sessionlb)' },
  { method: 'splice', label: 'sessionlb splice', balancer: 'process', bulk: 'none', what: 'the HTTP/RTSP VIP spliced by the engine (docs/splice.md: SYN cookies, delayed binding on the request head, sequence translation; offload off); its bulk VIP stays NAT, so no layer-4 figures' },
  { method: 'handoff', label: 'sessionlb handoff', balancer: 'process', bulk: 'none', what: "TCP handoff (docs/handoff.md): sessionlb accepts and inspects as in splicing, then the chosen backend's agent recreates the connection with TCP_REPAIR and passes it to its HTTP server process, which answers the client directly. The servers here are the agents' Node HTTP servers, not nginx (nginx cannot take a handed-off socket), so this row's requests/s and latency include a different server; the CPU column is the front end (sessionlb) only, the agents' CPU is given below the table; its bulk VIP is DR, so no layer-4 figures" },
  { method: 'gateway', label: 'TCP gateway', balancer: 'process', bulk: 'tcp', what: '`sessionlb gateway` in the lb namespace: a full proxy over Node sockets (two connections, bytes copied through user space; HTTP pinned per keep-alive connection), the bulk VIP proxied at layer 4 (TCP only)' },
];

const HELP = `npm run bench:lab [-- OPTIONS]   (root; builds first)

Brings the lab up once per method (sessionlb lab up --method M) and measures, from client c1:
HTTP requests/s and latency p50/p99 with keep-alive and with a new connection per request
(wrk -t1 -c32), the balancer process's CPU seconds per 10k requests, and iperf3 on the bulk VIP
where the method carries it. Writes bench/out/lab.json and the lab section of bench/RESULTS.md.

  --duration S     seconds per measurement (default 5; --seconds is the same)
  --methods a,b    rows to run, in this order; the bench knows ${SPECS.map((s) => s.method).join(',')}
                   (default: those host/lab/topology.ts METHODS has)
  --no-l4          skip the iperf3 (layer 4) measurements
  --prefix P       namespace prefix of the labs it brings up (default slbb-)
  --out FILE       where to write the section (default bench/RESULTS.md)
  --from-json F    no measuring: write the section again from a saved bench/out/lab.json
  --help           this text
`;

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}
const opt = (names: string[], def: string) => {
  for (const n of names) if (argv.includes(n)) {
    const v = argv[argv.indexOf(n) + 1];
    if (v === undefined || v.startsWith('--')) die(`${n} needs a value`);
    return v;
  }
  return def;
};
function die(msg: string): never {
  process.stderr.write(`bench:lab: ${msg} (--help for the options)\n`);
  process.exit(2);
}
const known = new Set<string>(['--help', '-h', '--no-l4', '--duration', '--seconds', '--methods', '--prefix', '--out', '--from-json']);
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) die(`unknown argument ${argv[i]}`);
  if (!['--help', '-h', '--no-l4'].includes(argv[i])) i++;
}
const labMethods = new Set<string>(METHODS);
const seconds = Number(opt(['--duration', '--seconds'], '5'));
if (!Number.isFinite(seconds) || seconds < 1 || seconds > 600 || !Number.isInteger(seconds)) die('--duration must be a whole number of seconds, 1..600');
const specs: MethodSpec[] = argv.includes('--methods')
  ? opt(['--methods'], '').split(',').filter(Boolean).map((m) => {
      const s = SPECS.find((x) => x.method === m);
      if (!s) die(`unknown method ${m} (the bench knows ${SPECS.map((x) => x.method).join(', ')})`);
      if (!labMethods.has(m)) die(`the lab has no --method ${m} (host/lab/topology.ts METHODS: ${[...labMethods].join(', ')})`);
      return s;
    })
  : SPECS.filter((s) => labMethods.has(s.method));
if (specs.length === 0) die('no methods to run');
const noL4 = argv.includes('--no-l4');
const PREFIX = opt(['--prefix'], 'slbb-');
const prefixErr = checkPrefix(PREFIX);
if (prefixErr) die(prefixErr);
const outFile = resolve(opt(['--out'], join(root, 'bench', 'RESULTS.md')));
const TARGET = 0.3; // layer 4: the live mode's target against the kernel
const CONNS = 32;
const CLK_TCK = Number(run(['getconf', 'CLK_TCK']).stdout.trim()) || 100;

function log(s: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
}

interface Http {
  rps: number | null;
  requests: number | null;
  p50ms: number | null;
  p90ms: number | null;
  p99ms: number | null;
  /** Balancer process CPU seconds (user + system) per 10,000 requests. */
  cpuPer10k: number | null;
  /** Handoff: the backends' agents and their server processes, CPU seconds per 10,000 requests. */
  backendCpuPer10k?: number | null;
  errors: string[];
}

export interface LabRow {
  method: string;
  label: string;
  keepAlive: Http | null;
  newConn: Http | null;
  tcpGbps: number | null;
  /** Balancer CPU seconds per GB received by iperf3 (TCP). */
  tcpCpuPerGB: number | null;
  udpMbps: number | null;
  udpLossPct: number | null;
  smallUdpKpps: number | null;
  smallUdpLossPct: number | null;
  /** Bytes the balancer's metrics counted towards the bulk VIP's backends during the TCP test / bytes iperf3 received. */
  viaBalancer: number | null;
  errors: string[];
}

/** utime + stime in seconds of a process (all its threads) and, recursively, its children; null when it is gone. */
function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let t = (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15 of proc(5), counted from after the name
    let kids: string[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      /* no children file */
    }
    for (const c of kids) t += cpuSeconds(Number(c)) ?? 0;
    return t;
  } catch {
    return null;
  }
}

/** Bytes the balancer counted towards the backends of one VIP (sessionlb's or the gateway's metrics, inside the lb namespace). */
function balancerBytes(lbNs: string, port: number, vip: string): number | null {
  const r = nsRun(lbNs, ['curl', '-s', '-m', '2', `http://127.0.0.1:${port}/metrics`]);
  if (r.code !== 0) return null;
  let sum = 0;
  let seen = false;
  for (const m of r.stdout.matchAll(/^sessionlb_(?:gateway_)?backend_bytes_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (labels.vip !== vip && !labels.vip?.startsWith(`${vip}:`)) continue;
    if (labels.direction && labels.direction !== 'to_backend') continue;
    sum += Number(m[2]);
    seen = true;
  }
  return seen ? sum : null;
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

/** One wrk run from namespace ns to the service VIP; the balancer's CPU sampled just before and after. */
function wrk(ns: string, durationS: number, close: boolean, pid: number | null, backendPids: number[] = []): Http {
  const h: Http = { rps: null, requests: null, p50ms: null, p90ms: null, p99ms: null, cpuPer10k: null, errors: [] };
  const sumCpu = () => backendPids.reduce((t, p) => t + (cpuSeconds(p) ?? 0), 0);
  const b0 = backendPids.length ? sumCpu() : 0;
  const c0 = pid ? cpuSeconds(pid) : null;
  const w = nsRun(ns, ['timeout', String(durationS + 15), 'wrk', '-t', '1', '-c', String(CONNS), '-d', `${durationS}s`, '--timeout', '2s', '--latency', ...(close ? ['-H', 'Connection: close'] : []), `http://${VIP}:${HTTP_PORT}/`], { timeoutMs: (durationS + 20) * 1000 });
  const c1 = pid ? cpuSeconds(pid) : null;
  const b1 = backendPids.length ? sumCpu() : 0;
  const rps = w.stdout.match(/Requests\/sec:\s+([\d.]+)/);
  const total = w.stdout.match(/(\d+) requests in/);
  if (!rps || !total) {
    h.errors.push(`wrk: exit ${w.code} ${(w.stderr || w.stdout).trim().slice(0, 200)}`);
    return h;
  }
  h.rps = Number(rps[1]);
  h.requests = Number(total[1]);
  h.p50ms = wrkPercentile(w.stdout, 50);
  h.p90ms = wrkPercentile(w.stdout, 90);
  h.p99ms = wrkPercentile(w.stdout, 99);
  if (c0 !== null && c1 !== null && h.requests > 0) h.cpuPer10k = ((c1 - c0) / h.requests) * 1e4;
  else if (pid) h.errors.push(`balancer pid ${pid} gone during wrk`);
  if (backendPids.length && h.requests > 0) h.backendCpuPer10k = ((b1 - b0) / h.requests) * 1e4;
  const sock = w.stdout.match(/Socket errors:.*$/m);
  if (sock) h.errors.push(`wrk: ${sock[0]}`);
  const non2xx = w.stdout.match(/Non-2xx or 3xx responses:\s+(\d+)/);
  if (non2xx) h.errors.push(`wrk: ${non2xx[0]}`);
  return h;
}

const fmt = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));

function showHttp(h: Http): string {
  return `${fmt(h.rps, 0)} req/s, p50 ${fmt(h.p50ms, 3)} ms, p99 ${fmt(h.p99ms, 3)} ms, balancer CPU ${h.cpuPer10k === null ? '-' : `${fmt(h.cpuPer10k, 3)} s/10k`}${h.errors.length ? `; ${h.errors.join('; ')}` : ''}`;
}

function measure(spec: MethodSpec, st: LabState, step: (s: string) => void): LabRow {
  const row: LabRow = { method: spec.method, label: spec.label, keepAlive: null, newConn: null, tcpGbps: null, tcpCpuPerGB: null, udpMbps: null, udpLossPct: null, smallUdpKpps: null, smallUdpLossPct: null, viaBalancer: null, errors: [] };
  const client = st.topology.clients[0].ns;
  const lb = spec.balancer === 'process' ? st.sessionlb : null;
  if (spec.balancer === 'process' && !lb) row.errors.push('lab up started no balancer process (state.sessionlb is null): no CPU figures');
  const pid = lb?.pid ?? null;
  // Handoff moves work to the backends: their agents (and the server processes they fork) are measured too.
  const agents = st.processes.filter((p) => p.role === 'agent').map((p) => p.pid);
  // Warm-up (not counted): JIT, ARP/neighbour entries, nginx workers, the balancer's tables.
  const warm = Math.min(2, seconds);
  step(`warm-up, wrk keep-alive ${warm} s`);
  wrk(client, warm, false, null);
  step(`wrk -c${CONNS} keep-alive ${seconds} s`);
  row.keepAlive = wrk(client, seconds, false, pid, agents);
  step(`  ${showHttp(row.keepAlive)}`);
  step(`wrk -c${CONNS} Connection: close ${seconds} s`);
  row.newConn = wrk(client, seconds, true, pid, agents);
  step(`  ${showHttp(row.newConn)}`);
  if (noL4 || spec.bulk === 'none') return row;
  step(`iperf3 TCP ${seconds} s`);
  const b0 = lb ? balancerBytes(lb.ns, lb.metricsPort, VIP_BULK) : null;
  const cpu0 = pid ? cpuSeconds(pid) : null;
  const tcp = iperf(client, []);
  const cpu1 = pid ? cpuSeconds(pid) : null;
  const b1 = lb ? balancerBytes(lb.ns, lb.metricsPort, VIP_BULK) : null;
  if (tcp.json) {
    const bytes = tcp.json.end.sum_received.bytes as number;
    row.tcpGbps = tcp.json.end.sum_received.bits_per_second / 1e9;
    if (b0 !== null && b1 !== null && bytes > 0) row.viaBalancer = (b1 - b0) / bytes;
    if (cpu0 !== null && cpu1 !== null && bytes > 0) row.tcpCpuPerGB = (cpu1 - cpu0) / (bytes / 1e9);
    step(`  ${fmt(row.tcpGbps, 3)} Gbit/s`);
  } else row.errors.push(tcp.err!);
  if (spec.bulk !== 'tcp+udp') return row;
  step(`iperf3 UDP 1400 B ${seconds} s`);
  const udp = iperf(client, ['-u', '-b', '0', '-l', '1400']);
  if (udp.json) {
    const s = udp.json.end.sum_received ?? udp.json.end.sum;
    row.udpMbps = s.bits_per_second / 1e6;
    row.udpLossPct = s.lost_percent;
    step(`  ${fmt(row.udpMbps, 1)} Mbit/s, loss ${fmt(row.udpLossPct, 1)} %`);
  } else row.errors.push(udp.err!);
  step(`iperf3 UDP 64 B ${seconds} s`);
  const small = iperf(client, ['-u', '-b', '0', '-l', '64']);
  if (small.json) {
    const s = small.json.end.sum_received ?? small.json.end.sum;
    row.smallUdpKpps = (s.packets - s.lost_packets) / s.seconds / 1e3;
    row.smallUdpLossPct = s.lost_percent;
    step(`  ${fmt(row.smallUdpKpps, 1)} kpps received, loss ${fmt(row.smallUdpLossPct, 1)} %`);
  } else row.errors.push(small.err!);
  return row;
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

function machine(): string[] {
  const c = cpus();
  const ver = (args: string[], re: RegExp) => {
    const r = run(args);
    return (r.stdout + r.stderr).split('\n').find((l) => re.test(l))?.trim() ?? `${args[0]} ?`;
  };
  return [
    `- CPU: ${c[0]?.model ?? 'unknown'}, ${c.length} cores; memory ${(totalmem() / 2 ** 30).toFixed(1)} GiB; kernel ${release()}`,
    `- Node ${process.version}; ${ver(['wrk', '--version'], /wrk/)}; ${ver(['iperf3', '--version'], /iperf/)}; ${ver(['nft', '--version'], /nftables/)}; ${ver(['nginx', '-v'], /nginx/)}`,
  ];
}

/** a/b, or b/a when lower is better: above 1 means the row does better than the reference. */
function ratio(a: number | null | undefined, b: number | null | undefined, lowerIsBetter = false, target?: number): string {
  if (a == null || b == null || !(a > 0) || !(b > 0)) return 'n/a';
  const r = lowerIsBetter ? b / a : a / b;
  return `${r.toFixed(2)}x${target !== undefined && r < target ? ` (below ${target}x)` : ''}`;
}

interface RunInfo {
  seconds: number;
  machine: string[];
  started: string;
  ended: string;
  loadStart: string;
  loadEnd: string;
}

function section(rows: LabRow[], info: RunInfo): string {
  const seconds = info.seconds;
  const L: string[] = ['<!-- lab:begin -->', `## Live: the lab, application level (${rows.map((r) => r.method).join(', ')})`, ''];
  L.push(
    `Produced by \`npm run bench:lab\` (bench/lab.ts; \`-- --help\` for its options), ${seconds} s per figure, methods ${rows.map((r) => r.method).join(', ')}: one fresh lab per method (\`sessionlb lab up --method M\`, docs/lab.md), same topology, client c1 through the router to the service VIP ${VIP}:${HTTP_PORT} (three nginx backends; handoff: the agents' HTTP servers). Before each method's first figure a ${Math.min(2, seconds)} s keep-alive wrk run warms it up (not counted). The rows:`,
    '',
    ...rows.map((r) => `- ${r.label} (\`--method ${r.method}\`): ${SPECS.find((s) => s.method === r.method)!.what}.`),
    '',
    `- run: ${info.started} to ${info.ended}`,
    ...info.machine,
    `- load average at the start: ${info.loadStart}; at the end: ${info.loadEnd} (2 shared cores: wrk, the balancer and nginx compete for them)`,
    '',
  );
  L.push(`HTTP, wrk -t1 -c${CONNS} -d${seconds}s: keep-alive, and a new TCP connection per request (\`-H 'Connection: close'\`). CPU = the balancer process's user + system seconds per 10,000 requests.`, '');
  L.push('| method | keep-alive req/s | p50 ms | p99 ms | CPU s / 10k req | new conn req/s | p50 ms | p99 ms | CPU s / 10k req |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const cpu = (r: LabRow, h: Http | null) => (r.method === 'kernel' ? '-' : fmt(h?.cpuPer10k, 3));
  for (const r of rows) {
    const k = r.keepAlive;
    const n = r.newConn;
    L.push(`| ${r.label} | ${fmt(k?.rps, 0)} | ${fmt(k?.p50ms, 3)} | ${fmt(k?.p99ms, 3)} | ${cpu(r, k)} | ${fmt(n?.rps, 0)} | ${fmt(n?.p50ms, 3)} | ${fmt(n?.p99ms, 3)} | ${cpu(r, n)} |`);
  }
  for (const r of rows) {
    if (r.keepAlive?.backendCpuPer10k == null && r.newConn?.backendCpuPer10k == null) continue;
    L.push('', `${r.label}: the backends' agents and their HTTP server processes used ${fmt(r.keepAlive?.backendCpuPer10k, 3)} CPU s per 10k requests with keep-alive (no handoff after the first request of a connection) and ${fmt(r.newConn?.backendCpuPer10k, 3)} with a new connection per request (one TCP_REPAIR restore and one descriptor passed to the server process per request); in the other rows that serving work is nginx's and not measured.`);
  }
  const kernel = rows.find((r) => r.method === 'kernel');
  const nat = rows.find((r) => r.method === 'nat');
  if (kernel || nat) {
    const both = (f: (r: LabRow) => number | null | undefined, lower = false) => (r: LabRow) =>
      [nat, kernel].filter((x): x is LabRow => !!x).map((ref) => ratio(f(r), f(ref), lower)).join(' / ');
    const natOnly = (f: (r: LabRow) => number | null | undefined) => (r: LabRow) => (!nat || r.method === 'kernel' ? '-' : ratio(f(r), f(nat), true));
    const vs = [nat && 'NAT', kernel && 'kernel'].filter(Boolean).join(' / ');
    L.push('', `Ratios, each cell vs ${vs} (above 1x: better than the reference; for p99 and CPU the reference divided by the row; CPU only between processes, so vs NAT):`, '');
    L.push('| method | keep-alive req/s | new conn req/s | keep-alive p99 | new conn p99 | CPU / 10k keep-alive | CPU / 10k new conn |');
    L.push('|---|---:|---:|---:|---:|---:|---:|');
    const cols = [
      both((r) => r.keepAlive?.rps), both((r) => r.newConn?.rps),
      both((r) => r.keepAlive?.p99ms, true), both((r) => r.newConn?.p99ms, true),
      natOnly((r) => r.keepAlive?.cpuPer10k), natOnly((r) => r.newConn?.cpuPer10k),
    ];
    for (const r of rows) L.push(`| ${r.label} | ${cols.map((c) => c(r)).join(' | ')} |`);
  }
  const l4 = rows.filter((r) => r.tcpGbps !== null || r.udpMbps !== null || r.smallUdpKpps !== null);
  if (l4.length) {
    L.push('', `Layer 4 on the bulk VIP ${VIP_BULK}:${IPERF_PORT}, iperf3 from c1, ${seconds} s each: one TCP stream (receiver's rate; balancer CPU seconds per GB received), 1400-byte and 64-byte UDP datagrams at unlimited rate (what reached the server; loss is the sender's excess over what the path carried). Methods whose bulk VIP is plain NAT or DR again (splice: NAT, handoff: DR) are not repeated here; the gateway proxies TCP only.`, '');
    L.push('| method | iperf3 TCP Gbit/s | CPU s / GB | iperf3 UDP 1400 B Mbit/s (loss %) | UDP 64 B kpps received (loss %) |');
    L.push('|---|---:|---:|---:|---:|');
    const udp = (v: number | null, loss: number | null, d: number) => (v === null ? '-' : `${fmt(v, d)} (${fmt(loss, 1)})`);
    for (const r of l4) L.push(`| ${r.label} | ${fmt(r.tcpGbps, 3)} | ${r.method === 'kernel' ? '-' : fmt(r.tcpCpuPerGB, 2)} | ${udp(r.udpMbps, r.udpLossPct, 1)} | ${udp(r.smallUdpKpps, r.smallUdpLossPct, 1)} |`);
    if (kernel && l4.includes(kernel)) {
      L.push('', `| layer 4, ratio to kernel (target ${TARGET}x) | TCP | UDP 1400 B | UDP 64 B pps |`, '|---|---:|---:|---:|');
      for (const r of l4.filter((x) => x !== kernel)) L.push(`| ${r.label} | ${ratio(r.tcpGbps, kernel.tcpGbps, false, TARGET)} | ${r.udpMbps === null ? '-' : ratio(r.udpMbps, kernel.udpMbps, false, TARGET)} | ${r.smallUdpKpps === null ? '-' : ratio(r.smallUdpKpps, kernel.smallUdpKpps, false, TARGET)} |`);
    }
    const via = l4.filter((r) => r.viaBalancer !== null).map((r) => `${r.method} ${r.viaBalancer!.toFixed(2)}`);
    if (via.length) L.push('', `Through the balancer: bytes its metrics counted towards the bulk VIP's backends during the TCP test, divided by the bytes iperf3 received (sessionlb counts frames, headers included, so a little above 1; the gateway counts payload): ${via.join(', ')}.`);
  }
  const errs = rows.flatMap((r) => [...r.errors, ...(r.keepAlive?.errors.map((e) => `keep-alive ${e}`) ?? []), ...(r.newConn?.errors.map((e) => `new conn ${e}`) ?? [])].map((e) => `- ${r.method}: ${e}`));
  if (errs.length) L.push('', 'Errors during the run:', '', ...errs);
  L.push('', "Balancer CPU: utime + stime of the balancer process and its children (/proc/PID/stat) read just before and just after each wrk run, divided by wrk's request count. It leaves out the kernel work the balancer causes elsewhere (TAP reads and writes land in the bridge, veth and the peers' stacks; the gateway's sockets cost softirq time in the lb namespace), and the kernel method has no process at all (\"-\"): compare the CPU column between the sessionlb methods and the gateway, and the requests/s and latency columns with the kernel.");
  L.push('<!-- lab:end -->', '');
  return L.join('\n');
}

let current: string | null = null;
async function cleanupAndExit(sig: string) {
  process.stderr.write(`\nbench:lab: ${sig}, taking the lab down (prefix ${PREFIX})\n`);
  await labDown({ prefix: PREFIX }).catch(() => {});
  process.exit(130);
}

async function main() {
  if (argv.includes('--from-json')) {
    const { rows, ...info } = JSON.parse(readFileSync(opt(['--from-json'], ''), 'utf8')) as RunInfo & { rows: LabRow[] };
    writeSection(section(rows, info));
    log(`wrote ${outFile}`);
    return;
  }
  process.on('SIGINT', () => void cleanupAndExit('SIGINT'));
  process.on('SIGTERM', () => void cleanupAndExit('SIGTERM'));
  const loadStart = loadavg();
  const started = new Date().toISOString();
  const machineText = machine();
  log(`bench:lab: ${specs.map((s) => s.method).join(', ')}; ${seconds} s per figure; prefix ${PREFIX}; load ${loadStart}`);
  const rows: LabRow[] = [];
  for (const [i, spec] of specs.entries()) {
    current = spec.method;
    const tag = `[${i + 1}/${specs.length}] ${spec.method}`;
    const step = (s: string) => log(`${tag}: ${s}`);
    step('lab up');
    await labDown({ prefix: PREFIX });
    try {
      const st = await labUp({ method: spec.method as LabMethod, prefix: PREFIX, log: (m) => step(`  lab: ${m}`) });
      if (spec.balancer === 'process') step(`balancer pid ${st.sessionlb?.pid ?? '?'} (${st.sessionlb?.config ?? 'no config'})`);
      rows.push(measure(spec, st, step));
    } catch (e) {
      const msg = `lab up or measurement failed: ${(e as Error).message.split('\n')[0]}`;
      step(msg);
      rows.push({ method: spec.method, label: spec.label, keepAlive: null, newConn: null, tcpGbps: null, tcpCpuPerGB: null, udpMbps: null, udpLossPct: null, smallUdpKpps: null, smallUdpLossPct: null, viaBalancer: null, errors: [msg] });
    } finally {
      step('lab down');
      await labDown({ prefix: PREFIX });
    }
  }
  current = null;
  const loadEnd = loadavg();
  const ended = new Date().toISOString();
  mkdirSync(join(root, 'bench', 'out'), { recursive: true });
  const info: RunInfo = { seconds, machine: machineText, started, ended, loadStart, loadEnd };
  writeFileSync(join(root, 'bench', 'out', 'lab.json'), JSON.stringify({ ...info, rows }, null, 2) + '\n');
  writeSection(section(rows, info));
  log(`wrote ${outFile} and bench/out/lab.json; load ${loadEnd}`);
}

function writeSection(text: string) {
  const old = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '# Benchmark results\n';
  const re = /<!-- lab:begin -->[\s\S]*<!-- lab:end -->\n?/;
  writeFileSync(outFile, re.test(old) ? old.replace(re, text) : `${old.replace(/\n*$/, '\n\n')}${text}`);
  process.stdout.write(text);
}

main().catch(async (e) => {
  process.stderr.write(`bench:lab${current ? ` (${current})` : ''}: ${(e as Error).stack}\n`);
  await labDown({ prefix: PREFIX }).catch(() => {});
  process.exit(1);
});
