// Deterministic generator of RTSP streaming sessions as seen at the cluster's entry point (the
// VIP is the RTSP server; its replies and media come from the VIP), written as a classic pcap
// (Ethernet, microsecond timestamps, every IPv4/TCP/UDP checksum correct), plus an optional
// ground-truth JSON naming every session's control and media 5-tuples.
//
// Example (after `npm run build:host`):
//   node dist/host/cli/main.js generate rtsp --sessions 200 --seed 1 --vip 10.0.0.100 --out rtsp.pcap --truth rtsp.json
//
// Model (modelled on ../shared/fixtures/rtsp: GStreamer, VLC and ffmpeg talking RTSP 1.0)
// - Sessions start one after another, gaps uniform in [0, 2/arrivalRate) s, so many are live at
//   once. round(sessions * natShare) of them, picked by selection sampling, come from one of
//   `natAddresses` NAT addresses (203.0.113.1.. / 2001:db8:ffff::1..) shared by many users; the
//   others take the `clients` client addresses (random in 198.18.0.0/15 / 2001:db8:1::/48) in
//   turn: by default one address per session, with fewer clients each has several sessions one
//   after another. NAT users get NAT addresses at random. Ports are never reused on an
//   address within a trace (TCP: 32768..60999 for clients, 1024..65535 behind NAT; RTP/RTCP
//   pairs: even/odd ports 1024..65535), each address walking its own random permutation, until
//   an address has used them all (then they wrap around). The VIP's RTP/RTCP port pairs
//   (20000..65535) are one random walk that skips the pairs of live tracks.
// - Per session: 1..3 tracks (video H.264 PT 96/90000, audio PCMU PT 0/8000, ONVIF metadata PT
//   107/90000), a client flavour (ffmpeg, GStreamer, VLC user agents), a round-trip time of
//   5..120 ms, a media duration drawn from `duration`, RTP over UDP or (interleavedShare)
//   interleaved in the RTSP connection (`$` framing, channels 2k/2k+1).
// - Control: TCP handshake (MSS, SACK permitted, window scale 7) to the VIP's `port`; OPTIONS,
//   DESCRIBE (SDP body with Content-Length), one SETUP per track (client_port=a-b with even a, or
//   interleaved=2k-2k+1; the reply adds server_port=c-d;ssrc=... and `Session: <id>;timeout=60`;
//   later SETUPs carry the Session header), then ffmpeg's "NAT punch" (an empty RTP packet and an
//   empty RTCP receiver report from each client port to the matching server port), PLAY (reply
//   with Session, Range and RTP-Info giving each track's first seq/rtptime), GET_PARAMETER
//   keep-alives every 30 s for sessions over 45 s, TEARDOWN (reply with Connection: close), then
//   FIN from the client, FIN from the VIP, last ACK. CSeq counts from 1. Session ids are 16 hex
//   digits (VLC/live555 style) or a decimal number (ffmpeg style), unique within a trace.
// - TCP: seq/ack consistent; the capture point is at the VIP, so the VIP's packets acknowledge
//   everything the client sent, while the client acknowledges what the VIP sent one RTT earlier
//   (every second segment, or after 40 ms; pure ACKs only when they acknowledge new data, so
//   tshark sees no duplicate ACK, window update or other analysis flag). Windows are fixed after
//   the handshake.
// - Media: RTP v2 from the VIP's server_port (even) to the client_port (even) at `rtpRate`
//   packets/s per track; sequence numbers and timestamps increase from random starts; one SSRC
//   per track. Video: 25 frames/s (fewer when rtpRate < 25), packets of a frame back to back with
//   the marker on the last, IDR frame every 2 s, single NAL units or FU-A fragments with valid
//   slice headers (SPS/PPS in the SDP's sprop-parameter-sets). Audio: 8000/rtpRate samples per
//   packet. Metadata: XML text. RTCP: sender report + SDES CNAME from the server's odd port about
//   every second per track (interval uniform in [0.5, 1.5] s), receiver report + SDES from the
//   client's odd port likewise, and a final SR + SDES + BYE when the TEARDOWN arrives (media
//   stops then, possibly in the middle of a video frame).
// - Everything is driven by a priority queue of per-session event streams (control, and per track
//   RTP, sender reports and receiver reports), so packets come out in time order with memory
//   bounded by the live sessions. A seeded xoshiro128** stream picks each session's own seed;
//   everything else in a session comes from its own generator: same options, same bytes.
//
// Speed: each frame is built in place in a 4 MiB staging buffer (after its 16-byte pcap record
// header) that is written out in big chunks; RTP payload bytes are slices of a fixed pool (in the
// same buffer) whose 16-bit word sums are precomputed (prefix sums), so checksums cost no per-byte
// work; the priority queue keeps its keys in typed arrays. About 1 µs and one ~430-byte frame
// per packet: the defaults give 10,000 sessions in about 11 M packets and 4.9 GB.
import { closeSync, openSync, writeSync } from 'node:fs';
import { parseAddress } from './flows.js';
import { Rng } from './rng.js';
import { put16, put32, halves, fold } from './bytes.js';
import { checkers } from './check.js';
import { ETH_IPV4, ETH_IPV6, PROTO_TCP, PROTO_UDP, F_FIN, F_SYN, F_PSH, F_ACK, SERVER_TTL, SYN_WINDOW, SYNACK_WINDOW } from './bytes.js';

export type SessionIdStyle = 'hex' | 'decimal' | 'mixed';

export interface RtspGenOptions {
  out: string;
  sessions: number;
  seed: number;
  vip: string; // IPv4 or IPv6: the RTSP server
  port?: number; // RTSP port, default 554
  clients?: number; // distinct direct (non-NAT) client addresses, default: one per direct session
  natShare?: number; // share of sessions from NAT addresses, default 0.2
  natAddresses?: number; // NAT addresses, default 4
  arrivalRate?: number; // sessions per second, default 50
  duration?: [number, number]; // seconds of media per session [min, max], default [5, 15]
  rtpRate?: number; // RTP packets per second per track, default 50
  tracks?: [number, number]; // tracks per session [min, max] within 1..3, default [1, 3]
  interleavedShare?: number; // share of sessions with RTP interleaved in the RTSP connection, default 0.1
  sessionIds?: SessionIdStyle; // default 'hex'
  startTime?: number; // seconds since the epoch of the first packet, default 1_700_000_000
  truth?: string; // ground-truth JSON file to write (optional)
}

export interface RtspGenSummary {
  out: string;
  truth: string | null;
  sessions: number;
  natSessions: number;
  interleavedSessions: number;
  tracks: number;
  packets: number;
  controlPackets: number; // TCP packets of the RTSP connections (interleaved media included)
  rtpPackets: number; // RTP packets (UDP and interleaved, NAT punches included)
  rtcpPackets: number; // RTCP compound packets (UDP and interleaved, NAT punches included)
  peakLive: number; // most sessions live at once
  wireBytes: number;
  fileBytes: number;
  firstTs: number;
  lastTs: number;
}

export const RTSP_DEFAULTS = {
  port: 554,
  natShare: 0.2,
  natAddresses: 4,
  arrivalRate: 50,
  duration: [5, 15] as [number, number],
  rtpRate: 50,
  tracks: [1, 3] as [number, number],
  interleavedShare: 0.1,
  sessionIds: 'hex' as SessionIdStyle,
  startTime: 1_700_000_000,
};

export const RTSP_MAX_CLIENTS = 131070; // 198.18.0.0/15 without its first and last address
export const RTSP_MAX_NAT_ADDRESSES = 254; // 203.0.113.1 .. 203.0.113.254
export const RTSP_MAX_RTP_RATE = 10_000;
export const RTSP_SESSION_TIMEOUT = 60; // seconds, announced in the Session header
const MAX_START_TIME = 4_200_000_000; // leaves the trace ~3 years before 32-bit pcap seconds run out

/** A bad option value; `option` is the RtspGenOptions field name, `detail` the message without it. */
export class RtspOptionError extends Error {
  constructor(
    readonly option: keyof RtspGenOptions,
    readonly detail: string,
  ) {
    super(`${option}: ${detail}`);
  }
}

type Resolved = Required<Omit<RtspGenOptions, 'truth'>> & { truth: string | null };

