// RTSP control-connection inspection (policy "session"): the TCP payload of a connection to one
// of the VIP's RTSP ports goes through the control-stream reassembly (reassembly.ts), which puts
// each direction's bytes back in order and hands every complete message to handleMessage here.
// A SETUP reply that carries a Session id creates the session on the control connection's backend
// (or finds it) and turns every UDP transport it negotiates into expectations: flow-table entries
// for the RTP and RTCP flows, made before their first packet and pinned to the session's backend,
// whatever the scheduler would say. A TEARDOWN closes the session (after a grace period); any
// request naming it keeps it alive. Interleaved ($-framed) data is skipped by the reassembly; it
// stays on the control connection, hence on the session's backend.
import { rtspResultPtr, key2Ptr } from '../layout';
import {
  R_KIND, R_METHOD, R_CODE, R_FLAGS, R_SPECS, R_SESSION_SPAN, R_TIMEOUT, R_SPEC0, SPEC_SIZE,
  T_FLAGS, T_LOWER, T_CAST, T_CLIENT_PORT, T_SERVER_PORT, TF_CLIENT_PORT, TF_CLIENT_PORT_RANGE, TF_SERVER_PORT,
  TF_SERVER_PORT_RANGE, F_SESSION, METHOD_TEARDOWN,
} from './rtsp';
import { count, C_EXPECTATIONS_CREATED, C_EXPECTATIONS_EXISTING, C_FLOW_TABLE_FULL } from '../counters';
import { findSession, createSession, touchSession, reviveSession, closeSession, sessionRef, SE_TEARDOWN } from './table';
import {
  lookupFlow, insertFlow, fBackend, fFlags, fState, fExpire, flowSession, setFlowSession, FL_EXPECTED, TS_NONE,
  toSetup,
} from '../lb/flowtable';
import { flowHash } from '../lb/flowhash';
import { copy16 } from '../mem';
import { reasmSegment } from './reassembly';

/**
 * Inspects one TCP payload [p, p+len) of control flow `flow` (key: client first, at k; VIP vip,
 * backend j) of the packet being processed. `fromClient`: the segment goes client -> VIP.
 */
export function inspectControl(
  th: usize, p: usize, len: u32, real: u32, fragment: bool, fromClient: bool, flow: usize, k: usize, vip: u32, j: u32, now: u32,
): void {
  // th: the segment's TCP header; [p, p+len): its payload as captured; real: the payload bytes
  // the IP header says were sent (len may be fewer, cut by the capture length).
  if (len == 0) return;
  reasmSegment(p, len, real, bswap<u32>(load<u32>(th + 4)), bswap<u32>(load<u32>(th + 8)), <u32>load<u8>(th + 13),
    fragment, fromClient, flow, k, vip, j, now);
}

/**
 * One complete RTSP message at m, tokenized into the result record (rtspResultPtr; spans are
 * relative to m), seen on control flow `flow` in direction `fromClient`.
 */
export function handleMessage(m: usize, fromClient: bool, flow: usize, k: usize, vip: u32, j: u32, now: u32): void {
  const r = rtspResultPtr;
  const flags = load<u32>(r + R_FLAGS);
  if (!(flags & F_SESSION)) return;
  const span = load<u32>(r + R_SESSION_SPAN);
  const idPtr = m + (span & 0xffff), idLen = span >> 16;
  let s = findSession(vip, idPtr, idLen);
  const kind = <u32>load<u8>(r + R_KIND);
  if (kind == 1) {
    // A request naming a session: keep it alive; TEARDOWN ends it.
    if (s < 0 || !fromClient) return;
    reviveSession(<u32>s, now);
    touchSession(<u32>s, now);
    if (<u32>load<u8>(r + R_METHOD) == METHOD_TEARDOWN) closeSession(<u32>s, SE_TEARDOWN, now);
    return;
  }
  // A response from the server side: only a successful one creates or extends a session.
  if (fromClient) return;
  const code = <u32>load<u16>(r + R_CODE);
  if (code < 200 || code > 299) return;
  if (s < 0) {
    s = createSession(vip, idPtr, idLen, j, k, load<u32>(r + R_TIMEOUT), now);
    if (s < 0) return;
  } else touchSession(<u32>s, now);
  const si = <u32>s;
  if (!flowSession(flow)) {
    setFlowSession(flow, si);
    sessionRef(si);
  }
  const specs = <u32>load<u8>(r + R_SPECS);
  for (let t: u32 = 0; t < specs; t++) {
    const spec = r + R_SPEC0 + t * SPEC_SIZE;
    const tf = load<u32>(spec + T_FLAGS);
    // UDP unicast with both ends' ports: RTP on the low ports, RTCP on the high ones (or +1).
    if (<u32>load<u8>(spec + T_LOWER) != 1 || <u32>load<u8>(spec + T_CAST) == 2) continue;
    if (!(tf & TF_CLIENT_PORT) || !(tf & TF_SERVER_PORT)) continue;
    const cLo = <u32>load<u16>(spec + T_CLIENT_PORT), sLo = <u32>load<u16>(spec + T_SERVER_PORT);
    const cHi = tf & TF_CLIENT_PORT_RANGE ? <u32>load<u16>(spec + T_CLIENT_PORT + 2) : cLo + 1;
    const sHi = tf & TF_SERVER_PORT_RANGE ? <u32>load<u16>(spec + T_SERVER_PORT + 2) : sLo + 1;
    expect(k, cLo, sLo, si, now);
    if (cHi != cLo && sHi != sLo && cHi <= 0xffff && sHi <= 0xffff) expect(k, cHi, sHi, si, now);
  }
}

/**
 * An expectation: the UDP flow (client, cport, VIP, sport) belongs to session s. A new entry is
 * pinned to the session's backend; an existing flow (its first packet came before the reply)
 * keeps its backend but joins the session.
 */
export function expect(k: usize, cport: u32, sport: u32, s: u32, now: u32): void {
  const x = key2Ptr;
  copy16(x, k);
  copy16(x + 16, k + 16);
  store<u16>(x + 32, bswap<u16>(<u16>cport));
  store<u16>(x + 34, bswap<u16>(<u16>sport));
  store<u32>(x + 36, 17);
  const h = flowHash(x);
  let e = lookupFlow(x, h, now);
  if (e) {
    count(C_EXPECTATIONS_EXISTING);
  } else {
    e = insertFlow(x, h, now);
    if (!e) {
      count(C_FLOW_TABLE_FULL); // no room: the media flow will be scheduled when it starts
      return;
    }
    store<u16>(fBackend(e), <u16>sessionBackendOf(s));
    store<u8>(fState(e), <u8>TS_NONE);
    store<u8>(fFlags(e), <u8>FL_EXPECTED);
    store<u32>(fExpire(e), now + toSetup);
    count(C_EXPECTATIONS_CREATED);
  }
  if (!flowSession(e)) {
    setFlowSession(e, s);
    sessionRef(s);
  }
}

import { sessionBackend as sessionBackendOf } from './table';
