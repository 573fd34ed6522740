// A first look at a capture before it is balanced: which addresses talk to the most distinct
// peers (servers, and so VIP candidates), with their busiest TCP/UDP ports. Read with the host's
// capture reader; link layers parsed here only as far as the IP addresses and ports.
import { DESC_SIZE, MAX_CAPLEN, openCapture, type BatchTarget } from '../../host/io/capture.js';
import { formatAddress } from '../../host/ctl/config.js';

export interface Candidate {
  address: string;
  peers: number;
  packets: number;
  ports: { proto: 'tcp' | 'udp'; port: number; packets: number }[];
}

function v4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

/** Offset of the IP header in a frame of link type `link` (and whether it is IPv6), or -1. */
function ipStart(b: Uint8Array, p: number, len: number, link: number): number {
  if (link === 1) {
    let o = 12;
    let type = (b[p + o] << 8) | b[p + o + 1];
    while ((type === 0x8100 || type === 0x88a8) && o + 6 <= len) {
      o += 4;
      type = (b[p + o] << 8) | b[p + o + 1];
    }
    return type === 0x0800 || type === 0x86dd ? o + 2 : -1;
  }
  if (link === 101 || link === 12 || link === 14 || link === 228 || link === 229) return 0;
  if (link === 113) return 16;
  if (link === 276) return 20;
  if (link === 0 || link === 108) return 4;
  return -1;
}

/** Scans up to `limit` packets of the capture registered under `path`. */
export function scanCapture(path: string, limit = 50_000): Candidate[] {
  const reader = openCapture(path);
  const maxPackets = 256;
  const ioSize = 4 << 20;
  const ioPtr = maxPackets * DESC_SIZE;
  const arenaPtr = ioPtr + ioSize;
  const arenaEnd = arenaPtr + 2 * MAX_CAPLEN + 4096;
  const buf = new ArrayBuffer(arenaEnd);
  const t: BatchTarget = { mem: new Uint8Array(buf), dv: new DataView(buf), descPtr: 0, maxPackets, arenaPtr, arenaEnd, headroom: 16, inPlace: true, ioPtr, ioSize };
  const b = t.mem;
  const stats = new Map<string, { peers: Set<string>; packets: number; ports: Map<string, number> }>();
  const note = (addr: string, peer: string, port: string | null) => {
    let s = stats.get(addr);
    if (!s) stats.set(addr, (s = { peers: new Set(), packets: 0, ports: new Map() }));
    s.peers.add(peer);
    s.packets++;
    if (port) s.ports.set(port, (s.ports.get(port) ?? 0) + 1);
  };
  let seen = 0;
  try {
    while (seen < limit) {
      const n = reader.next(t);
      if (n === 0) break;
      for (let i = 0, d = 0; i < n; i++, d += DESC_SIZE) {
        const p = t.dv.getUint32(d, true);
        const len = t.dv.getUint32(d + 4, true);
        const o = ipStart(b, p, len, t.dv.getUint16(d + 14, true));
        if (o < 0 || o + 20 > len) continue;
        const ver = b[p + o] >> 4;
        let src: string, dst: string, proto: number, l4: number;
        if (ver === 4) {
          src = v4(b, p + o + 12);
          dst = v4(b, p + o + 16);
          proto = b[p + o + 9];
          l4 = o + (b[p + o] & 15) * 4;
          if (((b[p + o + 6] & 0x1f) | b[p + o + 7]) !== 0) l4 = -1; // a later fragment: no ports
        } else if (ver === 6 && o + 40 <= len) {
          src = formatAddress(b, p + o + 8);
          dst = formatAddress(b, p + o + 24);
          proto = b[p + o + 6];
          l4 = o + 40;
        } else continue;
        const ports = (proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= len;
        const name = proto === 6 ? 'tcp' : 'udp';
        note(dst, src, ports ? `${name}/${(b[p + l4 + 2] << 8) | b[p + l4 + 3]}` : null);
        note(src, dst, ports ? `${name}/${(b[p + l4] << 8) | b[p + l4 + 1]}` : null);
      }
      seen += n;
    }
  } finally {
    reader.close();
  }
  return [...stats].map(([address, s]) => ({
    address, peers: s.peers.size, packets: s.packets,
    ports: [...s.ports].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, packets]) => {
      const [proto, port] = k.split('/');
      return { proto: proto as 'tcp' | 'udp', port: Number(port), packets };
    }),
  })).sort((x, y) => y.peers - x.peers || y.packets - x.packets).slice(0, 3);
}