/** Validates and fills in defaults; throws RtspOptionError naming the bad option. */
export function resolveRtspOptions(o: RtspGenOptions): Resolved {
  const natShare = o.natShare ?? RTSP_DEFAULTS.natShare;
  // default: one address per direct (non-NAT) session, as far as the address block goes
  const n = Number.isSafeInteger(o.sessions) && o.sessions > 0 ? o.sessions : 1;
  const direct = n - Math.round(n * (natShare >= 0 && natShare <= 1 ? natShare : 0));
  const r: Resolved = {
    out: o.out,
    sessions: o.sessions,
    seed: o.seed,
    vip: o.vip,
    port: o.port ?? RTSP_DEFAULTS.port,
    clients: o.clients ?? Math.max(1, Math.min(RTSP_MAX_CLIENTS, direct)),
    natShare,
    natAddresses: o.natAddresses ?? RTSP_DEFAULTS.natAddresses,
    arrivalRate: o.arrivalRate ?? RTSP_DEFAULTS.arrivalRate,
    duration: o.duration ?? RTSP_DEFAULTS.duration,
    rtpRate: o.rtpRate ?? RTSP_DEFAULTS.rtpRate,
    tracks: o.tracks ?? RTSP_DEFAULTS.tracks,
    interleavedShare: o.interleavedShare ?? RTSP_DEFAULTS.interleavedShare,
    sessionIds: o.sessionIds ?? RTSP_DEFAULTS.sessionIds,
    startTime: o.startTime ?? RTSP_DEFAULTS.startTime,
    truth: o.truth ?? null,
  };
  const fail = (opt: keyof RtspGenOptions, msg: string): never => {
    throw new RtspOptionError(opt, msg);
  };
  const { int, share } = checkers<keyof RtspGenOptions>(fail);
  if (typeof r.out !== 'string' || r.out === '') fail('out', 'an output file is required');
  int('sessions', r.sessions, 1, 2 ** 31 - 1);
  int('seed', r.seed, 0, Number.MAX_SAFE_INTEGER);
  if (typeof r.vip !== 'string' || !parseAddress(r.vip)) fail('vip', `not an IPv4 or IPv6 address: ${r.vip}`);
  int('port', r.port, 1, 65535);
  int('clients', r.clients, 1, RTSP_MAX_CLIENTS);
  share('natShare', r.natShare);
  int('natAddresses', r.natAddresses, 1, RTSP_MAX_NAT_ADDRESSES);
  if (!(r.arrivalRate > 0 && r.arrivalRate <= 1e6)) fail('arrivalRate', `must be a positive number of sessions per second (at most 1e6), got ${r.arrivalRate}`);
  if (!Array.isArray(r.duration) || r.duration.length !== 2) fail('duration', 'must be [min, max] seconds');
  for (const d of r.duration) if (!(d >= 0.1 && d <= 86400)) fail('duration', `must be seconds from 0.1 to 86400, got ${d}`);
  if (r.duration[0] > r.duration[1]) fail('duration', `min ${r.duration[0]} is larger than max ${r.duration[1]}`);
  if (!(r.rtpRate >= 1 && r.rtpRate <= RTSP_MAX_RTP_RATE)) fail('rtpRate', `must be packets per second from 1 to ${RTSP_MAX_RTP_RATE}, got ${r.rtpRate}`);
  if (!Array.isArray(r.tracks) || r.tracks.length !== 2) fail('tracks', 'must be [min, max]');
  int('tracks', r.tracks[0], 1, 3);
  int('tracks', r.tracks[1], 1, 3);
  if (r.tracks[0] > r.tracks[1]) fail('tracks', `min ${r.tracks[0]} is larger than max ${r.tracks[1]}`);
  share('interleavedShare', r.interleavedShare);
  if (r.sessionIds !== 'hex' && r.sessionIds !== 'decimal' && r.sessionIds !== 'mixed') fail('sessionIds', `must be hex, decimal or mixed, got ${r.sessionIds}`);
  if (!(r.startTime >= 0 && r.startTime <= MAX_START_TIME)) fail('startTime', `must be seconds from 0 to ${MAX_START_TIME} (pcap seconds are 32-bit), got ${r.startTime}`);
  if (r.truth !== null && (typeof r.truth !== 'string' || r.truth === '')) fail('truth', 'must be a file name');
  if (r.truth !== null && r.truth === r.out) fail('truth', 'must differ from the pcap file');
  return r;
}

// ---------------------------------------------------------------------------------------------
// Byte helpers: host/gen/bytes.ts

/** Sum of the big-endian 16-bit words of b[start, start+len) (start even relative to the L4 header). */
function wordSum(b: Uint8Array, start: number, len: number): number {
  let s = 0;
  const end = start + len;
  let i = start;
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return s;
}

const hex8 = (v: number) => (v >>> 0).toString(16).toUpperCase().padStart(8, '0');

/** 32-bit bijection (xor-shift-multiply, every step invertible): distinct inputs, distinct outputs. */
function permute32(x: number, key: number): number {
  x = (x ^ key) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Text of an address given as one (IPv4) or four (IPv6) 32-bit words; IPv6 as RFC 5952. */
function formatAddress(words: number[]): string {
  if (words.length === 1) {
    const x = words[0];
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  }
  const g: number[] = [];
  for (const w of words) g.push(w >>> 16, w & 0xffff);
  // the longest run (>= 2) of zero groups becomes ::
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const h = (x: number[]) => x.map((v) => v.toString(16)).join(':');
  return best < 0 ? h(g) : `${h(g.slice(0, best))}::${h(g.slice(best + bestLen))}`;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

// ---------------------------------------------------------------------------------------------
// H.264 parameter sets and slice headers (Exp-Golomb bit writer)

class Bits {
  bytes: number[] = [];
  private cur = 0;
  private n = 0;
  u(bits: number, v: number): this {
    for (let i = bits - 1; i >= 0; i--) {
      this.cur = (this.cur << 1) | ((v >>> i) & 1);
      if (++this.n === 8) {
        this.bytes.push(this.cur);
        this.cur = 0;
        this.n = 0;
      }
    }
    return this;
  }
  ue(v: number): this {
    const x = v + 1;
    const len = 32 - Math.clz32(x);
    return this.u(len - 1, 0).u(len, x);
  }
  se(v: number): this {
    return this.ue(v <= 0 ? -2 * v : 2 * v - 1);
  }
  /** rbsp_trailing_bits: a one, then zeros to the byte boundary. */
  trailing(): number[] {
    this.u(1, 1);
    while (this.n !== 0) this.u(1, 0);
    return this.bytes;
  }
  /** Pads with `fill` bits to the byte boundary (slice data follows). */
  align(fill: number): number[] {
    while (this.n !== 0) this.u(1, fill);
    return this.bytes;
  }
}

const LOG2_MAX_FRAME_NUM = 4; // log2_max_frame_num_minus4 = 0
// Constrained baseline, level 3.0, 640x480, POC type 2, one reference frame, no VUI.
const SPS = [0x67, 66, 0xc0, 30, ...new Bits().ue(0).ue(0).ue(2).ue(1).u(1, 0).ue(39).ue(29).u(1, 1).u(1, 1).u(1, 0).u(1, 0).trailing()];
const PPS = [0x68, ...new Bits().ue(0).ue(0).u(1, 0).u(1, 0).ue(0).ue(0).ue(0).u(1, 0).u(2, 0).se(0).se(0).se(0).u(1, 1).u(1, 0).u(1, 0).trailing()];
const SPROP = `${Buffer.from(SPS).toString('base64')},${Buffer.from(PPS).toString('base64')}`;
const PROFILE_LEVEL_ID = '42c01e';

/** Slice header bytes (3) of an IDR I slice (frame_num 0) or a P slice with `frameNum`. */
function sliceHeader(idr: boolean, frameNum: number): number[] {
  const w = new Bits().ue(0); // first_mb_in_slice
  if (idr) {
    w.ue(7).ue(0).u(LOG2_MAX_FRAME_NUM, 0).ue(0); // slice_type I (all), pps 0, frame_num, idr_pic_id
    w.u(1, 0).u(1, 0); // dec_ref_pic_marking: no_output_of_prior_pics, long_term_reference
  } else {
    w.ue(5).ue(0).u(LOG2_MAX_FRAME_NUM, frameNum); // slice_type P (all), pps 0, frame_num
    w.u(1, 0).u(1, 0).u(1, 0); // num_ref_idx_active_override, ref_pic_list_modification_l0, adaptive_ref_pic_marking
  }
  w.se(0).ue(0).se(0).se(0); // slice_qp_delta, disable_deblocking_filter_idc, alpha, beta
  return w.align(1);
}

/** Bytes at the start of an H.264 RTP payload, with their 16-bit word sum (even length). */
interface NalHead {
  bytes: number[];
  sum: number;
}
const nalHead = (bytes: number[]): NalHead => ({ bytes, sum: bytes.reduce((s, x, i) => s + (i & 1 ? x : x << 8), 0) });
/** Payload heads of one kind of frame: single NAL unit (4 bytes), FU-A start (6), middle (2), end (2). */
function h264Heads(idr: boolean, frameNum: number) {
  const nal = idr ? 0x65 : 0x41; // NRI 3 / 2, type 5 (IDR slice) / 1 (non-IDR slice)
  const type = nal & 0x1f;
  const fu = (nal & 0x60) | 28;
  const slice = sliceHeader(idr, frameNum);
  return {
    single: nalHead([nal, ...slice]),
    start: nalHead([fu, 0x80 | type, ...slice, 0x9a]),
    middle: nalHead([fu, type]),
    end: nalHead([fu, 0x40 | type]),
  };
}
const H264_IDR = h264Heads(true, 0);
const H264_P = Array.from({ length: 1 << LOG2_MAX_FRAME_NUM }, (_, fn) => h264Heads(false, fn)); // by frame_num

// ---------------------------------------------------------------------------------------------
// Constants

const CLIENT_WINDOW = 2048; // x 128 (window scale 7): 256 KiB
const SERVER_WINDOW = 509; // x 128
const WSCALE = 7;
const DELAYED_ACK_US = 40_000;
const MAX_RTP_PAYLOAD = 1400;
const MAX_RTSP_MESSAGE = 1440; // one segment (IPv6 MSS)
const KEEPALIVE_US = 30_000_000;
const KEEPALIVE_MIN_DURATION_US = 45_000_000;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const SNAPLEN = 262144;
const MAX_RECORD = 16 + 2048; // record header + the largest frame (< 1518 bytes)
const STAGE_BYTES = 4 << 20; // records are built in place here, then written out in big chunks
const BIN_BYTES = 1 << 16; // random bytes (video, audio)
const TXT_BYTES = 1 << 14; // XML text (metadata)
const TXT_OFF = BIN_BYTES;
const POOL_BYTES = BIN_BYTES + TXT_BYTES; // the pool sits at the start of Gen.b, the staging area after it

const CLIENT_TCP_FIRST = 32768; // Linux ephemeral ports 32768..60999
const CLIENT_TCP_COUNT = 61000 - 32768;
const NAT_TCP_FIRST = 1024; // NATs map to any port 1024..65535
const NAT_TCP_COUNT = 65536 - 1024;
const UDP_PAIR_FIRST = 512; // RTP ports 1024, 1026, ... 65534 (RTCP one above)
const UDP_PAIR_COUNT = 32768 - 512;
const SERVER_PAIR_FIRST = 10000; // server RTP ports 20000 .. 65534 (even), unique among live tracks
const SERVER_PAIR_COUNT = 32768 - 10000;

const NTP_UNIX_OFFSET = 2208988800;

interface Flavour {
  ua: string;
  transport: string; // request transport before client_port=
}
const FLAVOURS: Flavour[] = [
  { ua: 'Lavf59.27.100', transport: 'RTP/AVP/UDP;unicast;client_port=' },
  { ua: 'GStreamer/1.22.0', transport: 'RTP/AVP;unicast;client_port=' },
  { ua: 'LibVLC/3.0.18 (LIVE555 Streaming Media v2016.11.28)', transport: 'RTP/AVP;unicast;client_port=' },
];
const SERVER_HEADER = 'sessionlb-rtsp/0.1';
const PUBLIC = 'OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, TEARDOWN';

const KIND_VIDEO = 0;
const KIND_AUDIO = 1;
const KIND_META = 2;
const KIND_NAMES = ['video', 'audio', 'metadata'];
const KIND_PT = [96, 0, 107];
const KIND_CLOCK = [90000, 8000, 90000];

const XML_TEXT =
  '<?xml version="1.0" encoding="UTF-8"?><tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema">' +
  '<tt:VideoAnalytics><tt:Frame UtcTime="2023-11-14T22:13:20.000Z"><tt:Object ObjectId="12"><tt:Appearance>' +
  '<tt:Shape><tt:BoundingBox left="0.31" top="0.42" right="0.45" bottom="0.77"/><tt:CenterOfGravity x="0.38" y="0.6"/>' +
  '</tt:Shape><tt:Class><tt:Type Likelihood="0.87">Human</tt:Type></tt:Class></tt:Appearance></tt:Object></tt:Frame>' +
  '</tt:VideoAnalytics><tt:Event><wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">' +
  'tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2023-11-14T22:13:20.000Z" PropertyOperation="Changed">' +
  '<tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/></tt:Source>' +
  '<tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>\n';

// ---------------------------------------------------------------------------------------------
// Event streams and the priority queue

interface Stream {
  t: number; // microseconds since the trace start of the next event
  n: number; // tie-break: push order
  /** Emits the event at `t`; returns true (with `t` moved on) if the stream has more. */
  fire(g: Gen): boolean;
}

/**
 * Binary min-heap of streams keyed by (t, push order). Keys live in typed arrays, so comparing
 * never touches the (differently shaped) stream objects.
 */
class Heap {
  private kt = new Float64Array(1024);
  private kn = new Float64Array(1024);
  private st: Stream[] = [];
  private len = 0;
  private count = 0;
  get size(): number {
    return this.len;
  }
  push(s: Stream): void {
    const t = s.t;
    const n = this.count++;
    s.n = n;
    if (this.len === this.kt.length) {
      const kt = new Float64Array(2 * this.len);
      const kn = new Float64Array(2 * this.len);
      kt.set(this.kt);
      kn.set(this.kn);
      this.kt = kt;
      this.kn = kn;
    }
    const kt = this.kt;
    const kn = this.kn;
    const st = this.st;
    let i = this.len++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = kt[p];
      if (pt < t || (pt === t && kn[p] < n)) break;
      kt[i] = pt;
      kn[i] = kn[p];
      st[i] = st[p];
      i = p;
    }
    kt[i] = t;
    kn[i] = n;
    st[i] = s;
  }
  pop(): Stream {
    const kt = this.kt;
    const kn = this.kn;
    const st = this.st;
    const top = st[0];
    const last = --this.len;
    const t = kt[last];
    const n = kn[last];
    const s = st[last];
    st[last] = undefined as unknown as Stream;
    if (last > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= last) break;
        if (c + 1 < last && (kt[c + 1] < kt[c] || (kt[c + 1] === kt[c] && kn[c + 1] < kn[c]))) c++;
        if (t < kt[c] || (t === kt[c] && n < kn[c])) break;
        kt[i] = kt[c];
        kn[i] = kn[c];
        st[i] = st[c];
        i = c;
      }
      kt[i] = t;
      kn[i] = n;
      st[i] = s;
    }
    return top;
  }
}

