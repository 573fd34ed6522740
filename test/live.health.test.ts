// Health checks against real servers on 127.0.0.1: a Node TCP server, a Node HTTP server whose
// answers we flip, an RTSP responder written here, and Debian's nginx. Timing assertions are
// generous bounds (the thresholds are checked by counting results, not by the clock).
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../host/ctl/config.js';
import {
  DEFAULT_HEALTH_CHECK, HealthChecker, effectiveState, parseHealthCheck, resolveCheckPort,
  type HealthChange, type HealthCheckConfig, type HealthResult, type HealthTarget,
} from '../host/live/health.js';

const LO = '127.0.0.1';

function check(raw: Record<string, unknown>): HealthCheckConfig {
  return parseHealthCheck(raw, 'test.healthCheck');
}

function listen<T extends NetServer | HttpServer>(srv: T, port = 0): Promise<number> {
  return new Promise((res, rej) => {
    srv.once('error', rej);
    srv.listen(port, LO, () => res((srv.address() as { port: number }).port));
  });
}

function closeServer(srv: NetServer | HttpServer, sockets?: Set<Socket>): Promise<void> {
  for (const s of sockets ?? []) s.destroy();
  (srv as HttpServer).closeAllConnections?.();
  return new Promise((res) => srv.close(() => res()));
}

function tracked(srv: NetServer | HttpServer): Set<Socket> {
  const set = new Set<Socket>();
  srv.on('connection', (s: Socket) => { set.add(s); s.on('close', () => set.delete(s)); });
  return set;
}

