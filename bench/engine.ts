// Engine-only benchmarks: NAT forwarding with N live flows against the null pass (one batch call
// each, same restore work), and WASM vs plain TypeScript for the checksum and the flow hash.
// No I/O inside the timed loops. Results are returned as rows for RESULTS.md.
import { Bench } from 'tinybench';
import { Engine } from '../host/engine.js';
import { parseConfig } from '../host/ctl/config.js';
import { frame } from '../test/ref/packet.js';
import { makeKey } from '../test/ref/hash.js';
import { internetChecksumFast, FlowHasher } from './ts-impl.js';

export interface Row {
  name: string;
  value: string;
  note?: string;
}

const STRIDE = 64; // frames packed at a 64-byte stride: NAT rewrites in place, no headroom needed

function natConfig(flows: number) {
  return parseConfig({
    flowCapacity: Math.max(1024, flows * 2),
    vips: [{
      address: '10.0.0.100', ports: [80], protocols: ['udp', 'tcp'], method: 'nat', scheduler: 'maglev',
      backends: Array.from({ length: 8 }, (_, i) => ({ id: `b${i + 1}`, address: `10.0.1.${i + 1}` })),
    }],
  });
}

/**
 * Measures packets/s of process() (best of five slices of `seconds`/5) over `flows` distinct UDP flows of 60-byte frames (64 B with
 * FCS, the minimum), in steady state (every flow already in the table). Each batch's pristine
 * frames are restored with one memcpy before the call; the null pass pays the same.
 */
export function natForwarding(flows: number, seconds: number): { mpps: number; nullMpps: number; flowsLive: number } {
  const cfg = natConfig(flows);
  const batch = 256;
  const batches = Math.ceil(flows / batch);
  const imageBytes = batches * batch * STRIDE;
  const eng = new Engine(cfg, { arenaBytes: 1 << 20, ioBytes: imageBytes + 4096 });
  const { mem, dv, descPtr } = eng;
  // Pristine frames for every batch live in the io region; batch k is restored into the arena.
  const pristine = eng.ioPtr;
  const proto = frame({ src: '198.18.0.1', dst: '10.0.0.100', proto: 'udp', sport: 1024, dport: 80, payload: new Uint8Array(18) });
  if (proto.length !== 60) throw new Error(`unexpected frame size ${proto.length}`);
  for (let f = 0; f < batches * batch; f++) {
    const at = pristine + f * STRIDE;
    mem.set(proto, at);
    const id = f % flows;
    // Distinct client address + port per flow; checksums stay valid (UDP checksum zeroed: 'none').
    mem[at + 26] = 198; mem[at + 27] = 18 + ((id >> 16) & 1); mem[at + 28] = (id >> 8) & 255; mem[at + 29] = id & 255;
    dv.setUint16(at + 34, 1024 + (id % 50000), false);
    mem[at + 40] = 0; mem[at + 41] = 0;
    // IPv4 header checksum
    mem[at + 24] = 0; mem[at + 25] = 0;
    let s = 0;
    for (let i = 14; i < 34; i += 2) s += (mem[at + i] << 8) | mem[at + i + 1];
    while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
    dv.setUint16(at + 24, ~s & 0xffff, false);
  }
  const arena = eng.arenaPtr;
  const span = batch * STRIDE;
  for (let i = 0; i < batch; i++) {
    const d = descPtr + i * 32;
    dv.setUint32(d, arena + i * STRIDE, true);
    dv.setUint32(d + 4, 60, true);
    dv.setUint32(d + 8, 60, true);
    dv.setUint16(d + 12, 0, true);
    dv.setUint16(d + 14, 1, true);
    dv.setUint32(d + 16, 1_700_000_000, true);
    dv.setUint32(d + 20, 0, true);
  }
  const runFor = (fn: (n: number) => number, secs: number) => {
    let packets = 0;
    const t0 = process.hrtime.bigint();
    const limit = BigInt(Math.round(secs * 1e9));
    let k = 0;
    for (;;) {
      for (let rep = 0; rep < 64; rep++) {
        mem.copyWithin(arena, pristine + k * span, pristine + (k + 1) * span);
        fn(batch);
        packets += batch;
        k = (k + 1) % batches;
      }
      const dt = process.hrtime.bigint() - t0;
      if (dt >= limit) return packets / (Number(dt) / 1e9);
    }
  };
  // Warm-up: creates every flow (first pass over all batches), then steady state.
  for (let k = 0; k < batches; k++) {
    mem.copyWithin(arena, pristine + k * span, pristine + (k + 1) * span);
    eng.process(batch);
  }
  const flowsLive = eng.ex.flow_count();
  // The machine is shared: alternate short slices of both loops and keep each one's best.
  const slices = 5;
  let nullBest = 0, best = 0;
  for (let s = 0; s < slices; s++) {
    nullBest = Math.max(nullBest, runFor((n) => eng.ex.null_pass(n), seconds / (2 * slices)));
    best = Math.max(best, runFor((n) => eng.process(n), seconds / slices));
  }
  return { mpps: best / 1e6, nullMpps: nullBest / 1e6, flowsLive };
}

