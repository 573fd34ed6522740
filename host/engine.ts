// The host's handle on one engine instance: configures it from a Config (VIPs, backends, Maglev
// rings, timeouts), exposes the batch regions, and reads counters, per-backend stats and events.
// It does no per-packet work itself; see replay.ts for the batch loop.
import { instantiate, loadModule, type EngineExports } from './wasm.js';
import { addressBytes, formatAddress, type BackendState, type Config, METHODS, SCHEDULERS, BACKEND_STATES, POLICIES, isSpliceFamily } from './ctl/config.js';
import { buildRing } from './ctl/maglev.js';
import { COUNTER_NAMES, DROP_NAMES, PASS_NAMES, CLOSE_REASONS, SESSION_END_REASONS } from './ctl/counters.js';

export const DESC_SIZE = 32;
export const EVENT_SIZE = 64;

export interface EngineOptions {
  module?: WebAssembly.Module;
  arenaBytes?: number; // packet arena size, default 4 MiB
  ioBytes?: number; // host io region (capture chunks, output staging), default 4 MiB
  eventCapacity?: number; // default 16384
  eventMask?: number; // which event types are recorded (bit 1 << type)
}

export interface BackendRef {
  index: number; // global index in the engine
  vip: number;
  id: string;
  address: string;
  weight: number;
  state: BackendState;
}

export interface FlowEvent {
  type: number;
  reason: number;
  backend: number;
  tsSec: number;
  state: number;
  flags: number;
  packets: number;
  bytes: number;
  session: number; // session index + 1, 0 = none
  clientIp: string;
  vip: string;
  clientPort: number;
  vipPort: number;
  proto: number;
}

/** Bytes as text, one character per byte (what Buffer's 'latin1' decoding gives). */
/** One frame for `processBatch`: its bytes (copied into the arena) and descriptor fields. */
export interface FrameInput {
  data: Uint8Array;
  /** pcap LINKTYPE: 1 Ethernet (default), 101 raw IP, 113 SLL, ... (docs/abi.md "Descriptor"). */
  link?: number;
  tsSec?: number; // capture time, seconds since the epoch (flow timeouts use it)
  tsNsec?: number;
  wirelen?: number; // length on the wire, default data.length
  port?: number; // ingress interface
}

export type Verdict = 'drop' | 'backend' | 'client' | 'pass';

/** What the engine decided for one frame of `processBatch`. */
export interface FrameResult {
  verdict: Verdict;
  /** Drop or pass reason (DROP_NAMES / PASS_NAMES), '' when forwarded. */
  reason: string;
  /** Verdicts backend and client: the owning backend's id and global index; else null and -1. */
  backend: string | null;
  backendIndex: number;
  /** Flow-table entry + 1, 0 when the frame is not tracked. */
  flow: number;
  /** The frame as the engine left it (rewritten, encapsulated; always Ethernet when forwarded). A copy. */
  frame: Uint8Array;
  wirelen: number;
}

/** A decoded event record (docs/abi.md "Events"). */
export type EngineEvent =
  | ({ type: 'flow-created' | 'flow-closed' | 'flow-resteered'; reasonName: string; backendId: string; oldBackend: number } & Omit<FlowEvent, 'type'>)
  | { type: 'backend-state'; tsSec: number; backend: number; backendId: string; state: BackendState }
  | { type: 'session-started'; tsSec: number; index: number; id: string; vip: string; client: string; backend: number; backendId: string }
  | { type: 'session-ended'; tsSec: number; index: number; reason: string; backend: number; backendId: string };

export const SESSION_STATES = ['free', 'active', 'closing', 'ended'] as const;

/** Exports of TCP splicing (docs/abi.md "TCP splicing"); optional for hosts that do not use it. */
export interface SpliceExports {
  config_splice(mss: number): number;
  config_splice_rule(i: number, vip: number, backend: number, len: number): number;
  splice_tick(nowMs: number): number;
  splice_out_ptr(): number;
  splice_out_count(): number;
  splice_out_slot(): number;
  splice_out_reset(): void;
  splice_table_ptr(): number;
  splice_entry_size(): number;
  splice_capacity(): number;
  splice_count(): number;
  splice_stats_ptr(): number;
  splice_seq(op: number, a: number, b: number): number;
  splice_handoff_done(id: number, status: number, nowMs: number): number;
}

