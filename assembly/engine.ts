// The per-packet path: classify each descriptor's frame, find or create its flow, pick the backend,
// rewrite, and write the verdict. One call handles a whole batch (docs/abi.md "Descriptor").
//
// Directions: FWD = client -> VIP; REPLY = VIP -> client (in a capture taken at the cluster's entry
// point this stands for what the owning backend sends back); BACKEND = backend -> client in NAT mode
// (rewritten back to the VIP, two-way NAT as in IPVS).
import { descPtr, DESC_SIZE, keyPtr, key2Ptr, hashesPtr, prefetchPass } from './layout';
import {
  count, countDrop, countPass,
  C_RX_PACKETS, C_RX_BYTES, C_TX_BACKEND, C_TX_CLIENT, C_PASSED, C_DROPPED, C_FLOWS_CREATED,
  C_FLOW_TABLE_FULL, C_FLOWS_RESTEERED, C_FLOWS_MIDSTREAM, C_FLOWS_REUSED, C_FRAG_TRACKED,
  C_FRAG_FOLLOWED, C_ICMP_FOLLOWED, C_ENCAPSULATED, C_NAT_REWRITES, C_BATCHES, C_STATELESS,
  C_REPLY_FROM_BACKEND, C_L2_CONVERTED, C_FLOW_HITS, C_SESSIONS_REFUSED, C_EXPECTATIONS_MATCHED, D_ADMISSION,
  D_TRUNCATED, D_LINKTYPE, D_BAD_IP, D_NO_SERVICE, D_NO_BACKEND, D_FRAG_ORPHAN, D_TOO_BIG, D_BAD_L4,
  P_NOT_IP, P_NOT_VIP, P_ICMP_TO_VIP, P_ICMP_NO_FLOW,
} from './counters';
import {
  parseL2, parseL3, be16, PARSE_OK, PARSE_NOT_IP, PARSE_TRUNCATED, PARSE_LINKTYPE,
  pEthertype, pIsEthernet, pFamily, pProto, pL3, pL4, pHasL4, pL3Len, pFragment, pFragFirst, pFragId,
  pSrc, pDst, pAddrLen, pFragProto, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, ET_IPV4, ET_IPV6,
} from './net/parse';
import { natRewrite, emitL2, encapLength, writeEncap, replaceAddr } from './net/rewrite';
import { adjust, adjustUdp, delta } from './net/csum';
import { flowHash } from './lb/flowhash';
import {
  lookupFlow, insertFlow, closeFlow, timeoutFor, touchBuckets, flowSession, addFlowBytes, FL_EXPECTED, fExpire, fBackend, fState, fFlags, fPackets, fBytes, flowIndex,
  TS_NONE, TS_SYN, TS_ESTABLISHED, TS_FIN, TS_CLOSE, FL_FROM_REPLY,
} from './lb/flowtable';
import { fragRecord, fragLookup } from './lb/frag';
import { schedule } from './lb/schedule';
import {
  findVip, nextBackendSlot, slotBackend, vipPtr, backendPtr, bstatPtr, bump, vipHasPort, gwMacHi, gwMacLo, liveFlags,
  V_ADDR, V_TSRC4, V_TSRC6, V_METHOD, V_SCHED, V_PROTOS, V_GUE_PORT, B_ADDR, B_MAC, B_STATE, B_VIP,
  B_ACTIVE, B_FAMILY, BS_PACKETS, BS_BYTES, BS_FLOWS, BS_REPLY_PACKETS, BS_REPLY_BYTES, BS_RESTEERED_IN,
  M_NAT, M_DR, S_SH, ST_DOWN, ST_ACTIVE, PROTO_TCP_BIT, PROTO_UDP_BIT, V_POLICY, V_MAX_SESSIONS, V_FIRST, V_COUNT,
  B_MAX_SESSIONS, B_SESSIONS, B_WEIGHT, P_SESSION, P_CLIENT, isRtspPort, V_SESSION_RATE, V_RATE_TOKENS, V_RATE_TS, V_SESSION_FLAGS, VF_CLIENT_AFFINITY,
} from './lb/config';
import { emitFlow, EV_FLOW_CREATED, EV_FLOW_RESTEERED, CR_REUSED } from './events';
import { copy16 } from './mem';
import { inspectControl } from './session/inspect';
import { natPacket, natServerFinish } from './session/rtspnat';
import { touchSession, hasCapacity, affinityLookup, sessionBackend } from './session/table';
import { spliceVips, M_SPLICE, M_HANDOFF } from './lb/config';
import { spliceInput, spliceLocal, spliceTransparent, spliceClaims } from './splice/splice';

