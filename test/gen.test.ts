// The traffic generator (host/gen/flows.ts, `sessionlb generate flows`): determinism, exact
// counts, checksums (test/ref/csum.ts and tshark as independent oracles), TCP seq/ack
// consistency, the documented shape of the traffic, the committed fixtures/sample.pcap, and the
// CLI's errors.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runGenerate } from '../host/cli/generate.js';
import { generateFlows, parseAddress, type FlowGenOptions } from '../host/gen/flows.js';
import { Rng } from '../host/gen/rng.js';
import { verifyFrame } from './ref/csum.js';
import { parseFrame, parseIp, type ParsedIp } from './ref/packet.js';
import { captureOutput } from './helpers/capture-output.js';

const ROOT = join(import.meta.dirname, '..');
const TSHARK = '/usr/bin/tshark';
const dir = mkdtempSync(join(tmpdir(), 'sessionlb-gen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Rec {
  tsUs: number;
  caplen: number;
  wirelen: number;
  data: Uint8Array;
}

function readPcap(file: string): { magic: number; linktype: number; records: Rec[] } {
  const b = readFileSync(file);
  const magic = b.readUInt32LE(0);
  const linktype = b.readUInt32LE(20);
  const records: Rec[] = [];
  for (let o = 24; o < b.length; ) {
    const caplen = b.readUInt32LE(o + 8);
    records.push({
      tsUs: b.readUInt32LE(o) * 1e6 + b.readUInt32LE(o + 4),
      caplen,
      wirelen: b.readUInt32LE(o + 12),
      data: new Uint8Array(b.buffer, b.byteOffset + o + 16, caplen),
    });
    o += 16 + caplen;
  }
  return { magic, linktype, records };
}

let n = 0;
function gen(o: Partial<FlowGenOptions>): { file: string; opts: FlowGenOptions; summary: ReturnType<typeof generateFlows> } {
  const opts: FlowGenOptions = { out: join(dir, `g${n++}.pcap`), packets: 3000, flows: 100, seed: 1, vips: ['10.0.0.100'], ...o };
  return { file: opts.out, opts, summary: generateFlows(opts) };
}

const inV4Clients = (a: string) => {
  const b = parseIp(a);
  return b[0] === 198 && (b[1] === 18 || b[1] === 19);
};
const inV6Clients = (a: string) => a.startsWith('2001:db8:1:');

interface FlowTrace {
  proto: number;
  client: string;
  vip: string;
  cport: number;
  vport: number;
  pkts: { fromClient: boolean; ip: ParsedIp; len: number; srcMac: string; dstMac: string; tsUs: number }[];
}

/** Groups the packets of a generated file into flows (client side = the non-VIP address). */
function flowsOf(file: string, vips: string[]): { flows: Map<string, FlowTrace>; order: string[]; recs: Rec[] } {
  const canon = (a: string) => parseAddress(a)!.words.join(':');
  const vipCanon = new Set(vips.map(canon));
  const flows = new Map<string, FlowTrace>();
  const order: string[] = [];
  const { records } = readPcap(file);
  for (const r of records) {
    const f = parseFrame(r.data);
    const ip = f.ip!;
    const fromClient = vipCanon.has(canon(ip.dst));
    const client = fromClient ? ip.src : ip.dst;
    const vip = fromClient ? ip.dst : ip.src;
    const cport = fromClient ? ip.sport! : ip.dport!;
    const vport = fromClient ? ip.dport! : ip.sport!;
    const key = `${ip.proto} ${client} ${cport} ${vip} ${vport}`;
    let t = flows.get(key);
    if (!t) {
      t = { proto: ip.proto, client, vip, cport, vport, pkts: [] };
      flows.set(key, t);
      order.push(key);
    }
    t.pkts.push({ fromClient, ip, len: r.caplen, srcMac: f.srcMac, dstMac: f.dstMac, tsUs: r.tsUs });
  }
  return { flows, order, recs: records };
}

describe('rng', () => {
  it('is deterministic and roughly uniform', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.u32());
    expect(Array.from({ length: 1000 }, () => b.u32())).toEqual(xs);
    expect(new Rng(43).u32()).not.toBe(xs[0]);
    expect(new Rng(2 ** 40).u32()).not.toBe(new Rng(0).u32());
    const r = new Rng(7);
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100000; i++) buckets[r.int(10)]++;
    for (const c of buckets) expect(Math.abs(c - 10000)).toBeLessThan(500);
    expect(() => new Rng(-1)).toThrow();
  });
});

