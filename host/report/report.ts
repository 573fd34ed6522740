// report.json: what happened to every input packet, per backend load, fairness, and speed.
// Accounting identity: input.packets = sum(backends[*].packets) + client.packets + passed + sum(dropped).
import type { Engine } from '../engine.js';
import type { CaptureStats } from '../io/capture.js';

export interface Fairness {
  jain: number; // Jain's index over weight-normalised load, 1 = perfectly fair
  maxMean: number; // max / mean of weight-normalised load
}

export interface BackendReport {
  vip: string;
  address: string;
  weight: number;
  state: string;
  packets: number;
  bytes: number;
  flows: number;
  replyPackets: number;
  replyBytes: number;
  resteeredIn: number;
}

export interface Report {
  input: {
    file: string;
    format: string;
    seconds: number; // packet time from the first to the last packet
    packets: number;
    bytes: number;
    linktypes: Record<string, number>;
    truncated: boolean;
    errors: string[];
  };
  backends: Record<string, BackendReport>;
  client: { packets: number; bytes: number };
  passed: number;
  passedBy: Record<string, number>;
  dropped: Record<string, number>;
  droppedTotal: number;
  flows: { created: number; closed: number; expired: number; evicted: number; resteered: number; midstream: number; tableFull: number; rows: number | null };
  /**
   * RTSP sessions seen by session-aware VIPs: started (a SETUP reply named a new Session), completed
   * (TEARDOWN), timedOut, controlLost (its control connection closed with no TEARDOWN), open at the
   * end of the input, refused by admission control; integrity = the share of sessions whose flows
   * all reached one backend; completedPerSecond over the capture's duration.
   */
  sessions: {
    started: number; completed: number; timedOut: number; controlLost: number; openAtEnd: number; refused: number;
    integrity: number; completedPerSecond: number; expectations: { created: number; matched: number; unused: number };
  };
  fairness: { packets: Fairness; bytes: Fairness; flows: Fairness };
  vips: Record<string, { method: string; scheduler: string; fairness: { packets: Fairness; bytes: Fairness; flows: Fairness } }>;
  counters: Record<string, number>;
  elapsedSeconds: number;
  engineSeconds: number;
  packetsPerSecond: number;
  enginePacketsPerSecond: number;
}

/** Jain's fairness index and max/mean over loads already divided by weight. */
export function fairness(xs: number[]): Fairness {
  if (xs.length === 0) return { jain: 1, maxMean: 1 };
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  if (sum === 0) return { jain: 1, maxMean: 1 };
  const mean = sum / xs.length;
  return { jain: (sum * sum) / (xs.length * sq), maxMean: Math.max(...xs) / mean };
}

function fairnessOf(rows: BackendReport[]) {
  const live = rows.filter((r) => r.weight > 0);
  const norm = (f: (r: BackendReport) => number) => live.map((r) => f(r) / r.weight);
  return {
    packets: fairness(norm((r) => r.packets + r.replyPackets)),
    bytes: fairness(norm((r) => r.bytes + r.replyBytes)),
    flows: fairness(norm((r) => r.flows)),
  };
}

