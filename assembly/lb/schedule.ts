// Schedulers: pick a backend for a new flow of VIP v. Maglev and source hashing read the ring the
// host built (only active, non-zero-weight backends are in it); the others walk the VIP's backends
// and skip any that is not active or has weight 0 (IPVS quiescent). Load for lc/wlc/p2c is the
// number of live flows the engine tracks per backend.
import { ringPtr } from '../layout';
import {
  vipPtr, backendPtr, V_FIRST, V_COUNT, V_RING_OFF, V_RING_SIZE, V_RR, V_SCHED,
  B_STATE, B_WEIGHT, B_ACTIVE, B_WRR_CUR, ST_ACTIVE,
  S_MAGLEV, S_RR, S_WRR, S_LC, S_WLC, S_SH, S_P2C, V_POLICY, P_CLIENT,
} from './config';

@inline function usable(j: u32): bool {
  const b = backendPtr(j);
  return load<u8>(b + B_STATE) == <u8>ST_ACTIVE && load<u32>(b + B_WEIGHT) != 0;
}

/** Lemire's multiply-shift range reduction: maps a 32-bit hash onto [0, n) without a division. */
@inline function fastRange(h: u32, n: u32): u32 {
  return <u32>((<u64>h * <u64>n) >> 32);
}

function ringPick(v: usize, h: u32): i32 {
  const size = load<u32>(v + V_RING_SIZE);
  if (size == 0) return -1;
  const e = <u32>load<u16>(ringPtr + (<usize>(load<u32>(v + V_RING_OFF) + fastRange(h, size)) << 1));
  if (e == 0xffff) return -1;
  const j = <u32>load<u16>(v + V_FIRST) + e;
  if (usable(j)) return <i32>j;
  return -1; // ring is stale (host did not rebuild it yet): caller falls back
}

/** a/wa < b/wb without division (loads are live flow counts, weights > 0). */
@inline function lighter(a: u32, wa: u32, b: u32, wb: u32): bool {
  return <u64>a * <u64>wb < <u64>b * <u64>wa;
}

function leastLoaded(v: usize, weighted: bool): i32 {
  const first = <u32>load<u16>(v + V_FIRST), n = <u32>load<u16>(v + V_COUNT);
  let best: i32 = -1;
  let bestLoad: u32 = 0, bestW: u32 = 1;
  for (let i: u32 = 0; i < n; i++) {
    const j = first + i;
    if (!usable(j)) continue;
    const b = backendPtr(j);
    const load_ = load<u32>(b + B_ACTIVE);
    const w = weighted ? load<u32>(b + B_WEIGHT) : 1;
    if (best < 0 || lighter(load_, w, bestLoad, bestW)) {
      best = <i32>j;
      bestLoad = load_;
      bestW = w;
    }
  }
  return best;
}

function roundRobin(v: usize): i32 {
  const first = <u32>load<u16>(v + V_FIRST), n = <u32>load<u16>(v + V_COUNT);
  if (n == 0) return -1;
  let c = load<u32>(v + V_RR);
  for (let i: u32 = 0; i < n; i++) {
    const k = (c + i) % n;
    if (usable(first + k)) {
      store<u32>(v + V_RR, (k + 1) % n);
      return <i32>(first + k);
    }
  }
  return -1;
}

/** Smooth weighted round robin: every usable backend gains its weight, the largest wins and pays the total. */
function weightedRoundRobin(v: usize): i32 {
  const first = <u32>load<u16>(v + V_FIRST), n = <u32>load<u16>(v + V_COUNT);
  let best: i32 = -1;
  let bestCur: i64 = 0;
  let total: i64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const j = first + i;
    if (!usable(j)) continue;
    const b = backendPtr(j);
    const w = <i64>load<u32>(b + B_WEIGHT);
    const cur = <i64>load<i32>(b + B_WRR_CUR) + w;
    store<i32>(b + B_WRR_CUR, <i32>cur);
    total += w;
    if (best < 0 || cur > bestCur) {
      best = <i32>j;
      bestCur = cur;
    }
  }
  if (best >= 0) {
    const bp = backendPtr(<u32>best) + B_WRR_CUR;
    store<i32>(bp, <i32>(<i64>load<i32>(bp) - total));
  }
  return best;
}

function powerOfTwo(v: usize, h: u32): i32 {
  const first = <u32>load<u16>(v + V_FIRST), n = <u32>load<u16>(v + V_COUNT);
  if (n == 0) return -1;
  if (n == 1) return usable(first) ? <i32>first : -1;
  const a = fastRange(h, n);
  let c = fastRange((h >> 16) | (h << 16), n - 1);
  if (c >= a) c++;
  const ja = first + a, jc = first + c;
  const ua = usable(ja), uc = usable(jc);
  if (ua && uc) {
    const ba = backendPtr(ja), bc = backendPtr(jc);
    return lighter(load<u32>(bc + B_ACTIVE), load<u32>(bc + B_WEIGHT), load<u32>(ba + B_ACTIVE), load<u32>(ba + B_WEIGHT))
      ? <i32>jc : <i32>ja;
  }
  if (ua) return <i32>ja;
  if (uc) return <i32>jc;
  return leastLoaded(v, true);
}

/**
 * Backend for a new flow of VIP i, or -1 when none is usable. `h` is the flow hash, `srcHash` the
 * hash of the client address alone (source hashing = client persistence).
 */
export function schedule(i: u32, h: u32, srcHash: u32): i32 {
  const v = vipPtr(i);
  // Policy "client" is client persistence: source hashing whatever the scheduler.
  const s = <u32>load<u8>(v + V_POLICY) == P_CLIENT ? S_SH : <u32>load<u8>(v + V_SCHED);
  let j: i32 = -1;
  if (s == S_MAGLEV) {
    j = ringPick(v, h);
    if (j < 0) j = leastLoaded(v, true);
  } else if (s == S_SH) {
    j = ringPick(v, srcHash);
    if (j < 0) j = leastLoaded(v, true);
  } else if (s == S_RR) j = roundRobin(v);
  else if (s == S_WRR) j = weightedRoundRobin(v);
  else if (s == S_LC) j = leastLoaded(v, false);
  else if (s == S_WLC) j = leastLoaded(v, true);
  else if (s == S_P2C) j = powerOfTwo(v, h);
  return j;
}
