// `npm run bench:gateway`: the TCP gateway (host/gateway/) against clients talking to nginx
// directly, on loopback (127.0.8.x): wrk requests/s and latency p50/p99, and CPU seconds per 10k
// requests of the gateway process and of the nginx processes (from /proc, utime + stime).
// Short bounded runs: --seconds N (default 3), --connections N (default 16). Prints a markdown
// table; --out FILE also writes it there. --lab (root): the same comparison in the lab topology,
// the kernel's nftables DNAT first, then the gateway in the balancer namespace (see labMain).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort, run, sleep, startGateway, startNginx, type Proc } from '../test/gateway.helpers.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const SECONDS = Number(opt('--seconds', '3'));
const CONNS = Number(opt('--connections', '16'));
const OUT = argv.includes('--out') ? opt('--out', '') : null;
const DIR = join(ROOT, 'bench', 'out', `gateway-${process.pid}`);
const TICK = 100; // USER_HZ on Linux

/** utime + stime of a process and its children (threads included), seconds. */
function cpuTree(pid: number): number {
  let t = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    t += (Number(f[11]) + Number(f[12])) / TICK;
    for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) t += cpuTree(Number(c));
  } catch {
    // gone
  }
  return t;
}

interface Row {
  name: string;
  rps: number;
  p50: string;
  p99: string;
  errors: string;
  proxyCpu: number | null; // s per 10k requests
  nginxCpu: number;
}

async function wrk(url: string, extra: string[], procs: { proxy: Proc | null; nginx: Proc[] }): Promise<Omit<Row, 'name'>> {
  const c0 = procs.proxy ? cpuTree(procs.proxy.child.pid!) : 0;
  const n0 = procs.nginx.reduce((s, p) => s + cpuTree(p.child.pid!), 0);
  const r = await run('wrk', ['-t1', `-c${CONNS}`, `-d${SECONDS}s`, '--timeout', '2s', '--latency', ...extra, url], (SECONDS + 30) * 1000);
  const c1 = procs.proxy ? cpuTree(procs.proxy.child.pid!) : 0;
  const n1 = procs.nginx.reduce((s, p) => s + cpuTree(p.child.pid!), 0);
  if (r.code !== 0) throw new Error(`wrk failed: ${r.err}`);
  const reqs = Number(/(\d+) requests in/.exec(r.out)?.[1] ?? 0);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.out)?.[1] ?? 0);
  const pct = (p: string) => new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(r.out)?.[1] ?? '?';
  const errs = [/Socket errors:.*$/m.exec(r.out)?.[0], /Non-2xx.*$/m.exec(r.out)?.[0]].filter(Boolean).join('; ');
  return {
    rps, p50: pct('50'), p99: pct('99'), errors: errs || 'none',
    proxyCpu: procs.proxy ? ((c1 - c0) / reqs) * 10_000 : null,
    nginxCpu: ((n1 - n0) / reqs) * 10_000,
  };
}

/** wrk inside namespace `ns`; CPU of the gateway process (pid) over the run when given. */
async function wrkNs(ns: string, url: string, extra: string[], pid: number | null): Promise<Omit<Row, 'name' | 'nginxCpu'>> {
  const c0 = pid ? cpuTree(pid) : 0;
  const r = await run('ip', ['netns', 'exec', ns, 'wrk', '-t1', '-c32', `-d${SECONDS}s`, '--timeout', '2s', '--latency', ...extra, url], (SECONDS + 30) * 1000);
  const c1 = pid ? cpuTree(pid) : 0;
  if (r.code !== 0) throw new Error(`wrk failed: ${r.err}`);
  const reqs = Number(/(\d+) requests in/.exec(r.out)?.[1] ?? 0);
  const pct = (p: string) => new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(r.out)?.[1] ?? '?';
  const errs = [/Socket errors:.*$/m.exec(r.out)?.[0], /Non-2xx.*$/m.exec(r.out)?.[0]].filter(Boolean).join('; ');
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(r.out)?.[1] ?? 0), p50: pct('50'), p99: pct('99'), errors: errs || 'none', proxyCpu: pid ? ((c1 - c0) / reqs) * 10_000 : null };
}

/**
 * --lab: the lab (host/lab) with the kernel's nftables DNAT measured first, then the same lab with
 * the DNAT table removed and `sessionlb gateway` running in the balancer namespace on the VIP
 * (a kernel address there), health-checking and connecting from the lb's server-LAN address.
 */
