// The gateway's content-based choice, the same order a splicing balancer follows once it has the
// first request: (1) an RTSP request carrying the Session id of a live session -> that session's
// backend (if it can still take traffic: active or draining); (2) the first URL prefix rule that
// matches (VIP, port, Host, path) -> the rule's backends; (3) otherwise every backend of the VIP.
// Within (2) and (3) the VIP's scheduler picks among the active backends.
//
// Schedulers: maglev (Maglev ring over the active backends, key = client address and port; the
// "client" policy keys on the address only), sh (Maglev on the client address), rr, wrr (smooth
// weighted round robin), lc (fewest open connections), wlc (connections / weight), p2c (two
// random candidates, the one with fewer connections).
//
// Sessions (RTSP) are tracked as the engine's session table does: created by a 2xx reply to SETUP
// carrying a Session header (on the backend that sent it), refreshed by every message that names
// them, removed by a 2xx reply to TEARDOWN. A session is kept while a connection that named it is
// open, and for its timeout (the Session header's timeout parameter, default 60 s) after the last.
import { buildRing, nameHash } from '../ctl/maglev.js';
import type { BackendConfig, BackendState, VipConfig } from '../ctl/config.js';
import type { HealthCheckConfig, HealthState } from '../live/health.js';
import { effectiveState } from '../live/health.js';
import type { GatewayRule } from './config.js';

export interface BackendRt {
  id: string;
  vip: string;
  address: string;
  weight: number;
  admin: BackendState;
  health: HealthState | null; // null = not checked
  check: HealthCheckConfig | null;
  conns: number; // open proxied connections
  total: number; // connections opened to it
  connectFailures: number;
  bytesToBackend: number;
  bytesToClient: number;
  sessions: number;
  maxSessions: number; // 0 = no limit
}

export function stateOf(b: BackendRt): BackendState {
  return effectiveState(b.admin, b.health ?? 'up', b.check ?? undefined);
}

export class Pool {
  private ring: Int32Array | null = null;
  private ringKey = '';
  private rr = 0;
  private cw: number[];

  constructor(readonly backends: BackendRt[], readonly scheduler: VipConfig['scheduler'], readonly policy: VipConfig['policy'], readonly ringSize: number, private readonly random: () => number = Math.random) {
    this.cw = backends.map(() => 0);
  }

  /** A backend for a new connection from client (address, port), skipping `exclude`; null if none is active. */
  pick(clientAddr: string, clientPort: number, exclude: ReadonlySet<BackendRt> = new Set()): BackendRt | null {
    const ok = (b: BackendRt) => stateOf(b) === 'active' && b.weight > 0 && !exclude.has(b);
    const live = this.backends.filter(ok);
    if (live.length === 0) return null;
    switch (this.scheduler) {
      case 'maglev':
      case 'sh': {
        const key = this.scheduler === 'sh' || this.policy === 'client' ? clientAddr : `${clientAddr}|${clientPort}`;
        const members = this.backends.map((b) => ({ name: b.id, weight: ok(b) ? b.weight : 0 }));
        const rk = members.map((m) => `${m.name}:${m.weight}`).join(',');
        if (rk !== this.ringKey || !this.ring) {
          this.ring = buildRing(members, this.ringSize);
          this.ringKey = rk;
        }
        const i = this.ring[nameHash(key, 0x47575931) % this.ring.length];
        return i >= 0 ? this.backends[i] : live[0];
      }
      case 'rr': {
        for (let k = 0; k < this.backends.length; k++) {
          const b = this.backends[(this.rr + k) % this.backends.length];
          if (ok(b)) {
            this.rr = (this.backends.indexOf(b) + 1) % this.backends.length;
            return b;
          }
        }
        return null;
      }
      case 'wrr': {
        // nginx's smooth weighted round robin.
        let best = -1, total = 0;
        this.backends.forEach((b, i) => {
          if (!ok(b)) return;
          this.cw[i] += b.weight;
          total += b.weight;
          if (best < 0 || this.cw[i] > this.cw[best]) best = i;
        });
        this.cw[best] -= total;
        return this.backends[best];
      }
      case 'lc':
      case 'wlc': {
        let best: BackendRt | null = null;
        const cost = (b: BackendRt) => (this.scheduler === 'lc' ? b.conns : (b.conns + 1) / b.weight);
        // Start the scan at the round-robin position so ties rotate.
        for (let k = 0; k < live.length; k++) {
          const b = live[(this.rr + k) % live.length];
          if (!best || cost(b) < cost(best)) best = b;
        }
        this.rr = (this.rr + 1) % Math.max(1, live.length);
        return best;
      }
      case 'p2c': {
        const a = live[Math.floor(this.random() * live.length)];
        const b = live[Math.floor(this.random() * live.length)];
        return a.conns / a.weight <= b.conns / b.weight ? a : b;
      }
    }
  }
}

interface Session {
  id: string;
  backend: BackendRt;
  timeoutMs: number;
  refs: number; // open connections that named it
  lastSeen: number;
}

/** RTSP sessions of one VIP. */
export class SessionTable {
  private map = new Map<string, Session>();

  get size(): number {
    return this.map.size;
  }

