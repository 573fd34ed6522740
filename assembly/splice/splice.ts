// TCP splicing with delayed binding (docs/splice.md). For a VIP of method splice the engine answers
// the client's handshake itself with a SYN cookie (no state per SYN), acknowledges and buffers the
// first request (an HTTP request head or an RTSP request), chooses the backend from its content,
// opens the backend connection itself with the client's own ISN, replays the request, and from then
// on joins the two connections per packet: addresses and ports rewritten, the backend's sequence
// space shifted onto the one the cookie gave the client, SACK blocks and timestamps translated,
// windows rescaled, checksums fixed incrementally (RFC 1624).
//
// IPv4 only. Frames not tied to an input packet (the backend SYN, the replayed request, RSTs when
// giving up) go to the output queue, which the host drains after process() and splice_tick().
import {
  spliceEntriesPtr, spliceIndexPtr, spliceIndexMask, spliceFreePtr, spliceCap, spliceBufsPtr, spliceBufFreePtr,
  spliceBufCount, spliceOutPtr, spliceTmpPtr, spliceRulesPtr, spliceStatsPtr, keyPtr, key2Ptr, rtspResultPtr,
  SPLICE_ENTRY, SPLICE_BUF, SPLICE_OUT_SLOTS, SPLICE_OUT_SLOT, SPLICE_OUT_DATA, SPLICE_RULES, SPLICE_RULE_SIZE,
  SPLICE_PORT_BASE, scratchPtr,
} from '../layout';
import { pIsEthernet, pL3, pL4, pL3Len, pFamily, pFragment, pSrc, pDst, be16, ET_IPV4 } from '../net/parse';
import { sumBytes, finish, delta, adjust } from '../net/csum';
import { emitL2 } from '../net/rewrite';
import { flowHash } from '../lb/flowhash';
import { copy16, copy40 } from '../mem';
import {
  vipPtr, backendPtr, bstatPtr, bump, lbMacHi, lbMacLo, gwMacHi, gwMacLo, liveFlags, storeMac, isRtspPort,
  V_ADDR, V_FIRST, V_COUNT, V_SCHED, V_POLICY, S_SH, P_CLIENT, B_ADDR, B_MAC, B_STATE, B_ACTIVE, B_VIP, ST_DOWN,
  BS_PACKETS, BS_BYTES, BS_FLOWS, BS_REPLY_PACKETS, BS_REPLY_BYTES, nextBackendSlot, slotBackend, vipHasPort,
  V_METHOD, M_HANDOFF,
} from '../lb/config';
import { schedule } from '../lb/schedule';
import { count, countDrop, C_TX_BACKEND, C_TX_CLIENT, C_DROPPED, D_TRUNCATED, D_NO_BACKEND, D_NO_SERVICE } from '../counters';
import { rtspParse, METHOD_TEARDOWN } from '../session/rtsp';
import { findSession, createSession, sessionBackend, touchSession, reviveSession, closeSession, SE_TEARDOWN } from '../session/table';
import { expect as expectMedia } from '../session/inspect';
import { seqAdd, seqSub, seqLeq, seqLt, seqMap, seqUnmap } from './seq';

/** Drop reason for segments the splice consumed (handshake ACKs, SYN-ACKs from backends). */
export const D_SPLICED: u32 = 10;

// Entry states.
export const SP_FREE: u32 = 0;
export const SP_BUFFER: u32 = 1; // client handshake done, buffering the request
export const SP_SYN_SENT: u32 = 2; // backend SYN sent
export const SP_REPLAY: u32 = 3; // backend answered, buffered request replayed, not yet acknowledged
export const SP_SPLICED: u32 = 4;
export const SP_CLOSING: u32 = 5; // both FINs seen (or given up): removed after the close timeout
// TCP handoff (method 6, docs/handoff.md): the same handshake and held request, then the connection
// migrates to the backend's agent instead of being spliced.
export const SP_HANDOFF: u32 = 6; // HANDOFF message queued for the host, waiting for the agent's DONE
export const SP_HANDED: u32 = 7; // handed off: the client's segments go one-way to the backend

// Entry record (SPLICE_ENTRY = 128 bytes).
const E_STATE: u32 = 0; // u8
const E_OPTS: u32 = 1; // u8 O_*
const E_VIP: u32 = 2; // u8
const E_TRIES: u32 = 3; // u8
const E_CADDR: u32 = 4; // u32 client address (wire)
const E_CPORT: u32 = 8; // u16 client port (wire)
const E_VPORT: u32 = 10; // u16 VIP port (wire) = backend port
const E_BACKEND: u32 = 12; // u16 global backend index
const E_CWS: u32 = 14; // u8 client window shift
const E_BWS: u32 = 15; // u8 backend window shift
const E_BADDR: u32 = 16; // u32 backend address (wire)
const E_LADDR: u32 = 20; // u32 our address towards the backend (wire)
const E_CMSS: u32 = 24; // u16 client MSS (from the cookie)
const E_BMSS: u32 = 26; // u16 backend MSS
const E_CISN: u32 = 28; // u32 client ISN
const E_OISN: u32 = 32; // u32 our ISN towards the client (the cookie)
const E_BISN: u32 = 36; // u32 backend ISN
const E_BUFFERED: u32 = 40; // u32 request bytes buffered
const E_DEADLINE: u32 = 44; // u32 ms: retransmission deadline
const E_SEEN: u32 = 48; // u32 ms: last packet
const E_TSOFF: u32 = 52; // u32 backend TSval -> client TSval offset
const E_CTSVAL: u32 = 56; // u32 client's latest TSval
const E_OTSVAL: u32 = 60; // u32 latest TSval sent to the client
const E_BTSVAL: u32 = 64; // u32 backend's latest TSval
const E_CWIN: u32 = 68; // u16 client's latest window field
const E_FIN: u32 = 70; // u8 1 client FIN, 2 backend FIN
const E_BUFNO: u32 = 72; // u16 buffer number + 1 (0 = none)
const E_HASH: u32 = 76; // u32 client-key flow hash (index slot)
const E_CMAC: u32 = 80; // 6 bytes: the client side's next-hop MAC
const E_LISN: u32 = 88; // u32 our ISN towards the backend (a clock: a reused local port's SYN is newer)
const E_HID: u32 = 88; // u32 handoff: the HANDOFF message's id (E_LISN is unused there)
const E_TSOFFCB: u32 = 92; // u32 client TSval -> our TSval towards the backend
const E_CFIN: u32 = 96; // u32 the client's FIN, in our numbering towards the backend
const E_BFIN: u32 = 100; // u32 the backend's FIN, in its numbering

// E_OPTS bits.
const O_CWS: u32 = 1; // client offered window scaling
const O_CSACK: u32 = 2;
const O_CTS: u32 = 4;
const O_BWS: u32 = 8; // backend accepted window scaling
const O_BSACK: u32 = 16;
const O_BTS: u32 = 32;
const O_HANDOFF: u32 = 64; // a handoff VIP's connection

// Stats (u64[16] at splice_stats_ptr()).
const ST_COOKIES_SENT: u32 = 0;
const ST_COOKIES_VALID: u32 = 1;
const ST_COOKIES_INVALID: u32 = 2;
const ST_BACKEND_SYNS: u32 = 3;
const ST_SPLICED: u32 = 4;
const ST_REPLAY_SEGMENTS: u32 = 5;
const ST_RETRANSMITS: u32 = 6;
const ST_GIVE_UPS: u32 = 7;
const ST_CLOSED: u32 = 8;
const ST_TABLE_FULL: u32 = 9;
const ST_OUT_FULL: u32 = 10;
const ST_BYTES_BUFFERED: u32 = 11;
const ST_REQUEST_TOO_BIG: u32 = 12;
const ST_RULE_MATCHED: u32 = 13;
const ST_SESSION_MATCHED: u32 = 14;
const ST_TRANSLATED: u32 = 15;
const ST_HANDOFFS: u32 = 16; // HANDOFF messages queued
const ST_HANDOFFS_DONE: u32 = 17; // agents' DONE with status 0
const ST_HANDOFFS_FAILED: u32 = 18; // DONE with an error status (the client is reset)
const ST_HANDOFF_TIMEOUTS: u32 = 19; // no DONE in time (the client is reset)
const ST_HANDOFF_HELD: u32 = 20; // client segments dropped while waiting for DONE (the client retransmits)
const ST_HANDED_FORWARDED: u32 = 21; // client segments forwarded to a backend after the handoff
const ST_HANDOFF_STRAY: u32 = 22; // non-SYN segments to a handoff VIP matching no connection and no cookie: dropped, not reset
const ST_HANDOFF_ABANDONED: u32 = 23; // the client reset its connection while the HANDOFF waited for DONE

const TH_FIN: u32 = 1;
const TH_SYN: u32 = 2;
const TH_RST: u32 = 4;
const TH_PSH: u32 = 8;
const TH_ACK: u32 = 16;

/** Window scale we announce to clients that offer scaling. */
export const OUR_WS: u32 = 7;
const RTO_MS: u32 = 1000;
const MAX_TRIES: u32 = 4;
/** Inspect delay: a request still incomplete this long after the handshake is bound anyway (by
 * what has arrived, usually the scheduler), so protocols where the server speaks first, or whose
 * requests are not text heads, still work (HAProxy's tcp-request inspect-delay). */
export let spliceInspectMs: u32 = 1000;
const CLOSE_MS: u32 = 2000; // after both FINs: long enough for the last ACK and a FIN retransmission
const IDLE_MS: u32 = 900000;
const HANDOFF_MS: u32 = 3000; // a HANDOFF without DONE: the client is reset
/** The cookie's time counter advances every 64 s; a cookie is good for the current and previous step. */
const COOKIE_SHIFT: u32 = 6;

