// `sessionlb agent --listen ADDR:PORT --id BACKEND_ID`: the TCP handoff agent of one backend
// (host/handoff/agent.ts, docs/handoff.md).
import { isIPv4, isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';
import { EXIT_FAIL, EXIT_OK, UsageError, report } from './errors.js';

export const AGENT_USAGE = `usage: sessionlb agent --listen ADDR[:PORT] --id BACKEND_ID [--pass PORT=PATH]... [--max N] [--max-pending N] [--log-level L]

The backend side of TCP handoff (method "handoff"): accepts the front ends' connections on
ADDR:PORT (default port 9190) and, for each HANDOFF message, recreates the client's TCP connection
as an established socket with Linux TCP_REPAIR (no handshake; the held request bytes already in
its receive queue), passes it to the server process (an HTTP/1.1 server answering like the lab's
nginx: the backend id in the body and an X-Backend header, /whoami, /health, keep-alive) and
replies DONE. The backend must own the VIP (on lo, arp_ignore=1, arp_announce=2, as for DR).
Needs CAP_NET_ADMIN (root) and the native addon (node native/build.mjs). docs/handoff.md.

options:
  --listen ADDR[:PORT]  address the front ends connect to                     required
  --id BACKEND_ID       the backend id the server process answers with        required
  --pass PORT=PATH      connections to VIP port PORT go to another server
                        process instead: the descriptor and a JSON line
                        {client, clientPort, vip, vipPort} in one datagram
                        (SCM_RIGHTS) to the Unix datagram socket at PATH
                        (repeatable; e.g. the lab's RTSP server, 8554)
  --max N               handed-off connections open at once (more: DONE busy)  default 10000
  --max-pending N       handoffs waiting for room in the server process's queue at once; more
                        wait unread in the front end's connection              default 1024
  --log-level L         debug, info, warn or error                            default info
  --help                this text

Runs until SIGINT or SIGTERM, then prints its counters (JSON) on stdout. Logs are JSON lines on
stderr. exit codes: 0 stopped by a signal, 1 cannot listen or start, 2 usage error`;

function parseListen(s: string): { host: string; port: number } {
  let host = s;
  let port = 9190;
  const m = /^\[(.+)\](?::(\d+))?$/.exec(s) ?? (isIPv4(s) ? null : /^([^:]+):(\d+)$/.exec(s));
  if (m) {
    host = m[1];
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (!isIPv4(host) && !isIPv6(host)) throw new UsageError(`--listen ${s}: not an IP address (ADDR or ADDR:PORT)`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--listen ${s}: port must be 1..65535`);
  return { host, port };
}

export async function runAgent(argv: string[]): Promise<number> {
  let opts: { host: string; port: number; id: string; max: number; maxPending: number; level: 'debug' | 'info' | 'warn' | 'error'; pass: Record<number, string> };
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string', short: 'l' },
        id: { type: 'string' },
        max: { type: 'string' },
        'max-pending': { type: 'string' },
        pass: { type: 'string', multiple: true },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(AGENT_USAGE + '\n');
      return EXIT_OK;
    }
    if (!values.listen) throw new UsageError('missing --listen ADDR[:PORT]');
    if (!values.id) throw new UsageError('missing --id BACKEND_ID');
    if (!/^[\w.:-]{1,64}$/.test(values.id)) throw new UsageError(`--id ${values.id}: 1..64 letters, digits, '_', '.', ':' or '-'`);
    const max = values.max === undefined ? 10_000 : Number(values.max);
    if (!Number.isInteger(max) || max < 1 || max > 1_000_000) throw new UsageError(`--max ${values.max}: must be an integer 1..1000000`);
    const maxPending = values['max-pending'] === undefined ? 1024 : Number(values['max-pending']);
    if (!Number.isInteger(maxPending) || maxPending < 1 || maxPending > 65536) throw new UsageError(`--max-pending ${values['max-pending']}: must be an integer 1..65536`);
    const level = (values['log-level'] ?? 'info') as 'debug' | 'info' | 'warn' | 'error';
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level ${level}: debug, info, warn or error`);
    const pass: Record<number, string> = {};
    for (const p of values.pass ?? []) {
      const m = /^(\d+)=(\/.+)$/.exec(p);
      if (!m || +m[1] < 1 || +m[1] > 65535 || Buffer.byteLength(m[2]) > 106) throw new UsageError(`--pass ${p}: must be PORT=PATH (a port 1..65535, an absolute path of at most 106 bytes)`);
      pass[+m[1]] = m[2];
    }
    opts = { ...parseListen(values.listen), id: values.id, max, maxPending, level, pass };
  } catch (e) {
    return report(e, AGENT_USAGE);
  }
  const { Agent } = await import('../handoff/agent.js');
  const { createLogger } = await import('../live/log.js');
  const log = createLogger({ level: opts.level, fields: { component: 'handoff-agent', backend: opts.id } });
  let agent: import('../handoff/agent.js').Agent;
  try {
    agent = new Agent({ host: opts.host, port: opts.port, id: opts.id, max: opts.max, maxPending: opts.maxPending, pass: opts.pass, logger: log });
    await agent.start();
  } catch (e) {
    const err = e as Error & { code?: string };
    process.stderr.write(`sessionlb: agent: ${err.message}\n`);
    return EXIT_FAIL;
  }
  const a = agent!;
  log.info('agent ready', { listen: `${a.address().host}:${a.address().port}`, max: opts.max, pid: process.pid });
  return new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      log.info('stopping', { signal: sig });
      void a.stop().then(() => {
        process.stdout.write(JSON.stringify(a.snapshot(), null, 2) + '\n');
        resolve(EXIT_OK);
      });
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}
