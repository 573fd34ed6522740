// Reference (deliberately plain) Internet checksum code, used as a test oracle.
//
// - internetChecksum / onesSum: RFC 1071 ones-complement sum over a byte range.
// - verifyFrame: recomputes and checks the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6
//   checksum of an Ethernet frame (802.1Q / 802.1ad / QinQ tags, IPv4 options, IPv6 extension
//   headers including a routing header's final destination in the pseudo-header).
// - fixFrame: rewrites the same checksums in place.
//
// Only the outermost IP packet is handled (tunnelled inner packets are not looked at).

/**
 * Ones-complement sum of the 16-bit big-endian words of bytes[start, end), folded to 16 bits,
 * NOT complemented. An odd trailing byte is padded with a zero low byte. `initial` is added in
 * (any non-negative integer, e.g. a pseudo-header sum).
 */
export function onesSum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) sum += bytes[i] << 8;
  return fold(sum);
}

/** Folds a non-negative integer (< 2^53) to 16 bits with end-around carry. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * RFC 1071 Internet checksum of bytes[start, end): the complement of the folded ones-complement
 * sum, as stored in a header. `initial` is an uncomplemented partial sum added in first.
 * Verifying: the checksum over data that includes a correct checksum field is 0.
 */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  return ~onesSum(bytes, start, end, initial) & 0xffff;
}

export interface FrameCheck {
  /** IPv4 header checksum correct; null for IPv6, non-IP or a truncated header. */
  ipOk: boolean | null;
  /** TCP/UDP/ICMP/ICMPv6 checksum correct; null when it cannot be checked (other protocol,
   *  fragment, truncated packet). UDP over IPv4 with checksum 0 ("none") counts as correct. */
  l4Ok: boolean | null;
  problems: string[];
}

const VLAN_TPIDS = new Set([0x8100, 0x88a8, 0x9100, 0x9200]);

interface Located {
  problems: string[];
  family: 4 | 6 | null;
  l3: number; // offset of the IP header
  ipHeaderEnd: number; // IPv4: l3 + IHL*4
  ipEnd: number; // end of the IP packet according to its length field
  truncated: boolean;
  l4: number; // -1 when the L4 header cannot be checksummed
  proto: number;
  pseudoSum: number; // uncomplemented sum of the pseudo-header (without the L4 length)
}

function be16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

function locate(frame: Uint8Array): Located {
  const r: Located = {
    problems: [],
    family: null,
    l3: -1,
    ipHeaderEnd: -1,
    ipEnd: -1,
    truncated: false,
    l4: -1,
    proto: -1,
    pseudoSum: 0,
  };
  if (frame.length < 14) {
    r.problems.push('truncated Ethernet header');
    return r;
  }
  let off = 12;
  let type = be16(frame, off);
  while (VLAN_TPIDS.has(type)) {
    if (off + 6 > frame.length) {
      r.problems.push('truncated VLAN tag');
      return r;
    }
    off += 4;
    type = be16(frame, off);
  }
  off += 2;
  r.l3 = off;
  if (type === 0x0800) locateIPv4(frame, r);
  else if (type === 0x86dd) locateIPv6(frame, r);
  else r.problems.push(`not IP (ethertype 0x${type.toString(16).padStart(4, '0')})`);
  return r;
}

