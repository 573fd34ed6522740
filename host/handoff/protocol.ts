// The TCP handoff wire protocol between the front end and a backend's agent (docs/handoff.md):
// HANDOFF (front end -> agent, 52 + n bytes) and DONE (agent -> front end, 12 bytes), big-endian.
//
// API
//   encodeHandoff(h: Handoff): Buffer           validates first (throws ProtocolError)
//   decodeHandoff(buf): Handoff                 exactly one message; strict (throws ProtocolError)
//   validateHandoff(h): string | null           why h cannot be sent, or null
//   encodeDone(d: Done): Buffer, decodeDone(buf): Done
//   class HandoffReader                         frames a byte stream of pipelined HANDOFFs
//   class DoneReader                            frames a byte stream of DONEs (the front end's side)
//   Status, FLAG_*, sizes, STATUS_NAMES
import { isIPv4 } from 'node:net';

export const VERSION = 1;
export const TYPE_HANDOFF = 1;
export const TYPE_DONE = 2;
export const HANDOFF_HEADER = 52;
export const DONE_LENGTH = 12;
/** The largest n: the 16-bit total length bounds it. */
export const MAX_HELD = 0xffff - HANDOFF_HEADER;
export const DEFAULT_AGENT_PORT = 9190;

export const FLAG_WSCALE = 1;
export const FLAG_SACK = 2;
export const FLAG_TIMESTAMPS = 4;
const FLAGS_KNOWN = FLAG_WSCALE | FLAG_SACK | FLAG_TIMESTAMPS;
/** Linux's TCP_MIN_MSS: the kernel refuses a smaller clamp. */
export const MIN_MSS = 88;

export const Status = {
  OK: 0,
  MALFORMED: 1,
  REPAIR_FAILED: 2,
  NO_SERVER: 3,
  BUSY: 4,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];
export const STATUS_NAMES: Record<number, string> = { 0: 'ok', 1: 'malformed', 2: 'repair-failed', 3: 'no-server', 4: 'busy' };

export interface Handoff {
  /** Opaque to the agent; echoed in DONE. */
  id: number;
  /** FLAG_WSCALE | FLAG_SACK | FLAG_TIMESTAMPS as negotiated with the client. */
  flags: number;
  /** The client's window shift (0 without window scaling). */
  sndWscale: number;
  /** The shift the front end announced to the client (0 without window scaling). */
  rcvWscale: number;
  /** The client's MSS. */
  mss: number;
  client: string;
  vip: string;
  clientPort: number;
  vipPort: number;
  /** Sequence number of the next byte the backend sends. */
  sndNxt: number;
  /** Sequence number of the first held byte. */
  rcvNxt: number;
  /** The client's latest receive window, bytes (scaled). */
  sndWnd: number;
  /** The window last advertised to the client, bytes, from rcvNxt + n. */
  rcvWnd: number;
  /** The TSval of the backend's next segment (0 without timestamps). */
  tsval: number;
  /** The client's latest TSval (0 without timestamps). The kernel offers no way to set it. */
  tsRecent: number;
  /** The held request bytes (n = data.length). */
  data: Uint8Array;
}

export interface Done {
  id: number;
  status: number;
  /** errno of the failing call, low 8 bits, or 0. */
  errno: number;
}

export class ProtocolError extends Error {
  readonly code = 'HANDOFF_PROTOCOL';
  constructor(
    message: string,
    /** The message's id when it could be read. */
    readonly id: number | null = null,
    /** The stream cannot be framed past this point (unknown version or type, bad length). */
    readonly fatal = false,
  ) {
    super(message);
  }
}

const u32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const u16 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;
const u8 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xff;

