// Property tests of the engine against plain TypeScript references: checksums (full and
// incremental), the flow hash and its symmetric variant, Maglev balance and disruption, the
// module's imports/exports, and SIMD vs no-SIMD builds giving identical bytes.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { loadModule, modulePath, instantiate } from '../host/wasm.js';
import { buildRing } from '../host/ctl/maglev.js';
import { internetChecksum, verifyFrame, fixFrame } from './ref/csum.js';
import { flowHashRef, flowHashSymRef, makeKey } from './ref/hash.js';
import { maglevTable } from './ref/maglev.js';
import { frame, parseFrame } from './ref/packet.js';
import { makeEngine, run, simpleConfig } from './helpers/engine.js';
import { rng } from './helpers/rng.js';


describe('module', () => {
  it('imports nothing and exports what docs/abi.md lists', () => {
    for (const simd of [true, false]) {
      const m = loadModule(modulePath(simd));
      expect(WebAssembly.Module.imports(m)).toEqual([]);
      const names = WebAssembly.Module.exports(m).map((e) => e.name).filter((n) => n !== 'memory').sort();
      // Only the "Exports" section's table lists exports (other tables name steps and fields).
      const whole = readFileSync(new URL('../docs/abi.md', import.meta.url), 'utf8');
      const start = whole.indexOf('\n## Exports');
      const doc = whole.slice(start, whole.indexOf('\n## ', start + 4));
      const documented = [...doc.matchAll(/^\| `([a-z_0-9]+)`(?:, `([a-z_0-9]+)`)*(?:, `([a-z_0-9]+)`)? \|/gm)]
        .flatMap((mm) => mm[0].match(/`[a-z_0-9]+`/g)!.map((s) => s.slice(1, -1)));
      expect(names).toEqual([...new Set(documented)].sort());
    }
  });

  it('the SIMD build uses SIMD instructions and the no-SIMD build has none', () => {
    // Disassemble with binaryen's wasm-dis (installed with assemblyscript).
    const dis = (p: string) => execFileSync('node_modules/.bin/wasm-dis', [p], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(dis(modulePath(true))).toMatch(/i32x4\.extadd_pairwise_i16x8_u/);
    expect(dis(modulePath(false))).not.toMatch(/v128|i32x4|i16x8/);
  });
});

describe('checksum', () => {
  it('csum export equals the reference on random buffers of every alignment and length', () => {
    const ex = instantiate(loadModule());
    expect(ex.init(1024, 1, 1, 0, 1 << 20, 1024, 1 << 20)).toBe(0);
    const mem = new Uint8Array(ex.memory.buffer);
    const base = ex.io_ptr();
    const r = rng(1);
    const lengths = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1499, 1500, 9000, 65535, 200_000];
    for (const len of lengths) {
      for (const align of [0, 1, 3, 8]) {
        const buf = new Uint8Array(len);
        for (let i = 0; i < len; i++) buf[i] = (r() * 256) | 0;
        if (len === 200_000) buf.fill(0xff); // worst case for the SIMD lane accumulators
        mem.set(buf, base + align);
        expect(ex.csum(base + align, len), `len ${len} align ${align}`).toBe(internetChecksum(buf));
      }
    }
  });

  it('NAT and tunnel rewrites leave every checksum equal to a full recomputation (5,000 random packets)', () => {
    const r = rng(7);
    const pick = <T>(xs: T[]) => xs[(r() * xs.length) | 0];
    for (const method of ['nat', 'dr', 'ipip', 'gre', 'gue']) {
      for (const fam of [4, 6]) {
        const vip = fam === 4 ? '10.0.0.100' : 'fd00::100';
        const cfg = simpleConfig({ vip, method, n: 4, ports: [80, 53, 443], extra: { flowCapacity: 65536 } });
        const eng = makeEngine(cfg);
        const frames = [];
        for (let i = 0; i < 500; i++) {
          const proto = pick(['tcp', 'udp'] as const);
          const client = fam === 4 ? `198.18.${(r() * 256) | 0}.${(r() * 256) | 0}` : `2001:db8:1::${((r() * 65535) | 0).toString(16)}`;
          const payload = new Uint8Array((r() * 1400) | 0).map(() => (r() * 256) | 0);
          const reply = r() < 0.3;
          const port = pick([80, 53, 443]);
          const sport = 1024 + ((r() * 60000) | 0);
          frames.push(frame({
            src: reply ? vip : client, dst: reply ? client : vip, proto,
            sport: reply ? port : sport, dport: reply ? sport : port,
            seq: (r() * 2 ** 32) >>> 0, ack: (r() * 2 ** 32) >>> 0, tcpFlags: pick(['S', 'A', 'PA', 'FA', 'R']),
            payload, vlans: r() < 0.2 ? [(r() * 4094) | 1] : undefined,
            ipOptions: fam === 4 && r() < 0.2 ? new Uint8Array([1, 1, 1, 0]) : undefined,
          }));
        }
        const out = run(eng, frames.map((bytes) => ({ bytes })));
        let checked = 0;
        for (const o of out) {
          expect(o.verdict === 'backend' || o.verdict === 'client').toBe(true);
          const v = verifyFrame(o.bytes);
          expect(v.problems, `${method} v${fam}`).toEqual([]);
          if (v.ipOk !== null) expect(v.ipOk).toBe(true);
          // Incremental == full: recomputing from scratch changes nothing.
          const again = fixFrame(o.bytes.slice(), { keepZeroUdp: true });
          expect(Buffer.from(again).equals(Buffer.from(o.bytes))).toBe(true);
          // Tunnelled: the inner packet's checksums are intact too.
          const p = parseFrame(o.bytes);
          const inner = p.ip?.inner ?? (p.ip?.proto === 17 && p.ip.dport === 6080 ? 'gue' : null);
          if (inner && o.verdict === 'backend') {
            const off = inner === 'gue' ? p.ip!.l4Offset + 8 : (p.ip!.inner!.offset);
            const eth = new Uint8Array(14 + o.bytes.length - off);
            eth.set(o.bytes.subarray(off), 14);
            eth[12] = (o.bytes[off] >> 4) === 4 ? 0x08 : 0x86;
            eth[13] = (o.bytes[off] >> 4) === 4 ? 0x00 : 0xdd;
            const vi = verifyFrame(eth);
            expect(vi.problems).toEqual([]);
            expect(vi.l4Ok).toBe(true);
          }
          checked++;
        }
        expect(checked).toBe(500);
      }
    }
  });
});

