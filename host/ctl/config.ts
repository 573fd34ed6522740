// The JSON configuration: parsing, defaults and validation. Every error names the field
// (`vips[0].backends[1].mac`) and says what to change; ConfigError carries a stable code.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DEFAULT_RING_SIZE, isPrime } from './maglev.js';

export const METHODS = ['nat', 'dr', 'ipip', 'gre', 'gue', 'splice', 'handoff'] as const; // index = the engine's method code (docs/abi.md config_vip)
export const SCHEDULERS = ['maglev', 'rr', 'wrr', 'lc', 'wlc', 'sh', 'p2c'] as const;
export const BACKEND_STATES = ['active', 'draining', 'down'] as const;
export const POLICIES = ['flow', 'client', 'session'] as const;
export type Policy = (typeof POLICIES)[number];
export type Method = (typeof METHODS)[number];
export type Scheduler = (typeof SCHEDULERS)[number];
export type BackendState = (typeof BACKEND_STATES)[number];

export interface BackendConfig {
  id: string;
  address: string;
  family: 4 | 6;
  mac: string;
  weight: number;
  state: BackendState;
  maxSessions: number; // 0 = no limit
  /** Live mode: whether the config gave the MAC (else it is resolved by ARP/ND). */
  macGiven?: boolean;
  /** Live mode: this backend's health-check override (validated by host/live/health.ts). */
  healthCheck?: unknown;
  /** Method handoff: the backend's agent (docs/handoff.md), default its address and the VIP's handoff.agentPort. */
  agent?: { address: string; port: number };
}

export interface VipConfig {
  address: string;
  family: 4 | 6;
  ports: number[] | null; // null = every port
  protocols: ('tcp' | 'udp')[];
  method: Method;
  scheduler: Scheduler;
  ringSize: number;
  /** flow: the scheduler on the 5-tuple; client: source-address hashing (client persistence);
   * session: RTSP inspection keeps every flow of a session on its control connection's backend. */
  policy: Policy;
  rtspPorts: number[];
  maxSessions: number; // concurrent sessions on this VIP, 0 = no limit
  sessionRate: number; // new sessions per second (packet time), 0 = no limit
  /** New control connections from a client with an active session go to its backend (see docs/abi.md). */
  clientAffinity: boolean;
  tunnel: { source: string | null; source6: string | null; guePort: number };
  backends: BackendConfig[];
  /** Live mode: the VIP's health check (validated by host/live/health.ts); null = none. */
  healthCheck?: unknown;
  /** Method splice (docs/splice.md): URL prefix rules (backend by id), the source address towards backends, the MSS announced to clients. */
  splice?: SpliceConfig;
  /** Method handoff (docs/handoff.md): the agents' port, how long to wait for one to connect. */
  handoff?: HandoffConfig;
}

export interface HandoffConfig {
  agentPort: number;
  connectTimeoutMs: number;
}

/** Methods that terminate the client's handshake in the engine (SYN cookies, held request): splice and handoff. */
export function isSpliceFamily(m: Method): boolean {
  return m === 'splice' || m === 'handoff';
}

export interface SpliceConfig {
  rules: { prefix: string; backend: string }[];
  source: string | null; // null = the VIP; "client" = the client's own address (transparent)
  mss: number;
}

export interface Timeouts {
  tcpSyn: number;
  tcpEstablished: number;
  tcpFin: number;
  tcpClose: number;
  udp: number;
  icmp: number;
  frag: number;
  sessionGrace: number; // an RTSP session lives on this long after TEARDOWN or losing its control connection
  expectation: number; // an expected media flow waits this long for its first packet
}

export interface Config {
  mac: string;
  gatewayMac: string;
  flowCapacity: number;
  hashKey: string; // 32 hex digits
  timeouts: Timeouts;
  maxSessions: number; // concurrent sessions over all VIPs, 0 = no limit
  vips: VipConfig[];
  /** `sessionlb run` only (see LiveConfig); null when absent. */
  live?: LiveConfig | null;
}

