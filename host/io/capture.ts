// Capture reader: classic pcap and pcapng, read in large chunks straight into a region of the
// engine's linear memory (the "io region"), each frame copied from there into the packet arena
// with Uint8Array#copyWithin, and one 32-byte descriptor written per frame.
//
// Hot-path rules: no allocation per packet (no Buffer, no subarray, no object), all header
// fields read through the DataView of the linear memory, counters kept in locals and folded into
// `stats` once per batch.
//
// Error policy (the same as libpcap/tcpdump): a structurally corrupt record or block (absurd
// length, lengths that disagree, a packet naming an interface that does not exist, ...) ends the
// file: the problem goes to `stats.errors`, `stats.truncated` becomes true and `next` returns 0
// from then on. A file that simply ends in the middle of a record or block is `truncated` too;
// the partial record is not a packet.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class CaptureError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'CaptureError';
    this.code = code;
  }
}

export interface BatchTarget {
  mem: Uint8Array; // the whole linear memory
  dv: DataView; // DataView of the same buffer
  descPtr: number; // address of descriptor 0 (32 bytes each)
  maxPackets: number; // batch size
  arenaPtr: number; // packet arena [arenaPtr, arenaEnd)
  arenaEnd: number;
  headroom: number; // bytes left free before every frame
  /** Classic pcap only: leave each frame where it was read in the io region (its 16-byte record
   * header becomes its headroom) instead of copying it to the arena. The host sets this when the
   * engine needs no more than 16 bytes in front of a frame (headroom_needed() <= 16). The frames
   * are valid until the next call to next(). */
  inPlace?: boolean;
  ioPtr: number; // region the reader may use for raw file chunks
  ioSize: number;
}

export interface CaptureStats {
  format: 'pcap' | 'pcapng';
  nanos: boolean;
  packets: number;
  bytes: number;
  linktypes: Record<number, number>;
  interfaces: { linktype: number; snaplen: number }[];
  truncated: boolean;
  errors: string[];
  skippedBlocks: number;
}

export interface CaptureReader {
  readonly path: string;
  readonly size: number;
  readonly stats: CaptureStats;
  position(): number;
  next(t: BatchTarget): number;
  /**
   * Between two `next` calls the reader keeps the not yet consumed part of its last chunk in
   * the io region. A host that wants to use that region for something else in between calls
   * this first: the reader then forgets the chunk and reads again from `position()`.
   */
  releaseIo(): void;
  close(): void;
}

/** Largest frame accepted (libpcap's MAXIMUM_SNAPLEN); anything bigger is a corrupt record. */
export const MAX_CAPLEN = 262144;
/** Smallest io region `next` accepts: one maximal pcapng packet block plus slack. */
export const MIN_IO_SIZE = MAX_CAPLEN + 4096;
/** Bound on `stats.errors`. */
export const MAX_ERRORS = 20;

export const DESC_SIZE = 32;

const PCAP_US = 0xa1b2c3d4;
const PCAP_NS = 0xa1b23c4d;
const PCAP_US_SWAPPED = 0xd4c3b2a1;
const PCAP_NS_SWAPPED = 0x4d3cb2a1;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
const PCAPNG_BOM_SWAPPED = 0x4d3c2b1a;

const BT_IDB = 1;
const BT_OPB = 2;
const BT_SPB = 3;
const BT_EPB = 6;

const NOTE_FRACTION = 1;
const NOTE_WIRELEN = 2;

/** pcapng block types that are skipped silently (besides being counted). */
const KNOWN_SKIPPED = new Set([
  4, // name resolution
  5, // interface statistics
  7, // IRIG timestamp (obsolete)
  8, // ARINC 429 (obsolete)
  9, // systemd journal export
  0x0a, // decryption secrets
  0x0bad, // custom, may be copied
  0x40000bad, // custom, must not be copied
]);

const TWO32 = 4294967296;
const U32_MAX = 0xffffffff;

