// Prometheus metrics for live mode: the text exposition format 0.0.4, written here, and a small
// HTTP server for it on a loopback address.
//
// API
//   type Num = number | bigint
//   interface LiveSnapshot             // everything renderMetrics shows; the host fills it
//   interface BackendSnapshot, InterfaceSnapshot, HistogramSnapshot   (fields documented below)
//   function renderMetrics(snapshot: LiveSnapshot): string
//   function startMetricsServer(opts: MetricsServerOptions): Promise<{ port: number; host: string; close(): Promise<void> }>
//     MetricsServerOptions { host?: string            // default '127.0.0.1'
//                            port?: number            // default 0 (any free port)
//                            allowRemote?: boolean     // a non-loopback host is refused unless true
//                            collect: () => LiveSnapshot | Promise<LiveSnapshot>
//                            logger?: Logger }         // collect() failures are logged at error
//     GET|HEAD /metrics -> 200 text/plain; version=0.0.4; charset=utf-8 (collect() then render)
//     GET|HEAD /healthz -> 200 "ok\n";  other methods there -> 405;  other paths -> 404;
//     collect() throwing -> 500.
//   function isLoopback(host: string): boolean      // 127.0.0.0/8, ::1, ::ffff:127.x, "localhost"
//   function parseMetricsConfig(raw: unknown, path: string): MetricsConfig   // throws ConfigError
//     JSON {"address": "127.0.0.1", "port": 9180, "allowRemote": false}; defaults address
//     127.0.0.1, port 9180; a non-loopback address without allowRemote: true is refused.
//   class Histogram(bounds = BATCH_SIZE_BOUNDS) { observe(v: number, n = 1): void; snapshot(): HistogramSnapshot; reset() }
//   const BATCH_SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
//   class RateMeter(minIntervalMs = 1000) {
//     update(nowMs, totals: { rxPackets, txPackets, rxBytes, txBytes }): RateSnapshot }
//     // rates over the interval since the previous sample at least minIntervalMs old
//
// Metric families (prefix sessionlb_; labels in braces):
//   build_info{version,abi,simd} gauge 1 | uptime_seconds gauge | config_reloads_total,
//   config_reload_failures_total counter
//   backend_up{vip,backend} gauge 1/0 (health; unchecked backends count as up)
//   backend_health_checked{vip,backend} gauge 1/0
//   backend_state{vip,backend,state} gauge, 1 for the current engine state of active|draining|down
//   backend_weight{vip,backend} gauge (when given)
//   backend_packets_total, backend_bytes_total, backend_flows_total (flows created on it),
//   backend_reply_packets_total, backend_reply_bytes_total, backend_resteered_in_total (when given),
//   backend_health_checks_total (when given) counters; backend_sessions gauge (active sessions),
//   backend_active_flows gauge (when given); backend_health_check_latency_seconds gauge (when known)
//   drops_total{reason}, passes_total{reason} counters
//   engine_<counter>_total counters, one per engine counter name ('rx-packets' -> engine_rx_packets_total)
//   flow_table_entries, flow_table_capacity, flow_table_occupancy_ratio gauges
//   sessions_active, sessions_capacity (0 = no limit) gauges, sessions_occupancy_ratio (when limited)
//   batch_size histogram (frames per process() call): _bucket{le}, _sum, _count
//   rx_packets_per_second, tx_packets_per_second, rx_bytes_per_second, tx_bytes_per_second gauges,
//   rate_interval_seconds gauge
//   interface_{rx,tx}_{packets,bytes,errors,dropped}_total{interface,role} counters (dropped when given)
//   When a VIP splices (method splice or handoff; snapshot.splice given, docs/splice.md "Metrics"):
//   splice_connections gauge (entries in use), splice_capacity gauge (table size),
//   splice_events_total{event} counter, one event per statistic name in snapshot.splice other than
//   connections and capacity, read at render time ('cookies-sent', 'spliced', 'closed', ...;
//   names the engine adds later appear without a change here)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError, type BackendState } from '../ctl/config.js';
import type { HealthState } from './health.js';
import type { Logger } from './log.js';

export type Num = number | bigint;

