// Connection tracking: a fixed-capacity, bucketized open-addressing table. A bucket holds 4 flows
// in 256 bytes laid out by field (VPP lbhash style), so the first cache line of a bucket holds the
// four signatures, expiries, backends and states: a lookup reads that one line, compares the
// signatures (one SIMD compare), and touches the key only for a matching signature. That is
// 64 bytes per flow with no separate index. A key may live in either of two buckets (two-choice
// hashing keeps buckets even, so inserts rarely fail at 50% load). Expiry is lazy (a lookup that
// meets a stale entry reclaims it) plus an incremental sweep the host drives with packet time, so
// replay is deterministic. Under pressure embryonic (SYN-only) flows are evicted first, then
// closing ones (FIN or RST seen); established flows never are. When neither bucket holds anything
// reclaimable the insert fails, is counted, and the packet is forwarded statelessly.
//
//  bucket (256 bytes, 256-aligned), way w = 0..3:
//    0 sig u32[4] (flow hash | 1; 0 = empty)  16 expire u32[4] (s)  32 backend u16[4]
//   40 state u8[4]  44 flags u8[4]  48 packets u32[4]  | 64 bytes u64[4]  96 key[4] (40 bytes each)
//
// A flow is referred to by `ref` = bucket address | way (buckets are 256-aligned).
import { flowsPtr, flowBucketMask, WAYS } from '../layout';
import {
  count, C_FLOWS_CLOSED, C_FLOWS_EXPIRED, C_FLOWS_EVICTED, C_EXPECTATIONS_UNUSED,
} from '../counters';
import { emitFlow, EV_FLOW_CLOSED, CR_EXPIRED, CR_EVICTED, CR_FLUSH, CR_UNUSED } from '../events';
import { closeSession, sessionUnref, SE_CONTROL_LOST } from '../session/table';
import { backendPtr, B_ACTIVE } from './config';
import { copy40 } from '../mem';
import { reasmRelease } from '../session/reassembly';

export const BUCKET_SIZE: u32 = 256;

// TCP states (UDP and others use TS_NONE).
export const TS_NONE: u32 = 0;
export const TS_SYN: u32 = 1;
export const TS_ESTABLISHED: u32 = 2;
export const TS_FIN: u32 = 3;
export const TS_CLOSE: u32 = 4;

export const FL_FROM_REPLY: u32 = 1; // first packet seen was the cluster's reply
export const FL_EXPECTED: u32 = 2; // an expectation: made from a SETUP reply, no packet yet
export const FL_SEQADJ: u32 = 4; // RTSP NAT changed the server's bytes: sequence numbers are translated

/** Bytes counters keep 40 bits; the high 24 bits of the field hold the flow's session index + 1. */
const BYTES_MASK: u64 = (<u64>1 << 40) - 1;
@inline export function flowSession(r: usize): u32 { return <u32>(load<u64>(fBytes(r)) >> 40); }
@inline export function setFlowSession(r: usize, s: u32): void {
  const p = fBytes(r);
  store<u64>(p, (load<u64>(p) & BYTES_MASK) | (<u64>(s + 1) << 40));
}
@inline export function addFlowBytes(r: usize, n: u32): void {
  const p = fBytes(r);
  const v = load<u64>(p);
  let b = (v & BYTES_MASK) + n;
  if (b > BYTES_MASK) b = BYTES_MASK; // saturates at 1 TiB per flow
  store<u64>(p, (v & ~BYTES_MASK) | b);
}

// Field addresses of flow `r`.
@inline function bucketOf(r: usize): usize { return r & ~(<usize>255); }
@inline export function fSig(r: usize): usize { return bucketOf(r) + ((r & 3) << 2); }
@inline export function fExpire(r: usize): usize { return bucketOf(r) + 16 + ((r & 3) << 2); }
@inline export function fBackend(r: usize): usize { return bucketOf(r) + 32 + ((r & 3) << 1); }
@inline export function fState(r: usize): usize { return bucketOf(r) + 40 + (r & 3); }
@inline export function fFlags(r: usize): usize { return bucketOf(r) + 44 + (r & 3); }
@inline export function fPackets(r: usize): usize { return bucketOf(r) + 48 + ((r & 3) << 2); }
@inline export function fBytes(r: usize): usize { return bucketOf(r) + 64 + ((r & 3) << 3); }
@inline export function fKey(r: usize): usize { return bucketOf(r) + 96 + (r & 3) * 40; }
/** Entry number (bucket * 4 + way), as reported in descriptors. */
@inline export function flowIndex(r: usize): u32 { return <u32>((bucketOf(r) - flowsPtr) >> 6) + <u32>(r & 3); }

// Timeouts in seconds, IPVS defaults; the host may change them.
export let toSyn: u32 = 60;
export let toEstablished: u32 = 900;
export let toFin: u32 = 120;
export let toClose: u32 = 10;
export let toUdp: u32 = 300;
export let toIcmp: u32 = 60;
export let toFrag: u32 = 30;
export let toSetup: u32 = 60; // an expectation's life before its first packet

