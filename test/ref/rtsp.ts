// Reference RTSP tokenizer (plain TypeScript: strings and regular expressions), written from the
// description in docs/abi.md "RTSP tokenizer" to serve as the oracle for assembly/session/rtsp.ts.
// It favours obviousness over speed: the message is decoded as latin1 text, split into lines, and
// every header value is cut into pieces with regular expressions. The result has the same fields
// as the WASM result record; readRecord() decodes that record into the same shape.
//
// The rules, in the words of the description:
// - Lines end with LF; one CR right before the LF is not part of the line. Empty lines before the
//   start line are skipped. The first empty line after it ends the header block.
// - Framing limits: a line (without LF) of more than 4096 bytes -> -4, more than 64 lines -> -5,
//   no end of the header block within the first 8192 bytes -> -6. These and "incomplete" (0) are
//   decided before anything in the lines is interpreted.
// - Start line: "RTSP/..." = status line (version, 3-digit code, reason), otherwise a request line
//   (token method, URI, version), parts separated by runs of SP/HT.
// - Header lines: token ":" value; a line starting with SP/HT continues the previous value. A
//   header is interpreted when the next header line starts or the block ends; first error wins.
// - Numbers: CSeq, Content-Length and Session timeout 1..9 digits; ports 1..5 digits <= 65535;
//   interleaved and ttl 1..3 digits <= 255; ssrc 1..8 hex digits ('/'-separated list, first kept).
// - Transport: comma-separated specs (quotes protect commas and semicolons), each a profile
//   (proto/profile[/lower]) followed by ';' parameters; up to 4 specs, further ones ignored.

export const MAX_HEADER = 8192;
export const MAX_LINE = 4096;
export const MAX_LINES = 64;
export const MAX_SPECS = 4;
export const RESULT_SIZE = 1024;
export const STATS_OFFSET = 864;

export const STATUS = {
  NEED_MORE: 0,
  START_LINE: -1,
  VERSION: -2,
  HEADER_LINE: -3,
  LINE_TOO_LONG: -4,
  TOO_MANY_LINES: -5,
  HEADER_TOO_LARGE: -6,
  BAD_NUMBER: -7,
  DUPLICATE: -8,
  BAD_SESSION: -9,
  BAD_TRANSPORT: -10,
  ARGS: -11,
} as const;

export const METHODS = ['', 'OPTIONS', 'DESCRIBE', 'ANNOUNCE', 'SETUP', 'PLAY', 'PAUSE', 'TEARDOWN',
  'GET_PARAMETER', 'SET_PARAMETER', 'REDIRECT', 'RECORD', 'PLAY_NOTIFY'] as const;
export const METHOD_OTHER = 13;

export const FLAG = { CSEQ: 1, SESSION: 2, CONTENT_LENGTH: 4, TRANSPORT: 8, TIMEOUT: 16, MORE_SPECS: 32 } as const;
export const TFLAG = {
  CLIENT_PORT: 1, CLIENT_PORT_RANGE: 2, SERVER_PORT: 4, SERVER_PORT_RANGE: 8, PORT: 16, PORT_RANGE: 32,
  INTERLEAVED: 64, INTERLEAVED_RANGE: 128, TTL: 256, SSRC: 512,
} as const;

/** (offset, length) relative to the message start; an empty span is [0, 0]. */
export type Span = [number, number];

export interface Addr {
  kind: number; // 0 absent, 1 not an IP literal, 4 IPv4, 6 IPv6
  host: Span;
  port: number;
  hasPort: number;
  addr: string; // 32 hex digits (IPv4 as ::ffff:a.b.c.d), zeros when kind < 4
}

