// The splice statistics in the live metrics endpoint: `sessionlb run` with a splice VIP between
// network namespaces and TAP devices (root), real curl requests through it, then /metrics scraped
// and read with the independent exposition parser (test/helpers/exposition.ts). The oracles are
// the number of TCP connections curl made and tshark's count of the SYN-ACKs sessionlb wrote on
// the client side; a NAT-only run on the same topology must show no splice family at all.
//
//   client ns slbm-c (10.94.1.10) -- bridge slbm-brc -- TAP slbm-tc [sessionlb] TAP slbm-ts -- bridge slbm-brs -- slbm-b1 (10.94.2.11)
//   VIP 10.94.100.1:80, method splice (first run) or nat (second run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CLI, ROOT } from './helpers/cli.js';
import { parseExposition, sample, type ParsedFamily } from './helpers/exposition.js';
import { acquireLiveLock, releaseLiveLock } from './helpers/live-lock.js';
import { bridge, host, must, netnsUnsupported, ns, removeAll, sleep } from './helpers/netns.js';
import { fields } from './helpers/tshark.js';

const DIR = join(ROOT, 'test-output', 'splice-metrics');
const NS = ['slbm-c', 'slbm-b1'];
const LINKS = ['slbm-brc', 'slbm-brs', 'slbm-tc', 'slbm-ts', 'slbm-c0', 'slbm-b10'];
const VIP = '10.94.100.1';
const FLOW_CAPACITY = 4096; // splice table: flow capacity / 4 (docs/splice.md, Limits)

const why = netnsUnsupported('slbm-', ['curl', 'tshark']);
if (why) console.warn(`test/live.splice-metrics.test.ts skipped: ${why}`);

const cleanup = () => removeAll(NS, LINKS);

const SERVER_JS = `
require('http').createServer((req, res) => res.end('b1 ' + req.url + '\\n')).listen(80, process.argv[1], () => console.log('listening'));
`;

function config(method: 'splice' | 'nat') {
  return {
    flowCapacity: FLOW_CAPACITY,
    vips: [{ address: VIP, ports: [80], protocols: ['tcp'], method, scheduler: 'rr', backends: [{ id: 'b1', address: '10.94.2.11' }] }],
    live: {
      interfaces: [
        { name: 'slbm-tc', role: 'client', addresses: ['10.94.1.1'] },
        { name: 'slbm-ts', role: 'server', addresses: ['10.94.2.1'] },
      ],
      neighbor: { retryMs: 300 },
      metrics: { address: '127.0.0.1', port: 0 },
    },
  };
}

function scrape(port: number): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const events = (fams: Map<string, ParsedFamily>): Record<string, number> =>
  Object.fromEntries((fams.get('sessionlb_splice_events_total')?.samples ?? []).map((s) => [s.labels.event, s.value]));

