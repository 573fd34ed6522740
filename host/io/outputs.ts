// Output captures written straight from the engine's linear memory. Each output (one per backend,
// plus the client side) owns two staging halves in a host region of linear memory; a frame is
// appended with Uint8Array#copyWithin (a memmove inside the same buffer, no allocation) after a
// 16-byte pcap record header written through the DataView. A full half is handed to the kernel
// with an asynchronous positioned write (libuv's thread pool, so the syscall overlaps the next
// batches on the other core) and the other half takes over. If that other half is still being
// written, the full one is written synchronously instead: order in the file is kept by explicit
// file positions, never by completion order.
import { closeSync, openSync, write, writeSync } from 'node:fs';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US } from './pcap-writer.js';

export interface OutputOptions {
  nanos: boolean;
  linktype?: number;
  snaplen?: number;
}

interface Out {
  path: string;
  fd: number;
  pos: number; // file offset of the next write
  base: [number, number]; // the two staging halves
  cur: number; // active half (0 or 1)
  off: number; // bytes used in the active half
  busy: [boolean, boolean]; // half being written asynchronously
  packets: number;
  bytes: number;
}

export class OutputSet {
  readonly outputs: Out[] = [];
  private readonly half: number;
  private pending = 0;
  private error: Error | null = null;
  private waiters: (() => void)[] = [];
  private readonly nanos: boolean;

  constructor(
    private readonly mem: Uint8Array,
    private readonly dv: DataView,
    regionPtr: number,
    regionSize: number,
    paths: string[],
    opts: OutputOptions,
  ) {
    this.nanos = opts.nanos;
    this.half = Math.floor(regionSize / (2 * paths.length)) & ~7;
    if (this.half < 1024) throw new Error(`output staging region too small for ${paths.length} outputs`);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(opts.nanos ? PCAP_MAGIC_NS : PCAP_MAGIC_US, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(opts.snaplen ?? 262144, 16);
    header.writeUInt32LE(opts.linktype ?? 1, 20);
    paths.forEach((path, k) => {
      const fd = openSync(path, 'w');
      writeSync(fd, header);
      const b0 = regionPtr + 2 * k * this.half;
      this.outputs.push({ path, fd, pos: 24, base: [b0, b0 + this.half], cur: 0, off: 0, busy: [false, false], packets: 0, bytes: 0 });
    });
  }

  /** Appends one record to output k from linear memory. */
  write(k: number, data: number, caplen: number, wirelen: number, sec: number, nsec: number): void {
    const o = this.outputs[k];
    const need = 16 + caplen;
    if (o.off + need > this.half) {
      this.submit(o);
      if (need > this.half) {
        // A frame larger than a staging half: write it directly (rare: jumbo/TSO frames).
        const h = Buffer.alloc(16);
        h.writeUInt32LE(sec >>> 0, 0);
        h.writeUInt32LE((this.nanos ? nsec : Math.floor(nsec / 1000)) >>> 0, 4);
        h.writeUInt32LE(caplen, 8);
        h.writeUInt32LE(wirelen, 12);
        writeSync(o.fd, h, 0, 16, o.pos);
        writeSync(o.fd, this.mem, data, caplen, o.pos + 16);
        o.pos += need;
        o.packets++;
        o.bytes += wirelen;
        return;
      }
    }
    const at = o.base[o.cur] + o.off;
    const dv = this.dv;
    dv.setUint32(at, sec, true);
    dv.setUint32(at + 4, this.nanos ? nsec : (nsec / 1000) | 0, true);
    dv.setUint32(at + 8, caplen, true);
    dv.setUint32(at + 12, wirelen, true);
    this.mem.copyWithin(at + 16, data, data + caplen);
    o.off += need;
    o.packets++;
    o.bytes += wirelen;
  }

  /** Hands the active half to the kernel and switches halves. */
  private submit(o: Out): void {
    if (o.off === 0) return;
    const h = o.cur;
    const start = o.base[h];
    const len = o.off;
    const pos = o.pos;
    o.pos += len;
    o.off = 0;
    const other = 1 - h;
    if (o.busy[other]) {
      // Both halves would be in flight: write this one now and keep using it.
      let done = 0;
      while (done < len) done += writeSync(o.fd, this.mem, start + done, len - done, pos + done);
      return;
    }
    o.busy[h] = true;
    o.cur = other;
    this.pending++;
    const onDone = (err: NodeJS.ErrnoException | null, written: number) => {
      if (!err && written < len) {
        // Short write: finish synchronously (the bytes are still in the half, which is busy).
        let done = written;
        try {
          while (done < len) done += writeSync(o.fd, this.mem, start + done, len - done, pos + done);
        } catch (e) {
          err = e as NodeJS.ErrnoException;
        }
      }
      if (err && !this.error) this.error = new Error(`writing ${o.path}: ${err.message}`);
      o.busy[h] = false;
      if (--this.pending === 0) for (const w of this.waiters.splice(0)) w();
    };
    write(o.fd, this.mem, start, len, pos, onDone);
  }

  /** True when some output has both halves busy soon: the caller should await settle(). */
  get backlog(): number {
    return this.pending;
  }

  /** Resolves when no write is in flight. */
  settle(): Promise<void> {
    if (this.pending === 0) return this.error ? Promise.reject(this.error) : Promise.resolve();
    return new Promise((res, rej) => this.waiters.push(() => (this.error ? rej(this.error) : res())));
  }

  /** Writes everything staged and closes the files. */
  async close(): Promise<void> {
    for (const o of this.outputs) this.submit(o);
    await this.settle();
    for (const o of this.outputs) {
      // Anything written synchronously after the last async submit is already in place.
      closeSync(o.fd);
    }
  }
}
