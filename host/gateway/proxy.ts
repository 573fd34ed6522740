// The TCP gateway: a full proxy over Node sockets, the baseline the splicing data plane is compared
// with (docs/gateway.md). Two connections per client connection, bytes copied through user space.
//
// Per client connection:
//   1. accept on a VIP address and port (a kernel address of this host or namespace);
//   2. read and hold the first request head (HTTP/1.x or RTSP/1.0, at most maxHead bytes, within
//      headTimeout): a bad head gets 400, a long one 431 (HTTP) / 400 (RTSP), a slow one 408;
//   3. choose the backend by content (choose.ts: RTSP session, URL prefix rules, scheduler);
//   4. connect to it (from gateway.source/source6 when set) within connectTimeout; a refused or
//      timed-out connect counts against the backend and the next choice is tried (up to `retries`
//      others: HAProxy's redispatch); no backend at all -> 503;
//   5. replay the held bytes, then copy both ways with backpressure (a side whose peer's buffer
//      is full is paused until 'drain') and half-close propagation (FIN one way keeps the other
//      way open); idleTimeout without a byte either way closes both.
// HTTP keep-alive: the connection stays pinned to the first request's backend (tunnel mode, like
// KTCPVS or HAProxy `http-reuse never` with `option http-tunnel`): later requests on it are not
// re-parsed. RTSP connections are followed message by message in both directions (head.ts
// RtspScanner, bytes still forwarded unchanged) so SETUP replies and TEARDOWN keep the session
// table current for later connections.
// Admission: over maxConnections open client connections, the gateway still reads the head and
// answers `HTTP/1.1 503 Service Unavailable` or `RTSP/1.0 503 Service Unavailable` with the
// request's CSeq, then closes.
import { EventEmitter } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { BackendConfig, Config } from '../ctl/config.js';
import { DEFAULT_HEALTH_CHECK, HealthChecker, parseHealthCheck, resolveCheckPort, type HealthChange, type HealthCheckConfig, type HealthTarget } from '../live/health.js';
import { createLogger, type Logger } from '../live/log.js';
import type { GatewayConfig, GatewayOptions } from './config.js';
import { choose, makeVip, stateOf, type BackendRt, type Choice, type VipRt } from './choose.js';
import { findHeadEnd, header, parseHead, RtspScanner, sessionId, sessionTimeout, type Head } from './head.js';