// ---------------------------------------------------------------------------------------------
// Sessions

class Track {
  kind: number;
  pt: number;
  clock: number;
  ssrc: number; // the VIP's SSRC
  cssrc: number; // the client's RTCP SSRC
  seq0: number;
  ts0: number;
  seq: number; // next sequence number (unwrapped)
  cport = 0; // client RTP port (even), 0 when interleaved
  sport = 0; // server RTP port (even)
  channel: number; // interleaved RTP channel (RTCP: channel + 1)
  pkts = 0; // RTP packets sent (for SR)
  octets = 0; // RTP payload octets sent
  lastSrNtp = 0; // middle 32 bits of the last SR's NTP time
  lastSrUs = -1;
  // packet counts per UDP flow (truth)
  rtpS2C = 0;
  rtpC2S = 0;
  rtcpS2C = 0;
  rtcpC2S = 0;
  rtpSum = 0; // pseudo-header + ports sum of the RTP flow (same both ways)
  rtcpSum = 0;
  constructor(kind: number, index: number, rng: Rng) {
    this.kind = kind;
    this.pt = KIND_PT[kind];
    this.clock = KIND_CLOCK[kind];
    this.ssrc = rng.u32();
    this.cssrc = rng.u32();
    this.seq0 = rng.u32() & 0xffff;
    this.seq = this.seq0;
    this.ts0 = rng.u32();
    this.channel = 2 * index;
  }
}

/** Per-session TCP state; sequence numbers relative to the ISNs (SYN = 0). */
class Conn {
  cIsn: number;
  sIsn: number;
  cNext = 0;
  sNext = 0;
  cAcked = 0; // last ack the client sent (relative server seq)
  sAcked = 0; // last ack the VIP sent
  cSegs = 0; // VIP data segments not yet acknowledged by the client
  closed = false;
  // VIP transmissions the client has not seen yet (capture time, seq after them)
  ringT: number[] = [];
  ringSeq: number[] = [];
  ringHead = 0;
  cAckable = 0; // what the client can acknowledge (what reached it)
  constructor(rng: Rng) {
    this.cIsn = rng.u32();
    this.sIsn = rng.u32();
  }
}

class Session {
  readonly idx: number;
  readonly rng: Rng;
  addr = 0; // address index (clients first, then NAT addresses)
  nat = false;
  interleaved = false;
  flavour = FLAVOURS[0];
  sid = '';
  rttUs = 0;
  durUs = 0;
  cport = 0; // TCP source port
  tracks: Track[] = [];
  conn!: Conn;
  cseq = 0;
  ipIdC = 0;
  ipIdS = 0;
  labelC = 0; // IPv6 flow labels
  labelS = 0;
  ctlSum = 0; // pseudo-header + ports sum of the control connection
  addrSum = 0;
  ctrlC2S = 0;
  ctrlS2C = 0;
  startUs = 0;
  endUs = 0;
  url = '';
  cname = ''; // the client's RTCP CNAME
  scname = ''; // the server's
  requests: Record<string, number> = {};
  setups: { url: string; req: string; rep: string }[] = [];
  playUs = 0; // PLAY reply time
  teardownUs = 0; // TEARDOWN arrival
  constructor(idx: number, seed: number) {
    this.idx = idx;
    this.rng = new Rng(seed);
  }
}

// ---------------------------------------------------------------------------------------------
// The generator

class Gen {
  readonly o: Resolved;
  readonly rng: Rng;
  readonly b: Buffer;
  readonly prefix: Float64Array;
  private fd = -1;
  private pos = POOL_BYTES; // where the next record starts in b
  /** Start of the frame being built in b (its record header is the 16 bytes before). */
  f = POOL_BYTES + 16;
  readonly heap = new Heap();
  readonly v6: boolean;
  readonly vipWords: number[];
  readonly vipText: string;
  readonly vipUrlHost: string;
  readonly startUs: number;
  now = 0;
  // addresses: direct clients [0, C), NAT addresses [C, C + A)
  readonly aWords: Uint32Array;
  readonly aTtl: Uint8Array;
  readonly aMac: Uint8Array; // 6 bytes each
  readonly aTcpK: Uint32Array;
  readonly aTcpStart: Uint32Array;
  readonly aTcpStride: Uint32Array;
  readonly aUdpK: Uint32Array;
  readonly aUdpStart: Uint32Array;
  readonly aUdpStride: Uint32Array;
  // the VIP's RTP/RTCP port pairs: a random walk, skipping pairs of live tracks
  private readonly serverPairUse = new Uint16Array(SERVER_PAIR_COUNT);
  private serverPairK = 0;
  private readonly serverPairStart: number;
  private readonly serverPairStride: number;
  // counters
  natLeft: number;
  ilLeft: number;
  natSessions = 0;
  ilSessions = 0;
  private directK = 0; // non-NAT sessions so far (they take the client addresses in turn)
  trackCount = 0;
  live = 0;
  peakLive = 0;
  packets = 0;
  controlPackets = 0;
  rtpPackets = 0;
  rtcpPackets = 0;
  wireBytes = 0;
  lastUs = 0;
  // truth
  private truthFd = -1;
  private truthBuf: string[] = [];
  private truthLen = 0;
  private truthPending = new Map<number, string>();
  private truthNext = 0;
  private sidKey: number;

