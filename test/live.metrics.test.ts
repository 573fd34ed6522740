// Prometheus exposition and the JSON logger. The oracle for the text format is the small parser in
// test/helpers/exposition.ts, written from the 0.0.4 format description independently of
// host/live/metrics.ts; it is itself tested here against malformed inputs so it cannot pass everything.
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { ConfigError } from '../host/ctl/config.js';
import { COUNTER_NAMES, DROP_NAMES, PASS_NAMES } from '../host/ctl/counters.js';
import {
  BATCH_SIZE_BOUNDS, Histogram, METRICS_CONTENT_TYPE, RateMeter, isLoopback, parseMetricsConfig, renderMetrics,
  startMetricsServer, type LiveSnapshot, type MetricsServer,
} from '../host/live/metrics.js';
import { createLogger, parseLogLevel } from '../host/live/log.js';
import { makeEngine } from './helpers/engine.js';
import { parseExposition, sample } from './helpers/exposition.js';

describe('the test parser itself', () => {
  const good = '# HELP a_total x\n# TYPE a_total counter\na_total{l="v"} 1\n';
  it('accepts a valid text and refuses malformed ones', () => {
    expect(parseExposition(good).get('a_total')!.samples[0].value).toBe(1);
    const bad: [string, RegExp][] = [
      ['a_total 1\n', /has no TYPE/],
      ['# TYPE a_total counter\na_total 1', /end with a newline/],
      ['# TYPE a_total counter\na_total{l="v\\x"} 1\n', /bad escape/],
      ['# TYPE a_total counter\na_total{l=v} 1\n', /quoted/],
      ['# TYPE a_total counter\na_total -1\n', /counter a_total is -1/],
      ['# TYPE a_total counter\na_total 1\na_total 2\n', /duplicate series/],
      ['# TYPE a counter\n# TYPE b gauge\na 1\nb 1\na{x="1"} 1\n', /not contiguous/],
      ['# TYPE 1a gauge\n', /bad name/],
      ['# TYPE a gauge\na{1x="1"} 1\n', /bad label name/],
      ['# TYPE a gauge\na one\n', /bad value/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n', /not cumulative/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n', /\+Inf/],
      ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 3\nh_sum 1\nh_count 2\n', /_count != \+Inf/],
      ['# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_count 3\n', /_sum are required/],
    ];
    for (const [text, re] of bad) expect(() => parseExposition(text), text).toThrow(re);
  });
});

// --- Rendering -------------------------------------------------------------------------------------

function snapshot(over: Partial<LiveSnapshot> = {}): LiveSnapshot {
  const h = new Histogram();
  for (const v of [1, 1, 3, 256, 300, 64]) h.observe(v);
  return {
    build: { version: '0.1.0', abi: 7, simd: true },
    uptimeSeconds: 12.5,
    configReloads: 2,
    configReloadFailures: 1,
    backends: [
      { id: 'b1', vip: '10.0.0.10', health: 'up', state: 'active', weight: 1, packets: 2n ** 60n + 1n, bytes: 1500, flows: 3, replyPackets: 4, replyBytes: 5, resteeredIn: 1, sessions: 2, activeFlows: 3, healthChecks: 40, healthLatencyMs: 1.5 },
      { id: 'b2', vip: '10.0.0.10', health: 'down', state: 'down', packets: 0, bytes: 0, flows: 0, replyPackets: 0, replyBytes: 0, sessions: 0 },
      { id: 'b3', vip: 'fd00::10', health: null, state: 'draining', packets: 9, bytes: 900, flows: 1, replyPackets: 0, replyBytes: 0, sessions: 1 },
    ],
    drops: { 'no-backend': 7, admission: 2n },
    passes: { 'not-vip': 11 },
    counters: { 'rx-packets': 100, 'flows-created': 4, 'sessions-refused': 0 },
    flowTable: { entries: 256, capacity: 1024 },
    sessions: { active: 3, capacity: 12 },
    batchSizes: h.snapshot(),
    rates: { rxPps: 1234.5, txPps: 1200, rxBps: 1e6, txBps: 9.5e5, intervalSeconds: 1.001 },
    interfaces: [
      { name: 'slb0', role: 'client', rxPackets: 10, rxBytes: 1000, rxErrors: 0, txPackets: 9, txBytes: 900, txErrors: 1, rxDropped: 2 },
      { name: 'we"ird\\tap\nx', rxPackets: 1, rxBytes: 60, rxErrors: 0, txPackets: 0, txBytes: 0, txErrors: 0 },
    ],
    ...over,
  };
}

