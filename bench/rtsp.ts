// RTSP tokenizer benchmark: messages/s of the data plane's tokenizer (rtsp_parse_many, many
// messages per JS->WASM call so the boundary does not dominate) against the plain TypeScript
// tokenizer of test/ref/rtsp.ts, on the same realistic messages: a SETUP request, its reply, a
// PLAY, and a DESCRIBE reply carrying SDP (whose body is skipped by Content-Length). Both parse
// the same bytes; before timing, the two are checked to agree on every message.
// Run alone: npx tsx bench/rtsp.ts
import { Bench } from 'tinybench';
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';
import { instantiate, loadModule, modulePath, type EngineExports } from '../host/wasm.js';
import { comparable, parseRtsp, readRecord } from '../test/ref/rtsp.js';

export interface Row {
  name: string;
  value: string;
  note?: string;
}

interface RtspExports {
  rtsp_result_size(): number;
  rtsp_parse_many(ptr: number, count: number, stride: number, outPtr: number): number;
}

const crlf = (lines: string[], body = '') => lines.join('\r\n') + '\r\n\r\n' + body;

const SDP = [
  'v=0', 'o=- 1711468913450934 1 IN IP4 10.77.0.1', 's=Session streamed with GStreamer', 'i=rtsp-server', 't=0 0',
  'a=tool:GStreamer', 'a=type:broadcast', 'a=control:*', 'a=range:npt=0-4.0', 'm=video 0 RTP/AVP 96', 'c=IN IP4 0.0.0.0',
  'b=AS:2000', 'a=rtpmap:96 H264/90000', 'a=framerate:30',
  'a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QAFKzZQUH7ARAAAAMAEAAAAwPA8UKZYA==,aOvjyyLA;profile-level-id=640014;level-asymmetry-allowed=1',
  'a=control:stream=0', 'a=ts-refclk:local', 'a=mediaclk:sender', 'm=audio 0 RTP/AVP 0', 'c=IN IP4 0.0.0.0', 'b=AS:64',
  'a=rtpmap:0 PCMU/8000', 'a=control:stream=1', 'a=ts-refclk:local', 'a=mediaclk:sender', '',
].join('\r\n');

/** The messages, in the shapes the real clients and servers of ../shared/fixtures/rtsp send. */
export const BENCH_MESSAGES: Record<string, string> = {
  'SETUP request': crlf([
    'SETUP rtsp://10.77.0.1:8554/test/stream=0 RTSP/1.0', 'Transport: RTP/AVP/UDP;unicast;client_port=16808-16809',
    'CSeq: 4', 'User-Agent: Lavf59.27.100',
  ]),
  'SETUP reply': crlf([
    'RTSP/1.0 200 OK', 'CSeq: 4',
    'Transport: RTP/AVP;unicast;client_port=16808-16809;server_port=36518-36519;ssrc=F7A200DA;mode="PLAY"',
    'Server: GStreamer RTSP server', 'Session: MFee8mhzhJ7uG6tl;timeout=60', 'Date: Fri, 27 Nov 2026 03:35:10 GMT',
  ]),
  PLAY: crlf([
    'PLAY rtsp://10.77.0.1:8554/test/ RTSP/1.0', 'Range: npt=0.000-', 'CSeq: 6', 'User-Agent: Lavf59.27.100',
    'Session: MFee8mhzhJ7uG6tl',
  ]),
  'DESCRIBE reply (SDP)': crlf([
    'RTSP/1.0 200 OK', 'CSeq: 3', 'Content-Type: application/sdp', 'Content-Base: rtsp://10.77.0.1:8554/test/',
    'Server: GStreamer RTSP server', 'Date: Fri, 27 Nov 2026 03:35:10 GMT', `Content-Length: ${SDP.length}`,
  ], SDP),
};

const STRIDE = 2048;
const COUNT = 1024; // messages per rtsp_parse_many call (the four kinds in turn)

export async function rtspTokenizerBench(): Promise<Row[]> {
  const ex = instantiate(loadModule(modulePath(true))) as EngineExports & RtspExports;
  if (ex.init(1024, 1, 1, 0, 1 << 20, 1024, 4 << 20) !== 0) throw new Error('init failed');
  const mem = new Uint8Array(ex.memory.buffer);
  const dv = new DataView(ex.memory.buffer);
  const out = ex.scratch_ptr();
  const base = ex.io_ptr();
  const kinds = Object.values(BENCH_MESSAGES).map((s) => new Uint8Array(Buffer.from(s, 'latin1')));
  const list = Array.from({ length: COUNT }, (_, i) => kinds[i % kinds.length]);
  list.forEach((m, i) => {
    if (m.length + 4 > STRIDE) throw new Error('message larger than the stride');
    dv.setUint32(base + i * STRIDE, m.length, true);
    mem.set(m, base + i * STRIDE + 4);
  });
  const bytesPerRound = list.reduce((s, m) => s + m.length, 0);

  // Same input, same answers: check every kind against the reference before timing.
  for (const [i, m] of kinds.entries()) {
    if (ex.rtsp_parse_many(base + i * STRIDE, 1, STRIDE, out) !== 1) throw new Error(`message ${i} did not parse`);
    const w = readRecord(mem, out);
    const r = parseRtsp(m);
    if (r.status !== m.length || !isDeepStrictEqual(comparable(w), comparable(r))) throw new Error(`WASM and TypeScript disagree on message ${i}`);
  }

  const bench = new Bench({ time: 1500, warmupTime: 300 });
  let sink = 0;
  bench
    .add('RTSP tokenizer: WASM', () => { sink += ex.rtsp_parse_many(base, COUNT, STRIDE, out); })
    .add('RTSP tokenizer: TypeScript', () => {
      for (let i = 0; i < COUNT; i++) sink += parseRtsp(list[i]).status;
    });
  await bench.run();
  if (sink === 0.5) console.log(sink);
  const hz = (name: string) => {
    const r = bench.tasks.find((t) => t.name === name)?.result as { throughput?: { mean: number } } | undefined;
    if (!r?.throughput) throw new Error(`${name}: no result`);
    return r.throughput.mean;
  };
  const w = hz('RTSP tokenizer: WASM') * COUNT;
  const t = hz('RTSP tokenizer: TypeScript') * COUNT;
  const mbps = (msgs: number) => ((msgs * bytesPerRound) / COUNT / 1e6).toFixed(0);
  return [
    { name: 'RTSP tokenizer: WASM (rtsp_parse_many, 1024 messages per call)', value: `${(w / 1e6).toFixed(2)} M msg/s`, note: `${(1e9 / w).toFixed(0)} ns per message; ${mbps(w)} MB/s of messages incl. the SDP body it skips` },
    { name: 'RTSP tokenizer: TypeScript (test/ref/rtsp.ts)', value: `${(t / 1e6).toFixed(3)} M msg/s`, note: `${(1e9 / t).toFixed(0)} ns per message; ${mbps(t)} MB/s of messages` },
    { name: 'RTSP tokenizer: WASM / TypeScript', value: `${(w / t).toFixed(1)}x`, note: 'target >= 3x; same 4 messages (SETUP, SETUP reply, PLAY, DESCRIBE reply with SDP), results checked equal first' },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  rtspTokenizerBench().then((rows) => {
    for (const r of rows) console.log(`${r.name}: ${r.value}${r.note ? ` (${r.note})` : ''}`);
  }, (e) => {
    console.error(e);
    process.exit(1);
  });
}
