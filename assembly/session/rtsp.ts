// RTSP message tokenizer (RFC 2326 RTSP/1.0, RFC 7826 RTSP/2.0), zero-copy over linear memory.
//
// rtspParse(ptr, len, out) reads the bytes [ptr, ptr+len) that start at the beginning of an RTSP
// message and fills the fixed result record at `out` (RESULT_SIZE bytes, layout below and in
// docs/abi.md "RTSP tokenizer"): the request or status line, CSeq, Session (id and timeout),
// Content-Length, and every Transport spec (up to 4) with ports, addresses, interleaved channels,
// ssrc, mode and ttl. Text comes back as spans (u16 offset, u16 length) relative to `ptr`; an
// empty span is (0, 0). Nothing is copied and nothing is allocated: the parse state is a handful
// of module globals, the output is stores into the record.
//
// Hostile input is bounded: only the first MAX_HEADER bytes are ever read, a line may be at most
// MAX_LINE bytes, the header block at most MAX_LINES lines; numbers have a digit limit; there is
// no recursion and every loop advances through the input, so time is linear in min(len, 8 KiB).
// Nothing is read outside [ptr, ptr+len) and nothing written outside [out, out+RESULT_SIZE).
//
// The grammar accepted (the reference test/ref/rtsp.ts implements the same description):
// - lines end with LF, an optional CR before it is not part of the line; leading empty lines are
//   skipped (RFC 7230 3.5); the first empty line after the start line ends the header block;
// - a line starting with SP or HT continues the previous header's value (RFC 2326 4.1 / RFC 822
//   folding); values are trimmed of SP, HT, CR and LF, which also count as white space inside;
// - header names are tokens (RFC 7230 tchar) compared case-insensitively; methods and the
//   version are case-sensitive; Transport parameter names and values compare case-insensitively.
// The first error in byte order wins, with one rule on top: errors of the header block's framing
// (line too long, too many lines, block too large) and an incomplete block are decided first.

// ---- limits ----
/** The header block (start line through the empty line) must end within this many bytes. */
export const MAX_HEADER: u32 = 8192;
/** Longest line, not counting its LF (a CR before the LF counts). */
export const MAX_LINE: u32 = 4096;
/** Lines in the header block: the start line plus header and continuation lines. */
export const MAX_LINES: u32 = 64;
/** Transport specs parsed; further comma-separated specs are ignored (flag F_MORE_SPECS). */
export const MAX_SPECS: u32 = 4;
/** Longest session id (RFC 7826: 1*256 characters). */
export const MAX_SESSION_ID: u32 = 256;

// ---- status codes (the return value; also stored at R_STATUS) ----
// > 0: a complete message of that many bytes (header block + Content-Length)
export const NEED_MORE: i32 = 0; // no complete header block yet, or the body is not all there
export const ERR_START_LINE: i32 = -1; // malformed request or status line
export const ERR_VERSION: i32 = -2; // version other than RTSP/1.0 or RTSP/2.0
export const ERR_HEADER_LINE: i32 = -3; // no ':', a name that is not a token, folding with no header
export const ERR_LINE_TOO_LONG: i32 = -4; // a line longer than MAX_LINE
export const ERR_TOO_MANY_LINES: i32 = -5; // more than MAX_LINES lines in the header block
export const ERR_HEADER_TOO_LARGE: i32 = -6; // no end of the header block within MAX_HEADER bytes
export const ERR_BAD_NUMBER: i32 = -7; // a number that is not decimal/hex digits, too long or too big
export const ERR_DUPLICATE: i32 = -8; // CSeq, Session, Content-Length or Transport given twice
export const ERR_BAD_SESSION: i32 = -9; // malformed Session header
export const ERR_BAD_TRANSPORT: i32 = -10; // malformed Transport header
export const ERR_ARGS: i32 = -11; // the message or the record lies outside linear memory

// ---- result record (RESULT_SIZE bytes at `out`) ----
export const RESULT_SIZE: u32 = 1024;
export const R_STATUS: u32 = 0; // i32, the return value
export const R_KIND: u32 = 4; // u8: 0 none, 1 request, 2 response
export const R_METHOD: u32 = 5; // u8: METHOD_* (0 for responses)
export const R_VERSION: u32 = 6; // u8: 10 or 20
export const R_SPECS: u32 = 7; // u8: transport specs parsed (0..4)
export const R_CODE: u32 = 8; // u16: status code of a response
export const R_HEADERS: u32 = 10; // u16: header fields (continuation lines not counted)
export const R_FLAGS: u32 = 12; // u32: F_*
export const R_HEADER_LEN: u32 = 16; // u32: header block bytes incl. the empty line (0: incomplete)
export const R_CONTENT_LEN: u32 = 20; // u32
export const R_MESSAGE_LEN: u32 = 24; // u32: header block + Content-Length
export const R_CSEQ: u32 = 28; // u32
export const R_TIMEOUT: u32 = 32; // u32: Session ;timeout=N, 60 when not given
export const R_START: u32 = 36; // u16: offset of the start line (after skipped empty lines)
export const R_METHOD_SPAN: u32 = 40; // span of the method token
export const R_URI_SPAN: u32 = 44; // span of the request URI
export const R_REASON_SPAN: u32 = 48; // span of the reason phrase
export const R_SESSION_SPAN: u32 = 52; // span of the session id (without parameters)
export const R_TRANSPORT_SPAN: u32 = 56; // span of the whole Transport value
export const R_SPEC0: u32 = 64; // SPEC_SIZE-byte transport spec records
export const SPEC_SIZE: u32 = 192;
export const R_STATS: u32 = 864; // u64 counters, accumulated (never cleared by rtspParse)
export const S_MESSAGES: u32 = 0; // status > 0
export const S_NEED_MORE: u32 = 8; // status 0
export const S_ERRORS: u32 = 16; // status < 0
export const S_BY_CODE: u32 = 24; // u64[13]: entry k counts status -k (k = 1..11)

export const F_CSEQ: u32 = 1;
export const F_SESSION: u32 = 2;
export const F_CONTENT_LENGTH: u32 = 4;
export const F_TRANSPORT: u32 = 8;
export const F_TIMEOUT: u32 = 16; // the Session header carried ;timeout=
export const F_MORE_SPECS: u32 = 32; // more than MAX_SPECS transport specs: the rest ignored

