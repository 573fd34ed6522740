// Live mode: the engine on TAP devices. One LiveBalancer owns the engine, the TAP devices (one per
// side, or one for one-armed DR), the neighbour caches (ARP/ND), health checks, metrics and the
// optional pcap mirror.
//
// The batch loop runs from libuv (uv_poll readable callbacks in native/tap.c): read up to
// batch_size() frames straight into the arena slots (the addon fills the descriptors, with the
// host clock as packet time), process(n) once, then per verdict: 1 -> the server-side TAP,
// 2 -> the client-side TAP, 3 -> the slow path here (ARP/ND, echo to owned addresses and VIPs),
// 0 with reason admission -> a TCP reset or ICMP port unreachable (H4's admission.ts). Frames
// towards backends longer than the server side's MTU get ICMP fragmentation needed / packet too
// big instead. Writes are one addon call per side per batch.
//
// Backends occupy stable global engine indices: each VIP reserves `live.backendSlack` spare slots
// at init (placeholders, down, weight 0), so a reload can add backends; removed ones become
// tombstones (down, weight 0). A backend is given to the engine as down until its MAC is known
// (static in the config, or resolved by ARP/ND), and thereafter in the state health and the
// configured state give (health.ts effectiveState).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4 } from 'node:net';
import { Engine, type SpliceExports } from '../engine.js';
import { addressBytes, type BackendConfig, type BackendState, type Config, type LiveInterface, BACKEND_STATES, ConfigError, isSpliceFamily } from '../ctl/config.js';
import { VERDICT, EVENT } from '../ctl/counters.js';
import { PcapWriter } from '../io/pcap-writer.js';
import { Tap } from './tap.js';
import { AddressSet } from './addresses.js';
import { ETH_IPV4, ETH_IPV6, macBytes, macString, parseEth, parseIp } from './frame.js';
import { Neighbours, type NeighbourEvent } from './neighbours.js';
import { buildTooBig } from './icmp.js';
import { RateLimiter, refuse } from './admission.js';
import { createLogger, type Logger } from './log.js';
import { L2Responder, buildAnnouncement } from './l2.js';
import { Histogram, RateMeter, parseMetricsConfig, type LiveSnapshot, type MetricsConfig } from './metrics.js';
import { ABI_VERSION } from '../wasm.js';
import { HandoffLinks, STATUS_NOT_SENT, handoffId, type HandoffAgent } from './handoff.js';
import { DEFAULT_AGENT_PORT } from '../handoff/protocol.js';
import {
  HealthChecker, parseHealthCheck, resolveCheckPort, effectiveState, DEFAULT_HEALTH_CHECK,
  type HealthCheckConfig, type HealthTarget, type HealthChange, type HealthState,
} from './health.js';

const DROP_ADMISSION = 9;
const VERSION = '0.1.0';
const SLOT_BYTES = 16384;
const SLOT_BYTES_OFFLOAD = 69632; // headroom + a 64 KiB TCP super-frame + Ethernet and VLAN headers

type Side = 'client' | 'server';

interface Iface {
  cfg: LiveInterface;
  tap: Tap;
  sides: Side[];
  owned: AddressSet; // answered for ARP/ND and echo on this interface
  neigh: Neighbours;
  l2: L2Responder;
  pcap: PcapWriter | null;
  rxFrames: number;
  txFrames: number;
  rxBytes: number;
  txBytes: number;
  txErrors: number;
  rxBatches: number;
}

export interface LiveBackend {
  id: string;
  vip: number;
  index: number; // global engine index (stable for the process's life)
  address: string;
  admin: BackendState;
  weight: number;
  staticMac: string | null;
  mac: string | null; // resolved or static
  health: HealthState;
  check: HealthCheckConfig | null;
  servicePort: number;
  removed: boolean;
  engineState: BackendState;
  maxSessions: number;
  /** The engine's stats of this index when the backend got it (a reused slot): subtracted in metrics. */
  base?: ReturnType<Engine['backendStats']>;
}

export interface LiveOptions {
  pcapDir?: string | null;
  logger?: Logger;
  /** Health-check options (tests). */
  healthRandom?: () => number;
}


function macParts(m: string): [number, number] {
  const b = m.split(':').map((x) => parseInt(x, 16));
  return [(b[0] << 8) | b[1], ((b[2] << 24) | (b[3] << 16) | (b[4] << 8) | b[5]) >>> 0];
}

/** The config the engine is built from: each VIP's backends plus `slack` placeholders. */
function paddedConfig(config: Config, slack: number): Config {
  return {
    ...config,
    vips: config.vips.map((v, i) => ({
      ...v,
      backends: [
        ...v.backends.map((b) => ({ ...b, state: 'down' as BackendState })),
        ...Array.from({ length: slack }, (_, k): BackendConfig => ({
          id: `~spare.${i}.${k}`, address: v.family === 4 ? '0.0.0.0' : '::', family: v.family, mac: '00:00:00:00:00:00',
          weight: 0, state: 'down', maxSessions: 0,
        })),
      ],
      ringSize: v.ringSize,
    })),
  };
}

function servicePort(v: Config['vips'][number], check: HealthCheckConfig | null, path: string): number {
  if (!check || check.type === 'none') return 0;
  return resolveCheckPort(check, { ports: v.ports, rtspPorts: v.rtspPorts }, path);
}