/** Records every event of a checker with a timestamp; waitFor resolves on the first match. */
class Recorder {
  results: (HealthResult & { t: number })[] = [];
  changes: (HealthChange & { t: number })[] = [];
  private waiters: { pred: () => boolean; res: () => void }[] = [];
  constructor(hc: HealthChecker) {
    hc.on('result', (r: HealthResult) => { this.results.push({ ...r, t: performance.now() }); this.poke(); });
    hc.on('change', (c: HealthChange) => { this.changes.push({ ...c, t: performance.now() }); this.poke(); });
  }
  private poke() {
    this.waiters = this.waiters.filter((w) => (w.pred() ? (w.res(), false) : true));
  }
  waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}; results: ${JSON.stringify(this.results.slice(-6))}`)), ms);
      this.waiters.push({ pred, res: () => { clearTimeout(timer); res(); } });
    });
  }
  change(id: string, to: string, after = 0) {
    return this.changes.find((c) => c.id === id && c.to === to && c.t >= after);
  }
}

const checkers: HealthChecker[] = [];
function checker(targets: HealthTarget[], random = () => 0): [HealthChecker, Recorder] {
  const hc = new HealthChecker(targets, { random });
  checkers.push(hc);
  return [hc, new Recorder(hc)];
}
afterEach(() => {
  for (const hc of checkers.splice(0)) hc.stop();
});

/** Results of `id` after the last change before index `upto`: the streak that caused a change. */
function streakBefore(rec: Recorder, id: string, change: HealthChange & { t: number }) {
  const rs = rec.results.filter((r) => r.id === id && r.t <= change.t);
  const last = rs[rs.length - 1];
  let k = rs.length - 1;
  while (k >= 0 && rs[k].ok === last.ok) k--;
  return rs.slice(k + 1);
}

describe('parseHealthCheck', () => {
  it('fills the documented defaults', () => {
    const c = check({});
    expect(c).toEqual({ ...DEFAULT_HEALTH_CHECK });
    expect(c).toMatchObject({ type: 'tcp', intervalMs: 500, timeoutMs: 300, rise: 2, fall: 2, initial: 'up', port: null, status: [[200, 399]] });
    // The documented worst-case detection time of the defaults meets the lab's 2 s.
    expect(c.intervalMs * c.fall + c.timeoutMs).toBeLessThanOrEqual(2000);
  });

  it('reads seconds, status forms, and every http field', () => {
    const c = check({
      type: 'http', port: 8080, interval: 0.25, timeout: 0.1, rise: 3, fall: 4, initial: 'down', localAddress: '127.0.0.1',
      onFailure: 'draining', path: '/health?x=1', host: 'www.example', status: [204, '300-302', '2xx'], body: 'ok', bodyRegex: '^b\\d', maxBodyBytes: 100,
    });
    expect(c).toEqual({
      type: 'http', port: 8080, intervalMs: 250, timeoutMs: 100, rise: 3, fall: 4, initial: 'down', localAddress: '127.0.0.1',
      onFailure: 'draining', path: '/health?x=1', host: 'www.example', status: [[204, 204], [300, 302], [200, 299]], body: 'ok', bodyRegex: '^b\\d', maxBodyBytes: 100,
    });
    expect(check({ type: 'http', status: 200 }).status).toEqual([[200, 200]]);
  });

  it('inherits omitted fields from a base (a VIP check overridden per backend)', () => {
    const vip = parseHealthCheck({ type: 'http', path: '/h', interval: 1, timeout: 0.5, fall: 3 }, 'vips[0].healthCheck');
    const b = parseHealthCheck({ fall: 5, port: 81 }, 'vips[0].backends[1].healthCheck', vip);
    expect(b).toMatchObject({ type: 'http', path: '/h', intervalMs: 1000, timeoutMs: 500, fall: 5, port: 81 });
    expect(vip.fall).toBe(3);
    // The base's status array is not shared.
    b.status[0][0] = 1;
    expect(vip.status[0][0]).toBe(200);
  });

  const bad: [unknown, string, RegExp][] = [
    [null, 'test.healthCheck', /must be an object/],
    [{ type: 'icmp' }, 'test.healthCheck.type', /"tcp", "http", "rtsp", "none"/],
    [{ type: 'tcp', status: 200 }, 'test.healthCheck.status', /belongs to "http" checks/],
    [{ type: 'rtsp', body: 'x' }, 'test.healthCheck.body', /unknown field/],
    [{ type: 'none', interval: 1 }, 'test.healthCheck.interval', /unknown field/],
    [{ bogus: 1 }, 'test.healthCheck.bogus', /unknown field/],
    [{ interval: '1s' }, 'test.healthCheck.interval', /number of seconds/],
    [{ interval: 0.001 }, 'test.healthCheck.interval', /from 0.01 to 3600 seconds/],
    [{ interval: 0.2, timeout: 0.5 }, 'test.healthCheck.timeout', /must not exceed the interval/],
    [{ interval: 0.2 }, 'test.healthCheck.interval', /must not exceed the interval/],
    [{ rise: 0 }, 'test.healthCheck.rise', /integer from 1 to 1000/],
    [{ fall: 1.5 }, 'test.healthCheck.fall', /integer/],
    [{ port: 70000 }, 'test.healthCheck.port', /1 to 65535/],
    [{ initial: 'maybe' }, 'test.healthCheck.initial', /"up".*"down"/],
    [{ onFailure: 'gone' }, 'test.healthCheck.onFailure', /"draining"/],
    [{ localAddress: 'eth0' }, 'test.healthCheck.localAddress', /IPv4 or IPv6/],
    [{ type: 'http', path: 'health' }, 'test.healthCheck.path', /start with "\/"/],
    [{ type: 'http', path: '/a b' }, 'test.healthCheck.path', /no spaces/],
    [{ type: 'http', status: [] }, 'test.healthCheck.status', /at least one/],
    [{ type: 'http', status: ['299-200'] }, 'test.healthCheck.status[0]', /range/],
    [{ type: 'http', status: [700] }, 'test.healthCheck.status[0]', /100 to 599/],
    [{ type: 'http', bodyRegex: '(' }, 'test.healthCheck.bodyRegex', /not a valid regular expression/],
    [{ type: 'http', host: '' }, 'test.healthCheck.host', /non-empty/],
  ];
  it.each(bad)('refuses %j at %s', (raw, field, msg) => {
    let err: unknown;
    try {
      parseHealthCheck(raw, 'test.healthCheck');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message.startsWith(`config: ${field}: `)).toBe(true);
  });

  it('resolves the checked port from the service', () => {
    expect(resolveCheckPort(check({ port: 81 }), { ports: [80] }, 'p')).toBe(81);
    expect(resolveCheckPort(check({}), { ports: [443, 80] }, 'p')).toBe(443);
    expect(resolveCheckPort(check({ type: 'rtsp' }), { ports: [80, 8554], rtspPorts: [554, 8554] }, 'p')).toBe(8554);
    expect(resolveCheckPort(check({ type: 'rtsp' }), { ports: null, rtspPorts: [554] }, 'p')).toBe(554);
    expect(resolveCheckPort(check({ type: 'none' }), { ports: null }, 'p')).toBe(0);
    expect(() => resolveCheckPort(check({ type: 'http' }), { ports: null }, 'vips[0].healthCheck')).toThrow(/vips\[0\]\.healthCheck\.port: is required/);
  });

  it('combines the configured state with the health state', () => {
    const drain = check({ onFailure: 'draining' });
    expect(effectiveState('active', 'up')).toBe('active');
    expect(effectiveState('active', 'down')).toBe('down');
    expect(effectiveState('active', 'down', drain)).toBe('draining');
    expect(effectiveState('draining', 'up')).toBe('draining');
    expect(effectiveState('down', 'up')).toBe('down');
    expect(effectiveState('down', 'down', drain)).toBe('down');
  });
});

describe('tcp checks', () => {
  it('goes down after fall failures once the server dies and up after rise successes when it returns', async () => {
    const srv = createNetServer((s) => s.destroy());
    const socks = tracked(srv);
    const port = await listen(srv);
    const c = check({ type: 'tcp', interval: 0.1, timeout: 0.08, rise: 3, fall: 2, initial: 'down' });
    const [hc, rec] = checker([{ id: 'b1', address: LO, port, check: c }]);
    expect(hc.state('b1')).toBe('down');
    hc.start();
    await rec.waitFor(() => !!rec.change('b1', 'up'), 3000, 'b1 up');
    const up1 = rec.change('b1', 'up')!;
    // initial down: exactly `rise` successes, no earlier change.
    expect(rec.changes).toHaveLength(1);
    expect(rec.results.filter((r) => r.t <= up1.t).map((r) => r.ok)).toEqual([true, true, true]);
    expect(up1.reason).toMatch(/3 consecutive successful tcp checks/);

    await closeServer(srv, socks);
    const killed = performance.now();
    await rec.waitFor(() => !!rec.change('b1', 'down', killed), 3000, 'b1 down');
    const down = rec.change('b1', 'down', killed)!;
    const streak = streakBefore(rec, 'b1', down);
    expect(streak.map((r) => r.ok)).toEqual([false, false]);
    expect(streak[0].error).toMatch(/ECONNREFUSED/);
    expect(down.reason).toMatch(/2 consecutive failed tcp checks \(last: connect: ECONNREFUSED/);
    // interval * fall + timeout = 280 ms; generous bound for a loaded CI machine.
    expect(down.t - killed).toBeLessThan(280 + 1000);
    expect(hc.status()[0]).toMatchObject({ id: 'b1', state: 'down', failures: 2, successes: 0, lastResult: 'fail', port });

    const srv2 = createNetServer((s) => s.destroy());
    const socks2 = tracked(srv2);
    await listen(srv2, port);
    const back = performance.now();
    await rec.waitFor(() => !!rec.change('b1', 'up', back), 3000, 'b1 up again');
    const up2 = rec.change('b1', 'up', back)!;
    expect(streakBefore(rec, 'b1', up2).map((r) => r.ok)).toEqual([true, true, true]);
    const st = hc.status()[0];
    expect(st.checks).toBe(rec.results.length);
    expect(st.lastLatencyMs).toBeGreaterThanOrEqual(0);
    expect(st.lastError).toMatch(/ECONNREFUSED/);
    hc.stop();
    await closeServer(srv2, socks2);
  });

  it('initial up stays up through fewer than fall failures', async () => {
    // A port nobody listens on: bind a server, note the port, close it.
    const tmp = createNetServer();
    const port = await listen(tmp);
    await closeServer(tmp);
    const [hc, rec] = checker([{ id: 'x', address: LO, port, check: check({ interval: 0.05, timeout: 0.04, fall: 4 }) }]);
    hc.start();
    await rec.waitFor(() => rec.results.length >= 3, 3000, '3 results');
    expect(rec.results.slice(0, 3).every((r) => !r.ok && r.state === 'up')).toBe(true);
    await rec.waitFor(() => rec.changes.length > 0, 3000, 'down');
    expect(rec.results.findIndex((r) => r.state === 'down')).toBe(3);
  });

  it('spreads the first check over the interval (jitter)', async () => {
    const srv = createNetServer((s) => s.destroy());
    const port = await listen(srv);
    const t0 = performance.now();
    const [hc, rec] = checker([{ id: 'j', address: LO, port, check: check({ interval: 0.6, timeout: 0.1 }) }], () => 0.99);
    hc.start();
    await rec.waitFor(() => rec.results.length >= 1, 3000, 'first result');
    // random 0.99 * spread 0.5 * 600 ms = 297 ms before the first check.
    expect(rec.results[0].t - t0).toBeGreaterThanOrEqual(280);
    hc.stop();
    await closeServer(srv);
  });
});

describe('http checks', () => {
  it('follows the status and body of a real HTTP server', async () => {
    let status = 200;
    let body = 'backend-b1 ok\n';
    const seen: IncomingMessage[] = [];
    const srv = createHttpServer((req, res) => {
      seen.push(req);
      res.writeHead(status, { 'Content-Type': 'text/plain', 'X-Backend': 'b1' });
      res.end(body);
    });
    const socks = tracked(srv);
    const port = await listen(srv);
    const c = check({ type: 'http', path: '/health', host: 'svc.example', interval: 0.1, timeout: 0.08, rise: 2, fall: 2, initial: 'down', status: ['2xx'], body: 'ok', bodyRegex: '^backend-\\w+' });
    const [hc, rec] = checker([{ id: 'b1', address: LO, port, check: c }]);
    hc.start();
    await rec.waitFor(() => !!rec.change('b1', 'up'), 3000, 'up');
    expect(seen[0].url).toBe('/health');
    expect(seen[0].method).toBe('GET');
    expect(seen[0].headers.host).toBe('svc.example');
    expect(seen[0].headers['user-agent']).toMatch(/^sessionlb-health/);

    let mark = performance.now();
    status = 503;
    await rec.waitFor(() => !!rec.change('b1', 'down', mark), 3000, 'down on 503');
    expect(streakBefore(rec, 'b1', rec.change('b1', 'down', mark)!).map((r) => r.error)).toEqual([
      'http: status 503 not in 200-299', 'http: status 503 not in 200-299',
    ]);

    mark = performance.now();
    status = 200;
    await rec.waitFor(() => !!rec.change('b1', 'up', mark), 3000, 'up on 200');

    // The status is fine but the body no longer matches: the substring is missing.
    mark = performance.now();
    body = 'backend-b1 maintenance\n';
    await rec.waitFor(() => !!rec.change('b1', 'down', mark), 3000, 'down on body');
    expect(streakBefore(rec, 'b1', rec.change('b1', 'down', mark)!)[1].error).toMatch(/does not contain "ok"/);

    // Contains "ok" but fails the regex.
    mark = performance.now();
    body = 'ok but not a backend\n';
    await rec.waitFor(() => rec.results.filter((r) => r.t > mark).length >= 2, 3000, 'two results');
    expect(rec.results[rec.results.length - 1].error).toMatch(/does not match \/\^backend-\\w\+\//);
    expect(hc.state('b1')).toBe('down');

    mark = performance.now();
    body = 'backend-b2 ok';
    await rec.waitFor(() => !!rec.change('b1', 'up', mark), 3000, 'up on body');
    hc.stop();
    await closeServer(srv, socks);
  });

  it('default Host header, status list and a body beyond maxBodyBytes', async () => {
    const hosts: string[] = [];
    const srv = createHttpServer((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.writeHead(302, { Location: '/x' });
      res.end('x'.repeat(5000) + 'NEEDLE');
    });
    const socks = tracked(srv);
    const port = await listen(srv);
    const [hc, rec] = checker([
      { id: 'a', address: LO, port, check: check({ type: 'http', interval: 0.1, timeout: 0.08, status: [200, '300-399'], body: 'NEEDLE' }) },
      { id: 'b', address: LO, port, check: check({ type: 'http', interval: 0.1, timeout: 0.08, body: 'NEEDLE', maxBodyBytes: 1000 }) },
      { id: 'c', address: LO, port, check: check({ type: 'http', interval: 0.1, timeout: 0.08, status: 200 }) },
    ]);
    hc.start();
    await rec.waitFor(() => ['a', 'b', 'c'].every((id) => rec.results.some((r) => r.id === id)), 3000, 'a result each');
    expect(hosts[0]).toBe(`${LO}:${port}`);
    const first = (id: string) => rec.results.find((r) => r.id === id)!;
    expect(first('a').ok).toBe(true);
    expect(first('b').error).toMatch(/body \(1000 bytes, truncated\) does not contain "NEEDLE"/);
    expect(first('c').error).toBe('http: status 302 not in 200');
    hc.stop();
    await closeServer(srv, socks);
  });
});

/** A tiny RTSP responder: answers OPTIONS with the CSeq it got, unless told otherwise. */
function rtspServer(mode: { status: number; cseq: 'echo' | 'wrong' | 'none'; silent: boolean }) {
  const requests: string[] = [];
  const srv = createNetServer((s) => {
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        requests.push(head);
        if (mode.silent) continue;
        const cseq = /^CSeq:\s*(\d+)/im.exec(head)?.[1] ?? '0';
        const cs = mode.cseq === 'echo' ? `CSeq: ${cseq}\r\n` : mode.cseq === 'wrong' ? `CSeq: ${Number(cseq) + 7}\r\n` : '';
        const reason = mode.status === 200 ? 'OK' : 'Service Unavailable';
        s.write(`RTSP/1.0 ${mode.status} ${reason}\r\n${cs}Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n`);
      }
    });
  });
  return { srv, requests, socks: tracked(srv) };
}

describe('rtsp checks', () => {
  it('sends OPTIONS with a CSeq and needs RTSP/1.0 200 with the same CSeq', async () => {
    const mode = { status: 200, cseq: 'echo' as 'echo' | 'wrong' | 'none', silent: false };
    const { srv, requests, socks } = rtspServer(mode);
    const port = await listen(srv);
    const c = check({ type: 'rtsp', interval: 0.1, timeout: 0.08, rise: 2, fall: 2, initial: 'down', path: '/test' });
    const [hc, rec] = checker([{ id: 'r', address: LO, port: 9, check: { ...c, port } }]);
    hc.start();
    await rec.waitFor(() => !!rec.change('r', 'up'), 3000, 'up');
    const lines = requests[0].split('\r\n');
    expect(lines[0]).toBe(`OPTIONS rtsp://${LO}:${port}/test RTSP/1.0`);
    const seqs = requests.map((r) => Number(/^CSeq: (\d+)$/m.exec(r)![1]));
    expect(new Set(seqs).size).toBe(seqs.length); // a new CSeq each time

    let mark = performance.now();
    mode.cseq = 'wrong';
    await rec.waitFor(() => !!rec.change('r', 'down', mark), 3000, 'down on wrong CSeq');
    expect(rec.results[rec.results.length - 1].error).toMatch(/rtsp: CSeq "\d+" in the reply \(sent \d+\)/);

    mark = performance.now();
    mode.cseq = 'echo';
    await rec.waitFor(() => !!rec.change('r', 'up', mark), 3000, 'up again');

    mark = performance.now();
    mode.status = 503;
    await rec.waitFor(() => !!rec.change('r', 'down', mark), 3000, 'down on 503');
    expect(rec.results[rec.results.length - 1].error).toBe('rtsp: status 503');

    mark = performance.now();
    mode.status = 200;
    mode.cseq = 'none';
    await rec.waitFor(() => rec.results.filter((r) => r.t > mark).length >= 2, 3000, 'results');
    expect(rec.results[rec.results.length - 1].error).toMatch(/CSeq missing/);
    hc.stop();
    await closeServer(srv, socks);
  });

  it('times out on servers that accept but never answer (rtsp and http)', async () => {
    const { srv, socks } = rtspServer({ status: 200, cseq: 'echo', silent: true });
    const port = await listen(srv);
    const [hc, rec] = checker([
      { id: 'r', address: LO, port, check: check({ type: 'rtsp', interval: 0.3, timeout: 0.15, fall: 2 }) },
      { id: 'h', address: LO, port, check: check({ type: 'http', interval: 0.3, timeout: 0.15, fall: 2 }) },
    ]);
    hc.start();
    await rec.waitFor(() => !!rec.change('r', 'down') && !!rec.change('h', 'down'), 4000, 'both down');
    for (const r of rec.results) {
      expect(r.ok).toBe(false);
      expect(r.latencyMs).toBeGreaterThanOrEqual(140);
      expect(r.latencyMs).toBeLessThan(150 + 800);
    }
    expect(rec.results.find((r) => r.id === 'r')!.error).toBe('timeout after 150 ms (waiting for the reply)');
    expect(rec.results.find((r) => r.id === 'h')!.error).toBe('timeout after 150 ms (waiting for the response)');
    hc.stop();
    // Timed-out checks closed their connections: the server sees them go.
    await new Promise((r) => setTimeout(r, 100));
    expect(socks.size).toBe(0);
    await closeServer(srv, socks);
  });
});