export const REFUSAL_REASONS = ['limit', 'no_backend', 'bad_request', 'too_large', 'head_timeout', 'closed_early', 'sessions'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export interface GatewayStats {
  open: number;
  accepted: number;
  proxied: number; // connections that reached a backend
  refused: Record<RefusalReason, number>;
  choices: { session: number; rule: number; scheduler: number };
  redispatches: number;
  sessionsCreated: number;
  sessionsEnded: number;
}

interface Listener {
  vip: VipRt; // re-pointed by reload()
  port: number;
  server: Server;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable',
};

/** The refusal a client gets from the gateway itself (it holds the connection). `close` false:
 * an RTSP refusal of one request on a connection that stays open (session admission). */
export function refusal(protocol: 'http' | 'rtsp', status: number, cseq: string | null, close = true): string {
  const text = STATUS_TEXT[status] ?? 'Error';
  if (protocol === 'rtsp') {
    return `RTSP/1.0 ${status} ${text}\r\n${cseq !== null ? `CSeq: ${cseq}\r\n` : ''}Server: sessionlb-gateway\r\n${close ? 'Connection: close\r\n' : ''}Content-Length: 0\r\n\r\n`;
  }
  const body = `${status} ${text}\n`;
  return `HTTP/1.1 ${status} ${text}\r\nServer: sessionlb-gateway\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
}

function checkOf(v: Config['vips'][number], vi: number, b: BackendConfig, bi: number): HealthCheckConfig | null {
  const vipCheck = v.healthCheck !== undefined ? parseHealthCheck(v.healthCheck, `vips[${vi}].healthCheck`) : null;
  if (b.healthCheck !== undefined) return parseHealthCheck(b.healthCheck, `vips[${vi}].backends[${bi}].healthCheck`, vipCheck ?? DEFAULT_HEALTH_CHECK);
  return vipCheck;
}

export class Gateway extends EventEmitter {
  vips: VipRt[];
  opts: GatewayOptions;
  readonly log: Logger;
  readonly stats: GatewayStats = {
    open: 0, accepted: 0, proxied: 0,
    refused: Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>,
    choices: { session: 0, rule: 0, scheduler: 0 }, redispatches: 0, sessionsCreated: 0, sessionsEnded: 0,
  };
  readonly started = Date.now();
  private servers: Listener[] = [];
  private health: HealthChecker | null = null;
  private sockets = new Set<Socket>();
  private refusing = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private checkPorts = new Map<string, number>();
  reloads = 0;
  reloadFailures = 0;

  constructor(public cfg: GatewayConfig, opts: { logger?: Logger } = {}) {
    super();
    this.opts = cfg.gateway;
    this.log = opts.logger ?? createLogger({ level: cfg.gateway.logLevel, fields: { component: 'gateway' } });
    const built = this.build(cfg, []);
    this.vips = built.vips;
    this.checkPorts = built.checkPorts;
  }

  /** VIP runtimes for a config; with `prev`, backends (by id) and session tables (by VIP address) carry over. */
  private build(cfg: GatewayConfig, prev: VipRt[]): { vips: VipRt[]; checkPorts: Map<string, number> } {
    const checkPorts = new Map<string, number>();
    const oldBackends = new Map(prev.flatMap((v) => v.backends.map((b) => [b.id, b] as const)));
    const vips = cfg.config.vips.map((v, vi) => {
      const checks = new Map(v.backends.map((b, bi) => [b.id, checkOf(v, vi, b, bi)]));
      for (const [bi, b] of v.backends.entries()) {
        const c = checks.get(b.id);
        if (c && c.type !== 'none') checkPorts.set(b.id, resolveCheckPort(c, { ports: v.ports, rtspPorts: v.rtspPorts }, `vips[${vi}].backends[${bi}].healthCheck`));
      }
      const was = prev.find((p) => p.cfg.address === v.address);
      const rt = makeVip(v, cfg.gateway.rules, (b) => checks.get(b.id) ?? null, was ? (id) => (was.backends.some((b) => b.id === id) ? oldBackends.get(id) : undefined) : undefined);
      if (was) {
        rt.sessions = was.sessions;
        rt.pendingSetups = was.pendingSetups;
      }
      return rt;
    });
    return { vips, checkPorts };
  }

  /**
   * Applies a new config (SIGHUP) without dropping connections: backends added, removed,
   * re-weighted or re-stated, rules, schedulers, limits and timeouts replaced; a backend keeps its
   * counters, health and RTSP sessions across the reload (sessions of removed backends are
   * forgotten); VIP ports added are listened on, ports removed stop accepting (open connections
   * stay). Throws (the old config stays) when a new port cannot be listened on.
   */
  async reload(cfg: GatewayConfig): Promise<{ vips: number; backends: number; listenersAdded: number; listenersClosed: number; sessionsDropped: number }> {
    const { vips, checkPorts } = this.build(cfg, this.vips);
    const key = (a: string, p: number) => `${a}|${p}`;
    const wanted = new Map(vips.flatMap((v) => (v.cfg.ports ?? []).map((p) => [key(v.cfg.address, p), { vip: v, port: p }] as const)));
    const opened: Listener[] = [];
    try {
      for (const [k, w] of wanted) {
        if (this.servers.some((l) => key(l.vip.cfg.address, l.port) === k)) continue;
        opened.push(await this.listen(w.vip, w.port));
      }
    } catch (e) {
      for (const l of opened) l.server.close();
      throw e;
    }
    let closed = 0;
    const keep: Listener[] = [];
    for (const l of this.servers) {
      const w = wanted.get(key(l.vip.cfg.address, l.port));
      if (w) {
        l.vip = w.vip;
        keep.push(l);
      } else {
        l.server.close();
        closed++;
        this.log.info('stopped listening', { vip: l.vip.cfg.address, port: l.port });
      }
    }
    const live = new Set(vips.flatMap((v) => v.backends));
    let dropped = 0;
    for (const v of vips) for (const b of this.backends) if (!live.has(b)) dropped += v.sessions.dropBackend(b);
    this.servers = [...keep, ...opened];
    this.vips = vips;
    this.checkPorts = checkPorts;
    this.cfg = cfg;
    this.opts = cfg.gateway;
    const targets = this.healthTargets();
    if (this.health) this.health.update(targets);
    else if (targets.length) this.startHealth();
    if (this.health) for (const b of this.backends) if (b.health !== null) b.health = this.health.state(b.id) ?? b.health;
    this.reloads++;
    return { vips: vips.length, backends: this.backends.length, listenersAdded: opened.length, listenersClosed: closed, sessionsDropped: dropped };
  }

  get backends(): BackendRt[] {
    return this.vips.flatMap((v) => v.backends);
  }

  /** Where it listens (after start). */
  addresses(): { address: string; port: number }[] {
    return this.servers.map((l) => ({ address: l.vip.cfg.address, port: l.port }));
  }

  private async listen(vip: VipRt, port: number): Promise<Listener> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(l, s));
    const l: Listener = { vip, port, server };
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: vip.cfg.address, port, backlog: 4096 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      const err = e as Error & { code?: string };
      throw Object.assign(new Error(`cannot listen on ${vip.cfg.address}:${port}: ${err.message}${err.code === 'EADDRNOTAVAIL' ? ' (the VIP must be an address of this host or network namespace)' : ''}`), { code: 'GATEWAY_LISTEN' });
    }
    server.on('error', (e) => this.log.error('listener error', { vip: vip.cfg.address, port, err: e }));
    this.log.info('listening', { vip: vip.cfg.address, port, scheduler: vip.cfg.scheduler, rules: vip.rules.length });
    return l;
  }

  async start(): Promise<void> {
    try {
      for (const vip of this.vips) {
        for (const port of vip.cfg.ports ?? []) this.servers.push(await this.listen(vip, port));
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.startHealth();
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      for (const v of this.vips) this.stats.sessionsEnded += v.sessions.sweep(now);
    }, 1000);
    this.sweepTimer.unref();
  }

  private healthTargets(): HealthTarget[] {
    return this.backends
      .filter((b) => b.check && b.check.type !== 'none')
      .map((b) => ({ id: b.id, address: b.address, port: this.checkPorts.get(b.id)!, check: b.check! }));
  }

  private startHealth(): void {
    const targets = this.healthTargets();
    if (!targets.length) return;
    this.health = new HealthChecker(targets, { logger: this.log.child({ component: 'health' }) });
    this.health.on('change', (c: HealthChange) => {
      const b = this.backends.find((x) => x.id === c.id);
      if (b) b.health = c.to;
      this.emit('health', c);
    });
    this.health.start();
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.health?.stop();
    this.health = null;
    const ls = this.servers;
    this.servers = [];
    await Promise.all(ls.map((l) => new Promise<void>((r) => l.server.close(() => r()))).concat(
      [...this.sockets].map((s) => { s.destroy(); return Promise.resolve(); }),
    ));
    this.sockets.clear();
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  // --- one client connection -------------------------------------------------------------------

  private accept(l: Listener, client: Socket): void {
    this.track(client);
    this.stats.accepted++;
    const rtspPort = l.vip.cfg.rtspPorts.includes(l.port);
    const tcpOnly = this.opts.tcpPorts.includes(l.port);
    if (tcpOnly && this.stats.open >= this.opts.maxConnections) {
      // Layer 4: no protocol to answer in; the connection is closed.
      this.stats.refused.limit++;
      client.destroy();
      return;
    }
    if (this.stats.open >= this.opts.maxConnections) {
      // Admission: answer from the gateway once the head is in; bounded so refusals cannot pile up.
      if (this.refusing >= this.opts.maxConnections) {
        this.stats.refused.limit++;
        client.destroy();
        return;
      }
      this.refusing++;
      client.once('close', () => this.refusing--);
      this.readHead(client, rtspPort, (head) => {
        this.stats.refused.limit++;
        this.log.debug('refused: connection limit', { vip: l.vip.cfg.address, port: l.port, client: client.remoteAddress });
        this.answer(client, head.protocol, 503, header(head, 'cseq'));
      });
      return;
    }
    this.stats.open++;
    let counted = true;
    const release = () => {
      if (counted) this.stats.open--;
      counted = false;
    };
    client.once('close', release);
    if (tcpOnly) {
      client.on('error', () => client.destroy());
      client.pause();
      this.route(l, client, null, Buffer.alloc(0), release);
      return;
    }
    this.readHead(client, rtspPort, (head, held) => this.route(l, client, head, held, release));
  }

  /** Reads until the first head is complete, then pauses the socket and calls `done` with it and
   * every byte received so far. Refuses bad, long or slow heads itself. */
  private readHead(client: Socket, rtspPort: boolean, done: (h: Head, held: Buffer) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const proto = rtspPort ? 'rtsp' : 'http';
    const stop = () => {
      finished = true;
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onEnd);
    };
    const timer = setTimeout(() => {
      if (finished) return;
      stop();
      this.stats.refused.head_timeout++;
      this.answer(client, proto, 408, null);
    }, this.opts.headTimeoutMs);
    const onEnd = () => {
      if (finished) return;
      stop();
      this.stats.refused.closed_early++;
      client.destroy();
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      const prev = size;
      size += d.length;
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      if (chunks.length > 1) chunks.splice(0, chunks.length, buf);
      // Leading blank lines before a request are tolerated (RFC 9112 2.2).
      let s = 0;
      while (s < buf.length && (buf[s] === 0x0d || buf[s] === 0x0a)) s++;
      const end = findHeadEnd(buf, Math.max(s, prev - 3));
      if (end < 0) {
        if (size - s > this.opts.maxHead) {
          stop();
          this.stats.refused.too_large++;
          this.answer(client, proto, proto === 'rtsp' ? 400 : 431, null);
        }
        return;
      }
      if (end - s > this.opts.maxHead) {
        stop();
        this.stats.refused.too_large++;
        this.answer(client, proto, proto === 'rtsp' ? 400 : 431, null);
        return;
      }
      const h = parseHead(buf.subarray(s), end - s);
      stop();
      client.pause();
      if (typeof h === 'string' || h.kind !== 'request') {
        this.stats.refused.bad_request++;
        this.log.debug('bad request', { client: client.remoteAddress, error: typeof h === 'string' ? h : 'a reply, not a request' });
        this.answer(client, proto, 400, typeof h === 'string' ? null : header(h, 'cseq'));
        return;
      }
      done(h, buf.subarray(s));
    };
    client.on('data', onData);
    client.on('end', onEnd);
    client.once('close', () => clearTimeout(timer));
    client.on('error', () => {
      if (!finished) stop();
      client.destroy();
    });
  }

  /** Writes a refusal and closes; reads (and discards) what the client still sends so the close is
   * not a reset that could overtake the answer. */
  private answer(client: Socket, protocol: 'http' | 'rtsp', status: number, cseq: string | null): void {
    client.on('data', () => {});
    client.resume();
    client.end(refusal(protocol, status, cseq));
    const t = setTimeout(() => client.destroy(), 2000);
    t.unref();
    client.once('close', () => clearTimeout(t));
  }

  /** Chooses, connects (with redispatch) and splices; `head` null: a layer-4 port (gateway.tcpPorts). */
  private route(l: Listener, client: Socket, head: Head | null, held: Buffer, release: () => void): void {
    const sess = head?.protocol === 'rtsp' ? header(head, 'session') : null;
    const req = head ? { path: head.path, uri: head.uri, host: header(head, 'host'), session: sess ? sessionId(sess) : null } : null;
    const refuse = () => {
      if (head) this.answer(client, head.protocol, 503, header(head, 'cseq'));
      else client.destroy();
    };
    const cli = { address: client.remoteAddress ?? '', port: client.remotePort ?? 0 };
    const exclude = new Set<BackendRt>();
    const attempt = (tries: number): void => {
      const c: Choice = choose(l.vip, l.port, req, cli, Date.now(), exclude);
      const b = c.backend;
      if (!b) {
        this.stats.refused.no_backend++;
        this.log.warn('no backend available', { vip: l.vip.cfg.address, port: l.port, path: head?.path, rule: c.rule, tried: [...exclude].map((x) => x.id) });
        release();
        refuse();
        return;
      }
      const fam = b.address.includes(':') ? 6 : 4;
      const localAddress = (fam === 4 ? this.opts.source : this.opts.source6) ?? undefined;
      const up = connect({ host: b.address, port: l.port, localAddress, allowHalfOpen: true, noDelay: true });
      this.track(up);
      let connected = false;
      const fail = (why: string) => {
        if (connected) return;
        connected = true; // settle once
        clearTimeout(timer);
        up.destroy();
        b.connectFailures++;
        exclude.add(b);
        this.log.warn('backend connect failed', { backend: b.id, address: b.address, port: l.port, error: why });
        if (client.destroyed) return;
        if (tries > 0) {
          this.stats.redispatches++;
          attempt(tries - 1);
        } else {
          this.stats.refused.no_backend++;
          release();
          refuse();
        }
      };
      const timer = setTimeout(() => fail(`no connection within ${this.opts.connectTimeoutMs} ms`), this.opts.connectTimeoutMs);
      up.once('error', (e) => fail((e as Error).message));
      up.once('close', () => clearTimeout(timer));
      up.once('connect', () => {
        if (connected) return;
        connected = true;
        clearTimeout(timer);
        if (client.destroyed) {
          up.destroy();
          return;
        }
        this.stats.choices[c.reason]++;
        this.stats.proxied++;
        this.log.debug('proxied', { vip: l.vip.cfg.address, port: l.port, client: cli.address, backend: b.id, reason: c.reason, path: head?.path });
        this.splice(l, client, up, b, head, held);
      });
    };
    attempt(this.opts.retries);
  }

  /** Copies both ways between the client and the backend connection. */
  private splice(l: Listener, client: Socket, up: Socket, b: BackendRt, head: Head | null, held: Buffer): void {
    b.conns++;
    b.total++;
    let closed = false;
    const refs = new Set<string>();
    const sessions = l.vip.sessions;
    let scanUp: RtspScanner | null = null;
    let scanDown: RtspScanner | null = null;
    // RTSP: requests and replies matched by CSeq; new-session SETUPs over a session limit are
    // answered 503 by the gateway (not forwarded), once every earlier request has its reply.
    const refusals: string[] = [];
    let outstanding = 0; // requests forwarded, not answered yet
    let reserved = 0; // this connection's new-session SETUPs in vip.pendingSetups
    const vip = l.vip;
    const flushRefusals = () => {
      if (!refusals.length || client.destroyed) return;
      // After every earlier request's reply has been passed on whole (unless tracking broke).
      if (scanDown && !scanDown.broken && (outstanding > 0 || !scanDown.atBoundary)) return;
      client.write(refusals.join(''));
      refusals.length = 0;
    };
    if (head?.protocol === 'rtsp') {
      const pending = new Map<string, { method: string; session: string | null; reserved: boolean }>();
      const see = (id: string) => {
        if (!refs.has(id)) {
          refs.add(id);
          sessions.ref(id, 1, Date.now());
        } else sessions.touch(id, Date.now());
      };
      scanUp = new RtspScanner(this.opts.maxHead, (h) => {
        if (h.kind !== 'request') return true;
        const s = header(h, 'session');
        const id = s ? sessionId(s) : null;
        const method = h.method.toUpperCase();
        const cseq = header(h, 'cseq');
        let reserve = false;
        if (method === 'SETUP' && !id) {
          const why = this.sessionLimit(vip, b);
          if (why) {
            this.stats.refused.sessions++;
            this.log.info('session refused', { vip: vip.cfg.address, backend: b.id, client: client.remoteAddress, limit: why });
            refusals.push(refusal('rtsp', 503, cseq, false));
            flushRefusals();
            return false;
          }
          reserve = true;
          vip.pendingSetups++;
          reserved++;
        }
        if (id) see(id);
        outstanding++;
        if (cseq !== null) {
          pending.set(cseq, { method, session: id, reserved: reserve });
          if (pending.size > 256) pending.delete(pending.keys().next().value as string);
        }
        return true;
      });
      scanDown = new RtspScanner(this.opts.maxHead, (h) => {
        if (h.kind !== 'reply') return true;
        outstanding = Math.max(0, outstanding - 1);
        const cseq = header(h, 'cseq');
        const req = cseq !== null ? pending.get(cseq) : undefined;
        if (cseq !== null) pending.delete(cseq);
        if (req?.reserved) {
          vip.pendingSetups--;
          reserved--;
        }
        const s = header(h, 'session');
        const id = s ? sessionId(s) : req?.session ?? null;
        const ok = h.status >= 200 && h.status < 300;
        const now = Date.now();
        if (req?.method === 'SETUP' && ok && s && id) {
          if (sessions.add(id, b, sessionTimeout(s), now)) {
            this.stats.sessionsCreated++;
            this.log.debug('rtsp session', { vip: vip.cfg.address, session: id, backend: b.id });
          }
          see(id);
        } else if (req?.method === 'TEARDOWN' && ok && id) {
          if (sessions.remove(id)) {
            this.stats.sessionsEnded++;
            this.log.debug('rtsp session ended', { vip: vip.cfg.address, session: id, backend: b.id });
          }
          refs.delete(id);
        } else if (id) {
          sessions.touch(id, now);
        }
        return true;
      });
    }
    const finish = () => {
      if (closed) return;
      closed = true;
      b.conns--;
      vip.pendingSetups -= reserved;
      reserved = 0;
      const now = Date.now();
      for (const id of refs) sessions.ref(id, -1, now);
    };
    // Replay the held bytes first.
    b.bytesToBackend += held.length;
    const emitUp = (x: Buffer) => up.write(x);
    if (scanUp) scanUp.push(held, emitUp);
    else up.write(held);
    const pipe = (from: Socket, to: Socket, scan: RtspScanner | null, count: (n: number) => void) => {
      const emit = (x: Buffer) => {
        if (!to.destroyed) to.write(x);
      };
      from.on('data', (d: Buffer) => {
        count(d.length);
        if (scan) {
          to.cork();
          scan.push(d, emit);
          to.uncork();
          if (scan === scanDown) flushRefusals();
        } else emit(d);
        if (!to.destroyed && to.writableNeedDrain) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => {
        if (!to.destroyed) to.end();
      });
    };
    pipe(client, up, scanUp, (n) => (b.bytesToBackend += n));
    pipe(up, client, scanDown, (n) => (b.bytesToClient += n));
    /** Closes `s` gracefully (FIN after what is queued), destroyed two seconds later at most. */
    const wind = (s: Socket) => {
      if (s.destroyed) return;
      s.end();
      const t = setTimeout(() => s.destroy(), 2000);
      t.unref();
      s.once('close', () => clearTimeout(t));
    };
    // A client that resets an RTSP connection (players often do right after TEARDOWN, with media
    // still arriving) leaves the backend side to finish gracefully, so its TEARDOWN reply is still
    // seen by the session table. Otherwise an error on either side ends both at once.
    const rtsp = head?.protocol === 'rtsp';
    client.on('error', () => {
      client.destroy();
      if (rtsp) wind(up);
      else up.destroy();
    });
    up.on('error', () => {
      client.destroy();
      up.destroy();
    });
    const onClose = (other: Socket) => (hadError: boolean) => {
      finish();
      if (hadError && !(rtsp && other === up)) other.destroy();
      else wind(other);
    };
    client.once('close', onClose(up));
    up.once('close', onClose(client));
    const idle = () => {
      this.log.debug('idle timeout', { backend: b.id, client: client.remoteAddress });
      client.destroy();
      up.destroy();
    };
    client.setTimeout(this.opts.idleTimeoutMs, idle);
    up.setTimeout(this.opts.idleTimeoutMs, idle);
    client.resume();
  }

  /** Why a new RTSP session on backend b of this VIP would exceed a limit, or null. */
  private sessionLimit(vip: VipRt, b: BackendRt): string | null {
    const c = vip.cfg.maxSessions;
    if (c > 0 && vip.sessions.size + vip.pendingSetups >= c) return `vip maxSessions ${c}`;
    const g = this.cfg.config.maxSessions;
    if (g > 0 && this.vips.reduce((n, v) => n + v.sessions.size + v.pendingSetups, 0) >= g) return `maxSessions ${g}`;
    if (b.maxSessions > 0 && b.sessions >= b.maxSessions) return `backend maxSessions ${b.maxSessions}`;
    return null;
  }

  /** For metrics and tests. */
  snapshot() {
    return {
      uptimeSeconds: (Date.now() - this.started) / 1000,
      reloads: this.reloads,
      reloadFailures: this.reloadFailures,
      stats: this.stats,
      vips: this.vips.map((v) => ({ address: v.cfg.address, ports: v.cfg.ports ?? [], sessions: v.sessions.size })),
      backends: this.backends.map((b) => ({
        id: b.id, vip: b.vip, address: b.address, weight: b.weight, state: stateOf(b), health: b.health,
        conns: b.conns, total: b.total, connectFailures: b.connectFailures,
        bytesToBackend: b.bytesToBackend, bytesToClient: b.bytesToClient, sessions: b.sessions,
      })),
    };
  }
}

export type GatewaySnapshot = ReturnType<Gateway['snapshot']>;