describe('generateFlows', () => {
  it('same seed, same bytes; another seed, other bytes', () => {
    const o = { packets: 4000, flows: 150, vips: ['10.0.0.100', '2001:db8::100'], ports: [80, 443] };
    const a = gen({ ...o, seed: 7 });
    const b = gen({ ...o, seed: 7 });
    const c = gen({ ...o, seed: 8 });
    expect(readFileSync(a.file).equals(readFileSync(b.file))).toBe(true);
    expect(readFileSync(a.file).equals(readFileSync(c.file))).toBe(false);
    expect(a.summary).toEqual({ ...b.summary, out: a.file });
  });

  it('writes exactly the requested packets and flows', () => {
    const cases: Partial<FlowGenOptions>[] = [
      { packets: 1, flows: 1, udpShare: 1 },
      { packets: 6, flows: 1, udpShare: 0 },
      { packets: 7, flows: 1, udpShare: 0, concurrent: 1 },
      { packets: 2000, flows: 2000, udpShare: 1 },
      { packets: 600, flows: 100, udpShare: 0 }, // exactly 6 per TCP flow
      { packets: 12345, flows: 321, udpShare: 0.5, concurrent: 7, vips: ['2001:db8::1'] },
      { packets: 5000, flows: 10, concurrent: 100 },
    ];
    for (const c of cases) {
      const { file, opts, summary } = gen(c);
      const { magic, linktype, records } = readPcap(file);
      expect(magic).toBe(0xa1b2c3d4); // microseconds
      expect(linktype).toBe(1);
      expect(records.length, JSON.stringify(c)).toBe(opts.packets);
      expect(summary.packets).toBe(opts.packets);
      expect(statSync(file).size).toBe(summary.fileBytes);
      const { flows } = flowsOf(file, opts.vips);
      expect(flows.size, JSON.stringify(c)).toBe(opts.flows);
      const udp = [...flows.values()].filter((f) => f.proto === 17).length;
      expect(udp).toBe(Math.round(opts.flows * (opts.udpShare ?? 0.3)));
      expect(summary.udpFlows).toBe(udp);
    }
  });

  it('rejects impossible options', () => {
    const base = { out: join(dir, 'bad.pcap'), seed: 1, vips: ['10.0.0.100'] };
    expect(() => generateFlows({ ...base, packets: 5, flows: 1, udpShare: 0 })).toThrow(/need at least 6/);
    expect(() => generateFlows({ ...base, packets: 5, flows: 6 })).toThrow(/flows/);
    expect(() => generateFlows({ ...base, packets: 5, flows: 1, vips: ['300.1.1.1'] })).toThrow(/address/);
    expect(() => generateFlows({ ...base, packets: 5, flows: 1, payload: [0, 5000] })).toThrow(/payload/i);
    expect(existsSync(base.out)).toBe(false);
  });

  describe('a mixed IPv4/IPv6 file', () => {
    const vips = ['10.0.0.100', '10.0.0.101', '2001:db8::100'];
    const ports = [80, 443, 8080];
    const opts = { packets: 30000, flows: 800, seed: 3, vips, ports, concurrent: 50, payload: [0, 300] as [number, number], rate: 50000 };
    const g = gen(opts);
    const { flows, recs } = flowsOf(g.file, vips);

    it('every frame has correct checksums (reference implementation)', () => {
      for (const [i, r] of recs.entries()) {
        const v = verifyFrame(r.data);
        const fam = parseFrame(r.data).ip!.family;
        expect(v.problems, `frame ${i + 1}`).toEqual([]);
        expect(v.l4Ok, `frame ${i + 1}`).toBe(true);
        expect(v.ipOk, `frame ${i + 1}`).toBe(fam === 4 ? true : null);
        expect(r.caplen).toBe(r.wirelen);
        expect(r.caplen).toBe(parseFrame(r.data).l3Offset + parseFrame(r.data).ip!.totalLength);
      }
    });

    it('TCP flows: handshake, consistent seq/ack, data, FIN both ways', () => {
      let tcpFlows = 0;
      for (const [key, f] of flows) {
        if (f.proto !== 6) continue;
        tcpFlows++;
        const p = f.pkts;
        expect(p.length, key).toBeGreaterThanOrEqual(6);
        const flags = p.map((x) => x.ip.tcp!.flags);
        expect(flags[0], key).toBe(0x02); // SYN
        expect(p[0].fromClient).toBe(true);
        expect(flags[1], key).toBe(0x12); // SYN-ACK
        expect(p[1].fromClient).toBe(false);
        expect(flags[2], key).toBe(0x10); // ACK
        expect(p[2].fromClient).toBe(true);
        const n = p.length;
        expect([flags[n - 3], p[n - 3].fromClient], key).toEqual([0x11, true]); // FIN/ACK
        expect([flags[n - 2], p[n - 2].fromClient], key).toEqual([0x11, false]); // FIN/ACK
        expect([flags[n - 1], p[n - 1].fromClient], key).toEqual([0x10, true]); // ACK
        let cNext = (p[0].ip.tcp!.seq + 1) >>> 0;
        let sNext = (p[1].ip.tcp!.seq + 1) >>> 0;
        expect(p[0].ip.tcp!.ack).toBe(0);
        expect(p[1].ip.tcp!.ack).toBe(cNext);
        for (let i = 2; i < n; i++) {
          const t = p[i].ip.tcp!;
          const len = p[i].ip.payloadLength!;
          if (i >= 3 && i < n - 3) {
            expect(t.flags, key).toBe(0x18); // PSH/ACK with data
            expect(len).toBeGreaterThan(0);
            expect(len).toBeLessThanOrEqual(300);
          } else expect(len).toBe(0);
          const adv = len + (t.flags & 1 ? 1 : 0);
          if (p[i].fromClient) {
            expect(t.seq, `${key} #${i}`).toBe(cNext);
            expect(t.ack, `${key} #${i}`).toBe(sNext);
            cNext = (cNext + adv) >>> 0;
          } else {
            expect(t.seq, `${key} #${i}`).toBe(sNext);
            expect(t.ack, `${key} #${i}`).toBe(cNext);
            sNext = (sNext + adv) >>> 0;
          }
        }
        // SYN and SYN-ACK carry MSS / window scale / SACK-permitted options
        expect(p[0].ip.tcp!.headerLength).toBe(32);
        expect(p[1].ip.tcp!.headerLength).toBe(32);
      }
      expect(tcpFlows).toBe(800 - Math.round(800 * 0.3));
    });

    it('UDP flows start with the client; payload sizes within bounds', () => {
      for (const [key, f] of flows) {
        if (f.proto !== 17) continue;
        expect(f.pkts[0].fromClient, key).toBe(true);
        for (const x of f.pkts) {
          expect(x.ip.payloadLength).toBeGreaterThanOrEqual(0);
          expect(x.ip.payloadLength).toBeLessThanOrEqual(300);
        }
      }
    });

    it('addresses, ports, MACs, TTLs, shares and timing are as documented', () => {
      const clientPorts = new Set<string>();
      let replies = 0;
      for (const [key, f] of flows) {
        expect(vips).toContain(f.vip);
        expect(ports).toContain(f.vport);
        expect(f.cport).toBeGreaterThanOrEqual(32768);
        expect(f.cport).toBeLessThan(61000);
        expect(parseAddress(f.vip)!.family === 4 ? inV4Clients(f.client) : inV6Clients(f.client), key).toBe(true);
        expect(clientPorts.has(`${f.client} ${f.cport}`), key).toBe(false); // no tuple reuse
        clientPorts.add(`${f.client} ${f.cport}`);
        for (const x of f.pkts) {
          if (!x.fromClient) replies++;
          const [clientMac, vipMac] = x.fromClient ? [x.srcMac, x.dstMac] : [x.dstMac, x.srcMac];
          expect(vipMac).toBe('02:00:00:00:00:fe');
          expect(clientMac).toMatch(/^02:00:00:[0-9a-f]{2}:aa:[0-9a-f]{2}$/);
          if (!x.fromClient) expect(x.ip.ttl).toBe(64);
          else expect(x.ip.ttl).toBeLessThan(128);
        }
      }
      expect(Math.abs(replies / recs.length - 0.4)).toBeLessThan(0.02);
      expect(g.summary.replies).toBe(replies);
      // timestamps: start at startTime, never decrease, mean gap ~ 1/rate
      expect(recs[0].tsUs).toBe(1_700_000_000 * 1e6);
      for (let i = 1; i < recs.length; i++) expect(recs[i].tsUs).toBeGreaterThanOrEqual(recs[i - 1].tsUs);
      const span = (recs[recs.length - 1].tsUs - recs[0].tsUs) / 1e6;
      expect(span).toBeGreaterThan((0.9 * recs.length) / 50000);
      expect(span).toBeLessThan((1.1 * recs.length) / 50000);
    });

    it('never more than `concurrent` flows live; flows interleave', () => {
      const last = new Map<string, number>();
      const first = new Map<string, number>();
      const keys: string[] = [];
      const { records } = readPcap(g.file);
      records.forEach((r, i) => {
        const ip = parseFrame(r.data).ip!;
        const a = `${ip.proto} ${ip.src} ${ip.sport}`;
        const b = `${ip.proto} ${ip.dst} ${ip.dport}`;
        const k = a < b ? `${a}|${b}` : `${b}|${a}`;
        keys.push(k);
        if (!first.has(k)) first.set(k, i);
        last.set(k, i);
      });
      const delta = new Array(records.length + 1).fill(0);
      for (const [k, i] of first) {
        delta[i]++;
        delta[last.get(k)! + 1]--;
      }
      let liveNow = 0;
      let maxLive = 0;
      for (const d of delta) maxLive = Math.max(maxLive, (liveNow += d));
      expect(maxLive).toBe(50);
      let switches = 0;
      for (let i = 1; i < keys.length; i++) if (keys[i] !== keys[i - 1]) switches++;
      expect(switches / keys.length).toBeGreaterThan(0.5);
    });
  });

  it.skipIf(!existsSync(TSHARK))('tshark: no bad checksum, no TCP analysis flag, nothing malformed', () => {
    const g = gen({ packets: 6000, flows: 200, seed: 11, vips: ['10.0.0.100', '2001:db8::100'], ports: [80, 443] });
    const tshark = (filter: string) =>
      execFileSync(
        TSHARK,
        ['-r', g.file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-Y', filter],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 },
      );
    expect(tshark('ip.checksum.status=="Bad" || tcp.checksum.status=="Bad" || udp.checksum.status=="Bad"')).toBe('');
    expect(tshark('tcp.analysis.flags')).toBe('');
    expect(tshark('_ws.malformed || _ws.expert.severity >= "Warning"')).toBe('');
    // and it really checked: every TCP/UDP checksum is "Good" (1)
    const statuses = execFileSync(
      TSHARK,
      ['-r', g.file, '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 },
    );
    expect(new Set(statuses.split(/\s+/).filter(Boolean))).toEqual(new Set(['1']));
  });
});

describe('fixtures', () => {
  it('default.json is the documented config', () => {
    const cfg = JSON.parse(readFileSync(join(ROOT, 'fixtures', 'default.json'), 'utf8'));
    expect(cfg.mac).toBe('02:00:00:00:00:fe');
    expect(cfg.vips[0]).toMatchObject({ address: '10.0.0.100', ports: [80, 443], method: 'nat', scheduler: 'maglev' });
    expect(cfg.vips[0].backends.map((b: { weight: number }) => b.weight)).toEqual([1, 1, 2]);
  });

  it('sample.pcap is what the documented command writes (and under 3 MB)', async () => {
    const sample = join(ROOT, 'fixtures', 'sample.pcap');
    expect(statSync(sample).size).toBeLessThan(3_000_000);
    const src = readFileSync(join(ROOT, 'host', 'gen', 'flows.ts'), 'utf8');
    const m = /node dist\/host\/cli\/main\.js generate flows (.*)/.exec(src);
    expect(m).not.toBeNull();
    const args = m![1].trim().split(/\s+/);
    const outAt = args.indexOf('--out');
    expect(args[outAt + 1]).toBe('fixtures/sample.pcap');
    const out = join(dir, 'sample-again.pcap');
    args[outAt + 1] = out;
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runGenerate(['flows', ...args])).toBe(0);
    } finally {
      err.mockRestore();
    }
    expect(readFileSync(out).equals(readFileSync(sample))).toBe(true);
    const { records } = readPcap(sample);
    expect(records.length).toBe(20000);
    const { flows } = flowsOf(sample, ['10.0.0.100']);
    expect(flows.size).toBe(600);
    expect(new Set([...flows.values()].map((f) => f.vport))).toEqual(new Set([80, 443]));
  });
});