describe('source address and IPv6', () => {
  function v6Available(): Promise<boolean> {
    const srv = createNetServer();
    return new Promise((res) => {
      srv.once('error', () => res(false));
      srv.listen(0, '::1', () => srv.close(() => res(true)));
    });
  }

  it('every check type leaves from localAddress when set', async () => {
    const from: Record<string, string[]> = { tcp: [], http: [], rtsp: [] };
    const tcp = createNetServer((s) => { from.tcp.push(s.remoteAddress!); s.destroy(); });
    const http = createHttpServer((req, res) => { from.http.push(req.socket.remoteAddress!); res.end('ok'); });
    const rtsp = rtspServer({ status: 200, cseq: 'echo', silent: false });
    rtsp.srv.on('connection', (s: Socket) => from.rtsp.push(s.remoteAddress!));
    const ports = [await listen(tcp), await listen(http), await listen(rtsp.srv)];
    const opts = { interval: 0.1, timeout: 0.08, rise: 1, initial: 'down', localAddress: '127.0.0.2' };
    const [hc, rec] = checker([
      { id: 't', address: LO, port: ports[0], check: check({ ...opts, type: 'tcp' }) },
      { id: 'h', address: LO, port: ports[1], check: check({ ...opts, type: 'http' }) },
      { id: 'r', address: LO, port: ports[2], check: check({ ...opts, type: 'rtsp' }) },
    ]);
    hc.start();
    await rec.waitFor(() => ['t', 'h', 'r'].every((id) => !!rec.change(id, 'up')), 3000, 'all up');
    hc.stop();
    expect(from.tcp[0]).toBe('127.0.0.2');
    expect(from.http[0]).toBe('127.0.0.2');
    expect(from.rtsp[0]).toBe('127.0.0.2');
    // An address this host does not have: the check fails with the kernel's error, it does not throw.
    const [hc2, rec2] = checker([{ id: 'bad', address: LO, port: ports[0], check: check({ ...opts, localAddress: '192.0.2.77' }) }]);
    hc2.start();
    await rec2.waitFor(() => rec2.results.length >= 1, 3000, 'a result');
    expect(rec2.results[0].error).toMatch(/EADDRNOTAVAIL/);
    hc2.stop();
    await closeServer(tcp);
    await closeServer(http);
    await closeServer(rtsp.srv, rtsp.socks);
  });

  it('brackets IPv6 addresses in the Host header and the RTSP URL', async (ctx) => {
    if (!(await v6Available())) ctx.skip();
    const hosts: string[] = [];
    const http = createHttpServer((req, res) => { hosts.push(req.headers.host ?? ''); res.end('ok'); });
    const rtsp = rtspServer({ status: 200, cseq: 'echo', silent: false });
    const listen6 = (srv: NetServer | HttpServer) => new Promise<number>((res) => srv.listen(0, '::1', () => res((srv.address() as { port: number }).port)));
    const hp = await listen6(http);
    const rp = await listen6(rtsp.srv);
    const opts = { interval: 0.1, timeout: 0.08, rise: 1, initial: 'down' };
    const [hc, rec] = checker([
      { id: 'h6', address: '::1', port: hp, check: check({ ...opts, type: 'http' }) },
      { id: 'r6', address: '::1', port: rp, check: check({ ...opts, type: 'rtsp' }) },
    ]);
    hc.start();
    await rec.waitFor(() => !!rec.change('h6', 'up') && !!rec.change('r6', 'up'), 3000, 'both up');
    hc.stop();
    expect(hosts[0]).toBe(`[::1]:${hp}`);
    expect(rtsp.requests[0].split('\r\n')[0]).toBe(`OPTIONS rtsp://[::1]:${rp}/ RTSP/1.0`);
    await closeServer(http);
    await closeServer(rtsp.srv, rtsp.socks);
  });
});