describe('renderMetrics', () => {
  it('renders a snapshot that parses back, with every family typed and the values intact', () => {
    const text = renderMetrics(snapshot());
    const fams = parseExposition(text);
    for (const f of fams.values()) {
      expect(f.name.startsWith('sessionlb_'), f.name).toBe(true);
      expect(f.help, f.name).toBeTruthy();
      expect(['counter', 'gauge', 'histogram']).toContain(f.type);
      if (f.type === 'counter') expect(f.name.endsWith('_total'), f.name).toBe(true);
      expect(f.samples.length, f.name).toBeGreaterThan(0);
    }
    const b1 = { vip: '10.0.0.10', backend: 'b1' };
    const b2 = { vip: '10.0.0.10', backend: 'b2' };
    const b3 = { vip: 'fd00::10', backend: 'b3' };
    // A u64 above 2^53 keeps every digit.
    expect(sample(fams, 'sessionlb_backend_packets_total', b1).raw).toBe('1152921504606846977');
    expect(sample(fams, 'sessionlb_backend_bytes_total', b1).value).toBe(1500);
    expect(sample(fams, 'sessionlb_backend_flows_total', b1).value).toBe(3);
    expect(sample(fams, 'sessionlb_backend_reply_packets_total', b1).value).toBe(4);
    expect(sample(fams, 'sessionlb_backend_reply_bytes_total', b1).value).toBe(5);
    expect(sample(fams, 'sessionlb_backend_sessions', b3).value).toBe(1);
    expect(sample(fams, 'sessionlb_backend_up', b1).value).toBe(1);
    expect(sample(fams, 'sessionlb_backend_up', b2).value).toBe(0);
    expect(sample(fams, 'sessionlb_backend_up', b3).value).toBe(1);
    expect(sample(fams, 'sessionlb_backend_health_checked', b3).value).toBe(0);
    expect(sample(fams, 'sessionlb_backend_state', { ...b3, state: 'draining' }).value).toBe(1);
    expect(sample(fams, 'sessionlb_backend_state', { ...b3, state: 'active' }).value).toBe(0);
    expect(sample(fams, 'sessionlb_backend_state', { ...b2, state: 'down' }).value).toBe(1);
    expect(sample(fams, 'sessionlb_backend_health_check_latency_seconds', b1).value).toBe(0.0015);
    expect(() => sample(fams, 'sessionlb_backend_weight', b2)).toThrow(); // not given, not invented
    expect(fams.get('sessionlb_backend_weight')!.samples).toHaveLength(1);
    expect(sample(fams, 'sessionlb_drops_total', { reason: 'no-backend' }).value).toBe(7);
    expect(sample(fams, 'sessionlb_drops_total', { reason: 'admission' }).value).toBe(2);
    expect(sample(fams, 'sessionlb_passes_total', { reason: 'not-vip' }).value).toBe(11);
    expect(sample(fams, 'sessionlb_engine_rx_packets_total').value).toBe(100);
    expect(sample(fams, 'sessionlb_engine_sessions_refused_total').value).toBe(0);
    expect(sample(fams, 'sessionlb_flow_table_occupancy_ratio').value).toBe(0.25);
    expect(sample(fams, 'sessionlb_sessions_occupancy_ratio').value).toBe(0.25);
    expect(sample(fams, 'sessionlb_rx_packets_per_second').value).toBe(1234.5);
    expect(sample(fams, 'sessionlb_tx_bytes_per_second').value).toBe(950000);
    expect(sample(fams, 'sessionlb_uptime_seconds').value).toBe(12.5);
    expect(sample(fams, 'sessionlb_config_reloads_total').value).toBe(2);
    expect(sample(fams, 'sessionlb_build_info', { version: '0.1.0', abi: '7', simd: 'true' }).value).toBe(1);
    expect(sample(fams, 'sessionlb_interface_tx_errors_total', { interface: 'slb0', role: 'client' }).value).toBe(1);
    expect(sample(fams, 'sessionlb_interface_rx_dropped_total', { interface: 'slb0', role: 'client' }).value).toBe(2);
    // Escaping: the odd interface name comes back byte for byte.
    expect(sample(fams, 'sessionlb_interface_rx_bytes_total', { interface: 'we"ird\\tap\nx', role: '' }).value).toBe(60);
    expect(text).toContain('interface="we\\"ird\\\\tap\\nx"');
  });

  it('renders the batch-size histogram cumulatively, ending in +Inf', () => {
    const fams = parseExposition(renderMetrics(snapshot()));
    const f = fams.get('sessionlb_batch_size')!;
    expect(f.type).toBe('histogram');
    const buckets = f.samples.filter((s) => s.name === 'sessionlb_batch_size_bucket').map((s) => [s.labels.le, s.value]);
    // observed 1, 1, 3, 256, 300, 64
    expect(buckets).toEqual([['1', 2], ['2', 2], ['4', 3], ['8', 3], ['16', 3], ['32', 3], ['64', 4], ['128', 4], ['256', 5], ['+Inf', 6]]);
    expect(sample(fams, 'sessionlb_batch_size_count').value).toBe(6);
    expect(sample(fams, 'sessionlb_batch_size_sum').value).toBe(625);
    expect(BATCH_SIZE_BOUNDS).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256]);
  });

  it('leaves out ratios without a capacity and refuses a malformed histogram', () => {
    const fams = parseExposition(renderMetrics(snapshot({ sessions: { active: 5, capacity: 0 }, flowTable: { entries: 0, capacity: 0 }, backends: [], interfaces: [] })));
    expect(fams.has('sessionlb_sessions_occupancy_ratio')).toBe(false);
    expect(fams.has('sessionlb_flow_table_occupancy_ratio')).toBe(false);
    expect(fams.has('sessionlb_backend_packets_total')).toBe(false);
    expect(sample(fams, 'sessionlb_sessions_capacity').value).toBe(0);
    expect(() => renderMetrics(snapshot({ batchSizes: { bounds: [1, 2], counts: [1, 2], sum: 3 } }))).toThrow(/needs 3 counts/);
  });

  it('renders the splice statistics: two gauges and one event counter per statistic name, only when given', () => {
    expect(parseExposition(renderMetrics(snapshot())).has('sessionlb_splice_events_total')).toBe(false);
    expect(renderMetrics(snapshot())).not.toMatch(/sessionlb_splice_/);
    // Names are taken from the record as it is: one the renderer has never heard of appears too.
    const splice = { connections: 3, capacity: 1024, 'cookies-sent': 9, spliced: 2n ** 60n, closed: 0, 'handoffs-sent': 4 };
    const text = renderMetrics(snapshot({ splice }));
    const fams = parseExposition(text);
    expect(fams.get('sessionlb_splice_connections')!.type).toBe('gauge');
    expect(fams.get('sessionlb_splice_capacity')!.type).toBe('gauge');
    expect(sample(fams, 'sessionlb_splice_connections').value).toBe(3);
    expect(sample(fams, 'sessionlb_splice_capacity').value).toBe(1024);
    const ev = fams.get('sessionlb_splice_events_total')!;
    expect(ev.type).toBe('counter');
    expect(ev.help).toBeTruthy();
    expect(ev.samples.map((x) => [x.labels.event, x.raw])).toEqual([
      ['cookies-sent', '9'], ['spliced', '1152921504606846976'], ['closed', '0'], ['handoffs-sent', '4'],
    ]);
    // The gauges are not counted twice as events.
    expect(ev.samples.some((x) => x.labels.event === 'connections' || x.labels.event === 'capacity')).toBe(false);
    expect(text.match(/^# TYPE sessionlb_splice_events_total counter$/gm)).toHaveLength(1);
  });

  it("renders a real engine's counters, drops and passes under valid names", () => {
    const cfg = JSON.parse(readFileSync('fixtures/default.json', 'utf8'));
    const engine = makeEngine(cfg);
    const snap = snapshot({ counters: engine.counters(), drops: engine.drops(), passes: engine.passes() });
    const fams = parseExposition(renderMetrics(snap));
    for (const name of COUNTER_NAMES) expect(sample(fams, `sessionlb_engine_${name.replace(/-/g, '_')}_total`).value).toBe(0);
    for (const r of DROP_NAMES.slice(1)) expect(sample(fams, 'sessionlb_drops_total', { reason: r }).value).toBe(0);
    for (const r of PASS_NAMES.slice(1)) expect(sample(fams, 'sessionlb_passes_total', { reason: r }).value).toBe(0);
  });

  it('RateMeter gives per-second rates over the last interval', () => {
    const m = new RateMeter(1000);
    expect(m.update(0, { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0 }).intervalSeconds).toBe(0);
    // Too soon: the previous rates (none yet) stand.
    expect(m.update(500, { rxPackets: 10, txPackets: 10, rxBytes: 10, txBytes: 10 }).rxPps).toBe(0);
    expect(m.update(2000, { rxPackets: 3000, txPackets: 2000n, rxBytes: 600000, txBytes: 400000 })).toEqual({ rxPps: 1500, txPps: 1000, rxBps: 300000, txBps: 200000, intervalSeconds: 2 });
    expect(m.update(3000, { rxPackets: 3500, txPackets: 2000n, rxBytes: 700000, txBytes: 400000 })).toEqual({ rxPps: 500, txPps: 0, rxBps: 100000, txBps: 0, intervalSeconds: 1 });
  });
});