export interface Spec {
  flags: number;
  profile: number; // 0 other, 1 RTP/AVP, 2 RTP/AVPF, 3 RTP/SAVP, 4 RTP/SAVPF
  lower: number; // 1 UDP, 2 TCP, 3 other
  cast: number; // 0, 1 unicast, 2 multicast
  mode: number; // 0, 1 PLAY, 2 RECORD/receive, 3 other
  span: Span;
  profileSpan: Span;
  clientPort: [number, number];
  serverPort: [number, number];
  port: [number, number];
  interleaved: [number, number];
  ttl: number;
  ssrc: number;
  modeSpan: Span;
  addrs: Addr[]; // destination, source, dest_addr RTP, dest_addr RTCP, src_addr RTP, src_addr RTCP
}

export interface RtspResult {
  status: number;
  kind: number; // 0, 1 request, 2 response
  method: number;
  version: number; // 10, 20
  specCount: number;
  code: number;
  headers: number;
  flags: number;
  headerLen: number;
  contentLength: number;
  messageLen: number;
  cseq: number;
  timeout: number;
  start: number;
  methodSpan: Span;
  uriSpan: Span;
  reasonSpan: Span;
  sessionSpan: Span;
  transportSpan: Span;
  specs: Spec[];
}

const ZERO_ADDR = '0'.repeat(32);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function emptyAddr(): Addr {
  return { kind: 0, host: [0, 0], port: 0, hasPort: 0, addr: ZERO_ADDR };
}

function emptySpec(): Spec {
  return {
    flags: 0, profile: 0, lower: 0, cast: 0, mode: 0, span: [0, 0], profileSpan: [0, 0], clientPort: [0, 0],
    serverPort: [0, 0], port: [0, 0], interleaved: [0, 0], ttl: 0, ssrc: 0, modeSpan: [0, 0],
    addrs: Array.from({ length: 6 }, emptyAddr),
  };
}

export function emptyResult(): RtspResult {
  return {
    status: 0, kind: 0, method: 0, version: 0, specCount: 0, code: 0, headers: 0, flags: 0, headerLen: 0,
    contentLength: 0, messageLen: 0, cseq: 0, timeout: 60, start: 0, methodSpan: [0, 0], uriSpan: [0, 0],
    reasonSpan: [0, 0], sessionSpan: [0, 0], transportSpan: [0, 0], specs: Array.from({ length: 4 }, emptySpec),
  };
}

const span = (off: number, len: number): Span => (len === 0 ? [0, 0] : [off, len]);

/** Thrown inside the parser with the status to return. */
class Fail {
  constructor(readonly code: number) {}
}
const fail = (code: number): never => {
  throw new Fail(code);
};

const TCHARS = "!#$%&'*+\\-.^_`|~0-9A-Za-z";
const TOKEN = new RegExp(`^[${TCHARS}]+$`);
const LWS = '[ \\t\\r\\n]';
const QUOTED = '"(?:\\\\[\\s\\S]|[^"\\\\])*"';
// A Transport parameter: name, optional "= value"; the value is quoted strings and other bytes
// except white space, ';', ',' and '"'.
const PARAM = new RegExp(`^([${TCHARS}]+)${LWS}*(?:=${LWS}*((?:${QUOTED}|[^ \\t\\r\\n;,"])+)${LWS}*)?$`);
const PROFILE = new RegExp(`^[${TCHARS}/]+$`);
// A Session parameter (no quoting there).
const SESSION_PARAM = new RegExp(`^([${TCHARS}]+)${LWS}*(?:=${LWS}*([^ \\t\\r\\n;]+)${LWS}*)?$`);
const HEADER_NAME = new RegExp(`^([${TCHARS}]+):`);
const ONE_QUOTED = new RegExp(`^${QUOTED}$`);
const ITEM_RUN = new RegExp(`(?:${QUOTED}|[^";,])*`, 'y');
const SPEC_RUN = new RegExp(`(?:${QUOTED}|[^",])*`, 'y');
const ENTRY_RUN = new RegExp(`(?:${QUOTED}|[^"/])*`, 'y');
const RANGE5 = /^(\d{1,5})(?:-(\d{1,5}))?$/;
const RANGE3 = /^(\d{1,3})(?:-(\d{1,3}))?$/;