function locateIPv4(f: Uint8Array, r: Located): void {
  const o = r.l3;
  r.family = 4;
  if (o + 20 > f.length) {
    r.problems.push('truncated IPv4 header');
    return;
  }
  if (f[o] >> 4 !== 4) r.problems.push(`IPv4 version field is ${f[o] >> 4}`);
  const ihl = (f[o] & 15) * 4;
  if (ihl < 20) {
    r.problems.push(`IPv4 IHL ${ihl} < 20`);
    return;
  }
  if (o + ihl > f.length) {
    r.problems.push('truncated IPv4 options');
    return;
  }
  r.ipHeaderEnd = o + ihl;
  const total = be16(f, o + 2);
  if (total < ihl) {
    r.problems.push(`IPv4 total length ${total} < header length ${ihl}`);
    return;
  }
  r.ipEnd = o + total;
  if (r.ipEnd > f.length) {
    r.truncated = true;
    r.problems.push('truncated IPv4 packet');
  }
  r.proto = f[o + 9];
  const fragField = be16(f, o + 6);
  const fragOff = fragField & 0x1fff;
  const more = (fragField & 0x2000) !== 0;
  if (fragOff !== 0) {
    r.problems.push('non-first fragment');
    return;
  }
  if (more) {
    r.problems.push('first fragment (L4 checksum covers the reassembled datagram)');
    return;
  }
  if (r.truncated) return;
  if (r.proto === 6 || r.proto === 17) {
    r.l4 = r.ipHeaderEnd;
    r.pseudoSum = be16(f, o + 12) + be16(f, o + 14) + be16(f, o + 16) + be16(f, o + 18) + r.proto;
  } else if (r.proto === 1) {
    r.l4 = r.ipHeaderEnd;
    r.pseudoSum = -1; // no pseudo-header
  }
}

function locateIPv6(f: Uint8Array, r: Located): void {
  const o = r.l3;
  r.family = 6;
  if (o + 40 > f.length) {
    r.problems.push('truncated IPv6 header');
    return;
  }
  if (f[o] >> 4 !== 6) r.problems.push(`IPv6 version field is ${f[o] >> 4}`);
  const plen = be16(f, o + 4);
  r.ipHeaderEnd = o + 40;
  r.ipEnd = o + 40 + plen;
  if (plen === 0 && f[o + 6] === 0) {
    r.problems.push('jumbogram (payload length 0) not supported');
    return;
  }
  if (r.ipEnd > f.length) {
    r.truncated = true;
    r.problems.push('truncated IPv6 packet');
  }
  let dstOff = o + 24; // where the pseudo-header destination is read from
  let next = f[o + 6];
  let p = o + 40;
  for (;;) {
    if (next === 0 || next === 43 || next === 60 || next === 51 || next === 135 || next === 139 || next === 140) {
      if (p + 8 > r.ipEnd || p + 8 > f.length) {
        r.problems.push(`truncated IPv6 extension header ${next}`);
        return;
      }
      const len = next === 51 ? (f[p + 1] + 2) * 4 : (f[p + 1] + 1) * 8;
      if (next === 43 && f[p + 3] > 0) {
        // Routing header with segments left: the pseudo-header uses the final destination.
        const rtype = f[p + 2];
        if (rtype === 0 || rtype === 2) {
          const n = (f[p + 1] * 8) / 16;
          if (n >= 1) dstOff = p + 8 + (n - 1) * 16;
        } else if (rtype === 4) {
          dstOff = p + 8; // SRH: Segment List[0] is the final segment
        } else {
          r.problems.push(`unknown routing header type ${rtype}`);
        }
        if (dstOff + 16 > f.length) {
          r.problems.push('truncated routing header');
          return;
        }
      }
      next = f[p];
      p += len;
      continue;
    }
    if (next === 44) {
      if (p + 8 > f.length) {
        r.problems.push('truncated IPv6 fragment header');
        return;
      }
      const fo = be16(f, p + 2);
      if (fo >> 3 !== 0) {
        r.problems.push('non-first fragment');
        return;
      }
      if (fo & 1) {
        r.problems.push('first fragment (L4 checksum covers the reassembled datagram)');
        return;
      }
      next = f[p];
      p += 8;
      continue;
    }
    break;
  }
  r.proto = next;
  if (p > r.ipEnd) {
    r.problems.push('IPv6 extension headers exceed the payload length');
    return;
  }
  if (r.truncated) return;
  if (next === 6 || next === 17 || next === 58) {
    r.l4 = p;
    let s = next;
    for (let i = 0; i < 16; i += 2) s += be16(f, o + 8 + i) + be16(f, dstOff + i);
    r.pseudoSum = s;
  }
}