function healthOf(v: Config['vips'][number], b: BackendConfig, vi: number, bi: number): HealthCheckConfig | null {
  const vipCheck = v.healthCheck !== undefined ? parseHealthCheck(v.healthCheck, `vips[${vi}].healthCheck`) : null;
  if (b.healthCheck !== undefined) return parseHealthCheck(b.healthCheck, `vips[${vi}].backends[${bi}].healthCheck`, vipCheck ?? DEFAULT_HEALTH_CHECK);
  return vipCheck;
}

/** The metrics endpoint of a config (null = none); throws ConfigError. */
export function metricsConfig(config: Config): MetricsConfig | null {
  const raw = config.live?.metrics;
  return raw === undefined || raw === null ? null : parseMetricsConfig(raw, 'live.metrics');
}

/** Validates the live parts a run needs beyond parseConfig (health checks, metrics); throws ConfigError. */
export function checkLiveConfig(config: Config): void {
  if (!config.live) throw new ConfigError('live', 'is required for `sessionlb run` (interfaces, addresses, gateway)');
  metricsConfig(config);
  config.vips.forEach((v, vi) => v.backends.forEach((b, bi) => {
    const c = healthOf(v, b, vi, bi);
    servicePort(v, c, b.healthCheck !== undefined ? `vips[${vi}].backends[${bi}].healthCheck` : `vips[${vi}].healthCheck`);
  }));
}

export class LiveBalancer {
  config: Config;
  readonly engine: Engine;
  readonly log: Logger;
  readonly backends: LiveBackend[] = [];
  private readonly ifaces: Iface[] = [];
  private clientIf!: Iface;
  private serverIf!: Iface;
  private readonly memBuf: ArrayBuffer;
  private readonly mem: Uint8Array;
  private readonly slots: Uint32Array;
  private readonly cap: number;
  private readonly srvList: Uint32Array;
  /** Offload: the virtio_net_hdr of each slot's frame (GSO type and size travel to the write). */
  private readonly hdrs: Uint8Array | null;
  private readonly cliList: Uint32Array;
  private readonly lbMac: Uint8Array;
  private readonly vipSet = new AddressSet();
  private readonly onLink: boolean; // no gateway: replies go to the client's own MAC
  private gatewayMac: string | null = null;
  private readonly icmpLimiter: RateLimiter;
  private readonly rstLimiter: RateLimiter;
  private readonly echoLimiter: RateLimiter;
  private health: HealthChecker | null = null;
  /** TCP handoff: the connections to the backends' agents (docs/handoff.md); null without a handoff VIP. */
  private handoffs: HandoffLinks | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly started = Date.now();
  private lastExpire = Date.now();
  readonly hist = new Histogram();
  private readonly rates = new RateMeter(1000);
  private rateSnap = { rxPps: 0, txPps: 0, rxBps: 0, txBps: 0, intervalSeconds: 0 };
  reloads = 0;
  reloadFailures = 0;
  private expireBuckets: number;
  /** Per VIP: its first engine index and how many it has (backends at start + backendSlack). */
  private readonly vipSlots: [number, number][] = [];
  readonly slow: Record<string, number> = {
    'arp-replies': 0, 'nd-replies': 0, 'echo-replies': 0, 'too-big-sent': 0, 'too-big-dropped': 0,
    'admission-rst': 0, 'admission-icmp': 0, 'admission-silent': 0, 'admission-rate-limited': 0,
    'client-mac-unknown': 0, 'write-errors': 0,
  };
  private stopped = false;

