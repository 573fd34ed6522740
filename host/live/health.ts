// Backend health checks for live mode: TCP connect, HTTP GET, RTSP OPTIONS, or none, with
// interval, timeout and rise/fall thresholds as keepalived and HAProxy operators know them.
//
// API
//   type HealthCheckType = 'tcp' | 'http' | 'rtsp' | 'none'
//   type HealthState = 'up' | 'down'
//   interface HealthCheckConfig {            // what parseHealthCheck returns (times in ms)
//     type: HealthCheckType
//     port: number | null        // null: the backend's service port (see resolveCheckPort)
//     intervalMs: number         // from one check's start to the next one's start
//     timeoutMs: number          // one check, connect included; <= intervalMs
//     rise: number; fall: number // consecutive successes to go up / failures to go down
//     initial: HealthState       // state before any check has run
//     localAddress: string | null// source address of the check sockets
//     onFailure: 'down' | 'draining'   // engine state while the check fails (see effectiveState)
//     path: string               // http: request path; rtsp: path in the OPTIONS URL
//     host: string | null        // http: Host header (default: address, plus :port if not 80)
//     status: [number, number][] // http: accepted status ranges, inclusive
//     body: string | null        // http: the body must contain this text
//     bodyRegex: string | null   // http: the body must match this regular expression
//     maxBodyBytes: number       // http: how much body is read for matching
//   }
//   const DEFAULT_HEALTH_CHECK: HealthCheckConfig
//   function parseHealthCheck(raw: unknown, path: string, base?: HealthCheckConfig): HealthCheckConfig
//       Validates the JSON form (below); fields it omits come from `base` (e.g. the VIP's check
//       for a backend's override) or the defaults. Throws ConfigError naming `${path}.field`.
//   function resolveCheckPort(check, service: { ports: number[] | null; rtspPorts?: number[] },
//                             path: string): number
//       check.port, else (rtsp) the first rtspPorts entry the VIP serves, else the VIP's first
//       port; 0 for type none. Throws ConfigError at `${path}.port` when the VIP serves every port
//       and the check names none.
//   function effectiveState(admin: BackendState, health: HealthState, check?: HealthCheckConfig): BackendState
//       admin down -> down; health down -> check.onFailure; admin draining -> draining; else active.
//   interface HealthTarget { id: string; address: string; port: number /* service port */; check: HealthCheckConfig }
//   interface HealthStatus { id, address, port /* checked */, type, state, successes, failures
//       /* consecutive */, checks, lastResult: 'ok' | 'fail' | null, lastError: string | null,
//       lastLatencyMs: number | null, lastCheckAt: number | null /* epoch ms */, since /* epoch ms */ }
//   interface HealthChange { id, from: HealthState, to: HealthState, reason: string, at: number }
//   interface HealthResult { id, ok, error: string | null, latencyMs, state, successes, failures, at }
//   class HealthChecker extends EventEmitter {
//     constructor(targets: HealthTarget[], opts?: { random?: () => number; spread?: number;
//                                                  logger?: Logger })
//     start(): void            // schedules every target's first check after a random delay in
//                              // [0, spread * interval) (spread default 0.5) so checks do not run
//                              // in lockstep; idempotent
//     stop(): void             // cancels timers and in-flight checks, closes every socket
//     update(targets): void    // config reload, see below
//     status(): HealthStatus[] // in target order
//     state(id): HealthState | undefined
//     events: 'change' (HealthChange), 'result' (HealthResult)
//   }
//
// JSON form (for a VIP's or a backend's "healthCheck"), times in seconds like every other config
// time, fractions allowed:
//   { "type": "http", "port": 8080, "interval": 0.5, "timeout": 0.3, "rise": 2, "fall": 2,
//     "initial": "up", "localAddress": "10.1.0.2", "onFailure": "down",
//     "path": "/health", "host": "www.example", "status": [200, "300-399", "2xx"],
//     "body": "ok", "bodyRegex": "^backend-\\w+", "maxBodyBytes": 65536 }
// Fields of other check types are refused (an rtsp check has no "status").
//
// Defaults and semantics
// - type "tcp", interval 0.5 s, timeout 0.3 s, rise 2, fall 2: a backend that dies is marked down
//   at most interval * fall + timeout = 1.3 s later (a refused connection fails at once, a silent
//   one after the timeout), and comes back rise * interval (<= 1 s) after it answers again.
//   keepalived's delay_loop is much longer by default; these defaults aim at the lab's "down
//   within 2 s" on a LAN. Raise them for checks over slower paths.
// - initial "up": like keepalived without `alpha` and HAProxy's default, a backend is in service
//   from the start and goes down after `fall` consecutive failures. initial "down" is keepalived's
//   `alpha`: no traffic until `rise` consecutive successes.
// - down after `fall` consecutive failures while up; up after `rise` consecutive successes while
//   down. A success resets the failure count and the other way round.
// - type "none": no checks; the backend is always up (keepalived's real server without a checker);
//   parseHealthCheck gives it initial "up" even when its base said "down".
// - One check per target at a time. The next starts `interval` after the previous one started (or
//   at once if it took longer). Checks go out through whatever route the kernel picks, from
//   `localAddress` when set (the address of the namespace's interface towards the backends).
// - tcp: success = the connection is established (then closed at once).
//   http: GET `path` with Host, Connection: close; success = status in `status` (default
//   200-399) and, when set, `body` found / `bodyRegex` matched within maxBodyBytes.
//   rtsp: `OPTIONS rtsp://address:port{path} RTSP/1.0` with CSeq n; success = a reply whose status
//   line is `RTSP/1.0 200` and whose CSeq is n.
// - update(targets): a target with the same id, address, checked port, type and localAddress keeps
//   its state and consecutive counts (new interval/thresholds apply from its next check; if nothing
//   changed at all its schedule is untouched). A target whose endpoint changed starts over in its
//   initial state (a 'change' event with reason "reconfigured" if that differs from before).
//   Removed targets are stopped. New targets start in their initial state without a 'change'
//   event: read state(id) after update().
import { EventEmitter } from 'node:events';
import { connect, isIP, type Socket } from 'node:net';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { ConfigError, type BackendState } from '../ctl/config.js';
import type { Logger } from './log.js';

