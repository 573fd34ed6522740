// `sessionlb evaluate`: replays one capture under the three balancing policies (flow, client,
// session) and measures, per policy, how many multi-flow sessions stayed whole (integrity), how
// evenly sessions and bytes spread over the backends (max/mean, Jain's index) and how many
// sessions completed per second of trace. docs/evaluation.md explains every column.
//
// Which flows make up a session comes from a ground-truth file (the real captures'
// *.truth.json, or `sessionlb generate rtsp --truth`), or else from the session-aware run's flow
// records (their `session` column). Flows are matched across runs by the flow table's key:
// (proto, client address, client port, VIP, VIP port), the client named first, so the two
// directions of a 5-tuple are one flow.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { DESC_SIZE, MAX_CAPLEN, openCapture, type BatchTarget } from '../io/capture.js';
import { addressBytes, formatAddress, type Config, type Policy, type Scheduler } from '../ctl/config.js';
import { replayFile, type FlowRecord } from '../replay.js';
import type { Report } from '../report/report.js';

// ---------------------------------------------------------------------------------------------
// The three runs

export interface PolicyRun {
  policy: Policy;
  scheduler: Scheduler;
}

/** flow: Maglev on the 5-tuple; client: source hashing (client persistence); session: RTSP-aware. */
export const EVAL_RUNS: readonly PolicyRun[] = [
  { policy: 'flow', scheduler: 'maglev' },
  { policy: 'client', scheduler: 'sh' },
  { policy: 'session', scheduler: 'maglev' },
];

/** A copy of `config` with every VIP set to `run`'s policy and scheduler. */
export function withPolicy(config: Config, run: PolicyRun): Config {
  return { ...config, vips: config.vips.map((v) => ({ ...v, policy: run.policy, scheduler: run.scheduler })) };
}

// ---------------------------------------------------------------------------------------------
// Flow keys

const addrCache = new Map<string, string>();

/** One text form per address (RFC 5952 for IPv6, dotted quad for IPv4 and IPv4-mapped). */
export function normAddress(a: string): string {
  let n = addrCache.get(a);
  if (n === undefined) {
    n = isIP(a) ? formatAddress(addressBytes(a)) : a;
    if (addrCache.size > 1 << 20) addrCache.clear();
    addrCache.set(a, n);
  }
  return n;
}

export interface FlowKeyFields {
  proto: string;
  clientIp: string;
  clientPort: number;
  vip: string;
  vipPort: number;
}

/** The flow table's key as text: proto/client/clientPort/vip/vipPort. */
export function flowKey(f: FlowKeyFields): string {
  return `${f.proto.toLowerCase()}/${normAddress(f.clientIp)}/${f.clientPort}/${normAddress(f.vip)}/${f.vipPort}`;
}

/** Backends each flow key reached, in record order, without repeats (a key closed and opened
 * again, e.g. after a timeout, has several records). */