  constructor(config: Config, opts: LiveOptions = {}) {
    checkLiveConfig(config);
    const live = config.live!;
    this.config = config;
    this.log = opts.logger ?? createLogger({ level: live.logLevel });
    const slack = live.backendSlack;
    const batch = 256;
    const slotBytes = live.offload ? SLOT_BYTES_OFFLOAD : SLOT_BYTES;
    this.engine = new Engine(paddedConfig(config, slack), {
      arenaBytes: Math.max(1 << 20, batch * slotBytes),
      ioBytes: 0,
      eventMask: (1 << EVENT.FLOW_RESTEERED) | (1 << EVENT.BACKEND_STATE),
    });
    const ex = this.engine.ex;
    ex.config_live(1);
    this.memBuf = ex.memory.buffer as ArrayBuffer;
    this.mem = this.engine.mem;
    const bs = this.engine.batchSize;
    this.slots = new Uint32Array(bs);
    for (let i = 0; i < bs; i++) this.slots[i] = this.engine.arenaPtr + i * slotBytes + this.engine.headroom;
    this.cap = slotBytes - this.engine.headroom;
    this.hdrs = live.offload ? new Uint8Array(bs * 10) : null;
    this.srvList = new Uint32Array(bs);
    this.cliList = new Uint32Array(bs);
    this.lbMac = macBytes(config.mac);
    this.onLink = !live.gateway.address && !live.gateway.mac;
    this.expireBuckets = Math.max(1, Math.ceil(ex.flow_table_entries() / 4 / 30));
    const now = () => performance.now();
    this.icmpLimiter = new RateLimiter(live.admission.icmpRate, Math.max(1, live.admission.icmpRate), now);
    this.rstLimiter = new RateLimiter(Math.max(1000, live.admission.icmpRate * 10), Math.max(1000, live.admission.icmpRate * 10), now);
    this.echoLimiter = new RateLimiter(1000, 1000, now);
    for (const v of config.vips) this.vipSet.add(v.address);
    // Backends: engine index = VIP's first + position; spares follow each VIP's backends.
    let first = 0;
    config.vips.forEach((v, vi) => {
      v.backends.forEach((b, bi) => {
        const check = healthOf(v, b, vi, bi);
        this.backends.push({
          id: b.id, vip: vi, index: first + bi, address: b.address, admin: b.state, weight: b.weight,
          staticMac: b.macGiven ? b.mac : null, mac: null, health: check ? check.initial : 'up', check,
          servicePort: servicePort(v, check, `vips[${vi}].healthCheck`), removed: false, engineState: 'down', maxSessions: b.maxSessions,
        });
      });
      this.vipSlots.push([first, v.backends.length + slack]);
      first += v.backends.length + slack;
    });
    // Health check and ARP traffic from the kernel may use the pcap mirror directory too.
    if (opts.pcapDir) mkdirSync(opts.pcapDir, { recursive: true });
    // Interfaces.
    live.interfaces.forEach((ic, k) => {
      const sides: Side[] = ic.role === 'both' ? ['client', 'server'] : [ic.role];
      const tap = Tap.open(ic.name, { persist: ic.persist, mtu: ic.mtu, port: k, offload: live.offload });
      const owned = new AddressSet(ic.addresses);
      if (sides.includes('client')) for (const v of config.vips) owned.add(v.address);
      const src4 = ic.addresses.find((a) => isIPv4(a));
      const src6 = ic.addresses.find((a) => !isIPv4(a));
      const iface: Iface = {
        cfg: ic, tap, sides, owned, pcap: opts.pcapDir ? new PcapWriter(join(opts.pcapDir, `${tap.name}.pcap`), { bufferBytes: 1 << 16 }) : null,
        rxFrames: 0, txFrames: 0, rxBytes: 0, txBytes: 0, txErrors: 0, rxBatches: 0,
        neigh: null as unknown as Neighbours,
        l2: null as unknown as L2Responder,
      };
      iface.neigh = new Neighbours({
        mac: this.lbMac, now, send: (f) => this.sendFrame(iface, f), source4: src4, source6: src6, owned,
        retries: live.neighbor.retries, retryIntervalMs: live.neighbor.retryMs, reachableMs: live.neighbor.refreshS * 1000,
        onEvent: (e) => this.onNeighbour(iface, e),
      });
      iface.l2 = new L2Responder({ mac: this.lbMac, owned, neighbours: iface.neigh, echoLimiter: this.echoLimiter });
      this.ifaces.push(iface);
      if (sides.includes('client')) this.clientIf = iface;
      if (sides.includes('server')) this.serverIf = iface;
    });
  }

  private sendFrame(iface: Iface, f: Uint8Array): void {
    if (iface.pcap) this.mirror(iface, f, 0, f.length);
    if (!iface.tap.writeFrame(f)) {
      this.slow['write-errors']++;
      iface.txErrors++;
    } else {
      iface.txFrames++;
      iface.txBytes += f.length;
    }
  }

  private mirror(iface: Iface, buf: Uint8Array, off: number, len: number): void {
    const t = Date.now();
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    iface.pcap!.writeRecord(b, off, len, len, Math.floor(t / 1000), (t % 1000) * 1e6);
  }

  /** Starts reading, resolving, health checking and the housekeeping timer. */
  start(): void {
    const live = this.config.live!;
    // Static MACs and resolution of every backend and the gateway.
    for (const b of this.backends) this.want(b);
    if (live.gateway.mac) this.setGateway(live.gateway.mac);
    else if (live.gateway.address) this.clientIf.neigh.resolve(live.gateway.address);
    // Announce our addresses (gratuitous ARP / unsolicited NA), so switches and neighbours learn us.
    for (const iface of this.ifaces) {
      for (const a of iface.owned.list()) this.sendFrame(iface, buildAnnouncement(this.lbMac, a));
    }
    for (const iface of this.ifaces) iface.tap.onReadable(() => {
      try {
        this.onReadable(iface);
      } catch (e) {
        this.log.error('batch failed', { interface: iface.tap.name, error: e as Error });
      }
    });
    this.startHealth();
    this.timers.push(setInterval(() => {
      try {
        this.tick();
      } catch (e) {
        this.log.error('housekeeping failed', { error: e as Error });
      }
    }, 200));
    this.log.info('sessionlb running', {
      interfaces: this.ifaces.map((i) => ({ name: i.tap.name, role: i.cfg.role, addresses: i.cfg.addresses })),
      vips: this.config.vips.map((v) => `${v.address} (${v.method})`), backends: this.backends.length,
      gateway: live.gateway.address ?? live.gateway.mac ?? 'on-link clients',
    });
  }

  private want(b: LiveBackend): void {
    if (b.removed) return;
    const iface = this.serverIf;
    if (b.staticMac) iface.neigh.addStatic(b.address, b.staticMac);
    else iface.neigh.resolve(b.address);
    const m = iface.neigh.peek(b.address);
    if (m) this.setBackendMac(b, macString(m));
  }

  private setGateway(mac: string): void {
    if (this.gatewayMac === mac) return;
    this.gatewayMac = mac;
    this.engine.ex.config_global(...macParts(this.config.mac), ...macParts(mac));
    this.log.info('gateway resolved', { mac });
  }