export const LIVE_ROLES = ['client', 'server', 'both'] as const;
export type LiveRole = (typeof LIVE_ROLES)[number];

export interface LiveInterface {
  name: string; // TAP device (created if missing, reused if it exists)
  role: LiveRole; // client side, server side, or both (one-armed)
  addresses: string[]; // addresses sessionlb owns on this side (answers ARP/ND and ping for them)
  mtu: number;
  persist: boolean; // leave the device behind at exit (TUNSETPERSIST)
}

export interface LiveConfig {
  interfaces: LiveInterface[];
  /** Client-side next hop: replies to clients go to its MAC; null = clients are on-link. */
  gateway: { address: string | null; mac: string | null };
  admission: { tcp: 'rst' | 'drop'; icmpRate: number };
  /** Prometheus endpoint, as host/live/metrics.ts parseMetricsConfig reads it ({address, port, allowRemote}); null = none. */
  metrics: unknown;
  neighbor: { retryMs: number; retries: number; refreshS: number };
  /** Spare backend slots reserved per VIP so SIGHUP can add backends without re-initialising. */
  backendSlack: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** IFF_VNET_HDR with checksum and TSO offloads: TCP super-frames (up to 64 KiB) cross the TAPs whole. Default true. */
  offload: boolean;
}

function parseLive(raw: unknown, vips: VipConfig[]): LiveConfig {
  if (!isObj(raw)) throw new ConfigError('live', 'must be an object');
  only(raw, 'live', ['interfaces', 'gateway', 'admission', 'metrics', 'neighbor', 'backendSlack', 'logLevel', 'mtu', 'offload']);
  const defMtu = int(raw, 'mtu', 'live.', 1500, 576, 9000);
  if (!Array.isArray(raw.interfaces) || raw.interfaces.length === 0 || raw.interfaces.length > 2) {
    throw new ConfigError('live.interfaces', 'must be an array of 1 or 2 interfaces: {"name", "role": "client"|"server"|"both", "addresses"}');
  }
  const seen = new Set<string>();
  const interfaces = raw.interfaces.map((ri, i): LiveInterface => {
    const p = `live.interfaces[${i}].`;
    if (!isObj(ri)) throw new ConfigError(`live.interfaces[${i}]`, 'must be an object');
    only(ri, `live.interfaces[${i}]`, ['name', 'role', 'addresses', 'mtu', 'persist']);
    const name = str(ri, 'name', p);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new ConfigError(`${p}name`, `"${name}" is not a valid interface name (1-15 letters, digits, '_', '.', '-')`);
    if (seen.has(name)) throw new ConfigError(`${p}name`, `"${name}" is listed twice`);
    seen.add(name);
    const role = oneOf(ri, 'role', p, LIVE_ROLES);
    let addresses: string[] = [];
    if (ri.addresses !== undefined) {
      if (!Array.isArray(ri.addresses)) throw new ConfigError(`${p}addresses`, 'must be an array of IP addresses');
      addresses = ri.addresses.map((a, k) => {
        const t = typeof a === 'string' ? a.replace(/\/\d+$/, '') : '';
        if (isIP(t) === 0) throw new ConfigError(`${p}addresses[${k}]`, `${JSON.stringify(a)} is not an IPv4 or IPv6 address`);
        return t;
      });
    }
    if (ri.persist !== undefined && typeof ri.persist !== 'boolean') throw new ConfigError(`${p}persist`, 'must be true or false');
    return { name, role, addresses, mtu: int(ri, 'mtu', p, defMtu, 576, 9000), persist: ri.persist === true };
  });
  const roles = interfaces.map((x) => x.role);
  if (interfaces.length === 1 && roles[0] !== 'both') throw new ConfigError('live.interfaces[0].role', 'a single interface must have role "both" (one-armed); use two interfaces for "client" and "server"');
  if (interfaces.length === 2 && !(roles.includes('client') && roles.includes('server'))) {
    throw new ConfigError('live.interfaces', 'two interfaces must be one "client" and one "server"');
  }
  const gateway = { address: null as string | null, mac: null as string | null };
  if (raw.gateway !== undefined) {
    if (!isObj(raw.gateway)) throw new ConfigError('live.gateway', 'must be an object {"address", "mac"?}');
    only(raw.gateway, 'live.gateway', ['address', 'mac']);
    if (raw.gateway.address !== undefined) gateway.address = address(raw.gateway, 'address', 'live.gateway.').address;
    if (raw.gateway.mac !== undefined) gateway.mac = mac(raw.gateway, 'mac', 'live.gateway.', '');
    if (!gateway.address && !gateway.mac) throw new ConfigError('live.gateway', 'needs "address" (resolved by ARP/ND) or "mac"');
  }
  const admission = { tcp: 'rst' as 'rst' | 'drop', icmpRate: 100 };
  if (raw.admission !== undefined) {
    if (!isObj(raw.admission)) throw new ConfigError('live.admission', 'must be an object');
    only(raw.admission, 'live.admission', ['tcp', 'icmpRate']);
    admission.tcp = oneOf(raw.admission, 'tcp', 'live.admission.', ['rst', 'drop'] as const, 'rst');
    admission.icmpRate = int(raw.admission, 'icmpRate', 'live.admission.', 100, 0, 1_000_000);
  }
  const metrics = raw.metrics === undefined ? null : raw.metrics;
  const neighbor = { retryMs: 1000, retries: 5, refreshS: 60 };
  if (raw.neighbor !== undefined) {
    if (!isObj(raw.neighbor)) throw new ConfigError('live.neighbor', 'must be an object');
    only(raw.neighbor, 'live.neighbor', ['retryMs', 'retries', 'refreshS']);
    neighbor.retryMs = int(raw.neighbor, 'retryMs', 'live.neighbor.', 1000, 10, 60_000);
    neighbor.retries = int(raw.neighbor, 'retries', 'live.neighbor.', 5, 1, 1000);
    neighbor.refreshS = int(raw.neighbor, 'refreshS', 'live.neighbor.', 60, 1, 86400);
  }
  const backendSlack = int(raw, 'backendSlack', 'live.', 8, 0, 1024);
  const logLevel = oneOf(raw, 'logLevel', 'live.', ['debug', 'info', 'warn', 'error'] as const, 'info');
  for (const v of vips) {
    if (v.method !== 'nat' && v.method !== 'dr' && !isSpliceFamily(v.method)) throw new ConfigError('live', `VIP ${v.address}: live mode supports methods "nat", "dr", "splice" and "handoff" (not "${v.method}")`);
  }
  if (raw.offload !== undefined && typeof raw.offload !== 'boolean') throw new ConfigError('live.offload', 'must be true or false');
  // Splicing answers some segments in place with frames of its own (docs/splice.md): no GSO super-frames.
  const splice = vips.some((v) => isSpliceFamily(v.method));
  if (splice && raw.offload === true) throw new ConfigError('live.offload', 'cannot be on with a VIP of method "splice" or "handoff" (the engine answers segments in place)');
  return { interfaces, gateway, admission, metrics, neighbor, backendSlack, logLevel, offload: raw.offload !== false && !splice };
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  tcpSyn: 60, tcpEstablished: 900, tcpFin: 120, tcpClose: 10, udp: 300, icmp: 60, frag: 30, sessionGrace: 10, expectation: 60,
};
export const DEFAULT_FLOW_CAPACITY = 1 << 20;
export const DEFAULT_GUE_PORT = 6080;
const DEFAULT_HASH_KEY = '736c625f6b657930736c625f6b657931';

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly field: string, message: string) {
    super(field ? `config: ${field}: ${message}` : `config: ${message}`);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function only(o: Obj, path: string, allowed: string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) {
      throw new ConfigError(path ? `${path}.${k}` : k, `unknown field (allowed here: ${allowed.join(', ')})`);
    }
  }
}

