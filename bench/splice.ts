// Engine-only benchmark of TCP splicing (docs/splice.md): packets/s of process() over established
// spliced connections against NAT mode on the same traffic shape. Same client frames in both modes
// (client -> VIP:80, ACK|PSH, timestamps, 64 bytes of payload), half of the traffic from the
// backends (backend:80 -> the VIP's local port in splice mode, -> the client in NAT mode), every
// connection set up before timing. Each batch's pristine frames are restored with one memcpy before
// the call, in both modes. No I/O inside the timed loops.
import { Engine, type SpliceExports } from '../host/engine.js';
import { parseConfig, addressBytes } from '../host/ctl/config.js';
import { frame } from '../test/ref/packet.js';

const STRIDE = 192;
const BATCH = 256;
const VIP = '10.0.0.100';
const BACKENDS = Array.from({ length: 4 }, (_, i) => `10.0.1.${i + 1}`);
const F = { SYN: 2, ACK: 16, PSH: 8 };
const u32 = (x: number) => x >>> 0;

function tsOpt(val: number, ecr: number): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = 1; b[1] = 1; b[2] = 8; b[3] = 10;
  new DataView(b.buffer).setUint32(4, val >>> 0);
  new DataView(b.buffer).setUint32(8, ecr >>> 0);
  return b;
}

function makeEngine(method: 'nat' | 'splice', conns: number): Engine {
  const cfg = parseConfig({
    flowCapacity: Math.max(65536, conns * 64),
    vips: [{ address: VIP, ports: [80], method: 'nat', scheduler: 'rr', backends: BACKENDS.map((a, i) => ({ id: `b${i + 1}`, address: a, mac: `02:00:00:00:01:0${i + 1}` })) }],
  });
  const eng = new Engine(cfg, { arenaBytes: 1 << 20, ioBytes: 2 * Math.ceil(conns / BATCH) * BATCH * STRIDE + 4096 });
  if (method === 'splice') {
    const ex = eng.ex as unknown as SpliceExports & Engine['ex'];
    const s = ex.scratch_ptr();
    eng.mem.fill(0, s, s + 48);
    eng.mem.set(addressBytes(VIP), s);
    if (ex.config_vip(0, 4, 5, 1, 1, 0, BACKENDS.length, 0, cfg.vips[0].ringSize, 6080) !== 0) throw new Error('config_vip splice');
    if (ex.config_commit(1, BACKENDS.length) !== 0) throw new Error('config_commit');
    eng.mem.fill(0, s, s + 16);
    ex.config_splice(0);
  }
  return eng;
}

const clientAddr = (i: number) => `198.18.${(i >> 8) & 255}.${i & 255}`;
const clientPort = (i: number) => 10000 + i;

/** Opens `conns` spliced connections; returns, per connection, its backend address and our local port. */
function openSpliced(eng: Engine, conns: number): { backend: string; lport: number }[] {
  // In chunks: connections waiting for their backend hold a request buffer (entries / 8 of them).
  const all: { backend: string; lport: number }[] = [];
  for (let base = 0; base < conns; base += 64) all.push(...openChunk(eng, base, Math.min(64, conns - base)));
  return all;
}

