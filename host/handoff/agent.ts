// The handoff agent of one backend (docs/handoff.md): listens for front-end connections (one
// long-lived TCP connection per front end, HANDOFF messages pipelined), recreates each client
// connection as an established socket with TCP_REPAIR (native/repair.c), passes the descriptor to
// the server process (host/handoff/server.ts, a forked child) over a Unix datagram socket (SCM_RIGHTS,
// many descriptors a datagram) and replies DONE with the status as soon as the kernel has queued it
// there. Replies may come in any order; the front end matches them by id.
//
// API
//   new Agent(opts: AgentOptions); await agent.start(); agent.address(); agent.snapshot();
//   await agent.stop()
//   agentArgs(opts): string[]             `sessionlb agent` arguments for those options
//   spawnAgent(opts & { netns? }): Promise<SpawnedAgent>   runs `[ip netns exec NS] node
//       dist/host/cli/main.js agent ...` and resolves once it logged "agent ready" (the lab's way
//       to start an agent inside a backend's namespace)
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../live/log.js';
import { DEFAULT_AGENT_PORT, HandoffReader, STATUS_NAMES, Status, encodeDone, type Framed, type Handoff } from './protocol.js';
import { loadRepairAddon, type PollHandle, type RepairAddon, type RepairError } from './repair.js';
import type { AgentMessage } from './server.js';

export interface AgentOptions {
  /** Address and port to listen on for front ends (port default 9190). */
  host: string;
  port?: number;
  /** The backend id the server process answers with (X-Backend, body). */
  id: string;
  /** Handed-off connections open at once (server process), incl. those being handed over; beyond: DONE 4. */
  max?: number;
  /** Restored connections waiting to be queued to the server process at once (its datagram queue
   *  full); beyond, the agent stops reading the front ends' connections until some have gone (TCP
   *  back-pressure, no refusal). */
  maxPending?: number;
  /** Front-end connections at once; more are closed at accept. */
  maxFrontends?: number;
  /** How long a restored connection may wait for room in the server process's queue before DONE 3. */
  ackTimeoutMs?: number;
  /** Delay before a crashed server process is started again. */
  restartMs?: number;
  /**
   * VIP port -> Unix datagram socket path: connections to that port go to another server process
   * (not the agent's HTTP child): the descriptor and a JSON line {client, clientPort, vip, vipPort}
   * in one datagram with SCM_RIGHTS (docs/handoff.md "Other servers").
   */
  pass?: Record<number, string>;
  logger?: Logger;
}

export interface AgentCounters {
  /** HANDOFF messages received (well-formed or not). */
  handoffs: number;
  /** DONE replies by status. */
  ok: number;
  malformed: number;
  repairFailed: number;
  noServer: number;
  busy: number;
  /** Held request bytes put into restored receive queues. */
  heldBytes: number;
  /** Handed-off connections open in the server process now. */
  open: number;
  /** Restored connections waiting for room in the server process's queue now. */
  pending: number;
  frontends: number;
  frontendsTotal: number;
  frontendsRefused: number;
  /** Front-end connections closed for an unframeable message (unknown version/type, bad length). */
  protocolClosed: number;
  /** Times a front end's connection was paused because maxPending handoffs waited for the server process. */
  paused: number;
  serverStarts: number;
  serverExits: number;
  /** Total time spent in the addon's restore(), microseconds. */
  restoreMicros: number;
  /** TIME_WAIT sockets of an earlier connection on the same 4-tuple that restore() replaced. */
  timeWaitReclaimed: number;
  /** Connections passed to another server process (--pass). */
  passed: number;
  lastErrno: number;
  lastStep: string;
}

interface Front {
  sock: net.Socket;
  reader: HandoffReader;
  /** Framed messages not handled yet (from `head`): they wait while maxPending handoffs are pending. */
  queue: Framed<Handoff>[];
  head: number;
  paused: boolean;
  /** Handoffs of this connection restored and not answered yet. */
  inflight: number;
  /** An unframeable message came: nothing more is handled; closed once inflight reaches 0. */
  fatal: boolean;
  /** The front end finished sending: closed once the queue is handled and inflight reaches 0. */
  ended: boolean;
}