export function setSetupTimeout(s: u32): void {
  toSetup = s;
}

export function setTimeouts(syn: u32, est: u32, fin: u32, close: u32, udp: u32, icmp: u32, frag: u32): void {
  toSyn = syn;
  toEstablished = est;
  toFin = fin;
  toClose = close;
  toUdp = udp;
  toIcmp = icmp;
  toFrag = frag;
}

export let flowLive: u32 = 0;
/** After a lookup miss: the entry an insert should use (0 = none), found in the same scan. */
let candidate: usize = 0;
let candidateKind: u32 = 0; // 0 none, 1 empty, 2 expired, 3 embryonic, 4 closing (FIN/RST seen)
let sweepCursor: u32 = 0;
let flushCursor: u32 = 0;

@inline function bucketPtr(b: u32): usize {
  return flowsPtr + <usize>b * BUCKET_SIZE;
}

@inline function keyEquals(kp: usize, k: usize): bool {
  return load<u64>(kp) == load<u64>(k) &&
    load<u64>(kp, 8) == load<u64>(k, 8) &&
    load<u64>(kp, 16) == load<u64>(k, 16) &&
    load<u64>(kp, 24) == load<u64>(k, 24) &&
    load<u64>(kp, 32) == load<u64>(k, 32);
}

/** Bit w set when way w's signature equals sig (SIMD: one compare of the four). */
@inline function sigMatches(bucket: usize, sig: u32): u32 {
  if (ASC_FEATURE_SIMD) {
    return <u32>i32x4.bitmask(i32x4.eq(v128.load(bucket), i32x4.splat(sig)));
  }
  return (load<u32>(bucket) == sig ? 1 : 0) | (load<u32>(bucket, 4) == sig ? 2 : 0) |
    (load<u32>(bucket, 8) == sig ? 4 : 0) | (load<u32>(bucket, 12) == sig ? 8 : 0);
}

/** Closes a live flow: event, backend load, counters. */
export function closeFlow(r: usize, reason: u32, now: u32): void {
  reasmRelease(r); // an RTSP control connection's reassembly state
  const be = <u32>load<u16>(fBackend(r));
  const expected = (<u32>load<u8>(fFlags(r)) & FL_EXPECTED) != 0;
  if (expected) {
    // An expectation no packet matched: it never was a flow of the backend.
    reason = CR_UNUSED;
    count(C_EXPECTATIONS_UNUSED);
  } else {
    const bp = backendPtr(be) + B_ACTIVE;
    const a = load<u32>(bp);
    if (a) store<u32>(bp, a - 1);
  }
  emitFlow(EV_FLOW_CLOSED, reason, be, now, r);
  const s = flowSession(r);
  if (s) {
    // Losing a control connection ends its session after the grace period (a reconnect that
    // names the session revives it).
    if (!expected && load<u8>(fKey(r) + 36) == 6) closeSession(s - 1, SE_CONTROL_LOST, now);
    sessionUnref(s - 1);
  }
  store<u32>(fSig(r), 0);
  flowLive--;
  count(C_FLOWS_CLOSED);
  if (reason == CR_EXPIRED) count(C_FLOWS_EXPIRED);
  else if (reason == CR_EVICTED) count(C_FLOWS_EVICTED);
}

/** The second bucket a key may live in: the hash rotated by 16, so its bits are mostly
 * independent of the first bucket's; never equal to the first. */
@inline function secondBucket(h: u32): u32 {
  let b2 = rotl<u32>(h, 16) & flowBucketMask;
  if (b2 == (h & flowBucketMask)) b2 = (b2 + 1) & flowBucketMask;
  return b2;
}

/**
 * Reads one word of every cache line of both buckets of hash h (pass 1 of a batch): the loads are
 * independent, so the misses of a whole batch are in flight together before pass 2 needs them.
 */
export function touchBuckets(h: u32): u32 {
  const a = bucketPtr(h & flowBucketMask), b = bucketPtr(secondBucket(h));
  return load<u32>(a) + load<u32>(a, 64) + load<u32>(a, 128) + load<u32>(a, 192) +
    load<u32>(b) + load<u32>(b, 64) + load<u32>(b, 128) + load<u32>(b, 192);
}

/** Looks for key k in one bucket; returns its ref, or 0. */
@inline function findIn(bucket: usize, sig: u32, k: usize): usize {
  let m = sigMatches(bucket, sig);
  while (m) {
    const w = <usize>ctz<u32>(m);
    if (keyEquals(bucket + 96 + w * 40, k)) return bucket | w;
    m &= m - 1;
  }
  return 0;
}

/**
 * Remembers where an insert into `bucket` could go: an empty way (preferring the emptier
 * bucket), else an expired one, else the embryonic one closest to expiry, else the closing one
 * closest to expiry.
 */
