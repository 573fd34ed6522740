// The pcapng files of tcpdump's test corpus (../shared/fixtures/tcpdump, read-only): every file
// is read without a crash, and, when tshark is installed, every packet is cross-checked against
// `tshark -T fields -e frame.cap_len -e frame.len -e frame.time_epoch -e frame.interface_id`.
//
// Disagreements and how they are treated (asserted, not ignored):
//  - Seconds beyond 2^32-1 (year 2106+): tshark prints them; the descriptor's tsSec is a u32, so
//    our reader saturates at 4294967295 (nanoseconds kept) and says so in stats.errors. The
//    files where this happens are listed.
//  - frame.len < frame.cap_len: our contract writes wirelen = caplen (none in this corpus).
//  - tshark refusing a file (non-zero exit): our reader must then report truncated or an error,
//    and the packets tshark printed before giving up must be our first packets. (None in this
//    corpus: the list of refused files is asserted empty.)
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCapture, type BatchTarget } from '../host/io/capture.js';

const DIR = join(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'tcpdump');
const TSHARK = '/usr/bin/tshark';
const have = existsSync(DIR);
const files = have ? readdirSync(DIR).filter((f) => f.endsWith('.pcapng')).sort() : [];

const mem = new Uint8Array(16 << 20);
const target: BatchTarget = {
  mem,
  dv: new DataView(mem.buffer),
  descPtr: 0,
  maxPackets: 256,
  arenaPtr: 1 << 20,
  arenaEnd: 5 << 20,
  headroom: 256,
  ioPtr: 8 << 20,
  ioSize: 4 << 20,
};

interface Row {
  caplen: number;
  wire: number;
  sec: number;
  nsec: number;
  port: number;
}

function readOurs(path: string) {
  const r = openCapture(path);
  const rows: Row[] = [];
  const links: number[] = [];
  const dv = target.dv;
  for (;;) {
    const n = r.next(target);
    if (n === 0) break;
    for (let i = 0; i < n; i++) {
      const d = target.descPtr + 32 * i;
      rows.push({
        caplen: dv.getUint32(d + 4, true),
        wire: dv.getUint32(d + 8, true),
        port: dv.getUint16(d + 12, true),
        sec: dv.getUint32(d + 16, true),
        nsec: dv.getUint32(d + 20, true),
      });
      links.push(dv.getUint16(d + 14, true));
    }
  }
  r.close();
  return { rows, links, stats: r.stats };
}

function tshark(path: string): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      TSHARK,
      ['-n', '-r', path, '-T', 'fields', '-e', 'frame.cap_len', '-e', 'frame.len', '-e', 'frame.time_epoch', '-e', 'frame.interface_id'],
      { maxBuffer: 64 << 20 },
      (e, out, err) => resolve({ ok: !e, out, err: err.replace(/^Running as user.*\n?/m, '').trim() }),
    );
  });
}

/** "1382197969.322823000" -> [sec, nsec] (exact, via strings). */
function parseEpoch(s: string): [number, number] {
  const [a, b = ''] = s.split('.');
  return [Number(a), Number((b + '000000000').slice(0, 9))];
}

describe.skipIf(!have)('pcapng corpus', () => {
  it('reads every .pcapng without a crash and counts its packets', () => {
    expect(files.length).toBe(45);
    let packets = 0;
    for (const f of files) {
      const { rows, links, stats } = readOurs(join(DIR, f));
      expect(stats.format).toBe('pcapng');
      expect(stats.truncated, f).toBe(false);
      expect(stats.packets).toBe(rows.length);
      expect(stats.bytes).toBe(rows.reduce((a, r) => a + r.wire, 0));
      // Every packet's link is its interface's link type, and linktypes tallies them.
      const tally: Record<number, number> = {};
      rows.forEach((r, i) => {
        expect(links[i]).toBe(stats.interfaces[r.port].linktype);
        tally[links[i]] = (tally[links[i]] ?? 0) + 1;
      });
      expect(stats.linktypes).toEqual(tally);
      packets += rows.length;
    }
    expect(packets).toBe(312);
  });

  it.skipIf(!existsSync(TSHARK))(
    'agrees with tshark on every packet',
    async () => {
      // Run tshark two at a time (it takes ~0.3 s to start).
      const results = new Map<string, { ok: boolean; out: string; err: string }>();
      let next = 0;
      await Promise.all(
        [0, 1].map(async () => {
          while (next < files.length) {
            const f = files[next++];
            results.set(f, await tshark(join(DIR, f)));
          }
        }),
      );
      const refused: string[] = [];
      const saturated: string[] = [];
      let packets = 0;
      for (const f of files) {
        const ts = results.get(f)!;
        const ours = readOurs(join(DIR, f));
        const want: Row[] = ts.out
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => {
            const [cap, len, epoch, ifid] = l.split('\t');
            const caplen = Number(cap);
            let [sec, nsec] = parseEpoch(epoch);
            if (sec > 0xffffffff) {
              sec = 0xffffffff;
              if (!saturated.includes(f)) saturated.push(f);
            }
            return { caplen, wire: Math.max(Number(len), caplen), sec, nsec, port: Number(ifid) };
          });
        if (!ts.ok) {
          refused.push(`${f}: ${ts.err}`);
          expect(ours.stats.truncated || ours.stats.errors.length > 0, f).toBe(true);
          expect(ours.rows.slice(0, want.length), f).toEqual(want);
        } else {
          expect(ours.rows, f).toEqual(want);
        }
        if (saturated.includes(f)) expect(ours.stats.errors.join('\n')).toMatch(/does not fit in 32 bits; clamped/);
        packets += want.length;
      }
      expect(refused).toEqual([]);
      expect(saturated).toEqual(['time_2106_overflow.pcapng', 'time_2107.pcapng']);
      expect(packets).toBe(312);
      console.log(`pcapng corpus: ${files.length} files, ${packets} packets, identical to tshark except the 2 saturated timestamps`);
    },
    60_000,
  );
});