function hex8(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

/**
 * Buffering, bookkeeping and stats shared by both formats. The io region holds the file bytes
 * [base, base + len); `rp` is the read pointer relative to the region (it may run past `len`
 * when a block is skipped without being read: the next fill seeks).
 */
abstract class ReaderBase implements CaptureReader {
  readonly path: string;
  readonly size: number;
  readonly stats: CaptureStats;
  protected fd: number;
  protected base = 0;
  protected rp = 0;
  protected len = 0;
  protected done = false;
  protected ioMem: Uint8Array | null = null;
  protected ioBuf: ArrayBufferLike | null = null;
  protected ioPtr = 0;
  protected ioSize = 0;
  private clamped = false;
  private noted = 0;

  constructor(path: string, fd: number, size: number, format: 'pcap' | 'pcapng', start: number) {
    this.path = path;
    this.fd = fd;
    this.size = size;
    this.base = start;
    this.stats = {
      format,
      nanos: false,
      packets: 0,
      bytes: 0,
      linktypes: {},
      interfaces: [],
      truncated: false,
      errors: [],
      skippedBlocks: 0,
    };
  }

  position(): number {
    const p = this.base + this.rp;
    return p > this.size ? this.size : p;
  }

  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
    this.done = true;
  }

  abstract next(t: BatchTarget): number;

  releaseIo(): void {
    this.ioBuf = null;
  }

  protected error(msg: string): void {
    const e = this.stats.errors;
    if (e.length < MAX_ERRORS) e.push(msg);
    else if (e.length === MAX_ERRORS) e.push('(further errors not shown)');
  }

  /** A corrupt record: note it and end the file (tcpdump's behaviour). */
  protected corrupt(msg: string): void {
    this.error(`${this.path}: offset ${this.base + this.rp}: ${msg}`);
    this.stats.truncated = true;
    this.done = true;
  }

  /** The file ends inside a record or block. */
  protected cut(what: string): void {
    this.stats.truncated = true;
    this.error(`${this.path}: file ends inside ${what} at offset ${this.base + this.rp} (size ${this.size})`);
    this.done = true;
  }

  /** Adopts the io region of `t` (re-reading from the current position if it moved). */
  protected bind(t: BatchTarget): void {
    this.ioMem = t.mem;
    if (t.mem.buffer !== this.ioBuf || t.ioPtr !== this.ioPtr || t.ioSize !== this.ioSize) {
      if (t.ioSize < MIN_IO_SIZE) {
        throw new CaptureError('CAPTURE_IO_SMALL', `io region of ${t.ioSize} bytes is below the minimum of ${MIN_IO_SIZE}`);
      }
      if (t.ioPtr < 0 || t.ioPtr + t.ioSize > t.mem.length) {
        throw new CaptureError('CAPTURE_IO_RANGE', `io region [${t.ioPtr}, ${t.ioPtr + t.ioSize}) lies outside memory`);
      }
      this.base += this.rp;
      this.rp = 0;
      this.len = 0;
      this.ioBuf = t.mem.buffer;
      this.ioPtr = t.ioPtr;
      this.ioSize = t.ioSize;
    }
  }

  /**
   * Makes at least `need` (<= ioSize) unconsumed bytes available at ioPtr + rp. Moves the
   * unconsumed tail to the start of the region and reads as much as fits. False at end of file.
   */
  protected fill(need: number): boolean {
    const mem = this.ioMem!;
    const io = this.ioPtr;
    if (this.rp >= this.len) {
      this.base += this.rp;
      this.rp = 0;
      this.len = 0;
    } else if (this.rp > 0) {
      mem.copyWithin(io, io + this.rp, io + this.len);
      this.base += this.rp;
      this.len -= this.rp;
      this.rp = 0;
    }
    while (this.len < need) {
      const want = Math.min(this.ioSize - this.len, this.size - (this.base + this.len));
      if (want <= 0) return false;
      const r = readSync(this.fd, mem, io + this.len, want, this.base + this.len);
      if (r <= 0) return false;
      this.len += r;
    }
    return true;
  }

  /** Seconds to a u32 descriptor field: out-of-range values saturate (and are reported once). */
  protected clampSec(sec: number): number {
    if (sec >= 0 && sec <= U32_MAX) return sec;
    if (!this.clamped) {
      this.clamped = true;
      this.error(`${this.path}: timestamp ${sec} s does not fit in 32 bits; clamped (reported once)`);
    }
    return sec < 0 ? 0 : U32_MAX;
  }

  /** Records a recoverable oddity once per file (bit = kind). */
  protected noteOnce(bit: number, msg: string): void {
    if ((this.noted & bit) !== 0) return;
    this.noted |= bit;
    this.error(`${this.path}: ${msg} (reported once)`);
  }

  protected addLink(link: number, count: number): void {
    const l = this.stats.linktypes;
    l[link] = (l[link] ?? 0) + count;
  }
}