  private onNeighbour(iface: Iface, e: NeighbourEvent): void {
    const live = this.config.live!;
    if (iface.sides.includes('client') && live.gateway.address && e.address === AddressSet.canonical(live.gateway.address)) {
      if (e.mac) this.setGateway(e.mac);
      else this.log.warn('gateway unreachable', { address: e.address, event: e.type });
    }
    if (iface.sides.includes('server')) {
      for (const b of this.backends) {
        if (b.removed || AddressSet.canonical(b.address) !== e.address) continue;
        if (e.mac) this.setBackendMac(b, e.mac);
        else if (e.type === 'failed') this.log.warn('backend MAC not resolved', { backend: b.id, address: b.address });
      }
    }
  }

  private setBackendMac(b: LiveBackend, mac: string): void {
    if (b.mac === mac) return;
    const first = b.mac === null;
    b.mac = mac;
    this.log.info(first ? 'backend MAC resolved' : 'backend MAC changed', { backend: b.id, address: b.address, mac });
    this.pushBackend(b);
  }

  /** The state the engine should have for b. */
  private desired(b: LiveBackend): BackendState {
    if (b.removed || !b.mac) return 'down';
    return effectiveState(b.admin, b.health, b.check ?? undefined);
  }

  /** Writes backend b's record (address, MAC, weight, state) into the engine, keeping its flows and stats. */
  private pushBackend(b: LiveBackend): void {
    const ex = this.engine.ex;
    const st = this.desired(b);
    const scratch = ex.scratch_ptr();
    this.mem.fill(0, scratch, scratch + 16);
    this.mem.set(addressBytes(b.address), scratch);
    const weight = b.removed ? 0 : b.weight;
    ex.config_backend(b.index, b.vip, weight, BACKEND_STATES.indexOf(st), ...macParts(b.mac ?? '00:00:00:00:00:00'));
    ex.config_backend_sessions(b.index, b.maxSessions);
    ex.config_commit(this.config.vips.length, this.engine.backends.length);
    const ref = this.engine.backends[b.index];
    // The ring names a backend by id; a tombstone gives its id up (it may come back elsewhere).
    ref.id = b.removed ? `~removed.${b.index}` : b.id;
    ref.address = b.address;
    ref.weight = weight;
    ref.state = st;
    const prev = b.engineState;
    b.engineState = st;
    this.engine.programRing(b.vip);
    ex.set_backend_state(b.index, BACKEND_STATES.indexOf(st), Math.floor(Date.now() / 1000));
    if (prev !== st) this.log.info('backend state', { backend: b.id, vip: this.config.vips[b.vip].address, from: prev, to: st, health: b.health, admin: b.admin, mac: b.mac });
  }

  private refreshState(b: LiveBackend): void {
    if (this.desired(b) !== b.engineState) this.pushBackend(b);
  }

  private healthTargets(): HealthTarget[] {
    return this.backends.filter((b) => !b.removed && b.check && b.check.type !== 'none')
      .map((b) => ({ id: b.id, address: b.address, port: b.servicePort, check: b.check! }));
  }

  private startHealth(): void {
    const targets = this.healthTargets();
    if (!targets.length) return;
    this.health = new HealthChecker(targets, { logger: this.log.child({ component: 'health' }) });
    this.health.on('change', (c: HealthChange) => {
      const b = this.backends.find((x) => x.id === c.id && !x.removed);
      if (!b) return;
      b.health = c.to;
      this.refreshState(b);
    });
    this.health.start();
  }

  private onReadable(iface: Iface): void {
    if (this.stopped) return;
    // A few batches per wake-up; the poll is level-triggered, so anything left wakes us again.
    for (let k = 0; k < 4; k++) if (this.batch(iface) < this.engine.batchSize) break;
  }

  /** One batch from `iface`: read, process, dispatch, write. Returns frames read. */
  private batch(iface: Iface): number {
    const e = this.engine;
    const mem = this.mem;
    const dp = e.descPtr;
    const hdrs = this.hdrs;
    const n = iface.tap.read(this.memBuf, dp, this.slots, this.cap, e.batchSize, this.lbMac, hdrs);
    if (n === 0) return 0;
    iface.rxFrames += n;
    iface.rxBatches++;
    this.hist.observe(n);
    const dv = e.dv;
    if (iface.pcap) for (let i = 0; i < n; i++) this.mirror(iface, mem, dv.getUint32(dp + 32 * i, true), dv.getUint32(dp + 32 * i + 4, true));
    e.process(n);
    const srv = this.serverIf, cli = this.clientIf;
    const srvMax = srv.cfg.mtu + 14;
    let ns = 0, nc = 0, rxBytes = 0;
    for (let i = 0; i < n; i++) {
      const d = dp + 32 * i;
      rxBytes += dv.getUint32(d + 8, true); // wirelen: the engine changes caplen when it rewrites
      const v = mem[d + 24];
      if (v === VERDICT.BACKEND) {
        if (dv.getUint32(d + 4, true) > srvMax) {
          // A GSO super-frame (offload) is cut into segments of gso_size by the kernel: it is too
          // big when its segments are.
          const gso = hdrs !== null && hdrs[10 * i + 1] !== 0 ? hdrs[10 * i + 4] | (hdrs[10 * i + 5] << 8) : 0;
          if (this.tooBig(iface, d, srv.cfg.mtu, gso)) continue;
        }
        this.srvList[ns++] = i;
      } else if (v === VERDICT.CLIENT) {
        if (this.onLink && !this.fixClientMac(d)) continue;
        this.cliList[nc++] = i;
      } else if (v === VERDICT.PASS) {
        this.slowPath(iface, d);
      } else if (mem[d + 25] === DROP_ADMISSION) {
        this.admission(iface, d);
      }
    }
    iface.rxBytes += rxBytes;
    if (ns) this.writeOut(srv, this.srvList, ns);
    if (nc) this.writeOut(cli, this.cliList, nc);
    if ((e.ex as unknown as SpliceExports).splice_out_count()) this.flushSplice();
    return n;
  }