export const VERDICT_DROP: u8 = 0;
export const VERDICT_BACKEND: u8 = 1;
export const VERDICT_CLIENT: u8 = 2;
export const VERDICT_PASS: u8 = 3;

const DIR_FWD: u32 = 0;
const DIR_REPLY: u32 = 1;
const DIR_BACKEND: u32 = 2;

const TCP_FIN: u32 = 1;
const TCP_SYN: u32 = 2;
const TCP_RST: u32 = 4;
const TCP_ACK: u32 = 16;

@inline function drop(d: usize, reason: u32): void {
  store<u8>(d, VERDICT_DROP, 24);
  store<u8>(d, <u8>reason, 25);
  count(C_DROPPED);
  countDrop(reason);
}

@inline function pass(d: usize, reason: u32): void {
  store<u8>(d, VERDICT_PASS, 24);
  store<u8>(d, <u8>reason, 25);
  count(C_PASSED);
  countPass(reason);
}

/** Writes a 16-byte key address from a 4- or 16-byte packet address (IPv4 becomes ::ffff:a.b.c.d). */
@inline function keyAddr(k: usize, a: usize, len: u32): void {
  if (len == 4) {
    store<u64>(k, 0);
    store<u32>(k, 0xffff0000, 8);
    store<u32>(k, load<u32>(a), 12);
  } else {
    store<u64>(k, load<u64>(a));
    store<u64>(k, load<u64>(a, 8), 8);
  }
}

let touchSink: u32 = 0;

export function processBatch(n: u32): u32 {
  count(C_BATCHES);
  // Pass 1 hashes every packet's flow key and touches its two buckets, so the cache misses of
  // the whole batch overlap instead of stalling one packet at a time (VPP's "hash packet i+1
  // before working on i", Snabb's lookup queue). Pass 2 does the work with those hashes. Only
  // for tables too large to stay in cache (layout.ts prefetchPass); the output is the same.
  let d = descPtr;
  if (prefetchPass) {
    for (let i: u32 = 0; i < n; i++, d += DESC_SIZE) store<u32>(hashesPtr + (<usize>i << 2), prehash(d));
    // A separate, tiny loop: many iterations fit in the CPU's reorder window at once, so many
    // misses are outstanding together (inside the hashing loop only one or two would be).
    let sink: u32 = 0;
    for (let i: u32 = 0; i < n; i++) {
      const h = load<u32>(hashesPtr + (<usize>i << 2));
      if (h) sink += touchBuckets(h);
    }
    touchSink += sink;
  } else memory.fill(hashesPtr, 0, <usize>n << 2);
  d = descPtr;
  for (let i: u32 = 0; i < n; i++, d += DESC_SIZE) processOne(d, load<u32>(hashesPtr + (<usize>i << 2)));
  return n;
}

/**
 * The flow hash a client->VIP or VIP->client TCP/UDP packet will be looked up with, or 0. Same
 * key as processOne builds; no counters, no verdict.
 */
function prehash(d: usize): u32 {
  const data = <usize>load<u32>(d);
  const caplen = load<u32>(d, 4);
  if (parseL2(data, caplen, <u32>load<u16>(d, 14)) != PARSE_OK || parseL3(data, caplen) != PARSE_OK) return 0;
  const proto = pProto;
  if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || !pHasL4 || pL4 + 8 > caplen) return 0;
  const k = keyPtr;
  keyAddr(k, pSrc, pAddrLen);
  keyAddr(k + 16, pDst, pAddrLen);
  const sport = load<u16>(data + pL4), dport = load<u16>(data + pL4 + 2);
  if (findVip(k + 16) >= 0) {
    store<u16>(k, sport, 32);
    store<u16>(k, dport, 34);
  } else {
    const vip = findVip(k);
    if (vip < 0) return 0;
    keyAddr(k, pDst, pAddrLen);
    copy16(k + 16, vipPtr(<u32>vip) + V_ADDR);
    store<u16>(k, dport, 32);
    store<u16>(k, sport, 34);
  }
  store<u32>(k, proto, 36);
  return flowHash(k);
}

