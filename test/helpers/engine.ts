// Drives the compiled engine in-process for tests: put frames into the arena, run one process()
// call per batch, and return each frame's verdict and output bytes.
import { Engine, type EngineOptions } from '../../host/engine.js';
import { parseConfig } from '../../host/ctl/config.js';
import { loadModule, modulePath } from '../../host/wasm.js';
import { DROP_NAMES, PASS_NAMES } from '../../host/ctl/counters.js';

export interface InFrame {
  bytes: Uint8Array;
  link?: number; // pcap LINKTYPE, default 1 (Ethernet)
  ts?: number; // seconds
  nsec?: number;
  wirelen?: number; // default bytes.length
  port?: number;
}

export interface OutFrame {
  verdict: 'drop' | 'backend' | 'client' | 'pass';
  reason: string; // drop or pass reason name ('' when forwarded)
  egress: number; // backend index
  backend: string | null; // backend id for 'backend' and 'client' verdicts
  flow: number;
  bytes: Uint8Array; // the frame after processing (a copy)
  wirelen: number;
}

const VERDICTS = ['drop', 'backend', 'client', 'pass'] as const;

export function makeEngine(config: unknown, opts: EngineOptions & { simd?: boolean } = {}): Engine {
  const module = opts.module ?? loadModule(modulePath(opts.simd ?? true));
  return new Engine(parseConfig(config), { ...opts, module });
}

/** Runs frames through the engine in batches of the engine's batch size (or `batch`). */
export function run(engine: Engine, frames: InFrame[], batch = engine.batchSize): OutFrame[] {
  const out: OutFrame[] = [];
  const { mem, dv, descPtr, arenaPtr, arenaEnd, headroom } = engine;
  for (let start = 0; start < frames.length; ) {
    let n = 0;
    let cursor = arenaPtr;
    while (start + n < frames.length && n < batch) {
      const f = frames[start + n];
      const data = (cursor + headroom + 7) & ~7;
      if (data + f.bytes.length > arenaEnd) break;
      mem.set(f.bytes, data);
      const d = descPtr + n * 32;
      dv.setUint32(d, data, true);
      dv.setUint32(d + 4, f.bytes.length, true);
      dv.setUint32(d + 8, f.wirelen ?? f.bytes.length, true);
      dv.setUint16(d + 12, f.port ?? 0, true);
      dv.setUint16(d + 14, f.link ?? 1, true);
      dv.setUint32(d + 16, f.ts ?? 1_700_000_000, true);
      dv.setUint32(d + 20, f.nsec ?? 0, true);
      cursor = data + f.bytes.length;
      n++;
    }
    engine.process(n);
    for (let i = 0; i < n; i++) {
      const d = descPtr + i * 32;
      const v = VERDICTS[mem[d + 24]];
      const r = mem[d + 25];
      const egress = dv.getUint16(d + 26, true);
      const data = dv.getUint32(d, true);
      const caplen = dv.getUint32(d + 4, true);
      out.push({
        verdict: v,
        reason: v === 'drop' ? DROP_NAMES[r] : v === 'pass' ? PASS_NAMES[r] : '',
        egress,
        backend: v === 'backend' || v === 'client' ? engine.backends[egress].id : null,
        flow: dv.getUint32(d + 28, true),
        bytes: mem.slice(data, data + caplen),
        wirelen: dv.getUint32(d + 8, true),
      });
    }
    start += n;
  }
  return out;
}

/** A one-VIP config with `n` backends b1..bn at 10.0.1.x (or fd00:1::x for IPv6). */
export function simpleConfig(o: {
  vip?: string; method?: string; scheduler?: string; n?: number; ports?: number[]; weights?: number[];
  v6Backends?: boolean; flowCapacity?: number; extra?: Record<string, unknown>; vipExtra?: Record<string, unknown>;
} = {}) {
  const n = o.n ?? 3;
  const v6 = o.v6Backends ?? (o.vip ?? '').includes(':');
  return {
    flowCapacity: o.flowCapacity ?? 4096,
    ...o.extra,
    vips: [{
      address: o.vip ?? '10.0.0.100',
      ports: o.ports ?? [80, 53],
      method: o.method ?? 'nat',
      scheduler: o.scheduler ?? 'maglev',
      ringSize: 4093,
      ...o.vipExtra,
      backends: Array.from({ length: n }, (_, i) => ({
        id: `b${i + 1}`,
        address: v6 ? `fd00:1::${i + 1}` : `10.0.1.${i + 1}`,
        mac: `02:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`,
        weight: o.weights?.[i] ?? 1,
      })),
    }],
  };
}
