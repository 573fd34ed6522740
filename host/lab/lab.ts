// `sessionlb lab up|down|status`: builds the lab topology (host/lab/topology.ts), starts the real
// servers in the backends (nginx, the GStreamer RTSP server, iperf3) and, for methods nat and dr,
// sessionlb itself in the lb namespace; remembers what it made in a state file; tears it all down
// again, also after a crash (the state file plus a sweep of every namespace with the prefix).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, listNamespaces, listeningPorts, nsPids, nsRun, run, sleep, startDetached, stopPids } from './proc.js';
import { gatewayLabConfig, LAB_GATEWAY_METRICS_PORT } from '../gateway/lab.js';
import {
  buildScript,
  DEFAULT_PREFIX,
  HTTP_PORT,
  IPERF_PORT,
  LB_FRONT_MAC,
  LB_HEALTH_ADDR,
  LB_SERVER_GW,
  LB_FRONT_ADDR,
  LB_FRONT_ADDR6,
  LB_HEALTH_ADDR6,
  LB_SERVER_GW6,
  VIP6,
  namespaces,
  ROUTER_FRONT,
  ROUTER_FRONT_MAC,
  RTSP_PORT,
  TAP_FRONT,
  TAP_SERVER,
  topology,
  VIP,
  VIP_BULK,
  type LabMethod,
  type Topology,
} from './topology.js';

export const METRICS_PORT = 9180;
/** Method handoff: the port each backend's agent listens on (its eth0 address). */
export const AGENT_PORT = 9190;

export interface LabProcess {
  role: 'nginx' | 'rtsp' | 'iperf3' | 'sessionlb' | 'agent';
  ns: string;
  backend?: string;
  pid: number;
  log: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  method: LabMethod;
  dir: string;
  startedAt: string;
  topology: Topology;
  processes: LabProcess[];
  sessionlb: { pid: number; ns: string; metricsPort: number; config: string; log: string } | null;
}

/** What `lab up --json` and `lab status --json` print. */
export interface LabSummary {
  method: LabMethod;
  prefix: string;
  dir: string;
  vips: { address: string; ports: number[]; service: string }[];
  clients: { id: string; ns: string; address: string; seenAs: string; behindNat: boolean; address6?: string; seenAs6?: string }[];
  backends: { id: string; ns: string; address: string; address6?: string; mac: string; services: Record<string, number> }[];
  router: string;
  lb: { ns: string; healthAddress: string; gateway: string };
  sessionlb: { pid: number; ns: string; metricsPort: number; metricsUrl: string; config: string; log: string } | null;
}

export class LabError extends Error {
  readonly code = 'LAB_ERROR';
}

export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'lab'))) return d;
    d = dirname(d);
  }
  throw new LabError('cannot find the repository root (package.json next to lab/)');
}

export function stateDir(prefix = DEFAULT_PREFIX): string {
  const base = process.env.SESSIONLB_LAB_DIR ? resolve(process.env.SESSIONLB_LAB_DIR) : join(tmpdir(), 'sessionlb-lab');
  return join(base, prefix.replace(/-$/, ''));
}

export function readState(prefix = DEFAULT_PREFIX): LabState | null {
  const f = join(stateDir(prefix), 'state.json');
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as LabState;
  } catch {
    return null;
  }
}

function writeState(s: LabState): void {
  writeFileSync(join(s.dir, 'state.json'), JSON.stringify(s, null, 2) + '\n');
}

/** Checks the machine can host the lab; returns what is missing (empty when all is there). */
export function missingPrerequisites(method: LabMethod): string[] {
  const miss: string[] = [];
  if (process.getuid && process.getuid() !== 0) miss.push('root (network namespaces)');
  for (const bin of ['ip', 'nft', 'nginx', 'iperf3', 'ss']) {
    if (run(['sh', '-c', `command -v ${bin}`]).code !== 0) miss.push(bin);
  }
  if (run(['/usr/bin/python3', '-c', "import gi; gi.require_version('GstRtspServer','1.0'); from gi.repository import GstRtspServer"]).code !== 0) {
    miss.push('python3 GstRtspServer (gir1.2-gst-rtsp-server-1.0, python3-gst-1.0)');
  }
  if (method !== 'kernel' && method !== 'gateway' && !existsSync('/dev/net/tun')) miss.push('/dev/net/tun');
  return miss;
}

