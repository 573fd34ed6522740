// Loading the engine module: typed exports, instantiation with an empty import object, and the
// memory views the host uses. The memory never grows after init(), so views made then stay valid.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const ABI_VERSION = 1;

export interface EngineExports {
  memory: WebAssembly.Memory;
  abi_version(): number;
  init(flowCapacity: number, maxVips: number, maxBackends: number, ringEntries: number, arenaBytes: number, eventCapacity: number, ioBytes: number): number;
  batch_size(): number;
  headroom(): number;
  headroom_needed(): number;
  desc_ptr(): number;
  arena_ptr(): number;
  arena_size(): number;
  scratch_ptr(): number;
  scratch_size(): number;
  io_ptr(): number;
  io_size(): number;
  counters_ptr(): number;
  drops_ptr(): number;
  passes_ptr(): number;
  backend_stats_ptr(): number;
  events_ptr(): number;
  event_capacity(): number;
  event_head_ptr(): number;
  ring_ptr(): number;
  flow_table_ptr(): number;
  flow_table_entries(): number;
  config_global(lbMacHi: number, lbMacLo: number, gwMacHi: number, gwMacLo: number): void;
  config_live(flags: number): void;
  backend_table_ptr(): number;
  config_timeouts(syn: number, est: number, fin: number, close: number, udp: number, icmp: number, frag: number): void;
  config_hash_key(k0: bigint, k1: bigint): void;
  config_events(mask: number): void;
  config_vip(i: number, family: number, method: number, scheduler: number, protoMask: number, first: number, count: number, ringOff: number, ringSize: number, guePort: number): number;
  config_vip_ports(i: number, allPorts: number): void;
  config_backend(j: number, vip: number, weight: number, state: number, macHi: number, macLo: number): number;
  config_commit(vipCount: number, backendCount: number): number;
  set_backend_state(j: number, state: number, nowS: number): void;
  config_vip_sessions(i: number, policy: number, maxSessions: number, sessionRate: number, flags: number): number;
  config_backend_sessions(j: number, maxSessions: number): void;
  config_sessions(globalMax: number, graceS: number, setupS: number): void;
  session_table_ptr(): number;
  session_capacity(): number;
  session_count(): number;
  flush_sessions(nowS: number): void;
  process(n: number): number;
  expire(nowS: number, buckets: number): number;
  flush_flows(max: number, nowS: number): number;
  flow_count(): number;
  flow_hash(keyPtr: number): number;
  flow_hash_sym(keyPtr: number): number;
  csum(ptr: number, len: number): number;
  null_pass(n: number): number;
  hash_keys(ptr: number, n: number): number;
  rtsp_parse(msgPtr: number, len: number, outPtr: number): number;
  rtsp_parse_many(ptr: number, count: number, stride: number, outPtr: number): number;
  rtsp_parse_addr(ptr: number, len: number, outPtr: number): number;
  rtsp_result_size(): number;
}

const here = dirname(fileURLToPath(import.meta.url));

/** Path of the built module: build/sessionlb.wasm (or the no-SIMD build) at the package root. */
export function modulePath(simd = true): string {
  // dist/host/wasm.js -> ../../build ; host/wasm.ts (run from source by vitest) -> ../build
  const root = here.includes(`${'dist'}`) ? resolve(here, '..', '..') : resolve(here, '..');
  return resolve(root, 'build', simd ? 'sessionlb.wasm' : 'sessionlb-nosimd.wasm');
}

const cache = new Map<string, WebAssembly.Module>();

export function loadModule(path = modulePath()): WebAssembly.Module {
  let m = cache.get(path);
  if (!m) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      throw Object.assign(new Error(`engine module not found at ${path}: run "npm run build"`), { code: 'ENGINE_MISSING' });
    }
    m = new WebAssembly.Module(new Uint8Array(bytes));
    cache.set(path, m);
  }
  return m;
}

export function instantiate(module = loadModule()): EngineExports {
  const inst = new WebAssembly.Instance(module, {});
  const ex = inst.exports as unknown as EngineExports;
  const v = ex.abi_version();
  if (v !== ABI_VERSION) {
    throw Object.assign(new Error(`engine ABI version ${v}, this host speaks ${ABI_VERSION}: rebuild`), { code: 'ENGINE_ABI' });
  }
  return ex;
}