// ---------------------------------------------------------------------------------------------
// Classic pcap

class PcapReader extends ReaderBase {
  private le: boolean;
  private linkField: number; // value written to the descriptor's u16 `link`
  private linktype: number;
  private snaplen: number;
  /** Captured lengths above this get a closer look: snaplen, or MAX_CAPLEN once noted. */
  private capLimit = MAX_CAPLEN;
  private fracLimit: number; // 1e6 (us) or 1e9 (ns)
  private fracMul: number; // to nanoseconds

  constructor(path: string, fd: number, size: number, hdr: Uint8Array, hdrLen: number, magic: number) {
    super(path, fd, size, 'pcap', hdrLen >= 24 ? 24 : hdrLen);
    this.le = magic === PCAP_US_SWAPPED || magic === PCAP_NS_SWAPPED; // magic was read big-endian
    const nanos = magic === PCAP_NS || magic === PCAP_NS_SWAPPED;
    this.stats.nanos = nanos;
    this.fracLimit = nanos ? 1e9 : 1e6;
    this.fracMul = nanos ? 1 : 1000;
    this.linkField = 0xffff;
    this.linktype = 0;
    this.snaplen = 0;
    if (hdrLen < 24) {
      this.stats.truncated = true;
      this.error(`${path}: file ends inside the 24-byte pcap file header (size ${size})`);
      this.done = true;
      return;
    }
    const dv = new DataView(hdr.buffer, hdr.byteOffset, 24);
    const major = dv.getUint16(4, this.le);
    const minor = dv.getUint16(6, this.le);
    if (major !== 2 || minor !== 4) this.error(`${path}: pcap version ${major}.${minor} (expected 2.4); read as 2.4`);
    this.snaplen = dv.getUint32(16, this.le);
    const raw = dv.getUint32(20, this.le);
    // Bits 26..31 carry the FCS length (28..31), a reserved bit (27) and the "FCS length
    // present" flag (26); libpcap's LT_LINKTYPE() and Wireshark drop all six.
    this.linktype = raw & 0x03ffffff;
    if (this.linktype > 0xffff) {
      this.error(`${path}: link type ${this.linktype} does not fit the descriptor; written as 65535`);
    } else {
      this.linkField = this.linktype;
    }
    this.stats.interfaces.push({ linktype: this.linktype, snaplen: this.snaplen });
    if (this.snaplen !== 0 && this.snaplen < MAX_CAPLEN) this.capLimit = this.snaplen;
  }