function ipv4ToU32(a: string): number {
  const p = a.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

function u32ToIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** An address a TCP connection can have at either end: not 0.0.0.0, broadcast or multicast/class E. */
function badAddress(v: number): boolean {
  return v === 0 || v === 0xffffffff || v >>> 28 >= 0xe;
}

/** Why h is not a valid HANDOFF, or null. The same rules decodeHandoff applies. */
export function validateHandoff(h: Handoff): string | null {
  if (!u32(h.id)) return 'id must be an unsigned 32-bit integer';
  if (!u8(h.flags) || (h.flags & ~FLAGS_KNOWN) !== 0) return `flags ${h.flags}: only 1 (window scaling), 2 (SACK), 4 (timestamps) are defined`;
  const ws = (h.flags & FLAG_WSCALE) !== 0;
  for (const [name, v] of [['snd_wscale', h.sndWscale], ['rcv_wscale', h.rcvWscale]] as const) {
    if (!u8(v)) return `${name} must be a byte`;
    if (ws ? v > 14 : v !== 0) return ws ? `${name} ${v} exceeds 14 (RFC 7323)` : `${name} ${v} without window scaling (must be 0)`;
  }
  if (!u16(h.mss) || h.mss < MIN_MSS) return `mss ${h.mss}: must be ${MIN_MSS}..65535`;
  if (typeof h.client !== 'string' || !isIPv4(h.client) || badAddress(ipv4ToU32(h.client))) return `client address ${h.client} is not a unicast IPv4 address`;
  if (typeof h.vip !== 'string' || !isIPv4(h.vip) || badAddress(ipv4ToU32(h.vip))) return `VIP ${h.vip} is not a unicast IPv4 address`;
  if (!u16(h.clientPort) || h.clientPort === 0) return `client port ${h.clientPort}: must be 1..65535`;
  if (!u16(h.vipPort) || h.vipPort === 0) return `VIP port ${h.vipPort}: must be 1..65535`;
  for (const [name, v] of [['snd_nxt', h.sndNxt], ['rcv_nxt', h.rcvNxt], ['snd_wnd', h.sndWnd], ['rcv_wnd', h.rcvWnd], ['tsval', h.tsval], ['ts_recent', h.tsRecent]] as const) {
    if (!u32(v)) return `${name} must be an unsigned 32-bit integer`;
  }
  const maxSnd = 0xffff * 2 ** (ws ? h.sndWscale : 0);
  const maxRcv = 0xffff * 2 ** (ws ? h.rcvWscale : 0);
  if (h.sndWnd > maxSnd) return `snd_wnd ${h.sndWnd} exceeds 65535 << snd_wscale (${maxSnd})`;
  if (h.rcvWnd > maxRcv) return `rcv_wnd ${h.rcvWnd} exceeds 65535 << rcv_wscale (${maxRcv})`;
  if ((h.flags & FLAG_TIMESTAMPS) === 0 && (h.tsval !== 0 || h.tsRecent !== 0)) return 'tsval and ts_recent must be 0 without timestamps';
  if (!(h.data instanceof Uint8Array)) return 'data must be a Uint8Array';
  if (h.data.length > MAX_HELD) return `${h.data.length} held bytes: at most ${MAX_HELD}`;
  return null;
}

export function encodeHandoff(h: Handoff): Buffer {
  const why = validateHandoff(h);
  if (why) throw new ProtocolError(`HANDOFF: ${why}`, u32(h.id) ? h.id : null);
  const n = h.data.length;
  const b = Buffer.alloc(HANDOFF_HEADER + n);
  b[0] = VERSION;
  b[1] = TYPE_HANDOFF;
  b.writeUInt16BE(HANDOFF_HEADER + n, 2);
  b.writeUInt32BE(h.id, 4);
  b[8] = h.flags;
  b[9] = h.sndWscale;
  b[10] = h.rcvWscale;
  b[11] = 0;
  b.writeUInt16BE(h.mss, 12);
  b.writeUInt16BE(n, 14);
  b.writeUInt32BE(ipv4ToU32(h.client), 16);
  b.writeUInt32BE(ipv4ToU32(h.vip), 20);
  b.writeUInt16BE(h.clientPort, 24);
  b.writeUInt16BE(h.vipPort, 26);
  b.writeUInt32BE(h.sndNxt, 28);
  b.writeUInt32BE(h.rcvNxt, 32);
  b.writeUInt32BE(h.sndWnd, 36);
  b.writeUInt32BE(h.rcvWnd, 40);
  b.writeUInt32BE(h.tsval, 44);
  b.writeUInt32BE(h.tsRecent, 48);
  b.set(h.data, HANDOFF_HEADER);
  return b;
}

/**
 * Checks the first 4 bytes (version, type, length) of a message expected to be of `type`; returns
 * the total length. Throws a fatal ProtocolError (id read when at least 8 bytes are there).
 */
function frame(b: Uint8Array, type: number, min: number, max: number, what: string): number {
  const id = b.length >= 8 ? ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0 : null;
  if (b[0] !== VERSION) throw new ProtocolError(`${what}: unknown version ${b[0]} (this agent speaks ${VERSION})`, id, true);
  if (b[1] !== type) throw new ProtocolError(`${what}: unexpected message type ${b[1]} (expected ${type})`, id, true);
  const len = (b[2] << 8) | b[3];
  if (len < min || len > max) throw new ProtocolError(`${what}: length ${len} out of range ${min}..${max}`, id, true);
  return len;
}

/** Decodes exactly one HANDOFF (buf holds it and nothing else). Strict: see validateHandoff. */
export function decodeHandoff(buf: Uint8Array): Handoff {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 4) throw new ProtocolError(`HANDOFF: ${b.length} bytes, shorter than its header`, null, true);
  const len = frame(b, TYPE_HANDOFF, HANDOFF_HEADER, 0xffff, 'HANDOFF');
  const id = b.length >= 8 ? b.readUInt32BE(4) : null;
  if (b.length !== len) throw new ProtocolError(`HANDOFF: ${b.length} bytes, its length field says ${len}`, id, b.length < len);
  const n = b.readUInt16BE(14);
  if (n !== len - HANDOFF_HEADER) throw new ProtocolError(`HANDOFF: n = ${n} but length ${len} leaves ${len - HANDOFF_HEADER} bytes of data`, id);
  if (b[11] !== 0) throw new ProtocolError(`HANDOFF: reserved byte is ${b[11]}, must be 0`, id);
  const h: Handoff = {
    id: id!,
    flags: b[8],
    sndWscale: b[9],
    rcvWscale: b[10],
    mss: b.readUInt16BE(12),
    client: u32ToIpv4(b.readUInt32BE(16)),
    vip: u32ToIpv4(b.readUInt32BE(20)),
    clientPort: b.readUInt16BE(24),
    vipPort: b.readUInt16BE(26),
    sndNxt: b.readUInt32BE(28),
    rcvNxt: b.readUInt32BE(32),
    sndWnd: b.readUInt32BE(36),
    rcvWnd: b.readUInt32BE(40),
    tsval: b.readUInt32BE(44),
    tsRecent: b.readUInt32BE(48),
    data: b.subarray(HANDOFF_HEADER, len),
  };
  const why = validateHandoff(h);
  if (why) throw new ProtocolError(`HANDOFF: ${why}`, h.id);
  return h;
}

