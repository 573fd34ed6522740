// RTSP NAT traversal for VIPs with method nat and policy session (what netfilter's nf_nat_rtsp and
// nf_conntrack_seqadj do for a NAT box): the client only ever talks to the VIP, so wherever the
// server's messages name the backend's address, the client must read the VIP's instead.
//
// What is rewritten, in messages from the server side (backend -> client, or VIP -> client in a
// capture taken at the entry point), when the text is an IP literal equal to the control
// connection's backend address:
//  - Transport: source=<addr> and RTSP 2.0 src_addr="<addr>:port" (both slots); destination= and
//    dest_addr name the client and stay;
//  - the host of every rtsp://, rtsps:// and rtspu:// URL in the header block (Content-Base,
//    Content-Location, RTP-Info url=, Location, ...), IPv6 inside its brackets;
//  - in an SDP body (one starting "v=0"), the address of c= and o= lines and URLs (a=control:),
//    with Content-Length changed to match, when the whole message is in the segment at hand.
// Client requests are never rewritten, so only the server's direction changes length.
//
// How. Inspection (reassembly.ts) sees the bytes as the server sent them and calls natMessage for
// every message it parses (natPartial for an unfinished header block: its complete lines, and a
// cut last line up to its last ';' or ',', go through the tokenizer on a copy). Each address
// found is an edit in the server's sequence space: [seq, seq + old length) -> the VIP's text. An
// edit is made only in the packet that carries its bytes for the first time and only when no byte
// after it was forwarded before (sentMax): otherwise the client already holds those bytes, or
// later bytes at offsets the edit would change (out-of-order arrival), and the edit is counted
// rtsp-nat-missed. After inspection natServerFinish applies the packet's edits, from the last to
// the first: each moves the headers and the payload before it back into the headroom (growing) or
// forward (shrinking); the frame's end never moves. IPv4 total length / IPv6 payload length and
// the IPv4 header checksum are updated incrementally (RFC 1624). The TCP checksum is summed again
// over the whole segment: bytes after a change moved by any number of positions (an odd shift
// swaps the bytes of every 16-bit word) so no local difference exists; the difference of the old
// and new segment's sums is then applied as an RFC 1624 update, so a checksum that was wrong
// stays wrong (a corrupt segment is not made valid). A packet grows by at most NAT_GROW_MAX
// bytes (headroom_needed() = 14 + NAT_GROW_MAX for such configs): a message whose edits would
// exceed it keeps its text (rtsp-nat-missed).
//
// Sequence numbers, as nf_conntrack_seqadj: per control connection the server direction keeps
// {pos: server sequence number of the last edit, before: offset of bytes up to it, after: offset
// of bytes past it}. Every later server segment gets seq += offset (after when its seq is past
// pos), every client segment ack -= offset and its SACK blocks likewise (translated before
// inspection, so the reassembly of the server's direction sees the server's numbers); checksums
// incrementally, arithmetic mod 2^32. The last LOG_N edits are also logged (sequence number, old
// and new length, replacement): a retransmitted segment carrying a logged edit gets it again
// (rtsp-nat-reapplied), and a segment or acknowledgment before pos is translated exactly by the
// log. An acknowledgment or SACK edge inside a rewritten text maps to its start (an ack or right
// edge) or end (a left edge) in the server's numbers. The state lives in the connection's
// reassembly slot (bytes 128..255), which is only freed when its flow closes (a slot is taken
// over only when its flow is gone or expired); a connection that found no slot is not rewritten.
import { natEditsPtr, natTextPtr, natTmpPtr, NAT_EDITS, NAT_TMP, NAT_GROW_MAX, rtspResultPtr } from '../layout';
import {
  count, C_RTSP_NAT_REWRITES, C_RTSP_NAT_REAPPLIED, C_RTSP_NAT_MISSED, C_RTSP_NAT_RESIZED, C_RTSP_NAT_BYTES_ADDED,
  C_RTSP_NAT_BYTES_REMOVED, C_SEQADJ_ADJUSTED,
} from '../counters';
import {
  rtspParse, rtspParseAddr, R_FLAGS, R_SPECS, R_SPEC0, SPEC_SIZE, R_HEADER_LEN, R_CONTENT_LEN, R_MESSAGE_LEN,
  T_ADDR0, ADDR_SIZE, A_KIND, A_ADDR, F_CONTENT_LENGTH,
} from './rtsp';
import { backendPtr, vipPtr, B_ADDR, V_ADDR, V_FAMILY } from '../lb/config';
import { sumBytes, adjust, delta } from '../net/csum';
import { pL3, pL4, pL3Len, pFamily, pHasL4, pFragment, pRouting, parsedMoved } from '../net/parse';
import { fFlags, FL_SEQADJ } from '../lb/flowtable';
import { reasmFind, reasmCurSlot, reasmLastSlot, reasmClearLast } from './reassembly';

