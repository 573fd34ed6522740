// RTSP control-stream reassembly: the bytes of each direction of a control connection are put
// back in sequence-number order before the tokenizer sees them, so a message may start anywhere
// in a segment, span any number of segments, arrive out of order or retransmitted, and share a
// segment with other messages and interleaved ($) RTP/RTCP frames. Reassembly only feeds
// inspection: packets are forwarded exactly as before, never delayed or dropped.
//
// State. A fixed table of slots (layout.ts: flow capacity / 32, 512..32768, a power of two), one
// per control connection, keyed by its flow-table entry (index + 1 in a u32 owner array, probed
// linearly PROBE slots from a hash of the index). A slot is taken on the first payload segment of
// a connection, freed when the flow closes (flowtable.ts closeFlow calls reasmRelease), and taken
// over when its owner is stale (the entry now holds another flow, or its flow expired unswept).
// No slot within the probe window: rtsp-reasm-slots-full, and the segment is inspected on its own.
//
//  slot (256 bytes): 0 flow sig u32 (when taken) | 4 flow entry index u32 | 8 last packet time u32
//    16 direction client -> VIP (56 bytes) | 72 direction VIP -> client (56 bytes)
//    128 RTSP NAT record (rtspnat.ts: sequence-number offsets and the edit log; zero when unused)
//  direction: 0 flags u8 (1 initialised, 2 resynchronising) | 1 held ranges u8 (0..4)
//    2 buffer u16 (number + 1, 0 = none) | 4 base u32: sequence number of the buffer's first byte
//    8 rcv u32: next expected sequence number | 16 held ranges [4] x (start u32, end u32), sorted,
//    disjoint, not adjacent, all after rcv
//
// Bytes [base, rcv) are the unconsumed in-order bytes, at buffer offsets 0.. (rcv - base); held
// (out-of-order) bytes lie at offset (seq - base) of the same buffer, so the buffer is a
// REASM_BUF-byte (4096) window from base in which pending and held bytes share the room. When
// base is after rcv, the bytes [rcv, base) are the rest of a message body or of a $ frame whose
// header was already seen: they are skipped as they arrive, never stored, so bodies and frames of
// any length cost nothing. Buffers come from a pool (slots / 4, 128..2048) and are held only
// while a direction has pending or held bytes: a connection whose messages each end within a
// segment is parsed in place and never holds one. No free buffer: rtsp-reasm-buffers-full, and
// that direction resynchronises.
//
// Sequence numbers compare mod 2^32 (signed difference), so streams wrap freely. The next expected
// number starts at the first payload segment seen (after a SYN's sequence number when the segment
// carries SYN), or at the acknowledgment number of the first payload segment of the other
// direction, if that comes first (so the first reply's segments may arrive out of order too). The
// engine passes only segments with payload, so the handshake itself is not seen.
//  - data before rcv (retransmissions, overlaps) is trimmed or ignored (rtsp-reasm-retransmits);
//  - data after rcv is held, up to 4 ranges within the window (rtsp-reasm-held); when it does not
//    fit, the oldest gap is given up (rtsp-reasm-dropped) until it fits or the segment is in order;
//    a gap is also given up as soon as the other direction acknowledges bytes after it (the
//    capture missed them);
//  - segments cut short by the capture length or by IP fragmentation lose their tail
//    (rtsp-reasm-truncated).
// Giving up bytes inside a skipped body or frame loses nothing; giving up others resynchronises.
//
// Parsing. After each in-order arrival the buffer (or the segment itself, when nothing is pending)
// is parsed message by message: CR/LF between messages skipped; `$`, channel, length (u16 BE),
// that many bytes: skipped (rtsp-interleaved); otherwise the tokenizer: a complete message (or a
// complete header block whose body has not all come: its body is then skipped as it arrives) is
// handled like every message (inspect.ts handleMessage); "need more" keeps the bytes (a header
// block of at most 4096 bytes fits; a larger one is rtsp-reasm-overflow); an error
// (rtsp-errors) resynchronises. Resynchronising: the bytes are dropped until a line that looks
// like an RTSP start line (an upper-case token followed by a space, "RTSP/1.0 200" included) or a
// `$`, at the start of a segment or after a line feed. Work per packet is linear in its payload
// plus a few passes over one buffer; memory is fixed at init.
import {
  reasmOwnersPtr, reasmSlotsPtr, reasmMask, reasmBufsPtr, reasmFreePtr, reasmBufCount, reasmTmpPtr, rtspResultPtr,
  flowsPtr, REASM_SLOT_SIZE, REASM_BUF,
} from '../layout';
import {
  count, C_RTSP_MESSAGES, C_RTSP_ERRORS, C_RTSP_PARTIAL, C_RTSP_INTERLEAVED, C_RTSP_REASM_HELD, C_RTSP_REASM_DROPPED,
  C_RTSP_REASM_OVERFLOW, C_RTSP_REASM_SLOTS_FULL, C_RTSP_REASM_RETRANSMITS, C_RTSP_REASM_BUFFERS_FULL,
  C_RTSP_REASM_TRUNCATED,
} from '../counters';
import { rtspParse, R_HEADER_LEN, R_MESSAGE_LEN } from './rtsp';
import { fSig, fExpire, flowIndex } from '../lb/flowtable';
import { handleMessage } from './inspect';
import { natMessage, natPartial } from './rtspnat';