/** sessionlb's config for the lab: both VIPs, the backends' fixed MACs, the TAPs, health checks. */
export function sessionlbConfig(t: Topology, method: 'nat' | 'dr' | 'splice' | 'handoff', opts: LabUpOptions = {}): Record<string, unknown> {
  const interval = (opts.healthIntervalMs ?? 500) / 1000;
  // HTTP GET /health on nginx from lb's own address on the server LAN (a TCP check on iperf3's
  // port would hold iperf3's only control slot).
  const healthCheck = { type: 'http', port: HTTP_PORT, path: '/health', interval, timeout: Math.min(0.3, interval), rise: 2, fall: 2, localAddress: LB_HEALTH_ADDR };
  return {
    mac: LB_FRONT_MAC,
    gatewayMac: ROUTER_FRONT_MAC,
    flowCapacity: 1 << 16,
    ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
    vips: [
      {
        address: VIP,
        method,
        // Handoff: HTTP (the agents' HTTP server processes) and RTSP (passed on to the GStreamer
        // server, which adopts them); docs/handoff.md. Its health check is the agent's port: a
        // backend whose agent is gone cannot take connections.
        ...(method === 'handoff' ? { ports: [HTTP_PORT, RTSP_PORT], handoff: { agentPort: AGENT_PORT }, healthCheck: { ...healthCheck, type: 'tcp', port: AGENT_PORT, path: undefined } } : {}),
        scheduler: 'maglev',
        policy: 'session',
        rtspPorts: [RTSP_PORT],
        ...(opts.maxSessions ? { maxSessions: opts.maxSessions } : {}),
        ...(method === 'handoff' ? {} : { healthCheck }),
        // Transparent splicing: the backends see the real clients, and an RTSP server sends its
        // UDP media to the client (through sessionlb, the backends' gateway), not to the VIP.
        ...(method === 'splice' ? { splice: { source: 'client' } } : {}),
        backends: t.backends.map((b) => ({ id: b.id, address: b.address, mac: b.mac, ...(opts.maxSessionsPerBackend ? { maxSessions: opts.maxSessionsPerBackend } : {}) })),
      },
      {
        address: VIP_BULK,
        ports: [IPERF_PORT],
        // Splice is for the HTTP/RTSP VIP; bulk traffic stays NAT (the backends route through
        // sessionlb the same way for both).
        method: method === 'splice' ? 'nat' : method === 'handoff' ? 'dr' : method,
        scheduler: 'sh',
        policy: 'client',
        healthCheck,
        backends: t.backends.map((b) => ({ id: `${b.id}-bulk`, address: b.address, mac: b.mac })),
      },
      ...(t.ipv6
        ? [
            {
              address: VIP6,
              ports: [HTTP_PORT],
              method: method === 'splice' ? 'nat' : method === 'handoff' ? 'dr' : method, // splicing and handoff are IPv4 only
              scheduler: 'maglev',
              healthCheck: { ...healthCheck, localAddress: LB_HEALTH_ADDR6 },
              backends: t.backends.map((b) => ({ id: `${b.id}-v6`, address: b.address6, mac: b.mac })),
            },
          ]
        : []),
    ],
    live: {
      interfaces: [
        { name: TAP_FRONT, role: 'client', addresses: [LB_FRONT_ADDR, ...(t.ipv6 ? [LB_FRONT_ADDR6] : [])], persist: true },
        // NAT: the backends' default gateway; DR: only the source of sessionlb's ARP requests.
        { name: TAP_SERVER, role: 'server', addresses: [LB_SERVER_GW, ...(t.ipv6 ? [LB_SERVER_GW6] : [])], persist: true },
      ],
      gateway: { address: ROUTER_FRONT, mac: ROUTER_FRONT_MAC },
      admission: { tcp: 'rst', icmpRate: 100 },
      metrics: { address: '127.0.0.1', port: METRICS_PORT },
    },
  };
}