function considerBucket(bucket: usize, now: u32, round: u32): void {
  let empties: u32 = 0;
  let firstEmpty: usize = 0;
  for (let w: u32 = 0; w < WAYS; w++) {
    if (load<u32>(bucket + (w << 2)) == 0) {
      if (!empties) firstEmpty = bucket | w;
      empties++;
    }
  }
  if (empties) {
    // The first bucket's empty way wins unless the second bucket has more room.
    if (candidateKind != 1 || (round == 1 && empties > candidateEmpties)) {
      candidate = firstEmpty;
      candidateKind = 1;
      candidateEmpties = empties;
    }
    return;
  }
  if (candidateKind == 1) return;
  for (let w: u32 = 0; w < WAYS; w++) {
    const exp = load<u32>(bucket + 16 + (w << 2));
    if (exp < now) {
      if (candidateKind != 2) {
        candidate = bucket | w;
        candidateKind = 2;
      }
    } else if (candidateKind != 2) {
      // Under pressure embryonic flows go first, then closing ones (FIN or RST seen, waiting out
      // their timeout); established flows are never evicted.
      const st = <u32>load<u8>(bucket + 40 + w);
      if (st == TS_SYN) {
        if (candidateKind != 3 || exp < victimExpire) {
          victimExpire = exp;
          candidate = bucket | w;
          candidateKind = 3;
        }
      } else if ((st == TS_FIN || st == TS_CLOSE) && (candidateKind == 0 || (candidateKind == 4 && exp < victimExpire))) {
        victimExpire = exp;
        candidate = bucket | w;
        candidateKind = 4;
      }
    }
  }
}
let candidateEmpties: u32 = 0;
let victimExpire: u32 = 0;

/**
 * Finds the flow with key k (hash h) in its two candidate buckets; returns its ref or 0. A stale
 * match is closed and reported as a miss. On a miss the scan also chooses where an insert for
 * the same key should go (insertFlow).
 */
export function lookupFlow(k: usize, h: u32, now: u32): usize {
  const sig = h | 1;
  const b1 = bucketPtr(h & flowBucketMask);
  let r = findIn(b1, sig, k);
  let b2: usize = 0;
  if (!r) {
    b2 = bucketPtr(secondBucket(h));
    r = findIn(b2, sig, k);
  }
  candidate = 0;
  candidateKind = 0;
  if (r) {
    if (load<u32>(fExpire(r)) >= now) return r;
    closeFlow(r, CR_EXPIRED, now);
    candidate = r;
    candidateKind = 1;
    return 0;
  }
  considerBucket(b1, now, 0);
  considerBucket(b2, now, 1);
  return 0;
}

/** Inserts key k after a lookupFlow miss for the same key. Returns the ref, or 0 (table full). */
export function insertFlow(k: usize, h: u32, now: u32): usize {
  const r = candidate;
  if (r == 0) return 0;
  if (candidateKind == 2) closeFlow(r, CR_EXPIRED, now);
  else if (candidateKind >= 3) closeFlow(r, CR_EVICTED, now);
  candidate = 0;
  candidateKind = 0;
  copy40(fKey(r), k);
  store<u32>(fSig(r), h | 1);
  store<u32>(fExpire(r), 0);
  store<u16>(fBackend(r), 0);
  store<u8>(fState(r), 0);
  store<u8>(fFlags(r), 0);
  store<u32>(fPackets(r), 0);
  store<u64>(fBytes(r), 0);
  flowLive++;
  return r;
}

/** Sweeps `buckets` buckets from where the last sweep stopped; returns the flows it closed. */
export function expireFlows(now: u32, buckets: u32): u32 {
  let closed: u32 = 0;
  const total = flowBucketMask + 1;
  if (buckets > total) buckets = total;
  for (let i: u32 = 0; i < buckets; i++) {
    const b = bucketPtr(sweepCursor & flowBucketMask);
    sweepCursor = (sweepCursor + 1) & flowBucketMask;
    for (let w: u32 = 0; w < WAYS; w++) {
      if (load<u32>(b + (w << 2)) != 0 && load<u32>(b + 16 + (w << 2)) < now) {
        closeFlow(b | w, CR_EXPIRED, now);
        closed++;
      }
    }
  }
  return closed;
}

/** Closes up to `max` live flows in table order (end of a replay); returns how many remain. */
export function flushFlows(max: u32, now: u32): u32 {
  const totalEntries = (flowBucketMask + 1) * WAYS;
  let done: u32 = 0;
  while (done < max && flowLive > 0 && flushCursor < totalEntries) {
    const r = bucketPtr(flushCursor >> 2) | (flushCursor & 3);
    if (load<u32>(fSig(r)) != 0) {
      closeFlow(r, CR_FLUSH, now);
      done++;
    }
    flushCursor++;
  }
  if (flowLive == 0 || flushCursor >= totalEntries) flushCursor = 0;
  return flowLive;
}

@inline export function timeoutFor(proto: u32, state: u32): u32 {
  if (proto == 6) {
    if (state == TS_ESTABLISHED) return toEstablished;
    if (state == TS_SYN) return toSyn;
    if (state == TS_FIN) return toFin;
    return toClose;
  }
  if (proto == 17) return toUdp;
  return toIcmp;
}
