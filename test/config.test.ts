// Config validation (every bad field is named, with what to change) and the replay command's
// exit codes, usage and outputs.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, ConfigError, addressBytes, formatAddress } from '../host/ctl/config.js';
import { runCli, tempDir } from './helpers/cli.js';

const base = () => ({
  vips: [{ address: '10.0.0.100', ports: [80], method: 'nat', backends: [{ id: 'b1', address: '10.0.1.1' }] }],
});

function errorOf(mutate: (c: any) => void): ConfigError {
  const c: any = base();
  mutate(c);
  try {
    parseConfig(c);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('fills defaults', () => {
    const c = parseConfig(base());
    expect(c.mac).toBe('02:00:00:00:00:fe');
    expect(c.flowCapacity).toBe(1 << 20);
    expect(c.timeouts).toEqual({ tcpSyn: 60, tcpEstablished: 900, tcpFin: 120, tcpClose: 10, udp: 300, icmp: 60, frag: 30, sessionGrace: 10, expectation: 60 });
    expect(c.maxSessions).toBe(0);
    const v = c.vips[0];
    expect(v.scheduler).toBe('maglev');
    expect(v.ringSize).toBe(65537);
    expect(v.protocols).toEqual(['tcp', 'udp']);
    expect(v.tunnel).toEqual({ source: '10.0.0.100', source6: null, guePort: 6080 });
    expect(v.policy).toBe('flow');
    expect(v.rtspPorts).toEqual([554]);
    expect(v.maxSessions).toBe(0);
    expect(v.backends[0]).toEqual({ id: 'b1', address: '10.0.1.1', family: 4, mac: '02:00:0a:00:01:01', weight: 1, state: 'active', maxSessions: 0 });
  });

  const cases: [string, (c: any) => void, string, RegExp][] = [
    ['not an object', (c) => (c.vips = 3), 'vips', /non-empty array/],
    ['unknown top-level field', (c) => (c.vip = []), 'vip', /unknown field/],
    ['bad VIP address', (c) => (c.vips[0].address = '10.0.0.300'), 'vips[0].address', /not an IPv4 or IPv6 address/],
    ['duplicate VIP', (c) => c.vips.push({ ...c.vips[0], backends: [{ id: 'b2', address: '10.0.1.2' }] }), 'vips[1].address', /twice/],
    ['port out of range', (c) => (c.vips[0].ports = [80, 70000]), 'vips[0].ports[1]', /1 to 65535/],
    ['protocol', (c) => (c.vips[0].protocols = ['sctp']), 'vips[0].protocols[0]', /"tcp" or "udp"/],
    ['method', (c) => (c.vips[0].method = 'vxlan'), 'vips[0].method', /one of "nat", "dr", "ipip", "gre", "gue"/],
    ['scheduler', (c) => (c.vips[0].scheduler = 'random'), 'vips[0].scheduler', /one of/],
    ['ring size not prime', (c) => (c.vips[0].ringSize = 65536), 'vips[0].ringSize', /prime/],
    ['no backends', (c) => (c.vips[0].backends = []), 'vips[0].backends', /non-empty/],
    ['backend id', (c) => (c.vips[0].backends[0].id = 'a/b'), 'vips[0].backends[0].id', /output file/],
    ['reserved id', (c) => (c.vips[0].backends[0].id = 'client'), 'vips[0].backends[0].id', /not "client"/],
    ['duplicate id', (c) => c.vips[0].backends.push({ id: 'b1', address: '10.0.1.2' }), 'vips[0].backends[1].id', /unique/],
    ['mac', (c) => (c.vips[0].backends[0].mac = '02:00:00:00:01'), 'vips[0].backends[0].mac', /MAC address/],
    ['weight', (c) => (c.vips[0].backends[0].weight = -1), 'vips[0].backends[0].weight', /integer from 0/],
    ['state', (c) => (c.vips[0].backends[0].state = 'up'), 'vips[0].backends[0].state', /"active", "draining", "down"/],
    ['NAT across families', (c) => (c.vips[0].backends[0].address = 'fd00::1'), 'vips[0].backends[0].address', /address family/],
    ['tunnel source family', (c) => (c.vips[0].tunnel = { source: 'fd00::1' }), 'vips[0].tunnel.source', /IPv4/],
    ['IPv6 backend of an IPv4 tunnel VIP needs source6', (c) => { c.vips[0].method = 'gue'; c.vips[0].backends[0].address = 'fd00::1'; }, 'vips[0].tunnel.source6', /required/],
    ['policy', (c) => (c.vips[0].policy = 'sticky'), 'vips[0].policy', /"flow", "client", "session"/],
    ['rtsp ports', (c) => (c.vips[0].rtspPorts = [554, 0]), 'vips[0].rtspPorts[1]', /1 to 65535/],
    ['timeout', (c) => (c.timeouts = { udp: 0 }), 'timeouts.udp', /integer from 1/],
    ['unknown timeout', (c) => (c.timeouts = { tcp: 5 }), 'timeouts.tcp', /unknown field/],
    ['hash key', (c) => (c.hashKey = 'xyz'), 'hashKey', /32 hexadecimal/],
    ['flow capacity', (c) => (c.flowCapacity = 10), 'flowCapacity', /integer from 1024/],
  ];
  for (const [name, mutate, field, msg] of cases) {
    it(`names the field: ${name}`, () => {
      const e = errorOf(mutate);
      expect(e.code).toBe('CONFIG_INVALID');
      expect(e.field).toBe(field);
      expect(e.message).toContain(field);
      expect(e.message).toMatch(msg);
    });
  }

  it('address forms round-trip (IPv4-mapped, ::, embedded IPv4)', () => {
    for (const [a, want] of [['10.1.2.3', '10.1.2.3'], ['::1', '::1'], ['fd00:0:0:0:0:0:0:1', 'fd00::1'], ['2001:db8::', '2001:db8::'], ['::ffff:1.2.3.4', '1.2.3.4'], ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8']]) {
      expect(formatAddress(addressBytes(a))).toBe(want);
    }
  });
});

describe('sessionlb replay (CLI)', () => {
  it('--help prints usage and exits 0; missing arguments exit 2 with usage', () => {
    const h = runCli(['replay', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/usage: sessionlb replay IN --config FILE --out DIR/);
    const m = runCli(['replay']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/missing input capture/);
    const c = runCli(['replay', 'x.pcap', '--out', 'o']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/missing --config/);
    const u = runCli(['replay', 'x.pcap', '--bogus']);
    expect(u.code).toBe(2);
    expect(runCli(['frobnicate']).code).toBe(2);
    expect(runCli(['--help']).code).toBe(0);
  });

  it('a bad config exits 1 naming the field; a missing capture exits 1 naming the file', () => {
    const dir = tempDir('cli-config');
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ vips: [{ address: '10.0.0.100', backends: [{ id: 'b1', address: '10.0.1.1', mac: 'nope' }] }] }));
    const r = runCli(['replay', 'fixtures/sample.pcap', '--config', cfg, '--out', join(dir, 'o')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^sessionlb: config: vips\[0\]\.backends\[0\]\.mac: "nope" is not a MAC address/);
    writeFileSync(cfg, '{ not json');
    expect(runCli(['replay', 'fixtures/sample.pcap', '--config', cfg, '--out', join(dir, 'o')]).stderr).toMatch(/not valid JSON/);
    const m = runCli(['replay', join(dir, 'missing.pcap'), '--config', 'fixtures/default.json', '--out', join(dir, 'o')]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/missing\.pcap/);
    expect(m.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('replays the bundled sample: outputs, report identity, one CSV row per flow, --json', () => {
    const dir = tempDir('cli-sample');
    const csv = join(dir, 'flows.csv');
    const r = runCli(['replay', 'fixtures/sample.pcap', '--config', 'fixtures/default.json', '--out', dir, '--flows', csv, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')).input).toEqual(report.input);
    for (const f of ['b1.pcap', 'b2.pcap', 'b3.pcap', 'client.pcap']) expect(existsSync(join(dir, f))).toBe(true);
    const sumB = Object.values(report.backends).reduce((s: number, b: any) => s + b.packets, 0) as number;
    const sumD = Object.values(report.dropped).reduce((s: number, n: any) => s + n, 0) as number;
    expect(report.input.packets).toBe(20000);
    expect(sumB + report.client.packets + report.passed + sumD).toBe(report.input.packets);
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('proto,client_ip,client_port,vip,vip_port,backend,packets,bytes,session');
    expect(rows.length - 1).toBe(report.flows.created);
    expect(report.flows.rows).toBe(report.flows.created);
    // The CSV's packets add up to every packet of every flow (forwarded and replies).
    const csvPackets = rows.slice(1).reduce((s, l) => s + Number(l.split(',')[6]), 0);
    expect(csvPackets).toBe(sumB + report.client.packets);
    // Weighted Maglev: b3 has weight 2 and should carry about half of the flows.
    expect(report.backends.b3.flows / report.flows.created).toBeGreaterThan(0.4);
    expect(report.fairness.flows.jain).toBeGreaterThan(0.95);
  });
});