function trimLws(text: string, off: number): { text: string; off: number } {
  const lead = /^[ \t\r\n]*/.exec(text)![0].length;
  const body = text.slice(lead).replace(/[ \t\r\n]+$/, '');
  return { text: body, off: off + lead };
}

// ---- addresses ----

function dottedQuad(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((x) => x <= 255) ? parts : null;
}

function hex(bytes: number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** IPv4 dotted quad -> ::ffff:a.b.c.d, IPv6 text (RFC 4291 2.2) -> 16 bytes; else null. */
export function parseAddress(s: string): { kind: 4 | 6; hex: string } | null {
  const q = dottedQuad(s);
  if (q) return { kind: 4, hex: hex([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...q]) };
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return null;
  const pieces = (x: string) => (x === '' ? [] : x.split(':'));
  const head = pieces(dbl >= 0 ? s.slice(0, dbl) : s);
  const tail = dbl >= 0 ? pieces(s.slice(dbl + 2)) : [];
  const all = [...head, ...tail];
  // Only the very last piece of the text may be a dotted quad.
  const lastIsEnd = dbl < 0 ? head.length > 0 : tail.length > 0;
  const words: number[][] = [];
  for (let i = 0; i < all.length; i++) {
    const p = all[i];
    if (/^[0-9A-Fa-f]{1,4}$/.test(p)) {
      words.push([parseInt(p, 16)]);
    } else if (i === all.length - 1 && lastIsEnd && dottedQuad(p)) {
      const v = dottedQuad(p)!;
      words.push([(v[0] << 8) | v[1], (v[2] << 8) | v[3]]);
    } else {
      return null;
    }
  }
  const headWords = words.slice(0, head.length).flat();
  const tailWords = words.slice(head.length).flat();
  const n = headWords.length + tailWords.length;
  if (dbl < 0 ? n !== 8 : n > 7) return null;
  const groups = [...headWords, ...new Array(8 - n).fill(0), ...tailWords];
  return { kind: 6, hex: hex(groups.flatMap((g) => [g >> 8, g & 255])) };
}

function hostSlot(a: Addr, host: string, off: number): void {
  a.host = span(off, host.length);
  const p = host.length ? parseAddress(host) : null;
  a.kind = p ? p.kind : 1;
  a.addr = p ? p.hex : ZERO_ADDR;
}

/** The inside of a value that is exactly one quoted string, else the value itself. */
function unquote(v: string, off: number): { text: string; off: number } {
  const m = ONE_QUOTED.exec(v);
  return m ? { text: v.slice(1, -1), off: off + 1 } : { text: v, off };
}

// ---- Transport ----

/** Where the piece starting at `from` ends: the next ',' (items: also ';') outside quotes. A quote
 * that never closes makes an item an error; a spec then runs to the end of the value (the error is
 * reported when its items get there, after the items before it were interpreted). */
function pieceEnd(v: string, from: number, item: boolean): number {
  const re = item ? ITEM_RUN : SPEC_RUN;
  re.lastIndex = from;
  re.exec(v);
  const end = re.lastIndex;
  if (end < v.length && v[end] === '"') {
    if (item) fail(STATUS.BAD_TRANSPORT);
    return v.length;
  }
  return end;
}

function portRange(v: string, digits: number, max: number): [number, number, boolean] {
  const m = (digits === 5 ? RANGE5 : RANGE3).exec(v);
  if (!m) fail(STATUS.BAD_NUMBER);
  const lo = Number(m![1]);
  const hi = m![2] === undefined ? 0 : Number(m![2]);
  if (lo > max || hi > max) fail(STATUS.BAD_NUMBER);
  return [lo, hi, m![2] !== undefined];
}

function addrEntry(a: Addr, raw: string, off: number): void {
  if (raw === '') fail(STATUS.BAD_TRANSPORT);
  const u = unquote(raw, off);
  let host = u.text;
  let hostOff = u.off;
  let port: string | null = null;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) fail(STATUS.BAD_TRANSPORT);
    const after = host.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) fail(STATUS.BAD_TRANSPORT);
    if (after !== '') port = after.slice(1);
    host = host.slice(1, close);
    hostOff += 1;
  } else if (host.split(':').length === 2) {
    port = host.slice(host.indexOf(':') + 1);
    host = host.slice(0, host.indexOf(':'));
  }
  if (port !== null) {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) fail(STATUS.BAD_NUMBER);
    a.port = Number(port);
    a.hasPort = 1;
  }
  hostSlot(a, host, hostOff);
}