/** A restored connection not yet queued to the server process. */
interface Pending {
  front: Front;
  id: number;
  fd: number;
  /** performance.now() when restored (for ackTimeoutMs). */
  t: number;
}

/** Descriptors per sendFds call (the addon splits them into datagrams of up to 253). */
const SEND_BATCH = 253;

const here = dirname(fileURLToPath(import.meta.url));

/** The server process's entry: server.js beside this file (dist), else server.ts (run under tsx). */
function serverEntry(): string {
  const js = join(here, 'server.js');
  return existsSync(js) ? js : join(here, 'server.ts');
}

export class Agent {
  readonly log: Logger;
  private readonly opts: Required<Omit<AgentOptions, 'logger'>>;
  private readonly addon: RepairAddon;
  private listener: net.Server | null = null;
  private child: ChildProcess | null = null;
  private childReady = false;
  /** The private directory holding the server process's datagram socket. */
  private dir: string | null = null;
  /** The agent's sending socket, connected to the running server process's; -1 when none. */
  private tx = -1;
  /** Polls tx for room while pending connections wait. */
  private txPoll: PollHandle | null = null;
  private readonly fronts = new Set<Front>();
  /** Restored, in order, not yet queued to the server process. */
  private pending: Pending[] = [];
  private expiry: NodeJS.Timeout | null = null;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly c: AgentCounters = {
    handoffs: 0, ok: 0, malformed: 0, repairFailed: 0, noServer: 0, busy: 0, heldBytes: 0, open: 0, pending: 0,
    frontends: 0, frontendsTotal: 0, frontendsRefused: 0, protocolClosed: 0, paused: 0, serverStarts: 0, serverExits: 0,
    restoreMicros: 0, timeWaitReclaimed: 0, passed: 0, lastErrno: 0, lastStep: '',
  };

  constructor(opts: AgentOptions) {
    this.opts = {
      host: opts.host,
      port: opts.port ?? DEFAULT_AGENT_PORT,
      id: opts.id,
      max: opts.max ?? 10_000,
      maxPending: opts.maxPending ?? 1024,
      maxFrontends: opts.maxFrontends ?? 64,
      ackTimeoutMs: opts.ackTimeoutMs ?? 2000,
      restartMs: opts.restartMs ?? 500,
      pass: opts.pass ?? {},
    };
    this.log = opts.logger ?? createLogger({ fields: { component: 'handoff-agent', backend: opts.id } });
    this.addon = loadRepairAddon();
  }