  next(t: BatchTarget): number {
    if (this.done) return 0;
    this.bind(t);
    const mem = t.mem;
    const dv = t.dv;
    const le = this.le;
    const io = t.ioPtr;
    const head = t.headroom;
    const arenaEnd = t.arenaEnd;
    const inPlace = t.inPlace === true;
    const max = t.maxPackets;
    const fracLimit = this.fracLimit;
    const fracMul = this.fracMul;
    const link = this.linkField;
    let cursor = t.arenaPtr;
    let d = t.descPtr;
    let n = 0;
    let bytes = 0;
    let rp = this.rp;
    let len = this.len;
    while (n < max) {
      // In place, frames of this batch live in the io region: refilling it (which moves the
      // unconsumed tail to its start) must wait for the next call.
      if (inPlace && n > 0 && (len - rp < 16 || len - rp < 16 + dv.getUint32(io + rp + 8, le))) break;
      if (len - rp < 16) {
        this.rp = rp;
        if (!this.fill(16)) {
          if (this.len - this.rp > 0) this.cut('a record header');
          else this.done = true;
          break;
        }
        rp = this.rp;
        len = this.len;
      }
      let p = io + rp;
      const caplen = dv.getUint32(p + 8, le);
      if (caplen > this.capLimit) {
        if (caplen > MAX_CAPLEN) {
          this.rp = rp;
          this.corrupt(`record ${this.stats.packets + n + 1}: captured length ${caplen} exceeds ${MAX_CAPLEN}`);
          break;
        }
        // Above the header's snaplen but plausible: the bytes are there, keep them (as
        // Wireshark does); noted once per file.
        this.error(`${this.path}: record ${this.stats.packets + n + 1}: captured length ${caplen} exceeds the snapshot length ${this.snaplen} (kept; reported once)`);
        this.capLimit = MAX_CAPLEN;
      }
      const recLen = 16 + caplen;
      if (len - rp < recLen) {
        this.rp = rp;
        if (!this.fill(recLen)) {
          this.cut(`record ${this.stats.packets + n + 1} (captured length ${caplen})`);
          break;
        }
        rp = this.rp;
        len = this.len;
        p = io + rp;
      }
      let data = p + 16;
      if (!inPlace) {
        data = ((cursor + head + 7) & ~7) >>> 0;
        if (data + caplen > arenaEnd) {
          if (n === 0) throw arenaError(t, caplen);
          break;
        }
      }
      let sec = dv.getUint32(p, le);
      let frac = dv.getUint32(p + 4, le);
      let wire = dv.getUint32(p + 12, le);
      if (frac >= fracLimit) {
        // Not a valid fraction: carry the whole seconds (exact in Number arithmetic).
        const carry = Math.floor(frac / fracLimit);
        this.noteOnce(NOTE_FRACTION, `record ${this.stats.packets + n + 1}: timestamp fraction ${frac} is not below ${fracLimit}; whole seconds carried`);
        frac -= carry * fracLimit;
        sec = this.clampSec(sec + carry);
      }
      if (wire < caplen) {
        this.noteOnce(NOTE_WIRELEN, `record ${this.stats.packets + n + 1}: original length ${wire} is below the captured length ${caplen}; captured length used`);
        wire = caplen;
      }
      if (!inPlace) mem.copyWithin(data, p + 16, p + recLen);
      dv.setUint32(d, data, true);
      dv.setUint32(d + 4, caplen, true);
      dv.setUint32(d + 8, wire, true);
      dv.setUint16(d + 12, 0, true);
      dv.setUint16(d + 14, link, true);
      dv.setUint32(d + 16, sec, true);
      dv.setUint32(d + 20, frac * fracMul, true);
      dv.setUint32(d + 24, 0, true);
      dv.setUint32(d + 28, 0, true);
      cursor = data + caplen;
      rp += recLen;
      d += DESC_SIZE;
      bytes += wire;
      n++;
    }
    if (!this.done) this.rp = rp;
    if (n > 0) {
      this.stats.packets += n;
      this.stats.bytes += bytes;
      this.addLink(this.linktype, n);
    }
    return n;
  }
}

/**
 * hi * 2^32 = cQ * div + cR, exactly, for div <= 10^9 and hi < 2^21 * div (so cQ < 2^53), by
 * long division in base 2^16: every intermediate stays below 2^46. Results go to the cache.
 */
function splitHigh(ifc: Iface, hi: number): void {
  const div = ifc.div;
  const qh = Math.floor(hi / div);
  let r = hi - qh * div;
  let a = r * 65536;
  const q1 = Math.floor(a / div);
  r = a - q1 * div;
  a = r * 65536;
  const q2 = Math.floor(a / div);
  r = a - q2 * div;
  ifc.cHi = hi;
  ifc.cQ = qh * TWO32 + q1 * 65536 + q2;
  ifc.cR = r;
}

function arenaError(t: BatchTarget, caplen: number): CaptureError {
  return new CaptureError(
    'CAPTURE_ARENA_SMALL',
    `a ${caplen}-byte frame does not fit in an empty arena of ${t.arenaEnd - t.arenaPtr} bytes with ${t.headroom} bytes of headroom`,
  );
}

// ---------------------------------------------------------------------------------------------
// pcapng

