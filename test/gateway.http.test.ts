// `sessionlb gateway` with real nginx backends and real HTTP clients (curl, wrk) on loopback
// addresses 127.0.8.x. Oracles: each nginx's X-Backend header and body (its id, the request URI,
// nginx's own connection serial number and the request's number on that connection), curl's and
// wrk's accounts of what they received.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ROOT, freePort, metric, run, sleep, startGateway, startNginx, type Proc } from './gateway.helpers.js';

const DIR = join(ROOT, 'test-output', `gateway-http-${process.pid}`);
const VIP = '127.0.8.10';
const IDS = ['b1', 'b2', 'b3'];
const ADDR: Record<string, string> = { b1: '127.0.8.11', b2: '127.0.8.12', b3: '127.0.8.13' };
const missing = ['/usr/sbin/nginx', '/usr/bin/curl', '/usr/bin/wrk'].filter((p) => !existsSync(p));
if (missing.length) console.warn(`test/gateway.http.test.ts skipped: missing ${missing.join(', ')}`);

let port = 0;
let metricsPort = 0;
const nginx: Record<string, Proc> = {};
let gw: Proc | null = null;

function config(extra: Record<string, unknown> = {}, vip: Record<string, unknown> = {}) {
  return {
    vips: [{
      address: VIP, ports: [port], protocols: ['tcp'], scheduler: 'rr',
      healthCheck: { type: 'http', path: '/health', interval: 0.2, timeout: 0.15, rise: 1, fall: 1 },
      backends: IDS.map((id) => ({ id, address: ADDR[id] })), ...vip,
    }],
    gateway: {
      rules: [{ prefix: '/img/', backends: ['b3'] }, { prefix: '/api/', backends: ['b1', 'b2'] }],
      connectTimeout: 0.5, ...extra,
    },
  };
}

/** One curl request: status and X-Backend. */
async function get(path: string, host = VIP, p = port): Promise<{ status: number; backend: string | null; body: string }> {
  const r = await run('curl', ['-sS', '-i', '--max-time', '5', `http://${host}:${p}${path}`]);
  if (r.code !== 0) throw new Error(`curl ${path}: exit ${r.code}: ${r.err}`);
  const [head, body = ''] = r.out.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  const backend = /\r\nX-Backend: (\S+)/i.exec(head)?.[1] ?? null;
  return { status, backend, body };
}