// Transport spec record (SPEC_SIZE bytes at out + R_SPEC0 + i * SPEC_SIZE)
export const T_FLAGS: u32 = 0; // u32: TF_*
export const T_PROFILE: u32 = 4; // u8: 0 other, 1 RTP/AVP, 2 RTP/AVPF, 3 RTP/SAVP, 4 RTP/SAVPF
export const T_LOWER: u32 = 5; // u8: 1 UDP (also when absent), 2 TCP, 3 other
export const T_CAST: u32 = 6; // u8: 0 not given, 1 unicast, 2 multicast
export const T_MODE: u32 = 7; // u8: 0 not given, 1 PLAY, 2 RECORD (or "receive"), 3 other
export const T_SPAN: u32 = 8; // span of the spec text between commas, trimmed
export const T_PROFILE_SPAN: u32 = 12; // span of "RTP/AVP/UDP"
export const T_CLIENT_PORT: u32 = 16; // u16 lo, u16 hi
export const T_SERVER_PORT: u32 = 20; // u16 lo, u16 hi
export const T_PORT: u32 = 24; // u16 lo, u16 hi (multicast port=)
export const T_INTERLEAVED: u32 = 28; // u8 lo, u8 hi
export const T_TTL: u32 = 30; // u8
export const T_SSRC: u32 = 32; // u32 (the first one of an RFC 7826 ssrc list)
export const T_MODE_SPAN: u32 = 36; // span of the mode value, without quotes
export const T_ADDR0: u32 = 40; // ADDR_SLOTS address slots of ADDR_SIZE bytes
export const ADDR_SIZE: u32 = 24;
export const ADDR_SLOTS: u32 = 6; // destination, source, dest_addr RTP, dest_addr RTCP, src_addr RTP, src_addr RTCP
// address slot: 0 span of the host text (no quotes, no brackets), 4 u16 port, 6 u8 kind,
// 7 u8 port given, 8 address[16] (IPv4 as ::ffff:a.b.c.d)
export const A_PORT: u32 = 4;
export const A_KIND: u32 = 6; // 0 absent, 1 given but not an IP literal (host name, empty), 4 IPv4, 6 IPv6
export const A_HAS_PORT: u32 = 7;
export const A_ADDR: u32 = 8;

export const TF_CLIENT_PORT: u32 = 1;
export const TF_CLIENT_PORT_RANGE: u32 = 2;
export const TF_SERVER_PORT: u32 = 4;
export const TF_SERVER_PORT_RANGE: u32 = 8;
export const TF_PORT: u32 = 16;
export const TF_PORT_RANGE: u32 = 32;
export const TF_INTERLEAVED: u32 = 64;
export const TF_INTERLEAVED_RANGE: u32 = 128;
export const TF_TTL: u32 = 256;
export const TF_SSRC: u32 = 512;

// Methods (R_METHOD)
export const METHOD_OPTIONS: u32 = 1;
export const METHOD_DESCRIBE: u32 = 2;
export const METHOD_ANNOUNCE: u32 = 3;
export const METHOD_SETUP: u32 = 4;
export const METHOD_PLAY: u32 = 5;
export const METHOD_PAUSE: u32 = 6;
export const METHOD_TEARDOWN: u32 = 7;
export const METHOD_GET_PARAMETER: u32 = 8;
export const METHOD_SET_PARAMETER: u32 = 9;
export const METHOD_REDIRECT: u32 = 10;
export const METHOD_RECORD: u32 = 11;
export const METHOD_PLAY_NOTIFY: u32 = 12;
export const METHOD_OTHER: u32 = 13;

// ---- characters ----
const LF: u32 = 10;
const CR: u32 = 13;
const SP: u32 = 32;
const HT: u32 = 9;
const DQUOTE: u32 = 34;
const SEMI: u32 = 59;
const COMMA: u32 = 44;
const SLASH: u32 = 47;
const COLON: u32 = 58;
const EQUALS: u32 = 61;
const BACKSLASH: u32 = 92;

// RFC 7230 tchar ("!#$%&'*+-.^_`|~", digits, letters) as a 128-bit set: bit c of LO (c < 64) or
// bit c-64 of HI. Two shifts instead of a 256-byte table: the module has no static data.
const TCHAR_LO: u64 = 0x03ff6cfa00000000;
const TCHAR_HI: u64 = 0x57ffffffc7fffffe;

@inline function isTchar(c: u32): bool {
  return c < 64 ? <bool>((TCHAR_LO >> <u64>c) & 1) : c < 128 ? <bool>((TCHAR_HI >> <u64>(c - 64)) & 1) : false;
}
@inline function isSpHt(c: u32): bool {
  return c == SP || c == HT;
}
/** Linear white space inside (possibly folded) values: SP, HT, CR, LF. */
@inline function isLws(c: u32): bool {
  return c == SP || c == HT || c == CR || c == LF;
}
@inline function isDigit(c: u32): bool {
  return c - 48 < 10;
}
/** Value of a hex digit, or 16. */
@inline function hexVal(c: u32): u32 {
  if (c - 48 < 10) return c - 48;
  const l = c | 0x20;
  if (l - 97 < 6) return l - 87;
  return 16;
}

// ---- parse state (module globals: no objects) ----
let B: usize = 0; // the message's first byte
let OUT: usize = 0; // the result record
let hdrKind: u32 = 0; // header being collected: H_NONE before the first one
let hdrVs: u32 = 0; // its value: from after the colon ...
let hdrVe: u32 = 0; // ... to the end of its last (continuation) line
let seenHdrs: u32 = 0; // F_* bits of the headers seen, for ERR_DUPLICATE
let specSeen: u32 = 0; // P_* bits of the Transport parameters seen in the current spec
let SPEC: usize = 0; // the current spec record

const H_NONE: u32 = 0;
const H_OTHER: u32 = 1;
const H_CSEQ: u32 = 2;
const H_SESSION: u32 = 3;
const H_CONTENT_LENGTH: u32 = 4;
const H_TRANSPORT: u32 = 5;

@inline function at(o: u32): u32 {
  return <u32>load<u8>(B + <usize>o);
}

@inline function putSpan(dst: usize, off: u32, n: u32): void {
  // Every empty span is (0, 0), so records compare equal whatever an empty token's position.
  store<u32>(dst, n == 0 ? 0 : (off | (n << 16)));
}

