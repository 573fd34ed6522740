// A classic pcap written in memory, as host/io/outputs.ts writes one (magic for micro- or
// nanosecond timestamps, version 2.4, snaplen 262144, Ethernet): the page's per-backend downloads
// are byte for byte the files `sessionlb replay --out` writes.

const CHUNK = 1 << 20;

export class PcapSink {
  private chunks: Uint8Array[] = [];
  private cur: Uint8Array;
  private dv: DataView;
  private off = 0;
  private readonly nanos: boolean;
  packets = 0;

  constructor(nanos: boolean) {
    this.nanos = nanos;
    this.cur = new Uint8Array(CHUNK);
    this.dv = new DataView(this.cur.buffer);
    this.dv.setUint32(0, nanos ? 0xa1b23c4d : 0xa1b2c3d4, true);
    this.dv.setUint16(4, 2, true);
    this.dv.setUint16(6, 4, true);
    this.dv.setUint32(16, 262144, true);
    this.dv.setUint32(20, 1, true);
    this.off = 24;
  }

  /** Appends the frame mem[data, data + caplen) with its wire length and timestamp. */
  write(mem: Uint8Array, data: number, caplen: number, wirelen: number, sec: number, nsec: number): void {
    if (this.off + 16 + caplen > this.cur.length) {
      this.chunks.push(this.cur.subarray(0, this.off));
      this.cur = new Uint8Array(Math.max(CHUNK, 16 + caplen));
      this.dv = new DataView(this.cur.buffer);
      this.off = 0;
    }
    const o = this.off;
    this.dv.setUint32(o, sec >>> 0, true);
    this.dv.setUint32(o + 4, (this.nanos ? nsec : Math.floor(nsec / 1000)) >>> 0, true);
    this.dv.setUint32(o + 8, caplen, true);
    this.dv.setUint32(o + 12, wirelen, true);
    this.cur.set(mem.subarray(data, data + caplen), o + 16);
    this.off = o + 16 + caplen;
    this.packets++;
  }

  /** The whole file. */
  bytes(): Uint8Array {
    const parts = [...this.chunks, this.cur.subarray(0, this.off)];
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}