  lookup(id: string, now: number): BackendRt | null {
    const s = this.map.get(id);
    if (!s) return null;
    if (s.refs === 0 && now - s.lastSeen > s.timeoutMs) {
      this.remove(id);
      return null;
    }
    return s.backend;
  }

  /** A SETUP reply created (or repeated) the session on `backend`. Returns true when new. */
  add(id: string, backend: BackendRt, timeoutS: number | null, now: number): boolean {
    const old = this.map.get(id);
    if (old && old.backend === backend) {
      old.lastSeen = now;
      if (timeoutS !== null) old.timeoutMs = timeoutS * 1000;
      return false;
    }
    if (old) this.remove(id);
    this.map.set(id, { id, backend, timeoutMs: (timeoutS ?? 60) * 1000, refs: 0, lastSeen: now });
    backend.sessions++;
    return true;
  }

  touch(id: string, now: number): void {
    const s = this.map.get(id);
    if (s) s.lastSeen = now;
  }

  ref(id: string, delta: 1 | -1, now: number): void {
    const s = this.map.get(id);
    if (!s) return;
    s.refs = Math.max(0, s.refs + delta);
    s.lastSeen = now;
  }

  /** Forgets every session on a backend (removed by a reload); returns how many. */
  dropBackend(b: BackendRt): number {
    let n = 0;
    for (const s of [...this.map.values()]) if (s.backend === b && this.remove(s.id)) n++;
    return n;
  }

  remove(id: string): boolean {
    const s = this.map.get(id);
    if (!s) return false;
    this.map.delete(id);
    s.backend.sessions--;
    return true;
  }

  /** Drops sessions with no open connection whose timeout has passed; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const s of [...this.map.values()]) {
      if (s.refs === 0 && now - s.lastSeen > s.timeoutMs) {
        this.remove(s.id);
        n++;
      }
    }
    return n;
  }
}

export interface VipRt {
  cfg: VipConfig;
  backends: BackendRt[];
  pool: Pool;
  rules: { rule: GatewayRule; pool: Pool }[];
  sessions: SessionTable;
  /** New-session SETUPs forwarded and not answered yet (they count against the limits). */
  pendingSetups: number;
}

/** A VIP's runtime. `reuse` gives the backend object of the same id from before a reload: it keeps
 * its counters, open connections and health, and takes the new address, weight, state and check. */
export function makeVip(cfg: VipConfig, rules: GatewayRule[], checkOf: (b: BackendConfig) => HealthCheckConfig | null, reuse?: (id: string) => BackendRt | undefined): VipRt {
  const backends: BackendRt[] = cfg.backends.map((b) => {
    const check = checkOf(b);
    const old = reuse?.(b.id);
    if (old) {
      const checked = !!check && check.type !== 'none';
      Object.assign(old, {
        vip: cfg.address, address: b.address, weight: b.weight, admin: b.state, check, maxSessions: b.maxSessions,
        health: checked ? (old.health ?? check!.initial) : null,
      });
      return old;
    }
    return {
      id: b.id, vip: cfg.address, address: b.address, weight: b.weight, admin: b.state,
      health: check && check.type !== 'none' ? check.initial : null, check,
      conns: 0, total: 0, connectFailures: 0, bytesToBackend: 0, bytesToClient: 0, sessions: 0, maxSessions: b.maxSessions,
    };
  });
  const pool = new Pool(backends, cfg.scheduler, cfg.policy, cfg.ringSize);
  const mine = rules.filter((r) => r.vip === null || r.vip === cfg.address);
  return {
    cfg, backends, pool,
    rules: mine.map((rule) => ({ rule, pool: new Pool(rule.backends.map((id) => backends.find((b) => b.id === id)!), cfg.scheduler, cfg.policy, cfg.ringSize) })),
    sessions: new SessionTable(),
    pendingSetups: 0,
  };
}

export interface Choice {
  backend: BackendRt | null;
  reason: 'session' | 'rule' | 'scheduler';
  rule: number; // index into the VIP's rules, -1 if none
  pool: Pool;
}

/** What the first request (null when there is none to inspect) chooses; see the header. */
export function choose(
  vip: VipRt, port: number, req: { path: string; uri?: string; host: string | null; session: string | null } | null,
  client: { address: string; port: number }, now: number, exclude: ReadonlySet<BackendRt> = new Set(),
): Choice {
  if (req?.session) {
    const b = vip.sessions.lookup(req.session, now);
    if (b && !exclude.has(b) && stateOf(b) !== 'down') return { backend: b, reason: 'session', rule: -1, pool: vip.pool };
  }
  if (req) {
    const host = req.host ? req.host.toLowerCase().replace(/:\d+$/, '') : null;
    for (let i = 0; i < vip.rules.length; i++) {
      const { rule, pool } = vip.rules[i];
      if (rule.port !== null && rule.port !== port) continue;
      if (rule.host !== null && rule.host !== host) continue;
      if (!(rule.match === 'uri' ? (req.uri ?? req.path) : req.path).startsWith(rule.prefix)) continue;
      return { backend: pool.pick(client.address, client.port, exclude), reason: 'rule', rule: i, pool };
    }
  }
  return { backend: vip.pool.pick(client.address, client.port, exclude), reason: 'scheduler', rule: -1, pool: vip.pool };
}
