// The session table: one record per RTSP session, keyed by (VIP, Session id), holding its
// backend, client, expiry, state and how many flows refer to it. Flows refer to a session by
// index (flow table: bytes field, high 24 bits); a record is reused only once it has ended AND no
// flow refers to it any more, so an index stays meaningful for as long as a flow holds it (the
// host maps index -> id from session events).
//
//  record (64 bytes): 0 sig u32 (id hash | 1, 0 = free) | 4 expire u32 (s) | 8 backend u16 | 10 vip u8
//   11 state u8 | 12 flows u32 | 16 client[16] | 32 timeout u16 | 34 id length u8 | 36 id hash 2 u32
//   40..63 the id's first 24 bytes
import { sessionsPtr, sessionMask, SESSION_SIZE, affinityPtr } from '../layout';
import {
  count, C_SESSIONS_STARTED, C_SESSIONS_COMPLETED, C_SESSIONS_TIMED_OUT, C_SESSIONS_CONTROL_LOST,
  C_SESSION_TABLE_FULL,
} from '../counters';
import { emit, EV_SESSION_STARTED, EV_SESSION_ENDED } from '../events';
import { backendPtr, vipPtr, B_SESSIONS, V_SESSIONS } from '../lb/config';
import { copy16 } from '../mem';

export const SS_FREE: u32 = 0;
export const SS_ACTIVE: u32 = 1;
export const SS_CLOSING: u32 = 2; // torn down or control connection lost: ends after the grace period
export const SS_ENDED: u32 = 3; // over; the record waits for its flows to close

// Session end reasons (EV_SESSION_ENDED).
export const SE_TEARDOWN: u32 = 1;
export const SE_TIMEOUT: u32 = 2;
export const SE_CONTROL_LOST: u32 = 3;
export const SE_FLUSH: u32 = 4; // still open at the end of the input

const PROBE: u32 = 16; // records scanned per lookup (linear probing, no early stop: deletes are plain)

export let sessionLive: u32 = 0; // active + closing
export let globalMaxSessions: u32 = 0;
export let graceSeconds: u32 = 10;
let sweep: u32 = 0;

export function setSessionLimits(globalMax: u32, grace: u32): void {
  globalMaxSessions = globalMax;
  graceSeconds = grace;
}

@inline export function sessionPtr(i: u32): usize {
  return sessionsPtr + <usize>i * SESSION_SIZE;
}

/** Two independent 32-bit hashes of the id bytes, seeded with the VIP (FNV-1a, then murmur3 fmix). */
function idHash(p: usize, len: u32, vip: u32): u64 {
  let a: u32 = 0x811c9dc5 ^ vip;
  let b: u32 = 0x9e3779b9 + vip;
  for (let i: u32 = 0; i < len; i++) {
    const c = <u32>load<u8>(p + i);
    a = (a ^ c) * 0x01000193;
    b = rotl<u32>(b ^ (c * 0xcc9e2d51), 15) * 0x1b873593;
  }
  a ^= a >> 16; a *= 0x85ebca6b; a ^= a >> 13; a *= 0xc2b2ae35; a ^= a >> 16;
  b ^= len; b ^= b >> 16; b *= 0x85ebca6b; b ^= b >> 13; b *= 0xc2b2ae35; b ^= b >> 16;
  return (<u64>b << 32) | <u64>a;
}

function idEquals(s: usize, p: usize, len: u32, h2: u32): bool {
  if (<u32>load<u8>(s + 34) != (len > 255 ? 255 : len) || load<u32>(s + 36) != h2) return false;
  const n = len < 24 ? len : 24;
  for (let i: u32 = 0; i < n; i++) if (load<u8>(s + 40 + i) != load<u8>(p + i)) return false;
  return true;
}

/** Index of the session (vip, id) if it is active or closing, else -1. */
export function findSession(vip: u32, p: usize, len: u32): i32 {
  const h = idHash(p, len, vip);
  const sig = <u32>h | 1, h2 = <u32>(h >> 32);
  for (let k: u32 = 0; k < PROBE; k++) {
    const i = (<u32>h + k) & sessionMask;
    const s = sessionPtr(i);
    if (load<u32>(s) == sig && <u32>load<u8>(s + 10) == vip && idEquals(s, p, len, h2)) {
      const st = <u32>load<u8>(s + 11);
      if (st == SS_ACTIVE || st == SS_CLOSING) return <i32>i;
    }
  }
  return -1;
}