const PROBE: u32 = 16; // slots looked at per lookup (64 bytes of owners)
const HOLD_RANGES: u32 = 4; // out-of-order ranges held per direction

// Slot record.
const S_SIG: usize = 0;
const S_INDEX: usize = 4;
const S_LAST: usize = 8;
const S_DIR: usize = 16;
const DIR_SIZE: usize = 56;
// Direction record.
const D_FLAGS: usize = 0;
const D_NR: usize = 1;
const D_BUF: usize = 2;
const D_BASE: usize = 4;
const D_RCV: usize = 8;
const D_RANGES: usize = 16;
const DF_INIT: u32 = 1;
const DF_RESYNC: u32 = 2;

const TCP_SYN: u32 = 2;
const TCP_RST: u32 = 4;
const TCP_ACK: u32 = 16;

/** Slots in use. */
export let reasmLive: u32 = 0;
/** Buffers lent out. */
export let reasmBuffersUsed: u32 = 0;
let freeTop: u32 = 0; // returned buffers on the free stack
let freshBufs: u32 = 0; // buffers handed out at least once (the rest are untouched)
let curSlot: usize = 0; // the slot being worked on
let aborted: bool = false; // ... was freed under us (its flow closed while a message was handled)
let gSkip: u32 = 0; // scan(): bytes after the scanned ones that belong to its last message or frame
let gScanSeq: u32 = 0; // scan(): sequence number of its first byte (for RTSP NAT's edits)
let lastSlot: usize = 0; // the slot the last reasmSegment worked on (0: none, or freed meanwhile)

// The packet being inspected, for handleMessage.
let cFromClient: bool = false;
let cFlow: usize = 0;
let cKey: usize = 0;
let cVip: u32 = 0;
let cBackend: u32 = 0;
let cNow: u32 = 0;

@inline function sdiff(a: u32, b: u32): i32 {
  return <i32>(a - b);
}

@inline function ownerPtr(i: u32): usize {
  return reasmOwnersPtr + (<usize>i << 2);
}

@inline function slotPtr(i: u32): usize {
  return reasmSlotsPtr + <usize>i * REASM_SLOT_SIZE;
}

@inline function slotHome(fi: u32): u32 {
  const h = fi * 0x9e3779b1;
  return h ^ (h >> 15);
}

/** The flow ref of flow-table entry `index` (4-entry buckets of 256 bytes). */
@inline function flowRef(index: u32): usize {
  return (flowsPtr + (<usize>(index >> 2) << 8)) | <usize>(index & 3);
}