function openChunk(eng: Engine, base: number, conns: number): { backend: string; lport: number }[] {
  const tsSec = 1_700_000_000;
  const client = (i: number) => clientAddr(base + i);
  const cport = (i: number) => clientPort(base + i);
  const syns = Array.from({ length: conns }, (_, i) => ({ data: frame({ src: client(i), dst: VIP, proto: 'tcp', sport: cport(i), dport: 80, seq: 1000 + i, tcpFlags: F.SYN, tcpOptions: new Uint8Array([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]) }), tsSec }));
  const sa = eng.processBatch(syns);
  const isn = sa.map((r) => new DataView(r.frame.buffer, r.frame.byteOffset).getUint32(38));
  const req = new TextEncoder().encode('GET /bench HTTP/1.1\r\nHost: x\r\n\r\n');
  const step2 = [];
  for (let i = 0; i < conns; i++) {
    step2.push({ data: frame({ src: client(i), dst: VIP, proto: 'tcp', sport: cport(i), dport: 80, seq: 1001 + i, ack: u32(isn[i] + 1), tcpFlags: F.ACK, tcpOptions: tsOpt(2, 1) }), tsSec });
    step2.push({ data: frame({ src: client(i), dst: VIP, proto: 'tcp', sport: cport(i), dport: 80, seq: 1001 + i, ack: u32(isn[i] + 1), tcpFlags: F.ACK | F.PSH, tcpOptions: tsOpt(3, 1), payload: req }), tsSec });
  }
  const synOut: { backend: string; lport: number; seq: number }[] = [];
  for (let k = 0; k < step2.length; k += BATCH) {
    eng.processBatch(step2.slice(k, k + BATCH));
    for (const o of eng.drainSplice()) {
      const f = o.frame;
      synOut.push({ backend: `${f[30]}.${f[31]}.${f[32]}.${f[33]}`, lport: (f[34] << 8) | f[35], seq: new DataView(f.buffer, f.byteOffset).getUint32(38) });
    }
  }
  if (synOut.length !== conns) throw new Error(`expected ${conns} backend SYNs, got ${synOut.length}`);
  // Backend SYN-ACKs (in the order the SYNs came out: connection order), then their ACKs of the replay.
  const bIsn = 0x7000_0000;
  const sas = synOut.map((s, i) => ({ data: frame({ src: s.backend, dst: VIP, proto: 'tcp', sport: 80, dport: s.lport, seq: bIsn, ack: u32(s.seq + 1), tcpFlags: F.SYN | F.ACK, tcpOptions: new Uint8Array([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3, 1, 3, 3, 7]) }), tsSec }));
  for (let k = 0; k < sas.length; k += BATCH) {
    eng.processBatch(sas.slice(k, k + BATCH));
    eng.drainSplice();
  }
  const acks = synOut.map((s, i) => ({ data: frame({ src: s.backend, dst: VIP, proto: 'tcp', sport: 80, dport: s.lport, seq: bIsn + 1, ack: u32(s.seq + 1 + req.length), tcpFlags: F.ACK, tcpOptions: tsOpt(10, 3) }), tsSec }));
  eng.processBatch(acks);
  return synOut;
}

/** Frames of the steady state: for each connection one client segment and one backend segment. */
function steadyFrames(mode: 'nat' | 'splice', conns: number, peers: { backend: string; lport: number }[]): Uint8Array[] {
  const payload = new Uint8Array(64).fill(0x61);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < conns; i++) {
    frames.push(frame({ src: clientAddr(i), dst: VIP, proto: 'tcp', sport: clientPort(i), dport: 80, seq: 5000, ack: 7000, tcpFlags: F.ACK | F.PSH, tcpOptions: tsOpt(100, 50), payload }));
    const b = peers[i].backend;
    frames.push(mode === 'splice'
      ? frame({ src: b, dst: VIP, proto: 'tcp', sport: 80, dport: peers[i].lport, seq: 0x7000_0100, ack: 5000, tcpFlags: F.ACK | F.PSH, tcpOptions: tsOpt(60, 100), payload })
      : frame({ src: b, dst: clientAddr(i), proto: 'tcp', sport: 80, dport: clientPort(i), seq: 0x7000_0100, ack: 5000, tcpFlags: F.ACK | F.PSH, tcpOptions: tsOpt(60, 100), payload }));
  }
  return frames;
}