/** Per-interface timestamp conversion: units = 10^-exp (dec) or 2^-exp (binary). */
interface Iface {
  linktype: number;
  snaplen: number;
  binary: boolean;
  exp: number;
  /** Units per second as a Number, when exact (10^exp with exp <= 22, 2^exp) else 0. */
  div: number;
  /** Nanoseconds per unit when an integer (dec, exp <= 9), else 0. */
  nsMul: number;
  offset: number; // if_tsoffset, seconds (Number; exact up to 2^53)
  offsetBig: bigint;
  /** The inline conversion applies: decimal exponent 0..9 and |offset| below 2^52. */
  fast: boolean;
  /** Cache for the inline conversion: hi * 2^32 = cQ * div + cR (cHi = -1: empty). */
  cHi: number;
  cQ: number;
  cR: number;
}

class PcapngReader extends ReaderBase {
  private le = true;
  private ifaces: Iface[] = [];
  private sectionBase = 0; // global index of the current section's interface 0
  private sectionCount = 0; // interfaces in the current section
  private sawSection = false;
  private overSnap = false;
  private unknownTypes = 0;
  private lastSec = 0;
  private lastNsec = 0;
  // Timestamp conversion results (fields, not an object, to avoid allocation).
  private tsSec = 0;
  private tsNsec = 0;

  constructor(path: string, fd: number, size: number) {
    super(path, fd, size, 'pcapng', 0);
  }