export const HEALTH_CHECK_TYPES = ['tcp', 'http', 'rtsp', 'none'] as const;
export type HealthCheckType = (typeof HEALTH_CHECK_TYPES)[number];
export type HealthState = 'up' | 'down';

export interface HealthCheckConfig {
  type: HealthCheckType;
  port: number | null;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  initial: HealthState;
  localAddress: string | null;
  onFailure: 'down' | 'draining';
  path: string;
  host: string | null;
  status: [number, number][];
  body: string | null;
  bodyRegex: string | null;
  maxBodyBytes: number;
}

export const DEFAULT_HEALTH_CHECK: Readonly<HealthCheckConfig> = Object.freeze({
  type: 'tcp',
  port: null,
  intervalMs: 500,
  timeoutMs: 300,
  rise: 2,
  fall: 2,
  initial: 'up',
  localAddress: null,
  onFailure: 'down',
  path: '/',
  host: null,
  status: [[200, 399]] as [number, number][],
  body: null,
  bodyRegex: null,
  maxBodyBytes: 65536,
});

const COMMON_FIELDS = ['type', 'port', 'interval', 'timeout', 'rise', 'fall', 'initial', 'localAddress', 'onFailure'];
const FIELDS_BY_TYPE: Record<HealthCheckType, string[]> = {
  none: ['type'],
  tcp: COMMON_FIELDS,
  rtsp: [...COMMON_FIELDS, 'path'],
  http: [...COMMON_FIELDS, 'path', 'host', 'status', 'body', 'bodyRegex', 'maxBodyBytes'],
};

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

function seconds(o: Obj, key: string, path: string, def: number, minMs: number, maxMs: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ConfigError(`${path}.${key}`, `must be a number of seconds (got ${JSON.stringify(v)})`);
  }
  const ms = Math.round(v * 1000);
  if (ms < minMs || ms > maxMs) {
    throw new ConfigError(`${path}.${key}`, `must be from ${minMs / 1000} to ${maxMs / 1000} seconds (got ${v})`);
  }
  return ms;
}