// Configuration (config_splice, config_splice_rule).
export let spliceLocal: u32 = 0; // our source address towards backends (wire), 0 = the VIP
// Transparent: connections to backends come from the client's own address (config_splice with all
// ones at scratch). The backends see their real clients, and send an RTSP session's UDP media to the
// client, where the NAT path's expectations find it (docs/splice.md "Source address").
export let spliceTransparent: u32 = 0;
export let spliceMss: u32 = 1460; // MSS announced to clients
export let spliceLive: u32 = 0;
let spliceHiWater: u32 = 0;
let freeHead: u32 = 0; // FIFO of free entries (port reuse spread over the whole range)
let freeTail: u32 = 0;
let bufTop: u32 = 0; // stack of free buffers
export let outCount: u32 = 0;
let handoffSeq: u32 = 0; // high half of HANDOFF ids (the low half is the entry)

const MSS_TABLE_0: u32 = 536;
const MSS_TABLE_1: u32 = 1220;
const MSS_TABLE_2: u32 = 1440;
const MSS_TABLE_3: u32 = 1460;

@inline function mssOf(i: u32): u32 {
  return i == 0 ? MSS_TABLE_0 : i == 1 ? MSS_TABLE_1 : i == 2 ? MSS_TABLE_2 : MSS_TABLE_3;
}

@inline function stat(i: u32, by: u64 = 1): void {
  const p = spliceStatsPtr + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + by);
}

@inline function entryPtr(i: u32): usize {
  return spliceEntriesPtr + <usize>i * SPLICE_ENTRY;
}

@inline function bufPtr(e: usize): usize {
  return spliceBufsPtr + <usize>(<u32>load<u16>(e + E_BUFNO) - 1) * SPLICE_BUF;
}

/** Called by init: every entry free, every buffer free. */
export function spliceReset(): void {
  for (let i: u32 = 0; i < spliceCap; i++) store<u16>(spliceFreePtr + (<usize>i << 1), <u16>i);
  freeHead = 0;
  freeTail = spliceCap;
  for (let i: u32 = 0; i < spliceBufCount; i++) store<u16>(spliceBufFreePtr + (<usize>i << 1), <u16>i);
  bufTop = spliceBufCount;
  spliceLive = 0;
  spliceHiWater = 0;
  outCount = 0;
}

/**
 * config_splice: MSS announced to clients (0 = 1460); our source towards backends at scratch (IPv4
 * mapped; 16 zero bytes = the VIP; 16 bytes of 0xff = the client's own address, transparent).
 */
export function configSplice(mss: u32): u32 {
  if (mss != 0 && (mss < 536 || mss > 9000)) return 1;
  const s = scratchPtr;
  let local: u32 = 0, transparent: u32 = 0;
  if (load<u64>(s) == 0 && load<u32>(s, 8) == 0xffff0000 && load<u32>(s, 12) != 0) local = load<u32>(s, 12);
  else if (load<u64>(s) == 0xffffffffffffffff && load<u64>(s, 8) == 0xffffffffffffffff) transparent = 1;
  else if (load<u64>(s) != 0 || load<u64>(s, 8) != 0) return 2;
  spliceMss = mss ? mss : 1460;
  spliceLocal = local;
  spliceTransparent = transparent;
  return 0;
}

/**
 * Whether the current TCP segment (IPv4, from a backend to a client address) belongs to a
 * transparent splice entry: its destination port names the entry, and the entry's backend, VIP port
 * and client address match.
 */
export function spliceClaims(data: usize): bool {
  const tcp = data + pL4;
  const dport = <u32>bswap<u16>(load<u16>(tcp + 2));
  if (dport < SPLICE_PORT_BASE || dport - SPLICE_PORT_BASE >= spliceCap) return false;
  const e = entryPtr(dport - SPLICE_PORT_BASE);
  return <u32>load<u8>(e + E_STATE) >= SP_SYN_SENT && load<u32>(e + E_BADDR) == load<u32>(pSrc) &&
    load<u16>(e + E_VPORT) == load<u16>(tcp) && load<u32>(e + E_LADDR) == load<u32>(pDst);
}

/** config_splice_rule: rule i sends requests to VIP vip whose URI starts with the `len` bytes at scratch to backend j (len 0 clears it). */
export function configSpliceRule(i: u32, vip: u32, j: u32, len: u32): u32 {
  if (i >= SPLICE_RULES) return 1;
  if (len > SPLICE_RULE_SIZE - 8) return 2;
  const r = spliceRulesPtr + <usize>i * SPLICE_RULE_SIZE;
  store<u8>(r, <u8>vip);
  store<u8>(r + 1, <u8>len);
  store<u16>(r + 2, <u16>j);
  memory.copy(r + 8, scratchPtr, len);
  return 0;
}

// ---- TCP options of the current segment ----

let oMss: u32 = 0;
let oWs: i32 = -1;
let oSack: bool = false;
let oTs: u32 = 0; // offset of the timestamp option (kind byte) in the TCP header, 0 = none
let oSackBlk: u32 = 0; // offset of the SACK option

function parseOpts(tcp: usize, hlen: u32): void {
  oMss = 0;
  oWs = -1;
  oSack = false;
  oTs = 0;
  oSackBlk = 0;
  let i: u32 = 20;
  while (i < hlen) {
    const kind = <u32>load<u8>(tcp + i);
    if (kind == 0) break;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= hlen) break;
    const len = <u32>load<u8>(tcp + i + 1);
    if (len < 2 || i + len > hlen) break;
    if (kind == 2 && len == 4) oMss = be16(tcp + i + 2);
    else if (kind == 3 && len == 3) oWs = <i32>min<u32>(14, <u32>load<u8>(tcp + i + 2));
    else if (kind == 4 && len == 2) oSack = true;
    else if (kind == 5 && len >= 10 && ((len - 2) & 7) == 0) oSackBlk = i;
    else if (kind == 8 && len == 10) oTs = i;
    i += len;
  }
}

// ---- Checksum-tracked field updates on a segment in place ----

let dTcp: u64 = 0; // accumulated TCP checksum difference

@inline function sum32(w: u32): u64 {
  return <u64>(w & 0xffff) + <u64>(w >> 16);
}

/** Stores the host-order value v big-endian at p, accumulating the checksum difference. */
@inline function set32(p: usize, v: u32): void {
  const old = load<u32>(p);
  const nw = bswap<u32>(v);
  if (old == nw) return;
  store<u32>(p, nw);
  dTcp += delta(sum32(old), sum32(nw));
}

/** Same for a u16 already in wire order. */
@inline function set16w(p: usize, nw: u16): void {
  const old = load<u16>(p);
  if (old == nw) return;
  store<u16>(p, nw);
  dTcp += delta(<u64>old, <u64>nw);
}

/** Replaces `len` bytes (even offset from the TCP header start, even length) by NOPs. */
function nopOut(tcp: usize, off: u32, len: u32): void {
  // Option offsets may be odd; sum the 16-bit words covering the range, as aligned to the header.
  const a = off & ~1, b = (off + len + 1) & ~1;
  const before = sumBytes(tcp + a, b - a);
  for (let i: u32 = 0; i < len; i++) store<u8>(tcp + off + i, 1);
  dTcp += delta(before, sumBytes(tcp + a, b - a));
}

/**
 * The SACK option found by parseOpts (if any): each block edge moved back by `delta` into the
 * receiver's numbering when both sides negotiated SACK, else the option turned into NOPs.
 */
function sackUnmap(tcp: usize, opts: u32, delta: u32): void {
  if (!oSackBlk) return;
  const len = <u32>load<u8>(tcp + oSackBlk + 1);
  if (!(opts & O_BSACK)) {
    nopOut(tcp, oSackBlk, len);
    return;
  }
  for (let x: u32 = 0, n = (len - 2) >> 3; x < n; x++) {
    const p = tcp + oSackBlk + 2 + (x << 3);
    set32(p, seqUnmap(bswap<u32>(load<u32>(p)), delta));
    set32(p + 4, seqUnmap(bswap<u32>(load<u32>(p + 4)), delta));
  }
}

/** A window field rescaled from shift `inS` to shift `outS`, capped at 65535. */
@inline function rescale(win: u32, inS: u32, outS: u32): u32 {
  if (inS == outS) return win;
  const w = (<u64>win << inS) >> outS;
  return w > 0xffff ? 0xffff : <u32>w;
}

// ---- Cookies ----

function cookieHash(k: usize, cisn: u32, t: u32, marker: u32, bits: u32): u32 {
  const k2 = key2Ptr;
  copy40(k2, k);
  store<u32>(k2, load<u32>(k2) ^ cisn); // IPv4-mapped: bytes 0..3 are zero, so this is injective
  store<u8>(k2 + 37, <u8>marker);
  store<u8>(k2 + 38, <u8>t);
  store<u8>(k2 + 39, <u8>bits);
  return flowHash(k2);
}

/**
 * The ISN for a SYN-ACK: 22 bits of a keyed hash of (4-tuple, client ISN, time step, option bits)
 * over 10 bits that carry the time step's low 3 bits, SACK-permitted, the window shift (15 = none)
 * and the MSS index, masked with a second hash that depends on neither time nor options (so they
 * can be read back before the first hash is checked; every bit is authenticated by it).
 */
export function makeCookie(k: usize, cisn: u32, nowS: u32, mssIdx: u32, ws: u32, sack: u32): u32 {
  const t = (nowS >> COOKIE_SHIFT) & 0xff;
  const low = ((t & 7) << 7) | (sack << 6) | (ws << 2) | mssIdx;
  const h0 = cookieHash(k, cisn, 0, 0xa5, 0);
  const ht = cookieHash(k, cisn, t, 0x5a, low & 0x7f);
  return (ht & 0xfffffc00) | ((low ^ h0) & 0x3ff);
}