function addrList(spec: Spec, first: number, v: string, off: number): void {
  // Entries separated by '/' outside quotes; the first two are RTP and RTCP.
  const entries: { text: string; off: number }[] = [];
  const re = ENTRY_RUN;
  let pos = 0;
  for (;;) {
    re.lastIndex = pos;
    re.exec(v);
    entries.push({ text: v.slice(pos, re.lastIndex), off: off + pos });
    if (re.lastIndex >= v.length || entries.length === 2) break;
    pos = re.lastIndex + 1;
  }
  entries.forEach((e, k) => addrEntry(spec.addrs[first + k], e.text, e.off));
}

function transportParam(spec: Spec, seen: Set<string>, name: string, value: string | undefined, voff: number): void {
  const n = name.toLowerCase();
  const known = ['unicast', 'multicast', 'destination', 'source', 'interleaved', 'ttl', 'port', 'client_port',
    'server_port', 'ssrc', 'mode', 'dest_addr', 'src_addr'];
  if (!known.includes(n)) return;
  const key = n === 'multicast' ? 'unicast' : n;
  if (key === 'unicast' && value !== undefined) fail(STATUS.BAD_TRANSPORT);
  if (key !== 'unicast' && key !== 'destination' && value === undefined) fail(STATUS.BAD_TRANSPORT);
  if (seen.has(key)) fail(STATUS.BAD_TRANSPORT);
  seen.add(key);
  if (key === 'unicast') {
    spec.cast = n === 'unicast' ? 1 : 2;
    return;
  }
  const u = unquote(value ?? '', voff);
  switch (n) {
    case 'destination':
    case 'source': {
      const slot = spec.addrs[n === 'destination' ? 0 : 1];
      if (value === undefined) {
        slot.kind = 1;
        return;
      }
      const br = /^\[(.*)\]$/s.exec(u.text);
      if (br) hostSlot(slot, br[1], u.off + 1);
      else hostSlot(slot, u.text, u.off);
      return;
    }
    case 'dest_addr':
      return addrList(spec, 2, value!, voff);
    case 'src_addr':
      return addrList(spec, 4, value!, voff);
    case 'client_port':
    case 'server_port':
    case 'port': {
      const [lo, hi, isRange] = portRange(u.text, 5, 65535);
      const bit = n === 'client_port' ? TFLAG.CLIENT_PORT : n === 'server_port' ? TFLAG.SERVER_PORT : TFLAG.PORT;
      spec.flags |= bit | (isRange ? bit * 2 : 0);
      if (n === 'client_port') spec.clientPort = [lo, hi];
      else if (n === 'server_port') spec.serverPort = [lo, hi];
      else spec.port = [lo, hi];
      return;
    }
    case 'interleaved': {
      const [lo, hi, isRange] = portRange(u.text, 3, 255);
      spec.flags |= TFLAG.INTERLEAVED | (isRange ? TFLAG.INTERLEAVED_RANGE : 0);
      spec.interleaved = [lo, hi];
      return;
    }
    case 'ttl': {
      if (!/^\d{1,3}$/.test(u.text) || Number(u.text) > 255) fail(STATUS.BAD_NUMBER);
      spec.ttl = Number(u.text);
      spec.flags |= TFLAG.TTL;
      return;
    }
    case 'ssrc': {
      if (!/^[0-9A-Fa-f]{1,8}(?:\/[0-9A-Fa-f]{1,8})*$/.test(u.text)) fail(STATUS.BAD_NUMBER);
      spec.ssrc = parseInt(u.text.split('/')[0], 16) >>> 0;
      spec.flags |= TFLAG.SSRC;
      return;
    }
    case 'mode': {
      const m = u.text.toLowerCase();
      spec.mode = m === 'play' ? 1 : m === 'record' || m === 'receive' ? 2 : 3;
      spec.modeSpan = span(u.off, u.text.length);
      return;
    }
  }
}