/**
 * One record of the splice output queue: a frame towards a backend (side 1) or the client side
 * (side 2), or a HANDOFF message for a backend's agent (side 3, docs/handoff.md).
 */
export interface SpliceFrame {
  side: 'backend' | 'client' | 'handoff';
  backendIndex: number;
  frame: Uint8Array;
}

/** One record of the session table (docs/abi.md "Session record"). */
export interface SessionRecord {
  index: number;
  state: (typeof SESSION_STATES)[number];
  vip: string;
  backend: number;
  backendId: string;
  client: string;
  /** Packet time (s) at which it times out (active) or ends (closing). */
  expiry: number;
  timeout: number; // the Session header's timeout, seconds
  flows: number; // flows referring to it
  /** The Session id (its first 24 bytes; `idLength` is the whole id's length). */
  id: string;
  idLength: number;
  closeReason: string;
}

function latin1(mem: Uint8Array, start: number, len: number): string {
  let s = '';
  for (let i = 0; i < len; i++) s += String.fromCharCode(mem[start + i]);
  return s;
}

function macParts(m: string): [number, number] {
  const b = m.split(':').map((x) => parseInt(x, 16));
  return [(b[0] << 8) | b[1], ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0];
}

export class Engine {
  readonly ex: EngineExports;
  readonly config: Config;
  readonly backends: BackendRef[] = [];
  readonly mem: Uint8Array;
  readonly dv: DataView;
  readonly buf: Buffer;
  readonly batchSize: number;
  readonly headroom: number;
  readonly descPtr: number;
  readonly arenaPtr: number;
  readonly arenaEnd: number;
  readonly ioPtr: number;
  readonly ioSize: number;
  private ringOffsets: number[] = [];

  constructor(config: Config, opts: EngineOptions = {}) {
    this.config = config;
    this.ex = instantiate(opts.module ?? loadModule());
    const ex = this.ex;
    const nBackends = config.vips.reduce((s, v) => s + v.backends.length, 0);
    const ringTotal = config.vips.reduce((s, v) => s + v.ringSize, 0);
    const arena = opts.arenaBytes ?? 4 << 20;
    const rc = ex.init(config.flowCapacity, config.vips.length, nBackends, ringTotal, arena, opts.eventCapacity ?? 16384, opts.ioBytes ?? 4 << 20);
    if (rc !== 0) throw Object.assign(new Error(`engine init failed (code ${rc})`), { code: 'ENGINE_INIT' });
    this.mem = new Uint8Array(ex.memory.buffer);
    this.dv = new DataView(ex.memory.buffer);
    // Node's Buffer view of the memory; absent where there is no Buffer (a browser bundle).
    this.buf = (typeof Buffer === 'function' ? Buffer.from(ex.memory.buffer) : undefined) as Buffer;
    this.batchSize = ex.batch_size();
    this.headroom = ex.headroom();
    this.descPtr = ex.desc_ptr();
    this.arenaPtr = ex.arena_ptr();
    this.arenaEnd = this.arenaPtr + ex.arena_size();
    this.ioPtr = ex.io_ptr();
    this.ioSize = ex.io_size();
    if (opts.eventMask !== undefined) ex.config_events(opts.eventMask);
    this.configure();
  }

