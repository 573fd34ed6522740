// The server process of a handoff backend: the agent (host/handoff/agent.ts) forks it and passes
// the restored connections over a Unix datagram socket: the server binds it at the path the agent
// gives (--socket, inside the agent's private temporary directory), waits for it to become readable
// (libuv uv_poll through the repair addon), and takes every queued datagram at once (recvFds:
// recvmsg with SCM_RIGHTS, up to 253 descriptors a datagram). Each descriptor becomes a net.Socket
// handed to the HTTP server; the connection arrives established, the client's held request already
// in its receive queue, so the HTTP/1.1 server below reads it like any request.
//
// It answers as the lab's nginx does (lab/nginx.conf.tmpl): the backend id in an X-Backend header
// on every response; "/" and anything else -> 200 "<id>\n"; /whoami -> the client address as this
// backend sees it; /health -> "ok <id>\n"; text/plain; keep-alive 65 s.
//
// Node IPC channel (JSON messages, few): server -> agent
//   { t: 'ready' }        once, when the datagram socket is bound
//   { t: 'closed', n }    n handed-off connections closed since the last (batched, every 20 ms at most;
//                         includes any it refused at --max), for the agent's count of open ones
// Runs only when started by the agent (SESSIONLB_HANDOFF_SERVER=1 in its environment):
//   server.js --id ID --socket PATH [--max N]
import { closeSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import { loadRepairAddon } from './repair.js';

export type AgentMessage = { t: 'ready' } | { t: 'closed'; n: number };

/** The request handler: nginx's answers from lab/nginx.conf.tmpl for backend `id`. */
export function backendHandler(id: string): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const body = path === '/whoami' ? `${req.socket.remoteAddress ?? ''}\n` : path === '/health' ? `ok ${id}\n` : `${id}\n`;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), 'X-Backend': id });
    res.end(req.method === 'HEAD' ? undefined : body);
    req.resume();
  };
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function runServerProcess(): void {
  const id = arg('--id') ?? 'backend';
  const max = Number(arg('--max') ?? 1e9);
  const path = arg('--socket');
  if (!path) throw new Error('server process: --socket PATH missing');
  const addon = loadRepairAddon();
  const send = (m: AgentMessage) => {
    if (process.connected) process.send!(m);
  };
  const server = http.createServer({ keepAliveTimeout: 65_000 } as http.ServerOptions, backendHandler(id));
  server.keepAliveTimeout = 65_000;
  server.on('clientError', (_e, socket: Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });
  let open = 0;
  let closed = 0;
  let flush: NodeJS.Timeout | null = null;
  let draining = false;
  const noteClosed = () => {
    closed++;
    // Batched: one IPC message per 20 ms, not one per connection.
    flush ??= setTimeout(() => {
      flush = null;
      send({ t: 'closed', n: closed });
      closed = 0;
    }, 20);
  };
  const onClose = () => {
    open--;
    noteClosed();
    if (draining && open === 0) process.exit(0);
  };
  const noop = () => {};
  const adopt = (fd: number) => {
    if (open >= max) {
      // The agent counts handed-off connections itself and stops at --max; this is a backstop.
      closeSync(fd);
      noteClosed();
      return;
    }
    let sock: Socket;
    try {
      sock = new net.Socket({ fd, readable: true, writable: true });
    } catch {
      try {
        closeSync(fd);
      } catch {}
      noteClosed();
      return;
    }
    open++;
    sock.once('close', onClose);
    sock.on('error', noop);
    server.emit('connection', sock);
  };
  const rx = addon.dgramBind(path);
  const poll = addon.pollStart(rx, 1, () => {
    let fds: number[];
    try {
      fds = addon.recvFds(rx, 1024);
    } catch (e) {
      process.stderr.write(`handoff server process: recvFds: ${(e as Error).message}\n`);
      return;
    }
    for (const fd of fds) adopt(fd);
  });
  // The agent gone: nothing more will arrive; finish the connections we have, briefly.
  process.on('disconnect', () => {
    draining = true;
    addon.pollStop(poll);
    closeSync(rx); // datagrams still queued: the kernel closes the descriptors they carry
    // An agent killed outright left its private directory: remove the socket and the (then empty) directory.
    try {
      unlinkSync(path);
      rmdirSync(dirname(path));
    } catch {}
    if (open === 0) process.exit(0);
    setTimeout(() => process.exit(0), 2000).unref();
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => {});
  send({ t: 'ready' });
}

if (process.env.SESSIONLB_HANDOFF_SERVER === '1' && typeof process.send === 'function') runServerProcess();
