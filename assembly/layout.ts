// Linear-memory layout of the engine: every region is carved out once by init() and never moves
// (nothing else may allocate: the stub runtime's heap would overlap these regions),
// so a host's views of memory stay valid (no managed objects, --runtime stub). The sizes and record
// layouts here are the ABI (docs/abi.md); change them only with ABI_VERSION.

export const ABI_VERSION: u32 = 1;

/** Descriptors per batch: one JS->WASM call processes up to this many packets. */
export const BATCH: u32 = 256;
/** Bytes free in front of every frame so encapsulation only moves the start back (Snabb shiftright). */
export const HEADROOM: u32 = 256;
export const DESC_SIZE: u32 = 32;
export const SCRATCH_SIZE: u32 = 16384;

export const N_COUNTERS: u32 = 64;
export const N_DROPS: u32 = 32;
export const N_PASSES: u32 = 16;

export const VIP_SIZE: u32 = 128;
export const PORTMAP_SIZE: u32 = 8192; // one bit per port
export const BACKEND_SIZE: u32 = 64;
export const BSTATS_SIZE: u32 = 64; // u64[8]
export const FLOW_SIZE: u32 = 64; // bytes per flow (a 4-flow bucket is 256 bytes, by field)
export const WAYS: u32 = 4; // entries per bucket
export const EVENT_SIZE: u32 = 64;
export const FRAG_SIZE: u32 = 64;
export const FRAG_BUCKETS: u32 = 1024; // x WAYS entries
export const BADDR_SLOTS_PER_BACKEND: u32 = 2; // backend address index load factor <= 0.5
export const SESSION_SIZE: u32 = 64;
export const RTSP_RESULT_BYTES: u32 = 1024;
/** RTSP control-stream reassembly (session/reassembly.ts): per-connection slot record, buffer. */
export const REASM_SLOT_SIZE: u32 = 256; // 128 reassembly + 128 RTSP NAT (session/rtspnat.ts)
export const REASM_BUF: u32 = 4096; // bytes per direction's window (a pooled buffer)

export let descPtr: usize = 0;
export let arenaPtr: usize = 0;
export let arenaSize: u32 = 0;
export let scratchPtr: usize = 0;
export let ioPtr: usize = 0;
export let ioSize: u32 = 0;
export let countersPtr: usize = 0;
export let dropsPtr: usize = 0;
export let passesPtr: usize = 0;
export let vipsPtr: usize = 0;
export let maxVips: u32 = 0;
export let portmapsPtr: usize = 0;
export let backendsPtr: usize = 0;
export let bstatsPtr: usize = 0;
export let maxBackends: u32 = 0;
export let baddrPtr: usize = 0; // backend address index: u32 slots (backend index + 1)
export let baddrMask: u32 = 0;
export let ringPtr: usize = 0;
export let ringEntries: u32 = 0;
export let flowsPtr: usize = 0;
export let flowBucketMask: u32 = 0;
export let eventsPtr: usize = 0;
export let eventCap: u32 = 0;
export let eventHeadPtr: usize = 0; // u32 head (engine), u32 tail (host)
export let fragsPtr: usize = 0;
export let sessionsPtr: usize = 0;
export let sessionMask: u32 = 0; // session records - 1 (a power of two: flow capacity / 16, at least 1024)
export let rtspResultPtr: usize = 0; // the tokenizer's result record for the current segment
export let reasmOwnersPtr: usize = 0; // u32[slots]: control flow entry index + 1 owning each slot, 0 = free
export let reasmSlotsPtr: usize = 0; // REASM_SLOT_SIZE-byte slot records
export let reasmMask: u32 = 0; // slots - 1 (a power of two: flow capacity / 32, 512..32768)
export let reasmBufsPtr: usize = 0; // REASM_BUF-byte buffers, lent to directions with pending bytes
export let reasmFreePtr: usize = 0; // u16[buffers]: stack of returned buffer numbers
export let reasmBufCount: u32 = 0; // buffers: slots / 4, 128..2048
export let reasmTmpPtr: usize = 0; // a 64-byte direction record for segments inspected without a slot
/** RTSP NAT (session/rtspnat.ts): the packet's edit list, the replacement text, and a copy of an
 * unfinished header block's complete lines for the tokenizer. */