  private configure(): void {
    const { ex, config } = this;
    ex.config_global(...macParts(config.mac), ...macParts(config.gatewayMac));
    const t = config.timeouts;
    ex.config_timeouts(t.tcpSyn, t.tcpEstablished, t.tcpFin, t.tcpClose, t.udp, t.icmp, t.frag);
    ex.config_sessions(config.maxSessions, t.sessionGrace, t.expectation);
    ex.config_hash_key(BigInt.asUintN(64, BigInt('0x' + config.hashKey.slice(0, 16))), BigInt.asUintN(64, BigInt('0x' + config.hashKey.slice(16))));
    const scratch = ex.scratch_ptr();
    let next = 0;
    let ringOff = 0;
    config.vips.forEach((v, i) => {
      this.mem.fill(0, scratch, scratch + 48);
      this.mem.set(addressBytes(v.address), scratch);
      if (v.tunnel.source) this.mem.set(addressBytes(v.tunnel.source), scratch + 16);
      if (v.tunnel.source6) this.mem.set(addressBytes(v.tunnel.source6), scratch + 32);
      const protos = (v.protocols.includes('tcp') ? 1 : 0) | (v.protocols.includes('udp') ? 2 : 0);
      const rc = ex.config_vip(i, v.family, METHODS.indexOf(v.method), SCHEDULERS.indexOf(v.scheduler), protos,
        next, v.backends.length, ringOff, v.ringSize, v.tunnel.guePort);
      if (rc !== 0) throw Object.assign(new Error(`engine rejected VIP ${v.address} (code ${rc})`), { code: 'ENGINE_CONFIG' });
      if (v.ports) {
        this.mem.fill(0, scratch, scratch + 8192);
        for (const p of v.ports) this.mem[scratch + (p >> 3)] |= 1 << (p & 7);
        ex.config_vip_ports(i, 0);
      } else ex.config_vip_ports(i, 1);
      this.mem.fill(0, scratch, scratch + 8);
      v.rtspPorts.slice(0, 4).forEach((port, k) => this.dv.setUint16(scratch + 2 * k, port, true));
      ex.config_vip_sessions(i, POLICIES.indexOf(v.policy), v.maxSessions, v.sessionRate, v.clientAffinity ? 1 : 0);
      this.ringOffsets.push(ringOff);
      v.backends.forEach((b) => {
        this.mem.set(addressBytes(b.address), scratch);
        const rc2 = ex.config_backend(next, i, b.weight, BACKEND_STATES.indexOf(b.state), ...macParts(b.mac));
        if (rc2 !== 0) throw Object.assign(new Error(`engine rejected backend ${b.id} (code ${rc2})`), { code: 'ENGINE_CONFIG' });
        ex.config_backend_sessions(next, b.maxSessions);
        this.backends.push({ index: next, vip: i, id: b.id, address: b.address, weight: b.weight, state: b.state });
        next++;
      });
      ringOff += v.ringSize;
    });
    const rc = ex.config_commit(config.vips.length, next);
    if (rc !== 0) throw Object.assign(new Error(`engine rejected the configuration (code ${rc})`), { code: 'ENGINE_CONFIG' });
    config.vips.forEach((_, i) => this.programRing(i));
    this.configureSplice();
  }

  /**
   * TCP splicing (docs/splice.md): the source address and MSS (engine-wide: the first splice VIP
   * naming them wins) and the URL rules of every splice VIP, in config order (16 at most in all).
   */
  private configureSplice(): void {
    const sx = this.ex as unknown as SpliceExports;
    const vips = this.config.vips.map((v, i) => ({ v, i })).filter(({ v }) => isSpliceFamily(v.method) && v.splice);
    if (!vips.length || typeof sx.config_splice !== 'function') return;
    const scratch = this.ex.scratch_ptr();
    const first = vips.find(({ v }) => v.splice!.source) ?? vips[0];
    this.mem.fill(0, scratch, scratch + 16);
    const src = first.v.splice!.source;
    // "client": transparent, connections to backends come from the client's own address (all ones).
    if (src === 'client') this.mem.fill(0xff, scratch, scratch + 16);
    else if (src) this.mem.set(addressBytes(src), scratch);
    const rc = sx.config_splice(first.v.splice!.mss);
    if (rc !== 0) throw Object.assign(new Error(`engine rejected the splice settings (code ${rc})`), { code: 'ENGINE_CONFIG' });
    let k = 0;
    for (const { v, i } of vips) {
      for (const r of v.splice!.rules) {
        const b = this.backends.find((x) => x.vip === i && x.id === r.backend);
        if (!b || k >= 16) throw Object.assign(new Error(`splice rule ${r.prefix} -> ${r.backend}: no such backend or more than 16 rules`), { code: 'ENGINE_CONFIG' });
        const bytes = new TextEncoder().encode(r.prefix);
        this.mem.set(bytes, scratch);
        sx.config_splice_rule(k++, i, b.index, bytes.length);
      }
    }
  }

  /** Builds VIP i's Maglev ring from its active backends and writes it into the engine. */
  programRing(vipIndex: number): void {
    const v = this.config.vips[vipIndex];
    const members = this.backends.filter((b) => b.vip === vipIndex);
    const table = buildRing(members.map((b) => ({ name: b.id, weight: b.state === 'active' ? b.weight : 0 })), v.ringSize);
    const base = this.ex.ring_ptr() + this.ringOffsets[vipIndex] * 2;
    const ring = new Uint16Array(this.ex.memory.buffer, base, v.ringSize);
    for (let i = 0; i < table.length; i++) ring[i] = table[i] < 0 ? 0xffff : table[i];
  }