export interface BackendSnapshot {
  id: string;
  /** The VIP's address (a backend id is unique in the config, the label is for grouping). */
  vip: string;
  /** Health-check state; null when the backend has no check (type none). */
  health: HealthState | null;
  /** The state in the engine (configured state combined with health, see effectiveState). */
  state: BackendState;
  weight?: number;
  /** Engine per-backend stats (docs/abi.md): frames and bytes sent to it, flows created on it. */
  packets: Num;
  bytes: Num;
  flows: Num;
  /** Frames towards clients owned by it, and their bytes. */
  replyPackets: Num;
  replyBytes: Num;
  resteeredIn?: Num;
  /** Sessions currently on it. */
  sessions: Num;
  activeFlows?: Num;
  healthChecks?: Num;
  healthLatencyMs?: number | null;
}

export interface InterfaceSnapshot {
  name: string;
  /** e.g. "client", "server", "both" (one-armed); "" when not known. */
  role?: string;
  rxPackets: Num;
  rxBytes: Num;
  rxErrors: Num;
  txPackets: Num;
  txBytes: Num;
  txErrors: Num;
  rxDropped?: Num;
  txDropped?: Num;
}

/** Non-cumulative counts: counts[i] = observations <= bounds[i] and > bounds[i-1];
 * counts[bounds.length] = observations above the last bound. */
export interface HistogramSnapshot {
  bounds: number[];
  counts: Num[];
  sum: Num;
}

export interface RateSnapshot {
  rxPps: number;
  txPps: number;
  rxBps: number;
  txBps: number;
  /** Length of the interval the rates cover, seconds (0 before there are two samples). */
  intervalSeconds: number;
}

export interface LiveSnapshot {
  build?: { version: string; abi?: number; simd?: boolean };
  uptimeSeconds: number;
  configReloads: Num;
  configReloadFailures?: Num;
  backends: BackendSnapshot[];
  /** By drop reason name (host/ctl/counters.ts DROP_NAMES without "none"). */
  drops: Record<string, Num>;
  /** By pass reason name (PASS_NAMES without "none"). */
  passes: Record<string, Num>;
  /** Engine counters by name (COUNTER_NAMES). */
  counters: Record<string, Num>;
  flowTable: { entries: Num; capacity: Num };
  /** capacity 0 = no global session limit. */
  sessions: { active: Num; capacity: Num };
  batchSizes: HistogramSnapshot;
  rates: RateSnapshot;
  interfaces: InterfaceSnapshot[];
  /** TCP splicing's statistics (LiveBalancer.spliceStats(): `connections` and `capacity` are gauges,
   * every other name is a cumulative event count); absent when no VIP splices. */
  splice?: Record<string, Num>;
}

/** Names in the splice statistics record that are gauges, not event counts. */
const SPLICE_GAUGES = new Set(['connections', 'capacity']);