function transportSpec(spec: Spec, text: string, off: number): void {
  // `text` is the spec between commas, `off` its offset. Items are separated by ';' outside quotes.
  let pos = 0;
  let first = true;
  const seen = new Set<string>();
  for (;;) {
    const end = pieceEnd(text, pos, true);
    const item = trimLws(text.slice(pos, end), off + pos);
    if (first) {
      if (!PROFILE.test(item.text)) fail(STATUS.BAD_TRANSPORT);
      const parts = item.text.split('/');
      if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) fail(STATUS.BAD_TRANSPORT);
      const [proto, profile, lower] = parts.map((p) => p.toLowerCase());
      spec.profile = proto === 'rtp' ? (['avp', 'avpf', 'savp', 'savpf'].indexOf(profile) + 1) : 0;
      spec.lower = lower === undefined || lower === 'udp' ? 1 : lower === 'tcp' ? 2 : 3;
      spec.profileSpan = span(item.off, item.text.length);
      first = false;
    } else if (item.text !== '') {
      const m = PARAM.exec(item.text);
      if (!m) fail(STATUS.BAD_TRANSPORT);
      const value = m![2];
      const voff = value === undefined ? 0 : item.off + item.text.length - value.length - /[ \t\r\n]*$/.exec(item.text)![0].length;
      transportParam(spec, seen, m![1], value, voff);
    }
    if (end >= text.length) break;
    pos = end + 1;
  }
}

function transportHeader(r: RtspResult, v: string, off: number): void {
  r.transportSpan = span(off, v.length);
  if (v === '') fail(STATUS.BAD_TRANSPORT);
  let pos = 0;
  for (let i = 0; ; i++) {
    if (i === MAX_SPECS) {
      r.flags |= FLAG.MORE_SPECS;
      break;
    }
    const end = pieceEnd(v, pos, false);
    const t = trimLws(v.slice(pos, end), off + pos);
    const spec = r.specs[i];
    r.specCount = i + 1;
    spec.span = span(t.off, t.text.length);
    transportSpec(spec, t.text, t.off);
    if (end >= v.length) break;
    pos = end + 1;
  }
}

// ---- Session ----

function sessionHeader(r: RtspResult, v: string, off: number): void {
  const id = /^[^; \t\r\n]*/.exec(v)![0];
  if (id.length === 0 || id.length > 256 || !/^[\x21-\x7e]+$/.test(id)) fail(STATUS.BAD_SESSION);
  r.sessionSpan = span(off, id.length);
  const rest = v.slice(id.length);
  if (/^[ \t\r\n]*$/.test(rest)) return;
  if (!/^[ \t\r\n]*;/.test(rest)) fail(STATUS.BAD_SESSION);
  const params = rest.replace(/^[ \t\r\n]*;/, '').split(';');
  for (const p of params) {
    const t = p.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (t === '') continue;
    const m = SESSION_PARAM.exec(t);
    if (!m) fail(STATUS.BAD_SESSION);
    if (m![1].toLowerCase() !== 'timeout') continue;
    if (m![2] === undefined || r.flags & FLAG.TIMEOUT) fail(STATUS.BAD_SESSION);
    if (!/^\d{1,9}$/.test(m![2])) fail(STATUS.BAD_NUMBER);
    r.timeout = Number(m![2]);
    r.flags |= FLAG.TIMEOUT;
  }
}

// ---- the message ----

function number9(v: string): number {
  if (!/^\d{1,9}$/.test(v)) fail(STATUS.BAD_NUMBER);
  return Number(v);
}

interface Line {
  off: number;
  text: string;
}