// ---- name matching: the first and last w bytes of a name (w = 8, 4, 2 or 1 by length) compared
// with two constants, so any length costs two loads. Case-insensitive matches OR 0x20 into every
// byte; that is exact for letters, and the names with '-' or '_' are only ever compared after
// the bytes were checked to be tchars (no tchar ORs into '-' or '_' except itself).

function eqAt(p: usize, n: u32, a: u64, b: u64, fold: u64): bool {
  if (n >= 8) return (load<u64>(p) | fold) == a && (load<u64>(p + <usize>n - 8) | fold) == b;
  if (n >= 4) return (<u64>load<u32>(p) | (fold & 0xffffffff)) == a && (<u64>load<u32>(p + <usize>n - 4) | (fold & 0xffffffff)) == b;
  if (n >= 2) return (<u64>load<u16>(p) | (fold & 0xffff)) == a && (<u64>load<u16>(p + <usize>n - 2) | (fold & 0xffff)) == b;
  if (n == 1) return (<u64>load<u8>(p) | (fold & 0xff)) == a;
  return false;
}
const FOLD: u64 = 0x2020202020202020;

@inline function ieq(o: u32, n: u32, a: u64, b: u64): bool {
  return eqAt(B + <usize>o, n, a, b, FOLD);
}
@inline function ceq(o: u32, n: u32, a: u64, b: u64): bool {
  return eqAt(B + <usize>o, n, a, b, 0);
}

/** METHOD_* of the method token [o, o+n) (case-sensitive, RFC 2326 6.1). */
function methodOf(o: u32, n: u32): u32 {
  switch (n) {
    case 4: if (ceq(o, n, 0x59414c50, 0x59414c50)) return METHOD_PLAY; break; // PLAY
    case 5:
      if (ceq(o, n, 0x55544553, 0x50555445)) return METHOD_SETUP; // SETUP
      if (ceq(o, n, 0x53554150, 0x45535541)) return METHOD_PAUSE; // PAUSE
      break;
    case 6: if (ceq(o, n, 0x4f434552, 0x44524f43)) return METHOD_RECORD; break; // RECORD
    case 7: if (ceq(o, n, 0x4954504f, 0x534e4f49)) return METHOD_OPTIONS; break; // OPTIONS
    case 8: {
      const w = load<u64>(B + <usize>o);
      if (w == 0x4542495243534544) return METHOD_DESCRIBE; // DESCRIBE
      if (w == 0x45434e554f4e4e41) return METHOD_ANNOUNCE; // ANNOUNCE
      if (w == 0x4e574f4452414554) return METHOD_TEARDOWN; // TEARDOWN
      if (w == 0x5443455249444552) return METHOD_REDIRECT; // REDIRECT
      break;
    }
    case 11: if (ceq(o, n, 0x544f4e5f59414c50, 0x594649544f4e5f59)) return METHOD_PLAY_NOTIFY; break; // PLAY_NOTIFY
    case 13:
      if (ceq(o, n, 0x415241505f544547, 0x524554454d415241)) return METHOD_GET_PARAMETER; // GET_PARAMETER
      if (ceq(o, n, 0x415241505f544553, 0x524554454d415241)) return METHOD_SET_PARAMETER; // SET_PARAMETER
      break;
  }
  return METHOD_OTHER;
}

/** 10 for "RTSP/1.0", 20 for "RTSP/2.0", else 0. */
function versionOf(o: u32, n: u32): u32 {
  if (n != 8) return 0;
  const w = load<u64>(B + <usize>o);
  if (w == 0x302e312f50535452) return 10;
  if (w == 0x302e322f50535452) return 20;
  return 0;
}

/** H_* of the header name [o, o+n) (a token, case-insensitive). */
function headerOf(o: u32, n: u32): u32 {
  switch (n) {
    case 4: if (ieq(o, n, 0x71657363, 0x71657363)) return H_CSEQ; break; // cseq
    case 7: if (ieq(o, n, 0x73736573, 0x6e6f6973)) return H_SESSION; break; // session
    case 9: if (ieq(o, n, 0x726f70736e617274, 0x74726f70736e6172)) return H_TRANSPORT; break; // transport
    case 14: if (ieq(o, n, 0x2d746e65746e6f63, 0x6874676e656c2d74)) return H_CONTENT_LENGTH; break; // content-length
  }
  return H_OTHER;
}

// ---- numbers ----

/** Decimal [s, e) with 1..maxDigits digits, or -1. */
function dec(s: u32, e: u32, maxDigits: u32): i64 {
  if (e <= s || e - s > maxDigits) return -1;
  let v: i64 = 0;
  for (let i = s; i < e; i++) {
    const d = at(i) - 48;
    if (d >= 10) return -1;
    v = v * 10 + <i64>d;
  }
  return v;
}

/** "a" or "a-b", each 1..maxDigits digits and <= max. Writes lo, hi (and whether hi was given) to
 * the globals below; returns false on anything else. */
let rangeLo: u32 = 0;
let rangeHi: u32 = 0;
let rangeHasHi: bool = false;
function range(s: u32, e: u32, maxDigits: u32, max: i64): bool {
  let dash = s;
  while (dash < e && at(dash) != 45) dash++; // '-'
  const lo = dec(s, dash, maxDigits);
  if (lo < 0 || lo > max) return false;
  rangeLo = <u32>lo;
  rangeHi = 0;
  rangeHasHi = false;
  if (dash < e) {
    const hi = dec(dash + 1, e, maxDigits);
    if (hi < 0 || hi > max) return false;
    rangeHi = <u32>hi;
    rangeHasHi = true;
  }
  return true;
}

// ---- addresses ----

/** Dotted quad [s, e) (four parts of 1..3 digits, each <= 255) as a u32, or -1. */
function quad(s: u32, e: u32): i64 {
  let pos = s;
  let v: u32 = 0;
  for (let part: u32 = 0; part < 4; part++) {
    if (part > 0) {
      if (pos >= e || at(pos) != 46) return -1; // '.'
      pos++;
    }
    let digits: u32 = 0;
    let x: u32 = 0;
    while (pos < e && digits < 4 && isDigit(at(pos))) {
      x = x * 10 + at(pos) - 48;
      digits++;
      pos++;
    }
    if (digits == 0 || digits > 3 || x > 255) return -1;
    v = (v << 8) | x;
  }
  return pos == e ? <i64>v : -1;
}