  next(t: BatchTarget): number {
    if (this.done) return 0;
    this.bind(t);
    const mem = t.mem;
    const dv = t.dv;
    const io = t.ioPtr;
    const ioSize = t.ioSize;
    const head = t.headroom;
    const arenaEnd = t.arenaEnd;
    const max = t.maxPackets;
    const ifaces = this.ifaces;
    let cursor = t.arenaPtr;
    let d = t.descPtr;
    let n = 0;
    let bytes = 0;
    let runPort = -1;
    let runCount = 0;
    let le = this.le;
    while (n < max) {
      // Block header: type, total length (and, for an SHB, the byte-order magic).
      if (this.len - this.rp < 12) {
        if (!this.fill(12)) {
          if (this.len - this.rp > 0) this.cut('a block header');
          else this.done = true;
          break;
        }
      }
      let p = io + this.rp;
      const type = dv.getUint32(p, le);
      if (type === PCAPNG_SHB) {
        const bom = dv.getUint32(p + 8, true);
        if (bom === PCAPNG_BOM) le = true;
        else if (bom === PCAPNG_BOM_SWAPPED) le = false;
        else {
          this.corrupt(`section header block with an unknown byte-order magic 0x${hex8(bom)}`);
          break;
        }
        this.le = le;
      }
      const blen = dv.getUint32(p + 4, le);
      if (blen < 12 || (blen & 3) !== 0) {
        this.corrupt(`block type 0x${hex8(type)} has an invalid total length ${blen}`);
        break;
      }
      if (this.base + this.rp + blen > this.size) {
        this.cut(`a block of type 0x${hex8(type)} (total length ${blen})`);
        break;
      }
      if (!this.sawSection && type !== PCAPNG_SHB) {
        this.corrupt(`block type 0x${hex8(type)} before the first section header block`);
        break;
      }
      const isPacket = type === BT_EPB || type === BT_OPB || type === BT_SPB;
      if (type !== PCAPNG_SHB && type !== BT_IDB && !isPacket) {
        this.stats.skippedBlocks++;
        if (!KNOWN_SKIPPED.has(type) && (type & 0x80000000) === 0 && this.unknownTypes < 4) {
          // (Types with the top bit set are reserved for local use: skipped without a note.)
          this.unknownTypes++;
          this.error(`${this.path}: offset ${this.base + this.rp}: skipped a block of unknown type 0x${hex8(type)} (${blen} bytes)`);
        }
        this.rp += blen;
        continue;
      }
      // Bring the block in: whole when it fits in the io region (then the trailing length is
      // checked); a larger packet block only up to the end of its frame, the rest is skipped.
      const whole = blen <= ioSize;
      if (whole) {
        if (this.len - this.rp < blen) {
          if (!this.fill(blen)) {
            this.cut(`a block of type 0x${hex8(type)} (total length ${blen})`);
            break;
          }
        }
        p = io + this.rp;
        const trail = dv.getUint32(p + blen - 4, le);
        if (trail !== blen) {
          this.corrupt(`block type 0x${hex8(type)}: total length ${blen} but trailing length ${trail}`);
          break;
        }
      } else if (!isPacket) {
        this.corrupt(`block type 0x${hex8(type)} of ${blen} bytes is larger than the io region`);
        break;
      }

      if (type === PCAPNG_SHB) {
        if (!this.sectionHeader(dv, p, blen, le)) break;
        this.rp += blen;
        continue;
      }
      if (type === BT_IDB) {
        if (!this.interfaceBlock(dv, p, blen, le)) break;
        this.rp += blen;
        continue;
      }

      // Packet blocks.
      let local = 0;
      let caplen = 0;
      let wire = 0;
      let dataOff: number;
      if (type === BT_SPB) {
        if (blen < 16) {
          this.corrupt(`simple packet block of ${blen} bytes is too short`);
          break;
        }
        local = 0;
        dataOff = 12;
        if (!whole && this.len - this.rp < 12 && !this.fill(12)) {
          this.cut('a simple packet block');
          break;
        }
        p = io + this.rp;
        wire = dv.getUint32(p + 8, le);
      } else {
        if (blen < 32) {
          this.corrupt(`packet block type ${type} of ${blen} bytes is too short`);
          break;
        }
        dataOff = 28;
        if (!whole && this.len - this.rp < 28 && !this.fill(28)) {
          this.cut(`a packet block of type ${type}`);
          break;
        }
        p = io + this.rp;
        local = type === BT_EPB ? dv.getUint32(p + 8, le) : dv.getUint16(p + 8, le);
        caplen = dv.getUint32(p + 20, le);
        wire = dv.getUint32(p + 24, le);
      }
      if (local >= this.sectionCount) {
        this.corrupt(
          type === BT_SPB
            ? 'simple packet block in a section without an interface description block'
            : `packet block names interface ${local} but the section has ${this.sectionCount}`,
        );
        break;
      }
      const port = this.sectionBase + local;
      const ifc = ifaces[port];
      if (type === BT_SPB) {
        caplen = blen - 16;
        if (wire < caplen) caplen = wire;
        if (ifc.snaplen !== 0 && ifc.snaplen < caplen) caplen = ifc.snaplen;
      }
      if (caplen > MAX_CAPLEN) {
        this.corrupt(`packet block: captured length ${caplen} exceeds ${MAX_CAPLEN}`);
        break;
      }
      if (ifc.snaplen !== 0 && caplen > ifc.snaplen && !this.overSnap) {
        this.overSnap = true;
        this.error(`${this.path}: interface ${port}: captured length ${caplen} exceeds the snapshot length ${ifc.snaplen} (kept; reported once)`);
      }
      if (dataOff + caplen > blen - 4) {
        this.corrupt(`packet block: captured length ${caplen} does not fit in a block of ${blen} bytes`);
        break;
      }
      if (!whole && this.len - this.rp < dataOff + caplen) {
        if (!this.fill(dataOff + caplen)) {
          this.cut(`a packet block of type ${type}`);
          break;
        }
        p = io + this.rp;
      }
      const data = ((cursor + head + 7) & ~7) >>> 0;
      if (data + caplen > arenaEnd) {
        if (n === 0) throw arenaError(t, caplen);
        break;
      }
      let sec: number;
      let nsec: number;
      if (type === BT_SPB) {
        sec = this.lastSec;
        nsec = this.lastNsec;
      } else {
        const hi = dv.getUint32(p + 12, le);
        const lo = dv.getUint32(p + 16, le);
        const div = ifc.div;
        if (ifc.fast && hi < 0x200000 * div) {
          // Fast path: decimal resolution of 1 s .. 1 ns, seconds below 2^53. v = hi*2^32 + lo.
          // hi*2^32 = cq*div + cr is computed once per value of hi (it changes every 4.3 s of
          // ns timestamps) and cached on the interface; then v/div = cq + floor((cr + lo)/div)
          // with cr + lo < 2^33: one small exact division per packet.
          if (hi !== ifc.cHi) splitHigh(ifc, hi);
          const a = ifc.cR + lo;
          let q = Math.floor(a / div);
          let r = a - q * div;
          if (r < 0) {
            q--;
            r += div;
          } else if (r >= div) {
            q++;
            r -= div;
          }
          sec = ifc.cQ + q + ifc.offset;
          nsec = r * ifc.nsMul;
          if (sec > U32_MAX || sec < 0) sec = this.clampSec(sec);
        } else {
          this.convert(ifc, hi, lo);
          sec = this.tsSec;
          nsec = this.tsNsec;
        }
        this.lastSec = sec;
        this.lastNsec = nsec;
      }
      if (wire < caplen) {
        this.noteOnce(NOTE_WIRELEN, `interface ${port}: original length ${wire} is below the captured length ${caplen}; captured length used`);
        wire = caplen;
      }
      mem.copyWithin(data, p + dataOff, p + dataOff + caplen);
      dv.setUint32(d, data, true);
      dv.setUint32(d + 4, caplen, true);
      dv.setUint32(d + 8, wire, true);
      dv.setUint16(d + 12, port > 0xffff ? 0xffff : port, true);
      dv.setUint16(d + 14, ifc.linktype, true);
      dv.setUint32(d + 16, sec, true);
      dv.setUint32(d + 20, nsec, true);
      dv.setUint32(d + 24, 0, true);
      dv.setUint32(d + 28, 0, true);
      cursor = data + caplen;
      this.rp += blen;
      d += DESC_SIZE;
      bytes += wire;
      n++;
      if (port !== runPort) {
        if (runCount > 0) this.addLink(ifaces[runPort].linktype, runCount);
        runPort = port;
        runCount = 0;
      }
      runCount++;
    }
    if (runCount > 0) this.addLink(ifaces[runPort].linktype, runCount);
    this.stats.packets += n;
    this.stats.bytes += bytes;
    return n;
  }