  constructor(o: Resolved) {
    this.o = o;
    this.rng = new Rng(o.seed);
    const rng = this.rng;
    const vip = parseAddress(o.vip)!;
    this.v6 = vip.family === 6;
    this.vipWords = vip.words;
    this.vipText = formatAddress(vip.words);
    this.vipUrlHost = this.v6 ? `[${this.vipText}]` : this.vipText;
    this.startUs = Math.round(o.startTime * 1e6);
    this.sidKey = rng.u32();

    // addresses
    const C = o.clients;
    const A = o.natAddresses;
    const n = C + A;
    this.aWords = new Uint32Array(4 * n);
    this.aTtl = new Uint8Array(n);
    this.aMac = new Uint8Array(6 * n);
    this.aTcpK = new Uint32Array(n);
    this.aTcpStart = new Uint32Array(n);
    this.aTcpStride = new Uint32Array(n);
    this.aUdpK = new Uint32Array(n);
    this.aUdpStart = new Uint32Array(n);
    this.aUdpStride = new Uint32Array(n);
    const pick = new Int32Array(RTSP_MAX_CLIENTS);
    for (let i = 0; i < RTSP_MAX_CLIENTS; i++) pick[i] = i + 1;
    const stride = (m: number) => {
      for (;;) {
        const s = 1 + rng.int(m - 1);
        if (gcd(s, m) === 1) return s;
      }
    };
    for (let i = 0; i < n; i++) {
      const nat = i >= C;
      const w = 4 * i;
      if (!nat) {
        const j = i + rng.int(RTSP_MAX_CLIENTS - i);
        const t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
        if (this.v6) {
          this.aWords[w] = 0x20010db8;
          this.aWords[w + 1] = (0x00010000 | (rng.u32() & 0xffff)) >>> 0;
          this.aWords[w + 2] = rng.u32();
          this.aWords[w + 3] = rng.u32();
        } else this.aWords[w] = (0xc6120000 + pick[i]) >>> 0;
      } else {
        const k = i - C + 1;
        if (this.v6) {
          this.aWords[w] = 0x20010db8;
          this.aWords[w + 1] = 0xffff0000;
          this.aWords[w + 2] = 0;
          this.aWords[w + 3] = k;
        } else this.aWords[w] = (0xcb007100 + k) >>> 0;
      }
      this.aTtl[i] = (rng.int(3) === 0 ? 128 : 64) - rng.range(3, 20);
      const m = 6 * i;
      const idx = nat ? i - C : i;
      this.aMac[m] = 0x02;
      this.aMac[m + 2] = idx >>> 16;
      this.aMac[m + 3] = (idx >>> 8) & 0xff;
      this.aMac[m + 4] = nat ? 0xbb : 0xaa;
      this.aMac[m + 5] = idx & 0xff;
      const tcpM = nat ? NAT_TCP_COUNT : CLIENT_TCP_COUNT;
      this.aTcpStart[i] = rng.int(tcpM);
      this.aTcpStride[i] = stride(tcpM);
      this.aUdpStart[i] = rng.int(UDP_PAIR_COUNT);
      this.aUdpStride[i] = stride(UDP_PAIR_COUNT);
    }
    this.serverPairStart = rng.int(SERVER_PAIR_COUNT);
    this.serverPairStride = stride(SERVER_PAIR_COUNT);
    this.natLeft = Math.round(o.sessions * o.natShare);
    this.ilLeft = Math.round(o.sessions * o.interleavedShare);

    // payload pool: random bytes, then XML text; prefix sums of its 16-bit words
    this.b = Buffer.alloc(POOL_BYTES + STAGE_BYTES);
    const b = this.b;
    for (let i = 0; i < BIN_BYTES; i += 4) put32(b, i, rng.u32());
    for (let i = 0; i < TXT_BYTES; i++) b[TXT_OFF + i] = XML_TEXT.charCodeAt(i % XML_TEXT.length);
    this.prefix = new Float64Array(POOL_BYTES / 2 + 1);
    for (let k = 0; k < POOL_BYTES / 2; k++) this.prefix[k + 1] = this.prefix[k] + ((b[2 * k] << 8) | b[2 * k + 1]);

    // truth file first (a bad truth path leaves no pcap behind), then the pcap file header:
    // microsecond timestamps, Ethernet
    if (o.truth !== null) this.truthFd = openSync(o.truth, 'w');
    try {
      this.fd = openSync(o.out, 'w');
    } catch (e) {
      this.closeOnError();
      throw e;
    }
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(1, 20);
    this.writeAll(h, 0, 24);
  }

  private writeAll(buf: Buffer, off: number, len: number): void {
    let done = 0;
    while (done < len) done += writeSync(this.fd, buf, off + done, len - done);
  }

  /** Makes room for one more record in the staging area (called before every event). */
  room(): void {
    if (this.pos + MAX_RECORD > this.b.length) {
      this.writeAll(this.b, POOL_BYTES, this.pos - POOL_BYTES);
      this.pos = POOL_BYTES;
      this.f = this.pos + 16;
    }
  }

  /** Writes what is staged and closes the files (idempotent; quiet when `failing`). */
  close(failing = false): void {
    if (this.fd >= 0) {
      try {
        if (!failing) this.writeAll(this.b, POOL_BYTES, this.pos - POOL_BYTES);
      } finally {
        closeSync(this.fd);
        this.fd = -1;
      }
    }
    if (failing) this.closeOnError();
  }

  // --- ports ------------------------------------------------------------------------------

  private tcpPort(a: number): number {
    const nat = a >= this.o.clients;
    const m = nat ? NAT_TCP_COUNT : CLIENT_TCP_COUNT;
    const k = this.aTcpK[a]++;
    return (nat ? NAT_TCP_FIRST : CLIENT_TCP_FIRST) + ((this.aTcpStart[a] + k * this.aTcpStride[a]) % m);
  }

  private udpPair(a: number): number {
    const k = this.aUdpK[a]++;
    return 2 * (UDP_PAIR_FIRST + ((this.aUdpStart[a] + k * this.aUdpStride[a]) % UDP_PAIR_COUNT));
  }

  /** A server RTP port (even) not used by a live track, if there is one. */
  private serverPair(): number {
    let p = 0;
    for (let tries = 0; tries < SERVER_PAIR_COUNT; tries++) {
      p = (this.serverPairStart + this.serverPairK++ * this.serverPairStride) % SERVER_PAIR_COUNT;
      if (this.serverPairK === SERVER_PAIR_COUNT) this.serverPairK = 0;
      if (this.serverPairUse[p] === 0) break;
    }
    this.serverPairUse[p]++;
    return 2 * (SERVER_PAIR_FIRST + p);
  }

  addrText(a: number): string {
    const w = 4 * a;
    return formatAddress(Array.from(this.aWords.subarray(w, w + (this.v6 ? 4 : 1))));
  }

  // --- sessions ---------------------------------------------------------------------------

  /** Creates session `idx` starting now and schedules its control stream. */
  startSession(idx: number): void {
    const o = this.o;
    const g = this.rng;
    const left = o.sessions - idx;
    const nat = g.int(left) < this.natLeft;
    if (nat) this.natLeft--;
    const il = g.int(left) < this.ilLeft;
    if (il) this.ilLeft--;
    const s = new Session(idx, g.u32() * 2 ** 21 + (g.u32() >>> 11));
    const r = s.rng;
    s.nat = nat;
    s.interleaved = il;
    s.addr = nat ? o.clients + r.int(o.natAddresses) : this.directK++ % o.clients;
    s.flavour = FLAVOURS[r.int(FLAVOURS.length)];
    const style = o.sessionIds === 'mixed' ? (r.int(2) === 0 ? 'hex' : 'decimal') : o.sessionIds;
    const uniq = permute32(idx, this.sidKey);
    s.sid = style === 'hex' ? hex8(r.u32()).toLowerCase() + hex8(uniq).toLowerCase() : String(uniq);
    s.rttUs = r.range(5_000, 120_000);
    const [dMin, dMax] = o.duration;
    s.durUs = Math.round((dMin + r.float() * (dMax - dMin)) * 1e6);
    s.cport = this.tcpPort(s.addr);
    s.conn = new Conn(r);
    s.ipIdC = r.u32() & 0xffff;
    s.ipIdS = r.u32() & 0xffff;
    s.labelC = r.u32() & 0xfffff;
    s.labelS = r.u32() & 0xfffff;
    s.url = `rtsp://${this.vipUrlHost}${o.port === 554 ? '' : `:${o.port}`}/live/cam${1 + r.int(64)}`;
    s.cname = `user${r.u32()}@host-${(r.u32() >>> 0).toString(16).padStart(8, '0')}`;
    s.scname = `rtsp-server@${this.vipText}`;
    const nTracks = r.range(o.tracks[0], o.tracks[1]);
    for (let k = 0; k < nTracks; k++) {
      const t = new Track(k, k, r);
      if (!il) {
        t.cport = this.udpPair(s.addr);
        t.sport = this.serverPair();
      }
      s.tracks.push(t);
    }
    // checksum constants: both addresses, then per flow ports and protocol
    let as = 0;
    for (let k = 0; k < (this.v6 ? 4 : 1); k++) as += halves(this.aWords[4 * s.addr + k]) + halves(this.vipWords[k]);
    s.addrSum = as;
    s.ctlSum = as + PROTO_TCP + s.cport + o.port;
    for (const t of s.tracks) {
      t.rtpSum = as + PROTO_UDP + t.cport + t.sport;
      t.rtcpSum = as + PROTO_UDP + t.cport + 1 + t.sport + 1;
    }
    s.startUs = this.now;
    if (nat) this.natSessions++;
    if (il) this.ilSessions++;
    this.trackCount += nTracks;
    this.live++;
    if (this.live > this.peakLive) this.peakLive = this.live;
    const c = new Control(s, this.now);
    this.heap.push(c);
  }