function parseFail(d: usize, r: i32): void {
  if (r == PARSE_NOT_IP) pass(d, P_NOT_IP);
  else if (r == PARSE_TRUNCATED) drop(d, D_TRUNCATED);
  else if (r == PARSE_LINKTYPE) drop(d, D_LINKTYPE);
  else drop(d, D_BAD_IP);
}

function processOne(d: usize, preHash: u32): void {
  let data = <usize>load<u32>(d);
  let caplen = load<u32>(d, 4);
  const wirelen = load<u32>(d, 8);
  const link = <u32>load<u16>(d, 14);
  const now = load<u32>(d, 16);
  store<u64>(d, 0, 24);
  count(C_RX_PACKETS);
  count(C_RX_BYTES, wirelen);

  let r = parseL2(data, caplen, link);
  if (r != PARSE_OK) return parseFail(d, r);
  r = parseL3(data, caplen);
  if (r != PARSE_OK) return parseFail(d, r);

  // Who is talking: a VIP as destination, a VIP as source, or a NAT backend as source.
  const k = keyPtr;
  keyAddr(k, pSrc, pAddrLen);
  keyAddr(k + 16, pDst, pAddrLen);
  store<u64>(k, 0, 32);
  let dir = DIR_FWD;
  let vip = findVip(k + 16);
  let fromBackend: i32 = -1;
  let backendSlot: i32 = -1; // NAT replies: the first backend entry with the source address
  const srcHi = load<u64>(k), srcLo = load<u64>(k, 8);
  // TCP splicing (splice/splice.ts): segments to a splice VIP, and backend segments to our source address.
  if (spliceVips && pProto == IPPROTO_TCP && pHasL4 &&
    (vip >= 0 ? (<u32>load<u8>(vipPtr(<u32>vip) + V_METHOD) == M_SPLICE || <u32>load<u8>(vipPtr(<u32>vip) + V_METHOD) == M_HANDOFF)
      : pAddrLen == 4 && ((spliceLocal != 0 && load<u32>(pDst) == spliceLocal) ||
        (spliceTransparent != 0 && pL4 + 20 <= caplen && spliceClaims(data))))) {
    return spliceInput(d, data, caplen, vip, now, load<u32>(d, 20));
  }
  if (vip < 0) {
    vip = findVip(k);
    if (vip >= 0) dir = DIR_REPLY;
    else {
      backendSlot = nextBackendSlot(srcHi, srcLo, -1);
      if (backendSlot < 0) return pass(d, P_NOT_VIP);
      dir = DIR_BACKEND; // which of its VIPs is settled once the ports are known
    }
  }

  // Later fragments carry no ports: they follow their first fragment's decision.
  if (pFragment && !pFragFirst) {
    const fk = fragKey();
    const fe = fragLookup(fk, flowHash(fk), now);
    if (!fe) return drop(d, D_FRAG_ORPHAN);
    count(C_FRAG_FOLLOWED);
    deliver(d, data, caplen, <u32>load<u8>(fe, 10), <u32>load<u8>(fe, 11), <u32>load<u16>(fe, 8), load<u32>(fe, 12));
    return;
  }

  const proto = pProto;
  if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    if (dir == DIR_FWD) return icmpToVip(d, data, caplen, <u32>vip, now);
    return pass(d, P_ICMP_TO_VIP);
  }
  let bit: u32 = 0;
  if (proto == IPPROTO_TCP) {
    if (pL4 + 20 > caplen) return drop(d, D_TRUNCATED);
    if ((<u32>load<u8>(data + pL4 + 12) >> 4) < 5) return drop(d, D_BAD_L4);
    bit = PROTO_TCP_BIT;
  } else if (proto == IPPROTO_UDP) {
    if (pL4 + 8 > caplen) return drop(d, D_TRUNCATED);
    bit = PROTO_UDP_BIT;
  } else {
    // Only TCP and UDP are balanced (ICMP is handled above).
    if (dir == DIR_FWD) return drop(d, D_NO_SERVICE);
    return pass(d, P_NOT_VIP);
  }
  const sport = load<u16>(data + pL4), dport = load<u16>(data + pL4 + 2);
  const vport = dir == DIR_FWD ? dport : sport;
  if (dir == DIR_BACKEND) {
    // A server may be a backend of several NAT VIPs: the reply belongs to the one that holds its
    // flow (media flows on unlisted ports included: expectations); failing a flow, to the first
    // that serves this port and protocol.
    let first: i32 = -1;
    for (let s = backendSlot; s >= 0; s = nextBackendSlot(srcHi, srcLo, s)) {
      const j = slotBackend(s);
      const vi = <u32>load<u16>(backendPtr(j) + B_VIP);
      const vp = vipPtr(vi);
      // Splice VIPs forward their sessions' UDP media as NAT does (their TCP is spliceInput's; a
      // backend segment no transparent splice entry claims is not a NAT flow either).
      const vm = <u32>load<u8>(vp + V_METHOD);
      if (vm != M_NAT && (vm != M_SPLICE || proto == IPPROTO_TCP)) continue;
      if (first < 0 && (<u32>load<u8>(vp + V_PROTOS) & bit) && vipHasPort(vi, <u32>bswap<u16>(vport))) first = <i32>j;
      copy16(k + 16, vp + V_ADDR);
      keyAddr(k, pDst, pAddrLen);
      store<u16>(k, dport, 32);
      store<u16>(k, sport, 34);
      store<u32>(k, proto, 36);
      if (lookupFlow(k, flowHash(k), now)) {
        first = <i32>j;
        break;
      }
    }
    if (first < 0) return pass(d, P_NOT_VIP);
    fromBackend = first;
    vip = <i32>load<u16>(backendPtr(<u32>first) + B_VIP);
  }
  const v = vipPtr(<u32>vip);
  // Not a configured port or protocol: only a flow the table already holds (an expectation made
  // from a SETUP reply) may pass; that is the firewall traversal of session awareness.
  const served = (<u32>load<u8>(v + V_PROTOS) & bit) != 0 && vipHasPort(<u32>vip, <u32>bswap<u16>(vport));

  // The flow key always names the client first (docs/abi.md "Flow key").
  if (dir == DIR_FWD) {
    store<u16>(k, sport, 32);
    store<u16>(k, dport, 34);
  } else {
    keyAddr(k, pDst, pAddrLen);
    copy16(k + 16, v + V_ADDR);
    store<u16>(k, dport, 32);
    store<u16>(k, sport, 34);
  }
  store<u8>(k, <u8>proto, 36);
  const h = preHash ? preHash : flowHash(k);
  const tcpFlags: u32 = proto == IPPROTO_TCP ? <u32>load<u8>(data + pL4 + 13) : 0;

  let e = lookupFlow(k, h, now);
  if (!served && !e) {
    if (dir == DIR_FWD) return drop(d, D_NO_SERVICE);
    return pass(d, P_NOT_VIP);
  }
  const policy = <u32>load<u8>(v + V_POLICY);
  const control = policy == P_SESSION && proto == IPPROTO_TCP && isRtspPort(v, vport);
  if (e && proto == IPPROTO_TCP && dir == DIR_FWD && (tcpFlags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
    // A new connection reusing the ports of one that is closing: start over (IPVS conn_reuse_mode).
    const st = <u32>load<u8>(fState(e));
    if (st == TS_FIN || st == TS_CLOSE) {
      closeFlow(e, CR_REUSED, now);
      count(C_FLOWS_REUSED);
      e = lookupFlow(k, h, now);
    }
  }
  let j: i32;
  if (e) {
    count(C_FLOW_HITS);
    j = liveBackend(e, <u32>vip, h, k, now);
    if (j < 0) return drop(d, D_NO_BACKEND);
    if (<u32>load<u8>(fFlags(e)) & FL_EXPECTED) {
      // The first packet of an expected media flow: from now on a flow of the session's backend.
      store<u8>(fFlags(e), dir == DIR_FWD ? 0 : <u8>FL_FROM_REPLY);
      const bp = backendPtr(<u32>j) + B_ACTIVE;
      store<u32>(bp, load<u32>(bp) + 1);
      bump(bstatPtr(<u32>j) + BS_FLOWS, 1);
      count(C_FLOWS_CREATED);
      count(C_EXPECTATIONS_MATCHED);
      emitFlow(EV_FLOW_CREATED, 0, <u32>j, now, e);
    }
  } else {
    // With client affinity, a new control connection from a client with an active session goes to
    // that session's backend (bound at the SYN, before any RTSP byte is seen: every user behind
    // one NAT address then shares that backend, which is why it is an option, off by default).
    let sa: i32 = -1;
    if (control && dir == DIR_FWD && (<u32>load<u8>(v + V_SESSION_FLAGS) & VF_CLIENT_AFFINITY)) {
      sa = affinityLookup(<u32>vip, k);
      if (sa >= 0 && <u32>load<u8>(backendPtr(sessionBackend(<u32>sa)) + B_STATE) == ST_DOWN) sa = -1;
    }
    if (sa >= 0) j = <i32>sessionBackend(<u32>sa);
    else {
      j = dir == DIR_BACKEND ? fromBackend : pick(<u32>vip, h, k);
      if (j < 0) return drop(d, D_NO_BACKEND);
      if (control && dir == DIR_FWD) {
        // A new RTSP control connection may start a session: session-level admission control.
        j = admit(<u32>vip, <u32>j, now);
        if (j < 0) {
          count(C_SESSIONS_REFUSED);
          return drop(d, D_ADMISSION);
        }
      }
    }
    e = insertFlow(k, h, now);
    if (e) {
      let st = TS_NONE;
      if (proto == IPPROTO_TCP) {
        if (tcpFlags & TCP_SYN) st = TS_SYN;
        else {
          st = TS_ESTABLISHED;
          count(C_FLOWS_MIDSTREAM);
        }
      }
      store<u16>(fBackend(e), <u16>j);
      store<u8>(fState(e), <u8>st);
      store<u8>(fFlags(e), dir == DIR_FWD ? 0 : <u8>FL_FROM_REPLY);
      const bp = backendPtr(<u32>j) + B_ACTIVE;
      store<u32>(bp, load<u32>(bp) + 1);
      bump(bstatPtr(<u32>j) + BS_FLOWS, 1);
      count(C_FLOWS_CREATED);
      emitFlow(EV_FLOW_CREATED, 0, <u32>j, now, e);
    } else {
      count(C_FLOW_TABLE_FULL);
      count(C_STATELESS);
    }
  }
  if (e) {
    const pp = fPackets(e);
    store<u32>(pp, load<u32>(pp) + 1);
    addFlowBytes(e, wirelen);
    const sref = flowSession(e);
    if (sref) touchSession(sref - 1, now); // media and control traffic keep a session alive
    let st = <u32>load<u8>(fState(e));
    if (proto == IPPROTO_TCP) {
      if (tcpFlags & TCP_RST) st = TS_CLOSE;
      else if (tcpFlags & TCP_FIN) {
        if (st < TS_FIN) st = TS_FIN;
      } else if (st == TS_SYN && !(tcpFlags & TCP_SYN)) st = TS_ESTABLISHED;
      store<u8>(fState(e), <u8>st);
    }
    store<u32>(fExpire(e), now + timeoutFor(proto, st));
    store<u32>(d, flowIndex(e) + 1, 28);
    if (control) {
      // RTSP on the control connection: the TCP payload, without Ethernet padding.
      const start = pL4 + ((<u32>load<u8>(data + pL4 + 12) >> 4) << 2);
      let end = pL3 + pL3Len;
      if (end > caplen) end = caplen;
      // NAT: the server's messages name the VIP instead of the backend (session/rtspnat.ts). A
      // client segment's ack and SACK blocks go back to the server's numbers before inspection;
      // a server segment is inspected as the server sent it, then edited.
      const nat = <u32>load<u8>(v + V_METHOD) == M_NAT;
      natPacket(nat, data, caplen, dir == DIR_FWD, e, <u32>j, <u32>vip, start, end);
      if (end > start) {
        const ipEnd = pL3 + pL3Len;
        inspectControl(data + pL4, data + start, end - start, ipEnd > start ? ipEnd - start : 0, pFragment, dir == DIR_FWD,
          e, k, <u32>vip, <u32>j, now);
      }
      if (nat && dir != DIR_FWD) {
        natServerFinish(d, e);
        data = <usize>load<u32>(d);
        caplen = load<u32>(d, 4);
      }
    }
  }
  if (pFragment) {
    const fk = fragKey();
    fragRecord(fk, flowHash(fk), now, <u32>j, dir, <u32>vip, h);
    count(C_FRAG_TRACKED);
  }
  deliver(d, data, caplen, dir, <u32>vip, <u32>j, h);
}

