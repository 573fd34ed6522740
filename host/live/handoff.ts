// TCP handoff, the front end's side of the agent protocol (docs/handoff.md): one TCP connection per
// backend agent, HANDOFF messages (built by the engine, drained from the splice output queue) written
// to it as they come, DONE replies read back and given to the engine by id. A connection that fails
// fails every message waiting on it (the engine resets those clients); the next message for that
// agent reconnects after a short back-off. Messages for an agent that is connecting wait in a queue.
import { connect, type Socket } from 'node:net';
import type { Logger } from './log.js';
import { DoneReader } from '../handoff/protocol.js';

export interface HandoffAgent {
  key: string; // backend id
  address: string;
  port: number;
}

/** Status the front end gives the engine when no DONE came: the agent connection failed or refused. */
export const STATUS_LINK_FAILED = 255;
/** Status for a message not sent: the agent is in back-off after a failure, or its queue is full. */
export const STATUS_NOT_SENT = 254;

const MAX_QUEUED = 4096;
const BACKOFF_MS = 500;

export interface HandoffCounts {
  sent: number;
  done: number;
  failed: number; // DONE with a status other than 0
  linkFailed: number; // messages failed by a broken or refused agent connection
  notSent: number;
  connects: number;
  connectErrors: number;
  malformed: number; // replies that were not a well-formed DONE (the connection is dropped)
}

class Link {
  sock: Socket | null = null;
  open = false;
  queue: Uint8Array[] = [];
  pending = new Set<number>();
  rx = new DoneReader();
  retryAt = 0;
  constructor(readonly agent: HandoffAgent) {}
}

/** A HANDOFF message's id (bytes 4..7, big-endian). */
export function handoffId(msg: Uint8Array): number {
  return ((msg[4] << 24) | (msg[5] << 16) | (msg[6] << 8) | msg[7]) >>> 0;
}

export class HandoffLinks {
  readonly counts: HandoffCounts = { sent: 0, done: 0, failed: 0, linkFailed: 0, notSent: 0, connects: 0, connectErrors: 0, malformed: 0 };
  private links = new Map<string, Link>();
  private closed = false;

  constructor(private readonly opts: {
    /** The agent's answer for message `id` (status 0 = the backend holds the connection). */
    onDone: (id: number, status: number) => void;
    log: Logger;
    connectTimeoutMs: number;
    localAddress?: string;
  }) {}

  /** Sends one HANDOFF message (its id at bytes 4..7) to the agent. */
  send(agent: HandoffAgent, msg: Uint8Array): void {
    const id = handoffId(msg);
    let l = this.links.get(agent.key);
    if (!l || l.agent.address !== agent.address || l.agent.port !== agent.port) {
      if (l) this.fail(l, 'agent address changed');
      l = new Link(agent);
      this.links.set(agent.key, l);
    }
    if (this.closed || (!l.sock && Date.now() < l.retryAt) || l.queue.length >= MAX_QUEUED) {
      this.counts.notSent++;
      queueMicrotask(() => this.opts.onDone(id, STATUS_NOT_SENT));
      return;
    }
    l.pending.add(id);
    this.counts.sent++;
    if (l.open) l.sock!.write(msg);
    else {
      l.queue.push(msg);
      if (!l.sock) this.connect(l);
    }
  }

  /** Messages sent and not answered yet, over all agents. */
  get inFlight(): number {
    let n = 0;
    for (const l of this.links.values()) n += l.pending.size;
    return n;
  }

  close(): void {
    this.closed = true;
    for (const l of this.links.values()) this.fail(l, 'stopping');
    this.links.clear();
  }

  private connect(l: Link): void {
    const { address, port } = l.agent;
    const sock = connect({ host: address, port, ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}), noDelay: true });
    l.sock = sock;
    this.counts.connects++;
    sock.setTimeout(this.opts.connectTimeoutMs);
    sock.once('connect', () => {
      if (l.sock !== sock) return;
      sock.setTimeout(0);
      l.open = true;
      this.opts.log.info('handoff agent connected', { backend: l.agent.key, agent: `${address}:${port}` });
      for (const m of l.queue) sock.write(m);
      l.queue = [];
    });
    sock.on('timeout', () => sock.destroy(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`)));
    sock.on('data', (b: Buffer) => {
      if (l.sock !== sock) return;
      for (const f of l.rx.push(b)) {
        if (!f.ok) {
          // Not a DONE (docs/handoff.md): the connection is dropped, its pending messages fail.
          this.counts.malformed++;
          this.opts.log.warn('handoff agent sent a malformed reply', { backend: l.agent.key, error: f.error.message });
          sock.destroy();
          return;
        }
        const { id, status, errno } = f.msg;
        if (!l.pending.delete(id)) continue; // failed already (the link broke) or never ours
        if (status === 0) this.counts.done++;
        else {
          this.counts.failed++;
          this.opts.log.debug('handoff refused by the agent', { backend: l.agent.key, id, status, errno });
        }
        this.opts.onDone(id, status);
      }
    });
    sock.on('error', (e) => {
      if (l.sock !== sock) return;
      if (!l.open) this.counts.connectErrors++;
      this.opts.log.warn(l.open ? 'handoff agent connection failed' : 'handoff agent unreachable', { backend: l.agent.key, agent: `${address}:${port}`, error: e.message });
    });
    sock.on('close', () => {
      if (l.sock !== sock) return;
      this.fail(l, 'closed');
    });
  }

  /** Fails every message waiting on the link and forgets its connection (the next send reconnects after the back-off). */
  private fail(l: Link, why: string): void {
    const ids = [...l.pending];
    l.pending.clear();
    l.queue = [];
    const s = l.sock;
    l.sock = null;
    l.open = false;
    l.rx = new DoneReader();
    l.retryAt = Date.now() + BACKOFF_MS;
    s?.destroy();
    if (ids.length) this.opts.log.warn('handoff messages failed with their agent connection', { backend: l.agent.key, messages: ids.length, why });
    this.counts.linkFailed += ids.length;
    for (const id of ids) this.opts.onDone(id, STATUS_LINK_FAILED);
  }
}