describe('update()', () => {
  it('keeps unchanged targets, applies new thresholds, restarts changed endpoints, drops removed ones', async () => {
    const srv = createNetServer((s) => s.destroy());
    const socks = tracked(srv);
    const port = await listen(srv);
    const dead = createNetServer();
    const deadPort = await listen(dead);
    await closeServer(dead);
    const c = check({ type: 'tcp', interval: 0.05, timeout: 0.04, rise: 1, fall: 1, initial: 'down' });
    const keep: HealthTarget = { id: 'keep', address: LO, port, check: c };
    const retune: HealthTarget = { id: 'retune', address: LO, port: deadPort, check: c };
    const move: HealthTarget = { id: 'move', address: LO, port, check: c };
    const gone: HealthTarget = { id: 'gone', address: LO, port, check: c };
    const [hc, rec] = checker([keep, retune, move, gone]);
    hc.start();
    await rec.waitFor(() => ['keep', 'move', 'gone'].every((id) => !!rec.change(id, 'up')) && rec.results.filter((r) => r.id === 'retune').length >= 3, 3000, 'settled');
    const before = Object.fromEntries(hc.status().map((s) => [s.id, s]));
    expect(before.retune.state).toBe('down');

    const added: HealthTarget = { id: 'new', address: LO, port: deadPort, check: check({ initial: 'up', interval: 0.05, timeout: 0.04, fall: 3 }) };
    const mark = performance.now();
    hc.update([
      { ...keep, check: { ...c } }, // equal, not the same object
      { ...retune, check: { ...c, rise: 5, initial: 'up' } }, // same endpoint: state kept, new thresholds
      { ...move, port: deadPort }, // endpoint changed: starts over in its initial state (down)
      added,
    ]);
    // Synchronously after update():
    expect(hc.status().map((s) => s.id)).toEqual(['keep', 'retune', 'move', 'new']);
    expect(hc.state('gone')).toBeUndefined();
    expect(hc.state('keep')).toBe('up');
    expect(hc.status()[0].checks).toBe(before.keep.checks);
    expect(hc.state('retune')).toBe('down');
    expect(hc.status()[1].failures).toBe(before.retune.failures);
    expect(hc.state('move')).toBe('down');
    expect(hc.status()[2]).toMatchObject({ checks: 0, failures: 0, port: deadPort });
    expect(rec.changes.filter((x) => x.t >= mark)).toMatchObject([{ id: 'move', from: 'up', to: 'down', reason: 'reconfigured' }]);
    expect(hc.state('new')).toBe('up');

    await rec.waitFor(() => rec.results.filter((r) => r.id === 'new' && r.t > mark).length >= 3, 3000, 'new checked');
    expect(hc.state('new')).toBe('down'); // fall 3
    expect(rec.results.filter((r) => r.id === 'gone' && r.t > mark + 5)).toHaveLength(0);
    expect(rec.results.filter((r) => r.id === 'keep' && r.t > mark).length).toBeGreaterThan(0);
    expect(hc.state('keep')).toBe('up');

    // retune now needs 5 successes: bring a server up on its port and count.
    const srv2 = createNetServer((s) => s.destroy());
    const socks2 = tracked(srv2);
    await listen(srv2, deadPort);
    const back = performance.now();
    await rec.waitFor(() => !!rec.change('retune', 'up', back), 3000, 'retune up');
    expect(streakBefore(rec, 'retune', rec.change('retune', 'up', back)!)).toHaveLength(5);
    // move (rise 1) came up at the first success on its new port.
    await rec.waitFor(() => !!rec.change('move', 'up', back), 3000, 'move up');
    expect(streakBefore(rec, 'move', rec.change('move', 'up', back)!)).toHaveLength(1);
    hc.stop();
    const n = rec.results.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(rec.results.length).toBe(n); // nothing runs after stop()
    await closeServer(srv, socks);
    await closeServer(srv2, socks2);
  });

  it('type none is always up and runs no checks', async () => {
    const none = parseHealthCheck({ type: 'none' }, 'x', check({ initial: 'down' }));
    expect(none.initial).toBe('up');
    const [hc, rec] = checker([{ id: 'n', address: LO, port: 1, check: { ...none, initial: 'down' } }]);
    hc.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(hc.status()[0]).toMatchObject({ state: 'up', checks: 0 });
    expect(rec.results).toHaveLength(0);
  });
});