  endSession(s: Session): void {
    s.conn.closed = true;
    s.endUs = this.now;
    for (const t of s.tracks) if (t.sport) this.serverPairUse[t.sport / 2 - SERVER_PAIR_FIRST]--;
    this.live--;
    if (this.truthFd >= 0) {
      this.truthPending.set(s.idx, this.truthEntry(s));
      while (this.truthPending.has(this.truthNext)) {
        const e = this.truthPending.get(this.truthNext)!;
        this.truthPending.delete(this.truthNext);
        this.truthWrite((this.truthNext === 0 ? '\n' : ',\n') + e);
        this.truthNext++;
      }
    }
  }

  // --- frames -----------------------------------------------------------------------------

  /** Ethernet + IP header for a packet of session `s`; returns the L4 offset. */
  private ip(s: Session, fromClient: boolean, proto: number, l4Len: number): number {
    const b = this.b;
    const f = this.f;
    const m = 6 * s.addr;
    const cm = f + (fromClient ? 6 : 0);
    const vm = f + (fromClient ? 0 : 6);
    const mac = this.aMac;
    b[cm] = mac[m];
    b[cm + 1] = 0;
    b[cm + 2] = mac[m + 2];
    b[cm + 3] = mac[m + 3];
    b[cm + 4] = mac[m + 4];
    b[cm + 5] = mac[m + 5];
    b[vm] = 0x02;
    b[vm + 1] = 0;
    b[vm + 2] = 0;
    b[vm + 3] = 0;
    b[vm + 4] = 0;
    b[vm + 5] = 0xfe;
    const aw = this.aWords;
    const a = 4 * s.addr;
    if (this.v6) {
      put16(b, f + 12, ETH_IPV6);
      put32(b, f + 14, (0x60000000 | (fromClient ? s.labelC : s.labelS)) >>> 0);
      put16(b, f + 18, l4Len);
      b[f + 20] = proto;
      b[f + 21] = fromClient ? this.aTtl[s.addr] : SERVER_TTL;
      const so = f + (fromClient ? 22 : 38);
      const d = f + (fromClient ? 38 : 22);
      const v = this.vipWords;
      for (let k = 0; k < 4; k++) {
        put32(b, so + 4 * k, aw[a + k]);
        put32(b, d + 4 * k, v[k]);
      }
      return f + 54;
    }
    put16(b, f + 12, ETH_IPV4);
    const total = 20 + l4Len;
    const ttl = fromClient ? this.aTtl[s.addr] : SERVER_TTL;
    const id = fromClient ? s.ipIdC : s.ipIdS;
    if (fromClient) s.ipIdC = (id + 1) & 0xffff;
    else s.ipIdS = (id + 1) & 0xffff;
    b[f + 14] = 0x45;
    b[f + 15] = 0;
    put16(b, f + 16, total);
    put16(b, f + 18, id);
    put16(b, f + 20, 0x4000);
    b[f + 22] = ttl;
    b[f + 23] = proto;
    put32(b, f + (fromClient ? 26 : 30), aw[a]);
    put32(b, f + (fromClient ? 30 : 26), this.vipWords[0]);
    put16(b, f + 24, ~fold(0x4500 + total + id + 0x4000 + ((ttl << 8) | proto) + s.addrSum) & 0xffff);
    return f + 34;
  }

  /** Completes the record of the frame at f (ending at `end`) and moves on. */
  private record(end: number): void {
    const b = this.b;
    const len = end - this.f;
    const tsUs = this.startUs + Math.floor(this.now);
    const sec = Math.floor(tsUs / 1e6);
    const usec = tsUs - sec * 1e6;
    const o = this.pos;
    b[o] = sec;
    b[o + 1] = sec >>> 8;
    b[o + 2] = sec >>> 16;
    b[o + 3] = sec >>> 24;
    b[o + 4] = usec;
    b[o + 5] = usec >>> 8;
    b[o + 6] = usec >>> 16;
    b[o + 7] = 0;
    b[o + 8] = len;
    b[o + 9] = len >>> 8;
    b[o + 10] = 0;
    b[o + 11] = 0;
    b[o + 12] = len;
    b[o + 13] = len >>> 8;
    b[o + 14] = 0;
    b[o + 15] = 0;
    this.pos = end;
    this.f = end + 16;
    this.packets++;
    this.wireBytes += len;
    this.lastUs = tsUs;
  }

  /** Offset of the UDP payload. */
  udpPayloadAt(): number {
    return this.f + (this.v6 ? 62 : 42);
  }

  /** Offset of the TCP payload of a non-SYN segment. */
  tcpPayloadAt(): number {
    return this.f + (this.v6 ? 74 : 54);
  }

  /** Sends a UDP datagram whose payload (payLen bytes, word sum paySum) is already in place. */
  udp(s: Session, fromClient: boolean, cport: number, sport: number, flowSum: number, payLen: number, paySum: number): void {
    const l4Len = 8 + payLen;
    const l4 = this.ip(s, fromClient, PROTO_UDP, l4Len);
    const b = this.b;
    put16(b, l4, fromClient ? cport : sport);
    put16(b, l4 + 2, fromClient ? sport : cport);
    put16(b, l4 + 4, l4Len);
    let c = ~fold(flowSum + 2 * l4Len + paySum) & 0xffff;
    if (c === 0) c = 0xffff;
    put16(b, l4 + 6, c);
    this.record(l4 + l4Len);
  }

  /** Client's view of the VIP's stream now: what was sent at least one RTT ago. */
  private clientAckable(s: Session): number {
    const c = s.conn;
    const limit = this.now - s.rttUs;
    while (c.ringHead < c.ringT.length && c.ringT[c.ringHead] <= limit) {
      c.cAckable = c.ringSeq[c.ringHead];
      c.ringHead++;
    }
    if (c.ringHead > 256) {
      c.ringT.splice(0, c.ringHead);
      c.ringSeq.splice(0, c.ringHead);
      c.ringHead = 0;
    }
    return c.cAckable;
  }

  /** Sends a TCP segment of the control connection; the payload (if any) is already in place. */
  tcp(s: Session, fromClient: boolean, flags: number, payLen: number, paySum: number): void {
    const c = s.conn;
    const syn = (flags & F_SYN) !== 0;
    const hl = syn ? 32 : 20;
    const l4Len = hl + payLen;
    const l4 = this.ip(s, fromClient, PROTO_TCP, l4Len);
    const b = this.b;
    let seq: number;
    let ack = 0;
    let win: number;
    if (fromClient) {
      seq = c.cNext;
      if (flags & F_ACK) {
        ack = this.clientAckable(s);
        c.cAcked = ack;
        if (ack === c.sNext) c.cSegs = 0;
      }
      win = syn ? SYN_WINDOW : CLIENT_WINDOW;
      c.cNext += payLen + (flags & (F_SYN | F_FIN) ? 1 : 0);
      if (payLen > 0) this.heap.push(new AckTimer(s, false, this.now + DELAYED_ACK_US));
    } else {
      seq = c.sNext;
      ack = c.cNext;
      c.sAcked = ack;
      win = syn ? SYNACK_WINDOW : SERVER_WINDOW;
      c.sNext += payLen + (flags & (F_SYN | F_FIN) ? 1 : 0);
      c.ringT.push(this.now);
      c.ringSeq.push(c.sNext);
      if (payLen > 0) {
        // the client acknowledges every second segment at once, a lone one after 40 ms
        if (++c.cSegs >= 2) {
          c.cSegs = 0;
          this.heap.push(new AckTimer(s, true, this.now + s.rttUs));
        } else this.heap.push(new AckTimer(s, true, this.now + s.rttUs + DELAYED_ACK_US));
      }
    }
    const seqW = ((fromClient ? c.cIsn : c.sIsn) + seq) >>> 0;
    const ackW = flags & F_ACK ? ((fromClient ? c.sIsn : c.cIsn) + ack) >>> 0 : 0;
    const offFlags = ((hl >> 2) << 12) | flags;
    put16(b, l4, fromClient ? s.cport : this.o.port);
    put16(b, l4 + 2, fromClient ? this.o.port : s.cport);
    put32(b, l4 + 4, seqW);
    put32(b, l4 + 8, ackW);
    put16(b, l4 + 12, offFlags);
    put16(b, l4 + 14, win);
    put16(b, l4 + 18, 0);
    let sum = s.ctlSum + l4Len + halves(seqW) + halves(ackW) + offFlags + win + paySum;
    if (syn) {
      // MSS, NOP, WS, SACK permitted, NOP, NOP
      const mss = this.v6 ? 1440 : 1460;
      const opt = [0x02, 0x04, mss >> 8, mss & 0xff, 0x01, 0x03, 0x03, WSCALE, 0x04, 0x02, 0x01, 0x01];
      for (let k = 0; k < 12; k++) b[l4 + 20 + k] = opt[k];
      sum += wordSum(b, l4 + 20, 12);
    }
    put16(b, l4 + 16, ~fold(sum) & 0xffff);
    if (fromClient) s.ctrlC2S++;
    else s.ctrlS2C++;
    this.controlPackets++;
    this.record(l4 + l4Len);
  }

  /** A pure ACK if it acknowledges something new (no duplicate ACKs). */
  ackIfNew(s: Session, fromClient: boolean): void {
    const c = s.conn;
    if (c.closed) return;
    if (fromClient) {
      if (this.clientAckable(s) > c.cAcked) this.tcp(s, true, F_ACK, 0, 0);
    } else if (c.cNext > c.sAcked) this.tcp(s, false, F_ACK, 0, 0);
  }

  /** Sends an RTSP message (text) on the control connection. */
  rtsp(s: Session, fromClient: boolean, text: string): void {
    const at = this.tcpPayloadAt();
    if (text.length > MAX_RTSP_MESSAGE) throw new Error(`internal: RTSP message of ${text.length} bytes does not fit one segment`);
    const len = this.b.write(text, at, 'latin1');
    this.tcp(s, fromClient, F_PSH | F_ACK, len, wordSum(this.b, at, len));
  }