@inline function bufPtr(b: u32): usize {
  return reasmBufsPtr + <usize>(b - 1) * REASM_BUF;
}

@inline function rangeStart(d: usize, i: u32): u32 {
  return load<u32>(d + D_RANGES + (<usize>i << 3));
}

@inline function rangeEnd(d: usize, i: u32): u32 {
  return load<u32>(d + D_RANGES + (<usize>i << 3) + 4);
}

@inline function setRange(d: usize, i: u32, s: u32, e: u32): void {
  store<u32>(d + D_RANGES + (<usize>i << 3), s);
  store<u32>(d + D_RANGES + (<usize>i << 3) + 4, e);
}

// ---------------------------------------------------------------------------------------------
// Buffers

function bufAlloc(): u32 {
  let b: u32 = 0;
  if (freeTop) {
    freeTop--;
    b = <u32>load<u16>(reasmFreePtr + (<usize>freeTop << 1));
  } else if (freshBufs < reasmBufCount) {
    b = ++freshBufs;
  } else {
    count(C_RTSP_REASM_BUFFERS_FULL);
    return 0;
  }
  reasmBuffersUsed++;
  return b;
}

function releaseBuf(d: usize): void {
  const b = <u32>load<u16>(d + D_BUF);
  if (!b) return;
  store<u16>(reasmFreePtr + (<usize>freeTop << 1), <u16>b);
  freeTop++;
  reasmBuffersUsed--;
  store<u16>(d + D_BUF, 0);
}

/** The direction's buffer, lent now if it has none (0: none free, counted). */
function bufOf(d: usize): u32 {
  let b = <u32>load<u16>(d + D_BUF);
  if (!b) {
    b = bufAlloc();
    store<u16>(d + D_BUF, <u16>b);
  }
  return b;
}

/** Bytes of the buffer in use: up to the end of the pending bytes or of the last held range. */
function storedEnd(d: usize): u32 {
  const base = load<u32>(d + D_BASE);
  let e = sdiff(load<u32>(d + D_RCV), base);
  const nr = <u32>load<u8>(d + D_NR);
  if (nr) {
    const h = sdiff(rangeEnd(d, nr - 1), base);
    if (h > e) e = h;
  }
  if (e <= 0) return 0;
  return <u32>e < REASM_BUF ? <u32>e : REASM_BUF;
}

/** Returns the buffer to the pool when it holds nothing. */
@inline function maybeRelease(d: usize): void {
  if (load<u16>(d + D_BUF) && storedEnd(d) == 0) releaseBuf(d);
}

/** Moves the window forward by `shift` bytes (consumed or skipped), keeping what lies after. */
function advanceBase(d: usize, shift: u32): void {
  const b = <u32>load<u16>(d + D_BUF);
  if (b) {
    const hi = storedEnd(d);
    if (shift < hi) {
      const p = bufPtr(b);
      memory.copy(p, p + shift, hi - shift);
    }
  }
  store<u32>(d + D_BASE, load<u32>(d + D_BASE) + shift);
}

// ---------------------------------------------------------------------------------------------
// Slots

function initDir(d: usize, seq: u32): void {
  releaseBuf(d);
  store<u8>(d + D_FLAGS, <u8>DF_INIT);
  store<u8>(d + D_NR, 0);
  store<u32>(d + D_BASE, seq);
  store<u32>(d + D_RCV, seq);
}

function freeSlot(i: u32): void {
  const s = slotPtr(i);
  releaseBuf(s + S_DIR);
  releaseBuf(s + S_DIR + DIR_SIZE);
  memory.fill(s, 0, REASM_SLOT_SIZE);
  store<u32>(ownerPtr(i), 0);
  reasmLive--;
  if (s == curSlot) aborted = true;
}

/** An owner whose flow is gone: the entry holds another flow now, or the flow expired unswept. */
function slotStale(i: u32, now: u32): bool {
  const fi = load<u32>(ownerPtr(i));
  if (!fi) return true;
  const r = flowRef(fi - 1);
  return load<u32>(fSig(r)) != load<u32>(slotPtr(i) + S_SIG) || load<u32>(fExpire(r)) < now;
}