/** Active sessions of VIP vip and of backend j against their limits (0 = none). */
export function hasCapacity(vip: u32, j: u32, vipMax: u32, backendMax: u32): bool {
  if (globalMaxSessions && sessionLive >= globalMaxSessions) return false;
  if (vipMax && load<u32>(vipPtr(vip) + V_SESSIONS) >= vipMax) return false;
  if (backendMax && load<u32>(backendPtr(j) + B_SESSIONS) >= backendMax) return false;
  return true;
}

/**
 * Creates the session (vip, id) on backend j for client (16-byte address at client). Returns its
 * index, or -1 when the table has no free record in the probe window (counted).
 */
export function createSession(vip: u32, p: usize, len: u32, j: u32, client: usize, timeout: u32, now: u32): i32 {
  const h = idHash(p, len, vip);
  for (let k: u32 = 0; k < PROBE; k++) {
    const i = (<u32>h + k) & sessionMask;
    const s = sessionPtr(i);
    const st = <u32>load<u8>(s + 11);
    if (st == SS_FREE || (st == SS_ENDED && load<u32>(s + 12) == 0)) {
      store<u32>(s, <u32>h | 1);
      store<u32>(s + 4, now + timeout);
      store<u16>(s + 8, <u16>j);
      store<u8>(s + 10, <u8>vip);
      store<u8>(s + 11, <u8>SS_ACTIVE);
      store<u32>(s + 12, 0);
      copy16(s + 16, client);
      store<u16>(s + 32, <u16>(timeout > 0xffff ? 0xffff : timeout));
      store<u8>(s + 34, <u8>(len > 255 ? 255 : len));
      store<u32>(s + 36, <u32>(h >> 32));
      const n = len < 24 ? len : 24;
      for (let x: u32 = 0; x < 24; x++) store<u8>(s + 40 + x, x < n ? load<u8>(p + x) : 0);
      sessionLive++;
      bumpSessions(vip, j, 1);
      affinitySet(vip, client, i);
      count(C_SESSIONS_STARTED);
      const r = emit(EV_SESSION_STARTED, 0, j, now);
      if (r) {
        // Body: 8 index u32 | 12 vip u8 | 13 id length u8 | 16 client[16] | 32..63 id (first 32 bytes)
        store<u32>(r + 8, i);
        store<u8>(r + 12, <u8>vip);
        store<u8>(r + 13, <u8>(len > 32 ? 32 : len));
        copy16(r + 16, client);
        const m = len < 32 ? len : 32;
        for (let x: u32 = 0; x < m; x++) store<u8>(r + 32 + x, load<u8>(p + x));
      }
      return <i32>i;
    }
  }
  count(C_SESSION_TABLE_FULL);
  return -1;
}

function bumpSessions(vip: u32, j: u32, up: i32): void {
  const a = vipPtr(vip) + V_SESSIONS, b = backendPtr(j) + B_SESSIONS;
  store<u32>(a, <u32>(<i32>load<u32>(a) + up));
  store<u32>(b, <u32>(<i32>load<u32>(b) + up));
}

/** Keeps an active session alive (RTSP request, or any packet of one of its flows). */
@inline export function touchSession(i: u32, now: u32): void {
  const s = sessionPtr(i);
  if (<u32>load<u8>(s + 11) == SS_ACTIVE) store<u32>(s + 4, now + <u32>load<u16>(s + 32));
}

/** A request named an ending session again (a reconnecting client): it is active once more. */
export function reviveSession(i: u32, now: u32): void {
  const s = sessionPtr(i);
  if (<u32>load<u8>(s + 11) == SS_CLOSING) {
    store<u8>(s + 11, <u8>SS_ACTIVE);
    store<u32>(s + 4, now + <u32>load<u16>(s + 32));
  }
}

/** TEARDOWN or control-connection loss: the session ends after the grace period. */
export function closeSession(i: u32, reason: u32, now: u32): void {
  const s = sessionPtr(i);
  if (<u32>load<u8>(s + 11) != SS_ACTIVE) return;
  store<u8>(s + 11, <u8>SS_CLOSING);
  store<u8>(s + 35, <u8>reason);
  store<u32>(s + 4, now + graceSeconds);
}

