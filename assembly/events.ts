// Event ring: fixed 64-byte records the host drains after each call (flow created, flow closed,
// flow re-steered, backend state change). The engine writes `head`, the host writes `tail`; when the
// ring is full the event is dropped and counted, never blocking the data path.
import { eventsPtr, eventCap, eventHeadPtr, EVENT_SIZE } from './layout';
import { count, C_EVENTS_LOST } from './counters';

export const EV_FLOW_CREATED: u32 = 1;
export const EV_FLOW_CLOSED: u32 = 2;
export const EV_FLOW_RESTEERED: u32 = 3;
export const EV_BACKEND_STATE: u32 = 4;

// Close reasons (EV_FLOW_CLOSED).
export const CR_EXPIRED: u32 = 1;
export const CR_EVICTED: u32 = 2;
export const CR_REUSED: u32 = 3;
export const CR_FLUSH: u32 = 4;

/** Bit (1 << type) set = that event type is recorded. Default: closed and re-steered flows. */
export let eventMask: u32 = (1 << EV_FLOW_CLOSED) | (1 << EV_FLOW_RESTEERED) | (1 << EV_BACKEND_STATE);

export function setEventMask(m: u32): void {
  eventMask = m;
}

/**
 * Appends an event. Bytes 8..63 are copied from `src` (a flow entry: backend, state, flags,
 * packets, bytes and key) when src != 0. Returns the record address, or 0 when dropped.
 */
export function emit(type: u32, reason: u32, backend: u32, tsSec: u32, src: usize): usize {
  if (!((eventMask >> type) & 1)) return 0;
  const head = load<u32>(eventHeadPtr);
  const tail = load<u32>(eventHeadPtr, 4);
  if (head - tail >= eventCap) {
    count(C_EVENTS_LOST);
    return 0;
  }
  const r = eventsPtr + <usize>(head & (eventCap - 1)) * EVENT_SIZE;
  if (src) memory.copy(r + 8, src + 8, EVENT_SIZE - 8);
  else memory.fill(r + 8, 0, EVENT_SIZE - 8);
  store<u8>(r, <u8>type);
  store<u8>(r + 1, <u8>reason);
  store<u16>(r + 2, <u16>backend);
  store<u32>(r + 4, tsSec);
  store<u32>(eventHeadPtr, head + 1);
  return r;
}