/** The slot of control flow `flow`, taken now if it has none; 0 when none is free. */
function slotFor(flow: usize, now: u32): usize {
  const fi = flowIndex(flow) + 1;
  const sig = load<u32>(fSig(flow));
  const h = slotHome(fi);
  let free: i32 = -1;
  for (let k: u32 = 0; k < PROBE; k++) {
    const i = (h + k) & reasmMask;
    const o = load<u32>(ownerPtr(i));
    if (o == fi) {
      if (load<u32>(slotPtr(i) + S_SIG) == sig) return slotPtr(i);
      freeSlot(i); // left by an earlier flow of the same entry
    }
    if (free < 0 && load<u32>(ownerPtr(i)) == 0) free = <i32>i;
  }
  if (free < 0) {
    for (let k: u32 = 0; k < PROBE; k++) {
      const i = (h + k) & reasmMask;
      if (slotStale(i, now)) {
        freeSlot(i);
        free = <i32>i;
        break;
      }
    }
  }
  if (free < 0) return 0;
  const i = <u32>free;
  const s = slotPtr(i);
  store<u32>(ownerPtr(i), fi);
  store<u32>(s + S_SIG, sig);
  store<u32>(s + S_INDEX, fi - 1);
  reasmLive++;
  return s;
}

/** The flow closes: its slot and buffers go back (flowtable.ts closeFlow). */
export function reasmRelease(flow: usize): void {
  if (!reasmLive) return;
  const fi = flowIndex(flow) + 1;
  const h = slotHome(fi);
  for (let k: u32 = 0; k < PROBE; k++) {
    const i = (h + k) & reasmMask;
    if (load<u32>(ownerPtr(i)) == fi) {
      freeSlot(i);
      return;
    }
  }
}

/** The slot of control flow `flow` if it has one (never takes one), else 0. */
export function reasmFind(flow: usize): usize {
  if (!reasmLive) return 0;
  const fi = flowIndex(flow) + 1;
  const sig = load<u32>(fSig(flow));
  const h = slotHome(fi);
  for (let k: u32 = 0; k < PROBE; k++) {
    const i = (h + k) & reasmMask;
    if (load<u32>(ownerPtr(i)) == fi && load<u32>(slotPtr(i) + S_SIG) == sig) return slotPtr(i);
  }
  return 0;
}

/** The slot being worked on while a segment is parsed (0 when inspected without one). */
export function reasmCurSlot(): usize {
  return curSlot;
}

/** The slot the last reasmSegment call used, if it still belongs to the flow. */
export function reasmLastSlot(): usize {
  return lastSlot;
}

export function reasmClearLast(): void {
  lastSlot = 0;
}

// ---------------------------------------------------------------------------------------------
// Sequence space

/** Held ranges that rcv has reached become in-order bytes (theirs are in the buffer already). */
function pull(d: usize): void {
  const nr = <u32>load<u8>(d + D_NR);
  let rcv = load<u32>(d + D_RCV);
  let k: u32 = 0;
  while (k < nr && sdiff(rangeStart(d, k), rcv) <= 0) {
    const e = rangeEnd(d, k);
    if (sdiff(e, rcv) > 0) rcv = e;
    k++;
  }
  if (!k) return;
  for (let i = k; i < nr; i++) setRange(d, i - k, rangeStart(d, i), rangeEnd(d, i));
  store<u8>(d + D_NR, <u8>(nr - k));
  store<u32>(d + D_RCV, rcv);
}

/**
 * Loses sync: pending and held bytes are dropped (the sequence space they cover counts as
 * received), and bytes are ignored until something that looks like a message or a frame starts.
 */