function endSession(i: u32, reason: u32, now: u32): void {
  const s = sessionPtr(i);
  store<u8>(s + 11, <u8>SS_ENDED);
  sessionLive--;
  bumpSessions(<u32>load<u8>(s + 10), <u32>load<u16>(s + 8), -1);
  if (reason == SE_TEARDOWN) count(C_SESSIONS_COMPLETED);
  else if (reason == SE_TIMEOUT) count(C_SESSIONS_TIMED_OUT);
  else if (reason == SE_CONTROL_LOST) count(C_SESSIONS_CONTROL_LOST);
  const r = emit(EV_SESSION_ENDED, reason, <u32>load<u16>(s + 8), now);
  if (r) store<u32>(r + 8, i);
  if (load<u32>(s + 12) == 0) store<u32>(s, 0);
}

/** Ends sessions whose expiry passed; scans `n` records round robin. */
export function expireSessions(now: u32, n: u32): void {
  const total = sessionMask + 1;
  if (n > total) n = total;
  for (let k: u32 = 0; k < n; k++) {
    const i = sweep;
    sweep = (sweep + 1) & sessionMask;
    const s = sessionPtr(i);
    const st = <u32>load<u8>(s + 11);
    if ((st == SS_ACTIVE || st == SS_CLOSING) && load<u32>(s + 4) < now) {
      endSession(i, st == SS_ACTIVE ? SE_TIMEOUT : <u32>load<u8>(s + 35), now);
    }
  }
}

/**
 * Ends every session still open (end of a replay, before the flows are flushed): closing ones for
 * the reason they were closing, active ones as SE_FLUSH (not counted as completed).
 */
export function flushSessions(now: u32): void {
  for (let i: u32 = 0; i <= sessionMask; i++) {
    const s = sessionPtr(i);
    const st = <u32>load<u8>(s + 11);
    if (st == SS_CLOSING) endSession(i, <u32>load<u8>(s + 35), now);
    else if (st == SS_ACTIVE) endSession(i, SE_FLUSH, now);
  }
}

@inline export function sessionBackend(i: u32): u32 {
  return <u32>load<u16>(sessionPtr(i) + 8);
}

/** A flow starts referring to session i. */
@inline export function sessionRef(i: u32): void {
  const p = sessionPtr(i) + 12;
  store<u32>(p, load<u32>(p) + 1);
}

/** A flow referring to session i closed: free the record once the session is over and unreferenced. */
export function sessionUnref(i: u32): void {
  const s = sessionPtr(i);
  const n = load<u32>(s + 12);
  if (n) store<u32>(s + 12, n - 1);
  if (n <= 1 && <u32>load<u8>(s + 11) == SS_ENDED) store<u32>(s, 0);
}

// Client affinity: (VIP, client address) -> the client's latest session, a direct-mapped hint
// table (a collision just replaces the entry). Entry: 0 sig u32 | 4 session index + 1 u32 |
// 8 VIP u8 | 16 client[16].

@inline function affinitySlot(vip: u32, client: usize): usize {
  let h = (load<u64>(client) * 0x9e3779b97f4a7c15) ^ load<u64>(client, 8) ^ <u64>vip;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9;
  h ^= h >> 32;
  return affinityPtr + ((<usize>h & sessionMask) << 5);
}

/** Remembers session s as the latest of (vip, client). */
export function affinitySet(vip: u32, client: usize, s: u32): void {
  const a = affinitySlot(vip, client);
  store<u32>(a, 1);
  store<u32>(a + 4, s + 1);
  store<u8>(a + 8, <u8>vip);
  copy16(a + 16, client);
}

/**
 * The active session of (vip, client), or -1: how a new control connection from a client that
 * has a session reaches that session's backend before any byte of it is seen (flow level: the
 * connection is bound at its SYN, so every user behind one NAT address with an active session
 * shares that backend for new connections; full delayed binding needs TCP splicing).
 */
export function affinityLookup(vip: u32, client: usize): i32 {
  const a = affinitySlot(vip, client);
  if (load<u32>(a) == 0 || <u32>load<u8>(a + 8) != vip) return -1;
  if (load<u64>(a + 16) != load<u64>(client) || load<u64>(a + 24) != load<u64>(client, 8)) return -1;
  const s = load<u32>(a + 4) - 1;
  const r = sessionPtr(s);
  const st = <u32>load<u8>(r + 11);
  if ((st != SS_ACTIVE && st != SS_CLOSING) || <u32>load<u8>(r + 10) != vip) return -1;
  if (load<u64>(r + 16) != load<u64>(client) || load<u64>(r + 24) != load<u64>(client, 8)) return -1;
  return <i32>s;
}