// The NAT record: bytes 128..255 of a reassembly slot.
export const S_NAT: usize = 128;
const N_FLAGS: usize = 0; // u8 NF_*
const N_LOGN: usize = 1; // u8 logged edits (0..LOG_N)
const N_LOGW: usize = 2; // u8 ring index the next edit is logged at
const N_POS: usize = 4; // u32 server sequence number of the last edit's first byte
const N_BEFORE: usize = 8; // i32 offset of bytes up to pos
const N_AFTER: usize = 12; // i32 offset of bytes after pos
const N_SENT: usize = 16; // u32 end of the highest server byte forwarded
const N_LOGBASE: usize = 20; // i32 offset before the oldest logged edit
const N_LOG: usize = 32; // LOG_N entries of LOG_SIZE bytes
const NF_SENT: u32 = 1; // N_SENT is set
const NF_EDITED: u32 = 2; // an edit was made: offsets and the log are in use
const LOG_N: u32 = 8;
const LOG_SIZE: usize = 12;
// log entry: 0 seq u32 | 4 old length u8 | 5 new length u8 | 6 kind u8 | 8 value u32
// edit list entry (16 bytes): 0 seq u32 | 4 old length u8 | 5 new length u8 | 6 kind u8 |
//   7 replayed u8 | 8 value u32 | 12 message tag u32
const K_ADDR: u32 = 1; // the VIP's address text
const K_NUMBER: u32 = 2; // decimal `value` (Content-Length)

const TCP_SYN: u32 = 2;
const TCP_ACK: u32 = 16;

// The packet at hand.
let nOn: bool = false; // a control packet of a NAT session VIP
let nCollect: bool = false; // a server segment whose payload may be edited
let nSegSeq: u32 = 0; // server sequence number of the payload's first byte
let nSegPtr: usize = 0; // the payload
let nSegLen: u32 = 0; // its bytes (all captured when nCollect)
let nReal: u32 = 0; // its bytes on the wire
let nPayOff: u32 = 0; // payload offset from the frame start
let nBackend: usize = 0; // the backend's address (16 bytes)
let nVip: usize = 0; // the VIP's record
let nFam: u32 = 0; // 4 | 6
let nCount: u32 = 0; // edits in the list
let nGrow: u32 = 0; // sum of the list's positive deltas
let nTag: u32 = 0; // current message's tag
let nTextLen: u32 = 0; // VIP text length (0: not formatted yet)

@inline function sdiff(a: u32, b: u32): i32 {
  return <i32>(a - b);
}

@inline function editPtr(i: u32): usize {
  return natEditsPtr + (<usize>i << 4);
}

@inline function logPtr(rec: usize, i: u32): usize {
  // i-th oldest entry
  const w = <u32>load<u8>(rec + N_LOGW), n = <u32>load<u8>(rec + N_LOGN);
  return rec + N_LOG + <usize>((w - n + i) & (LOG_N - 1)) * LOG_SIZE;
}

@inline function entryDelta(e: usize): i32 {
  return <i32>load<u8>(e + 5) - <i32>load<u8>(e + 4);
}