export function buildReport(a: {
  input: string;
  engine: Engine;
  capture: CaptureStats;
  elapsed: number;
  engineSeconds: number;
  flowRows: number | null;
  sessionBackends: Map<string, Set<string>>;
  traceSeconds: number; // packet time from the first to the last packet
}): Report {
  const { engine, capture } = a;
  const c = engine.counters();
  const backends: Record<string, BackendReport> = {};
  const rows: BackendReport[] = [];
  for (const b of engine.backends) {
    const s = engine.backendStats(b.index);
    const r: BackendReport = { vip: engine.config.vips[b.vip].address, address: b.address, weight: b.weight, state: b.state, ...s };
    backends[b.id] = r;
    rows.push(r);
  }
  const dropped = engine.drops();
  const passedBy = engine.passes();
  const vips: Report['vips'] = {};
  engine.config.vips.forEach((v) => {
    vips[v.address] = { method: v.method, scheduler: v.scheduler, fairness: fairnessOf(rows.filter((r) => r.vip === v.address)) };
  });
  const linktypes: Record<string, number> = {};
  for (const [k, n] of Object.entries(capture.linktypes)) linktypes[k] = n;
  const packets = capture.packets;
  let whole = 0;
  for (const set of a.sessionBackends.values()) if (set.size === 1) whole++;
  const duration = a.traceSeconds;
  const started = c['sessions-started'];
  const sessions: Report['sessions'] = {
    started,
    completed: c['sessions-completed'],
    timedOut: c['sessions-timed-out'],
    controlLost: c['sessions-control-lost'],
    openAtEnd: started - c['sessions-completed'] - c['sessions-timed-out'] - c['sessions-control-lost'],
    refused: c['sessions-refused'],
    integrity: a.sessionBackends.size ? whole / a.sessionBackends.size : 1,
    completedPerSecond: duration > 0 ? c['sessions-completed'] / duration : 0,
    expectations: { created: c['expectations-created'], matched: c['expectations-matched'], unused: c['expectations-unused'] },
  };
  return {
    input: { file: a.input, format: capture.format, seconds: a.traceSeconds, packets, bytes: capture.bytes, linktypes, truncated: capture.truncated, errors: capture.errors },
    backends,
    // Everything towards clients is some backend's reply load.
    client: { packets: c['tx-client'], bytes: rows.reduce((s, r) => s + r.replyBytes, 0) },
    passed: c['passed'],
    passedBy,
    dropped,
    droppedTotal: c['dropped'],
    flows: {
      created: c['flows-created'], closed: c['flows-closed'], expired: c['flows-expired'], evicted: c['flows-evicted'],
      resteered: c['flows-resteered'], midstream: c['flows-midstream'], tableFull: c['flow-table-full'], rows: a.flowRows,
    },
    sessions,
    fairness: fairnessOf(rows),
    vips,
    counters: c,
    elapsedSeconds: a.elapsed,
    engineSeconds: a.engineSeconds,
    packetsPerSecond: a.elapsed > 0 ? packets / a.elapsed : 0,
    enginePacketsPerSecond: a.engineSeconds > 0 ? packets / a.engineSeconds : 0,
  };
}

/** Short human summary for stderr. */
export function summary(r: Report): string {
  const lines: string[] = [];
  const fmt = (n: number) => n.toLocaleString('en-US');
  lines.push(`input     ${r.input.file}: ${fmt(r.input.packets)} packets, ${fmt(r.input.bytes)} bytes (${r.input.format}${r.input.truncated ? ', truncated' : ''})`);
  const ids = Object.keys(r.backends);
  const w = Math.max(8, ...ids.map((i) => i.length));
  lines.push(`${'backend'.padEnd(w)}  ${'packets'.padStart(10)}  ${'flows'.padStart(8)}  ${'replies'.padStart(10)}`);
  for (const id of ids) {
    const b = r.backends[id];
    lines.push(`${id.padEnd(w)}  ${fmt(b.packets).padStart(10)}  ${fmt(b.flows).padStart(8)}  ${fmt(b.replyPackets).padStart(10)}`);
  }
  lines.push(`client    ${fmt(r.client.packets)} packets`);
  const nz = (o: Record<string, number>) => Object.entries(o).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${fmt(n)}`).join(', ');
  lines.push(`passed    ${fmt(r.passed)}${r.passed ? ` (${nz(r.passedBy)})` : ''}`);
  lines.push(`dropped   ${fmt(r.droppedTotal)}${r.droppedTotal ? ` (${nz(r.dropped)})` : ''}`);
  if (r.sessions.started || r.sessions.refused) {
    const s = r.sessions;
    lines.push(`sessions  ${fmt(s.started)} started, ${fmt(s.completed)} completed, ${fmt(s.timedOut)} timed out, ${fmt(s.controlLost)} lost control, ${fmt(s.openAtEnd)} open at end, ${fmt(s.refused)} refused; integrity ${(s.integrity * 100).toFixed(1)}%`);
  }
  lines.push(`fairness  packets: Jain ${r.fairness.packets.jain.toFixed(4)}, max/mean ${r.fairness.packets.maxMean.toFixed(3)}; flows: Jain ${r.fairness.flows.jain.toFixed(4)}, max/mean ${r.fairness.flows.maxMean.toFixed(3)}`);
  lines.push(`speed     ${fmt(Math.round(r.packetsPerSecond))} packets/s overall, ${fmt(Math.round(r.enginePacketsPerSecond))} packets/s in the engine (${r.elapsedSeconds.toFixed(3)} s)`);
  return lines.join('\n');
}