// --- Text format ---------------------------------------------------------------------------------

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A metric name part from free text: anything outside [a-zA-Z0-9_] becomes '_'. */
export function metricName(s: string): string {
  const n = s.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(n) ? `_${n}` : n;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function value(v: Num): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

type Labels = Record<string, string>;
type Sample = { suffix?: string; labels?: Labels; value: Num };

class Exposition {
  private out: string[] = [];
  private seen = new Set<string>();

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: Sample[]): void {
    const full = `sessionlb_${name}`;
    if (!NAME_RE.test(full)) throw new Error(`metrics: invalid metric name ${full}`);
    if (this.seen.has(full)) throw new Error(`metrics: ${full} rendered twice`);
    this.seen.add(full);
    if (samples.length === 0) return;
    this.out.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} ${type}`);
    for (const s of samples) {
      const labels = Object.entries(s.labels ?? {});
      let ls = '';
      if (labels.length) {
        ls = `{${labels.map(([k, v]) => {
          if (!LABEL_RE.test(k) || k.startsWith('__')) throw new Error(`metrics: invalid label name ${k}`);
          return `${k}="${escapeLabel(v)}"`;
        }).join(',')}}`;
      }
      this.out.push(`${full}${s.suffix ?? ''}${ls} ${value(s.value)}`);
    }
  }

  text(): string {
    return this.out.length ? this.out.join('\n') + '\n' : '';
  }
}

const toNum = (v: Num) => (typeof v === 'bigint' ? Number(v) : v);

export function renderMetrics(s: LiveSnapshot): string {
  const x = new Exposition();
  if (s.build) {
    const l: Labels = { version: s.build.version };
    if (s.build.abi !== undefined) l.abi = String(s.build.abi);
    if (s.build.simd !== undefined) l.simd = String(s.build.simd);
    x.family('build_info', 'gauge', 'Build information; the value is always 1.', [{ labels: l, value: 1 }]);
  }
  x.family('uptime_seconds', 'gauge', 'Seconds since sessionlb started.', [{ value: s.uptimeSeconds }]);
  x.family('config_reloads_total', 'counter', 'Configuration reloads applied (SIGHUP).', [{ value: s.configReloads }]);
  if (s.configReloadFailures !== undefined) {
    x.family('config_reload_failures_total', 'counter', 'Configuration reloads refused (the old configuration stayed).', [{ value: s.configReloadFailures }]);
  }

  const bl = (b: BackendSnapshot): Labels => ({ vip: b.vip, backend: b.id });
  const per = (f: (b: BackendSnapshot) => Num | undefined | null, bs = s.backends): Sample[] =>
    bs.flatMap((b) => { const v = f(b); return v === undefined || v === null ? [] : [{ labels: bl(b), value: v }]; });
  x.family('backend_up', 'gauge', 'Health of the backend: 1 up (or not checked), 0 down.', per((b) => (b.health === 'down' ? 0 : 1)));
  x.family('backend_health_checked', 'gauge', '1 when the backend has a health check, 0 when it has none.', per((b) => (b.health === null ? 0 : 1)));
  x.family('backend_state', 'gauge', 'The backend state in the engine: 1 for the current one of active, draining, down.',
    s.backends.flatMap((b) => (['active', 'draining', 'down'] as const).map((st) => ({ labels: { ...bl(b), state: st }, value: b.state === st ? 1 : 0 }))));
  x.family('backend_weight', 'gauge', 'Configured weight of the backend.', per((b) => b.weight));
  x.family('backend_packets_total', 'counter', 'Frames sent to the backend.', per((b) => b.packets));
  x.family('backend_bytes_total', 'counter', 'Bytes sent to the backend (wire length after rewriting, tunnel overhead included).', per((b) => b.bytes));
  x.family('backend_flows_total', 'counter', 'Flows created on the backend.', per((b) => b.flows));
  x.family('backend_reply_packets_total', 'counter', 'Frames towards clients owned by the backend.', per((b) => b.replyPackets));
  x.family('backend_reply_bytes_total', 'counter', 'Bytes towards clients owned by the backend.', per((b) => b.replyBytes));
  x.family('backend_resteered_in_total', 'counter', 'Flows moved to the backend from a backend that went down.', per((b) => b.resteeredIn));
  x.family('backend_sessions', 'gauge', 'Sessions currently on the backend.', per((b) => b.sessions));
  x.family('backend_active_flows', 'gauge', 'Flows currently on the backend.', per((b) => b.activeFlows));
  x.family('backend_health_checks_total', 'counter', 'Health checks run against the backend.', per((b) => b.healthChecks));
  x.family('backend_health_check_latency_seconds', 'gauge', 'Duration of the last health check.', per((b) => (b.healthLatencyMs === undefined || b.healthLatencyMs === null ? null : b.healthLatencyMs / 1000)));

  x.family('drops_total', 'counter', 'Frames dropped, by reason.', Object.entries(s.drops).map(([reason, v]) => ({ labels: { reason }, value: v })));
  x.family('passes_total', 'counter', 'Frames passed to the host (not balanced), by reason.', Object.entries(s.passes).map(([reason, v]) => ({ labels: { reason }, value: v })));
  for (const [name, v] of Object.entries(s.counters)) {
    x.family(`engine_${metricName(name)}_total`, 'counter', `Engine counter ${name} (docs/abi.md, Counters).`, [{ value: v }]);
  }

  x.family('flow_table_entries', 'gauge', 'Flows in the flow table.', [{ value: s.flowTable.entries }]);
  x.family('flow_table_capacity', 'gauge', 'Flow table capacity.', [{ value: s.flowTable.capacity }]);
  const fcap = toNum(s.flowTable.capacity);
  x.family('flow_table_occupancy_ratio', 'gauge', 'Flow table entries / capacity.', fcap > 0 ? [{ value: toNum(s.flowTable.entries) / fcap }] : []);
  x.family('sessions_active', 'gauge', 'Sessions open over all VIPs.', [{ value: s.sessions.active }]);
  x.family('sessions_capacity', 'gauge', 'Global session limit (0 = no limit).', [{ value: s.sessions.capacity }]);
  const scap = toNum(s.sessions.capacity);
  x.family('sessions_occupancy_ratio', 'gauge', 'Sessions open / the global session limit.', scap > 0 ? [{ value: toNum(s.sessions.active) / scap }] : []);

  const h = s.batchSizes;
  if (h.counts.length !== h.bounds.length + 1) throw new Error(`metrics: histogram with ${h.bounds.length} bounds needs ${h.bounds.length + 1} counts (got ${h.counts.length})`);
  const buckets: Sample[] = [];
  let cum = 0n;
  for (let i = 0; i <= h.bounds.length; i++) {
    cum += BigInt(h.counts[i]);
    buckets.push({ suffix: '_bucket', labels: { le: i < h.bounds.length ? value(h.bounds[i]) : '+Inf' }, value: cum });
  }
  x.family('batch_size', 'histogram', 'Frames per engine batch (one process() call).', [...buckets, { suffix: '_sum', value: h.sum }, { suffix: '_count', value: cum }]);

  const r = s.rates;
  x.family('rx_packets_per_second', 'gauge', 'Frames received per second over the last interval.', [{ value: r.rxPps }]);
  x.family('tx_packets_per_second', 'gauge', 'Frames sent per second over the last interval.', [{ value: r.txPps }]);
  x.family('rx_bytes_per_second', 'gauge', 'Bytes received per second over the last interval.', [{ value: r.rxBps }]);
  x.family('tx_bytes_per_second', 'gauge', 'Bytes sent per second over the last interval.', [{ value: r.txBps }]);
  x.family('rate_interval_seconds', 'gauge', 'Length of the interval the per-second rates cover.', [{ value: r.intervalSeconds }]);

  const il = (i: InterfaceSnapshot): Labels => ({ interface: i.name, role: i.role ?? '' });
  const perIf = (f: (i: InterfaceSnapshot) => Num | undefined): Sample[] =>
    s.interfaces.flatMap((i) => { const v = f(i); return v === undefined ? [] : [{ labels: il(i), value: v }]; });
  x.family('interface_rx_packets_total', 'counter', 'Frames read from the interface.', perIf((i) => i.rxPackets));
  x.family('interface_rx_bytes_total', 'counter', 'Bytes read from the interface.', perIf((i) => i.rxBytes));
  x.family('interface_rx_errors_total', 'counter', 'Read errors on the interface.', perIf((i) => i.rxErrors));
  x.family('interface_rx_dropped_total', 'counter', 'Frames read but not processed (no room).', perIf((i) => i.rxDropped));
  x.family('interface_tx_packets_total', 'counter', 'Frames written to the interface.', perIf((i) => i.txPackets));
  x.family('interface_tx_bytes_total', 'counter', 'Bytes written to the interface.', perIf((i) => i.txBytes));
  x.family('interface_tx_errors_total', 'counter', 'Write errors on the interface.', perIf((i) => i.txErrors));
  x.family('interface_tx_dropped_total', 'counter', 'Frames that could not be written (device busy).', perIf((i) => i.txDropped));

  if (s.splice) {
    const sp = s.splice;
    const one = (v: Num | undefined): Sample[] => (v === undefined ? [] : [{ value: v }]);
    x.family('splice_connections', 'gauge', 'Splice table entries in use (connections being bound or spliced).', one(sp.connections));
    x.family('splice_capacity', 'gauge', 'Splice table size (the most connections that can be spliced at once).', one(sp.capacity));
    x.family('splice_events_total', 'counter', 'TCP splicing statistics by event (docs/abi.md "TCP splicing", docs/splice.md).',
      Object.entries(sp).filter(([k]) => !SPLICE_GAUGES.has(k)).map(([event, v]) => ({ labels: { event }, value: v })));
  }
  return x.text();
}

// --- Helpers for the host ---------------------------------------------------------------------------

export const BATCH_SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class Histogram {
  private counts: number[];
  private total = 0;
  constructor(readonly bounds: number[] = BATCH_SIZE_BOUNDS) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i] > bounds[i - 1])) throw new Error('histogram bounds must increase');
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(v: number, n = 1): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i] += n;
    this.total += v * n;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: [...this.bounds], counts: [...this.counts], sum: this.total };
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
  }
}

export interface RateTotals {
  rxPackets: Num;
  txPackets: Num;
  rxBytes: Num;
  txBytes: Num;
}

export class RateMeter {
  private prev: { t: number; v: number[] } | null = null;
  private last: RateSnapshot = { rxPps: 0, txPps: 0, rxBps: 0, txBps: 0, intervalSeconds: 0 };
  constructor(private readonly minIntervalMs = 1000) {}

  /** Feed the running totals; returns the rates over the last completed interval. */
  update(nowMs: number, t: RateTotals): RateSnapshot {
    const v = [t.rxPackets, t.txPackets, t.rxBytes, t.txBytes].map(toNum);
    if (this.prev === null) {
      this.prev = { t: nowMs, v };
      return this.last;
    }
    const dt = (nowMs - this.prev.t) / 1000;
    if (dt * 1000 < this.minIntervalMs) return this.last;
    const d = v.map((x, i) => Math.max(0, x - this.prev!.v[i]) / dt);
    this.last = { rxPps: d[0], txPps: d[1], rxBps: d[2], txBps: d[3], intervalSeconds: dt };
    this.prev = { t: nowMs, v };
    return this.last;
  }
}

// --- Server ----------------------------------------------------------------------------------------

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.toLowerCase();
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return !!m && m[1].startsWith('127.');
  }
  return false;
}

export interface MetricsConfig {
  address: string;
  port: number;
  allowRemote: boolean;
}

export const DEFAULT_METRICS_PORT = 9180;

export function parseMetricsConfig(raw: unknown, path: string): MetricsConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(path, 'must be an object such as {"address": "127.0.0.1", "port": 9180}');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['address', 'port', 'allowRemote'].includes(k)) throw new ConfigError(`${path}.${k}`, 'unknown field (allowed here: address, port, allowRemote)');
  }
  const out: MetricsConfig = { address: '127.0.0.1', port: DEFAULT_METRICS_PORT, allowRemote: false };
  if (o.allowRemote !== undefined) {
    if (typeof o.allowRemote !== 'boolean') throw new ConfigError(`${path}.allowRemote`, 'must be true or false');
    out.allowRemote = o.allowRemote;
  }
  if (o.port !== undefined) {
    if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new ConfigError(`${path}.port`, `must be a port from 1 to 65535, or 0 for any free port (got ${JSON.stringify(o.port)})`);
    }
    out.port = o.port;
  }
  if (o.address !== undefined) {
    if (typeof o.address !== 'string' || (isIP(o.address) === 0 && o.address !== 'localhost')) {
      throw new ConfigError(`${path}.address`, `must be an IP address to listen on (got ${JSON.stringify(o.address)})`);
    }
    out.address = o.address;
  }
  if (!isLoopback(out.address) && !out.allowRemote) {
    throw new ConfigError(`${path}.address`, `${out.address} is not a loopback address; metrics are served on localhost only unless "allowRemote": true`);
  }
  return out;
}

export interface MetricsServerOptions {
  host?: string;
  port?: number;
  allowRemote?: boolean;
  collect: () => LiveSnapshot | Promise<LiveSnapshot>;
  logger?: Logger;
}

export interface MetricsServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host) && !opts.allowRemote) {
    throw new Error(`metrics: refusing to listen on ${host}: not a loopback address (set allowRemote to serve other hosts)`);
  }
  const send = (res: ServerResponse, head: boolean, code: number, type: string, body: string, extra: Record<string, string> = {}) => {
    res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
    res.end(head ? undefined : body);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const head = req.method === 'HEAD';
    const known = path === '/metrics' || path === '/healthz';
    if (!known) return send(res, head, 404, 'text/plain; charset=utf-8', 'not found: try /metrics or /healthz\n');
    if (req.method !== 'GET' && !head) return send(res, false, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: 'GET, HEAD' });
    if (path === '/healthz') return send(res, head, 200, 'text/plain; charset=utf-8', 'ok\n');
    let text: string;
    try {
      text = renderMetrics(await opts.collect());
    } catch (e) {
      opts.logger?.error('metrics collection failed', { err: e });
      return send(res, head, 500, 'text/plain; charset=utf-8', `metrics collection failed: ${(e as Error)?.message ?? e}\n`);
    }
    send(res, head, 200, METRICS_CONTENT_TYPE, text);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      opts.logger?.error('metrics request failed', { err: e });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => opts.logger?.error('metrics server error', { err: e }));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
