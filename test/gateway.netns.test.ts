// `sessionlb gateway` between network namespaces (root): the VIP is a kernel address in the
// gateway's namespace, clients and backends are in namespaces of their own, as in the lab.
//
//   slbt8-<n>-c (10.99.8.10) --veth-- slbt8-<n>-gw [VIP 10.99.8.50 on lo; 10.99.8.1 | bridge 10.99.8.65] --veth-- slbt8-<n>-b1 (10.99.8.71), -b2 (10.99.8.72)
//
// Oracles: the kernel (the client's connection is to the VIP; nginx's $remote_addr is the
// gateway's configured source address, the backends have no route to the client at all), nginx's
// X-Backend header, curl and wrk.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, startGateway, startNginx, type Proc } from './gateway.helpers.js';

const TAG = `slbt8-${process.pid % 100000}`;
const NS = { c: `${TAG}-c`, gw: `${TAG}-gw`, b1: `${TAG}-b1`, b2: `${TAG}-b2` };
const DIR = join(ROOT, 'test-output', `gateway-netns-${process.pid}`);
const VIP = '10.99.8.50';
const SRC = '10.99.8.65';
const B = { b1: '10.99.8.71', b2: '10.99.8.72' };
const PORT = 80;

function sh(cmd: string[]): { code: number; err: string } {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? -1, err: r.stderr ?? '' };
}
function must(cmd: string[]): void {
  const r = sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.err}`);
}

function unsupported(): string | null {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces)';
  if (!existsSync('/usr/sbin/nginx') || !existsSync('/usr/bin/wrk')) return 'needs /usr/sbin/nginx and /usr/bin/wrk';
  const probe = `${TAG}-probe`;
  const r = sh(['ip', 'netns', 'add', probe]);
  if (r.code !== 0) return `cannot create a network namespace: ${r.err.trim()}`;
  sh(['ip', 'netns', 'del', probe]);
  return null;
}
const why = unsupported();
if (why) console.warn(`test/gateway.netns.test.ts skipped: ${why}`);

function cleanup(): void {
  for (const n of Object.values(NS)) sh(['ip', 'netns', 'del', n]);
}

const procs: Proc[] = [];
let gw: Proc | null = null;

describe.skipIf(why !== null)('sessionlb gateway between network namespaces', () => {
  beforeAll(async () => {
    cleanup();
    rmSync(DIR, { recursive: true, force: true });
    for (const n of Object.values(NS)) {
      must(['ip', 'netns', 'add', n]);
      must(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    }
    const ip = (n: string, ...a: string[]) => must(['ip', '-n', n, ...a]);
    // client <-> gateway
    ip(NS.gw, 'link', 'add', 'cli', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.c);
    ip(NS.gw, 'addr', 'add', '10.99.8.1/26', 'dev', 'cli');
    ip(NS.gw, 'link', 'set', 'cli', 'up');
    ip(NS.gw, 'addr', 'add', `${VIP}/32`, 'dev', 'lo');
    ip(NS.c, 'addr', 'add', '10.99.8.10/26', 'dev', 'eth0');
    ip(NS.c, 'link', 'set', 'eth0', 'up');
    ip(NS.c, 'route', 'add', 'default', 'via', '10.99.8.1');
    // gateway bridge <-> backends (no route back to the client LAN: only the gateway talks to them)
    ip(NS.gw, 'link', 'add', 'gwbr', 'type', 'bridge');
    ip(NS.gw, 'addr', 'add', `${SRC}/26`, 'dev', 'gwbr');
    ip(NS.gw, 'link', 'set', 'gwbr', 'up');
    for (const id of ['b1', 'b2'] as const) {
      ip(NS.gw, 'link', 'add', id, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS[id]);
      ip(NS.gw, 'link', 'set', id, 'master', 'gwbr', 'up');
      ip(NS[id], 'addr', 'add', `${B[id]}/26`, 'dev', 'eth0');
      ip(NS[id], 'link', 'set', 'eth0', 'up');
      procs.push(await startNginx(DIR, id, B[id], PORT, { ns: NS[id] }));
    }
    gw = await startGateway(DIR, {
      vips: [{
        address: VIP, ports: [PORT], protocols: ['tcp'], scheduler: 'rr',
        healthCheck: { type: 'tcp', interval: 0.3, timeout: 0.2, localAddress: SRC },
        backends: [{ id: 'b1', address: B.b1 }, { id: 'b2', address: B.b2 }],
      }],
      gateway: { source: SRC, rules: [{ prefix: '/two/', backends: ['b2'] }], metrics: { port: 9181 } },
    }, [{ address: VIP, port: PORT }], undefined, NS.gw);
  });

  afterAll(async () => {
    await gw?.stop();
    for (const p of procs) await p.stop();
    cleanup();
    rmSync(DIR, { recursive: true, force: true });
  });

  const curl = (path: string) => run('ip', ['netns', 'exec', NS.c, 'curl', '-sS', '-i', '--max-time', '5', `http://${VIP}:${PORT}${path}`]);

  it('clients reach the VIP; the backends see the gateway\'s source address; rules and round robin hold', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await curl(`/p${i}`);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^HTTP\/1\.1 200/);
      expect(r.out).toMatch(new RegExp(`\\r\\nX-Remote: ${SRC.replace(/\./g, '\\.')}\\r\\n`));
      seen.push(/X-Backend: (\S+)/.exec(r.out)![1]);
    }
    expect(new Set(seen)).toEqual(new Set(['b1', 'b2']));
    for (let i = 0; i < 3; i++) expect((await curl(`/two/${i}`)).out).toMatch(/X-Backend: b2/);
    // The backends cannot reach the client themselves: every answer came through the gateway.
    const direct = await run('ip', ['netns', 'exec', NS.b1, 'bash', '-c', 'exec 3<>/dev/tcp/10.99.8.10/1'], 5000);
    expect(direct.err).toMatch(/unreachable/i);
  });

  it('wrk from the client namespace: no errors; the gateway\'s metrics (in its namespace) count the connections', async () => {
    const r = await run('ip', ['netns', 'exec', NS.c, 'wrk', '-t1', '-c8', '-d1s', '--timeout', '2s', `http://${VIP}:${PORT}/`], 20_000);
    expect(r.code).toBe(0);
    expect(Number(/(\d+) requests in/.exec(r.out)?.[1] ?? 0)).toBeGreaterThan(300);
    expect(r.out).not.toMatch(/Non-2xx|Socket errors/);
    const m = await run('ip', ['netns', 'exec', NS.gw, 'curl', '-sS', 'http://127.0.0.1:9181/metrics']);
    expect(m.out).toMatch(/sessionlb_gateway_backend_up\{vip="10\.99\.8\.50",backend="b1"\} 1/);
    const total = [...m.out.matchAll(/sessionlb_gateway_backend_connections_total\{[^}]*\} (\d+)/g)].reduce((s, x) => s + Number(x[1]), 0);
    expect(total).toBeGreaterThanOrEqual(9 + 8);
  });
});
