// Connection tracking: a fixed-capacity, bucketized open-addressing table. Each flow is one 64-byte
// entry (one cache line: the 40-byte key plus state and counters); a key may live in either of two
// 4-way buckets (two-choice hashing), and a lookup compares a 32-bit signature before the key.
// Expiry is lazy (a lookup that meets a stale entry reclaims it) plus an incremental sweep the
// host drives with packet time, so replay is deterministic. Under pressure only embryonic
// (SYN-only) flows are evicted; when neither bucket holds anything reclaimable the insert fails,
// is counted, and the packet is forwarded statelessly.
//
//  entry:  0 sig u32 | 4 expire u32 (s) | 8 backend u16 | 10 state u8 | 11 flags u8
//         12 packets u32 | 16 bytes u64 | 24..63 flow key (docs/abi.md)
import { flowsPtr, flowBucketMask, FLOW_SIZE, WAYS } from '../layout';
import {
  count, C_FLOWS_CLOSED, C_FLOWS_EXPIRED, C_FLOWS_EVICTED,
} from '../counters';
import { emit, EV_FLOW_CLOSED, CR_EXPIRED, CR_EVICTED, CR_FLUSH } from '../events';
import { backendPtr, B_ACTIVE } from './config';

export const F_SIG: u32 = 0;
export const F_EXPIRE: u32 = 4;
export const F_BACKEND: u32 = 8;
export const F_STATE: u32 = 10;
export const F_FLAGS: u32 = 11;
export const F_PACKETS: u32 = 12;
export const F_BYTES: u32 = 16;
export const F_KEY: u32 = 24;

// TCP states (UDP and others use TS_NONE).
export const TS_NONE: u32 = 0;
export const TS_SYN: u32 = 1;
export const TS_ESTABLISHED: u32 = 2;
export const TS_FIN: u32 = 3;
export const TS_CLOSE: u32 = 4;

export const FL_FROM_REPLY: u32 = 1; // first packet seen was the cluster's reply

// Timeouts in seconds, IPVS defaults; the host may change them.
export let toSyn: u32 = 60;
export let toEstablished: u32 = 900;
export let toFin: u32 = 120;
export let toClose: u32 = 10;
export let toUdp: u32 = 300;
export let toIcmp: u32 = 60;
export let toFrag: u32 = 30;

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
/** After a lookup miss: the entry an insert should use (0 = window full), found in the same scan. */
let candidate: usize = 0;
let candidateKind: u32 = 0; // 0 none, 1 empty, 2 expired, 3 embryonic
let sweepCursor: u32 = 0;
let flushCursor: u32 = 0;

@inline function bucketPtr(b: u32): usize {
  return flowsPtr + <usize>b * (WAYS * FLOW_SIZE);
}

@inline function keyEquals(e: usize, k: usize): bool {
  return load<u64>(e, F_KEY) == load<u64>(k) &&
    load<u64>(e, F_KEY + 8) == load<u64>(k, 8) &&
    load<u64>(e, F_KEY + 16) == load<u64>(k, 16) &&
    load<u64>(e, F_KEY + 24) == load<u64>(k, 24) &&
    load<u64>(e, F_KEY + 32) == load<u64>(k, 32);
}

/** Closes a live entry: event, backend load, counters. */
export function closeFlow(e: usize, reason: u32, now: u32): void {
  const be = <u32>load<u16>(e, F_BACKEND);
  emit(EV_FLOW_CLOSED, reason, be, now, e);
  const bp = backendPtr(be) + B_ACTIVE;
  const a = load<u32>(bp);
  if (a) store<u32>(bp, a - 1);
  store<u32>(e, 0);
  flowLive--;
  count(C_FLOWS_CLOSED);
  if (reason == CR_EXPIRED) count(C_FLOWS_EXPIRED);
  else if (reason == CR_EVICTED) count(C_FLOWS_EVICTED);
}

/** The second bucket a key may live in (two-choice hashing): the hash rotated by 16, so its bits
 * are mostly independent of the first bucket's; never equal to the first. */
