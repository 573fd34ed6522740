// Deterministic generator of client traffic to VIPs and the VIPs' replies, as seen at the
// cluster's entry point, written as a classic pcap (Ethernet, microsecond timestamps).
//
// fixtures/sample.pcap is regenerated with (after `npm run build:host`):
//   node dist/host/cli/main.js generate flows --out fixtures/sample.pcap --packets 20000 --flows 600 --seed 1 --vip 10.0.0.100 --port 80 --port 443 --udp-share 0.3 --payload 16-96
//
// Model
// - `flows` flows carry exactly `packets` packets. round(flows * udpShare) of them are UDP. Each
//   TCP flow gets at least 6 packets (SYN, SYN-ACK, ACK ... FIN/ACK, FIN/ACK, ACK), each UDP flow
//   at least 1; the remaining packets are spread over the flows with heavy-tailed weights.
// - A flow's client, VIP, VIP port and client port (32768..60999, unique per client over the
//   whole trace) are drawn when the flow starts. Each of the `clients` clients has an IPv4
//   address in 198.18.0.0/15, an IPv6 address in 2001:db8:1::/48 (used towards IPv6 VIPs) and
//   the MAC 02:00:00:HH:aa:NN (HH:NN = client index, so 02:00:00:00:aa:NN for the first 256);
//   the VIP side's MAC is 02:00:00:00:00:fe. Client TTLs are 64 or 128 minus 3..20 hops; the
//   VIPs' replies have TTL 64. Payload bytes are random lowercase letters.
// - About `replyShare` of each flow's packets come from the VIP (TCP flows always have at least
//   the SYN-ACK and the FIN/ACK from the VIP). Between handshake and teardown, TCP data segments
//   (PSH/ACK, 1+ bytes) go in a random order of directions; seq/ack numbers are consistent and
//   every segment acknowledges everything the peer sent before it. UDP flows start with a client
//   datagram, then requests and responses in random order.
// - At most `concurrent` flows are live; each next packet belongs to a live flow picked at random;
//   a finished flow is replaced by the next one. Inter-packet gaps are uniform in [0, 2/rate].
// - Everything comes from one seeded xoshiro128** stream: same options, same bytes.
//
// Speed: frames are built in one reusable buffer; checksums are sums of per-flow constants plus
// the changing fields, and payloads are slices of a fixed random pool whose word sums are
// precomputed (prefix sums), so no per-byte work is done except copying.
import { PcapWriter } from '../io/pcap-writer.js';
import { Rng } from './rng.js';
import { put16, put32, halves, fold } from './bytes.js';
import { checkers } from './check.js';
import { ETH_IPV4, ETH_IPV6, PROTO_TCP, PROTO_UDP, F_FIN, F_SYN, F_PSH, F_ACK, SERVER_TTL, SYN_WINDOW, SYNACK_WINDOW } from './bytes.js';

export interface FlowGenOptions {
  out: string;
  packets: number;
  flows: number;
  seed: number;
  vips: string[]; // IPv4 and/or IPv6
  ports?: number[]; // default [80]
  udpShare?: number; // share of flows that are UDP, default 0.3
  clients?: number; // distinct clients, default 1000
  replyShare?: number; // share of packets from the VIP, default 0.4
  payload?: [number, number]; // payload bytes per data packet [min, max], default [16, 256]
  startTime?: number; // seconds since the epoch of the first packet, default 1_700_000_000
  rate?: number; // packets per second of trace time, default 100_000
  concurrent?: number; // live flows, default 1000
}

export interface FlowGenSummary {
  out: string;
  packets: number;
  flows: number;
  tcpFlows: number;
  udpFlows: number;
  replies: number; // packets from the VIPs
  wireBytes: number; // sum of frame lengths
  fileBytes: number; // size of the pcap file
  firstTs: number; // seconds (fractional) of the first packet
  lastTs: number;
}

export const FLOW_DEFAULTS = {
  ports: [80],
  udpShare: 0.3,
  clients: 1000,
  replyShare: 0.4,
  payload: [16, 256] as [number, number],
  startTime: 1_700_000_000,
  rate: 100_000,
  concurrent: 1000,
};

/** Largest payload: an IPv6 TCP segment with it still fits a 1500-byte MTU. */
export const MAX_PAYLOAD = 1440;
export const MAX_CLIENTS = 131070; // 198.18.0.0/15 without its first and last address
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_COUNT = 61000 - 32768;
const TCP_MIN_PACKETS = 6;