/** Decimal digits of v. */
function digits(v: u32): u32 {
  let n: u32 = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

function writeDecimal(p: usize, v: u32): u32 {
  const n = digits(v);
  for (let i = n; i > 0; i--) {
    store<u8>(p + <usize>i - 1, <u8>(48 + v % 10));
    v /= 10;
  }
  return n;
}

@inline function hexDigit(x: u32): u32 {
  return x < 10 ? 48 + x : 87 + x;
}

/** The VIP's address as text (dotted quad, or RFC 5952 IPv6) at natTextPtr; returns its length. */
function formatVip(): u32 {
  const a = nVip + V_ADDR;
  const out = natTextPtr;
  let o: u32 = 0;
  if (nFam == 4) {
    for (let i: u32 = 0; i < 4; i++) {
      if (i) store<u8>(out + o++, 46);
      o += writeDecimal(out + o, <u32>load<u8>(a + 12 + i));
    }
    return o;
  }
  // The longest run of two or more zero groups (the first of equal runs) becomes "::".
  let best: i32 = -1, bestLen: u32 = 1;
  for (let i: u32 = 0; i < 8; ) {
    if (load<u16>(a + (i << 1)) != 0) {
      i++;
      continue;
    }
    let k = i;
    while (k < 8 && load<u16>(a + (k << 1)) == 0) k++;
    if (k - i > bestLen) {
      best = <i32>i;
      bestLen = k - i;
    }
    i = k;
  }
  for (let i: u32 = 0; i < 8; i++) {
    if (best >= 0 && i == <u32>best) {
      store<u8>(out + o++, 58);
      store<u8>(out + o++, 58);
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && !(best >= 0 && i == <u32>best + bestLen)) store<u8>(out + o++, 58);
    const g = <u32>bswap<u16>(load<u16>(a + (i << 1)));
    let started = false;
    for (let s: i32 = 12; s >= 0; s -= 4) {
      const x = (g >> <u32>s) & 15;
      if (x || started || s == 0) {
        store<u8>(out + o++, <u8>hexDigit(x));
        started = true;
      }
    }
  }
  return o;
}

/** Whether the 16 bytes at p are the backend's address. */
@inline function isBackend(p: usize): bool {
  return load<u64>(p) == load<u64>(nBackend) && load<u64>(p, 8) == load<u64>(nBackend, 8);
}

/** Whether the text [p, p+n) is an IP literal of the VIP's family naming the backend. */
function textIsBackend(p: usize, n: u32): bool {
  if (n == 0 || n > 45) return false;
  const tmp = natTextPtr + 48;
  return rtspParseAddr(p, n, tmp) == nFam && isBackend(tmp);
}

// ---------------------------------------------------------------------------------------------
// The packet

/**
 * Starts a control packet of any session VIP (on = NAT method). For a server segment the payload
 * [start, end) of the frame at data may be edited; a client segment's ack and SACK blocks are
 * translated into the server's numbers here, before inspection.
 */
export function natPacket(on: bool, data: usize, caplen: u32, fromClient: bool, flow: usize, j: u32, vip: u32, start: u32, end: u32): void {
  nOn = on;
  nCollect = false;
  nCount = 0;
  nGrow = 0;
  nTextLen = 0;
  reasmClearLast();
  if (!on) return;
  nBackend = backendPtr(j) + B_ADDR;
  nVip = vipPtr(vip);
  nFam = <u32>load<u8>(nVip + V_FAMILY);
  if (!pHasL4 || pL4 + 20 > caplen) return;
  const th = data + pL4;
  const flags = <u32>load<u8>(th + 13);
  if (fromClient) {
    if (<u32>load<u8>(fFlags(flow)) & FL_SEQADJ) clientAdjust(data, caplen, flow, flags);
    return;
  }
  nSegSeq = bswap<u32>(load<u32>(th + 4)) + (flags & TCP_SYN ? 1 : 0);
  nPayOff = start;
  nSegPtr = data + start;
  nSegLen = end > start ? end - start : 0;
  const ipEnd = pL3 + pL3Len;
  nReal = ipEnd > start ? ipEnd - start : 0;
  // Only whole segments are edited: the TCP sum needs every byte, and a fragment's rest is elsewhere.
  nCollect = nSegLen > 0 && !pFragment && !pRouting && ipEnd <= caplen && nSegLen == nReal && pL4 + 18 <= caplen;
}

/** A client segment of a connection with edits: ack and SACK edges into the server's numbers. */
function clientAdjust(data: usize, caplen: u32, flow: usize, flags: u32): void {
  const slot = reasmFind(flow);
  if (!slot) return;
  const rec = slot + S_NAT;
  if (!(<u32>load<u8>(rec + N_FLAGS) & NF_EDITED)) return;
  const th = data + pL4;
  const cs = th + 16;
  let changed = false;
  if (flags & TCP_ACK) {
    const a = bswap<u32>(load<u32>(th + 8));
    const b = mapBack(rec, a, false);
    if (a != b) {
      put32(th, 8, b, cs);
      changed = true;
    }
  }
  const hl = (<u32>load<u8>(th + 12) >> 4) << 2;
  if (hl > 20 && pL4 + hl <= caplen) {
    let o: u32 = 20;
    while (o < hl) {
      const kind = <u32>load<u8>(th + o);
      if (kind == 0) break;
      if (kind == 1) {
        o++;
        continue;
      }
      if (o + 1 >= hl) break;
      const len = <u32>load<u8>(th + o + 1);
      if (len < 2 || o + len > hl) break;
      if (kind == 5 && len >= 10 && ((len - 2) & 7) == 0) {
        for (let q = o + 2; q + 8 <= o + len; q += 8) {
          const l = get32(th + q), r = get32(th + q + 4);
          const nl = mapBack(rec, l, true), nr = mapBack(rec, r, false);
          if (nl != l) {
            put32(th, q, nl, cs);
            changed = true;
          }
          if (nr != r) {
            put32(th, q + 4, nr, cs);
            changed = true;
          }
        }
      }
      o += len;
    }
  }
  if (changed) count(C_SEQADJ_ADJUSTED);
}

@inline function get32(p: usize): u32 {
  return (<u32>load<u8>(p) << 24) | (<u32>load<u8>(p + 1) << 16) | (<u32>load<u8>(p + 2) << 8) | <u32>load<u8>(p + 3);
}

/** Stores v big-endian at th+off (any alignment) and updates the checksum at cs (RFC 1624). */
function put32(th: usize, off: u32, v: u32, cs: usize): void {
  const a = th + <usize>(off & ~1);
  const n: u32 = off & 1 ? 6 : 4;
  const before = sumBytes(a, n);
  const p = th + off;
  store<u8>(p, <u8>(v >> 24));
  store<u8>(p + 1, <u8>(v >> 16));
  store<u8>(p + 2, <u8>(v >> 8));
  store<u8>(p + 3, <u8>v);
  adjust(cs, delta(before, sumBytes(a, n)));
}

/** Offset of the server's byte s in the client's numbers. */
function offsetFor(rec: usize, s: u32): i32 {
  if (!(<u32>load<u8>(rec + N_FLAGS) & NF_EDITED)) return 0;
  if (sdiff(s, load<u32>(rec + N_POS)) > 0) return load<i32>(rec + N_AFTER);
  let off = load<i32>(rec + N_LOGBASE);
  const n = <u32>load<u8>(rec + N_LOGN);
  for (let i: u32 = 0; i < n; i++) {
    const e = logPtr(rec, i);
    if (sdiff(s, load<u32>(e)) <= 0) break;
    off += entryDelta(e);
  }
  return off;
}

/**
 * A client's sequence number a (ack or SACK edge) of the server's stream, in the server's
 * numbers. Inside a rewritten text: its start (ack, right edge) or end (left edge).
 */
function mapBack(rec: usize, a: u32, left: bool): u32 {
  let offA = load<i32>(rec + N_AFTER);
  const n = <u32>load<u8>(rec + N_LOGN);
  for (let i = <i32>n - 1; i >= 0; i--) {
    const e = logPtr(rec, <u32>i);
    const s = load<u32>(e);
    const offB = offA - entryDelta(e);
    const cs = s + <u32>offB;
    const ce = cs + <u32>load<u8>(e + 5);
    if (sdiff(a, ce) >= 0) return a - <u32>offA;
    if (sdiff(a, cs) > 0) return left ? s + <u32>load<u8>(e + 4) : s;
    offA = offB;
  }
  return a - <u32>offA;
}

function logged(rec: usize, seq: u32): bool {
  const n = <u32>load<u8>(rec + N_LOGN);
  for (let i: u32 = 0; i < n; i++) if (load<u32>(logPtr(rec, i)) == seq) return true;
  return false;
}

function logAdd(rec: usize, e: usize): void {
  let n = <u32>load<u8>(rec + N_LOGN);
  if (n == LOG_N) {
    // The oldest leaves the log: its delta joins the base.
    store<i32>(rec + N_LOGBASE, load<i32>(rec + N_LOGBASE) + entryDelta(logPtr(rec, 0)));
    n--;
  }
  const w = <u32>load<u8>(rec + N_LOGW);
  const l = rec + N_LOG + <usize>w * LOG_SIZE;
  const seq = load<u32>(e);
  store<u32>(l, seq);
  store<u8>(l + 4, load<u8>(e + 4));
  store<u8>(l + 5, load<u8>(e + 5));
  store<u8>(l + 6, load<u8>(e + 6));
  store<u8>(l + 7, 0);
  store<u32>(l + 8, load<u32>(e + 8));
  store<u8>(rec + N_LOGW, <u8>((w + 1) & (LOG_N - 1)));
  store<u8>(rec + N_LOGN, <u8>(n + 1));
  const after = load<i32>(rec + N_AFTER);
  store<i32>(rec + N_BEFORE, after);
  store<i32>(rec + N_AFTER, after + entryDelta(e));
  store<u32>(rec + N_POS, seq);
  store<u8>(rec + N_FLAGS, <u8>(<u32>load<u8>(rec + N_FLAGS) | NF_EDITED));
}

// ---------------------------------------------------------------------------------------------
// Finding edits (called from the reassembly's parser)

const ADDED: i32 = 0;
const SKIPPED: i32 = 1; // already made (logged) or already in the list
const MISSED: i32 = 2;

/** Adds the edit [seq, seq+oldLen) -> replacement to the packet's list, if it can be made here. */
function tryEdit(seq: u32, oldLen: u32, kind: u32, value: u32, replay: bool): i32 {
  const slot = reasmCurSlot();
  const rec = slot + S_NAT;
  const inSeg = sdiff(seq, nSegSeq) >= 0 && sdiff(nSegSeq + nSegLen, seq + oldLen) >= 0;
  if (!replay) {
    const fresh = slot != 0 && (!(<u32>load<u8>(rec + N_FLAGS) & NF_SENT) || sdiff(seq, load<u32>(rec + N_SENT)) >= 0);
    if (!nCollect || !slot || !inSeg || !fresh) {
      if (slot && logged(rec, seq)) return SKIPPED;
      return MISSED;
    }
  }
  if (!nTextLen) nTextLen = formatVip();
  const newLen = kind == K_ADDR ? nTextLen : digits(value);
  if (oldLen > 255) return MISSED;
  // Sorted insert; an edit already listed (the same message seen twice) is skipped.
  let at = nCount;
  for (let i: u32 = 0; i < nCount; i++) {
    const e = editPtr(i);
    const s = load<u32>(e);
    if (s == seq) return SKIPPED;
    const eEnd = s + <u32>load<u8>(e + 4);
    if (sdiff(seq + oldLen, s) > 0 && sdiff(eEnd, seq) > 0) return MISSED; // overlapping
    if (at == nCount && sdiff(s, seq) > 0) at = i;
  }
  if (nCount == NAT_EDITS) return MISSED;
  for (let i = nCount; i > at; i--) {
    const d = editPtr(i), s = editPtr(i - 1);
    store<u64>(d, load<u64>(s));
    store<u64>(d, load<u64>(s, 8), 8);
  }
  const e = editPtr(at);
  store<u32>(e, seq);
  store<u8>(e + 4, <u8>oldLen);
  store<u8>(e + 5, <u8>newLen);
  store<u8>(e + 6, <u8>kind);
  store<u8>(e + 7, replay ? 1 : 0);
  store<u32>(e + 8, value);
  store<u32>(e + 12, nTag);
  nCount++;
  if (newLen > oldLen) nGrow += newLen - oldLen;
  return ADDED;
}

/** Removes the current message's edits (it does not fit the packet's growth budget). */
function rollback(): void {
  let w: u32 = 0;
  for (let i: u32 = 0; i < nCount; i++) {
    const e = editPtr(i);
    if (load<u32>(e + 12) == nTag) {
      count(C_RTSP_NAT_MISSED);
      const o = <u32>load<u8>(e + 4), n = <u32>load<u8>(e + 5);
      if (n > o) nGrow -= n - o;
      continue;
    }
    if (w != i) {
      const d = editPtr(w);
      store<u64>(d, load<u64>(e));
      store<u64>(d, load<u64>(e, 8), 8);
    }
    w++;
  }
  nCount = w;
}

@inline function note(r: i32): void {
  if (r == MISSED) count(C_RTSP_NAT_MISSED);
}

/** Transport address slots (source, src_addr RTP and RTCP) of the result record for message m. */
function transportEdits(m: usize, mseq: u32, r: usize, limit: u32): void {
  const specs = <u32>load<u8>(r + R_SPECS);
  for (let t: u32 = 0; t < specs; t++) {
    const spec = r + R_SPEC0 + t * SPEC_SIZE;
    for (let k: u32 = 1; k < 6; k++) {
      if (k == 2 || k == 3) continue; // dest_addr names the client
      const slot = spec + T_ADDR0 + k * ADDR_SIZE;
      if (<u32>load<u8>(slot + A_KIND) != nFam || !isBackend(slot + A_ADDR)) continue;
      const span = load<u32>(slot);
      const off = span & 0xffff, len = span >> 16;
      if (off + len > limit) continue;
      note(tryEdit(mseq + off, len, K_ADDR, 0, false));
    }
  }
}

@inline function lower(c: u32): u32 {
  return c >= 65 && c <= 90 ? c | 0x20 : c;
}

/** Whether [p-n, p) spells `rtsp`, `rtsps` or `rtspu` (any case) and starts the URL. */
function rtspScheme(b: usize, p: u32): bool {
  let s = p;
  if (s >= 1) {
    const c = lower(<u32>load<u8>(b + s - 1));
    if (c == 115 || c == 117) s--; // 's', 'u'
  }
  if (s < 4) return false;
  if (lower(<u32>load<u8>(b + s - 4)) != 114 || lower(<u32>load<u8>(b + s - 3)) != 116 ||
    lower(<u32>load<u8>(b + s - 2)) != 115 || lower(<u32>load<u8>(b + s - 1)) != 112) return false;
  if (s == 4) return true;
  const c = lower(<u32>load<u8>(b + s - 5));
  return !((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 43 || c == 45 || c == 46);
}

@inline function hostEnd(c: u32): bool {
  return c == 58 || c == 47 || c == 59 || c == 44 || c == 34 || c == 39 || c == 32 || c == 9 || c == 13 ||
    c == 10 || c == 62 || c == 63 || c == 35;
}

/** The host of every rtsp URL in [b+from, b+to) (b at sequence number bseq); a host must end
 * before `to` (otherwise the next bytes might continue it). */
function urlEdits(b: usize, bseq: u32, from: u32, to: u32): void {
  if (to < from + 10) return;
  for (let i = from + 4; i + 3 <= to; i++) {
    if (load<u8>(b + i) != 58 || load<u8>(b + i + 1) != 47 || load<u8>(b + i + 2) != 47) continue; // "://"
    if (!rtspScheme(b + from, i - from)) continue;
    let hs = i + 3, he = hs;
    if (hs < to && load<u8>(b + hs) == 91) { // '['
      hs++;
      he = hs;
      while (he < to && load<u8>(b + he) != 93) he++;
      if (he >= to) continue;
    } else {
      while (he < to && !hostEnd(<u32>load<u8>(b + he)) && <u32>load<u8>(b + he) != 64) he++;
      if (he >= to || load<u8>(b + he) == 64) continue; // cut short, or user@host
    }
    if (he > hs && textIsBackend(b + hs, he - hs)) note(tryEdit(bseq + hs, he - hs, K_ADDR, 0, false));
    i = he;
  }
}

/** c= and o= addresses of the SDP body [b+from, b+to). */
function sdpEdits(b: usize, bseq: u32, from: u32, to: u32): void {
  let ls = from;
  while (ls < to) {
    let le = ls;
    while (le < to && load<u8>(b + le) != 10) le++;
    let e = le;
    if (e > ls && load<u8>(b + e - 1) == 13) e--;
    if (e - ls > 2 && load<u8>(b + ls + 1) == 61) { // '='
      const t = <u32>load<u8>(b + ls);
      const want: u32 = t == 99 ? 3 : t == 111 ? 6 : 0; // c=: third token, o=: sixth
      if (want) {
        let pos = ls + 2, tok: u32 = 0;
        while (pos < e) {
          while (pos < e && load<u8>(b + pos) == 32) pos++;
          const ts = pos;
          while (pos < e && load<u8>(b + pos) != 32) pos++;
          if (pos == ts) break;
          if (++tok == want) {
            let ae = ts;
            while (ae < pos && load<u8>(b + ae) != 47) ae++; // c=IN IP4 224.2.1.1/127
            if (textIsBackend(b + ts, ae - ts)) note(tryEdit(bseq + ts, ae - ts, K_ADDR, 0, false));
            break;
          }
        }
      }
    }
    ls = le + 1;
  }
}

/** The Content-Length value of the header block [m, m+hl): offset << 16 | digits, or 0. */
function contentLengthValue(m: usize, hl: u32): u32 {
  let ls: u32 = 0;
  while (ls < hl) {
    let le = ls;
    while (le < hl && load<u8>(m + le) != 10) le++;
    // "content-length", any case: '-' | 0x20 is '-' itself, letters fold.
    const p = m + ls;
    if (le - ls > 15 && (load<u64>(p) | 0x2020202020202020) == 0x2d746e65746e6f63 &&
      (load<u32>(p + 8) | 0x20202020) == 0x676e656c && (load<u16>(p + 12) | 0x2020) == 0x6874) {
      let q = ls + 14;
      while (q < le && (load<u8>(m + q) == 32 || load<u8>(m + q) == 9)) q++;
      if (q < le && load<u8>(m + q) == 58) {
        q++;
        while (q < le && (load<u8>(m + q) == 32 || load<u8>(m + q) == 9)) q++;
        const vs = q;
        while (q < le && <u32>load<u8>(m + q) - 48 < 10) q++;
        if (q > vs && q - vs <= 9) return (vs << 16) | (q - vs);
        return 0;
      }
    }
    ls = le + 1;
  }
  return 0;
}

/**
 * A message of the server's direction at m (server sequence number mseq), tokenized into the
 * result record: st > 0 the whole message is at hand (st bytes), 0 its header block only.
 */
export function natMessage(m: usize, mseq: u32, st: i32, fromClient: bool): void {
  if (!nOn || fromClient) return;
  const r = rtspResultPtr;
  const hl = load<u32>(r + R_HEADER_LEN);
  if (!hl) return;
  nTag++;
  transportEdits(m, mseq, r, hl);
  urlEdits(m, mseq, 0, hl);
  const slot = reasmCurSlot();
  const cl = load<u32>(r + R_CONTENT_LEN);
  const len = load<u32>(r + R_MESSAGE_LEN);
  // An SDP body: its edits change Content-Length, so only when the whole message is new here.
  if (st > 0 && cl >= 3 && (load<u32>(r + R_FLAGS) & F_CONTENT_LENGTH) &&
    load<u8>(m + hl) == 118 && load<u8>(m + hl + 1) == 61 && load<u8>(m + hl + 2) == 48) { // "v=0"
    const rec = slot + S_NAT;
    const whole = nCollect && slot != 0 && sdiff(mseq, nSegSeq) >= 0 && sdiff(nSegSeq + nSegLen, mseq + len) >= 0 &&
      (!(<u32>load<u8>(rec + N_FLAGS) & NF_SENT) || sdiff(mseq, load<u32>(rec + N_SENT)) >= 0);
    if (!whole) {
      // Counted, not edited: the backend addresses the body keeps.
      const keep = nCollect;
      nCollect = false;
      sdpEdits(m, mseq, hl, len);
      urlEdits(m, mseq, hl, len);
      nCollect = keep;
    } else {
      const mark = nCount;
      sdpEdits(m, mseq, hl, len);
      urlEdits(m, mseq, hl, len);
      if (nCount > mark) {
        let d: i32 = 0;
        for (let i: u32 = 0; i < nCount; i++) {
          const e = editPtr(i);
          if (load<u32>(e + 12) == nTag && sdiff(load<u32>(e), mseq + hl) >= 0) d += entryDelta(e);
        }
        if (d != 0) {
          const v = contentLengthValue(m, hl);
          const nv = <i64>cl + d;
          if (!v || nv < 0 || tryEdit(mseq + (v >> 16), v & 0xffff, K_NUMBER, <u32>nv, false) != ADDED) {
            rollback();
            return;
          }
        }
      }
    }
  }
  if (nGrow > NAT_GROW_MAX) rollback();
}

/**
 * An unfinished header block at m (rem bytes so far): its complete lines, and the last line up
 * to its last ';' or ',', are tokenized on a copy so addresses in this segment are rewritten now
 * (the message may only complete in a later segment, after this one was forwarded).
 */
export function natPartial(m: usize, mseq: u32, rem: u32, fromClient: bool): void {
  if (!nOn || fromClient || !nCollect) return;
  // Nothing of it in this segment: nothing to do.
  if (sdiff(mseq + rem, nSegSeq) <= 0) return;
  let cut: u32 = 0;
  for (let i = rem; i > 0; i--) {
    if (load<u8>(m + i - 1) == 10) {
      cut = i;
      break;
    }
  }
  let len = cut;
  for (let i = rem; i > cut; i--) {
    const c = load<u8>(m + i - 1);
    if (c == 59 || c == 44) {
      len = i - 1;
      break;
    }
  }
  if (len == 0 || len + 4 > NAT_TMP) return;
  const t = natTmpPtr;
  memory.copy(t, m, len);
  let n = len;
  if (len > cut) {
    store<u16>(t + n, 0x0a0d);
    n += 2;
  }
  store<u16>(t + n, 0x0a0d);
  n += 2;
  const st = rtspParse(t, n, rtspResultPtr);
  const hl = load<u32>(rtspResultPtr + R_HEADER_LEN);
  if (st < 0 || !hl) return;
  nTag++;
  transportEdits(m, mseq, rtspResultPtr, len);
  urlEdits(m, mseq, 0, rem);
  if (nGrow > NAT_GROW_MAX) rollback();
}

// ---------------------------------------------------------------------------------------------
// Applying

/**
 * After inspection of a server segment: its edits (new ones and logged ones it carries again) are
 * made, the sequence number translated, sentMax advanced. The frame may move: the descriptor's
 * data, caplen and wirelen are updated.
 */
export function natServerFinish(desc: usize, flow: usize): void {
  if (!nOn) return;
  let slot = reasmLastSlot();
  if (!slot && (<u32>load<u8>(fFlags(flow)) & FL_SEQADJ)) slot = reasmFind(flow);
  if (!slot) {
    for (let i: u32 = 0; i < nCount; i++) count(C_RTSP_NAT_MISSED);
    return;
  }
  const rec = slot + S_NAT;
  let data = <usize>load<u32>(desc);
  const caplen = load<u32>(desc, 4);
  if (!pHasL4 || pL4 + 20 > caplen) return;
  const seq = bswap<u32>(load<u32>(data + pL4 + 4));
  const flags = <u32>load<u8>(rec + N_FLAGS);
  if (nCollect && (flags & NF_EDITED)) replayLogged(rec);
  // (A host that gave less headroom than headroom_needed() breaks the ABI; never wrap below 0.)
  if (nCount && nCollect && pL3Len + nGrow <= 65535 && data >= <usize>(nGrow + 64)) {
    data = applyEdits(desc, data, caplen);
    let total: i32 = 0;
    for (let i: u32 = 0; i < nCount; i++) {
      const e = editPtr(i);
      const d = entryDelta(e);
      if (d > 0) count(C_RTSP_NAT_BYTES_ADDED, <u64>d);
      else if (d < 0) count(C_RTSP_NAT_BYTES_REMOVED, <u64>(-d));
      total += d;
      if (load<u8>(e + 7)) count(C_RTSP_NAT_REAPPLIED);
      else {
        count(C_RTSP_NAT_REWRITES);
        logAdd(rec, e);
      }
    }
    if (total != 0) count(C_RTSP_NAT_RESIZED);
    store<u8>(fFlags(flow), <u8>(<u32>load<u8>(fFlags(flow)) | FL_SEQADJ));
  } else {
    for (let i: u32 = 0; i < nCount; i++) if (!load<u8>(editPtr(i) + 7)) count(C_RTSP_NAT_MISSED);
  }
  // The segment's own position in the client's numbers (its edits lie at or after seq).
  const off = offsetFor(rec, seq);
  if (off != 0) {
    put32(data + pL4, 4, seq + <u32>off, data + pL4 + 16);
    count(C_SEQADJ_ADJUSTED);
  }
  if (nReal > 0) {
    const end = nSegSeq + nReal;
    if (!(<u32>load<u8>(rec + N_FLAGS) & NF_SENT) || sdiff(end, load<u32>(rec + N_SENT)) > 0) store<u32>(rec + N_SENT, end);
    store<u8>(rec + N_FLAGS, <u8>(<u32>load<u8>(rec + N_FLAGS) | NF_SENT));
  }
}

/** Logged edits this (retransmitted) segment carries again, if its bytes are still the server's text. */
function replayLogged(rec: usize): void {
  const n = <u32>load<u8>(rec + N_LOGN);
  const sent = load<u32>(rec + N_SENT);
  nTag++;
  for (let i: u32 = 0; i < n; i++) {
    const l = logPtr(rec, i);
    const s = load<u32>(l);
    const ol = <u32>load<u8>(l + 4);
    if (sdiff(s, sent) >= 0) continue;
    if (sdiff(s, nSegSeq) < 0 || sdiff(nSegSeq + nSegLen, s + ol) < 0) continue;
    const p = nSegPtr + <usize>(s - nSegSeq);
    const kind = <u32>load<u8>(l + 6);
    let ok: bool;
    if (kind == K_ADDR) ok = textIsBackend(p, ol);
    else {
      ok = true;
      for (let k: u32 = 0; k < ol; k++) if (<u32>load<u8>(p + k) - 48 >= 10) ok = false;
    }
    if (!ok) {
      count(C_RTSP_NAT_MISSED);
      continue;
    }
    if (tryEdit(s, ol, kind, load<u32>(l + 8), true) == MISSED) count(C_RTSP_NAT_MISSED);
  }
  if (nGrow > NAT_GROW_MAX) rollback();
}

/** Makes the listed edits in the frame; returns the new frame start. */
function applyEdits(desc: usize, data: usize, caplen: u32): usize {
  const l4 = pL4;
  const oldTcpLen = pL3 + pL3Len - l4;
  const sOld = sumBytes(data + l4, oldTcpLen) + <u64>bswap<u16>(<u16>oldTcpLen);
  const start = data;
  let total: i32 = 0;
  for (let i = <i32>nCount - 1; i >= 0; i--) {
    const e = editPtr(<u32>i);
    const a = nPayOff + (load<u32>(e) - nSegSeq); // from the (current) frame start
    const ol = <u32>load<u8>(e + 4), nl = <u32>load<u8>(e + 5);
    if (nl > ol) {
      const g = nl - ol;
      memory.copy(data - g, data, a);
      data -= g;
    } else if (nl < ol) {
      const s = ol - nl;
      memory.copy(data + s, data, a);
      data += s;
    }
    const dst = data + a;
    if (<u32>load<u8>(e + 6) == K_ADDR) memory.copy(dst, natTextPtr, nl);
    else writeDecimal(dst, load<u32>(e + 8));
    total += <i32>nl - <i32>ol;
  }
  // Lengths: descriptor, IP header, parser state.
  store<u32>(desc, <u32>data);
  store<u32>(desc, <u32>(<i32>caplen + total), 4);
  store<u32>(desc, <u32>(<i32>load<u32>(desc, 8) + total), 8);
  const ip = data + pL3;
  if (pFamily == 4) {
    const before = <u64>load<u16>(ip + 2);
    store<u16>(ip + 2, bswap<u16>(<u16>(<i32>pL3Len + total)));
    adjust(ip + 10, delta(before, <u64>load<u16>(ip + 2)));
  } else {
    store<u16>(ip + 4, bswap<u16>(<u16>(<i32>pL3Len + total - 40)));
  }
  parsedMoved(<isize>data - <isize>start, total);
  const newTcpLen = pL3 + pL3Len - l4;
  const sNew = sumBytes(data + l4, newTcpLen) + <u64>bswap<u16>(<u16>newTcpLen);
  adjust(data + l4 + 16, delta(sOld, sNew));
  return data;
}