function intField(o: Obj, key: string, path: string, def: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${path}.${key}`, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function parseStatus(v: unknown, path: string): [number, number][] {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw new ConfigError(path, 'must name at least one status code or range');
  return items.map((x, i): [number, number] => {
    const p = Array.isArray(v) ? `${path}[${i}]` : path;
    const bad = () => new ConfigError(p, `must be a status code (200), a range ("200-299") or a class ("2xx") from 100 to 599 (got ${JSON.stringify(x)})`);
    let lo: number, hi: number;
    if (typeof x === 'number') {
      lo = hi = x;
    } else if (typeof x === 'string' && /^[1-5]xx$/i.test(x)) {
      lo = Number(x[0]) * 100;
      hi = lo + 99;
    } else if (typeof x === 'string' && /^\d{3}(-\d{3})?$/.test(x)) {
      const [a, b] = x.split('-');
      lo = Number(a);
      hi = Number(b ?? a);
    } else {
      throw bad();
    }
    if (!Number.isInteger(lo) || lo < 100 || hi > 599 || lo > hi) throw bad();
    return [lo, hi];
  });
}

/** Validates a "healthCheck" object; omitted fields come from `base`, then the defaults. */
export function parseHealthCheck(raw: unknown, path: string, base: HealthCheckConfig = DEFAULT_HEALTH_CHECK): HealthCheckConfig {
  if (!isObj(raw)) throw new ConfigError(path, 'must be an object such as {"type": "tcp"}');
  let type: HealthCheckType = base.type;
  if (raw.type !== undefined) {
    if (typeof raw.type !== 'string' || !(HEALTH_CHECK_TYPES as readonly string[]).includes(raw.type)) {
      throw new ConfigError(`${path}.type`, `must be one of ${HEALTH_CHECK_TYPES.map((t) => `"${t}"`).join(', ')} (got ${JSON.stringify(raw.type)})`);
    }
    type = raw.type as HealthCheckType;
  }
  const allowed = FIELDS_BY_TYPE[type];
  for (const k of Object.keys(raw)) {
    if (!allowed.includes(k)) {
      const other = (Object.keys(FIELDS_BY_TYPE) as HealthCheckType[]).filter((t) => FIELDS_BY_TYPE[t].includes(k));
      const hint = other.length ? `: it belongs to ${other.map((t) => `"${t}"`).join(', ')} checks` : '';
      throw new ConfigError(`${path}.${k}`, `unknown field for a "${type}" check${hint} (allowed here: ${allowed.join(', ')})`);
    }
  }
  const out: HealthCheckConfig = { ...base, status: base.status.map((r) => [r[0], r[1]] as [number, number]), type };
  if (raw.port !== undefined) out.port = intField(raw, 'port', path, 0, 1, 65535);
  out.intervalMs = seconds(raw, 'interval', path, base.intervalMs, 10, 3_600_000);
  out.timeoutMs = seconds(raw, 'timeout', path, base.timeoutMs, 10, 3_600_000);
  out.rise = intField(raw, 'rise', path, base.rise, 1, 1000);
  out.fall = intField(raw, 'fall', path, base.fall, 1, 1000);
  if (raw.initial !== undefined) {
    if (raw.initial !== 'up' && raw.initial !== 'down') throw new ConfigError(`${path}.initial`, `must be "up" (in service until "fall" failures) or "down" (out of service until "rise" successes) (got ${JSON.stringify(raw.initial)})`);
    out.initial = raw.initial;
  }
  if (raw.onFailure !== undefined) {
    if (raw.onFailure !== 'down' && raw.onFailure !== 'draining') throw new ConfigError(`${path}.onFailure`, `must be "down" (its flows move to other backends) or "draining" (existing flows stay, no new ones) (got ${JSON.stringify(raw.onFailure)})`);
    out.onFailure = raw.onFailure;
  }
  if (raw.localAddress !== undefined) {
    if (typeof raw.localAddress !== 'string' || isIP(raw.localAddress) === 0) {
      throw new ConfigError(`${path}.localAddress`, `must be an IPv4 or IPv6 address of an interface in sessionlb's namespace (got ${JSON.stringify(raw.localAddress)})`);
    }
    out.localAddress = raw.localAddress;
  }
  if (raw.path !== undefined) {
    if (typeof raw.path !== 'string' || !raw.path.startsWith('/') || /[\s\x00-\x1f\x7f]/.test(raw.path)) {
      throw new ConfigError(`${path}.path`, `must start with "/" and contain no spaces or control characters (got ${JSON.stringify(raw.path)})`);
    }
    out.path = raw.path;
  }
  if (raw.host !== undefined) {
    if (typeof raw.host !== 'string' || raw.host.length === 0 || /[\s\x00-\x1f\x7f]/.test(raw.host)) {
      throw new ConfigError(`${path}.host`, `must be a non-empty host name without spaces (got ${JSON.stringify(raw.host)})`);
    }
    out.host = raw.host;
  }
  if (raw.status !== undefined) out.status = parseStatus(raw.status, `${path}.status`);
  if (raw.body !== undefined) {
    if (typeof raw.body !== 'string' || raw.body.length === 0) throw new ConfigError(`${path}.body`, 'must be a non-empty string the body must contain');
    out.body = raw.body;
  }
  if (raw.bodyRegex !== undefined) {
    if (typeof raw.bodyRegex !== 'string' || raw.bodyRegex.length === 0) throw new ConfigError(`${path}.bodyRegex`, 'must be a non-empty regular expression');
    try {
      new RegExp(raw.bodyRegex);
    } catch (e) {
      throw new ConfigError(`${path}.bodyRegex`, `is not a valid regular expression: ${(e as Error).message}`);
    }
    out.bodyRegex = raw.bodyRegex;
  }
  out.maxBodyBytes = intField(raw, 'maxBodyBytes', path, base.maxBodyBytes, 1, 16 << 20);
  // No check, no failures: such a backend is up from the start whatever a base said.
  if (type === 'none') out.initial = 'up';
  if (type !== 'none' && out.timeoutMs > out.intervalMs) {
    const f = raw.timeout !== undefined ? 'timeout' : 'interval';
    throw new ConfigError(`${path}.${f}`, `the timeout (${out.timeoutMs / 1000} s) must not exceed the interval (${out.intervalMs / 1000} s)`);
  }
  return out;
}

