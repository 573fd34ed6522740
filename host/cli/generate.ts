// `sessionlb generate <kind> ...`: deterministic synthetic captures. Each kind is one entry of
// KINDS (its usage text and a runner taking the arguments after the kind).
import { parseArgs } from 'node:util';
import { FLOW_DEFAULTS, FlowOptionError, generateFlows, MAX_PAYLOAD, type FlowGenOptions } from '../gen/flows.js';
import { RTSP_DEFAULTS, RTSP_MAX_CLIENTS, RTSP_MAX_NAT_ADDRESSES, RTSP_MAX_RTP_RATE, RtspOptionError, generateRtsp, type RtspGenOptions } from '../gen/rtsp.js';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, report, UsageError } from './errors.js';

interface Kind {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const FLOWS_USAGE = `usage: sessionlb generate flows --out FILE [options]

Writes a classic pcap (Ethernet, microsecond timestamps) of TCP and UDP client flows to the VIPs
and the VIPs' replies, as seen at the cluster's entry point. Same options, same bytes.

  --out FILE          pcap file to write (required)
  --packets N         packets in the file (default 100000)
  --flows N           flows in the file (default packets/25, at least 1)
  --seed S            seed, an integer (default 1)
  --vip ADDR          VIP address, IPv4 or IPv6; repeat for several (default 10.0.0.100)
  --port P            VIP port; repeat or separate with commas (default 80)
  --udp-share X       share of the flows that are UDP, 0..1 (default ${FLOW_DEFAULTS.udpShare})
  --reply-share X     share of the packets sent by the VIPs, 0..1 (default ${FLOW_DEFAULTS.replyShare})
  --clients N         distinct clients, 198.18.0.0/15 and 2001:db8:1::/48 (default ${FLOW_DEFAULTS.clients})
  --concurrent N      flows live at the same time (default ${FLOW_DEFAULTS.concurrent})
  --rate PPS          packets per second of trace time (default ${FLOW_DEFAULTS.rate})
  --payload MIN-MAX   payload bytes of each data packet, at most ${MAX_PAYLOAD} (default ${FLOW_DEFAULTS.payload.join('-')})
  --start-time S      time of the first packet, seconds since the epoch (default ${FLOW_DEFAULTS.startTime})
  --help              this text`;

const RTSP_USAGE = `usage: sessionlb generate rtsp --out FILE [options]

Writes a classic pcap (Ethernet, microsecond timestamps) of RTSP streaming sessions as seen at the
cluster's entry point: the VIP is the RTSP server. Each session: TCP handshake, OPTIONS, DESCRIBE
(SDP), one SETUP per track, the client's NAT punch, PLAY, RTP media and RTCP reports over UDP (or
interleaved in the RTSP connection), GET_PARAMETER keep-alives, TEARDOWN, FIN both ways.
Same options, same bytes.

  --out FILE              pcap file to write (required)
  --sessions N            sessions (default 100)
  --seed S                seed, an integer (default 1)
  --vip ADDR              the RTSP server's address, IPv4 or IPv6 (default 10.0.0.100)
  --port P                RTSP port (default ${RTSP_DEFAULTS.port})
  --clients N             client addresses of the non-NAT sessions, at most ${RTSP_MAX_CLIENTS}
                          (default one per non-NAT session)
  --nat-share X           share of the sessions from NAT addresses, 0..1 (default ${RTSP_DEFAULTS.natShare})
  --nat-addresses N       NAT addresses those sessions share, 1..${RTSP_MAX_NAT_ADDRESSES} (default ${RTSP_DEFAULTS.natAddresses})
  --arrival-rate R        sessions starting per second (default ${RTSP_DEFAULTS.arrivalRate})
  --duration MIN-MAX      seconds of media per session, uniform in the range (default ${RTSP_DEFAULTS.duration.join('-')})
  --rtp-rate PPS          RTP packets per second per track, 1..${RTSP_MAX_RTP_RATE} (default ${RTSP_DEFAULTS.rtpRate})
  --tracks MIN-MAX        media tracks per session, 1..3: video, +audio, +metadata (default ${RTSP_DEFAULTS.tracks.join('-')})
  --interleaved-share X   share of the sessions with RTP interleaved in the RTSP connection (default ${RTSP_DEFAULTS.interleavedShare})
  --session-ids STYLE     hex, decimal or mixed (default ${RTSP_DEFAULTS.sessionIds})
  --start-time S          time of the first packet, seconds since the epoch (default ${RTSP_DEFAULTS.startTime})
  --truth FILE            also write the ground truth (JSON): every session's id, client, control
                          and media 5-tuples, and packet counts
  --help                  this text`;

const KINDS: Record<string, Kind> = {
  flows: { summary: 'TCP and UDP client flows to VIPs, with the replies', usage: FLOWS_USAGE, run: runFlows },
  rtsp: { summary: 'RTSP streaming sessions (control + RTP/RTCP media), with ground truth', usage: RTSP_USAGE, run: runRtsp },
};

const USAGE = `usage: sessionlb generate <kind> [options]

kinds:
${Object.entries(KINDS)
  .map(([name, k]) => `  ${name.padEnd(10)}${k.summary}`)
  .join('\n')}

Run \`sessionlb generate <kind> --help\` for a kind's options.`;

export async function runGenerate(argv: string[]): Promise<number> {
  const [kind, ...rest] = argv;
  if (kind === undefined) {
    process.stderr.write(USAGE + '\n');
    return EXIT_USAGE;
  }
  if (kind === '--help' || kind === '-h' || kind === 'help') {
    process.stdout.write(USAGE + '\n');
    return EXIT_OK;
  }
  const k = Object.hasOwn(KINDS, kind) ? KINDS[kind] : undefined;
  if (!k) return report(new UsageError(`generate: unknown kind "${kind}"`), USAGE);
  return k.run(rest);
}

// Flag of each FlowGenOptions field, for error messages.
const FLAG: Record<keyof FlowGenOptions, string> = {
  out: '--out',
  packets: '--packets',
  flows: '--flows',
  seed: '--seed',
  vips: '--vip',
  ports: '--port',
  udpShare: '--udp-share',
  replyShare: '--reply-share',
  clients: '--clients',
  concurrent: '--concurrent',
  rate: '--rate',
  payload: '--payload',
  startTime: '--start-time',
};

function usageError(flag: string, msg: string): UsageError {
  return new UsageError(`generate flows: ${flag}: ${msg}`);
}

function intArg(flag: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const t = v.replace(/_/g, '');
  const n = /^\d+$/.test(t) ? Number(t) : /^0x[0-9a-f]+$/i.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw usageError(flag, `expected an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

function numArg(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = /^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$/i.test(v.trim()) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usageError(flag, `expected a number from ${min} to ${max}, got "${v}"`);
  return n;
}

function rateArg(v: string | undefined): number | undefined {
  const r = numArg('--rate', v, 0, 1e9);
  if (r === 0) throw usageError('--rate', 'expected a positive number of packets per second, got "0"');
  return r;
}

async function runFlows(argv: string[]): Promise<number> {
  let opts: FlowGenOptions;
  try {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: 'string' },
        packets: { type: 'string' },
        flows: { type: 'string' },
        seed: { type: 'string' },
        vip: { type: 'string', multiple: true },
        port: { type: 'string', multiple: true },
        'udp-share': { type: 'string' },
        'reply-share': { type: 'string' },
        clients: { type: 'string' },
        concurrent: { type: 'string' },
        rate: { type: 'string' },
        payload: { type: 'string' },
        'start-time': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (v.help) {
      process.stdout.write(FLOWS_USAGE + '\n');
      return EXIT_OK;
    }
    if (v.out === undefined || v.out === '') throw usageError('--out', 'an output file is required');
    const packets = intArg('--packets', v.packets, 1, 2 ** 31 - 1) ?? 100_000;
    const ports = (v.port ?? ['80']).flatMap((p) => p.split(',')).map((p) => intArg('--port', p.trim(), 1, 65535)!);
    let payload: [number, number] | undefined;
    if (v.payload !== undefined) {
      const m = /^\s*(\d+)\s*(?:[-,:]\s*(\d+)\s*)?$/.exec(v.payload);
      if (!m) throw usageError('--payload', `expected MIN-MAX (or one size), got "${v.payload}"`);
      payload = [Number(m[1]), Number(m[2] ?? m[1])];
    }
    opts = {
      out: v.out,
      packets,
      flows: intArg('--flows', v.flows, 1) ?? Math.max(1, Math.floor(packets / 25)),
      seed: intArg('--seed', v.seed, 0) ?? 1,
      vips: v.vip ?? ['10.0.0.100'],
      ports,
      udpShare: numArg('--udp-share', v['udp-share'], 0, 1),
      replyShare: numArg('--reply-share', v['reply-share'], 0, 1),
      clients: intArg('--clients', v.clients, 1),
      concurrent: intArg('--concurrent', v.concurrent, 1),
      rate: rateArg(v.rate),
      payload,
      startTime: numArg('--start-time', v['start-time'], 0, 2 ** 32 - 1),
    };
  } catch (e) {
    return report(e, FLOWS_USAGE);
  }

  const t0 = performance.now();
  try {
    const r = generateFlows(opts);
    const secs = (performance.now() - t0) / 1000;
    const mb = (r.fileBytes / 1e6).toFixed(1);
    const replies = ((100 * r.replies) / r.packets).toFixed(1);
    process.stderr.write(
      `sessionlb: wrote ${r.packets} packets, ${r.flows} flows (${r.tcpFlows} tcp, ${r.udpFlows} udp), ${replies}% replies, ` +
        `${(r.lastTs - r.firstTs).toFixed(3)} s of trace, to ${r.out} (${mb} MB) in ${secs.toFixed(2)} s\n`,
    );
    return EXIT_OK;
  } catch (e) {
    if (e instanceof FlowOptionError) return report(usageError(FLAG[e.option], e.detail), FLOWS_USAGE);
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && err.syscall) {
      process.stderr.write(`sessionlb: generate flows: cannot write ${opts.out}: ${err.message}\n`);
      return EXIT_FAIL;
    }
    return report(e);
  }
}

// ---------------------------------------------------------------------------------------------
// generate rtsp

// Flag of each RtspGenOptions field, for error messages.
const RTSP_FLAG: Record<keyof RtspGenOptions, string> = {
  out: '--out',
  sessions: '--sessions',
  seed: '--seed',
  vip: '--vip',
  port: '--port',
  clients: '--clients',
  natShare: '--nat-share',
  natAddresses: '--nat-addresses',
  arrivalRate: '--arrival-rate',
  duration: '--duration',
  rtpRate: '--rtp-rate',
  tracks: '--tracks',
  interleavedShare: '--interleaved-share',
  sessionIds: '--session-ids',
  startTime: '--start-time',
  truth: '--truth',
};

function rtspError(flag: string, msg: string): UsageError {
  return new UsageError(`generate rtsp: ${flag}: ${msg}`);
}

function rtspInt(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim().replace(/_/g, '');
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw rtspError(flag, `expected an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

function rtspNum(flag: string, v: string | undefined, min: number, max: number, what = 'a number'): number | undefined {
  if (v === undefined) return undefined;
  const n = /^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$/i.test(v.trim()) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw rtspError(flag, `expected ${what} from ${min} to ${max}, got "${v}"`);
  return n;
}

/** MIN-MAX (or one value) of numbers in [min, max]; integers only when `int`. */
function rtspRange(flag: string, v: string | undefined, min: number, max: number, int: boolean): [number, number] | undefined {
  if (v === undefined) return undefined;
  const num = int ? '\\d+' : '[0-9]*\\.?[0-9]+';
  const m = new RegExp(`^\\s*(${num})\\s*(?:[-,:]\\s*(${num})\\s*)?$`).exec(v);
  if (!m) throw rtspError(flag, `expected MIN-MAX (or one value), got "${v}"`);
  const lo = Number(m[1]);
  const hi = Number(m[2] ?? m[1]);
  if (!(lo >= min && hi <= max)) throw rtspError(flag, `expected values from ${min} to ${max}, got "${v}"`);
  if (lo > hi) throw rtspError(flag, `min ${lo} is larger than max ${hi}`);
  return [lo, hi];
}

async function runRtsp(argv: string[]): Promise<number> {
  let opts: RtspGenOptions;
  try {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: 'string' },
        sessions: { type: 'string' },
        seed: { type: 'string' },
        vip: { type: 'string' },
        port: { type: 'string' },
        clients: { type: 'string' },
        'nat-share': { type: 'string' },
        'nat-addresses': { type: 'string' },
        'arrival-rate': { type: 'string' },
        duration: { type: 'string' },
        'rtp-rate': { type: 'string' },
        tracks: { type: 'string' },
        'interleaved-share': { type: 'string' },
        'session-ids': { type: 'string' },
        'start-time': { type: 'string' },
        truth: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (v.help) {
      process.stdout.write(RTSP_USAGE + '\n');
      return EXIT_OK;
    }
    if (v.out === undefined || v.out === '') throw rtspError('--out', 'an output file is required');
    if (v.truth === '') throw rtspError('--truth', 'expected a file name');
    const ids = v['session-ids'];
    if (ids !== undefined && ids !== 'hex' && ids !== 'decimal' && ids !== 'mixed') throw rtspError('--session-ids', `expected hex, decimal or mixed, got "${ids}"`);
    const arrivalRate = rtspNum('--arrival-rate', v['arrival-rate'], 0, 1e6, 'sessions per second');
    if (arrivalRate === 0) throw rtspError('--arrival-rate', 'expected a positive number of sessions per second, got "0"');
    opts = {
      out: v.out,
      sessions: rtspInt('--sessions', v.sessions, 1, 2 ** 31 - 1) ?? 100,
      seed: rtspInt('--seed', v.seed, 0, Number.MAX_SAFE_INTEGER) ?? 1,
      vip: v.vip ?? '10.0.0.100',
      port: rtspInt('--port', v.port, 1, 65535),
      clients: rtspInt('--clients', v.clients, 1, RTSP_MAX_CLIENTS),
      natShare: rtspNum('--nat-share', v['nat-share'], 0, 1),
      natAddresses: rtspInt('--nat-addresses', v['nat-addresses'], 1, RTSP_MAX_NAT_ADDRESSES),
      arrivalRate,
      duration: rtspRange('--duration', v.duration, 0.1, 86400, false),
      rtpRate: rtspNum('--rtp-rate', v['rtp-rate'], 1, RTSP_MAX_RTP_RATE, 'packets per second'),
      tracks: rtspRange('--tracks', v.tracks, 1, 3, true),
      interleavedShare: rtspNum('--interleaved-share', v['interleaved-share'], 0, 1),
      sessionIds: ids as RtspGenOptions['sessionIds'],
      startTime: rtspNum('--start-time', v['start-time'], 0, 2 ** 32 - 1),
      truth: v.truth,
    };
  } catch (e) {
    return report(e, RTSP_USAGE);
  }

  const t0 = performance.now();
  try {
    const r = generateRtsp(opts);
    const secs = (performance.now() - t0) / 1000;
    const mb = (r.fileBytes / 1e6).toFixed(1);
    process.stderr.write(
      `sessionlb: wrote ${r.packets} packets, ${r.sessions} rtsp sessions (${r.natSessions} behind NAT, ${r.interleavedSessions} interleaved, ${r.tracks} tracks, ` +
        `at most ${r.peakLive} live), ${r.rtpPackets} rtp, ${r.rtcpPackets} rtcp, ${(r.lastTs - r.firstTs).toFixed(3)} s of trace, ` +
        `to ${r.out} (${mb} MB)${r.truth ? ` and ${r.truth}` : ''} in ${secs.toFixed(2)} s\n`,
    );
    return EXIT_OK;
  } catch (e) {
    if (e instanceof RtspOptionError) return report(rtspError(RTSP_FLAG[e.option], e.detail), RTSP_USAGE);
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code === 'string' && err.syscall) {
      const file = typeof err.path === 'string' ? err.path : opts.out;
      process.stderr.write(`sessionlb: generate rtsp: cannot write ${file}: ${err.message}\n`);
      return EXIT_FAIL;
    }
    return report(e);
  }
}