// --- The server ----------------------------------------------------------------------------------------

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('startMetricsServer', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it('serves /metrics and /healthz on loopback, 404 elsewhere', async () => {
    let calls = 0;
    let fail = false;
    const srv = await startMetricsServer({
      collect: async () => {
        if (fail) throw new Error('engine gone');
        calls++;
        return snapshot({ configReloads: calls });
      },
    });
    servers.push(srv);
    expect(srv.host).toBe('127.0.0.1');
    expect(srv.port).toBeGreaterThan(0);
    const a = await get(srv.port, '/metrics');
    expect(a.status).toBe(200);
    expect(a.type).toBe(METRICS_CONTENT_TYPE);
    expect(a.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(parseExposition(a.body), 'sessionlb_config_reloads_total').value).toBe(1);
    // Every scrape collects afresh.
    const b = await get(srv.port, '/metrics?x=1');
    expect(sample(parseExposition(b.body), 'sessionlb_config_reloads_total').value).toBe(2);
    const h = await get(srv.port, '/healthz');
    expect([h.status, h.body]).toEqual([200, 'ok\n']);
    const head = await get(srv.port, '/metrics', 'HEAD');
    expect([head.status, head.body]).toEqual([200, '']);
    expect(Number(head.headers['content-length'])).toBeGreaterThan(100);
    expect((await get(srv.port, '/')).status).toBe(404);
    expect((await get(srv.port, '/metricsx')).status).toBe(404);
    const post = await get(srv.port, '/metrics', 'POST');
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
    fail = true;
    const e = await get(srv.port, '/metrics');
    expect(e.status).toBe(500);
    expect(e.body).toMatch(/engine gone/);
    expect(calls).toBe(3); // HEAD collected too
  });

  it('refuses non-loopback addresses unless allowed, and close() frees the port', async () => {
    await expect(startMetricsServer({ host: '0.0.0.0', collect: () => snapshot() })).rejects.toThrow(/not a loopback address/);
    await expect(startMetricsServer({ host: '192.0.2.1', collect: () => snapshot() })).rejects.toThrow(/not a loopback address/);
    const srv = await startMetricsServer({ host: '127.0.0.1', port: 0, collect: () => snapshot() });
    // A keep-alive client left connected must not hold close() up.
    const idle = connect(srv.port, '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    idle.on('error', () => {});
    await srv.close();
    await expect(get(srv.port, '/metrics')).rejects.toThrow(/ECONNREFUSED/);
    idle.destroy();
  });

  it('isLoopback and parseMetricsConfig', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', 'localhost']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'example.com', '128.0.0.1']) expect(isLoopback(h), h).toBe(false);
    expect(parseMetricsConfig({}, 'metrics')).toEqual({ address: '127.0.0.1', port: 9180, allowRemote: false });
    expect(parseMetricsConfig({ address: '::1', port: 0 }, 'metrics')).toEqual({ address: '::1', port: 0, allowRemote: false });
    expect(parseMetricsConfig({ address: '10.0.0.1', allowRemote: true }, 'metrics').address).toBe('10.0.0.1');
    const cases: [unknown, string][] = [
      [{ address: '10.0.0.1' }, 'metrics.address'],
      [{ address: 'eth0' }, 'metrics.address'],
      [{ port: 70000 }, 'metrics.port'],
      [{ allowRemote: 'yes' }, 'metrics.allowRemote'],
      [{ listen: 1 }, 'metrics.listen'],
      [[], 'metrics'],
    ];
    for (const [raw, field] of cases) {
      let err: unknown;
      try { parseMetricsConfig(raw, 'metrics'); } catch (e) { err = e; }
      expect(err, JSON.stringify(raw)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
    }
  });
});