function startLine(r: RtspResult, l: Line): void {
  r.start = l.off;
  const t = l.text;
  if (t.startsWith('RTSP/')) {
    const m = /^([^ \t]*)[ \t]*([^ \t]*)[ \t]*(.*?)[ \t]*$/s.exec(t)!;
    const version = m[1] === 'RTSP/1.0' ? 10 : m[1] === 'RTSP/2.0' ? 20 : 0;
    if (!version) fail(STATUS.VERSION);
    if (!/^\d{3}$/.test(m[2])) fail(STATUS.START_LINE);
    r.kind = 2;
    r.version = version;
    r.code = Number(m[2]);
    const reasonOff = t.length - m[3].length - /[ \t]*$/.exec(t)![0].length;
    r.reasonSpan = span(l.off + reasonOff, m[3].length);
    return;
  }
  const m = /^([^ \t]+)[ \t]+([^ \t]+)[ \t]+([^ \t]+)[ \t]*$/.exec(t);
  if (!m || !TOKEN.test(m[1])) fail(STATUS.START_LINE);
  const version = m![3] === 'RTSP/1.0' ? 10 : m![3] === 'RTSP/2.0' ? 20 : 0;
  if (!version) fail(STATUS.VERSION);
  const idx = (METHODS as readonly string[]).indexOf(m![1]);
  r.kind = 1;
  r.method = idx > 0 ? idx : METHOD_OTHER;
  r.version = version;
  r.methodSpan = span(l.off, m![1].length);
  const uriOff = t.indexOf(m![2], m![1].length);
  r.uriSpan = span(l.off + uriOff, m![2].length);
}

/** Parses one message from `bytes` (which start at its first byte). */
export function parseRtsp(bytes: Uint8Array): RtspResult {
  const r = emptyResult();
  try {
    r.status = parseInto(r, bytes);
  } catch (e) {
    if (!(e instanceof Fail)) throw e;
    r.status = e.code;
  }
  return r;
}

function parseInto(r: RtspResult, bytes: Uint8Array): number {
  const limit = Math.min(bytes.length, MAX_HEADER);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, limit).toString('latin1');
  // 1. Framing: split the header block into lines.
  const lines: Line[] = [];
  let ls = 0;
  let headerEnd = -1;
  while (headerEnd < 0) {
    const lf = text.indexOf('\n', ls);
    const overlong = ls + MAX_LINE < limit && (lf < 0 || lf > ls + MAX_LINE);
    if (overlong) return STATUS.LINE_TOO_LONG;
    if (lf < 0) return bytes.length >= MAX_HEADER ? STATUS.HEADER_TOO_LARGE : STATUS.NEED_MORE;
    const content = text.slice(ls, lf).replace(/\r$/, '');
    if (content === '') {
      if (lines.length > 0) headerEnd = lf + 1;
    } else {
      lines.push({ off: ls, text: content });
      if (lines.length > MAX_LINES) return STATUS.TOO_MANY_LINES;
    }
    ls = lf + 1;
  }
  // 2. Interpretation, line by line.
  startLine(r, lines[0]);
  const seen = new Set<string>();
  let cur: { name: string; off: number; end: number } | null = null;
  const finish = () => {
    if (!cur) return;
    const name = cur.name.toLowerCase();
    if (!['cseq', 'session', 'content-length', 'transport'].includes(name)) return;
    const v = trimLws(text.slice(cur.off, cur.end), cur.off);
    if (seen.has(name)) fail(STATUS.DUPLICATE);
    seen.add(name);
    if (name === 'cseq') {
      r.flags |= FLAG.CSEQ;
      r.cseq = number9(v.text);
    } else if (name === 'content-length') {
      r.flags |= FLAG.CONTENT_LENGTH;
      r.contentLength = number9(v.text);
    } else if (name === 'session') {
      r.flags |= FLAG.SESSION;
      sessionHeader(r, v.text, v.off);
    } else {
      r.flags |= FLAG.TRANSPORT;
      transportHeader(r, v.text, v.off);
    }
  };
  for (const l of lines.slice(1)) {
    if (l.text[0] === ' ' || l.text[0] === '\t') {
      if (!cur) fail(STATUS.HEADER_LINE);
      cur!.end = l.off + l.text.length;
      continue;
    }
    finish();
    const m = HEADER_NAME.exec(l.text);
    if (!m) fail(STATUS.HEADER_LINE);
    r.headers++;
    cur = { name: m![1], off: l.off + m![0].length, end: l.off + l.text.length };
  }
  finish();
  r.headerLen = headerEnd;
  r.messageLen = headerEnd + r.contentLength;
  return r.messageLen <= bytes.length ? r.messageLen : STATUS.NEED_MORE;
}