  /**
   * Sends RTP or RTCP bytes already written at mediaAt(s) + 0 (len bytes, word sum `sum`): over
   * UDP between the track's ports, or as an interleaved frame on the control connection.
   */
  media(s: Session, t: Track, fromClient: boolean, rtcp: boolean, len: number, sum: number): void {
    if (s.interleaved) {
      const at = this.tcpPayloadAt();
      const ch = t.channel + (rtcp ? 1 : 0);
      const b = this.b;
      b[at] = 0x24; // '$'
      b[at + 1] = ch;
      put16(b, at + 2, len);
      this.tcp(s, fromClient, F_PSH | F_ACK, len + 4, sum + ((0x24 << 8) | ch) + len);
    } else if (rtcp) {
      this.udp(s, fromClient, t.cport + 1, t.sport + 1, t.rtcpSum, len, sum);
      if (fromClient) t.rtcpC2S++;
      else t.rtcpS2C++;
    } else {
      this.udp(s, fromClient, t.cport, t.sport, t.rtpSum, len, sum);
      if (fromClient) t.rtpC2S++;
      else t.rtpS2C++;
    }
    if (rtcp) this.rtcpPackets++;
    else this.rtpPackets++;
  }

  /** Where media bytes (RTP/RTCP) of session s are written before media(). */
  mediaAt(s: Session): number {
    return s.interleaved ? this.tcpPayloadAt() + 4 : this.udpPayloadAt();
  }

  /** Word sum of pool bytes [off, off + len), off even (pool-relative). */
  poolSum(off: number, len: number): number {
    const w = off >> 1;
    const nw = len >> 1;
    let s = this.prefix[w + nw] - this.prefix[w];
    if (len & 1) s += this.b[off + len - 1] << 8;
    return s;
  }

  /** Copies `len` pool bytes from region [lo, lo + size) to `at` (even); returns their word sum. */
  poolCopy(r: Rng, lo: number, size: number, at: number, len: number): number {
    const off = lo + 2 * r.int(((size - len) >> 1) + 1);
    this.b.copyWithin(at, off, off + len);
    return this.poolSum(off, len);
  }

  /** NTP timestamp (seconds since 1900 as [msw, lsw]) of trace time `us`. */
  ntp(us: number): [number, number] {
    const t = this.startUs + Math.floor(us);
    const sec = Math.floor(t / 1e6);
    const frac = t - sec * 1e6;
    return [(sec + NTP_UNIX_OFFSET) >>> 0, Math.floor((frac * 4294967296) / 1e6) >>> 0];
  }

  httpDate(us: number): string {
    return new Date(Math.floor((this.startUs + Math.floor(us)) / 1000)).toUTCString();
  }

  // --- truth ------------------------------------------------------------------------------

  private truthWrite(s: string): void {
    this.truthBuf.push(s);
    this.truthLen += s.length;
    if (this.truthLen > 1 << 20) this.truthFlush();
  }

  private truthFlush(): void {
    if (this.truthFd < 0 || this.truthBuf.length === 0) return;
    const data = Buffer.from(this.truthBuf.join(''), 'utf8');
    let done = 0;
    while (done < data.length) done += writeSync(this.truthFd, data, done, data.length - done);
    this.truthBuf = [];
    this.truthLen = 0;
  }

  truthHeader(): void {
    if (this.truthFd < 0) return;
    const o = this.o;
    const head = {
      generator: 'sessionlb generate rtsp',
      pcap: o.out,
      options: {
        sessions: o.sessions,
        seed: o.seed,
        vip: o.vip,
        port: o.port,
        clients: o.clients,
        natShare: o.natShare,
        natAddresses: o.natAddresses,
        arrivalRate: o.arrivalRate,
        duration: o.duration,
        rtpRate: o.rtpRate,
        tracks: o.tracks,
        interleavedShare: o.interleavedShare,
        sessionIds: o.sessionIds,
        startTime: o.startTime,
      },
      server_ip: this.vipText,
      rtsp_port: o.port,
      nat_addresses: Array.from({ length: o.natAddresses }, (_, i) => this.addrText(o.clients + i)),
    };
    const j = JSON.stringify(head);
    this.truthWrite(j.slice(0, -1) + ',"sessions":[');
  }

  truthFooter(summary: object): void {
    if (this.truthFd < 0) return;
    this.truthWrite(`\n],"summary":${JSON.stringify(summary)}}\n`);
    this.truthFlush();
    closeSync(this.truthFd);
    this.truthFd = -1;
  }

  closeOnError(): void {
    if (this.truthFd >= 0) {
      try {
        closeSync(this.truthFd);
      } catch {
        // already failing
      }
      this.truthFd = -1;
    }
  }

  private truthEntry(s: Session): string {
    const client = this.addrText(s.addr);
    const vip = this.vipText;
    const port = this.o.port;
    const ft = (proto: string, src: string, sport: number, dst: string, dport: number) => ({ proto, src, sport, dst, dport });
    const media: object[] = [];
    let mediaPkts = 0;
    if (!s.interleaved) {
      for (let k = 0; k < s.tracks.length; k++) {
        const t = s.tracks[k];
        const flows: [string, string, boolean, number, number, number][] = [
          ['rtp', 'server_to_client', false, t.sport, t.cport, t.rtpS2C],
          ['rtcp', 'server_to_client', false, t.sport + 1, t.cport + 1, t.rtcpS2C],
          ['rtp', 'client_to_server', true, t.cport, t.sport, t.rtpC2S],
          ['rtcp', 'client_to_server', true, t.cport + 1, t.sport + 1, t.rtcpC2S],
        ];
        for (const [kind, direction, fromClient, sp, dp, packets] of flows) {
          media.push({
            five_tuple: fromClient ? ft('udp', client, sp, vip, dp) : ft('udp', vip, sp, client, dp),
            kind,
            direction,
            track: k,
            packets,
          });
          mediaPkts += packets;
        }
      }
    }
    const e = {
      index: s.idx,
      session: s.sid,
      client_ip: client,
      server_ip: vip,
      nat: s.nat,
      interleaved: s.interleaved,
      user_agent: s.flavour.ua,
      url: s.url,
      start_s: +(s.startUs / 1e6).toFixed(6),
      end_s: +(s.endUs / 1e6).toFixed(6),
      play_s: +(s.playUs / 1e6).toFixed(6),
      teardown_s: +(s.teardownUs / 1e6).toFixed(6),
      requests_by_method: s.requests,
      tracks: s.tracks.map((t, k) => ({
        track: k,
        media: KIND_NAMES[t.kind],
        payload_type: t.pt,
        clock_rate: t.clock,
        ssrc: hex8(t.ssrc),
        first_seq: t.seq0,
        first_rtptime: t.ts0,
        rtp_packets: t.pkts,
        ...(s.interleaved ? { interleaved: [t.channel, t.channel + 1] } : { client_port: [t.cport, t.cport + 1], server_port: [t.sport, t.sport + 1] }),
      })),
      setups: s.setups.map((x) => ({ url: x.url, transport_request: x.req, transport_reply: x.rep })),
      control_tcp: [{ five_tuple: ft('tcp', client, s.cport, vip, port), packets: s.ctrlC2S + s.ctrlS2C }],
      media_udp: media,
      packets: { control_tcp: s.ctrlC2S + s.ctrlS2C, media_udp: mediaPkts, total: s.ctrlC2S + s.ctrlS2C + mediaPkts },
    };
    return JSON.stringify(e);
  }
}

// ---------------------------------------------------------------------------------------------
// Streams

class Arrivals implements Stream {
  t = 0;
  n = 0;
  private next = 0;
  constructor(private readonly gapUs: number) {}
  fire(g: Gen): boolean {
    g.startSession(this.next++);
    if (this.next >= g.o.sessions) return false;
    this.t += g.rng.float() * this.gapUs;
    return true;
  }
}

class AckTimer implements Stream {
  n = 0;
  constructor(
    private readonly s: Session,
    private readonly fromClient: boolean,
    public t: number,
  ) {}
  fire(g: Gen): boolean {
    g.ackIfNew(this.s, this.fromClient);
    return false;
  }
}

// control steps
const C_SYN = 0;
const C_SYNACK = 1;
const C_ACK = 2;
const C_OPTIONS = 3;
const C_OPTIONS_REPLY = 4;
const C_DESCRIBE = 5;
const C_DESCRIBE_REPLY = 6;
const C_SETUP = 7;
const C_SETUP_REPLY = 8;
const C_PUNCH = 9;
const C_PLAY = 10;
const C_PLAY_REPLY = 11;
const C_KEEPALIVE = 12;
const C_KEEPALIVE_REPLY = 13;
const C_TEARDOWN = 14;
const C_TEARDOWN_REPLY = 15;
const C_FIN = 16;
const C_FINACK = 17;
const C_LASTACK = 18;

class Control implements Stream {
  n = 0;
  private step = C_SYN;
  private track = 0; // SETUP / punch progress
  private punch = 0;
  private nextKeepalive = 0;
  constructor(
    private readonly s: Session,
    public t: number,
  ) {}

  private think(): number {
    return this.s.rng.range(100, 1500);
  }

  private clientAfterReply(): number {
    return this.t + this.s.rttUs + this.think();
  }

  /** A request: first line, `pre` headers, CSeq, User-Agent, then Session if `session` (as ffmpeg orders them). */
  private request(g: Gen, method: string, url: string, pre: string[], session: boolean): void {
    const s = this.s;
    s.cseq++;
    s.requests[method] = (s.requests[method] ?? 0) + 1;
    const lines = [`${method} ${url} RTSP/1.0`, ...pre, `CSeq: ${s.cseq}`, `User-Agent: ${s.flavour.ua}`];
    if (session) lines.push(`Session: ${s.sid}`);
    g.rtsp(s, true, lines.join('\r\n') + '\r\n\r\n');
  }