// --- The logger ----------------------------------------------------------------------------------------

function sink() {
  const chunks: string[] = [];
  return { chunks, stream: { write: (s: string) => chunks.push(s) }, lines: () => chunks.join('').split('\n').slice(0, -1).map((l) => JSON.parse(l)) };
}

describe('createLogger', () => {
  it('writes one JSON object per line with ts, level, msg and the fields', () => {
    const s = sink();
    const log = createLogger({ stream: s.stream, fields: { app: 'sessionlb', pid: 42 } });
    log.info('started', { port: 9180 });
    log.warn('backend down', { backend: 'b2', reason: 'x\ny "quoted"' });
    log.debug('not shown');
    expect(s.chunks.every((c) => c.endsWith('\n') && c.indexOf('\n') === c.length - 1)).toBe(true);
    const [a, b] = s.lines();
    expect(s.lines()).toHaveLength(2);
    expect(Object.keys(a).slice(0, 3)).toEqual(['ts', 'level', 'msg']);
    expect(a).toMatchObject({ level: 'info', msg: 'started', app: 'sessionlb', pid: 42, port: 9180 });
    expect(new Date(a.ts).toISOString()).toBe(a.ts);
    expect(Math.abs(Date.parse(a.ts) - Date.now())).toBeLessThan(60_000);
    expect(b).toMatchObject({ level: 'warn', msg: 'backend down', backend: 'b2', reason: 'x\ny "quoted"' });
  });

  it('filters by level, and child() adds fields', () => {
    const s = sink();
    const log = createLogger({ stream: s.stream, level: 'warn', fields: { a: 1 } });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    const c = log.child({ backend: 'b1', a: 2 });
    c.info('i2');
    c.error('e2', { extra: true });
    expect(s.lines().map((l) => [l.level, l.msg, l.a, l.backend])).toEqual([
      ['warn', 'w', 1, undefined], ['error', 'e', 1, undefined], ['error', 'e2', 2, 'b1'],
    ]);
    expect(c.level).toBe('warn');
    expect(log.enabled('info')).toBe(false);
    expect(createLogger({ stream: s.stream, level: 'debug' }).enabled('debug')).toBe(true);
  });

  it('is safe for BigInt, Error, circular values and reserved names, and never throws', () => {
    const s = sink();
    const log = createLogger({ stream: s.stream, clock: () => new Date(Date.UTC(2026, 10, 28, 2, 0, 0)) });
    const err = Object.assign(new Error('boom', { cause: new Error('root') }), { code: 'EBOOM' });
    const circ: Record<string, unknown> = { name: 'c' };
    circ.self = circ;
    log.error('failed', {
      packets: 2n ** 64n - 1n, err, circ, nested: { list: [1n, undefined, new Map([['k', 1n]])], set: new Set([1]) },
      ts: 'mine', level: 'mine', msg: 'mine', skip: undefined, nan: NaN, when: new Date(0), fn: function named() {},
    });
    const [l] = s.lines();
    expect(l.ts).toBe('2026-11-28T02:00:00.000Z');
    expect([l.level, l.msg, l._ts, l._level, l._msg]).toEqual(['error', 'failed', 'mine', 'mine', 'mine']);
    expect(l.packets).toBe('18446744073709551615');
    expect(l.err).toMatchObject({ name: 'Error', message: 'boom', code: 'EBOOM', cause: { message: 'root' } });
    expect(l.err.stack).toMatch(/boom/);
    expect(l.circ).toEqual({ name: 'c', self: '[Circular]' });
    expect(l.nested).toEqual({ list: ['1', null, { k: '1' }], set: [1] });
    expect('skip' in l).toBe(false);
    expect(l.nan).toBe('NaN');
    expect(l.when).toBe('1970-01-01T00:00:00.000Z');
    expect(l.fn).toBe('[function named]');
    // A throwing getter and a broken stream do not throw out of the logger.
    const evil = { get x() { throw new Error('getter'); } };
    log.info('evil', { evil });
    expect(s.lines()[1]).toMatchObject({ level: 'info', msg: 'evil', logError: 'getter' });
    const broken = createLogger({ stream: { write: () => { throw new Error('EPIPE'); } } });
    expect(() => broken.error('x')).not.toThrow();
  });

  it('parseLogLevel names the field', () => {
    expect(parseLogLevel('debug', 'log.level')).toBe('debug');
    expect(() => parseLogLevel('verbose', 'log.level')).toThrow(/config: log\.level: must be one of "debug", "info", "warn", "error"/);
    expect(() => createLogger({ level: 'loud' as never })).toThrow(/log level/);
  });
});
