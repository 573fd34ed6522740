// Unit tests of the capture reader (host/io/capture.ts) on files built in memory: classic pcap
// in both byte orders and both precisions, pcapng with several sections/interfaces/resolutions
// and every packet block type, malformed and truncated files, and the batch/arena contract.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureError, MAX_CAPLEN, MIN_IO_SIZE, openCapture, type BatchTarget, type CaptureReader } from '../host/io/capture.js';

const tmp = mkdtempSync(join(tmpdir(), 'sessionlb-io-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
function tmpFile(bytes: Uint8Array, name = `f${fileNo++}`): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Builders

interface Rec {
  sec: number;
  frac: number; // us or ns depending on the file
  data: Uint8Array;
  wire?: number;
  caplen?: number; // header value if different from data.length
}

function pcapFile(o: { le?: boolean; nanos?: boolean; linktype?: number; snaplen?: number }, recs: Rec[]): Buffer {
  const le = o.le ?? true;
  const size = 24 + recs.reduce((a, r) => a + 16 + r.data.length, 0);
  const b = Buffer.alloc(size);
  const w32 = (v: number, off: number) => (le ? b.writeUInt32LE(v >>> 0, off) : b.writeUInt32BE(v >>> 0, off));
  const w16 = (v: number, off: number) => (le ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off));
  w32(o.nanos ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  w16(2, 4);
  w16(4, 6);
  w32(0, 8);
  w32(0, 12);
  w32(o.snaplen ?? 65535, 16);
  w32(o.linktype ?? 1, 20);
  let off = 24;
  for (const r of recs) {
    w32(r.sec, off);
    w32(r.frac, off + 4);
    w32(r.caplen ?? r.data.length, off + 8);
    w32(r.wire ?? r.data.length, off + 12);
    b.set(r.data, off + 16);
    off += 16 + r.data.length;
  }
  return b;
}

/** pcapng builder: the byte order is that of the last section header written. */
class Ng {
  private parts: Buffer[] = [];
  private le = true;

  private block(type: number, body: Buffer): this {
    const padded = (body.length + 3) & ~3;
    const total = 12 + padded;
    const b = Buffer.alloc(total);
    this.w32(b, type, 0);
    this.w32(b, total, 4);
    body.copy(b, 8);
    this.w32(b, total, total - 4);
    this.parts.push(b);
    return this;
  }
  private w32(b: Buffer, v: number, o: number): void {
    if (this.le) b.writeUInt32LE(v >>> 0, o);
    else b.writeUInt32BE(v >>> 0, o);
  }
  private w16(b: Buffer, v: number, o: number): void {
    if (this.le) b.writeUInt16LE(v, o);
    else b.writeUInt16BE(v, o);
  }
  private u32(...vs: number[]): Buffer {
    const b = Buffer.alloc(4 * vs.length);
    vs.forEach((v, i) => this.w32(b, v, 4 * i));
    return b;
  }
  private u16(...vs: number[]): Buffer {
    const b = Buffer.alloc(2 * vs.length);
    vs.forEach((v, i) => this.w16(b, v, 2 * i));
    return b;
  }
  private opt(code: number, value: Buffer): Buffer {
    const b = Buffer.alloc(4 + ((value.length + 3) & ~3));
    this.w16(b, code, 0);
    this.w16(b, value.length, 2);
    value.copy(b, 4);
    return b;
  }
  private pad(data: Uint8Array): Buffer {
    const b = Buffer.alloc((data.length + 3) & ~3);
    b.set(data);
    return b;
  }

  shb(le: boolean): this {
    this.le = le;
    const body = Buffer.alloc(16);
    this.w32(body, 0x1a2b3c4d, 0);
    this.w16(body, 1, 4);
    this.w16(body, 0, 6);
    body.fill(0xff, 8, 16); // section length: unknown
    const hw = this.opt(2, Buffer.from('test-hardware')); // shb_hardware, ignored
    return this.block(0x0a0d0d0a, Buffer.concat([body, hw, this.u16(0, 0)]));
  }

  idb(linktype: number, snaplen: number, o: { tsresol?: number; tsoffset?: bigint; name?: string } = {}): this {
    const opts: Buffer[] = [];
    if (o.name) opts.push(this.opt(2, Buffer.from(o.name)));
    if (o.tsresol !== undefined) opts.push(this.opt(9, Buffer.from([o.tsresol])));
    if (o.tsoffset !== undefined) {
      const v = Buffer.alloc(8);
      if (this.le) v.writeBigInt64LE(o.tsoffset);
      else v.writeBigInt64BE(o.tsoffset);
      opts.push(this.opt(14, v));
    }
    if (opts.length) opts.push(this.u16(0, 0));
    return this.block(1, Buffer.concat([this.u16(linktype, 0), this.u32(snaplen), ...opts]));
  }

  epb(ifid: number, ts: bigint, data: Uint8Array, wire = data.length, extra: Buffer = Buffer.alloc(0)): this {
    const hi = Number(ts >> 32n);
    const lo = Number(ts & 0xffffffffn);
    return this.block(6, Buffer.concat([this.u32(ifid, hi, lo, data.length, wire), this.pad(data), extra]));
  }

  opb(ifid: number, ts: bigint, data: Uint8Array, wire = data.length): this {
    const hi = Number(ts >> 32n);
    const lo = Number(ts & 0xffffffffn);
    return this.block(2, Buffer.concat([this.u16(ifid, 0), this.u32(hi, lo, data.length, wire), this.pad(data)]));
  }

  spb(wire: number, stored: Uint8Array): this {
    return this.block(3, Buffer.concat([this.u32(wire), this.pad(stored)]));
  }

  other(type: number, bodyLen: number): this {
    return this.block(type, Buffer.alloc(bodyLen, 0x33));
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A frame of `len` bytes whose content identifies it (`tag`). */
function frame(len: number, tag: number): Uint8Array {
  const f = new Uint8Array(len);
  for (let i = 0; i < len; i++) f[i] = (tag * 31 + i * 7 + 1) & 0xff;
  return f;
}

// ---------------------------------------------------------------------------------------------
// Reading

const MEM = 24 << 20;
interface TargetOpts {
  maxPackets?: number;
  arenaBytes?: number;
  headroom?: number;
  ioSize?: number;
  arenaPtr?: number;
  inPlace?: boolean;
}
function target(o: TargetOpts = {}): BatchTarget {
  const buf = new ArrayBuffer(MEM);
  const mem = new Uint8Array(buf);
  mem.fill(0xee); // so that unwritten descriptor bytes show
  const arenaPtr = o.arenaPtr ?? 1 << 20;
  return {
    mem,
    dv: new DataView(buf),
    descPtr: 4096,
    maxPackets: o.maxPackets ?? 256,
    arenaPtr,
    arenaEnd: arenaPtr + (o.arenaBytes ?? 4 << 20),
    headroom: o.headroom ?? 256,
    ioPtr: 12 << 20,
    ioSize: o.ioSize ?? 4 << 20,
    inPlace: o.inPlace,
  };
}

interface Pkt {
  data: number;
  caplen: number;
  wire: number;
  port: number;
  link: number;
  sec: number;
  nsec: number;
  bytes: Buffer;
}

function readBatch(r: CaptureReader, t: BatchTarget): Pkt[] {
  const n = r.next(t);
  expect(n).toBeLessThanOrEqual(t.maxPackets);
  const out: Pkt[] = [];
  for (let i = 0; i < n; i++) {
    const d = t.descPtr + 32 * i;
    const data = t.dv.getUint32(d, true);
    const caplen = t.dv.getUint32(d + 4, true);
    expect(t.dv.getUint32(d + 24, true)).toBe(0);
    expect(t.dv.getUint32(d + 28, true)).toBe(0);
    out.push({
      data,
      caplen,
      wire: t.dv.getUint32(d + 8, true),
      port: t.dv.getUint16(d + 12, true),
      link: t.dv.getUint16(d + 14, true),
      sec: t.dv.getUint32(d + 16, true),
      nsec: t.dv.getUint32(d + 20, true),
      bytes: Buffer.from(t.mem.slice(data, data + caplen)),
    });
  }
  return out;
}

function readAll(path: string, o: TargetOpts = {}): { pkts: Pkt[]; batches: number[]; r: CaptureReader } {
  const r = openCapture(path);
  const t = target(o);
  const pkts: Pkt[] = [];
  const batches: number[] = [];
  let last = r.position();
  for (;;) {
    const b = readBatch(r, t);
    expect(r.position()).toBeGreaterThanOrEqual(last);
    last = r.position();
    if (b.length === 0) break;
    batches.push(b.length);
    pkts.push(...b);
  }
  expect(r.next(t)).toBe(0); // stays at the end
  r.close();
  return { pkts, batches, r };
}

function brief(p: Pkt) {
  return { caplen: p.caplen, wire: p.wire, port: p.port, link: p.link, sec: p.sec, nsec: p.nsec };
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

describe('classic pcap', () => {
  const recs: Rec[] = [
    { sec: 1_700_000_000, frac: 1, data: frame(60, 1) },
    { sec: 1_700_000_001, frac: 999_999, data: frame(1514, 2), wire: 9000 },
    { sec: 0, frac: 0, data: frame(0, 3) },
    { sec: 0xffffffff, frac: 500_000, data: frame(1, 4) },
  ];
  for (const le of [true, false]) {
    for (const nanos of [false, true]) {
      it(`reads ${le ? 'little' : 'big'}-endian ${nanos ? 'ns' : 'us'} files exactly`, () => {
        const rs = recs.map((r) => ({ ...r, frac: nanos ? r.frac * 1000 + 7 : r.frac }));
        const path = tmpFile(pcapFile({ le, nanos, linktype: 113, snaplen: 9000 }, rs));
        const { pkts, r } = readAll(path);
        expect(pkts.map(brief)).toEqual(
          rs.map((x) => ({
            caplen: x.data.length,
            wire: x.wire ?? x.data.length,
            port: 0,
            link: 113,
            sec: x.sec,
            nsec: nanos ? x.frac : x.frac * 1000,
          })),
        );
        pkts.forEach((p, i) => expect(p.bytes.equals(Buffer.from(rs[i].data))).toBe(true));
        expect(r.stats).toEqual({
          format: 'pcap',
          nanos,
          packets: 4,
          bytes: 60 + 9000 + 0 + 1,
          linktypes: { 113: 4 },
          interfaces: [{ linktype: 113, snaplen: 9000 }],
          truncated: false,
          errors: [],
          skippedBlocks: 0,
        });
        expect(r.size).toBe(24 + 16 * 4 + 60 + 1514 + 0 + 1);
        expect(r.path).toBe(path);
      });
    }
  }

  it('marks a file whose last record is cut as truncated (cut in the data and in the header)', () => {
    const full = pcapFile({}, recs);
    for (const cut of [full.length - 1, full.length - 1 - 16 + 3, full.length - 1 - 8]) {
      // cut inside record 4's single data byte, inside record 4's header (twice)
      const { pkts, r } = readAll(tmpFile(full.subarray(0, cut)));
      expect(pkts.length).toBe(3);
      expect(r.stats.truncated).toBe(true);
      expect(r.stats.packets).toBe(3);
      expect(r.stats.errors.length).toBe(1);
      expect(r.stats.errors[0]).toMatch(/file ends inside/);
    }
    // cut inside record 2's data
    const { pkts, r } = readAll(tmpFile(full.subarray(0, 24 + 16 + 60 + 16 + 1000)));
    expect(pkts.length).toBe(1);
    expect(r.stats.truncated).toBe(true);
    expect(r.position()).toBe(24 + 16 + 60);
  });

  it('stops at garbage after the header: absurd length is a corrupt record', () => {
    const hdr = pcapFile({}, []);
    const { pkts, r } = readAll(tmpFile(Buffer.concat([hdr, Buffer.alloc(100, 0xff)])));
    expect(pkts.length).toBe(0);
    expect(r.stats.truncated).toBe(true);
    expect(r.stats.errors.join()).toMatch(/captured length 4294967295 exceeds 262144/);
    // Garbage whose "length" is plausible but runs past the end of the file.
    const g = Buffer.alloc(40, 0x01); // caplen 0x01010101 too: absurd
    g.writeUInt32LE(1000, 8);
    const r2 = readAll(tmpFile(Buffer.concat([hdr, g]))).r;
    expect(r2.stats.packets).toBe(0);
    expect(r2.stats.truncated).toBe(true);
    // A corrupt record after good ones: the good ones are kept, reading stops.
    const good = pcapFile({}, recs.slice(0, 2));
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(MAX_CAPLEN + 1, 8);
    const after = pcapFile({}, recs.slice(2)).subarray(24);
    const r3 = readAll(tmpFile(Buffer.concat([good, bad, after])));
    expect(r3.pkts.length).toBe(2);
    expect(r3.r.stats.truncated).toBe(true);
    expect(r3.r.stats.errors[0]).toMatch(/record 3: captured length 262145 exceeds 262144/);
    // A frame of exactly MAX_CAPLEN is fine.
    const big = readAll(tmpFile(pcapFile({ snaplen: MAX_CAPLEN }, [{ sec: 1, frac: 2, data: frame(MAX_CAPLEN, 9) }])));
    expect(big.pkts.length).toBe(1);
    expect(big.pkts[0].bytes.equals(Buffer.from(frame(MAX_CAPLEN, 9)))).toBe(true);
    expect(big.r.stats.truncated).toBe(false);
  });

  it('drops the FCS bits of the link type', () => {
    for (const [raw, want] of [
      [0x10000001, 1], // FCS length 1 (bits 28..31)
      [0xf0000071, 113],
      [0x04000001, 1], // "FCS length present" flag (bit 26), as in tcpdump's bootp_asan.pcap
      [0x0c000069, 105], // flag + reserved bit 27
    ]) {
      const { pkts, r } = readAll(tmpFile(pcapFile({ linktype: raw }, recs.slice(0, 2))));
      expect(pkts.map((p) => p.link)).toEqual([want, want]);
      expect(r.stats.linktypes).toEqual({ [want]: 2 });
      expect(r.stats.interfaces).toEqual([{ linktype: want, snaplen: 65535 }]);
    }
    // A link type that does not fit the u16 field after masking: 65535 (dropped by the engine).
    const { pkts, r } = readAll(tmpFile(pcapFile({ linktype: 0x00123456 }, recs.slice(0, 1))));
    expect(pkts[0].link).toBe(0xffff);
    expect(r.stats.errors.join()).toMatch(/does not fit/);
  });

  it('normalises wirelen < caplen and timestamp fractions out of range', () => {
    const { pkts, r } = readAll(
      tmpFile(
        pcapFile({}, [
          { sec: 10, frac: 3_500_000, data: frame(50, 1), wire: 20 },
          { sec: 0xffffffff, frac: 1_000_000, data: frame(5, 2), wire: 0 },
        ]),
      ),
    );
    expect(pkts.map(brief)).toEqual([
      { caplen: 50, wire: 50, port: 0, link: 1, sec: 13, nsec: 500_000_000 },
      { caplen: 5, wire: 5, port: 0, link: 1, sec: 0xffffffff, nsec: 0 }, // 2^32 s saturates
    ]);
    expect(r.stats.bytes).toBe(55);
    expect(r.stats.truncated).toBe(false);
    expect(r.stats.errors.length).toBe(3);
    const ns = readAll(tmpFile(pcapFile({ nanos: true }, [{ sec: 10, frac: 2_999_999_999, data: frame(4, 1) }])));
    expect(ns.pkts.map((p) => [p.sec, p.nsec])).toEqual([[12, 999_999_999]]);
  });

  it('keeps records longer than the snaplen (noted once)', () => {
    const { pkts, r } = readAll(tmpFile(pcapFile({ snaplen: 20 }, recs)));
    expect(pkts.length).toBe(4);
    expect(r.stats.errors).toHaveLength(1);
    expect(r.stats.errors[0]).toMatch(/record 1: captured length 60 exceeds the snapshot length 20/);
  });

  it('header-only and short files', () => {
    const hdr = pcapFile({ nanos: true, linktype: 228 }, []);
    const a = readAll(tmpFile(hdr));
    expect(a.pkts.length).toBe(0);
    expect(a.r.stats).toMatchObject({ packets: 0, truncated: false, errors: [], nanos: true, interfaces: [{ linktype: 228, snaplen: 65535 }] });
    const b = readAll(tmpFile(hdr.subarray(0, 10)));
    expect(b.pkts.length).toBe(0);
    expect(b.r.stats.truncated).toBe(true);
    expect(b.r.stats.interfaces).toEqual([]);
    const c = readAll(tmpFile(pcapFile({}, recs).subarray(0, 24 + 5))); // header + part of a record header
    expect(c.pkts.length).toBe(0);
    expect(c.r.stats.truncated).toBe(true);
  });
});

describe('openCapture errors', () => {
  function codeOf(f: () => unknown): { code: string; message: string } {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(CaptureError);
      return { code: (e as CaptureError).code, message: (e as Error).message };
    }
    throw new Error('did not throw');
  }
  it('0-byte file: CAPTURE_EMPTY', () => {
    expect(codeOf(() => openCapture(tmpFile(new Uint8Array(0), 'empty.pcap'))).code).toBe('CAPTURE_EMPTY');
  });
  it('unknown magic: CAPTURE_UNKNOWN_FORMAT naming the file and the magic', () => {
    const p = tmpFile(Buffer.from('GIF89a..........................'), 'picture.pcap');
    const e = codeOf(() => openCapture(p));
    expect(e.code).toBe('CAPTURE_UNKNOWN_FORMAT');
    expect(e.message).toContain(p);
    expect(e.message).toContain('0x47494638');
    expect(codeOf(() => openCapture(tmpFile(Buffer.from([0xd4, 0xc3])))).code).toBe('CAPTURE_UNKNOWN_FORMAT');
    // Kuznetsov's "modified pcap" is not supported
    expect(codeOf(() => openCapture(tmpFile(Buffer.from([0xa1, 0xb2, 0xcd, 0x34, 0, 0, 0, 0])))).code).toBe('CAPTURE_UNKNOWN_FORMAT');
  });
  it('missing file: CAPTURE_OPEN', () => {
    expect(codeOf(() => openCapture(join(tmp, 'does-not-exist.pcap'))).code).toBe('CAPTURE_OPEN');
    expect(codeOf(() => openCapture(tmp)).code).toBe('CAPTURE_OPEN'); // a directory
  });
  it('io region too small or outside memory', () => {
    const r = openCapture(tmpFile(pcapFile({}, [{ sec: 1, frac: 1, data: frame(10, 1) }])));
    expect(codeOf(() => r.next({ ...target(), ioSize: MIN_IO_SIZE - 1 })).code).toBe('CAPTURE_IO_SMALL');
    expect(codeOf(() => r.next({ ...target(), ioPtr: MEM - MIN_IO_SIZE + 1, ioSize: MIN_IO_SIZE })).code).toBe('CAPTURE_IO_RANGE');
    r.close();
  });
});

// ---------------------------------------------------------------------------------------------
// pcapng

describe('pcapng', () => {
  it('reads two sections (LE then BE) with several interfaces, resolutions, SPB and OPB exactly', () => {
    const ns = 1_700_000_000_123_456_789n; // > 2^53: needs BigInt
    const f = new Ng()
      .shb(true)
      .idb(1, 0) // if 0: default resolution (us), no snaplen
      .idb(113, 128, { tsresol: 9 }) // if 1: ns
      .idb(101, 65535, { tsresol: 0x80 | 20, tsoffset: 1000n }) // if 2: 2^-20 s, +1000 s
      .epb(0, 1_700_000_000_654_321n, frame(60, 0))
      .epb(1, ns, frame(100, 1), 1500)
      .epb(2, (5n << 20n) | 0x80000n, frame(20, 2)) // 5.5 s + 1000 s
      .spb(200, frame(200, 3)) // interface 0, no snaplen: caplen = wirelen = 200; ts = previous
      .opb(1, ns + 1n, frame(33, 4), 40)
      .other(5, 24) // interface statistics
      .other(4, 16) // name resolution
      .shb(false) // second section, big-endian: its interface 0 is global 3
      .idb(228, 64, { tsresol: 3 }) // ms
      .idb(229, 0, { tsresol: 0x80 | 32, tsoffset: -100n })
      .epb(1, (1000n << 32n) | 0x40000000n, frame(70, 5)) // 1000.25 s - 100
      .epb(0, 1_234_567n, frame(64, 6), 64)
      .spb(100, frame(64, 7)) // snaplen 64 limits the SPB
      .other(0x0bad, 40)
      .build();
    const { pkts, r } = readAll(tmpFile(f));
    expect(pkts.map(brief)).toEqual([
      { caplen: 60, wire: 60, port: 0, link: 1, sec: 1_700_000_000, nsec: 654_321_000 },
      { caplen: 100, wire: 1500, port: 1, link: 113, sec: 1_700_000_000, nsec: 123_456_789 },
      { caplen: 20, wire: 20, port: 2, link: 101, sec: 1005, nsec: 500_000_000 },
      { caplen: 200, wire: 200, port: 0, link: 1, sec: 1005, nsec: 500_000_000 },
      { caplen: 33, wire: 40, port: 1, link: 113, sec: 1_700_000_000, nsec: 123_456_790 },
      { caplen: 70, wire: 70, port: 4, link: 229, sec: 900, nsec: 250_000_000 },
      { caplen: 64, wire: 64, port: 3, link: 228, sec: 1234, nsec: 567_000_000 },
      { caplen: 64, wire: 100, port: 3, link: 228, sec: 1234, nsec: 567_000_000 },
    ]);
    const tags = [0, 1, 2, 3, 4, 5, 6, 7];
    const lens = [60, 100, 20, 200, 33, 70, 64, 64];
    pkts.forEach((p, i) => expect(p.bytes.equals(Buffer.from(frame(lens[i], tags[i])))).toBe(true));
    expect(r.stats).toEqual({
      format: 'pcapng',
      nanos: true,
      packets: 8,
      bytes: 60 + 1500 + 20 + 200 + 40 + 70 + 64 + 100,
      linktypes: { 1: 2, 113: 2, 101: 1, 228: 2, 229: 1 },
      interfaces: [
        { linktype: 1, snaplen: 0 },
        { linktype: 113, snaplen: 128 },
        { linktype: 101, snaplen: 65535 },
        { linktype: 228, snaplen: 64 },
        { linktype: 229, snaplen: 0 },
      ],
      truncated: false,
      errors: [],
      skippedBlocks: 3,
    });
    expect(r.position()).toBe(f.length);
  });

  it('reads an all big-endian file and an all little-endian file the same way', () => {
    const build = (le: boolean) =>
      new Ng()
        .shb(le)
        .idb(1, 262144)
        .epb(0, 1_600_000_000_000_001n, frame(54, 1), 60)
        .epb(0, 1_600_000_000_000_002n, frame(1514, 2))
        .build();
    const a = readAll(tmpFile(build(true)));
    const b = readAll(tmpFile(build(false)));
    expect(a.pkts.map(brief)).toEqual(b.pkts.map(brief));
    expect(a.pkts.map(brief)).toEqual([
      { caplen: 54, wire: 60, port: 0, link: 1, sec: 1_600_000_000, nsec: 1000 },
      { caplen: 1514, wire: 1514, port: 0, link: 1, sec: 1_600_000_000, nsec: 2000 },
    ]);
    expect(a.r.stats.nanos).toBe(false);
    expect(b.pkts[1].bytes.equals(Buffer.from(frame(1514, 2)))).toBe(true);
  });

  it('simple packet blocks: captured length = min(original length, snaplen, room in the block)', () => {
    const f = new Ng()
      .shb(true)
      .idb(1, 0)
      .spb(1500, frame(64, 1)) // first packet: timestamp 0; the block holds 64 bytes
      .spb(30, frame(30, 2)) // 30 bytes padded to 32: caplen 30
      .spb(0, frame(8, 3)) // original length 0: caplen 0
      .shb(false)
      .idb(1, 16)
      .epb(0, 7_000_001n, frame(16, 4))
      .spb(100, frame(64, 5)) // snaplen 16
      .build();
    const { pkts } = readAll(tmpFile(f));
    expect(pkts.map(brief)).toEqual([
      { caplen: 64, wire: 1500, port: 0, link: 1, sec: 0, nsec: 0 },
      { caplen: 30, wire: 30, port: 0, link: 1, sec: 0, nsec: 0 },
      { caplen: 0, wire: 0, port: 0, link: 1, sec: 0, nsec: 0 },
      { caplen: 16, wire: 16, port: 1, link: 1, sec: 7, nsec: 1000 },
      { caplen: 16, wire: 100, port: 1, link: 1, sec: 7, nsec: 1000 },
    ]);
    expect(pkts[0].bytes.equals(Buffer.from(frame(64, 1)))).toBe(true);
    expect(pkts[4].bytes.equals(Buffer.from(frame(64, 5).subarray(0, 16)))).toBe(true);
  });

  it('converts timestamps exactly for many resolutions', () => {
    const cases: [number, bigint, number, number][] = [
      // tsresol byte, raw value, seconds, nanoseconds
      [6, 0xffffffffffffffffn, 18446744073709, 551_615_000], // > 2^32 s: saturates below
      [9, 1_700_000_000_999_999_999n, 1_700_000_000, 999_999_999],
      [0, 1_700_000_000n, 1_700_000_000, 0],
      [1, 17_000_000_005n, 1_700_000_000, 500_000_000],
      [12, 1_700_000_000_123_456_789_999n & 0xffffffffffffffffn, -1, -1], // computed below
      [15, 1_000_000_000_000_001n, 1, 0],
      [0x80 | 0, 123n, 123, 0],
      [0x80 | 10, (7n << 10n) | 1023n, 7, 999_023_437],
      [0x80 | 30, (3n << 30n) | 1n, 3, 0], // 1e9 / 2^30 < 1 ns
      [0x80 | 30, (3n << 30n) | (1n << 29n), 3, 500_000_000],
      [0x80 | 63, 1n << 62n, 0, 500_000_000],
      [30, 5n, 0, 0], // 10^-30
    ];
    for (const c of cases) {
      if (c[2] === -1) {
        const v = c[1];
        c[2] = Number(v / 10n ** 12n);
        c[3] = Number((v % 10n ** 12n) / 1000n);
      }
    }
    const ng = new Ng().shb(true);
    cases.forEach((c) => ng.idb(1, 0, { tsresol: c[0] }));
    cases.forEach((c, i) => ng.epb(i, c[1], frame(8, i)));
    const { pkts, r } = readAll(tmpFile(ng.build()));
    expect(pkts.map((p) => [p.sec, p.nsec])).toEqual(cases.map((c) => [Math.min(c[2], 0xffffffff), c[3]]));
    expect(r.stats.errors).toHaveLength(1); // the saturated timestamp
    expect(r.stats.errors[0]).toMatch(/does not fit in 32 bits/);
    expect(r.stats.nanos).toBe(true);
  });

  it('timestamp conversion matches BigInt arithmetic on random values', () => {
    // Resolutions 10^0..10^-9 and a few binary ones, offsets of either sign; values chosen so
    // that most land inside the u32 seconds range (the rest saturate).
    const res = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80 | 10, 0x80 | 20, 0x80 | 29, 0x80 | 40];
    const offs = [0n, 1000n, -1000n, 1_000_000_000n];
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0), seed);
    const ng = new Ng().shb(true);
    const ifs: { r: number; off: bigint }[] = [];
    for (const r of res) for (const off of offs) ifs.push({ r, off });
    ifs.forEach((x) => ng.idb(1, 0, { tsresol: x.r, tsoffset: x.off }));
    const want: [number, number][] = [];
    for (let i = 0; i < 4000; i++) {
      const k = i % ifs.length;
      const { r, off } = ifs[k];
      const D = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r);
      const secs = BigInt(rnd()) % 4_000_000_000n;
      const v = (secs * D + ((BigInt(rnd()) << 32n) | BigInt(rnd())) % D) & 0xffffffffffffffffn;
      ng.epb(k, v, frame(4, i));
      let s = v / D + off;
      if (s > 0xffffffffn) s = 0xffffffffn;
      if (s < 0n) s = 0n;
      want.push([Number(s), Number(((v % D) * 1_000_000_000n) / D)]);
    }
    const { pkts } = readAll(tmpFile(ng.build()));
    expect(pkts.map((p) => [p.sec, p.nsec])).toEqual(want);
  });

  it('counts and skips unknown blocks, noting unknown types', () => {
    const f = new Ng()
      .shb(true)
      .other(0x1234, 8)
      .idb(1, 0)
      .other(0x80000001, 4) // local use
      .other(0x0a, 100) // decryption secrets
      .epb(0, 1n, frame(10, 1))
      .build();
    const { pkts, r } = readAll(tmpFile(f));
    expect(pkts.length).toBe(1);
    expect(r.stats.skippedBlocks).toBe(3);
    expect(r.stats.errors).toHaveLength(1);
    expect(r.stats.errors[0]).toMatch(/unknown type 0x00001234/);
  });

  it('header-only files and truncation', () => {
    const hdr = new Ng().shb(true).idb(1, 0).build();
    const a = readAll(tmpFile(hdr));
    expect(a.pkts.length).toBe(0);
    expect(a.r.stats).toMatchObject({ truncated: false, errors: [], interfaces: [{ linktype: 1, snaplen: 0 }] });
    const full = new Ng().shb(false).idb(1, 0).epb(0, 1n, frame(100, 1)).epb(0, 2n, frame(100, 2)).build();
    for (const cut of [full.length - 1, full.length - 4, full.length - 100, full.length - 130, full.length - 124]) {
      const b = readAll(tmpFile(full.subarray(0, cut)));
      expect(b.pkts.length).toBe(1);
      expect(b.r.stats.truncated).toBe(true);
      expect(b.r.stats.errors[0]).toMatch(/file ends inside/);
    }
    const c = readAll(tmpFile(full.subarray(0, 10))); // inside the SHB
    expect(c.pkts.length).toBe(0);
    expect(c.r.stats.truncated).toBe(true);
  });

  it('stops at corrupt blocks', () => {
    const base = () => new Ng().shb(true).idb(1, 0).epb(0, 1n, frame(10, 1));
    const cases: [Buffer, RegExp][] = [];
    // trailing length differs from the leading one
    const t = base().epb(0, 2n, frame(10, 2)).build();
    t.writeUInt32LE(999, t.length - 4);
    cases.push([t, /trailing length 999/]);
    // packet on a non-existent interface
    cases.push([base().epb(3, 2n, frame(10, 2)).build(), /names interface 3 but the section has 1/]);
    // captured length larger than the block (the last EPB is 44 bytes: 28 + 12 + 4)
    const c = base().epb(0, 2n, frame(10, 2)).build();
    c.writeUInt32LE(100, c.length - 44 + 20);
    cases.push([c, /does not fit in a block/]);
    // block length not a multiple of 4
    const m = base().epb(0, 2n, frame(10, 2)).build();
    m.writeUInt32LE(41, m.length - 44 + 4);
    cases.push([m, /invalid total length 41/]);
    // bad byte-order magic in a second section
    const s = Buffer.concat([base().build(), new Ng().shb(true).build()]);
    s.writeUInt32LE(0x11223344, base().build().length + 8);
    cases.push([s, /unknown byte-order magic 0x11223344/]);
    // SPB in a section without interfaces
    cases.push([Buffer.concat([base().build(), new Ng().shb(true).spb(10, frame(10, 2)).build()]), /without an interface/]);
    // captured length above MAX_CAPLEN
    // captured length above MAX_CAPLEN, in a block that is long enough (and well formed)
    const big = Buffer.alloc(2_000_000);
    big.writeUInt32LE(6, 0);
    big.writeUInt32LE(big.length, 4);
    big.writeUInt32LE(MAX_CAPLEN + 4, 20);
    big.writeUInt32LE(MAX_CAPLEN + 4, 24);
    big.writeUInt32LE(big.length, big.length - 4);
    cases.push([Buffer.concat([base().build(), big]), /exceeds 262144/]);
    for (const [file, re] of cases) {
      const { pkts, r } = readAll(tmpFile(file));
      expect(pkts.length).toBe(1);
      expect(r.stats.truncated).toBe(true);
      expect(r.stats.errors.join('\n')).toMatch(re);
    }
  });

  it('handles blocks larger than the io region (packet blocks read partly, others skipped)', () => {
    const io = MIN_IO_SIZE;
    const f = new Ng()
      .shb(true)
      .idb(1, 0)
      .other(0x0bad, 3 * io) // skipped without being read
      .epb(0, 5n, frame(1000, 1), 1000, Buffer.alloc(io + 5000, 0x44)) // huge options
      .epb(0, 6n, frame(100, 2))
      .build();
    const { pkts, r } = readAll(tmpFile(f), { ioSize: io });
    expect(pkts.map((p) => p.caplen)).toEqual([1000, 100]);
    expect(pkts[0].bytes.equals(Buffer.from(frame(1000, 1)))).toBe(true);
    expect(pkts[1].bytes.equals(Buffer.from(frame(100, 2)))).toBe(true);
    expect(r.stats.skippedBlocks).toBe(1);
    expect(r.stats.truncated).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Chunking and batches

describe('chunk boundaries and batches', () => {
  // Many frames of varied sizes so that records straddle every possible chunk position.
  const sizes: number[] = [];
  for (let i = 0; sizes.length < 3000; i++) sizes.push(i % 97 === 0 ? 20000 + i : (i * 37) % 1600);
  const recs: Rec[] = sizes.map((s, i) => ({ sec: 1000 + i, frac: i, data: frame(s, i) }));
  const pcapPath = tmpFile(pcapFile({ le: false }, recs));
  const ng = new Ng().shb(true).idb(1, 0).idb(105, 0, { tsresol: 9 });
  recs.forEach((r, i) => (i % 5 === 4 ? ng.spb(r.data.length, r.data) : ng.epb(i & 1, BigInt(r.sec) * (i & 1 ? 1_000_000_000n : 1_000_000n) + BigInt(r.frac), r.data)));
  const ngPath = tmpFile(ng.build());

  for (const [name, path] of [
    ['pcap', pcapPath],
    ['pcapng', ngPath],
  ]) {
    it(`${name}: records straddling chunk boundaries are read intact`, () => {
      for (const ioSize of [MIN_IO_SIZE, MIN_IO_SIZE + 13 * 4, 1 << 20]) {
        const { pkts } = readAll(path, { ioSize });
        expect(pkts.length).toBe(recs.length);
        pkts.forEach((p, i) => {
          if (p.caplen !== sizes[i] || !p.bytes.equals(Buffer.from(recs[i].data))) throw new Error(`${name} io=${ioSize} packet ${i} differs`);
        });
      }
    });
  }

  it('in place (classic pcap): frames stay in the io region behind their record headers, same bytes', () => {
    for (const ioSize of [MIN_IO_SIZE, 1 << 20]) {
      const { pkts } = readAll(pcapPath, { ioSize, inPlace: true });
      expect(pkts.length).toBe(recs.length);
      const io = 12 << 20;
      pkts.forEach((p, i) => {
        if (p.data < io + 16 || p.data + p.caplen > io + ioSize) throw new Error(`packet ${i} at ${p.data} is outside the io region`);
        if (p.caplen !== sizes[i] || !p.bytes.equals(Buffer.from(recs[i].data))) throw new Error(`in place io=${ioSize} packet ${i} differs`);
      });
    }
    // pcapng ignores the flag: its frames are copied to the arena as usual.
    const { pkts } = readAll(ngPath, { inPlace: true });
    expect(pkts.every((p) => p.data >= 1 << 20 && p.data < (1 << 20) + (4 << 20))).toBe(true);
  });

  it('respects maxPackets', () => {
    const { batches } = readAll(pcapPath, { maxPackets: 7 });
    expect(batches.slice(0, -1).every((b) => b === 7)).toBe(true);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(recs.length);
    expect(batches.at(-1)).toBe(recs.length % 7 || 7);
  });

  it('places frames at align8(previous end + headroom), within the arena', () => {
    for (const [headroom, arenaPtr] of [
      [256, 1 << 20],
      [0, (1 << 20) + 3],
      [13, (1 << 20) + 5],
    ]) {
      const r = openCapture(ngPath);
      const t = target({ headroom, arenaPtr, arenaBytes: 300_000, maxPackets: 64 });
      let seen = 0;
      for (;;) {
        const b = readBatch(r, t);
        if (b.length === 0) break;
        let cursor = arenaPtr;
        for (const p of b) {
          expect(p.data).toBe(Math.ceil((cursor + headroom) / 8) * 8);
          expect(p.data - cursor).toBeGreaterThanOrEqual(headroom);
          expect(p.data + p.caplen).toBeLessThanOrEqual(t.arenaEnd);
          cursor = p.data + p.caplen;
          expect(p.bytes.equals(Buffer.from(recs[seen].data))).toBe(true);
          seen++;
        }
      }
      expect(seen).toBe(recs.length);
      r.close();
    }
  });

  it('a full arena ends the batch early; the frame that did not fit comes first in the next batch', () => {
    const frames = [100, 100, 100, 100, 100];
    const path = tmpFile(pcapFile({}, frames.map((s, i) => ({ sec: i, frac: 0, data: frame(s, i) }))));
    // Each frame takes 256 (headroom) + 100, rounded to 8: data at 256, 616 (=align8(356+256)), ...
    // An arena of 1000 bytes holds two frames (second ends at 716; a third would end at 1076).
    const r = openCapture(path);
    const t = target({ arenaBytes: 1000, maxPackets: 256 });
    const got: number[][] = [];
    for (;;) {
      const b = readBatch(r, t);
      if (b.length === 0) break;
      got.push(b.map((p) => p.sec));
      expect(b[0].data).toBe(t.arenaPtr + 256);
      if (b.length > 1) expect(b[1].data).toBe(t.arenaPtr + 616);
    }
    expect(got).toEqual([[0, 1], [2, 3], [4]]);
    expect(r.stats.packets).toBe(5);
    r.close();
    // A frame that cannot fit even an empty arena is refused loudly.
    const r2 = openCapture(path);
    expect(() => r2.next(target({ arenaBytes: 300 }))).toThrow(/does not fit in an empty arena/);
    r2.close();
  });

  it('survives the io region moving between batches', () => {
    const r = openCapture(ngPath);
    const t = target({ maxPackets: 100 });
    let seen = 0;
    for (let k = 0; ; k++) {
      const moved = { ...t, ioPtr: t.ioPtr + (k % 3) * 8, ioSize: MIN_IO_SIZE + (k % 2) * 4096 };
      const b = readBatch(r, moved);
      if (b.length === 0) break;
      for (const p of b) expect(p.bytes.equals(Buffer.from(recs[seen++].data))).toBe(true);
    }
    expect(seen).toBe(recs.length);
    expect(r.position()).toBe(r.size);
    r.close();
  });

  it('releaseIo lets the host reuse the io region between batches', () => {
    for (const path of [pcapPath, ngPath]) {
      const r = openCapture(path);
      const t = target({ maxPackets: 50 });
      let seen = 0;
      for (;;) {
        // A fresh view of the same memory each time must not matter either.
        const b = readBatch(r, { ...t, mem: new Uint8Array(t.mem.buffer) });
        if (b.length === 0) break;
        for (const p of b) expect(p.bytes.equals(Buffer.from(recs[seen++].data))).toBe(true);
        r.releaseIo();
        t.mem.fill(0x77, t.ioPtr, t.ioPtr + t.ioSize); // the host scribbles over the region
      }
      expect(seen).toBe(recs.length);
      r.close();
    }
  });
});
