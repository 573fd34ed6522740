// VIP and backend tables, written by the host through config calls (docs/abi.md). The host builds
// the Maglev rings (Katran programHashRing style); the engine only reads them.
import {
  vipsPtr, VIP_SIZE, portmapsPtr, PORTMAP_SIZE, backendsPtr, BACKEND_SIZE, maxVips, maxBackends,
  scratchPtr, baddrPtr, baddrMask, ringEntries, bstatsPtr, BSTATS_SIZE, NAT_GROW_MAX,
} from '../layout';

// VIP record (VIP_SIZE bytes).
export const V_ADDR: u32 = 0; // 16 bytes, IPv4 as ::ffff:a.b.c.d
export const V_TSRC4: u32 = 16; // tunnel source, IPv4 (mapped)
export const V_TSRC6: u32 = 32; // tunnel source, IPv6
export const V_FAMILY: u32 = 48; // u8 4 | 6
export const V_METHOD: u32 = 49; // u8 M_*
export const V_SCHED: u32 = 50; // u8 S_*
export const V_PROTOS: u32 = 51; // u8 bit 0 tcp, bit 1 udp
export const V_FIRST: u32 = 52; // u16 first backend index
export const V_COUNT: u32 = 54; // u16 backend count
export const V_RING_OFF: u32 = 56; // u32
export const V_RING_SIZE: u32 = 60; // u32 (prime, or 0 = no ring)
export const V_RR: u32 = 64; // u32 round-robin cursor
export const V_GUE_PORT: u32 = 68; // u16, host order
export const V_ALL_PORTS: u32 = 70; // u8
export const V_POLICY: u32 = 71; // u8 P_FLOW | P_CLIENT | P_SESSION
export const V_SESSIONS: u32 = 72; // u32 active sessions (engine-maintained)
export const V_MAX_SESSIONS: u32 = 76; // u32, 0 = no limit
export const V_RTSP_PORTS: u32 = 80; // u16[4], network byte order, 0 = unused
export const V_SESSION_RATE: u32 = 88; // u32 new sessions per second, 0 = no limit
export const V_RATE_TOKENS: u32 = 92; // u32 thousandths of a session (token bucket, burst = 1 s)
export const V_RATE_TS: u32 = 96; // u32 packet time of the last refill
export const V_SESSION_FLAGS: u32 = 100; // u8 VF_*
export const VF_CLIENT_AFFINITY: u32 = 1; // new control connections follow the client's active session

export const M_NAT: u32 = 0;
export const M_DR: u32 = 1;
export const M_IPIP: u32 = 2;
export const M_GRE: u32 = 3;
export const M_GUE: u32 = 4;
export const M_SPLICE: u32 = 5; // TCP splicing with delayed binding (splice/splice.ts)
export const M_HANDOFF: u32 = 6; // TCP handoff: the splice's handshake and held request, then the connection migrates (docs/handoff.md)
/** VIPs of method splice configured (the engine's per-packet check is skipped without them). */
export let spliceVips: u32 = 0;

export const S_MAGLEV: u32 = 0;
export const S_RR: u32 = 1;
export const S_WRR: u32 = 2;
export const S_LC: u32 = 3;
export const S_WLC: u32 = 4;
export const S_SH: u32 = 5;
export const S_P2C: u32 = 6;

export const P_FLOW: u32 = 0;
export const P_CLIENT: u32 = 1;
export const P_SESSION: u32 = 2;

export const PROTO_TCP_BIT: u32 = 1;
export const PROTO_UDP_BIT: u32 = 2;

// Backend record (BACKEND_SIZE bytes).
export const B_ADDR: u32 = 0; // 16 bytes
export const B_MAC: u32 = 16; // 6 bytes
export const B_STATE: u32 = 22; // u8
export const B_FAMILY: u32 = 23; // u8
export const B_WEIGHT: u32 = 24; // u32
export const B_VIP: u32 = 28; // u16
export const B_ACTIVE: u32 = 32; // u32 live flows (engine-maintained)
export const B_WRR_CUR: u32 = 36; // i32 smooth weighted round-robin state
export const B_SESSIONS: u32 = 40; // u32 active sessions (engine-maintained)
export const B_MAX_SESSIONS: u32 = 44; // u32, 0 = no limit

export const ST_ACTIVE: u32 = 0;
export const ST_DRAINING: u32 = 1;
export const ST_DOWN: u32 = 2;

// Backend stats (u64[8]).
export const BS_PACKETS: u32 = 0;
export const BS_BYTES: u32 = 8;
export const BS_FLOWS: u32 = 16;
export const BS_REPLY_PACKETS: u32 = 24;
export const BS_REPLY_BYTES: u32 = 32;
export const BS_RESTEERED_IN: u32 = 40;

export let vipCount: u32 = 0;
/** Most bytes any frame may grow in front under this config (config_commit); see headroom_needed. */
export let neededHeadroom: u32 = 0;
export let backendCount: u32 = 0;