/** Dotted quad [s, e) into 16 bytes at dst as ::ffff:a.b.c.d. */
function ipv4(s: u32, e: u32, dst: usize): bool {
  const q = quad(s, e);
  if (q < 0) return false;
  store<u64>(dst, 0);
  store<u32>(dst, 0xffff0000, 8);
  store<u32>(dst, bswap<u32>(<u32>q), 12);
  return true;
}

/** RFC 4291 2.2 text form [s, e): eight groups of 1..4 hex digits, one "::" standing for one or
 * more zero groups, optionally a dotted quad as the last 32 bits. Written to dst (16 bytes);
 * on failure dst holds garbage (the caller clears it). */
function ipv6(s: u32, e: u32, dst: usize): bool {
  let pos = s;
  let groups: u32 = 0;
  let gap: i32 = -1; // group index where "::" stands
  if (e - s >= 2 && at(s) == COLON && at(s + 1) == COLON) {
    gap = 0;
    pos = s + 2;
  }
  while (pos < e) {
    const gs = pos;
    let v: u32 = 0;
    let digits: u32 = 0;
    while (pos < e && digits < 4) {
      const h = hexVal(at(pos));
      if (h >= 16) break;
      v = (v << 4) | h;
      digits++;
      pos++;
    }
    if (pos < e && at(pos) == 46) {
      // '.': this group was the first part of a dotted quad, which must end the address.
      if (digits == 0 || groups > 6) return false;
      const q = quad(gs, e);
      if (q < 0) return false;
      store<u32>(dst + 2 * <usize>groups, bswap<u32>(<u32>q));
      groups += 2;
      break;
    }
    if (digits == 0 || groups == 8) return false;
    store<u16>(dst + 2 * <usize>groups, bswap<u16>(<u16>v));
    groups++;
    if (pos == e) break;
    if (at(pos) != COLON) return false;
    pos++;
    if (pos < e && at(pos) == COLON) {
      if (gap >= 0) return false;
      gap = <i32>groups;
      pos++;
    } else if (pos == e) {
      return false; // a trailing single ':'
    }
  }
  if (gap < 0) return groups == 8;
  if (groups > 7) return false;
  // Move the groups after "::" to the end and zero the gap.
  const tail = groups - <u32>gap;
  const from = dst + 2 * <usize>gap;
  const to = dst + 16 - 2 * <usize>tail;
  memory.copy(to, from, 2 * <usize>tail);
  memory.fill(from, 0, to - from);
  return true;
}

/** Fills address slot `slot` with the host text [s, e): an IPv4 or IPv6 literal is decoded,
 * anything else (a host name, nothing) is kept as text only (kind 1). */
function putHost(slot: usize, s: u32, e: u32): void {
  putSpan(slot, s, e - s);
  let kind: u32 = 1;
  if (e > s) {
    if (ipv4(s, e, slot + A_ADDR)) kind = 4;
    else if (ipv6(s, e, slot + A_ADDR)) kind = 6;
  }
  if (kind == 1) {
    store<u64>(slot + A_ADDR, 0);
    store<u64>(slot + A_ADDR, 0, 8);
  }
  store<u8>(slot + A_KIND, <u8>kind);
}

// ---- quoted strings (RFC 7826 quoted-string with quoted-pair) ----

/** From the '"' at `pos`, the position after the closing quote, or -1 when it is not closed
 * before `e`. A backslash escapes the next byte. */
function skipQuoted(pos: u32, e: u32): i32 {
  pos++;
  while (pos < e) {
    const c = at(pos);
    if (c == BACKSLASH) {
      pos += 2;
      continue;
    }
    if (c == DQUOTE) return <i32>(pos + 1);
    pos++;
  }
  return -1;
}

// The unquoted extent of a value: its inside when the whole value is one quoted string.
let uqS: u32 = 0;
let uqE: u32 = 0;
function unquote(s: u32, e: u32): void {
  if (e - s >= 2 && at(s) == DQUOTE && skipQuoted(s, e) == <i32>e) {
    uqS = s + 1;
    uqE = e - 1;
  } else {
    uqS = s;
    uqE = e;
  }
}

// ---- Transport (RFC 2326 12.39, RFC 7826 18.54) ----

// Parameters seen in the current spec (a second one is ERR_BAD_TRANSPORT).
const P_CAST: u32 = 1;
const P_DESTINATION: u32 = 2;
const P_SOURCE: u32 = 4;
const P_INTERLEAVED: u32 = 8;
const P_TTL: u32 = 16;
const P_PORT: u32 = 32;
const P_CLIENT_PORT: u32 = 64;
const P_SERVER_PORT: u32 = 128;
const P_SSRC: u32 = 256;
const P_MODE: u32 = 512;
const P_DEST_ADDR: u32 = 1024;
const P_SRC_ADDR: u32 = 2048;

/** One entry of a dest_addr/src_addr list into `slot`: "host:port", "[v6]:port", ":port",
 * "host", quoted or not. A host with more than one ':' and no brackets is an IPv6 literal
 * without port. */
function addrEntry(slot: usize, s: u32, e: u32): i32 {
  if (e == s) return ERR_BAD_TRANSPORT;
  unquote(s, e);
  const us = uqS, ue = uqE;
  let hs = us, he = ue;
  let ps: u32 = 0, pe: u32 = 0;
  let hasPort = false;
  if (ue > us && at(us) == 91) { // '['
    let j = us + 1;
    while (j < ue && at(j) != 93) j++; // ']'
    if (j == ue) return ERR_BAD_TRANSPORT;
    hs = us + 1;
    he = j;
    if (j + 1 < ue) {
      if (at(j + 1) != COLON) return ERR_BAD_TRANSPORT;
      ps = j + 2;
      pe = ue;
      hasPort = true;
    }
  } else {
    let colons: u32 = 0;
    let last: u32 = 0;
    for (let i = us; i < ue; i++) {
      if (at(i) == COLON) {
        colons++;
        last = i;
      }
    }
    if (colons == 1) {
      he = last;
      ps = last + 1;
      pe = ue;
      hasPort = true;
    }
  }
  if (hasPort) {
    const port = dec(ps, pe, 5);
    if (port < 0 || port > 65535) return ERR_BAD_NUMBER;
    store<u16>(slot + A_PORT, <u16>port);
    store<u8>(slot + A_HAS_PORT, 1);
  }
  putHost(slot, hs, he);
  return 0;
}

/** dest_addr / src_addr: entries separated by '/' (outside quotes); the first two (RTP, RTCP) go
 * to slots `slot` and `slot + ADDR_SIZE`, the rest is ignored. */