/** The cookie's 7 option bits (sack << 6 | ws << 2 | mss index), or -1 when forged or expired. */
export function checkCookie(k: usize, cisn: u32, isn: u32, nowS: u32): i32 {
  const h0 = cookieHash(k, cisn, 0, 0xa5, 0);
  const low = (isn ^ h0) & 0x3ff;
  const tn = nowS >> COOKIE_SHIFT;
  const age = (tn - (low >> 7)) & 7;
  if (age > 1) return -1;
  const ht = cookieHash(k, cisn, (tn - age) & 0xff, 0x5a, low & 0x7f);
  if ((ht ^ isn) & 0xfffffc00) return -1;
  return <i32>(low & 0x7f);
}

// ---- Frame building ----

function writeEth(p: usize, dstMac: usize): void {
  store<u32>(p, load<u32>(dstMac));
  store<u16>(p + 4, load<u16>(dstMac + 4));
  storeMac(p + 6, lbMacHi, lbMacLo);
  store<u16>(p + 12, bswap<u16>(<u16>ET_IPV4));
}

/** Options of a SYN or SYN-ACK at o; returns their length (a multiple of 4). */
function writeSynOpts(o: usize, mss: u32, ws: i32, sack: bool, ts: bool, tsval: u32, tsecr: u32): u32 {
  store<u8>(o, 2);
  store<u8>(o + 1, 4);
  store<u16>(o + 2, bswap<u16>(<u16>mss));
  let n: u32 = 4;
  if (ts) {
    if (sack) {
      store<u8>(o + n, 4);
      store<u8>(o + n + 1, 2);
    } else {
      store<u8>(o + n, 1);
      store<u8>(o + n + 1, 1);
    }
    store<u8>(o + n + 2, 8);
    store<u8>(o + n + 3, 10);
    store<u32>(o + n + 4, bswap<u32>(tsval));
    store<u32>(o + n + 8, bswap<u32>(tsecr));
    n += 12;
  } else if (sack) {
    store<u32>(o + n, 0x02040101); // NOP NOP SACK-permitted
    n += 4;
  }
  if (ws >= 0) {
    store<u8>(o + n, 1);
    store<u8>(o + n + 1, 3);
    store<u8>(o + n + 2, 3);
    store<u8>(o + n + 3, <u8>ws);
    n += 4;
  }
  return n;
}

function writeTsOpt(o: usize, tsval: u32, tsecr: u32): u32 {
  store<u32>(o, 0x0a080101); // NOP NOP kind 8 len 10
  store<u32>(o + 4, bswap<u32>(tsval));
  store<u32>(o + 8, bswap<u32>(tsecr));
  return 12;
}

/**
 * IPv4 + TCP headers at ip (options and payload already in place after the 20-byte TCP header),
 * with both checksums computed. Returns the IP datagram length.
 */
function writeIpTcp(ip: usize, src: u32, dst: u32, sport: u16, dport: u16, seq: u32, ack: u32, flags: u32, win: u32, optLen: u32, payLen: u32): u32 {
  const tcpLen = 20 + optLen + payLen;
  const total = 20 + tcpLen;
  store<u8>(ip, 0x45);
  store<u8>(ip + 1, 0);
  store<u16>(ip + 2, bswap<u16>(<u16>total));
  store<u32>(ip + 4, 0x40); // id 0, DF
  store<u8>(ip + 8, 64);
  store<u8>(ip + 9, 6);
  store<u16>(ip + 10, 0);
  store<u32>(ip + 12, src);
  store<u32>(ip + 16, dst);
  store<u16>(ip + 10, <u16>finish(sumBytes(ip, 20)));
  const t = ip + 20;
  store<u16>(t, sport);
  store<u16>(t + 2, dport);
  store<u32>(t + 4, bswap<u32>(seq));
  store<u32>(t + 8, bswap<u32>(ack));
  store<u8>(t + 12, <u8>(((20 + optLen) >> 2) << 4));
  store<u8>(t + 13, <u8>flags);
  store<u16>(t + 14, bswap<u16>(<u16>win));
  store<u16>(t + 16, 0);
  store<u16>(t + 18, 0);
  const pseudo = sumBytes(ip + 12, 8) + <u64>bswap<u16>(6) + <u64>bswap<u16>(<u16>tcpLen);
  store<u16>(t + 16, <u16>finish(sumBytes(t, tcpLen) + pseudo));
  return total;
}

/** Replaces the descriptor's frame by the Ethernet frame of `len` bytes at tmp (growing into headroom if needed). */
function placeFrame(d: usize, data: usize, caplen: u32, tmp: usize, len: u32): void {
  const start = len > caplen ? data + caplen - len : data;
  memory.copy(start, tmp, len);
  store<u32>(d, <u32>start);
  store<u32>(d, len, 4);
  store<u32>(d, len, 8);
}

/** The next free output-queue frame (SPLICE_OUT_DATA bytes into its slot), or 0 when the queue is full. */
function outFrame(): usize {
  if (outCount >= SPLICE_OUT_SLOTS) {
    stat(ST_OUT_FULL);
    return 0;
  }
  return spliceOutPtr + <usize>outCount * SPLICE_OUT_SLOT + SPLICE_OUT_DATA;
}

function outCommit(side: u32, j: u32, len: u32): void {
  const r = spliceOutPtr + <usize>outCount * SPLICE_OUT_SLOT;
  store<u8>(r, <u8>side);
  store<u8>(r + 1, 0);
  store<u16>(r + 2, <u16>j);
  store<u32>(r + 4, SPLICE_OUT_DATA);
  store<u32>(r + 8, len);
  store<u32>(r + 12, 0);
  outCount++;
}

export function spliceOutReset(): void {
  outCount = 0;
}

// ---- Table ----

function lookupClient(k: usize, h: u32): i32 {
  const caddr = load<u32>(k, 12), ports = load<u32>(k, 32), vaddr = load<u32>(k, 28);
  let s = h & spliceIndexMask;
  while (true) {
    const v = load<u32>(spliceIndexPtr + (<usize>s << 2));
    if (v == 0) return -1;
    const e = entryPtr(v - 1);
    if (load<u32>(e + E_CADDR) == caddr && load<u32>(e + E_CPORT) == ports &&
      load<u32>(vipPtr(<u32>load<u8>(e + E_VIP)) + V_ADDR + 12) == vaddr) return <i32>(v - 1);
    s = (s + 1) & spliceIndexMask;
  }
}

function indexRemove(i: u32, h: u32): void {
  let s = h & spliceIndexMask;
  while (load<u32>(spliceIndexPtr + (<usize>s << 2)) != i + 1) s = (s + 1) & spliceIndexMask;
  // Backward-shift deletion (linear probing): no tombstones.
  let hole = s;
  let j = (s + 1) & spliceIndexMask;
  while (true) {
    const v = load<u32>(spliceIndexPtr + (<usize>j << 2));
    if (v == 0) break;
    const home = load<u32>(entryPtr(v - 1) + E_HASH) & spliceIndexMask;
    if (((j - home) & spliceIndexMask) >= ((j - hole) & spliceIndexMask)) {
      store<u32>(spliceIndexPtr + (<usize>hole << 2), v);
      hole = j;
    }
    j = (j + 1) & spliceIndexMask;
  }
  store<u32>(spliceIndexPtr + (<usize>hole << 2), 0);
}

function entryAlloc(h: u32): i32 {
  if (freeHead == freeTail || bufTop == 0) {
    stat(ST_TABLE_FULL);
    return -1;
  }
  const i = <u32>load<u16>(spliceFreePtr + (<usize>(freeHead & (spliceCap - 1)) << 1));
  freeHead++;
  bufTop--;
  const e = entryPtr(i);
  memory.fill(e, 0, SPLICE_ENTRY);
  store<u16>(e + E_BUFNO, load<u16>(spliceBufFreePtr + (<usize>bufTop << 1)) + 1);
  store<u32>(e + E_HASH, h);
  let s = h & spliceIndexMask;
  while (load<u32>(spliceIndexPtr + (<usize>s << 2)) != 0) s = (s + 1) & spliceIndexMask;
  store<u32>(spliceIndexPtr + (<usize>s << 2), i + 1);
  if (i + 1 > spliceHiWater) spliceHiWater = i + 1;
  spliceLive++;
  return <i32>i;
}

function releaseBuffer(e: usize): void {
  const b = <u32>load<u16>(e + E_BUFNO);
  if (!b) return;
  store<u16>(spliceBufFreePtr + (<usize>bufTop << 1), <u16>(b - 1));
  bufTop++;
  store<u16>(e + E_BUFNO, 0);
}

function entryFree(i: u32): void {
  const e = entryPtr(i);
  const st = <u32>load<u8>(e + E_STATE);
  if (st == SP_FREE) return;
  indexRemove(i, load<u32>(e + E_HASH));
  releaseBuffer(e);
  if (st >= SP_SYN_SENT) {
    const a = backendPtr(<u32>load<u16>(e + E_BACKEND)) + B_ACTIVE;
    const x = load<u32>(a);
    if (x) store<u32>(a, x - 1);
  }
  store<u8>(e + E_STATE, <u8>SP_FREE);
  store<u16>(spliceFreePtr + (<usize>(freeTail & (spliceCap - 1)) << 1), <u16>i);
  freeTail++;
  spliceLive--;
  stat(ST_CLOSED);
}

@inline function localPort(i: u32): u16 {
  return bswap<u16>(<u16>(SPLICE_PORT_BASE + i));
}

// ---- Verdicts ----

function absorb(d: usize): void {
  store<u8>(d, 0, 24);
  store<u8>(d, <u8>D_SPLICED, 25);
  count(C_DROPPED);
  countDrop(D_SPLICED);
}

function dropWith(d: usize, reason: u32): void {
  store<u8>(d, 0, 24);
  store<u8>(d, <u8>reason, 25);
  count(C_DROPPED);
  countDrop(reason);
}

function toClient(d: usize, j: u32): void {
  store<u8>(d, 2, 24);
  store<u16>(d, <u16>j, 26);
  const s = bstatPtr(j);
  bump(s + BS_REPLY_PACKETS, 1);
  bump(s + BS_REPLY_BYTES, load<u32>(d, 8));
  count(C_TX_CLIENT);
}