/**
 * The backend of flow e, re-steered to a live one first if its backend is down (flows of healthy
 * backends never move). -1 when no backend is usable.
 */
function liveBackend(e: usize, vip: u32, h: u32, k: usize, now: u32): i32 {
  const j = <u32>load<u16>(fBackend(e));
  if (<u32>load<u8>(backendPtr(j) + B_STATE) != ST_DOWN) return <i32>j;
  const nj = pick(vip, h, k);
  if (nj < 0) return -1;
  // The event carries the old backend in the flow copy (bytes 8..9) and the new one in its header.
  emitFlow(EV_FLOW_RESTEERED, 0, <u32>nj, now, e);
  moveActive(j, <u32>nj);
  store<u16>(fBackend(e), <u16>nj);
  bump(bstatPtr(<u32>nj) + BS_RESTEERED_IN, 1);
  count(C_FLOWS_RESTEERED);
  return nj;
}

/**
 * Session-level admission for a new control connection to backend j of VIP vip: j if the global,
 * VIP and backend session limits allow it, else the usable backend of the VIP with the fewest
 * sessions that has room, else -1 (refused).
 */
function admit(vip: u32, j: u32, now: u32): i32 {
  const v = vipPtr(vip);
  const rate = load<u32>(v + V_SESSION_RATE);
  if (rate) {
    // Token bucket on packet time: `rate` new sessions per second, bursts of one second's worth.
    const cap = rate * 1000;
    const last = load<u32>(v + V_RATE_TS);
    let tokens = load<u32>(v + V_RATE_TOKENS);
    if (now > last) {
      const add = <u64>(now - last) * <u64>cap;
      tokens = add + tokens > <u64>cap ? cap : tokens + <u32>add;
      store<u32>(v + V_RATE_TS, now);
    }
    if (tokens < 1000) return -1;
    store<u32>(v + V_RATE_TOKENS, tokens - 1000);
  }
  const vmax = load<u32>(v + V_MAX_SESSIONS);
  if (hasCapacity(vip, j, vmax, load<u32>(backendPtr(j) + B_MAX_SESSIONS))) return <i32>j;
  const first = <u32>load<u16>(v + V_FIRST), n = <u32>load<u16>(v + V_COUNT);
  let best: i32 = -1;
  let bestLoad: u32 = 0xffffffff;
  for (let i: u32 = 0; i < n; i++) {
    const c = first + i;
    const b = backendPtr(c);
    if (<u32>load<u8>(b + B_STATE) != ST_ACTIVE || load<u32>(b + B_WEIGHT) == 0) continue;
    if (!hasCapacity(vip, c, vmax, load<u32>(b + B_MAX_SESSIONS))) continue;
    const l = load<u32>(b + B_SESSIONS);
    if (l < bestLoad) {
      best = <i32>c;
      bestLoad = l;
    }
  }
  return best;
}

