// The TCP_REPAIR addon (native/repair.c, built with the TAP addon by `npm ci` / `node native/build.mjs`).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface RestoreParams {
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  sndNxt: number;
  rcvNxt: number;
  sndWnd: number;
  rcvWnd: number;
  mss: number;
  flags?: number;
  sndWscale?: number;
  rcvWscale?: number;
  tsval?: number;
  data?: Uint8Array;
}

export interface DumpedSocket {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** tcpi_state (1 = ESTABLISHED). */
  state: number;
  /** Send queue's TCP_QUEUE_SEQ (write_seq: next byte to be queued; = snd_nxt when outq is 0). */
  sndSeq: number;
  /** Receive queue's TCP_QUEUE_SEQ (rcv_nxt: after the bytes still queued). */
  rcvSeq: number;
  outq: number;
  inq: number;
  /** TCP_MAXSEG as getsockopt reports it. */
  mss: number;
  /** tcpi_snd_mss: the cached send MSS (timestamp option excluded). */
  sndMss: number;
  advMss: number;
  /** tcpi_options: 1 timestamps, 2 SACK, 4 window scaling. */
  options: number;
  sndWscale: number;
  rcvWscale: number;
  /** TCP_TIMESTAMP: the TSval a segment sent now would carry. */
  tsval: number;
  window: { sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number };
  /** A copy of the unread receive queue. */
  data: Buffer;
}

export interface RepairAddon {
  /** An established socket rebuilt without a handshake; throws Error & { errno, step, code }. */
  restore(p: RestoreParams): number;
  /** A live socket's state read under TCP_REPAIR; close = true closes it silently (no FIN, no RST). */
  dump(fd: number, close?: boolean): DumpedSocket;
  /** Closes a socket in repair mode: the peer sees nothing. */
  closeSilently(fd: number): void;
  /** Process-wide: TIME_WAIT sockets restore() replaced for a client reusing its port (docs/handoff.md). */
  counters(): { timeWaitReclaimed: number };
  /** Sends msg and a duplicate of fd (SCM_RIGHTS) in one datagram to the Unix datagram socket at path. */
  passFd(path: string, fd: number, msg: Uint8Array): void;
  /** A non-blocking Unix datagram socket bound at path (the server process's receiving end). */
  dgramBind(path: string): number;
  /** A non-blocking Unix datagram socket connected to path (the agent's sending end). */
  dgramConnect(path: string): number;
  /**
   * Sends fds over sock (SCM_RIGHTS, up to 253 per datagram); returns how many went, in order,
   * fewer when the receiver's queue is full (EAGAIN). close = true closes the sent ones here.
   * Throws (errno, step) only when nothing could be sent for another reason (ECONNREFUSED: receiver gone).
   */
  sendFds(sock: number, fds: number[], close?: boolean): number;
  /** The descriptors carried by the datagrams queued on sock (reads until empty or about max). */
  recvFds(sock: number, max?: number): number[];
  /** libuv poll on fd: events 1 readable, 2 writable; callback(events, or a negative libuv status). */
  pollStart(fd: number, events: number, callback: (events: number) => void): PollHandle;
  pollStop(handle: PollHandle): void;
}

export type PollHandle = object & { readonly __poll?: never };

export type RepairError = Error & { errno: number; step: string; code: string };

let addon: RepairAddon | null = null;

export function repairAddonPath(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const p = join(here, up, 'native/build/Release/sessionlb_repair.node');
    if (existsSync(p)) return p;
  }
  return null;
}

export function loadRepairAddon(): RepairAddon {
  if (addon) return addon;
  const p = repairAddonPath();
  if (!p) {
    throw Object.assign(new Error('the TCP repair addon is not built (native/build/Release/sessionlb_repair.node): run `npm ci` or `node native/build.mjs` (needs gcc, make, python3)'), { code: 'REPAIR_ADDON' });
  }
  addon = createRequire(import.meta.url)(p) as RepairAddon;
  return addon;
}