  /** Parses an SHB (whole in the io region at p). */
  private sectionHeader(dv: DataView, p: number, blen: number, le: boolean): boolean {
    if (blen < 28) {
      this.corrupt(`section header block of ${blen} bytes is too short`);
      return false;
    }
    const major = dv.getUint16(p + 12, le);
    const minor = dv.getUint16(p + 14, le);
    if (major !== 1) {
      this.corrupt(`section header block version ${major}.${minor} is not supported`);
      return false;
    }
    this.sawSection = true;
    this.sectionBase = this.ifaces.length;
    this.sectionCount = 0;
    return true;
  }

  /** Parses an IDB (whole in the io region at p). */
  private interfaceBlock(dv: DataView, p: number, blen: number, le: boolean): boolean {
    if (blen < 20) {
      this.corrupt(`interface description block of ${blen} bytes is too short`);
      return false;
    }
    const linktype = dv.getUint16(p + 8, le);
    const snaplen = dv.getUint32(p + 12, le);
    let binary = false;
    let exp = 6;
    let offset = 0;
    let offsetBig = 0n;
    const end = p + blen - 4;
    let o = p + 16;
    while (o + 4 <= end) {
      const code = dv.getUint16(o, le);
      const olen = dv.getUint16(o + 2, le);
      if (code === 0) break;
      if (o + 4 + olen > end) {
        this.error(`${this.path}: interface ${this.ifaces.length}: option ${code} runs past the end of its block; rest of the options ignored`);
        break;
      }
      if (code === 9 && olen >= 1) {
        const r = dv.getUint8(o + 4);
        binary = (r & 0x80) !== 0;
        exp = r & 0x7f;
      } else if (code === 14 && olen >= 8) {
        const a = dv.getUint32(o + 4, le);
        const b = dv.getUint32(o + 8, le);
        const hi = le ? b : a;
        const lo = le ? a : b;
        offsetBig = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
        offset = Number(offsetBig);
      }
      o += 4 + ((olen + 3) & ~3);
    }
    let div = 0;
    let nsMul = 0;
    if (binary) {
      div = 2 ** exp;
    } else if (exp <= 22) {
      div = 10 ** exp; // exact in a double up to 10^22
      if (exp <= 9) nsMul = 10 ** (9 - exp);
    }
    if (binary ? exp >= 20 : exp > 6) this.stats.nanos = true;
    const fast = nsMul !== 0 && Math.abs(offset) < 2 ** 52;
    const ifc: Iface = { linktype, snaplen, binary, exp, div, nsMul, offset, offsetBig, fast, cHi: -1, cQ: 0, cR: 0 };
    this.ifaces.push(ifc);
    this.sectionCount++;
    this.stats.interfaces.push({ linktype, snaplen });
    return true;
  }

