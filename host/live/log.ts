// Structured logs for live mode: one JSON object per line.
//
// API
//   type LogLevel = 'debug' | 'info' | 'warn' | 'error'
//   const LOG_LEVELS: readonly LogLevel[]                  // in increasing severity
//   function parseLogLevel(raw: unknown, path: string): LogLevel   // throws ConfigError
//   function createLogger(opts?: LoggerOptions): Logger
//     LoggerOptions { stream?: { write(s: string): unknown }  // default process.stderr
//                     level?: LogLevel                         // default 'info'
//                     fields?: Record<string, unknown>         // added to every line
//                     clock?: () => Date }                     // default () => new Date()
//   interface Logger {
//     debug(msg, fields?), info(msg, fields?), warn(msg, fields?), error(msg, fields?)
//     child(fields): Logger          // same stream and level, fields merged (child's win)
//     enabled(level): boolean        // would a line at this level be written?
//     readonly level: LogLevel
//   }
//
// A line is {"ts":"2026-11-28T02:00:00.000Z","level":"info","msg":"...", ...fields}. ts, level
// and msg always come first and always belong to the logger: a field with one of those names is
// written as _ts, _level or _msg. Values are made JSON-safe: BigInt becomes its decimal string,
// an Error becomes {name, message, code?, stack?} (its cause too), a Map/Set an object/array,
// repeated references "[Circular]", functions and symbols their description, undefined fields
// are left out. A field that still cannot be serialised never throws: the line carries
// "logError" instead. Writing never throws either (a broken stream loses the line).
import { ConfigError } from '../ctl/config.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const RESERVED = new Set(['ts', 'level', 'msg']);

export interface LogStream {
  write(s: string): unknown;
}

export interface LoggerOptions {
  stream?: LogStream;
  level?: LogLevel;
  fields?: Record<string, unknown>;
  clock?: () => Date;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  enabled(level: LogLevel): boolean;
  readonly level: LogLevel;
}

export function parseLogLevel(raw: unknown, path: string): LogLevel {
  if (typeof raw !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw)) {
    throw new ConfigError(path, `must be one of ${LOG_LEVELS.map((l) => `"${l}"`).join(', ')} (got ${JSON.stringify(raw)})`);
  }
  return raw as LogLevel;
}

/** A JSON-safe copy of v (see the header for the rules). */
function safe(v: unknown, seen: Set<object>, depth: number): unknown {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'string':
    case 'boolean':
      return v;
    case 'undefined':
      return undefined;
    case 'function':
      return `[function ${(v as { name?: string }).name || 'anonymous'}]`;
    case 'symbol':
      return v.toString();
  }
  if (v === null) return null;
  const o = v as object;
  if (seen.has(o)) return '[Circular]';
  if (depth > 32) return '[Too deep]';
  seen.add(o);
  try {
    if (o instanceof Error) {
      const e = o as Error & { code?: unknown; cause?: unknown };
      const out: Record<string, unknown> = { name: e.name, message: e.message };
      if (e.code !== undefined) out.code = safe(e.code, seen, depth + 1);
      if (e.stack) out.stack = e.stack;
      if (e.cause !== undefined) out.cause = safe(e.cause, seen, depth + 1);
      return out;
    }
    if (o instanceof Date) return Number.isNaN(o.getTime()) ? 'Invalid Date' : o.toISOString();
    if (o instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of o) out[String(k)] = safe(x, seen, depth + 1);
      return out;
    }
    if (o instanceof Set) return Array.from(o, (x) => safe(x, seen, depth + 1));
    if (Buffer.isBuffer(o) || o instanceof Uint8Array) return Buffer.from(o as Uint8Array).toString('hex');
    if (Array.isArray(o)) return o.map((x) => { const s = safe(x, seen, depth + 1); return s === undefined ? null : s; });
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      const s = safe(x, seen, depth + 1);
      if (s !== undefined) out[k] = s;
    }
    return out;
  } finally {
    seen.delete(o);
  }
}

class JsonLogger implements Logger {
  constructor(
    private readonly stream: LogStream,
    readonly level: LogLevel,
    private readonly fields: Record<string, unknown>,
    private readonly clock: () => Date,
  ) {}

  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.level];
  }

  private write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const rec: Record<string, unknown> = { ts: this.clock().toISOString(), level, msg: String(msg) };
    const add = (src: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(src)) {
        const s = safe(v, new Set(), 0);
        if (s === undefined) continue;
        rec[RESERVED.has(k) ? `_${k}` : k] = s;
      }
    };
    let line: string;
    try {
      add(this.fields);
      if (fields) add(fields);
      line = JSON.stringify(rec);
    } catch (e) {
      line = JSON.stringify({ ts: rec.ts, level, msg: String(msg), logError: String((e as Error)?.message ?? e) });
    }
    try {
      this.stream.write(line + '\n');
    } catch {
      // A log line must never take the balancer down.
    }
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.write('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.write('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.write('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.write('error', msg, fields); }

  child(fields: Record<string, unknown>): Logger {
    return new JsonLogger(this.stream, this.level, { ...this.fields, ...fields }, this.clock);
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? 'info';
  if (!(level in RANK)) throw new TypeError(`log level must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(level)})`);
  return new JsonLogger(opts.stream ?? process.stderr, level, { ...(opts.fields ?? {}) }, opts.clock ?? (() => new Date()));
}