/** Offset of the checksum field inside the L4 header, or -1. */
function checksumField(family: 4 | 6 | null, proto: number): number {
  if (proto === 6) return 16;
  if (proto === 17) return 6;
  if ((proto === 1 && family === 4) || (proto === 58 && family === 6)) return 2;
  return -1;
}

function minL4Header(proto: number): number {
  return proto === 6 ? 20 : proto === 17 ? 8 : 4;
}

/** Recomputes every checksum of an Ethernet frame and reports which ones are wrong. */
export function verifyFrame(frame: Uint8Array): FrameCheck {
  const r = locate(frame);
  const res: FrameCheck = { ipOk: null, l4Ok: null, problems: r.problems };
  if (r.family === 4 && r.ipHeaderEnd > 0) {
    res.ipOk = internetChecksum(frame, r.l3, r.ipHeaderEnd) === 0;
    if (!res.ipOk) res.problems.push('bad IPv4 header checksum');
  }
  if (r.l4 < 0) return res;
  const field = checksumField(r.family, r.proto);
  if (field < 0) return res;
  const len = r.ipEnd - r.l4;
  if (len < minL4Header(r.proto)) {
    res.problems.push(`L4 segment shorter than its header (${len} bytes)`);
    return res;
  }
  if (r.proto === 17) {
    const ulen = be16(frame, r.l4 + 4);
    if (ulen !== len) res.problems.push(`UDP length ${ulen} != IP payload length ${len}`);
    if (be16(frame, r.l4 + 6) === 0) {
      if (r.family === 4) {
        res.l4Ok = true;
        return res;
      }
      res.l4Ok = false;
      res.problems.push('UDP checksum 0 over IPv6');
      return res;
    }
  }
  const initial = r.pseudoSum < 0 ? 0 : r.pseudoSum + len;
  res.l4Ok = internetChecksum(frame, r.l4, r.ipEnd, initial) === 0;
  if (!res.l4Ok) {
    const name = r.proto === 6 ? 'TCP' : r.proto === 17 ? 'UDP' : r.proto === 1 ? 'ICMP' : 'ICMPv6';
    res.problems.push(`bad ${name} checksum`);
  }
  return res;
}

export interface FixOptions {
  /** Keep a UDP-over-IPv4 checksum of 0 ("no checksum") as it is (default false: compute it). */
  keepZeroUdp?: boolean;
}

/**
 * Recomputes, in place, the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum of an
 * Ethernet frame (those that verifyFrame can check). Returns the frame.
 */
export function fixFrame(frame: Uint8Array, opts: FixOptions = {}): Uint8Array {
  const r = locate(frame);
  if (r.family === 4 && r.ipHeaderEnd > 0) {
    frame[r.l3 + 10] = 0;
    frame[r.l3 + 11] = 0;
    const c = internetChecksum(frame, r.l3, r.ipHeaderEnd);
    frame[r.l3 + 10] = c >> 8;
    frame[r.l3 + 11] = c & 0xff;
  }
  if (r.l4 < 0) return frame;
  const field = checksumField(r.family, r.proto);
  const len = r.ipEnd - r.l4;
  if (field < 0 || len < minL4Header(r.proto)) return frame;
  const at = r.l4 + field;
  if (r.proto === 17 && r.family === 4 && opts.keepZeroUdp && be16(frame, at) === 0) return frame;
  frame[at] = 0;
  frame[at + 1] = 0;
  let c = internetChecksum(frame, r.l4, r.ipEnd, r.pseudoSum < 0 ? 0 : r.pseudoSum + len);
  if (c === 0 && r.proto === 17) c = 0xffff;
  frame[at] = c >> 8;
  frame[at + 1] = c & 0xff;
  return frame;
}
