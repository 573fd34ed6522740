// Tests of the reference implementations in test/ref/ (and the fast TS versions in bench/)
// against known values and independent oracles (tshark, an independent Python computation of
// the flow hash whose outputs are pinned below).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlowHasher, internetChecksumFast } from '../bench/ts-impl.js';
import { PcapWriter } from '../host/io/pcap-writer.js';
import { fixFrame, internetChecksum, onesSum, verifyFrame } from './ref/csum.js';
import { flowHashRef, flowHashSymRef, makeKey, symmetricKey } from './ref/hash.js';
import { fmix32, fnv1a32, h1, h2, isPrime, maglevPermutation, maglevTable } from './ref/maglev.js';
import {
  formatIp,
  frame,
  ipv4,
  parseFrame,
  parseIp,
  routingExt,
  tcp,
  TCP_ACK,
  TCP_PSH,
  udp,
} from './ref/packet.js';
import { rng } from './helpers/rng.js';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((x) => parseInt(x, 16)));
const TSHARK = '/usr/bin/tshark';
const hasTshark = existsSync(TSHARK);


describe('internet checksum', () => {
  it('matches the RFC 1071 example', () => {
    const b = hex('0001 f203 f4f5 f6f7');
    expect(onesSum(b)).toBe(0xddf2);
    expect(internetChecksum(b)).toBe(0x220d);
  });

  it('matches a well-known IPv4 header checksum (0xb861)', () => {
    const h = hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
    expect(internetChecksum(h)).toBe(0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    expect(internetChecksum(h)).toBe(0);
  });

  it('pads an odd byte and honours start/end/initial', () => {
    expect(onesSum(hex('ab'))).toBe(0xab00);
    const b = hex('ffff 1234 5678 9a');
    expect(onesSum(b, 2, 7)).toBe(onesSum(hex('1234 5678 9a')));
    expect(onesSum(b, 2, 4, 0x10000)).toBe(0x1235);
  });

  it('fast version equals the reference on random buffers, offsets and lengths', () => {
    const r = rng(1);
    const big = new Uint8Array(70000);
    for (let i = 0; i < big.length; i++) big[i] = (r() * 256) | 0;
    // includes runs of 0xff to exercise carries
    big.fill(0xff, 1000, 3000);
    for (let n = 0; n < 3000; n++) {
      const start = (r() * 2000) | 0;
      const len = n < 100 ? n : (r() * (n % 10 === 0 ? 66000 : 1600)) | 0;
      const end = Math.min(big.length, start + len);
      expect(internetChecksumFast(big, start, end)).toBe(internetChecksum(big, start, end));
    }
    // views with odd byteOffset over a shared buffer
    for (let off = 0; off < 8; off++) {
      const v = big.subarray(off + 1, off + 1500);
      for (let s = 0; s < 5; s++) expect(internetChecksumFast(v, s, v.length - s)).toBe(internetChecksum(v, s, v.length - s));
    }
    // all 0xff words: sum folds to 0xffff, checksum 0
    const ones = new Uint8Array(4096).fill(0xff);
    expect(internetChecksumFast(ones)).toBe(0);
    expect(internetChecksum(ones)).toBe(0);
    expect(internetChecksumFast(new Uint8Array(100))).toBe(0xffff);
  });
});

describe('frame checksums', () => {
  const payload = new TextEncoder().encode('hello, world! odd');
  const cases: Record<string, Uint8Array> = {
    'tcp4': frame({ src: '198.18.0.1', dst: '10.0.0.100', proto: 'tcp', sport: 40000, dport: 80, seq: 1, ack: 2, tcpFlags: 'PA', payload }),
    'tcp4 options + ip options + qinq': frame({
      src: '198.18.0.2',
      dst: '10.0.0.100',
      proto: 'tcp',
      sport: 40001,
      dport: 443,
      tcpFlags: 'S',
      tcpOptions: hex('020405b4 0402 0103 0307'),
      ipOptions: hex('010101'),
      vlans: [100, 200],
    }),
    'udp4': frame({ src: '198.18.0.3', dst: '10.0.0.100', proto: 'udp', sport: 5353, dport: 53, payload, vlans: [7] }),
    'icmp4': frame({ src: '198.18.0.4', dst: '10.0.0.100', proto: 'icmp', icmpId: 77, seq: 3, payload }),
    'tcp6': frame({ src: '2001:db8:1::1', dst: '2001:db8::100', proto: 'tcp', sport: 40000, dport: 80, tcpFlags: 'PA', payload }),
    'udp6 + hop-by-hop + dest opts': frame({
      src: '2001:db8:1::2',
      dst: '2001:db8::100',
      proto: 'udp',
      sport: 1000,
      dport: 53,
      payload,
      extHeaders: [{ type: 0 }, { type: 60, data: hex('0102 0000') }],
    }),
    'icmp6': frame({ src: '2001:db8:1::3', dst: '2001:db8::100', proto: 'icmpv6', icmpId: 5, seq: 9, payload }),
    'tcp6 + routing header (pseudo-header uses final destination)': frame({
      src: '2001:db8:1::4',
      dst: '2001:db8::1',
      proto: 'tcp',
      sport: 1234,
      dport: 80,
      payload,
      extHeaders: [routingExt(0, 1, ['2001:db8::100'])],
    }),
    'padded tcp4': frame({ src: '198.18.0.5', dst: '10.0.0.100', proto: 'tcp', tcpFlags: 'A', pad: true }),
  };

  it('builders produce frames that verify', () => {
    for (const [name, f] of Object.entries(cases)) {
      const v = verifyFrame(f);
      expect(v.problems, name).toEqual([]);
      expect(v.l4Ok, name).toBe(true);
      expect(v.ipOk, name).toBe(parseFrame(f).ip!.family === 4 ? true : null);
    }
  });

  it('detects corruption and fixFrame repairs it', () => {
    for (const [name, f] of Object.entries(cases)) {
      const g = f.slice();
      const p = parseFrame(g).ip!;
      g[p.offset + (p.family === 4 ? 8 : 7)] ^= 1; // TTL / hop limit (IPv4 header checksum only)
      g[g.length - (name.startsWith('padded') ? 10 : 1)] ^= 0x40; // last payload byte
      const v = verifyFrame(g);
      if (p.family === 4) expect(v.ipOk, name).toBe(false);
      if (!name.startsWith('padded')) expect(v.l4Ok, name).toBe(false);
      fixFrame(g);
      expect(verifyFrame(g).problems, name).toEqual([]);
    }
  });

  it('treats UDP checksum 0 as none over IPv4 only; writes 0xffff for a computed 0', () => {
    const f = cases['udp4'].slice();
    const l4 = parseFrame(f).ip!.l4Offset;
    f[l4 + 6] = 0;
    f[l4 + 7] = 0;
    expect(verifyFrame(f).l4Ok).toBe(true);
    const g = cases['udp6 + hop-by-hop + dest opts'].slice();
    const l6 = parseFrame(g).ip!.l4Offset;
    g[l6 + 6] = 0;
    g[l6 + 7] = 0;
    expect(verifyFrame(g).l4Ok).toBe(false);
    // find a payload that makes the UDP checksum compute to 0
    const base = udp({ src: '198.18.0.9', dst: '10.0.0.100', sport: 1, dport: 2, payload: new Uint8Array(2) });
    const c = (base[6] << 8) | base[7]; // checksum with payload word 0
    const pl = new Uint8Array([c >> 8, c & 0xff]); // adding c makes the sum 0xffff -> checksum 0
    const z = udp({ src: '198.18.0.9', dst: '10.0.0.100', sport: 1, dport: 2, payload: pl });
    expect((z[6] << 8) | z[7]).toBe(0xffff);
    const fz = frame({ src: '198.18.0.9', dst: '10.0.0.100', proto: 'udp', sport: 1, dport: 2, payload: pl });
    expect(verifyFrame(fz).l4Ok).toBe(true);
  });

  it('returns null where a checksum cannot be checked', () => {
    const frag = frame({ src: '198.18.0.1', dst: '10.0.0.100', proto: 'udp', payload, fragOffset: 100 });
    expect(verifyFrame(frag)).toMatchObject({ ipOk: true, l4Ok: null });
    const first = frame({ src: '198.18.0.1', dst: '10.0.0.100', proto: 'udp', payload, ipFlags: 1 });
    expect(verifyFrame(first)).toMatchObject({ ipOk: true, l4Ok: null });
    const trunc = cases['tcp4'].slice(0, 50);
    expect(verifyFrame(trunc)).toMatchObject({ ipOk: true, l4Ok: null });
    expect(verifyFrame(cases['tcp4'].slice(0, 20))).toMatchObject({ ipOk: null, l4Ok: null });
    const gre = frame({ src: '198.18.0.1', dst: '10.0.0.100', proto: 47, payload });
    expect(verifyFrame(gre)).toMatchObject({ ipOk: true, l4Ok: null, problems: [] });
    const arp = new Uint8Array(60);
    arp[12] = 0x08;
    arp[13] = 0x06;
    expect(verifyFrame(arp)).toMatchObject({ ipOk: null, l4Ok: null });
    const v6frag = frame({
      src: '2001:db8:1::1',
      dst: '2001:db8::100',
      proto: 'udp',
      payload,
      extHeaders: [{ type: 44, fragOffset: 0, more: true, id: 7 }],
    });
    expect(verifyFrame(v6frag)).toMatchObject({ ipOk: null, l4Ok: null });
  });

  it.skipIf(!hasTshark)('tshark agrees with every checksum (good and corrupted)', () => {
    const dir = join(tmpdir(), `sessionlb-ref-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'ref.pcap');
    const w = new PcapWriter(file, { nanos: false });
    const frames: Uint8Array[] = [];
    for (const f of Object.values(cases)) frames.push(f);
    for (const f of Object.values(cases)) {
      const g = f.slice();
      g[g.length - (g.length === 60 ? 10 : 1)] ^= 0x5a;
      frames.push(g);
    }
    frames.forEach((f, i) => w.write(Buffer.from(f), 0, f.length, f.length, i * 1000));
    w.close();
    const out = execFileSync(
      TSHARK,
      [
        '-r', file,
        '-o', 'ip.check_checksum:TRUE',
        '-o', 'tcp.check_checksum:TRUE',
        '-o', 'udp.check_checksum:TRUE',
        '-T', 'fields', '-E', 'separator=,',
        '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'udp.checksum.status',
        '-e', 'icmp.checksum.status', '-e', 'icmpv6.checksum.status',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const lines = out.trim().split('\n');
    expect(lines.length).toBe(frames.length);
    lines.forEach((line, i) => {
      // tshark prints 1 = Good, 0 = Bad (2 = unverified) for each checksum it looked at.
      const statuses = line.split(',').filter((s) => s !== '');
      const v = verifyFrame(frames[i]);
      const tsharkL4 = statuses[statuses.length - 1];
      const ourL4 = v.l4Ok ? '1' : '0';
      expect(tsharkL4, `frame ${i}: ${line}`).toBe(ourL4);
      if (parseFrame(frames[i]).ip!.family === 4) expect(statuses[0]).toBe(v.ipOk ? '1' : '0');
    });
  });
});

describe('flow hash', () => {
  // Values computed by an independent Python implementation of the docs/abi.md text.
  const K0 = 0x0123456789abcdefn;
  const K1 = 0xfedcba9876543210n;
  it('matches pinned values', () => {
    const k = makeKey({ src: '198.18.0.1', dst: '10.0.0.100', sport: 40000, dport: 80, proto: 'tcp' });
    expect(flowHashRef(k, 0n, 0n)).toBe(0x66403a74);
    expect(flowHashSymRef(k, 0n, 0n)).toBe(0x16b25dbd);
    expect(flowHashRef(k, K0, K1)).toBe(0x6faa309c);
    expect(flowHashSymRef(k, K0, K1)).toBe(0x561db381);
    const rev = makeKey({ src: '10.0.0.100', dst: '198.18.0.1', sport: 80, dport: 40000, proto: 6 });
    expect(flowHashRef(rev, K0, K1)).toBe(0x561db381);
    expect(flowHashSymRef(rev, K0, K1)).toBe(0x561db381);
    const k6 = makeKey({ src: '2001:db8:1::5', dst: '2001:db8::100', sport: 51000, dport: 443, proto: 'udp' });
    expect(flowHashRef(k6, 0xdeadbeefcafebaben, 0x1122334455667788n)).toBe(0xb23b5d5a);
    expect(flowHashSymRef(k6, 0xdeadbeefcafebaben, 0x1122334455667788n)).toBe(0x670184f5);
    expect(flowHashRef(new Uint8Array(40), 0n, 0n)).toBe(0xca429b94);
    const zeros4 = makeKey({ src: '0.0.0.0', dst: '0.0.0.0', sport: 0, dport: 0, proto: 0 });
    expect(flowHashRef(zeros4, 0n, 0n)).toBe(0xc569f7b6);
    expect(flowHashRef(new Uint8Array(40), (1n << 64n) - 1n, (1n << 64n) - 1n)).toBe(0x0abbacc2);
  });

  it('builds keys as documented', () => {
    const k = makeKey({ src: '198.18.0.1', dst: '2001:db8::1', sport: 0x1234, dport: 0x0050, proto: 'udp' });
    expect(Array.from(k.subarray(0, 16))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]);
    expect(Array.from(k.subarray(16, 32))).toEqual(Array.from(parseIp('2001:db8::1')));
    expect(Array.from(k.subarray(32))).toEqual([0x12, 0x34, 0x00, 0x50, 17, 0, 0, 0]);
  });

  it('symmetric hash is direction independent; equal endpoints keep order', () => {
    const r = rng(2);
    for (let i = 0; i < 200; i++) {
      const a = `198.18.${(r() * 256) | 0}.${(r() * 256) | 0}`;
      const b = `10.0.${(r() * 256) | 0}.${(r() * 256) | 0}`;
      const p = (r() * 65536) | 0;
      const q = (r() * 65536) | 0;
      const f = makeKey({ src: a, dst: b, sport: p, dport: q, proto: 6 });
      const g = makeKey({ src: b, dst: a, sport: q, dport: p, proto: 6 });
      expect(flowHashSymRef(f, 5n, 7n)).toBe(flowHashSymRef(g, 5n, 7n));
    }
    const same = makeKey({ src: '10.0.0.1', dst: '10.0.0.1', sport: 80, dport: 80, proto: 6 });
    expect(symmetricKey(same)).toEqual(same);
    const portOnly = makeKey({ src: '10.0.0.1', dst: '10.0.0.1', sport: 0x0100, dport: 0x00ff, proto: 6 });
    expect(Array.from(symmetricKey(portOnly).subarray(32, 36))).toEqual([0x00, 0xff, 0x01, 0x00]);
  });

  it('fast FlowHasher equals the BigInt reference on random keys', () => {
    const r = rng(3);
    const buf = new Uint8Array(40 * 64 + 3);
    for (let round = 0; round < 50; round++) {
      const k0 = BigInt.asUintN(64, (BigInt((r() * 2 ** 32) >>> 0) << 32n) | BigInt((r() * 2 ** 32) >>> 0));
      const k1 = BigInt.asUintN(64, (BigInt((r() * 2 ** 32) >>> 0) << 32n) | BigInt((r() * 2 ** 32) >>> 0));
      const fast = new FlowHasher(k0, k1);
      for (let i = 0; i < buf.length; i++) buf[i] = (r() * 256) | 0;
      for (let j = 0; j < 64; j++) {
        const off = j * 40 + (j % 4);
        // sometimes make endpoints share a prefix or be equal, to exercise the comparison
        if (j % 8 === 1) buf.copyWithin(off + 16, off, off + 15);
        if (j % 8 === 2) buf.copyWithin(off + 16, off, off + 16);
        if (j % 8 === 3) {
          buf.copyWithin(off + 16, off, off + 16);
          buf.copyWithin(off + 34, off + 32, off + 34);
        }
        const key = buf.slice(off, off + 40);
        expect(fast.hash(buf, off)).toBe(flowHashRef(key, k0, k1));
        expect(fast.hashSym(buf, off)).toBe(flowHashSymRef(key, k0, k1));
      }
    }
  });
});

describe('maglev', () => {
  it('uses standard FNV-1a 32 and fmix32', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(fnv1a32(enc(''))).toBe(0x811c9dc5);
    expect(fnv1a32(enc('a'))).toBe(0xe40c292c);
    expect(fnv1a32(enc('foobar'))).toBe(0xbf9cf968);
    expect(fmix32(0)).toBe(0);
    expect(h1('b1')).not.toBe(h2('b1'));
  });

  it('permutations are permutations for prime M', () => {
    for (const name of ['b1', 'b2', 'backend-with-a-long-name']) {
      const p = maglevPermutation(name, 65537);
      expect(new Set(p).size).toBe(65537);
      expect(p[0]).toBe(h1(name) % 65537);
      expect((p[1] - p[0] + 65537) % 65537).toBe((h2(name) % 65536) + 1);
    }
  });

  it('fills the table; equal weights give near-equal shares', () => {
    const M = 65537;
    const backends = Array.from({ length: 7 }, (_, i) => ({ name: `b${i + 1}`, weight: 1 }));
    const t = maglevTable(backends, M);
    const counts = new Array(7).fill(0);
    for (const e of t) counts[e]++;
    expect(counts.reduce((a, b) => a + b)).toBe(M);
    for (const c of counts) expect(Math.abs(c - M / 7)).toBeLessThanOrEqual(1);
    // the first backend's first preference is always its own
    expect(t[h1('b1') % M]).toBe(0);
  });

  it('weighted shares follow the weights (1:1:2 and 1:2:3)', () => {
    const M = 65537;
    for (const weights of [[1, 1, 2], [1, 2, 3]]) {
      const t = maglevTable(weights.map((w, i) => ({ name: `b${i + 1}`, weight: w })), M);
      const counts = weights.map(() => 0);
      for (const e of t) counts[e]++;
      const total = weights.reduce((a, b) => a + b);
      weights.forEach((w, i) => expect(Math.abs(counts[i] / M - w / total)).toBeLessThan(0.001));
    }
  });

  it('removing a backend moves few entries of the others', () => {
    const M = 65537;
    const names = Array.from({ length: 10 }, (_, i) => ({ name: `10.0.1.${i + 1}` }));
    const a = maglevTable(names, M);
    const b = maglevTable(names.filter((_, i) => i !== 3), M);
    let moved = 0;
    for (let s = 0; s < M; s++) {
      if (a[s] === 3) continue;
      const before = names[a[s]].name;
      const after = names.filter((_, i) => i !== 3)[b[s]].name;
      if (before !== after) moved++;
    }
    expect(moved / M).toBeLessThan(0.03);
  });

  it('edge cases', () => {
    expect(Array.from(maglevTable([], 7))).toEqual(new Array(7).fill(-1));
    expect(Array.from(maglevTable([{ name: 'x', weight: 0 }], 7))).toEqual(new Array(7).fill(-1));
    expect(Array.from(maglevTable([{ name: 'x', weight: 0 }, { name: 'y', weight: 3 }], 7))).toEqual(new Array(7).fill(1));
    expect(() => maglevTable([{ name: 'x' }], 100)).toThrow(/prime/);
    expect(isPrime(65537)).toBe(true);
    expect(Array.from(maglevTable([{ name: 'a' }, { name: 'b' }], 2)).sort()).toEqual([0, 1]);
  });
});

describe('packet builders and parser', () => {
  it('round-trips addresses', () => {
    for (const s of ['2001:db8::1', '::', '::1', '2001:db8:1:0:0:1:0:1', 'fe80::1:2:3:4', '1::', '::ffff:198.18.0.1'])
      expect(parseIp(formatIp(parseIp(s))).join()).toBe(parseIp(s).join());
    expect(formatIp(parseIp('2001:0db8:0000:0000:0001:0000:0000:0001'))).toBe('2001:db8::1:0:0:1');
    expect(formatIp(parseIp('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(() => parseIp('1.2.3')).toThrow();
    expect(() => parseIp('1::2::3')).toThrow();
    expect(() => parseIp('1:2:3:4:5:6:7:8:9')).toThrow();
  });

  it('parses what it builds', () => {
    const payload = new Uint8Array(33).fill(7);
    const f = frame({
      src: '198.18.1.2',
      dst: '10.0.0.100',
      proto: 'tcp',
      sport: 41000,
      dport: 443,
      seq: 0xfffffff0,
      ack: 12345,
      tcpFlags: TCP_PSH | TCP_ACK,
      window: 1000,
      vlans: [10, 20],
      ttl: 50,
      id: 999,
      ipFlags: 2,
      ipOptions: hex('94040000'),
      payload,
      srcMac: '02:00:00:00:aa:07',
    });
    const p = parseFrame(f);
    expect(p).toMatchObject({ srcMac: '02:00:00:00:aa:07', dstMac: '02:00:00:00:00:fe', vlans: [10, 20], etherType: 0x0800, l3Offset: 22 });
    expect(p.ip).toMatchObject({
      family: 4,
      src: '198.18.1.2',
      dst: '10.0.0.100',
      proto: 6,
      ttl: 50,
      id: 999,
      dontFragment: true,
      headerLength: 24,
      l4Offset: 46,
      sport: 41000,
      dport: 443,
      tcp: { seq: 0xfffffff0, ack: 12345, flags: 0x18, window: 1000, headerLength: 20 },
      payloadOffset: 66,
      payloadLength: 33,
      truncated: false,
    });
    const g = frame({
      src: '2001:db8:1::9',
      dst: '2001:db8::100',
      proto: 'udp',
      sport: 7,
      dport: 8,
      payload,
      extHeaders: [{ type: 60 }, { type: 44, id: 0xabcdef01 }],
    });
    expect(parseFrame(g).ip).toMatchObject({ family: 6, proto: 17, headerLength: 56, l4Offset: 70, id: 0xabcdef01, sport: 7, dport: 8, payloadLength: 33 });
    // IPIP
    const inner = ipv4({ src: '198.18.0.1', dst: '10.0.0.100', proto: 17, payload: udp({ sport: 1, dport: 2 }) });
    const outer = frame({ src: '10.0.0.1', dst: '10.0.1.1', proto: 4, payload: inner });
    expect(parseFrame(outer).ip!.inner).toMatchObject({ src: '198.18.0.1', dst: '10.0.0.100', sport: 1, dport: 2 });
    // standalone TCP builder without addresses leaves the checksum 0
    const seg = tcp({ sport: 1, dport: 2 });
    expect((seg[16] << 8) | seg[17]).toBe(0);
  });
});