function measure(eng: Engine, frames: Uint8Array[], seconds: number): { pps: number; forwarded: number } {
  const { mem, dv, descPtr } = eng;
  const batches = Math.ceil(frames.length / BATCH);
  const pristine = eng.ioPtr;
  for (let f = 0; f < batches * BATCH; f++) mem.set(frames[f % frames.length], pristine + f * STRIDE);
  const arena = eng.arenaPtr + 256;
  const span = BATCH * STRIDE;
  const setDesc = (k: number) => {
    for (let i = 0; i < BATCH; i++) {
      const d = descPtr + i * 32;
      dv.setUint32(d, arena + i * STRIDE, true);
      dv.setUint32(d + 4, frames[(k * BATCH + i) % frames.length].length, true);
      dv.setUint32(d + 8, frames[(k * BATCH + i) % frames.length].length, true);
      dv.setUint16(d + 12, 0, true);
      dv.setUint16(d + 14, 1, true);
      dv.setUint32(d + 16, 1_700_000_001, true);
      dv.setUint32(d + 20, 0, true);
    }
  };
  // Every frame of a mode has the same length: descriptors are written once.
  setDesc(0);
  // Warm-up pass over every batch (NAT creates its flows here); counts the frames forwarded.
  let forwarded = 0;
  for (let k = 0; k < batches; k++) {
    mem.copyWithin(arena, pristine + k * span, pristine + (k + 1) * span);
    eng.process(BATCH);
    for (let i = 0; i < BATCH; i++) if (mem[descPtr + i * 32 + 24] === 1 || mem[descPtr + i * 32 + 24] === 2) forwarded++;
  }
  let best = 0;
  for (let slice = 0; slice < 5; slice++) {
    let packets = 0;
    let k = 0;
    const t0 = process.hrtime.bigint();
    const limit = BigInt(Math.round((seconds / 5) * 1e9));
    for (;;) {
      for (let rep = 0; rep < 32; rep++) {
        mem.copyWithin(arena, pristine + k * span, pristine + (k + 1) * span);
        eng.process(BATCH);
        packets += BATCH;
        k = (k + 1) % batches;
      }
      const dt = process.hrtime.bigint() - t0;
      if (dt >= limit) {
        best = Math.max(best, packets / (Number(dt) / 1e9));
        break;
      }
    }
  }
  return { pps: best, forwarded: forwarded / (batches * BATCH) };
}

/** SYN cookies answered per second (SYN in, SYN-ACK written in place), 4096 distinct clients. */
export function cookieRate(seconds: number): number {
  const eng = makeEngine('splice', 4096);
  const frames = Array.from({ length: 4096 }, (_, i) => frame({ src: clientAddr(i), dst: VIP, proto: 'tcp', sport: clientPort(i), dport: 80, seq: i * 7919, tcpFlags: F.SYN,
    tcpOptions: new Uint8Array([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]) }));
  const r = measure(eng, frames, seconds);
  if (r.forwarded !== 1 || (eng.ex as unknown as SpliceExports).splice_count() !== 0) throw new Error('cookie benchmark: not every SYN answered statelessly');
  return r.pps;
}

/** Splice vs NAT, engine only, `conns` connections, each mode measured for about `seconds`. */
export function spliceVsNat(conns: number, seconds: number): { spliceMpps: number; natMpps: number; ratio: number; spliced: number; forwardedShare: { splice: number; nat: number } } {
  const se = makeEngine('splice', conns);
  const peers = openSpliced(se, conns);
  const spliced = (se.ex as unknown as SpliceExports).splice_count();
  const ne = makeEngine('nat', conns);
  // NAT: the same backends per connection as splice chose; the flows exist after the first pass.
  const natFrames = steadyFrames('nat', conns, peers);
  const s = measure(se, steadyFrames('splice', conns, peers), seconds);
  const n = measure(ne, natFrames, seconds);
  return { spliceMpps: s.pps / 1e6, natMpps: n.pps / 1e6, ratio: s.pps / n.pps, spliced, forwardedShare: { splice: s.forwarded, nat: n.forwarded } };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const conns = Number(process.argv[2] ?? 4096);
  const secs = Number(process.argv[3] ?? 2);
  const r = spliceVsNat(conns, secs);
  process.stdout.write(`${JSON.stringify({ ...r, synCookiesPerSecond: Math.round(cookieRate(secs)) })}\n`);
}