@inline function secondBucket(h: u32): u32 {
  let b2 = rotl<u32>(h, 16) & flowBucketMask;
  if (b2 == (h & flowBucketMask)) b2 = (b2 + 1) & flowBucketMask;
  return b2;
}

/**
 * Finds the flow with key k (hash h) in its two candidate buckets. A stale match is closed and
 * reported as a miss. On a miss the same scan chooses where an insert should go: an empty entry in
 * the emptier bucket (two-choice hashing keeps buckets even, so inserts rarely fail), else an
 * expired entry, else the embryonic (SYN-state) entry closest to expiry; established flows are
 * never chosen.
 */
export function lookupFlow(k: usize, h: u32, now: u32): usize {
  const sig = h | 1;
  candidate = 0;
  candidateKind = 0;
  let victimExpire: u32 = 0xffffffff;
  let bestEmpties: u32 = 0;
  let b = h & flowBucketMask;
  for (let round = 0; round < 2; round++) {
    let e = bucketPtr(b);
    let empties: u32 = 0;
    let firstEmpty: usize = 0;
    for (let w: u32 = 0; w < WAYS; w++, e += FLOW_SIZE) {
      const s = load<u32>(e);
      if (s == 0) {
        if (!firstEmpty) firstEmpty = e;
        empties++;
        continue;
      }
      const exp = load<u32>(e, F_EXPIRE);
      if (s == sig && keyEquals(e, k)) {
        if (exp < now) {
          closeFlow(e, CR_EXPIRED, now);
          candidate = e;
          candidateKind = 1;
          return 0; // keys are unique, so there is no other match
        }
        return e;
      }
      if (candidateKind == 1) continue;
      if (exp < now) {
        if (candidateKind != 2) {
          candidate = e;
          candidateKind = 2;
        }
      } else if (candidateKind == 0 || candidateKind == 3) {
        if (load<u8>(e, F_STATE) == <u8>TS_SYN && exp < victimExpire) {
          victimExpire = exp;
          candidate = e;
          candidateKind = 3;
        }
      }
    }
    if (empties > bestEmpties) {
      bestEmpties = empties;
      candidate = firstEmpty;
      candidateKind = 1;
    }
    b = secondBucket(h);
  }
  return 0;
}

/** Inserts key k after a lookupFlow miss for the same key. Returns the entry, or 0 (table full). */
export function insertFlow(k: usize, h: u32, now: u32): usize {
  const e = candidate;
  if (e == 0) return 0;
  if (candidateKind == 2) closeFlow(e, CR_EXPIRED, now);
  else if (candidateKind == 3) closeFlow(e, CR_EVICTED, now);
  candidate = 0;
  candidateKind = 0;
  memory.copy(e + F_KEY, k, 40);
  store<u32>(e, h | 1);
  store<u32>(e, 0, F_EXPIRE);
  store<u64>(e, 0, F_BACKEND); // backend, state, flags, packets
  store<u64>(e, 0, F_BYTES);
  flowLive++;
  return e;
}

/** Sweeps `buckets` buckets from where the last sweep stopped; returns the flows it closed. */
export function expireFlows(now: u32, buckets: u32): u32 {
  let closed: u32 = 0;
  const total = flowBucketMask + 1;
  if (buckets > total) buckets = total;
  for (let i: u32 = 0; i < buckets; i++) {
    let e = bucketPtr(sweepCursor & flowBucketMask);
    sweepCursor = (sweepCursor + 1) & flowBucketMask;
    for (let w: u32 = 0; w < WAYS; w++, e += FLOW_SIZE) {
      if (load<u32>(e) != 0 && load<u32>(e, F_EXPIRE) < now) {
        closeFlow(e, CR_EXPIRED, now);
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
    const e = flowsPtr + <usize>flushCursor * FLOW_SIZE;
    if (load<u32>(e) != 0) {
      closeFlow(e, CR_FLUSH, now);
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
