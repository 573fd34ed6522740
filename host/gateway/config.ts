// The gateway's configuration: the ordinary sessionlb JSON config (host/ctl/config.ts: VIPs,
// backends, schedulers, health checks, maxSessions) plus an optional top-level "gateway" object
// with what only a proxy needs. The "gateway" object is taken out before the shared parser runs,
// so config.ts knows nothing about it; its errors name fields as `gateway.rules[0].prefix`.
//
//   "gateway": {
//     "rules": [ { "vip": "10.0.0.10", "port": 80, "prefix": "/video/", "host": "www.example",
//                  "backends": ["b2", "b3"] } ],      // first match wins; vip/port/host optional;
//                                                     // then each VIP's splice.rules (method splice)
//     "source": "10.1.0.2", "source6": "fd00::2",     // local address of backend connections
//     "maxConnections": 10000,                        // open client connections (then 503)
//     "connectTimeout": 2, "idleTimeout": 300, "headTimeout": 5,   // seconds, fractions allowed
//     "maxHead": 16384,                               // bytes of the first request head
//     "retries": 2,                                   // other backends tried when a connect fails
//     "tcpPorts": [5201],                             // layer 4: no request read, scheduler at accept
//     "metrics": {"address": "127.0.0.1", "port": 9181},
//     "logLevel": "info"
//   }
import { isIP } from 'node:net';
import { ConfigError, parseConfig, readJsonFile, type Config } from '../ctl/config.js';
import { parseMetricsConfig, type MetricsConfig } from '../live/metrics.js';
import { parseLogLevel, type LogLevel } from '../live/log.js';

export interface GatewayRule {
  vip: string | null; // the VIP's address as configured; null = every VIP
  port: number | null;
  prefix: string;
  /** 'path': the prefix starts the URI's path (gateway.rules); 'uri': it starts the request URI
   * as sent (a VIP's splice.rules, matched as the splicing engine matches them). */
  match: 'path' | 'uri';
  host: string | null; // lower case, without port
  backends: string[]; // backend ids of that VIP (of every VIP it applies to)
}

export interface GatewayOptions {
  rules: GatewayRule[];
  source: string | null;
  source6: string | null;
  maxConnections: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  headTimeoutMs: number;
  maxHead: number;
  retries: number;
  /** Ports proxied at layer 4 (any VIP): no head is read, the scheduler chooses at accept (HAProxy's mode tcp). */
  tcpPorts: number[];
  metrics: MetricsConfig | null;
  logLevel: LogLevel;
}

export const DEFAULT_GATEWAY: Readonly<GatewayOptions> = Object.freeze({
  rules: [], source: null, source6: null, maxConnections: 10000, connectTimeoutMs: 2000,
  idleTimeoutMs: 300_000, headTimeoutMs: 5000, maxHead: 16384, retries: 2, tcpPorts: [], metrics: null, logLevel: 'info',
});