  /** Changes a backend's state (active, draining, down) and reprograms its VIP's ring. */
  setBackendState(id: string, state: BackendState, nowS = 0): void {
    const b = this.backends.find((x) => x.id === id);
    if (!b) throw new Error(`no backend "${id}"`);
    b.state = state;
    this.programRing(b.vip);
    this.ex.set_backend_state(b.index, BACKEND_STATES.indexOf(state), nowS);
  }

  process(n: number): number {
    return this.ex.process(n);
  }

  private readU64s(ptr: number, names: readonly string[]): Record<string, number> {
    const out: Record<string, number> = {};
    names.forEach((name, i) => (out[name] = Number(this.dv.getBigUint64(ptr + i * 8, true))));
    return out;
  }

  counters(): Record<string, number> {
    return this.readU64s(this.ex.counters_ptr(), COUNTER_NAMES);
  }

  drops(): Record<string, number> {
    const d = this.readU64s(this.ex.drops_ptr(), DROP_NAMES);
    delete d.none;
    return d;
  }

  passes(): Record<string, number> {
    const p = this.readU64s(this.ex.passes_ptr(), PASS_NAMES);
    delete p.none;
    return p;
  }

  backendStats(index: number) {
    const p = this.ex.backend_stats_ptr() + index * 64;
    const g = (o: number) => Number(this.dv.getBigUint64(p + o, true));
    return { packets: g(0), bytes: g(8), flows: g(16), replyPackets: g(24), replyBytes: g(32), resteeredIn: g(40) };
  }

  /** Calls fn for every pending event and marks them consumed. Returns how many there were. */
  drainEvents(fn: (recordPtr: number) => void): number {
    const hp = this.ex.event_head_ptr();
    const head = this.dv.getUint32(hp, true);
    let tail = this.dv.getUint32(hp + 4, true);
    const cap = this.ex.event_capacity();
    const base = this.ex.events_ptr();
    const n = (head - tail) >>> 0;
    while (tail !== head) {
      fn(base + (tail & (cap - 1)) * EVENT_SIZE);
      tail = (tail + 1) >>> 0;
    }
    this.dv.setUint32(hp + 4, tail, true);
    return n;
  }

  /** Decodes a session-started event: its index and id (the id's first 32 bytes, as text). */
  decodeSessionStarted(p: number): { index: number; id: string; vip: number; client: string; backend: number } {
    const len = this.mem[p + 13];
    return {
      index: this.dv.getUint32(p + 8, true),
      vip: this.mem[p + 12],
      id: latin1(this.mem, p + 32, len),
      client: formatAddress(this.mem, p + 16),
      backend: this.dv.getUint16(p + 2, true),
    };
  }

  /** Decodes a flow event record (see docs/abi.md "Events"). */
  decodeFlowEvent(p: number): FlowEvent {
    const dv = this.dv;
    return {
      type: this.mem[p],
      reason: this.mem[p + 1],
      backend: dv.getUint16(p + 2, true),
      tsSec: dv.getUint32(p + 4, true),
      state: this.mem[p + 10],
      flags: this.mem[p + 11],
      packets: dv.getUint32(p + 12, true),
      // The bytes field keeps 40 bits; its high 24 bits are the flow's session index + 1.
      bytes: dv.getUint32(p + 16, true) + (this.mem[p + 20] * 2 ** 32),
      session: this.mem[p + 21] | (this.mem[p + 22] << 8) | (this.mem[p + 23] << 16),
      clientIp: formatAddress(this.mem, p + 24),
      vip: formatAddress(this.mem, p + 40),
      clientPort: dv.getUint16(p + 56, false),
      vipPort: dv.getUint16(p + 58, false),
      proto: this.mem[p + 60],
    };
  }

  // ------------------------------------------------------------------------------------------
  // Library conveniences (import { Engine } from 'sessionlb'): frames in, decisions out, typed
  // events and a snapshot of the session table. The replay loop (replay.ts) does the same work
  // over raw descriptors without allocating; these copy and decode for the embedder's comfort.