  /** TCP splicing: frames the engine made on its own (backend SYNs, replayed requests, RSTs; docs/splice.md). */
  private flushSplice(): void {
    for (const o of this.engine.drainSplice()) {
      if (o.side === 'handoff') {
        this.sendHandoff(o.backendIndex, o.frame);
        continue;
      }
      if (o.side === 'client' && this.onLink) {
        // On-link clients: the destination MAC from the neighbour cache, as for verdict-client frames.
        const f = o.frame;
        const m = f.length >= 34 ? this.clientIf.neigh.lookup(`${f[30]}.${f[31]}.${f[32]}.${f[33]}`) : undefined;
        if (!m) {
          this.slow['client-mac-unknown']++;
          continue;
        }
        f.set(m, 0);
      }
      this.sendFrame(o.side === 'backend' ? this.serverIf : this.clientIf, o.frame);
    }
  }

  /** A HANDOFF message for backend `index`'s agent; its DONE goes back to the engine (splice_handoff_done). */
  private sendHandoff(index: number, msg: Uint8Array): void {
    const agent = this.agentOf(index);
    const sx = this.engine.ex as unknown as SpliceExports;
    if (!this.handoffs) {
      const first = this.config.vips.find((v) => v.method === 'handoff');
      this.handoffs = new HandoffLinks({
        log: this.log,
        connectTimeoutMs: first?.handoff?.connectTimeoutMs ?? 1000,
        onDone: (id, status) => {
          if (this.stopped) return;
          sx.splice_handoff_done(id, status, Date.now() >>> 0);
          if (sx.splice_out_count()) this.flushSplice();
        },
      });
    }
    if (!agent) {
      sx.splice_handoff_done(handoffId(msg), STATUS_NOT_SENT, Date.now() >>> 0);
      return;
    }
    this.handoffs.send(agent, msg);
  }

  /** Backend `index`'s handoff agent: its config's `agent`, else its address and the VIP's agent port. */
  private agentOf(index: number): HandoffAgent | null {
    const b = this.backends.find((x) => x.index === index && !x.removed);
    if (!b) return null;
    const v = this.config.vips[b.vip];
    const bc = v?.backends.find((x) => x.id === b.id);
    if (!v || !bc) return null;
    return { key: b.id, address: bc.agent?.address ?? bc.address, port: bc.agent?.port ?? v.handoff?.agentPort ?? DEFAULT_AGENT_PORT };
  }

  private writeOut(iface: Iface, list: Uint32Array, n: number): void {
    const dp = this.engine.descPtr;
    const dv = this.engine.dv;
    let bytes = 0;
    for (let k = 0; k < n; k++) bytes += dv.getUint32(dp + 32 * list[k] + 4, true);
    if (iface.pcap) for (let k = 0; k < n; k++) this.mirror(iface, this.mem, dv.getUint32(dp + 32 * list[k], true), dv.getUint32(dp + 32 * list[k] + 4, true));
    const w = iface.tap.writeDescs(this.memBuf, dp, list, n, this.hdrs);
    iface.txFrames += w;
    iface.txBytes += w === n ? bytes : Math.round((bytes * w) / n);
    if (w < n) {
      this.slow['write-errors'] += n - w;
      iface.txErrors += n - w;
    }
  }

  /** The frame of descriptor d as a view (slow path only). */
  private frameAt(d: number): Uint8Array {
    const dv = this.engine.dv;
    const p = dv.getUint32(d, true);
    return this.mem.subarray(p, p + dv.getUint32(d + 4, true));
  }

  /** On-link clients: destination MAC = the client's (from the neighbour cache). */
  private fixClientMac(d: number): boolean {
    const f = this.frameAt(d);
    const eth = parseEth(f);
    if (!eth) return false;
    let addr: string;
    if (eth.ethertype === ETH_IPV4 && f.length >= eth.l3 + 20) addr = `${f[eth.l3 + 16]}.${f[eth.l3 + 17]}.${f[eth.l3 + 18]}.${f[eth.l3 + 19]}`;
    else if (eth.ethertype === ETH_IPV6 && f.length >= eth.l3 + 40) {
      const ip = parseIp(f, eth.l3, eth.ethertype);
      if (!ip) return false;
      addr = AddressSet.canonical(Array.from({ length: 8 }, (_, k) => ((f[ip.dstOff + 2 * k] << 8) | f[ip.dstOff + 2 * k + 1]).toString(16)).join(':'));
    } else return false;
    const m = this.clientIf.neigh.lookup(addr);
    if (!m) {
      this.slow['client-mac-unknown']++;
      return false;
    }
    f.set(m, 0);
    return true;
  }

