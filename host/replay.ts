// Replay: the batch loop over a capture file. Read a batch of frames straight into the engine's
// arena, one process() call, then dispatch by verdict into per-backend and client pcap writers,
// drain events (flow rows for --flows), and sweep expired flows with packet time.
import { mkdirSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { openCapture, type BatchTarget, type CaptureStats } from './io/capture.js';
import { PcapWriter } from './io/pcap-writer.js';
import { Engine, type EngineOptions } from './engine.js';
import { type Config } from './ctl/config.js';
import { EVENT, VERDICT } from './ctl/counters.js';
import { buildReport, type Report } from './report/report.js';

export interface ReplayOptions {
  outDir?: string | null; // null: count only, write no pcaps
  flowsCsv?: string | null;
  engine?: EngineOptions;
  /** Progress callback, called at most every `progressEvery` batches with (bytesRead, fileSize). */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
  /** Flow-table buckets swept per batch for expired flows (deterministic: driven by packet time). */
  sweepBuckets?: number;
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

export interface ReplayResult {
  report: Report;
  engine: Engine;
  capture: CaptureStats;
}

export function replayFile(input: string, config: Config, opts: ReplayOptions = {}): ReplayResult {
  const reader = openCapture(input);
  const engine = new Engine(config, opts.engine);
  const { mem, dv, buf, descPtr } = engine;
  const outDir = opts.outDir ?? null;
  const nanos = reader.stats.nanos;
  let writers: PcapWriter[] = [];
  let client: PcapWriter | null = null;
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writers = engine.backends.map((b) => new PcapWriter(join(outDir, `${b.id}.pcap`), { nanos }));
    client = new PcapWriter(join(outDir, 'client.pcap'), { nanos });
  }
  const csv = opts.flowsCsv ? new CsvSink(opts.flowsCsv, 'proto,client_ip,client_port,vip,vip_port,backend,packets,bytes') : null;
  const ids = engine.backends.map((b) => b.id);
  const onEvent = (p: number) => {
    if (!csv || mem[p] !== EVENT.FLOW_CLOSED) return;
    const e = engine.decodeFlowEvent(p);
    csv.push(`${PROTO_NAMES[e.proto] ?? e.proto},${e.clientIp},${e.clientPort},${e.vip},${e.vipPort},${ids[e.backend]},${e.packets},${e.bytes}\n`);
    csv.rows++;
  };
  const target: BatchTarget = {
    mem, dv, descPtr, maxPackets: engine.batchSize, arenaPtr: engine.arenaPtr, arenaEnd: engine.arenaEnd,
    headroom: engine.headroom, ioPtr: engine.ioPtr, ioSize: engine.ioSize,
  };
  const sweep = opts.sweepBuckets ?? 64;
  const every = opts.progressEvery ?? 64;
  let clientPackets = 0;
  let clientBytes = 0;
  let lastTs = 0;
  let batches = 0;
  const t0 = process.hrtime.bigint();
  let engineNs = 0n;
  try {
    for (;;) {
      const n = reader.next(target);
      if (n === 0) break;
      const e0 = process.hrtime.bigint();
      engine.process(n);
      engineNs += process.hrtime.bigint() - e0;
      for (let i = 0, d = descPtr; i < n; i++, d += 32) {
        const verdict = mem[d + 24];
        if (verdict === VERDICT.BACKEND) {
          if (writers.length) writers[dv.getUint16(d + 26, true)].writeRecord(buf, dv.getUint32(d, true), dv.getUint32(d + 4, true), dv.getUint32(d + 8, true), dv.getUint32(d + 16, true), dv.getUint32(d + 20, true));
        } else if (verdict === VERDICT.CLIENT) {
          clientPackets++;
          clientBytes += dv.getUint32(d + 8, true);
          if (client) client.writeRecord(buf, dv.getUint32(d, true), dv.getUint32(d + 4, true), dv.getUint32(d + 8, true), dv.getUint32(d + 16, true), dv.getUint32(d + 20, true));
        }
      }
      lastTs = Math.max(lastTs, dv.getUint32(descPtr + (n - 1) * 32 + 16, true));
      engine.ex.expire(lastTs, sweep);
      engine.drainEvents(onEvent);
      if (opts.onProgress && ++batches % every === 0) opts.onProgress(reader.position(), reader.size);
    }
    // End of input: every flow still live is closed and reported.
    while (engine.ex.flush_flows(4096, lastTs) > 0) engine.drainEvents(onEvent);
    engine.drainEvents(onEvent);
  } finally {
    reader.close();
    for (const w of writers) w.close();
    client?.close();
    csv?.close();
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const report = buildReport({
    input, engine, capture: reader.stats, clientPackets, clientBytes, elapsed,
    engineSeconds: Number(engineNs) / 1e9, flowRows: csv ? csv.rows : null,
  });
  return { report, engine, capture: reader.stats };
}