// ---- the WASM record, decoded into the same shape ----

/** Reads the result record at `ptr` of the module's memory. */
export function readRecord(mem: Uint8Array, ptr: number): RtspResult {
  const dv = new DataView(mem.buffer, mem.byteOffset);
  const u8 = (o: number) => dv.getUint8(ptr + o);
  const u16 = (o: number) => dv.getUint16(ptr + o, true);
  const u32 = (o: number) => dv.getUint32(ptr + o, true);
  const sp = (o: number): Span => [u16(o), u16(o + 2)];
  const addrHex = (o: number) => {
    if ((u32(o) | u32(o + 4) | u32(o + 8) | u32(o + 12)) === 0) return ZERO_ADDR;
    let h = '';
    for (let i = 0; i < 16; i++) h += HEX[u8(o + i)];
    return h;
  };
  const specs: Spec[] = [];
  for (let i = 0; i < 4; i++) {
    const b = 64 + i * 192;
    const addrs: Addr[] = [];
    for (let k = 0; k < 6; k++) {
      const a = b + 40 + k * 24;
      addrs.push({ kind: u8(a + 6), host: sp(a), port: u16(a + 4), hasPort: u8(a + 7), addr: addrHex(a + 8) });
    }
    specs.push({
      flags: u32(b), profile: u8(b + 4), lower: u8(b + 5), cast: u8(b + 6), mode: u8(b + 7), span: sp(b + 8),
      profileSpan: sp(b + 12), clientPort: [u16(b + 16), u16(b + 18)], serverPort: [u16(b + 20), u16(b + 22)],
      port: [u16(b + 24), u16(b + 26)], interleaved: [u8(b + 28), u8(b + 29)], ttl: u8(b + 30), ssrc: u32(b + 32),
      modeSpan: sp(b + 36), addrs,
    });
  }
  return {
    status: dv.getInt32(ptr, true), kind: u8(4), method: u8(5), version: u8(6), specCount: u8(7), code: u16(8),
    headers: u16(10), flags: u32(12), headerLen: u32(16), contentLength: u32(20), messageLen: u32(24), cseq: u32(28),
    timeout: u32(32), start: u16(36), methodSpan: sp(40), uriSpan: sp(44), reasonSpan: sp(48), sessionSpan: sp(52),
    transportSpan: sp(56), specs,
  };
}

export interface RtspStats {
  messages: number;
  needMore: number;
  errors: number;
  byCode: number[]; // byCode[k] counts status -k
}

export function readStats(mem: Uint8Array, ptr: number): RtspStats {
  const dv = new DataView(mem.buffer, mem.byteOffset);
  const q = (i: number) => Number(dv.getBigUint64(ptr + STATS_OFFSET + 8 * i, true));
  return { messages: q(0), needMore: q(1), errors: q(2), byCode: Array.from({ length: 13 }, (_, k) => q(3 + k)) };
}

/** What two results must agree on: everything for a parsed header block, the status otherwise
 * (the record's other fields are unspecified after an error or before the block is complete). */
export function comparable(r: RtspResult): Partial<RtspResult> {
  if (r.status < 0 || (r.status === 0 && r.headerLen === 0)) return { status: r.status };
  return r;
}

/** The text of a span of `bytes`. */
export function spanText(bytes: Uint8Array, s: Span): string {
  return Buffer.from(bytes.subarray(s[0], s[0] + s[1])).toString('latin1');
}