function resync(d: usize): void {
  let rcv = load<u32>(d + D_RCV);
  const nr = <u32>load<u8>(d + D_NR);
  if (nr) {
    const e = rangeEnd(d, nr - 1);
    if (sdiff(e, rcv) > 0) rcv = e;
    store<u8>(d + D_NR, 0);
  }
  const base = load<u32>(d + D_BASE);
  store<u32>(d + D_RCV, rcv);
  if (sdiff(rcv, base) > 0) store<u32>(d + D_BASE, rcv); // else a skip still runs to base
  releaseBuf(d);
  store<u8>(d + D_FLAGS, <u8>(<u32>load<u8>(d + D_FLAGS) | DF_RESYNC));
}

/**
 * Gives up the bytes [rcv, g) (g after rcv): they will never be seen. Inside a body or frame
 * being skipped that costs nothing; otherwise what was pending is cut: drop it and resynchronise.
 */
function giveUpTo(d: usize, g: u32): void {
  const base = load<u32>(d + D_BASE);
  if (sdiff(g, base) > 0) {
    advanceBase(d, g - base);
    store<u8>(d + D_FLAGS, <u8>(<u32>load<u8>(d + D_FLAGS) | DF_RESYNC));
  }
  store<u32>(d + D_RCV, g);
}

/**
 * Holds [s, s+n) (after rcv): records the range, merged with those it touches, and stores its
 * bytes from base on. False when that would take a fifth range, leave the window, or need a
 * buffer when none is free.
 */