function toBackendV(d: usize, j: u32): void {
  store<u8>(d, 1, 24);
  store<u16>(d, <u16>j, 26);
  const s = bstatPtr(j);
  bump(s + BS_PACKETS, 1);
  bump(s + BS_BYTES, load<u32>(d, 8));
  count(C_TX_BACKEND);
}

/** The client side's next hop: the gateway in live mode or for non-Ethernet input, else the frame's source MAC. */
function clientMac(e: usize, data: usize): void {
  if ((liveFlags & 1) != 0 || !pIsEthernet) storeMac(e + E_CMAC, gwMacHi, gwMacLo);
  else {
    store<u32>(e + E_CMAC, load<u32>(data + 6));
    store<u16>(e + E_CMAC + 4, load<u16>(data + 10));
  }
}

/** Our window towards the client while we hold its request: the buffer room, in its scale. */
function ourWindow(e: usize): u32 {
  const room = SPLICE_BUF - load<u32>(e + E_BUFFERED);
  const sh = (<u32>load<u8>(e + E_OPTS) & O_CWS) ? OUR_WS : 0;
  let w = room >> sh;
  if (w == 0 && room > 0) w = 1;
  return min<u32>(0xffff, w);
}

/** A segment from us to the client of entry e (frame at f, Ethernet); returns its length. */
function buildToClient(f: usize, e: usize, vip: u32, seq: u32, ack: u32, flags: u32, win: u32, nowMs: u32): u32 {
  writeEth(f, e + E_CMAC);
  let ol: u32 = 0;
  if (<u32>load<u8>(e + E_OPTS) & O_CTS) {
    const tv = nowTs(e, nowMs);
    ol = writeTsOpt(f + 54, tv, load<u32>(e + E_CTSVAL));
  }
  return 14 + writeIpTcp(f + 14, load<u32>(vipPtr(vip) + V_ADDR + 12), load<u32>(e + E_CADDR),
    load<u16>(e + E_VPORT), load<u16>(e + E_CPORT), seq, ack, flags, win, ol, 0);
}

/** A TSval for our own segments to the client: never behind what the client has seen from us. */
function nowTs(e: usize, nowMs: u32): u32 {
  const last = load<u32>(e + E_OTSVAL);
  const v = seqLt(last, nowMs) ? nowMs : last;
  store<u32>(e + E_OTSVAL, v);
  return v;
}

// ---- Entry points from the engine ----

/**
 * A TCP segment for a splice VIP (vip >= 0, client or backend side) or for our configured source
 * address (vip < 0, backend side only). keyPtr holds the source address at +0 and the destination
 * at +16 (16-byte form).
 */
export function spliceInput(d: usize, data: usize, caplen: u32, vip: i32, nowS: u32, nsec: u32): void {
  if (pFamily != 4 || pFragment) return dropWith(d, D_NO_SERVICE);
  if (pL4 + 20 > caplen) return dropWith(d, D_TRUNCATED);
  const tcp = data + pL4;
  const hlen = (<u32>load<u8>(tcp + 12) >> 4) << 2;
  if (hlen < 20 || pL4 + hlen > caplen) return dropWith(d, D_TRUNCATED);
  const nowMs = nowS * 1000 + nsec / 1000000;
  // Backend side: our local port names the entry.
  const dport = <u32>bswap<u16>(load<u16>(tcp + 2));
  if (dport >= SPLICE_PORT_BASE && dport - SPLICE_PORT_BASE < spliceCap) {
    const i = dport - SPLICE_PORT_BASE;
    const e = entryPtr(i);
    if (<u32>load<u8>(e + E_STATE) >= SP_SYN_SENT && load<u32>(e + E_BADDR) == load<u32>(pSrc) &&
      load<u16>(e + E_VPORT) == load<u16>(tcp) && load<u32>(e + E_LADDR) == load<u32>(pDst)) {
      return fromBackend(d, data, caplen, tcp, hlen, i, e, nowS, nowMs);
    }
    // A backend segment for a connection we no longer have (the client gave up, the entry timed
    // out): reset the backend's half, so it does not wait on us.
    const flags = <u32>load<u8>(tcp + 13);
    const slot = nextBackendSlot(load<u64>(keyPtr), load<u64>(keyPtr, 8), -1);
    if ((flags & TH_ACK) && !(flags & TH_RST) && pIsEthernet && slot >= 0 &&
      (vip < 0 || vipHasPort(<u32>vip, <u32>bswap<u16>(load<u16>(tcp))))) {
      const tmp = spliceTmpPtr;
      store<u32>(tmp + 120, load<u32>(data + 6));
      store<u16>(tmp + 124, load<u16>(data + 10));
      writeEth(tmp, tmp + 120);
      const len = 14 + writeIpTcp(tmp + 14, load<u32>(pDst), load<u32>(pSrc), load<u16>(tcp + 2), load<u16>(tcp),
        bswap<u32>(load<u32>(tcp + 8)), 0, TH_RST, 0, 0, 0);
      placeFrame(d, data, caplen, tmp, len);
      const j = slotBackend(slot);
      store<u8>(d, 1, 24);
      store<u16>(d, <u16>j, 26);
      count(C_TX_BACKEND);
      return;
    }
  }
  if (vip < 0) return dropWith(d, D_NO_SERVICE);
  fromClient(d, data, caplen, tcp, hlen, <u32>vip, nowS, nowMs);
}

function payloadEnd(caplen: u32): u32 {
  const end = pL3 + pL3Len;
  return end < caplen ? end : caplen;
}

function fromClient(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, vip: u32, nowS: u32, nowMs: u32): void {
  const k = keyPtr;
  store<u16>(k, load<u16>(tcp), 32);
  store<u16>(k, load<u16>(tcp + 2), 34);
  store<u32>(k, 6, 36);
  const h = flowHash(k);
  const flags = <u32>load<u8>(tcp + 13);
  const seq = bswap<u32>(load<u32>(tcp + 4));
  const ack = bswap<u32>(load<u32>(tcp + 8));
  const found = lookupClient(k, h);
  if (found < 0) {
    if (flags & TH_RST) return absorb(d);
    if ((flags & (TH_SYN | TH_ACK)) == TH_SYN) return synCookie(d, data, caplen, tcp, hlen, k, vip, seq, nowS, nowMs);
    if ((flags & (TH_SYN | TH_ACK)) != TH_ACK) return absorb(d);
    const bits = checkCookie(k, seq - 1, ack - 1, nowS);
    if (bits < 0) {
      stat(ST_COOKIES_INVALID);
      // Handoff is one-way: an ACK of a handed-off connection whose entry has expired must not be
      // reset by us (the backend still holds the connection); it is dropped.
      if (<u32>load<u8>(vipPtr(vip) + V_METHOD) == M_HANDOFF) {
        stat(ST_HANDOFF_STRAY);
        return absorb(d);
      }
      // No connection: RST (RFC 793: an ACK for nothing gets a reset with seq = its ack).
      const tmp = spliceTmpPtr;
      if (pIsEthernet && (liveFlags & 1) == 0) {
        store<u32>(tmp + 120, load<u32>(data + 6));
        store<u16>(tmp + 124, load<u16>(data + 10));
      } else storeMac(tmp + 120, gwMacHi, gwMacLo);
      writeEth(tmp, tmp + 120);
      const len = 14 + writeIpTcp(tmp + 14, load<u32>(pDst), load<u32>(pSrc), load<u16>(tcp + 2), load<u16>(tcp), ack, 0, TH_RST, 0, 0, 0);
      placeFrame(d, data, caplen, tmp, len);
      store<u8>(d, 2, 24);
      store<u16>(d, 0, 26);
      count(C_TX_CLIENT);
      return;
    }
    stat(ST_COOKIES_VALID);
    const ii = entryAlloc(h);
    if (ii < 0) return absorb(d); // the client retransmits its data; the cookie stays good for a while
    const e = entryPtr(<u32>ii);
    const b = <u32>bits;
    parseOpts(tcp, hlen);
    let opts: u32 = 0;
    if (((b >> 2) & 15) != 15) {
      opts |= O_CWS;
      store<u8>(e + E_CWS, <u8>((b >> 2) & 15));
    }
    if (b & 64) opts |= O_CSACK;
    if (<u32>load<u8>(vipPtr(vip) + V_METHOD) == M_HANDOFF) opts |= O_HANDOFF;
    if (oTs) {
      opts |= O_CTS;
      store<u32>(e + E_CTSVAL, bswap<u32>(load<u32>(tcp + oTs + 2)));
      store<u32>(e + E_OTSVAL, bswap<u32>(load<u32>(tcp + oTs + 6)));
    }
    store<u8>(e + E_STATE, <u8>SP_BUFFER);
    store<u8>(e + E_OPTS, <u8>opts);
    store<u8>(e + E_VIP, <u8>vip);
    store<u32>(e + E_CADDR, load<u32>(pSrc));
    store<u16>(e + E_CPORT, load<u16>(tcp));
    store<u16>(e + E_VPORT, load<u16>(tcp + 2));
    store<u16>(e + E_CMSS, <u16>mssOf(b & 3));
    store<u32>(e + E_CISN, seq - 1);
    store<u32>(e + E_OISN, ack - 1);
    store<u32>(e + E_LADDR, spliceTransparent ? load<u32>(pSrc) : spliceLocal ? spliceLocal : load<u32>(pDst));
    store<u16>(e + E_CWIN, load<u16>(tcp + 14));
    store<u32>(e + E_SEEN, nowMs);
    clientMac(e, data);
    store<u32>(e + E_DEADLINE, nowMs + spliceInspectMs);
    return buffering(d, data, caplen, tcp, hlen, <u32>ii, e, vip, seq, flags, nowS, nowMs);
  }
  const i = <u32>found;
  const e = entryPtr(i);
  const st = <u32>load<u8>(e + E_STATE);
  if (st >= SP_HANDOFF) return handoffInput(d, data, caplen, tcp, hlen, i, e, vip, seq, flags, nowS, nowMs);
  if ((flags & (TH_SYN | TH_ACK)) == TH_SYN) {
    // A new connection on the ports of one that is closing starts over (IPVS conn_reuse_mode);
    // a SYN inside a live connection is not forwarded.
    if (st != SP_CLOSING) return absorb(d);
    entryFree(i);
    return synCookie(d, data, caplen, tcp, hlen, k, vip, seq, nowS, nowMs);
  }
  store<u32>(e + E_SEEN, nowMs);
  if (st == SP_BUFFER || st == SP_SYN_SENT) {
    if ((flags & TH_SYN) != 0) return absorb(d);
    if (flags & TH_RST) {
      entryFree(i);
      return absorb(d);
    }
    if (oTsOf(tcp, hlen)) store<u32>(e + E_CTSVAL, bswap<u32>(load<u32>(tcp + oTs + 2)));
    store<u16>(e + E_CWIN, load<u16>(tcp + 14));
    return buffering(d, data, caplen, tcp, hlen, i, e, vip, seq, flags, nowS, nowMs);
  }
  clientToBackend(d, data, caplen, tcp, hlen, i, e, flags);
}

