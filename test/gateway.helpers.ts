// Helpers for the gateway tests and bench/gateway.ts: real nginx backends (each answers with its id
// in an X-Backend header and the body), the lab's GStreamer RTSP server, and `sessionlb gateway` as
// a child process, all on loopback addresses 127.0.8.x (nothing leaves the host).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(ROOT, 'dist', 'host', 'cli', 'main.js');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on `host` right now. */
export function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitPort(host: string, port: number, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host, port });
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${host}:${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** waitPort from inside network namespace `ns` (bash's /dev/tcp). */
export async function waitPortNs(ns: string, host: string, port: number, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await run('ip', ['netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`], 3000);
    if (r.code === 0) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${host}:${port} in ${ns} after ${ms} ms`);
    await sleep(50);
  }
}

export interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  stop(sig?: NodeJS.Signals): Promise<number | null>;
}

export function start(cmd: string, args: string[], opts: { cwd?: string } = {}): Proc {
  const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child, out: () => out, err: () => err,
    async stop(sig: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const c = await exited;
      clearTimeout(t);
      return c;
    },
  };
}

/** nginx on address:port answering every path with its id (body and X-Backend). */
export async function startNginx(dir: string, id: string, address: string, port: number, opts: { workers?: number; ns?: string } = {}): Promise<Proc> {
  const d = join(dir, `nginx-${id}`);
  mkdirSync(d, { recursive: true });
  // /big: 4 MiB of pseudo-random bytes, the same for every backend id (a large response).
  const big = Buffer.alloc(4 << 20);
  let x = 0x12345678;
  for (let i = 0; i < big.length; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    big.writeUInt32LE(x >>> 0, i);
  }
  writeFileSync(join(d, 'big.bin'), big);
  writeFileSync(join(d, 'nginx.conf'), `${process.getuid?.() === 0 ? 'user root root;\n' : ''}worker_processes ${opts.workers ?? 1};
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
daemon off;
master_process on;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}/cb; proxy_temp_path ${d}/px; fastcgi_temp_path ${d}/fc; uwsgi_temp_path ${d}/uw; scgi_temp_path ${d}/sc;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  client_max_body_size 64m;
  server {
    listen ${address}:${port} backlog=4096;
    default_type text/plain;
    location = /big { add_header X-Backend ${id} always; alias ${d}/big.bin; }
    location / { add_header X-Backend ${id} always; add_header X-Remote $remote_addr always; return 200 "${id} $request_uri $connection $connection_requests\\n"; }
  }
}
`);
  const argv = ['/usr/sbin/nginx', '-p', d, '-c', join(d, 'nginx.conf')];
  const p = opts.ns ? start('ip', ['netns', 'exec', opts.ns, ...argv]) : start(argv[0], argv.slice(1));
  if (opts.ns) await waitPortNs(opts.ns, address, port);
  else await waitPort(address, port);
  return p;
}

/** The lab's GStreamer RTSP server (rtsp://address:port/test) under the system python3 (it has gi). */
export async function startRtsp(id: string, address: string, port: number): Promise<Proc> {
  const p = start('/usr/bin/python3', [join(ROOT, 'lab', 'rtsp-server.py'), '--address', address, '--port', String(port), '--id', id]);
  await waitPort(address, port, 20_000);
  return p;
}

/** `sessionlb gateway --config FILE`; resolves once every VIP port accepts. */
export async function startGateway(dir: string, config: unknown, listen: { address: string; port: number }[], configFile?: string, ns?: string): Promise<Proc> {
  mkdirSync(dir, { recursive: true });
  const file = configFile ?? join(dir, `gateway-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const argv = [process.execPath, CLI, 'gateway', '--config', file];
  // `ip netns exec` execs the command: the child's pid is the gateway's.
  const p = ns ? start('ip', ['netns', 'exec', ns, ...argv]) : start(argv[0], argv.slice(1));
  try {
    for (const l of listen) await (ns ? waitPortNs(ns, l.address, l.port) : waitPort(l.address, l.port));
    // Signal handlers (SIGHUP reload) are installed in the same tick as this line is logged.
    for (let i = 0; i < 200 && !p.err().includes('"gateway ready"'); i++) await sleep(25);
    if (!p.err().includes('"gateway ready"')) throw new Error('no "gateway ready" line');
  } catch (e) {
    await p.stop('SIGKILL');
    throw new Error(`${(e as Error).message}; gateway stderr: ${p.err()}`);
  }
  return p;
}

/** A child process run to completion without blocking the event loop. */
export function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => { clearTimeout(t); res({ code, out, err }); });
  });
}

/** Prometheus text -> value of the first sample whose name and labels contain `match`. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return null;
}
