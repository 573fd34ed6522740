// Classic pcap writer with a large staging buffer: frames are copied straight from a source
// buffer (for instance a Buffer view of the engine's linear memory) into the staging buffer
// with Buffer#copy, so writing a frame allocates nothing; the file is written in big chunks.
import { closeSync, openSync, writeSync } from 'node:fs';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;

export interface PcapWriterOptions {
  linktype?: number; // default 1 (Ethernet)
  snaplen?: number; // default 262144
  nanos?: boolean; // nanosecond timestamps (default true)
  bufferBytes?: number; // staging buffer size (default 1 MiB)
}

export class PcapWriter {
  readonly path: string;
  readonly nanos: boolean;
  packets = 0;
  bytes = 0;
  private fd: number;
  private buf: Buffer;
  private off = 0;

  constructor(path: string, opts: PcapWriterOptions = {}) {
    this.path = path;
    this.nanos = opts.nanos ?? true;
    this.buf = Buffer.allocUnsafe(Math.max(opts.bufferBytes ?? 1 << 20, 1 << 16));
    this.fd = openSync(path, 'w');
    const h = this.buf;
    h.writeUInt32LE(this.nanos ? PCAP_MAGIC_NS : PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(opts.snaplen ?? 262144, 16);
    h.writeUInt32LE(opts.linktype ?? 1, 20);
    this.off = 24;
  }

  /** Appends one record. `tsNs` is nanoseconds since the Unix epoch. */
  write(src: Buffer, start: number, caplen: number, wirelen: number, tsNs: bigint | number): void {
    let sec: number;
    let frac: number;
    if (typeof tsNs === 'bigint') {
      sec = Number(tsNs / 1_000_000_000n);
      frac = Number(tsNs % 1_000_000_000n);
    } else {
      sec = Math.floor(tsNs / 1e9);
      frac = tsNs - sec * 1e9;
    }
    this.writeRecord(src, start, caplen, wirelen, sec, frac);
  }

  /** Appends one record with its timestamp as seconds and nanoseconds (no 64-bit arithmetic). */
  writeRecord(src: Buffer, start: number, caplen: number, wirelen: number, sec: number, nsec: number): void {
    if (this.off + 16 + caplen > this.buf.length) {
      this.flush();
      if (16 + caplen > this.buf.length) this.buf = Buffer.allocUnsafe(16 + caplen);
    }
    const b = this.buf;
    const o = this.off;
    b.writeUInt32LE(sec >>> 0, o);
    b.writeUInt32LE((this.nanos ? nsec : Math.floor(nsec / 1000)) >>> 0, o + 4);
    b.writeUInt32LE(caplen, o + 8);
    b.writeUInt32LE(wirelen, o + 12);
    src.copy(b, o + 16, start, start + caplen);
    this.off = o + 16 + caplen;
    this.packets++;
    this.bytes += wirelen;
  }

  flush(): void {
    let done = 0;
    while (done < this.off) done += writeSync(this.fd, this.buf, done, this.off - done);
    this.off = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}
