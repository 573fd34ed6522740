// The module's exports, and nothing else: regions, config calls, the batch call, test helpers.
// Every export is documented in docs/abi.md; the module imports nothing.
import {
  ABI_VERSION, BATCH, HEADROOM, SCRATCH_SIZE, layout, descPtr, arenaPtr, arenaSize, scratchPtr, ioPtr,
  ioSize, countersPtr, dropsPtr, passesPtr, bstatsPtr, eventsPtr, eventCap, eventHeadPtr, ringPtr,
  initialized, flowsPtr, flowBucketMask, WAYS, sessionsPtr, sessionMask, backendsPtr,
} from './layout';
import { processBatch } from './engine';
import {
  configGlobal, configVip, configVipPorts, configBackend, configCommit, setBackendState, backendCount, neededHeadroom,
  configVipSessions, configBackendSessions, configLive,
} from './lb/config';
import { setTimeouts, expireFlows, flushFlows, flowLive, setSetupTimeout } from './lb/flowtable';
import { setSessionLimits, expireSessions, flushSessions, sessionLive } from './session/table';
import { setHashKey, flowHash, flowHashSym } from './lb/flowhash';
import { sumBytes, finish } from './net/csum';
import { setEventMask, emit, EV_BACKEND_STATE } from './events';
import { nullPass, hashKeys } from './baseline';

export function abi_version(): u32 { return ABI_VERSION; }

export function init(flowCapacity: u32, maxVips: u32, maxBackends: u32, ringEntries: u32, arenaBytes: u32, eventCapacity: u32, ioBytes: u32): u32 {
  const r = layout(flowCapacity, maxVips, maxBackends, ringEntries, arenaBytes, eventCapacity, ioBytes);
  if (r == 0) spliceReset();
  return r;
}

export function batch_size(): u32 { return BATCH; }
export function headroom(): u32 { return HEADROOM; }
export function headroom_needed(): u32 { return neededHeadroom; }
export function desc_ptr(): usize { return descPtr; }
export function arena_ptr(): usize { return arenaPtr; }
export function arena_size(): u32 { return arenaSize; }
export function scratch_ptr(): usize { return scratchPtr; }
export function scratch_size(): u32 { return SCRATCH_SIZE; }
export function io_ptr(): usize { return ioPtr; }
export function io_size(): u32 { return ioSize; }
export function counters_ptr(): usize { return countersPtr; }
export function drops_ptr(): usize { return dropsPtr; }
export function passes_ptr(): usize { return passesPtr; }
export function backend_stats_ptr(): usize { return bstatsPtr; }
export function events_ptr(): usize { return eventsPtr; }
export function event_capacity(): u32 { return eventCap; }
export function event_head_ptr(): usize { return eventHeadPtr; }
export function ring_ptr(): usize { return ringPtr; }
export function backend_table_ptr(): usize { return backendsPtr; }
export function flow_table_ptr(): usize { return flowsPtr; }
export function flow_table_entries(): u32 { return (flowBucketMask + 1) * WAYS; }

export function config_global(lbMacHi: u32, lbMacLo: u32, gwMacHi: u32, gwMacLo: u32): void {
  configGlobal(lbMacHi, lbMacLo, gwMacHi, gwMacLo);
}
export function config_live(flags: u32): void { configLive(flags); }
export function config_timeouts(syn: u32, established: u32, fin: u32, close: u32, udp: u32, icmp: u32, frag: u32): void {
  setTimeouts(syn, established, fin, close, udp, icmp, frag);
}
export function config_hash_key(k0: u64, k1: u64): void { setHashKey(k0, k1); }
export function config_events(mask: u32): void { setEventMask(mask); }
export function config_vip(i: u32, family: u32, method: u32, scheduler: u32, protoMask: u32, firstBackend: u32, backendCount: u32, ringOffset: u32, ringSize: u32, guePort: u32): u32 {
  return configVip(i, family, method, scheduler, protoMask, firstBackend, backendCount, ringOffset, ringSize, guePort);
}
export function config_vip_ports(i: u32, allPorts: u32): void { configVipPorts(i, allPorts); }
export function config_backend(j: u32, vip: u32, weight: u32, state: u32, macHi: u32, macLo: u32): u32 {
  return configBackend(j, vip, weight, state, macHi, macLo);
}
export function config_commit(vipCount: u32, backendCount: u32): u32 { return configCommit(vipCount, backendCount); }
export function set_backend_state(j: u32, state: u32, nowS: u32): void {
  if (j >= backendCount) return;
  setBackendState(j, state);
  emit(EV_BACKEND_STATE, state, j, nowS);
}