/** Scheduler call; computes the client-address hash only for source hashing (and policy client). */
function pick(vip: u32, h: u32, k: usize): i32 {
  let sh: u32 = 0;
  const vp = vipPtr(vip);
  if (<u32>load<u8>(vp + V_SCHED) == S_SH || <u32>load<u8>(vp + V_POLICY) == P_CLIENT) {
    const k2 = key2Ptr;
    copy16(k2, k);
    store<u64>(k2, 0, 16);
    store<u64>(k2, 0, 24);
    store<u64>(k2, 0, 32);
    sh = flowHash(k2);
  }
  return schedule(vip, h, sh);
}

function moveActive(from: u32, to: u32): void {
  const a = backendPtr(from) + B_ACTIVE;
  const x = load<u32>(a);
  if (x) store<u32>(a, x - 1);
  const b = backendPtr(to) + B_ACTIVE;
  store<u32>(b, load<u32>(b) + 1);
}

/** Fragment key in key2: source, destination, IP ID, protocol. */
function fragKey(): usize {
  const k2 = key2Ptr;
  keyAddr(k2, pSrc, pAddrLen);
  keyAddr(k2 + 16, pDst, pAddrLen);
  store<u32>(k2, pFragId, 32);
  // The protocol as the fragment header names it: for IPv6 the header after it, which later
  // fragments name too (the first one may go on through more extension headers).
  store<u32>(k2, pFragProto, 36);
  return k2;
}