@inline function oTsOf(tcp: usize, hlen: u32): u32 {
  parseOpts(tcp, hlen);
  return oTs;
}

/** Answers a SYN with a SYN-ACK whose ISN is the cookie, in place (verdict 2). No state is kept. */
function synCookie(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, k: usize, vip: u32, seq: u32, nowS: u32, nowMs: u32): void {
  parseOpts(tcp, hlen);
  const cmss = oMss ? oMss : 536;
  let mi: u32 = 0;
  if (cmss >= MSS_TABLE_3) mi = 3;
  else if (cmss >= MSS_TABLE_2) mi = 2;
  else if (cmss >= MSS_TABLE_1) mi = 1;
  const ws: u32 = oWs >= 0 ? <u32>oWs : 15;
  const sack: u32 = oSack ? 1 : 0;
  const isn = makeCookie(k, seq, nowS, mi, ws, sack);
  const tmp = spliceTmpPtr;
  // Next hop back to the client.
  if (pIsEthernet && (liveFlags & 1) == 0) {
    store<u32>(tmp + 120, load<u32>(data + 6));
    store<u16>(tmp + 124, load<u16>(data + 10));
  } else storeMac(tmp + 120, gwMacHi, gwMacLo);
  writeEth(tmp, tmp + 120);
  const ts = oTs != 0;
  const tsecr = ts ? bswap<u32>(load<u32>(tcp + oTs + 2)) : 0;
  const ol = writeSynOpts(tmp + 54, spliceMss, oWs >= 0 ? <i32>OUR_WS : -1, oSack, ts, nowMs, tsecr);
  const len = 14 + writeIpTcp(tmp + 14, load<u32>(pDst), load<u32>(pSrc), load<u16>(tcp + 2), load<u16>(tcp),
    isn, seq + 1, TH_SYN | TH_ACK, 0xffff, ol, 0);
  placeFrame(d, data, caplen, tmp, len);
  store<u8>(d, 2, 24);
  store<u16>(d, 0, 26);
  count(C_TX_CLIENT);
  stat(ST_COOKIES_SENT);
}

/** Client segment while the request is held: buffer in-order bytes, answer with an ACK in place. */
function buffering(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, i: u32, e: usize, vip: u32, seq: u32, flags: u32, nowS: u32, nowMs: u32): void {
  const start = pL4 + hlen;
  const end = payloadEnd(caplen);
  const pay = end > start ? end - start : 0;
  if (flags & TH_FIN) {
    // While the backend connection opens, a FIN (half-close after the request) is left
    // unacknowledged: the client sends it again, and by then it is spliced through.
    if (load<u8>(e + E_STATE) != <u8>SP_BUFFER) return absorb(d);
    // A client closing before its request is complete: not served (docs/splice.md).
    const tmp = spliceTmpPtr;
    const len = buildToClient(tmp, e, vip, load<u32>(e + E_OISN) + 1, seq + pay + 1, TH_RST | TH_ACK, 0, nowMs);
    placeFrame(d, data, caplen, tmp, len);
    store<u8>(d, 2, 24);
    store<u16>(d, 0, 26);
    count(C_TX_CLIENT);
    entryFree(i);
    return;
  }
  if (!pay) return absorb(d);
  const buffered = load<u32>(e + E_BUFFERED);
  const expected = load<u32>(e + E_CISN) + 1 + buffered;
  // Until the backend answers, more in-order bytes are held too (a body right behind the head): the
  // replay sends everything held.
  if (seq == expected && buffered < SPLICE_BUF) {
    const n = min<u32>(pay, SPLICE_BUF - buffered);
    memory.copy(bufPtr(e) + buffered, data + start, n);
    store<u32>(e + E_BUFFERED, buffered + n);
    stat(ST_BYTES_BUFFERED, n);
  }
  const nb = load<u32>(e + E_BUFFERED);
  const tmp = spliceTmpPtr;
  const len = buildToClient(tmp, e, vip, load<u32>(e + E_OISN) + 1, load<u32>(e + E_CISN) + 1 + nb, TH_ACK, ourWindow(e), nowMs);
  placeFrame(d, data, caplen, tmp, len);
  store<u8>(d, 2, 24);
  store<u16>(d, 0, 26);
  count(C_TX_CLIENT);
  if (load<u8>(e + E_STATE) == <u8>SP_BUFFER && (nb == SPLICE_BUF || requestComplete(bufPtr(e), nb))) {
    if (nb == SPLICE_BUF) stat(ST_REQUEST_TOO_BIG);
    connect(i, e, vip, nowMs);
  }
}

/** Whether the buffer holds a whole request head: an empty line (CRLF CRLF or LF LF) after the start line. */
export function requestComplete(p: usize, n: u32): bool {
  for (let x: u32 = 3; x < n; x++) {
    if (load<u8>(p + x) == 10) {
      if (load<u8>(p + x - 1) == 10) return true;
      if (load<u8>(p + x - 1) == 13 && load<u8>(p + x - 2) == 10) return true;
    }
  }
  return n >= 2 && load<u8>(p + 1) == 10 && load<u8>(p) == 10;
}

/** The backend for the buffered request: an RTSP session's, a URL rule's, or the scheduler's. */
function chooseBackend(e: usize, vip: u32): i32 {
  const v = vipPtr(vip);
  const p = bufPtr(e);
  const n = load<u32>(e + E_BUFFERED);
  const res = rtspResultPtr;
  // RTSP request with a Session header naming a live session: that session's backend.
  if (rtspParse(p, n, res) > 0 && load<u8>(res + 4) == 1 && (load<u32>(res + 12) & 2)) {
    const sp = load<u32>(res + 52);
    const s = findSession(vip, p + (sp & 0xffff), sp >> 16);
    if (s >= 0) {
      const j = sessionBackend(<u32>s);
      if (<u32>load<u8>(backendPtr(j) + B_STATE) != ST_DOWN) {
        stat(ST_SESSION_MATCHED);
        return <i32>j;
      }
    }
  }
  // URI: the second token of the request line.
  let a: u32 = 0;
  while (a < n && load<u8>(p + a) != 32) a++;
  a++;
  let b = a;
  while (b < n && load<u8>(p + b) != 32 && load<u8>(p + b) != 13 && load<u8>(p + b) != 10) b++;
  if (b <= n && a < b) {
    const first = <u32>load<u16>(v + V_FIRST), cnt = <u32>load<u16>(v + V_COUNT);
    for (let r: u32 = 0; r < SPLICE_RULES; r++) {
      const rp = spliceRulesPtr + <usize>r * SPLICE_RULE_SIZE;
      const len = <u32>load<u8>(rp + 1);
      if (!len || <u32>load<u8>(rp) != vip || len > b - a) continue;
      let same = true;
      for (let x: u32 = 0; x < len; x++) {
        if (load<u8>(rp + 8 + x) != load<u8>(p + a + x)) {
          same = false;
          break;
        }
      }
      const j = <u32>load<u16>(rp + 2);
      if (same && j >= first && j < first + cnt && <u32>load<u8>(backendPtr(j) + B_STATE) != ST_DOWN) {
        stat(ST_RULE_MATCHED);
        return <i32>j;
      }
    }
  }
  let sh: u32 = 0;
  if (<u32>load<u8>(v + V_SCHED) == S_SH || <u32>load<u8>(v + V_POLICY) == P_CLIENT) {
    // Source hashing: a key holding only the client address (docs/abi.md), from the record (the
    // timer binds requests too, when keyPtr holds nothing of this connection).
    const k2 = key2Ptr;
    memory.fill(k2, 0, 40);
    store<u32>(k2, 0xffff0000, 8);
    store<u32>(k2, load<u32>(e + E_CADDR), 12);
    sh = flowHash(k2);
  }
  return schedule(vip, load<u32>(e + E_HASH), sh);
}