/** The port a check connects to: its own, else the service port (see the header). */
export function resolveCheckPort(check: HealthCheckConfig, service: { ports: number[] | null; rtspPorts?: number[] }, path: string): number {
  if (check.type === 'none') return 0;
  if (check.port !== null) return check.port;
  if (check.type === 'rtsp' && service.rtspPorts && service.rtspPorts.length > 0) {
    const served = service.rtspPorts.find((p) => service.ports === null || service.ports.includes(p));
    if (served !== undefined) return served;
  }
  if (service.ports === null || service.ports.length === 0) {
    throw new ConfigError(`${path}.port`, `is required: the VIP serves every port, so the ${check.type} check cannot default to its service port`);
  }
  return service.ports[0];
}

/** The state to push into the engine from the configured (admin) state and the health state. */
export function effectiveState(admin: BackendState, health: HealthState, check?: HealthCheckConfig): BackendState {
  if (admin === 'down') return 'down';
  if (health === 'down') return check?.onFailure ?? 'down';
  return admin;
}

export interface HealthTarget {
  id: string;
  address: string;
  /** The backend's service port; the check uses check.port when set. */
  port: number;
  check: HealthCheckConfig;
}

export interface HealthStatus {
  id: string;
  address: string;
  port: number;
  type: HealthCheckType;
  state: HealthState;
  successes: number;
  failures: number;
  checks: number;
  lastResult: 'ok' | 'fail' | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  lastCheckAt: number | null;
  since: number;
}

export interface HealthChange {
  id: string;
  from: HealthState;
  to: HealthState;
  reason: string;
  at: number;
}

export interface HealthResult {
  id: string;
  ok: boolean;
  error: string | null;
  latencyMs: number;
  state: HealthState;
  successes: number;
  failures: number;
  at: number;
}

export interface HealthCheckerOptions {
  /** Random source for the first check's delay (tests); default Math.random. */
  random?: () => number;
  /** The first check runs after random() * spread * interval; default 0.5. */
  spread?: number;
  /** State changes are logged (down at warn, up at info), results at debug. */
  logger?: Logger;
}

// --- One attempt -------------------------------------------------------------------------------

interface Attempt {
  /** Resolves with null on success, else the reason for failure. Never rejects. */
  done: Promise<string | null>;
  cancel(): void;
}

function errText(e: unknown): string {
  const x = e as NodeJS.ErrnoException;
  if (x && x.code) return `${x.code}${x.message && !x.message.includes(x.code) ? ` ${x.message}` : ''}`;
  return String(x?.message ?? x);
}