export let lbMacHi: u32 = 0x0200; // 02:00:00:00:00:fe
export let lbMacLo: u32 = 0x000000fe;
export let gwMacHi: u32 = 0;
export let gwMacLo: u32 = 0;
/** config_live flags: bit 0 = every frame towards clients gets src = lbMac, dst = gwMac. */
export let liveFlags: u32 = 0;

export function configLive(flags: u32): void {
  liveFlags = flags;
}

@inline export function vipPtr(i: u32): usize {
  return vipsPtr + <usize>i * VIP_SIZE;
}
@inline export function backendPtr(j: u32): usize {
  return backendsPtr + <usize>j * BACKEND_SIZE;
}
@inline export function bstatPtr(j: u32): usize {
  return bstatsPtr + <usize>j * BSTATS_SIZE;
}
@inline export function bump(p: usize, by: u64): void {
  store<u64>(p, load<u64>(p) + by);
}

export function configGlobal(macHi: u32, macLo: u32, gHi: u32, gLo: u32): void {
  lbMacHi = macHi;
  lbMacLo = macLo;
  gwMacHi = gHi;
  gwMacLo = gLo;
}

/** Writes a MAC given as (hi16, lo32) to p in wire order. */
@inline export function storeMac(p: usize, hi: u32, lo: u32): void {
  store<u16>(p, bswap<u16>(<u16>hi));
  store<u32>(p + 2, bswap<u32>(lo));
}

export function configVip(
  i: u32, family: u32, method: u32, sched: u32, protos: u32,
  first: u32, count: u32, ringOff: u32, ringSize: u32, guePort: u32,
): u32 {
  if (i >= maxVips) return 1;
  if (family != 4 && family != 6) return 2;
  if (method > M_HANDOFF) return 3;
  if (sched > S_P2C) return 4;
  if (first + count > maxBackends || count > 0xffff) return 5;
  if (<u64>ringOff + ringSize > <u64>ringEntries) return 6;
  const v = vipPtr(i);
  memory.copy(v + V_ADDR, scratchPtr, 48); // address, tunnel source v4, tunnel source v6
  store<u8>(v + V_FAMILY, <u8>family);
  store<u8>(v + V_METHOD, <u8>method);
  store<u8>(v + V_SCHED, <u8>sched);
  store<u8>(v + V_PROTOS, <u8>(method == M_SPLICE || method == M_HANDOFF ? protos & PROTO_TCP_BIT : protos));
  store<u16>(v + V_FIRST, <u16>first);
  store<u16>(v + V_COUNT, <u16>count);
  store<u32>(v + V_RING_OFF, ringOff);
  store<u32>(v + V_RING_SIZE, ringSize);
  store<u32>(v + V_RR, 0);
  store<u16>(v + V_GUE_PORT, <u16>guePort);
  store<u8>(v + V_ALL_PORTS, 1);
  return 0;
}

/** Policy, session limit and RTSP ports of VIP i; the ports (u16[4], host order, 0 = none) at scratch. */
export function configVipSessions(i: u32, policy: u32, maxSessions: u32, sessionRate: u32, flags: u32): u32 {
  if (i >= maxVips) return 1;
  if (policy > P_SESSION) return 2;
  if (sessionRate > 4000000) return 3;
  const v = vipPtr(i);
  store<u8>(v + V_POLICY, <u8>policy);
  store<u32>(v + V_MAX_SESSIONS, maxSessions);
  store<u32>(v + V_SESSION_RATE, sessionRate);
  store<u32>(v + V_RATE_TOKENS, sessionRate * 1000);
  store<u32>(v + V_RATE_TS, 0);
  store<u8>(v + V_SESSION_FLAGS, <u8>flags);
  for (let k: u32 = 0; k < 4; k++) store<u16>(v + V_RTSP_PORTS + k * 2, bswap<u16>(load<u16>(scratchPtr + k * 2)));
  return 0;
}

/** Whether the port (network byte order, as in the packet) is one of VIP v's RTSP ports. */
@inline export function isRtspPort(v: usize, port: u16): bool {
  return port != 0 && (load<u16>(v + V_RTSP_PORTS) == port || load<u16>(v + V_RTSP_PORTS + 2) == port ||
    load<u16>(v + V_RTSP_PORTS + 4) == port || load<u16>(v + V_RTSP_PORTS + 6) == port);
}

export function configBackendSessions(j: u32, maxSessions: u32): void {
  if (j < maxBackends) store<u32>(backendPtr(j) + B_MAX_SESSIONS, maxSessions);
}

export function configVipPorts(i: u32, allPorts: u32): void {
  if (i >= maxVips) return;
  const v = vipPtr(i);
  store<u8>(v + V_ALL_PORTS, allPorts ? 1 : 0);
  if (!allPorts) memory.copy(portmapsPtr + <usize>i * PORTMAP_SIZE, scratchPtr, PORTMAP_SIZE);
}

@inline export function vipHasPort(i: u32, port: u32): bool {
  const v = vipPtr(i);
  if (load<u8>(v + V_ALL_PORTS)) return true;
  return ((load<u8>(portmapsPtr + <usize>i * PORTMAP_SIZE + (port >> 3)) >> (port & 7)) & 1) != 0;
}