export function encodeDone(d: Done): Buffer {
  if (!u32(d.id) || !u8(d.status) || !u8(d.errno & 0xff)) throw new ProtocolError('DONE: id must be u32, status a byte');
  const b = Buffer.alloc(DONE_LENGTH);
  b[0] = VERSION;
  b[1] = TYPE_DONE;
  b.writeUInt16BE(DONE_LENGTH, 2);
  b.writeUInt32BE(d.id, 4);
  b[8] = d.status;
  b[9] = d.errno & 0xff;
  return b;
}

export function decodeDone(buf: Uint8Array): Done {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 4) throw new ProtocolError(`DONE: ${b.length} bytes, shorter than its header`, null, true);
  frame(b, TYPE_DONE, DONE_LENGTH, DONE_LENGTH, 'DONE');
  const id = b.length >= 8 ? b.readUInt32BE(4) : null;
  if (b.length !== DONE_LENGTH) throw new ProtocolError(`DONE: ${b.length} bytes, must be ${DONE_LENGTH}`, id, b.length < DONE_LENGTH);
  if (b.readUInt16BE(10) !== 0) throw new ProtocolError('DONE: reserved bytes must be 0', id);
  if (b[8] > Status.BUSY) throw new ProtocolError(`DONE: unknown status ${b[8]}`, id);
  return { id: id!, status: b[8], errno: b[9] };
}

/** One framed item of a stream: a whole message, or an error (fatal: nothing more can be read). */
export type Framed<T> = { ok: true; msg: T; bytes: Buffer } | { ok: false; error: ProtocolError };

class StreamReader<T> {
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;
  constructor(
    private readonly type: number,
    private readonly min: number,
    private readonly max: number,
    private readonly what: string,
    private readonly decode: (b: Buffer) => T,
  ) {}

  /** Bytes held waiting for the rest of a message. */
  get pending(): number {
    return this.buf.length;
  }

  /**
   * Appends a chunk and returns every message now complete, in order. After a fatal error the
   * reader returns nothing more (the connection should be closed).
   */
  push(chunk: Uint8Array): Framed<T>[] {
    if (this.dead) return [];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: Framed<T>[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const b = this.buf.subarray(off);
      let len: number;
      try {
        // An unknown version or type is only reported once its id is readable.
        if ((b[0] !== VERSION || b[1] !== this.type) && b.length < 8) break;
        len = frame(b, this.type, this.min, this.max, this.what);
      } catch (e) {
        if (b.length < 8 && (e as ProtocolError).id === null) break;
        out.push({ ok: false, error: e as ProtocolError });
        this.dead = true;
        this.buf = Buffer.alloc(0);
        return out;
      }
      if (b.length < len) break;
      const m = Buffer.from(b.subarray(0, len)); // a copy: the reader's buffer is reused
      off += len;
      try {
        out.push({ ok: true, msg: this.decode(m), bytes: m });
      } catch (e) {
        out.push({ ok: false, error: e as ProtocolError });
      }
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(off);
    return out;
  }

  /** At end of stream: an error when a partial message was left, else null. */
  end(): ProtocolError | null {
    if (this.dead || this.buf.length === 0) return null;
    const id = this.buf.length >= 8 ? this.buf.readUInt32BE(4) : null;
    return new ProtocolError(`${this.what}: stream ended inside a message (${this.buf.length} bytes)`, id, true);
  }
}

/** Frames pipelined HANDOFF messages from a byte stream (the agent's side). */
export class HandoffReader extends StreamReader<Handoff> {
  constructor() {
    super(TYPE_HANDOFF, HANDOFF_HEADER, 0xffff, 'HANDOFF', decodeHandoff);
  }
}

/** Frames DONE messages from a byte stream (the front end's side). */
export class DoneReader extends StreamReader<Done> {
  constructor() {
    super(TYPE_DONE, DONE_LENGTH, DONE_LENGTH, 'DONE', decodeDone);
  }
}