function addrList(slot: usize, s: u32, e: u32): i32 {
  let pos = s;
  for (let k: u32 = 0; k < 2; k++) {
    const es = pos;
    while (pos < e) {
      const c = at(pos);
      if (c == DQUOTE) {
        const q = skipQuoted(pos, e);
        if (q < 0) return ERR_BAD_TRANSPORT; // cannot happen: the value's quotes were checked
        pos = <u32>q;
        continue;
      }
      if (c == SLASH) break;
      pos++;
    }
    const r = addrEntry(slot + <usize>k * ADDR_SIZE, es, pos);
    if (r < 0) return r;
    if (pos >= e) break;
    pos++; // '/'
  }
  return 0;
}

/** source= / destination=: one host, quoted or not, IPv6 possibly in brackets. */
function addrValue(slot: usize, s: u32, e: u32): void {
  unquote(s, e);
  let hs = uqS, he = uqE;
  if (he - hs >= 2 && at(hs) == 91 && at(he - 1) == 93) {
    hs++;
    he--;
  }
  putHost(slot, hs, he);
}

/** ssrc=: one or more '/'-separated hex numbers of 1..8 digits; the first is kept. */
function ssrcValue(s: u32, e: u32): i32 {
  let pos = s;
  let first = true;
  while (true) {
    let v: u32 = 0;
    let digits: u32 = 0;
    while (pos < e && at(pos) != SLASH) {
      const h = hexVal(at(pos));
      if (h >= 16 || digits == 8) return ERR_BAD_NUMBER;
      v = (v << 4) | h;
      digits++;
      pos++;
    }
    if (digits == 0) return ERR_BAD_NUMBER;
    if (first) store<u32>(SPEC + T_SSRC, v);
    first = false;
    if (pos >= e) return 0;
    pos++; // '/'
  }
  return 0;
}

/** Marks parameter `bit` seen; false when it already was. */
@inline function once(bit: u32): bool {
  if (specSeen & bit) return false;
  specSeen |= bit;
  return true;
}

@inline function setFlags(bits: u32): void {
  store<u32>(SPEC + T_FLAGS, load<u32>(SPEC + T_FLAGS) | bits);
}

/** A port or channel range parameter into the u16 (or u8) pair at `field`. */
function rangeParam(field: u32, wide: bool, bit: u32, rangeBit: u32, s: u32, e: u32): i32 {
  unquote(s, e);
  if (!range(uqS, uqE, wide ? 5 : 3, wide ? 65535 : 255)) return ERR_BAD_NUMBER;
  if (wide) {
    store<u16>(SPEC + field, <u16>rangeLo);
    store<u16>(SPEC + field + 2, <u16>rangeHi);
  } else {
    store<u8>(SPEC + field, <u8>rangeLo);
    store<u8>(SPEC + field + 1, <u8>rangeHi);
  }
  setFlags(rangeHasHi ? bit | rangeBit : bit);
  return 0;
}

/** Interprets one parameter name [ns, ne) with its raw value [vs, ve) (hasValue false: none). */
function transportParam(ns: u32, ne: u32, hasValue: bool, vs: u32, ve: u32): i32 {
  const n = ne - ns;
  let which: u32 = 0;
  switch (n) {
    case 3: if (ieq(ns, n, 0x7474, 0x6c74)) which = P_TTL; break; // ttl
    case 4:
      if (ieq(ns, n, 0x74726f70, 0x74726f70)) which = P_PORT; // port
      else if (ieq(ns, n, 0x63727373, 0x63727373)) which = P_SSRC; // ssrc
      else if (ieq(ns, n, 0x65646f6d, 0x65646f6d)) which = P_MODE; // mode
      break;
    case 6: if (ieq(ns, n, 0x72756f73, 0x65637275)) which = P_SOURCE; break; // source
    case 7: if (ieq(ns, n, 0x63696e75, 0x74736163)) which = P_CAST; break; // unicast
    case 8: if (ieq(ns, n, 0x726464617f637273, 0x726464617f637273)) which = P_SRC_ADDR; break; // src_addr
    case 9:
      if (ieq(ns, n, 0x73616369746c756d, 0x7473616369746c75)) which = P_CAST | 0x10000; // multicast
      else if (ieq(ns, n, 0x6464617f74736564, 0x726464617f747365)) which = P_DEST_ADDR; // dest_addr
      break;
    case 11:
      if (ieq(ns, n, 0x74616e6974736564, 0x6e6f6974616e6974)) which = P_DESTINATION; // destination
      else if (ieq(ns, n, 0x61656c7265746e69, 0x64657661656c7265)) which = P_INTERLEAVED; // interleaved
      else if (ieq(ns, n, 0x707f746e65696c63, 0x74726f707f746e65)) which = P_CLIENT_PORT; // client_port
      else if (ieq(ns, n, 0x707f726576726573, 0x74726f707f726576)) which = P_SERVER_PORT; // server_port
      break;
  }
  if (which == 0) return 0; // other parameters are checked for syntax only
  const bit = which & 0xffff;
  // unicast/multicast take no value, destination may go without one (RFC 2326), all others need one.
  if (bit == P_CAST) {
    if (hasValue) return ERR_BAD_TRANSPORT;
  } else if (bit != P_DESTINATION && !hasValue) {
    return ERR_BAD_TRANSPORT;
  }
  if (!once(bit)) return ERR_BAD_TRANSPORT;
  switch (bit) {
    case P_CAST: store<u8>(SPEC + T_CAST, which > 0xffff ? 2 : 1); return 0;
    case P_DESTINATION: {
      const slot = SPEC + T_ADDR0;
      if (hasValue) addrValue(slot, vs, ve);
      else store<u8>(slot + A_KIND, 1);
      return 0;
    }
    case P_SOURCE: addrValue(SPEC + T_ADDR0 + ADDR_SIZE, vs, ve); return 0;
    case P_DEST_ADDR: return addrList(SPEC + T_ADDR0 + 2 * ADDR_SIZE, vs, ve);
    case P_SRC_ADDR: return addrList(SPEC + T_ADDR0 + 4 * ADDR_SIZE, vs, ve);
    case P_CLIENT_PORT: return rangeParam(T_CLIENT_PORT, true, TF_CLIENT_PORT, TF_CLIENT_PORT_RANGE, vs, ve);
    case P_SERVER_PORT: return rangeParam(T_SERVER_PORT, true, TF_SERVER_PORT, TF_SERVER_PORT_RANGE, vs, ve);
    case P_PORT: return rangeParam(T_PORT, true, TF_PORT, TF_PORT_RANGE, vs, ve);
    case P_INTERLEAVED: return rangeParam(T_INTERLEAVED, false, TF_INTERLEAVED, TF_INTERLEAVED_RANGE, vs, ve);
    case P_TTL: {
      unquote(vs, ve);
      const t = dec(uqS, uqE, 3);
      if (t < 0 || t > 255) return ERR_BAD_NUMBER;
      store<u8>(SPEC + T_TTL, <u8>t);
      setFlags(TF_TTL);
      return 0;
    }
    case P_SSRC: {
      unquote(vs, ve);
      const r = ssrcValue(uqS, uqE);
      if (r < 0) return r;
      setFlags(TF_SSRC);
      return 0;
    }
    case P_MODE: {
      // RFC 2326 quotes it (mode="PLAY"), VLC does not (mode=play); ffmpeg's server answers a
      // RECORD setup with mode=receive.
      unquote(vs, ve);
      const s = uqS, m = uqE - uqS;
      let mode: u32 = 3;
      if (m == 4 && ieq(s, m, 0x79616c70, 0x79616c70)) mode = 1; // play
      else if (m == 6 && ieq(s, m, 0x6f636572, 0x64726f63)) mode = 2; // record
      else if (m == 7 && ieq(s, m, 0x65636572, 0x65766965)) mode = 2; // receive
      store<u8>(SPEC + T_MODE, <u8>mode);
      putSpan(SPEC + T_MODE_SPAN, s, m);
      return 0;
    }
  }
  return 0;
}

