// Throughput measurement of the capture reader (not an assertion on time: machines differ).
// Skipped unless CAPTURE_BENCH is set:
//   CAPTURE_BENCH=1 npx vitest run test/io.bench.test.ts
//   CAPTURE_BENCH=1 CAPTURE_BENCH_PACKETS=5000000 npx vitest run test/io.bench.test.ts
// Writes a classic pcap (ns) and a pcapng file of 100-byte frames to the temporary directory,
// reads each three times into a 64 MiB ArrayBuffer standing for linear memory (batches of 256,
// 4 MiB arena, 4 MiB io region) and prints the best packets/s. The files are in the page cache,
// so this measures the reader, not the disk.
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCapture, type BatchTarget } from '../host/io/capture.js';
import { PcapWriter } from '../host/io/pcap-writer.js';

const N = Number(process.env.CAPTURE_BENCH_PACKETS ?? 2_000_000);
const FRAME = 100;

describe.skipIf(!process.env.CAPTURE_BENCH)('capture reader throughput', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sessionlb-bench-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function writePcap(path: string): void {
    const w = new PcapWriter(path, { nanos: true, bufferBytes: 4 << 20 });
    const f = Buffer.alloc(FRAME, 0x5a);
    for (let i = 0; i < N; i++) {
      f.writeUInt32BE(i, 30);
      w.write(f, 0, FRAME, FRAME, 1.7e18 + i * 1000);
    }
    w.close();
  }

  function writePcapng(path: string): void {
    const fd = openSync(path, 'w');
    const hdr = Buffer.alloc(28 + 24);
    hdr.writeUInt32LE(0x0a0d0d0a, 0);
    hdr.writeUInt32LE(28, 4);
    hdr.writeUInt32LE(0x1a2b3c4d, 8);
    hdr.writeUInt16LE(1, 12);
    hdr.writeBigInt64LE(-1n, 16);
    hdr.writeUInt32LE(28, 24);
    hdr.writeUInt32LE(1, 28); // IDB with if_tsresol = 9
    hdr.writeUInt32LE(24 + 8 + 4, 32);
    hdr.writeUInt16LE(1, 36);
    hdr.writeUInt32LE(0, 40);
    writeSync(fd, hdr);
    const opt = Buffer.alloc(12);
    opt.writeUInt16LE(9, 0);
    opt.writeUInt16LE(1, 2);
    opt.writeUInt8(9, 4);
    opt.writeUInt32LE(36, 8); // options end at 8, then the trailing length
    writeSync(fd, opt);
    const blen = 32 + FRAME;
    const chunk = Buffer.alloc(blen * 8192);
    let k = 0;
    for (let i = 0; i < N; i++) {
      const o = k * blen;
      const ts = 1_700_000_000_000_000_000n + BigInt(i) * 1000n;
      chunk.writeUInt32LE(6, o);
      chunk.writeUInt32LE(blen, o + 4);
      chunk.writeUInt32LE(0, o + 8);
      chunk.writeUInt32LE(Number(ts >> 32n), o + 12);
      chunk.writeUInt32LE(Number(ts & 0xffffffffn), o + 16);
      chunk.writeUInt32LE(FRAME, o + 20);
      chunk.writeUInt32LE(FRAME, o + 24);
      chunk.fill(0x5a, o + 28, o + 28 + FRAME);
      chunk.writeUInt32BE(i, o + 28 + 30);
      chunk.writeUInt32LE(blen, o + blen - 4);
      if (++k === 8192) {
        writeSync(fd, chunk);
        k = 0;
      }
    }
    if (k) writeSync(fd, chunk, 0, k * blen);
    closeSync(fd);
  }

  const mem = new Uint8Array(64 << 20);
  const t: BatchTarget = {
    mem,
    dv: new DataView(mem.buffer),
    descPtr: 1024,
    maxPackets: 256,
    arenaPtr: 1 << 20,
    arenaEnd: 5 << 20,
    headroom: 256,
    ioPtr: 16 << 20,
    ioSize: 4 << 20,
  };

  for (const fmt of ['pcap', 'pcapng'] as const) {
    it(`${fmt}: ${N} frames of ${FRAME} bytes`, () => {
      const path = join(dir, `bench.${fmt}`);
      if (fmt === 'pcap') writePcap(path);
      else writePcapng(path);
      let best = Infinity;
      for (let rep = 0; rep < 3; rep++) {
        const r = openCapture(path);
        const t0 = process.hrtime.bigint();
        let total = 0;
        for (let n = r.next(t); n > 0; n = r.next(t)) total += n;
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        r.close();
        expect(total).toBe(N);
        expect(r.stats.truncated).toBe(false);
        best = Math.min(best, s);
      }
      const size = statSync(path).size;
      console.log(
        `${fmt}: ${N} packets of ${FRAME} bytes (${(size / 1e6).toFixed(0)} MB) in ${best.toFixed(3)} s: ` +
          `${(N / best / 1e6).toFixed(2)} Mpackets/s, ${(size / best / 1e9).toFixed(2)} GB/s (best of 3)`,
      );
    }, 300_000);
  }
});