async function labMain() {
  const { labUp, labDown } = await import('../host/lab/lab.js');
  const { nsRun } = await import('../host/lab/proc.js');
  const { VIP, HTTP_PORT } = await import('../host/lab/topology.js');
  const prefix = 'slbg-';
  await labDown({ prefix });
  const st = await labUp({ method: 'kernel', prefix });
  const rows: (Omit<Row, 'nginxCpu'>)[] = [];
  const bulk: { name: string; gbps: number; cpu: number | null }[] = [];
  let gw: Proc | null = null;
  /** One iperf3 TCP stream from c1 to the bulk VIP: receiver's Gbit/s, and the gateway's CPU seconds per GB. */
  const iperf = async (ns: string, pid: number | null) => {
    const { VIP_BULK } = await import('../host/lab/topology.js');
    const c0 = pid ? cpuTree(pid) : 0;
    const r = await run('ip', ['netns', 'exec', ns, 'timeout', String(SECONDS + 15), 'iperf3', '-c', VIP_BULK, '-t', String(SECONDS), '-J'], (SECONDS + 20) * 1000);
    const c1 = pid ? cpuTree(pid) : 0;
    const j = JSON.parse(r.out);
    const bytes = j.end.sum_received.bytes as number;
    return { gbps: j.end.sum_received.bits_per_second / 1e9, cpu: pid ? (c1 - c0) / (bytes / 1e9) : null };
  };
  try {
    const c1 = st.topology.clients[0].ns;
    const close = ['-H', 'Connection: close'];
    rows.push({ name: 'kernel nftables DNAT, keep-alive', ...(await wrkNs(c1, `http://${VIP}:${HTTP_PORT}/`, [], null)) });
    rows.push({ name: 'kernel nftables DNAT, new connection per request', ...(await wrkNs(c1, `http://${VIP}:${HTTP_PORT}/`, close, null)) });
    bulk.push({ name: 'kernel nftables DNAT', ...(await iperf(c1, null)) });
    const d = nsRun(st.topology.lb, ['nft', 'delete', 'table', 'ip', 'slb-lab-kernel']);
    if (d.code !== 0) throw new Error(`nft delete table: ${d.stderr}`);
    const { gatewayLabConfig } = await import('../host/gateway/lab.js');
    gw = await startGateway(join(DIR, 'lab'), gatewayLabConfig(st.topology), [{ address: VIP, port: HTTP_PORT }], undefined, st.topology.lb);
    await sleep(1200); // first health checks
    const pid = gw.child.pid!;
    rows.push({ name: 'gateway, keep-alive (pinned)', ...(await wrkNs(c1, `http://${VIP}:${HTTP_PORT}/`, [], pid)) });
    rows.push({ name: 'gateway, new connection per request', ...(await wrkNs(c1, `http://${VIP}:${HTTP_PORT}/`, close, pid)) });
    bulk.push({ name: 'gateway (tcpPorts, layer 4)', ...(await iperf(c1, pid)) });
  } finally {
    await gw?.stop();
    await labDown({ prefix });
    rmSync(DIR, { recursive: true, force: true });
  }
  const f = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));
  const text = [
    `Gateway vs kernel DNAT in the lab (wrk -t1 -c32 -d${SECONDS}s from client c1 to the VIP, three nginx backends; ${cpus().length} cores; ${new Date().toISOString()})`,
    '',
    '| run | requests/s | p50 | p99 | gateway CPU s / 10k req | errors |',
    '|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${f(r.proxyCpu)} | ${r.errors} |`),
    '',
    `iperf3, one TCP stream from c1 to the bulk VIP, ${SECONDS} s:`,
    '',
    '| run | Gbit/s | gateway CPU s / GB |',
    '|---|---:|---:|',
    ...bulk.map((b) => `| ${b.name} | ${b.gbps.toFixed(2)} | ${f(b.cpu)} |`),
  ].join('\n') + '\n';
  process.stdout.write(text);
  if (OUT) writeFileSync(OUT, text);
}

async function main() {
  if (argv.includes('--lab')) return labMain();
  rmSync(DIR, { recursive: true, force: true });
  const port = await freePort('127.0.8.1');
  const vip = '127.0.8.40';
  const addrs = ['127.0.8.41', '127.0.8.42', '127.0.8.43'];
  const nginx = await Promise.all(addrs.map((a, i) => startNginx(DIR, `b${i + 1}`, a, port)));
  let gw: Proc | null = null;
  const rows: Row[] = [];
  try {
    gw = await startGateway(DIR, {
      vips: [{ address: vip, ports: [port], protocols: ['tcp'], scheduler: 'rr', backends: addrs.map((a, i) => ({ id: `b${i + 1}`, address: a })) }],
      gateway: { rules: [{ prefix: '/img/', backends: ['b3'] }], logLevel: 'info', maxConnections: 100000 },
    }, [{ address: vip, port }]);
    await sleep(300);
    const close = ['-H', 'Connection: close'];
    const all = { proxy: null, nginx };
    rows.push({ name: 'direct to nginx, keep-alive', ...(await wrk(`http://${addrs[0]}:${port}/`, [], all)) });
    rows.push({ name: 'gateway, keep-alive (pinned)', ...(await wrk(`http://${vip}:${port}/`, [], { proxy: gw, nginx })) });
    rows.push({ name: 'direct to nginx, new connection per request', ...(await wrk(`http://${addrs[0]}:${port}/`, close, all)) });
    rows.push({ name: 'gateway, new connection per request', ...(await wrk(`http://${vip}:${port}/`, close, { proxy: gw, nginx })) });
    rows.push({ name: 'gateway, new connection per request, /img/ rule', ...(await wrk(`http://${vip}:${port}/img/x`, close, { proxy: gw, nginx })) });
  } finally {
    await gw?.stop();
    for (const n of nginx) await n.stop();
    rmSync(DIR, { recursive: true, force: true });
  }
  const f = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));
  const lines = [
    `Gateway vs direct (loopback, wrk -t1 -c${CONNS} -d${SECONDS}s, nginx 1 worker per backend; ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}; ${new Date().toISOString()})`,
    '',
    '| run | requests/s | p50 | p99 | gateway CPU s / 10k req | nginx CPU s / 10k req | errors |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${f(r.proxyCpu)} | ${f(r.nginxCpu)} | ${r.errors} |`),
  ];
  const text = lines.join('\n') + '\n';
  process.stdout.write(text);
  if (OUT) writeFileSync(OUT, text);
}

main().catch((e) => {
  process.stderr.write(`bench/gateway: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