  private reply(g: Gen, headers: string[], body = ''): void {
    const s = this.s;
    const lines = ['RTSP/1.0 200 OK', `CSeq: ${s.cseq}`, ...headers, `Server: ${SERVER_HEADER}`, `Date: ${g.httpDate(this.t)}`];
    if (body) lines.push(`Content-Length: ${body.length}`);
    g.rtsp(s, false, lines.join('\r\n') + '\r\n\r\n' + body);
  }

  private sessionHeader(): string {
    return `Session: ${this.s.sid};timeout=${RTSP_SESSION_TIMEOUT}`;
  }

  private sdp(g: Gen): string {
    const s = this.s;
    const r = s.rng;
    const ipv = g.v6 ? 'IP6' : 'IP4';
    const any = g.v6 ? '::' : '0.0.0.0';
    const l = [
      'v=0',
      `o=- ${r.u32()}${String(r.u32()).padStart(10, '0')} 1 IN ${ipv} ${g.vipText}`,
      's=Live stream',
      'i=sessionlb generated stream',
      't=0 0',
      'a=tool:sessionlb',
      'a=type:broadcast',
      'a=control:*',
      'a=range:npt=now-',
    ];
    s.tracks.forEach((t, k) => {
      if (t.kind === KIND_VIDEO) {
        l.push('m=video 0 RTP/AVP 96', `c=IN ${ipv} ${any}`, 'b=AS:2000', 'a=rtpmap:96 H264/90000', 'a=framerate:25');
        l.push(`a=fmtp:96 packetization-mode=1;profile-level-id=${PROFILE_LEVEL_ID};sprop-parameter-sets=${SPROP}`);
      } else if (t.kind === KIND_AUDIO) {
        l.push('m=audio 0 RTP/AVP 0', `c=IN ${ipv} ${any}`, 'b=AS:64', 'a=rtpmap:0 PCMU/8000');
      } else {
        l.push('m=application 0 RTP/AVP 107', `c=IN ${ipv} ${any}`, 'a=rtpmap:107 vnd.onvif.metadata/90000');
      }
      l.push(`a=control:stream=${k}`, `a=ssrc:${t.ssrc} cname:${s.scname}`);
    });
    return l.join('\r\n') + '\r\n';
  }

  private transport(t: Track, reply: boolean): string {
    const s = this.s;
    if (s.interleaved) {
      const base = `RTP/AVP/TCP;unicast;interleaved=${t.channel}-${t.channel + 1}`;
      return reply ? `${base};ssrc=${hex8(t.ssrc)};mode="PLAY"` : base;
    }
    const base = `${reply ? 'RTP/AVP;unicast;client_port=' : s.flavour.transport}${t.cport}-${t.cport + 1}`;
    return reply ? `${base};server_port=${t.sport}-${t.sport + 1};ssrc=${hex8(t.ssrc)};mode="PLAY"` : base;
  }

  fire(g: Gen): boolean {
    const s = this.s;
    const r = s.rng;
    switch (this.step) {
      case C_SYN:
        g.tcp(s, true, F_SYN, 0, 0);
        this.t += r.range(30, 120);
        this.step = C_SYNACK;
        return true;
      case C_SYNACK:
        g.tcp(s, false, F_SYN | F_ACK, 0, 0);
        this.t += s.rttUs;
        this.step = C_ACK;
        return true;
      case C_ACK:
        g.tcp(s, true, F_ACK, 0, 0);
        this.t += this.think();
        this.step = C_OPTIONS;
        return true;
      case C_OPTIONS:
        this.request(g, 'OPTIONS', s.url, [], false);
        this.t += r.range(100, 1000);
        this.step = C_OPTIONS_REPLY;
        return true;
      case C_OPTIONS_REPLY:
        this.reply(g, [`Public: ${PUBLIC}`]);
        this.t = this.clientAfterReply();
        this.step = C_DESCRIBE;
        return true;
      case C_DESCRIBE:
        this.request(g, 'DESCRIBE', s.url, ['Accept: application/sdp'], false);
        this.t += r.range(1000, 20000);
        this.step = C_DESCRIBE_REPLY;
        return true;
      case C_DESCRIBE_REPLY:
        this.reply(g, ['Content-Type: application/sdp', `Content-Base: ${s.url}/`], this.sdp(g));
        this.t = this.clientAfterReply();
        this.step = C_SETUP;
        return true;
      case C_SETUP: {
        const t = s.tracks[this.track];
        const req = this.transport(t, false);
        this.request(g, 'SETUP', `${s.url}/stream=${this.track}`, [`Transport: ${req}`], this.track > 0);
        s.setups.push({ url: `${s.url}/stream=${this.track}`, req, rep: this.transport(t, true) });
        this.t += r.range(200, 2000);
        this.step = C_SETUP_REPLY;
        return true;
      }
      case C_SETUP_REPLY: {
        const t = s.tracks[this.track];
        this.reply(g, [`Transport: ${this.transport(t, true)}`, this.sessionHeader()]);
        if (++this.track < s.tracks.length) this.step = C_SETUP;
        else if (s.interleaved) this.step = C_PLAY;
        else {
          this.t += s.rttUs + r.range(20, 100); // the punch goes out as soon as the reply is in
          this.step = C_PUNCH;
          return true;
        }
        this.t = this.clientAfterReply();
        return true;
      }
      case C_PUNCH: {
        // ffmpeg: an empty RTP packet and an empty RTCP receiver report per track
        const t = s.tracks[this.punch >> 1];
        const at = g.mediaAt(s);
        const b = g.b;
        if ((this.punch & 1) === 0) {
          b.fill(0, at, at + 12);
          b[at] = 0x80;
          g.media(s, t, true, false, 12, 0x8000);
        } else {
          b.fill(0, at, at + 8);
          b[at] = 0x80;
          b[at + 1] = 201;
          b[at + 3] = 1;
          g.media(s, t, true, true, 8, 0x80c9 + 1);
        }
        this.t += r.range(5, 25);
        if (++this.punch >= 2 * s.tracks.length) {
          this.t += r.range(10, 200);
          this.step = C_PLAY;
        }
        return true;
      }
      case C_PLAY:
        this.request(g, 'PLAY', `${s.url}/`, ['Range: npt=0.000-'], true);
        this.t += r.range(2000, 20000);
        this.step = C_PLAY_REPLY;
        return true;
      case C_PLAY_REPLY: {
        const info = s.tracks.map((t, k) => `url=${s.url}/stream=${k};seq=${t.seq0};rtptime=${t.ts0}`).join(', ');
        this.reply(g, [`RTP-Info: ${info}`, 'Range: npt=now-', this.sessionHeader()]);
        s.playUs = this.t;
        s.teardownUs = this.t + s.durUs;
        // media streams
        for (const t of s.tracks) {
          const start = this.t + r.range(100, 600);
          g.heap.push(new RtpStream(s, t, start, g.o.rtpRate));
          g.heap.push(new SrStream(s, t, this.t + r.range(500_000, 1_500_000)));
          g.heap.push(new RrStream(s, t, this.t + s.rttUs + r.range(500_000, 1_500_000)));
        }
        if (s.durUs > KEEPALIVE_MIN_DURATION_US) {
          this.nextKeepalive = this.t + KEEPALIVE_US + r.range(0, 2000);
          this.step = C_KEEPALIVE;
          this.t = this.nextKeepalive;
        } else {
          this.step = C_TEARDOWN;
          this.t = s.teardownUs;
        }
        return true;
      }
      case C_KEEPALIVE:
        this.request(g, 'GET_PARAMETER', `${s.url}/`, [], true);
        this.t += r.range(100, 1000);
        this.step = C_KEEPALIVE_REPLY;
        return true;
      case C_KEEPALIVE_REPLY: {
        this.reply(g, [this.sessionHeader(), 'Content-Length: 0']);
        this.nextKeepalive += KEEPALIVE_US;
        if (this.nextKeepalive < s.teardownUs - 1_000_000) {
          this.t = this.nextKeepalive;
          this.step = C_KEEPALIVE;
        } else {
          this.t = s.teardownUs;
          this.step = C_TEARDOWN;
        }
        return true;
      }
      case C_TEARDOWN:
        this.request(g, 'TEARDOWN', `${s.url}/`, [], true);
        this.t += r.range(200, 5000); // after the final sender reports (teardownUs + up to 60 us)
        this.step = C_TEARDOWN_REPLY;
        return true;
      case C_TEARDOWN_REPLY:
        this.reply(g, [this.sessionHeader(), 'Connection: close']);
        this.t = this.clientAfterReply();
        this.step = C_FIN;
        return true;
      case C_FIN:
        g.tcp(s, true, F_FIN | F_ACK, 0, 0);
        this.t += r.range(30, 120);
        this.step = C_FINACK;
        return true;
      case C_FINACK:
        g.tcp(s, false, F_FIN | F_ACK, 0, 0);
        this.t += s.rttUs;
        this.step = C_LASTACK;
        return true;
      case C_LASTACK:
        g.tcp(s, true, F_ACK, 0, 0);
        g.endSession(s);
        return false;
    }
    return false;
  }
}

/** RTP packets of one track, from the VIP, until the TEARDOWN arrives. */
class RtpStream implements Stream {
  n = 0;
  private readonly startT: number;
  private readonly interval: number; // µs per packet (audio, metadata) or per frame (video)
  private readonly perFrame: number; // video: packets per frame (fractional)
  private readonly gop: number;
  private frame = 0;
  private inFrame = 0; // packets of this frame sent
  private frameK = 1; // packets in this frame
  private readonly samples: number; // audio: timestamp step (samples) per packet
  private readonly audioBytes: number; // audio: PCMU bytes per packet (one per sample, at most MAX_RTP_PAYLOAD)
  constructor(
    private readonly s: Session,
    private readonly tr: Track,
    public t: number,
    rate: number,
  ) {
    this.startT = t;
    if (tr.kind === KIND_VIDEO) {
      const fps = Math.min(25, rate);
      this.interval = 1e6 / fps;
      this.perFrame = rate / fps;
      this.gop = Math.max(1, Math.round(2 * fps));
      this.frameK = this.packetsInFrame(0);
    } else {
      this.interval = 1e6 / rate;
      this.perFrame = 1;
      this.gop = 1;
    }
    this.samples = Math.max(1, Math.round(8000 / rate));
    this.audioBytes = Math.min(MAX_RTP_PAYLOAD, this.samples);
  }

