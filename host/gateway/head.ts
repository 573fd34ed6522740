// Request and reply heads for the TCP gateway: HTTP/1.x and RTSP/1.0 start lines and headers, and a
// streaming scanner that follows an RTSP connection message by message (interleaved `$` frames
// and bodies skipped by length) so the gateway can track sessions without buffering the stream.
//
// API
//   interface Head { kind: 'request' | 'reply'; protocol: 'http' | 'rtsp'; method: string;
//     uri: string; path: string; version: string; status: number; headers: [string, string][];
//     length: number /* bytes of the head, terminator included */ }
//   function findHeadEnd(buf: Buffer, from?: number): number   // index after CRLFCRLF (or LFLF), -1 if none yet
//   function parseHead(buf: Buffer, end: number): Head | string // a Head, or why it is not one
//   function header(h: Head, name: string): string | null       // first value, case-insensitive name
//   function sessionId(value: string): string                   // "abc;timeout=60" -> "abc"
//   function sessionTimeout(value: string): number | null       // the timeout parameter, seconds
//   function uriPath(uri: string): string                       // "/a?b", "rtsp://h:1/a" -> "/a"
//   class RtspScanner                                            // see its comment
import { Buffer } from 'node:buffer';

export interface Head {
  kind: 'request' | 'reply';
  protocol: 'http' | 'rtsp';
  method: string; // requests
  uri: string; // requests
  path: string; // requests: the path of the URI, without query
  version: string; // "HTTP/1.1", "RTSP/1.0"
  status: number; // replies
  headers: [string, string][];
  length: number;
}