export interface GatewayConfig {
  config: Config;
  gateway: GatewayOptions;
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const FIELDS = ['rules', 'source', 'source6', 'maxConnections', 'connectTimeout', 'idleTimeout', 'headTimeout', 'maxHead', 'retries', 'tcpPorts', 'metrics', 'logLevel'];

function int(o: Obj, key: string, def: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`gateway.${key}`, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function secs(o: Obj, key: string, defMs: number, minMs: number, maxMs: number): number {
  const v = o[key];
  if (v === undefined) return defMs;
  const ms = typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 1000) : NaN;
  if (!(ms >= minMs && ms <= maxMs)) {
    throw new ConfigError(`gateway.${key}`, `must be a number of seconds from ${minMs / 1000} to ${maxMs / 1000} (got ${JSON.stringify(v)})`);
  }
  return ms;
}

function sameAddress(a: string, b: string): boolean {
  return a === b || (isIP(a) === 6 && isIP(b) === 6 && a.toLowerCase() === b.toLowerCase());
}

/** Validates the "gateway" object against the parsed config (rules must name its VIPs and backends). */
export function parseGatewayOptions(raw: unknown, config: Config): GatewayOptions {
  if (raw === undefined) return { ...DEFAULT_GATEWAY, rules: [] };
  if (!isObj(raw)) throw new ConfigError('gateway', 'must be an object');
  for (const k of Object.keys(raw)) {
    if (!FIELDS.includes(k)) throw new ConfigError(`gateway.${k}`, `unknown field (allowed here: ${FIELDS.join(', ')})`);
  }
  const out: GatewayOptions = { ...DEFAULT_GATEWAY, rules: [] };
  for (const k of ['source', 'source6'] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    const fam = k === 'source' ? 4 : 6;
    if (typeof v !== 'string' || isIP(v) !== fam) throw new ConfigError(`gateway.${k}`, `must be an IPv${fam} address (got ${JSON.stringify(v)})`);
    out[k] = v;
  }
  out.maxConnections = int(raw, 'maxConnections', DEFAULT_GATEWAY.maxConnections, 1, 1_000_000);
  out.connectTimeoutMs = secs(raw, 'connectTimeout', DEFAULT_GATEWAY.connectTimeoutMs, 10, 600_000);
  out.idleTimeoutMs = secs(raw, 'idleTimeout', DEFAULT_GATEWAY.idleTimeoutMs, 100, 86_400_000);
  out.headTimeoutMs = secs(raw, 'headTimeout', DEFAULT_GATEWAY.headTimeoutMs, 10, 600_000);
  out.maxHead = int(raw, 'maxHead', DEFAULT_GATEWAY.maxHead, 256, 1 << 20);
  out.retries = int(raw, 'retries', DEFAULT_GATEWAY.retries, 0, 16);
  if (raw.tcpPorts !== undefined) {
    if (!Array.isArray(raw.tcpPorts)) throw new ConfigError('gateway.tcpPorts', 'must be an array of ports proxied without reading a request (layer 4)');
    out.tcpPorts = raw.tcpPorts.map((x, k) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) throw new ConfigError(`gateway.tcpPorts[${k}]`, `must be a port from 1 to 65535 (got ${JSON.stringify(x)})`);
      if (config.vips.some((v) => v.rtspPorts.includes(x) && (v.ports ?? []).includes(x))) throw new ConfigError(`gateway.tcpPorts[${k}]`, `${x} is an RTSP port of a VIP (its requests are read for sessions)`);
      return x;
    });
  }
  if (raw.metrics !== undefined) out.metrics = parseMetricsConfig(raw.metrics, 'gateway.metrics');
  if (raw.logLevel !== undefined) out.logLevel = parseLogLevel(raw.logLevel, 'gateway.logLevel');
  if (raw.rules !== undefined) {
    if (!Array.isArray(raw.rules)) throw new ConfigError('gateway.rules', 'must be an array of {"prefix", "backends", "vip"?, "port"?, "host"?}');
    out.rules = raw.rules.map((r, i): GatewayRule => {
      const p = `gateway.rules[${i}]`;
      if (!isObj(r)) throw new ConfigError(p, 'must be an object');
      for (const k of Object.keys(r)) {
        if (!['vip', 'port', 'prefix', 'host', 'backends'].includes(k)) throw new ConfigError(`${p}.${k}`, 'unknown field (allowed here: vip, port, prefix, host, backends)');
      }
      let vip: string | null = null;
      if (r.vip !== undefined) {
        if (typeof r.vip !== 'string' || !config.vips.some((v) => sameAddress(v.address, r.vip as string))) {
          throw new ConfigError(`${p}.vip`, `${JSON.stringify(r.vip)} is not one of the configured VIPs (${config.vips.map((v) => v.address).join(', ')})`);
        }
        vip = config.vips.find((v) => sameAddress(v.address, r.vip as string))!.address;
      }
      let port: number | null = null;
      if (r.port !== undefined) {
        if (typeof r.port !== 'number' || !Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw new ConfigError(`${p}.port`, `must be a port from 1 to 65535 (got ${JSON.stringify(r.port)})`);
        port = r.port;
      }
      const prefix = r.prefix === undefined ? '/' : r.prefix;
      if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new ConfigError(`${p}.prefix`, `must be a URL path starting with "/" (got ${JSON.stringify(r.prefix)})`);
      let host: string | null = null;
      if (r.host !== undefined) {
        if (typeof r.host !== 'string' || !/^[A-Za-z0-9.:[\]-]+$/.test(r.host)) throw new ConfigError(`${p}.host`, `must be a host name (got ${JSON.stringify(r.host)})`);
        host = r.host.toLowerCase();
      }
      if (!Array.isArray(r.backends) || r.backends.length === 0 || !r.backends.every((b) => typeof b === 'string')) {
        throw new ConfigError(`${p}.backends`, 'must be a non-empty array of backend ids');
      }
      const vips = config.vips.filter((v) => vip === null || v.address === vip);
      (r.backends as string[]).forEach((id, k) => {
        for (const v of vips) {
          if (!v.backends.some((b) => b.id === id)) {
            throw new ConfigError(`${p}.backends[${k}]`, `"${id}" is not a backend of VIP ${v.address}${vip === null ? ' (a rule without "vip" applies to every VIP)' : ''}`);
          }
        }
      });
      return { vip, port, prefix, host, match: 'path', backends: [...(r.backends as string[])] };
    });
  }
  // A VIP's splice rules (method splice, docs/splice.md) apply here too, after the gateway's own,
  // so one config file drives both designs with the same choice.
  for (const v of config.vips) {
    const sp = (v as { splice?: { rules?: { prefix: string; backend: string }[] } }).splice;
    for (const r of sp?.rules ?? []) out.rules.push({ vip: v.address, port: null, prefix: r.prefix, host: null, match: 'uri', backends: [r.backend] });
  }
  for (const [i, v] of config.vips.entries()) {
    if (!v.protocols.includes('tcp')) throw new ConfigError(`vips[${i}].protocols`, 'the gateway proxies TCP: include "tcp"');
    if (v.ports === null) throw new ConfigError(`vips[${i}].ports`, 'the gateway listens on the VIP\'s ports: list them');
  }
  return out;
}

/** The JSON config with an optional "gateway" object (everything else as `sessionlb replay/run` reads it). */
export function parseGatewayConfig(raw: unknown): GatewayConfig {
  if (!isObj(raw)) throw new ConfigError('', 'the top level must be a JSON object with a "vips" array');
  const { gateway, ...rest } = raw;
  const config = parseConfig(rest);
  return { config, gateway: parseGatewayOptions(gateway, config) };
}

export function loadGatewayConfig(file: string): GatewayConfig {
  return parseGatewayConfig(readJsonFile(file));
}