  private packetsInFrame(f: number): number {
    return Math.floor((f + 1) * this.perFrame) - Math.floor(f * this.perFrame);
  }

  fire(g: Gen): boolean {
    const s = this.s;
    const tr = this.tr;
    const r = s.rng;
    const b = g.b;
    const at = g.mediaAt(s);
    const body = at + 12;
    let marker = 0;
    let ts: number;
    let payLen: number;
    let sum = 0;
    if (tr.kind === KIND_VIDEO) {
      const idr = this.frame % this.gop === 0;
      const k = this.frameK;
      const i = this.inFrame;
      const last = i === k - 1;
      if (last) marker = 1;
      ts = tr.ts0 + Math.round((this.frame * 90000 * this.interval) / 1e6);
      // frame_num: frames since the IDR, mod 16
      const heads = idr ? H264_IDR : H264_P[(this.frame % this.gop) & ((1 << LOG2_MAX_FRAME_NUM) - 1)];
      const head = k === 1 ? heads.single : i === 0 ? heads.start : last ? heads.end : heads.middle;
      const hb = head.bytes;
      const hl = hb.length;
      for (let q = 0; q < hl; q++) b[body + q] = hb[q];
      sum += head.sum;
      const size = idr ? (last ? r.range(300, MAX_RTP_PAYLOAD) : r.range(1100, MAX_RTP_PAYLOAD)) : r.range(120, 1000);
      const bodyLen = Math.max(0, size - hl);
      sum += g.poolCopy(r, 0, BIN_BYTES, body + hl, bodyLen);
      payLen = hl + bodyLen;
    } else if (tr.kind === KIND_AUDIO) {
      if (tr.seq === tr.seq0) marker = 1;
      ts = tr.ts0 + (tr.seq - tr.seq0) * this.samples;
      payLen = this.audioBytes;
      sum += g.poolCopy(r, 0, BIN_BYTES, body, payLen);
    } else {
      marker = 1;
      ts = tr.ts0 + Math.round(((this.t - this.startT) * 90000) / 1e6);
      payLen = r.range(150, 600);
      sum += g.poolCopy(r, TXT_OFF, TXT_BYTES, body, payLen);
    }
    // RTP header
    const seq = tr.seq & 0xffff;
    const w0 = 0x8000 | (marker << 7) | tr.pt;
    ts >>>= 0;
    put16(b, at, w0);
    put16(b, at + 2, seq);
    put32(b, at + 4, ts);
    put32(b, at + 8, tr.ssrc);
    sum += w0 + seq + halves(ts) + halves(tr.ssrc);
    tr.seq++;
    tr.pkts++;
    tr.octets += payLen;
    g.media(s, tr, false, false, 12 + payLen, sum);

    // next packet
    if (tr.kind === KIND_VIDEO) {
      if (++this.inFrame < this.frameK) this.t += r.range(15, 60);
      else {
        this.frame++;
        this.inFrame = 0;
        this.frameK = this.packetsInFrame(this.frame);
        this.t = Math.max(this.t + 10, this.startT + this.frame * this.interval + r.range(0, 3000));
      }
    } else {
      this.t = Math.max(this.t + 10, this.startT + (tr.seq - tr.seq0) * this.interval + r.range(0, 500));
    }
    return this.t < s.teardownUs;
  }
}

/** Writes an SDES chunk with a CNAME at `at`; returns its length. */
function sdes(b: Uint8Array, at: number, ssrc: number, cname: string): number {
  const itemsLen = 2 + cname.length + 1; // CNAME item, END
  const len = 8 + ((itemsLen + 3) & ~3);
  b.fill(0, at, at + len);
  b[at] = 0x81;
  b[at + 1] = 202;
  put16(b, at + 2, len / 4 - 1);
  put32(b, at + 4, ssrc);
  b[at + 8] = 1;
  b[at + 9] = cname.length;
  for (let i = 0; i < cname.length; i++) b[at + 10 + i] = cname.charCodeAt(i);
  return len;
}

/** RTCP sender reports of one track (about every second), then the final SR + SDES + BYE. */
class SrStream implements Stream {
  n = 0;
  private done = false;
  constructor(
    private readonly s: Session,
    private readonly tr: Track,
    public t: number,
  ) {
    if (this.t >= s.teardownUs) this.final();
  }

  private final(): void {
    this.t = this.s.teardownUs + 20 + 10 * (this.tr.channel >> 1);
    this.done = true;
  }

  fire(g: Gen): boolean {
    const s = this.s;
    const tr = this.tr;
    const b = g.b;
    const at = g.mediaAt(s);
    const [msw, lsw] = g.ntp(this.t);
    const rtpTs = (tr.ts0 + Math.round(((this.t - s.playUs) * tr.clock) / 1e6)) >>> 0;
    b[at] = 0x80;
    b[at + 1] = 200;
    put16(b, at + 2, 6);
    put32(b, at + 4, tr.ssrc);
    put32(b, at + 8, msw);
    put32(b, at + 12, lsw);
    put32(b, at + 16, rtpTs);
    put32(b, at + 20, tr.pkts);
    put32(b, at + 24, tr.octets);
    let len = 28;
    len += sdes(b, at + len, tr.ssrc, s.scname);
    if (this.done) {
      b[at + len] = 0x81;
      b[at + len + 1] = 203;
      put16(b, at + len + 2, 1);
      put32(b, at + len + 4, tr.ssrc);
      len += 8;
    }
    tr.lastSrNtp = (((msw & 0xffff) << 16) | (lsw >>> 16)) >>> 0;
    tr.lastSrUs = this.t;
    g.media(s, tr, false, true, len, wordSum(b, at, len));
    if (this.done) return false;
    this.t += s.rng.range(500_000, 1_500_000);
    if (this.t >= s.teardownUs) this.final();
    return true;
  }
}

/** RTCP receiver reports of one track from the client (about every second) until TEARDOWN. */
class RrStream implements Stream {
  n = 0;
  constructor(
    private readonly s: Session,
    private readonly tr: Track,
    public t: number,
  ) {}

  fire(g: Gen): boolean {
    const s = this.s;
    const tr = this.tr;
    if (this.t >= s.teardownUs) return false;
    const b = g.b;
    const at = g.mediaAt(s);
    b[at] = 0x81;
    b[at + 1] = 201;
    put16(b, at + 2, 7);
    put32(b, at + 4, tr.cssrc);
    put32(b, at + 8, tr.ssrc);
    put32(b, at + 12, 0); // fraction lost 0, cumulative lost 0
    put32(b, at + 16, (tr.seq - 1) >>> 0); // extended highest sequence number received
    put32(b, at + 20, s.rng.range(2, 40)); // interarrival jitter
    const sr = tr.lastSrUs >= 0 && tr.lastSrUs <= this.t - s.rttUs / 2;
    put32(b, at + 24, sr ? tr.lastSrNtp : 0);
    put32(b, at + 28, sr ? Math.floor(((this.t - s.rttUs / 2 - tr.lastSrUs) * 65536) / 1e6) >>> 0 : 0);
    let len = 32;
    len += sdes(b, at + len, tr.cssrc, s.cname);
    g.media(s, tr, true, true, len, wordSum(b, at, len));
    this.t += s.rng.range(500_000, 1_500_000);
    return this.t < s.teardownUs;
  }
}

// ---------------------------------------------------------------------------------------------

/** Writes the capture (and the truth file) described by `opts`; returns what was written. */
export function generateRtsp(opts: RtspGenOptions): RtspGenSummary {
  const o = resolveRtspOptions(opts);
  const g = new Gen(o);
  let summary: RtspGenSummary;
  try {
    g.truthHeader();
    g.heap.push(new Arrivals(2e6 / o.arrivalRate));
    while (g.heap.size > 0) {
      const s = g.heap.pop();
      if (s.t < g.now) throw new Error(`internal: event at ${s.t} before ${g.now}`);
      g.now = s.t;
      g.room();
      if (s.fire(g)) g.heap.push(s);
    }
    g.close();
    summary = {
      out: o.out,
      truth: o.truth,
      sessions: o.sessions,
      natSessions: g.natSessions,
      interleavedSessions: g.ilSessions,
      tracks: g.trackCount,
      packets: g.packets,
      controlPackets: g.controlPackets,
      rtpPackets: g.rtpPackets,
      rtcpPackets: g.rtcpPackets,
      peakLive: g.peakLive,
      wireBytes: g.wireBytes,
      fileBytes: 24 + 16 * g.packets + g.wireBytes,
      firstTs: g.startUs / 1e6,
      lastTs: g.lastUs / 1e6,
    };
    g.truthFooter({
      sessions: summary.sessions,
      nat_sessions: summary.natSessions,
      interleaved_sessions: summary.interleavedSessions,
      tracks: summary.tracks,
      packets: summary.packets,
      control_packets: summary.controlPackets,
      rtp_packets: summary.rtpPackets,
      rtcp_packets: summary.rtcpPackets,
      peak_live: summary.peakLive,
      first_ts: summary.firstTs,
      last_ts: summary.lastTs,
    });
  } catch (e) {
    try {
      g.close(true);
    } catch {
      // the original error matters
    }
    throw e;
  }
  return summary;
}
