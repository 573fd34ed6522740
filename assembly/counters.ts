// Counter, drop-reason and pass-reason indices. The host owns the names (host/ctl/counters.ts lists
// them in this order); every drop has a reason, lwaftr style.
import { countersPtr, dropsPtr, passesPtr } from './layout';

// General counters (u64 each).
export const C_RX_PACKETS: u32 = 0;
export const C_RX_BYTES: u32 = 1;
export const C_TX_BACKEND: u32 = 2;
export const C_TX_CLIENT: u32 = 3;
export const C_PASSED: u32 = 4;
export const C_DROPPED: u32 = 5;
export const C_FLOWS_CREATED: u32 = 6;
export const C_FLOWS_CLOSED: u32 = 7;
export const C_FLOWS_EXPIRED: u32 = 8;
export const C_FLOW_TABLE_FULL: u32 = 9;
export const C_FLOWS_EVICTED: u32 = 10;
export const C_FLOWS_RESTEERED: u32 = 11;
export const C_FLOWS_MIDSTREAM: u32 = 12;
export const C_FLOWS_REUSED: u32 = 13;
export const C_FRAG_TRACKED: u32 = 14;
export const C_FRAG_FOLLOWED: u32 = 15;
export const C_FRAG_TABLE_FULL: u32 = 16;
export const C_ICMP_FOLLOWED: u32 = 17;
export const C_EVENTS_LOST: u32 = 18;
export const C_ENCAPSULATED: u32 = 19;
export const C_NAT_REWRITES: u32 = 20;
export const C_BATCHES: u32 = 21;
export const C_STATELESS: u32 = 22;
export const C_REPLY_FROM_BACKEND: u32 = 23;
export const C_L2_CONVERTED: u32 = 24;
export const C_FLOW_HITS: u32 = 25;
export const C_SESSIONS_STARTED: u32 = 26;
export const C_SESSIONS_COMPLETED: u32 = 27;
export const C_SESSIONS_TIMED_OUT: u32 = 28;
export const C_SESSIONS_CONTROL_LOST: u32 = 29;
export const C_SESSIONS_REFUSED: u32 = 30;
export const C_SESSION_TABLE_FULL: u32 = 31;
export const C_EXPECTATIONS_CREATED: u32 = 32;
export const C_EXPECTATIONS_MATCHED: u32 = 33;
export const C_EXPECTATIONS_UNUSED: u32 = 34;
export const C_EXPECTATIONS_EXISTING: u32 = 35;
export const C_RTSP_MESSAGES: u32 = 36;
export const C_RTSP_ERRORS: u32 = 37;
export const C_RTSP_PARTIAL: u32 = 38;
export const C_RTSP_INTERLEAVED: u32 = 39;
// RTSP control-stream reassembly (session/reassembly.ts).
export const C_RTSP_REASM_HELD: u32 = 40; // segments ahead of the next expected byte, held
export const C_RTSP_REASM_DROPPED: u32 = 41; // gaps given up: the hold was full, or the peer acknowledged past it
export const C_RTSP_REASM_OVERFLOW: u32 = 42; // a header block larger than the buffer: resynchronise
export const C_RTSP_REASM_SLOTS_FULL: u32 = 43; // no slot for a control connection: segment inspected alone
export const C_RTSP_REASM_RETRANSMITS: u32 = 44; // segments starting before the next expected byte (ignored or trimmed)
export const C_RTSP_REASM_BUFFERS_FULL: u32 = 45; // no free buffer for a direction's pending bytes: resynchronise
export const C_RTSP_REASM_TRUNCATED: u32 = 46; // segments cut short by the capture or IP fragmentation
// RTSP NAT traversal (session/rtspnat.ts): backend addresses in the server's messages become the VIP's.
export const C_RTSP_NAT_REWRITES: u32 = 47; // replacements made (address, URL host, SDP address, Content-Length)
export const C_RTSP_NAT_REAPPLIED: u32 = 48; // logged replacements made again in retransmitted segments
export const C_RTSP_NAT_MISSED: u32 = 49; // backend addresses left as they were (see docs/abi.md)
export const C_RTSP_NAT_RESIZED: u32 = 50; // segments whose length changed
export const C_RTSP_NAT_BYTES_ADDED: u32 = 51; // bytes the replacements added
export const C_RTSP_NAT_BYTES_REMOVED: u32 = 52; // bytes they removed
export const C_SEQADJ_ADJUSTED: u32 = 53; // segments whose seq, ack or SACK blocks were translated

// Drop reasons.
export const D_TRUNCATED: u32 = 1;
export const D_LINKTYPE: u32 = 2;
export const D_BAD_IP: u32 = 3;
export const D_NO_SERVICE: u32 = 4;
export const D_NO_BACKEND: u32 = 5;
export const D_FRAG_ORPHAN: u32 = 6;
export const D_TOO_BIG: u32 = 7;
export const D_BAD_L4: u32 = 8;
export const D_ADMISSION: u32 = 9; // session-level admission control refused a new session

// Pass reasons (the host decides what to do with these).
export const P_NOT_IP: u32 = 1;
export const P_NOT_VIP: u32 = 2;
export const P_ICMP_TO_VIP: u32 = 3;
export const P_ICMP_NO_FLOW: u32 = 4;

@inline export function count(i: u32, by: u64 = 1): void {
  const p = countersPtr + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + by);
}

@inline export function countDrop(reason: u32): void {
  const p = dropsPtr + (<usize>reason << 3);
  store<u64>(p, load<u64>(p) + 1);
}

@inline export function countPass(reason: u32): void {
  const p = passesPtr + (<usize>reason << 3);
  store<u64>(p, load<u64>(p) + 1);
}