/** Index just past the blank line that ends a head (CRLFCRLF, or LFLF from lax clients), or -1. */
export function findHeadEnd(buf: Buffer, from = 0): number {
  for (let i = Math.max(0, from); i < buf.length; i++) {
    if (buf[i] !== 0x0a) continue;
    if (i + 1 < buf.length && buf[i + 1] === 0x0a) return i + 2;
    if (i + 2 < buf.length && buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function uriPath(uri: string): string {
  let p = uri;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(p);
  if (m) p = p.slice(m[0].length) || '/';
  const q = p.search(/[?#]/);
  if (q >= 0) p = p.slice(0, q);
  return p === '' ? '/' : p;
}

/** Parses buf[0, end) as one head (end from findHeadEnd). Returns an error text if it is not one. */
export function parseHead(buf: Buffer, end: number): Head | string {
  const text = buf.toString('latin1', 0, end);
  const lines = text.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (!lines.length) return 'empty head';
  const start = lines[0];
  const headers: [string, string][] = [];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    if (/^[ \t]/.test(l)) {
      // obsolete line folding: continue the previous header's value
      if (!headers.length) return 'continuation line before any header';
      headers[headers.length - 1][1] += ' ' + l.trim();
      continue;
    }
    const c = l.indexOf(':');
    if (c <= 0) return `header line without a name: ${JSON.stringify(l.slice(0, 60))}`;
    const name = l.slice(0, c);
    if (!TOKEN.test(name)) return `invalid header name ${JSON.stringify(name.slice(0, 60))}`;
    headers.push([name, l.slice(c + 1).trim()]);
  }
  const reply = /^(RTSP\/1\.0|HTTP\/1\.[01]) (\d{3})(?: .*)?$/.exec(start);
  if (reply) {
    return {
      kind: 'reply', protocol: reply[1].startsWith('RTSP') ? 'rtsp' : 'http', method: '', uri: '', path: '',
      version: reply[1], status: Number(reply[2]), headers, length: end,
    };
  }
  const req = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (RTSP\/1\.0|HTTP\/1\.[01])$/.exec(start);
  if (!req) return `not an HTTP/1.x or RTSP/1.0 request line: ${JSON.stringify(start.slice(0, 80))}`;
  return {
    kind: 'request', protocol: req[3].startsWith('RTSP') ? 'rtsp' : 'http', method: req[1], uri: req[2],
    path: uriPath(req[2]), version: req[3], status: 0, headers, length: end,
  };
}

export function header(h: Head, name: string): string | null {
  const n = name.toLowerCase();
  for (const [k, v] of h.headers) if (k.toLowerCase() === n) return v;
  return null;
}

export function sessionId(value: string): string {
  const s = value.indexOf(';');
  return (s >= 0 ? value.slice(0, s) : value).trim();
}

export function sessionTimeout(value: string): number | null {
  const m = /;\s*timeout\s*=\s*(\d+)/i.exec(value);
  return m ? Number(m[1]) : null;
}

/** Content-Length of a message: 0 when absent, -1 when invalid. */
export function contentLength(h: Head): number {
  const v = header(h, 'content-length');
  if (v === null) return 0;
  if (!/^\d{1,12}$/.test(v)) return -1;
  return Number(v);
}

/**
 * Follows one direction of an RTSP connection. push(chunk, emit) walks the bytes: interleaved
 * frames ('$', channel, 16-bit length, data) and message bodies (Content-Length) are passed to
 * emit as they come, without copying; a head is held until it is complete (at most maxHead bytes)
 * and then given to onHead, which returns false to drop it (and its body) instead of passing it on.
 * Without emit the scanner only observes. A head that cannot be parsed or grows past maxHead stops
 * the scanner for good (`broken`): from then on every byte is passed on unexamined, so only
 * session tracking on this connection ends. `atBoundary` is true between messages.
 */
export class RtspScanner {
  private pending: Buffer | null = null; // the start of a head or of an interleaved header
  private skip = 0; // body or frame bytes still to pass (or drop)
  private dropping = false; // the body being skipped belongs to a dropped message
  broken: string | null = null;

  constructor(private readonly maxHead: number, private readonly onHead: (h: Head) => boolean | void) {}

  get atBoundary(): boolean {
    return this.pending === null && this.skip === 0;
  }

  push(chunk: Buffer, emit: (b: Buffer) => void = () => {}): void {
    if (this.broken) return emit(chunk);
    let i = 0;
    while (i < chunk.length) {
      if (this.broken) return emit(chunk.subarray(i));
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (!this.dropping) emit(chunk.subarray(i, i + n));
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.dropping = false;
        continue;
      }
      if (this.pending === null) {
        if (chunk[i] === 0x24) {
          // '$' channel len16
          if (chunk.length - i >= 4) {
            emit(chunk.subarray(i, i + 4));
            this.skip = chunk.readUInt16BE(i + 2);
            i += 4;
            continue;
          }
          this.pending = Buffer.from(chunk.subarray(i));
          return;
        }
        // A head starts here: find its end within this chunk.
        const end = findHeadEnd(chunk, i);
        if (end < 0) {
          if (chunk.length - i > this.maxHead) return this.fail('head longer than the bound', chunk.subarray(i), emit);
          this.pending = Buffer.from(chunk.subarray(i));
          return;
        }
        const buf = chunk.subarray(i, end);
        i = end;
        if (buf.length > this.maxHead) return this.fail('head longer than the bound', chunk.subarray(i - buf.length), emit);
        this.head(buf, emit);
        continue;
      }
      // Continue a pending '$' header or head.
      if (this.pending[0] === 0x24) {
        const need = 4 - this.pending.length;
        const take = chunk.subarray(i, i + need);
        this.pending = Buffer.concat([this.pending, take]);
        i += take.length;
        if (this.pending.length === 4) {
          emit(this.pending);
          this.skip = this.pending.readUInt16BE(2);
          this.pending = null;
        }
        continue;
      }
      const before = this.pending.length;
      const joined = Buffer.concat([this.pending, chunk.subarray(i, i + this.maxHead + 4)]);
      const end = findHeadEnd(joined, Math.max(0, before - 3));
      if (end < 0 || end > this.maxHead) {
        if (end > this.maxHead || joined.length > this.maxHead) {
          const p = this.pending;
          this.pending = null;
          emit(p);
          return this.fail('head longer than the bound', chunk.subarray(i), emit);
        }
        this.pending = Buffer.concat([this.pending, chunk.subarray(i)]);
        return;
      }
      this.pending = null;
      i += end - before;
      this.head(joined.subarray(0, end), emit);
    }
  }

  private head(buf: Buffer, emit: (b: Buffer) => void): void {
    // Stray CRLFs between messages are allowed.
    let s = 0;
    while (s < buf.length && (buf[s] === 0x0d || buf[s] === 0x0a)) s++;
    if (s === buf.length) return emit(buf);
    const h = parseHead(buf.subarray(s), buf.length - s);
    const len = typeof h === 'string' ? -1 : contentLength(h);
    if (typeof h === 'string' || len < 0) {
      this.broken = typeof h === 'string' ? h : 'invalid Content-Length';
      return emit(buf);
    }
    this.skip = len;
    const keep = this.onHead(h) !== false;
    this.dropping = !keep && len > 0;
    if (keep) emit(buf);
  }

  private fail(why: string, rest: Buffer, emit: (b: Buffer) => void): void {
    this.broken = why;
    this.pending = null;
    emit(rest);
  }
}
