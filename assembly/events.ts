// Event ring: fixed 64-byte records the host drains after each call (flow created, flow closed,
// flow re-steered, backend state change). The engine writes `head`, the host writes `tail`; when the
// ring is full the event is dropped and counted, never blocking the data path.
import { eventsPtr, eventCap, eventHeadPtr, EVENT_SIZE } from './layout';
import { count, C_EVENTS_LOST } from './counters';
import { fBackend, fState, fFlags, fPackets, fBytes, fKey } from './lb/flowtable';
import { copy40 } from './mem';

export const EV_FLOW_CREATED: u32 = 1;
export const EV_FLOW_CLOSED: u32 = 2;
export const EV_FLOW_RESTEERED: u32 = 3;
export const EV_BACKEND_STATE: u32 = 4;
export const EV_SESSION_STARTED: u32 = 5;
export const EV_SESSION_ENDED: u32 = 6;

// Close reasons (EV_FLOW_CLOSED).
export const CR_EXPIRED: u32 = 1;
export const CR_EVICTED: u32 = 2;
export const CR_REUSED: u32 = 3;
export const CR_FLUSH: u32 = 4;
export const CR_UNUSED: u32 = 5; // an expectation no packet ever matched

/** Bit (1 << type) set = that event type is recorded. Default: closed and re-steered flows. */
export let eventMask: u32 = (1 << EV_FLOW_CLOSED) | (1 << EV_FLOW_RESTEERED) | (1 << EV_BACKEND_STATE) |
  (1 << EV_SESSION_STARTED) | (1 << EV_SESSION_ENDED);

export function setEventMask(m: u32): void {
  eventMask = m;
}

/** Appends an event with zero body. Returns the record address, or 0 when dropped. */
export function emit(type: u32, reason: u32, backend: u32, tsSec: u32): usize {
  if (!((eventMask >> type) & 1)) return 0;
  const head = load<u32>(eventHeadPtr);
  const tail = load<u32>(eventHeadPtr, 4);
  if (head - tail >= eventCap) {
    count(C_EVENTS_LOST);
    return 0;
  }
  const r = eventsPtr + <usize>(head & (eventCap - 1)) * EVENT_SIZE;
  for (let o: usize = 8; o < EVENT_SIZE; o += 8) store<u64>(r + o, 0);
  store<u8>(r, <u8>type);
  store<u8>(r + 1, <u8>reason);
  store<u16>(r + 2, <u16>backend);
  store<u32>(r + 4, tsSec);
  store<u32>(eventHeadPtr, head + 1);
  return r;
}

/**
 * Appends a flow event: the header, then the flow's fields at 8 backend u16, 10 state, 11 flags,
 * 12 packets u32, 16 bytes u64, 24..63 key (docs/abi.md "Events").
 */
export function emitFlow(type: u32, reason: u32, backend: u32, tsSec: u32, flow: usize): usize {
  const r = emit(type, reason, backend, tsSec);
  if (!r) return 0;
  store<u16>(r + 8, load<u16>(fBackend(flow)));
  store<u8>(r + 10, load<u8>(fState(flow)));
  store<u8>(r + 11, load<u8>(fFlags(flow)));
  store<u32>(r + 12, load<u32>(fPackets(flow)));
  store<u64>(r + 16, load<u64>(fBytes(flow))); // low 40 bits bytes, high 24 bits session index + 1
  copy40(r + 24, fKey(flow));
  return r;
}