/** transport-protocol "/" profile ["/" lower-transport], e.g. RTP/AVP, RTP/AVPF/TCP. */
function transportProfile(s: u32, e: u32): i32 {
  let a = s;
  while (a < e && at(a) != SLASH) a++;
  if (a == s || a >= e) return ERR_BAD_TRANSPORT;
  let b = a + 1;
  while (b < e && at(b) != SLASH) b++;
  if (b == a + 1) return ERR_BAD_TRANSPORT;
  let lower: u32 = 1;
  if (b < e) {
    let c = b + 1;
    while (c < e && at(c) != SLASH) c++;
    if (c == b + 1 || c < e) return ERR_BAD_TRANSPORT;
    const n = c - b - 1;
    lower = 3;
    if (n == 3 && ieq(b + 1, 3, 0x6475, 0x7064)) lower = 1; // udp
    else if (n == 3 && ieq(b + 1, 3, 0x6374, 0x7063)) lower = 2; // tcp
  }
  let profile: u32 = 0;
  if (a - s == 3 && ieq(s, 3, 0x7472, 0x7074)) { // rtp
    const p = a + 1, n = b - a - 1;
    if (n == 3 && ieq(p, n, 0x7661, 0x7076)) profile = 1; // avp
    else if (n == 4 && ieq(p, n, 0x66707661, 0x66707661)) profile = 2; // avpf
    else if (n == 4 && ieq(p, n, 0x70766173, 0x70766173)) profile = 3; // savp
    else if (n == 5 && ieq(p, n, 0x70766173, 0x66707661)) profile = 4; // savpf
  }
  store<u8>(SPEC + T_PROFILE, <u8>profile);
  store<u8>(SPEC + T_LOWER, <u8>lower);
  putSpan(SPEC + T_PROFILE_SPAN, s, e - s);
  return 0;
}

/** One transport spec from `pos` into record `idx`; returns the position of the ',' that ends it
 * (or `e`), or an error. */
function transportSpec(idx: u32, pos: u32, e: u32): i32 {
  SPEC = OUT + R_SPEC0 + <usize>idx * SPEC_SIZE;
  specSeen = 0;
  while (pos < e && isLws(at(pos))) pos++;
  const ss = pos;
  while (pos < e) {
    const c = at(pos);
    if (!isTchar(c) && c != SLASH) break;
    pos++;
  }
  const pe = pos;
  if (pe == ss) return ERR_BAD_TRANSPORT;
  while (pos < e && isLws(at(pos))) pos++;
  if (pos < e && at(pos) != SEMI && at(pos) != COMMA) return ERR_BAD_TRANSPORT;
  let r = transportProfile(ss, pe);
  if (r < 0) return r;
  while (pos < e && at(pos) == SEMI) {
    pos++;
    while (pos < e && isLws(at(pos))) pos++;
    if (pos >= e) break;
    if (at(pos) == SEMI || at(pos) == COMMA) continue; // empty parameter (";;", trailing ';')
    const ns = pos;
    while (pos < e && isTchar(at(pos))) pos++;
    const ne = pos;
    if (ne == ns) return ERR_BAD_TRANSPORT;
    while (pos < e && isLws(at(pos))) pos++;
    let hasValue = false;
    let vs: u32 = 0, ve: u32 = 0;
    if (pos < e && at(pos) == EQUALS) {
      pos++;
      while (pos < e && isLws(at(pos))) pos++;
      vs = pos;
      while (pos < e) {
        const c = at(pos);
        if (c == DQUOTE) {
          const q = skipQuoted(pos, e);
          if (q < 0) return ERR_BAD_TRANSPORT;
          pos = <u32>q;
          continue;
        }
        if (isLws(c) || c == SEMI || c == COMMA) break;
        pos++;
      }
      ve = pos;
      if (ve == vs) return ERR_BAD_TRANSPORT;
      hasValue = true;
      while (pos < e && isLws(at(pos))) pos++;
    }
    if (pos < e && at(pos) != SEMI && at(pos) != COMMA) return ERR_BAD_TRANSPORT;
    r = transportParam(ns, ne, hasValue, vs, ve);
    if (r < 0) return r;
  }
  let se = pos;
  while (se > ss && isLws(at(se - 1))) se--;
  putSpan(SPEC + T_SPAN, ss, se - ss);
  return <i32>pos;
}