const hostForUrl = (a: string) => (isIP(a) === 6 ? `[${a}]` : a);

function attempt(run: (finish: (err: string | null) => void, phase: { name: string }) => () => void, timeoutMs: number): Attempt {
  let resolve!: (v: string | null) => void;
  const done = new Promise<string | null>((r) => (resolve = r));
  let settled = false;
  let cleanup: () => void = () => {};
  const phase = { name: 'connecting' };
  const finish = (err: string | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    try { cleanup(); } catch { /* closing a socket twice is harmless */ }
    resolve(err);
  };
  const timer = setTimeout(() => finish(`timeout after ${timeoutMs} ms (${phase.name})`), timeoutMs);
  try {
    cleanup = run(finish, phase);
  } catch (e) {
    finish(errText(e));
  }
  if (settled) try { cleanup(); } catch { /* ditto */ }
  return { done, cancel: () => finish('cancelled') };
}

function tcpCheck(address: string, port: number, c: HealthCheckConfig): Attempt {
  return attempt((finish) => {
    const sock: Socket = connect({ host: address, port, localAddress: c.localAddress ?? undefined });
    sock.on('connect', () => finish(null));
    sock.on('error', (e) => finish(`connect: ${errText(e)}`));
    sock.on('close', () => finish('connection closed'));
    return () => sock.destroy();
  }, c.timeoutMs);
}

function statusOk(code: number, ranges: [number, number][]): boolean {
  return ranges.some(([lo, hi]) => code >= lo && code <= hi);
}

function httpCheck(address: string, port: number, c: HealthCheckConfig): Attempt {
  return attempt((finish, phase) => {
    const host = c.host ?? (port === 80 ? hostForUrl(address) : `${hostForUrl(address)}:${port}`);
    let res: IncomingMessage | null = null;
    const req: ClientRequest = httpRequest({
      host: address,
      port,
      localAddress: c.localAddress ?? undefined,
      method: 'GET',
      path: c.path,
      agent: false,
      setHost: false,
      headers: { Host: host, 'User-Agent': 'sessionlb-health/1', Accept: '*/*', Connection: 'close' },
    });
    req.on('socket', (s) => s.on('connect', () => (phase.name = 'waiting for the response')));
    req.on('error', (e) => finish(`http: ${errText(e)}`));
    req.on('response', (r) => {
      res = r;
      r.on('error', () => finish('http: response aborted'));
      const code = r.statusCode ?? 0;
      if (!statusOk(code, c.status)) {
        finish(`http: status ${code} not in ${c.status.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',')}`);
        return;
      }
      if (c.body === null && c.bodyRegex === null) {
        finish(null);
        return;
      }
      phase.name = 'reading the body';
      const re = c.bodyRegex !== null ? new RegExp(c.bodyRegex) : null;
      const chunks: Buffer[] = [];
      let n = 0;
      const judge = (final: boolean) => {
        const text = Buffer.concat(chunks).toString('utf8');
        const bodyOk = c.body === null || text.includes(c.body);
        const reOk = re === null || re.test(text);
        if (bodyOk && reOk) return finish(null);
        if (final) {
          const what = [!bodyOk ? `does not contain ${JSON.stringify(c.body)}` : '', !reOk ? `does not match /${c.bodyRegex}/` : ''].filter(Boolean).join(' and ');
          finish(`http: body (${n} bytes${n >= c.maxBodyBytes ? ', truncated' : ''}) ${what}`);
        }
      };
      r.on('data', (d: Buffer) => {
        const room = c.maxBodyBytes - n;
        if (room <= 0) return;
        const part = d.length > room ? d.subarray(0, room) : d;
        chunks.push(part);
        n += part.length;
        if (n >= c.maxBodyBytes) judge(true);
        else if (re === null) judge(false); // a substring is found as soon as it arrives
      });
      r.on('end', () => judge(true));
    });
    req.end();
    return () => {
      res?.destroy();
      req.destroy();
    };
  }, c.timeoutMs);
}

let rtspCseq = 0;