export interface LabUpOptions {
  method?: LabMethod;
  prefix?: string;
  /** VIP-wide concurrent session limit (admission). */
  maxSessions?: number;
  maxSessionsPerBackend?: number;
  healthIntervalMs?: number;
  /** The config's timeouts section (seconds), e.g. a short sessionGrace. */
  timeouts?: Record<string, number>;
  /** Extra arguments for `sessionlb run` (e.g. --pcap-tap DIR). */
  runArgs?: string[];
  /** Dual stack: IPv6 beside IPv4 everywhere and the VIP fd88::100 (HTTP). */
  ipv6?: boolean;
  /** Milliseconds to wait for the servers and the VIP. */
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

export async function labUp(opts: LabUpOptions = {}): Promise<LabState> {
  const method = opts.method ?? 'nat';
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const log = opts.log ?? (() => {});
  const t = topology(prefix, opts.ipv6 === true);
  const existing = listNamespaces().filter((n) => n.startsWith(prefix));
  if (existing.length > 0 || readState(prefix)) {
    throw new LabError(`a lab with prefix "${prefix}" is already up (${existing.length} namespaces); run \`sessionlb lab down\` first`);
  }
  const miss = missingPrerequisites(method);
  if (miss.length) throw new LabError(`missing: ${miss.join(', ')}`);
  const dir = stateDir(prefix);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const state: LabState = {
    version: 1,
    prefix,
    method,
    dir,
    startedAt: new Date().toISOString(),
    topology: t,
    processes: [],
    sessionlb: null,
  };
  writeState(state);
  try {
    const script = buildScript(t, method);
    writeFileSync(join(dir, 'topology.sh'), script);
    const r = run(['bash', join(dir, 'topology.sh')], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new LabError(`building the topology failed (${join(dir, 'topology.sh')}):\n${r.stderr.trim()}`);
    log(`topology built in ${Math.round(r.ms)} ms`);
    startServers(state);
    writeState(state);
    await waitServers(state, opts.readyTimeoutMs ?? 15_000);
    log('servers listening');
    if (method === 'gateway') {
      startGateway(state, opts);
      writeState(state);
    } else if (method !== 'kernel') {
      startSessionlb(state, method, opts);
      writeState(state);
    }
    await waitVip(state, opts.readyTimeoutMs ?? 15_000);
    log('VIP answers');
    return state;
  } catch (e) {
    const keep = join(tmpdir(), `sessionlb-lab-failed-${prefix.replace(/-$/, '')}.log`);
    try {
      const logs = state.processes.map((p) => `== ${p.role} ${p.ns}\n${existsSync(p.log) ? readFileSync(p.log, 'utf8').slice(-4000) : ''}`).join('\n');
      writeFileSync(keep, logs);
    } catch {
      /* best effort */
    }
    await labDown({ prefix });
    throw e instanceof LabError ? new LabError(`${e.message}\n(logs of the failed run: ${keep})`) : e;
  }
}

function startServers(s: LabState): void {
  const root = repoRoot();
  const tmpl = readFileSync(join(root, 'lab', 'nginx.conf.tmpl'), 'utf8');
  for (const b of s.topology.backends) {
    const bdir = join(s.dir, b.id);
    mkdirSync(bdir, { recursive: true });
    const conf = join(bdir, 'nginx.conf');
    const listen6 = s.topology.ipv6 ? 'listen [::]:80 reuseport backlog=4096;' : '';
    writeFileSync(conf, tmpl.replaceAll('@ID@', b.id).replaceAll('@DIR@', bdir).replaceAll('@LISTEN6@', listen6));
    const add = (role: LabProcess['role'], argv: string[]) => {
      const logf = join(bdir, `${role}.log`);
      s.processes.push({ role, ns: b.ns, backend: b.id, pid: startDetached(b.ns, argv, logf), log: logf });
    };
    add('nginx', ['nginx', '-c', conf, '-p', bdir]);
    // Handoff: the agent passes RTSP connections to the RTSP server through this socket.
    const rtspHandoff = join(bdir, 'rtsp-handoff.sock');
    add('rtsp', ['/usr/bin/python3', join(root, 'lab', 'rtsp-server.py'), '--port', String(RTSP_PORT), '--id', b.id, ...(s.method === 'handoff' ? ['--handoff-socket', rtspHandoff] : [])]);
    // DR: iperf3 binds the bulk VIP (on lo), so its UDP replies leave from the address the client
    // sent to; an unbound UDP socket would answer from the route's source and the client would drop it.
    add('iperf3', ['iperf3', '-s', '-p', String(IPERF_PORT), ...(s.method === 'dr' || s.method === 'handoff' ? ['-B', VIP_BULK] : [])]);
    // Handoff: the agent restores handed-off connections for its HTTP server process.
    if (s.method === 'handoff') add('agent', [process.execPath, cliMain(), 'agent', '--listen', `${b.address}:${AGENT_PORT}`, '--id', b.id, '--pass', `${RTSP_PORT}=${rtspHandoff}`]);
  }
}

async function waitServers(s: LabState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const b of s.topology.backends) {
    for (;;) {
      const ports = listeningPorts(b.ns);
      if ([HTTP_PORT, RTSP_PORT, IPERF_PORT, ...(s.method === 'handoff' ? [AGENT_PORT] : [])].every((p) => ports.has(p))) break;
      const dead = s.processes.find((p) => p.ns === b.ns && !alive(p.pid));
      if (dead) throw new LabError(`${dead.role} in ${b.ns} exited: ${tail(dead.log)}`);
      if (Date.now() > deadline) throw new LabError(`servers in ${b.ns} not listening after ${timeoutMs} ms (have ${[...ports].join(', ')})`);
      await sleep(50);
    }
  }
}

function tail(f: string): string {
  try {
    return readFileSync(f, 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The CLI the lab starts (sessionlb run, agent): SESSIONLB_CLI or this checkout's build. */
function cliMain(): string {
  return process.env.SESSIONLB_CLI ? resolve(process.env.SESSIONLB_CLI) : join(repoRoot(), 'dist', 'host', 'cli', 'main.js');
}

function startSessionlb(s: LabState, method: 'nat' | 'dr' | 'splice' | 'handoff', opts: LabUpOptions): void {
  const config = join(s.dir, 'sessionlb.json');
  writeFileSync(config, JSON.stringify(sessionlbConfig(s.topology, method, opts), null, 2) + '\n');
  const logf = join(s.dir, 'sessionlb.log');
  const pid = startDetached(s.topology.lb, [process.execPath, cliMain(), 'run', '--config', config, ...(opts.runArgs ?? [])], logf);
  s.processes.push({ role: 'sessionlb', ns: s.topology.lb, pid, log: logf });
  s.sessionlb = { pid, ns: s.topology.lb, metricsPort: METRICS_PORT, config, log: logf };
}

/** `sessionlb gateway` in the lb namespace (method gateway): its config from host/gateway/lab.ts. */
function startGateway(s: LabState, opts: LabUpOptions): void {
  if (s.topology.ipv6) throw new LabError('--ipv6 is not supported with --method gateway');
  const config = join(s.dir, 'gateway.json');
  writeFileSync(config, JSON.stringify(gatewayLabConfig(s.topology, opts), null, 2) + '\n');
  const logf = join(s.dir, 'gateway.log');
  const pid = startDetached(s.topology.lb, [process.execPath, cliMain(), 'gateway', '--config', config], logf);
  s.processes.push({ role: 'sessionlb', ns: s.topology.lb, pid, log: logf });
  s.sessionlb = { pid, ns: s.topology.lb, metricsPort: LAB_GATEWAY_METRICS_PORT, config, log: logf };
}

/** Waits until an HTTP GET from the first client to the VIP is answered by a backend. */
async function waitVip(s: LabState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const c = s.topology.clients[0];
  let last = '';
  const urls = [`http://${VIP}:${HTTP_PORT}/`, ...(s.topology.ipv6 ? [`http://[${VIP6}]:${HTTP_PORT}/`] : [])];
  for (;;) {
    const codes = urls.map((u) => nsRun(c.ns, ['curl', '-s', '-m', '1', '-o', '/dev/null', '-w', '%{http_code}', u], { timeoutMs: 3000 }));
    const r = codes.find((x) => x.stdout.trim() !== '200') ?? codes[0];
    if (codes.every((x) => x.stdout.trim() === '200')) return;
    last = `curl exit ${r.code} ${r.stdout} ${r.stderr.trim()}`;
    if (s.sessionlb && !alive(s.sessionlb.pid)) throw new LabError(`sessionlb exited:\n${tail(s.sessionlb.log)}`);
    if (Date.now() > deadline) throw new LabError(`the VIP${urls.length > 1 ? 's' : ''} did not answer within ${timeoutMs} ms (${last})`);
    await sleep(100);
  }
}

export interface LabDownResult {
  prefix: string;
  killed: number;
  namespaces: string[];
  stateRemoved: boolean;
}

/** Removes everything a lab with this prefix made; safe to run when nothing is up. */
export async function labDown(opts: { prefix?: string } = {}): Promise<LabDownResult> {
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  const st = readState(prefix);
  const pids = new Set<number>();
  // sessionlb first (it prints its final counters on SIGTERM), then the servers.
  if (st?.sessionlb && alive(st.sessionlb.pid)) await stopPids([st.sessionlb.pid], 3000);
  for (const p of st?.processes ?? []) if (alive(p.pid)) pids.add(p.pid);
  const nss = new Set(listNamespaces().filter((n) => n.startsWith(prefix)));
  for (const n of nss) for (const p of nsPids(n)) pids.add(p);
  await stopPids([...pids], 2000);
  for (const n of nss) {
    // Links first (bridges, TAPs, veths go with their namespace, but persistent TAPs are removed explicitly).
    run(['ip', '-n', n, 'link', 'del', TAP_FRONT]);
    run(['ip', '-n', n, 'link', 'del', TAP_SERVER]);
    run(['ip', 'netns', 'del', n]);
  }
  const dir = stateDir(prefix);
  const had = existsSync(dir);
  rmSync(dir, { recursive: true, force: true });
  return { prefix, killed: pids.size, namespaces: [...nss], stateRemoved: had };
}

export function summary(s: LabState): LabSummary {
  const t = s.topology;
  return {
    method: s.method,
    prefix: s.prefix,
    dir: s.dir,
    vips: [
      s.method === 'handoff'
        ? { address: VIP, ports: [HTTP_PORT, RTSP_PORT], service: 'http, rtsp (TCP handoff: each connection migrates to its backend (HTTP: the agent\'s server; RTSP: the GStreamer server), replies go straight to the client)' }
        : { address: VIP, ports: [HTTP_PORT, RTSP_PORT], service: 'http, rtsp (scheduled per flow; RTSP sessions kept whole by sessionlb)' },
      { address: VIP_BULK, ports: [IPERF_PORT], service: 'iperf3 tcp/udp (scheduled by client address)' },
      ...(t.ipv6 ? [{ address: VIP6, ports: [HTTP_PORT], service: 'http over IPv6' }] : []),
    ],
    clients: t.clients.map((c) => ({ id: c.id, ns: c.ns, address: c.address, seenAs: c.seenAs, behindNat: c.behindNat, ...(c.address6 ? { address6: c.address6, seenAs6: c.seenAs6 } : {}) })),
    backends: t.backends.map((b) => ({ id: b.id, ns: b.ns, address: b.address, ...(b.address6 ? { address6: b.address6 } : {}), mac: b.mac, services: { http: HTTP_PORT, rtsp: RTSP_PORT, iperf3: IPERF_PORT, ...(s.method === 'handoff' ? { agent: AGENT_PORT } : {}) } })),
    router: t.router,
    lb: { ns: t.lb, healthAddress: LB_HEALTH_ADDR, gateway: LB_SERVER_GW },
    sessionlb: s.sessionlb
      ? { ...s.sessionlb, metricsUrl: `http://127.0.0.1:${s.sessionlb.metricsPort}/metrics (inside ${s.sessionlb.ns})` }
      : null,
  };
}

export interface LabStatus {
  up: boolean;
  prefix: string;
  method: LabMethod | null;
  namespaces: { name: string; present: boolean }[];
  processes: (LabProcess & { alive: boolean })[];
  strayNamespaces: string[];
  summary: LabSummary | null;
}

export function labStatus(prefix = DEFAULT_PREFIX): LabStatus {
  const st = readState(prefix);
  const present = new Set(listNamespaces().filter((n) => n.startsWith(prefix)));
  const expected = namespaces(topology(prefix));
  const nsList = expected.map((name) => ({ name, present: present.has(name) }));
  const procs = (st?.processes ?? []).map((p) => ({ ...p, alive: alive(p.pid) }));
  const stray = [...present].filter((n) => !expected.includes(n));
  return {
    up: !!st && nsList.every((n) => n.present) && procs.every((p) => p.alive),
    prefix,
    method: st?.method ?? null,
    namespaces: nsList,
    processes: procs,
    strayNamespaces: stray,
    summary: st ? summary(st) : null,
  };
}