function transportHeader(s: u32, e: u32): i32 {
  putSpan(OUT + R_TRANSPORT_SPAN, s, e - s);
  if (e == s) return ERR_BAD_TRANSPORT;
  let pos = s;
  let count: u32 = 0;
  while (true) {
    if (count == MAX_SPECS) {
      store<u32>(OUT + R_FLAGS, load<u32>(OUT + R_FLAGS) | F_MORE_SPECS);
      break;
    }
    store<u8>(OUT + R_SPECS, <u8>(count + 1));
    const r = transportSpec(count, pos, e);
    if (r < 0) return r;
    count++;
    if (<u32>r >= e) break;
    pos = <u32>r + 1; // after ','
  }
  return 0;
}

// ---- Session (RFC 2326 12.37, RFC 7826 18.49) ----

function sessionHeader(s: u32, e: u32): i32 {
  let pos = s;
  while (pos < e && at(pos) != SEMI && !isLws(at(pos))) pos++;
  const n = pos - s;
  if (n == 0 || n > MAX_SESSION_ID) return ERR_BAD_SESSION;
  for (let i = s; i < pos; i++) {
    const c = at(i);
    if (c < 0x21 || c > 0x7e) return ERR_BAD_SESSION; // visible ASCII only
  }
  putSpan(OUT + R_SESSION_SPAN, s, n);
  while (pos < e && isLws(at(pos))) pos++;
  while (pos < e) {
    if (at(pos) != SEMI) return ERR_BAD_SESSION;
    pos++;
    while (pos < e && isLws(at(pos))) pos++;
    if (pos >= e || at(pos) == SEMI) continue; // empty parameter
    const ns = pos;
    while (pos < e && isTchar(at(pos))) pos++;
    const ne = pos;
    if (ne == ns) return ERR_BAD_SESSION;
    while (pos < e && isLws(at(pos))) pos++;
    let hasValue = false;
    let vs: u32 = 0, ve: u32 = 0;
    if (pos < e && at(pos) == EQUALS) {
      pos++;
      while (pos < e && isLws(at(pos))) pos++;
      vs = pos;
      while (pos < e && at(pos) != SEMI && !isLws(at(pos))) pos++;
      ve = pos;
      if (ve == vs) return ERR_BAD_SESSION;
      hasValue = true;
      while (pos < e && isLws(at(pos))) pos++;
    }
    if (pos < e && at(pos) != SEMI) return ERR_BAD_SESSION;
    if (ne - ns == 7 && ieq(ns, 7, 0x656d6974, 0x74756f65)) { // timeout
      const flags = load<u32>(OUT + R_FLAGS);
      if (!hasValue || (flags & F_TIMEOUT)) return ERR_BAD_SESSION;
      const t = dec(vs, ve, 9);
      if (t < 0) return ERR_BAD_NUMBER;
      store<u32>(OUT + R_TIMEOUT, <u32>t);
      store<u32>(OUT + R_FLAGS, flags | F_TIMEOUT);
    }
  }
  return 0;
}

// ---- lines ----

/** Interprets the header collected so far (its value may span continuation lines). */
function finishHeader(): i32 {
  const kind = hdrKind;
  if (kind <= H_OTHER) return 0;
  let s = hdrVs, e = hdrVe;
  while (s < e && isLws(at(s))) s++;
  while (e > s && isLws(at(e - 1))) e--;
  const bit: u32 = kind == H_CSEQ ? F_CSEQ : kind == H_SESSION ? F_SESSION : kind == H_CONTENT_LENGTH ? F_CONTENT_LENGTH : F_TRANSPORT;
  if (seenHdrs & bit) return ERR_DUPLICATE;
  seenHdrs |= bit;
  store<u32>(OUT + R_FLAGS, load<u32>(OUT + R_FLAGS) | bit);
  switch (kind) {
    case H_CSEQ: {
      const v = dec(s, e, 9); // RFC 7826: CSeq = 1*9DIGIT
      if (v < 0) return ERR_BAD_NUMBER;
      store<u32>(OUT + R_CSEQ, <u32>v);
      return 0;
    }
    case H_CONTENT_LENGTH: {
      const v = dec(s, e, 9); // < 1e9: header + body always fits the i32 status
      if (v < 0) return ERR_BAD_NUMBER;
      store<u32>(OUT + R_CONTENT_LEN, <u32>v);
      return 0;
    }
    case H_SESSION: return sessionHeader(s, e);
    default: return transportHeader(s, e);
  }
}

/** Request-Line = Method SP Request-URI SP RTSP-Version; Status-Line = RTSP-Version SP
 * Status-Code SP Reason-Phrase. Runs of SP/HT separate the parts. */
function startLine(s: u32, e: u32): i32 {
  store<u16>(OUT + R_START, <u16>s);
  let pos = s;
  if (e - s >= 5 && load<u32>(B + <usize>s) == 0x50535452 && at(s + 4) == SLASH) { // "RTSP/"
    while (pos < e && !isSpHt(at(pos))) pos++;
    const version = versionOf(s, pos - s);
    if (version == 0) return ERR_VERSION;
    while (pos < e && isSpHt(at(pos))) pos++;
    const cs = pos;
    while (pos < e && !isSpHt(at(pos))) pos++;
    if (pos - cs != 3) return ERR_START_LINE;
    const code = dec(cs, pos, 3);
    if (code < 0) return ERR_START_LINE;
    while (pos < e && isSpHt(at(pos))) pos++;
    let re = e;
    while (re > pos && isSpHt(at(re - 1))) re--;
    store<u8>(OUT + R_KIND, 2);
    store<u8>(OUT + R_VERSION, <u8>version);
    store<u16>(OUT + R_CODE, <u16>code);
    putSpan(OUT + R_REASON_SPAN, pos, re - pos);
    return 0;
  }
  while (pos < e && !isSpHt(at(pos))) pos++;
  const me = pos;
  if (me == s) return ERR_START_LINE;
  for (let i = s; i < me; i++) if (!isTchar(at(i))) return ERR_START_LINE;
  while (pos < e && isSpHt(at(pos))) pos++;
  const us = pos;
  while (pos < e && !isSpHt(at(pos))) pos++;
  const ue = pos;
  while (pos < e && isSpHt(at(pos))) pos++;
  const vs = pos;
  while (pos < e && !isSpHt(at(pos))) pos++;
  const ve = pos;
  while (pos < e && isSpHt(at(pos))) pos++;
  if (ue == us || ve == vs || pos != e) return ERR_START_LINE;
  const version = versionOf(vs, ve - vs);
  if (version == 0) return ERR_VERSION;
  store<u8>(OUT + R_KIND, 1);
  store<u8>(OUT + R_METHOD, <u8>methodOf(s, me - s));
  store<u8>(OUT + R_VERSION, <u8>version);
  putSpan(OUT + R_METHOD_SPAN, s, me - s);
  putSpan(OUT + R_URI_SPAN, us, ue - us);
  return 0;
}