  private tooBig(iface: Iface, d: number, mtu: number, gsoSize = 0): boolean {
    const f0 = this.frameAt(d);
    const eth = parseEth(f0);
    if (!eth) return false;
    if (gsoSize) {
      const ip0 = parseIp(f0, eth.l3, eth.ethertype);
      if (!ip0 || ip0.l4 + 13 > f0.length) return false;
      if (ip0.l4 - eth.l3 + (f0[ip0.l4 + 12] >> 4) * 4 + gsoSize <= mtu) return false;
    } else if (f0.length - eth.l3 <= mtu) return false; // VLAN tags do not count against the MTU
    // The engine already rewrote the frame for its backend; the error must quote what the client
    // sent (its socket is found by the quoted addresses): a copy with the VIP as destination again.
    const f = f0.slice();
    const ip = parseIp(f, eth.l3, eth.ethertype);
    if (!ip) return false;
    const ref = this.engine.backends[this.engine.dv.getUint16(d + 26, true)];
    const vip = ref ? this.config.vips[ref.vip] : undefined;
    if (vip && vip.family === ip.version) {
      if (ip.version === 4) {
        const a = addressBytes(vip.address);
        f.set(a.subarray(12, 16), ip.dstOff);
        f[ip.l3 + 10] = 0;
        f[ip.l3 + 11] = 0;
        let sum = 0;
        const hl = (f[ip.l3] & 15) * 4;
        for (let k = 0; k < hl; k += 2) sum += (f[ip.l3 + k] << 8) | f[ip.l3 + k + 1];
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
        const c = ~sum & 0xffff;
        f[ip.l3 + 10] = c >> 8;
        f[ip.l3 + 11] = c & 0xff;
      } else f.set(addressBytes(vip.address), ip.dstOff);
    }
    // The reply goes back to the sender: the gateway, or an on-link client (its source MAC was
    // overwritten by the engine, so it comes from the neighbour cache).
    let dst: Uint8Array | undefined;
    if (iface.sides.includes('client')) {
      if (this.gatewayMac) dst = macBytes(this.gatewayMac);
      else {
        const src = ip.version === 4 ? `${f[ip.srcOff]}.${f[ip.srcOff + 1]}.${f[ip.srcOff + 2]}.${f[ip.srcOff + 3]}`
          : Array.from({ length: 8 }, (_, k) => ((f[ip.srcOff + 2 * k] << 8) | f[ip.srcOff + 2 * k + 1]).toString(16)).join(':');
        dst = iface.neigh.lookup(src);
      }
    }
    const from = iface.cfg.addresses.find((a) => isIPv4(a) === (ip.version === 4)) ?? vip?.address ?? '0.0.0.0';
    const reply = dst && this.icmpLimiter.allow() ? buildTooBig(f, eth, ip, mtu, from, this.lbMac) : null;
    if (reply && dst) {
      reply.set(dst, 0);
      this.sendFrame(iface, reply);
      this.slow['too-big-sent']++;
    } else this.slow['too-big-dropped']++;
    return true;
  }

  private admission(iface: Iface, d: number): void {
    const f = this.frameAt(d);
    const r = refuse(f, {
      mac: this.lbMac, tcp: this.config.live!.admission.tcp === 'drop' ? 'drop' : 'reset',
      icmpLimiter: this.icmpLimiter, rstLimiter: this.rstLimiter,
    });
    if (r.kind === 'tcp-reset') this.slow['admission-rst']++;
    else if (r.kind === 'icmp-port-unreachable') this.slow['admission-icmp']++;
    else if (r.kind === 'rate-limited') this.slow['admission-rate-limited']++;
    else this.slow['admission-silent']++;
    if (r.frame) this.sendFrame(iface, r.frame);
  }

  /** Passed frames: ARP, NS/NA and echo for owned addresses (H4's L2Responder). */
  private slowPath(iface: Iface, d: number): void {
    const r = iface.l2.handle(this.frameAt(d));
    if (r.reply) this.sendFrame(iface, r.reply);
  }

  /** Housekeeping every 200 ms: flow expiry, neighbours, events, pps. */
  private tick(): void {
    const now = Date.now();
    const ex = this.engine.ex;
    if (now - this.lastExpire >= 1000) {
      this.lastExpire = now;
      // Each second sweeps 1/30 of the table.
      ex.expire(Math.floor(now / 1000), this.expireBuckets);
    }
    // Splice timers (retransmissions, give-ups, closed connections) on the host clock in ms.
    const sx = ex as unknown as SpliceExports;
    sx.splice_tick(now >>> 0);
    if (sx.splice_out_count()) this.flushSplice();
    let rxP = 0, txP = 0, rxB = 0, txB = 0;
    for (const i of this.ifaces) {
      rxP += i.rxFrames; txP += i.txFrames; rxB += i.rxBytes; txB += i.txBytes;
    }
    this.rateSnap = this.rates.update(now, { rxPackets: rxP, txPackets: txP, rxBytes: rxB, txBytes: txB });
    for (const i of this.ifaces) i.neigh.tick();
    // Keep wanted backends fresh (and re-resolve failed ones).
    for (const b of this.backends) if (!b.removed && !b.staticMac) {
      const m = this.serverIf.neigh.lookup(b.address);
      if (m) this.setBackendMac(b, macString(m));
    }
    this.engine.drainEvents((p) => {
      const t = this.mem[p];
      if (t === EVENT.FLOW_RESTEERED) {
        const ev = this.engine.decodeFlowEvent(p);
        this.log.debug('flow re-steered', { client: `${ev.clientIp}:${ev.clientPort}`, vip: `${ev.vip}:${ev.vipPort}`, to: this.engine.backends[ev.backend]?.id });
      }
    });
    for (const i of this.ifaces) i.pcap?.flush();
  }