export function configBackend(j: u32, vip: u32, weight: u32, state: u32, macHi: u32, macLo: u32): u32 {
  if (j >= maxBackends) return 1;
  if (vip >= maxVips) return 2;
  if (state > ST_DOWN) return 3;
  const b = backendPtr(j);
  memory.copy(b + B_ADDR, scratchPtr, 16);
  storeMac(b + B_MAC, macHi, macLo);
  store<u8>(b + B_STATE, <u8>state);
  store<u8>(b + B_FAMILY, isMapped4(b + B_ADDR) ? 4 : 6);
  store<u32>(b + B_WEIGHT, weight);
  store<u16>(b + B_VIP, <u16>vip);
  store<i32>(b + B_WRR_CUR, 0);
  return 0;
}

export function setBackendState(j: u32, state: u32): void {
  if (j >= backendCount || state > ST_DOWN) return;
  store<u8>(backendPtr(j) + B_STATE, <u8>state);
}

@inline export function isMapped4(p: usize): bool {
  return load<u64>(p) == 0 && load<u32>(p, 8) == 0xffff0000;
}

@inline function addrSlot(a0: u64, a1: u64): u32 {
  let h = a0 ^ (a1 * 0x9e3779b97f4a7c15);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9;
  h ^= h >> 32;
  return <u32>h & baddrMask;
}

/** Validates the tables and builds the backend address index. Returns 0 or an error code. */
export function configCommit(vips: u32, backends: u32): u32 {
  if (vips > maxVips || backends > maxBackends) return 1;
  for (let i: u32 = 0; i < vips; i++) {
    const v = vipPtr(i);
    const first = <u32>load<u16>(v + V_FIRST), count = <u32>load<u16>(v + V_COUNT);
    if (first + count > backends) return 2;
  }
  vipCount = vips;
  backendCount = backends;
  // NAT and DR only ever prepend an Ethernet header to non-Ethernet input (14 bytes); tunnels
  // prepend that plus the outer headers, IPv6 + UDP at most (14 + 40 + 8). NAT with policy
  // session rewrites RTSP replies (session/rtspnat.ts): a frame may also grow in front by up to
  // NAT_GROW_MAX bytes (240: e.g. 4 transport specs x 2 addresses x 30 bytes), 254 in all, within
  // the 256 bytes of headroom() (config_vip_sessions must come before config_commit).
  neededHeadroom = 0;
  spliceVips = 0;
  for (let i: u32 = 0; i < vips; i++) {
    const m = <u32>load<u8>(vipPtr(i) + V_METHOD);
    let need: u32 = m == M_NAT || m == M_DR ? 14 : 62;
    // Splice answers in place with frames up to 74 bytes (SYN-ACK) for inputs as short as 40 (raw IP SYN).
    if (m == M_SPLICE || m == M_HANDOFF) {
      need = 64;
      spliceVips++;
    }
    if (m == M_NAT && <u32>load<u8>(vipPtr(i) + V_POLICY) == P_SESSION) need = 14 + NAT_GROW_MAX;
    if (need > neededHeadroom) neededHeadroom = need;
  }
  memory.fill(baddrPtr, 0, (<usize>baddrMask + 1) * 4);
  for (let j: u32 = 0; j < backends; j++) {
    const b = backendPtr(j);
    let s = addrSlot(load<u64>(b), load<u64>(b, 8));
    // Linear probing; the index holds at most half as many backends as slots, so it terminates.
    while (load<u32>(baddrPtr + (<usize>s << 2)) != 0) s = (s + 1) & baddrMask;
    store<u32>(baddrPtr + (<usize>s << 2), j + 1);
  }
  return 0;
}

/**
 * Backends with address (a0, a1): a server may be a backend of several VIPs, so this is an
 * iteration. `from` < 0 starts it; each call returns the next index-slot holding a backend with
 * that address, or -1. The backend is slotBackend(slot).
 */
export function nextBackendSlot(a0: u64, a1: u64, from: i32): i32 {
  let s = from < 0 ? addrSlot(a0, a1) : (<u32>from + 1) & baddrMask;
  while (true) {
    const v = load<u32>(baddrPtr + (<usize>s << 2));
    if (v == 0) return -1;
    const b = backendPtr(v - 1);
    if (load<u64>(b) == a0 && load<u64>(b, 8) == a1) return <i32>s;
    s = (s + 1) & baddrMask;
  }
}

@inline export function slotBackend(slot: i32): u32 {
  return load<u32>(baddrPtr + (<usize>slot << 2)) - 1;
}

/** VIP whose address is the 16 bytes at p, or -1 (linear scan: a handful of VIPs). */
export function findVip(p: usize): i32 {
  const a0 = load<u64>(p), a1 = load<u64>(p, 8);
  for (let i: u32 = 0; i < vipCount; i++) {
    const v = vipPtr(i);
    if (load<u64>(v) == a0 && load<u64>(v, 8) == a1) return <i32>i;
  }
  return -1;
}