/** Verdict "to backend j" and its load: the frame is already rewritten. */
function toBackend(d: usize, j: u32): void {
  store<u8>(d, VERDICT_BACKEND, 24);
  store<u16>(d, <u16>j, 26);
  const s = bstatPtr(j);
  bump(s + BS_PACKETS, 1);
  bump(s + BS_BYTES, load<u32>(d, 8));
  count(C_TX_BACKEND);
}

/** Applies the VIP's forwarding method for a packet whose backend j is decided. */
function deliver(d: usize, data: usize, caplen: u32, dir: u32, vip: u32, j: u32, h: u32): void {
  const v = vipPtr(vip);
  const b = backendPtr(j);
  const method = <u32>load<u8>(v + V_METHOD);
  const et = pEthertype;
  if (dir == DIR_FWD) {
    if (method == M_NAT || method == M_SPLICE) {
      natRewrite(data, caplen, pDst, b + B_ADDR);
      count(C_NAT_REWRITES);
      emitL2(d, data, 0, true, b + B_MAC, 0, 0, et);
    } else if (method == M_DR) {
      emitL2(d, data, 0, true, b + B_MAC, 0, 0, et);
    } else {
      const fam = <u32>load<u8>(b + B_FAMILY);
      const extra = encapLength(method, fam);
      if (pL3Len + extra - (fam == 6 ? 40 : 0) > 65535) return drop(d, D_TOO_BIG);
      const innerCap = caplen - pL3;
      const o = emitL2(d, data, extra, true, b + B_MAC, 0, 0, fam == 4 ? ET_IPV4 : ET_IPV6);
      writeEncap(o, method, fam, v + (fam == 4 ? V_TSRC4 : V_TSRC6), b + B_ADDR, h,
        <u32>load<u16>(v + V_GUE_PORT), innerCap);
      count(C_ENCAPSULATED);
    }
    if (!pIsEthernet) count(C_L2_CONVERTED);
    return toBackend(d, j);
  }
  // Towards the client.
  if (dir == DIR_BACKEND) {
    natRewrite(data, caplen, pSrc, v + V_ADDR);
    count(C_REPLY_FROM_BACKEND);
  }
  const s = bstatPtr(j);
  bump(s + BS_REPLY_PACKETS, 1);
  bump(s + BS_REPLY_BYTES, load<u32>(d, 8));
  const live = (liveFlags & 1) != 0;
  if (method == M_NAT || method == M_SPLICE || !pIsEthernet || live) {
    // Two-way NAT: the reply leaves through the balancer with its MAC as source. Non-Ethernet
    // input also gets an Ethernet header, addressed to the configured gateway.
    // A NAT reply from a backend was addressed to the balancer: it leaves for the gateway.
    emitL2(d, data, 0, !pIsEthernet || dir == DIR_BACKEND || live, 0, gwMacHi, gwMacLo, et);
    if (!pIsEthernet) count(C_L2_CONVERTED);
  }
  store<u8>(d, VERDICT_CLIENT, 24);
  store<u16>(d, <u16>j, 26);
  count(C_TX_CLIENT);
}