  /** Applies a new config without dropping flows; throws ConfigError for changes needing a restart. */
  reload(next: Config): { added: string[]; removed: string[]; changed: string[] } {
    checkLiveConfig(next);
    const cur = this.config;
    const vipKey = (v: Config['vips'][number]) => JSON.stringify({ ...v, backends: undefined, healthCheck: undefined });
    if (JSON.stringify(next.live) !== JSON.stringify(cur.live)) throw new ConfigError('live', 'changed: the live section (interfaces, addresses, gateway, ...) needs a restart');
    const top = (c: Config) => JSON.stringify({ ...c, vips: undefined, live: undefined });
    if (top(next) !== top(cur)) throw new ConfigError('', 'global settings (mac, flowCapacity, hashKey, timeouts, maxSessions) changed: needs a restart');
    if (next.vips.length !== cur.vips.length) throw new ConfigError('vips', 'VIPs added or removed: needs a restart');
    next.vips.forEach((v, i) => {
      if (vipKey(v) !== vipKey(cur.vips[i])) throw new ConfigError(`vips[${i}]`, 'VIP settings other than backends and healthCheck changed: needs a restart');
    });
    const slack = cur.live!.backendSlack;
    // Plan first (so a rejected reload changes nothing), then apply.
    const plan: { vi: number; adds: { b: BackendConfig; bi: number }[]; keep: Map<string, { b: BackendConfig; bi: number }> }[] = [];
    next.vips.forEach((v, vi) => {
      const keep = new Map<string, { b: BackendConfig; bi: number }>();
      const adds: { b: BackendConfig; bi: number }[] = [];
      v.backends.forEach((b, bi) => {
        const old = this.backends.find((x) => x.vip === vi && x.id === b.id && !x.removed);
        if (old && old.address === b.address) keep.set(b.id, { b, bi });
        else adds.push({ b, bi });
      });
      const free = this.freeSlots(vi).length;
      if (adds.length > free) throw new ConfigError(`vips[${vi}].backends`, `${adds.length} new backends but only ${free} free slots (live.backendSlack ${slack} per VIP; a removed backend's slot is free again once its flows and sessions are gone): needs a restart`);
      plan.push({ vi, adds, keep });
    });
    const out = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
    for (const { vi, adds, keep } of plan) {
      const v = next.vips[vi];
      const free = this.freeSlots(vi);
      for (const b of this.backends.filter((x) => x.vip === vi && !x.removed)) {
        const k = keep.get(b.id);
        if (!k) {
          b.removed = true;
          this.serverIf.neigh.unwant(b.address);
          this.pushBackend(b);
          out.removed.push(b.id);
          continue;
        }
        const check = healthOf(v, k.b, vi, k.bi);
        const changed = b.weight !== k.b.weight || b.admin !== k.b.state || b.maxSessions !== k.b.maxSessions ||
          (k.b.macGiven ? k.b.mac : null) !== b.staticMac || JSON.stringify(check) !== JSON.stringify(b.check);
        if (!changed) continue;
        b.weight = k.b.weight;
        b.admin = k.b.state;
        b.maxSessions = k.b.maxSessions;
        b.check = check;
        b.servicePort = servicePort(v, check, `vips[${vi}].healthCheck`);
        if ((k.b.macGiven ? k.b.mac : null) !== b.staticMac) {
          b.staticMac = k.b.macGiven ? k.b.mac : null;
          if (b.staticMac) b.mac = null;
          this.want(b);
        }
        this.pushBackend(b);
        out.changed.push(b.id);
      }
      adds.forEach(({ b, bi }, k) => {
        const index = free[k];
        // A reused tombstone's record goes; the engine's stats of the slot become the new
        // backend's baseline, so its counters start at zero.
        const old = this.backends.findIndex((x) => x.index === index);
        if (old >= 0) this.backends.splice(old, 1);
        const base = old >= 0 ? this.engine.backendStats(index) : undefined;
        const check = healthOf(v, b, vi, bi);
        const lb: LiveBackend = {
          id: b.id, vip: vi, index, address: b.address, admin: b.state, weight: b.weight,
          staticMac: b.macGiven ? b.mac : null, mac: null, health: check ? check.initial : 'up', check,
          servicePort: servicePort(v, check, `vips[${vi}].healthCheck`), removed: false, engineState: 'down', maxSessions: b.maxSessions, base,
        };
        // The spare's placeholder id becomes the backend's (its ring name).
        this.engine.backends[lb.index].id = lb.id;
        this.backends.push(lb);
        this.pushBackend(lb);
        this.want(lb);
        out.added.push(b.id);
      });
    }
    this.config = next;
    this.reloads++;
    if (this.health) this.health.update(this.healthTargets());
    else this.startHealth();
    if (this.health) for (const b of this.backends) {
      const s = this.health.state(b.id);
      if (s && !b.removed && s !== b.health) {
        b.health = s;
        this.refreshState(b);
      }
    }
    this.log.info('config reloaded', out);
    return out;
  }