describe('sessionlb generate (CLI)', () => {
  const run = (args: string[]) => captureOutput(() => runGenerate(args));

  it('prints usage', async () => {
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/usage: sessionlb generate <kind>/);
    expect(none.err).toMatch(/flows/);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/usage: sessionlb generate <kind>/);
    const fhelp = await run(['flows', '--help']);
    expect(fhelp.code).toBe(0);
    expect(fhelp.out).toMatch(/--udp-share/);
    const bad = await run(['nonsense']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/unknown kind "nonsense"/);
  });

  it('names the flag of a bad value (exit 2)', async () => {
    const out = join(dir, 'cli-bad.pcap');
    const cases: [string[], RegExp][] = [
      [[], /--out/],
      [['--out', out, '--packets', 'many'], /--packets/],
      [['--out', out, '--packets', '0'], /--packets/],
      [['--out', out, '--flows', '-3'], /--flows/],
      [['--out', out, '--packets', '10', '--flows', '20'], /--flows/],
      [['--out', out, '--seed', '1.5'], /--seed/],
      [['--out', out, '--vip', 'not-an-ip'], /--vip/],
      [['--out', out, '--port', '0'], /--port/],
      [['--out', out, '--port', '80,x'], /--port/],
      [['--out', out, '--udp-share', '2'], /--udp-share/],
      [['--out', out, '--reply-share', '-1'], /--reply-share/],
      [['--out', out, '--clients', '0'], /--clients/],
      [['--out', out, '--clients', '200000'], /--clients/],
      [['--out', out, '--concurrent', 'x'], /--concurrent/],
      [['--out', out, '--rate', '0'], /--rate/],
      [['--out', out, '--payload', '10-5'], /--payload/],
      [['--out', out, '--payload', '0-99999'], /--payload/],
      [['--out', out, '--no-such-flag'], /--no-such-flag/],
      [['--out', out, 'stray'], /stray/],
    ];
    for (const [args, re] of cases) {
      const r = await run(['flows', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(re);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('writes the file and a one-line summary', async () => {
    const out = join(dir, 'cli-ok.pcap');
    const r = await run(['flows', '--out', out, '--packets', '1000', '--flows', '40', '--vip', '10.0.0.100', '--vip', '2001:db8::5', '--port', '80,443', '--seed', '9']);
    expect(r.code).toBe(0);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/1000 packets, 40 flows/);
    expect(readPcap(out).records.length).toBe(1000);
    const r2 = await run(['flows', '--out', join(dir, 'missing-dir', 'x.pcap'), '--packets', '100']);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/cannot write/);
  });
});