/** A header line [s, e) (not empty; CR/LF excluded). */
function headerLine(s: u32, e: u32): i32 {
  const c = at(s);
  if (isSpHt(c)) { // continuation of the previous header's value
    if (hdrKind == H_NONE) return ERR_HEADER_LINE;
    hdrVe = e;
    return 0;
  }
  const r = finishHeader();
  if (r < 0) return r;
  let i = s;
  while (i < e && isTchar(at(i))) i++;
  if (i == s || i == e || at(i) != COLON) return ERR_HEADER_LINE;
  store<u16>(OUT + R_HEADERS, load<u16>(OUT + R_HEADERS) + 1);
  hdrKind = headerOf(s, i - s);
  hdrVs = i + 1;
  hdrVe = e;
  return 0;
}

// ---- the message ----

/** Offset of the first LF in [from, end), or `end`. SIMD: 16 bytes per compare; otherwise 8 per
 * step with the SWAR zero-byte test (the lowest flagged byte is always a true match). */
function findLf(from: u32, end: u32): u32 {
  let i = from;
  if (ASC_FEATURE_SIMD) {
    const lf = i8x16.splat(10);
    while (i + 16 <= end) {
      const m = i8x16.bitmask(i8x16.eq(v128.load(B + <usize>i), lf));
      if (m != 0) return i + ctz<u32>(m);
      i += 16;
    }
  } else {
    while (i + 8 <= end) {
      const x = load<u64>(B + <usize>i) ^ 0x0a0a0a0a0a0a0a0a;
      const z = (x - 0x0101010101010101) & ~x & 0x8080808080808080;
      if (z != 0) return i + (<u32>ctz<u64>(z) >> 3);
      i += 8;
    }
  }
  while (i < end && at(i) != LF) i++;
  return i;
}

function parse(len: u32): i32 {
  hdrKind = H_NONE;
  seenHdrs = 0;
  const limit = len < MAX_HEADER ? len : MAX_HEADER;
  let ls: u32 = 0; // start of the current line
  let lines: u32 = 0;
  let err: i32 = 0; // first interpretation error; framing decides first
  while (true) {
    // A line may hold MAX_LINE bytes before its LF: look no further than that.
    const lineCap = ls + MAX_LINE + 1;
    const end = lineCap < limit ? lineCap : limit;
    const i = findLf(ls, end);
    if (i == end) {
      if (end == lineCap) return ERR_LINE_TOO_LONG;
      return len >= MAX_HEADER ? ERR_HEADER_TOO_LARGE : NEED_MORE;
    }
    let e = i;
    if (e > ls && at(e - 1) == CR) e--;
    if (e == ls) { // empty line
      if (lines == 0) { // leading empty lines are skipped
        ls = i + 1;
        continue;
      }
      const hdrEnd = i + 1;
      if (err == 0) err = finishHeader();
      if (err < 0) return err;
      const body = load<u32>(OUT + R_CONTENT_LEN);
      const total = hdrEnd + body;
      store<u32>(OUT + R_HEADER_LEN, hdrEnd);
      store<u32>(OUT + R_MESSAGE_LEN, total);
      return total <= len ? <i32>total : NEED_MORE;
    }
    lines++;
    if (lines > MAX_LINES) return ERR_TOO_MANY_LINES;
    if (err == 0) err = lines == 1 ? startLine(ls, e) : headerLine(ls, e);
    ls = i + 1;
  }
  return NEED_MORE;
}

/** Parses one message; see the file comment. Never traps: pointers outside memory give ERR_ARGS. */
export function rtspParse(p: usize, len: u32, out: usize): i32 {
  const memBytes = <u64>memory.size() << 16;
  if (<u64>out + <u64>RESULT_SIZE > memBytes) return ERR_ARGS;
  let r: i32;
  if (<u64>p + <u64>len > memBytes) {
    memory.fill(out, 0, R_STATS);
    r = ERR_ARGS;
  } else {
    B = p;
    OUT = out;
    memory.fill(out, 0, R_STATS);
    store<u32>(out + R_TIMEOUT, 60); // RFC 2326 12.37: the default session timeout
    r = parse(len);
  }
  store<i32>(out + R_STATUS, r);
  const st = out + R_STATS;
  if (r > 0) store<u64>(st + S_MESSAGES, load<u64>(st + S_MESSAGES) + 1);
  else if (r == 0) store<u64>(st + S_NEED_MORE, load<u64>(st + S_NEED_MORE) + 1);
  else {
    store<u64>(st + S_ERRORS, load<u64>(st + S_ERRORS) + 1);
    const k = st + S_BY_CODE + 8 * <usize>(-r);
    store<u64>(k, load<u64>(k) + 1);
  }
  return r;
}

/** Benchmarks and bulk use: `count` slots of `stride` bytes from `p`, each a u32 length followed
 * by that many message bytes, parsed in turn into the record at `out` (overwritten each time,
 * its stats accumulate). Returns how many were complete messages, or ERR_ARGS. */
export function rtspParseMany(p: usize, count: u32, stride: u32, out: usize): i32 {
  const memBytes = <u64>memory.size() << 16;
  if (<u64>p + <u64>count * <u64>stride > memBytes || stride < 4 && count > 0) return ERR_ARGS;
  let ok: i32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    const slot = p + <usize>i * <usize>stride;
    const len = load<u32>(slot);
    if (len > stride - 4) return ERR_ARGS;
    if (rtspParse(slot + 4, len, out) > 0) ok++;
  }
  return ok;
}

/** Tests: the address text [p, p+len) as the tokenizer reads hosts: 4 (IPv4, written to out as
 * ::ffff:a.b.c.d), 6 (IPv6) or 0 (neither; out zeroed). Brackets are not stripped here. */
export function rtspParseAddr(p: usize, len: u32, out: usize): u32 {
  const memBytes = <u64>memory.size() << 16;
  if (<u64>p + <u64>len > memBytes || <u64>out + 16 > memBytes || len > MAX_HEADER) return 0;
  B = p;
  if (ipv4(0, len, out)) return 4;
  if (ipv6(0, len, out)) return 6;
  store<u64>(out, 0);
  store<u64>(out, 0, 8);
  return 0;
}