async function metricsText(): Promise<string> {
  const r = await run('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${metricsPort}/metrics`]);
  return r.out;
}

describe.skipIf(missing.length > 0)('sessionlb gateway: HTTP', () => {
  beforeAll(async () => {
    rmSync(DIR, { recursive: true, force: true });
    port = await freePort('127.0.8.1');
    metricsPort = await freePort('127.0.0.1');
    for (const id of IDS) nginx[id] = await startNginx(DIR, id, ADDR[id], port);
    gw = await startGateway(DIR, config({ metrics: { port: metricsPort } }), [{ address: VIP, port }]);
  });

  afterAll(async () => {
    await gw?.stop();
    for (const p of Object.values(nginx)) await p.stop();
    rmSync(DIR, { recursive: true, force: true });
  });

  it('routes URL prefixes by the rules and everything else by the scheduler', async () => {
    const img = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => get(`/img/${i}.png`)));
    expect(img.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(img.map((r) => r.backend))).toEqual(new Set(['b3']));
    expect(img[0].body).toMatch(/^b3 \/img\/1\.png /);
    const api = [];
    for (let i = 0; i < 6; i++) api.push(await get(`/api/v1?x=${i}`));
    expect(api.every((r) => r.status === 200)).toBe(true);
    // Round robin inside the rule's pool: both of its backends, never the third.
    expect(new Set(api.map((r) => r.backend))).toEqual(new Set(['b1', 'b2']));
    const rest = [];
    for (let i = 0; i < 6; i++) rest.push(await get(`/page/${i}`));
    expect(new Set(rest.map((r) => r.backend))).toEqual(new Set(IDS));
    // An absolute-form request line is matched on its path too.
    const r = await run('curl', ['-sS', '-i', '--max-time', '5', '--request-target', `http://${VIP}:${port}/img/abs`, `http://${VIP}:${port}/`]);
    expect(r.out).toMatch(/X-Backend: b3/);
    const m = await metricsText();
    expect(metric(m, 'sessionlb_gateway_choices_total', { reason: 'rule' })).toBeGreaterThanOrEqual(13);
    expect(metric(m, 'sessionlb_gateway_choices_total', { reason: 'scheduler' })).toBeGreaterThanOrEqual(6);
  });

  it('keeps a keep-alive connection on the first request\'s backend (one backend connection, requests in order)', async () => {
    const urls = ['/api/a', '/img/b', '/c', '/d', '/img/e'].map((p) => `http://${VIP}:${port}${p}`);
    const r = await run('curl', ['-sS', '--max-time', '10', ...urls]);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => l.split(' '));
    expect(lines.length).toBe(5);
    // Pinned: the first request (/api/ -> b1 or b2) decides; the /img/ ones ride along.
    expect(['b1', 'b2']).toContain(lines[0][0]);
    expect(new Set(lines.map((l) => l[0])).size).toBe(1);
    expect(lines.map((l) => l[1])).toEqual(['/api/a', '/img/b', '/c', '/d', '/img/e']);
    // nginx saw one connection carrying requests 1..5.
    expect(new Set(lines.map((l) => l[2])).size).toBe(1);
    expect(lines.map((l) => l[3])).toEqual(['1', '2', '3', '4', '5']);
  });

  it('serves wrk over keep-alive with no errors', async () => {
    const r = await run('wrk', ['-t1', '-c8', '-d1s', '--timeout', '2s', `http://${VIP}:${port}/page`], 20_000);
    expect(r.code).toBe(0);
    const n = Number(/(\d+) requests in/.exec(r.out)?.[1] ?? 0);
    expect(n).toBeGreaterThan(500);
    expect(r.out).not.toMatch(/Non-2xx|Socket errors/);
  });

  it('passes request bodies and large responses both ways', async () => {
    mkdirSync(DIR, { recursive: true });
    const bodyFile = join(DIR, 'body.bin');
    writeFileSync(bodyFile, Buffer.alloc(3 << 20, 0x61));
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_upload}', '--max-time', '10', '-X', 'POST', '--data-binary', `@${bodyFile}`, `http://${VIP}:${port}/img/post`]);
    // nginx's `return 200` reads and discards the body; all of it was sent through the gateway.
    expect(r.out).toBe(`200 ${3 << 20}`);
    const out = join(DIR, 'big.out');
    const g = await run('curl', ['-sS', '-o', out, '-w', '%{http_code}', '--max-time', '10', `http://${VIP}:${port}/big`]);
    expect(g.out).toBe('200');
    expect(readFileSync(out).equals(readFileSync(join(DIR, 'nginx-b1', 'big.bin')))).toBe(true);
  });

  it('answers 503 itself when the connection limit is reached, and serves again below it', async () => {
    const p2 = await freePort('127.0.8.1');
    // A second gateway on another port with room for two connections (its own nginx listeners).
    const extra = await Promise.all(['b1', 'b2', 'b3'].map((id) => startNginx(join(DIR, 'lim'), id, ADDR[id], p2)));
    const g2 = await startGateway(DIR, { ...config({ maxConnections: 2 }, { ports: [p2] }) }, [{ address: VIP, port: p2 }]);
    try {
      await sleep(100); // the readiness probe's connection is gone
      const held = [0, 1].map(() => {
        const s = connect({ host: VIP, port: p2 });
        s.write(`GET /page HTTP/1.1\r\nHost: x\r\n\r\n`);
        s.on('data', () => {});
        return s;
      });
      await sleep(300);
      const refused = await get('/page', VIP, p2);
      expect(refused.status).toBe(503);
      expect(refused.backend).toBeNull();
      expect(refused.body).toMatch(/503 Service Unavailable/);
      for (const s of held) s.destroy();
      await sleep(300);
      const ok = await get('/page', VIP, p2);
      expect(ok.status).toBe(200);
      expect(ok.backend).not.toBeNull();
    } finally {
      await g2.stop();
      for (const p of extra) await p.stop();
    }
  });

  it('source address, head timeout (408) and idle timeout', async () => {
    const p3 = await freePort('127.0.8.1');
    const extra = await Promise.all(['b1', 'b2', 'b3'].map((id) => startNginx(join(DIR, 'src'), id, ADDR[id], p3)));
    // A fourth backend where nothing listens and nothing checks it: every connect to it is refused.
    const cfg3 = config({ source: '127.0.8.5', headTimeout: 0.3, idleTimeout: 0.5 }, { ports: [p3] });
    cfg3.vips[0].backends.push({ id: 'dead', address: '127.0.8.19', healthCheck: { type: 'none' } } as never);
    const g3 = await startGateway(DIR, cfg3, [{ address: VIP, port: p3 }]);
    let stopped = false;
    try {
      // Redispatch: round robin sends every fourth connection to "dead"; all are served elsewhere.
      const rs = [];
      for (let i = 0; i < 8; i++) rs.push(await get(`/r${i}`, VIP, p3));
      expect(rs.every((r) => r.status === 200 && r.backend !== null && r.backend !== 'dead')).toBe(true);
      // The backend sees the configured source address (the default gateway's test sees 127.0.0.1).
      const r = await run('curl', ['-sS', '-i', '--max-time', '5', `http://${VIP}:${p3}/x`]);
      expect(r.out).toMatch(/\r\nX-Remote: 127\.0\.8\.5\r\n/);
      const d = await run('curl', ['-sS', '-i', '--max-time', '5', `http://${VIP}:${port}/x`]);
      expect(d.out).toMatch(/\r\nX-Remote: 127\.0\.0\.1\r\n/);
      // A head that never completes: 408 after headTimeout.
      const t0 = Date.now();
      const slow = await new Promise<string>((res) => {
        const s = connect({ host: VIP, port: p3 });
        let out = '';
        s.on('data', (x) => (out += x));
        s.on('close', () => res(out));
        s.write('GET / HTTP/1.1\r\nHost: x\r\n');
      });
      expect(slow).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      // An idle keep-alive connection is closed after idleTimeout (nginx's own is 65 s).
      const t1 = Date.now();
      const idle = await new Promise<{ out: string; ms: number }>((res) => {
        const s = connect({ host: VIP, port: p3 });
        let out = '';
        s.on('data', (x) => (out += x));
        s.on('close', () => res({ out, ms: Date.now() - t1 }));
        s.write('GET /idle HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      expect(idle.out).toMatch(/^HTTP\/1\.1 200[^]*\/idle/);
      expect(idle.ms).toBeGreaterThanOrEqual(450);
      expect(idle.ms).toBeLessThan(3000);
      await g3.stop();
      stopped = true;
      const final = JSON.parse(g3.out());
      expect(final.backends.find((b: { id: string }) => b.id === 'dead').connectFailures).toBeGreaterThanOrEqual(2);
      expect(final.stats.redispatches).toBeGreaterThanOrEqual(2);
      expect(final.stats.refused.no_backend).toBe(0);
    } finally {
      if (!stopped) await g3.stop();
      for (const p of extra) await p.stop();
    }
  });

  it('SIGHUP reloads the config: backends and rules change, new ports open, open connections stay; a bad config is refused', async () => {
    const p4 = await freePort('127.0.8.1');
    const p5 = await freePort('127.0.8.1');
    const extra = await Promise.all(['b1', 'b2', 'b3'].map((id) => startNginx(join(DIR, 'hup'), id, ADDR[id], p4)));
    extra.push(await startNginx(join(DIR, 'hup5'), 'b3', ADDR.b3, p5));
    const file = join(DIR, 'hup.json');
    const two = { vips: [{ address: VIP, ports: [p4], protocols: ['tcp'], scheduler: 'rr', backends: [{ id: 'b1', address: ADDR.b1 }, { id: 'b2', address: ADDR.b2 }] }] };
    const g4 = await startGateway(DIR, two, [{ address: VIP, port: p4 }], file);
    try {
      // A keep-alive connection, open across the reload.
      const s = connect({ host: VIP, port: p4 });
      let got = '';
      s.on('data', (x) => (got += x));
      const ask = async (path: string) => {
        const from = got.length;
        s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        for (let i = 0; i < 100 && !(got.slice(from).split('\r\n\r\n')[1] ?? '').endsWith('\n'); i++) await sleep(20);
        return got.slice(from);
      };
      const first = await ask('/one');
      const pinned = /X-Backend: (\S+)/.exec(first)![1];
      const conn = new RegExp(`${pinned} /one (\\d+) 1`).exec(first)![1];
      // Reload: the pinned backend is removed, b3 added with a rule, a second port.
      const other = pinned === 'b1' ? 'b2' : 'b1';
      writeFileSync(file, JSON.stringify({
        vips: [{ address: VIP, ports: [p4, p5], protocols: ['tcp'], scheduler: 'rr', backends: [{ id: other, address: ADDR[other] }, { id: 'b3', address: ADDR.b3 }] }],
        gateway: { rules: [{ prefix: '/img/', backends: ['b3'] }] },
      }));
      g4.child.kill('SIGHUP');
      for (let i = 0; i < 50 && !g4.err().includes('config reloaded'); i++) await sleep(50);
      expect(g4.err()).toMatch(/"msg":"config reloaded".*"listenersAdded":1/);
      // The open connection still reaches its backend, on the same nginx connection.
      const second = await ask('/two');
      expect(second).toMatch(new RegExp(`X-Backend: ${pinned}`));
      expect(second).toMatch(new RegExp(`${pinned} /two ${conn} 2`));
      s.destroy();
      const img = await get('/img/a', VIP, p4);
      expect(img.backend).toBe('b3');
      const rest = [];
      for (let i = 0; i < 4; i++) rest.push((await get(`/p${i}`, VIP, p4)).backend);
      expect(new Set(rest)).toEqual(new Set([other, 'b3']));
      expect((await get('/img/z', VIP, p5)).backend).toBe('b3');
      // A config with a mistake is refused and the running one stays.
      writeFileSync(file, JSON.stringify({ vips: [{ address: VIP, ports: [p4], backends: [] }] }));
      g4.child.kill('SIGHUP');
      for (let i = 0; i < 50 && !g4.err().includes('config reload failed'); i++) await sleep(50);
      expect(g4.err()).toMatch(/"msg":"config reload failed; the old config stays".*vips\[0\]\.backends/);
      expect((await get('/img/again', VIP, p4)).backend).toBe('b3');
    } finally {
      await g4.stop();
      for (const p of extra) await p.stop();
    }
    const final = JSON.parse(g4.out());
    expect(final.reloads).toBe(1);
    expect(final.reloadFailures).toBe(1);
  });

  it('tcpPorts: a server-speaks-first protocol proxied at layer 4 (no head awaited), round robin at accept', async () => {
    const { createServer } = await import('node:net');
    const p6 = await freePort('127.0.8.1');
    const servers = await Promise.all(IDS.map((id) => new Promise<import('node:net').Server>((res) => {
      const srv = createServer((c) => {
        c.write(`hello from ${id}\n`);
        c.on('data', (d) => c.write(d));
        c.on('error', () => {});
      });
      srv.listen(p6, ADDR[id], () => res(srv));
    })));
    const g6 = await startGateway(DIR, config({ tcpPorts: [p6] }, { ports: [p6], healthCheck: { type: 'tcp', interval: 0.2, timeout: 0.15 } }), [{ address: VIP, port: p6 }]);
    try {
      const greet: string[] = [];
      for (let i = 0; i < 3; i++) {
        const out = await new Promise<string>((res, rej) => {
          const c = connect({ host: VIP, port: p6 });
          let got = '';
          const t = setTimeout(() => rej(new Error(`no greeting (got ${JSON.stringify(got)})`)), 2000);
          c.on('data', (d) => {
            got += d;
            if (got === `${got.split('\n')[0]}\n` && !got.includes('ping')) c.write('ping\n');
            if (got.endsWith('ping\n')) {
              clearTimeout(t);
              c.destroy();
              res(got);
            }
          });
        });
        expect(out).toMatch(/^hello from (b1|b2|b3)\nping\n$/);
        greet.push(out.split('\n')[0].slice(11));
      }
      expect(new Set(greet).size).toBe(3);
    } finally {
      await g6.stop();
      for (const srv of servers) srv.close();
    }
  });

  it('refuses a request head that is not HTTP with 400 and an oversized one with 431', async () => {
    const r1 = await new Promise<string>((res) => {
      const s = connect({ host: VIP, port });
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('close', () => res(out));
      s.write('HELLO THERE\r\n\r\n');
    });
    expect(r1).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    const r2 = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-H', `X-Big: ${'y'.repeat(20_000)}`, `http://${VIP}:${port}/`]);
    expect(r2.out).toBe('431');
  });

  it('skips a dead backend: redispatch at once, then the health check marks it down', async () => {
    await nginx.b2.stop();
    // Right after the kill (before any health check has noticed) every request is still served.
    const rs = [];
    for (let i = 0; i < 6; i++) rs.push(await get(`/api/${i}`));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(new Set(rs.map((r) => r.backend))).toEqual(new Set(['b1']));
    // Health: down within a second (interval 0.2 s, fall 1).
    let m = '';
    for (let i = 0; i < 20; i++) {
      m = await metricsText();
      if (metric(m, 'sessionlb_gateway_backend_up', { backend: 'b2' }) === 0) break;
      await sleep(100);
    }
    expect(metric(m, 'sessionlb_gateway_backend_up', { backend: 'b2' })).toBe(0);
    expect(metric(m, 'sessionlb_gateway_backend_state', { backend: 'b2', state: 'down' })).toBe(1);
    // (Whether a request met the dead backend before the check did depends on timing; the
    // redispatch itself is tested with a backend that never listens, below.)
    const failuresBefore = metric(m, 'sessionlb_gateway_backend_connect_failures_total', { backend: 'b2' })!;
    const after = [];
    for (let i = 0; i < 6; i++) after.push(await get(`/page/${i}`));
    expect(after.every((r) => r.status === 200 && r.backend !== 'b2')).toBe(true);
    const m2 = await metricsText();
    // Down backends are not tried any more.
    expect(metric(m2, 'sessionlb_gateway_backend_connect_failures_total', { backend: 'b2' })).toBe(failuresBefore);
    // A rule whose only backend is gone: 503 from the gateway.
    await nginx.b3.stop();
    await sleep(600);
    const none = await get('/img/x');
    expect(none.status).toBe(503);
    expect(gw!.err()).toMatch(/"msg":"backend down".*"backend":"b2"/);
  });

  it('SIGTERM stops it at once (exit 0) with the final counters on stdout, even with a half-read head open', async () => {
    const s = connect({ host: VIP, port });
    s.on('error', () => {});
    s.write('GET /slow HTTP/1.1\r\n'); // head never finished: its timer must not hold the process
    await sleep(100);
    const t0 = Date.now();
    const code = await gw!.stop('SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    const final = JSON.parse(gw!.out());
    expect(final.stats.proxied).toBeGreaterThan(20);
    expect(final.backends.map((b: { id: string }) => b.id)).toEqual(IDS);
    s.destroy();
    gw = null;
  });
});

describe('sessionlb gateway: CLI', () => {
  it('--help and config errors', async () => {
    const CLI = join(ROOT, 'dist', 'host', 'cli', 'main.js');
    const h = await run(process.execPath, [CLI, 'gateway', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/usage: sessionlb gateway --config FILE/);
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const d = join(ROOT, 'test-output', `gateway-cli-${process.pid}`);
    mkdirSync(d, { recursive: true });
    const f = join(d, 'bad.json');
    writeFileSync(f, JSON.stringify({ vips: [{ address: VIP, ports: [80], backends: [{ id: 'b1', address: ADDR.b1 }] }], gateway: { rules: [{ prefix: '/x', backends: ['zz'] }] } }));
    const r = await run(process.execPath, [CLI, 'gateway', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/gateway\.rules\[0\]\.backends\[0\]: "zz" is not a backend of VIP 127\.0\.8\.10/);
    const m = await run(process.execPath, [CLI, 'gateway']);
    expect(m.code).toBe(2);
    rmSync(d, { recursive: true, force: true });
  });
});