  /**
   * Engine indices VIP vi can give a new backend: spares never used, then tombstones (removed
   * backends) with no live flow and no session left (a flow still pointing at a slot must not
   * silently move to another server).
   */
  private freeSlots(vi: number): number[] {
    const [first, cap] = this.vipSlots[vi];
    const byIndex = new Map(this.backends.map((b) => [b.index, b]));
    const spare: number[] = [];
    const tomb: number[] = [];
    for (let j = first; j < first + cap; j++) {
      const b = byIndex.get(j);
      if (!b) spare.push(j);
      else if (b.removed && this.backendRecord(j, 32) === 0 && this.backendRecord(j, 40) === 0) tomb.push(j);
    }
    return [...spare, ...tomb];
  }

  /** What host/live/metrics.ts renders. */
  snapshot(): LiveSnapshot {
    const e = this.engine;
    const ex = e.ex;
    const hs = new Map((this.health?.status() ?? []).map((x) => [x.id, x]));
    return {
      build: { version: VERSION, abi: ABI_VERSION },
      uptimeSeconds: (Date.now() - this.started) / 1000,
      configReloads: this.reloads,
      configReloadFailures: this.reloadFailures,
      backends: this.backends.filter((b) => !b.removed).map((b) => {
        const s = e.backendStats(b.index);
        if (b.base) for (const k of Object.keys(s) as (keyof typeof s)[]) s[k] -= b.base[k];
        const h = hs.get(b.id);
        return {
          id: b.id, vip: this.config.vips[b.vip].address, health: h ? b.health : null, state: b.engineState, weight: b.weight,
          packets: s.packets, bytes: s.bytes, flows: s.flows, replyPackets: s.replyPackets, replyBytes: s.replyBytes,
          resteeredIn: s.resteeredIn, sessions: this.backendRecord(b.index, 40), activeFlows: this.backendRecord(b.index, 32),
          healthChecks: h?.checks, healthLatencyMs: h?.lastLatencyMs ?? null,
        };
      }),
      drops: e.drops(),
      passes: e.passes(),
      counters: e.counters(),
      flowTable: { entries: ex.flow_count(), capacity: ex.flow_table_entries() },
      sessions: { active: ex.session_count(), capacity: this.config.maxSessions },
      batchSizes: this.hist.snapshot(),
      rates: this.rateSnap,
      interfaces: this.ifaces.map((i) => ({
        name: i.tap.name, role: i.cfg.role, rxPackets: i.rxFrames, rxBytes: i.rxBytes, rxErrors: 0,
        txPackets: i.txFrames, txBytes: i.txBytes, txErrors: i.txErrors,
      })),
      ...(this.config.vips.some((v) => isSpliceFamily(v.method)) ? { splice: this.spliceStats() } : {}),
    };
  }

  /** The final counters printed at exit: the metrics snapshot plus the slow path's counts and MACs. */
  finalReport(): Record<string, unknown> {
    const s = this.snapshot();
    return {
      ...s,
      backends: s.backends.map((b, k) => ({ ...b, address: this.backends.filter((x) => !x.removed)[k].address, mac: this.backends.filter((x) => !x.removed)[k].mac })),
      slowPath: this.slowCounts(),
      ...(this.handoffs ? { handoff: { ...this.handoffs.counts, inFlight: this.handoffs.inFlight } } : {}),
    };
  }

  /** TCP splicing's statistics (docs/abi.md "TCP splicing") and open connections. */
  spliceStats(): Record<string, number> {
    const sx = this.engine.ex as unknown as SpliceExports;
    const names = ['cookies-sent', 'cookies-valid', 'cookies-invalid', 'backend-syns', 'spliced', 'replay-segments', 'retransmits', 'give-ups',
      'closed', 'table-full', 'out-queue-full', 'bytes-buffered', 'request-too-big', 'rule-matched', 'session-matched', 'translated',
      ...(this.config.vips.some((v) => v.method === 'handoff')
        ? ['handoffs', 'handoffs-done', 'handoffs-failed', 'handoff-timeouts', 'handoff-held', 'handed-forwarded', 'handoff-stray', 'handoff-abandoned'] : [])];
    const p = sx.splice_stats_ptr();
    const out: Record<string, number> = { connections: sx.splice_count(), capacity: sx.splice_capacity() };
    names.forEach((n, i) => (out[n] = Number(this.engine.dv.getBigUint64(p + 8 * i, true))));
    return out;
  }

  /** The slow path's counts: ours plus each interface's L2Responder. */
  slowCounts(): Record<string, number> {
    const out = { ...this.slow };
    for (const i of this.ifaces) {
      out['arp-replies'] += i.l2.counts.arpReplies;
      out['nd-replies'] += i.l2.counts.naReplies;
      out['echo-replies'] += i.l2.counts.echoReplies;
      out['echo-limited'] = (out['echo-limited'] ?? 0) + i.l2.counts.echoLimited;
      out['neighbour-probes'] = (out['neighbour-probes'] ?? 0) + i.neigh.probesSent;
    }
    return out;
  }

  /** u32 at offset `off` of backend j's engine record (docs/abi.md: 32 live flows, 40 sessions). */
  private backendRecord(j: number, off: number): number {
    return this.engine.dv.getUint32(this.engine.ex.backend_table_ptr() + j * 64 + off, true);
  }

  /** Stops everything: timers, polls, health checks, TAP devices; flushes pcaps. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.health?.stop();
    this.handoffs?.close();
    for (const i of this.ifaces) {
      i.tap.close();
      i.pcap?.close();
    }
  }

  interfaceNames(): string[] {
    return this.ifaces.map((i) => i.tap.name);
  }
}