  /**
   * Copies frames[start..] into the packet arena (each behind `headroom` bytes, 8-byte aligned)
   * and fills descriptors 0..n-1. Returns n: at most `batchSize`, fewer when the arena is full
   * (at least one frame always fits unless it is larger than the arena).
   */
  placeFrames(frames: readonly FrameInput[], start = 0): number {
    const { mem, dv } = this;
    let cursor = this.arenaPtr;
    let n = 0;
    for (let i = start; i < frames.length && n < this.batchSize; i++, n++) {
      const f = frames[i];
      const data = ((cursor + this.headroom + 7) & ~7) >>> 0;
      if (data + f.data.length > this.arenaEnd) {
        if (n === 0) throw new RangeError(`frame of ${f.data.length} bytes does not fit the ${this.arenaEnd - this.arenaPtr}-byte arena`);
        break;
      }
      mem.set(f.data, data);
      const d = this.descPtr + n * DESC_SIZE;
      dv.setUint32(d, data, true);
      dv.setUint32(d + 4, f.data.length, true);
      dv.setUint32(d + 8, Math.max(f.wirelen ?? f.data.length, f.data.length), true);
      dv.setUint16(d + 12, f.port ?? 0, true);
      dv.setUint16(d + 14, f.link ?? 1, true);
      dv.setUint32(d + 16, f.tsSec ?? 0, true);
      dv.setUint32(d + 20, f.tsNsec ?? 0, true);
      dv.setUint32(d + 24, 0, true);
      dv.setUint32(d + 28, 0, true);
      cursor = data + f.data.length;
    }
    return n;
  }

  /** Copies out and clears the splice output queue (frames the engine made on its own: backend SYNs, replays, RSTs). */
  drainSplice(): SpliceFrame[] {
    const sx = this.ex as unknown as SpliceExports;
    const out: SpliceFrame[] = [];
    const base = sx.splice_out_ptr(), slot = sx.splice_out_slot(), n = sx.splice_out_count();
    for (let i = 0; i < n; i++) {
      const r = base + i * slot;
      const off = this.dv.getUint32(r + 4, true), len = this.dv.getUint32(r + 8, true);
      const side = this.mem[r];
      if (side === 3) {
        // A HANDOFF message (docs/handoff.md): its 52-byte header here, the held request bytes at the
        // record's pointer (+12), n of them (header bytes 14..15, big-endian).
        const n = (this.mem[r + off + 14] << 8) | this.mem[r + off + 15];
        const ptr = this.dv.getUint32(r + 12, true);
        const msg = new Uint8Array(len + n);
        msg.set(this.mem.subarray(r + off, r + off + len), 0);
        msg.set(this.mem.subarray(ptr, ptr + n), len);
        out.push({ side: 'handoff', backendIndex: this.dv.getUint16(r + 2, true), frame: msg });
        continue;
      }
      out.push({ side: side === 1 ? 'backend' : 'client', backendIndex: this.dv.getUint16(r + 2, true), frame: this.mem.slice(r + off, r + off + len) });
    }
    sx.splice_out_reset();
    return out;
  }

  /** Descriptor i's outcome after `process` (its frame copied out of linear memory). */
  result(i: number): FrameResult {
    const d = this.descPtr + i * DESC_SIZE;
    const v = this.mem[d + 24];
    const verdict = (['drop', 'backend', 'client', 'pass'] as const)[v] ?? 'drop';
    const reasonCode = this.mem[d + 25];
    const egress = this.dv.getUint16(d + 26, true);
    const fwd = verdict === 'backend' || verdict === 'client';
    const data = this.dv.getUint32(d, true);
    const caplen = this.dv.getUint32(d + 4, true);
    return {
      verdict,
      reason: verdict === 'drop' ? DROP_NAMES[reasonCode] ?? String(reasonCode) : verdict === 'pass' ? PASS_NAMES[reasonCode] ?? String(reasonCode) : '',
      backend: fwd ? this.backends[egress]?.id ?? null : null,
      backendIndex: fwd ? egress : -1,
      flow: this.dv.getUint32(d + 28, true),
      frame: this.mem.slice(data, data + caplen),
      wirelen: this.dv.getUint32(d + 8, true),
    };
  }