describe('stop()', () => {
  it('leaves no timer or socket behind: the process exits at once with a check in flight', () => {
    const dir = mkdtempSync(join(tmpdir(), 'slb-health-'));
    const mod = resolve('host/live/health.ts');
    const script = join(dir, 'child.mts');
    writeFileSync(script, `
      import { createServer } from 'node:net';
      import { HealthChecker, parseHealthCheck } from ${JSON.stringify(mod)};
      const silent = createServer((s) => { s.on('error', () => {}); s.resume(); });
      const ok = createServer((s) => s.destroy());
      await new Promise((r) => silent.listen(0, '127.0.0.1', r));
      await new Promise((r) => ok.listen(0, '127.0.0.1', r));
      const long = parseHealthCheck({ type: 'http', interval: 20, timeout: 10 }, 'x');
      const hc = new HealthChecker([
        { id: 'hang', address: '127.0.0.1', port: silent.address().port, check: long },
        { id: 'rtsp', address: '127.0.0.1', port: silent.address().port, check: { ...long, type: 'rtsp' } },
        { id: 'tcp', address: '127.0.0.1', port: ok.address().port, check: parseHealthCheck({ interval: 20, timeout: 10 }, 'x') },
      ], { random: () => 0 });
      let results = 0;
      hc.on('result', () => results++);
      hc.start();
      await new Promise((r) => setTimeout(r, 300)); // tcp done, http and rtsp waiting for 10 s
      hc.stop();
      // A server's close() completes once every connection to it is gone, so the checker's
      // sockets must have been closed for this to finish.
      await Promise.all([new Promise((r) => silent.close(r)), new Promise((r) => ok.close(r))]);
      console.log(JSON.stringify({ results }));
      // Nothing else: the process must now exit by itself.
    `);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 15000, cwd: resolve('.') });
    const took = Date.now() - t0;
    rmSync(dir, { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.results).toBe(1);
    // Without stop() the 10 s timeouts (and 20 s interval) would keep it alive.
    expect(took).toBeLessThan(8000);
  });
});

