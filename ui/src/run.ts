// One replay of a capture held in memory, in the page: the same batch loop as host/replay.ts
// (read a batch into the arena, process(), dispatch by verdict, sweep expired flows with packet
// time, drain events; at the end flush sessions, then flows), over the same host modules (the
// capture reader, Engine, buildReport), so the numbers are the CLI's. On top of it: load per
// backend per second of packet time (the chart), the session table, and per-backend captures
// written in memory.
import { Engine } from '../../host/engine.js';
import { openCapture, type BatchTarget } from '../../host/io/capture.js';
import { addressBytes, formatAddress, type Config } from '../../host/ctl/config.js';
import { EVENT, VERDICT } from '../../host/ctl/counters.js';
import { buildReport, type Report } from '../../host/report/report.js';
import { PacketClock } from '../../host/sweep.js';
import type { FlowRecord } from '../../host/replay.js';
import { PcapSink } from './pcap.js';
import { LoadSeries } from './chart.js';

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };
const READ_BYTES = 4 << 20;

export interface SessionRow {
  id: string;
  vip: string;
  client: string;
  backend: string; // the backend the session was created on
  control: FlowRecord[];
  media: FlowRecord[];
  started: number; // packet time, s
  ended: number | null;
  endReason: string;
}

export interface RunResult {
  report: Report;
  flows: FlowRecord[];
  sessions: SessionRow[];
  /** Per backend (global index) over packet time: packets and bytes, to it and its replies. */
  load: LoadSeries;
  /** Per backend (global index), then the client side: a classic pcap, when outputs were asked for. */
  captures: Uint8Array[] | null;
  engineMs: number;
}

const END_REASONS = ['', 'teardown', 'timeout', 'control lost', 'end of input'];

/**
 * Replays the capture registered under `path` (ui/shims/fs.ts putFile) with `config` on a new
 * instance of `module`. `outputs`: also write every backend's capture and the client side's.
 */
export function runCapture(module: WebAssembly.Module, path: string, config: Config, opts: { outputs?: boolean } = {}): RunResult {
  const reader = openCapture(path);
  const engine = new Engine(config, { module, ioBytes: READ_BYTES });
  const { mem, dv, descPtr } = engine;
  const u16 = new Uint16Array(mem.buffer);
  const u32 = new Uint32Array(mem.buffer);
  const nB = engine.backends.length;
  const ids = engine.backends.map((b) => b.id);
  const sinks = opts.outputs ? Array.from({ length: nB + 1 }, () => new PcapSink(reader.stats.nanos)) : null;
  const flows: FlowRecord[] = [];
  const sessionIds = new Map<number, string>();
  const sessionBackends = new Map<string, Set<string>>();
  const rows = new Map<string, SessionRow>(); // `${vip index} ${id}`
  const rowByIndex = new Map<number, SessionRow>();
  const rtspPorts = config.vips.map((v) => new Set(v.rtspPorts));
  const vipIndex = new Map(config.vips.map((v, i) => [formatAddress(addressBytes(v.address)), i]));
  const load = new LoadSeries(nB);

  const onEvent = (p: number) => {
    const type = mem[p];
    if (type === EVENT.SESSION_STARTED) {
      const s = engine.decodeSessionStarted(p);
      sessionIds.set(s.index, s.id);
      const vip = config.vips[s.vip]?.address ?? String(s.vip);
      const key = `${s.vip} ${s.id}`;
      let row = rows.get(key);
      if (!row) {
        row = { id: s.id, vip, client: s.client, backend: ids[s.backend] ?? '', control: [], media: [], started: dv.getUint32(p + 4, true), ended: null, endReason: '' };
        rows.set(key, row);
      }
      rowByIndex.set(s.index, row);
      return;
    }
    if (type === EVENT.SESSION_ENDED) {
      const row = rowByIndex.get(dv.getUint32(p + 8, true));
      if (row) {
        row.ended = dv.getUint32(p + 4, true);
        row.endReason = END_REASONS[mem[p + 1]] ?? String(mem[p + 1]);
      }
      return;
    }
    if (type !== EVENT.FLOW_CLOSED || mem[p + 1] === 5 /* an expectation nothing matched */) return;
    const e = engine.decodeFlowEvent(p);
    const session = e.session ? sessionIds.get(e.session - 1) ?? '' : '';
    const f: FlowRecord = {
      proto: PROTO_NAMES[e.proto] ?? String(e.proto), clientIp: e.clientIp, clientPort: e.clientPort, vip: e.vip,
      vipPort: e.vipPort, backend: ids[e.backend], packets: e.packets, bytes: e.bytes, session,
    };
    flows.push(f);
    if (session) {
      let set = sessionBackends.get(session);
      if (!set) sessionBackends.set(session, (set = new Set()));
      set.add(ids[e.backend]);
      const vi = vipIndex.get(e.vip);
      const row = rows.get(`${vi} ${session}`);
      if (row && vi !== undefined) {
        const control = f.proto === 'tcp' && rtspPorts[vi].has(f.vipPort);
        (control ? row.control : row.media).push(f);
      }
    }
  };

  const target: BatchTarget = {
    mem, dv, descPtr, maxPackets: engine.batchSize, arenaPtr: engine.arenaPtr, arenaEnd: engine.arenaEnd,
    headroom: engine.headroom, ioPtr: engine.ioPtr, ioSize: READ_BYTES,
    inPlace: engine.ex.headroom_needed() <= 16,
  };
  const clock = new PacketClock(engine);
  let engineMs = 0;
  const d32 = descPtr >>> 2;
  const t0 = performance.now();
  try {
    for (;;) {
      const n = reader.next(target);
      if (n === 0) break;
      const e0 = performance.now();
      engine.process(n);
      engineMs += performance.now() - e0;
      for (let i = 0, w = d32; i < n; i++, w += 8) {
        const verdict = mem[(w << 2) + 24];
        if (verdict !== VERDICT.BACKEND && verdict !== VERDICT.CLIENT) continue;
        const egress = u16[(w << 1) + 13];
        load.add(u32[w + 4], u32[w + 5], egress, u32[w + 2]);
        if (sinks) sinks[verdict === VERDICT.BACKEND ? egress : nB].write(mem, u32[w], u32[w + 1], u32[w + 2], u32[w + 4], u32[w + 5]);
      }
      clock.afterBatch(u32, d32, n);
      engine.drainEvents(onEvent);
    }
    clock.finish(onEvent);
  } finally {
    reader.close();
  }
  const elapsed = (performance.now() - t0) / 1000;
  const report = buildReport({
    input: path, engine, capture: reader.stats, elapsed, engineSeconds: engineMs / 1000, flowRows: null,
    sessionBackends, traceSeconds: clock.traceSeconds,
  });
  return {
    report, flows, sessions: [...rows.values()], load,
    captures: sinks ? sinks.map((s) => s.bytes()) : null, engineMs,
  };
}