export let natEditsPtr: usize = 0;
export let natTextPtr: usize = 0;
export let natTmpPtr: usize = 0;
export const NAT_EDITS: u32 = 32; // edits per packet (16 bytes each)
export const NAT_TMP: u32 = 4160; // REASM_BUF + room for the terminating empty line
/** Most bytes an RTSP NAT rewrite may grow one frame by (headroom_needed() adds 14 for Ethernet). */
export const NAT_GROW_MAX: u32 = 240;
export let affinityPtr: usize = 0; // (VIP, client) -> latest session: 32-byte entries, as many as session records
export let keyPtr: usize = 0; // 64-byte work area for the current packet's flow key
export let key2Ptr: usize = 0; // second key (source hash, frag key)
export let hashesPtr: usize = 0; // u32[BATCH]: pass-1 flow hashes of the current batch
/** Whether process() runs its cache-warming first pass: only when the flow table is larger than
 * a core's L2 cache could hold (above 2 MiB); for small tables the pass costs more than it saves. */
export let prefetchPass: bool = false;
export const PREFETCH_TABLE_BYTES: usize = 2 << 20;
export let initialized: bool = false;

/** TCP splicing (splice/splice.ts, docs/splice.md). */
export const SPLICE_ENTRY: u32 = 128;
export const SPLICE_BUF: u32 = 4096; // request bytes held per connection until the backend is chosen
export const SPLICE_OUT_SLOTS: u32 = 256; // output queue records
export const SPLICE_OUT_SLOT: u32 = 2048; // bytes per record
export const SPLICE_OUT_DATA: u32 = 64; // frame offset in a record (the rest of the first 64 bytes: headroom)
export const SPLICE_RULES: u32 = 16;
export const SPLICE_RULE_SIZE: u32 = 64;
export const SPLICE_PORT_BASE: u32 = 32768; // local port of entry i towards backends: base + i
export let spliceCap: u32 = 0; // entries (a power of two: flow capacity / 4, 256..32768)
export let spliceBufCount: u32 = 0; // buffers: entries / 16, at least 64
export let spliceEntriesPtr: usize = 0;
export let spliceIndexPtr: usize = 0; // u32[2 * entries]: client-key hash index (entry + 1, 0 = empty)
export let spliceIndexMask: u32 = 0;
export let spliceFreePtr: usize = 0; // u16[entries]: FIFO of free entries
export let spliceBufFreePtr: usize = 0; // u16[buffers]: stack of free buffers
export let spliceBufsPtr: usize = 0;
export let spliceOutPtr: usize = 0;
export let spliceTmpPtr: usize = 0; // 128 bytes: a frame under construction
export let spliceRulesPtr: usize = 0;
export let spliceStatsPtr: usize = 0; // u64[24]

@inline function align(p: usize, a: usize): usize {
  return (p + a - 1) & ~(a - 1);
}

function pow2ceil(x: u32): u32 {
  if (x <= 1) return 1;
  return 1 << (32 - clz<u32>(x - 1));
}

let cursor: usize = 0;

function carve(bytes: usize, alignment: usize): usize {
  cursor = align(cursor, alignment);
  const p = cursor;
  cursor += bytes;
  return p;
}