/** A bad option value; `option` is the FlowGenOptions field name, `detail` the message without it. */
export class FlowOptionError extends Error {
  constructor(
    readonly option: keyof FlowGenOptions,
    readonly detail: string,
  ) {
    super(`${option}: ${detail}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Addresses

export interface ParsedAddress {
  family: 4 | 6;
  /** IPv4: one u32; IPv6: four u32, network order. */
  words: number[];
}

/** Parses an IPv4 dotted quad or an IPv6 address; null if it is neither. */
export function parseAddress(s: string): ParsedAddress | null {
  const v4 = (t: string): number | null => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t);
    if (!m) return null;
    const b = m.slice(1).map(Number);
    if (b.some((x) => x > 255)) return null;
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  };
  if (!s.includes(':')) {
    const a = v4(s);
    return a === null ? null : { family: 4, words: [a] };
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const g = part.split(':');
    for (let i = 0; i < g.length; i++) {
      if (i === g.length - 1 && g[i].includes('.')) {
        const a = v4(g[i]);
        if (a === null) return null;
        out.push(a >>> 16, a & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g[i])) out.push(parseInt(g[i], 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const g16 = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const words: number[] = [];
  for (let i = 0; i < 8; i += 2) words.push(((g16[i] << 16) | g16[i + 1]) >>> 0);
  return { family: 6, words };
}

// ---------------------------------------------------------------------------------------------
// Options

type Resolved = Required<FlowGenOptions>;

/** Validates and fills in defaults; throws FlowOptionError naming the bad option. */
export function resolveFlowOptions(o: FlowGenOptions): Resolved {
  const r: Resolved = {
    out: o.out,
    packets: o.packets,
    flows: o.flows,
    seed: o.seed,
    vips: o.vips,
    ports: o.ports ?? FLOW_DEFAULTS.ports,
    udpShare: o.udpShare ?? FLOW_DEFAULTS.udpShare,
    clients: o.clients ?? FLOW_DEFAULTS.clients,
    replyShare: o.replyShare ?? FLOW_DEFAULTS.replyShare,
    payload: o.payload ?? FLOW_DEFAULTS.payload,
    startTime: o.startTime ?? FLOW_DEFAULTS.startTime,
    rate: o.rate ?? FLOW_DEFAULTS.rate,
    concurrent: o.concurrent ?? FLOW_DEFAULTS.concurrent,
  };
  const fail = (opt: keyof FlowGenOptions, msg: string): never => {
    throw new FlowOptionError(opt, msg);
  };
  const { int, share } = checkers<keyof FlowGenOptions>(fail);
  if (typeof r.out !== 'string' || r.out === '') fail('out', 'an output file is required');
  int('packets', r.packets, 1, 2 ** 31 - 1);
  int('flows', r.flows, 1, 2 ** 31 - 1);
  if (r.flows > r.packets) fail('flows', `${r.flows} flows need at least as many packets, got ${r.packets}`);
  int('seed', r.seed, 0, Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(r.vips) || r.vips.length === 0) fail('vips', 'at least one VIP address is required');
  for (const v of r.vips) if (!parseAddress(v)) fail('vips', `not an IPv4 or IPv6 address: ${v}`);
  if (!Array.isArray(r.ports) || r.ports.length === 0) fail('ports', 'at least one port is required');
  for (const p of r.ports) int('ports', p, 1, 65535);
  share('udpShare', r.udpShare);
  share('replyShare', r.replyShare);
  int('clients', r.clients, 1, MAX_CLIENTS);
  if (!Array.isArray(r.payload) || r.payload.length !== 2) fail('payload', 'must be [min, max]');
  int('payload', r.payload[0], 0, MAX_PAYLOAD);
  int('payload', r.payload[1], 0, MAX_PAYLOAD);
  if (r.payload[0] > r.payload[1]) fail('payload', `min ${r.payload[0]} is larger than max ${r.payload[1]}`);
  if (!(r.startTime >= 0 && r.startTime < 2 ** 32)) fail('startTime', `must be seconds from 0 to 2^32-1, got ${r.startTime}`);
  if (!(r.rate > 0 && r.rate <= 1e9)) fail('rate', `must be a positive number of packets per second (at most 1e9), got ${r.rate}`);
  int('concurrent', r.concurrent, 1, 1 << 20);
  const udpFlows = Math.round(r.flows * r.udpShare);
  const need = (r.flows - udpFlows) * TCP_MIN_PACKETS + udpFlows;
  if (r.packets < need)
    fail(
      'packets',
      `${r.packets} packets are too few for ${r.flows} flows (${r.flows - udpFlows} TCP flows need ${TCP_MIN_PACKETS} packets each, ${udpFlows} UDP flows 1): need at least ${need}`,
    );
  if (r.flows > r.clients * (EPHEMERAL_COUNT / 2))
    fail('flows', `${r.flows} flows need more than ${r.clients} clients (at most ${EPHEMERAL_COUNT / 2} flows per client)`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Byte helpers: host/gen/bytes.ts

const WSCALE = 7;

const FRAME_BYTES = 2048; // the frame is built at offset 0 of the work buffer
const POOL_OFF = FRAME_BYTES; // random payload pool after it
const POOL_BYTES = 1 << 16;

/** Writes the capture described by `opts`; returns what was written. */
export function generateFlows(opts: FlowGenOptions): FlowGenSummary {
  const o = resolveFlowOptions(opts);
  const rng = new Rng(o.seed);
  const F = o.flows;
  const N = o.packets;

  // --- flow plan: kind and packet budget of every flow -------------------------------------
  const udpFlows = Math.round(F * o.udpShare);
  const isUdp = new Uint8Array(F);
  {
    const idx = new Int32Array(F);
    for (let i = 0; i < F; i++) idx[i] = i;
    for (let i = 0; i < udpFlows; i++) {
      const j = i + rng.int(F - i);
      const t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
      isUdp[idx[i]] = 1;
    }
  }
  const budget = new Int32Array(F);
  {
    let min = 0;
    const weight = new Float64Array(F);
    let wsum = 0;
    for (let i = 0; i < F; i++) {
      budget[i] = isUdp[i] ? 1 : TCP_MIN_PACKETS;
      min += budget[i];
      // Pareto(alpha = 2)-like heavy tail: 1/sqrt(u), u in (0, 1]; sqrt is exact everywhere.
      weight[i] = 1 / Math.sqrt((rng.u32() + 1) / 4294967296);
      wsum += weight[i];
    }
    const extra = N - min;
    let given = 0;
    for (let i = 0; i < F; i++) {
      const e = Math.floor((extra * weight[i]) / wsum);
      budget[i] += e;
      given += e;
    }
    for (let i = 0; given < extra; i = (i + 1) % F, given++) budget[i]++;
  }

  // --- clients and VIPs --------------------------------------------------------------------
  const nc = o.clients;
  const cV4 = new Uint32Array(nc);
  const cV6 = new Uint32Array(nc * 4);
  const cMacHi = new Uint8Array(nc); // byte 3 of the MAC (0 for the first 256 clients)
  const cMacLo = new Uint8Array(nc);
  const cTtl = new Uint8Array(nc);
  {
    const pick = new Int32Array(MAX_CLIENTS);
    for (let i = 0; i < MAX_CLIENTS; i++) pick[i] = i + 1;
    for (let i = 0; i < nc; i++) {
      const j = i + rng.int(MAX_CLIENTS - i);
      const t = pick[i];
      pick[i] = pick[j];
      pick[j] = t;
      cV4[i] = (0xc6120000 + pick[i]) >>> 0;
      cV6[4 * i] = 0x20010db8;
      cV6[4 * i + 1] = (0x00010000 | (rng.u32() & 0xffff)) >>> 0;
      cV6[4 * i + 2] = rng.u32();
      cV6[4 * i + 3] = rng.u32();
      cMacHi[i] = (i >>> 8) & 0xff;
      cMacLo[i] = i & 0xff;
      // initial TTL 64 (or 128 for a third of the clients) minus 3..20 hops
      cTtl[i] = (rng.int(3) === 0 ? 128 : 64) - rng.range(3, 20);
    }
  }
  const vips = o.vips.map((v) => parseAddress(v)!);
  const nv = vips.length;
  const vFamily = Uint8Array.from(vips, (v) => v.family);
  const vWords = new Uint32Array(nv * 4);
  vips.forEach((v, i) => v.words.forEach((w, k) => (vWords[4 * i + k] = w)));
  const ports = o.ports;

  // --- payload pool with prefix sums of its 16-bit words ------------------------------------
  // Random lowercase letters: random binary on ports 80/443 makes tshark's HTTP and RTCP/QUIC
  // heuristics report malformed packets; letters are dissected as plain data.
  const buf = Buffer.alloc(POOL_OFF + POOL_BYTES);
  for (let i = 0; i < POOL_BYTES; i++) buf[POOL_OFF + i] = 97 + rng.int(26);
  const prefix = new Float64Array(POOL_BYTES / 2 + 1);
  for (let k = 0; k < POOL_BYTES / 2; k++) prefix[k + 1] = prefix[k] + ((buf[POOL_OFF + 2 * k] << 8) | buf[POOL_OFF + 2 * k + 1]);
  const [pMin, pMax] = o.payload;
  const tcpMin = Math.max(1, pMin);

  // --- live-flow slots ----------------------------------------------------------------------
  const S = Math.min(o.concurrent, F);
  const sUdp = new Uint8Array(S);
  const sV6 = new Uint8Array(S);
  const sClient = new Int32Array(S);
  const sVip = new Int32Array(S);
  const sSport = new Uint16Array(S);
  const sDport = new Uint16Array(S);
  const sStep = new Int32Array(S);
  const sTotal = new Int32Array(S);
  const sCRem = new Int32Array(S); // client packets left to place (TCP: data segments)
  const sSRem = new Int32Array(S); // VIP packets left to place
  const sCSeq = new Uint32Array(S); // next sequence number of each side
  const sSSeq = new Uint32Array(S);
  const sCId = new Uint16Array(S); // IPv4 identification of each side
  const sSId = new Uint16Array(S);
  const sCWin = new Uint16Array(S);
  const sSWin = new Uint16Array(S);
  const sCLabel = new Int32Array(S); // IPv6 flow labels
  const sSLabel = new Int32Array(S);
  const sL4 = new Float64Array(S); // pseudo-header + ports sum (same in both directions)
  const sIp = new Float64Array(S); // constant part of the IPv4 header sum
  const used = new Set<number>(); // client * 65536 + client port

  const startFlow = (slot: number, flow: number): void => {
    const udp = isUdp[flow];
    const total = budget[flow];
    const vip = rng.int(nv);
    const dport = ports[rng.int(ports.length)];
    let client = rng.int(nc);
    let sport = 0;
    for (let tries = 0; ; tries++) {
      sport = EPHEMERAL_FIRST + rng.int(EPHEMERAL_COUNT);
      if (!used.has(client * 65536 + sport)) break;
      if (tries > 64) client = (client + 1) % nc;
    }
    used.add(client * 65536 + sport);
    const v6 = vFamily[vip] === 6;
    sUdp[slot] = udp;
    sV6[slot] = v6 ? 1 : 0;
    sClient[slot] = client;
    sVip[slot] = vip;
    sSport[slot] = sport;
    sDport[slot] = dport;
    sStep[slot] = 0;
    sTotal[slot] = total;
    // VIP packets: about replyShare of the flow (stochastic rounding)
    const want = Math.floor(o.replyShare * total + rng.float());
    if (udp) {
      const s = Math.min(Math.max(want, 0), total - 1);
      sSRem[slot] = s;
      sCRem[slot] = total - 1 - s; // after the first (client) datagram
    } else {
      const data = total - TCP_MIN_PACKETS;
      const s = Math.min(Math.max(want - 2, 0), data);
      sSRem[slot] = s;
      sCRem[slot] = data - s;
    }
    sCSeq[slot] = rng.u32();
    sSSeq[slot] = rng.u32();
    sCId[slot] = rng.u32() & 0xffff;
    sSId[slot] = rng.u32() & 0xffff;
    sCWin[slot] = 4096 + rng.int(4096);
    sSWin[slot] = 4096 + rng.int(4096);
    sCLabel[slot] = rng.u32() & 0xfffff;
    sSLabel[slot] = rng.u32() & 0xfffff;
    const proto = udp ? PROTO_UDP : PROTO_TCP;
    let a = proto + sport + dport;
    let ip = 0;
    if (v6) {
      for (let k = 0; k < 4; k++) a += halves(cV6[4 * client + k]) + halves(vWords[4 * vip + k]);
    } else {
      const ca = halves(cV4[client]) + halves(vWords[4 * vip]);
      a += ca;
      ip = 0x4500 + 0x4000 + ca; // version/IHL/TOS, DF, addresses
    }
    sL4[slot] = a;
    sIp[slot] = ip;
  };

  const active = new Int32Array(S);
  let live = 0;
  let nextFlow = 0;
  for (; nextFlow < S; nextFlow++) {
    startFlow(nextFlow, nextFlow);
    active[live++] = nextFlow;
  }

  // SYN options: MSS, NOP, WS, SACK permitted, NOP, NOP (12 bytes)
  const synOpt = (mss: number) => [0x02, 0x04, mss >> 8, mss & 0xff, 0x01, 0x03, 0x03, WSCALE, 0x04, 0x02, 0x01, 0x01];
  const synOpt4 = synOpt(1460);
  const synOpt6 = synOpt(1440);
  const optSum = (b: number[]) => b.reduce((s, x, i) => s + (i & 1 ? x : x << 8), 0);
  const synOptSum4 = optSum(synOpt4);
  const synOptSum6 = optSum(synOpt6);

  const writer = new PcapWriter(o.out, { nanos: false, bufferBytes: 4 << 20 });
  const startUs = Math.round(o.startTime * 1e6);
  const gapScale = 2e6 / o.rate; // uniform gap in [0, 2/rate) seconds, in microseconds
  let tUs = 0;
  let replies = 0;
  let wireBytes = 0;
  let lastTsUs = startUs;
  const b = buf;

  try {
    for (let n = 0; n < N; n++) {
      const j = rng.int(live);
      const slot = active[j];
      const step = sStep[slot];
      const total = sTotal[slot];
      const udp = sUdp[slot] === 1;
      const v6 = sV6[slot] === 1;
      let fromClient: boolean;
      let flags = 0;
      let payLen = 0;
      let syn = false;
      if (udp) {
        if (step === 0) fromClient = true;
        else fromClient = rng.int(sCRem[slot] + sSRem[slot]) < sCRem[slot];
        payLen = rng.range(pMin, pMax);
      } else if (step === 0) {
        fromClient = true;
        flags = F_SYN;
        syn = true;
      } else if (step === 1) {
        fromClient = false;
        flags = F_SYN | F_ACK;
        syn = true;
      } else if (step === 2) {
        fromClient = true;
        flags = F_ACK;
      } else if (step === total - 3) {
        fromClient = true;
        flags = F_FIN | F_ACK;
      } else if (step === total - 2) {
        fromClient = false;
        flags = F_FIN | F_ACK;
      } else if (step === total - 1) {
        fromClient = true;
        flags = F_ACK;
      } else {
        fromClient = rng.int(sCRem[slot] + sSRem[slot]) < sCRem[slot];
        flags = F_PSH | F_ACK;
        payLen = rng.range(tcpMin, pMax);
      }
      if (step > 0 && (udp || flags === (F_PSH | F_ACK))) {
        if (fromClient) sCRem[slot]--;
        else sSRem[slot]--;
      }
      if (!fromClient) replies++;

      const client = sClient[slot];
      const vip = sVip[slot];
      // Ethernet: client MAC 02:00:00:HH:aa:NN (HH = 0 for the first 256 clients), VIP side
      // 02:00:00:00:00:fe
      const cm = fromClient ? 6 : 0;
      const vm = fromClient ? 0 : 6;
      b[cm] = 0x02;
      b[cm + 1] = 0;
      b[cm + 2] = 0;
      b[cm + 3] = cMacHi[client];
      b[cm + 4] = 0xaa;
      b[cm + 5] = cMacLo[client];
      b[vm] = 0x02;
      b[vm + 1] = 0;
      b[vm + 2] = 0;
      b[vm + 3] = 0;
      b[vm + 4] = 0;
      b[vm + 5] = 0xfe;
      put16(b, 12, v6 ? ETH_IPV6 : ETH_IPV4);

      const l4 = v6 ? 54 : 34;
      const hl = udp ? 8 : syn ? 32 : 20;
      const l4Len = hl + payLen;
      const proto = udp ? PROTO_UDP : PROTO_TCP;
      // IP header
      if (v6) {
        put32(b, 14, (0x60000000 | (fromClient ? sCLabel[slot] : sSLabel[slot])) >>> 0);
        put16(b, 18, l4Len);
        b[20] = proto;
        b[21] = fromClient ? cTtl[client] : SERVER_TTL;
        const c = 4 * client;
        const v = 4 * vip;
        const so = fromClient ? 22 : 38;
        const d0 = fromClient ? 38 : 22;
        put32(b, so, cV6[c]);
        put32(b, so + 4, cV6[c + 1]);
        put32(b, so + 8, cV6[c + 2]);
        put32(b, so + 12, cV6[c + 3]);
        put32(b, d0, vWords[v]);
        put32(b, d0 + 4, vWords[v + 1]);
        put32(b, d0 + 8, vWords[v + 2]);
        put32(b, d0 + 12, vWords[v + 3]);
      } else {
        const totalLen = 20 + l4Len;
        const ttl = fromClient ? cTtl[client] : SERVER_TTL;
        const id = fromClient ? sCId[slot]++ : sSId[slot]++;
        b[14] = 0x45;
        b[15] = 0;
        put16(b, 16, totalLen);
        put16(b, 18, id);
        put16(b, 20, 0x4000);
        b[22] = ttl;
        b[23] = proto;
        put32(b, fromClient ? 26 : 30, cV4[client]);
        put32(b, fromClient ? 30 : 26, vWords[4 * vip]);
        put16(b, 24, ~fold(sIp[slot] + totalLen + id + ((ttl << 8) | proto)) & 0xffff);
      }
      // payload: an even offset into the pool, so its words line up with the segment's
      let paySum = 0;
      if (payLen > 0) {
        const pOff = 2 * rng.int(((POOL_BYTES - payLen) >> 1) + 1);
        const w = pOff >> 1;
        const nw = payLen >> 1;
        paySum = prefix[w + nw] - prefix[w];
        if (payLen & 1) paySum += b[POOL_OFF + pOff + payLen - 1] << 8;
        b.copyWithin(l4 + hl, POOL_OFF + pOff, POOL_OFF + pOff + payLen);
      }
      // L4 header
      const sport = sSport[slot];
      const dport = sDport[slot];
      put16(b, l4, fromClient ? sport : dport);
      put16(b, l4 + 2, fromClient ? dport : sport);
      let sum = sL4[slot] + l4Len + paySum;
      let csumAt: number;
      if (udp) {
        put16(b, l4 + 4, l4Len);
        sum += l4Len;
        csumAt = l4 + 6;
      } else {
        const seq = fromClient ? sCSeq[slot] : sSSeq[slot];
        const ack = flags === F_SYN ? 0 : fromClient ? sSSeq[slot] : sCSeq[slot];
        const win = step === 0 ? SYN_WINDOW : step === 1 ? SYNACK_WINDOW : fromClient ? sCWin[slot] : sSWin[slot];
        const offFlags = ((hl >> 2) << 12) | flags;
        put32(b, l4 + 4, seq);
        put32(b, l4 + 8, ack);
        put16(b, l4 + 12, offFlags);
        put16(b, l4 + 14, win);
        put16(b, l4 + 18, 0);
        sum += halves(seq) + halves(ack) + offFlags + win;
        if (syn) {
          const opt = v6 ? synOpt6 : synOpt4;
          for (let k = 0; k < 12; k++) b[l4 + 20 + k] = opt[k];
          sum += v6 ? synOptSum6 : synOptSum4;
        }
        const adv = payLen + (flags & (F_SYN | F_FIN) ? 1 : 0);
        if (fromClient) sCSeq[slot] = seq + adv;
        else sSSeq[slot] = seq + adv;
        csumAt = l4 + 16;
      }
      let c = ~fold(sum) & 0xffff;
      if (udp && c === 0) c = 0xffff;
      put16(b, csumAt, c);

      const len = l4 + l4Len;
      const tsUs = startUs + Math.floor(tUs);
      const sec = Math.floor(tsUs / 1e6);
      writer.writeRecord(b, 0, len, len, sec, (tsUs - sec * 1e6) * 1000);
      lastTsUs = tsUs;
      wireBytes += len;
      tUs += rng.float() * gapScale;

      // advance the flow; replace it when done
      if (step + 1 === total) {
        if (nextFlow < F) startFlow(slot, nextFlow++);
        else active[j] = active[--live];
      } else sStep[slot] = step + 1;
    }
  } finally {
    writer.close();
  }
  return {
    out: o.out,
    packets: N,
    flows: F,
    tcpFlows: F - udpFlows,
    udpFlows,
    replies,
    wireBytes,
    fileBytes: 24 + 16 * N + wireBytes,
    firstTs: startUs / 1e6,
    lastTs: lastTsUs / 1e6,
  };
}