function hold(d: usize, s: u32, p: usize, n: u32): bool {
  const e = s + n;
  const base = load<u32>(d + D_BASE);
  const over = sdiff(e, base);
  if (over > <i32>REASM_BUF) return false;
  const nr = <u32>load<u8>(d + D_NR);
  let ns = s, ne = e;
  let kept: u32 = 0;
  for (let i: u32 = 0; i < nr; i++) {
    const a = rangeStart(d, i), b = rangeEnd(d, i);
    if (sdiff(b, ns) < 0 || sdiff(ne, a) < 0) kept++;
    else {
      if (sdiff(a, ns) < 0) ns = a;
      if (sdiff(b, ne) > 0) ne = b;
    }
  }
  if (kept + 1 > HOLD_RANGES) return false;
  if (over > 0) {
    const b = bufOf(d);
    if (!b) return false;
    const from = sdiff(s, base) > 0 ? s : base; // bytes before base belong to a skip
    memory.copy(bufPtr(b) + <usize>(from - base), p + <usize>(from - s), <usize>(e - from));
  }
  let w: u32 = 0;
  for (let i: u32 = 0; i < nr; i++) {
    const a = rangeStart(d, i), b = rangeEnd(d, i);
    if (sdiff(b, ns) < 0 || sdiff(ne, a) < 0) {
      if (w != i) setRange(d, w, a, b);
      w++;
    }
  }
  let at = w;
  while (at > 0 && sdiff(rangeStart(d, at - 1), ns) > 0) {
    setRange(d, at, rangeStart(d, at - 1), rangeEnd(d, at - 1));
    at--;
  }
  setRange(d, at, ns, ne);
  store<u8>(d + D_NR, <u8>(w + 1));
  count(C_RTSP_REASM_HELD);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** An upper-case token followed by a space (a method, or "RTSP/1.0" of a status line), or `$`. */
function looksLikeStart(b: usize, at: u32, avail: u32): bool {
  const c = <u32>load<u8>(b + at);
  if (c == 0x24) return true;
  if (c < 0x41 || c > 0x5a) return false;
  let i = at + 1;
  const lim = at + 32;
  while (i < avail && i < lim) {
    const x = <u32>load<u8>(b + i);
    if (x == 0x20) return true;
    if (!((x >= 0x41 && x <= 0x5a) || (x >= 0x30 && x <= 0x39) || x == 0x5f || x == 0x2d || x == 0x2f || x == 0x2e)) return false;
    i++;
  }
  return i == avail; // cut short: let the tokenizer judge once more bytes are there
}

/** Where parsing may start again: `from` if allowed and plausible, else after a line feed; -1. */
function findStart(b: usize, from: u32, avail: u32, atStart: bool): i32 {
  if (atStart && from < avail && looksLikeStart(b, from, avail)) return <i32>from;
  for (let i = from; i + 1 < avail; i++) {
    if (load<u8>(b + i) == 10 && looksLikeStart(b, i + 1, avail)) return <i32>(i + 1);
  }
  return -1;
}

/**
 * Parses the in-order bytes [b, b+avail) of direction d: messages are handled, $ frames skipped.
 * Returns how many bytes were consumed (the rest is an unfinished message or frame header); gSkip
 * is set to the bytes after `avail` that the last message's body or frame still covers.
 * `atStart`: b begins a segment (a message or a frame may start there while resynchronising).
 */
function scan(d: usize, b: usize, avail: u32, atStart: bool): u32 {
  gSkip = 0;
  const r = rtspResultPtr;
  let pos: u32 = 0;
  while (pos < avail) {
    if (<u32>load<u8>(d + D_FLAGS) & DF_RESYNC) {
      const q = findStart(b, pos, avail, atStart && pos == 0);
      if (q < 0) return avail;
      pos = <u32>q;
      store<u8>(d + D_FLAGS, <u8>(<u32>load<u8>(d + D_FLAGS) & ~DF_RESYNC));
    }
    const c = <u32>load<u8>(b + pos);
    if (c == 13 || c == 10) {
      pos++;
      continue;
    }
    const rem = avail - pos;
    if (c == 0x24) {
      // Interleaved binary data (RFC 2326 10.12): '$', channel, length u16 big-endian, data.
      if (rem < 4) return pos;
      count(C_RTSP_INTERLEAVED);
      const total: u32 = 4 + ((<u32>load<u8>(b + pos + 2) << 8) | <u32>load<u8>(b + pos + 3));
      if (total <= rem) {
        pos += total;
        continue;
      }
      gSkip = total - rem;
      return avail;
    }
    const st = rtspParse(b + pos, rem, r);
    if (st > 0) {
      count(C_RTSP_MESSAGES);
      natMessage(b + pos, gScanSeq + pos, st, cFromClient);
      handleMessage(b + pos, cFromClient, cFlow, cKey, cVip, cBackend, cNow);
      if (aborted) return avail;
      pos += <u32>st;
      continue;
    }
    if (st == 0) {
      if (load<u32>(r + R_HEADER_LEN) == 0) {
        count(C_RTSP_PARTIAL);
        natPartial(b + pos, gScanSeq + pos, rem, cFromClient);
        return pos;
      }
      // The header block is complete, the body is not: handle it now, skip the body as it comes.
      count(C_RTSP_MESSAGES);
      const total = load<u32>(r + R_MESSAGE_LEN);
      natMessage(b + pos, gScanSeq + pos, 0, cFromClient);
      handleMessage(b + pos, cFromClient, cFlow, cKey, cVip, cBackend, cNow);
      if (aborted) return avail;
      gSkip = total - rem;
      return avail;
    }
    count(C_RTSP_ERRORS);
    store<u8>(d + D_FLAGS, <u8>(<u32>load<u8>(d + D_FLAGS) | DF_RESYNC));
    pos++;
  }
  return avail;
}

/**
 * In-order bytes [p, p+n) with sequence number cs (at or before rcv: the part before rcv is
 * trimmed); n may be 0 to process held bytes that became reachable. segStart: p begins a segment.
 */
function feed(d: usize, p: usize, n: u32, cs: u32, segStart: bool): void {
  let first = segStart;
  while (true) {
    // Whether the buffer's first byte will be where this chunk (or a held segment) begins.
    const fresh = load<u32>(d + D_RCV) == load<u32>(d + D_BASE);
    pull(d);
    let rcv = load<u32>(d + D_RCV);
    if (n > 0) {
      const ov = sdiff(rcv, cs); // held bytes may already cover the chunk's start
      if (ov > 0) {
        const t = <u32>ov < n ? <u32>ov : n;
        p += t;
        n -= t;
        cs += t;
        first = false;
      }
    }
    const base = load<u32>(d + D_BASE);
    if (n > 0) {
      const sk = sdiff(base, rcv); // the rest of a body or $ frame
      if (sk > 0) {
        const t = <u32>sk < n ? <u32>sk : n;
        p += t;
        n -= t;
        cs += t;
        first = t == <u32>sk; // a message or frame begins right after
        store<u32>(d + D_RCV, rcv + t);
        continue;
      }
    }
    const nr = <u32>load<u8>(d + D_NR);
    const len = sdiff(rcv, base);
    if (n > 0 && len == 0 && nr == 0) {
      // Nothing pending: parse the segment where it lies and keep only an unfinished message.
      gScanSeq = rcv;
      const used = scan(d, p, n, first);
      if (aborted) return;
      rcv += n;
      store<u32>(d + D_RCV, rcv);
      store<u32>(d + D_BASE, rcv - n + used + gSkip);
      const left = n - used;
      if (left) {
        if (left > REASM_BUF) {
          count(C_RTSP_REASM_OVERFLOW);
          store<u32>(d + D_BASE, rcv);
          resync(d);
          return;
        }
        const b = bufOf(d);
        if (!b) {
          store<u32>(d + D_BASE, rcv);
          resync(d);
          return;
        }
        memory.copy(bufPtr(b), p + used, left);
      } else maybeRelease(d);
      return;
    }
    if (n == 0 && len <= 0) {
      maybeRelease(d);
      return;
    }
    // Pending or held bytes: append to the buffer, then parse it from its start.
    let b = <u32>load<u16>(d + D_BUF);
    if (n > 0) {
      if (!b) b = bufOf(d);
      if (!b) {
        resync(d);
        continue;
      }
      const room = REASM_BUF - <u32>len;
      if (room == 0) {
        count(C_RTSP_REASM_OVERFLOW);
        resync(d);
        continue;
      }
      const t = n < room ? n : room;
      memory.copy(bufPtr(b) + <usize>len, p, t);
      p += t;
      n -= t;
      cs += t;
      store<u32>(d + D_RCV, rcv + t);
      pull(d);
      rcv = load<u32>(d + D_RCV);
    }
    const avail = <u32>sdiff(rcv, base);
    gScanSeq = base;
    const used = scan(d, bufPtr(b), avail, first && fresh);
    if (aborted) return;
    first = false;
    const shift = used + gSkip;
    if (shift) advanceBase(d, shift);
    else if (avail >= REASM_BUF) {
      // A header block larger than the buffer: what is pending cannot become a message.
      count(C_RTSP_REASM_OVERFLOW);
      resync(d);
    }
    if (n == 0) {
      maybeRelease(d);
      return;
    }
  }
}

/**
 * The other direction acknowledged bytes after a gap of d: they passed unseen; give it up. d's
 * messages are parsed here, so the context's direction is d's for the while.
 */
function ackGaps(d: usize, ack: u32): void {
  cFromClient = !cFromClient;
  while (<u32>load<u8>(d + D_NR) > 0) {
    const g = rangeStart(d, 0);
    if (sdiff(ack, g) < 0 || sdiff(g, load<u32>(d + D_RCV)) <= 0) break;
    count(C_RTSP_REASM_DROPPED);
    giveUpTo(d, g);
    feed(d, 0, 0, g, true);
    if (aborted) break;
  }
  cFromClient = !cFromClient;
}

/** One segment's captured bytes [p, p+n) at sequence number s; `real` bytes were sent (>= n). */
function segment(d: usize, s: u32, p: usize, n: u32, real: u32): void {
  const dd = sdiff(s, load<u32>(d + D_RCV));
  if (dd < 0) {
    count(C_RTSP_REASM_RETRANSMITS);
    if (<u32>(load<u32>(d + D_RCV) - s) >= real) return; // all seen before
  }
  // Ahead of rcv: hold it; if it does not fit, give up gaps (oldest first) until it does or it is
  // in order (at most one round per held range, then the gap before it).
  let dropped = false;
  while (sdiff(s, load<u32>(d + D_RCV)) > 0) {
    if (hold(d, s, p, n)) {
      if (real > n) count(C_RTSP_REASM_TRUNCATED); // its tail stays a gap
      return;
    }
    if (!dropped) {
      count(C_RTSP_REASM_DROPPED);
      dropped = true;
    }
    const g = load<u8>(d + D_NR) ? rangeStart(d, 0) : s;
    giveUpTo(d, g);
    feed(d, 0, 0, g, true);
    if (aborted) return;
  }
  feed(d, p, n, s, true);
  if (aborted) return;
  if (real > n) {
    // The capture cut the segment short: its tail is a gap that nothing will fill.
    count(C_RTSP_REASM_TRUNCATED);
    const end = s + real;
    if (sdiff(end, load<u32>(d + D_RCV)) > 0) {
      giveUpTo(d, end);
      feed(d, 0, 0, end, true);
    }
  }
}

@inline function setContext(fromClient: bool, flow: usize, k: usize, vip: u32, j: u32, now: u32): void {
  cFromClient = fromClient;
  cFlow = flow;
  cKey = k;
  cVip = vip;
  cBackend = j;
  cNow = now;
}

/**
 * A TCP segment of control flow `flow` with payload [p, p+len) (`real` bytes on the wire, more
 * when the capture cut it; `fragmented`: only the first IP fragment is here), sequence and
 * acknowledgment numbers and flags from its header.
 */
export function reasmSegment(
  p: usize, len: u32, real: u32, seq: u32, ack: u32, flags: u32, fragmented: bool,
  fromClient: bool, flow: usize, k: usize, vip: u32, j: u32, now: u32,
): void {
  lastSlot = 0;
  if (len == 0 || (flags & TCP_RST)) return;
  setContext(fromClient, flow, k, vip, j, now);
  const slot = slotFor(flow, now);
  if (!slot) {
    count(C_RTSP_REASM_SLOTS_FULL);
    reasmStateless(p, len, fromClient, flow, k, vip, j, now);
    return;
  }
  store<u32>(slot + S_LAST, now);
  const d = slot + S_DIR + (fromClient ? 0 : DIR_SIZE);
  const o = slot + S_DIR + (fromClient ? DIR_SIZE : 0);
  curSlot = slot;
  aborted = false;
  if (flags & TCP_ACK) {
    // ack == 0 is taken as unset (synthetic traffic), not as a sequence number.
    if (!(<u32>load<u8>(o + D_FLAGS) & DF_INIT)) {
      if (ack) initDir(o, ack);
    } else if (load<u8>(o + D_NR)) ackGaps(o, ack);
  }
  if (!aborted) {
    const s = flags & TCP_SYN ? seq + 1 : seq;
    if (!(<u32>load<u8>(d + D_FLAGS) & DF_INIT)) initDir(d, s);
    segment(d, s, p, len, real < len ? len : real);
    if (!aborted && fragmented) {
      // The rest of the segment is in later fragments, which carry no TCP header: start over at
      // the next segment.
      count(C_RTSP_REASM_TRUNCATED);
      releaseBuf(d);
      store<u8>(d + D_FLAGS, 0);
      store<u8>(d + D_NR, 0);
    }
  }
  lastSlot = aborted ? 0 : slot;
  curSlot = 0;
  aborted = false;
}

/** Inspection without reassembly (no slot, or no TCP header at hand): the payload on its own. */
export function reasmStateless(p: usize, len: u32, fromClient: bool, flow: usize, k: usize, vip: u32, j: u32, now: u32): void {
  if (len == 0) return;
  setContext(fromClient, flow, k, vip, j, now);
  curSlot = 0;
  lastSlot = 0;
  aborted = false;
  gScanSeq = 0;
  store<u8>(reasmTmpPtr + D_FLAGS, 0);
  scan(reasmTmpPtr, p, len, true);
}