  /**
   * Places the frames, runs `process` over them (in batches of `batchSize`) and returns one
   * result per frame, in order. Events stay in the ring for `readEvents`; flows time out on
   * lookups, or sweep them with `expire`.
   */
  processBatch(frames: readonly FrameInput[]): FrameResult[] {
    const out: FrameResult[] = [];
    for (let start = 0; start < frames.length; ) {
      const n = this.placeFrames(frames, start);
      this.process(n);
      for (let i = 0; i < n; i++) out.push(this.result(i));
      start += n;
    }
    return out;
  }

  /** Sweeps the whole flow table (and session table) for timeouts at packet time nowS; returns the flows closed. */
  expire(nowS: number): number {
    return this.ex.expire(nowS, this.ex.flow_table_entries() / 4);
  }

  /**
   * End of input: ends every open session, then closes every live flow (reason flush), so each
   * is reported once by an event. Returns the events this produced (and any still pending).
   */
  finish(nowS: number): EngineEvent[] {
    const events = this.readEvents();
    this.ex.flush_sessions(nowS);
    events.push(...this.readEvents());
    while (this.ex.flush_flows(4096, nowS) > 0) events.push(...this.readEvents());
    events.push(...this.readEvents());
    return events;
  }

  /** Decodes one event record at p. Flow events whose reason is an unused expectation are reported as flow-closed with reasonName 'unused-expectation'. */
  decodeEvent(p: number): EngineEvent {
    const type = this.mem[p];
    const tsSec = this.dv.getUint32(p + 4, true);
    const backend = this.dv.getUint16(p + 2, true);
    const backendId = this.backends[backend]?.id ?? '';
    if (type === 4) return { type: 'backend-state', tsSec, backend, backendId, state: BACKEND_STATES[this.mem[p + 1]] ?? 'down' };
    if (type === 5) {
      const s = this.decodeSessionStarted(p);
      return { type: 'session-started', tsSec, ...s, vip: this.config.vips[s.vip]?.address ?? String(s.vip), backendId };
    }
    if (type === 6) {
      return { type: 'session-ended', tsSec, index: this.dv.getUint32(p + 8, true), reason: SESSION_END_REASONS[this.mem[p + 1]] ?? String(this.mem[p + 1]), backend, backendId };
    }
    const e = this.decodeFlowEvent(p);
    const name = type === 1 ? 'flow-created' : type === 2 ? 'flow-closed' : 'flow-resteered';
    const { type: _t, ...rest } = e;
    return { ...rest, type: name, reasonName: type === 2 ? CLOSE_REASONS[e.reason] ?? String(e.reason) : '', backendId, oldBackend: this.dv.getUint16(p + 8, true) };
  }

  /** Drains the event ring and returns its records decoded, oldest first. */
  readEvents(): EngineEvent[] {
    const out: EngineEvent[] = [];
    this.drainEvents((p) => out.push(this.decodeEvent(p)));
    return out;
  }

  /** Per backend id: packets and bytes sent to it, flows created on it, its reply load, flows moved to it. */
  loads(): Record<string, ReturnType<Engine['backendStats']>> {
    const out: Record<string, ReturnType<Engine['backendStats']>> = {};
    for (const b of this.backends) out[b.id] = this.backendStats(b.index);
    return out;
  }

  /** The session table's records in use (active, closing, or ended but still named by a flow), by index. */
  snapshotSessions(): SessionRecord[] {
    const base = this.ex.session_table_ptr();
    const cap = this.ex.session_capacity();
    const { mem, dv } = this;
    const out: SessionRecord[] = [];
    for (let i = 0; i < cap; i++) {
      const p = base + i * 64;
      const state = mem[p + 11];
      if (dv.getUint32(p, true) === 0 || state === 0) continue;
      const backend = dv.getUint16(p + 8, true);
      const idLength = mem[p + 34];
      out.push({
        index: i,
        state: SESSION_STATES[state] ?? 'ended',
        vip: this.config.vips[mem[p + 10]]?.address ?? String(mem[p + 10]),
        backend,
        backendId: this.backends[backend]?.id ?? '',
        client: formatAddress(mem, p + 16),
        expiry: dv.getUint32(p + 4, true),
        timeout: dv.getUint16(p + 32, true),
        flows: dv.getUint32(p + 12, true),
        id: latin1(mem, p + 40, Math.min(idLength, 24)),
        idLength,
        closeReason: SESSION_END_REASONS[mem[p + 35]] ?? String(mem[p + 35]),
      });
    }
    return out;
  }
}