describe('flow hash', () => {
  it('equals the BigInt reference and the symmetric variant is direction-free', () => {
    const ex = instantiate(loadModule());
    expect(ex.init(1024, 1, 1, 0, 1 << 20, 1024, 1 << 20)).toBe(0);
    const k0 = 0x0123456789abcdefn, k1 = 0xfedcba9876543210n;
    ex.config_hash_key(k0, k1);
    const mem = new Uint8Array(ex.memory.buffer);
    const p = ex.scratch_ptr();
    const r = rng(3);
    for (let i = 0; i < 2000; i++) {
      const v6 = r() < 0.5;
      const a = v6 ? `2001:db8::${((r() * 65535) | 0).toString(16)}` : `10.${(r() * 256) | 0}.${(r() * 256) | 0}.${(r() * 256) | 0}`;
      const b = v6 ? `2001:db8::${((r() * 65535) | 0).toString(16)}` : `10.${(r() * 256) | 0}.${(r() * 256) | 0}.${(r() * 256) | 0}`;
      const sp = (r() * 65536) | 0, dp = (r() * 65536) | 0;
      const proto = r() < 0.5 ? 6 : 17;
      const key = makeKey({ src: a, dst: b, sport: sp, dport: dp, proto });
      const rev = makeKey({ src: b, dst: a, sport: dp, dport: sp, proto });
      mem.set(key, p);
      expect(ex.flow_hash(p) >>> 0).toBe(flowHashRef(key, k0, k1));
      const s1 = ex.flow_hash_sym(p) >>> 0;
      expect(s1).toBe(flowHashSymRef(key, k0, k1));
      mem.set(rev, p);
      expect(ex.flow_hash_sym(p) >>> 0).toBe(s1);
    }
  });

  it('spreads keys evenly over buckets (chi-square sanity)', () => {
    const ex = instantiate(loadModule());
    ex.init(1024, 1, 1, 0, 1 << 20, 1024, 1 << 20);
    const mem = new Uint8Array(ex.memory.buffer);
    const p = ex.scratch_ptr();
    const buckets = new Array(64).fill(0);
    const N = 64_000;
    for (let i = 0; i < N; i++) {
      // Sequential clients: the worst case for a weak hash.
      mem.set(makeKey({ src: `198.18.${i >> 8}.${i & 255}`, dst: '10.0.0.100', sport: 40000, dport: 80, proto: 6 }), p);
      buckets[(ex.flow_hash(p) >>> 0) & 63]++;
    }
    const e = N / 64;
    const chi = buckets.reduce((s, x) => s + ((x - e) ** 2) / e, 0);
    expect(chi).toBeLessThan(120); // 63 degrees of freedom: p < 0.0001 above ~110
  });
});