describe.skipIf(why !== null)('splice statistics in /metrics (sessionlb run, netns, curl)', () => {
  let server: ChildProcess | null = null;
  let lb: ChildProcess | null = null;
  let lbErr = '';
  let lbOut = '';
  let port = 0;

  /** Starts sessionlb with a VIP of this method; waits for the backend's MAC and the metrics port. */
  async function startLb(method: 'splice' | 'nat', pcap: boolean): Promise<void> {
    if (lb) await stopLb().catch(() => undefined); // left running by a failed test
    const file = join(DIR, `${method}.json`);
    writeFileSync(file, JSON.stringify(config(method), null, 2));
    lbErr = '';
    lbOut = '';
    lb = spawn(process.execPath, [CLI, 'run', '--config', file, ...(pcap ? ['--pcap-tap', join(DIR, 'pcap')] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    lb.stderr!.on('data', (d) => (lbErr += d));
    lb.stdout!.on('data', (d) => (lbOut += d));
    const t0 = Date.now();
    for (;;) {
      const m = /"metrics listening".*?"url":"http:\/\/127\.0\.0\.1:(\d+)\/metrics"/.exec(lbErr);
      if (m && /"backend MAC resolved".*"b1"/.test(lbErr)) {
        port = Number(m[1]);
        return;
      }
      if (lb.exitCode !== null) throw new Error(`sessionlb exited:\n${lbErr}`);
      if (Date.now() - t0 > 15_000) throw new Error(`sessionlb not ready:\n${lbErr}`);
      await sleep(50);
    }
  }

  /** SIGTERM; returns the final counters JSON sessionlb prints. */
  async function stopLb(): Promise<Record<string, unknown>> {
    const p = lb!;
    lb = null;
    if (p.exitCode === null && p.signalCode === null) await new Promise<void>((r) => { p.once('close', () => r()); p.kill('SIGTERM'); });
    return JSON.parse(lbOut) as Record<string, unknown>;
  }

  beforeAll(async () => {
    await acquireLiveLock();
    cleanup();
    rmSync(DIR, { recursive: true, force: true });
    mkdirSync(DIR, { recursive: true });
    bridge('slbm-brc', 'slbm-tc');
    bridge('slbm-brs', 'slbm-ts');
    host('slbm-c', 'slbm-c0', 'slbm-brc', '10.94.1.10', '10.94.1.1');
    host('slbm-b1', 'slbm-b10', 'slbm-brs', '10.94.2.11', '10.94.2.1');
    const p = spawn('ip', ['netns', 'exec', 'slbm-b1', process.execPath, '-e', SERVER_JS, '10.94.2.11'], { stdio: ['ignore', 'pipe', 'inherit'] });
    server = p;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('backend server did not start')), 10_000);
      p.stdout!.on('data', (d) => { if (String(d).includes('listening')) { clearTimeout(t); resolve(); } });
    });
  }, 40_000);

  afterAll(async () => {
    if (lb && lb.exitCode === null) await new Promise<void>((r) => { lb!.once('close', () => r()); lb!.kill('SIGTERM'); });
    server?.kill('SIGKILL');
    cleanup();
    releaseLiveLock();
  });

  it('counts cookies, spliced and closed connections as curl made them; the families are well formed', async () => {
    await startLb('splice', true);
    const before = await scrape(port);
    expect(before.status).toBe(200);
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const f0 = parseExposition(before.body);
    expect(sample(f0, 'sessionlb_splice_connections').value).toBe(0);
    expect(sample(f0, 'sessionlb_splice_capacity').value).toBe(FLOW_CAPACITY / 4);
    const e0 = events(f0);
    // Every statistic the engine keeps is there, at zero before any traffic.
    expect(Object.keys(e0).length).toBeGreaterThanOrEqual(16);
    for (const k of ['cookies-sent', 'cookies-valid', 'cookies-invalid', 'spliced', 'closed', 'give-ups', 'translated']) expect(e0[k], k).toBe(0);

    // Four connections with one request each, and one keep-alive connection with two: 5 connections, 6 requests.
    const CONNS = 5;
    for (let i = 0; i < 4; i++) {
      expect(must(ns('slbm-c', 'curl', '-sS', '--max-time', '5', `http://${VIP}/r${i}`))).toBe(`b1 /r${i}\n`);
    }
    expect(must(ns('slbm-c', 'curl', '-sS', '--max-time', '5', `http://${VIP}/k1`, `http://${VIP}/k2`))).toBe('b1 /k1\nb1 /k2\n');

    // Each connection is removed once both FINs are acknowledged; give the last ACKs a moment.
    let fams = f0;
    let ev = e0;
    const t0 = Date.now();
    for (;;) {
      const r = await scrape(port);
      expect(r.status).toBe(200);
      fams = parseExposition(r.body);
      ev = events(fams);
      if ((ev.closed === CONNS && sample(fams, 'sessionlb_splice_connections').value === 0) || Date.now() - t0 > 6000) break;
      await sleep(100);
    }
    expect(ev['cookies-sent']).toBe(CONNS);
    expect(ev['cookies-valid']).toBe(CONNS);
    expect(ev['backend-syns']).toBe(CONNS);
    expect(ev.spliced).toBe(CONNS);
    expect(ev.closed).toBe(CONNS);
    expect(ev['cookies-invalid']).toBe(0);
    expect(ev['give-ups']).toBe(0);
    expect(ev['table-full']).toBe(0);
    expect(ev.translated).toBeGreaterThan(CONNS * 3); // at least the backend's data and FIN and the client's ACKs, per connection
    expect(sample(fams, 'sessionlb_splice_connections').value).toBe(0);
    expect(sample(fams, 'sessionlb_splice_capacity').value).toBe(FLOW_CAPACITY / 4);
    // Well formed: one HELP and one TYPE each, the counter's name ends in _total, one series per event.
    for (const [name, type] of [['sessionlb_splice_connections', 'gauge'], ['sessionlb_splice_capacity', 'gauge'], ['sessionlb_splice_events_total', 'counter']]) {
      const f = fams.get(name)!;
      expect(f.type, name).toBe(type);
      expect(f.help, name).toBeTruthy();
    }
    const evf = fams.get('sessionlb_splice_events_total')!;
    expect(evf.samples.every((s) => Object.keys(s.labels).join() === 'event')).toBe(true);
    expect(new Set(evf.samples.map((s) => s.labels.event)).size).toBe(evf.samples.length);
    // Counters only grow.
    for (const [k, v] of Object.entries(e0)) expect(ev[k], k).toBeGreaterThanOrEqual(v);

    // The final JSON on SIGTERM carries the same statistics (nothing happened since the scrape).
    const final = (await stopLb()) as { splice?: Record<string, number> };
    expect(final.splice).toBeDefined();
    for (const k of ['cookies-sent', 'cookies-valid', 'spliced', 'closed', 'translated']) expect(final.splice![k], k).toBe(ev[k]);
    expect(final.splice!.capacity).toBe(FLOW_CAPACITY / 4);
    // tshark on the client-side capture: every SYN-ACK the VIP sent is a cookie counted.
    const synAcks = fields(join(DIR, 'pcap', 'slbm-tc.pcap'), ['frame.number'], { filter: `ip.src == ${VIP} && tcp.flags.syn == 1 && tcp.flags.ack == 1` });
    expect(synAcks.length).toBe(ev['cookies-sent']);
  }, 30_000);

  it('a VIP that does not splice: no splice family in /metrics, no splice record in the final JSON', async () => {
    await startLb('nat', false);
    expect(must(ns('slbm-c', 'curl', '-sS', '--max-time', '5', `http://${VIP}/nat`))).toBe('b1 /nat\n');
    const r = await scrape(port);
    const fams = parseExposition(r.body);
    expect(sample(fams, 'sessionlb_engine_flows_created_total').value).toBe(1);
    expect([...fams.keys()].filter((n) => n.startsWith('sessionlb_splice_'))).toEqual([]);
    const final = await stopLb();
    expect('splice' in final).toBe(false);
  }, 20_000);
});