export async function wasmVsTs(): Promise<Row[]> {
  const eng = new Engine(natConfig(16));
  const { mem } = eng;
  const buf = new Uint8Array(1500).map((_, i) => (i * 7 + 3) & 255);
  const at = eng.ioPtr;
  mem.set(buf, at);
  const nKeys = 1024;
  const keys = new Uint8Array(nKeys * 40);
  for (let i = 0; i < nKeys; i++) keys.set(makeKey({ src: `198.18.${i >> 8}.${i & 255}`, dst: '10.0.0.100', sport: 1024 + i, dport: 80, proto: 6 }), i * 40);
  const keyAt = at + 4096;
  mem.set(keys, keyAt);
  const k0 = 0x736c625f6b657930n, k1 = 0x736c625f6b657931n; // the engine's default key
  const hasher = new FlowHasher(k0, k1);
  const bench = new Bench({ time: 1500, warmupTime: 300 });
  let sink = 0;
  bench
    .add('checksum 1500 B: WASM', () => { sink ^= eng.ex.csum(at, 1500); })
    .add('checksum 1500 B: TypeScript', () => { sink ^= internetChecksumFast(buf, 0, 1500); })
    .add('flow hash x1024: WASM', () => { sink ^= eng.ex.hash_keys(keyAt, nKeys); })
    .add('flow hash x1024: TypeScript', () => {
      for (let i = 0; i < nKeys; i++) sink ^= hasher.hash(keys, i * 40);
    });
  await bench.run();
  if (sink === 0.5) console.log(sink);
  const hz = (name: string) => bench.tasks.find((t) => t.name === name)!.result!.throughput.mean;
  const rows: Row[] = [];
  for (const [w, t, unit] of [['checksum 1500 B: WASM', 'checksum 1500 B: TypeScript', 1], ['flow hash x1024: WASM', 'flow hash x1024: TypeScript', nKeys]] as const) {
    const a = hz(w), b = hz(t);
    rows.push({ name: w, value: `${((a * unit) / 1e6).toFixed(2)} M/s` });
    rows.push({ name: t, value: `${((b * unit) / 1e6).toFixed(2)} M/s` });
    rows.push({ name: `${w.split(':')[0]}: WASM / TypeScript`, value: `${(a / b).toFixed(2)}x`, note: 'target >= 3x' });
  }
  return rows;
}

/**
 * Bytes per flow of capacity: the flow table alone (its bytes over its entries), and all of linear
 * memory, measured from two init() sizes (the session table, client affinity and control-stream
 * reassembly state are sized from the flow capacity too).
 */
export function memoryPerFlow(): { table: number; total: number } {
  const size = (flows: number) => {
    const e = new Engine(natConfig(flows / 2));
    // init() carves the flow table immediately before the packet arena (assembly/layout.ts).
    const table = e.ex.arena_ptr() - e.ex.flow_table_ptr();
    return { bytes: e.ex.memory.buffer.byteLength, entries: e.ex.flow_table_entries(), table };
  };
  const a = size(1 << 20), b = size(1 << 21);
  return { table: b.table / b.entries, total: (b.bytes - a.bytes) / (b.entries - a.entries) };
}
