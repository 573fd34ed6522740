// Replay: the batch loop over a capture file. Read a batch of frames straight into the engine's
// arena, one process() call, then dispatch by verdict into per-backend and client pcap writers,
// drain events (flow rows for --flows), and sweep expired flows with packet time.
import { mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { openCapture, type BatchTarget, type CaptureStats } from './io/capture.js';
import { OutputSet } from './io/outputs.js';
import { Engine, type EngineOptions } from './engine.js';
import { type Config } from './ctl/config.js';
import { EVENT, VERDICT } from './ctl/counters.js';
import { buildReport, type Report } from './report/report.js';
import { PacketClock } from './sweep.js';

export interface ReplayOptions {
  outDir?: string | null; // null: count only, write no pcaps
  flowsCsv?: string | null;
  /** Keep every flow's record in the result (`flows`), as the CSV would list them. */
  collectFlows?: boolean;
  engine?: EngineOptions;
  /** Progress callback, called at most every `progressEvery` batches with (bytesRead, fileSize). */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
  /**
   * Seconds of packet time in which the expiry sweep covers the whole flow table once (default
   * 30). The sweep runs after a batch whenever packet time has advanced, in proportion to the
   * seconds passed, so it is deterministic and its cost follows the trace's length, not its
   * packet count. Lookups also reclaim stale flows lazily, whatever the sweep has reached.
   */
  sweepPeriod?: number;
}

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

/** Writes flow rows in big chunks. */
class CsvSink {
  private fd: number;
  private parts: string[] = [];
  private size = 0;
  rows = 0;
  constructor(path: string, header: string) {
    this.fd = openSync(path, 'w');
    this.push(header + '\n');
  }
  push(s: string): void {
    this.parts.push(s);
    this.size += s.length;
    if (this.size > 1 << 20) this.flush();
  }
  flush(): void {
    if (this.parts.length) writeSync(this.fd, this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/** One flow as `--flows` lists it. `session` is the RTSP Session id it belongs to, or ''. */
export interface FlowRecord {
  proto: string;
  clientIp: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  backend: string;
  packets: number;
  bytes: number;
  session: string;
}

export const FLOWS_CSV_HEADER = 'proto,client_ip,client_port,vip,vip_port,backend,packets,bytes,session';

export interface ReplayResult {
  report: Report;
  engine: Engine;
  capture: CaptureStats;
  flows: FlowRecord[] | null; // with collectFlows
}

/** Bytes of the host io region used for reading capture chunks; the rest stages outputs. */
const READ_BYTES = 4 << 20;

function stagingBytes(outputs: number): number {
  return Math.min(64 << 20, Math.max(4 << 20, outputs * 2 * (512 << 10)));
}

export async function replayFile(input: string, config: Config, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const reader = openCapture(input);
  const outDir = opts.outDir ?? null;
  const nOutputs = config.vips.reduce((n, v) => n + v.backends.length, 0) + 1;
  const staging = outDir ? stagingBytes(nOutputs) : 0;
  const engine = new Engine(config, { ioBytes: READ_BYTES + staging, ...opts.engine });
  const { mem, dv, descPtr } = engine;
  const u8 = mem;
  const u16 = new Uint16Array(mem.buffer);
  const u32 = new Uint32Array(mem.buffer);
  let outputs: OutputSet | null = null;
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    const paths = [...engine.backends.map((b) => join(outDir, `${b.id}.pcap`)), join(outDir, 'client.pcap')];
    outputs = new OutputSet(mem, dv, engine.ioPtr + READ_BYTES, staging, paths, { nanos: reader.stats.nanos });
  }
  const clientOut = nOutputs - 1;
  const csv = opts.flowsCsv ? new CsvSink(opts.flowsCsv, FLOWS_CSV_HEADER) : null;
  const flows: FlowRecord[] | null = opts.collectFlows ? [] : null;
  const ids = engine.backends.map((b) => b.id);
  // Session index -> id: an index is not reused while a flow refers to it, so the id a flow's
  // closing event names is the one its session started with.
  const sessionIds = new Map<number, string>();
  // Per session: the backends its flows reached (integrity) and whether it has a flow at all.
  const sessionBackends = new Map<string, Set<string>>();
  const onEvent = (p: number) => {
    const type = mem[p];
    if (type === EVENT.SESSION_STARTED) {
      const s = engine.decodeSessionStarted(p);
      sessionIds.set(s.index, s.id);
      return;
    }
    if (type !== EVENT.FLOW_CLOSED || mem[p + 1] === 5 /* an expectation nothing matched */) return;
    const e = engine.decodeFlowEvent(p);
    const session = e.session ? sessionIds.get(e.session - 1) ?? '' : '';
    if (session) {
      let set = sessionBackends.get(session);
      if (!set) sessionBackends.set(session, (set = new Set()));
      set.add(ids[e.backend]);
    }
    if (!csv && !flows) return;
    const f: FlowRecord = {
      proto: PROTO_NAMES[e.proto] ?? String(e.proto), clientIp: e.clientIp, clientPort: e.clientPort, vip: e.vip,
      vipPort: e.vipPort, backend: ids[e.backend], packets: e.packets, bytes: e.bytes, session,
    };
    flows?.push(f);
    if (csv) {
      csv.push(`${f.proto},${f.clientIp},${f.clientPort},${f.vip},${f.vipPort},${f.backend},${f.packets},${f.bytes},${f.session}\n`);
      csv.rows++;
    }
  };
  const target: BatchTarget = {
    mem, dv, descPtr, maxPackets: engine.batchSize, arenaPtr: engine.arenaPtr, arenaEnd: engine.arenaEnd,
    headroom: engine.headroom, ioPtr: engine.ioPtr, ioSize: READ_BYTES,
    // NAT and DR grow a frame by at most 14 bytes in front: classic-pcap frames can then be
    // processed where they were read, behind their 16-byte record headers (no copy).
    inPlace: engine.ex.headroom_needed() <= 16,
  };
  const clock = new PacketClock(engine, opts.sweepPeriod ?? 30);
  const every = opts.progressEvery ?? 64;
  let batches = 0;
  const t0 = process.hrtime.bigint();
  let engineNs = 0n;
  const d32 = descPtr >>> 2; // descriptors are 64-byte aligned: index them as u32/u16 arrays
  try {
    for (;;) {
      const n = reader.next(target);
      if (n === 0) break;
      const e0 = process.hrtime.bigint();
      engine.process(n);
      engineNs += process.hrtime.bigint() - e0;
      // Counting is the engine's (counters, per-backend stats); the host only writes outputs.
      if (outputs) {
        for (let i = 0, w = d32; i < n; i++, w += 8) {
          // Descriptor words: 0 data, 1 caplen, 2 wirelen, 4 tsSec, 5 tsNsec, byte 24 verdict, u16 at 26 egress.
          const verdict = u8[(w << 2) + 24];
          if (verdict === VERDICT.BACKEND) outputs.write(u16[(w << 1) + 13], u32[w], u32[w + 1], u32[w + 2], u32[w + 4], u32[w + 5]);
          else if (verdict === VERDICT.CLIENT) outputs.write(clientOut, u32[w], u32[w + 1], u32[w + 2], u32[w + 4], u32[w + 5]);
        }
      }
      clock.afterBatch(u32, d32, n);
      engine.drainEvents(onEvent);
      if (outputs && outputs.backlog > nOutputs) await outputs.settle();
      if (opts.onProgress && ++batches % every === 0) opts.onProgress(reader.position(), reader.size);
    }
    clock.finish(onEvent);
  } finally {
    reader.close();
    if (outputs) await outputs.close();
    csv?.close();
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const report = buildReport({
    input, engine, capture: reader.stats, elapsed,
    engineSeconds: Number(engineNs) / 1e9, flowRows: csv ? csv.rows : null,
    sessionBackends,
    traceSeconds: clock.traceSeconds,
  });
  return { report, engine, capture: reader.stats, flows };
}