function connect(i: u32, e: usize, vip: u32, nowMs: u32): void {
  const j = chooseBackend(e, vip);
  if (j < 0) {
    // No backend: reset the client (queued, the in-place frame is already its ACK).
    resetClient(e, vip, nowMs);
    entryFree(i);
    return;
  }
  const b = backendPtr(<u32>j);
  store<u16>(e + E_BACKEND, <u16>j);
  store<u32>(e + E_BADDR, load<u32>(b + B_ADDR + 12));
  store<u8>(e + E_STATE, <u8>SP_SYN_SENT);
  store<u8>(e + E_TRIES, 0);
  store<u32>(e + E_DEADLINE, nowMs + RTO_MS);
  // Our ISN and timestamps towards the backend run on the clock (RFC 6528's 4 us ticks; ms), not the
  // client's: a local port comes back while the backend may still hold the previous connection in
  // TIME_WAIT, which accepts a new SYN only when its sequence number or timestamp is newer.
  store<u32>(e + E_LISN, nowMs * 250 + (load<u32>(e + E_HASH) & 0xffff));
  store<u32>(e + E_TSOFFCB, nowMs - load<u32>(e + E_CTSVAL));
  const a = b + B_ACTIVE;
  store<u32>(a, load<u32>(a) + 1);
  bump(bstatPtr(<u32>j) + BS_FLOWS, 1);
  if (<u32>load<u8>(e + E_OPTS) & O_HANDOFF) return sendHandoff(i, e, vip, nowMs);
  sendBackendSyn(i, e);
}

// ---- TCP handoff (docs/handoff.md) ----

/**
 * Queues the HANDOFF message for backend j's agent (output record side 3): the 52-byte header in the
 * record, the held request bytes where the record's word at +12 points (they stay in the entry's
 * buffer until DONE). The message says what the backend's socket must be: our sequence numbers
 * towards the client, the client's, the options the handshake settled, the windows, the TSval.
 */
function sendHandoff(i: u32, e: usize, vip: u32, nowMs: u32): void {
  const f = outFrame();
  const opts = <u32>load<u8>(e + E_OPTS);
  if (!f) {
    // No room to queue it: the client is reset (the queue holds 256 records per batch).
    stat(ST_HANDOFFS_FAILED);
    resetClient(e, vip, nowMs);
    entryFree(i);
    return;
  }
  const id = (i & 0xffff) | (handoffSeq << 16);
  handoffSeq = (handoffSeq + 1) & 0xffff;
  store<u32>(e + E_HID, id);
  store<u8>(e + E_STATE, <u8>SP_HANDOFF);
  store<u32>(e + E_DEADLINE, nowMs + HANDOFF_MS);
  const n = load<u32>(e + E_BUFFERED);
  const ws = (opts & O_CWS) != 0;
  const cws: u32 = ws ? <u32>load<u8>(e + E_CWS) : 0;
  store<u8>(f, 1); // version
  store<u8>(f + 1, 1); // HANDOFF
  store<u16>(f + 2, bswap<u16>(<u16>(52 + n)));
  store<u32>(f + 4, bswap<u32>(id));
  store<u8>(f + 8, <u8>((ws ? 1 : 0) | (opts & O_CSACK ? 2 : 0) | (opts & O_CTS ? 4 : 0)));
  store<u8>(f + 9, <u8>cws);
  store<u8>(f + 10, <u8>(ws ? OUR_WS : 0));
  store<u8>(f + 11, 0);
  store<u16>(f + 12, bswap<u16>(load<u16>(e + E_CMSS)));
  store<u16>(f + 14, bswap<u16>(<u16>n));
  store<u32>(f + 16, load<u32>(e + E_CADDR)); // addresses and ports are in network order already
  store<u32>(f + 20, load<u32>(vipPtr(vip) + V_ADDR + 12));
  store<u16>(f + 24, load<u16>(e + E_CPORT));
  store<u16>(f + 26, load<u16>(e + E_VPORT));
  store<u32>(f + 28, bswap<u32>(load<u32>(e + E_OISN) + 1));
  store<u32>(f + 32, bswap<u32>(load<u32>(e + E_CISN) + 1));
  store<u32>(f + 36, bswap<u32>(<u32>bswap<u16>(load<u16>(e + E_CWIN)) << cws));
  store<u32>(f + 40, bswap<u32>(ourWindow(e) << (ws ? OUR_WS : 0)));
  const ts = (opts & O_CTS) != 0;
  store<u32>(f + 44, bswap<u32>(ts ? nowTs(e, nowMs) : 0));
  store<u32>(f + 48, bswap<u32>(ts ? load<u32>(e + E_CTSVAL) : 0));
  const r = spliceOutPtr + <usize>outCount * SPLICE_OUT_SLOT;
  outCommit(3, <u32>load<u16>(e + E_BACKEND), 52);
  store<u32>(r + 12, <u32>bufPtr(e));
  stat(ST_HANDOFFS);
}

/**
 * splice_handoff_done: the agent's DONE for HANDOFF `id` (status 0: the backend holds the
 * connection; anything else: failed, the client is reset through the output queue). Returns 0, or 1
 * when no connection waits for that id (it was reset or timed out meanwhile).
 */
export function spliceHandoffDone(id: u32, status: u32, nowMs: u32): u32 {
  const i = id & 0xffff;
  if (i >= spliceCap) return 1;
  const e = entryPtr(i);
  if (<u32>load<u8>(e + E_STATE) != SP_HANDOFF || load<u32>(e + E_HID) != id) return 1;
  releaseBuffer(e);
  if (status == 0) {
    store<u8>(e + E_STATE, <u8>SP_HANDED);
    store<u32>(e + E_SEEN, nowMs);
    stat(ST_HANDOFFS_DONE);
    return 0;
  }
  stat(ST_HANDOFFS_FAILED);
  resetClient(e, <u32>load<u8>(e + E_VIP), nowMs);
  entryFree(i);
  return 0;
}

/**
 * A client segment of a connection being handed off (dropped: the client retransmits it once the
 * backend holds the connection) or handed off (forwarded unchanged but for the MACs, as DR: the
 * backend owns the VIP and its socket continues our sequence numbers).
 */
function handoffInput(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, i: u32, e: usize, vip: u32, seq: u32, flags: u32, nowS: u32, nowMs: u32): void {
  const st = <u32>load<u8>(e + E_STATE);
  if (st == SP_HANDOFF) {
    // The agent's DONE can arrive after the backend's first answer has reached the client (the
    // server writes as soon as it has the socket). A segment acknowledging bytes beyond our ISN + 1
    // proves the backend's socket exists: forwarded. Anything else is dropped until DONE (the
    // client retransmits it); forwarded early it could reach a backend without the connection yet,
    // whose RST would end it.
    if ((flags & TH_ACK) && seqLt(load<u32>(e + E_OISN) + 1, bswap<u32>(load<u32>(tcp + 8)))) return handedForward(d, data, i, e, flags, nowMs);
    if (flags & TH_RST) {
      stat(ST_HANDOFF_ABANDONED);
      entryFree(i);
    } else stat(ST_HANDOFF_HELD);
    return absorb(d);
  }
  if ((flags & (TH_SYN | TH_ACK)) == TH_SYN) {
    // A new connection on the ports of one the client has closed starts over; inside a live one
    // a SYN is not forwarded.
    if (!(<u32>load<u8>(e + E_FIN) & 1)) return absorb(d);
    entryFree(i);
    return synCookie(d, data, caplen, tcp, hlen, keyPtr, vip, seq, nowS, nowMs);
  }
  // RTSP through a handoff: the responses that name sessions never pass us, but the client names
  // its session in every request after SETUP. Learned from those, a later connection carrying
  // that Session id lands on this backend too (chooseBackend); TEARDOWN ends it.
  const start = pL4 + hlen, end = payloadEnd(caplen);
  if (end > start && isRtspPort(vipPtr(vip), load<u16>(e + E_VPORT))) learnSession(data + start, end - start, vip, <u32>load<u16>(e + E_BACKEND), e, nowS);
  handedForward(d, data, i, e, flags, nowMs);
}

/** A client's RTSP request on a handed-off connection: its Session, if any, is (or stays) this backend's. */
function learnSession(p: usize, n: u32, vip: u32, j: u32, e: usize, nowS: u32): void {
  const res = rtspResultPtr;
  if (rtspParse(p, n, res) <= 0 || load<u8>(res + 4) != 1 || !(load<u32>(res + 12) & 2)) return;
  const sp = load<u32>(res + 52);
  const ip = p + (sp & 0xffff), len = sp >> 16;
  let s = findSession(vip, ip, len);
  if (s < 0) {
    s = createSession(vip, ip, len, j, clientVipKey(e, vip), 60, nowS); // RFC 2326's default session timeout
    if (s < 0) return;
  } else {
    reviveSession(<u32>s, nowS);
    touchSession(<u32>s, nowS);
  }
  if (<u32>load<u8>(res + 5) == METHOD_TEARDOWN) closeSession(<u32>s, SE_TEARDOWN, nowS);
}

/** Forwards a client segment of a handed-off connection to its backend (Ethernet addresses only). */
function handedForward(d: usize, data: usize, i: u32, e: usize, flags: u32, nowMs: u32): void {
  store<u32>(e + E_SEEN, nowMs);
  if (flags & TH_FIN) store<u8>(e + E_FIN, load<u8>(e + E_FIN) | 1);
  const j = <u32>load<u16>(e + E_BACKEND);
  emitL2(d, data, 0, true, backendPtr(j) + B_MAC, 0, 0, ET_IPV4);
  toBackendV(d, j);
  stat(ST_HANDED_FORWARDED);
  if (flags & TH_RST) {
    if (<u32>load<u8>(e + E_STATE) == SP_HANDOFF) stat(ST_HANDOFF_ABANDONED);
    entryFree(i);
  }
}

/** Our TSval towards the backend: the client's latest, on our clock. */
@inline function tsToBackend(e: usize): u32 {
  return load<u32>(e + E_CTSVAL) + load<u32>(e + E_TSOFFCB);
}