export function config_vip_sessions(i: u32, policy: u32, maxSessions: u32, sessionRate: u32, flags: u32): u32 { return configVipSessions(i, policy, maxSessions, sessionRate, flags); }
export function config_backend_sessions(j: u32, maxSessions: u32): void { configBackendSessions(j, maxSessions); }
export function config_sessions(globalMax: u32, graceS: u32, setupS: u32): void {
  setSessionLimits(globalMax, graceS);
  setSetupTimeout(setupS);
}
export function session_table_ptr(): usize { return sessionsPtr; }
export function session_capacity(): u32 { return sessionMask + 1; }
export function session_count(): u32 { return sessionLive; }
export function flush_sessions(nowS: u32): void { flushSessions(nowS); }

export function process(n: u32): u32 {
  if (!initialized) return 0;
  return processBatch(n);
}
export function expire(nowS: u32, buckets: u32): u32 {
  expireSessions(nowS, buckets);
  return expireFlows(nowS, buckets);
}
export function flush_flows(max: u32, nowS: u32): u32 { return flushFlows(max, nowS); }
export function flow_count(): u32 { return flowLive; }
export function flow_hash(keyPtr: usize): u32 { return flowHash(keyPtr); }
export function flow_hash_sym(keyPtr: usize): u32 { return flowHashSym(keyPtr); }
export function csum(ptr: usize, len: u32): u32 { return <u32>bswap<u16>(<u16>finish(sumBytes(ptr, len))); }

// Baselines for benchmarks (bench/): see assembly/baseline.ts.
export function null_pass(n: u32): u32 { return nullPass(n); }
export function hash_keys(ptr: usize, n: u32): u32 { return hashKeys(ptr, n); }

// RTSP tokenizer (assembly/session/rtsp.ts)
import { rtspParse, rtspParseMany, rtspParseAddr, RESULT_SIZE as RTSP_RESULT_SIZE } from './session/rtsp';
export function rtsp_result_size(): u32 { return RTSP_RESULT_SIZE; }
export function rtsp_parse(msgPtr: usize, len: u32, outPtr: usize): i32 { return rtspParse(msgPtr, len, outPtr); }
export function rtsp_parse_many(ptr: usize, count: u32, stride: u32, outPtr: usize): i32 { return rtspParseMany(ptr, count, stride, outPtr); }
export function rtsp_parse_addr(ptr: usize, len: u32, outPtr: usize): u32 { return rtspParseAddr(ptr, len, outPtr); }

// TCP splicing (assembly/splice/, docs/splice.md)
import {
  spliceReset, configSplice, configSpliceRule, spliceTick, spliceHandoffDone, spliceOutReset, outCount as spliceOutCount, spliceLive,
} from './splice/splice';
import { spliceOutPtr, spliceEntriesPtr, spliceCap, spliceStatsPtr, SPLICE_OUT_SLOT, SPLICE_ENTRY } from './layout';
export function config_splice(mss: u32): u32 { return configSplice(mss); }
export function config_splice_rule(i: u32, vip: u32, backend: u32, len: u32): u32 { return configSpliceRule(i, vip, backend, len); }
export function splice_tick(nowMs: u32): u32 { return spliceTick(nowMs); }
export function splice_handoff_done(id: u32, status: u32, nowMs: u32): u32 { return spliceHandoffDone(id, status, nowMs); }
export function splice_out_ptr(): usize { return spliceOutPtr; }
export function splice_out_count(): u32 { return spliceOutCount; }
export function splice_out_slot(): u32 { return SPLICE_OUT_SLOT; }
export function splice_out_reset(): void { spliceOutReset(); }
export function splice_table_ptr(): usize { return spliceEntriesPtr; }
export function splice_entry_size(): u32 { return SPLICE_ENTRY; }
export function splice_capacity(): u32 { return spliceCap; }
export function splice_count(): u32 { return spliceLive; }
export function splice_stats_ptr(): usize { return spliceStatsPtr; }
import { seqAdd, seqSub, seqLt, seqLeq } from './splice/seq';
/** Test hook for the sequence arithmetic of splicing: op 0 a+b, 1 a-b, 2 a<b, 3 a<=b (serial numbers mod 2^32). */
export function splice_seq(op: u32, a: u32, b: u32): u32 {
  if (op == 0) return seqAdd(a, b);
  if (op == 1) return seqSub(a, b);
  if (op == 2) return seqLt(a, b) ? 1 : 0;
  return seqLeq(a, b) ? 1 : 0;
}