  /** Starts the server process (waits for it) and listens. Rejects (code AGENT_LISTEN) if it cannot listen. */
  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'sessionlb-agent-'));
    await this.startServer().catch((e) => {
      this.removeDir();
      throw e;
    });
    const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.accept(s));
    this.listener = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e) => reject(Object.assign(new Error(`cannot listen on ${this.opts.host}:${this.opts.port}: ${e.message}`), { code: 'AGENT_LISTEN' })));
      srv.listen({ host: this.opts.host, port: this.opts.port, backlog: 128 }, () => resolve());
    }).catch(async (e) => {
      await this.stopServer();
      this.removeDir();
      throw e;
    });
    srv.on('error', (e) => this.log.error('listener error', { error: e }));
  }

  address(): { host: string; port: number } {
    const a = this.listener?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : { host: this.opts.host, port: this.opts.port };
  }

  snapshot(): AgentCounters {
    return { ...this.c, pending: this.pending.length, frontends: this.fronts.size, timeWaitReclaimed: this.addon.counters().timeWaitReclaimed };
  }

  /** Stops listening, answers what is pending, closes front-end connections and the server process. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const closed = this.listener ? new Promise<void>((r) => this.listener!.close(() => r())) : Promise.resolve();
    this.failPending('agent stopping');
    for (const f of this.fronts) f.sock.end();
    await this.stopServer();
    this.closeTx();
    this.removeDir();
    const t = setTimeout(() => {
      for (const f of this.fronts) f.sock.destroy();
    }, 1000);
    await closed;
    clearTimeout(t);
  }

  // ---- the server process ----

  private startServer(): Promise<void> {
    const path = join(this.dir!, `server-${this.c.serverStarts + 1}.sock`);
    const child = fork(serverEntry(), ['--id', this.opts.id, '--max', String(this.opts.max), '--socket', path], {
      env: { ...process.env, SESSIONLB_HANDOFF_SERVER: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.childReady = false;
    this.c.serverStarts++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server process did not start within 10 s')), 10_000);
      child.on('message', (m: AgentMessage) => {
        if (m.t === 'ready') {
          if (this.child !== child) return;
          clearTimeout(timer);
          try {
            this.closeTx();
            this.tx = this.addon.dgramConnect(path);
          } catch (e) {
            this.log.error('cannot reach the server process socket', { path, error: e });
            child.kill('SIGKILL');
            return;
          }
          this.childReady = true;
          this.log.info('server process ready', { pid: child.pid, socket: path });
          resolve();
        } else if (m.t === 'closed') {
          if (this.child === child) this.c.open = Math.max(0, this.c.open - m.n);
        }
      });
      child.on('error', (e) => this.log.error('server process error', { error: e }));
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        try {
          unlinkSync(path);
        } catch {}
        if (this.child === child) {
          this.child = null;
          this.childReady = false;
          this.closeTx();
          // Connections restored but not queued yet have nowhere to go; those queued but unread
          // died with the receiving socket (the kernel closed them), those it held too.
          this.failPending('server process exited');
          this.c.open = 0;
        }
        this.c.serverExits++;
        if (this.stopping) return;
        this.log.error('server process exited', { code, signal, restartInMs: this.opts.restartMs });
        reject(new Error(`the server process exited (code ${code}, signal ${signal})`));
        this.restartTimer = setTimeout(() => {
          this.restartTimer = null;
          this.startServer().catch((e) => this.log.error('server process restart failed', { error: e }));
        }, this.opts.restartMs);
      });
    });
  }

  private closeTx(): void {
    if (this.txPoll) this.addon.pollStop(this.txPoll);
    this.txPoll = null;
    if (this.tx >= 0) {
      try {
        closeSync(this.tx);
      } catch {}
    }
    this.tx = -1;
  }

  private removeDir(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }

  private async stopServer(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }

  // ---- front ends ----

  private accept(sock: net.Socket): void {
    if (this.stopping || this.fronts.size >= this.opts.maxFrontends) {
      this.c.frontendsRefused++;
      this.log.warn('front-end connection refused', { remote: `${sock.remoteAddress}:${sock.remotePort}`, frontends: this.fronts.size });
      sock.destroy();
      return;
    }
    const f: Front = { sock, reader: new HandoffReader(), queue: [], head: 0, paused: false, inflight: 0, fatal: false, ended: false };
    this.fronts.add(f);
    this.c.frontendsTotal++;
    const remote = `${sock.remoteAddress}:${sock.remotePort}`;
    this.log.debug('front end connected', { remote });
    sock.on('data', (chunk: Buffer) => {
      if (f.fatal) return;
      for (const item of f.reader.push(chunk)) f.queue.push(item);
      this.pump(f);
    });
    sock.on('end', () => {
      const e = f.reader.end();
      if (e) this.log.warn('front end closed inside a message', { remote, error: e.message });
      f.ended = true;
      this.maybeClose(f);
    });
    sock.on('error', (e) => this.log.warn('front-end connection error', { remote, error: e.message }));
    sock.on('close', () => {
      this.fronts.delete(f);
      this.log.debug('front end disconnected', { remote });
    });
  }

  /**
   * Handles f's queued messages, passing the restored connections to the server process in batches;
   * stops while maxPending wait for room in its queue, and pauses reading f if messages must wait.
   */
  private pump(f: Front): void {
    for (;;) {
      this.pumpSome(f);
      // Restored connections go at the end of each chunk (or every SEND_BATCH): one sendmsg per batch.
      if (this.pending.length) this.flush();
      if (this.pending.length || f.head >= f.queue.length || f.fatal) break;
    }
    if (f.head === f.queue.length || f.fatal) {
      f.queue = [];
      f.head = 0;
    }
    const wait = f.queue.length > 0 || f.fatal;
    if (wait !== f.paused) {
      f.paused = wait;
      if (wait) {
        f.sock.pause();
        if (!f.fatal) this.c.paused++;
      } else f.sock.resume();
    }
    this.maybeClose(f);
  }

  private pumpSome(f: Front): void {
    while (f.head < f.queue.length && !f.fatal && this.pending.length < this.opts.maxPending) {
      const item = f.queue[f.head++];
      if (item.ok) {
        this.handle(f, item.msg);
        // A full batch goes at once, unless the server process's queue is known to be full.
        if (this.pending.length >= SEND_BATCH && !this.txPoll) this.flush();
        continue;
      }
      const e = item.error;
      this.c.handoffs++;
      this.log.warn('malformed HANDOFF', { remote: `${f.sock.remoteAddress}:${f.sock.remotePort}`, id: e.id, error: e.message, fatal: e.fatal });
      if (e.id !== null) this.reply(f, e.id, Status.MALFORMED, 0);
      else this.c.malformed++;
      if (e.fatal) {
        // Nothing after it can be framed: answer what is in flight, then close.
        this.c.protocolClosed++;
        f.fatal = true;
      }
    }
  }

  private maybeClose(f: Front): void {
    if ((f.fatal || (f.ended && f.queue.length === 0)) && f.inflight === 0 && !f.sock.writableEnded) f.sock.end();
  }

  private reply(f: Front, id: number, status: number, errno: number): void {
    switch (status) {
      case Status.OK: this.c.ok++; break;
      case Status.MALFORMED: this.c.malformed++; break;
      case Status.REPAIR_FAILED: this.c.repairFailed++; break;
      case Status.NO_SERVER: this.c.noServer++; break;
      default: this.c.busy++;
    }
    if (!f.sock.destroyed && f.sock.writable) f.sock.write(encodeDone({ id, status, errno: errno & 0xff }));
  }

  private handle(f: Front, h: Handoff): void {
    this.c.handoffs++;
    const conn = `${h.client}:${h.clientPort} -> ${h.vip}:${h.vipPort}`;
    const passTo = this.opts.pass[h.vipPort];
    if (passTo !== undefined) return this.passOn(f, h, conn, passTo);
    if (this.stopping || !this.childReady || !this.child) {
      this.log.warn('handoff refused: no server process', { id: h.id, conn, stopping: this.stopping });
      this.reply(f, h.id, Status.NO_SERVER, 0);
      return;
    }
    if (this.c.open + this.pending.length >= this.opts.max) {
      this.log.warn('handoff refused: busy', { id: h.id, conn, open: this.c.open, pending: this.pending.length });
      this.reply(f, h.id, Status.BUSY, 0);
      return;
    }
    const fd = this.restore(f, h, conn);
    if (fd === null) return;
    f.inflight++;
    this.pending.push({ front: f, id: h.id, fd, t: performance.now() });
    if (this.log.enabled('debug')) this.log.debug('restored', { id: h.id, conn, held: h.data.length, fd });
  }

  /**
   * Queues the pending connections to the server process (sendFds: one sendmsg per 253) and answers
   * DONE 0 for each the kernel took; the agent's copies are closed (the in-flight reference keeps
   * the socket). If its queue is full the rest wait (polled for room, DONE 3 after ackTimeoutMs);
   * if it is gone they are closed silently and answered 3.
   */
  private flush(): void {
    if (!this.pending.length) return;
    if (this.tx < 0) return this.failPending('no server process');
    const batch = this.pending.length > SEND_BATCH ? this.pending.slice(0, SEND_BATCH) : this.pending;
    let sent: number;
    try {
      sent = this.addon.sendFds(this.tx, batch.map((p) => p.fd), true);
    } catch (err) {
      const e = err as RepairError;
      this.c.lastErrno = e.errno ?? 0;
      this.c.lastStep = 'sendFds';
      return this.failPending(`passing to the server process failed: ${e.message}`, e.errno ?? 0);
    }
    if (sent > 0) {
      const done = sent === this.pending.length ? this.pending : this.pending.slice(0, sent);
      this.pending = sent === this.pending.length ? [] : this.pending.slice(sent);
      this.c.open += sent;
      // The DONEs of a batch leave in one write per front end.
      const fronts = new Set<Front>();
      for (const p of done) {
        if (!fronts.has(p.front)) {
          fronts.add(p.front);
          p.front.sock.cork();
        }
        p.front.inflight--;
        this.reply(p.front, p.id, Status.OK, 0);
      }
      for (const fr of fronts) {
        fr.sock.uncork();
        this.maybeClose(fr);
      }
      if (this.log.enabled('debug')) this.log.debug('handed off', { ids: done.length > 8 ? `${done.length} handoffs` : done.map((p) => p.id) });
      if (this.pending.length && sent === batch.length) return this.flush();
    }
    if (this.pending.length) this.waitForRoom();
    else this.roomAgain();
  }

  /** The server process's queue is full: poll for room, expire what waits too long. */
  private waitForRoom(): void {
    if (!this.txPoll && this.tx >= 0) {
      this.txPoll = this.addon.pollStart(this.tx, 2, () => {
        this.flush();
        if (!this.pending.length) for (const f of this.fronts) if (f.queue.length) this.pump(f);
      });
    }
    if (!this.expiry) {
      const wait = Math.max(1, this.pending[0].t + this.opts.ackTimeoutMs - performance.now());
      this.expiry = setTimeout(() => this.expire(), wait);
    }
  }

  private roomAgain(): void {
    if (this.txPoll) this.addon.pollStop(this.txPoll);
    this.txPoll = null;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
  }

  private expire(): void {
    this.expiry = null;
    const old = performance.now() - this.opts.ackTimeoutMs;
    let n = 0;
    while (n < this.pending.length && this.pending[n].t <= old) n++;
    if (n) this.fail(this.pending.splice(0, n), 'no room in the server process queue in time', 0);
    if (this.pending.length) this.waitForRoom();
    else this.roomAgain();
    for (const f of this.fronts) if (f.queue.length) this.pump(f);
  }

  private failPending(reason: string, errno = 0): void {
    const all = this.pending;
    this.pending = [];
    this.roomAgain();
    this.fail(all, reason, errno);
  }

  /** DONE 3 for these restored connections; each is closed in repair mode: the client sees nothing. */
  private fail(list: Pending[], reason: string, errno: number): void {
    if (!list.length) return;
    this.log.warn('handoff failed: server process', { ids: list.length > 8 ? `${list.length} handoffs` : list.map((p) => p.id), reason });
    const fronts = new Set<Front>();
    for (const p of list) {
      try {
        this.addon.closeSilently(p.fd);
      } catch {
        try {
          closeSync(p.fd);
        } catch {}
      }
      p.front.inflight--;
      this.reply(p.front, p.id, Status.NO_SERVER, errno);
      fronts.add(p.front);
    }
    for (const fr of fronts) this.maybeClose(fr);
  }

  /** restore() with its accounting; on failure answers DONE 2 with the errno and returns null. */
  private restore(f: Front, h: Handoff, conn: string): number | null {
    const t0 = process.hrtime.bigint();
    let fd: number;
    try {
      fd = this.addon.restore(h);
    } catch (err) {
      const e = err as RepairError;
      this.c.lastErrno = e.errno ?? 0;
      this.c.lastStep = e.step ?? '';
      this.log.warn('handoff failed: restore', { id: h.id, conn, step: e.step, errno: e.errno, error: e.message });
      this.reply(f, h.id, Status.REPAIR_FAILED, e.errno ?? 0);
      return null;
    }
    this.c.restoreMicros += Number(process.hrtime.bigint() - t0) / 1000;
    this.c.heldBytes += h.data.length;
    return fd;
  }

  /**
   * --pass: the restored connection goes to another server process over a Unix datagram socket
   * (descriptor + JSON line); DONE 0 as soon as the kernel has queued it there, 3 if it cannot be.
   */
  private passOn(f: Front, h: Handoff, conn: string, path: string): void {
    if (this.stopping) {
      this.reply(f, h.id, Status.NO_SERVER, 0);
      return;
    }
    const fd = this.restore(f, h, conn);
    if (fd === null) return;
    const line = Buffer.from(JSON.stringify({ client: h.client, clientPort: h.clientPort, vip: h.vip, vipPort: h.vipPort }) + '\n');
    try {
      this.addon.passFd(path, fd, line);
    } catch (err) {
      const e = err as RepairError;
      this.addon.closeSilently(fd);
      this.log.warn('handoff failed: passing to the server', { id: h.id, conn, path, errno: e.errno, error: e.message });
      this.reply(f, h.id, Status.NO_SERVER, e.errno ?? 0);
      return;
    }
    // The server process holds its own copy now: ours closes normally (no FIN: the socket lives on).
    closeSync(fd);
    this.c.passed++;
    this.reply(f, h.id, Status.OK, 0);
    if (this.log.enabled('debug')) this.log.debug('handed off', { id: h.id, conn, held: h.data.length, to: path });
  }
}