function sendBackendSyn(i: u32, e: usize): void {
  const f = outFrame();
  if (!f) return;
  const j = <u32>load<u16>(e + E_BACKEND);
  const opts = <u32>load<u8>(e + E_OPTS);
  writeEth(f, backendPtr(j) + B_MAC);
  const cws = <u32>load<u8>(e + E_CWS);
  const ol = writeSynOpts(f + 54, <u32>load<u16>(e + E_CMSS), (opts & O_CWS) ? <i32>cws : -1, (opts & O_CSACK) != 0,
    (opts & O_CTS) != 0, tsToBackend(e), 0);
  const win = rescale(<u32>bswap<u16>(load<u16>(e + E_CWIN)), (opts & O_CWS) ? cws : 0, 0);
  const len = 14 + writeIpTcp(f + 14, load<u32>(e + E_LADDR), load<u32>(e + E_BADDR), localPort(i), load<u16>(e + E_VPORT),
    load<u32>(e + E_LISN), 0, TH_SYN, win, ol, 0);
  outCommit(1, j, len);
  stat(ST_BACKEND_SYNS);
}

/** Queues the buffered request to the backend in MSS-sized segments. */
function sendReplay(i: u32, e: usize): void {
  const j = <u32>load<u16>(e + E_BACKEND);
  const opts = <u32>load<u8>(e + E_OPTS);
  const n = load<u32>(e + E_BUFFERED);
  let mss = <u32>load<u16>(e + E_BMSS);
  if (!mss) mss = 536;
  const ts = (opts & O_CTS) != 0 && (opts & O_BTS) != 0;
  const cap = SPLICE_OUT_SLOT - SPLICE_OUT_DATA - 54 - 12;
  if (mss > cap) mss = cap;
  if (ts && mss > 12) mss -= 12; // the MSS counts options in every segment (RFC 6691)
  const inS = (opts & O_CWS) ? <u32>load<u8>(e + E_CWS) : 0;
  const outS = (opts & O_BWS) ? inS : 0;
  const win = rescale(<u32>bswap<u16>(load<u16>(e + E_CWIN)), inS, outS);
  const src = bufPtr(e);
  if (n == 0) {
    // Nothing held (the server speaks first): the ACK that completes the backend's handshake.
    const f = outFrame();
    if (!f) return;
    writeEth(f, backendPtr(j) + B_MAC);
    let ol: u32 = 0;
    if (ts) ol = writeTsOpt(f + 54, tsToBackend(e), load<u32>(e + E_BTSVAL));
    const len = 14 + writeIpTcp(f + 14, load<u32>(e + E_LADDR), load<u32>(e + E_BADDR), localPort(i), load<u16>(e + E_VPORT),
      load<u32>(e + E_LISN) + 1, load<u32>(e + E_BISN) + 1, TH_ACK, win, ol, 0);
    outCommit(1, j, len);
    return;
  }
  for (let off: u32 = 0; off < n; off += mss) {
    const f = outFrame();
    if (!f) return;
    const seg = min<u32>(mss, n - off);
    writeEth(f, backendPtr(j) + B_MAC);
    let ol: u32 = 0;
    if (ts) ol = writeTsOpt(f + 54, tsToBackend(e), load<u32>(e + E_BTSVAL));
    memory.copy(f + 54 + ol, src + off, seg);
    const len = 14 + writeIpTcp(f + 14, load<u32>(e + E_LADDR), load<u32>(e + E_BADDR), localPort(i), load<u16>(e + E_VPORT),
      load<u32>(e + E_LISN) + 1 + off, load<u32>(e + E_BISN) + 1, TH_ACK | (off + seg == n ? TH_PSH : 0), win, ol, seg);
    outCommit(1, j, len);
    stat(ST_REPLAY_SEGMENTS);
  }
}

function resetClient(e: usize, vip: u32, nowMs: u32): void {
  const f = outFrame();
  if (!f) return;
  const len = buildToClient(f, e, vip, load<u32>(e + E_OISN) + 1, load<u32>(e + E_CISN) + 1 + load<u32>(e + E_BUFFERED),
    TH_RST | TH_ACK, 0, nowMs);
  outCommit(2, <u32>load<u16>(e + E_BACKEND), len);
}

function fromBackend(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, i: u32, e: usize, nowS: u32, nowMs: u32): void {
  const flags = <u32>load<u8>(tcp + 13);
  const seq = bswap<u32>(load<u32>(tcp + 4));
  const ack = bswap<u32>(load<u32>(tcp + 8));
  const st = <u32>load<u8>(e + E_STATE);
  const vip = <u32>load<u8>(e + E_VIP);
  store<u32>(e + E_SEEN, nowMs);
  if (st == SP_SYN_SENT) {
    if ((flags & TH_RST) && (flags & TH_ACK) && ack == load<u32>(e + E_LISN) + 1) {
      // Refused: the client learns it from an RST of ours.
      stat(ST_GIVE_UPS);
      const tmp = spliceTmpPtr;
      const len = buildToClient(tmp, e, vip, load<u32>(e + E_OISN) + 1, load<u32>(e + E_CISN) + 1 + load<u32>(e + E_BUFFERED),
        TH_RST | TH_ACK, 0, nowMs);
      placeFrame(d, data, caplen, tmp, len);
      toClient(d, <u32>load<u16>(e + E_BACKEND));
      entryFree(i);
      return;
    }
    if ((flags & (TH_SYN | TH_ACK | TH_RST)) != (TH_SYN | TH_ACK) || ack != load<u32>(e + E_LISN) + 1) return absorb(d);
    parseOpts(tcp, hlen);
    let opts = <u32>load<u8>(e + E_OPTS);
    if (oWs >= 0 && (opts & O_CWS)) {
      opts |= O_BWS;
      store<u8>(e + E_BWS, <u8>oWs);
    }
    if (oSack && (opts & O_CSACK)) opts |= O_BSACK;
    if (oTs && (opts & O_CTS)) {
      opts |= O_BTS;
      const btv = bswap<u32>(load<u32>(tcp + oTs + 2));
      store<u32>(e + E_BTSVAL, btv);
      // Backend TSvals reach the client shifted onto our clock, never behind what it saw from us.
      store<u32>(e + E_TSOFF, seqSub(nowTs(e, nowMs), btv));
    }
    store<u8>(e + E_OPTS, <u8>opts);
    store<u16>(e + E_BMSS, <u16>(oMss ? oMss : 536));
    store<u32>(e + E_BISN, seq);
    store<u8>(e + E_STATE, <u8>SP_REPLAY);
    store<u8>(e + E_TRIES, 0);
    store<u32>(e + E_DEADLINE, nowMs + RTO_MS);
    stat(ST_SPLICED);
    sendReplay(i, e);
    if (load<u32>(e + E_BUFFERED) == 0) {
      // Nothing to replay: joined as soon as our ACK is out.
      store<u8>(e + E_STATE, <u8>SP_SPLICED);
      releaseBuffer(e);
    }
    return absorb(d);
  }
  if (flags & TH_SYN) {
    // A retransmitted SYN-ACK: our replay (or our ACK, when there was nothing to replay) was lost.
    if ((flags & TH_ACK) && seq == load<u32>(e + E_BISN) &&
      (st == SP_REPLAY || (st == SP_SPLICED && load<u32>(e + E_BUFFERED) == 0))) sendReplay(i, e);
    return absorb(d);
  }
  const start = pL4 + hlen;
  const end = payloadEnd(caplen);
  const pay = end > start ? end - start : 0;
  if (st == SP_REPLAY) {
    const replayEnd = load<u32>(e + E_LISN) + 1 + load<u32>(e + E_BUFFERED);
    if ((flags & TH_ACK) && seqLeq(replayEnd, ack)) {
      store<u8>(e + E_STATE, <u8>SP_SPLICED);
      releaseBuffer(e);
    }
    // Acknowledgments of the replay alone: the client had them from us already.
    if (!pay && !(flags & (TH_FIN | TH_RST))) {
      if (oTsOf(tcp, hlen)) store<u32>(e + E_BTSVAL, bswap<u32>(load<u32>(tcp + oTs + 2)));
      return absorb(d);
    }
  }
  backendToClient(d, data, caplen, tcp, hlen, i, e, vip, flags, seq, start, pay, nowS);
}

/** Client -> backend in the splice phase: addresses, ports, ack, SACK, TSecr, window. */
function clientToBackend(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, i: u32, e: usize, flags: u32): void {
  const j = <u32>load<u16>(e + E_BACKEND);
  const opts = <u32>load<u8>(e + E_OPTS);
  const dBC = seqSub(load<u32>(e + E_OISN), load<u32>(e + E_BISN)); // backend seq -> client seq
  const dCB = seqSub(load<u32>(e + E_LISN), load<u32>(e + E_CISN)); // client seq -> ours towards the backend
  dTcp = 0;
  const ip = data + pL3;
  // Addresses (IP header and pseudo-header): client -> our local address, VIP -> backend.
  let dIp: u64 = 0;
  const os = load<u32>(ip + 12), od = load<u32>(ip + 16);
  const ns = load<u32>(e + E_LADDR), nd = load<u32>(e + E_BADDR);
  store<u32>(ip + 12, ns);
  store<u32>(ip + 16, nd);
  dIp = delta(sum32(os) + sum32(od), sum32(ns) + sum32(nd));
  adjust(ip + 10, dIp);
  dTcp += dIp;
  set16w(tcp, localPort(i));
  set32(tcp + 4, seqMap(bswap<u32>(load<u32>(tcp + 4)), dCB));
  if (flags & TH_ACK) set32(tcp + 8, seqUnmap(bswap<u32>(load<u32>(tcp + 8)), dBC));
  parseOpts(tcp, hlen);
  sackUnmap(tcp, opts, dBC);
  if (oTs) {
    const ctv = bswap<u32>(load<u32>(tcp + oTs + 2));
    store<u32>(e + E_CTSVAL, ctv);
    if (opts & O_BTS) {
      set32(tcp + oTs + 2, seqMap(ctv, load<u32>(e + E_TSOFFCB)));
      if (flags & TH_ACK) set32(tcp + oTs + 6, seqUnmap(bswap<u32>(load<u32>(tcp + oTs + 6)), load<u32>(e + E_TSOFF)));
    } else nopOut(tcp, oTs, 10);
  }
  store<u16>(e + E_CWIN, load<u16>(tcp + 14));
  const inS = (opts & O_CWS) ? <u32>load<u8>(e + E_CWS) : 0;
  const outS = (opts & O_BWS) ? inS : 0;
  if (inS != outS) set16w(tcp + 14, bswap<u16>(<u16>rescale(<u32>bswap<u16>(load<u16>(tcp + 14)), inS, outS)));
  if (pL4 + 18 <= caplen) adjust(tcp + 16, dTcp);
  const pEnd = payloadEnd(caplen);
  const pay = pEnd > pL4 + hlen ? pEnd - pL4 - hlen : 0;
  const done = endFlags(e, flags, 1, bswap<u32>(load<u32>(tcp + 4)) + pay, bswap<u32>(load<u32>(tcp + 8)));
  stat(ST_TRANSLATED);
  emitL2(d, data, 0, true, backendPtr(j) + B_MAC, 0, 0, ET_IPV4);
  toBackendV(d, j);
  if ((flags & TH_RST) || done) entryFree(i);
}