export function backendsByKey(flows: readonly FlowRecord[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const f of flows) {
    const k = flowKey(f);
    const l = m.get(k);
    if (!l) m.set(k, [f.backend]);
    else if (!l.includes(f.backend)) l.push(f.backend);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Sessions

export interface SessionSpec {
  id: string;
  /** Flow keys of the RTSP control connection(s), in order. */
  control: string[];
  /** Flow keys of the media flows (RTP, RTCP), without repeats and without control keys. */
  media: string[];
  /** The session ended with a TEARDOWN (per the truth); null when the source does not say. */
  ended: boolean | null;
}

/** A ground-truth file that cannot be used; the message names the file and the field. */
export class TruthError extends Error {
  readonly code = 'TRUTH_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'TruthError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Sessions of a ground-truth JSON: `{ sessions: [{ session, server_ip?, control_tcp: [{ five_tuple }],
 * media_udp: [{ five_tuple }], requests_by_method?, teardown_s? }] }` with five_tuple =
 * `{ proto, src, sport, dst, dport }` in either direction. Both the real captures' truth files
 * (../shared/fixtures/rtsp) and `sessionlb generate rtsp --truth` have this shape. A 5-tuple is
 * turned into the flow table's key with the client first: the side that is not the session's
 * server (server_ip, else any of `vips`). `where` names the file in errors.
 */
export function sessionsFromTruth(raw: unknown, vips: readonly string[], where = 'truth'): SessionSpec[] {
  if (!isObj(raw) || !Array.isArray(raw.sessions)) throw new TruthError(`${where}: expected a JSON object with a "sessions" array`);
  const vipSet = new Set(vips.map(normAddress));
  return raw.sessions.map((s, i): SessionSpec => {
    const at = `${where}: sessions[${i}]`;
    if (!isObj(s)) throw new TruthError(`${at}: must be an object`);
    const server = typeof s.server_ip === 'string' && isIP(s.server_ip) ? normAddress(s.server_ip) : null;
    const isServer = (a: string) => (server !== null ? a === server : vipSet.has(a));
    const keyOf = (e: unknown, field: string): string => {
      const ft = isObj(e) ? e.five_tuple : undefined;
      if (!isObj(ft)) throw new TruthError(`${at}.${field}: missing five_tuple`);
      const { proto, src, sport, dst, dport } = ft;
      if (typeof proto !== 'string' || typeof src !== 'string' || typeof dst !== 'string' || !isIP(src) || !isIP(dst) ||
        !Number.isInteger(sport) || !Number.isInteger(dport)) {
        throw new TruthError(`${at}.${field}.five_tuple: expected { proto, src, sport, dst, dport } with IP addresses and integer ports`);
      }
      const s4 = normAddress(src);
      const d4 = normAddress(dst);
      // the client is the side that is not the server; when neither (or both) is, src
      return isServer(s4) && !isServer(d4)
        ? flowKey({ proto, clientIp: d4, clientPort: dport as number, vip: s4, vipPort: sport as number })
        : flowKey({ proto, clientIp: s4, clientPort: sport as number, vip: d4, vipPort: dport as number });
    };
    const list = (field: string): unknown[] => {
      const v = s[field];
      if (v === undefined) return [];
      if (!Array.isArray(v)) throw new TruthError(`${at}.${field}: must be an array`);
      return v;
    };
    const control = [...new Set(list('control_tcp').map((e, k) => keyOf(e, `control_tcp[${k}]`)))];
    const media = [...new Set(list('media_udp').map((e, k) => keyOf(e, `media_udp[${k}]`)))].filter((k) => !control.includes(k));
    let ended: boolean | null = null;
    if (isObj(s.requests_by_method)) ended = Number(s.requests_by_method.TEARDOWN ?? 0) > 0;
    else if (typeof s.teardown_s === 'number') ended = true;
    const id = typeof s.session === 'string' || typeof s.session === 'number' ? String(s.session) : `#${i}`;
    return { id, control, media, ended };
  });
}

/**
 * Sessions from flow records (the session-aware run's): flows with the same VIP and session id
 * form a session; its TCP flows to one of the VIP's rtspPorts are its control connections.
 * Records without a session id are not part of any session.
 */
export function sessionsFromFlows(flows: readonly FlowRecord[], config: Config): SessionSpec[] {
  const rtsp = new Map(config.vips.map((v) => [normAddress(v.address), new Set(v.rtspPorts)]));
  const by = new Map<string, { id: string; control: string[]; media: string[] }>();
  for (const f of flows) {
    if (!f.session) continue;
    const vip = normAddress(f.vip);
    const g = `${vip} ${f.session}`;
    let s = by.get(g);
    if (!s) by.set(g, (s = { id: f.session, control: [], media: [] }));
    const k = flowKey(f);
    const isControl = f.proto === 'tcp' && (rtsp.get(vip)?.has(f.vipPort) ?? false);
    const l = isControl ? s.control : s.media;
    if (!l.includes(k)) l.push(k);
  }
  return [...by.values()].map((s) => ({ ...s, media: s.media.filter((k) => !s.control.includes(k)), ended: null }));
}

// ---------------------------------------------------------------------------------------------
// Metrics

export interface IntegrityResult {
  /** Share of the seen sessions whose every seen flow reached one backend; null with no session. */
  integrity: number | null;
  sessions: number; // sessions with at least one flow seen
  whole: number;
  split: number;
  unseenSessions: number; // sessions none of whose flows was seen
  flows: number; // session flows seen
  unseenFlows: number; // session flows never seen by the replay (ignored)
  /** Per session (same order as the input): whole, split, or null when unseen. */
  status: (boolean | null)[];
}

export function integrity(sessions: readonly SessionSpec[], byKey: ReadonlyMap<string, readonly string[]>): IntegrityResult {
  let seen = 0, whole = 0, flows = 0, unseenFlows = 0;
  const status: (boolean | null)[] = [];
  for (const s of sessions) {
    const backends = new Set<string>();
    let n = 0;
    for (const k of [...s.control, ...s.media]) {
      const b = byKey.get(k);
      if (!b) {
        unseenFlows++;
        continue;
      }
      n++;
      for (const x of b) backends.add(x);
    }
    flows += n;
    if (n === 0) {
      status.push(null);
      continue;
    }
    seen++;
    const ok = backends.size === 1;
    if (ok) whole++;
    status.push(ok);
  }
  return {
    integrity: seen ? whole / seen : null,
    sessions: seen, whole, split: seen - whole, unseenSessions: sessions.length - seen, flows, unseenFlows, status,
  };
}

/** The backend a session is counted on: its first seen control connection's, else its first seen
 * flow's (the first backend that key reached); null when none of its flows was seen. */
export function sessionHome(s: SessionSpec, byKey: ReadonlyMap<string, readonly string[]>): string | null {
  for (const k of s.control) {
    const b = byKey.get(k);
    if (b) return b[0];
  }
  for (const k of s.media) {
    const b = byKey.get(k);
    if (b) return b[0];
  }
  return null;
}

/** max/mean of the loads; 1 for no loads or all zero (nothing to be unfair about). */
export function imbalance(xs: readonly number[]): number {
  if (xs.length === 0) return 1;
  const sum = xs.reduce((a, b) => a + b, 0);
  if (sum <= 0) return 1;
  return Math.max(...xs) / (sum / xs.length);
}

/** Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when equal, 1/n when one takes all. */
export function jain(xs: readonly number[]): number {
  if (xs.length === 0) return 1;
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq > 0 ? (sum * sum) / (xs.length * sq) : 1;
}

// ---------------------------------------------------------------------------------------------
// Capture duration

export interface CaptureSpan {
  packets: number;
  first: number; // seconds since the epoch (fractional); NaN with no packets
  last: number;
  seconds: number; // last - first (0 with fewer than two packets)
}

/** Reads the capture's packet timestamps (no engine): earliest and latest. */
export function captureSpan(path: string): CaptureSpan {
  const reader = openCapture(path);
  const maxPackets = 1024;
  const ioSize = 4 << 20;
  const ioPtr = maxPackets * DESC_SIZE;
  const arenaPtr = ioPtr + ioSize;
  const arenaEnd = arenaPtr + 2 * MAX_CAPLEN + 4096; // pcapng frames are copied here
  const buf = new ArrayBuffer(arenaEnd);
  const t: BatchTarget = {
    mem: new Uint8Array(buf), dv: new DataView(buf), descPtr: 0, maxPackets, arenaPtr, arenaEnd,
    headroom: 16, inPlace: true, ioPtr, ioSize,
  };
  // earliest and latest as (seconds, nanoseconds), so the difference is exact
  let fs = Infinity, fn = 0, ls = -Infinity, ln = 0, packets = 0;
  try {
    for (;;) {
      const n = reader.next(t);
      if (n === 0) break;
      for (let i = 0, d = 0; i < n; i++, d += DESC_SIZE) {
        const sec = t.dv.getUint32(d + 16, true);
        const ns = t.dv.getUint32(d + 20, true);
        if (sec < fs || (sec === fs && ns < fn)) (fs = sec), (fn = ns);
        if (sec > ls || (sec === ls && ns > ln)) (ls = sec), (ln = ns);
      }
      packets += n;
    }
  } finally {
    reader.close();
  }
  if (packets === 0) return { packets, first: NaN, last: NaN, seconds: 0 };
  return { packets, first: fs + fn / 1e9, last: ls + ln / 1e9, seconds: ls - fs + (ln - fn) / 1e9 };
}

// ---------------------------------------------------------------------------------------------
// One policy's numbers

/** What the engine reports about sessions once it is session-aware (report.sessions). */
export interface EngineSessions {
  started?: number;
  completed?: number;
  refused?: number;
  [k: string]: unknown;
}

export type SessionsFrom = 'truth' | 'session-ids';
export type CompletedFrom = 'engine' | 'truth' | 'sessions';

export interface PolicyResult {
  policy: Policy;
  scheduler: Scheduler;
  integrity: number | null;
  sessions: number; // sessions seen in this run
  wholeSessions: number;
  splitSessions: number;
  imbalance: number | null; // sessions per backend, max/mean (worst VIP)
  jain: number | null; // Jain's index of sessions per backend (worst VIP)
  bytesImbalance: number | null; // bytes + replyBytes per backend, max/mean (worst VIP)
  sessionsPerSecond: number | null;
  completedSessions: number;
  completedFrom: CompletedFrom;
  wholeSessionsPerSecond: number | null; // completed sessions that also stayed whole, per second
  flows: number; // flow records of this run
  sessionFlows: number; // session flows seen
  unseenFlows: number; // session flows (truth or session run) this run never saw: ignored
  unseenSessions: number;
  sessionsFrom: SessionsFrom;
  durationSeconds: number;
  sessionsPerBackend: Record<string, number>;
  bytesPerBackend: Record<string, number>;
  engineSessions: EngineSessions | null;
}

export interface Evaluation {
  flow: PolicyResult;
  client: PolicyResult;
  session: PolicyResult;
}

/** Live backends of each VIP and their weights (weight 0 takes no load: left out, as in report.json). */
function vipBackends(config: Config): { vip: string; backends: { id: string; weight: number }[] }[] {
  return config.vips.map((v) => ({ vip: normAddress(v.address), backends: v.backends.filter((b) => b.weight > 0).map((b) => ({ id: b.id, weight: b.weight })) }));
}

export function evaluateRun(a: {
  run: PolicyRun;
  config: Config;
  report: Report;
  flows: readonly FlowRecord[];
  sessions: readonly SessionSpec[];
  sessionsFrom: SessionsFrom;
  durationSeconds: number;
}): PolicyResult {
  const byKey = backendsByKey(a.flows);
  const ig = integrity(a.sessions, byKey);
  const perBackend: Record<string, number> = {};
  const bytes: Record<string, number> = {};
  for (const v of a.config.vips) for (const b of v.backends) perBackend[b.id] = 0;
  for (const [id, b] of Object.entries(a.report.backends)) bytes[id] = b.bytes + b.replyBytes;
  let completed = 0;
  let wholeCompleted = 0;
  a.sessions.forEach((s, i) => {
    const home = sessionHome(s, byKey);
    if (home === null) return;
    perBackend[home] = (perBackend[home] ?? 0) + 1;
    if (s.ended !== false) {
      completed++;
      if (ig.status[i]) wholeCompleted++;
    }
  });
  // per VIP: sessions and bytes per live backend, weight-normalised; the worst VIP is reported
  let imb: number | null = null, jn: number | null = null, bimb: number | null = null;
  for (const { backends } of vipBackends(a.config)) {
    if (backends.length === 0) continue;
    const s = backends.map((b) => (perBackend[b.id] ?? 0) / b.weight);
    if (s.some((x) => x > 0)) {
      imb = Math.max(imb ?? 0, imbalance(s));
      jn = Math.min(jn ?? 1, jain(s));
    }
    const by = backends.map((b) => (bytes[b.id] ?? 0) / b.weight);
    if (by.some((x) => x > 0)) bimb = Math.max(bimb ?? 0, imbalance(by));
  }
  const eng = (a.report as Report & { sessions?: EngineSessions }).sessions;
  const engineSessions = isObj(eng) ? (eng as EngineSessions) : null;
  let completedFrom: CompletedFrom = a.sessionsFrom === 'truth' ? 'truth' : 'sessions';
  // The engine's count is used only when it tracked sessions in this run (a session-aware VIP
  // saw a SETUP); under flow and client policies it inspects nothing and its count is 0 by
  // construction, not a measurement.
  if (engineSessions && typeof engineSessions.completed === 'number' &&
    (Number(engineSessions.started ?? 0) > 0 || Number(engineSessions.refused ?? 0) > 0)) {
    completed = engineSessions.completed;
    completedFrom = 'engine';
  }
  const per = (n: number) => (a.durationSeconds > 0 ? n / a.durationSeconds : null);
  return {
    policy: a.run.policy,
    scheduler: a.run.scheduler,
    integrity: ig.integrity,
    sessions: ig.sessions,
    wholeSessions: ig.whole,
    splitSessions: ig.split,
    imbalance: imb,
    jain: jn,
    bytesImbalance: bimb,
    sessionsPerSecond: per(completed),
    completedSessions: completed,
    completedFrom,
    wholeSessionsPerSecond: per(wholeCompleted),
    flows: a.flows.length,
    sessionFlows: ig.flows,
    unseenFlows: ig.unseenFlows,
    unseenSessions: ig.unseenSessions,
    sessionsFrom: a.sessionsFrom,
    durationSeconds: a.durationSeconds,
    sessionsPerBackend: perBackend,
    bytesPerBackend: bytes,
    engineSessions,
  };
}

// ---------------------------------------------------------------------------------------------
// The whole evaluation

export interface EvaluateOptions {
  /** Ground-truth JSON file; without it, sessions come from the session run's `session` ids. */
  truth?: string | null;
  /** Called before each replay with the policy about to run. */
  onRun?: (run: PolicyRun) => void;
  onProgress?: (done: number, total: number) => void;
}

export function loadTruth(file: string, config: Config): SessionSpec[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TruthError(`cannot read truth file ${file}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TruthError(`truth file ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return sessionsFromTruth(raw, config.vips.map((v) => v.address), file);
}

export async function evaluate(input: string, config: Config, opts: EvaluateOptions = {}): Promise<Evaluation> {
  const truth = opts.truth ? loadTruth(opts.truth, config) : null;
  const span = captureSpan(input);
  const runs: { run: PolicyRun; report: Report; flows: FlowRecord[] }[] = [];
  for (const run of EVAL_RUNS) {
    opts.onRun?.(run);
    const r = await replayFile(input, withPolicy(config, run), { outDir: null, collectFlows: true, onProgress: opts.onProgress });
    runs.push({ run, report: r.report, flows: r.flows ?? [] });
  }
  const sessionRun = runs.find((r) => r.run.policy === 'session')!;
  const sessions = truth ?? sessionsFromFlows(sessionRun.flows, config);
  const sessionsFrom: SessionsFrom = truth ? 'truth' : 'session-ids';
  const out = {} as Record<Policy, PolicyResult>;
  for (const r of runs) {
    out[r.run.policy] = evaluateRun({ ...r, config, sessions, sessionsFrom, durationSeconds: span.seconds });
  }
  return out as Evaluation;
}

// ---------------------------------------------------------------------------------------------
// Tables

const POLICY_KEYS = ['flow', 'client', 'session'] as const;
const f3 = (x: number | null) => (x === null ? '-' : x.toFixed(3));
const f2 = (x: number | null) => (x === null ? '-' : x.toFixed(2));

const COLUMNS = ['policy', 'integrity', 'whole/seen', 'imbalance', 'jain', 'bytesImbalance', 'sessions/s', 'whole sessions/s', 'flows', 'unseen flows'];

function rows(ev: Evaluation): string[][] {
  return POLICY_KEYS.map((p) => {
    const r = ev[p];
    return [
      `${p} (${r.scheduler})`, f3(r.integrity), `${r.wholeSessions}/${r.sessions}`, f3(r.imbalance), f3(r.jain), f3(r.bytesImbalance),
      f2(r.sessionsPerSecond), f2(r.wholeSessionsPerSecond), String(r.flows), String(r.unseenFlows),
    ];
  });
}

const COMPLETED_FROM: Record<CompletedFrom, string> = {
  engine: "the engine's report.sessions.completed",
  truth: 'seen sessions that sent TEARDOWN, per the truth',
  sessions: 'every identified session',
};

function completedText(ev: Evaluation): string {
  const groups = new Map<CompletedFrom, string[]>();
  for (const p of POLICY_KEYS) groups.set(ev[p].completedFrom, [...(groups.get(ev[p].completedFrom) ?? []), p]);
  if (groups.size === 1) return COMPLETED_FROM[ev.flow.completedFrom];
  return [...groups].map(([from, ps]) => `${ps.join(', ')}: ${COMPLETED_FROM[from]}`).join('; ');
}

function notes(ev: Evaluation): string[] {
  const r = ev.session;
  const n: string[] = [];
  n.push(`sessions from ${r.sessionsFrom === 'truth' ? 'the truth file' : "the session run's session ids"}; ` +
    `${r.durationSeconds.toFixed(3)} s of trace; sessions/s counts completed sessions (${completedText(ev)})`);
  const unseen = Math.max(ev.flow.unseenFlows, ev.client.unseenFlows, ev.session.unseenFlows);
  if (unseen > 0) n.push(`${unseen} session flow(s) listed but never seen by a replay were ignored`);
  if (r.sessions === 0 && r.unseenSessions === 0) {
    n.push(r.sessionsFrom === 'session-ids'
      ? 'no sessions: no --truth given and the session run tagged no flow with a session id'
      : 'no sessions in the truth file');
  }
  if (!r.engineSessions || !(Number(r.engineSessions.started ?? 0) > 0)) {
    n.push('the session run\'s engine tracked no session (report.sessions): the session policy may not be session-aware yet');
  }
  return n;
}

/** The table as aligned text (for stderr). */
export function formatText(ev: Evaluation): string {
  const all = [COLUMNS, ...rows(ev)];
  const w = COLUMNS.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(COLUMNS), ...rows(ev).map(line), ...notes(ev).map((x) => `note: ${x}`)].join('\n');
}

/** The table as Markdown (evaluation.md). */
export function formatMarkdown(ev: Evaluation, title?: string): string {
  const out: string[] = [];
  if (title) out.push(`# ${title}`, '');
  out.push(`| ${COLUMNS.join(' | ')} |`, `|${COLUMNS.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const r of rows(ev)) out.push(`| ${r.join(' | ')} |`);
  out.push('');
  for (const x of notes(ev)) out.push(`- ${x}`);
  return out.join('\n') + '\n';
}