/** Lays out every region; returns 0, 1 (bad argument) or 2 (memory could not grow). */
export function layout(
  flowCapacity: u32,
  vips: u32,
  backends: u32,
  rings: u32,
  arenaBytes: u32,
  events: u32,
  ioBytes: u32,
): u32 {
  if (initialized) return 1;
  if (flowCapacity < WAYS * 2 || flowCapacity > (1 << 26)) return 1;
  if (vips < 1 || vips > 255 || backends < 1 || backends > 65534) return 1;
  if (arenaBytes < (1 << 20) || arenaBytes > (1 << 30)) return 1;
  if (events < BATCH * 4 || events > (1 << 24)) return 1;
  if (rings > (1 << 26)) return 1;
  if (ioBytes > (1 << 30)) return 1;
  const buckets = pow2ceil((flowCapacity + WAYS - 1) / WAYS);
  events = pow2ceil(events);
  cursor = __heap_base;
  keyPtr = carve(64, 64);
  key2Ptr = carve(64, 64);
  hashesPtr = carve(BATCH * 4, 64);
  eventHeadPtr = carve(64, 64);
  countersPtr = carve(N_COUNTERS * 8, 64);
  dropsPtr = carve(N_DROPS * 8, 64);
  passesPtr = carve(N_PASSES * 8, 64);
  scratchPtr = carve(SCRATCH_SIZE, 64);
  descPtr = carve(BATCH * DESC_SIZE, 64);
  vipsPtr = carve(<usize>vips * VIP_SIZE, 64);
  portmapsPtr = carve(<usize>vips * PORTMAP_SIZE, 64);
  backendsPtr = carve(<usize>backends * BACKEND_SIZE, 64);
  bstatsPtr = carve(<usize>backends * BSTATS_SIZE, 64);
  const baddrSlots = pow2ceil(backends * BADDR_SLOTS_PER_BACKEND);
  baddrPtr = carve(<usize>baddrSlots * 4, 64);
  ringPtr = carve(<usize>rings * 2, 64);
  fragsPtr = carve(<usize>FRAG_BUCKETS * WAYS * FRAG_SIZE, 64);
  const sessions = pow2ceil(max<u32>(1024, flowCapacity >> 4));
  sessionsPtr = carve(<usize>sessions * SESSION_SIZE, 64);
  rtspResultPtr = carve(RTSP_RESULT_BYTES, 64);
  affinityPtr = carve(<usize>sessions * 32, 64);
  const rslots = pow2ceil(min<u32>(32768, max<u32>(512, flowCapacity >> 5)));
  const rbufs = min<u32>(2048, max<u32>(128, rslots >> 2));
  reasmOwnersPtr = carve(<usize>rslots * 4, 64);
  reasmSlotsPtr = carve(<usize>rslots * REASM_SLOT_SIZE, 64);
  reasmFreePtr = carve(<usize>rbufs * 2, 64);
  reasmTmpPtr = carve(64, 64);
  natEditsPtr = carve(NAT_EDITS * 16, 64);
  natTextPtr = carve(64, 64);
  natTmpPtr = carve(NAT_TMP, 64);
  reasmBufsPtr = carve(<usize>rbufs * REASM_BUF, 64);
  eventsPtr = carve(<usize>events * EVENT_SIZE, 64);
  flowsPtr = carve(<usize>buckets * WAYS * FLOW_SIZE, 256); // flow refs use the low 8 bits
  arenaPtr = carve(arenaBytes, 64);
  ioPtr = carve(ioBytes, 64);
  // Splicing comes last, so the regions above keep their addresses (conformance vectors name them).
  const scap = pow2ceil(min<u32>(32768, max<u32>(256, flowCapacity >> 2)));
  const sbufs = max<u32>(64, scap >> 4);
  spliceStatsPtr = carve(24 * 8, 64);
  spliceTmpPtr = carve(128, 64);
  spliceRulesPtr = carve(SPLICE_RULES * SPLICE_RULE_SIZE, 64);
  spliceIndexPtr = carve(<usize>scap * 8, 64);
  spliceFreePtr = carve(<usize>scap * 2, 64);
  spliceBufFreePtr = carve(<usize>sbufs * 2, 64);
  spliceEntriesPtr = carve(<usize>scap * SPLICE_ENTRY, 64);
  spliceOutPtr = carve(<usize>SPLICE_OUT_SLOTS * SPLICE_OUT_SLOT, 64);
  spliceBufsPtr = carve(<usize>sbufs * SPLICE_BUF, 64);
  const end = carve(0, 65536);
  const have = <usize>memory.size() << 16;
  if (end > have) {
    if (memory.grow(<i32>((end - have) >> 16)) < 0) return 2;
  }
  // Fresh pages are zero; regions below __heap_base + static data may not be.
  memory.fill(keyPtr, 0, fragsPtr - keyPtr);
  memory.fill(spliceStatsPtr, 0, spliceOutPtr - spliceStatsPtr);
  spliceCap = scap;
  spliceBufCount = sbufs;
  spliceIndexMask = scap * 2 - 1;
  maxVips = vips;
  maxBackends = backends;
  baddrMask = baddrSlots - 1;
  ringEntries = rings;
  flowBucketMask = buckets - 1;
  sessionMask = sessions - 1;
  reasmMask = rslots - 1;
  reasmBufCount = rbufs;
  prefetchPass = <usize>buckets * WAYS * FLOW_SIZE > PREFETCH_TABLE_BYTES;
  eventCap = events;
  arenaSize = arenaBytes;
  ioSize = ioBytes;
  initialized = true;
  return 0;
}