function backendToClient(d: usize, data: usize, caplen: u32, tcp: usize, hlen: u32, i: u32, e: usize, vip: u32, flags: u32, seq: u32, start: u32, pay: u32, nowS: u32): void {
  const j = <u32>load<u16>(e + E_BACKEND);
  const opts = <u32>load<u8>(e + E_OPTS);
  const dBC = seqSub(load<u32>(e + E_OISN), load<u32>(e + E_BISN));
  const dCB = seqSub(load<u32>(e + E_LISN), load<u32>(e + E_CISN));
  dTcp = 0;
  const ip = data + pL3;
  const os = load<u32>(ip + 12), od = load<u32>(ip + 16);
  const ns = load<u32>(vipPtr(vip) + V_ADDR + 12), nd = load<u32>(e + E_CADDR);
  store<u32>(ip + 12, ns);
  store<u32>(ip + 16, nd);
  const dIp = delta(sum32(os) + sum32(od), sum32(ns) + sum32(nd));
  adjust(ip + 10, dIp);
  dTcp += dIp;
  set16w(tcp + 2, load<u16>(e + E_CPORT));
  set32(tcp + 4, seqMap(seq, dBC));
  const ackL = bswap<u32>(load<u32>(tcp + 8));
  if (flags & TH_ACK) set32(tcp + 8, seqUnmap(ackL, dCB));
  parseOpts(tcp, hlen);
  // SACK blocks name client bytes, in our numbering towards the backend.
  sackUnmap(tcp, opts, dCB);
  if (oTs) {
    const tv = bswap<u32>(load<u32>(tcp + oTs + 2));
    store<u32>(e + E_BTSVAL, tv);
    if (opts & O_BTS) {
      const out = seqMap(tv, load<u32>(e + E_TSOFF));
      set32(tcp + oTs + 2, out);
      if (seqLt(load<u32>(e + E_OTSVAL), out)) store<u32>(e + E_OTSVAL, out);
      if (flags & TH_ACK) set32(tcp + oTs + 6, seqUnmap(bswap<u32>(load<u32>(tcp + oTs + 6)), load<u32>(e + E_TSOFFCB)));
    } else nopOut(tcp, oTs, 10);
  }
  const inS = (opts & O_BWS) ? <u32>load<u8>(e + E_BWS) : 0;
  const outS = (opts & O_CWS) ? OUR_WS : 0;
  if (inS != outS) set16w(tcp + 14, bswap<u16>(<u16>rescale(<u32>bswap<u16>(load<u16>(tcp + 14)), inS, outS)));
  if (pL4 + 18 <= caplen) adjust(tcp + 16, dTcp);
  // RTSP: a response naming a Session creates it on this backend (so a later connection with that
  // Session id lands here too). One message per segment is inspected (no reassembly on this path).
  if (pay && isRtspPort(vipPtr(vip), load<u16>(e + E_VPORT))) noteSession(data + start, pay, vip, j, e, nowS);
  const done = endFlags(e, flags, 2, seq + pay, ackL);
  stat(ST_TRANSLATED);
  emitL2(d, data, 0, true, e + E_CMAC, 0, 0, ET_IPV4);
  toClient(d, j);
  if ((flags & TH_RST) || done) entryFree(i);
}

/** Entry e's client and its VIP as a flow key's addresses, at keyPtr (the segment's own key is not needed any more). */
function clientVipKey(e: usize, vip: u32): usize {
  const k = keyPtr;
  store<u64>(k, 0);
  store<u32>(k, 0xffff0000, 8);
  store<u32>(k, load<u32>(e + E_CADDR), 12);
  copy16(k + 16, vipPtr(vip) + V_ADDR);
  return k;
}

function noteSession(p: usize, n: u32, vip: u32, j: u32, e: usize, nowS: u32): void {
  const res = rtspResultPtr;
  if (rtspParse(p, n, res) <= 0 || load<u8>(res + 4) != 2 || !(load<u32>(res + 12) & 2)) return;
  const sp = load<u32>(res + 52);
  const ip = p + (sp & 0xffff), len = sp >> 16;
  if (findSession(vip, ip, len) >= 0) return;
  const k = clientVipKey(e, vip);
  const s = createSession(vip, ip, len, j, k, load<u32>(res + 32), nowS);
  if (s < 0) return;
  // UDP media of the session (RTP on the low ports, RTCP on the high ones): expectations pinned to
  // this backend, forwarded as NAT does (session/inspect.ts), like a NAT VIP's sessions.
  const specs = <u32>load<u8>(res + 7);
  for (let t: u32 = 0; t < specs; t++) {
    const sp2 = res + 64 + t * 192;
    const tf = load<u32>(sp2);
    if (<u32>load<u8>(sp2 + 5) != 1 || <u32>load<u8>(sp2 + 6) == 2 || !(tf & 1) || !(tf & 4)) continue;
    const cLo = <u32>load<u16>(sp2 + 16), sLo = <u32>load<u16>(sp2 + 20);
    const cHi = tf & 2 ? <u32>load<u16>(sp2 + 18) : cLo + 1;
    const sHi = tf & 8 ? <u32>load<u16>(sp2 + 22) : sLo + 1;
    expectMedia(k, cLo, sLo, <u32>s, nowS);
    if (cHi != cLo && sHi != sLo && cHi <= 0xffff && sHi <= 0xffff) expectMedia(k, cHi, sHi, <u32>s, nowS);
  }
}

/**
 * FIN bookkeeping for a segment from `side` (1 client, 2 backend) whose FIN would sit at `finSeq`
 * and whose ack is `ack` (both in the numbering the other end uses, for the backend's ack: ours).
 * Both FINs make the entry closing; when both are acknowledged it can go at once (the end hosts
 * keep their own TIME_WAIT). Returns whether both FINs are acknowledged.
 */
function endFlags(e: usize, flags: u32, side: u32, finSeq: u32, ack: u32): bool {
  let f = <u32>load<u8>(e + E_FIN);
  if (flags & TH_FIN) {
    f |= side;
    store<u32>(e + (side == 1 ? E_CFIN : E_BFIN), finSeq);
  }
  if (flags & TH_ACK) {
    if (side == 1 && (f & 2) && seqLeq(load<u32>(e + E_BFIN) + 1, ack)) f |= 4;
    if (side == 2 && (f & 1) && seqLeq(load<u32>(e + E_CFIN) + 1, ack)) f |= 8;
  }
  store<u8>(e + E_FIN, <u8>f);
  if ((f & 3) == 3) store<u8>(e + E_STATE, <u8>SP_CLOSING);
  return (f & 15) == 15;
}

/**
 * Timers, driven by the host: retransmits the backend SYN and the replayed request (RTO doubling
 * from 1 s), gives up after MAX_TRIES with an RST to the client, and removes idle and closed
 * entries. Returns the entries removed.
 */
export function spliceTick(nowMs: u32): u32 {
  let removed: u32 = 0;
  for (let i: u32 = 0; i < spliceHiWater; i++) {
    const e = entryPtr(i);
    const st = <u32>load<u8>(e + E_STATE);
    if (st == SP_FREE) continue;
    const idle = nowMs - load<u32>(e + E_SEEN);
    const vip = <u32>load<u8>(e + E_VIP);
    if (st == SP_BUFFER) {
      if (<i32>(nowMs - load<u32>(e + E_DEADLINE)) >= 0) {
        connect(i, e, vip, nowMs);
        if (<u32>load<u8>(e + E_STATE) == SP_FREE) removed++;
      }
    } else if (st == SP_SYN_SENT || st == SP_REPLAY) {
      if (<i32>(nowMs - load<u32>(e + E_DEADLINE)) >= 0) {
        const tries = <u32>load<u8>(e + E_TRIES) + 1;
        if (tries > MAX_TRIES) {
          stat(ST_GIVE_UPS);
          resetClient(e, vip, nowMs);
          entryFree(i);
          removed++;
          continue;
        }
        store<u8>(e + E_TRIES, <u8>tries);
        store<u32>(e + E_DEADLINE, nowMs + (RTO_MS << tries));
        stat(ST_RETRANSMITS);
        if (st == SP_SYN_SENT) sendBackendSyn(i, e);
        else sendReplay(i, e);
      }
    } else if (st == SP_HANDOFF) {
      if (<i32>(nowMs - load<u32>(e + E_DEADLINE)) >= 0) {
        stat(ST_HANDOFF_TIMEOUTS);
        resetClient(e, vip, nowMs);
        entryFree(i);
        removed++;
      }
    } else if (st == SP_CLOSING || (st == SP_HANDED && (<u32>load<u8>(e + E_FIN) & 1))) {
      // A handed-off connection the client has closed: its last ACK follows within a round trip.
      if (<i32>idle > <i32>CLOSE_MS) {
        entryFree(i);
        removed++;
      }
    } else if (<i32>idle > <i32>IDLE_MS) {
      entryFree(i);
      removed++;
    }
  }
  return removed;
}