export { STATUS_NAMES };

// ---- starting an agent from another process (the lab, tests) ----

export interface SpawnAgentOptions {
  host: string;
  port?: number;
  id: string;
  max?: number;
  maxPending?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Run inside this network namespace (`ip netns exec NS ...`, root). */
  netns?: string;
  /** The CLI entry (default dist/host/cli/main.js of this checkout). */
  cli?: string;
  /** Where the agent's JSON log lines go (default: discarded after start). */
  onLog?: (line: string) => void;
  timeoutMs?: number;
}

export interface SpawnedAgent {
  child: ChildProcess;
  /** SIGTERM, then the final counters the agent prints on stdout. */
  stop(): Promise<AgentCounters | null>;
}

/** `sessionlb agent` arguments for these options. */
export function agentArgs(o: { host: string; port?: number; id: string; max?: number; maxPending?: number; logLevel?: string }): string[] {
  const a = ['agent', '--listen', `${o.host}:${o.port ?? DEFAULT_AGENT_PORT}`, '--id', o.id];
  if (o.max !== undefined) a.push('--max', String(o.max));
  if (o.maxPending !== undefined) a.push('--max-pending', String(o.maxPending));
  if (o.logLevel) a.push('--log-level', o.logLevel);
  return a;
}

function defaultCli(): string {
  for (const p of [join(here, '../cli/main.js'), join(here, '../../dist/host/cli/main.js')]) if (existsSync(p)) return p;
  throw new Error('dist/host/cli/main.js not found: run `npm run build:host`');
}

export function spawnAgent(o: SpawnAgentOptions): Promise<SpawnedAgent> {
  const argv = [process.execPath, o.cli ?? defaultCli(), ...agentArgs(o)];
  const cmd = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<AgentCounters | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    try {
      return JSON.parse(stdout) as AgentCounters;
    } catch {
      return null;
    }
  };
  return new Promise((resolve, reject) => {
    let buf = '';
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) {
        child.kill('SIGKILL');
        reject(new Error(`the agent did not get ready within ${o.timeoutMs ?? 15_000} ms: ${buf.slice(-2000)}`));
      }
    }, o.timeoutMs ?? 15_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        o.onLog?.(line);
        if (!ready && line.includes('"msg":"agent ready"')) {
          ready = true;
          clearTimeout(timer);
          resolve({ child, stop });
        }
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`the agent exited before it was ready (code ${code}, signal ${signal}): ${buf.slice(-2000)}`));
      }
    });
  });
}