function str(o: Obj, key: string, path: string, def?: string): string {
  const v = o[key];
  if (v === undefined) {
    if (def !== undefined) return def;
    throw new ConfigError(`${path}${key}`, 'is required');
  }
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${path}${key}`, 'must be a non-empty string');
  return v;
}

function int(o: Obj, key: string, path: string, def: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${path}${key}`, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function oneOf<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[], def?: T): T {
  const v = o[key];
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`${path}${key}`, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')} (got ${JSON.stringify(v)})`);
  }
  return v as T;
}

function address(o: Obj, key: string, path: string): { address: string; family: 4 | 6 } {
  const a = str(o, key, path);
  const f = isIP(a);
  if (f === 0) throw new ConfigError(`${path}${key}`, `"${a}" is not an IPv4 or IPv6 address`);
  return { address: a, family: f as 4 | 6 };
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function mac(o: Obj, key: string, path: string, def: string): string {
  const m = str(o, key, path, def);
  if (!MAC_RE.test(m)) throw new ConfigError(`${path}${key}`, `"${m}" is not a MAC address like 02:00:00:00:01:01`);
  return m.toLowerCase();
}

/** A MAC derived from an address when the config gives none: 02 (locally administered) + 5 bytes. */
export function defaultMac(addr: string): string {
  const b = addressBytes(addr);
  const tail = isIP(addr) === 4 ? [0, ...b.subarray(12, 16)] : Array.from(b.subarray(11, 16));
  return ['02', ...tail.map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/** 16 bytes: IPv6 as is, IPv4 as ::ffff:a.b.c.d (the engine's key form). */
export function addressBytes(addr: string): Uint8Array {
  const out = new Uint8Array(16);
  if (isIP(addr) === 4) {
    out[10] = 0xff;
    out[11] = 0xff;
    addr.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
    return out;
  }
  let s = addr;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const m = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (m) {
    const q = m[1].split('.').map(Number);
    s = s.slice(0, -m[1].length) + `${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  const [head, tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** Text form of a 16-byte key address (IPv4-mapped shown as dotted quad). */
export function formatAddress(b: Uint8Array, off = 0): string {
  let mapped = b[off + 10] === 0xff && b[off + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[off + i] !== 0) mapped = false;
  if (mapped) return `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  // Longest run of zero groups (length >= 2) becomes '::' (RFC 5952).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RESERVED_IDS = new Set(['client', 'report', 'flows']);

export function parseConfig(raw: unknown): Config {
  if (!isObj(raw)) throw new ConfigError('', 'the top level must be a JSON object with a "vips" array');
  only(raw, '', ['mac', 'gatewayMac', 'flowCapacity', 'hashKey', 'timeouts', 'maxSessions', 'vips', 'live']);
  const lbMac = mac(raw, 'mac', '', '02:00:00:00:00:fe');
  const gwMac = mac(raw, 'gatewayMac', '', '02:00:00:00:00:01');
  const flowCapacity = int(raw, 'flowCapacity', '', DEFAULT_FLOW_CAPACITY, 1024, 1 << 26);
  const hashKey = str(raw, 'hashKey', '', DEFAULT_HASH_KEY);
  if (!/^[0-9a-fA-F]{32}$/.test(hashKey)) throw new ConfigError('hashKey', 'must be 32 hexadecimal digits (128 bits)');
  const timeouts = { ...DEFAULT_TIMEOUTS };
  if (raw.timeouts !== undefined) {
    if (!isObj(raw.timeouts)) throw new ConfigError('timeouts', 'must be an object');
    only(raw.timeouts, 'timeouts', Object.keys(DEFAULT_TIMEOUTS));
    for (const k of Object.keys(DEFAULT_TIMEOUTS) as (keyof Timeouts)[]) {
      timeouts[k] = int(raw.timeouts, k, 'timeouts.', DEFAULT_TIMEOUTS[k], 1, 86400 * 7);
    }
  }
  if (!Array.isArray(raw.vips) || raw.vips.length === 0) throw new ConfigError('vips', 'must be a non-empty array');
  if (raw.vips.length > 255) throw new ConfigError('vips', 'at most 255 VIPs');
  const seenVip = new Set<string>();
  const seenId = new Set<string>();
  const vips = raw.vips.map((rv, i): VipConfig => {
    const p = `vips[${i}].`;
    if (!isObj(rv)) throw new ConfigError(`vips[${i}]`, 'must be an object');
    only(rv, `vips[${i}]`, ['address', 'ports', 'protocols', 'method', 'scheduler', 'ringSize', 'policy', 'rtspPorts', 'maxSessions', 'sessionRate', 'clientAffinity', 'tunnel', 'backends', 'healthCheck', 'splice', 'handoff']);
    const va = address(rv, 'address', p);
    const norm = Buffer.from(addressBytes(va.address)).toString('hex');
    if (seenVip.has(norm)) throw new ConfigError(`${p}address`, `${va.address} is configured twice`);
    seenVip.add(norm);
    let ports: number[] | null = null;
    if (rv.ports !== undefined) {
      if (!Array.isArray(rv.ports) || rv.ports.length === 0) throw new ConfigError(`${p}ports`, 'must be a non-empty array of ports (omit it for every port)');
      ports = rv.ports.map((x, k) => {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) {
          throw new ConfigError(`${p}ports[${k}]`, `must be a port from 1 to 65535 (got ${JSON.stringify(x)})`);
        }
        return x;
      });
    }
    let protocols: ('tcp' | 'udp')[] = ['tcp', 'udp'];
    if (rv.protocols !== undefined) {
      if (!Array.isArray(rv.protocols) || rv.protocols.length === 0) throw new ConfigError(`${p}protocols`, 'must be a non-empty array of "tcp" and/or "udp"');
      protocols = rv.protocols.map((x, k) => {
        if (x !== 'tcp' && x !== 'udp') throw new ConfigError(`${p}protocols[${k}]`, `must be "tcp" or "udp" (got ${JSON.stringify(x)})`);
        return x;
      });
    }
    const method = oneOf(rv, 'method', p, METHODS, 'nat');
    const scheduler = oneOf(rv, 'scheduler', p, SCHEDULERS, 'maglev');
    const ringSize = int(rv, 'ringSize', p, DEFAULT_RING_SIZE, 2, 5_000_011);
    const policy = oneOf(rv, 'policy', p, POLICIES, 'flow');
    let rtspPorts = [554];
    if (rv.rtspPorts !== undefined) {
      if (!Array.isArray(rv.rtspPorts) || rv.rtspPorts.length === 0 || rv.rtspPorts.length > 4) {
        throw new ConfigError(`${p}rtspPorts`, 'must be an array of 1 to 4 ports (default [554])');
      }
      rtspPorts = rv.rtspPorts.map((x, k) => {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) {
          throw new ConfigError(`${p}rtspPorts[${k}]`, `must be a port from 1 to 65535 (got ${JSON.stringify(x)})`);
        }
        return x;
      });
    }
    const maxSessions = int(rv, 'maxSessions', p, 0, 0, 1 << 30);
    const sessionRate = int(rv, 'sessionRate', p, 0, 0, 4_000_000);
    if (rv.clientAffinity !== undefined && typeof rv.clientAffinity !== 'boolean') throw new ConfigError(`${p}clientAffinity`, 'must be true or false');
    const clientAffinity = rv.clientAffinity === true;
    if (!isPrime(ringSize)) throw new ConfigError(`${p}ringSize`, `must be a prime number (${ringSize} is not; 65537 is the default)`);
    const tunnel = { source: null as string | null, source6: null as string | null, guePort: DEFAULT_GUE_PORT };
    if (rv.tunnel !== undefined) {
      if (!isObj(rv.tunnel)) throw new ConfigError(`${p}tunnel`, 'must be an object');
      only(rv.tunnel, `${p}tunnel`, ['source', 'source6', 'guePort']);
      if (rv.tunnel.source !== undefined) {
        const s = address(rv.tunnel, 'source', `${p}tunnel.`);
        if (s.family !== 4) throw new ConfigError(`${p}tunnel.source`, 'must be an IPv4 address (use source6 for IPv6)');
        tunnel.source = s.address;
      }
      if (rv.tunnel.source6 !== undefined) {
        const s = address(rv.tunnel, 'source6', `${p}tunnel.`);
        if (s.family !== 6) throw new ConfigError(`${p}tunnel.source6`, 'must be an IPv6 address');
        tunnel.source6 = s.address;
      }
      tunnel.guePort = int(rv.tunnel, 'guePort', `${p}tunnel.`, DEFAULT_GUE_PORT, 1, 65535);
    }
    if (!Array.isArray(rv.backends) || rv.backends.length === 0) throw new ConfigError(`${p}backends`, 'must be a non-empty array');
    if (rv.backends.length > 65535) throw new ConfigError(`${p}backends`, 'at most 65535 backends per VIP');
    const backends = rv.backends.map((rb, j): BackendConfig => {
      const bp = `${p}backends[${j}].`;
      if (!isObj(rb)) throw new ConfigError(`${p}backends[${j}]`, 'must be an object');
      only(rb, `${p}backends[${j}]`, ['id', 'address', 'mac', 'weight', 'state', 'maxSessions', 'healthCheck', 'agent']);
      const id = str(rb, 'id', bp);
      if (!ID_RE.test(id) || RESERVED_IDS.has(id)) {
        throw new ConfigError(`${bp}id`, `"${id}" must be 1-64 letters, digits, '.', '_' or '-' (it names the output file), and not "client", "report" or "flows"`);
      }
      if (seenId.has(id)) throw new ConfigError(`${bp}id`, `"${id}" is used twice; backend ids must be unique across the config`);
      seenId.add(id);
      const ba = address(rb, 'address', bp);
      if (isSpliceFamily(method) && (va.family !== 4 || ba.family !== 4)) {
        throw new ConfigError(va.family !== 4 ? `${p}address` : `${bp}address`, `${method} supports IPv4 VIPs and backends only (docs/${method}.md)`);
      }
      let agent: { address: string; port: number } | undefined;
      if (rb.agent !== undefined) {
        if (method !== 'handoff') throw new ConfigError(`${bp}agent`, 'is only for method "handoff"');
        const m = typeof rb.agent === 'string' ? /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(rb.agent) : null;
        if (!m || isIP(m[1]) !== 4 || +m[2] < 1 || +m[2] > 65535) throw new ConfigError(`${bp}agent`, 'must be "ADDRESS:PORT" (IPv4), where the backend\'s handoff agent listens');
        agent = { address: m[1], port: +m[2] };
      }
      if (method === 'nat' && ba.family !== va.family) {
        throw new ConfigError(`${bp}address`, `NAT needs the backend in the VIP's address family (IPv${va.family}); use a tunnel method to cross families`);
      }
      if ((method === 'ipip' || method === 'gre' || method === 'gue') && ba.family === 4 && !tunnel.source && va.family !== 4) {
        throw new ConfigError(`${p}tunnel.source`, `is required: backend ${id} is IPv4 and the VIP is not, so the outer source address cannot default to the VIP`);
      }
      if ((method === 'ipip' || method === 'gre' || method === 'gue') && ba.family === 6 && !tunnel.source6 && va.family !== 6) {
        throw new ConfigError(`${p}tunnel.source6`, `is required: backend ${id} is IPv6 and the VIP is not`);
      }
      return {
        id,
        address: ba.address,
        family: ba.family,
        mac: mac(rb, 'mac', bp, defaultMac(ba.address)),
        weight: int(rb, 'weight', bp, 1, 0, 65535),
        state: oneOf(rb, 'state', bp, BACKEND_STATES, 'active'),
        maxSessions: int(rb, 'maxSessions', bp, 0, 0, 1 << 30),
        ...(rb.mac !== undefined ? { macGiven: true } : {}),
        ...(rb.healthCheck !== undefined ? { healthCheck: rb.healthCheck } : {}),
        ...(agent ? { agent } : {}),
      };
    });
    if (ringSize < backends.length) throw new ConfigError(`${p}ringSize`, `must be at least the number of backends (${backends.length})`);
    let splice: SpliceConfig | undefined;
    if (rv.splice !== undefined) {
      if (!isSpliceFamily(method)) throw new ConfigError(`${p}splice`, 'is only for methods "splice" and "handoff"');
      if (!isObj(rv.splice)) throw new ConfigError(`${p}splice`, 'must be an object');
      only(rv.splice, `${p}splice`, ['rules', 'source', 'mss']);
      const sp = rv.splice;
      const rules: { prefix: string; backend: string }[] = [];
      if (sp.rules !== undefined) {
        if (!Array.isArray(sp.rules) || sp.rules.length > 16) throw new ConfigError(`${p}splice.rules`, 'must be an array of at most 16 rules');
        sp.rules.forEach((r, k) => {
          const rp = `${p}splice.rules[${k}].`;
          if (!isObj(r)) throw new ConfigError(`${p}splice.rules[${k}]`, 'must be an object {prefix, backend}');
          only(r, `${p}splice.rules[${k}]`, ['prefix', 'backend']);
          const prefix = str(r, 'prefix', rp);
          if (prefix.length === 0 || prefix.length > 56 || !/^[\x21-\x7e]+$/.test(prefix)) throw new ConfigError(`${rp}prefix`, 'must be 1 to 56 visible ASCII characters (the start of the request URI)');
          const backend = str(r, 'backend', rp);
          if (!backends.some((b) => b.id === backend)) throw new ConfigError(`${rp}backend`, `"${backend}" is not a backend of this VIP`);
          rules.push({ prefix, backend });
        });
      }
      let source: string | null = null;
      if (sp.source === 'client') source = 'client';
      else if (sp.source !== undefined) {
        const a = address(sp, 'source', `${p}splice.`);
        if (a.family !== 4) throw new ConfigError(`${p}splice.source`, 'must be an IPv4 address');
        source = a.address;
      }
      splice = { rules, source, mss: int(sp, 'mss', `${p}splice.`, 1460, 536, 9000) };
    } else if (isSpliceFamily(method)) splice = { rules: [], source: null, mss: 1460 };
    if (method === 'handoff' && splice?.source) throw new ConfigError(`${p}splice.source`, 'means nothing for method "handoff" (no connection of ours to the backend)');
    let handoff: HandoffConfig | undefined;
    if (rv.handoff !== undefined) {
      if (method !== 'handoff') throw new ConfigError(`${p}handoff`, 'is only for method "handoff"');
      if (!isObj(rv.handoff)) throw new ConfigError(`${p}handoff`, 'must be an object');
      only(rv.handoff, `${p}handoff`, ['agentPort', 'connectTimeoutMs']);
      handoff = { agentPort: int(rv.handoff, 'agentPort', `${p}handoff.`, 9190, 1, 65535), connectTimeoutMs: int(rv.handoff, 'connectTimeoutMs', `${p}handoff.`, 1000, 10, 60_000) };
    } else if (method === 'handoff') handoff = { agentPort: 9190, connectTimeoutMs: 1000 };
    if (!tunnel.source && va.family === 4) tunnel.source = va.address;
    if (!tunnel.source6 && va.family === 6) tunnel.source6 = va.address;
    return { address: va.address, family: va.family, ports, protocols, method, scheduler, ringSize, policy, rtspPorts, maxSessions, sessionRate, clientAffinity, tunnel, backends,
      ...(rv.healthCheck !== undefined ? { healthCheck: rv.healthCheck } : {}), ...(splice ? { splice } : {}), ...(handoff ? { handoff } : {}) };
  });
  const maxSessions = int(raw, 'maxSessions', '', 0, 0, 1 << 30);
  const live = raw.live === undefined ? null : parseLive(raw.live, vips);
  return { mac: lbMac, gatewayMac: gwMac, flowCapacity, hashKey, timeouts, maxSessions, vips, ...(live ? { live } : {}) };
}

/** A config file's JSON, or a ConfigError naming the file (unreadable, not JSON). */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError('', `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

export function loadConfig(file: string): Config {
  return parseConfig(readJsonFile(file));
}