  /** General timestamp conversion into this.tsSec / this.tsNsec (exact). */
  private convert(ifc: Iface, hi: number, lo: number): void {
    let sec: number;
    let nsec: number;
    const div = ifc.div;
    if (hi < 0x100000 && div !== 0 && div <= 2 ** 52) {
      // v < 2^52 and an exact divisor: Number arithmetic is exact (with a one-step fix-up).
      const v = hi * TWO32 + lo;
      sec = Math.floor(v / div);
      let frac = v - sec * div;
      if (frac < 0) {
        sec--;
        frac += div;
      } else if (frac >= div) {
        sec++;
        frac -= div;
      }
      if (ifc.nsMul !== 0) {
        nsec = frac * ifc.nsMul;
      } else if (ifc.binary && frac * 1e9 <= 2 ** 53) {
        nsec = Math.floor((frac * 1e9) / div); // division by a power of two is exact
      } else if (!ifc.binary) {
        const m = 10 ** (ifc.exp - 9); // exp in 10..15: exact
        nsec = Math.floor(frac / m);
        if (nsec * m > frac) nsec--;
        else if ((nsec + 1) * m <= frac) nsec++;
      } else {
        nsec = Number((BigInt(frac) * 1_000_000_000n) >> BigInt(ifc.exp));
      }
      sec += ifc.offset;
      if (!Number.isSafeInteger(sec)) {
        const s = BigInt(sec - ifc.offset) + ifc.offsetBig;
        sec = Number(s);
      }
    } else {
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      const D = ifc.binary ? 1n << BigInt(ifc.exp) : 10n ** BigInt(ifc.exp);
      const s = v / D + ifc.offsetBig;
      nsec = Number(((v % D) * 1_000_000_000n) / D);
      sec = Number(s);
    }
    this.tsSec = this.clampSec(sec);
    this.tsNsec = nsec;
  }
}

// ---------------------------------------------------------------------------------------------

/** Opens a capture file, detecting classic pcap or pcapng from its magic number. */
export function openCapture(path: string): CaptureReader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new CaptureError('CAPTURE_OPEN', `cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CaptureError('CAPTURE_OPEN', `${path} is not a regular file`);
    const size = st.size;
    if (size === 0) throw new CaptureError('CAPTURE_EMPTY', `${path} is empty (0 bytes)`);
    const hdr = new Uint8Array(24);
    let got = 0;
    while (got < 24) {
      const r = readSync(fd, hdr, got, 24 - got, got);
      if (r <= 0) break;
      got += r;
    }
    if (got < 4) {
      throw new CaptureError(
        'CAPTURE_UNKNOWN_FORMAT',
        `${path}: only ${got} byte(s), too short for a magic number (${Buffer.from(hdr.subarray(0, got)).toString('hex')})`,
      );
    }
    const magic = ((hdr[0] << 24) | (hdr[1] << 16) | (hdr[2] << 8) | hdr[3]) >>> 0;
    let reader: CaptureReader;
    if (magic === PCAP_US || magic === PCAP_NS || magic === PCAP_US_SWAPPED || magic === PCAP_NS_SWAPPED) {
      reader = new PcapReader(path, fd, size, hdr, got, magic);
    } else if (magic === PCAPNG_SHB) {
      reader = new PcapngReader(path, fd, size);
    } else {
      throw new CaptureError(
        'CAPTURE_UNKNOWN_FORMAT',
        `${path}: unknown capture format, magic number 0x${hex8(magic)} (expected pcap a1b2c3d4/a1b23c4d in either byte order, or pcapng 0a0d0d0a)`,
      );
    }
    return reader;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