describe('Maglev', () => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `backend-${i}`, weight: 1 }));

  it('the host ring equals the straightforward reference, weights included', () => {
    for (const [members, M] of [[names(3), 4093], [names(10), 65537], [[{ name: 'a', weight: 1 }, { name: 'b', weight: 2 }, { name: 'c', weight: 3 }], 65537]] as const) {
      expect(Array.from(buildRing([...members], M))).toEqual(Array.from(maglevTable([...members], M)));
    }
  });

  it('balances within 1% at M=65537 with 10 backends, and honours weights 1:2:3', () => {
    const t = buildRing(names(10), 65537);
    const c = new Array(10).fill(0);
    for (const x of t) c[x]++;
    const mean = 65537 / 10;
    expect(Math.max(...c) / mean).toBeLessThan(1.01);
    expect(Math.min(...c) / mean).toBeGreaterThan(0.99);
    const w = buildRing([{ name: 'a', weight: 1 }, { name: 'b', weight: 2 }, { name: 'c', weight: 3 }], 65537);
    const cw = [0, 0, 0];
    for (const x of w) cw[x]++;
    expect(cw[1] / cw[0]).toBeCloseTo(2, 1);
    expect(cw[2] / cw[0]).toBeCloseTo(3, 1);
  });

  it('removing 1 of N backends moves about 1/N of the slots', () => {
    for (const n of [5, 10, 50]) {
      const before = buildRing(names(n), 65537);
      const after = buildRing(names(n).map((m, i) => (i === n - 1 ? { ...m, weight: 0 } : m)), 65537);
      let moved = 0, movedOthers = 0;
      for (let i = 0; i < before.length; i++) {
        if (before[i] !== after[i]) {
          moved++;
          if (before[i] !== n - 1) movedOthers++;
        }
      }
      const frac = moved / before.length;
      expect(frac).toBeGreaterThanOrEqual(1 / n - 0.01);
      expect(frac).toBeLessThan(1 / n + 0.04);
      // Slots of the surviving backends rarely change owner (paper: a few % at most).
      expect(movedOthers / before.length).toBeLessThan(0.04);
    }
  });
});

describe('SIMD and no-SIMD builds', () => {
  it('produce identical output bytes, verdicts and counters', () => {
    const cfg = simpleConfig({ method: 'gue', n: 5, extra: { flowCapacity: 4096 } });
    const r = rng(11);
    const frames = Array.from({ length: 3000 }, () => ({
      bytes: frame({
        src: `198.18.0.${(r() * 200) | 0}`, dst: '10.0.0.100', proto: r() < 0.5 ? 'tcp' : 'udp',
        sport: 1024 + ((r() * 5000) | 0), dport: 80, payload: new Uint8Array((r() * 1200) | 0).map(() => (r() * 256) | 0),
      }),
    }));
    const a = makeEngine(cfg, { simd: true });
    const b = makeEngine(cfg, { simd: false });
    const oa = run(a, frames), ob = run(b, frames);
    for (let i = 0; i < oa.length; i++) {
      expect(oa[i].verdict).toBe(ob[i].verdict);
      expect(oa[i].egress).toBe(ob[i].egress);
      expect(Buffer.from(oa[i].bytes).equals(Buffer.from(ob[i].bytes))).toBe(true);
    }
    expect(a.counters()).toEqual(b.counters());
  });
});
