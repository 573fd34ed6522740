// The server process of a handoff backend: the agent (host/handoff/agent.ts) forks it with a Node
// IPC channel and passes each restored connection with child.send(msg, socket) (SCM_RIGHTS over
// the channel's Unix socket). The connection arrives established, the client's held request
// already in its receive queue, so the HTTP/1.1 server below reads it like any request.
//
// It answers as the lab's nginx does (lab/nginx.conf.tmpl): the backend id in an X-Backend header
// on every response; "/" and anything else -> 200 "<id>\n"; /whoami -> the client address as this
// backend sees it; /health -> "ok <id>\n"; text/plain; keep-alive 65 s.
//
// IPC (JSON messages):
//   agent -> server  { t: 'conn', k }  + the socket       one restored connection, k the agent's key
//   server -> agent  { t: 'ready' }                       once, at start
//                    { t: 'ack', k, ok: true }             the socket is now the HTTP server's
//                    { t: 'ack', k, ok: false, reason }    refused (no socket arrived, at --max)
//                    { t: 'closed', n }                    n handed-off connections closed since the last
// Runs only when started by the agent (SESSIONLB_HANDOFF_SERVER=1 in its environment):
//   server.js --id ID [--max N]
import http from 'node:http';
import type { Socket } from 'node:net';

export interface ServerMessage {
  t: 'conn';
  k: number;
}

export type AgentMessage =
  | { t: 'ready' }
  | { t: 'ack'; k: number; ok: true }
  | { t: 'ack'; k: number; ok: false; reason: string }
  | { t: 'closed'; n: number };

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
  const onClose = () => {
    open--;
    closed++;
    if (draining && open === 0) process.exit(0);
    // Batched: one IPC message per 20 ms, not one per connection.
    flush ??= setTimeout(() => {
      flush = null;
      send({ t: 'closed', n: closed });
      closed = 0;
    }, 20);
  };
  process.on('message', (m: ServerMessage, socket?: Socket) => {
    if (!m || m.t !== 'conn') return;
    if (!socket) {
      send({ t: 'ack', k: m.k, ok: false, reason: 'no socket arrived with the message' });
      return;
    }
    if (open >= max) {
      socket.destroy();
      send({ t: 'ack', k: m.k, ok: false, reason: `at the connection limit (${max})` });
      return;
    }
    open++;
    socket.once('close', onClose);
    socket.on('error', () => {});
    server.emit('connection', socket);
    send({ t: 'ack', k: m.k, ok: true });
  });
  // The agent gone: nothing more will arrive; finish the connections we have, briefly.
  process.on('disconnect', () => {
    draining = true;
    if (open === 0) process.exit(0);
    setTimeout(() => process.exit(0), 2000).unref();
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => {});
  send({ t: 'ready' });
}

if (process.env.SESSIONLB_HANDOFF_SERVER === '1' && typeof process.send === 'function') runServerProcess();