function rtspCheck(address: string, port: number, c: HealthCheckConfig): Attempt {
  return attempt((finish, phase) => {
    const cseq = (rtspCseq = (rtspCseq % 1_000_000_000) + 1);
    const sock: Socket = connect({ host: address, port, localAddress: c.localAddress ?? undefined });
    let buf: Buffer = Buffer.alloc(0);
    sock.on('connect', () => {
      phase.name = 'waiting for the reply';
      sock.write(`OPTIONS rtsp://${hostForUrl(address)}:${port}${c.path} RTSP/1.0\r\nCSeq: ${cseq}\r\nUser-Agent: sessionlb-health/1\r\n\r\n`);
    });
    sock.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16384) finish('rtsp: reply header longer than 16 KiB');
        return;
      }
      const head = buf.subarray(0, end).toString('latin1');
      const lines = head.split('\r\n');
      const m = /^RTSP\/1\.0 (\d{3})(?: |$)/.exec(lines[0]);
      if (!m) return finish(`rtsp: unexpected status line ${JSON.stringify(lines[0].slice(0, 80))}`);
      let got: string | null = null;
      for (const l of lines.slice(1)) {
        const h = /^cseq[ \t]*:[ \t]*(.*?)[ \t]*$/i.exec(l);
        if (h) { got = h[1]; break; }
      }
      if (got !== String(cseq)) return finish(`rtsp: CSeq ${got === null ? 'missing' : JSON.stringify(got)} in the reply (sent ${cseq})`);
      if (m[1] !== '200') return finish(`rtsp: status ${m[1]}`);
      finish(null);
    });
    sock.on('error', (e) => finish(`rtsp: ${errText(e)}`));
    sock.on('close', () => finish('rtsp: connection closed before a complete reply'));
    return () => sock.destroy();
  }, c.timeoutMs);
}

function startAttempt(address: string, port: number, c: HealthCheckConfig): Attempt {
  switch (c.type) {
    case 'tcp': return tcpCheck(address, port, c);
    case 'http': return httpCheck(address, port, c);
    case 'rtsp': return rtspCheck(address, port, c);
    default: return { done: Promise.resolve(null), cancel() {} };
  }
}

// --- The checker ---------------------------------------------------------------------------------

interface Entry {
  t: HealthTarget;
  port: number;
  state: HealthState;
  successes: number;
  failures: number;
  checks: number;
  lastResult: 'ok' | 'fail' | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  lastCheckAt: number | null;
  since: number;
  timer: NodeJS.Timeout | null;
  attempt: Attempt | null;
}

const checkPort = (t: HealthTarget) => (t.check.type === 'none' ? 0 : t.check.port ?? t.port);
const endpointKey = (t: HealthTarget) => JSON.stringify([t.address, checkPort(t), t.check.type, t.check.localAddress]);

function sameTarget(a: HealthTarget, b: HealthTarget): boolean {
  return JSON.stringify([a.address, a.port, a.check]) === JSON.stringify([b.address, b.port, b.check]);
}

export class HealthChecker extends EventEmitter {
  private entries = new Map<string, Entry>();
  private order: string[] = [];
  private running = false;
  private readonly random: () => number;
  private readonly spread: number;
  private readonly log?: Logger;

  constructor(targets: HealthTarget[], opts: HealthCheckerOptions = {}) {
    super();
    this.random = opts.random ?? Math.random;
    this.spread = opts.spread ?? 0.5;
    this.log = opts.logger;
    this.install(targets);
  }

  private fresh(t: HealthTarget): Entry {
    return {
      t, port: checkPort(t), state: t.check.type === 'none' ? 'up' : t.check.initial,
      successes: 0, failures: 0, checks: 0, lastResult: null, lastError: null, lastLatencyMs: null,
      lastCheckAt: null, since: Date.now(), timer: null, attempt: null,
    };
  }