/**
 * ICMP towards a VIP. Errors about a tracked flow (destination unreachable, time exceeded, ...)
 * follow that flow to its backend, as IPVS does: the quoted packet is one the cluster sent, so
 * its source is the VIP and its destination the client. Echo and the rest go to the host.
 */
function icmpToVip(d: usize, data: usize, caplen: u32, vip: u32, now: u32): void {
  if (!pHasL4) return pass(d, P_ICMP_TO_VIP);
  if (pL4 + 8 > caplen) return drop(d, D_TRUNCATED);
  const type = <u32>load<u8>(data + pL4);
  const isErr = pFamily == 4
    ? (type == 3 || type == 4 || type == 11 || type == 12)
    : (type >= 1 && type <= 4);
  if (!isErr || pProto != (pFamily == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) return pass(d, P_ICMP_TO_VIP);
  // The quoted packet.
  const q = pL4 + 8;
  let qSrc: usize, qDst: usize, qL4: u32, qProto: u32, qCsum: usize = 0;
  if (pFamily == 4) {
    if (q + 20 > caplen) return pass(d, P_ICMP_NO_FLOW);
    const ihl = (<u32>load<u8>(data + q) & 15) << 2;
    if ((<u32>load<u8>(data + q) >> 4) != 4 || ihl < 20) return pass(d, P_ICMP_NO_FLOW);
    qProto = <u32>load<u8>(data + q + 9);
    qSrc = data + q + 12;
    qDst = data + q + 16;
    qL4 = q + ihl;
    qCsum = data + q + 10;
  } else {
    if (q + 40 > caplen) return pass(d, P_ICMP_NO_FLOW);
    qProto = <u32>load<u8>(data + q + 6);
    qSrc = data + q + 8;
    qDst = data + q + 24;
    qL4 = q + 40;
  }
  if ((qProto != IPPROTO_TCP && qProto != IPPROTO_UDP) || qL4 + 4 > caplen) return pass(d, P_ICMP_NO_FLOW);
  const k = keyPtr;
  keyAddr(k, qDst, pAddrLen);
  keyAddr(k + 16, qSrc, pAddrLen);
  const v = vipPtr(vip);
  if (load<u64>(k + 16) != load<u64>(v + V_ADDR) || load<u64>(k + 24) != load<u64>(v + V_ADDR + 8)) {
    return pass(d, P_ICMP_NO_FLOW);
  }
  store<u16>(k, load<u16>(data + qL4 + 2), 32);
  store<u16>(k, load<u16>(data + qL4), 34);
  store<u32>(k, qProto, 36);
  const h = flowHash(k);
  const e = lookupFlow(k, h, now);
  if (!e) return pass(d, P_ICMP_NO_FLOW);
  const lj = liveBackend(e, vip, h, k, now);
  if (lj < 0) return drop(d, D_NO_BACKEND);
  const j = <u32>lj;
  count(C_ICMP_FOLLOWED);
  if (<u32>load<u8>(v + V_METHOD) == M_NAT) {
    // Outer destination VIP -> backend, and the quoted source likewise, with every checksum that
    // covers a changed word: outer IPv4 header, quoted IPv4 header, quoted UDP (when captured),
    // and the ICMP checksum over all of it (ICMPv6 also over the outer pseudo-header).
    const b = backendPtr(j);
    const alen = pAddrLen;
    const to = alen == 4 ? b + B_ADDR + 12 : b + B_ADDR;
    const dOuter = replaceAddr(pDst, to, alen);
    if (pFamily == 4) adjust(data + pL3 + 10, dOuter);
    let dIcmp: u64 = pFamily == 6 ? dOuter : 0;
    const dQ = replaceAddr(qSrc, to, alen);
    dIcmp += dQ;
    if (qCsum) {
      const before = <u64>load<u16>(qCsum);
      adjust(qCsum, dQ);
      dIcmp += delta(before, <u64>load<u16>(qCsum));
    }
    if (qProto == IPPROTO_UDP && qL4 + 8 <= caplen) {
      const c = data + qL4 + 6;
      const before = <u64>load<u16>(c);
      adjustUdp(c, dQ);
      dIcmp += delta(before, <u64>load<u16>(c));
    } else if (qProto == IPPROTO_TCP && qL4 + 18 <= caplen) {
      const c = data + qL4 + 16;
      const before = <u64>load<u16>(c);
      adjust(c, dQ);
      dIcmp += delta(before, <u64>load<u16>(c));
    }
    adjust(data + pL4 + 2, dIcmp);
    count(C_NAT_REWRITES);
    emitL2(d, data, 0, true, b + B_MAC, 0, 0, pEthertype);
    return toBackend(d, j);
  }
  deliver(d, data, caplen, DIR_FWD, vip, j, h);
}