const NGINX = '/usr/sbin/nginx';
describe.skipIf(!existsSync(NGINX))('http check against a real nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slb-nginx-'));
  let proc: ChildProcess | null = null;
  afterAll(async () => {
    // Fast shutdown lets the master take its worker with it; SIGKILL only if that hangs.
    if (proc && proc.exitCode === null) {
      const p = proc;
      const t = setTimeout(() => p.kill('SIGKILL'), 3000);
      await stopNginx(p);
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function startNginx(port: number): Promise<ChildProcess> {
    mkdirSync(join(dir, 'logs'), { recursive: true });
    writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/cb; proxy_temp_path ${dir}/px; fastcgi_temp_path ${dir}/fc;
  uwsgi_temp_path ${dir}/uw; scgi_temp_path ${dir}/sc;
  server {
    listen 127.0.0.1:${port};
    location = /health { add_header X-Backend nginx-1 always; default_type text/plain; return 200 "backend nginx-1\\n"; }
    location / { return 404; }
  }
}
`);
    const p = spawn(NGINX, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    return new Promise((res, rej) => {
      const t = setInterval(() => {
        if (existsSync(join(dir, 'nginx.pid'))) { clearInterval(t); res(p); }
      }, 20);
      p.on('exit', (code) => { clearInterval(t); rej(new Error(`nginx exited with ${code}: ${err}`)); });
    });
  }

  function stopNginx(p: ChildProcess): Promise<void> {
    return new Promise((res) => {
      if (p.exitCode !== null) return res();
      p.once('exit', () => res());
      p.kill('SIGTERM'); // fast shutdown: master and worker close the listener
    });
  }

  it('marks nginx down within interval*fall+timeout of stopping it and up again after rise successes', async () => {
    const probe = createNetServer();
    const port = await listen(probe);
    await closeServer(probe);
    proc = await startNginx(port);
    const c = check({ type: 'http', path: '/health', interval: 0.2, timeout: 0.15, rise: 2, fall: 2, initial: 'down', body: 'backend nginx-1', status: 200 });
    const [hc, rec] = checker([{ id: 'nginx-1', address: LO, port, check: c }]);
    hc.start();
    await rec.waitFor(() => !!rec.change('nginx-1', 'up'), 5000, 'nginx up');

    await stopNginx(proc);
    const stopped = performance.now();
    await rec.waitFor(() => !!rec.change('nginx-1', 'down', stopped), 5000, 'nginx down');
    const down = rec.change('nginx-1', 'down', stopped)!;
    // interval * fall + timeout = 550 ms; asserted generously.
    expect(down.t - stopped).toBeLessThan(550 + 1500);
    expect(streakBefore(rec, 'nginx-1', down).map((r) => r.ok)).toEqual([false, false]);

    rmSync(join(dir, 'nginx.pid'), { force: true });
    proc = await startNginx(port);
    const back = performance.now();
    await rec.waitFor(() => !!rec.change('nginx-1', 'up', back), 5000, 'nginx up again');
    expect(streakBefore(rec, 'nginx-1', rec.change('nginx-1', 'up', back)!).map((r) => r.ok)).toEqual([true, true]);
    hc.stop();
    await stopNginx(proc);
    proc = null;
  });

  it('marks a hung nginx (SIGSTOP: the kernel still accepts, nobody answers) down by timeouts', async () => {
    const probe = createNetServer();
    const port = await listen(probe);
    await closeServer(probe);
    rmSync(join(dir, 'nginx.pid'), { force: true });
    proc = await startNginx(port);
    const pgid = proc.pid!; // detached: nginx's master and worker are in their own process group
    const c = check({ type: 'http', path: '/health', interval: 0.2, timeout: 0.15, rise: 2, fall: 2, body: 'nginx-1' });
    const [hc, rec] = checker([{ id: 'nginx-1', address: LO, port, check: c }]);
    hc.start();
    await rec.waitFor(() => rec.results.filter((r) => r.ok).length >= 2, 5000, 'nginx answering');
    process.kill(-pgid, 'SIGSTOP');
    try {
      const hung = performance.now();
      await rec.waitFor(() => !!rec.change('nginx-1', 'down', hung), 5000, 'hung nginx down');
      const down = rec.change('nginx-1', 'down', hung)!;
      const streak = streakBefore(rec, 'nginx-1', down);
      expect(streak.map((r) => r.error)).toEqual(['timeout after 150 ms (waiting for the response)', 'timeout after 150 ms (waiting for the response)']);
      expect(down.t - hung).toBeLessThan(550 + 1500);
    } finally {
      process.kill(-pgid, 'SIGCONT');
    }
    const cont = performance.now();
    await rec.waitFor(() => !!rec.change('nginx-1', 'up', cont), 5000, 'nginx up after SIGCONT');
    hc.stop();
    await stopNginx(proc);
    proc = null;
  });
});