  private install(targets: HealthTarget[]): void {
    const ids = new Set<string>();
    for (const t of targets) {
      if (ids.has(t.id)) throw new Error(`health: target id "${t.id}" is given twice`);
      ids.add(t.id);
    }
    this.order = targets.map((t) => t.id);
    for (const t of targets) this.entries.set(t.id, this.fresh(t));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const e of this.entries.values()) this.scheduleFirst(e);
  }

  stop(): void {
    this.running = false;
    for (const e of this.entries.values()) this.halt(e);
  }

  private halt(e: Entry): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    const a = e.attempt;
    e.attempt = null;
    a?.cancel();
  }

  private scheduleFirst(e: Entry): void {
    if (e.t.check.type === 'none') return;
    this.schedule(e, Math.floor(this.random() * this.spread * e.t.check.intervalMs));
  }

  private schedule(e: Entry, delayMs: number): void {
    if (!this.running) return;
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => this.run(e), Math.max(0, delayMs));
  }

  private run(e: Entry): void {
    e.timer = null;
    if (!this.running || this.entries.get(e.t.id) !== e) return;
    const t0 = performance.now();
    const a = startAttempt(e.t.address, e.port, e.t.check);
    e.attempt = a;
    void a.done.then((err) => {
      if (e.attempt !== a) return; // cancelled by stop() or update()
      e.attempt = null;
      const now = performance.now();
      this.record(e, err, now - t0);
      this.schedule(e, e.t.check.intervalMs - (now - t0));
    });
  }

  private record(e: Entry, err: string | null, latency: number): void {
    const c = e.t.check;
    const at = Date.now();
    e.checks++;
    e.lastCheckAt = at;
    e.lastLatencyMs = Math.round(latency * 10) / 10;
    e.lastResult = err === null ? 'ok' : 'fail';
    if (err === null) {
      e.successes++;
      e.failures = 0;
    } else {
      e.failures++;
      e.successes = 0;
      e.lastError = err;
    }
    let change: HealthChange | null = null;
    if (err === null && e.state === 'down' && e.successes >= c.rise) {
      change = { id: e.t.id, from: 'down', to: 'up', reason: `${e.successes} consecutive successful ${c.type} checks`, at };
    } else if (err !== null && e.state === 'up' && e.failures >= c.fall) {
      change = { id: e.t.id, from: 'up', to: 'down', reason: `${e.failures} consecutive failed ${c.type} checks (last: ${err})`, at };
    }
    if (change) {
      e.state = change.to;
      e.since = at;
    }
    const result: HealthResult = {
      id: e.t.id, ok: err === null, error: err, latencyMs: e.lastLatencyMs, state: e.state,
      successes: e.successes, failures: e.failures, at,
    };
    this.log?.debug('health check', { backend: e.t.id, ok: result.ok, error: err ?? undefined, latencyMs: result.latencyMs });
    this.emit('result', result);
    if (change) this.announce(e, change);
  }

  private announce(e: Entry, change: HealthChange): void {
    if (this.log) {
      const f = { backend: change.id, from: change.from, to: change.to, reason: change.reason, address: e.t.address, port: e.port };
      if (change.to === 'down') this.log.warn('backend down', f);
      else this.log.info('backend up', f);
    }
    this.emit('change', change);
  }

  update(targets: HealthTarget[]): void {
    const ids = new Set<string>();
    for (const t of targets) {
      if (ids.has(t.id)) throw new Error(`health: target id "${t.id}" is given twice`);
      ids.add(t.id);
    }
    for (const [id, e] of this.entries) {
      if (!ids.has(id)) {
        this.halt(e);
        this.entries.delete(id);
      }
    }
    for (const t of targets) {
      const old = this.entries.get(t.id);
      if (!old) {
        const e = this.fresh(t);
        this.entries.set(t.id, e);
        if (this.running) this.scheduleFirst(e);
        continue;
      }
      if (sameTarget(old.t, t)) {
        old.t = t;
        continue;
      }
      this.halt(old);
      if (endpointKey(old.t) === endpointKey(t)) {
        old.t = t;
        if (this.running) this.scheduleFirst(old);
        continue;
      }
      const e = this.fresh(t);
      this.entries.set(t.id, e);
      if (e.state !== old.state) {
        this.announce(e, { id: t.id, from: old.state, to: e.state, reason: t.check.type === 'none' ? 'health check removed' : 'reconfigured', at: e.since });
      }
      if (this.running) this.scheduleFirst(e);
    }
    this.order = targets.map((t) => t.id);
  }

  state(id: string): HealthState | undefined {
    return this.entries.get(id)?.state;
  }

  status(): HealthStatus[] {
    return this.order.map((id) => {
      const e = this.entries.get(id)!;
      return {
        id, address: e.t.address, port: e.port, type: e.t.check.type, state: e.state,
        successes: e.successes, failures: e.failures, checks: e.checks, lastResult: e.lastResult,
        lastError: e.lastError, lastLatencyMs: e.lastLatencyMs, lastCheckAt: e.lastCheckAt, since: e.since,
      };
    });
  }
}
